"""The Dot layer (Keras's batch_dot, with normalize = cosine similarity) and
its kernels (batched matmul; the L2 normalisation is UnitNormalization's) against tests/reference/dot.py:
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
    contracted = (1,) + tuple(shape0)  # the per-example shape with the batch axis, as axes count
    if normalize and contracted[axes[0]] == 1:
        # Normalising along an axis of length 1 gives sign(x): the true gradient is
        # exactly 0, and a relative difference of two rounding errors means nothing.
        assert np.abs(d0).max() < 1e-12 and np.abs(d1).max() < 1e-12
        return
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


# ---------------------------------------------------------------- cn.ops: the kernel itself

def matmul_operands(batch, m, n, k, trans_a, trans_b, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((batch, k, m) if trans_a else (batch, m, k)).astype(dtype)
    b = rng.standard_normal((batch, n, k) if trans_b else (batch, k, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch,m,n,k", [(3, 5, 4, 7), (1, 1, 1, 1), (9, 17, 3, 33)])
def test_ops_batched_matmul_matches_numpy(batch, m, n, k, trans_a, trans_b, dtype, naive):
    a, b = matmul_operands(batch, m, n, k, trans_a, trans_b, dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    c = cn.ops.batched_matmul_forward(a, b, trans_a=trans_a, trans_b=trans_b, naive=naive)
    assert c.dtype == np.dtype(dtype)
    assert_close(c, ref.batched_matmul_forward(a64, b64, trans_a, trans_b), what="c")
    dc = projection((batch, m, n), 2).astype(dtype)
    da, db = cn.ops.batched_matmul_backward(dc, a, b, trans_a=trans_a, trans_b=trans_b, naive=naive)
    want_a, want_b = ref.batched_matmul_backward(dc.astype(np.float64), a64, b64, trans_a, trans_b)
    assert_close(da, want_a, what="da")
    assert_close(db, want_b, what="db")


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_ops_batched_matmul_gradients_match_finite_differences(trans_a, trans_b):
    a, b = matmul_operands(2, 3, 4, 5, trans_a, trans_b, np.float64, seed=7)
    p = projection((2, 3, 4), 8)
    da, db = cn.ops.batched_matmul_backward(p, a, b, trans_a=trans_a, trans_b=trans_b)
    loss = lambda: float(np.sum(p * cn.ops.batched_matmul_forward(a, b, trans_a=trans_a, trans_b=trans_b)))  # noqa: E731
    assert relative_difference(da, numerical_gradient(loss, a)) < GRADCHECK_THRESHOLD
    assert relative_difference(db, numerical_gradient(loss, b)) < GRADCHECK_THRESHOLD


def test_ops_batched_matmul_is_the_dot_layers_product():
    # Dot(axes=(2, 2)) on (5, 3) and (4, 3) examples: a · bᵀ per example.
    model = dot_model((5, 3), (4, 3), (2, 2), False, "float64")
    a, b = data((5, 3), (4, 3))
    assert np.array_equal(cn.ops.batched_matmul_forward(a, b, trans_b=True), model.predict([a, b]))


def test_ops_batched_matmul_reads_read_only_and_strided_inputs_and_empty_batches():
    a, b = matmul_operands(2, 3, 4, 5, False, False, np.float64)
    want = ref.batched_matmul_forward(a, b)
    a.flags.writeable = False
    assert_close(cn.ops.batched_matmul_forward(a, b), want)
    strided = np.asfortranarray(b)
    assert_close(cn.ops.batched_matmul_forward(a, strided), want)
    empty = cn.ops.batched_matmul_forward(a[:0], b[:0])
    assert empty.shape == (0, 3, 4)


def test_ops_batched_matmul_bad_inputs_raise_errors_naming_the_argument():
    a, b = matmul_operands(2, 3, 4, 5, False, False, np.float32)
    with pytest.raises(ValueError, match=r"batched_matmul_forward: a must be 3-D \(batch, M, K\), got shape \(3, 5\)"):
        cn.ops.batched_matmul_forward(a[0], b)
    with pytest.raises(ValueError, match=r"batched_matmul_forward: b must be 3-D \(batch, N, K\)"):
        cn.ops.batched_matmul_forward(a, b[0], trans_b=True)
    with pytest.raises(ValueError, match=r"batched_matmul_forward: b must have a's batch \(2\) and contracted "
                                         r"size K \(5\), got b of shape \(2, 4, 5\)"):
        cn.ops.batched_matmul_forward(a, b.transpose(0, 2, 1))
    with pytest.raises(ValueError, match=r"b must have a's batch \(2\)"):
        cn.ops.batched_matmul_forward(a, b[:1])
    with pytest.raises(TypeError, match=r"batched_matmul_forward: b must have the dtype of a \(float32\), got float64"):
        cn.ops.batched_matmul_forward(a, b.astype(np.float64))
    with pytest.raises(TypeError, match=r"batched_matmul_forward: a must be float32 or float64, got int64"):
        cn.ops.batched_matmul_forward(a.astype(np.int64), b)
    with pytest.raises(ValueError, match=r"batched_matmul_backward: dc must have shape \(2, 3, 4\), got \(2, 4, 3\)"):
        cn.ops.batched_matmul_backward(np.zeros((2, 4, 3), np.float32), a, b)
    with pytest.raises(TypeError, match=r"batched_matmul_backward: dc must have the dtype of a"):
        cn.ops.batched_matmul_backward(np.zeros((2, 3, 4)), a, b)
