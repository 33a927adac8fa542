"""Embedding lookup, from the formula (Keras's Embedding, PyTorch's nn.Embedding).

forward:  y[..., :] = W[ids[...], :]            W: (input_dim, output_dim)
backward: dW[w, :] = Σ_{i : ids[i] = w} dy[i, :]  (the ids get no gradient)

As the course writes it, e_w = E·o_w with E = Wᵀ and o_w the one-hot column
of w: the forward below is that product, spelled out.
"""

import numpy as np


def one_hot(ids, input_dim):
    """O (n, input_dim): row i is o_{ids[i]}."""
    ids = np.asarray(ids).reshape(-1)
    o = np.zeros((ids.size, input_dim))
    o[np.arange(ids.size), ids] = 1.0
    return o


def embedding_forward(ids, W):
    ids = np.asarray(ids)
    y = one_hot(ids, W.shape[0]) @ W  # row i: (E·o_{ids[i]})ᵀ
    return y.reshape(*ids.shape, W.shape[1])


def embedding_backward(dy, ids, input_dim):
    ids = np.asarray(ids)
    return one_hot(ids, input_dim).T @ dy.reshape(ids.size, -1)
