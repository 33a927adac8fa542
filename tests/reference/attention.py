"""Scaled dot-product attention from the formulas (Vaswani et al. 2017, eq. 1), float64.

q (B, Tq, d), k (B, Tk, d), v (B, Tk, dv):

    S = scale·q kᵀ                         (scale defaults to 1/√d)
    allowed[i, j] = mask[i, j] (True = attend) and, when causal, j <= i
    P = softmax of S over the allowed keys of each row, 0 elsewhere;
        a row with no allowed key is all 0 (PyTorch would give NaN)
    O = P v

Backward:  dV = Pᵀ dO,  dP = dO vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
           dq = scale·dS k,  dk = scale·dSᵀ q

Dropout on the weights (keep (B, Tq, Tk) given, 1 = kept): O = P̃ v with
P̃ = P ⊙ keep / (1 − rate); backward dV = P̃ᵀ dO, dP = (dO vᵀ) ⊙ keep / (1 − rate).
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


def _slope(keep, rate):
    """keep/(1 − rate), the dropout's factor on each weight (1 without dropout)."""
    return 1.0 if keep is None else np.asarray(keep, np.float64) / (1.0 - rate)


def weights_forward(s, v, mask=None, causal=False, keep=None, rate=0.0):
    """(o, p) in float64 from scores s (B, Tq, Tk): p the masked softmax, o = P̃ v."""
    s, v = (np.asarray(a, np.float64) for a in (s, v))
    ok = allowed(s.shape[0], s.shape[1], s.shape[2], mask, causal)
    top = np.where(ok, s, -np.inf).max(axis=-1, keepdims=True)
    e = np.where(ok, np.exp(s - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    p = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    return (p * _slope(keep, rate)) @ v, p


def weights_backward(do, v, p, keep=None, rate=0.0):
    """(ds, dv) in float64: the gradients of weights_forward's scores and values."""
    do, v, p = (np.asarray(a, np.float64) for a in (do, v, p))
    dv = (p * _slope(keep, rate)).transpose(0, 2, 1) @ do
    dp = (do @ v.transpose(0, 2, 1)) * _slope(keep, rate)
    return p * (dp - (dp * p).sum(axis=-1, keepdims=True)), dv


def attention_forward(q, k, v, mask=None, causal=False, scale=None, keep=None, rate=0.0):
    """(o, p) in float64."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    return weights_forward(scale * q @ k.transpose(0, 2, 1), v, mask, causal, keep, rate)


def attention_backward(do, q, k, v, p, scale=None, keep=None, rate=0.0):
    """(dq, dk, dv) in float64 from the forward's weights p."""
    do, q, k, v, p = (np.asarray(a, np.float64) for a in (do, q, k, v, p))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    ds, dv = weights_backward(do, v, p, keep, rate)
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


def layer_forward(query, value, key=None, score="dot", scale=1.0, concat_weight=1.0, query_mask=None,
                  value_mask=None, causal=False):
    """Keras's Attention / AdditiveAttention in float64: (output, weights).
    score: "dot" (S = scale·q kᵀ), "concat" (S_ij = concat_weight·Σ_d
    tanh(scale·(q_id + k_jd)), Keras 3) or "additive" (S_ij = Σ_d scale_d·tanh(q_id
    + k_jd), scale a (D,) vector or 1). value_mask (N, Tv) leaves keys out of the
    softmax (a query with none left gets zeros), query_mask (N, Tq) zeros the
    output rows of masked queries (Keras); the weights are not zeroed."""
    query, value = (np.asarray(a, np.float64) for a in (query, value))
    key = value if key is None else np.asarray(key, np.float64)
    if score == "dot":
        s = scale * query @ key.transpose(0, 2, 1)
    elif score == "concat":
        s = additive_scores_forward(scale * query, scale * key, np.full(query.shape[-1], concat_weight))
    else:
        s = additive_scores_forward(query, key, np.broadcast_to(np.asarray(scale, np.float64), query.shape[-1:]))
    mask = None if value_mask is None else np.broadcast_to(
        np.asarray(value_mask, bool)[:, None, :], s.shape)
    o, p = weights_forward(s, value, mask, causal)
    if query_mask is not None:
        o = o * np.asarray(query_mask, bool)[..., None]
    return o, p
