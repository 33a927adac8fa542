"""Process-wide settings (threads, the random seed, the conv algorithm, layer fusion) and what the process runs on."""

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


def runtime_info():
    """What corenn runs on in this process, as a dict:

    - ``"version"``: corenn's version;
    - ``"isa"``: the instruction set corenn's own loops (im2col, batch norm,
      activations, pooling, optimizers, ...) were dispatched to when the library
      loaded: ``"x86-64-v4"`` (AVX-512), ``"x86-64-v3"`` (AVX2 + FMA) or
      ``"baseline"`` (SSE2 on x86-64, and every build without dispatch). The
      widest one the CPU supports is picked; every ISA gives the same bits;
    - ``"isa_dispatch"``: whether this build carries the AVX2/AVX-512 clones
      (GCC >= 12 on x86-64 Linux with glibc) or runs baseline code everywhere;
    - ``"blas"``: the BLAS backend ("scipy_openblas", "system" or "none"), which
      dispatches its own kernels (threadpoolctl's ``threadpool_info()`` names
      OpenBLAS's core type);
    - ``"num_threads"``, ``"conv_algorithm"`` and ``"fusion"``: the settings in force.
    """
    from . import __version__
    return {"version": __version__, "isa": _core.simd_isa(), "isa_dispatch": _core.simd_dispatch(),
            "blas": _core.blas_backend(), "num_threads": get_num_threads(),
            "conv_algorithm": get_conv_algorithm(), "fusion": get_fusion()}


def set_fusion(enabled):
    """Whether corenn fuses layers, process-wide (default ``True``). ``predict``
    and ``evaluate`` then run a plan in which each convolution takes the
    BatchNormalization after it folded into its weights and writes its output
    through one epilogue (+ bias, + the residual of an ``Add``, ReLU of an
    ``Activation("relu")``); training applies the ReLU after a
    BatchNormalization or an ``Add`` in that layer's output pass. See docs/guide.md, "Fused layers". ``False`` runs every
    layer as written: the reference the plans are tested against. Raises
    TypeError unless ``enabled`` is a bool."""
    if not isinstance(enabled, bool):
        raise TypeError(f"set_fusion: enabled must be a bool, got {type(enabled).__name__}")
    _core.set_fusion(enabled)


def get_fusion():
    """The fusion setting in force (a bool)."""
    return _core.get_fusion()
