"""Embedding losses written from their formulas, in float64, one row at a time.
Triplet (course 4, week 4; FaceNet): Σ_i max(d(a,p) − d(a,n) + α, 0) with
d = ‖x − y‖² (squared) or ‖x − y + eps‖₂ (PyTorch's pairwise_distance), summed
or averaged. Contrastive (Hadsell et al. 2006): with d = ‖e1 − e2‖₂,
(1/N) Σ same·d² + (1 − same)·max(m − d, 0)²."""

import numpy as np


def triplet_loss(emb, margin=0.2, squared=True, reduction="sum", eps=1e-6):
    emb = np.asarray(emb, dtype=np.float64)
    losses = []
    for a, p, n in emb:
        if squared:
            dp, dn = np.sum((a - p) ** 2), np.sum((a - n) ** 2)
        else:
            dp, dn = np.linalg.norm(a - p + eps), np.linalg.norm(a - n + eps)
        losses.append(max(dp - dn + margin, 0.0))
    total = float(np.sum(losses))
    return total / len(emb) if reduction == "mean" else total


def contrastive_loss(e1, e2, same, margin=1.0):
    e1, e2 = np.asarray(e1, np.float64), np.asarray(e2, np.float64)
    total = 0.0
    for x, y, s in zip(e1, e2, np.asarray(same, np.float64)):
        d = np.linalg.norm(x - y)
        total += s * d**2 + (1 - s) * max(margin - d, 0.0) ** 2
    return total / len(e1)
