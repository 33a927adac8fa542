import numpy as np


def _sigmoid(x):
    # e^{-|x|} is in (0, 1]: neither branch can overflow, and np.where
    # evaluates both branches, so neither may warn.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def activation_forward(x, kind, alpha=0.01):
    """A = g(Z); softmax normalises over the last axis."""
    if kind == "linear":
        return x.copy()
    if kind == "sigmoid":
        return _sigmoid(x)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "relu":
        return np.maximum(x, 0.0)
    if kind == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    if kind == "softmax":
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)
    raise ValueError(kind)


def activation_backward(dy, x, y, kind, alpha=0.01):
    """dZ = dA ⊙ g'(Z); softmax: dZ = A ⊙ (dA - Σ_j dA_j A_j) per row."""
    if kind == "linear":
        return dy.copy()
    if kind == "sigmoid":
        return dy * y * (1.0 - y)
    if kind == "tanh":
        return dy * (1.0 - y ** 2)
    if kind == "relu":
        return dy * (x > 0)
    if kind == "leaky_relu":
        return dy * np.where(x > 0, 1.0, alpha)
    if kind == "softmax":
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
    raise ValueError(kind)
