"""The transformer's layers in models (course 5, week 4): Softmax over any
axis, against the NumPy references of tests/reference/transformer.py in
float32 and float64, their input gradients (model.vjp) against the
references and against finite differences, and bad input."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import transformer as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

L = cn.layers


def gid(v):
    return str(v).replace(" ", "")


def input_gradient_check(model, x, seed=0):
    """The course's relative difference between model.vjp's dx and central
    differences of <P, predict(x)> for a fixed random cotangent P (float64)."""
    y, pullback = model.vjp(x)
    P = projection(y.shape, seed)
    numeric = numerical_gradient(lambda: float(np.sum(P * model.predict(x))), x)
    return relative_difference(pullback(P), numeric)


# ---------------------------------------------------------------- Softmax

# (per-example shape, axis): the last axis, a middle one, the first, rank 1,
# one entry along the axis, negative axes.
SOFTMAX_CASES = [((5,), -1), ((3, 4), -1), ((3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), -3), ((4, 1, 3), 2),
                 ((6, 2), 1)]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_softmax_matches_reference(dtype, shape, axis, rng):
    model = cn.Sequential([L.Input(shape), L.Softmax(axis=axis)], dtype=np.dtype(dtype).name)
    x = (3 * rng.standard_normal((4, *shape))).astype(dtype)
    y, pullback = model.vjp(x)
    expected = ref.softmax(x, axis)
    assert y.dtype == dtype
    assert_close(y, expected, dtype, what="y")
    assert_close(np.sum(y, axis=axis), np.ones(expected.sum(axis=axis).shape), dtype, what="sums")
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_close(pullback(dy), ref.softmax_backward(dy, expected, axis), dtype, what="dx")


@pytest.mark.parametrize("shape,axis", [((3, 4), 1), ((2, 3, 4), -1), ((2, 3, 2), 2)], ids=gid)
def test_softmax_gradient_check(shape, axis, rng):
    model = cn.Sequential([L.Input(shape), L.Softmax(axis=axis)], dtype="float64")
    assert input_gradient_check(model, rng.standard_normal((3, *shape))) < GRADCHECK_THRESHOLD


def test_softmax_over_time_in_a_graph(rng):
    # The course's attention weights: scores (N, Tx, 1) normalised over the Tx steps.
    x = L.Input((7, 1))
    model = cn.Model(x, L.Softmax(axis=1)(x))
    scores = rng.standard_normal((5, 7, 1)).astype(np.float32)
    assert_close(model.predict(scores), ref.softmax(scores, 1), np.float32, what="alphas")


def test_softmax_bad_axes():
    with pytest.raises(ValueError, match=r"softmax.*axis 0 is the batch axis"):
        L.Softmax(axis=0)(L.Input((3,)))
    with pytest.raises(ValueError, match=r"softmax.*axis must name a non-batch axis.*got 3"):
        L.Softmax(axis=3)(L.Input((3, 4)))
    with pytest.raises(ValueError, match=r"softmax.*got -4"):
        L.Softmax(axis=-4)(L.Input((3, 4)))
    with pytest.raises(TypeError, match="Softmax: axis must be an int"):
        L.Softmax(axis=1.0)
