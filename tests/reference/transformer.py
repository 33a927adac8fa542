"""NumPy references for the transformer's layers, written from the formulas
(float64): softmax over any axis, sinusoidal positional encoding (Vaswani et
al. 2017, section 3.5) and multi-head attention (section 3.2.2) with the
weight layout of corenn's MultiHeadAttention (PyTorch's in_proj split in
three, then out_proj)."""

import numpy as np

from reference import attention as attention_ref


def softmax(x, axis=-1):
    """y = e^{x − max} / Σ_axis e^{x − max}."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(dy, y, axis=-1):
    """dx = y ⊙ (dy − Σ_axis dy ⊙ y) (the Jacobian diag(y) − y yᵀ applied to dy)."""
    dy, y = np.asarray(dy, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))
