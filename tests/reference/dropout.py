"""Inverted dropout: keep unit i iff uniform01(key, i) >= rate, y = x·mask/(1 − rate).

The arithmetic runs in x's dtype (not float64) on purpose: the formula rounds
once per element, so the kernel must reproduce it bit for bit in float32 too.
The rate is rounded to that dtype first, as the kernel receives it.
"""

import numpy as np

from .random import uniform01


def dropout_mask(shape, rate, key, dtype=np.float64):
    rate = float(np.asarray(rate, dtype=dtype))
    n = int(np.prod(shape, dtype=np.int64))
    return (uniform01(key, np.arange(n, dtype=np.uint64)) >= rate).astype(np.uint8).reshape(shape)


def dropout_forward(x, rate, key):
    x = np.asarray(x)
    mask = dropout_mask(x.shape, rate, key, x.dtype)
    keep = x.dtype.type(1) - x.dtype.type(rate)
    return x * mask.astype(x.dtype) / keep, mask


def dropout_backward(dy, mask, rate):
    dy = np.asarray(dy)
    keep = dy.dtype.type(1) - dy.dtype.type(rate)
    return dy * (mask != 0).astype(dy.dtype) / keep


def sequence_dropout_forward(x, mask, rate):
    """One mask per sequence (the recurrent layers' dropout): x (N, T, F), mask
    (N, F) of 0/1 applied at every step, kept units scaled by 1/(1 − rate)."""
    x = np.asarray(x)
    keep = x.dtype.type(1) - x.dtype.type(rate)
    return x * np.asarray(mask, dtype=x.dtype)[:, None, :] / keep
