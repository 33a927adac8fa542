import numpy as np


def dense_forward(x, W, b=None):
    """Z = X·Wᵀ + b; x (N, in), W (out, in), b (out,)."""
    z = x @ W.T
    return z if b is None else z + b


def dense_backward(dy, x, W):
    """dX = dZ·W, dW = dZᵀ·X, db = Σ_rows dZ."""
    return dy @ W, dy.T @ x, dy.sum(axis=0)
