"""Dot, float64: Keras's batch_dot, per example a tensordot over one axis of
each input (axes count the batch axis), optionally of the L2-normalised inputs
(x / max(‖x‖, eps), torch.nn.functional.normalize), which gives the cosine
similarity. Output: input 0's other axes, then input 1's; (N,) becomes (N, 1)."""

import numpy as np

from .unit_norm import unit_norm_backward, unit_norm_forward


def _axes(x1, x2, axes):
    return axes[0] % x1.ndim, axes[1] % x2.ndim


def dot_forward(x1, x2, axes, normalize=False):
    a1, a2 = _axes(x1, x2, axes)
    if normalize:
        x1, x2 = unit_norm_forward(x1, a1), unit_norm_forward(x2, a2)
    out = np.stack([np.tensordot(u, v, axes=(a1 - 1, a2 - 1)) for u, v in zip(x1, x2)])
    return out.reshape(len(x1), 1) if out.ndim == 1 else out


def dot_backward(dy, x1, x2, axes, normalize=False):
    """(dx1, dx2) for the output gradient dy."""
    a1, a2 = _axes(x1, x2, axes)
    u, v = x1, x2
    if normalize:
        u, v = unit_norm_forward(x1, a1), unit_norm_forward(x2, a2)
    r1, r2 = u.ndim - 2, v.ndim - 2  # other axes per example
    du, dv = np.empty_like(u), np.empty_like(v)
    for n in range(len(u)):
        g = dy[n].reshape(u.shape[1:a1] + u.shape[a1 + 1:] + v.shape[1:a2] + v.shape[a2 + 1:])
        # d u = g contracted with v over v's other axes, the K axis put back at a1.
        du[n] = np.moveaxis(np.tensordot(g, np.moveaxis(v[n], a2 - 1, -1), axes=(list(range(r1, r1 + r2)),
                                                                              list(range(r2)))), -1, a1 - 1)
        dv[n] = np.moveaxis(np.tensordot(np.moveaxis(u[n], a1 - 1, -1), g, axes=(list(range(r1)),
                                                                                  list(range(r1)))), 0, a2 - 1)
    if normalize:
        return unit_norm_backward(du, x1, a1), unit_norm_backward(dv, x2, a2)
    return du, dv


def batched_matmul_forward(a, b, trans_a=False, trans_b=False):
    """The Dot layer's kernel: c[e] = op(a[e]) · op(b[e]), op(X) = Xᵀ for an
    operand stored transposed; a (batch, M, K) or (batch, K, M), b (batch, K, N)
    or (batch, N, K)."""
    A = a.transpose(0, 2, 1) if trans_a else a
    B = b.transpose(0, 2, 1) if trans_b else b
    return np.einsum("emk,ekn->emn", A, B)


def batched_matmul_backward(dc, a, b, trans_a=False, trans_b=False):
    """(da, db): d op(a) = dc · op(b)ᵀ, d op(b) = op(a)ᵀ · dc, each stored as its operand is."""
    A = a.transpose(0, 2, 1) if trans_a else a
    B = b.transpose(0, 2, 1) if trans_b else b
    dA = np.einsum("emn,ekn->emk", dc, B)
    dB = np.einsum("emk,emn->ekn", A, dc)
    return (dA.transpose(0, 2, 1) if trans_a else dA), (dB.transpose(0, 2, 1) if trans_b else dB)
