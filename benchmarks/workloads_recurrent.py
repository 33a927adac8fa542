"""Recurrent op workloads (course 5, week 1): the LSTM and GRU kernels over a
whole sequence, forward + backward through time at the issue's training size
(LSTM(256) over T = 50 steps of 128 features, batch 64) and the LSTM forward
for one sequence (batch 1, inference).

corenn calls cn.ops.*_forward / *_backward (the output gradient given for the
last step only, as a many-to-one model has it); PyTorch runs nn.LSTM / nn.GRU
forward and backward of the last step's output (input gradient included, as
corenn computes it); NumPy runs the same cell equations step by step, one
matrix product per step for the batch, the usual NumPy implementation.
"""

import numpy as np

STEPS, FEATURES, UNITS = 50, 128, 256
GATES = {"lstm": 4, "gru": 3}


def forward_flops(kind, batch):
    """2·N·T·(F + H)·G·H: the input and recurrent products of every step."""
    return 2 * batch * STEPS * (FEATURES + UNITS) * GATES[kind] * UNITS


def fwdbwd_flops(kind, batch):
    """Forward, then backward at 2× forward (input, state and weight gradients)."""
    return 3 * forward_flops(kind, batch)


def _data(kind, batch, seed=0):
    """x (N, T, F), W_ih (G·H, F), W_hh (G·H, H), b (G·H,) and the gradient of h_T,
    float32, weights U(−1/√H, 1/√H) as PyTorch initialises them."""
    rng = np.random.default_rng(seed)
    G, s = GATES[kind], 1 / np.sqrt(UNITS)
    x = rng.standard_normal((batch, STEPS, FEATURES), dtype=np.float32)
    W_ih = rng.uniform(-s, s, (G * UNITS, FEATURES)).astype(np.float32)
    W_hh = rng.uniform(-s, s, (G * UNITS, UNITS)).astype(np.float32)
    b = rng.uniform(-s, s, G * UNITS).astype(np.float32)
    dh = rng.standard_normal((batch, UNITS), dtype=np.float32)
    return x, W_ih, W_hh, b, dh


# ====================================================================== corenn

def corenn_fwdbwd(kind, batch=64):
    import corenn as cn
    x, W_ih, W_hh, b, dh = _data(kind, batch)
    dy = np.zeros((batch, STEPS, UNITS), np.float32)  # many-to-one: only h_T has a gradient

    if kind == "lstm":
        def step():
            y, h, c, cache = cn.ops.lstm_forward(x, W_ih, W_hh, b)
            return cn.ops.lstm_backward(dy, dh, None, x, W_ih, W_hh, b, None, None, cache)[1]
    else:
        def step():
            y, h, cache = cn.ops.gru_forward(x, W_ih, W_hh, b, b)
            return cn.ops.gru_backward(dy, dh, x, W_ih, W_hh, b, b, None, cache)[1]
    return step


def corenn_lstm_infer(batch=1):
    import corenn as cn
    x, W_ih, W_hh, b, _ = _data("lstm", batch)
    return lambda: cn.ops.lstm_forward(x, W_ih, W_hh, b)[1]


# ====================================================================== torch

def _torch_module(kind):
    import torch
    torch.manual_seed(0)
    return (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(FEATURES, UNITS, batch_first=True)


def torch_fwdbwd(kind, batch=64):
    import torch
    m = _torch_module(kind)
    x, *_, dh = _data(kind, batch)
    xt, dht = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dh)

    def step():
        m.zero_grad(set_to_none=True)
        xt.grad = None
        y, _ = m(xt)
        y[:, -1].backward(dht)
        return xt.grad
    return step


def torch_lstm_infer(batch=1):
    import torch
    m = _torch_module("lstm").eval()
    xt = torch.from_numpy(_data("lstm", batch)[0])

    def step():
        with torch.inference_mode():
            return m(xt)[1][0]
    return step


# ====================================================================== numpy

def _sigmoid(a):
    return 1 / (1 + np.exp(-a))


def numpy_lstm_forward(x, W_ih, W_hh, b):
    """The cell equations step by step; returns h_T and what backward needs."""
    N, T, _ = x.shape
    H = W_hh.shape[1]
    xp = (x.reshape(N * T, -1) @ W_ih.T + b).reshape(N, T, -1)  # input projections of all steps
    h, c = np.zeros((N, H), np.float32), np.zeros((N, H), np.float32)
    cache = []
    for t in range(T):
        a = xp[:, t] + h @ W_hh.T
        i, f, o = _sigmoid(a[:, :H]), _sigmoid(a[:, H:2 * H]), _sigmoid(a[:, 3 * H:])
        g = np.tanh(a[:, 2 * H:3 * H])
        cache.append((h, c, i, f, g, o))
        c = f * c + i * g
        h = o * np.tanh(c)
    return h, c, cache


def numpy_lstm_fwdbwd(batch=64):
    x, W_ih, W_hh, b, dh_T = _data("lstm", batch)
    N, T, _ = x.shape

    def step():
        h, c, cache = numpy_lstm_forward(x, W_ih, W_hh, b)
        dh, dc = dh_T, np.zeros_like(c)
        dA = np.empty((N, T, W_ih.shape[0]), np.float32)
        h_prev = np.empty((N, T, W_hh.shape[1]), np.float32)
        for t in reversed(range(T)):
            hp, cp, i, f, g, o = cache[t]
            c_t = f * cp + i * g
            tc = np.tanh(c_t)
            dct = dc + dh * o * (1 - tc * tc)
            dA[:, t] = np.concatenate([dct * g * i * (1 - i), dct * cp * f * (1 - f),
                                       dct * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)
            h_prev[:, t] = hp
            dc, dh = dct * f, dA[:, t] @ W_hh
        dA2 = dA.reshape(N * T, -1)
        dx = (dA2 @ W_ih).reshape(x.shape)
        dW_ih, dW_hh, db = dA2.T @ x.reshape(N * T, -1), dA2.T @ h_prev.reshape(N * T, -1), dA2.sum(0)
        return dx, dW_ih, dW_hh, db
    return step


def numpy_lstm_infer(batch=1):
    x, W_ih, W_hh, b, _ = _data("lstm", batch)
    return lambda: numpy_lstm_forward(x, W_ih, W_hh, b)[0]
