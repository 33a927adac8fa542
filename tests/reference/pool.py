"""Pooling and padding written from the formulas, window by window (NCHW).

Geometry: kernel (KH, KW), stride (sh, sw), padding an int, (ph, pw) on both
sides or (top, bottom, left, right) (Keras's "same" is asymmetric, see
conv.same_pads); out_h = ⌊(H + top + bottom − KH) / sh⌋ + 1, window (oh, ow)
covers padded rows oh·sh … oh·sh + KH − 1 and columns ow·sw … ow·sw + KW − 1.
"""

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def geometry(x_shape, kernel_size, stride=None, padding=0):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    pt, pb, pl, pr = _pads(padding)
    _, _, H, W = x_shape
    return (kh, kw), (sh, sw), (pt, pb, pl, pr), ((H + pt + pb - kh) // sh + 1, (W + pl + pr - kw) // sw + 1)


def max_pool2d_forward(x, kernel_size, stride=None, padding=0):
    """y = max over the window with padded cells −∞; argmax = h·W + w of the first
    maximum in row-major window order (np.argmax also returns the first NaN)."""
    (kh, kw), (sh, sw), (pt, pb, pl, pr), (OH, OW) = geometry(x.shape, kernel_size, stride, padding)
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=-np.inf)
    inside = np.pad(np.ones((H, W), bool), ((pt, pb), (pl, pr)))
    y = np.empty((N, C, OH, OW), x.dtype)
    argmax = np.empty((N, C, OH, OW), np.int64)
    for oh in range(OH):
        for ow in range(OW):
            window = xp[:, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw].reshape(N, C, kh * kw)
            i = np.argmax(window, axis=2)
            # A window whose inside cells are all −∞ ties with its padding: the
            # winner must still be an input cell, the first inside one.
            cells = inside[oh * sh:oh * sh + kh, ow * sw:ow * sw + kw].reshape(-1)
            i = np.where(cells[i], i, np.argmax(cells))
            y[:, :, oh, ow] = np.take_along_axis(window, i[..., None], axis=2)[..., 0]
            h = oh * sh + i // kw - pt
            w = ow * sw + i % kw - pl
            argmax[:, :, oh, ow] = h * W + w
    return y, argmax


def max_pool2d_backward(dy, argmax, x_shape):
    """dx[n, c].flat[argmax] += dy: each output's gradient goes to its winner."""
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W), dy.dtype)
    planes = np.repeat(np.arange(N * C), argmax[0, 0].size)
    np.add.at(dx, (planes, argmax.reshape(-1)), dy.reshape(-1))
    return dx.reshape(x_shape)


def _counts(x_shape, kernel_size, stride, padding, count_include_pad):
    """The divisor of every window: KH·KW, or the number of its cells inside x."""
    (kh, kw), (sh, sw), (pt, pb, pl, pr), (OH, OW) = geometry(x_shape, kernel_size, stride, padding)
    if count_include_pad:
        return np.full((OH, OW), kh * kw, np.float64)
    inside = np.pad(np.ones(x_shape[2:]), ((pt, pb), (pl, pr)))
    return np.array([[inside[oh * sh:oh * sh + kh, ow * sw:ow * sw + kw].sum()
                      for ow in range(OW)] for oh in range(OH)])


def avg_pool2d_forward(x, kernel_size, stride=None, padding=0, count_include_pad=True):
    """y = Σ window (padded cells 0) / count."""
    (kh, kw), (sh, sw), (pt, pb, pl, pr), (OH, OW) = geometry(x.shape, kernel_size, stride, padding)
    count = _counts(x.shape, kernel_size, stride, padding, count_include_pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    y = np.empty(x.shape[:2] + (OH, OW), x.dtype)
    for oh in range(OH):
        for ow in range(OW):
            window = xp[:, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw]
            y[:, :, oh, ow] = window.sum(axis=(2, 3)) / count[oh, ow]
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0, count_include_pad=True):
    """Every cell of a window gets dy / count; the padding's share is cropped away."""
    (kh, kw), (sh, sw), (pt, pb, pl, pr), (OH, OW) = geometry(x_shape, kernel_size, stride, padding)
    count = _counts(x_shape, kernel_size, stride, padding, count_include_pad)
    N, C, H, W = x_shape
    dxp = np.zeros((N, C, H + pt + pb, W + pl + pr), dy.dtype)
    for oh in range(OH):
        for ow in range(OW):
            g = dy[:, :, oh, ow] / count[oh, ow]
            dxp[:, :, oh * sh:oh * sh + kh, ow * sw:ow * sw + kw] += g[:, :, None, None]
    return dxp[:, :, pt:pt + H, pl:pl + W]


def global_avg_pool2d_forward(x):
    return x.mean(axis=(2, 3))


def global_avg_pool2d_backward(dy, x_shape):
    H, W = x_shape[2:]
    return np.broadcast_to(dy[:, :, None, None] / (H * W), x_shape).copy()


def _pads(padding):
    p = (padding,) * 4 if np.isscalar(padding) else tuple(padding)
    return p if len(p) == 4 else (p[0], p[0], p[1], p[1])


def zero_pad2d_forward(x, padding):
    top, bottom, left, right = _pads(padding)
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def zero_pad2d_backward(dy, x_shape, padding):
    top, _, left, _ = _pads(padding)
    H, W = x_shape[2:]
    return dy[:, :, top:top + H, left:left + W].copy()
