"""Losses by name. The model's last layer outputs logits; the loss applies the
softmax or sigmoid itself, fused and numerically stable.

    softmax_cross_entropy  integer class ids; mean over the batch of −log softmax(z)_y
    binary_cross_entropy   0/1 targets (N, K); mean over examples of the sum over the K
                           columns (the course's multi-task cost); NaN targets are
                           missing labels and are skipped
    mse                    mean over all elements of (pred − target)²
"""

from . import _validate

NAMES = ("softmax_cross_entropy", "binary_cross_entropy", "mse")
_ALIASES = {"sparse_categorical_crossentropy": "softmax_cross_entropy",
            "binary_crossentropy": "binary_cross_entropy", "mean_squared_error": "mse"}


def get(name):
    if not isinstance(name, str):
        raise TypeError(f"compile: loss must be a name, got {name!r}")
    return _validate.choice("compile", "loss", _ALIASES.get(name, name), NAMES)
