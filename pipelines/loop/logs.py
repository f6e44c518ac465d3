"""Continue the raw logs: run the world more days under a policy and append them, contract intact.

A round's raw folder is the previous round's logs plus the new days, a complete raw-log folder
(the four tables and the manifest), so the same feature, label and reward-model code reads it as it
reads the simulate stage's output. Event and session ids continue where the previous logs stop.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from components import contract
from components.errors import ContractError
from components.io import write_json
from components.protocol import Policy
from components.world.dynamics import World
from components.world.logs import RawLogWriter


def continue_logs(
    world: World,
    first_day: int,
    days: int,
    policy: Policy,
    prev_raw: Path,
    out_raw: Path,
    progress: bool = True,
) -> dict[str, int]:
    """Step ``world`` through ``first_day .. first_day + days - 1`` under ``policy``; write
    ``prev_raw``'s logs + the new days into ``out_raw`` (an existing, empty folder). Returns the
    new days' row counts."""
    from tqdm.auto import tqdm

    prev_raw, out_raw = Path(prev_raw), Path(out_raw)
    manifest = contract.read_manifest(prev_raw)
    if int(manifest["days"]) != first_day:
        raise ContractError(
            f"{prev_raw}/{contract.MANIFEST}: the logs hold {manifest['days']} days, but the world "
            f"resumes at day {first_day}: the world and the logs come from different runs"
        )
    last_ids = pl.scan_parquet(contract.IMPRESSIONS.file(prev_raw)).select(
        pl.col("event_id").max(), pl.col("session_id").max()
    )
    last_event, last_session = last_ids.collect().row(0)
    new_days = out_raw / "_new_days"
    new_days.mkdir()
    start_date = world.params.start_date
    writer = RawLogWriter(new_days, start_date, world.catalogue)
    writer.next_event, writer.next_session = int(last_event) + 1, int(last_session) + 1
    try:
        for day in tqdm(
            range(first_day, first_day + days), desc="loop: serve", unit="day", disable=not progress
        ):
            writer.write_day(world.step(day, policy))
    finally:
        counts = writer.close()
    for table in (contract.IMPRESSIONS, contract.PLAYS):
        pl.scan_parquet([table.file(prev_raw), table.file(new_days)]).sink_parquet(
            table.file(out_raw), compression="zstd"
        )
    for table in (contract.USERS, contract.TRACKS):
        shutil.copy2(table.file(prev_raw), table.file(out_raw))
    shutil.rmtree(new_days)
    rows = dict(manifest["rows"])
    rows["impressions"] = int(rows["impressions"]) + counts["impressions"]
    rows["plays"] = int(rows["plays"]) + counts["plays"]
    window_end = datetime.fromisoformat(manifest["window_end"]) + timedelta(days=days)
    write_json(
        out_raw / contract.MANIFEST,
        manifest | {"days": first_day + days, "window_end": window_end.isoformat(), "rows": rows},
    )
    return counts
