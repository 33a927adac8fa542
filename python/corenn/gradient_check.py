"""Gradient checking (course 2, week 1): compare backpropagation's gradient
with two-sided finite differences of the loss,

    g~_i = (J(θ + ε e_i) − J(θ − ε e_i)) / 2ε,    difference = ‖g − g~‖ / (‖g‖ + ‖g~‖)

below 1e-7 the gradient is right; around 1e-3 or more it is wrong. The check runs
on a float64 copy of the model (float32 rounding would swamp ε), in training mode
with the dropout masks held fixed, so dropout layers are checked too; batch norm
uses the batch's statistics, and its moving averages, which every training-mode
forward moves, are put back afterwards.
"""

import numpy as np

from . import _validate


def gradient_check(model, X, y, epsilon=1e-7):
    """The relative difference between analytic and numerical gradients."""
    epsilon = _validate.real("gradient_check", "epsilon", epsilon, low=0.0, low_open=True)
    model._require_compiled("gradient_check")
    checked = model if model.dtype == np.float64 else model._clone("float64")
    X, y = checked._prepare("gradient_check", X, y)
    engine, labels = checked._engine, checked._labels()
    theta, state = engine.get_parameters(), engine.get_state()
    try:
        _, analytic = engine.loss_and_gradients(X, y, labels)
        numeric = np.empty_like(theta)
        shifted = theta.copy()
        for i in range(theta.size):
            shifted[i] = theta[i] + epsilon
            engine.set_parameters(shifted)
            plus, _ = engine.loss_and_gradients(X, y, labels)
            shifted[i] = theta[i] - epsilon
            engine.set_parameters(shifted)
            minus, _ = engine.loss_and_gradients(X, y, labels)
            shifted[i] = theta[i]
            numeric[i] = (plus - minus) / (2 * epsilon)
    finally:
        engine.set_parameters(theta)
        engine.set_state(state)
    denominator = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if denominator == 0 else float(np.linalg.norm(analytic - numeric) / denominator)
