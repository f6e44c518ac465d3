"""Served parts + feedback -> raw-log contract tables: ``python -m components.serve.export``.

The service logs what it knows when it serves; the contract wants finished rows (no nulls,
unique ids, an artist per track). This join makes them:

- **impressions**: every served row, outcomes from its latest feedback event for
  ``(request_id, position)``; a slot without feedback was not played (``streamed`` false,
  ``ms_played`` 0, ``skipped`` false, ``saved`` false). ``session_id`` numbers the slates
  (ordered by time, then request id) and ``event_id`` the rows, from 0 within one export;
  ``artist_id`` comes from the catalogue's ``tracks``.
- **plays**: one ``rec`` play per streamed feedback (>= 30 s), starting at the feedback's
  time minus ``ms_played`` (never before the slate was shown).
- **users**, **tracks**: copied from ``--catalogue-dir`` (a raw-log folder: the logs the policy
  was trained on, or the warehouse's current dimension tables). Impressions of listeners it
  does not know (new sign-ups served as cold starts) are dropped and counted: the contract
  needs their signup time and country.
- **experiments** (when it is well defined): one row per policy_id, the experiment's arm 0 as
  control, [first slate, window end) as its period — only if every arm served one registered
  version (an alias moved mid-test makes listeners of one arm carry two policy_ids).
- ``manifest.json``: the window (whole UTC days around the events), row counts and what
  was dropped. The folder is what ``source.kind: logs`` ingests and ``validate`` checks.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds

from components import contract
from components.errors import ContractError
from components.io import atomic_dir
from components.serve.core import parse_policy_id

OUTCOME_DEFAULTS = {"streamed": False, "ms_played": 0, "skipped": False, "saved": False}


def read_parts(folder: Path) -> pl.DataFrame | None:
    """Every part under ``folder`` as one frame (None when there is none yet)."""
    if not Path(folder).is_dir():
        return None
    dataset = ds.dataset(folder, format="parquet")  # dot-named (unfinished) parts are skipped
    if not dataset.files:
        return None
    return pl.from_arrow(dataset.to_table())


def export(log_dir: Path, catalogue_dir: Path, out_dir: Path) -> dict[str, float]:
    """Write the contract tables of everything served under ``log_dir`` to ``out_dir``."""
    log_dir = Path(log_dir)
    served = read_parts(log_dir / "impressions")
    if served is None or served.is_empty():
        raise ContractError(f"{log_dir / 'impressions'}: no served impressions to export.")
    users = pl.from_arrow(contract.read(catalogue_dir, "users"))
    tracks = pl.from_arrow(contract.read(catalogue_dir, "tracks"))

    feedback = latest_feedback(read_parts(log_dir / "feedback"))
    known = served["user_id"].is_in(users["user_id"].implode())
    dropped_users = served.filter(~known)["user_id"].n_unique()
    rows = served.filter(known).drop(list(OUTCOME_DEFAULTS))
    rows = rows.join(feedback, on=["request_id", "position"], how="left").with_columns(
        pl.col(c).fill_null(v) for c, v in OUTCOME_DEFAULTS.items()
    )
    unmatched = feedback.join(served, on=["request_id", "position"], how="anti").height
    rows = rows.join(tracks.select("track_id", "artist_id"), on="track_id", how="left")
    if rows["artist_id"].null_count():
        missing = rows.filter(pl.col("artist_id").is_null())["track_id"].unique().to_list()
        raise ContractError(
            f"{catalogue_dir}: tracks lacks {len(missing)} served track(s), e.g. {missing[:5]}."
        )
    rows = numbered(rows)
    plays = rec_plays(rows)
    window = _window(rows, plays)
    experiments, note = experiment_arms(rows, window)

    tables = {"impressions": rows, "plays": plays, "users": users, "tracks": tracks}
    with atomic_dir(out_dir) as tmp:
        for name, frame in tables.items():
            table = contract.TABLES[name]
            arrow = contract.conform(table, frame.to_arrow(), tmp / f"{name}.parquet")
            frame = pl.from_arrow(arrow)
            frame.write_parquet(table.file(tmp), compression="zstd")
        if experiments is not None:
            arrow = contract.conform(contract.EXPERIMENTS, experiments.to_arrow(), tmp)
            pl.from_arrow(arrow).write_parquet(contract.EXPERIMENTS.file(tmp), compression="zstd")
        manifest = {
            "source": "serve",
            "log_dir": str(log_dir),
            "catalogue_dir": str(catalogue_dir),
            "window_start": window[0].isoformat(),
            "window_end": window[1].isoformat(),
            "rows": {name: frame.height for name, frame in tables.items()}
            | ({"experiments": experiments.height} if experiments is not None else {}),
            "dropped_unknown_users": dropped_users,
            "feedback_unmatched": unmatched,
            "experiments_note": note,
        }
        (tmp / contract.MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {
        "export/impressions": rows.height,
        "export/slates": rows["session_id"].n_unique(),
        "export/plays": plays.height,
        "export/feedback": feedback.height,
        "export/feedback_unmatched": unmatched,
        "export/dropped_unknown_users": dropped_users,
    }


def latest_feedback(feedback: pl.DataFrame | None) -> pl.DataFrame:
    """The last event per ``(request_id, position)``, with its time as ``feedback_ts``."""
    columns = ["request_id", "position", "feedback_ts", *OUTCOME_DEFAULTS]
    if feedback is None or feedback.is_empty():
        return pl.DataFrame(
            schema={
                "request_id": pl.String,
                "position": pl.Int64,
                "feedback_ts": pl.Datetime("us", "UTC"),
                "streamed": pl.Boolean,
                "ms_played": pl.Int64,
                "skipped": pl.Boolean,
                "saved": pl.Boolean,
            }
        )
    return (
        feedback.rename({"ts": "feedback_ts"})
        .sort("feedback_ts")
        .unique(subset=["request_id", "position"], keep="last", maintain_order=True)
        .select(columns)
    )


def numbered(rows: pl.DataFrame) -> pl.DataFrame:
    """``session_id`` per slate (by time, then request id) and ``event_id`` per row, from 0."""
    rows = rows.sort("ts", "request_id", "position")
    slates = rows.select("request_id").unique(maintain_order=True).with_row_index("session_id")
    return (
        rows.join(slates, on="request_id", how="left")
        .with_row_index("event_id")
        .with_columns(pl.col("event_id", "session_id").cast(pl.Int64))
    )


def rec_plays(rows: pl.DataFrame) -> pl.DataFrame:
    """One ``rec`` play per streamed slot, started ``ms_played`` before its feedback arrived
    (never before the slate was shown)."""
    streamed = rows.filter(pl.col("streamed"))
    started = pl.col("feedback_ts") - pl.duration(milliseconds=pl.col("ms_played"))
    return streamed.select(
        "user_id",
        pl.max_horizontal(started, pl.col("ts")).alias("ts"),
        "track_id",
        "artist_id",
        "ms_played",
        pl.lit("rec").alias("source"),
    ).sort("ts", "user_id")


def _window(rows: pl.DataFrame, plays: pl.DataFrame) -> tuple[datetime, datetime]:
    """Whole UTC days from the first to the last event."""
    times = pl.concat([rows["ts"], plays["ts"]]) if plays.height else rows["ts"]
    first, last = times.min(), times.max()
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc)
    end = datetime(last.year, last.month, last.day, tzinfo=timezone.utc) + timedelta(days=1)
    return start, end


def experiment_arms(rows: pl.DataFrame, window: tuple[datetime, datetime]) -> tuple[pl.DataFrame | None, str]:
    """The experiments table of what was served, or None and why it is not well defined."""
    arms = rows.group_by("policy_id").agg(
        pl.col("arm").first(), pl.col("alias").first(), pl.col("ts").min().alias("start")
    )
    parsed = [parse_policy_id(p) for p in arms["policy_id"]]
    arms = arms.with_columns(
        experiment_id=pl.Series([e for e, _, _ in parsed]),
        arm_index=pl.Series([a for _, a, _ in parsed]),
        version=pl.Series([v for _, _, v in parsed]),
    )
    per_arm = arms.group_by("experiment_id", "arm_index").agg(pl.col("version").unique().sort())
    moved = per_arm.filter(pl.col("version").list.len() > 1)
    if moved.height:
        first = moved.row(0, named=True)
        return None, (
            f"not written: arm {first['arm_index']} of experiment {first['experiment_id']} served versions "
            f"{first['version']} (its alias moved): its listeners carry two policy_ids"
        )
    control = arms.filter(pl.col("arm_index") == 0).select(
        "experiment_id", pl.col("policy_id").alias("control")
    )
    missing = set(arms["experiment_id"]) - set(control["experiment_id"])
    if missing:
        return None, f"not written: experiment(s) {sorted(missing)} served no slate from arm 0 (the control)"
    table = arms.join(control, on="experiment_id").select(
        "experiment_id",
        "policy_id",
        pl.format("{}:{}@v{}", "arm", "alias", "version").alias("name"),
        pl.col("control").alias("control_policy_id"),
        pl.col("start").min().over("experiment_id").alias("start"),
        pl.lit(window[1]).cast(pl.Datetime("us", "UTC")).alias("end"),
    )
    return table.sort("experiment_id", "policy_id"), "written"


def main() -> None:
    import typer

    from components.cli import app as make_app
    from components.cli import user_errors

    cli = make_app(__doc__)

    @cli.command(help=__doc__)
    def run(
        log_dir: Path = typer.Option(
            Path("local_outputs/served"), "--log-dir", help="the service's --log-dir"
        ),
        catalogue_dir: Path = typer.Option(
            Path("data/raw"),
            "--catalogue-dir",
            help="raw-log folder whose users and tracks tables are copied",
        ),
        out_dir: Path = typer.Option(
            Path("local_outputs/served_logs"),
            "--out-dir",
            help="the contract folder to write (replaced atomically)",
        ),
    ) -> None:
        with user_errors("serve.export"):
            metrics = export(log_dir, catalogue_dir, out_dir)
            typer.echo(json.dumps(metrics, indent=2))

    cli()


if __name__ == "__main__":
    main()
