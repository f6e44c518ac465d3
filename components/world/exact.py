"""Dot products that give the same bits on every machine.

BLAS picks its kernel by CPU (OpenBLAS' DYNAMIC_ARCH: Haswell, SkylakeX, Zen, ...) and each
kernel sums in its own order. Float sums in a different order differ in the last bits, and a
last bit is enough to flip a threshold draw: the same params gave 2,211,901 plays on one
machine and 2,211,902 on another, so ``dvc.lock`` churned between machines.

The world's vectors therefore live on a dyadic grid: multiples of ``2**-GRID_BITS`` with
``|x| <= 1`` (they are unit vectors). The product of two grid numbers is a multiple of
``2**-(2 * GRID_BITS)`` and fits a float64 exactly; every partial sum of a dot product is
bounded by ``|a| |b| <= 1`` (Cauchy-Schwarz), so it needs at most ``2 * GRID_BITS + 1 < 53``
bits and is exact too. A float64 dot product of grid vectors is thus exact whatever order
the kernel sums in, and rounding it to float32 afterwards is deterministic. The grid costs
nothing a listener would notice (a resolution of ~1e-6 on unit vectors).
"""

from __future__ import annotations

import numpy as np

GRID_BITS = 20
_SCALE = float(2**GRID_BITS)


def on_grid(x: np.ndarray) -> np.ndarray:
    """``x`` rounded to the nearest multiple of ``2**-GRID_BITS`` (exact in float32: <= 21 bits)."""
    return (np.rint(np.asarray(x, dtype=np.float64) * _SCALE) / _SCALE).astype(np.float32)


def unit_on_grid(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length, then put on the grid."""
    x = np.asarray(x, dtype=np.float64)
    return on_grid(x / np.linalg.norm(x, axis=-1, keepdims=True))


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` for grid vectors ``a`` (n, D) and ``b`` (m, D), exact, as float32 (n, m)."""
    return (a.astype(np.float64) @ b.astype(np.float64).T).astype(np.float32)


def rowwise_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a[i] . b[i, j]`` for grid vectors ``a`` (n, D) and ``b`` (n, k, D), exact, as float32 (n, k)."""
    return np.einsum("nd,nkd->nk", a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
