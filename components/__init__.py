"""Encore: learn mid-term reward signals and RL-fine-tune a generative recommender on them.

Each pipeline stage lives in its own sub-package (``components/<stage>``) with a
``core.run`` function and a CLI (``python -m components.<stage> --help``).
"""

__version__ = "0.1.0"
