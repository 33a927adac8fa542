"""The small ResNet workloads (../shared/WORKLOADS.md): resnet_small training
(batch 64, Adam 1e-3) and batch-1 inference, for corenn
(`corenn.applications.resnet_small`), NumPy (im2col + BLAS, batch norm with
workloads_cnn's NumPy op) and PyTorch. Registered in workloads.py; same builder
contract (a builder returns step())."""

import numpy as np

import steps
from steps import LR
from workloads_cnn import (BN_EPS, BN_MOMENTUM, np_bn_backward, np_bn_forward, np_conv_backward,
                           np_conv_forward, np_maxpool2, np_maxpool2_backward)

RESNET_INPUT = (3, 32, 32)
RESNET_WIDTHS, RESNET_BLOCKS = (32, 64), (2, 1)  # per stage: channels, residual blocks
CLASSES = 10


def resnet_multiply_adds(input_shape=RESNET_INPUT, widths=RESNET_WIDTHS, blocks=RESNET_BLOCKS,
                         classes=CLASSES):
    """One example's forward multiply-adds in the 3×3 convolutions and the
    classifier (what corenn's model.multiply_adds() counts): per stage a stem
    convolution and two per residual block, all same-padded; a 2×2 max pool
    halves the image between stages."""
    c, h, w = input_shape
    total = 0
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        if stage > 0:
            h, w = h // 2, w // 2
        total += h * w * width * c * 9 + 2 * count * h * w * width * width * 9
        c = width
    return total + c * classes


def resnet_forward_flops(batch):
    """2 FLOPs per multiply-add (batch norm, ReLU, adds and pooling not counted)."""
    return 2 * batch * resnet_multiply_adds()


def resnet_first_layer_flops(batch, input_shape=RESNET_INPUT, width=RESNET_WIDTHS[0]):
    """The stem convolution: 3×3, same-padded."""
    c, h, w = input_shape
    return 2 * batch * h * w * width * c * 9


def _resnet_data(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *RESNET_INPUT), dtype=np.float32)
    y = rng.integers(0, CLASSES, size=batch, dtype=np.int64)
    return x, y


# ====================================================================== corenn

def _corenn_resnet():
    import corenn as cn
    from corenn import applications
    cn.seed(0)
    model = applications.resnet_small(RESNET_INPUT, CLASSES, RESNET_WIDTHS, RESNET_BLOCKS)
    model.compile(cn.optimizers.Adam(LR), "softmax_cross_entropy")
    model.build()
    return model


def corenn_resnet_train(batch, path="api"):
    return steps.corenn_train_step(_corenn_resnet(), *_resnet_data(batch), path)


def corenn_resnet_infer(batch, path="api"):
    return steps.corenn_infer_step(_corenn_resnet(), _resnet_data(batch)[0], path)


# ======================================================================= NumPy

def _per_channel(v):
    return v[:, None, None]


class NumpyResNet:
    """resnet_small in plain NumPy: im2col convolutions without bias, batch
    norm (batch statistics when training, with PyTorch's momentum and unbiased
    running variance; running statistics in inference), ReLU, 2×2 max pooling,
    global average pooling, the dense classifier, softmax cross-entropy, Adam.

    Parameters: per conv-BN unit (stems and both convolutions of each residual
    block, in forward order) the kernel, γ and β; then the dense W and b. The
    forward pass records a tape the backward pass walks in reverse; a residual
    block's input is a fork whose two gradients are summed at its start."""

    def __init__(self, input_shape=RESNET_INPUT, widths=RESNET_WIDTHS, blocks=RESNET_BLOCKS,
                 classes=CLASSES, dtype=np.float32, seed=0):
        rng = np.random.default_rng(seed)
        self.widths, self.blocks = widths, blocks
        self.momentum = BN_MOMENTUM
        self.params, self.running_mean, self.running_var = [], [], []
        c = input_shape[0]
        for width, count in zip(widths, blocks):
            for cin in [c] + [width] * (2 * count):
                he = np.sqrt(2.0 / (cin * 9))
                self.params += [(rng.standard_normal((width, cin, 3, 3)) * he).astype(dtype),
                                np.ones(width, dtype), np.zeros(width, dtype)]
                self.running_mean.append(np.zeros(width, dtype))
                self.running_var.append(np.ones(width, dtype))
            c = width
        limit = np.sqrt(6.0 / (c + classes))  # glorot_uniform, as corenn's Dense default
        self.params += [rng.uniform(-limit, limit, (classes, c)).astype(dtype),
                        np.zeros(classes, dtype)]
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def _conv_bn(self, x, u, relu, training, tape):
        W, gamma, beta = self.params[3 * u:3 * u + 3]
        z, cols = np_conv_forward(x, W, None, 1)
        if not training:  # running statistics folded into one scale and shift
            scale = gamma / np.sqrt(self.running_var[u] + BN_EPS)
            y = z * _per_channel(scale) + _per_channel(beta - self.running_mean[u] * scale)
            return np.maximum(y, 0, out=y) if relu else y
        y, xhat, inv_std = np_bn_forward(z, gamma, beta, self.running_mean[u],
                                         self.running_var[u], self.momentum, BN_EPS)
        if relu:
            np.maximum(y, 0, out=y)
        tape.append(("conv_bn", u, relu, cols, x.shape, xhat, inv_std, y))
        return y

    def forward(self, x, training=False):
        """Logits, and the tape (None when not training)."""
        tape = [] if training else None
        h, u = x, 0
        for stage, count in enumerate(self.blocks):
            if stage > 0:
                p = np_maxpool2(h)
                if training:
                    tape.append(("pool", h, p))
                h = p
            h = self._conv_bn(h, u, True, training, tape)
            u += 1
            for _ in range(count):
                if training:
                    tape.append(("fork",))
                branch = self._conv_bn(h, u, True, training, tape)
                branch = self._conv_bn(branch, u + 1, False, training, tape)
                h = np.maximum(h + branch, 0)
                if training:
                    tape.append(("add_relu", h))
                u += 2
        features = h.mean(axis=(2, 3))
        logits = features @ self.params[-2].T + self.params[-1]
        if training:
            tape.append(("head", features, h.shape))
        return logits, tape

    def gradients(self, x, y):
        """Mean softmax cross-entropy over the batch and its gradient per parameter."""
        logits, tape = self.forward(x, training=True)
        n = len(logits)
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[np.arange(n), y]))
        d = e / s
        d[np.arange(n), y] -= 1.0
        d /= n
        grads = [None] * len(self.params)
        shortcuts = []  # gradients waiting at residual forks
        for entry in reversed(tape):
            kind = entry[0]
            if kind == "head":
                _, features, shape = entry
                grads[-2], grads[-1] = d.T @ features, d.sum(axis=0)
                d = np.broadcast_to((d @ self.params[-2])[:, :, None, None] / (shape[2] * shape[3]),
                                    shape)
            elif kind == "add_relu":
                d = d * (entry[1] > 0)
                shortcuts.append(d)
            elif kind == "fork":
                d = d + shortcuts.pop()
            elif kind == "pool":
                _, h, p = entry
                d = np_maxpool2_backward(d, h, p)
            else:
                _, u, relu, cols, x_shape, xhat, inv_std, out = entry
                if relu:
                    d = d * (out > 0)
                dz, grads[3 * u + 1], grads[3 * u + 2] = np_bn_backward(
                    d, xhat, self.params[3 * u + 1], inv_std)
                d, grads[3 * u], _ = np_conv_backward(dz, cols, x_shape, self.params[3 * u], 1,
                                                      with_bias=False)
        return loss, grads

    def train_step(self, x, y):
        loss, grads = self.gradients(x, y)
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            steps.numpy_adam_update(p, g, m, v, self.t)
        return loss


def numpy_resnet_train(batch):
    net = NumpyResNet()
    x, y = _resnet_data(batch)
    return lambda: net.train_step(x, y)


def numpy_resnet_infer(batch):
    net = NumpyResNet()
    x, _ = _resnet_data(batch)
    return lambda: net.forward(x)[0]


# ===================================================================== PyTorch

def _torch_resnet():
    import torch
    torch.manual_seed(0)
    nn = torch.nn

    def conv_bn(cin, cout, relu):
        mods = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)]
        return mods + [nn.ReLU()] if relu else mods

    class ResBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.branch = nn.Sequential(*conv_bn(c, c, True), *conv_bn(c, c, False))

        def forward(self, x):
            return torch.relu(x + self.branch(x))

    mods, c = [], RESNET_INPUT[0]
    for stage, (width, count) in enumerate(zip(RESNET_WIDTHS, RESNET_BLOCKS)):
        if stage > 0:
            mods.append(nn.MaxPool2d(2))
        mods += conv_bn(c, width, True) + [ResBlock(width) for _ in range(count)]
        c = width
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, CLASSES)]
    return nn.Sequential(*mods)


def torch_resnet_train(batch):
    import torch
    model = _torch_resnet()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = (torch.from_numpy(a) for a in _resnet_data(batch))
    return steps.torch_train_step(model, opt, x, y)


def torch_resnet_infer(batch):
    import torch
    return steps.torch_infer_step(_torch_resnet(), torch.from_numpy(_resnet_data(batch)[0]))
