"""The same params give the same logs, bit for bit, whatever CPU kernels the machine picks.

A second machine is stood in for by the knobs that change which kernels run here: OpenBLAS'
core type (each sums a dot product in its own order), its thread count, and NumPy's SIMD
dispatch (AVX-512 off, where the CPU has it). Before the world's dot products were made exact
(``components/world/exact.py``) the propensities of almost every impression differed between
these runs, and now and then a track or a play.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from components import contract
from tests.conftest import REPO, TINY

AVX512 = "AVX512F AVX512CD AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"


def _has_avx512() -> bool:
    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and " avx512f" in cpuinfo.read_text()


def _machines() -> dict[str, dict[str, str]]:
    other = {"OPENBLAS_CORETYPE": "Sandybridge", "OPENBLAS_NUM_THREADS": "1"}
    if _has_avx512():
        other["NPY_DISABLE_CPU_FEATURES"] = AVX512
    return {"this": {}, "haswell": {"OPENBLAS_CORETYPE": "Haswell"}, "older": other}


def _simulate(out: Path, env: dict[str, str]) -> dict[str, str]:
    """Run the simulate stage in a fresh process under ``env``; a content hash per table."""
    sets = [a for k, v in {**TINY, "simulate.users.n_users": 800}.items() for a in ("--set", f"{k}={v}")]
    subprocess.run(
        [sys.executable, "-m", "components.raw_logs", "--params", str(REPO / "params.yaml"), "--no-progress",
         "--raw-dir", str(out / "raw"), "--world-dir", str(out / "world"), "--metrics", str(out / "m.json"),
         *sets],
        cwd=REPO, env={**os.environ, **env}, check=True, capture_output=True,
    )  # fmt: skip
    hashes = {}
    for name, table in contract.TABLES.items():
        data = pq.read_table(table.file(out / "raw"))
        digest = hashlib.sha256()
        for column in data.columns:
            for chunk in column.chunks:
                for buffer in chunk.buffers():
                    digest.update(b"" if buffer is None else buffer.to_pybytes())
        hashes[name] = f"{data.num_rows} rows {digest.hexdigest()[:16]}"
    return hashes


def test_simulated_logs_are_bit_identical_under_other_cpu_kernels(tmp_path):
    runs = {name: _simulate(tmp_path / name, env) for name, env in _machines().items()}
    assert runs["haswell"] == runs["this"], runs
    assert runs["older"] == runs["this"], runs
