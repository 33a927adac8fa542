"""Scaled dot-product attention from the formulas (Vaswani et al. 2017, eq. 1), float64.

q (B, Tq, d), k (B, Tk, d), v (B, Tk, dv):

    S = scale·q kᵀ                         (scale defaults to 1/√d)
    allowed[i, j] = mask[i, j] (True = attend) and, when causal, j <= i
    P = softmax of S over the allowed keys of each row, 0 elsewhere;
        a row with no allowed key is all 0 (PyTorch would give NaN)
    O = P v

Backward:  dV = Pᵀ dO,  dP = dO vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
           dq = scale·dS k,  dk = scale·dSᵀ q
"""

import numpy as np


def allowed(B, Tq, Tk, mask=None, causal=False):
    """(B, Tq, Tk) bool: which keys each query may attend to."""
    ok = np.ones((B, Tq, Tk), bool)
    if mask is not None:
        ok &= np.broadcast_to(np.asarray(mask, bool), (B, Tq, Tk))
    if causal:
        ok &= np.tril(np.ones((Tq, Tk), bool))
    return ok


def attention_forward(q, k, v, mask=None, causal=False, scale=None):
    """(o, p) in float64."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = scale * q @ k.transpose(0, 2, 1)
    ok = allowed(q.shape[0], q.shape[1], k.shape[1], mask, causal)
    top = np.where(ok, s, -np.inf).max(axis=-1, keepdims=True)
    e = np.where(ok, np.exp(s - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    p = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return p @ v, p


def attention_backward(do, q, k, v, p, scale=None):
    """(dq, dk, dv) in float64 from the forward's weights p."""
    do, q, k, v, p = (np.asarray(a, np.float64) for a in (do, q, k, v, p))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    dv = p.transpose(0, 2, 1) @ do
    dp = do @ v.transpose(0, 2, 1)
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return scale * ds @ k, scale * ds.transpose(0, 2, 1) @ q, dv


def additive_scores_forward(qp, kp, w):
    """Bahdanau's scores, float64: scores[b, i, j] = Σ_u w_u·tanh(qp[b, i, u] + kp[b, j, u])."""
    qp, kp, w = (np.asarray(a, np.float64) for a in (qp, kp, w))
    return np.tanh(qp[:, :, None, :] + kp[:, None, :, :]) @ w


def additive_scores_backward(dscores, qp, kp, w):
    """(dqp, dkp, dw): with t = tanh(qp_i + kp_j), g = dscores_ij·w·(1 − t²)."""
    dscores, qp, kp, w = (np.asarray(a, np.float64) for a in (dscores, qp, kp, w))
    t = np.tanh(qp[:, :, None, :] + kp[:, None, :, :])
    g = dscores[..., None] * w * (1.0 - t * t)
    return g.sum(axis=2), g.sum(axis=1), (dscores[..., None] * t).sum(axis=(0, 1, 2))
