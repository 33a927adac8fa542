"""Convolutional workloads (../shared/WORKLOADS.md): the conv 3×3 op, the batch
norm op, LeNet training and batch-1 inference, for corenn, NumPy (im2col + BLAS)
and PyTorch.
Registered in workloads.py; same builder contract (a builder returns step())."""

import numpy as np

import steps

CONV_SHAPE = (32, 64, 32, 32)         # x: (N, C, H, W)
CONV_OUT, CONV_K, CONV_PAD = 64, 3, 1  # 3×3, 64 -> 64, same padding, no bias
BN_MOMENTUM, BN_EPS = 0.1, 1e-5         # batch norm on CONV_SHAPE, PyTorch's defaults
LENET_INPUT = (1, 28, 28)
LENET_LR, LENET_MOMENTUM = 0.01, 0.9
CLASSES = 10


def conv_flops():
    n, c, h, w = CONV_SHAPE
    return 2 * n * CONV_OUT * h * w * c * CONV_K * CONV_K


def bn_bytes():
    """The least memory traffic of batch norm forward + backward: read x, write y;
    read dy and x, write dx (float32)."""
    return 5 * 4 * int(np.prod(CONV_SHAPE))


def lenet_first_layer_flops(batch):
    """conv1 6@5×5 on 28×28 (pad 2)."""
    return batch * 2 * 6 * 28 * 28 * 1 * 25


def lenet_forward_flops(batch):
    """conv1, conv2 16@5×5 on 14×14 -> 10×10, dense 400-120-84-10."""
    conv2 = 2 * 16 * 10 * 10 * 6 * 25
    dense = 2 * (400 * 120 + 120 * 84 + 84 * 10)
    return lenet_first_layer_flops(batch) + batch * (conv2 + dense)


def _conv_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(CONV_SHAPE, dtype=np.float32)
    W = rng.standard_normal((CONV_OUT, CONV_SHAPE[1], CONV_K, CONV_K), dtype=np.float32) * 0.05
    dy = rng.standard_normal((CONV_SHAPE[0], CONV_OUT, *CONV_SHAPE[2:]), dtype=np.float32)
    return x, W, dy


def _bn_data(seed=0):
    rng = np.random.default_rng(seed)
    c = CONV_SHAPE[1]
    x = rng.standard_normal(CONV_SHAPE, dtype=np.float32)
    gamma = rng.uniform(0.5, 1.5, c).astype(np.float32)
    beta = rng.standard_normal(c, dtype=np.float32)
    dy = rng.standard_normal(CONV_SHAPE, dtype=np.float32)
    return x, gamma, beta, dy


def pool_bytes():
    """The least memory traffic of 2×2 max pooling forward + backward: read x,
    write y (a quarter of x); read dy (a quarter), write dx (float32; the
    winners' positions not counted)."""
    return 4 * int(np.prod(CONV_SHAPE)) * (1 + 0.25 + 0.25 + 1)


def _pool_data(seed=0):
    rng = np.random.default_rng(seed)
    n, c, h, w = CONV_SHAPE
    x = rng.standard_normal(CONV_SHAPE, dtype=np.float32)
    dy = rng.standard_normal((n, c, h // 2, w // 2), dtype=np.float32)
    return x, dy


def _lenet_data(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *LENET_INPUT), dtype=np.float32)
    y = rng.integers(0, CLASSES, size=batch, dtype=np.int64)
    return x, y


# ====================================================================== corenn

def corenn_conv(backward):
    import corenn as cn
    x, W, dy = _conv_data()
    if not backward:
        return lambda: cn.ops.conv2d_forward(x, W, padding=CONV_PAD)

    def step():
        y = cn.ops.conv2d_forward(x, W, padding=CONV_PAD)
        return y, cn.ops.conv2d_backward(dy, x, W, padding=CONV_PAD, with_bias=False)
    return step


def corenn_bn():
    """Training mode: batch statistics, running statistics updated in place."""
    import corenn as cn
    x, gamma, beta, dy = _bn_data()
    running_mean, running_var = np.zeros_like(gamma), np.ones_like(gamma)

    def step():
        y, mean, invstd = cn.ops.batch_norm_forward(x, gamma, beta, running_mean, running_var, True,
                                                    BN_MOMENTUM, BN_EPS)
        return y, cn.ops.batch_norm_backward(dy, x, gamma, mean, invstd)
    return step


def corenn_pool():
    import corenn as cn
    x, dy = _pool_data()

    def step():
        y, argmax = cn.ops.max_pool2d_forward(x, 2)
        return y, cn.ops.max_pool2d_backward(dy, argmax, x.shape)
    return step


def _corenn_lenet():
    import corenn as cn
    cn.seed(0)
    L = cn.layers
    model = cn.Sequential([
        L.Input(LENET_INPUT),
        L.Conv2D(6, 5, padding=2, activation="relu"), L.MaxPool2D(2),
        L.Conv2D(16, 5, activation="relu"), L.MaxPool2D(2),
        L.Flatten(), L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(10)])
    model.compile(cn.optimizers.SGD(LENET_LR, momentum=LENET_MOMENTUM), "softmax_cross_entropy")
    model.build()
    return model


def corenn_lenet_train(batch):
    return steps.corenn_train_step(_corenn_lenet(), *_lenet_data(batch))


def corenn_lenet_infer(batch):
    return steps.corenn_infer_step(_corenn_lenet(), _lenet_data(batch)[0])


# ======================================================================= NumPy
# Convolution as im2col (a strided window view, one copy) + one BLAS matmul;
# its backward as matmuls + col2im (a scatter-add per kernel tap).

def np_im2col(x, k, pad):
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    windows = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))  # n c oh ow k k
    cols = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * oh * ow, c * k * k)
    return cols, oh, ow


def np_conv_forward(x, W, b, pad):
    n = len(x)
    oc, _, k, _ = W.shape
    cols, oh, ow = np_im2col(x, k, pad)
    y = cols @ W.reshape(oc, -1).T
    if b is not None:
        y += b
    return y.reshape(n, oh, ow, oc).transpose(0, 3, 1, 2), cols


def np_conv_backward(dy, cols, x_shape, W, pad, with_bias=True):
    """(dx, dW, db); db is None when with_bias is False."""
    n, c, h, w = x_shape
    oc, _, k, _ = W.shape
    oh, ow = dy.shape[2:]
    dy_mat = dy.transpose(0, 2, 3, 1).reshape(-1, oc)
    dW = (dy_mat.T @ cols).reshape(W.shape)
    db = dy_mat.sum(axis=0) if with_bias else None
    dcols = (dy_mat @ W.reshape(oc, -1)).reshape(n, oh, ow, c, k, k)
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=dy.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, :, i:i + oh, j:j + ow] += dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + h, pad:pad + w], dW, db


def numpy_conv(backward):
    x, W, dy = _conv_data()
    if not backward:
        return lambda: np_conv_forward(x, W, None, CONV_PAD)[0]

    def step():
        y, cols = np_conv_forward(x, W, None, CONV_PAD)
        return y, np_conv_backward(dy, cols, x.shape, W, CONV_PAD, with_bias=False)
    return step


def np_bn_forward(x, gamma, beta, running_mean, running_var, momentum, eps):
    """Batch statistics over (N, H, W) per channel; running statistics updated in
    place (PyTorch's rule, unbiased variance). Returns y and what backward needs."""
    m = x.size // x.shape[1]
    mean = x.mean(axis=(0, 2, 3))
    xc = x - mean[:, None, None]
    var = np.square(xc).mean(axis=(0, 2, 3))
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = xc * invstd[:, None, None]
    y = xhat * gamma[:, None, None] + beta[:, None, None]
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (m / (m - 1))
    return y, xhat, invstd


def np_bn_backward(dy, xhat, gamma, invstd):
    """dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·invstd/M · (M·dy − dβ − x̂·dγ)."""
    m = dy.size // dy.shape[1]
    dbeta = dy.sum(axis=(0, 2, 3))
    dgamma = (dy * xhat).sum(axis=(0, 2, 3))
    dx = m * dy
    dx -= dbeta[:, None, None]
    dx -= xhat * dgamma[:, None, None]
    dx *= (gamma * invstd / m)[:, None, None]
    return dx, dgamma, dbeta


def numpy_bn():
    x, gamma, beta, dy = _bn_data()
    running_mean, running_var = np.zeros_like(gamma), np.ones_like(gamma)

    def step():
        y, xhat, invstd = np_bn_forward(x, gamma, beta, running_mean, running_var, BN_MOMENTUM, BN_EPS)
        return y, np_bn_backward(dy, xhat, gamma, invstd)
    return step


def np_maxpool2(x):
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))
    return y


def np_maxpool2_backward(dy, x, y):
    up = np.repeat(np.repeat(y, 2, axis=2), 2, axis=3)
    return (x == up) * np.repeat(np.repeat(dy, 2, axis=2), 2, axis=3)


def numpy_pool():
    x, dy = _pool_data()

    def step():
        y = np_maxpool2(x)
        return y, np_maxpool2_backward(dy, x, y)
    return step


class NumpyLeNet:
    """LeNet in plain NumPy: im2col convolutions, ReLU, 2×2 max pooling, dense
    layers, softmax cross-entropy, SGD with momentum (PyTorch's rule)."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)

        def he(shape, fan_in):
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        self.params = [he((6, 1, 5, 5), 25), np.zeros(6, np.float32),
                       he((16, 6, 5, 5), 150), np.zeros(16, np.float32),
                       he((120, 400), 400), np.zeros(120, np.float32),
                       he((84, 120), 120), np.zeros(84, np.float32),
                       he((10, 84), 84), np.zeros(10, np.float32)]
        self.velocity = [np.zeros_like(p) for p in self.params]

    def forward(self, x, keep=False):
        W1, b1, W2, b2, W3, b3, W4, b4, W5, b5 = self.params
        z1, cols1 = np_conv_forward(x, W1, b1, 2)
        a1 = np.maximum(z1, 0)
        p1 = np_maxpool2(a1)
        z2, cols2 = np_conv_forward(p1, W2, b2, 0)
        a2 = np.maximum(z2, 0)
        p2 = np_maxpool2(a2)
        f = p2.reshape(len(x), -1)
        a3 = np.maximum(f @ W3.T + b3, 0)
        a4 = np.maximum(a3 @ W4.T + b4, 0)
        logits = a4 @ W5.T + b5
        if not keep:
            return logits
        return logits, (x, cols1, a1, p1, cols2, a2, p2, f, a3, a4)

    def train_step(self, x, y):
        W1, b1, W2, b2, W3, b3, W4, b4, W5, b5 = self.params
        logits, (x, cols1, a1, p1, cols2, a2, p2, f, a3, a4) = self.forward(x, keep=True)
        n = len(x)
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[np.arange(n), y]))
        d5 = e / s
        d5[np.arange(n), y] -= 1.0
        d5 /= n
        g = [None] * 10
        g[8], g[9] = d5.T @ a4, d5.sum(0)
        d4 = (d5 @ W5) * (a4 > 0)
        g[6], g[7] = d4.T @ a3, d4.sum(0)
        d3 = (d4 @ W4) * (a3 > 0)
        g[4], g[5] = d3.T @ f, d3.sum(0)
        dp2 = (d3 @ W3).reshape(p2.shape)
        da2 = np_maxpool2_backward(dp2, a2, p2) * (a2 > 0)
        dp1, g[2], g[3] = np_conv_backward(da2, cols2, p1.shape, W2, 0)
        da1 = np_maxpool2_backward(dp1, a1, p1) * (a1 > 0)
        _, g[0], g[1] = np_conv_backward(da1, cols1, x.shape, W1, 2)
        for p, grad, v in zip(self.params, g, self.velocity):
            v *= LENET_MOMENTUM
            v += grad
            p -= LENET_LR * v
        return loss


def numpy_lenet_train(batch):
    net = NumpyLeNet()
    x, y = _lenet_data(batch)
    return lambda: net.train_step(x, y)


def numpy_lenet_infer(batch):
    net = NumpyLeNet()
    x, _ = _lenet_data(batch)
    return lambda: net.forward(x)


# ===================================================================== PyTorch

def torch_conv(backward):
    import torch
    F = torch.nn.functional
    x, W, dy = (torch.from_numpy(a) for a in _conv_data())
    if not backward:
        def forward():
            with torch.no_grad():
                return F.conv2d(x, W, padding=CONV_PAD)
        return forward
    x.requires_grad_(True)
    W.requires_grad_(True)

    def step():
        y = F.conv2d(x, W, padding=CONV_PAD)
        return torch.autograd.grad(y, (x, W), dy)
    return step


def torch_bn():
    import torch
    F = torch.nn.functional
    x, gamma, beta, dy = (torch.from_numpy(a) for a in _bn_data())
    running_mean, running_var = torch.zeros_like(gamma), torch.ones_like(gamma)
    for t in (x, gamma, beta):
        t.requires_grad_(True)

    def step():
        y = F.batch_norm(x, running_mean, running_var, gamma, beta, True, BN_MOMENTUM, BN_EPS)
        return torch.autograd.grad(y, (x, gamma, beta), dy)
    return step


def torch_pool():
    """max_pool2d keeps the winners' positions for backward when x needs a gradient."""
    import torch
    F = torch.nn.functional
    x, dy = (torch.from_numpy(a) for a in _pool_data())
    x.requires_grad_(True)

    def step():
        y = F.max_pool2d(x, 2)
        return torch.autograd.grad(y, (x,), dy)
    return step


def _torch_lenet():
    import torch
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def torch_lenet_train(batch):
    import torch
    model = _torch_lenet()
    opt = torch.optim.SGD(model.parameters(), lr=LENET_LR, momentum=LENET_MOMENTUM)
    x, y = (torch.from_numpy(a) for a in _lenet_data(batch))
    return steps.torch_train_step(model, opt, x, y)


def torch_lenet_infer(batch):
    import torch
    return steps.torch_infer_step(_torch_lenet(), torch.from_numpy(_lenet_data(batch)[0]))
