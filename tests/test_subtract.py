"""Subtract (Keras: exactly two inputs, a − b) and the course's verification
head on |f(x1) − f(x2)| built from it with the "abs" activation: forward and
gradients against NumPy, the gradients by finite differences, the same tensor
on both sides, and the errors."""

import numpy as np
import pytest

import corenn as cn
from reference import activation as act_ref
from reference import dense as dense_ref
from reference import merge as merge_ref
from tolerances import GRADCHECK_THRESHOLD, tolerance

L = cn.layers


def verification_head(dtype="float64"):
    """Two inputs, one shared encoder f, ŷ = w·|f(x1) − f(x2)| + b (the course's
    sigmoid is the loss's)."""
    x1, x2 = L.Input((5,), name="x1"), L.Input((5,), name="x2")
    f = L.Dense(4, activation="tanh", name="f")
    d = L.Subtract(name="d")([f(x1), f(x2)])
    out = L.Dense(1, name="same")(L.Activation("abs", name="abs")(d))
    return cn.Model([x1, x2], out, dtype=dtype)


def head_numpy(model, x1, x2):
    W, b = model.get_layer("f").get_weights()
    e1, e2 = np.tanh(dense_ref.dense_forward(x1, W, b)), np.tanh(dense_ref.dense_forward(x2, W, b))
    h = act_ref.activation_forward(merge_ref.subtract_forward(e1, e2), "abs")
    return dense_ref.dense_forward(h, *model.get_layer("same").get_weights())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_subtract_forward_and_vjp_match_numpy(dtype):
    a, b = L.Input((2, 3), name="a"), L.Input((2, 3), name="b")
    model = cn.Model([a, b], L.Subtract()([a, b]), dtype=dtype)
    rng = np.random.default_rng(0)
    xa, xb = rng.standard_normal((4, 2, 3)).astype(dtype), rng.standard_normal((4, 2, 3)).astype(dtype)
    y, pullback = model.vjp([xa, xb])
    np.testing.assert_array_equal(y, merge_ref.subtract_forward(xa, xb))
    dy = rng.standard_normal(y.shape).astype(dtype)
    da, db = pullback(dy)
    want_a, want_b = merge_ref.subtract_backward(dy)
    np.testing.assert_array_equal(da, want_a)
    np.testing.assert_array_equal(db, want_b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_verification_head_matches_numpy(dtype):
    cn.seed(1)
    model = verification_head(dtype)
    rng = np.random.default_rng(2)
    x1, x2 = rng.standard_normal((6, 5)).astype(dtype), rng.standard_normal((6, 5)).astype(dtype)
    want = head_numpy(model, x1.astype(np.float64), x2.astype(np.float64))
    np.testing.assert_allclose(model.predict([x1, x2]), want, **tolerance(dtype))


def test_verification_head_gradients_by_finite_differences():
    # The shared encoder gets the sum of both calls' gradients, the second with its sign flipped.
    cn.seed(3)
    model = verification_head("float64")
    model.compile(optimizer="sgd", loss="binary_cross_entropy")
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    y = rng.integers(0, 2, (7, 1)).astype(np.float64)
    assert cn.gradient_check(model, [x1, x2], y) < GRADCHECK_THRESHOLD


def test_same_tensor_on_both_sides_cancels():
    cn.seed(0)
    x = L.Input((3,), name="x")
    h = L.Dense(2, name="h")(x)
    model = cn.Model(x, L.Subtract(name="zero")([h, h]), dtype="float64")
    xs = np.random.default_rng(1).standard_normal((4, 3))
    y, pullback = model.vjp(xs)
    np.testing.assert_array_equal(y, 0.0)
    np.testing.assert_array_equal(pullback(np.ones_like(y)), 0.0)


def test_subtract_errors_name_the_layer():
    x = L.Input((4,))
    a, b, c = L.Dense(4, name="da")(x), L.Dense(4, name="db")(x), L.Dense(3, name="dc")(x)
    with pytest.raises(ValueError, match=r"layer 'three' \(subtract\): needs exactly two inputs \(a − b\), got 3"):
        L.Subtract(name="three")([a, b, a])
    with pytest.raises(ValueError, match=r"layer 'shapes' \(subtract\).*broadcast.*from 'da' \(4,\), 'dc' \(3,\)"):
        L.Subtract(name="shapes")([a, c])
    with pytest.raises(ValueError, match=r"Subtract 'one': takes a list of two or more inputs"):
        L.Subtract(name="one")(a)
