"""The scorecard and the learned composite on a planted library: one valid signal, one anti-correlated.

Synthetic arms (no world): each arm's long-term effect is drawn, ``streamed``'s first-week
effect tracks it, ``saved``'s runs against it (although it is declared 'more is better'), and
every other signal is noise. The scorecard must rank them so and the learned composite must put
its weight on the valid one and none on the anti-correlated one.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from components.reward.candidates import CANDIDATES, FIXED_COMPOSITE
from components.reward.composite import fixed_weights
from components.reward.validity import learn_composite, single_signal_loo, validity
from components.signals.core import GUARDRAILS, choose_weights, scorecard
from tests.conftest import tiny_params

ARMS = 14


@pytest.fixture(scope="module")
def planted() -> pl.DataFrame:
    rng = np.random.default_rng(5)
    outcome = rng.normal(0, 1.0, ARMS)
    cols = {f"d_{c.name}": rng.normal(0, 0.02, ARMS) for c in CANDIDATES}
    cols["d_streamed"] = 0.03 * outcome + rng.normal(0, 0.003, ARMS)  # valid
    cols["d_saved"] = -0.02 * outcome + rng.normal(
        0, 0.002, ARMS
    )  # anti-correlated, declared 'more is better'
    cols[f"d_{FIXED_COMPOSITE}"] = rng.normal(0, 0.05, ARMS)
    cols |= {f"d_{g}": rng.normal(0, 0.01, ARMS) for g in GUARDRAILS}
    treated = pl.DataFrame(
        {
            "experiment_id": [1] * ARMS,
            "name": [f"arm{i}" for i in range(ARMS)],
            "is_control": [False] * ARMS,
            "d_active_days_adj": outcome,
            "active_days": 18 + outcome,
            "d_retained_adj": 0.01 * outcome,
            **cols,
        }
    )
    return treated


def test_validity_ranks_the_valid_signal_first_and_the_anti_correlated_last(planted):
    p = tiny_params()
    fixed = fixed_weights(p.label.composite.fixed, p.label)
    card = scorecard(planted, planted, coverage={}, sd={}, sp=p.signals, lp=p.label, fixed=fixed)
    ranked = sorted(card["signals"], key=lambda n: -card["signals"][n]["active_days/pearson"])
    assert ranked[0] == "streamed" and ranked[-1] == "saved"
    assert card["signals"]["streamed"]["active_days/pearson"] > 0.95
    assert card["signals"]["streamed"]["active_days/pearson_loo_low"] > 0.9  # no single arm makes it
    assert card["signals"]["streamed"]["active_days/sign_agreement"] > 0.9
    assert card["signals"]["saved"]["active_days/pearson"] < -0.95
    assert card["signals"]["saved"]["active_days/sign_agreement"] < 0.1


def test_the_learned_composite_weights_the_valid_signal_and_not_the_anti_correlated(planted):
    weights = choose_weights(planted, fixed={"streamed": 1.0}, mode="learned", sp=tiny_params().signals)
    cols = weights["learned"]["columns"]
    assert cols["streamed"] > 0 and cols["saved"] == 0.0
    assert weights["active"]["source"] == "learned"
    loo = weights["loo_rmse"]
    # the learned composite predicts held-out arms better than the fixed one and than 'no effect'
    assert loo["learned"] < loo["fixed"] and loo["learned"] < loo["no_effect"]
    # in the outcome's units: an arm that moves stream rate by 0.03 moves active days by about 1
    assert 20 < cols["streamed"] < 45


def test_a_library_too_small_falls_back_to_the_fixed_composite(planted):
    fixed = {"streamed": 0.5}
    weights = choose_weights(planted.head(2), fixed=fixed, mode="learned", sp=tiny_params().signals)
    assert weights["active"]["source"] == "fixed" and weights["active"]["columns"] == fixed
    assert "2 treatment arm" in weights["active"]["why"]


def test_validity_and_loo_helpers_on_known_numbers():
    x = np.arange(6, dtype=float)
    assert validity(x, 2 * x, 1)["pearson"] == pytest.approx(1.0)
    assert validity(x, 2 * x, -1)["sign_agreement"] == 0.0
    y = 3 * x
    assert single_signal_loo(x, y, np.arange(6)) == pytest.approx(0.0, abs=1e-9)
    fit = learn_composite(np.column_stack([x, -x]), y, np.arange(6), 1.0)
    assert fit.weights[0] == pytest.approx(3.0) and fit.weights[1] == 0.0 and fit.chosen == (0,)


def test_a_signal_that_only_fits_noise_does_not_join_the_composite():
    """Twelve arms, one valid signal and one column of pure noise: forward selection with the
    one-SE rule keeps the valid signal alone."""
    rng = np.random.default_rng(0)
    valid = rng.normal(size=12)
    noise = rng.normal(size=12)
    y = 2.0 * valid + rng.normal(scale=0.3, size=12)
    fit = learn_composite(np.column_stack([valid, np.abs(noise)]), y, np.arange(12), 1.0)
    assert fit.chosen == (0,) and fit.weights[1] == 0.0
    assert fit.loo_rmse < single_signal_loo(np.abs(noise), y, np.arange(12))


def test_the_composite_scope_keeps_listener_outcomes_out_of_the_per_slot_reward(planted):
    """A listener-scope signal that predicts the outcome best (7-day active days is a quarter of it)
    joins the composite only when signals.composite_scope lets it; at impression scope the
    composite is learned from the impression's own consequences, and the scorecard still reports
    the listener signal's leave-one-out error."""
    treated = planted.with_columns(
        d_active_days_7d=0.5 * pl.col("d_active_days_adj"),  # a perfect, listener-scope predictor
        d_saved=0.01 * pl.col("d_active_days_adj") + np.random.default_rng(1).normal(0, 0.002, ARMS),
    )
    sp = tiny_params().signals
    wide = choose_weights(
        treated,
        fixed={"saved": 1.0},
        mode="learned",
        sp=sp.model_copy(update={"composite_scope": "listener"}),
    )
    assert wide["learned"]["signals"] == ["active_days_7d"]
    assert wide["active"]["columns"]["active_days_7d_credit"] > 0

    narrow = choose_weights(
        treated,
        fixed={"saved": 1.0},
        mode="learned",
        sp=sp.model_copy(update={"composite_scope": "impression"}),
    )
    cols = narrow["active"]["columns"]
    assert narrow["active"]["source"] == "learned" and narrow["learned"]["scope"] == "impression"
    assert all(cols[c.column] == 0.0 for c in CANDIDATES if c.scope != "impression")
    assert narrow["learned"]["signals"] and set(narrow["learned"]["signals"]) <= {"streamed", "saved"}
    assert "active_days_7d" not in narrow["learned"]["candidates"]
    assert narrow["loo_rmse"]["active_days_7d"] < narrow["loo_rmse"]["saved"]  # reported, not used
    assert narrow["vs_best_single"]["signal"] in narrow["learned"]["candidates"]


def test_a_composites_lag_is_its_longest_weighted_label_horizon_as_the_label_params_set_it():
    """The loop serves a round this many days longer (its days must mature before it learns)."""
    from components.errors import EncoreError
    from components.reward.composite import composite_lag

    lp = tiny_params().label
    fixed = fixed_weights(lp.composite.fixed, lp)
    assert composite_lag({"saved": 1.0, "skipped": -0.1, "discovery": 0.5}, lp) == 0
    assert composite_lag({"saved": 1.0, "active_days_7d_credit": 0.1}, lp) == lp.active_horizon_days
    assert composite_lag(fixed, lp) == lp.artist_return_horizon_days
    longer = lp.model_copy(update={"artist_return_horizon_days": 21})
    assert composite_lag(fixed, longer) == 21
    assert composite_lag(fixed | {"artist_return_14d": 0.0}, lp) == lp.active_horizon_days  # unweighted
    with pytest.raises(EncoreError, match="no_such_signal"):
        composite_lag({"saved": 1.0, "no_such_signal": 1.0}, lp)
