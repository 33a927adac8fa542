"""Process-wide settings: threads and the random seed."""

import numbers

from . import _core


def set_num_threads(n):
    """Use ``n`` threads for corenn's OpenMP loops (its one thread pool; BLAS runs
    single-threaded inside them). threadpoolctl's threadpool_limits(n) calls this."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    _core.set_num_threads(int(n))


def get_num_threads():
    """The thread count in force, read live from OpenMP (omp_get_max_threads), so a
    limit set through threadpoolctl or OpenMP shows too (default: the cores this
    process may use)."""
    return _core.get_num_threads()


def seed(s):
    """Seed the one generator behind initialisers, dropout masks and shuffling."""
    if isinstance(s, bool) or not isinstance(s, numbers.Integral):
        raise TypeError(f"seed: s must be an int, got {type(s).__name__}")
    if not 0 <= s < 2**64:
        raise ValueError(f"seed: s must be in [0, 2**64), got {s}")
    _core.seed(int(s))


def set_conv_algorithm(algorithm):
    """How 3×3, stride-1, dilation-1, groups-1 float32 convolutions are computed,
    process-wide: ``"auto"`` (the default: Winograd where it measured faster than
    im2col + GEMM, with the faster of its tile sizes F(2×2, 3×3) and F(4×4, 3×3);
    see docs/guide.md), ``"gemm"`` (always im2col + GEMM, bit for bit the results
    before Winograd existed), ``"winograd"`` (wherever the shape qualifies, the tile
    size that measured faster for it) or ``"winograd2"`` / ``"winograd4"`` (wherever
    the shape qualifies, that tile size: F(2×2) is the more accurate, F(4×4) does
    fewer multiplications). float64 always uses GEMM. Raises TypeError for a non-str
    and ValueError for any other name."""
    if not isinstance(algorithm, str):
        raise TypeError(f"set_conv_algorithm: algorithm must be a str, got {type(algorithm).__name__}")
    _core.set_conv_algorithm(algorithm)


def get_conv_algorithm():
    """The conv algorithm setting in force: "auto", "gemm", "winograd", "winograd2" or "winograd4"."""
    return _core.get_conv_algorithm()
