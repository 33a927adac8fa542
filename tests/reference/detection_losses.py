"""Detection losses written from their formulas, in float64, one cell at a time.

YOLO (course 4, week 3, with YOLOv2's activations and "don't care" rule): for
raw outputs z and a yolo_encode target t, per anchor and cell,
  obj:    λcoord·[(σ(z1) − t_x)² + (σ(z2) − t_y)² + (z3 − t_w)² + (z4 − t_h)²]
          − log σ(z0) − Σ_c t_c log softmax(z5…)_c
  no obj: λnoobj·(−log(1 − σ(z0))), unless the predicted box has IoU >
          ignore_threshold with one of the image's true boxes (then 0),
summed and divided by the number of images.
Classification with localization (course 4, week 3): per row, Σ(ŷ − y)² if
p_c = 1 else (ŷ_1 − y_1)²; or BCE on p_c, squared box error and softmax
cross-entropy on the classes; mean over rows.
Where the target masks a prediction out (box and class fields without an
object, an ignored objectness), the term is 0·(the prediction), PyTorch's
`mask * loss`: 0 for a finite value, NaN for NaN or ±inf.
Masked MSE: mean of (ŷ − y)² over the targets that are not NaN.
"""

import numpy as np


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _log_softmax(z):
    z = z - np.max(z)
    return z - np.log(np.sum(np.exp(z)))


def _masked_out(v):
    with np.errstate(invalid="ignore"):   # 0·inf = NaN is the point
        return np.sum(0.0 * np.asarray(v, np.float64))


def _iou_cxcywh(a, b):
    ax1, ay1, ax2, ay2 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx1, by1, bx2, by2 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(min(ax2, bx2) - max(ax1, bx1), 0) * max(min(ay2, by2) - max(ay1, by1), 0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def yolo_best_iou(y_true, y_pred, anchors, image_size):
    """(N, A, S, S): each prediction's best IoU with its image's true boxes
    (0 where the image has none)."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    anchors = np.asarray(anchors, np.float64)
    n, ch, s, _ = y_pred.shape
    a_count = len(anchors)
    t = y_true.reshape(n, a_count, ch // a_count, s, s)
    p = y_pred.reshape(n, a_count, ch // a_count, s, s)
    h, w = image_size
    best = np.zeros((n, a_count, s, s))
    for img in range(n):
        truths = [((j + t[img, a, 1, i, j]) * w / s, (i + t[img, a, 2, i, j]) * h / s,
                   anchors[a, 0] * np.exp(t[img, a, 3, i, j]), anchors[a, 1] * np.exp(t[img, a, 4, i, j]))
                  for a in range(a_count) for i in range(s) for j in range(s) if t[img, a, 0, i, j] == 1]
        for a in range(a_count):
            for i in range(s):
                for j in range(s):
                    mine = ((j + _sigmoid(p[img, a, 1, i, j])) * w / s,
                            (i + _sigmoid(p[img, a, 2, i, j])) * h / s,
                            anchors[a, 0] * np.exp(p[img, a, 3, i, j]),
                            anchors[a, 1] * np.exp(p[img, a, 4, i, j]))
                    best[img, a, i, j] = max([_iou_cxcywh(mine, b) for b in truths], default=0.0)
    return best


def yolo_loss(y_true, y_pred, anchors, image_size, lambda_coord=5.0, lambda_noobj=0.5,
              ignore_threshold=0.6):
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    n, ch, s, _ = y_pred.shape
    a_count = len(anchors)
    t = y_true.reshape(n, a_count, ch // a_count, s, s)
    z = y_pred.reshape(n, a_count, ch // a_count, s, s)
    best = yolo_best_iou(y_true, y_pred, anchors, image_size)
    total = 0.0
    for img in range(n):
        for a in range(a_count):
            for i in range(s):
                for j in range(s):
                    tt, zz = t[img, a, :, i, j], z[img, a, :, i, j]
                    if tt[0] == 1:
                        total += lambda_coord * ((_sigmoid(zz[1]) - tt[1]) ** 2 + (_sigmoid(zz[2]) - tt[2]) ** 2
                                                 + (zz[3] - tt[3]) ** 2 + (zz[4] - tt[4]) ** 2)
                        total += -np.log(_sigmoid(zz[0]))
                        total += -np.sum(tt[5:] * _log_softmax(zz[5:]))
                    else:
                        if not best[img, a, i, j] > ignore_threshold:
                            total += lambda_noobj * -np.log(1 - _sigmoid(zz[0]))
                        else:
                            total += _masked_out(zz[0])
                        total += _masked_out(zz[1:])
    return total / n


def localization_loss(y_true, y_pred, class_loss="squared"):
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    total = 0.0
    for y, p in zip(y_true, y_pred):
        if class_loss == "squared":
            total += np.sum((p - y) ** 2) if y[0] == 1 else (p[0] - y[0]) ** 2 + _masked_out(p[1:])
        else:
            total += -(y[0] * np.log(_sigmoid(p[0])) + (1 - y[0]) * np.log(1 - _sigmoid(p[0])))
            if y[0] == 1:
                total += np.sum((p[1:5] - y[1:5]) ** 2) - np.sum(y[5:] * _log_softmax(p[5:]))
            else:
                total += _masked_out(p[1:])
    return total / len(y_true)


def masked_mse(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true, np.float64).ravel(), np.asarray(y_pred, np.float64).ravel()
    present = ~np.isnan(y_true)
    if not present.any():
        return 0.0
    return float(np.sum((y_pred[present] - y_true[present]) ** 2) / present.sum())
