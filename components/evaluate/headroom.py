"""Where the long-term value is lost: the reward model or RL?

For listeners with features at the end of the log, the world's true long-term value per slot
(state-free, as the reward model's truth check and the over-optimisation watch measure it) of
four slates per listener, every one of ``k`` distinct tracks outside the prompt's history:

- ``policy``: the policy's greedy slate — what RL learned;
- ``reward_argmax``: the reward model's top ``k`` over the whole catalogue — what a policy that
  optimised this reward model perfectly would serve;
- ``truth_argmax``: the truth's top ``k`` — the bound no reward model can beat;
- ``random``: ``k`` uniformly random tracks — the floor.

``rl_gap = reward_argmax - policy`` is what better optimisation of *this* reward model could
still win; ``reward_gap = truth_argmax - reward_argmax`` is what only a better reward model can.
The split tells which of the two to work on, where a single A/B number cannot: a policy can
fall short because RL did not find what the reward model likes, or because what it likes is
not worth much. Scoring the whole catalogue per listener is slow on a CPU (~7,500 scores/s),
so this is an analysis run on demand (``python -m components.evaluate.headroom``; the numbers go
to a JSON file and to an MLflow run ``headroom__<seed>__<time>``), not a stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from components.params import Params
from components.sequences import right_aligned

SLATES = ("random", "policy", "reward_argmax", "truth_argmax")


@dataclass(frozen=True)
class Listeners:
    """The sample: ids, the policy's prompt history (right-aligned, -1 padded) and what it bans."""

    user_ids: np.ndarray  # (n,)
    history: np.ndarray  # (n, H)
    banned: np.ndarray  # (n, T) bool: tracks in the history


def sample_listeners(users: pl.DataFrame, n: int, history_length: int, n_tracks: int, seed: int) -> Listeners:
    """``n`` listeners (seeded) of ``users`` (``FeatureLookup.users()``: ``user_id, recent_tracks``)."""
    rng = np.random.default_rng(seed)
    rows = users.sort("user_id")
    pick = np.sort(rng.choice(rows.height, size=min(n, rows.height), replace=False))
    rows = rows[pick]
    history = right_aligned(rows["recent_tracks"], history_length)
    banned = np.zeros((rows.height, n_tracks), dtype=bool)
    r, c = np.nonzero((history >= 0) & (history < n_tracks))
    banned[r, history[r, c]] = True
    return Listeners(rows["user_id"].to_numpy().astype(np.int64), history, banned)


def top_k(scores: np.ndarray, banned: np.ndarray, k: int) -> np.ndarray:
    """(n, k) ids of the ``k`` highest scores per row among the tracks not banned, best first."""
    masked = np.where(banned, -np.inf, scores)
    part = np.argpartition(-masked, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(masked, part, axis=1), axis=1)
    return np.take_along_axis(part, order, axis=1)


def random_slates(banned: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(n, k) distinct uniformly random tracks per row, none banned."""
    rng = np.random.default_rng(seed)
    return top_k(rng.random(banned.shape), banned, k)


def value_per_slot(truth: np.ndarray, slates: np.ndarray) -> float:
    """Mean true value of the slates' tracks; ``truth`` is (n, T), ``slates`` (n, k)."""
    return float(np.take_along_axis(truth, slates, axis=1).mean())


def headroom(
    truth: np.ndarray, reward_scores: np.ndarray, policy_slates: np.ndarray, banned: np.ndarray, seed: int
) -> dict[str, float]:
    """The four slates' true value per slot and the two gaps (see the module docstring).

    ``truth`` and ``reward_scores`` are (n, T) over the whole catalogue, ``policy_slates`` (n, k)."""
    k = policy_slates.shape[1]
    slates = {
        "random": random_slates(banned, k, seed),
        "policy": policy_slates,
        "reward_argmax": top_k(reward_scores, banned, k),
        "truth_argmax": top_k(truth, banned, k),
    }
    out = {f"headroom/{name}": value_per_slot(truth, s) for name, s in slates.items()}
    out["headroom/rl_gap"] = out["headroom/reward_argmax"] - out["headroom/policy"]
    out["headroom/reward_gap"] = out["headroom/truth_argmax"] - out["headroom/reward_argmax"]
    span = out["headroom/truth_argmax"] - out["headroom/random"]
    out["headroom/policy_share"] = (out["headroom/policy"] - out["headroom/random"]) / span
    out["headroom/reward_argmax_share"] = (out["headroom/reward_argmax"] - out["headroom/random"]) / span
    out["headroom/policy_distinct_tracks"] = float(len(np.unique(policy_slates)))
    out["headroom/reward_argmax_distinct_tracks"] = float(len(np.unique(slates["reward_argmax"])))
    out["headroom/listeners"] = float(len(policy_slates))
    return out


def run(
    params: Params,
    raw_dir: Path,
    features_dir: Path,
    world_dir: Path,
    reward_dir: Path,
    policy_dir: Path,
    n_listeners: int,
    progress: bool = True,
) -> dict[str, float]:
    """Load the world, the reward model and the policy; score the catalogue for a seeded sample."""
    from components import contract
    from components.errors import ContractError
    from components.featurestore.lookup import FeatureLookup
    from components.policy.decoding import generate_slates
    from components.policy.generative import GenerativePolicy
    from components.policy.model import load as load_policy
    from components.reward.model import RewardModel
    from components.world import load_world
    from components.world.response import true_long_term_value

    world, _ = load_world(world_dir)
    cat, seed = world.catalogue, params.evaluate.seed
    tracks = pl.from_arrow(
        contract.read(raw_dir, "tracks", ["track_id", "artist_id", "genre_id", "duration_ms"])
    )
    if len(tracks) != cat.n_tracks:
        raise ContractError(
            f"{raw_dir}/tracks.parquet: {len(tracks)} tracks, the world in {world_dir} has {cat.n_tracks}:"
            " the raw logs and the world come from different runs"
        )
    lookup = FeatureLookup.from_sources(features_dir, params.features, tracks)
    model, _, vocab = load_policy(policy_dir)
    who = sample_listeners(lookup.users(), n_listeners, vocab.history_length, cat.n_tracks, seed)
    policy = GenerativePolicy(model, vocab, lookup, policy_id=0, seed=seed, sample=False)
    policy_slates = generate_slates(model, vocab, policy.prompts(who.user_ids, who.history), sample=False)

    reward = RewardModel.load(reward_dir).with_lookup(lookup)
    catalogue = np.arange(cat.n_tracks, dtype=np.int64)
    scores = np.empty((len(who.user_ids), cat.n_tracks))
    truth = np.empty_like(scores)
    dyn, pop, weight = world.params.dynamics, world.population, world.params.oracle.habit_weight
    for i, user in enumerate(
        tqdm(who.user_ids, desc="headroom: scoring the catalogue", disable=not progress)
    ):
        scores[i] = reward.score(np.array([user]), catalogue[None, :])[0]
        truth[i] = true_long_term_value(dyn, cat, pop, np.full(cat.n_tracks, user), catalogue, weight)
    return headroom(truth, scores, policy_slates, who.banned, seed)


if __name__ == "__main__":  # pragma: no cover - the CLI is a thin wrapper over run()
    import typer

    from components.cli import app as make_app
    from components.cli import overrides, params_option, set_option, user_errors
    from components.io import write_json
    from components.params import load_params
    from components.tracking import stage_run

    HELP = (
        "Where the long-term value is lost: the true value per slot of the policy's greedy slates, "
        "of the reward model's own top-k over the catalogue and of the truth's top-k, for a seeded "
        "sample of listeners (needs the simulator's truth). rl_gap is what better RL against this "
        "reward model could still win, reward_gap what only a better reward model can."
    )
    cli = make_app(HELP)

    @cli.command(help=HELP)
    def main(
        params: Path = params_option(),
        set_: list[str] = set_option(),
        raw_dir: Path = typer.Option(Path("data/raw"), "--raw-dir", help="raw logs (the tracks table)"),
        features_dir: Path = typer.Option(
            Path("data/features"), "--features-dir", help="features stage output"
        ),
        world_dir: Path = typer.Option(Path("data/world"), "--world-dir", help="the truth"),
        reward_dir: Path = typer.Option(Path("models/reward"), "--reward-dir", help="the reward model"),
        policy_dir: Path = typer.Option(Path("models/policy"), "--policy-dir", help="the policy"),
        n_listeners: int = typer.Option(300, "--listeners", min=1, help="listeners sampled (seeded)"),
        out: Path = typer.Option(Path("reports/headroom.json"), "--out", help="where the numbers go"),
        progress: bool = typer.Option(True, help="show a progress bar"),
    ) -> None:
        with user_errors("headroom"):
            p = load_params(params, overrides(set_))
            with stage_run("headroom", p, ["evaluate", "tracking"], seed=p.evaluate.seed) as tracked:
                numbers = run(
                    p, raw_dir, features_dir, world_dir, reward_dir, policy_dir, n_listeners, progress
                )
                write_json(out, numbers)
                tracked.log_metrics(numbers)
                tracked.log_artifact(out)
            for key, value in numbers.items():
                typer.echo(f"{key:42s} {value:9.3f}")

    cli()
