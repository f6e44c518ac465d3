"""Stage ``rlhf_policy``: RL fine-tuning of the SFT policy against a reward model (see core.py)."""
