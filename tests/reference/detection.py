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


def yolo_encode(boxes, classes, grid, anchors, num_classes, image_size):
    """Plain loops over the boxes: cell of the centre, anchor of the best
    width/height IoU (first on ties), offsets in cells, YOLOv2's log sizes;
    a later box overwrites an earlier one. (A·(5+C), S, S)."""
    h, w = (image_size, image_size) if np.ndim(image_size) == 0 else image_size
    depth = 5 + num_classes
    target = np.zeros((len(anchors) * depth, grid, grid))
    for (x1, y1, x2, y2), cls in zip(np.asarray(boxes, np.float64), classes):
        bw, bh, cx, cy = x2 - x1, y2 - y1, (x1 + x2) / 2, (y1 + y2) / 2
        best, best_iou = 0, -1.0
        for k, (aw, ah) in enumerate(anchors):
            inter = min(bw, aw) * min(bh, ah)
            shape_iou = inter / (bw * bh + aw * ah - inter)
            if shape_iou > best_iou:
                best, best_iou = k, shape_iou
        gx, gy = cx / (w / grid), cy / (h / grid)
        j, i = int(np.floor(gx)), int(np.floor(gy))
        c0 = best * depth
        target[c0:c0 + depth, i, j] = 0
        target[c0:c0 + 5, i, j] = [1, gx - j, gy - i, np.log(bw / anchors[best][0]), np.log(bh / anchors[best][1])]
        target[c0 + 5 + cls, i, j] = 1
    return target


def yolo_filter_boxes(boxes, box_confidence, box_class_probs, threshold):
    """The course's assignment, in NumPy: scores = confidence × probs, best
    class per box, keep scores >= threshold (boolean mask in C order)."""
    box_scores = np.asarray(box_confidence, np.float64) * np.asarray(box_class_probs, np.float64)
    classes = np.argmax(box_scores, axis=-1)
    scores = np.max(box_scores, axis=-1)
    mask = scores >= threshold
    return scores[mask], np.asarray(boxes, np.float64)[mask], classes[mask]
