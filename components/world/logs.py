"""Turn the world's days into the raw-log contract: four parquet tables, streamed by day.

Impressions and plays are written one row group per day, so memory stays flat however
many days are simulated; ids are assigned here (event ids and session ids are global).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from components import contract
from components.world.catalogue import AGE_BUCKETS, COUNTRIES, Catalogue, Population
from components.world.dynamics import SECONDS_PER_DAY, DayEvents

_SOURCES = pa.array(list(contract.PLAY_SOURCES))  # index = SOURCE_REC / ORGANIC / SEARCH


def day_start(start_date, day: int) -> datetime:
    """UTC midnight of logged day ``day`` (0 = ``start_date``)."""
    base = datetime(start_date.year, start_date.month, start_date.day, tzinfo=timezone.utc)
    return base + timedelta(days=day)


class RawLogWriter:
    """Append days of events to ``impressions.parquet`` and ``plays.parquet``."""

    def __init__(self, raw_dir: Path, start_date, catalogue: Catalogue):
        self.raw_dir = Path(raw_dir)
        self.t0_us = int(day_start(start_date, 0).timestamp()) * 1_000_000
        self.track_artist = catalogue.track_artist
        self.next_event = 0
        self.next_session = 0
        self.counts = {"impressions": 0, "plays": 0}
        self._imp = pq.ParquetWriter(
            contract.IMPRESSIONS.file(raw_dir), contract.IMPRESSIONS.schema, compression="zstd"
        )
        self._plays = pq.ParquetWriter(
            contract.PLAYS.file(raw_dir), contract.PLAYS.schema, compression="zstd"
        )

    def _ts(self, seconds: np.ndarray) -> pa.Array:
        us = self.t0_us + np.round(seconds * 1e6).astype(np.int64)
        return pa.array(us, type=pa.int64()).cast(contract.UTC_TS)

    def write_day(self, ev: DayEvents) -> None:
        n = ev.n_impressions
        imp = pa.table(
            {
                "event_id": np.arange(self.next_event, self.next_event + n, dtype=np.int64),
                "user_id": ev.imp_user.astype(np.int64),
                "ts": self._ts(ev.imp_ts),
                "session_id": self.next_session + ev.imp_session.astype(np.int64),
                "position": ev.imp_position.astype(np.int64),
                "track_id": ev.imp_track,
                "artist_id": self.track_artist[ev.imp_track],
                "policy_id": np.full(n, ev.policy_id, np.int64) if ev.imp_policy is None else ev.imp_policy,
                "propensity": ev.imp_propensity,
                "streamed": ev.imp_streamed,
                "ms_played": ev.imp_ms,
                "skipped": ev.imp_skipped,
                "saved": ev.imp_saved,
            },
            schema=contract.IMPRESSIONS.schema,
        )
        plays = pa.table(
            {
                "user_id": ev.play_user.astype(np.int64),
                "ts": self._ts(ev.play_ts),
                "track_id": ev.play_track,
                "artist_id": self.track_artist[ev.play_track],
                "ms_played": ev.play_ms,
                "source": _SOURCES.take(pa.array(ev.play_source, type=pa.int8())),
            },
            schema=contract.PLAYS.schema,
        )
        self._imp.write_table(imp)
        self._plays.write_table(plays)
        self.next_event += n
        self.next_session += int(ev.imp_session.max()) + 1 if n else 0
        self.counts["impressions"] += n
        self.counts["plays"] += len(ev.play_user)

    def close(self) -> dict[str, int]:
        self._imp.close()
        self._plays.close()
        return dict(self.counts)


def users_table(pop: Population, start_date) -> pa.Table:
    t0 = int(day_start(start_date, 0).timestamp())
    signup_us = (t0 + pop.signup_day * SECONDS_PER_DAY) * 1_000_000
    return pa.table(
        {
            "user_id": np.arange(pop.n_users, dtype=np.int64),
            "signup_ts": pa.array(signup_us, pa.int64()).cast(contract.UTC_TS),
            "country": pa.array(COUNTRIES).take(pa.array(pop.country)),
            "age_bucket": pa.array(AGE_BUCKETS).take(pa.array(pop.age_bucket)),
        },
        schema=contract.USERS.schema,
    )


def tracks_table(cat: Catalogue, start_date) -> pa.Table:
    t0 = int(day_start(start_date, 0).timestamp())
    release_us = (t0 + cat.release_day * SECONDS_PER_DAY) * 1_000_000
    return pa.table(
        {
            "track_id": np.arange(cat.n_tracks, dtype=np.int64),
            "artist_id": cat.track_artist,
            "genre_id": cat.track_genre,
            "duration_ms": cat.duration_ms,
            "release_ts": pa.array(release_us, pa.int64()).cast(contract.UTC_TS),
        },
        schema=contract.TRACKS.schema,
    )
