"""The Dot layer (Keras's batch_dot, with normalize = cosine similarity) and
its kernels (batched matmul, L2 normalisation) against tests/reference/dot.py:
forward and backward parity in float32 and float64, finite differences, a
layer that learns through it, and its bad inputs."""

import numpy as np
import pytest

import corenn as cn
from gradcheck import numerical_gradient, projection, relative_difference
from reference import dot as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close, tolerance

L = cn.layers

# (per-example shape 0, per-example shape 1, axes): vectors, the last axes of
# two sequences (attention scores), the first of one and the last of the other
# (Keras's docstring example), both first, a vector against a matrix, negative
# axes, odd sizes and K = 1.
CASES = [
    ((4,), (4,), (1, 1)),
    ((5, 3), (4, 3), (2, 2)),
    ((5, 2), (2, 5), (1, 2)),
    ((5, 2), (5, 3), (1, 1)),
    ((4,), (4, 6), (1, 1)),
    ((5, 4), (4,), (-1, -1)),
    ((3, 1), (7, 1), (-1, 2)),
    ((2, 3, 4), (4, 5), (3, 1)),
]


def dot_model(shape0, shape1, axes, normalize, dtype):
    a, b = L.Input(shape0, name="a"), L.Input(shape1, name="b")
    return cn.Model([a, b], L.Dot(axes=axes, normalize=normalize, name="dot")([a, b]), dtype=dtype)


def data(shape0, shape1, n=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape0)), rng.standard_normal((n, *shape1))


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape0,shape1,axes", CASES)
def test_forward_and_backward_match_numpy(shape0, shape1, axes, normalize, dtype):
    model = dot_model(shape0, shape1, axes, normalize, dtype)
    x0, x1 = (x.astype(dtype) for x in data(shape0, shape1))
    want = ref.dot_forward(x0.astype(np.float64), x1.astype(np.float64), axes, normalize)
    assert model.output_shape == (None, *want.shape[1:])
    y, pullback = model.vjp([x0, x1])
    assert_close(y, want)
    dy = projection(want.shape, 1).astype(dtype)
    d0, d1 = pullback(dy)
    w0, w1 = ref.dot_backward(dy.astype(np.float64), x0.astype(np.float64), x1.astype(np.float64), axes, normalize)
    assert_close(d0, w0, what="dx0")
    assert_close(d1, w1, what="dx1")


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("shape0,shape1,axes", CASES)
def test_input_gradients_match_finite_differences(shape0, shape1, axes, normalize):
    model = dot_model(shape0, shape1, axes, normalize, "float64")
    x0, x1 = data(shape0, shape1, n=2, seed=3)
    y, pullback = model.vjp([x0, x1])
    p = projection(y.shape, 4)
    d0, d1 = pullback(p)
    for x, analytic in ((x0, d0), (x1, d1)):
        numeric = numerical_gradient(lambda: float(np.sum(p * model.predict([x0, x1]))), x)
        assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


def test_keras_docstring_example():
    # keras.layers.Dot(axes=(1, 2))([x, y]) with x = arange(10) as (1, 5, 2), y = arange(10, 20) as (1, 2, 5).
    model = dot_model((5, 2), (2, 5), (1, 2), False, "float64")
    x = np.arange(10.0).reshape(1, 5, 2)
    y = np.arange(10.0, 20.0).reshape(1, 2, 5)
    assert np.array_equal(model.predict([x, y]), [[[260.0, 360.0], [320.0, 445.0]]])


def test_normalize_gives_the_cosine_similarity_and_zero_vectors_stay_finite():
    model = dot_model((6,), (6,), (1, 1), True, "float64")
    u, v = data((6,), (6,), n=4, seed=5)
    u[3] = 0.0  # clamped norm: 0, not NaN
    want = np.sum(u * v, axis=1) / np.maximum(np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1), 1e-300)
    got = model.predict([u, v])
    np.testing.assert_allclose(got[:, 0], want, **tolerance(np.float64))
    assert got[3, 0] == 0.0
    _, pullback = model.vjp([u, v])
    du, dv = pullback(np.ones((4, 1)))
    assert np.all(np.isfinite(du)) and np.all(np.isfinite(dv)) and np.all(dv[3] == 0.0)


def test_same_tensor_twice_sums_both_gradients():
    # Dot()([h, h]) = ‖h‖²: its gradient is 2h (through the Dense below, a weight check).
    cn.seed(0)
    x = L.Input((3,))
    h = L.Dense(4, name="h")(x)
    model = cn.Model(x, L.Dot(axes=1)([h, h]), dtype="float64")
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    xs, ys = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    W, b = model.get_layer("h").get_weights()
    hs = xs @ W.T + b
    np.testing.assert_allclose(model.predict(xs)[:, 0], np.sum(hs * hs, axis=1), **tolerance(np.float64))
    assert cn.gradient_check(model, xs, ys) < GRADCHECK_THRESHOLD


def test_skip_gram_scores_train_through_two_embeddings():
    # word · context with sigmoid cross-entropy: pairs that co-occur score higher after training.
    cn.seed(3)
    w, c = L.Input((1,)), L.Input((1,))
    ew = L.Reshape((8,))(L.Embedding(10, 8, name="target")(w))
    ec = L.Reshape((8,))(L.Embedding(10, 8, name="context")(c))
    model = cn.Model([w, c], L.Dot(axes=1)([ew, ec]), dtype="float64")
    model.compile(optimizer=cn.optimizers.Adam(0.05), loss="binary_cross_entropy")  # sigmoid fused, on logits
    rng = np.random.default_rng(0)
    words = rng.integers(0, 10, 400)
    positive = rng.random(400) < 0.5
    contexts = np.where(positive, (words + 1) % 10, (words + 5) % 10)
    xs = [words[:, None].astype(np.float64), contexts[:, None].astype(np.float64)]
    ys = positive[:, None].astype(np.float64)
    assert cn.gradient_check(model, [x[:6] for x in xs], ys[:6]) < GRADCHECK_THRESHOLD
    model.fit(xs, ys, epochs=30, batch_size=50, verbose=0)
    scores = model.predict(xs)[:, 0]
    assert np.mean((scores > 0) == positive) == 1.0


def test_bad_axes_and_sizes_raise_value_errors_naming_the_argument():
    a, b = L.Input((5, 2)), L.Input((2, 5))
    with pytest.raises(ValueError, match=r"\(dot\): axes\[0\] = 3 is out of range for input 0 of shape "
                                         r"\(batch, 5, 2\): expected an axis in \[1, 2\] or \[-2, -1\]"):
        L.Dot(axes=(3, 1))([a, b])
    with pytest.raises(ValueError, match=r"axes\[1\] = -3 is out of range for input 1"):
        L.Dot(axes=(1, -3))([a, b])
    with pytest.raises(ValueError, match=r"axes must not name the batch axis 0, got \[1, 0\]"):
        L.Dot(axes=(1, 0))([a, b])
    with pytest.raises(ValueError, match=r"the dot product's axes must have one size, got 5 \(input 0, "
                                         r"shape \(5, 2\) per example\) and 2 \(input 1"):
        L.Dot(axes=1)([a, b])
    with pytest.raises(ValueError, match=r"axes\[0\] = 2 names a middle axis of input 0"):
        L.Dot(axes=(2, 1))([L.Input((3, 2, 4)), L.Input((2,))])
    with pytest.raises(ValueError, match=r"Dot: axes must be one axis or a pair"):
        L.Dot(axes=(1, 1, 1))
    with pytest.raises(TypeError, match=r"Dot: axes must be an int"):
        L.Dot(axes=1.5)
    with pytest.raises(TypeError, match=r"Dot: normalize must be True or False"):
        L.Dot(axes=1, normalize="yes")
    with pytest.raises(ValueError, match=r"takes a list of two or more inputs"):
        L.Dot(axes=1)(a)
    with pytest.raises(ValueError, match=r"\(dot\): takes exactly two inputs, got 3"):
        L.Dot(axes=-1)([a, a, a])
    e = cn._core.Engine("float32")
    with pytest.raises(ValueError, match=r"\(dot\): axes must hold one axis per input \(2\), got \[1\]"):
        e.add({"kind": "dot", "name": "d", "axes": [1]})


def test_dot_round_trips_through_a_file(tmp_path):
    model = dot_model((5, 3), (4, 3), (2, 2), True, "float32")
    model.save(tmp_path / "dot.corenn")
    loaded = cn.load_model(tmp_path / "dot.corenn")
    x = [v.astype(np.float32) for v in data((5, 3), (4, 3))]
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_layer("dot").get_config() == model.get_layer("dot").get_config()
