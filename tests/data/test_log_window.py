"""The inferred log window (no manifest): the bulk of the events, never stretched by strays.

Pure checks of :func:`components.contract.infer_window` on day histograms; ingest and validate
both call it, so these cases hold for both.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from components import contract
from components.errors import ContractError


def histogram(per_day: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    ts = np.concatenate([np.full(n, np.datetime64(day, "us")) for day, n in per_day.items()])
    return contract.day_histogram(ts)


def days(first: str, n: int, count: int = 1000) -> dict[str, int]:
    start = np.datetime64(first, "D")
    return {str(start + i): count for i in range(n)}


def span(per_day: dict[str, int]) -> str:
    return contract.infer_window(*histogram(per_day), where="logs").span()


def test_the_window_is_the_whole_days_of_a_clean_log():
    window = contract.infer_window(*histogram(days("2026-01-05", 35)), where="logs")
    assert window.inferred and window.days == 35
    assert window.start == datetime(2026, 1, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "strays",
    [{"1970-01-01": 1}, {"2099-12-31": 3}, {"2026-01-01": 5, "2026-02-12": 2}],
    ids=["1970", "2099", "a few days either side"],
)
def test_stray_days_stay_outside(strays):
    assert span(days("2026-01-05", 35) | strays) == "[2026-01-05, 2026-02-09)"


def test_a_thousand_sparse_junk_days_do_not_become_the_window():
    """A plain median over days would be 1 here and every junk day 'dense'; the event-weighted one is not."""
    junk = {str(np.datetime64("1990-01-01", "D") + 9 * i): 1 for i in range(1000)}
    assert span(days("2026-01-05", 35) | junk) == "[2026-01-05, 2026-02-09)"


def test_a_short_outage_stays_inside_for_the_volume_check_to_name():
    per_day = days("2026-01-05", 35)
    for day in ("2026-01-20", "2026-01-21", "2026-01-22"):
        per_day[day] = 0 if day != "2026-01-21" else 3
    per_day = {d: n for d, n in per_day.items() if n}
    assert span(per_day) == "[2026-01-05, 2026-02-09)"


def test_the_larger_of_two_distant_blocks_wins():
    assert span(days("2026-01-05", 35) | days("2024-03-01", 10)) == "[2026-01-05, 2026-02-09)"


def test_a_timestamp_beyond_python_datetime_is_a_contract_error():
    with pytest.raises(ContractError, match="outside the years 1-9999"):
        contract.infer_window(*histogram({"148108-07-06": 10}), where="logs")
