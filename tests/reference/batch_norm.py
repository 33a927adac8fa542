"""Batch normalisation from the formulas (course 2, week 3), float64, on copies.

x is (N, C) or (N, C, H, W); each channel is normalised over its M = N·H·W values
(every axis but 1). The running statistics follow PyTorch's
torch.nn.functional.batch_norm(x, running_mean, running_var, gamma, beta,
training, momentum, eps):

    training   μ = mean(x), σ² = mean((x − μ)²)          (biased: ÷ M)
               running_mean ← (1 − momentum)·running_mean + momentum·μ
               running_var  ← (1 − momentum)·running_var  + momentum·σ²·M/(M − 1)
    inference  μ = running_mean, σ² = running_var
    both       x̂ = (x − μ) / √(σ² + eps),  y = γ·x̂ + β

M = 1 has no unbiased variance: running_var is left unchanged (PyTorch refuses
to train on it; corenn's layer keeps its moving variance).
"""

import numpy as np


def _axes(x):
    return (0,) if x.ndim == 2 else (0, 2, 3)


def _channel(v, ndim):
    """A (C,) vector shaped to broadcast along axis 1."""
    return np.asarray(v, np.float64).reshape((1, -1) + (1,) * (ndim - 2))


def batch_norm_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    """(y, mean, invstd, new_running_mean, new_running_var); gamma/beta None mean 1/0,
    running statistics None (training only) mean not tracked."""
    x = np.asarray(x, np.float64)
    C = x.shape[1]
    gamma = np.ones(C) if gamma is None else np.asarray(gamma, np.float64)
    beta = np.zeros(C) if beta is None else np.asarray(beta, np.float64)
    new_mean = None if running_mean is None else np.array(running_mean, np.float64)
    new_var = None if running_var is None else np.array(running_var, np.float64)
    if training:
        M = x.size // C
        mean = x.mean(axis=_axes(x))
        var = ((x - _channel(mean, x.ndim)) ** 2).mean(axis=_axes(x))
        if new_mean is not None:
            new_mean = (1 - momentum) * new_mean + momentum * mean
            if M > 1:
                new_var = (1 - momentum) * new_var + momentum * var * M / (M - 1)
    else:
        mean, var = new_mean.copy(), new_var.copy()
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - _channel(mean, x.ndim)) * _channel(invstd, x.ndim)
    y = _channel(gamma, x.ndim) * xhat + _channel(beta, x.ndim)
    return y, mean, invstd, new_mean, new_var


def batch_norm_backward(dy, x, gamma, mean, invstd, training=True):
    """(dx, dgamma, dbeta) with x̂ = (x − μ)·invstd, sums over each channel's M values:
    dβ = Σ dy, dγ = Σ dy·x̂;
    training (μ and σ² depend on x): dx = γ·invstd/M · (M·dy − dβ − x̂·dγ);
    inference (μ, σ² constants):     dx = γ·invstd·dy."""
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    C = x.shape[1]
    M = x.size // C
    gamma = np.ones(C) if gamma is None else np.asarray(gamma, np.float64)
    xhat = (x - _channel(mean, x.ndim)) * _channel(invstd, x.ndim)
    dbeta = dy.sum(axis=_axes(x))
    dgamma = (dy * xhat).sum(axis=_axes(x))
    k = _channel(np.asarray(gamma) * invstd, x.ndim)
    if not training:
        return k * dy, dgamma, dbeta
    dx = k / M * (M * dy - _channel(dbeta, x.ndim) - xhat * _channel(dgamma, x.ndim))
    return dx, dgamma, dbeta
