"""Data augmentation on NCHW batches, from the formulas in
cpp/include/corenn/kernels/augment.hpp, with the draws reproduced from the
counter-based generator (reference/random.py), so outputs can be compared
exactly rather than by their statistics.

    random_flip   flips[n] = random_bits(key, n) & mode  (bit 0 left-right, bit 1 upside down)
    random_crop   (oy, ox) = (⌊u(key, 2n)·(2 ph + 1)⌋, ⌊u(key, 2n+1)·(2 pw + 1)⌋)
                  y[n, c, i, j] = xpad[n, c, i + oy, j + ox], xpad = x with ph/pw zeros around
    color_shift   shift[n, c] = delta·(2 u(key, n·C + c) − 1) in float64, rounded to x's dtype;
                  y = x + shift
"""

import numpy as np

from .random import random_bits, uniform01

MODES = {"horizontal": 1, "vertical": 2, "horizontal_and_vertical": 3}


def flip_draws(batch, mode, key):
    bits = random_bits(key, np.arange(batch, dtype=np.uint64))
    return (bits & np.uint64(MODES[mode])).astype(np.uint8)


def apply_flips(x, flips):
    out = x.copy()
    for n, f in enumerate(flips):
        if f & 1:
            out[n] = out[n][:, :, ::-1]
        if f & 2:
            out[n] = out[n][:, ::-1, :]
    return out


def random_flip_forward(x, mode, key):
    flips = flip_draws(len(x), mode, key)
    return apply_flips(x, flips), flips


def random_flip_backward(dy, flips):
    return apply_flips(dy, flips)  # a flip is its own inverse


def crop_draws(batch, pad_h, pad_w, key):
    n = np.arange(batch, dtype=np.uint64)
    oy = np.floor(uniform01(key, np.uint64(2) * n) * (2 * pad_h + 1)).astype(np.int64)
    ox = np.floor(uniform01(key, np.uint64(2) * n + np.uint64(1)) * (2 * pad_w + 1)).astype(np.int64)
    return np.stack([oy, ox], axis=1)


def random_crop_forward(x, pad_h, pad_w, key):
    offsets = crop_draws(len(x), pad_h, pad_w, key)
    H, W = x.shape[2:]
    xpad = np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    y = np.stack([xpad[n, :, oy:oy + H, ox:ox + W] for n, (oy, ox) in enumerate(offsets)])
    return y.astype(x.dtype), offsets


def random_crop_backward(dy, offsets, pad_h, pad_w):
    """The crop is y = S_n(pad(x)); its adjoint adds dy into a padded zero
    canvas at the window and cuts the padding off."""
    N, C, H, W = dy.shape
    canvas = np.zeros((N, C, H + 2 * pad_h, W + 2 * pad_w), dtype=dy.dtype)
    for n, (oy, ox) in enumerate(offsets):
        canvas[n, :, oy:oy + H, ox:ox + W] += dy[n]
    return canvas[:, :, pad_h:pad_h + H, pad_w:pad_w + W]


def color_shift_forward(x, delta, key):
    N, C = x.shape[:2]
    u = uniform01(key, np.arange(N * C, dtype=np.uint64)).reshape(N, C)
    shift = (float(x.dtype.type(delta)) * (2.0 * u - 1.0)).astype(x.dtype)
    return x + shift.reshape(N, C, *([1] * (x.ndim - 2))), shift
