"""Graph merges, float64: Add (a residual connection), Subtract (a siamese
network's f(x1) − f(x2)) and Concatenate (Inception branches). Their backward
passes hand the incoming gradient to every input, whole (Add), negated for the
subtracted input (Subtract) or sliced (Concatenate); a tensor used by several
layers receives the sum of what each sends back. Keras's Multiply, Average,
Maximum and Minimum, from their formulas."""

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


def multiply_forward(xs):
    """Keras's Multiply: x_0 · x_1 · ..., left to right."""
    y = xs[0].copy()
    for x in xs[1:]:
        y = y * x
    return y


def multiply_backward(dy, xs):
    """∂(x_0 ⋯ x_{n−1})/∂x_k = the product of the other factors."""
    return [dy * multiply_forward([x for j, x in enumerate(xs) if j != k])
            for k in range(len(xs))]


def average_forward(xs):
    """Keras's Average: (x_0 + ... + x_{n−1}) / n."""
    return add_forward(xs) / len(xs)


def average_backward(dy, count):
    return [dy / count for _ in range(count)]


def maximum_forward(xs):
    """Keras's Maximum: np.maximum folded over the inputs (NaN propagates)."""
    y = xs[0]
    for x in xs[1:]:
        y = np.maximum(y, x)
    return y


def minimum_forward(xs):
    y = xs[0]
    for x in xs[1:]:
        y = np.minimum(y, x)
    return y


def extremum_backward(dy, xs, y):
    """Maximum's and Minimum's gradients, given the output y: the inputs equal
    to y (NaN counting as equal to NaN) share dy equally (torch.amax's rule)."""
    attains = [(x == y) | (np.isnan(x) & np.isnan(y)) for x in xs]
    ties = np.sum(attains, axis=0)
    return [np.where(a, dy / np.maximum(ties, 1), 0.0) for a in attains]


def broadcast_inputs(xs):
    """Keras 3's merge layers broadcast their inputs as NumPy does: each axis
    of equal sizes or of size 1 (repeated to the others')."""
    return [np.array(x) for x in np.broadcast_arrays(*xs)]


def unbroadcast(dx, shape):
    """The gradient of an input of `shape` that was repeated to dx's shape:
    dx summed over the axes where the input has size 1 and dx does not."""
    axes = tuple(d for d, (s, t) in enumerate(zip(shape, dx.shape)) if s == 1 and t != 1)
    return np.sum(dx, axis=axes, keepdims=True)
