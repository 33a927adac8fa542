"""Losses by name. The model's last layer outputs logits; the loss applies the
softmax or sigmoid itself, fused and numerically stable.

    softmax_cross_entropy  integer class ids; mean over the batch of −log softmax(z)_y
    binary_cross_entropy   0/1 targets (N, K); mean over examples of the sum over the K
                           columns (the course's multi-task cost); NaN targets are
                           missing labels and are skipped
    mse                    mean over all elements of (pred − target)²

Embedding losses (course 4, week 4) are loss objects, callable as in Keras:
``TripletLoss(margin=0.2)(y_true, y_pred)`` and ``ContrastiveLoss(margin=1.0)``.
"""

import numpy as np

from . import _validate
from ._core import ops as _ops

NAMES = ("softmax_cross_entropy", "binary_cross_entropy", "mse")
_ALIASES = {"sparse_categorical_crossentropy": "softmax_cross_entropy",
            "binary_crossentropy": "binary_cross_entropy", "mean_squared_error": "mse"}


def get(name):
    if not isinstance(name, str):
        raise TypeError(f"compile: loss must be a name, got {name!r}")
    return _validate.choice("compile", "loss", _ALIASES.get(name, name), NAMES)


def _embeddings(y_pred):
    y = np.asarray(y_pred)
    # float32 stays float32; anything else (ints, float64) is computed in float64.
    return np.ascontiguousarray(y, dtype=np.float32 if y.dtype == np.float32 else np.float64)


class TripletLoss:
    """The course's triplet loss (FaceNet, Schroff et al. 2015) on embeddings.

    ``loss(y_true, y_pred)`` with ``y_pred`` ``(N, 3, D)``: row i holds the anchor
    ``a``, a positive ``p`` (same identity) and a negative ``n``; ``y_true`` is
    ignored (pass None). Returns the float
    ``J = Σ_i max(‖a−p‖² − ‖a−n‖² + margin, 0)`` (summed over the batch, as the course).
    ``squared=False`` uses ``‖a−p+eps‖₂`` distances and ``reduction="mean"``
    averages: both together with eps = 1e-6 are ``torch.nn.TripletMarginLoss``.
    ``gradient(y_pred)`` returns ``(J, dJ/dy_pred)``.

    Errors (ValueError from the compiled core, naming ``triplet_loss`` and the
    argument): margin or eps negative or not finite (at construction), y_pred not
    ``(N, 3, D)``, NaN or inf embeddings. Not usable in ``compile(loss=...)`` yet:
    that needs custom losses from the graph engine.
    """

    def __init__(self, margin=0.2, squared=True, reduction="sum", eps=1e-6):
        self.margin, self.squared, self.reduction, self.eps = margin, squared, reduction, eps
        self.gradient(np.zeros((0, 3, 1)))  # the core checks the settings now, not at first use

    def gradient(self, y_pred):
        return _ops.triplet_loss(_embeddings(y_pred), margin=self.margin, squared=self.squared,
                                 reduction=self.reduction, eps=self.eps)

    def __call__(self, y_true, y_pred):
        return self.gradient(y_pred)[0]


class ContrastiveLoss:
    """Contrastive loss on pairs of embeddings (Hadsell, Chopra, LeCun 2006).

    ``loss(y_true, y_pred)`` with ``y_true`` ``(N,)`` of 1 (same identity) or 0 and
    ``y_pred`` ``(N, 2, D)`` holding each pair ``(e1, e2)``. With ``d = ‖e1 − e2‖₂``,
    returns the float ``L = (1/N) Σ same·d² + (1 − same)·max(margin − d, 0)²``.
    ``gradient(y_true, y_pred)`` returns ``(L, dL/dy_pred)``.

    Errors (ValueError naming ``contrastive_loss`` and the argument): margin
    negative or not finite (at construction), y_pred not ``(N, 2, D)``, y_true not
    ``(N,)`` of 0/1, NaN or inf embeddings. Not usable in ``compile(loss=...)``
    yet: that needs custom losses from the graph engine.
    """

    def __init__(self, margin=1.0):
        self.margin = margin
        self.gradient(np.zeros(1), np.zeros((1, 2, 1)))  # the core checks margin now

    def gradient(self, y_true, y_pred):
        y = _embeddings(y_pred)
        if y.ndim != 3 or y.shape[1] != 2:
            raise ValueError(f"ContrastiveLoss: y_pred must have shape (N, 2, D) (pairs e1, e2), "
                             f"got {y.shape}")
        loss, d1, d2 = _ops.contrastive_loss(y[:, 0], y[:, 1], np.asarray(y_true),
                                             margin=self.margin)
        return loss, np.stack([d1, d2], axis=1)

    def __call__(self, y_true, y_pred):
        return self.gradient(y_true, y_pred)[0]
