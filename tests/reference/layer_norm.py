"""Layer normalisation from the formulas (Ba, Kiros & Hinton 2016), float64, on copies.

x is (..., D); every row of D values along the last axis is normalised on its own
(PyTorch's nn.LayerNorm(D), Keras's LayerNormalization(axis=-1)):

    μ = mean(x), σ² = mean((x − μ)²)      (biased: ÷ D)
    x̂ = (x − μ) / √(σ² + eps),  y = γ·x̂ + β       (γ, β of shape (D,))

Backward, with g = γ·dy and means over the row's D values:

    dx = (g − mean(g) − x̂·mean(g·x̂)) / √(σ² + eps)
    dγ = Σ_rows dy·x̂,  dβ = Σ_rows dy
"""

import numpy as np


def _params(gamma, beta, D):
    gamma = np.ones(D) if gamma is None else np.asarray(gamma, np.float64)
    beta = np.zeros(D) if beta is None else np.asarray(beta, np.float64)
    return gamma, beta


def layer_norm_forward(x, gamma, beta, eps=1e-5):
    """(y, mean, invstd); gamma/beta None mean 1/0; mean, invstd of shape x.shape[:-1]."""
    x = np.asarray(x, np.float64)
    gamma, beta = _params(gamma, beta, x.shape[-1])
    mean = x.mean(axis=-1)
    var = ((x - mean[..., None]) ** 2).mean(axis=-1)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean[..., None]) * invstd[..., None]
    return gamma * xhat + beta, mean, invstd


def layer_norm_backward(dy, x, gamma, eps=1e-5):
    """(dx, dgamma, dbeta), the statistics recomputed from x."""
    dy, x = np.asarray(dy, np.float64), np.asarray(x, np.float64)
    D = x.shape[-1]
    gamma, _ = _params(gamma, None, D)
    _, mean, invstd = layer_norm_forward(x, None, None, eps)
    xhat = (x - mean[..., None]) * invstd[..., None]
    g = dy * gamma
    dx = invstd[..., None] * (g - g.mean(axis=-1, keepdims=True) - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    rows = dy.reshape(-1, D), xhat.reshape(-1, D)
    return dx, (rows[0] * rows[1]).sum(axis=0), rows[0].sum(axis=0)
