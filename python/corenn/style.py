"""Neural style transfer costs (course 4, week 4; Gatys, Ecker, Bethge 2015).

Activations are NCHW arrays ``(N, C, H, W)`` (float32 or float64; other real
inputs are computed in float64), as a corenn model's layers give them. The
course defines each cost for one image; for N images the per-image costs are
added. Every function validates in the compiled core: a wrong rank, mismatched
shapes, an empty axis or a NaN/inf value raise ValueError naming the function
and the argument.

The costs are kernels with their gradients wrt the generated image's
activations (``return_grad=True``); the optimisation loop that pulls them back
to the image through ``model.vjp`` waits for the graph engine.
"""

import numbers

import numpy as np

from . import _validate
from ._core import ops as _ops

__all__ = ["content_cost", "gram_matrix", "style_cost", "total_variation"]


def _float(*arrays):
    arrays = [np.asarray(a) for a in arrays]
    # float32 only when every input is float32 (or narrower); ints and float64 give float64.
    dtype = np.float32 if np.result_type(*arrays, np.float32) == np.float32 else np.float64
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrays]


def gram_matrix(a):
    """Gram matrices ``G = A·Aᵀ`` ``(N, C, C)`` of activations ``a`` ``(N, C, H, W)``,
    ``A`` being one image's activations reshaped ``(C, H·W)``: ``G[c, c']`` is the
    unnormalised correlation of channels ``c`` and ``c'`` (the course's "style
    matrix"). Its gradient is ``cn.ops.gram_matrix_backward(dG, a) = (dG + dGᵀ)·A``."""
    (a,) = _float(a)
    return _ops.gram_matrix(a)


def content_cost(a_C, a_G, return_grad=False):
    """The course's content cost ``J = Σ (a_C − a_G)² / (4·C·H·W)``, summed over
    the N images of ``a_C``, ``a_G`` ``(N, C, H, W)`` (one shape). Returns J (a
    float), or ``(J, dJ/da_G)`` with ``dJ/da_G = (a_G − a_C) / (2·C·H·W)``."""
    a_C, a_G = _float(a_C, a_G)
    cost, grad = _ops.content_cost(a_C, a_G)
    return (cost, grad) if return_grad else cost


def style_cost(a_S, a_G, weights=None, return_grad=False):
    """The course's style cost.

    One layer: ``a_S``, ``a_G`` arrays ``(N, C, H, W)`` of one shape, and
    ``J = Σ (G_S − G_G)² / (4·C²·(H·W)²)`` with G the unnormalised Gram matrices
    (:func:`gram_matrix`), summed over the N images.

    Several layers: ``a_S``, ``a_G`` lists of such arrays (one per layer; layers
    may differ in shape) and ``J = Σ_l λ[l]·J[l]`` with ``weights`` λ (a list of
    finite numbers, one per layer; None gives every layer 1/L, the course's 0.2
    for its five layers). A single layer's weight defaults to 1.

    Returns J, or ``(J, dJ/da_G)`` with the gradient an array (one layer) or a
    list (one per layer, λ included):
    ``dJ[l]/da_G = (G_G − G_S)·A_G / (C²·(H·W)²)`` per image.
    """
    owner = "style_cost"
    single = not isinstance(a_S, (list, tuple))
    if single != (not isinstance(a_G, (list, tuple))):
        raise TypeError(f"{owner}: a_S and a_G must both be arrays or both be lists of arrays, "
                        f"got {type(a_S).__name__} and {type(a_G).__name__}")
    layers_S, layers_G = ([a_S], [a_G]) if single else (list(a_S), list(a_G))
    if len(layers_S) != len(layers_G) or not layers_S:
        raise ValueError(f"{owner}: a_S and a_G must hold the same number (>= 1) of layers, "
                         f"got {len(layers_S)} and {len(layers_G)}")
    count = len(layers_S)
    if weights is None:
        weights = [1.0] if single else [1.0 / count] * count
    elif single and isinstance(weights, numbers.Real):
        weights = [weights]
    weights = list(weights)
    if len(weights) != count:
        raise ValueError(f"{owner}: weights must hold one number per layer ({count}), "
                         f"got {len(weights)}")
    weights = [_validate.real(owner, f"weights[{i}]", w) for i, w in enumerate(weights)]
    total, grads = 0.0, []
    for s, g, w in zip(layers_S, layers_G, weights):
        s, g = _float(s, g)
        cost, grad = _ops.style_cost(s, g)
        total += w * cost
        grads.append(grad * grad.dtype.type(w))
    if not return_grad:
        return total
    return total, (grads[0] if single else grads)


def total_variation(img, return_grad=False):
    """Anisotropic total variation of ``img`` ``(N, C, H, W)``: the sum of the
    absolute differences of vertically and horizontally neighbouring pixels, over
    every channel and image. This is TensorFlow's ``tf.image.total_variation``
    (absolute, not squared, differences) for NCHW, added over the batch (TF returns
    one value per image). Returns TV, or ``(TV, dTV/dimg)``; the gradient of
    ``|d|`` uses sign(0) = 0, as TensorFlow's."""
    (img,) = _float(img)
    tv, grad = _ops.total_variation(img)
    return (tv, grad) if return_grad else tv
