"""Stage ``features``: point-in-time-correct features served by Feast (see core.py)."""
