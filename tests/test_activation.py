import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import activation as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

KINDS = ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax"]
# Batch 1, odd and prime sizes, a wide row, 1-D and 3-D inputs (softmax over the
# last axis), and one large enough (77k elements) to take the multi-thread path.
SHAPES = [(1, 1), (1, 7), (5, 13), (64, 10), (3, 1000), (7,), (2, 3, 5), (300, 257)]
ALPHA = 0.1  # not the default, so a kernel ignoring alpha fails


def away_from_kinks(x):
    """relu and leaky_relu have a kink at 0; finite differences across it are meaningless."""
    return np.where(np.abs(x) < 1e-2, np.sign(x) * 1e-2 + (x == 0) * 1e-2, x)


def make(shape, dtype, rng, scale=1.0):
    x = away_from_kinks(rng.standard_normal(shape)) * scale
    dy = rng.standard_normal(shape)
    return x.astype(dtype), dy.astype(dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_activation_reference_gradient(kind, rng):
    x = away_from_kinks(rng.standard_normal((4, 5)))
    P = projection((4, 5), 3)
    loss = lambda: float(np.sum(P * ref.activation_forward(x, kind, ALPHA)))  # noqa: E731
    dx = ref.activation_backward(P, x, ref.activation_forward(x, kind, ALPHA), kind, ALPHA)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("naive", [False, True])
def test_forward_matches_reference(kind, shape, dtype, naive, rng):
    x, _ = make(shape, dtype, rng)
    y = cn.ops.activation_forward(x, kind, ALPHA, naive=naive)
    assert y.dtype == dtype
    assert_close(y, ref.activation_forward(x.astype(np.float64), kind, ALPHA),
                 op="activation_forward", what=kind)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("naive", [False, True])
def test_backward_matches_reference(kind, shape, dtype, naive, rng):
    x, dy = make(shape, dtype, rng)
    y = ref.activation_forward(x.astype(np.float64), kind, ALPHA).astype(dtype)
    dx = cn.ops.activation_backward(dy, x, y, kind, ALPHA, naive=naive)
    assert dx.dtype == dtype
    want = ref.activation_backward(*(a.astype(np.float64) for a in (dy, x, y)), kind, ALPHA)
    assert_close(dx, want, op="activation_backward", what=kind)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("scale", [50.0, 500.0])
@pytest.mark.parametrize("kind", ["sigmoid", "tanh", "softmax"])
@pytest.mark.parametrize("naive", [False, True])
def test_large_magnitudes_stay_finite(kind, scale, dtype, naive, rng):
    x, dy = make((16, 33), dtype, rng, scale)
    x[0, :3] = [scale, -scale, 0]  # both saturated ends in every case
    y = cn.ops.activation_forward(x, kind, naive=naive)
    assert np.all(np.isfinite(y))
    want = ref.activation_forward(x.astype(np.float64), kind)
    assert_close(y, want, op="activation_forward", what=f"{kind} at scale {scale}")
    if kind == "softmax":
        assert_close(y.sum(axis=-1), np.ones(16), op="activation_forward", what="row sums")
    dx = cn.ops.activation_backward(dy, x, y, kind, naive=naive)
    assert np.all(np.isfinite(dx))
    assert_close(dx, ref.activation_backward(dy.astype(np.float64), x.astype(np.float64),
                                             y.astype(np.float64), kind),
                 op="activation_backward", what=f"{kind} at scale {scale}")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("naive", [False, True])
def test_gradient_check(kind, naive, rng):
    x, _ = make((3, 6), np.float64, rng)
    P = projection((3, 6), 11)
    fwd = lambda: cn.ops.activation_forward(x, kind, ALPHA, naive=naive)  # noqa: E731
    dx = cn.ops.activation_backward(P, x, fwd(), kind, ALPHA, naive=naive)
    loss = lambda: float(np.sum(P * fwd()))  # noqa: E731
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


def test_relu_and_leaky_derivative_at_zero_follows_x_gt_0():
    x = np.array([-1.0, 0.0, 2.0])
    dy = np.ones(3)
    for naive in (False, True):
        y = cn.ops.activation_forward(x, "relu", naive=naive)
        np.testing.assert_array_equal(cn.ops.activation_backward(dy, x, y, "relu", naive=naive),
                                      [0.0, 0.0, 1.0])
        y = cn.ops.activation_forward(x, "leaky_relu", 0.2, naive=naive)
        np.testing.assert_array_equal(
            cn.ops.activation_backward(dy, x, y, "leaky_relu", 0.2, naive=naive), [0.2, 0.2, 1.0])


@pytest.mark.parametrize("kind", [None, ""])
def test_none_and_empty_kind_mean_linear(kind, rng):
    x = rng.standard_normal((2, 3))
    np.testing.assert_array_equal(cn.ops.activation_forward(x, kind), x)


@pytest.mark.parametrize("kind", KINDS)
def test_thread_count_does_not_change_results(kind, rng):
    x, dy = make((300, 257), np.float64, rng)
    before = cn.get_num_threads()
    try:
        out = []
        for n in (1, 4):
            cn.set_num_threads(n)
            y = cn.ops.activation_forward(x, kind, ALPHA)
            out.append((y, cn.ops.activation_backward(dy, x, y, kind, ALPHA)))
    finally:
        cn.set_num_threads(before)
    # Element-wise and row-wise work: every output is computed by one thread
    # with the same operations whatever the split, so results are bitwise equal.
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_non_contiguous_input_is_copied_not_misread(rng):
    x = rng.standard_normal((6, 10))[:, ::2]
    assert_close(cn.ops.activation_forward(x, "softmax"), ref.activation_forward(x, "softmax"),
                 op="activation_forward", what="strided x")


VALID = "expected one of linear, sigmoid, tanh, relu, leaky_relu, softmax"


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        ((np.ones(3), "relux"), {}, ValueError, r"activation: unknown kind 'relux'; " + VALID),
        ((np.ones(3), "ReLU"), {}, ValueError, r"unknown kind 'ReLU'"),
        ((np.ones(3), 3), {}, TypeError, r"activation_forward: kind must be a string or None, got int"),
        ((np.ones(3, np.int32), "relu"), {}, TypeError,
         r"activation_forward: x must be float32 or float64, got int32"),
        ((np.array(1.0), "relu"), {}, ValueError,
         r"activation_forward: x must be at least 1-D, got shape \(\)"),
        ((np.ones(3), "leaky_relu"), {"alpha": float("nan")}, ValueError,
         r"activation_forward: alpha must be finite, got nan"),
        ((np.ones(3), "leaky_relu"), {"alpha": float("inf")}, ValueError,
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
         r"activation: unknown kind 'soft_max'; " + VALID),
    ],
)
def test_backward_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        cn.ops.activation_backward(*args)
