"""Boxes for object detection (course 4, week 3): formats, IoU, non-max
suppression, mean average precision and the YOLO grid encoding.

Boxes are corners ``(x1, y1, x2, y2)`` (torchvision's "xyxy": x to the right,
y down or up alike, x1 <= x2 and y1 <= y2 for a proper box) unless a function
says otherwise. Arrays of boxes are ``(N, 4)``; inputs may be any array-like:
float32 stays float32, other inputs are computed in float64.

Edge cases, decided once for every function here:

- A degenerate box (x2 < x1 or y2 < y1) has area 0, where torchvision's
  ``box_area`` returns a negative number; it overlaps nothing.
- ``iou`` is 0 when the union is empty (two zero-area boxes) and capped at 1,
  so it always lies in [0, 1], never NaN.
- Coordinates must be finite and scores must not be NaN: ValueError otherwise.

The IoU and NMS loops run in C++ (``cn.ops.box_iou``, ``cn.ops.nms``).
"""

import numpy as np

from . import _validate
from ._core import ops as _ops

__all__ = ["batched_nms", "box_area", "box_convert", "iou", "mean_average_precision", "nms",
           "yolo_decode", "yolo_encode", "yolo_filter_boxes"]

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _float_dtype(*arrays):
    # float32 only when every input is float32 (or narrower); ints and float64 give float64.
    return np.float32 if np.result_type(*arrays, np.float32) == np.float32 else np.float64


def _as_boxes(owner, name, boxes, dtype=None, finite=True):
    # finite=False where the boxes go to a kernel (box_iou, nms) that checks them itself.
    boxes = _validate.array(owner, name, boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{owner}: {name} must have shape (N, 4), got {boxes.shape}")
    boxes = np.ascontiguousarray(boxes, dtype=dtype or _float_dtype(boxes))
    return _validate.finite(owner, name, boxes) if finite else boxes


def box_convert(boxes, in_fmt, out_fmt):
    """Convert boxes ``(..., 4)`` between formats (torchvision.ops.box_convert).

    "xyxy": corners (x1, y1, x2, y2); "xywh": top-left corner and size
    (x1, y1, w, h); "cxcywh": centre and size (cx, cy, w, h). Returns a new
    float array of the same shape. ValueError for an unknown format or a last
    axis that is not 4.
    """
    _validate.choice("box_convert", "in_fmt", in_fmt, _FORMATS)
    _validate.choice("box_convert", "out_fmt", out_fmt, _FORMATS)
    b = _validate.array("box_convert", "boxes", boxes)
    if b.ndim < 1 or b.shape[-1] != 4:
        raise ValueError(f"box_convert: boxes must have shape (..., 4), got {b.shape}")
    b = _validate.finite("box_convert", "boxes", b.astype(_float_dtype(b)))
    p, q, r, s = (b[..., k] for k in range(4))
    if in_fmt == "xywh":
        p, q, r, s = p, q, p + r, q + s
    elif in_fmt == "cxcywh":
        p, q, r, s = p - r / 2, q - s / 2, p + r / 2, q + s / 2
    # (p, q, r, s) are now corners.
    if out_fmt == "xywh":
        p, q, r, s = p, q, r - p, s - q
    elif out_fmt == "cxcywh":
        p, q, r, s = (p + r) / 2, (q + s) / 2, r - p, s - q
    return np.stack([p, q, r, s], axis=-1)


def box_area(boxes):
    """Areas ``(N,)`` of corner boxes ``(N, 4)``: max(0, x2 − x1) · max(0, y2 − y1)
    (0 for a degenerate box)."""
    b = _as_boxes("box_area", "boxes", boxes)
    return np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)


def iou(a, b):
    """Intersection over union of every pair: ``a (N, 4)``, ``b (M, 4)`` -> ``(N, M)``.

    IoU = |A ∩ B| / |A ∪ B| (course 4, week 3), with the intersection's sides
    clamped at 0; 0 for an empty union, in [0, 1] always. ValueError naming the
    argument for a shape that is not (N, 4) or a NaN/inf coordinate.
    """
    a, b = _validate.array("iou", "a", a), _validate.array("iou", "b", b)
    dtype = _float_dtype(a, b)
    return _ops.box_iou(_as_boxes("iou", "a", a, dtype, False), _as_boxes("iou", "b", b, dtype, False))


def nms(boxes, scores, iou_threshold=0.5, score_threshold=None, max_output=None):
    """Greedy non-max suppression: indices (int64) of the kept boxes, in
    descending score order.

    Candidates are visited by descending score (equal scores: lower index
    first); a candidate is kept unless its IoU with an already kept box is
    > ``iou_threshold``. Boxes with score <= ``score_threshold`` are dropped
    first, and at most ``max_output`` boxes are kept (None: no limit). These
    are the rules of ONNX's NonMaxSuppression with ``center_point_box=0``
    (and of tf.image.non_max_suppression).

    boxes ``(N, 4)`` corners, scores ``(N,)``. ValueError naming the argument:
    wrong shapes, NaN in either, a negative or NaN ``iou_threshold``, a
    negative ``max_output``.
    """
    boxes, scores = _validate.array("nms", "boxes", boxes), _validate.array("nms", "scores", scores)
    dtype = _float_dtype(boxes, scores)
    return _ops.nms(_as_boxes("nms", "boxes", boxes, dtype, False), np.ascontiguousarray(scores, dtype=dtype),
                    iou_threshold, score_threshold, max_output)


def batched_nms(boxes, scores, classes, iou_threshold=0.5, score_threshold=None, max_output=None):
    """Non-max suppression within each class: boxes of different classes never
    suppress each other (torchvision.ops.batched_nms).

    classes ``(N,)`` integer labels. Returns the kept indices (int64) of all
    classes merged in descending score order (equal scores: lower index
    first), at most ``max_output`` in total. Other arguments as in :func:`nms`.
    """
    owner = "batched_nms"
    if max_output is not None:  # used here too (slicing), not only by the core's nms
        max_output = _validate.integer(owner, "max_output", max_output, 0)
    boxes, scores = _validate.array(owner, "boxes", boxes), _validate.array(owner, "scores", scores)
    classes = _validate.array(owner, "classes", classes)
    dtype = _float_dtype(boxes, scores)
    boxes = _as_boxes("batched_nms", "boxes", boxes, dtype, False)
    scores = np.ascontiguousarray(scores, dtype=dtype)
    if classes.shape != (len(boxes),) or not (classes.size == 0 or np.issubdtype(classes.dtype, np.integer)):
        raise ValueError(f"batched_nms: classes must be integer labels of shape ({len(boxes)},), "
                         f"got {classes.dtype} {classes.shape}")
    # One call over all boxes that keeps nothing validates the other arguments in
    # C++ (shapes, NaN, thresholds) even when there is no class to loop over.
    try:
        _ops.nms(boxes, scores, iou_threshold, score_threshold, 0)
    except (TypeError, ValueError) as exc:  # the core's message names nms: say whose arguments
        raise type(exc)(f"{owner}: {exc}") from None
    kept = [idx[_ops.nms(boxes[idx], scores[idx], iou_threshold, score_threshold, max_output)]
            for idx in (np.flatnonzero(classes == c) for c in np.unique(classes))]
    kept = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    kept = kept[np.lexsort((kept, -scores[kept]))]
    return kept if max_output is None else kept[:max_output]


def _per_image(owner, name, seq, count):
    seq = _validate.sequence(owner, name, seq, "a list with one array per image")
    if count is not None and len(seq) != count:
        raise ValueError(f"{owner}: {name} must hold one entry per image ({count}), got {len(seq)}")
    return seq


def mean_average_precision(pred_boxes, pred_scores, pred_classes, true_boxes, true_classes,
                           iou_threshold=0.5):
    """Mean average precision of detections, PASCAL VOC 2010+ style.

    Inputs are lists with one entry per image: ``pred_boxes[i] (K_i, 4)``,
    ``pred_scores[i] (K_i,)``, ``pred_classes[i] (K_i,)`` integer labels,
    ``true_boxes[i] (G_i, 4)``, ``true_classes[i] (G_i,)``.

    Per class, the detections of all images are visited by descending score
    (equal scores: earlier image, then lower index, first). A detection is a
    true positive when the ground-truth box of its class in its image with the
    largest IoU has IoU > ``iou_threshold`` and no earlier detection matched
    it; otherwise it is a false positive (each ground truth is matched at most
    once). AP is the area under the precision-recall curve with precision
    made monotone (all-point interpolation, VOC devkit ``VOCap``):
    AP = Σ (r_k − r_{k−1}) · max_{k' >= k} p_{k'}. The result is the mean AP
    over the classes present in the ground truth (a class with detections but
    no ground truth is not scored). Returns a float in [0, 1].

    ValueError: lists of different lengths, wrong shapes, no ground-truth box
    at all, ``iou_threshold`` outside [0, 1].
    """
    owner = "mean_average_precision"
    iou_threshold = _validate.real(owner, "iou_threshold", iou_threshold, 0.0, 1.0)
    pred_boxes = _per_image(owner, "pred_boxes", pred_boxes, None)
    n = len(pred_boxes)
    pred_scores = _per_image(owner, "pred_scores", pred_scores, n)
    pred_classes = _per_image(owner, "pred_classes", pred_classes, n)
    true_boxes = _per_image(owner, "true_boxes", true_boxes, n)
    true_classes = _per_image(owner, "true_classes", true_classes, n)
    images = []
    for i in range(n):
        pb = _as_boxes(owner, f"pred_boxes[{i}]", pred_boxes[i], np.float64)
        tb = _as_boxes(owner, f"true_boxes[{i}]", true_boxes[i], np.float64)
        ps = _validate.array(owner, f"pred_scores[{i}]", pred_scores[i], np.float64)
        pc = _validate.array(owner, f"pred_classes[{i}]", pred_classes[i], labels=True)
        tc = _validate.array(owner, f"true_classes[{i}]", true_classes[i], labels=True)
        for name, arr, k in (("pred_scores", ps, len(pb)), ("pred_classes", pc, len(pb)),
                             ("true_classes", tc, len(tb))):
            if arr.shape != (k,):
                raise ValueError(f"{owner}: {name}[{i}] must have shape ({k},), got {arr.shape}")
        if np.isnan(ps).any():
            raise ValueError(f"{owner}: pred_scores[{i}] must not contain NaN")
        images.append((pb, ps, pc, tb, tc))
    classes = np.unique(np.concatenate([im[4] for im in images])) if images else []
    if len(classes) == 0:
        raise ValueError(f"{owner}: true_boxes holds no ground-truth box; AP is undefined")
    return float(np.mean([_average_precision(images, c, iou_threshold) for c in classes]))


def _average_precision(images, c, iou_threshold):
    scores, image_of, overlaps = [], [], []
    positives = 0
    for i, (pb, ps, pc, tb, tc) in enumerate(images):
        p, t = pc == c, tc == c
        positives += int(t.sum())
        scores.append(ps[p])
        image_of.append(np.full(int(p.sum()), i))
        overlaps.append(iou(pb[p], tb[t]))      # (detections of c, truths of c) in image i
    row_of = np.concatenate([np.arange(len(s)) for s in scores])
    scores, image_of = np.concatenate(scores), np.concatenate(image_of)
    order = np.lexsort((row_of, image_of, -scores))  # stable: image, then index, break ties
    matched = [np.zeros(o.shape[1], bool) for o in overlaps]
    tp = np.zeros(len(order))
    for k, d in enumerate(order):
        o = overlaps[image_of[d]][row_of[d]]
        if o.size == 0:
            continue
        j = int(np.argmax(o))
        if o[j] > iou_threshold and not matched[image_of[d]][j]:
            matched[image_of[d]][j] = True
            tp[k] = 1
    tp_cum = np.cumsum(tp)
    recall = np.concatenate([[0.0], tp_cum / positives, [1.0]])
    precision = np.concatenate([[0.0], tp_cum / np.arange(1, len(tp) + 1), [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the monotone envelope
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


# YOLO ---------------------------------------------------------------------------
#
# One image's YOLO volume is (A·(5+C), S, S) in corenn's NCHW layout (the course's
# S × S × A × (5+C) with the anchor and box fields moved to the channels):
# channel a·(5+C) + k of cell (row i, column j) holds, for anchor a,
#   k = 0: p_c, 1 if the cell holds an object's centre for this anchor;
#   k = 1, 2: t_x, t_y, the centre's offset inside the cell, in [0, 1);
#   k = 3, 4: t_w, t_h = log(w / anchor_w), log(h / anchor_h) (YOLOv2);
#   k = 5 ... 4+C: the class one-hot.


def _image_size(owner, image_size):
    # int -> a square image; (height, width) otherwise. Returned as (H, W) floats.
    size = (image_size, image_size) if np.ndim(image_size) == 0 else tuple(image_size)
    if len(size) != 2:
        raise ValueError(f"{owner}: image_size must be an int or (height, width), got {image_size!r}")
    return tuple(_validate.real(owner, "image_size", v, 0.0, low_open=True) for v in size)


def _anchors(owner, anchors):
    a = _validate.array(owner, "anchors", anchors, np.float64)
    if a.ndim != 2 or a.shape[1] != 2 or len(a) == 0:
        raise ValueError(f"{owner}: anchors must have shape (A, 2) with A >= 1 (width, height), got {a.shape}")
    if not (np.isfinite(a).all() and (a > 0).all()):
        raise ValueError(f"{owner}: anchors must be finite and positive, got {a.tolist()}")
    return a


def _shape_iou(wh, anchors):
    # IoU of boxes (K, 2) and anchors (A, 2) as sizes only: both centred on the same point.
    inter = np.minimum(wh[:, None, 0], anchors[None, :, 0]) * np.minimum(wh[:, None, 1], anchors[None, :, 1])
    union = (wh[:, 0] * wh[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    return inter / union


def yolo_encode(boxes, classes, grid, anchors, num_classes, image_size):
    """The YOLO training target of one image (course 4, week 3; YOLOv2's box
    parametrisation): ``(A·(5+C), S, S)`` float32, NCHW.

    boxes ``(K, 4)`` corners in pixels, classes ``(K,)`` integer labels in
    [0, C), ``grid`` S (int >= 1), anchors ``(A, 2)`` (width, height) in
    pixels, ``num_classes`` C, ``image_size`` an int (square) or (height,
    width) in pixels. Each box goes to the cell (row ⌊c_y·S/H⌋, column
    ⌊c_x·S/W⌋) holding its centre (c_x, c_y) and to the anchor whose shape
    best matches it: the largest IoU of widths and heights only, both centred
    (ties: lower anchor index). Channel ``a·(5+C) + k`` of that cell holds:
    k = 0 p_c = 1; k = 1, 2 t_x, t_y = the centre's offset inside the cell in
    cell units, in [0, 1); k = 3, 4 t_w = log(w / anchor_w), t_h = log(h /
    anchor_h); k = 5 + class: 1 (one-hot). Everything else is 0 (p_c = 0
    marks "no object"; the other fields are then don't-care). Two boxes in the
    same cell and anchor: the later box wins.

    ValueError naming the argument: boxes not (K, 4), with NaN, zero or negative
    width or height, or a centre outside [0, W) × [0, H); classes not (K,)
    integers in [0, C); anchors not (A, 2) positive; grid or num_classes < 1.
    """
    owner = "yolo_encode"
    b = _as_boxes(owner, "boxes", boxes, np.float64)
    s = _validate.integer(owner, "grid", grid, 1, _validate.INT_MAX)
    c = _validate.integer(owner, "num_classes", num_classes, 1, _validate.INT_MAX)
    a = _anchors(owner, anchors)
    h, w = _image_size(owner, image_size)
    labels = _validate.array(owner, "classes", classes)
    if labels.shape != (len(b),) or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"{owner}: classes must be integer labels of shape ({len(b)},), "
                         f"got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= c):
        raise ValueError(f"{owner}: classes must lie in [0, {c}), got values in [{labels.min()}, {labels.max()}]")
    cxcywh = box_convert(b, "xyxy", "cxcywh")
    if not np.isfinite(cxcywh).all() or (cxcywh[:, 2:] <= 0).any():
        raise ValueError(f"{owner}: boxes must be finite with x2 > x1 and y2 > y1")
    if ((cxcywh[:, 0] < 0) | (cxcywh[:, 0] >= w) | (cxcywh[:, 1] < 0) | (cxcywh[:, 1] >= h)).any():
        raise ValueError(f"{owner}: every box centre must lie in the image [0, {w}) x [0, {h})")
    gx, gy = cxcywh[:, 0] * s / w, cxcywh[:, 1] * s / h   # centres in cell units
    col, row = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    best = np.argmax(_shape_iou(cxcywh[:, 2:], a), axis=1)
    target = np.zeros((len(a), 5 + c, s, s), np.float32)
    for k in range(len(b)):  # in order, so that a later box overwrites an earlier one
        cell = target[best[k], :, row[k], col[k]]
        cell[:] = 0
        cell[:5] = [1.0, gx[k] - col[k], gy[k] - row[k],
                    np.log(cxcywh[k, 2] / a[best[k], 0]), np.log(cxcywh[k, 3] / a[best[k], 1])]
        cell[5 + labels[k]] = 1.0
    return target.reshape(len(a) * (5 + c), s, s)


def yolo_decode(output, anchors, image_size, from_logits=False):
    """Boxes, scores and classes of every cell and anchor of YOLO outputs
    ``(N, A·(5+C), S, S)`` laid out as :func:`yolo_encode`'s target.

    With ``from_logits=False`` the output is read in the target's own space
    (p_c and class probabilities in [0, 1], t_x, t_y offsets in cells, t_w,
    t_h logs), so decoding an encoded target gives back its boxes. With
    ``from_logits=True`` the raw model output is activated first as in YOLOv2:
    sigmoid on p_c, t_x and t_y, softmax over the class scores.

    Box: centre ((j + t_x)·W/S, (i + t_y)·H/S) for cell (row i, column j),
    size (anchor_w·exp(t_w), anchor_h·exp(t_h)), returned as corners in pixels.
    Returns ``boxes (N, S·S·A, 4)``, ``scores (N, S·S·A)`` = p_c · max class
    probability and ``classes (N, S·S·A)`` int64 (the argmax), ordered by row,
    column, then anchor (the course's S × S × A). float32 output stays
    float32, anything else is computed in float64. Select with
    :func:`yolo_filter_boxes` or a score threshold, then :func:`nms`.

    ValueError: output not 4-D, not square, or with a channel count that is not
    A·(5+C) for some C >= 1; anchors not (A, 2) positive; NaN or inf in the
    output.
    """
    owner = "yolo_decode"
    a = _anchors(owner, anchors)
    h, w = _image_size(owner, image_size)
    out = _validate.array(owner, "output", output)
    if out.ndim != 4 or out.shape[2] != out.shape[3]:
        raise ValueError(f"{owner}: output must have shape (N, A*(5+C), S, S), got {out.shape}")
    n, ch, s = out.shape[0], out.shape[1], out.shape[2]
    if ch % len(a) or ch // len(a) < 6:
        raise ValueError(f"{owner}: output must have A*(5+C) channels with A = {len(a)} anchors and "
                         f"C >= 1, got {ch}")
    dtype = _float_dtype(out)
    out = _validate.finite(owner, "output", out.astype(dtype))
    v = out.reshape(n, len(a), ch // len(a), s, s).transpose(0, 3, 4, 1, 2)  # (N, S, S, A, 5+C)
    p_c, t_xy, t_wh, probs = v[..., 0], v[..., 1:3], v[..., 3:5], v[..., 5:]
    if from_logits:
        p_c, t_xy = 1 / (1 + np.exp(-p_c)), 1 / (1 + np.exp(-t_xy))
        probs = np.exp(probs - probs.max(axis=-1, keepdims=True))
        probs = probs / probs.sum(axis=-1, keepdims=True)
    cells = np.stack(np.meshgrid(np.arange(s), np.arange(s)), axis=-1)[:, :, None, :]  # (S, S, 1, (j, i))
    centre = (cells + t_xy) * np.array([w / s, h / s])
    size = a * np.exp(t_wh)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=-1).astype(dtype)
    scores = (p_c * probs.max(axis=-1)).astype(dtype)
    classes = np.argmax(probs, axis=-1).astype(np.int64)
    cells = s * s * len(a)  # explicit: an empty batch (N = 0) has no -1 to infer
    return boxes.reshape(n, cells, 4), scores.reshape(n, cells), classes.reshape(n, cells)


def yolo_filter_boxes(boxes, box_confidence, box_class_probs, threshold=0.6):
    """The course's ``yolo_filter_boxes`` (course 4, week 3 assignment): keep
    each box's best class when its score p_c · class probability is >=
    ``threshold``.

    boxes ``(..., 4)``, box_confidence ``(..., 1)`` or ``(...)``,
    box_class_probs ``(..., C)`` with the same leading axes (e.g. the course's
    (19, 19, 5, ·)). Returns ``(scores (K,), boxes (K, 4), classes (K,)
    int64)`` of the kept boxes in C order of the leading axes (as
    ``tf.boolean_mask``). ValueError: mismatched shapes, NaN or inf in any
    input, a negative or NaN threshold.
    """
    owner = "yolo_filter_boxes"
    threshold = _validate.real(owner, "threshold", threshold, 0.0)
    b, conf = _validate.array(owner, "boxes", boxes), _validate.array(owner, "box_confidence", box_confidence)
    probs = _validate.array(owner, "box_class_probs", box_class_probs)
    if b.ndim < 1 or b.shape[-1] != 4:
        raise ValueError(f"{owner}: boxes must have shape (..., 4), got {b.shape}")
    lead = b.shape[:-1]
    if probs.ndim < 1 or probs.shape[:-1] != lead or probs.shape[-1] < 1:
        raise ValueError(f"{owner}: box_class_probs must have shape {lead + ('C',)}, got {probs.shape}")
    if conf.shape == lead + (1,):
        conf = conf[..., 0]
    if conf.shape != lead:
        raise ValueError(f"{owner}: box_confidence must have shape {lead + (1,)} or {lead}, got {conf.shape}")
    dtype = _float_dtype(b, conf, probs)
    for name, x in (("boxes", b), ("box_confidence", conf), ("box_class_probs", probs)):
        if x.ndim:
            _validate.finite(owner, name, x.astype(dtype))
    box_scores = conf.astype(dtype)[..., None] * probs.astype(dtype)
    if np.isnan(box_scores).any():  # a 0-d confidence or probability skipped above
        raise ValueError(f"{owner}: box_confidence and box_class_probs must not contain NaN")
    classes = np.argmax(box_scores, axis=-1)
    scores = np.max(box_scores, axis=-1)
    keep = scores >= threshold
    return scores[keep], b.astype(dtype)[keep].reshape(-1, 4), classes[keep].astype(np.int64)
