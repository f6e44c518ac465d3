"""Stage ``label``: mid-term reward signals per recommended impression (see core.py)."""
