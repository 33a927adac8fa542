"""Unit normalisation from the formula, float64, on copies (Keras 3's
UnitNormalization = keras.ops.normalize(x, axis, order=2, epsilon=1e-12);
PyTorch's torch.nn.functional.normalize(x, p=2, dim=axis, eps=1e-12)):

    n = ‖x‖₂ along axis,   y = x / max(n, eps)

Backward, with dy the gradient of y: where n > eps, y = x/n and
∂y_i/∂x_j = δ_ij/n − x_i·x_j/n³, so dx = (dy − y·Σ(y·dy)) / n; where n ≤ eps
the divisor is the constant eps and dx = dy / eps.
"""

import numpy as np


def unit_norm_forward(x, axis=-1, eps=1e-12):
    x = np.asarray(x, np.float64)
    n = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    return x / np.maximum(n, eps)


def unit_norm_backward(dy, x, axis=-1, eps=1e-12):
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    n = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
    long = n > eps
    safe = np.where(long, n, 1.0)
    y = x / safe
    projected = (dy - y * np.sum(y * dy, axis=axis, keepdims=True)) / safe
    return np.where(long, projected, dy / eps)
