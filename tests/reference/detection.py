"""Boxes, written from the formulas (course 4, week 3; torchvision's box
formats): corners (x1, y1, x2, y2), area = max(0, x2 − x1)·max(0, y2 − y1),
IoU = inter / (area_a + area_b − inter) (0 for an empty union, at most 1),
greedy NMS by descending score with ties to the lower index."""

import numpy as np


def box_convert(boxes, in_fmt, out_fmt):
    b = np.asarray(boxes, dtype=np.float64)
    if in_fmt == "xyxy":
        x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    elif in_fmt == "xywh":
        x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 0] + b[..., 2], b[..., 1] + b[..., 3]
    else:  # cxcywh
        x1, y1 = b[..., 0] - b[..., 2] / 2, b[..., 1] - b[..., 3] / 2
        x2, y2 = b[..., 0] + b[..., 2] / 2, b[..., 1] + b[..., 3] / 2
    if out_fmt == "xyxy":
        cols = [x1, y1, x2, y2]
    elif out_fmt == "xywh":
        cols = [x1, y1, x2 - x1, y2 - y1]
    else:
        cols = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]
    return np.stack(cols, axis=-1)


def box_area(boxes):
    b = np.asarray(boxes, dtype=np.float64)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def iou(a, b):
    """(N, 4), (M, 4) -> (N, M), vectorised by broadcasting."""
    a = np.asarray(a, dtype=np.float64)[:, None, :]
    b = np.asarray(b, dtype=np.float64)[None, :, :]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    union = box_area(a[:, 0])[:, None] + box_area(b[0])[None, :] - inter
    return np.minimum(np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0), 1.0)


def nms(boxes, scores, iou_threshold=0.5, score_threshold=None, max_output=None):
    """Plain Python: visit by (−score, index), keep unless IoU > threshold with a kept box."""
    overlaps = iou(boxes, boxes)
    scores = [float(s) for s in scores]
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if score_threshold is not None and not scores[i] > score_threshold:
            continue
        if max_output is not None and len(kept) == max_output:
            break
        if all(overlaps[k, i] <= iou_threshold for k in kept):
            kept.append(i)
    return np.array(kept, dtype=np.int64)


def batched_nms(boxes, scores, classes, iou_threshold=0.5, score_threshold=None, max_output=None):
    """NMS per class, merged by (−score, index)."""
    kept = []
    for c in sorted(set(int(c) for c in classes)):
        idx = [i for i in range(len(classes)) if classes[i] == c]
        sub = nms(np.asarray(boxes)[idx], np.asarray(scores)[idx], iou_threshold, score_threshold)
        kept += [idx[k] for k in sub]
    kept.sort(key=lambda i: (-float(scores[i]), i))
    return np.array(kept[:max_output] if max_output is not None else kept, dtype=np.int64)
