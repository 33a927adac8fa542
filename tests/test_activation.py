import math

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import activation as ref
from reference import conv as ref_conv
from reference import dense as ref_dense
from tolerances import GRADCHECK_THRESHOLD, assert_close, tolerance

L = cn.layers
# Every accepted name, read from the C++ registry: a kind added there without a
# NumPy reference fails every test below.
KINDS = L.ACTIVATIONS
# Batch 1, odd and prime sizes, 1-D and 3-D inputs (softmax over the last axis),
# 4-D inputs (softmax over the channels, axis 1, at stride H·W: a partial block of
# positions; more positions than one block), and two large enough (26k, 38k
# elements) to take the multi-thread paths.
SHAPES = [(1, 1), (5, 13), (7,), (2, 3, 5), (100, 257), (3, 7, 2, 50), (4, 16, 20, 30)]
ALPHA = 0.1  # not the default, so a kernel ignoring alpha fails


def away_from_kinks(x, kind):
    """Moves samples within 1e-3 of a point where g' jumps to 1e-3 from it:
    finite differences across a kink are meaningless."""
    for k in ref.KINKS.get(kind, ()):
        d = x - k
        x = np.where(np.abs(d) < 1e-3, k + np.where(d < 0, -1e-3, 1e-3), x)
    return x


def make(shape, dtype, rng, kind, scale=3.0):
    """x spread over [-9, 9] or so: both sides of relu6's 6 and hard_sigmoid's ±3."""
    x = away_from_kinks(rng.standard_normal(shape) * scale, kind)
    dy = rng.standard_normal(shape)
    return x.astype(dtype), dy.astype(dtype)


def test_registry_lists_every_activation_once():
    assert KINDS == ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax", "elu", "selu",
                     "gelu", "gelu_tanh", "silu", "swish", "softplus", "relu6", "hard_sigmoid", "abs")


@pytest.mark.parametrize("kind", KINDS)
def test_activation_reference_gradient(kind, rng):
    x = away_from_kinks(rng.standard_normal((4, 5)) * 3.0, kind)
    P = projection((4, 5), 3)
    loss = lambda: float(np.sum(P * ref.activation_forward(x, kind, ALPHA)))  # noqa: E731
    dx = ref.activation_backward(P, x, ref.activation_forward(x, kind, ALPHA), kind, ALPHA)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


def test_reference_matches_the_textbook_formulas():
    """Anchors the vectorised reference to the formulas as PyTorch's and Keras's
    documentation write them, evaluated one scalar at a time (alpha = 1)."""
    selu_l, selu_a = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
    scalar = {
        "gelu": lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))),
        "gelu_tanh": lambda v: 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))),
        "silu": lambda v: v / (1 + math.exp(-v)),
        "swish": lambda v: v / (1 + math.exp(-v)),
        "elu": lambda v: v if v > 0 else math.exp(v) - 1,
        "selu": lambda v: selu_l * (v if v > 0 else selu_a * (math.exp(v) - 1)),
        "softplus": lambda v: math.log(1 + math.exp(v)),
        "relu6": lambda v: min(max(v, 0.0), 6.0),
        "hard_sigmoid": lambda v: min(max(v + 3, 0.0), 6.0) / 6,
        "abs": abs,
    }
    x = np.array([-4.0, -1.0, 0.5, 2.0, 7.0])
    for kind, f in scalar.items():
        assert_close(ref.activation_forward(x, kind, 1.0), [f(v) for v in x], op="reference", what=kind)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("naive", [False, True])
def test_forward_matches_reference(kind, shape, dtype, naive, rng):
    x, _ = make(shape, dtype, rng, kind)
    y = cn.ops.activation_forward(x, kind, ALPHA, naive=naive)
    assert y.dtype == dtype
    assert_close(y, ref.activation_forward(x.astype(np.float64), kind, ALPHA),
                 op="activation_forward", what=kind)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("naive", [False, True])
def test_backward_matches_reference(kind, shape, dtype, naive, rng):
    x, dy = make(shape, dtype, rng, kind)
    y = ref.activation_forward(x.astype(np.float64), kind, ALPHA).astype(dtype)
    dx = cn.ops.activation_backward(dy, x, y, kind, ALPHA, naive=naive)
    assert dx.dtype == dtype
    want = ref.activation_backward(*(a.astype(np.float64) for a in (dy, x, y)), kind, ALPHA)
    assert_close(dx, want, op="activation_backward", what=kind)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("scale", [50.0, 500.0])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("naive", [False, True])
def test_large_magnitudes_stay_finite(kind, scale, dtype, naive, rng):
    x, dy = make((16, 33), dtype, rng, kind, scale)
    x[0, :3] = [scale, -scale, 0]  # both saturated ends in every case
    y = cn.ops.activation_forward(x, kind, ALPHA, naive=naive)
    assert np.all(np.isfinite(y))
    want = ref.activation_forward(x.astype(np.float64), kind, ALPHA)
    assert_close(y, want, op="activation_forward", what=f"{kind} at scale {scale}")
    if kind == "softmax":
        assert_close(y.sum(axis=-1), np.ones(16), op="activation_forward", what="row sums")
    dx = cn.ops.activation_backward(dy, x, y, kind, ALPHA, naive=naive)
    assert np.all(np.isfinite(dx))
    assert_close(dx, ref.activation_backward(dy.astype(np.float64), x.astype(np.float64),
                                             y.astype(np.float64), kind, ALPHA),
                 op="activation_backward", what=f"{kind} at scale {scale}")


@pytest.mark.parametrize("shape", [(3, 6), (2, 3, 2, 2)])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("naive", [False, True])
def test_gradient_check(kind, shape, naive, rng):
    x, _ = make(shape, np.float64, rng, kind)
    P = projection(shape, 11)
    fwd = lambda: cn.ops.activation_forward(x, kind, ALPHA, naive=naive)  # noqa: E731
    dx = cn.ops.activation_backward(P, x, fwd(), kind, ALPHA, naive=naive)
    loss = lambda: float(np.sum(P * fwd()))  # noqa: E731
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize(
    "kind, alpha, x, want",
    [  # the derivative AT the kinks, as PyTorch's backward computes it
        ("relu", 0.01, [-1.0, 0.0, 2.0], [0.0, 0.0, 1.0]),
        ("leaky_relu", 0.2, [-1.0, 0.0, 2.0], [0.2, 0.2, 1.0]),
        ("elu", 0.5, [-1.0, 0.0, 2.0], [0.5 * np.exp(-1.0), 0.5, 1.0]),
        ("relu6", 0.01, [0.0, 3.0, 6.0, 7.0], [0.0, 1.0, 0.0, 0.0]),
        ("hard_sigmoid", 0.01, [-3.0, 0.0, 3.0, 4.0], [0.0, 1 / 6, 0.0, 0.0]),
        ("abs", 0.01, [-2.0, 0.0, 3.0], [-1.0, 0.0, 1.0]),  # torch.abs: sign(x), 0 at 0
    ],
)
def test_derivative_at_kinks_follows_pytorch(kind, alpha, x, want):
    x = np.array(x)
    for naive in (False, True):
        y = cn.ops.activation_forward(x, kind, alpha, naive=naive)
        dx = cn.ops.activation_backward(np.ones_like(x), x, y, kind, alpha, naive=naive)
        np.testing.assert_array_equal(dx, want)


# ---------------------------------------------------------------- special values

def assert_same_values(actual, expected, what):
    """NaN where the reference has NaN, the same infinities, and parity elsewhere
    (assert_close alone would scale its atol by an infinite value)."""
    expected = np.asarray(expected, np.float64)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{what}: NaN pattern")
    inf = np.isinf(expected)
    np.testing.assert_array_equal(actual[inf], expected[inf], err_msg=f"{what}: infinities")
    finite = np.isfinite(expected)
    assert np.all(np.isfinite(actual[finite])), f"{what}: non-finite where the reference is finite"
    assert_close(actual[finite], expected[finite], op="activation", what=what)


SPECIAL = [np.nan, np.inf, -np.inf, 0.5, -2.0, 7.0, -0.25, 2.5]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "softmax"])
@pytest.mark.parametrize("naive", [False, True])
def test_nan_and_inf_propagate_elementwise(kind, dtype, naive):
    # 3 x 8: each special value meets every position of the row split.
    x = np.array([SPECIAL, SPECIAL[::-1], np.roll(SPECIAL, 3)], dtype)
    dy = np.linspace(-1.5, 2.0, x.size).reshape(x.shape).astype(dtype)
    y = cn.ops.activation_forward(x, kind, ALPHA, naive=naive)
    want = ref.activation_forward(x.astype(np.float64), kind, ALPHA)
    assert_same_values(y, want, f"{kind} forward")
    assert np.all(np.isnan(y) == np.isnan(x)), f"{kind}: NaN in exactly where NaN out"
    dx = cn.ops.activation_backward(dy, x, y, kind, ALPHA, naive=naive)
    assert_same_values(dx, ref.activation_backward(dy.astype(np.float64), x.astype(np.float64),
                                                   y.astype(np.float64), kind, ALPHA),
                       f"{kind} backward")
    if kind != "linear":  # the identity passes dy through; it has no derivative to evaluate
        assert np.all(np.isnan(dx[np.isnan(x)])), f"{kind}: g'(NaN) must be NaN"


@pytest.mark.parametrize("naive", [False, True])
def test_relu_of_nan_is_nan_as_numpy_and_pytorch(naive):
    x = np.array([[np.nan, 1.0, -1.0]], np.float32)
    y = cn.ops.activation_forward(x, "relu", naive=naive)
    np.testing.assert_array_equal(y, [[np.nan, 1.0, 0.0]])
    np.testing.assert_array_equal(y, np.maximum(x, 0))
    dx = cn.ops.activation_backward(np.ones_like(x), x, y, "relu", naive=naive)
    np.testing.assert_array_equal(dx, [[np.nan, 1.0, 0.0]])


@pytest.mark.parametrize("kind", ["relu", "leaky_relu", "relu6", "hard_sigmoid", "sigmoid"])
@pytest.mark.parametrize("naive", [False, True])
def test_nan_in_dy_propagates_even_where_the_derivative_is_zero(kind, naive):
    x = np.array([-50.0, -10.0, 8.0, 50.0])  # flat regions (or saturated, for sigmoid)
    y = cn.ops.activation_forward(x, kind, naive=naive)
    dx = cn.ops.activation_backward(np.full(4, np.nan), x, y, kind, naive=naive)
    assert np.all(np.isnan(dx))


@pytest.mark.parametrize("naive", [False, True])
def test_sigmoid_of_infinities_is_one_and_zero(naive):
    for dtype in FLOAT_DTYPES:
        x = np.array([np.inf, -np.inf], dtype)
        y = cn.ops.activation_forward(x, "sigmoid", naive=naive)
        np.testing.assert_array_equal(y, [1.0, 0.0])
        np.testing.assert_array_equal(cn.ops.activation_backward(np.ones_like(x), x, y, "sigmoid",
                                                                 naive=naive), [0.0, 0.0])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_softmax_rows_with_nan_or_inf(dtype, naive):
    x = np.array([[np.nan, 1.0, 2.0],     # NaN anywhere: the whole row is NaN
                  [1.0, 2.0, np.nan],
                  [np.inf, 1.0, 2.0],     # +inf: NaN (inf - inf), as PyTorch
                  [-np.inf, 1.0, 2.0],    # -inf: probability 0
                  [-np.inf, -np.inf, -np.inf],  # all -inf: NaN, as PyTorch
                  [1.0, 2.0, 3.0]], dtype)
    y = cn.ops.activation_forward(x, "softmax", naive=naive)
    want = ref.activation_forward(x.astype(np.float64), "softmax")
    assert_same_values(y, want, "softmax forward")
    assert np.all(np.isnan(y[[0, 1, 2, 4]])) and np.all(np.isfinite(y[[3, 5]]))
    assert y[3, 0] == 0.0
    dy = np.linspace(-1.0, 1.0, x.size).reshape(x.shape).astype(dtype)
    dx = cn.ops.activation_backward(dy, x, y, "softmax", naive=naive)
    assert_same_values(dx, ref.activation_backward(dy.astype(np.float64), x.astype(np.float64),
                                                   y.astype(np.float64), "softmax"), "softmax backward")
    # Over the channels of an image: a NaN pixel poisons that pixel's channels only.
    img = np.arange(2 * 3 * 4 * 5, dtype=dtype).reshape(2, 3, 4, 5) / 10
    img[1, 2, 3, 4] = np.nan
    y = cn.ops.activation_forward(img, "softmax", naive=naive)
    assert np.all(np.isnan(y[1, :, 3, 4])) and np.isnan(y).sum() == 3


# ---------------------------------------------------------------- softmax axis

@pytest.mark.parametrize("naive", [False, True])
def test_softmax_normalises_the_channels_of_an_image(naive, rng):
    x = rng.standard_normal((2, 5, 3, 4))
    y = cn.ops.activation_forward(x, "softmax", naive=naive)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    np.testing.assert_allclose(y, e / e.sum(axis=1, keepdims=True), **tolerance(np.float64))
    assert_close(y.sum(axis=1), np.ones((2, 3, 4)), op="activation_forward", what="channel sums")
    # 1-, 2- and 3-D inputs keep the last axis: (F,), (N, F), (N, T, F).
    for shape in [(6,), (4, 6), (2, 3, 6)]:
        x = rng.standard_normal(shape)
        assert_close(cn.ops.activation_forward(x, "softmax", naive=naive).sum(axis=-1),
                     np.ones(shape[:-1]), op="activation_forward", what=f"sums of {shape}")


@pytest.mark.parametrize("kind", KINDS)
def test_thread_count_does_not_change_results(kind, rng):
    before = cn.get_num_threads()
    for shape in [(100, 257), (4, 16, 20, 30)]:
        x, dy = make(shape, np.float64, rng, kind)
        try:
            out = []
            for n in (1, 4):
                cn.set_num_threads(n)
                y = cn.ops.activation_forward(x, kind, ALPHA)
                out.append((y, cn.ops.activation_backward(dy, x, y, kind, ALPHA)))
        finally:
            cn.set_num_threads(before)
        # Element-wise and per-position work: every output is computed by one thread
        # with the same operations whatever the split, so results are bitwise equal.
        np.testing.assert_array_equal(out[0][0], out[1][0])
        np.testing.assert_array_equal(out[0][1], out[1][1])


def test_non_contiguous_input_is_copied_not_misread(rng):
    x = rng.standard_normal((6, 10))[:, ::2]
    assert_close(cn.ops.activation_forward(x, "softmax"), ref.activation_forward(x, "softmax"),
                 op="activation_forward", what="strided x")


@pytest.mark.parametrize("kind", [None, ""])
def test_none_and_empty_kind_mean_linear(kind, rng):
    x = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(cn.ops.activation_forward(x, kind), x)


def test_alpha_none_is_the_kinds_default(rng):
    x = rng.standard_normal((4, 5)) * 3
    for kind, default in [("leaky_relu", 0.01), ("elu", 1.0)]:
        np.testing.assert_array_equal(cn.ops.activation_forward(x, kind),
                                      cn.ops.activation_forward(x, kind, default))
        assert_close(cn.ops.activation_forward(x, kind), ref.activation_forward(x, kind, default),
                     op="activation_forward", what=kind)
    assert L.Dense(2, activation="elu").alpha == 1.0
    assert L.Activation("leaky_relu").alpha == 0.01
    assert L.Conv2D(2, 3, activation="elu", alpha=0.5).alpha == 0.5


VALID = ("'linear', 'sigmoid', 'tanh', 'relu', 'leaky_relu', 'softmax', 'elu', 'selu', 'gelu', "
         "'gelu_tanh', 'silu', 'swish', 'softplus', 'relu6', 'hard_sigmoid', 'abs'")


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((np.ones(3), "relux"), {}, ValueError,
         r"^activation_forward: kind must be one of " + VALID + r", got 'relux'$"),
        ((np.ones(3), "ReLU"), {}, ValueError, r"got 'ReLU'"),
        ((np.ones(3), 3), {}, TypeError, r"activation_forward: kind must be a string or None, got int"),
        ((np.ones(3, np.int32), "relu"), {}, TypeError,
         r"activation_forward: x must be float32 or float64, got int32"),
        ((np.array(1.0), "relu"), {}, ValueError,
         r"activation_forward: x must be at least 1-D, got shape \(\)"),
        ((np.ones(3), "leaky_relu"), {"alpha": float("nan")}, ValueError,
         r"activation_forward: alpha must be finite, got nan"),
        ((np.ones(3), "elu"), {"alpha": float("inf")}, ValueError,
         r"activation_forward: alpha must be finite, got inf"),
    ],
)
def test_forward_bad_inputs(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cn.ops.activation_forward(*args, **kwargs)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((np.ones((2, 3), np.float32), np.ones((2, 3)), np.ones((2, 3)), "relu"), TypeError,
         r"activation_backward: dy must have the dtype of x \(float64\), got float32"),
        ((np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3), np.float32), "relu"), TypeError,
         r"activation_backward: y must have the dtype of x \(float64\), got float32"),
        ((np.ones((2, 4)), np.ones((2, 3)), np.ones((2, 3)), "relu"), ValueError,
         r"activation_backward: dy must have shape \(2, 3\), got \(2, 4\)"),
        ((np.ones((2, 3)), np.ones((2, 3)), np.ones((3, 2)), "softmax"), ValueError,
         r"activation_backward: y must have shape \(2, 3\), got \(3, 2\)"),
        ((np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)), "soft_max"), ValueError,
         r"^activation_backward: kind must be one of " + VALID + r", got 'soft_max'$"),
    ],
)
def test_backward_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        cn.ops.activation_backward(*args)


@pytest.mark.parametrize("make_layer, owner", [
    (lambda: L.Dense(3, activation="mish"), "Dense"),
    (lambda: L.Activation("hard_swish"), "Activation"),
    (lambda: L.Conv2D(3, 3, activation="Gelu"), "Conv2D"),
])
def test_layers_reject_unknown_names_listing_the_registry(make_layer, owner):
    with pytest.raises(ValueError, match=rf"^{owner}: activation must be one of {VALID}, got '"):
        make_layer()


def test_engine_rejects_unknown_names_naming_the_layer():
    """What a C++ program or a hand-edited file hits: the same registry check."""
    engine = cn._core.Engine("float32")
    for kind, size in (("dense", {"units": 2}), ("activation", {}), ("conv2d", {"filters": 2})):
        with pytest.raises(ValueError, match=rf"^layer 'bad' \({kind}\): activation must be one of "
                                             rf"{VALID}, got 'tanhh'$"):
            engine.add({"kind": kind, "name": "bad", **size, "activation": "tanhh"})


# ---------------------------------------------------------------- layers and models

def _model(layers, shape, dtype="float64"):
    model = cn.Sequential([L.Input(shape), *layers], dtype=dtype)
    model.build()
    return model


@pytest.mark.parametrize("kind", KINDS)
def test_fused_and_standalone_activations_match_reference(kind, rng):
    x = rng.standard_normal((5, 4, 3, 3))
    model = _model([L.Conv2D(3, 2, activation=kind, alpha=ALPHA), L.Flatten(),
                    L.Dense(4, activation=kind, alpha=ALPHA), L.Activation(kind, alpha=ALPHA)], (4, 3, 3))
    Wc, bc, Wd, bd = model.get_weights()
    h = ref.activation_forward(ref_conv.conv2d_forward(x, Wc, bc), kind, ALPHA)
    h = ref.activation_forward(ref_dense.dense_forward(h.reshape(5, -1), Wd, bd), kind, ALPHA)
    assert_close(model.predict(x), ref.activation_forward(h, kind, ALPHA), op="model", what=kind)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_layers_normalise_image_channels(dtype, rng):
    """A per-pixel classifier (U-Net head): softmax over C of (N, C, H, W)."""
    x = rng.standard_normal((3, 2, 5, 4)).astype(dtype)
    for layers in ([L.Conv2D(4, 3, padding="same", activation="softmax")],
                   [L.Conv2D(4, 3, padding="same"), L.Activation("softmax")],
                   [L.Conv2DTranspose(4, 2, strides=2, activation="softmax")],
                   [L.SeparableConv2D(4, 3, padding="same", activation="softmax")]):
        model = _model(layers, (2, 5, 4), dtype)
        y = model.predict(x)
        assert_close(y.sum(axis=1), np.ones((3, *y.shape[2:])), op="model", what=layers[0].name)
        logits = _model([type(layers[0]).from_config({**layers[0].get_config(), "activation": None})],
                        (2, 5, 4), dtype)
        logits.set_weights(model.get_weights())
        z = logits.predict(x).astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        assert_close(y, e / e.sum(axis=1, keepdims=True), op="model", what=f"{layers[0].name} softmax")


def test_softmax_over_channels_gradient_check():
    cn.seed(3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 2, 4, 3))
    for layers in ([L.Conv2D(3, 3, padding="same", activation="softmax")],
                   [L.Conv2D(3, 3, padding="same"), L.Activation("softmax")]):
        model = _model([*layers, L.Conv2D(2, 1), L.Flatten(), L.Dense(3)], (2, 4, 3))
        model.compile(optimizer="sgd", loss="softmax_cross_entropy")
        assert cn.gradient_check(model, x, np.array([0, 1, 2, 1])) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("kind", KINDS)
def test_model_gradient_check_through_each_activation(kind):
    cn.seed(5)
    rng = np.random.default_rng(6)
    model = _model([L.Conv2D(3, 2, activation=kind, alpha=ALPHA), L.Flatten(), L.Dense(4),
                    L.Activation(kind, alpha=ALPHA), L.Dense(3)], (2, 3, 3))
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x = rng.standard_normal((4, 2, 3, 3))
    # The finite differences must not straddle a kink: check the pre-activations.
    Wc, bc, Wd, bd = model.get_weights()[:4]
    z1 = ref_conv.conv2d_forward(x, Wc, bc)
    z2 = ref_dense.dense_forward(ref.activation_forward(z1, kind, ALPHA).reshape(4, -1), Wd, bd)
    for z in (z1, z2):
        for k in ref.KINKS.get(kind, ()):
            assert np.min(np.abs(z - k)) > 1e-4, f"{kind}: a pre-activation sits on the kink {k}"
    assert cn.gradient_check(model, x, np.array([0, 1, 2, 1])) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_activation_round_trips_through_a_model_file(kind, dtype, tmp_path):
    cn.seed(7)
    model = _model([L.Conv2D(3, 2, activation=kind), L.Flatten(), L.Dense(4, activation=kind),
                    L.Activation(kind, alpha=0.3)], (2, 4, 4), dtype)
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn")
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    assert [l.activation for l in loaded.layers if hasattr(l, "activation")] == [kind] * 3
    x = np.random.default_rng(8).standard_normal((5, 2, 4, 4)).astype(dtype)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("stack", ["dense", "conv"])
def test_predict_nan_row_stays_in_its_row(stack, rng):
    """One example with a NaN gives NaN in its output row only; the others are
    bit for bit what they are without it."""
    cn.seed(9)
    if stack == "dense":
        model = _model([L.Dense(16, activation="relu"), L.Dense(8, activation="relu"), L.Dense(3)],
                       (6,), "float32")
        x = rng.standard_normal((5, 6)).astype(np.float32)
    else:
        model = _model([L.Conv2D(4, 3, padding="same", activation="relu"),
                        L.Conv2D(4, 3, strides=2, activation="relu"), L.Flatten(), L.Dense(3)],
                       (2, 8, 8), "float32")
        x = rng.standard_normal((5, 2, 8, 8)).astype(np.float32)
    clean = model.predict(x)
    assert np.all(np.isfinite(clean))
    x[2].flat[3] = np.nan
    y = model.predict(x)
    assert np.all(np.isnan(y[2])), "the NaN example must give NaN, not a relu-washed number"
    keep = [0, 1, 3, 4]
    np.testing.assert_array_equal(y[keep], clean[keep])
