"""Convolution references, NCHW, float64.

Two forms of conv2d: the course's loops (`conv2d_forward_loops`: for every
output pixel, the sum of a window times the filter — slow, small inputs only)
and an im2col one (`conv2d_forward`: gather every window into a column
matrix, one einsum) used for the bigger grid cases. The test suite checks the
two against each other and both backwards against finite differences.

Padding is (top, bottom, left, right); stride and dilation are (h, w) pairs.
Keras's "same" is written out here from TensorFlow's rule (same_pads) so the
tests compare corenn's "same" layers with explicit, asymmetric padding.
"""

import numpy as np


def pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def pad4(padding):
    if np.isscalar(padding):
        return (padding,) * 4
    if len(padding) == 2:
        return (padding[0], padding[0], padding[1], padding[1])
    return tuple(padding)


def out_size(size, pad_before, pad_after, k, stride, dilation):
    return (size + pad_before + pad_after - dilation * (k - 1) - 1) // stride + 1


def same_pads(size, k, stride, dilation=1):
    """TensorFlow's "same" along one axis: out = ⌈size / stride⌉ windows, total
    padding max((out − 1)·stride + (k − 1)·dilation + 1 − size, 0), the odd
    cell after (bottom/right). Returns (out, before, after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return out, total // 2, total - total // 2


def same_pad4(size_hw, k, stride, dilation=1):
    """(top, bottom, left, right) of Keras's "same" for an (H, W) image."""
    (kh, kw), (sh, sw), (dh, dw) = pair(k), pair(stride), pair(dilation)
    _, top, bottom = same_pads(size_hw[0], kh, sh, dh)
    _, left, right = same_pads(size_hw[1], kw, sw, dw)
    return top, bottom, left, right


def _pad(x, pt, pb, pl, pr):
    return np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))


def conv2d_forward_loops(x, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    """y[n, o, i, j] = b[o] + Σ W[o] ⊙ window of x[n, group(o)] at (i, j)."""
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = pair(stride), pair(dilation), pad4(padding)
    N, C, H, Wd = x.shape
    O, Cg, KH, KW = W.shape
    Og = O // groups
    OH, OW = out_size(H, pt, pb, KH, sh, dh), out_size(Wd, pl, pr, KW, sw, dw)
    xp = _pad(x, pt, pb, pl, pr)
    y = np.zeros((N, O, OH, OW))
    for n in range(N):
        for o in range(O):
            c0 = (o // Og) * Cg
            for i in range(OH):
                for j in range(OW):
                    window = xp[n, c0:c0 + Cg,
                                i * sh:i * sh + dh * (KH - 1) + 1:dh,
                                j * sw:j * sw + dw * (KW - 1) + 1:dw]
                    y[n, o, i, j] = np.sum(window * W[o]) + (0.0 if b is None else b[o])
    return y


def im2col(x, KH, KW, stride, padding, dilation):
    """cols[n, c, p, q, i, j] = padded x[n, c, i·sh + p·dh, j·sw + q·dw]."""
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = pair(stride), pair(dilation), pad4(padding)
    N, C, H, Wd = x.shape
    OH, OW = out_size(H, pt, pb, KH, sh, dh), out_size(Wd, pl, pr, KW, sw, dw)
    xp = _pad(x, pt, pb, pl, pr)
    cols = np.empty((N, C, KH, KW, OH, OW))
    for p in range(KH):
        for q in range(KW):
            cols[:, :, p, q] = xp[:, :, p * dh:p * dh + sh * (OH - 1) + 1:sh,
                                  q * dw:q * dw + sw * (OW - 1) + 1:sw]
    return cols


def col2im(cols, x_shape, stride, padding, dilation):
    """The adjoint of im2col: every column entry added back onto its pixel."""
    (sh, sw), (dh, dw), (pt, pb, pl, pr) = pair(stride), pair(dilation), pad4(padding)
    N, C, H, Wd = x_shape
    _, _, KH, KW, OH, OW = cols.shape
    xp = np.zeros((N, C, H + pt + pb, Wd + pl + pr))
    for p in range(KH):
        for q in range(KW):
            xp[:, :, p * dh:p * dh + sh * (OH - 1) + 1:sh,
               q * dw:q * dw + sw * (OW - 1) + 1:sw] += cols[:, :, p, q]
    return xp[:, :, pt:pt + H, pl:pl + Wd]


def _grouped(a, groups):
    """(N, C, ...) -> (N, groups, C/groups, ...)."""
    return a.reshape(a.shape[0], groups, a.shape[1] // groups, *a.shape[2:])


def conv2d_forward(x, W, b=None, stride=1, padding=0, dilation=1, groups=1):
    """im2col form: y[n, g, o] = Σ_{c, p, q} W[g, o, c, p, q] · cols[n, g, c, p, q]."""
    O, Cg, KH, KW = W.shape
    cols = _grouped(im2col(x, KH, KW, stride, padding, dilation), groups)
    Wg = W.reshape(groups, O // groups, Cg, KH, KW)
    y = np.einsum("gocpq,ngcpqij->ngoij", Wg, cols)
    y = y.reshape(x.shape[0], O, *y.shape[3:])
    return y if b is None else y + b[None, :, None, None]


def conv2d_backward(dy, x, W, stride=1, padding=0, dilation=1, groups=1):
    """dx = col2im(Wᵀ·dy), dW = dy·colsᵀ, db = Σ dy."""
    O, Cg, KH, KW = W.shape
    cols = _grouped(im2col(x, KH, KW, stride, padding, dilation), groups)
    Wg = W.reshape(groups, O // groups, Cg, KH, KW)
    dyg = _grouped(dy, groups)
    dW = np.einsum("ngoij,ngcpqij->gocpq", dyg, cols).reshape(W.shape)
    dcols = np.einsum("gocpq,ngoij->ngcpqij", Wg, dyg)
    dcols = dcols.reshape(x.shape[0], x.shape[1], *dcols.shape[3:])
    dx = col2im(dcols, x.shape, stride, padding, dilation)
    return dx, dW, dy.sum(axis=(0, 2, 3))


def conv_transpose2d_out(size, k, stride, pad_before, pad_after, output_padding, dilation=1):
    return (size - 1) * stride - pad_before - pad_after + dilation * (k - 1) + 1 + output_padding


def conv_transpose2d_forward(x, W, b=None, stride=1, padding=0, output_padding=0, dilation=1):
    """From the definition: every input pixel x[n, c, h, w] adds x·W[c] into the
    output at rows h·sh − top + p·dh, columns w·sw − left + q·dw; padding (top,
    bottom, left, right) is cropped from the full output. Loops: small inputs."""
    (sh, sw), (pt, pb, pl, pr), (oph, opw) = pair(stride), pad4(padding), pair(output_padding)
    dh, dw = pair(dilation)
    N, C, H, Wd = x.shape
    _, O, KH, KW = W.shape
    OH = conv_transpose2d_out(H, KH, sh, pt, pb, oph, dh)
    OW = conv_transpose2d_out(Wd, KW, sw, pl, pr, opw, dw)
    spanh, spanw = dh * (KH - 1) + 1, dw * (KW - 1) + 1
    # Scatter into an output padded by the cropped border, then crop.
    full = np.zeros((N, O, (H - 1) * sh + spanh + oph, (Wd - 1) * sw + spanw + opw))
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(Wd):
                    full[n, :, h * sh:h * sh + spanh:dh, w * sw:w * sw + spanw:dw] += x[n, c, h, w] * W[c]
    y = np.zeros((N, O, OH, OW))
    rows, cols_ = min(OH, full.shape[2] - pt), min(OW, full.shape[3] - pl)
    y[:, :, :rows, :cols_] = full[:, :, pt:pt + rows, pl:pl + cols_]
    return y if b is None else y + b[None, :, None, None]


def conv_transpose2d_backward(dy, x, W, stride=1, padding=0, output_padding=0, dilation=1):
    """dx[n, c, h, w] = Σ W[c] ⊙ (the window of dy it scattered into);
    dW[c] = Σ_{n, h, w} x[n, c, h, w] · that window; db = Σ dy."""
    (sh, sw), (ph, _, pw, _), (dh, dw) = pair(stride), pad4(padding), pair(dilation)
    N, C, H, Wd = x.shape
    _, O, KH, KW = W.shape
    spanh, spanw = dh * (KH - 1) + 1, dw * (KW - 1) + 1
    full = np.zeros((N, O, (H - 1) * sh + spanh + max(0, dy.shape[2] + ph - ((H - 1) * sh + spanh)),
                     (Wd - 1) * sw + spanw + max(0, dy.shape[3] + pw - ((Wd - 1) * sw + spanw))))
    full[:, :, ph:ph + dy.shape[2], pw:pw + dy.shape[3]] = dy
    dx = np.zeros(x.shape)
    dW = np.zeros(W.shape)
    for n in range(N):
        for h in range(H):
            for w in range(Wd):
                window = full[n, :, h * sh:h * sh + spanh:dh, w * sw:w * sw + spanw:dw]  # (O, KH, KW)
                dx[n, :, h, w] = np.einsum("opq,copq->c", window, W)
                dW += x[n, :, h, w][:, None, None, None] * window[None]
    return dx, dW, dy.sum(axis=(0, 2, 3))
