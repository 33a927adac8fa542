"""Functional kernels: NumPy arrays in, NumPy arrays out (float32 or float64).

Each op keeps the dtype of its inputs and rejects mixed dtypes with TypeError;
C-contiguous inputs of the right dtype are used without a copy.
"""

from ._core import ops as _ops

_names = [n for n in dir(_ops) if not n.startswith("_")]
globals().update({n: getattr(_ops, n) for n in _names})
__all__ = sorted(_names)
