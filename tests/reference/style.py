"""Neural style transfer costs, written from the course's formulas (course 4,
week 4) in float64, one image at a time:
  G = A·Aᵀ with A = a reshaped (C, H·W)
  J_content = Σ (a_C − a_G)² / (4·C·H·W)
  J_style   = Σ (G_S − G_G)² / (4·C²·(H·W)²)
  TV        = Σ |x[h+1, w] − x[h, w]| + Σ |x[h, w+1] − x[h, w]|  (tf.image.total_variation)
A batch adds the per-image values."""

import numpy as np


def gram_matrix(a):
    a = np.asarray(a, dtype=np.float64)
    n, c = a.shape[:2]
    out = np.empty((n, c, c))
    for i in range(n):
        A = a[i].reshape(c, -1)
        out[i] = A @ A.T
    return out


def content_cost(a_C, a_G):
    a_C, a_G = np.asarray(a_C, np.float64), np.asarray(a_G, np.float64)
    _, c, h, w = a_G.shape
    return float(np.sum((a_C - a_G) ** 2) / (4 * c * h * w))


def style_cost(a_S, a_G):
    _, c, h, w = np.shape(a_G)
    return float(np.sum((gram_matrix(a_S) - gram_matrix(a_G)) ** 2) / (4 * c**2 * (h * w) ** 2))


def total_variation(img):
    x = np.asarray(img, dtype=np.float64)
    return float(np.abs(np.diff(x, axis=2)).sum() + np.abs(np.diff(x, axis=3)).sum())
