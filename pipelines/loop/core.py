"""Stage ``loop``: iterated RLHF in the world — serve, log, relabel, retrain — round by round.

Round 0 is the pipeline's own mid-term RL policy (the ``rlhf_policy`` stage), trained on the logging
policy's logs. Round r (1 .. ``loop.rounds``):

1. **serve**: the world runs ``loop.days_per_round`` more days; the service's hash puts
   ``loop.treatment_share`` of the listeners in the treatment arm, served round r - 1's policy through
   the service's sampler (``loop.temperature``, ``loop.epsilon``, propensities logged); the rest get
   the logging policy (:mod:`pipelines.loop.serving`). The days are appended to the raw logs
   (:mod:`pipelines.loop.logs`);
2. **relabel**: the features and label stages' code on the longer logs (the loop's own embedded
   feature store, never the production online store);
3. **retrain the reward model** on ``loop.rm_train_examples`` impressions sampled from all logs so
   far, with up to ``loop.served_examples`` examples from the loop's served slates on top (uniformly
   sampled, they would be a sliver) — fine-tuning round r - 1's model (``loop.rm_warm_start``) or
   from scratch;
4. **RL again** against the new reward model, from ``loop.rl_start``: round r - 1's policy (the
   default; GRPO's KL anchor moves with it, a trust region per round) or the SFT reference (see
   docs/loop.md for what each bought);
5. **measure** (:mod:`pipelines.loop.measure`): the new policy's off-policy estimates from the
   round's served logs against its on-policy truth, the reward model against the truth, diversity.

Each step writes its folder atomically under ``work_dir/round_<r>/`` and a finished round writes
``round.json``: a killed run resumes at the first missing step (RL from its own checkpoints).
``out_dir`` (written atomically at the end) holds the final policy and reward model — the gate's
challenger — each earlier round's policy (the simulated A/B's arms) and ``rounds.json``.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from components import contract
from components.errors import EncoreError
from components.evaluate.rounds import ROUNDS_JSON, round_policy_dir
from components.io import atomic_dir, write_json
from components.params import LoopParams, Params

ROUND_DONE = "round.json"
FINGERPRINT = "fingerprint.json"
FINGERPRINT_SECTIONS = ("loop", "features", "label", "reward_model", "rlhf_policy", "evaluate", "ab")


@dataclass(frozen=True)
class RoundDirs:
    """Where one round's logs, world, features, labels, reward model and policy live."""

    raw: Path
    world: Path
    features: Path
    labels: Path
    reward: Path
    policy: Path

    @classmethod
    def under(cls, d: Path) -> "RoundDirs":
        return cls(d / "raw", d / "world", d / "features", d / "labels", d / "reward", d / "policy")


def run(
    params: Params,
    start: RoundDirs,
    signals_dir: Path,
    experiments_dir: Path,
    sft_dir: Path,
    work_dir: Path,
    out_dir: Path,
    progress: bool = True,
) -> dict[str, float]:
    """Run (or resume) every round; write ``out_dir``; return the flat metrics."""
    from components.reward.composite import active_weights
    from components.world import has_truth

    lp = params.loop
    work_dir, out_dir = Path(work_dir), Path(out_dir)
    rounds_run = lp.rounds if has_truth(start.world) else 0
    if lp.rounds and not rounds_run:
        print(
            f"loop: {start.world} holds no world to serve in (the logs were ingested): no rounds run; "
            "online, the service and its logs close the loop. The challenger is round 0's policy."
        )
    _reset_if_stale(params, start, sft_dir, work_dir)
    weights = active_weights(signals_dir)
    days = round_days(params, weights)
    if rounds_run and days > lp.days_per_round:
        print(
            f"loop: the composite's labels are known {days - lp.days_per_round} days after an impression; "
            f"each round serves {days} days (its first {lp.days_per_round} are learned from and measured, "
            "the policy stays served while their labels mature)"
        )
    rows: list[dict] = []
    if rounds_run:
        rows.append(_measured(params, 0, None, start, start, weights, days, work_dir / "round_0", progress))
    prev = start
    for r in range(1, rounds_run + 1):
        here = RoundDirs.under(work_dir / f"round_{r}")
        rows.append(
            _round(params, r, prev, here, signals_dir, experiments_dir, sft_dir, weights, days, progress)
        )
        prev = here

    with atomic_dir(out_dir) as tmp:
        shutil.copytree(prev.policy, tmp / "policy")
        shutil.copytree(prev.reward, tmp / "reward")
        for r in range(rounds_run):
            policy = start.policy if r == 0 else RoundDirs.under(work_dir / f"round_{r}").policy
            shutil.copytree(policy, round_policy_dir(tmp, r))
        write_json(tmp / ROUNDS_JSON, {"rounds": rows, "final_round": rounds_run})
        if rows:
            _plot(rows, tmp / "loop.png")
    return flat_metrics(rows, rounds_run)


def round_days(params: Params, weights: dict[str, float]) -> int:
    """Days a round serves: ``loop.days_per_round``, plus the days the composite's labels take to
    mature (:func:`components.reward.composite.composite_lag`). A round learns only from labelled
    days, and a composite that looks 14 days ahead is censored on every day of a 7-day round; so,
    as online, the policy stays served until the round's first ``days_per_round`` days are known
    (the later days' labels mature in the next rounds' logs)."""
    from components.reward.composite import composite_lag

    return params.loop.days_per_round + composite_lag(weights, params.label)


def flat_metrics(rows: list[dict], rounds_run: int) -> dict[str, float]:
    """``loop/round_<r>/<metric>`` for every round, plus the final round's under ``loop/final/``."""
    out: dict[str, float] = {"loop/rounds": float(rounds_run)}
    for row in rows:
        for key, value in row.items():
            if key != "round" and isinstance(value, (int, float)):
                out[f"loop/round_{row['round']}/{key}"] = float(value)
    if rows:
        out |= {f"loop/final/{k}": float(v) for k, v in rows[-1].items() if isinstance(v, (int, float))}
    return out


# --------------------------------------------------------------------------- one round


def _round(
    params: Params,
    r: int,
    prev: RoundDirs,
    here: RoundDirs,
    signals_dir: Path,
    experiments_dir: Path,
    sft_dir: Path,
    weights: dict[str, float],
    days: int,
    progress: bool,
) -> dict:
    """Round ``r`` from ``prev``'s logs and policy into ``here``, each missing step only; ``days``:
    the days it serves (:func:`round_days`)."""
    from components.features.core import run as build_features
    from components.label.core import run as label
    from components.reward.examples import ServedExamples
    from components.reward_model.core import run as train_reward_model
    from components.rlhf_policy.core import run as rlhf
    from pipelines.loop.serving import served_policy_id

    done = here.raw.parent / ROUND_DONE
    if done.exists():
        print(f"loop: round {r} is complete ({done}), not rerun")
        return json.loads(done.read_text())
    lp = params.loop
    clock = _StepClock(here.raw.parent / "seconds.json")
    if not (here.raw.exists() and here.world.exists()):
        shutil.rmtree(here.raw, ignore_errors=True)  # a half-written pair: serve again
        with clock("serve"):
            write_json(here.raw.parent / "served_metrics.json", _serve(params, r, prev, here, days, progress))
    if not here.features.exists():
        with clock("features"):
            build_features(_loop_features(params), here.raw, here.features, online=False)
    if not here.labels.exists():
        with clock("label"):
            label(params, here.raw, here.labels)
    _require_labelled_days(params, here.labels, weights, days, r)
    if not here.reward.exists():
        clock.start("reward_model")
        served = ServedExamples(tuple(served_policy_id(lp, i) for i in range(1, r + 1)), lp.served_examples)
        rm = train_reward_model(
            _with(params, "reward_model", max_train_examples=lp.rm_train_examples),
            here.raw,
            here.features,
            here.labels,
            here.reward,
            "midterm",
            progress,
            signals_dir=signals_dir,
            experiments_dir=experiments_dir,
            served=served,
            warm_start=prev.reward if lp.rm_warm_start else None,
        )
        write_json(here.reward.parent / "reward_model_metrics.json", rm)
        clock.stop()
    if not here.policy.exists():
        clock.start("rlhf_policy")
        rl = rlhf(
            _with(params, "rlhf_policy", max_steps=lp.rl_steps),
            here.raw,
            here.features,
            rl_start(lp, sft_dir, prev),
            here.reward,
            here.policy,
            here.raw.parent / "checkpoints",
            world_dir=here.world,
            progress=progress,
        )
        write_json(here.policy.parent / "rlhf_metrics.json", rl)
        clock.stop()
    with clock("measure"):
        return _measured(params, r, prev, here, here, weights, days, here.raw.parent, progress)


def _require_labelled_days(
    params: Params, labels_dir: Path, weights: dict[str, float], days: int, r: int
) -> None:
    """Fail before training if the round's ``days`` hold no labelled composite (checked on the
    labels, not assumed from the horizons): a reward model would learn nothing from them."""
    from components.reward.labels import LABELS_FILE
    from pipelines.loop.measure import require_labelled

    columns = ["day", *(c for c, w in weights.items() if w)]
    labels = pl.read_parquet(labels_dir / LABELS_FILE, columns=columns)
    served = labels.filter(pl.col("day") > labels["day"].max() - days)
    require_labelled(
        served,
        weights,
        days - params.loop.days_per_round,
        f"round {r}: the {days} days it served ({labels_dir})",
    )


def rl_start(lp: LoopParams, sft_dir: Path, prev: RoundDirs) -> Path:
    """The policy a round's RL starts from, which GRPO also takes as its frozen KL reference.

    ``sft``: every round is one KL-bounded step from what imitation learned of listening, whatever
    the rounds before did. ``last``: round r - 1's policy — a trust region around the policy whose
    served slates the round's reward model has just learned from, where that model is most right;
    the policy may then drift up to one KL budget per round from SFT (the gate still checks the
    final policy's KL to SFT)."""
    return sft_dir if lp.rl_start == "sft" else prev.policy


class _StepClock:
    """Wall seconds of each step of a round, kept in ``path`` across resumes (a resumed round
    reports the steps it ran and those an earlier run finished)."""

    def __init__(self, path: Path):
        self.path = path
        self.seconds = json.loads(path.read_text()) if path.exists() else {}
        self._step, self._t = "", 0.0

    def start(self, step: str) -> None:
        import time

        self._step, self._t = step, time.perf_counter()

    def stop(self) -> None:
        import time

        self.seconds[self._step] = time.perf_counter() - self._t
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path, self.seconds)

    def __call__(self, step: str) -> "_StepClock":
        self.start(step)
        return self

    def __enter__(self) -> "_StepClock":
        return self

    def __exit__(self, exc_type, *_) -> None:
        if exc_type is None:
            self.stop()


def _serve(
    params: Params, r: int, prev: RoundDirs, here: RoundDirs, days: int, progress: bool
) -> dict[str, float]:
    """Round ``r``'s ``days``: round r - 1's policy to the treatment arm, logging to control."""
    from components.featurestore.lookup import FeatureLookup
    from components.policy.model import load as load_policy
    from components.sampler.served import ServedPolicy
    from components.world import LoggingPolicy, load_world, save_world
    from pipelines.loop.logs import continue_logs
    from pipelines.loop.serving import ExperimentPolicy, served_policy_id, treated_listeners

    lp = params.loop
    world, day = load_world(prev.world)
    tracks = pl.from_arrow(contract.read(prev.raw, "tracks", ["track_id", "artist_id", "genre_id"]))
    lookup = FeatureLookup.from_sources(prev.features, params.features, tracks)
    model, _, vocab = load_policy(prev.policy, device="cpu")  # the service decodes on the CPU
    treatment = ServedPolicy(
        model, vocab, lookup, served_policy_id(lp, r), lp.seed + r, lp.temperature, lp.epsilon
    )
    P = world.params
    control = LoggingPolicy(P.logging_policy, world.catalogue, world.population, P.seed)
    treated = treated_listeners(world.population.n_users, lp)
    with atomic_dir(here.raw) as raw_tmp, atomic_dir(here.world) as world_tmp:
        counts = continue_logs(
            world,
            day,
            days,
            ExperimentPolicy(control, treatment, treated),
            prev.raw,
            raw_tmp,
            progress,
        )
        save_world(world, world_tmp, day + days)
    return {
        "served/impressions": float(counts["impressions"]),
        "served/treatment_share": float(treated.mean()),
    }


def _measured(
    params: Params,
    r: int,
    prev: RoundDirs | None,
    logs: RoundDirs,
    here: RoundDirs,
    weights: dict[str, float],
    days: int,
    round_dir: Path,
    progress: bool,
) -> dict:
    """Measure round ``r``'s policy (``here.policy``) and write ``round.json``.

    Its off-policy estimates come from ``logs`` — the round's own served slates (r >= 1), or the
    logging policy's held-out slates for round 0 — and its truth from the world where ``prev``
    (the state the logs started from) left it: round 0 from the end of the original log."""
    from components.featurestore.lookup import FeatureLookup
    from components.policy.model import load as load_policy
    from components.reward.model import RewardModel
    from components.sampler.served import ServedPolicy
    from pipelines.loop import measure as M
    from pipelines.loop.serving import served_policy_id

    lp = params.loop
    done = round_dir / ROUND_DONE
    if done.exists():
        return json.loads(done.read_text())
    tracks = pl.from_arrow(
        contract.read(here.raw, "tracks", ["track_id", "artist_id", "genre_id", "duration_ms"])
    )
    lookup = FeatureLookup.from_sources(here.features, params.features, tracks)
    reward = RewardModel.load(here.reward).with_lookup(lookup)
    logged = M.served_log(params, logs.features, logs.labels, served_policy_id(lp, r) if r else None, weights)
    row: dict = {"round": r}
    for name in ("served_metrics.json", "reward_model_metrics.json", "rlhf_metrics.json"):
        if (round_dir / name).exists():
            row |= json.loads((round_dir / name).read_text())
    if (round_dir / "seconds.json").exists():  # the round's steps so far (measuring itself excluded)
        row |= {f"seconds/{k}": v for k, v in json.loads((round_dir / "seconds.json").read_text()).items()}

    # the truth: the policy served from the state the logged days started from, with the features then
    start_world, start_raw, start_labels, start_features = (
        (prev.world, prev.raw, prev.labels, prev.features)
        if prev is not None and r
        else (here.world, here.raw, here.labels, here.features)
    )
    start_lookup = FeatureLookup.from_sources(start_features, params.features, tracks)
    model, _, vocab = load_policy(here.policy, device="cpu")
    served = ServedPolicy(model, vocab, start_lookup, 1, lp.seed + 1000 + r, lp.temperature, lp.epsilon)
    truth = M.on_policy_truth(
        params, start_world, served, start_raw, start_labels, tracks, weights, days, progress
    )
    row |= {f"truth/{k}": v for k, v in truth.items()}
    row |= {
        f"reward_model/{k}": v
        for k, v in M.reward_model_agreement(params, reward, here.world, lookup, logged).items()
    }
    row["ope/slates"] = float(logged.n)
    if r and not logged.n:
        raise EncoreError(
            f"round {r}: none of the held-out listeners' served slates is fully labelled in {logs.labels}: "
            "nothing to estimate the policy from (too few held-out listeners in the treatment arm: "
            "loop.treatment_share; or its served days' labels are censored)"
        )
    if logged.n:
        estimates = M.off_policy(params, logged, here.policy, reward)
        row |= M.estimate_errors(estimates, truth["value_per_slot"], logged.n * logged.k)
    row["served_policy_value_per_slot"] = float(logged.matrix("reward").mean()) if logged.n else float("nan")
    round_dir.mkdir(parents=True, exist_ok=True)
    write_json(done, row)
    return row


# --------------------------------------------------------------------------- bookkeeping


def _loop_features(params: Params) -> Params:
    """The features stage's params with the loop's own embedded store: a round's later days must
    never reach the production online store (Redis / the cluster's) the service reads. (The
    rounds are built with ``online=False``: nothing reads a round's online store.)"""
    return _with(params, "features", store="embedded")


def _with(params: Params, section: str, **values) -> Params:
    """``params`` with some keys of one section replaced (what a round sets of a stage's params)."""
    return params.model_copy(update={section: getattr(params, section).model_copy(update=values)})


CODE = Path(__file__).resolve().parents[2]  # the project: its code is part of what a round is made of


def _fingerprint(params: Params, start: RoundDirs, sft_dir: Path) -> str:
    """What the saved rounds were made from: the code (every module of ``components/`` and the
    loop's), the params they read and round 0's inputs."""
    h = hashlib.sha256()
    for f in sorted([*(CODE / "components").rglob("*.py"), *(CODE / "pipelines" / "loop").glob("*.py")]):
        h.update(f.relative_to(CODE).as_posix().encode())
        h.update(f.read_bytes())
    for section in FINGERPRINT_SECTIONS:
        h.update(params.section_hash(section).encode())
    h.update((start.raw / contract.MANIFEST).read_bytes())
    for folder in (start.policy, start.reward, sft_dir):
        for f in sorted(Path(folder).rglob("*")):
            if f.is_file():
                h.update(f.name.encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def _reset_if_stale(params: Params, start: RoundDirs, sft_dir: Path, work_dir: Path) -> None:
    """Keep ``work_dir``'s rounds only if they were made from the same params and inputs."""
    fingerprint = _fingerprint(params, start, sft_dir)
    marker = work_dir / FINGERPRINT
    if marker.exists() and json.loads(marker.read_text()).get("fingerprint") == fingerprint:
        return
    if work_dir.exists():
        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    write_json(marker, {"fingerprint": fingerprint})


def _plot(rows: list[dict], path: Path) -> None:
    """Round by round: the policy's true value per slot with the estimates of it, and the reward
    model's Spearman with the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [row["round"] for row in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    left.plot(rounds, [row["truth/value_per_slot"] for row in rows], "o-", color="black", label="truth")
    for name, colour in (("iips", "#7570b3"), ("sniips", "#d95f02"), ("dr", "#1b9e77")):
        left.plot(
            rounds, [row.get(f"ope/{name}", float("nan")) for row in rows], "s--", color=colour, label=name
        )
    left.set(
        xlabel="round", ylabel="value per slot (composite)", title="the policy's value, true and estimated"
    )
    left.legend(frameon=False)
    for key, label in (
        ("reward_model/random/spearman", "random pairs"),
        ("reward_model/logged/spearman", "served pairs"),
    ):
        right.plot(rounds, [row.get(key, float("nan")) for row in rows], "o-", label=label)
    right.set(xlabel="round", ylabel="Spearman with the truth", title="the reward model")
    right.legend(frameon=False)
    for ax in (left, right):
        ax.set_xticks(rounds)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
