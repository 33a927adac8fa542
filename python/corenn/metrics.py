"""Metrics computed from the model's outputs (logits) and the targets."""

import numpy as np


def accuracy(outputs, y, loss):
    """Fraction right: argmax of the logits for class ids; for 0/1 targets, the
    logit's sign (σ(z) > 0.5) against the label, missing (NaN) labels skipped."""
    if loss == "softmax_cross_entropy":
        return float(np.mean(np.argmax(outputs.reshape(len(outputs), -1), axis=1) == y))
    return binary_accuracy(outputs, y)


def binary_accuracy(outputs, y, loss=None):
    y = np.asarray(y).reshape(outputs.shape)
    present = ~np.isnan(y)
    if not present.any():
        return float("nan")
    return float(np.mean((outputs[present] > 0) == (y[present] > 0.5)))


_BY_NAME = {"accuracy": accuracy, "acc": accuracy, "binary_accuracy": binary_accuracy}


def get(name):
    if callable(name):
        return getattr(name, "__name__", "metric"), name
    if name not in _BY_NAME:
        raise ValueError(f"compile: unknown metric {name!r}; expected one of "
                         f"{', '.join(map(repr, _BY_NAME))} or a callable fn(outputs, y, loss)")
    return ("accuracy" if name == "acc" else name), _BY_NAME[name]
