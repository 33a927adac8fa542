"""Dot, float64: Keras's batch_dot, per example a tensordot over one axis of
each input (axes count the batch axis), optionally of the L2-normalised inputs
(x / max(‖x‖, eps), torch.nn.functional.normalize), which gives the cosine
similarity. Output: input 0's other axes, then input 1's; (N,) becomes (N, 1)."""

import numpy as np

EPS = 1e-12


def l2_normalize(x, axis):
    norm = np.maximum(np.sqrt(np.sum(x * x, axis=axis, keepdims=True)), EPS)
    return x / norm, norm


def l2_normalize_backward(dy, y, norm, axis):
    """dx = (dy − y·Σ(y·dy)) / n where the norm was not clamped, dy / eps where it was."""
    projection = np.where(norm > EPS, np.sum(y * dy, axis=axis, keepdims=True), 0.0)
    return (dy - y * projection) / norm


def _axes(x1, x2, axes):
    return axes[0] % x1.ndim, axes[1] % x2.ndim


def dot_forward(x1, x2, axes, normalize=False):
    a1, a2 = _axes(x1, x2, axes)
    if normalize:
        x1, _ = l2_normalize(x1, a1)
        x2, _ = l2_normalize(x2, a2)
    out = np.stack([np.tensordot(u, v, axes=(a1 - 1, a2 - 1)) for u, v in zip(x1, x2)])
    return out.reshape(len(x1), 1) if out.ndim == 1 else out


def dot_backward(dy, x1, x2, axes, normalize=False):
    """(dx1, dx2) for the output gradient dy."""
    a1, a2 = _axes(x1, x2, axes)
    u, v = x1, x2
    if normalize:
        u, n1 = l2_normalize(x1, a1)
        v, n2 = l2_normalize(x2, a2)
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
        return l2_normalize_backward(du, u, n1, a1), l2_normalize_backward(dv, v, n2, a2)
    return du, dv
