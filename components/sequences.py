"""Small shared helpers for id sequences (listening histories)."""

from __future__ import annotations

import numpy as np
import polars as pl


def right_aligned(lists: pl.Series, H: int) -> np.ndarray:
    """(rows, H): the most recent ``H`` ids of each list, right-aligned, -1 padded on the left."""
    padding = pl.lit([-1] * H, dtype=pl.List(pl.Int64))
    frame = pl.DataFrame({"h": lists.fill_null([]).cast(pl.List(pl.Int64))})
    tails = frame.select(pl.concat_list(padding, pl.col("h")).list.tail(H).list.to_array(H))
    return tails.to_series().to_numpy().astype(np.int64).reshape(len(lists), H)
