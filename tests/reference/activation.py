"""Activations A = g(Z) and their backward dZ = dA ⊙ g'(Z), from the formulas.

Definitions follow PyTorch's torch.nn modules (ELU, SELU, GELU(approximate=
'none'|'tanh'), SiLU, Softplus, ReLU6, Hardsigmoid, Softmax) and Keras 3's
keras.activations of the same names: https://pytorch.org/docs/stable/nn.html#non-linear-activations-weighted-sum-nonlinearity
and https://keras.io/api/layers/activations/. hard_sigmoid is Keras 3's
relu6(x + 3) / 6 (= PyTorch's Hardsigmoid), not Keras 2's 0.2x + 0.5. abs is
torch.abs: |x|, its derivative sign(x) (0 at 0, as torch.sgn in abs's backward).

Special values: NaN maps to NaN everywhere (forward and g'(NaN)); ±inf give the
function's limit (x·σ(x) → 0 at -inf, not inf·0 = NaN); softmax of a slice
holding NaN or +inf is all NaN, as PyTorch computes it.
"""

import math

import numpy as np

SELU_ALPHA = 1.6732632423543772848170429916717  # PyTorch's constants
SELU_LAMBDA = 1.0507009873554804934193349852946
GELU_CUBIC = 0.044715

# Points where g' jumps: finite differences straddling them test nothing.
KINKS = {"relu": (0.0,), "leaky_relu": (0.0,), "elu": (0.0,), "selu": (0.0,),
         "relu6": (0.0, 6.0), "hard_sigmoid": (-3.0, 3.0), "abs": (0.0,)}

_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def feature_axis(x):
    """Softmax's axis: the channels (1) of 4-D and larger inputs (NCHW), else the last."""
    return 1 if x.ndim >= 4 else -1


def _sigmoid(x):
    # e^{-|x|} is in (0, 1]: neither branch can overflow, and np.where
    # evaluates both branches, so neither may warn.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _times(a, b):
    """a·b with the limit 0 where b = 0 (a may be ±inf there)."""
    with np.errstate(invalid="ignore"):
        return np.where(b == 0, 0.0, a * b)


def _keep_nan(x, d):
    """g'(NaN) = NaN for derivatives written as comparisons."""
    return np.where(np.isnan(x), np.nan, d)


def _normal_cdf(x):
    """Φ(x) = ½ erfc(-x/√2)."""
    return 0.5 * _erfc(-np.asarray(x, np.float64) / math.sqrt(2.0))


def _gelu_tanh_inner(x):
    return math.sqrt(2.0 / math.pi) * (x + GELU_CUBIC * x ** 3)


def activation_forward(x, kind, alpha=0.01):
    """A = g(Z). softmax normalises over feature_axis(x)."""
    if kind == "linear":
        return x.copy()
    if kind == "sigmoid":
        return _sigmoid(x)
    if kind == "tanh":
        return np.tanh(x)
    if kind == "relu":
        return np.maximum(x, 0.0)  # np.maximum propagates NaN
    if kind == "leaky_relu":
        return np.where(x > 0, x, alpha * x)
    if kind == "softmax":
        axis = feature_axis(x)
        with np.errstate(invalid="ignore"):  # +inf - +inf: NaN, as PyTorch
            e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / np.sum(e, axis=axis, keepdims=True)
    if kind == "elu":  # x if x > 0 else α(e^x - 1); min() keeps expm1 of the other branch finite
        return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    if kind == "selu":  # λ·elu_α(x) with PyTorch's fixed λ, α
        return SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0.0)))
    if kind == "gelu":  # x·Φ(x)
        return _times(x, _normal_cdf(x))
    if kind == "gelu_tanh":  # ½x(1 + tanh(√(2/π)(x + 0.044715x³)))
        return _times(x, 0.5 * (1.0 + np.tanh(_gelu_tanh_inner(x))))
    if kind in ("silu", "swish"):  # x·σ(x)
        return _times(x, _sigmoid(x))
    if kind == "softplus":  # log(1 + e^x) in the stable form
        return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0.0)
    if kind == "relu6":
        return np.minimum(np.maximum(x, 0.0), 6.0)
    if kind == "hard_sigmoid":
        return np.minimum(np.maximum(x + 3.0, 0.0), 6.0) / 6.0
    if kind == "abs":
        return np.abs(x)
    raise ValueError(kind)


def activation_derivative(x, y, kind, alpha=0.01):
    """g'(Z) element-wise, from the input x (or the output y where simpler)."""
    if kind == "linear":
        return np.ones_like(x)
    if kind == "sigmoid":
        return y * (1.0 - y)
    if kind == "tanh":
        return 1.0 - y ** 2
    if kind == "relu":
        return _keep_nan(x, (x > 0).astype(np.float64))
    if kind == "leaky_relu":
        return _keep_nan(x, np.where(x > 0, 1.0, alpha))
    if kind == "elu":
        return np.where(x > 0, 1.0, alpha * np.exp(np.minimum(x, 0.0)))
    if kind == "selu":
        return SELU_LAMBDA * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0.0)))
    if kind == "gelu":  # Φ(x) + x·φ(x)
        pdf = np.exp(-0.5 * x ** 2) / math.sqrt(2.0 * math.pi)
        return _normal_cdf(x) + _times(x, pdf)
    if kind == "gelu_tanh":
        t = np.tanh(_gelu_tanh_inner(x))
        du = math.sqrt(2.0 / math.pi) * x * (1.0 + 3.0 * GELU_CUBIC * x ** 2)
        return 0.5 * (1.0 + t) + _times(du, 0.5 * (1.0 - t ** 2))
    if kind in ("silu", "swish"):  # σ(x)(1 + x(1 - σ(x)))
        s = _sigmoid(x)
        return s + _times(x, s * (1.0 - s))
    if kind == "softplus":
        return _sigmoid(x)
    if kind == "relu6":
        return _keep_nan(x, ((x > 0) & (x < 6)).astype(np.float64))
    if kind == "hard_sigmoid":
        return _keep_nan(x, ((x > -3) & (x < 3)) / 6.0)
    if kind == "abs":
        return _keep_nan(x, np.sign(x))
    raise ValueError(kind)


def activation_backward(dy, x, y, kind, alpha=0.01):
    """dZ = dA ⊙ g'(Z); softmax: dZ = A ⊙ (dA - Σ_c dA_c A_c) over feature_axis."""
    if kind == "softmax":
        return y * (dy - np.sum(dy * y, axis=feature_axis(y), keepdims=True))
    return dy * activation_derivative(x, y, kind, alpha)
