"""1-D layers on sequences (N, C, L), written from the 1-D formulas step by step
(independent of the 2-D references and of the engine, which runs them as
(N, C, 1, L) images).

conv1d (PyTorch's Conv1d; Keras's padding names):
    y[n, o, t] = b[o] + Σ_{c in group(o), k} W[o, c, k] · x[n, g·Cg + c, t·s + k·d − left]
with x read as 0 outside [0, L). "valid": left = right = 0; "same": ⌈L / s⌉
outputs, total padding max((out − 1)·s + d·(K − 1) + 1 − L, 0), the odd cell on
the right; "causal": left = d·(K − 1), right = 0.

max_pool1d: y[n, c, t] = max over steps t·s − left … t·s − left + K − 1 inside
[0, L) (padding is −∞); argmax is the first maximum's step.
avg_pool1d: y[n, c, t] = mean over the steps of that window inside [0, L)
(the padding is not counted).
global_avg_pool1d: y[n, c] = mean over t of x[n, c, t].
global_max_pool1d: y[n, c] = max over t of x[n, c, t] (gradient to the first maximum).
"""

import numpy as np


def padding1d(L, span, stride, mode):
    """(left, right) padding of one axis for Keras's "valid", "same", "causal"."""
    if mode == "valid":
        return 0, 0
    if mode == "causal":
        return span - 1, 0
    out = -(-L // stride)
    total = max((out - 1) * stride + span - L, 0)
    return total // 2, total - total // 2


def conv1d_forward(x, W, b=None, stride=1, padding="valid", dilation=1, groups=1):
    N, C, L = x.shape
    O, Cg, K = W.shape
    left, right = padding1d(L, dilation * (K - 1) + 1, stride, padding)
    out = (L + left + right - dilation * (K - 1) - 1) // stride + 1
    Og = O // groups
    y = np.zeros((N, O, out), dtype=np.result_type(x, W))
    for o in range(O):
        g = o // Og
        for t in range(out):
            for k in range(K):
                step = t * stride + k * dilation - left
                if 0 <= step < L:
                    y[:, o, t] += x[:, g * Cg:(g + 1) * Cg, step] @ W[o, :, k]
        if b is not None:
            y[:, o, :] += b[o]
    return y


def conv1d_backward(dy, x, W, stride=1, padding="valid", dilation=1, groups=1):
    """(dx, dW, db): each product of the forward sum sends dy back to its two factors."""
    N, C, L = x.shape
    O, Cg, K = W.shape
    left, _ = padding1d(L, dilation * (K - 1) + 1, stride, padding)
    Og = O // groups
    dx, dW = np.zeros_like(x, dtype=dy.dtype), np.zeros_like(W, dtype=dy.dtype)
    for o in range(O):
        g = o // Og
        for t in range(dy.shape[2]):
            for k in range(K):
                step = t * stride + k * dilation - left
                if 0 <= step < L:
                    dx[:, g * Cg:(g + 1) * Cg, step] += np.outer(dy[:, o, t], W[o, :, k])
                    dW[o, :, k] += dy[:, o, t] @ x[:, g * Cg:(g + 1) * Cg, step]
    return dx, dW, dy.sum(axis=(0, 2))


def max_pool1d_forward(x, pool_size, stride=None, padding="valid"):
    """(y, argmax) with argmax the step of each window's first maximum."""
    stride = pool_size if stride is None else stride
    N, C, L = x.shape
    left, right = padding1d(L, pool_size, stride, padding)
    out = (L + left + right - pool_size) // stride + 1
    y = np.empty((N, C, out), x.dtype)
    argmax = np.empty((N, C, out), np.int64)
    for t in range(out):
        lo, hi = max(t * stride - left, 0), min(t * stride - left + pool_size, L)
        i = np.argmax(x[:, :, lo:hi], axis=2)
        argmax[:, :, t] = lo + i
        y[:, :, t] = np.take_along_axis(x[:, :, lo:hi], i[..., None], axis=2)[..., 0]
    return y, argmax


def max_pool1d_backward(dy, argmax, x_shape):
    """dx[n, c, argmax[n, c, t]] += dy[n, c, t]."""
    dx = np.zeros(x_shape, dy.dtype)
    n, c, _ = np.indices(argmax.shape)
    np.add.at(dx, (n, c, argmax), dy)
    return dx


def avg_pool1d_forward(x, pool_size, stride=None, padding="valid"):
    """y[n, c, t] = mean of the steps of window t inside the sequence (the
    padding is not counted: Keras's "same")."""
    stride = pool_size if stride is None else stride
    N, C, L = x.shape
    left, right = padding1d(L, pool_size, stride, padding)
    out = (L + left + right - pool_size) // stride + 1
    y = np.empty((N, C, out), x.dtype)
    for t in range(out):
        lo, hi = max(t * stride - left, 0), min(t * stride - left + pool_size, L)
        y[:, :, t] = x[:, :, lo:hi].mean(axis=2)
    return y


def avg_pool1d_backward(dy, x_shape, pool_size, stride=None, padding="valid"):
    """Each step inside window t gets dy[n, c, t] / (steps inside the window)."""
    stride = pool_size if stride is None else stride
    L = x_shape[2]
    left, _ = padding1d(L, pool_size, stride, padding)
    dx = np.zeros(x_shape, dy.dtype)
    for t in range(dy.shape[2]):
        lo, hi = max(t * stride - left, 0), min(t * stride - left + pool_size, L)
        dx[:, :, lo:hi] += dy[:, :, t:t + 1] / (hi - lo)
    return dx


def global_max_pool1d_forward(x):
    """(y, argmax): the max over the steps and the step of its first occurrence."""
    argmax = np.argmax(x, axis=2)
    return np.take_along_axis(x, argmax[..., None], axis=2)[..., 0], argmax


def global_max_pool1d_backward(dy, argmax, x_shape):
    """dx[n, c, argmax[n, c]] = dy[n, c]."""
    dx = np.zeros(x_shape, dy.dtype)
    np.put_along_axis(dx, argmax[..., None], dy[..., None], axis=2)
    return dx


def global_avg_pool1d_forward(x):
    return x.mean(axis=2)


def global_avg_pool1d_backward(dy, x_shape):
    """Every step contributed 1/L of the mean."""
    return np.broadcast_to(dy[:, :, None] / x_shape[2], x_shape).copy()
