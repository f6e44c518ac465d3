"""Stage ``sft_policy``: the generative recommender, trained to imitate listening (see core.py)."""
