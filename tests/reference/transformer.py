"""NumPy references for the transformer's layers, written from the formulas
(float64): softmax over any axis, sinusoidal positional encoding (Vaswani et
al. 2017, section 3.5) and multi-head attention (section 3.2.2) with the
weight layout of corenn's MultiHeadAttention (PyTorch's in_proj split in
three, then out_proj)."""

import numpy as np

from reference import attention as attention_ref


def softmax(x, axis=-1):
    """y = e^{x − max} / Σ_axis e^{x − max}."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax_backward(dy, y, axis=-1):
    """dx = y ⊙ (dy − Σ_axis dy ⊙ y) (the Jacobian diag(y) − y yᵀ applied to dy)."""
    dy, y = np.asarray(dy, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return y * (dy - np.sum(dy * y, axis=axis, keepdims=True))


def positional_encoding(steps, depth, max_wavelength=10000.0):
    """PE (steps, depth): PE[t, 2i] = sin(t / w^(2i/d)), PE[t, 2i+1] = cos(t / w^(2i/d))."""
    t = np.arange(steps, dtype=np.float64)[:, None]
    i = np.arange(depth) // 2
    angle = t / np.power(float(max_wavelength), 2.0 * i / depth)
    return np.where(np.arange(depth) % 2 == 0, np.sin(angle), np.cos(angle))


def _heads(x, H):
    """(N, T, H·d) -> (N·H, T, d)."""
    N, T, HD = x.shape
    return x.reshape(N, T, H, HD // H).transpose(0, 2, 1, 3).reshape(N * H, T, HD // H)


def multi_head_attention_forward(query, value, key, weights, num_heads, mask=None, causal=False):
    """(output (N, Tq, D_out), weights (N, H, Tq, Tk)) in float64. weights: [W_q, b_q,
    W_k, b_k, W_v, b_v, W_o, b_o]; W_q (H·dk, Dq) etc., as corenn's get_weights."""
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = (np.asarray(w, np.float64) for w in weights)
    query, value, key = (np.asarray(a, np.float64) for a in (query, value, key))
    N, Tq, _ = query.shape
    H, dk = num_heads, Wq.shape[0] // num_heads
    Q, K, V = _heads(query @ Wq.T + bq, H), _heads(key @ Wk.T + bk, H), _heads(value @ Wv.T + bv, H)
    if mask is not None:
        mask = np.repeat(np.asarray(mask, bool), H, axis=0)
    o, p = attention_ref.attention_forward(Q, K, V, mask, causal, 1.0 / np.sqrt(dk))
    merged = o.reshape(N, H, Tq, -1).transpose(0, 2, 1, 3).reshape(N, Tq, -1)
    return merged @ Wo.T + bo, p.reshape(N, H, Tq, -1)
