"""Neural style transfer costs (course 4, week 4; Gatys, Ecker, Bethge 2015).

Activations are NCHW arrays ``(N, C, H, W)`` (float32 or float64; other real
inputs are computed in float64), as a corenn model's layers give them. The
course defines each cost for one image; for N images the per-image costs are
added. Every function validates in the compiled core: a wrong rank, mismatched
shapes, an empty axis or a NaN/inf value raise ValueError naming the function
and the argument.

The costs are kernels with their gradients wrt the generated image's
activations (``return_grad=True``); :func:`transfer` pulls them back to the
image through ``model.vjp`` and optimises the image with Adam.
"""

import numbers

import numpy as np

from . import _validate
from ._core import ops as _ops

__all__ = ["content_cost", "gram_matrix", "style_cost", "total_variation", "transfer",
           "transfer_objective"]


def _float(owner, **arrays):
    arrays = [_validate.array(owner, name, a) for name, a in arrays.items()]
    # float32 only when every input is float32 (or narrower); ints and float64 give float64.
    dtype = np.float32 if np.result_type(*arrays, np.float32) == np.float32 else np.float64
    return [np.ascontiguousarray(a, dtype=dtype) for a in arrays]


def gram_matrix(a):
    """Gram matrices ``G = A·Aᵀ`` ``(N, C, C)`` of activations ``a`` ``(N, C, H, W)``,
    ``A`` being one image's activations reshaped ``(C, H·W)``: ``G[c, c']`` is the
    unnormalised correlation of channels ``c`` and ``c'`` (the course's "style
    matrix"). Its gradient is ``cn.ops.gram_matrix_backward(dG, a) = (dG + dGᵀ)·A``."""
    (a,) = _float("gram_matrix", a=a)
    return _ops.gram_matrix(a)


def content_cost(a_C, a_G, return_grad=False):
    """The course's content cost ``J = Σ (a_C − a_G)² / (4·C·H·W)``, summed over
    the N images of ``a_C``, ``a_G`` ``(N, C, H, W)`` (one shape). Returns J (a
    float), or ``(J, dJ/da_G)`` with ``dJ/da_G = (a_G − a_C) / (2·C·H·W)``."""
    a_C, a_G = _float("content_cost", a_C=a_C, a_G=a_G)
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
    weights = _validate.sequence(owner, "weights", weights, "a number or a list of numbers (one per layer)")
    if len(weights) != count:
        raise ValueError(f"{owner}: weights must hold one number per layer ({count}), "
                         f"got {len(weights)}")
    weights = [_validate.real(owner, f"weights[{i}]", w) for i, w in enumerate(weights)]
    total, grads = 0.0, []
    for s, g, w in zip(layers_S, layers_G, weights):
        s, g = _float(owner, a_S=s, a_G=g)
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
    (img,) = _float("total_variation", img=img)
    tv, grad = _ops.total_variation(img)
    return (tv, grad) if return_grad else tv


def _image(owner, name, value, shape, dtype):
    # One image (C, H, W) or a batch of one (1, C, H, W), as the model's input; finite.
    a = _validate.array(owner, name, value)
    if a.shape == shape[1:]:
        a = a[None]
    if a.shape != (1,) + shape[1:]:
        raise ValueError(f"{owner}: {name} must have the model's input shape {shape[1:]} or "
                         f"{(1,) + shape[1:]}, got {a.shape}")
    if a.dtype.kind == "b":
        raise TypeError(f"{owner}: {name} must be a real array, got {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError(f"{owner}: {name} must be finite (no NaN or inf)")
    return np.array(a, dtype=dtype)


def _layer_output(owner, name, model, layer_name):
    if not isinstance(layer_name, str) or layer_name not in [l.name for l in model.layers]:
        raise ValueError(f"{owner}: {name} must name a layer of the feature model, got {layer_name!r}; "
                         f"layers are {', '.join(l.name for l in model.layers)}")
    out = model.get_layer(layer_name).output
    if isinstance(out, list) or len(out.shape) != 4:
        raise ValueError(f"{owner}: {name} {layer_name!r} must give one NCHW output (N, C, H, W), "
                         f"got {getattr(out, 'shape', 'several outputs')}")
    return out


def transfer_objective(feature_model, content, style, content_layer, style_layers, style_weights=None,
                       alpha=10.0, beta=40.0, tv_weight=0.0):
    """The cost :func:`transfer` minimises, as a function of the image:
    returns ``objective(image) -> (costs, dJ/dimage)``, ``costs`` a dict of
    floats ``"total"`` J, ``"content"``, ``"style"`` and ``"tv"`` (the last
    three unweighted) and the gradient an array shaped like ``image``.

    ``J(G) = α·J_content(C, G) + β·J_style(S, G) + tv_weight·TV(G)`` with
    J_content :func:`content_cost` at ``content_layer``, J_style
    :func:`style_cost` over ``style_layers`` (``style_weights`` λ, one per
    layer; None: 1/L each, the course's 0.2 for five layers) and TV
    :func:`total_variation`. The activations are those of ``feature_model``
    (any corenn model with one NCHW image input, trained in corenn or
    loaded from PyTorch with cn.interop): a model ``cn.Model(
    feature_model.input, [layer outputs])`` sharing its weights gives them,
    and its ``vjp`` pulls ∂J/∂activations back to ∂J/∂G (inference mode:
    dropout off, batch-norm moving statistics). The weights never change.

    content, style and the image: ``(C, H, W)`` or ``(1, C, H, W)``, the
    model's input shape, computed in the model's dtype. Errors as
    :func:`transfer`'s.
    """
    from . import models

    owner = "transfer"
    _validate.model(owner, feature_model, "feature_model")
    if not feature_model.built:
        feature_model.build()   # a Sequential that starts with its Input
    if isinstance(feature_model.input, list) or len(feature_model.input.shape) != 4:
        raise TypeError(f"{owner}: feature_model must have one image input (N, C, H, W), got "
                        f"{feature_model.input}")
    shape, dtype = feature_model.input.shape, feature_model.dtype
    C = _image(owner, "content", content, shape, dtype)
    S = _image(owner, "style", style, shape, dtype)
    if isinstance(style_layers, str):
        style_layers = [style_layers]
    style_layers = _validate.sequence(owner, "style_layers", style_layers, "a layer name or a list of them")
    if not style_layers:
        raise ValueError(f"{owner}: style_layers must name at least one layer, got []")
    outputs = {content_layer: _layer_output(owner, "content_layer", feature_model, content_layer)}
    for i, name in enumerate(style_layers):
        outputs.setdefault(name, _layer_output(owner, f"style_layers[{i}]", feature_model, name))
    if style_weights is None:
        style_weights = [1.0 / len(style_layers)] * len(style_layers)
    if isinstance(style_weights, numbers.Real):
        style_weights = [style_weights]
    style_weights = _validate.sequence(owner, "style_weights", style_weights, "a number or a list of numbers")
    if len(style_weights) != len(style_layers):
        raise ValueError(f"{owner}: style_weights must hold one number per style layer "
                         f"({len(style_layers)}), got {len(style_weights)}")
    style_weights = [_validate.real(owner, f"style_weights[{i}]", w, 0.0) for i, w in enumerate(style_weights)]
    alpha = _validate.real(owner, "alpha", alpha, 0.0)
    beta = _validate.real(owner, "beta", beta, 0.0)
    tv_weight = _validate.real(owner, "tv_weight", tv_weight, 0.0)

    names = list(outputs)   # each layer once, even when it serves content and style
    features = models.Model(feature_model.input, [outputs[n] for n in names], dtype=dtype.name,
                            name=f"{feature_model.name}_style_features")

    def activations(x):
        y = features.predict(x)
        return dict(zip(names, y if isinstance(y, list) else [y]))

    a_C = activations(C)[content_layer]
    a_S = [activations(S)[n] for n in style_layers]

    def objective(image):
        G = _image(owner, "image", image, shape, dtype)
        y, pullback = features.vjp(G)
        a_G = dict(zip(names, y if isinstance(y, list) else [y]))
        j_content, d_content = content_cost(a_C, a_G[content_layer], return_grad=True)
        j_style, d_style = style_cost(a_S, [a_G[n] for n in style_layers], style_weights,
                                      return_grad=True)
        # A layer that serves content and style gets the sum of both gradients.
        dy = {n: np.zeros_like(a_G[n]) for n in names}
        dy[content_layer] += dtype.type(alpha) * d_content
        for n, d in zip(style_layers, d_style):
            dy[n] += dtype.type(beta) * d
        dG = pullback([dy[n] for n in names] if len(names) > 1 else dy[names[0]])
        j_tv, d_tv = total_variation(G, return_grad=True)   # reported even when unweighted
        if tv_weight:
            dG = dG + dtype.type(tv_weight) * d_tv
        costs = {"total": alpha * j_content + beta * j_style + tv_weight * j_tv,
                 "content": j_content, "style": j_style, "tv": j_tv}
        return costs, np.ascontiguousarray(dG, dtype=dtype).reshape(np.shape(image))

    return objective


def transfer(feature_model, content, style, content_layer, style_layers, style_weights=None,
             alpha=10.0, beta=40.0, steps=200, learning_rate=0.01, tv_weight=0.0, noise=0.0,
             seed=None, clip=None, callback=None):
    """Neural style transfer (course 4, week 4; Gatys, Ecker, Bethge 2015):
    gradient descent on the generated image G itself, the network fixed.

    Minimises :func:`transfer_objective`'s ``J(G) = α·J_content(C, G) +
    β·J_style(S, G) + tv_weight·TV(G)`` (the course's α = 10, β = 40, no TV by
    default) over the image with Adam (``cn.ops.adam_step``, lr
    ``learning_rate``, β₁ 0.9, β₂ 0.999, ε 1e-8) for ``steps`` steps,
    projecting the image onto ``clip`` = (low, high) after each step when given.
    ``feature_model`` is any corenn model with one NCHW image input;
    ``content_layer`` and ``style_layers`` name its layers.

    G starts at the content image plus ``noise`` · (max − min of the content)
    · U(−1, 1) per pixel, drawn with ``seed`` (the course starts from a noisy
    content image; noise = 0 starts at the content exactly).

    content, style: ``(C, H, W)`` or ``(1, C, H, W)``, the model's input shape;
    computed in the model's dtype. ``callback(step, image, cost)``, if given,
    is called after each step with the 1-based step, the current image (a
    copy) and J before that step.

    Returns ``(image, costs)``: the image in the shape ``content`` was given
    in, and a dict of float64 arrays of length steps + 1, ``"total"`` J,
    ``"content"``, ``"style"`` and ``"tv"`` (unweighted), entry k for the
    image after k steps.

    Errors, naming the argument: ValueError for an image of another shape than
    the model's input or with NaN/inf, a layer name that is not in the model
    (or not a 4-D output), an empty ``style_layers``, negative or non-finite
    ``alpha``, ``beta``, ``tv_weight``, ``noise`` or ``style_weights`` (or the
    wrong count), ``steps`` < 0, ``learning_rate`` <= 0, ``clip`` not low < high;
    TypeError for a feature model that is not a corenn model with one image input.
    """
    from . import ops

    owner = "transfer"
    objective = transfer_objective(feature_model, content, style, content_layer, style_layers,
                                   style_weights, alpha, beta, tv_weight)
    noise = _validate.real(owner, "noise", noise, 0.0)
    steps = _validate.integer(owner, "steps", steps, 0, _validate.INT_MAX)
    learning_rate = _validate.real(owner, "learning_rate", learning_rate, 0.0, low_open=True)
    if clip is not None:
        bounds = _validate.sequence(owner, "clip", clip, "(low, high)")
        if len(bounds) != 2:
            raise ValueError(f"{owner}: clip must be (low, high), got {clip!r}")
        low, high = (_validate.real(owner, "clip", v) for v in bounds)
        if not low < high:
            raise ValueError(f"{owner}: clip must be (low, high) with low < high, got {clip!r}")
    C = _image(owner, "content", content, feature_model.input.shape, feature_model.dtype)
    if callback is not None and not callable(callback):
        raise TypeError(f"{owner}: callback must be None or callable callback(step, image, cost), "
                        f"got {type(callback).__name__} {callback!r}")
    rng = np.random.default_rng(None if seed is None else _validate.integer(owner, "seed", seed, 0))
    G = (C + noise * float(C.max() - C.min()) * rng.uniform(-1.0, 1.0, C.shape)).astype(C.dtype)
    if clip is not None:
        np.clip(G, low, high, out=G)

    keys = ("total", "content", "style", "tv")
    history = []
    m, v = np.zeros_like(G), np.zeros_like(G)
    for step in range(1, steps + 1):
        costs, dG = objective(G)
        history.append([costs[k] for k in keys])
        ops.adam_step(G, dG, m, v, step, learning_rate)
        if clip is not None:
            np.clip(G, low, high, out=G)
        if callback is not None:
            callback(step, G.reshape(np.shape(content)).copy(), costs["total"])
    history.append([objective(G)[0][k] for k in keys])
    history = np.array(history, dtype=np.float64)
    return G.reshape(np.shape(content)).copy(), {k: history[:, i] for i, k in enumerate(keys)}
