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
