"""Recurrent cells step by step, from the course's cell equations (course 5,
week 1: rnn_cell_forward, lstm_cell_forward and their backward), in PyTorch's
weight layout and gate order. x (N, T, F) batch first; every state (N, H).

The course writes a⟨t⟩ = h_t, Waa = W_hh, Wax = W_ih, and the LSTM gates
Γ_u = i (update), Γ_f = f, c̃ = g, Γ_o = o. Float64 throughout.

Masks (Keras's): mask (N, T), 1 = a valid step. At a masked step every state
carries over, h⟨t⟩ = h⟨t−1⟩ (and c), so y⟨t⟩ is the carried h; written here as
h⟨t⟩ = m·cell(h⟨t−1⟩, x⟨t⟩) + (1 − m)·h⟨t−1⟩, whose chain rule gives the
backward: the cell's gradients times m, plus (1 − m)·dh⟨t⟩ passed straight to
h⟨t−1⟩.

Recurrent dropout (Keras's recurrent_dropout, one mask per sequence): a fixed
recurrent_mask r (N, H) of 0 or 1/(1 − rate) multiplies h⟨t−1⟩ where W_hh
does, W_hh (r ⊙ h⟨t−1⟩), at every step and in every gate; the GRU's
z ⊙ h⟨t−1⟩ and the carried state of a masked step read h⟨t−1⟩ itself. Its
chain rule: dW_hh sums da ⊗ (r ⊙ h⟨t−1⟩) and dh⟨t−1⟩ gets r ⊙ (da W_hh).
"""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _zeros_if_none(s, N, H):
    return np.zeros((N, H)) if s is None else np.asarray(s, dtype=np.float64)


def _dropped(recurrent_mask, N, H):
    """The recurrent dropout factor r (N, H), all ones for None."""
    return np.ones((N, H)) if recurrent_mask is None else np.asarray(recurrent_mask, dtype=np.float64)


def _keep(mask, N, T):
    """The mask as (N, T) floats m, all ones for None."""
    return np.ones((N, T)) if mask is None else np.asarray(mask, dtype=np.float64).reshape(N, T)


def simple_rnn_forward(x, W_ih, W_hh, b, h0=None, mask=None, recurrent_mask=None):
    """(y, h_T): the course's rnn_cell_forward, a⟨t⟩ = tanh(Waa a⟨t−1⟩ + Wax x⟨t⟩ + ba)."""
    x = np.asarray(x, dtype=np.float64)
    N, T, _ = x.shape
    m = _keep(mask, N, T)
    r = _dropped(recurrent_mask, N, W_hh.shape[1])
    h = _zeros_if_none(h0, N, W_hh.shape[1])
    y = np.zeros((N, T, W_hh.shape[1]))
    for t in range(T):
        k = m[:, t, None]
        h = k * np.tanh(x[:, t] @ W_ih.T + (r * h) @ W_hh.T + b) + (1 - k) * h
        y[:, t] = h
    return y, h


def simple_rnn_backward(dy, dh_T, x, W_ih, W_hh, h0, y, mask=None, recurrent_mask=None):
    """(dx, dW_ih, dW_hh, db, dh0): the course's rnn_backward, dtanh = (1 − a⟨t⟩²)·da."""
    x = np.asarray(x, dtype=np.float64)
    N, T, _ = x.shape
    H = W_hh.shape[1]
    m = _keep(mask, N, T)
    r = _dropped(recurrent_mask, N, H)
    dh = _zeros_if_none(dh_T, N, H)
    dx = np.zeros(x.shape)
    dW_ih, dW_hh, db = np.zeros(W_ih.shape), np.zeros(W_hh.shape), np.zeros(H)
    for t in reversed(range(T)):
        k = m[:, t, None]
        h_prev = y[:, t - 1] if t > 0 else _zeros_if_none(h0, N, H)
        dh = dh + dy[:, t]
        da = k * dh * (1 - y[:, t] ** 2)
        dx[:, t] = da @ W_ih
        dW_ih += da.T @ x[:, t]
        dW_hh += da.T @ (r * h_prev)
        db += da.sum(axis=0)
        dh = r * (da @ W_hh) + (1 - k) * dh
    return dx, dW_ih, dW_hh, db, dh


def lstm_forward(x, W_ih, W_hh, b, h0=None, c0=None, mask=None, recurrent_mask=None):
    """(y (N, T, H), h_T, c_T, steps) with steps the per-step values backward needs."""
    x = np.asarray(x, dtype=np.float64)
    N, T, _ = x.shape
    H = W_hh.shape[1]
    m = _keep(mask, N, T)
    r = _dropped(recurrent_mask, N, H)
    h, c = _zeros_if_none(h0, N, H), _zeros_if_none(c0, N, H)
    y, steps = np.zeros((N, T, H)), []
    for t in range(T):
        k = m[:, t, None]
        a = x[:, t] @ W_ih.T + (r * h) @ W_hh.T + b
        i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c_prev, h_prev = c, h
        c_cell = f * c_prev + i * g
        c = k * c_cell + (1 - k) * c_prev
        h = k * o * np.tanh(c_cell) + (1 - k) * h_prev
        y[:, t] = h
        steps.append((h_prev, c_prev, i, f, g, o, c_cell, k, r))
    return y, h, c, steps


def lstm_backward(dy, dh_T, dc_T, x, W_ih, W_hh, steps):
    """(dx, dW_ih, dW_hh, db, dh0, dc0): the chain rule through every step, last first."""
    x = np.asarray(x, dtype=np.float64)
    N, T, _ = x.shape
    H = W_hh.shape[1]
    dh, dc = _zeros_if_none(dh_T, N, H), _zeros_if_none(dc_T, N, H)
    dx = np.zeros(x.shape)
    dW_ih, dW_hh, db = np.zeros(W_ih.shape), np.zeros(W_hh.shape), np.zeros(4 * H)
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, g, o, c, k, r = steps[t]
        dh = dh + dy[:, t]
        dh_cell, dc_carried = k * dh, (1 - k) * dc
        tc = np.tanh(c)
        do = dh_cell * tc
        dc = k * dc + dh_cell * o * (1 - tc ** 2)
        di, df, dg = dc * g, dc * c_prev, dc * i
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
        dx[:, t] = da @ W_ih
        dW_ih += da.T @ x[:, t]
        dW_hh += da.T @ (r * h_prev)
        db += da.sum(axis=0)
        dh = r * (da @ W_hh) + (1 - k) * dh
        dc = dc * f + dc_carried
    return dx, dW_ih, dW_hh, db, dh, dc


def gru_forward(x, W_ih, W_hh, b, rb, h0=None, mask=None, recurrent_mask=None):
    """(y, h_T, steps): PyTorch's GRU, n = tanh(W_in x + b_n + r ⊙ (W_hn h + rb_n))."""
    x = np.asarray(x, dtype=np.float64)
    N, T, _ = x.shape
    H = W_hh.shape[1]
    m = _keep(mask, N, T)
    dropped = _dropped(recurrent_mask, N, H)
    h = _zeros_if_none(h0, N, H)
    y, steps = np.zeros((N, T, H)), []
    for t in range(T):
        ax = x[:, t] @ W_ih.T + b
        ah = (dropped * h) @ W_hh.T + rb
        r = sigmoid(ax[:, :H] + ah[:, :H])
        z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
        n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
        h_prev, k = h, m[:, t, None]
        h = k * ((1 - z) * n + z * h_prev) + (1 - k) * h_prev
        y[:, t] = h
        steps.append((h_prev, r, z, n, ah[:, 2 * H:], k, dropped))
    return y, h, steps


def gru_backward(dy, dh_T, x, W_ih, W_hh, steps):
    """(dx, dW_ih, dW_hh, db, drb, dh0)."""
    x = np.asarray(x, dtype=np.float64)
    N, T, _ = x.shape
    H = W_hh.shape[1]
    dh = _zeros_if_none(dh_T, N, H)
    dx = np.zeros(x.shape)
    dW_ih, dW_hh = np.zeros(W_ih.shape), np.zeros(W_hh.shape)
    db, drb = np.zeros(3 * H), np.zeros(3 * H)
    for t in reversed(range(T)):
        h_prev, r, z, n, hn, k, dropped = steps[t]
        dh = dh + dy[:, t]
        dh_carried, dh = (1 - k) * dh, k * dh
        dan = dh * (1 - z) * (1 - n ** 2)
        daz = dh * (h_prev - n) * z * (1 - z)
        dar = dan * hn * r * (1 - r)
        dax = np.concatenate([dar, daz, dan], axis=1)      # of W_ih x + b
        dah = np.concatenate([dar, daz, dan * r], axis=1)  # of W_hh h + rb
        dx[:, t] = dax @ W_ih
        dW_ih += dax.T @ x[:, t]
        dW_hh += dah.T @ (dropped * h_prev)
        db += dax.sum(axis=0)
        drb += dah.sum(axis=0)
        dh = dh * z + dropped * (dah @ W_hh) + dh_carried
    return dx, dW_ih, dW_hh, db, drb, dh
