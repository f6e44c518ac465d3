"""Stage ``signals``: which short-term signal is worth optimising? The scorecard and the learned composite.

1. Label the experiment library's impressions exactly as the label stage labels the logs
   (each arm with its listeners' own history before the experiment, censored at its end).
2. Per arm: the per-slot mean of every candidate signal over the first ``signal_days``,
   the shape of its slates (the guardrail metrics), and its listeners' long-term outcomes
   (active days and retention over the experiment, CUPED-adjusted by the same span before).
3. Per signal, across arms (effects vs control): policy-level validity, sensitivity, lag,
   coverage (:mod:`components.reward.validity`).
4. The learned composite: non-negative weights predicting the arms' 28-day active-days effects,
   its leave-one-out error beside the fixed composite's and every single signal's.
Writes ``weights.json`` (what the pipeline optimises from here on), the scorecard, the arm
table and the library's labels (the reward model also learns from them).
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import polars as pl
from tqdm.auto import tqdm

from components import contract
from components.errors import EncoreError
from components.io import atomic_dir, atomic_file
from components.library import LIBRARY_LABELS, Library
from components.logs import window
from components.params import LabelParams, Params
from components.policy.metrics import COVERAGE_SLATES, slate_shape
from components.registry.gate import SLATE_GUARDRAILS
from components.reward.candidates import CANDIDATES, FIXED_COMPOSITE, SCOPES
from components.reward.composite import WEIGHTS_FILE, composite, composite_lag, fixed_weights
from components.reward.labels import (
    IMPRESSION_COLUMNS,
    LABELS_FILE,
    PLAY_COLUMNS,
    SURROGATE_FILE,
    TRACK_COLUMNS,
    horizons,
    label_logs,
    with_surrogate,
)
from components.reward.validity import (
    learn_composite,
    rmse,
    single_signal_loo,
    single_signal_loo_predictions,
    squared_error_gap,
    users_needed,
    validity,
)

ARMS_FILE, SCORECARD_FILE = "arms.parquet", "scorecard.json"
OUTCOMES = ("active_days", "retained")
# slate guardrails, oriented: +1 when the gate wants more of it, -1 when less
GUARDRAILS = {name: 1 if kind == "min" else -1 for name, (_, kind, _) in SLATE_GUARDRAILS.items()}
FIXED = FIXED_COMPOSITE
LATER_SAMPLE = (
    10  # one in this many library impressions after the first week is labelled (reward-model examples)
)


def run(
    params: Params,
    raw_dir: Path,
    labels_dir: Path,
    experiments_dir: Path,
    out_dir: Path,
    report_path: Path,
    progress: bool = True,
) -> dict[str, float]:
    sp, lp = params.signals, params.label
    library = Library.read(experiments_dir)
    fixed = fixed_weights(lp.composite.fixed, lp)
    coverage = _coverage(Path(labels_dir))
    labels = label_library(library, Path(raw_dir), Path(labels_dir), params, progress)
    week = first_week(library, labels, sp.signal_days, fixed)
    arms = arm_table(library, week, signal_days=sp.signal_days, raw_dir=Path(raw_dir), seed=sp.seed)
    treated = arms.filter(~pl.col("is_control")) if arms.height else arms  # no library: no arms
    card = scorecard(arms, treated, coverage, per_user_sd(week, arms), sp, lp, fixed) | {
        "signal_days": sp.signal_days
    }
    weights = choose_weights(treated, fixed, lp.composite.mode, sp)
    with atomic_dir(out_dir) as tmp:
        (tmp / WEIGHTS_FILE).write_text(json.dumps(weights, indent=2, default=float) + "\n")
        (tmp / SCORECARD_FILE).write_text(json.dumps(card, indent=2, default=float) + "\n")
        arms.write_parquet(tmp / ARMS_FILE)
        labels.write_parquet(tmp / LIBRARY_LABELS, compression="zstd")
    from components.signals.report import render_html, render_markdown

    for path, text in (
        (Path(report_path), render_html(card, weights, arms)),
        (Path(report_path).with_suffix(".md"), render_markdown(card, weights)),
    ):
        with atomic_file(path) as tmp_file:
            tmp_file.write_text(text)
    return flat_metrics(card, weights, arms)


# --------------------------------------------------------------------------- labels


def label_library(
    library: Library, raw_dir: Path, labels_dir: Path, params: Params, progress: bool
) -> pl.DataFrame:
    """Every candidate signal for the library's impressions, arm by arm (in the simulated library
    the same listener is in every arm: their histories must not mix).

    Kept: every impression of the first ``signals.signal_days`` (the scorecard) and one in
    ``LATER_SAMPLE`` of the later ones (enough for the reward model to learn from: the surrogate
    index is the costly label, so it is not computed for the rest)."""
    if library.empty:
        return pl.DataFrame()
    sp = params.signals
    log_start, _ = window(raw_dir)
    surrogate = joblib.load(labels_dir / SURROGATE_FILE)
    tracks = pl.from_arrow(contract.read(raw_dir, "tracks", TRACK_COLUMNS))
    participants = library.users["user_id"].unique().implode()
    raw_imp = pl.from_arrow(contract.read(raw_dir, "impressions", IMPRESSION_COLUMNS)).filter(
        pl.col("user_id").is_in(participants)
    )
    raw_plays = pl.from_arrow(contract.read(raw_dir, "plays", PLAY_COLUMNS)).filter(
        pl.col("user_id").is_in(participants)
    )
    out = []
    arms = library.experiments.sort("experiment_id", "policy_id").iter_rows(named=True)
    for arm in tqdm(list(arms), desc="label the library", unit="arm", disable=not progress):
        users = library.users.filter(
            (pl.col("experiment_id") == arm["experiment_id"]) & (pl.col("policy_id") == arm["policy_id"])
        )["user_id"].implode()
        mine = library.impressions.filter(pl.col("policy_id") == arm["policy_id"]).filter(
            pl.col("user_id").is_in(users) & pl.col("ts").is_between(arm["start"], arm["end"], closed="left")
        )
        before = (pl.col("ts") < arm["start"]) & pl.col("user_id").is_in(users)
        imp = pl.concat([raw_imp.filter(before), mine.select(IMPRESSION_COLUMNS)])
        arm_plays = library.plays.filter(pl.col("policy_id") == arm["policy_id"]).select(PLAY_COLUMNS)
        plays = pl.concat([raw_plays.filter(before), arm_plays])
        n_days = int(np.ceil((arm["end"] - log_start).total_seconds() / 86_400))
        first_week = pl.col("ts") < pl.lit(arm["start"]) + pl.duration(days=sp.signal_days)
        keep = mine.filter(first_week | (pl.col("event_id").hash(sp.seed) % LATER_SAMPLE == 0))
        frame = label_logs(imp, plays, tracks, log_start, n_days, params.label)
        frame = frame.join(keep.select("event_id", "policy_id", "ts"), on="event_id")
        out.append(
            with_surrogate(frame, surrogate).with_columns(
                experiment_id=pl.lit(arm["experiment_id"], pl.Int64)
            )
        )
    return pl.concat(out)


def _coverage(labels_dir: Path) -> dict[str, float]:
    """Share of the logged impressions on which each candidate is observed (not censored)."""
    cols = [c.column for c in CANDIDATES]
    frame = pl.read_parquet(labels_dir / LABELS_FILE, columns=cols)
    return {c.name: 1.0 - frame[c.column].null_count() / max(frame.height, 1) for c in CANDIDATES}


# --------------------------------------------------------------------------- arms


def first_week(
    library: Library, labels: pl.DataFrame, signal_days: int, fixed: dict[str, float]
) -> pl.DataFrame:
    """Labelled library impressions of each experiment's first ``signal_days``, with the fixed composite."""
    if library.empty:
        return pl.DataFrame()
    starts = library.experiments.select("experiment_id", "policy_id", "start")
    return (
        labels.join(starts, on=["experiment_id", "policy_id"])
        .filter(pl.col("ts") < pl.col("start") + pl.duration(days=signal_days))
        .with_columns(composite(fixed).alias(FIXED))
    )


def arm_table(
    library: Library, week: pl.DataFrame, signal_days: int, raw_dir: Path, seed: int
) -> pl.DataFrame:
    """One row per arm: first-week per-slot means of every candidate (and the fixed composite),
    slate shape, outcomes (CUPED-adjusted) and their effects vs the experiment's control."""
    if library.empty:
        return pl.DataFrame()
    exp = library.experiments.select("experiment_id", "policy_id", "name", "control_policy_id", "start")
    means = week.group_by("experiment_id", "policy_id").agg(
        *[pl.col(c.column).cast(pl.Float64).mean().alias(c.name) for c in CANDIDATES],
        pl.col(FIXED).mean(),
        pl.col("skipped").cast(pl.Float64).mean().alias("skip_rate"),
        slates=pl.col("session_id").n_unique(),
    )
    shapes = _slate_shapes(library, signal_days, raw_dir, seed)
    outcomes = _cuped(library.users)
    arms = (
        exp.join(means, on=["experiment_id", "policy_id"])
        .join(shapes, on=["experiment_id", "policy_id"])
        .join(outcomes, on=["experiment_id", "policy_id"])
        .with_columns(is_control=pl.col("policy_id") == pl.col("control_policy_id"))
    )
    metrics = [c.name for c in CANDIDATES] + [FIXED, *GUARDRAILS, *(f"{o}_adj" for o in OUTCOMES), *OUTCOMES]
    control = arms.filter("is_control").select(
        "experiment_id", *[pl.col(m).alias(f"{m}__control") for m in metrics]
    )
    arms = (
        arms.join(control, on="experiment_id")
        .with_columns(*[(pl.col(m) - pl.col(f"{m}__control")).alias(f"d_{m}") for m in metrics])
        .drop([f"{m}__control" for m in metrics])
    )
    return arms.with_columns(_paired_se(library.users, arms)).sort("experiment_id", "policy_id")


def _slate_shapes(library: Library, signal_days: int, raw_dir: Path, seed: int) -> pl.DataFrame:
    tracks = pl.from_arrow(contract.read(raw_dir, "tracks", ["track_id", "artist_id", "genre_id"]))
    rows = []
    for arm in library.experiments.iter_rows(named=True):
        imp = library.impressions.filter(
            (pl.col("policy_id") == arm["policy_id"])
            & pl.col("ts").is_between(
                arm["start"], arm["start"] + pl.duration(days=signal_days), closed="left"
            )
        )
        sessions = imp["session_id"].unique().sort()
        sessions = sessions.sample(min(len(sessions), COVERAGE_SLATES), seed=seed)
        slates = _as_slates(imp.filter(pl.col("session_id").is_in(sessions.implode())))
        rows.append(
            {
                "experiment_id": arm["experiment_id"],
                "policy_id": arm["policy_id"],
                **slate_shape(slates, tracks),
            }
        )
    return pl.DataFrame(rows)


def _as_slates(imp: pl.DataFrame) -> np.ndarray:
    """(slates, k) track ids, one row per session, in position order (-1 pads short slates)."""
    if imp.height == 0:
        return np.zeros((0, 1), np.int64)
    lists = (
        imp.sort("session_id", "position")
        .group_by("session_id", maintain_order=True)
        .agg("track_id")["track_id"]
    )
    k = int(lists.list.len().max())
    return np.array([row + [-1] * (k - len(row)) for row in lists.to_list()], dtype=np.int64)


def _cuped(users: pl.DataFrame) -> pl.DataFrame:
    """Per arm: mean outcomes, raw and adjusted by the listeners' activity before the experiment
    (CUPED, slope pooled within the experiment). With the same listeners in every arm the
    adjustment cancels in the effects; with disjoint arms it removes who-got-which noise."""
    stats = users.with_columns(
        pl.col("retained").cast(pl.Float64),
        pl.col("active_days").cast(pl.Float64),
        pl.col("pre_active_days").cast(pl.Float64),
    )
    adj = []
    for o in OUTCOMES:
        x, y = pl.col("pre_active_days"), pl.col(o)
        theta = (
            ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum().clip(1e-12, None)
        ).over("experiment_id")
        adj.append((y - theta * (x - x.mean().over("experiment_id"))).alias(f"{o}_adj"))
    return (
        stats.with_columns(adj)
        .group_by("experiment_id", "policy_id")
        .agg(
            users=pl.len(),
            **{o: pl.col(o).mean() for o in OUTCOMES},
            **{f"{o}_adj": pl.col(f"{o}_adj").mean() for o in OUTCOMES},
            active_days_sd=pl.col("active_days").std(),
        )
    )


def _paired_se(users: pl.DataFrame, arms: pl.DataFrame) -> pl.Series:
    """Standard error of each arm's active-days effect: paired when the arm has exactly the
    control's listeners (the simulated library), two independent samples otherwise."""
    ses = {}
    for exp_id in arms["experiment_id"].unique().to_list():
        ctrl_id = arms.filter((pl.col("experiment_id") == exp_id) & pl.col("is_control"))["policy_id"][0]
        ctrl = users.filter((pl.col("experiment_id") == exp_id) & (pl.col("policy_id") == ctrl_id)).sort(
            "user_id"
        )
        for pid in arms.filter(pl.col("experiment_id") == exp_id)["policy_id"].to_list():
            arm = users.filter((pl.col("experiment_id") == exp_id) & (pl.col("policy_id") == pid)).sort(
                "user_id"
            )
            a, c = (
                arm["active_days"].cast(pl.Float64).to_numpy(),
                ctrl["active_days"].cast(pl.Float64).to_numpy(),
            )
            if arm["user_id"].equals(ctrl["user_id"]):
                se = float(np.std(a - c, ddof=1) / np.sqrt(len(a))) if len(a) > 1 else float("nan")
            else:
                se = float(np.sqrt(np.var(a, ddof=1) / len(a) + np.var(c, ddof=1) / len(c)))
            ses[(exp_id, pid)] = se
    return pl.Series(
        "d_active_days_se", [ses[(e, p)] for e, p in zip(arms["experiment_id"], arms["policy_id"])]
    )


# --------------------------------------------------------------------------- scorecard and composite


def scorecard(
    arms: pl.DataFrame,
    treated: pl.DataFrame,
    coverage: dict[str, float],
    sd: dict[str, float],
    sp,
    lp: LabelParams,
    fixed: dict[str, float],
) -> dict:
    """Per candidate (+ the fixed composite) and per guardrail: validity, sensitivity, lag, coverage."""
    if treated.height < sp.min_arms:
        return {
            "arms": treated.height,
            "signals": {},
            "guardrails": {},
            "note": f"{treated.height} treatment arm(s) in the library; validity needs {sp.min_arms}.",
        }
    rows = {}
    h = horizons(lp)
    for c in [*CANDIDATES, None]:
        name, orient, lag = (c.name, c.orientation, c.lag(h)) if c else (FIXED, 1, composite_lag(fixed, lp))
        effect = treated[f"d_{name}"].to_numpy()
        row = {
            "orientation": orient,
            "lag_days": lag,
            "coverage": coverage.get(name, float("nan")),
            "meaning": c.meaning if c else "the hand-set composite (label.composite.fixed)",
            "scope": c.scope if c else "mixed",
        }
        for o in OUTCOMES:
            row |= {
                f"{o}/{k}": v for k, v in validity(effect, treated[f"d_{o}_adj"].to_numpy(), orient).items()
            }
        row["median_effect"] = float(np.median(np.abs(effect)))
        rows[name] = row
    for name, row in rows.items():
        row["users_needed"] = users_needed(
            row["median_effect"], sd.get(name, float("nan")), sp.power, sp.confidence
        )
    guard = {}
    for g, orient in GUARDRAILS.items():
        guard[g] = {
            "orientation": orient,
            **validity(treated[f"d_{g}"].to_numpy(), treated["d_active_days_adj"].to_numpy(), orient),
        }
    return {
        "arms": treated.height,
        "signals": rows,
        "guardrails": guard,
        "outcome_spread": float(arms["active_days"].max() - arms["active_days"].min()),
    }


def per_user_sd(week: pl.DataFrame, arms: pl.DataFrame) -> dict[str, float]:
    """Per signal, the SD across the control arms' listeners of their own first-week per-slot mean:
    the noise an A/B test on that signal has to beat."""
    if week.height == 0:
        return {}
    control = arms.filter("is_control").select("experiment_id", "policy_id")
    per_user = (
        week.join(control, on=["experiment_id", "policy_id"])
        .group_by("experiment_id", "user_id")
        .agg(
            *[pl.col(c.column).cast(pl.Float64).mean().alias(c.name) for c in CANDIDATES],
            pl.col(FIXED).mean(),
        )
    )
    return {
        name: float(per_user[name].std() or float("nan")) for name in [*(c.name for c in CANDIDATES), FIXED]
    }


def choose_weights(treated: pl.DataFrame, fixed: dict[str, float], mode: str, sp) -> dict:
    """The composite the pipeline optimises: learned from the library (``mode: learned``, when it
    has enough arms and predicts better than 'no effect'), else the fixed weights."""
    out: dict = {"mode": mode, "fixed": {"columns": fixed}}
    if treated.height < sp.min_arms:
        out["active"] = {
            "source": "fixed",
            "columns": fixed,
            "days_per_unit": float("nan"),
            "loo_rmse": float("nan"),
            "why": f"only {treated.height} treatment arm(s): nothing to learn from or to calibrate on"
            + (
                " (no experiment library: with source.kind logs, bring an experiments table)"
                if treated.height == 0
                else ""
            ),
        }
        return out
    y = treated["d_active_days_adj"].to_numpy()
    groups = (
        treated["experiment_id"].to_numpy() if treated["experiment_id"].n_unique() > 1 else np.arange(len(y))
    )
    # a signal unobserved in some arm's first week (e.g. it needs more history) cannot be weighted;
    # nor can one wider than signals.composite_scope (the reward model could not learn it per slot)
    allowed = SCOPES[: SCOPES.index(sp.composite_scope) + 1]
    observed = [
        c for c in CANDIDATES if np.isfinite(treated[f"d_{c.name}"].cast(pl.Float64).to_numpy()).all()
    ]
    usable = [c for c in observed if c.scope in allowed]
    if not usable:
        raise EncoreError(
            f"signals.composite_scope={sp.composite_scope}: no candidate signal of that scope is "
            "observed in every arm of the experiment library; widen the scope or label.composite.mode: fixed"
        )
    x = np.column_stack([c.orientation * treated[f"d_{c.name}"].to_numpy() for c in usable])
    learned = learn_composite(x, y, groups, sp.min_gain_se)
    columns = {c.column: 0.0 for c in CANDIDATES}
    columns |= {c.column: float(c.orientation * w) for c, w in zip(usable, learned.weights)}
    fx = treated[f"d_{FIXED}"].to_numpy()
    scale = float(np.dot(fx, y) / max(np.dot(fx, fx), 1e-12))
    loo = {
        "learned": learned.loo_rmse,
        "fixed": single_signal_loo(fx, y, groups),
        "no_effect": float(np.sqrt(np.mean(y**2))),
    }
    # every observed signal's own leave-one-out error is reported (the scorecard), out of scope or not
    single = {
        c.name: single_signal_loo_predictions(c.orientation * treated[f"d_{c.name}"].to_numpy(), y, groups)
        for c in observed
    }
    loo |= {name: rmse(pred, y) for name, pred in single.items()}
    best = min((c.name for c in usable), key=loo.__getitem__)
    gap, gap_se = squared_error_gap(learned.loo_pred, single[best], y)
    out |= {
        "learned": {
            "columns": columns,
            "signals": [usable[i].name for i in learned.chosen],
            "loo_rmse": learned.loo_rmse,
            "scope": sp.composite_scope,
            "candidates": [c.name for c in usable],
        },
        # is the learned composite's edge over the best single signal more than noise?
        "vs_best_single": {"signal": best, "mse_gap": gap, "mse_gap_se": gap_se},
        "loo_rmse": loo,
        "outcome": "active days over the experiment (CUPED-adjusted effect vs control)",
        "arms": treated["name"].to_list(),
        "loo_predictions": learned.loo_pred.tolist(),
        "outcomes": y.tolist(),
    }
    informative = any(w > 0 for w in learned.weights) and learned.loo_rmse < loo["no_effect"]
    if mode == "learned" and informative:
        out["active"] = {
            "source": "learned",
            "columns": columns,
            "days_per_unit": 1.0,
            "loo_rmse": learned.loo_rmse,
        }
    else:
        why = (
            "label.composite.mode is fixed"
            if mode == "fixed"
            else "the learned composite predicts no better than 'no effect'"
        )
        out["active"] = {
            "source": "fixed",
            "columns": fixed,
            "days_per_unit": max(scale, 0.0),
            "loo_rmse": loo["fixed"],
            "why": why,
        }
    return out


def flat_metrics(card: dict, weights: dict, arms: pl.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {
        "signals/arms": card.get("arms", 0),
        "signals/learned_active": float(weights["active"]["source"] == "learned"),
    }
    for name, row in card.get("signals", {}).items():
        for key in (
            "active_days/pearson",
            "active_days/spearman",
            "active_days/sign_agreement",
            "active_days/pearson_loo_low",
            "active_days/pearson_loo_high",
            "retained/pearson",
            "users_needed",
            "lag_days",
            "coverage",
        ):
            out[f"signals/{name}/{key}"] = row[key]
    for name, row in card.get("guardrails", {}).items():
        out[f"signals/guardrail/{name}/pearson"] = row["pearson"]
    for name, err in weights.get("loo_rmse", {}).items():
        out[f"signals/loo_rmse/{name}"] = err
    for col, w in weights["active"]["columns"].items():
        out[f"signals/weight/{col}"] = w
    if "outcome_spread" in card:
        out["signals/outcome_spread"] = card["outcome_spread"]
    return out
