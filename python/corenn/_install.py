"""Where the installed C++ package is: headers, libcorenn and its CMake config
ship inside the corenn package, beside the extension module."""

import os

from . import _core


def get_cmake_dir():
    """The folder of corennConfig.cmake: cmake -Dcorenn_DIR=<this> finds corenn::corenn."""
    path = os.path.join(os.path.dirname(os.path.abspath(_core.__file__)), "lib", "cmake", "corenn")
    if not os.path.isfile(os.path.join(path, "corennConfig.cmake")):
        raise OSError(f"get_cmake_dir: no corennConfig.cmake in {path}; this corenn install "
                      "does not ship the C++ package")
    return path
