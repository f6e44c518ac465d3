"""The raw-log contract as written by simulate and by ingest; determinism; truth kept apart."""

from __future__ import annotations

import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components import contract
from components.errors import ContractError
from components.raw_logs.ingest import ingest
from components.raw_logs.simulate import simulate
from components.validate.core import run as validate
from components.world import NoGroundTruth, has_truth, load_world
from tests.conftest import tiny_params


def _tables(raw):
    return {name: pq.read_table(contract.TABLES[name].file(raw)) for name in contract.TABLES}


def test_simulated_logs_meet_the_contract(tiny_logs):
    raw, world = tiny_logs
    for name, table in _tables(raw).items():
        assert table.schema.equals(contract.TABLES[name].schema), name
        assert table.num_rows > 0, name
    manifest = contract.read_manifest(raw)
    assert manifest["source"] == "world" and manifest["rows"]["impressions"] > 0
    # the truth lives apart from the raw logs, and nowhere in them
    assert has_truth(world) and not any(raw.glob("*.npz"))


def test_same_seed_same_logs_other_seed_other_logs(tmp_path, tiny_logs, params):
    raw, _ = tiny_logs
    simulate(params, tmp_path / "a" / "raw", tmp_path / "a" / "world", progress=False)
    again = _tables(tmp_path / "a" / "raw")
    for name, table in _tables(raw).items():
        assert again[name].equals(table), f"{name} differs between two runs with the same seed"

    other = tiny_params(simulate__seed=params.simulate.seed + 1)
    simulate(other, tmp_path / "b" / "raw", tmp_path / "b" / "world", progress=False)
    changed = _tables(tmp_path / "b" / "raw")
    assert not changed["impressions"].equals(_tables(raw)["impressions"])


def test_ingest_lays_out_real_logs_exactly_like_simulate(tmp_path, tiny_logs, params):
    raw, _ = tiny_logs
    logs = tmp_path / "warehouse_export"
    logs.mkdir()
    original = _tables(raw)
    # impressions as a folder of parts with narrower int types and an extra column
    parts = logs / "impressions"
    parts.mkdir()
    imp = original["impressions"]
    half = imp.num_rows // 2
    narrow = imp.cast(
        imp.schema.set(imp.schema.get_field_index("position"), pa.field("position", pa.int32()))
    )
    pq.write_table(
        narrow.slice(0, half).append_column("debug", narrow.slice(0, half)["user_id"]),
        parts / "part-0.parquet",
    )
    pq.write_table(
        narrow.slice(half).append_column("debug", narrow.slice(half)["user_id"]), parts / "part-1.parquet"
    )
    for name in ("plays", "users", "tracks"):
        shutil.copy(contract.TABLES[name].file(raw), logs / f"{name}.parquet")

    out_raw, out_world = tmp_path / "raw", tmp_path / "world"
    metrics = ingest(params, logs, out_raw, out_world, progress=False)
    assert metrics["ingest/impressions"] == imp.num_rows
    ingested = _tables(out_raw)
    for name, table in original.items():
        assert ingested[name].equals(table), f"ingested {name} differs from what the world wrote"
    manifest = contract.read_manifest(out_raw)
    assert manifest["source"] == "logs"
    assert manifest["window_start"] == contract.read_manifest(raw)["window_start"]
    assert not has_truth(out_world)
    with pytest.raises(NoGroundTruth, match="no ground truth"):
        load_world(out_world)
    # downstream runs unchanged on ingested logs
    checked = validate(params, out_raw, tmp_path / "validation.html", None)
    assert checked["validate/failed"] == 0 and checked["validate/rows/impressions"] == imp.num_rows


def test_ingest_names_the_file_and_column_at_fault(tmp_path, tiny_logs, params):
    raw, _ = tiny_logs
    logs = tmp_path / "logs"
    logs.mkdir()
    for name in contract.TABLES:
        shutil.copy(contract.TABLES[name].file(raw), logs / f"{name}.parquet")
    plays = pq.read_table(logs / "plays.parquet").drop_columns(["ms_played"])
    pq.write_table(plays, logs / "plays.parquet")
    out = tmp_path / "raw"
    with pytest.raises(
        ContractError, match=r"plays\.parquet: table 'plays' is missing column\(s\) ms_played"
    ):
        ingest(params, logs, out, tmp_path / "world", progress=False)
    assert not out.exists(), "a failed ingest must not leave a raw folder behind"


def _corrupt(table: pa.Table, column: str, rows: list[int], value, as_type: pa.DataType) -> pa.Table:
    """``table`` with ``column`` cast to ``as_type`` and ``value`` written into ``rows``."""
    values = table[column].cast(as_type).to_pylist()
    for i in rows:
        values[i] = value
    return table.set_column(table.schema.get_field_index(column), column, pa.array(values, type=as_type))


@pytest.mark.parametrize(
    ("name", "column", "value", "as_type", "expected"),
    [
        ("impressions", "user_id", None, pa.int64(), r"column 'user_id' has 3 null value\(s\)"),
        ("plays", "track_id", 2**63 + 5, pa.uint64(), r"column 'track_id' has 3 value\(s\) outside int64"),
    ],
    ids=["null key", "id beyond int64"],
)
def test_ingest_names_table_column_and_row_count_of_bad_values(
    tmp_path, tiny_logs, params, name, column, value, as_type, expected
):
    """A null key or an id the contract's type cannot hold is a named error (file, table, column,
    how many rows), not an Arrow traceback; no raw folder is left behind."""
    raw, _ = tiny_logs
    logs = tmp_path / "logs"
    logs.mkdir()
    for table in contract.TABLES:
        shutil.copy(contract.TABLES[table].file(raw), logs / f"{table}.parquet")
    bad = _corrupt(pq.read_table(logs / f"{name}.parquet"), column, [0, 7, 42], value, as_type)
    pq.write_table(bad, logs / f"{name}.parquet")
    out = tmp_path / "raw"
    with pytest.raises(ContractError, match=rf"{name}\.parquet: table '{name}' \([\d,]+ rows\): {expected}"):
        ingest(params, logs, out, tmp_path / "world", progress=False)
    assert not out.exists(), "a failed ingest must not leave a raw folder behind"
