"""Normalisation with fixed statistics: y = (x − mean[c]) / σ[c] over axis 1,
σ = √variance, or 1 where variance <= 0; dx = dy / σ."""

import numpy as np


def _scale(variance, ndim):
    variance = np.asarray(variance, dtype=np.float64)
    # "<= 0 gives 1", so a NaN variance gives σ = NaN (the formula's √NaN).
    s = np.where(variance <= 0, 1.0, np.sqrt(np.where(variance <= 0, 1.0, variance)))
    return s.reshape((1, -1) + (1,) * (ndim - 2))


def normalize_forward(x, mean, variance):
    x = np.asarray(x, dtype=np.float64)
    mean = np.asarray(mean, dtype=np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))
    return (x - mean) / _scale(variance, x.ndim)


def normalize_backward(dy, variance):
    dy = np.asarray(dy, dtype=np.float64)
    return dy / _scale(variance, dy.ndim)
