"""Sequence plumbing, float64, written from the definitions step by step
(independent of the engine, which folds time steps into the batch):

repeat_vector: y[n, t, :] = x[n, :] for t < n_rep; dx = Σ_t dy[:, t].
per_step: a per-example function f applied at every time step,
    y[:, t] = f(x[:, t]) — TimeDistributed(layer), and Dense on the last axis.
bidirectional: a forward run over x and a backward run over x reversed in
    time; with return_sequences the backward outputs are reversed back, then
    merged: concat [a, b], sum a + b, mul a ⊙ b, ave (a + b) / 2, None (a, b).
"""

import numpy as np


def repeat_vector_forward(x, n):
    N, F = x.shape
    y = np.zeros((N, n, F))
    for t in range(n):
        y[:, t] = x
    return y


def repeat_vector_backward(dy):
    dx = np.zeros((dy.shape[0], dy.shape[2]))
    for t in range(dy.shape[1]):
        dx += dy[:, t]
    return dx


def per_step(f, x):
    """np.stack([f(x[:, t]) for t], axis=1): f at every step."""
    return np.stack([f(x[:, t]) for t in range(x.shape[1])], axis=1)


def merge_forward(a, b, mode):
    if mode == "concat":
        return np.concatenate([a, b], axis=-1)
    if mode == "sum":
        return a + b
    if mode == "mul":
        return a * b
    if mode == "ave":
        return (a + b) / 2
    return [a, b]


def merge_backward(dy, a, b, mode):
    """(da, db) from the merged output's gradient (a list of two for None)."""
    if mode == "concat":
        return dy[..., :a.shape[-1]], dy[..., a.shape[-1]:]
    if mode == "sum":
        return dy, dy
    if mode == "mul":
        return dy * b, dy * a
    if mode == "ave":
        return dy / 2, dy / 2
    return dy[0], dy[1]


def bidirectional_forward(run, x, mode, return_sequences):
    """run(x_in_processing_order, direction) -> (output, states) for direction
    0 (forward) and 1 (backward, which reads x reversed in time). Returns
    (merged output (a list of two for None), forward states, backward states,
    (a, b) the merge's inputs in time order)."""
    a, states_f = run(x, 0)
    b, states_b = run(x[:, ::-1], 1)
    if return_sequences:
        b = b[:, ::-1]
    return merge_forward(a, b, mode), states_f, states_b, (a, b)
