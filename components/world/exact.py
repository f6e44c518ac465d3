"""Arithmetic that gives the same bits on every machine: dot products, exp/log, top-k.

The world's logs must be the same bytes for the same params on any machine, or ``dvc.lock``
churns and a result cannot be reproduced elsewhere. Three things in NumPy depend on the CPU:

* BLAS picks its kernel by CPU (OpenBLAS' DYNAMIC_ARCH: Haswell, SkylakeX, Zen, ...) and each
  kernel sums in its own order. Float sums in a different order differ in the last bits, and a
  last bit is enough to flip a threshold draw: the same params gave 2,211,901 plays on one
  machine and 2,211,902 on another.
* ``np.exp``, ``np.log`` and ``**`` run SIMD code chosen by CPU (AVX-512, AVX2, baseline), each
  rounding the last bit its own way: the tiny test world held 102,330 impressions on an
  AVX-512 machine and 101,380 on the CI machine without it.
* ``np.argpartition`` and the default ``np.argsort`` use CPU-specific sorting networks that
  leave ties, and the inside of a partition, in their own order.

Dot products: the world's vectors live on a dyadic grid, multiples of ``2**-GRID_BITS`` with
``|x| <= 1`` (they are unit vectors). The product of two grid numbers is a multiple of
``2**-(2 * GRID_BITS)`` and fits a float64 exactly; every partial sum of a dot product is
bounded by ``|a| |b| <= 1`` (Cauchy-Schwarz), so it needs at most ``2 * GRID_BITS + 1 < 53``
bits and is exact too. A float64 dot product of grid vectors is thus exact whatever order
the kernel sums in, and rounding it to float32 afterwards is deterministic. The grid costs
nothing a listener would notice (a resolution of ~1e-6 on unit vectors).

exp/log are built from + - * / (which IEEE 754 rounds exactly on every machine and SIMD
width); top-k breaks ties by column index. What stays with the machine: the random
generators' own rare libm calls (ziggurat tails, gamma draws), which follow glibc.
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


# --- exp and log from + - * / only ------------------------------------------------------------
# Accurate to 1-3 units in the last place of a float64 (checked against np.exp/np.log over
# their range), far below anything the world's draws resolve; a float32 input gets float32.

_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_EXP_TERMS = [1.0 / np.prod(np.arange(1.0, n + 1.0)) for n in range(14)]  # 1/n!, exact products
_LOG_TERMS = [2.0 / (2 * n + 1) for n in range(12)]  # log(m) = sum 2 s^(2n+1) / (2n+1)


def exp(x: np.ndarray | float) -> np.ndarray:
    """``e**x``, the same bits on every machine (Cody-Waite reduction, then a Taylor polynomial)."""
    arr = np.asarray(x)
    out_dtype = arr.dtype if arr.dtype == np.float32 else np.float64
    x64 = np.clip(arr.astype(np.float64), -745.0, 709.0)
    k = np.rint(x64 * _INV_LN2)
    r = (x64 - k * _LN2_HI) - k * _LN2_LO  # |r| <= ln(2) / 2
    # degree 13 leaves 4e-18 relative; for a float32 result degree 7 (5e-9) is enough
    degree = 7 if out_dtype == np.float32 else 13
    p = np.full_like(r, _EXP_TERMS[degree])
    for c in reversed(_EXP_TERMS[:degree]):
        p *= r
        p += c
    return np.ldexp(p, k.astype(np.int32)).astype(out_dtype)


def log(x: np.ndarray | float) -> np.ndarray:
    """Natural log of ``x > 0``, the same bits on every machine (atanh series around 1)."""
    arr = np.asarray(x)
    out_dtype = arr.dtype if arr.dtype == np.float32 else np.float64
    x64 = arr.astype(np.float64)
    if np.any(~(x64 > 0)):
        raise ValueError("exact.log takes positive finite numbers only")
    m, e = np.frexp(x64)  # x = m * 2**e, m in [0.5, 1)
    low = m < 0.7071067811865476
    m = np.where(low, m * 2.0, m)  # m in [1/sqrt(2), sqrt(2)): |s| <= 0.1716
    e = (e - low).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = np.full_like(s, _LOG_TERMS[11])
    for c in reversed(_LOG_TERMS[:11]):
        p *= s2
        p += c
    return ((e * _LN2_HI) + (s * p + e * _LN2_LO)).astype(out_dtype)


def power(base: np.ndarray | float, exponent: float) -> np.ndarray:
    """``base ** exponent`` for ``base > 0``, through :func:`exp` and :func:`log`."""
    return exp(exponent * log(base))


# --- top-k with a fixed order -----------------------------------------------------------------
# The world draws by position in a candidate pool, so a pool order that depends on the
# machine's sorting network changes the logs.


def top_k(score: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` largest entries of each row of ``score`` (n, m), best first.

    Ties are broken by the lower column index, so the result is one fixed answer on every
    machine. ``argpartition`` finds the candidates in O(m); only rows with a tie across the
    k-th place fall back to a stable sort of the whole row.
    """
    score = np.asarray(score)
    n, m = score.shape
    if not 0 < k <= m:
        raise ValueError(f"top_k needs 0 < k <= {m} columns, got k={k}")
    top = np.argpartition(-score, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (n, 1))
    kth = np.take_along_axis(score, top, axis=1).min(axis=1, keepdims=True)
    tied = np.flatnonzero((score >= kth).sum(axis=1) > k)
    if len(tied):
        top[tied] = np.argsort(-score[tied], axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(score, top, axis=1)
    best_first = np.lexsort((top, -values), axis=-1)  # by value, then by column index
    return np.take_along_axis(top, best_first, axis=1)
