"""Graph merges, float64: Add (a residual connection), Subtract (a siamese
network's f(x1) − f(x2)) and Concatenate (Inception branches). Their backward
passes hand the incoming gradient to every input, whole (Add), negated for the
subtracted input (Subtract) or sliced (Concatenate); a tensor used by several
layers receives the sum of what each sends back."""

import numpy as np


def add_forward(xs):
    return np.sum(np.stack(xs), axis=0)


def add_backward(dy, count):
    return [dy.copy() for _ in range(count)]


def concat_forward(xs, axis=1):
    return np.concatenate(xs, axis=axis)


def concat_backward(dy, sizes, axis=1):
    """sizes: each input's extent along axis."""
    return np.split(dy, np.cumsum(sizes)[:-1], axis=axis)


def subtract_forward(a, b):
    return a - b


def subtract_backward(dy):
    """The gradients of a and b in a − b."""
    return [dy.copy(), -dy]
