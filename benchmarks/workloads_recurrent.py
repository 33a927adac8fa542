"""Recurrent workloads (course 5, week 1): the LSTM and GRU kernels over a
whole sequence, forward + backward through time at the issue's training size
(LSTM(256) over T = 50 steps of 128 features, batch 64) and the LSTM forward
for one sequence (batch 1, inference); and the model-level rows of
../shared/WORKLOADS.md: a training step of LSTM(256) / GRU(256) over those
sequences, the last step into Dense 10, softmax cross-entropy, Adam 1e-3
(lstm_b64, gru_b64), and the GRU model's batch-1 inference (gru_b1_infer).

corenn calls cn.ops.*_forward / *_backward (the output gradient given for the
last step only, as a many-to-one model has it); PyTorch runs nn.LSTM / nn.GRU
forward and backward of the last step's output (input gradient included, as
corenn computes it); NumPy runs the same cell equations step by step, one
matrix product per step for the batch, the usual NumPy implementation.
"""

import numpy as np

from steps import corenn_infer_step, corenn_train_step, numpy_adam_update, torch_infer_step, torch_train_step

STEPS, FEATURES, UNITS, CLASSES = 50, 128, 256, 10
GATES = {"lstm": 4, "gru": 3}


def forward_flops(kind, batch):
    """2·N·T·(F + H)·G·H: the input and recurrent products of every step."""
    return 2 * batch * STEPS * (FEATURES + UNITS) * GATES[kind] * UNITS


def fwdbwd_flops(kind, batch):
    """Forward, then backward at 2× forward (input, state and weight gradients)."""
    return 3 * forward_flops(kind, batch)


def train_flops(kind, batch):
    """A training step: the recurrent layer forward and backward (3× forward,
    its input gradient included, which no side skips) plus the Dense head's
    forward, dW and dh (3 × 2·N·H·10)."""
    return fwdbwd_flops(kind, batch) + 3 * 2 * batch * UNITS * CLASSES


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


def numpy_lstm_backward(dh_T, x, W_ih, W_hh, cache):
    """Backward through time of numpy_lstm_forward from dL/dh_T: (dx, dW_ih, dW_hh, db)."""
    N, T, _ = x.shape
    dh, dc = dh_T, np.zeros_like(dh_T)
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
    return dx, dA2.T @ x.reshape(N * T, -1), dA2.T @ h_prev.reshape(N * T, -1), dA2.sum(0)


def numpy_lstm_fwdbwd(batch=64):
    x, W_ih, W_hh, b, dh_T = _data("lstm", batch)

    def step():
        _, _, cache = numpy_lstm_forward(x, W_ih, W_hh, b)
        return numpy_lstm_backward(dh_T, x, W_ih, W_hh, cache)
    return step


def numpy_gru_forward(x, W_ih, W_hh, b_ih, b_hh):
    """PyTorch's GRU equations step by step (gates r, z, n):
    r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr), z likewise,
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h."""
    N, T, _ = x.shape
    H = W_hh.shape[1]
    xp = (x.reshape(N * T, -1) @ W_ih.T + b_ih).reshape(N, T, -1)
    h = np.zeros((N, H), np.float32)
    cache = []
    for t in range(T):
        hp = h @ W_hh.T + b_hh
        r = _sigmoid(xp[:, t, :H] + hp[:, :H])
        z = _sigmoid(xp[:, t, H:2 * H] + hp[:, H:2 * H])
        n = np.tanh(xp[:, t, 2 * H:] + r * hp[:, 2 * H:])
        cache.append((h, r, z, n, hp[:, 2 * H:]))
        h = (1 - z) * n + z * h
    return h, cache


def numpy_gru_backward(dh_T, x, W_ih, W_hh, cache):
    """Backward through time of numpy_gru_forward from dL/dh_T: (dx, dW_ih, dW_hh, db_ih, db_hh)."""
    N, T, _ = x.shape
    dh = dh_T
    dAx = np.empty((N, T, W_ih.shape[0]), np.float32)  # gradients of the input projections
    dAh = np.empty((N, T, W_hh.shape[0]), np.float32)  # and of the recurrent ones
    h_prev = np.empty((N, T, W_hh.shape[1]), np.float32)
    for t in reversed(range(T)):
        hp, r, z, n, hn = cache[t]
        dn = dh * (1 - z) * (1 - n * n)
        dz = dh * (hp - n) * z * (1 - z)
        dr = dn * hn * r * (1 - r)
        dAx[:, t] = np.concatenate([dr, dz, dn], axis=1)
        dAh[:, t] = np.concatenate([dr, dz, dn * r], axis=1)
        h_prev[:, t] = hp
        dh = dh * z + dAh[:, t] @ W_hh
    dAx2, dAh2 = dAx.reshape(N * T, -1), dAh.reshape(N * T, -1)
    dx = (dAx2 @ W_ih).reshape(x.shape)
    return (dx, dAx2.T @ x.reshape(N * T, -1), dAh2.T @ h_prev.reshape(N * T, -1), dAx2.sum(0),
            dAh2.sum(0))


def numpy_lstm_infer(batch=1):
    x, W_ih, W_hh, b, _ = _data("lstm", batch)
    return lambda: numpy_lstm_forward(x, W_ih, W_hh, b)[0]


# ====================================================================== models
# Input (50, 128) -> LSTM(256) or GRU(256) -> last step -> Dense 10, Adam 1e-3.

def _model_data(batch, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((batch, STEPS, FEATURES), dtype=np.float32),
            rng.integers(0, CLASSES, batch))


def _corenn_model(kind):
    import corenn as cn
    L = cn.layers
    cn.seed(0)
    recurrent = L.LSTM if kind == "lstm" else L.GRU
    model = cn.Sequential([L.Input((STEPS, FEATURES)), recurrent(UNITS), L.Dense(CLASSES)])
    model.compile(optimizer=cn.optimizers.Adam(1e-3), loss="softmax_cross_entropy")
    model.build()
    return model


def corenn_model_train(kind, batch=64):
    x, y = _model_data(batch)
    return corenn_train_step(_corenn_model(kind), x, y)


def corenn_model_infer(kind, batch=1):
    return corenn_infer_step(_corenn_model(kind), _model_data(batch)[0])


def _torch_model(kind):
    import torch

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = _torch_module(kind)
            self.head = torch.nn.Linear(UNITS, CLASSES)

        def forward(self, x):
            return self.head(self.rnn(x)[0][:, -1])
    return Model()


def torch_model_train(kind, batch=64):
    import torch
    x, y = _model_data(batch)
    model = _torch_model(kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return torch_train_step(model, opt, torch.from_numpy(x), torch.from_numpy(y))


def torch_model_infer(kind, batch=1):
    import torch
    return torch_infer_step(_torch_model(kind), torch.from_numpy(_model_data(batch)[0]))


def numpy_model_train(kind, batch=64):
    """Forward (the cell equations above), softmax cross-entropy on the last
    step's Dense logits, backward through time, Adam on every parameter."""
    x, y = _model_data(batch)
    rng = np.random.default_rng(1)
    G, s = GATES[kind], 1 / np.sqrt(UNITS)
    params = [rng.uniform(-s, s, shape).astype(np.float32)
              for shape in ((G * UNITS, FEATURES), (G * UNITS, UNITS), (G * UNITS,), (G * UNITS,),
                            (CLASSES, UNITS), (CLASSES,))]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    count = [0]

    def step():
        W_ih, W_hh, b_ih, b_hh, W, b = params
        if kind == "lstm":
            h, _, cache = numpy_lstm_forward(x, W_ih, W_hh, b_ih + b_hh)
        else:
            h, cache = numpy_gru_forward(x, W_ih, W_hh, b_ih, b_hh)
        logits = h @ W.T + b
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(p[np.arange(batch), y]))
        p[np.arange(batch), y] -= 1
        dlogits = p / batch
        dW, db, dh = dlogits.T @ h, dlogits.sum(0), dlogits @ W
        if kind == "lstm":
            _, dW_ih, dW_hh, db_rnn = numpy_lstm_backward(dh, x, W_ih, W_hh, cache)
            grads = [dW_ih, dW_hh, db_rnn, db_rnn, dW, db]
        else:
            grads = [*numpy_gru_backward(dh, x, W_ih, W_hh, cache)[1:], dW, db]
        count[0] += 1
        for param, g, (m, v) in zip(params, grads, moments):
            numpy_adam_update(param, g, m, v, count[0])
        return loss
    return step


def numpy_gru_infer(batch=1):
    x = _model_data(batch)[0]
    _, W_ih, W_hh, b, _ = _data("gru", batch)
    rng = np.random.default_rng(1)
    W, b_out = rng.standard_normal((CLASSES, UNITS), dtype=np.float32), np.zeros(CLASSES, np.float32)
    return lambda: numpy_gru_forward(x, W_ih, W_hh, b, b)[0] @ W.T + b_out
