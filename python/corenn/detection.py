"""Boxes for object detection (course 4, week 3): formats, IoU, non-max
suppression and mean average precision.

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

__all__ = ["batched_nms", "box_area", "box_convert", "iou", "mean_average_precision", "nms"]

_FORMATS = ("xyxy", "xywh", "cxcywh")


def _float_dtype(*arrays):
    # float32 only when every input is float32 (or narrower); ints and float64 give float64.
    return np.float32 if np.result_type(*arrays, np.float32) == np.float32 else np.float64


def _as_boxes(owner, name, boxes, dtype=None):
    boxes = np.asarray(boxes)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{owner}: {name} must have shape (N, 4), got {boxes.shape}")
    return np.ascontiguousarray(boxes, dtype=dtype or _float_dtype(boxes))


def box_convert(boxes, in_fmt, out_fmt):
    """Convert boxes ``(..., 4)`` between formats (torchvision.ops.box_convert).

    "xyxy": corners (x1, y1, x2, y2); "xywh": top-left corner and size
    (x1, y1, w, h); "cxcywh": centre and size (cx, cy, w, h). Returns a new
    float array of the same shape. ValueError for an unknown format or a last
    axis that is not 4.
    """
    _validate.choice("box_convert", "in_fmt", in_fmt, _FORMATS)
    _validate.choice("box_convert", "out_fmt", out_fmt, _FORMATS)
    b = np.asarray(boxes)
    if b.ndim < 1 or b.shape[-1] != 4:
        raise ValueError(f"box_convert: boxes must have shape (..., 4), got {b.shape}")
    b = b.astype(_float_dtype(b))
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
    a, b = np.asarray(a), np.asarray(b)
    dtype = _float_dtype(a, b)
    return _ops.box_iou(_as_boxes("iou", "a", a, dtype), _as_boxes("iou", "b", b, dtype))


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
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    dtype = _float_dtype(boxes, scores)
    return _ops.nms(_as_boxes("nms", "boxes", boxes, dtype), np.ascontiguousarray(scores, dtype=dtype),
                    iou_threshold, score_threshold, max_output)


def batched_nms(boxes, scores, classes, iou_threshold=0.5, score_threshold=None, max_output=None):
    """Non-max suppression within each class: boxes of different classes never
    suppress each other (torchvision.ops.batched_nms).

    classes ``(N,)`` integer labels. Returns the kept indices (int64) of all
    classes merged in descending score order (equal scores: lower index
    first), at most ``max_output`` in total. Other arguments as in :func:`nms`.
    """
    boxes, scores, classes = np.asarray(boxes), np.asarray(scores), np.asarray(classes)
    dtype = _float_dtype(boxes, scores)
    boxes = _as_boxes("batched_nms", "boxes", boxes, dtype)
    scores = np.ascontiguousarray(scores, dtype=dtype)
    if classes.shape != (len(boxes),) or not (classes.size == 0 or np.issubdtype(classes.dtype, np.integer)):
        raise ValueError(f"batched_nms: classes must be integer labels of shape ({len(boxes)},), "
                         f"got {classes.dtype} {classes.shape}")
    # One call over all boxes that keeps nothing validates every argument in C++
    # (shapes, NaN, thresholds; a negative max_output stays negative) even when
    # there is no class to loop over.
    _ops.nms(boxes, scores, iou_threshold, score_threshold, 0 if max_output is None else min(max_output, 0))
    kept = [idx[_ops.nms(boxes[idx], scores[idx], iou_threshold, score_threshold, max_output)]
            for idx in (np.flatnonzero(classes == c) for c in np.unique(classes))]
    kept = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    kept = kept[np.lexsort((kept, -scores[kept]))]
    return kept if max_output is None else kept[:max_output]


def _per_image(owner, name, seq, count):
    seq = list(seq)
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
        ps = np.asarray(pred_scores[i], np.float64)
        pc, tc = np.asarray(pred_classes[i]), np.asarray(true_classes[i])
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
