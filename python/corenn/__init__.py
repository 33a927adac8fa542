"""corenn: a compiled neural-network core with a Keras-style Python API."""

from importlib.metadata import PackageNotFoundError, version as _version

# libcorenn links libscipy_openblas.so by SONAME. Loading it here first, from
# the scipy-openblas32 package, makes the dynamic loader reuse this copy; the
# $ORIGIN RPATH alone finds it for regular installs, this also covers editable
# ones (the same thing NumPy does with its bundled OpenBLAS).
import scipy_openblas32 as _openblas

_openblas.get_openblas_config()  # loads the library (RTLD_GLOBAL)

from . import _core  # noqa: E402

try:
    __version__ = _version("corenn")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

from ._runtime import get_num_threads, seed, set_num_threads  # noqa: E402
from . import callbacks, initializers, layers, losses, metrics, ops, optimizers, regularizers  # noqa: E402
from .gradient_check import gradient_check  # noqa: E402
from .models import Sequential  # noqa: E402

__all__ = ["Sequential", "__version__", "callbacks", "get_num_threads", "gradient_check",
           "initializers", "layers", "losses", "metrics", "ops", "optimizers", "regularizers",
           "seed", "set_num_threads"]
