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


# Triplet mining by enumeration: every (anchor, positive, negative) looked at
# one at a time, distances from their definition.


def _d(x, y, squared=True):
    s = float(np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2))
    return s if squared else np.sqrt(s)


def batch_hard_triplets(emb, labels):
    """Per anchor with a positive and a negative: the farthest positive, the
    closest negative (first index on ties)."""
    out = []
    for a in range(len(emb)):
        best_p = best_n = None
        for j in range(len(emb)):
            if j == a:
                continue
            dj = _d(emb[a], emb[j])
            if labels[j] == labels[a]:
                if best_p is None or dj > best_p[0]:
                    best_p = (dj, j)
            elif best_n is None or dj < best_n[0]:
                best_n = (dj, j)
        if best_p is not None and best_n is not None:
            out.append((a, best_p[1], best_n[1]))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def semi_hard_triplets(emb, labels, margin=0.2, squared=True):
    """Per anchor-positive pair: the closest negative n with d(a,p) < d(a,n) <
    d(a,p) + margin (first index on ties); pairs without one are left out."""
    out = []
    for a in range(len(emb)):
        for p in range(len(emb)):
            if p == a or labels[p] != labels[a]:
                continue
            dp = _d(emb[a], emb[p], squared)
            best = None
            for n in range(len(emb)):
                if labels[n] == labels[a]:
                    continue
                dn = _d(emb[a], emb[n], squared)
                if dp < dn < dp + margin and (best is None or dn < best[0]):
                    best = (dn, n)
            if best is not None:
                out.append((a, p, best[1]))
    return np.array(out, dtype=np.int64).reshape(-1, 3)
