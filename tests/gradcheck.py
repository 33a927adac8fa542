"""Finite-difference gradient checking (course 2, week 1), float64 only."""

import numpy as np

from tolerances import GRADCHECK_EPS


def numerical_gradient(f, x, eps=GRADCHECK_EPS):
    """Central differences of the scalar function f at x (x is restored)."""
    x = np.asarray(x)
    assert x.dtype == np.float64, "gradient checks run in float64"
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def relative_difference(analytic, numeric):
    """||g - g~|| / (||g|| + ||g~||), 0 when both vanish."""
    analytic, numeric = np.ravel(analytic), np.ravel(numeric)
    denom = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if denom == 0 else float(np.linalg.norm(analytic - numeric) / denom)


def projection(shape, seed):
    """A random fixed cotangent: checks d<P, f(x)>/dx, which covers every output."""
    return np.random.default_rng(seed).standard_normal(shape)


def engine_finite_differences(engine, x, y, labels, eps=GRADCHECK_EPS):
    """Central differences of a model engine's loss over every parameter: an
    oracle independent of cn.gradient_check (parameters restored)."""
    theta = engine.get_parameters()
    numeric = np.empty_like(theta)
    try:
        for i in range(theta.size):
            shifted = theta.copy()
            shifted[i] += eps
            engine.set_parameters(shifted)
            plus = engine.loss_and_gradients([x], [y])[0]
            shifted[i] = theta[i] - eps
            engine.set_parameters(shifted)
            minus = engine.loss_and_gradients([x], [y])[0]
            numeric[i] = (plus - minus) / (2 * eps)
    finally:
        engine.set_parameters(theta)
    return numeric
