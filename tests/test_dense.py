import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import dense as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

# (batch, in_features, out_features): batch 1, odd and prime sizes, wide and tall.
SHAPES = [(1, 1, 1), (1, 7, 3), (5, 13, 11), (64, 784, 32), (33, 17, 129), (3, 1, 9)]


def make(shape, dtype, rng):
    n, i, o = shape
    x = rng.standard_normal((n, i))
    W = rng.standard_normal((o, i)) / np.sqrt(i)
    b = rng.standard_normal(o)
    dy = rng.standard_normal((n, o))
    return [a.astype(dtype) for a in (x, W, b, dy)]


def test_dense_reference_gradient(rng):
    x, W, b = rng.standard_normal((4, 5)), rng.standard_normal((3, 5)), rng.standard_normal(3)
    P = projection((4, 3), 1)
    loss = lambda: float(np.sum(P * ref.dense_forward(x, W, b)))  # noqa: E731
    dx, dW, db = ref.dense_backward(P, x, W)
    for analytic, wrt in [(dx, x), (dW, W), (db, b)]:
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("naive", [False, True])
def test_forward_matches_reference(shape, dtype, naive, rng):
    x, W, b, _ = make(shape, dtype, rng)
    y = cn.ops.dense_forward(x, W, b, naive=naive)
    assert y.dtype == dtype
    f64 = [a.astype(np.float64) for a in (x, W, b)]
    assert_close(y, ref.dense_forward(*f64), op="dense_forward", what="y")
    assert_close(cn.ops.dense_forward(x, W, naive=naive), ref.dense_forward(*f64[:2]),
                 op="dense_forward", what="y without bias")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("naive", [False, True])
def test_backward_matches_reference(shape, dtype, naive, rng):
    x, W, _, dy = make(shape, dtype, rng)
    dx, dW, db = cn.ops.dense_backward(dy, x, W, naive=naive)
    edx, edW, edb = ref.dense_backward(*(a.astype(np.float64) for a in (dy, x, W)))
    for got, want, name in [(dx, edx, "dx"), (dW, edW, "dW"), (db, edb, "db")]:
        assert got.dtype == dtype
        assert_close(got, want, op="dense_backward", what=name)
    assert cn.ops.dense_backward(dy, x, W, with_bias=False)[2] is None


@pytest.mark.parametrize("shape", [(1, 3, 2), (4, 5, 3)])
def test_gradient_check(shape, rng):
    x, W, b, _ = make(shape, np.float64, rng)
    P = projection((shape[0], shape[2]), 7)
    loss = lambda: float(np.sum(P * cn.ops.dense_forward(x, W, b)))  # noqa: E731
    dx, dW, db = cn.ops.dense_backward(P, x, W)
    for analytic, wrt in [(dx, x), (dW, W), (db, b)]:
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


def test_non_contiguous_input_is_copied_not_misread(rng):
    x = rng.standard_normal((8, 6))[:, ::2]  # strided view (8, 3)
    W = rng.standard_normal((4, 3))
    assert_close(cn.ops.dense_forward(x, W), x @ W.T, op="dense_forward", what="strided x")


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((np.ones((2, 3), np.float32), np.ones((4, 3), np.float64)), TypeError,
         r"dense_forward: W must have the dtype of x \(float32\), got float64"),
        ((np.ones((2, 3), np.int64), np.ones((4, 3), np.int64)), TypeError,
         r"dense_forward: x must be float32 or float64, got int64"),
        ((np.ones((2, 3)), np.ones((4, 2))), ValueError,
         r"dense_forward: W must have shape \(4, 3\), got \(4, 2\)"),
        ((np.ones(3), np.ones((4, 3))), ValueError,
         r"dense_forward: x must be 2-D \(batch, in_features\), got shape \(3,\)"),
        ((np.ones((2, 3)), np.ones((4, 3)), np.ones(5)), ValueError,
         r"dense_forward: b must have shape \(4,\), got \(5,\)"),
    ],
)
def test_forward_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        cn.ops.dense_forward(*args)


def test_backward_bad_dy_shape():
    with pytest.raises(ValueError, match=r"dense_backward: dy must have shape \(2, 4\), got \(2, 5\)"):
        cn.ops.dense_backward(np.ones((2, 5)), np.ones((2, 3)), np.ones((4, 3)))
