"""Truth check on the default world: the mid-term reward model tracks true long-term value.

Runs simulate -> experiments, features, label -> signals on the *default* parameters, trains
the mid-term (learned composite) and the click reward models (fewer training rows than
`make repro`, same everything else) and
compares their held-out scores with the world's true expected long-term value of each
(listener, track) pair. Tests may read the truth; stages may not.
"""

from __future__ import annotations

import polars as pl
import pytest
from scipy.stats import spearmanr

from components.params import load_params
from components.reward import examples as D
from components.reward.model import RewardModel
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def default_world(tmp_path_factory):
    from components.experiments.core import run as experiments
    from components.features.core import run as features
    from components.label.core import run as label
    from components.raw_logs.simulate import simulate
    from components.reward_model.core import run as reward_model
    from components.signals.core import run as signals

    root = tmp_path_factory.mktemp("default_world")
    params = load_params(
        REPO / "params.yaml", {"tracking.enabled": False, "reward_model.max_train_examples": 60_000}
    )
    simulate(params, root / "raw", root / "world", progress=False)
    features(params, root / "raw", root / "features")
    label(params, root / "raw", root / "labels")
    experiments(params, root / "raw", root / "world", root / "library", progress=False)
    signals(
        params,
        root / "raw",
        root / "labels",
        root / "library",
        root / "signals",
        root / "s.html",
        progress=False,
    )
    for variant in ("midterm", "click"):
        reward_model(
            params,
            root / "raw",
            root / "features",
            root / "labels",
            root / variant,
            variant,
            progress=False,
            signals_dir=root / "signals",
            experiments_dir=root / "library",
        )
    return root, params


def test_mid_term_reward_model_tracks_true_long_term_value(default_world):
    from components.world import load_world, true_long_term_value

    root, params = default_world
    from components.reward.composite import active_weights

    weights = active_weights(root / "signals")
    test = D.split(
        D.load_examples(root / "features", root / "labels", params.reward_model.targets.midterm, weights),
        params.reward_model,
    ).test
    test = test.sample(min(test.height, 40_000), seed=0)
    world, _ = load_world(root / "world")
    truth = true_long_term_value(
        world.params.dynamics,
        world.catalogue,
        world.population,
        test["user_id"].to_numpy(),
        test["track_id"].to_numpy(),
        world.params.oracle.habit_weight,
    )
    rho = {
        v: spearmanr(RewardModel.load(root / v).score_frame(test), truth).statistic
        for v in ("midterm", "click")
    }
    assert test.height >= 40_000 and pl.Series(truth).n_unique() > 1000
    assert rho["midterm"] >= 0.5, rho
    assert rho["midterm"] > rho["click"] + 0.1, rho
