"""Shared fixtures: tiny worlds generated on the fly (never committed blobs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from components.params import Params, load_params
from components.tracking import OFFLINE_ENV

for _k, _v in OFFLINE_ENV.items():
    os.environ.setdefault(_k, _v)

REPO = Path(__file__).resolve().parents[1]

# Small enough for seconds, big enough for every mechanism (churn, habits, sessions) to occur.
TINY = {
    "tracking.enabled": False,
    "simulate.warmup_days": 3,
    "simulate.days": 35,
    "simulate.users.n_users": 400,
    "simulate.catalogue.n_genres": 6,
    "simulate.catalogue.n_artists": 60,
    "simulate.catalogue.n_tracks": 300,
    "simulate.logging_policy.pool_size": 50,
    # the library: arms fork the tiny world on day 7 and run to its end, with most of its listeners
    "experiments.start_day": 7,
    "experiments.participants": 300,
    "label.min_history_days": 7,
}


def tiny_params(**overrides) -> Params:
    """Repo params.yaml with the tiny overrides (+ any given, dotted keys with '__' for '.')."""
    extra = {k.replace("__", "."): v for k, v in overrides.items()}
    return load_params(REPO / "params.yaml", {**TINY, **extra})


@pytest.fixture(scope="session")
def params() -> Params:
    return tiny_params()


@pytest.fixture(scope="session")
def tiny_logs(tmp_path_factory, params) -> tuple[Path, Path]:
    """(raw_dir, world_dir) of a tiny simulated world, shared read-only by the session."""
    from components.raw_logs.simulate import simulate as run

    root = tmp_path_factory.mktemp("tiny_world")
    raw, world = root / "raw", root / "world"
    run(params, raw, world, progress=False)
    return raw, world


@pytest.fixture(scope="session")
def tiny_raw(tiny_logs) -> Path:
    return tiny_logs[0]


@pytest.fixture(scope="session")
def tiny_features(tmp_path_factory, tiny_raw, params) -> Path:
    """The features stage's output folder for the tiny world (SQLite online store)."""
    from components.features.core import run

    out = tmp_path_factory.mktemp("tiny_features") / "features"
    run(params, tiny_raw, out)
    return out


@pytest.fixture(scope="session")
def tiny_labels(tmp_path_factory, tiny_raw, params) -> Path:
    """The label stage's output folder for the tiny world."""
    from components.label.core import run

    out = tmp_path_factory.mktemp("tiny_labels") / "labels"
    run(params, tiny_raw, out)
    return out


@pytest.fixture(scope="session")
def tiny_experiments(tmp_path_factory, tiny_logs, params) -> Path:
    """The experiment library of the tiny world (every arm of params.yaml, the tiny listeners)."""
    from components.experiments.core import run

    raw, world = tiny_logs
    out = tmp_path_factory.mktemp("tiny_experiments") / "experiments"
    run(params, raw, world, out, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_signals(tmp_path_factory, tiny_raw, tiny_labels, tiny_experiments, params) -> Path:
    """The signals stage's output for the tiny world (scorecard, weights, library labels)."""
    from components.signals.core import run

    root = tmp_path_factory.mktemp("tiny_signals")
    run(
        params,
        tiny_raw,
        tiny_labels,
        tiny_experiments,
        root / "signals",
        root / "signals.html",
        progress=False,
    )
    return root / "signals"


# Reward-model sizes for tests: big enough for every code path, small enough for seconds.
TINY_REWARD = {
    "reward_model.max_train_examples": 6000,
    "reward_model.max_test_examples": 3000,
    "reward_model.max_library_examples": 1500,
    "reward_model.max_pairs": 4000,
    "reward_model.train.eval_every": 5,
    "reward_model.train.batch_size": 128,
}


@pytest.fixture(scope="session")
def tiny_reward_model(
    tmp_path_factory, tiny_raw, tiny_features, tiny_labels, tiny_signals, tiny_experiments
) -> tuple[Path, dict]:
    """A mid-term reward model trained on the tiny world (and its library): (model dir, metrics)."""
    from components.reward_model.core import run

    out = tmp_path_factory.mktemp("tiny_reward") / "reward"
    params = tiny_params(**{k.replace(".", "__"): v for k, v in TINY_REWARD.items()})
    metrics = run(
        params,
        tiny_raw,
        tiny_features,
        tiny_labels,
        out,
        "midterm",
        progress=False,
        signals_dir=tiny_signals,
        experiments_dir=tiny_experiments,
    )
    return out, metrics


TINY_SFT = {
    "sft_policy.max_train_sequences": 3000,
    "sft_policy.max_eval_prompts": 200,
    "sft_policy.train.batch_size": 128,
    "sft_policy.train.eval_every": 5,
}
TINY_RL = {
    "rlhf_policy.max_steps": 6,
    "rlhf_policy.checkpoint_every": 2,
    "rlhf_policy.num_generations": 4,
    "rlhf_policy.prompts_per_step": 2,
    "rlhf_policy.n_prompts": 60,
}
TINY_EVAL = {
    "evaluate.max_slates": 300,
    "evaluate.n_bootstrap": 50,
    "evaluate.ranking_sequences": 200,
    "ab.n_users": 150,
    "ab.horizon_days": 21,
}

# the end-to-end runs: one loop round of three days (tests/pipelines/test_loop.py runs two)
TINY_LOOP = {
    "loop.rounds": 1,
    "loop.days_per_round": 3,
    "loop.truth_listeners": 150,
    "loop.max_slates": 300,
    "loop.served_examples": 2000,
    "loop.rm_train_examples": 6000,  # as reward_model.max_train_examples above
    "loop.rl_steps": 6,
}


def tiny_policy_params(**extra):
    """The tiny world's params for the model stages; ``extra`` (dotted keys with '__') wins."""
    merged = {**TINY_REWARD, **TINY_SFT, **TINY_RL, **TINY_EVAL, **TINY_LOOP}
    return tiny_params(**({k.replace(".", "__"): v for k, v in merged.items()} | extra))


@pytest.fixture(scope="session")
def tiny_sft(tmp_path_factory, tiny_raw, tiny_features) -> tuple[Path, dict]:
    """An SFT policy trained on the tiny world: (model dir, metrics)."""
    from components.sft_policy.core import run

    out = tmp_path_factory.mktemp("tiny_sft") / "sft"
    return out, run(tiny_policy_params(), tiny_raw, tiny_features, out, progress=False)


MLFLOW_URI_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _mlflow_uris_do_not_leak():
    """``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI (for subprocesses): a test
    that points MLflow at a scratch database must not leave every later test's stages, and
    their subprocesses, pointing at it after it is dropped."""
    import sys

    saved = {var: os.environ.get(var) for var in MLFLOW_URI_VARS}
    yield
    if "mlflow" in sys.modules:
        import mlflow

        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    for var, value in saved.items():
        if value is None:
            os.environ.pop(var, None)
        else:
            os.environ[var] = value
