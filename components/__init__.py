"""Encore: learn mid-term reward signals and RL-fine-tune a generative recommender on them.

Each pipeline stage lives in its own sub-package (``components/<stage>``) with a
``core.run`` function and a CLI (``python -m components.<stage> --help``).
"""

__version__ = "0.1.0"

from components._malloc import tune as _tune_malloc

_tune_malloc()  # fewer page faults for large temporaries: see components/_malloc.py
