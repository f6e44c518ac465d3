"""The ground-truth A/B test: run policies on cloned populations with common random numbers.

Every arm starts from an identical copy of the world's state and draws the same
uniforms per (user, day, purpose), so per-user differences between arms are paired and
the lift's confidence interval is far tighter than two independent samples would give.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats
from tqdm.auto import tqdm

from components.protocol import Policy
from components.world.dynamics import World
from components.world.rng import stream

OUTCOMES = (
    "active_days",
    "retained",
    "streams",
    "rec_streams",
    "skips",
    "saves",
    "impressions",
    "habits_formed",
    "distinct_artists",
)


@dataclass(frozen=True)
class Lift:
    """Difference ``treatment - control`` of a per-user outcome mean, with a paired CI."""

    metric: str
    control: str
    treatment: str
    control_mean: float
    treatment_mean: float
    estimate: float
    low: float
    high: float
    relative: float
    n_users: int
    confidence: float

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass
class ABResult:
    """Per-user outcomes for each arm (same users, same order) and daily active fractions."""

    outcomes: dict[str, pl.DataFrame]
    daily_active: dict[str, np.ndarray]
    horizon_days: int
    confidence: float
    # with record=True: per arm, what happened (impressions and plays), days counted from the
    # start of the test and times in seconds since then — enough to label the arm's own logs
    impressions: dict[str, pl.DataFrame] | None = None
    plays: dict[str, pl.DataFrame] | None = None
    start_day: int = 0  # the day of the world the test started on (the end of its log)

    def lift(self, control: str, treatment: str, metric: str = "active_days") -> Lift:
        a = self.outcomes[control][metric].to_numpy().astype(np.float64)
        b = self.outcomes[treatment][metric].to_numpy().astype(np.float64)
        diff = b - a
        n = len(diff)
        z = stats.norm.ppf(0.5 + self.confidence / 2)
        se = diff.std(ddof=1) / np.sqrt(n) if n > 1 else float("inf")
        est = float(diff.mean())
        return Lift(
            metric=metric,
            control=control,
            treatment=treatment,
            control_mean=float(a.mean()),
            treatment_mean=float(b.mean()),
            estimate=est,
            low=est - z * se,
            high=est + z * se,
            relative=est / a.mean() if a.mean() else float("nan"),
            n_users=n,
            confidence=self.confidence,
        )

    def summary(self) -> pl.DataFrame:
        """One row per (arm, outcome): mean and its confidence interval."""
        z = stats.norm.ppf(0.5 + self.confidence / 2)
        rows = []
        for arm, df in self.outcomes.items():
            for m in OUTCOMES:
                x = df[m].to_numpy().astype(np.float64)
                se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
                rows.append(
                    {
                        "arm": arm,
                        "metric": m,
                        "mean": x.mean(),
                        "low": x.mean() - z * se,
                        "high": x.mean() + z * se,
                    }
                )
        return pl.DataFrame(rows)


def run_ab(
    world: World,
    policies: Mapping[str, Policy],
    horizon_days: int,
    seed: int,
    start_day: int,
    n_users: int = 0,
    confidence: float = 0.95,
    progress: bool = True,
    record: bool = False,
) -> ABResult:
    """Run each policy for ``horizon_days`` on its own clone of ``world``.

    ``start_day`` is the day index time resumes from (the end of the log); ``n_users`` > 0
    samples that many live listeners (the rest sit out), 0 keeps every live listener.
    Policies with a ``bind(world)`` method (oracles) are bound to their arm's world.
    """
    users = _participants(world, start_day, n_users, seed)
    habit_formed = world.params.dynamics.habit_formed
    outcomes: dict[str, pl.DataFrame] = {}
    daily: dict[str, np.ndarray] = {}
    impressions: dict[str, pl.DataFrame] = {}
    plays: dict[str, pl.DataFrame] = {}
    bar = tqdm(total=len(policies) * horizon_days, desc="A/B", unit="day", disable=not progress)
    for arm, policy in policies.items():
        w = world.clone()
        w.seed = seed
        sitting_out = np.ones(w.population.n_users, bool)
        sitting_out[users] = False
        w.state.churned |= sitting_out
        if hasattr(policy, "bind"):
            policy.bind(w)
        U, A = w.population.n_users, w.catalogue.n_artists
        had_habit = w.state.habit >= habit_formed
        played = np.zeros((U, A), bool)
        totals = {
            m: np.zeros(U, np.int64)
            for m in ("active_days", "streams", "rec_streams", "skips", "saves", "impressions")
        }
        last_week = np.zeros(U, bool)
        daily[arm] = np.zeros(horizon_days)
        log_imp, log_play = [], []
        for d in range(horizon_days):
            ev = w.step(start_day + d, policy)
            if record:
                log_imp.append(_impressions(ev, w, start_day))
                log_play.append(_plays(ev, w, start_day))
            totals["active_days"] += ev.active
            totals["streams"] += ev.n_streams
            totals["rec_streams"] += np.bincount(ev.imp_user, weights=ev.imp_streamed, minlength=U).astype(
                np.int64
            )
            totals["skips"] += ev.n_skips
            totals["saves"] += ev.n_saves
            totals["impressions"] += np.bincount(ev.imp_user, minlength=U)
            played[ev.play_user, w.catalogue.track_artist[ev.play_track]] = True
            if d >= horizon_days - 7:
                last_week |= ev.active
            daily[arm][d] = ev.active[users].mean()
            bar.update(1)
        if record:
            impressions[arm], plays[arm] = pl.concat(log_imp), pl.concat(log_play)
        formed = ((w.state.habit >= habit_formed) & ~had_habit).sum(axis=1)
        outcomes[arm] = pl.DataFrame(
            {
                "user_id": users,
                **{m: v[users] for m, v in totals.items()},
                "retained": (last_week & ~w.state.churned)[users].astype(np.int64),
                "habits_formed": formed[users],
                "distinct_artists": played.sum(axis=1)[users],
            }
        )
    bar.close()
    return ABResult(
        outcomes=outcomes,
        daily_active=daily,
        horizon_days=horizon_days,
        confidence=confidence,
        impressions=impressions if record else None,
        plays=plays if record else None,
        start_day=start_day,
    )


def _impressions(ev, world: World, start_day: int) -> pl.DataFrame:
    k = world.params.slate_size
    offset = start_day * 86_400
    return pl.DataFrame(
        {
            "user_id": ev.imp_user,
            "session": ev.day * 100_000_000 + ev.imp_session,
            "position": ev.imp_position,
            "seconds": ev.imp_ts - offset,
            "track_id": ev.imp_track,
            "artist_id": world.catalogue.track_artist[ev.imp_track],
            "streamed": ev.imp_streamed,
            "skipped": ev.imp_skipped,
            "saved": ev.imp_saved,
            "ms_played": ev.imp_ms,
            "propensity": ev.imp_propensity,
        }
    ).with_columns(slate_size=pl.lit(k), policy_id=pl.lit(ev.policy_id, pl.Int64))


def _plays(ev, world: World, start_day: int) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": ev.play_user,
            "seconds": ev.play_ts - start_day * 86_400,
            "track_id": ev.play_track,
            "artist_id": world.catalogue.track_artist[ev.play_track],
            "ms_played": ev.play_ms,
            "source": ev.play_source,
        }
    )


def _participants(world: World, start_day: int, n_users: int, seed: int) -> np.ndarray:
    live = np.flatnonzero(world.live(start_day))
    if n_users and n_users < len(live):
        live = np.sort(stream(seed, 0, "ab_participants").choice(live, size=n_users, replace=False))
    return live
