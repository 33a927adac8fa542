"""corenn in threadpoolctl (scikit-learn's and NumPy's way to limit threads).

threadpoolctl finds thread pools by scanning the shared libraries a process
has loaded; from version 3 on a library can describe itself with a
LibController subclass passed to threadpoolctl.register. This one matches
libcorenn by its file name and two exported symbols, so threadpool_info()
lists corenn and threadpool_limits(n) (or limits={"libcorenn": n}) calls
cn.set_num_threads(n). user_api is "openmp": corenn's one pool is OpenMP's,
so a user who limits OpenMP limits corenn too. corenn's private OpenBLAS is
not ours to raise: the engine keeps it at one thread itself (cpp/src/backend/gemm.cpp),
even when threadpool_limits(k, user_api="blas") sets it to k.

threadpoolctl is optional: without it (or with a version before 3) nothing
is registered."""

from . import _core


def register():
    """Register the controller; False if threadpoolctl is absent or too old."""
    try:
        import threadpoolctl
    except ImportError:
        return False
    if not hasattr(threadpoolctl, "register"):  # threadpoolctl < 3
        return False

    class CorennController(threadpoolctl.LibController):
        user_api = "openmp"
        internal_api = "corenn"
        filename_prefixes = ("libcorenn",)
        # corenn::get_num_threads() and corenn::set_num_threads(int), mangled.
        check_symbols = ("_ZN6corenn15get_num_threadsEv", "_ZN6corenn15set_num_threadsEi")

        def get_num_threads(self):
            return _core.get_num_threads()

        def set_num_threads(self, num_threads):
            _core.set_num_threads(max(1, int(num_threads)))

        def get_version(self):
            from . import __version__
            return __version__

        def set_additional_attributes(self):
            self.blas = _core.blas_backend()

    threadpoolctl.register(CorennController)
    return True
