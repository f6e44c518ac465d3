"""Small polars helpers to corrupt a valid log in one place (shared by the bad-input tests)."""

from __future__ import annotations

import polars as pl


def set_rows(df: pl.DataFrame, mask: pl.Expr, column: str, value) -> pl.DataFrame:
    """Set ``column`` to ``value`` (a literal or an expression) where ``mask`` holds."""
    value = value if isinstance(value, pl.Expr) else pl.lit(value)
    return df.with_columns(pl.when(mask).then(value).otherwise(pl.col(column)).alias(column))


def first(n: int) -> pl.Expr:
    """The first ``n`` rows."""
    return pl.int_range(pl.len()) < n


def with_row_counts(pattern: str, raw_dir) -> str:
    """``pattern`` with ``{impressions}`` (or ``{impressions:,}``, thousands separated) replaced
    by the impression count of the logs in ``raw_dir``.

    The count is read from the world the session simulated, never written into a test: it moves
    whenever the world's mechanics do, and a pinned number only tests that nothing changed.
    """
    from components import contract

    n = pl.scan_parquet(contract.TABLES["impressions"].file(raw_dir)).select(pl.len()).collect().item()
    return pattern.replace("{impressions:,}", f"{n:,}").replace("{impressions}", str(n))
