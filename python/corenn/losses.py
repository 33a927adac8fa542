"""Losses by name. The model's last layer outputs logits; the loss applies the
softmax or sigmoid itself, fused and numerically stable.

    softmax_cross_entropy  integer class ids; mean over the batch of −log softmax(z)_y
    binary_cross_entropy   0/1 targets (N, K); mean over examples of the sum over the K
                           columns (the course's multi-task cost); NaN targets are
                           missing labels and are skipped
    mse                    mean over all elements of (pred − target)²

Loss objects (course 4, weeks 3–4), callable as in Keras: ``loss(y_true,
y_pred)`` returns the loss value (a float), and ``loss.loss_and_gradient(y_true,
y_pred)`` returns ``(loss, dloss/dy_pred)`` with the gradient shaped like
``y_pred``: the custom-loss protocol of ``compile(loss=...)``.

    TripletLoss, ContrastiveLoss   embeddings (faces, one-shot learning)
    YoloLoss                       YOLO detection heads (N, A·(5+C), S, S)
    LocalizationLoss               classification with localization (N, 5+K)
    MaskedMSE                      MSE that skips NaN targets (landmarks)

``batch_hard_triplets`` and ``semi_hard_triplets`` mine (anchor, positive,
negative) index triples within a batch of labelled embeddings.
"""

import numpy as np

from . import _validate
from ._core import ops as _ops

NAMES = ("softmax_cross_entropy", "binary_cross_entropy", "mse")
_ALIASES = {"sparse_categorical_crossentropy": "softmax_cross_entropy",
            "binary_crossentropy": "binary_cross_entropy", "mean_squared_error": "mse"}
# Keras's losses on one-hot targets: corenn takes the class ids instead.
_ONE_HOT = ("categorical_crossentropy", "categorical_cross_entropy")


def get(loss):
    """What compile(loss=...) takes for one output, as the engine takes it: a
    built-in loss's name (Keras's aliases accepted), fused in C++; or a custom
    loss, called once per step (with the GIL) between forward and backward:
    an object with loss_and_gradient(y_true, y_pred) (TripletLoss,
    ContrastiveLoss) gives that method, and a callable fn(y_true, y_pred) ->
    (loss, dloss_dy_pred) itself. y_pred is the output's batch (N, ...) in the
    model's dtype, y_true the targets given for it (any shape with N first);
    the gradient must have y_pred's shape: ValueError otherwise, and an
    exception, a wrong gradient or a non-finite loss leave the weights
    untouched. A custom loss is code, which a model file cannot hold: a model
    compiled with one saves (and loads) uncompiled, and save warns (once per model)."""
    if isinstance(loss, str):
        if loss in _ONE_HOT:
            raise ValueError(f"compile: loss {loss!r} (one-hot targets) is not built in; use "
                             "'softmax_cross_entropy' with integer class ids (y.argmax(axis=-1) of "
                             "one-hot y; Keras's sparse_categorical_crossentropy)")
        return _validate.choice("compile", "loss", _ALIASES.get(loss, loss), NAMES)
    method = getattr(loss, "loss_and_gradient", None)
    if callable(method):
        return method
    if callable(loss):
        return loss
    raise TypeError(f"compile: loss must be a name, None, a callable fn(y_true, y_pred) -> "
                    f"(loss, gradient) or an object with loss_and_gradient(y_true, y_pred), "
                    f"got {loss!r}")


def _float(owner, y):
    y = _validate.array(owner, "y_pred", y)
    # float32 stays float32; anything else (ints, float64) is computed in float64.
    return np.ascontiguousarray(y, dtype=np.float32 if y.dtype == np.float32 else np.float64)


def _target(owner, y_true, like):
    # Targets take the dtype of the predictions: the ops refuse mixed dtypes.
    return np.ascontiguousarray(_validate.array(owner, "y_true", y_true), dtype=like.dtype)


class TripletLoss:
    """The course's triplet loss (FaceNet, Schroff et al. 2015) on embeddings.

    ``loss(y_true, y_pred)`` with ``y_pred`` ``(N, 3, D)``: row i holds the anchor
    ``a``, a positive ``p`` (same identity) and a negative ``n``; ``y_true`` is
    ignored (pass None). Returns the float
    ``J = Σ_i max(‖a−p‖² − ‖a−n‖² + margin, 0)`` (summed over the batch, as the course).
    ``squared=False`` uses ``‖a−p+eps‖₂`` distances and ``reduction="mean"``
    averages: both together with eps = 1e-6 are ``torch.nn.TripletMarginLoss``.

    ``mining="batch_hard"`` or ``"semi_hard"`` mines the triplets within the
    batch instead: ``y_true`` is then the labels ``(N,)`` and ``y_pred`` the
    embeddings ``(N, D)``; the loss is J over the triples of
    :func:`batch_hard_triplets` or :func:`semi_hard_triplets` (0 when there is
    none), and the gradient of each triple's rows is added back onto the
    embeddings it came from (the choice of triples is a step function of the
    embeddings: it gets no gradient).

    ``loss_and_gradient(y_true, y_pred)`` returns ``(J, dJ/dy_pred)``.

    Errors (ValueError from the compiled core, naming ``triplet_loss`` and the
    argument): margin or eps negative or not finite (at construction), y_pred not
    ``(N, 3, D)``, NaN or inf embeddings; with mining, the errors of the miners.
    """

    def __init__(self, margin=0.2, squared=True, reduction="sum", eps=1e-6, mining=None):
        self.margin, self.squared, self.reduction, self.eps = margin, squared, reduction, eps
        self.mining = None if mining is None else _validate.choice(
            "TripletLoss", "mining", mining, tuple(_MINERS))
        self._loss(np.zeros((0, 3, 1)))  # the core checks the settings now, not at first use

    def _loss(self, triplets):
        return _ops.triplet_loss(triplets, margin=self.margin, squared=self.squared,
                                 reduction=self.reduction, eps=self.eps)

    def loss_and_gradient(self, y_true, y_pred):
        y = _float("TripletLoss", y_pred)
        if self.mining is None:
            return self._loss(y)
        if self.mining == "semi_hard":
            idx = semi_hard_triplets(y, y_true, margin=self.margin, squared=self.squared)
        else:
            idx = batch_hard_triplets(y, y_true)
        loss, grad = self._loss(np.ascontiguousarray(y[idx]))   # (M, 3, D)
        dy = np.zeros_like(y)
        for k in range(3):      # an embedding may sit in several triples: sum its parts
            np.add.at(dy, idx[:, k], grad[:, k])
        return loss, dy

    def __call__(self, y_true, y_pred):
        return self.loss_and_gradient(y_true, y_pred)[0]


class ContrastiveLoss:
    """Contrastive loss on pairs of embeddings (Hadsell, Chopra, LeCun 2006).

    ``loss(y_true, y_pred)`` with ``y_true`` ``(N,)`` of 1 (same identity) or 0 and
    ``y_pred`` ``(N, 2, D)`` holding each pair ``(e1, e2)``. With ``d = ‖e1 − e2‖₂``,
    returns the float ``L = (1/N) Σ same·d² + (1 − same)·max(margin − d, 0)²``.
    ``loss_and_gradient(y_true, y_pred)`` returns ``(L, dL/dy_pred)``.

    Errors (ValueError naming ``contrastive_loss`` and the argument): margin
    negative or not finite (at construction), y_pred not ``(N, 2, D)``, y_true not
    ``(N,)`` of 0/1, NaN or inf embeddings.
    """

    def __init__(self, margin=1.0):
        self.margin = margin
        self.loss_and_gradient(np.zeros(1), np.zeros((1, 2, 1)))  # the core checks margin now

    def loss_and_gradient(self, y_true, y_pred):
        y = _float("ContrastiveLoss", y_pred)
        if y.ndim != 3 or y.shape[1] != 2:
            raise ValueError(f"ContrastiveLoss: y_pred must have shape (N, 2, D) (pairs e1, e2), "
                             f"got {y.shape}")
        loss, d1, d2 = _ops.contrastive_loss(y[:, 0], y[:, 1], _validate.array("ContrastiveLoss", "y_true", y_true),
                                             margin=self.margin)
        return loss, np.stack([d1, d2], axis=1)

    def __call__(self, y_true, y_pred):
        return self.loss_and_gradient(y_true, y_pred)[0]


# Triplet mining ----------------------------------------------------------------


def _labelled_embeddings(owner, embeddings, labels):
    e = _validate.array(owner, "embeddings", embeddings)
    if e.ndim != 2:
        raise ValueError(f"{owner}: embeddings must have shape (N, D), got {e.shape}")
    e = _validate.finite(owner, "embeddings", e.astype(np.float64))
    y = _validate.array(owner, "labels", labels, labels=True)
    if y.shape != (len(e),):
        raise ValueError(f"{owner}: labels must have shape ({len(e)},) (one per embedding), "
                         f"got {y.shape}")
    return e, y


def _distances(e, squared):
    # ‖x_i − x_j‖² from the Gram matrix, rounding clamped at 0; exactly 0 on the diagonal.
    sq = np.einsum("ij,ij->i", e, e)
    d = np.maximum(sq[:, None] + sq[None, :] - 2 * (e @ e.T), 0)
    np.fill_diagonal(d, 0)
    return d if squared else np.sqrt(d)


def batch_hard_triplets(embeddings, labels):
    """Batch-hard triplets (Hermans, Beyer, Leibe 2017, "In Defense of the
    Triplet Loss"): for each anchor, its farthest positive and its closest
    negative within the batch.

    embeddings ``(N, D)``, labels ``(N,)`` (any values compared with ==).
    Returns an int64 array ``(M, 3)`` of (anchor, positive, negative) indices,
    one row per anchor that has at least one positive (another embedding with
    its label) and one negative, in anchor order; ties go to the lower index.
    Distances are Euclidean (squared or not: the order is the same).
    ``embeddings[triplets]`` is the ``(M, 3, D)`` input of :class:`TripletLoss`.

    ValueError naming the argument: embeddings not 2-D or not finite, labels
    not ``(N,)``.
    """
    e, y = _labelled_embeddings("batch_hard_triplets", embeddings, labels)
    d = _distances(e, squared=True)
    same = y[:, None] == y[None, :]
    positive = same & ~np.eye(len(e), dtype=bool)
    negative = ~same
    anchors = np.flatnonzero(positive.any(axis=1) & negative.any(axis=1))
    pos = np.argmax(np.where(positive, d, -np.inf)[anchors], axis=1)
    neg = np.argmin(np.where(negative, d, np.inf)[anchors], axis=1)
    return np.stack([anchors, pos, neg], axis=1).astype(np.int64).reshape(-1, 3)


def semi_hard_triplets(embeddings, labels, margin=0.2, squared=True):
    """Semi-hard triplets (FaceNet, Schroff et al. 2015, section 3.2): for every
    anchor-positive pair (a, p), the closest negative n that is still farther
    from the anchor than the positive but inside the margin:
    d(a, p) < d(a, n) < d(a, p) + margin.

    d is the squared Euclidean distance (the course's; ``squared=False``: the
    Euclidean one, as :class:`TripletLoss`'s option). embeddings ``(N, D)``,
    labels ``(N,)``. Returns an int64 array ``(M, 3)`` of (anchor, positive,
    negative) indices ordered by anchor, then positive; pairs without a
    semi-hard negative are left out; ties go to the lower index. Such a triple
    has a loss in (0, margin): it is neither already satisfied nor the hardest.

    ValueError naming the argument: embeddings not 2-D or not finite, labels
    not ``(N,)``, margin negative or not finite.
    """
    owner = "semi_hard_triplets"
    margin = _validate.real(owner, "margin", margin, 0.0)
    e, y = _labelled_embeddings(owner, embeddings, labels)
    d = _distances(e, squared)
    same = y[:, None] == y[None, :]
    a, p = np.nonzero(same & ~np.eye(len(e), dtype=bool))      # row-major: by anchor, then positive
    d_ap = d[a, p][:, None]
    band = ~same[a] & (d[a] > d_ap) & (d[a] < d_ap + margin)    # (pairs, N)
    n = np.argmin(np.where(band, d[a], np.inf), axis=1)
    keep = band.any(axis=1)
    return np.stack([a[keep], p[keep], n[keep]], axis=1).astype(np.int64).reshape(-1, 3)


_MINERS = {"batch_hard": batch_hard_triplets, "semi_hard": semi_hard_triplets}


# Detection losses (course 4, week 3) ---------------------------------------------


class YoloLoss:
    """The YOLO loss of a detection head's raw output (course 4, week 3, with
    YOLOv2's box parametrisation and "don't care" rule; compiled,
    ``cn.ops.yolo_loss``).

    ``y_pred`` ``(N, A·(5+C), S, S)`` is the head's raw output z, ``y_true`` the
    stacked :func:`cn.detection.yolo_encode` targets of the same shape; channel
    ``a·(5+C) + k`` of cell (row i, column j) is field k of anchor a. The
    output is read as :func:`cn.detection.yolo_decode` with
    ``from_logits=True`` does: σ(z_0) objectness, σ(z_1), σ(z_2) the centre's
    offset in the cell, z_3, z_4 the log size relative to the anchor,
    softmax(z_5…) the classes. Per image, summed over anchors and cells, with
    obj = the target's p_c::

        obj · ( λcoord·[(σ(z_1) − t_x)² + (σ(z_2) − t_y)² + (z_3 − t_w)² + (z_4 − t_h)²]
                − log σ(z_0) − Σ_c t_c·log softmax(z_5…)_c )
        + (1 − obj)·(1 − ignore)·λnoobj·(−log(1 − σ(z_0)))

    averaged over the N images. ``ignore`` marks YOLOv2's "don't care"
    predictions: where no object is assigned but the predicted box has IoU >
    ``ignore_threshold`` with one of the image's true boxes (read back from
    the targets), the objectness is not pushed to 0. The box terms are YOLOv2's
    (sigmoid offsets, log-space sizes: the space yolo_encode's targets live
    in), not YOLOv1's √w, √h; objectness and classes use cross-entropy (the
    course's squared error on p_c would saturate behind the sigmoid).

    anchors ``(A, 2)`` (width, height) and ``image_size`` (an int or (height,
    width), keyword-only) in pixels, as for yolo_encode. ``loss(y_true,
    y_pred)`` returns the float; ``loss_and_gradient(y_true, y_pred)`` returns
    ``(loss, dloss/dy_pred)``.

    Errors (ValueError naming the argument): anchors not (A, 2) positive,
    image_size not positive, lambdas negative, ignore_threshold outside [0, 1]
    (at construction); y_pred without A·(5+C) channels or not square; y_true
    of another shape, not finite, or with a p_c other than 0 or 1.
    """

    def __init__(self, anchors, num_classes, lambda_coord=5.0, lambda_noobj=0.5, *, image_size,
                 ignore_threshold=0.6):
        self.num_classes = _validate.integer("YoloLoss", "num_classes", num_classes, 1, _validate.INT_MAX)
        self.anchors = _validate.array("YoloLoss", "anchors", anchors, np.float64)
        size = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
        if len(size) != 2:
            raise ValueError(f"YoloLoss: image_size must be an int or (height, width), got {image_size!r}")
        self.image_size = size
        self.lambda_coord, self.lambda_noobj = lambda_coord, lambda_noobj
        self.ignore_threshold = ignore_threshold
        # The core checks the settings now, not at first use.
        depth = len(self.anchors) * (5 + self.num_classes) if self.anchors.ndim == 2 else 6
        self.loss_and_gradient(np.zeros((1, depth, 1, 1)), np.zeros((1, depth, 1, 1)))

    def loss_and_gradient(self, y_true, y_pred):
        y = _float("YoloLoss", y_pred)
        depth = len(self.anchors) * (5 + self.num_classes) if self.anchors.ndim == 2 else None
        if y.ndim == 4 and depth is not None and y.shape[1] != depth:  # else the core names the shapes
            raise ValueError(f"YoloLoss: y_pred must have A*(5+C) = {depth} channels "
                             f"(A = {len(self.anchors)}, C = {self.num_classes}), got shape {y.shape}")
        return _ops.yolo_loss(_target("YoloLoss", y_true, y), y, self.anchors, self.image_size,
                              lambda_coord=self.lambda_coord, lambda_noobj=self.lambda_noobj,
                              ignore_threshold=self.ignore_threshold)

    def __call__(self, y_true, y_pred):
        return self.loss_and_gradient(y_true, y_pred)[0]


class LocalizationLoss:
    """The course's classification-with-localization loss (course 4, week 3,
    "Object localization"; compiled, ``cn.ops.localization_loss``).

    Rows of ``y_true`` and ``y_pred`` ``(N, 5 + K)`` are (p_c, b_x, b_y, b_h,
    b_w, c_1 … c_K). ``class_loss="squared"`` is the lecture's formula::

        L(ŷ, y) = Σ_k (ŷ_k − y_k)²   if y_1 = p_c = 1
                = (ŷ_1 − y_1)²        if p_c = 0

    averaged over the N rows. ``class_loss="cross_entropy"`` is the variant the
    lecture recommends in practice: logistic loss on the p_c logit, squared
    error on the box, softmax cross-entropy on the class logits (the latter two
    only when p_c = 1). Where p_c = 0 the other target entries are "don't care"
    (the course's "?"): any value, NaN included. ``loss(y_true, y_pred)`` returns
    the float, ``loss_and_gradient`` ``(loss, dloss/dy_pred)``.

    ValueError naming the argument: class_loss unknown, y_pred not (N, 5+K)
    with N, K >= 1, y_true of another shape, p_c not 0/1, NaN in a row with p_c = 1.
    """

    def __init__(self, class_loss="squared"):
        self.class_loss = _validate.choice("LocalizationLoss", "class_loss", class_loss,
                                           ("squared", "cross_entropy"))

    def loss_and_gradient(self, y_true, y_pred):
        y = _float("LocalizationLoss", y_pred)
        return _ops.localization_loss(_target("LocalizationLoss", y_true, y), y, class_loss=self.class_loss)

    def __call__(self, y_true, y_pred):
        return self.loss_and_gradient(y_true, y_pred)[0]


class MaskedMSE:
    """Mean squared error over the targets that are present: NaN targets are
    missing (landmarks not annotated in an image) and skipped, like the
    binary cross-entropy's NaN labels (compiled, ``cn.ops.masked_mse``).

    ``L = Σ_present (ŷ − y)² / (number present)`` over all entries of ``y_pred``
    (any shape, e.g. (N, 2·landmarks)) and ``y_true`` (the same shape): the MSE
    of the landmarks that exist, so with nothing missing it is ``"mse"``. 0,
    with a zero gradient, when every target is missing. ``loss(y_true,
    y_pred)`` returns the float, ``loss_and_gradient`` ``(loss, dloss/dy_pred)``.
    ValueError: shapes differ, or y_pred empty.
    """

    def loss_and_gradient(self, y_true, y_pred):
        y = _float("MaskedMSE", y_pred)
        return _ops.masked_mse(_target("MaskedMSE", y_true, y), y)

    def __call__(self, y_true, y_pred):
        return self.loss_and_gradient(y_true, y_pred)[0]
