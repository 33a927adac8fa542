"""corenn: a compiled neural-network core with a Keras-style Python API."""

import os as _os
from importlib.metadata import PackageNotFoundError, version as _version

# libcorenn links libscipy_openblas.so by SONAME. Loading it here first, from
# the scipy-openblas32 package, makes the dynamic loader reuse this copy; the
# $ORIGIN RPATH alone finds it for regular installs, this also covers editable
# ones (the same thing NumPy does with its bundled OpenBLAS).
#
# corenn runs BLAS single-threaded inside its own OpenMP split of each product
# (one thread pool). OpenBLAS starts its pthread pool when it loads, sized from
# OPENBLAS_NUM_THREADS; a pool that exists at all stalls OpenMP regions for
# milliseconds now and then, so the library is loaded with the variable at 1,
# and the environment is restored for everything else in the process.
# (Importing scipy_openblas32 already loads it.)
_saved = _os.environ.get("OPENBLAS_NUM_THREADS")
_os.environ["OPENBLAS_NUM_THREADS"] = "1"
try:
    import scipy_openblas32 as _openblas

    _openblas.get_openblas_config()  # loads the library (RTLD_GLOBAL) if not yet loaded
finally:
    if _saved is None:
        del _os.environ["OPENBLAS_NUM_THREADS"]
    else:
        _os.environ["OPENBLAS_NUM_THREADS"] = _saved

from . import _core  # noqa: E402
from . import _validate  # noqa: E402

# A mistyped argument to any compiled function, through cn.ops or any module
# that calls it, gets a TypeError naming the function and the argument.
_validate.check_compiled_arguments(_core)
_validate.check_compiled_arguments(_core.ops)

try:
    __version__ = _version("corenn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from ._runtime import get_conv_algorithm, get_num_threads, runtime_info, seed, set_conv_algorithm, set_num_threads  # noqa: E402
from ._runtime import get_fusion, set_fusion  # noqa: E402
from . import _threadpool  # noqa: E402

_threadpool.register()
from . import callbacks, data, decoding, detection, diagnostics, distributed, initializers, interop, layers  # noqa: E402
from . import losses, metrics, ops, optimizers, regularizers, style, text, tuning  # noqa: E402
from .gradient_check import gradient_check  # noqa: E402
from .layers import clear_session  # noqa: E402
from .models import Model, Sequential, load_model  # noqa: E402
from . import applications  # noqa: E402  (after models: its blocks build Models)
from ._install import get_cmake_dir  # noqa: E402

__all__ = ["Model", "Sequential", "__version__", "applications", "callbacks", "clear_session", "data", "decoding",
           "detection", "diagnostics", "distributed", "get_cmake_dir", "get_conv_algorithm", "get_fusion", "get_num_threads", "gradient_check", "initializers",
           "interop", "layers", "load_model", "losses",
           "metrics", "ops", "optimizers", "regularizers", "runtime_info", "seed", "set_conv_algorithm", "set_fusion", "set_num_threads", "style", "text", "tuning"]
