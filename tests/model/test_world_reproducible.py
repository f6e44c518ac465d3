"""The same params give the same logs, bit for bit, whatever CPU kernels the machine picks.

A second machine is stood in for by the knobs that change which kernels run here: OpenBLAS'
core type (each sums a dot product in its own order) and thread count, NumPy's SIMD dispatch
(exp, log and sorting networks per CPU; every target above AVX2, or all of them, switched off)
and glibc's libm without FMA. Before the world's dot products were made exact the
propensities of almost every impression differed between these runs; before its own exp/log
and tie-stable top-k, the tiny world held 102,330 impressions on an AVX-512 machine and
101,380 on one without (``components/world/exact.py``).
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


def _numpy_targets(above: str | None) -> str:
    """NumPy's SIMD dispatch targets this CPU has, from ``above`` up (all of them if None).

    Read from NumPy itself: the names changed between releases (``AVX512F`` in 1.x,
    ``X86_V4`` in 2.4), and NumPy ignores a name it does not know without a word.
    """
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    targets = [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]
    if above is not None:
        targets = targets[targets.index(above) :] if above in targets else []
    return " ".join(targets)


def _machines() -> dict[str, dict[str, str]]:
    """This machine, one that stops at AVX2, and one with only the x86-64 baseline.

    Each knob changes which code runs: OpenBLAS' kernel, NumPy's SIMD loops (exp, log, sorting
    networks, partitions) and glibc's libm variant (FMA or not).
    """
    avx2 = {"OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": _numpy_targets("X86_V4")}
    older = {
        "OPENBLAS_CORETYPE": "Sandybridge",
        "OPENBLAS_NUM_THREADS": "1",
        "NPY_DISABLE_CPU_FEATURES": _numpy_targets(None),
        "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F",
    }
    return {"this": {}, "avx2": avx2, "older": older}


_PROBE = """
import hashlib, numpy as np
x = np.random.default_rng(0).normal(size=100_000) * 20
s = np.random.default_rng(1).integers(0, 9, size=(64, 300)).astype(np.float32)
x32 = x.astype(np.float32)  # float64 exp/log differ from AVX-512 down, float32 from AVX2 down
parts = [np.exp(x), np.log(np.abs(x) + 1e-3), np.exp(x32), np.log(np.abs(x32) + 1e-3)]
parts.append(np.argpartition(-s, 9, axis=1)[:, :10])
print(hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in parts)).hexdigest())
"""


def _probe(env: dict[str, str]) -> str:
    """A hash of what NumPy's CPU-dependent kernels compute under ``env``."""
    run = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**os.environ, **env}, check=True, capture_output=True
    )
    return run.stdout.decode().strip()


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


def test_the_stand_in_machines_run_other_kernels():
    """The knobs must change what NumPy computes, or the test below would prove nothing."""
    machines = _machines()
    assert _probe(machines["older"]) != _probe(machines["this"])


def test_simulated_logs_are_bit_identical_under_other_cpu_kernels(tmp_path):
    runs = {name: _simulate(tmp_path / name, env) for name, env in _machines().items()}
    assert runs["avx2"] == runs["this"], runs
    assert runs["older"] == runs["this"], runs
