"""Up-sampling of NCHW images by integer factors (sh, sw), from the formulas.

nearest:  y[n, c, i, j] = x[n, c, i // sh, j // sw]
bilinear (half-pixel centres, PyTorch's interpolate(mode="bilinear",
align_corners=False), Keras 3's resize): output index i of an axis of size H
scaled by s reads the source point u = max((i + ½) / s − ½, 0), between
u0 = ⌊u⌋ and u1 = min(u0 + 1, H − 1) with weight a = u − u0 on u1; then
y = (1−a)(1−b)·x[u0, v0] + (1−a)·b·x[u0, v1] + a·(1−b)·x[u1, v0] + a·b·x[u1, v1].
The backward pass is the transpose: every dy cell is added to the four (or one)
x cells it was made from, with the same weights.
"""

import numpy as np


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def source(i, scale, size):
    """(u0, u1, a) for output index i."""
    u = max((i + 0.5) / scale - 0.5, 0.0)
    u0 = int(np.floor(u))
    return u0, min(u0 + 1, size - 1), u - u0


def weights(out, scale, size):
    """The (out, size) matrix M with y = M·x along one axis."""
    M = np.zeros((out, size))
    for i in range(out):
        u0, u1, a = source(i, scale, size)
        M[i, u0] += 1 - a
        M[i, u1] += a
    return M


def upsample2d_forward(x, size=2, interpolation="nearest"):
    sh, sw = _pair(size)
    N, C, H, W = x.shape
    if interpolation == "nearest":
        rows = np.arange(H * sh) // sh
        cols = np.arange(W * sw) // sw
        return x[:, :, rows][:, :, :, cols]
    y = np.empty((N, C, H * sh, W * sw), x.dtype)
    for i in range(H * sh):
        u0, u1, a = source(i, sh, H)
        for j in range(W * sw):
            v0, v1, b = source(j, sw, W)
            y[:, :, i, j] = ((1 - a) * (1 - b) * x[:, :, u0, v0] + (1 - a) * b * x[:, :, u0, v1]
                             + a * (1 - b) * x[:, :, u1, v0] + a * b * x[:, :, u1, v1])
    return y


def upsample2d_backward(dy, x_shape, size=2, interpolation="nearest"):
    sh, sw = _pair(size)
    N, C, H, W = x_shape
    if interpolation == "nearest":
        # Each x cell was copied to an sh × sw block: the block's sum.
        return dy.reshape(N, C, H, sh, W, sw).sum(axis=(3, 5))
    # y = Mh · x · Mwᵀ per plane, so dx = Mhᵀ · dy · Mw.
    Mh, Mw = weights(H * sh, sh, H), weights(W * sw, sw, W)
    return np.einsum("ih,ncij,jw->nchw", Mh, dy, Mw)
