"""Normalisation with fixed statistics: the normalize kernels against the NumPy
reference, and the Normalization layer (Standardizer.layer(), adapt) as model
state that training never changes."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import normalization as ref
from tolerances import GRADCHECK_THRESHOLD, STATISTIC, assert_close, tolerance

L = cn.layers


def stats(rng, c, dtype, zero=True):
    mean = rng.normal(0, 3, c).astype(dtype)
    variance = rng.uniform(0.1, 5, c).astype(dtype)
    if zero:
        variance[0] = 0  # a constant feature: only centred
    return mean, variance


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(7, 5), (4, 3, 6, 5), (3, 2, 9), (1, 1)])
@pytest.mark.parametrize("naive", [False, True])
def test_forward_and_backward_equal_reference(dtype, shape, naive, rng):
    x = rng.normal(2, 4, shape).astype(dtype)
    mean, variance = stats(rng, shape[1], dtype)
    y = cn.ops.normalize_forward(x, mean, variance, naive=naive)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, ref.normalize_forward(x, mean, variance), op="normalize")
    dy = rng.standard_normal(shape).astype(dtype)
    dx = cn.ops.normalize_backward(dy, variance, naive=naive)
    assert_close(dx, ref.normalize_backward(dy, variance), op="normalize")
    if dtype == np.float64:  # the same two roundings as NumPy's (x − μ)/σ
        np.testing.assert_array_equal(y, ref.normalize_forward(x, mean, variance))


def test_zero_variance_only_centres():
    x = np.array([[3.0, 1.0], [5.0, 2.0]])
    y = cn.ops.normalize_forward(x, np.array([4.0, 0.0]), np.array([0.0, 4.0]))
    np.testing.assert_array_equal(y, [[-1.0, 0.5], [1.0, 1.0]])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_nan_and_inf_propagate_as_in_numpy(dtype, naive, rng):
    # (x − μ)/√variance read literally: NaN anywhere (x, μ or the variance) gives
    # NaN, never the "constant feature" pass-through that only variance <= 0
    # earns; an infinite x stays infinite, an infinite variance gives 0.
    x = rng.normal(2, 4, (5, 4, 3)).astype(dtype)
    x[0, 0, 0], x[1, 1, 1], x[2, 2, 2] = np.nan, np.inf, -np.inf
    mean = np.array([1.0, 2.0, np.nan, 0.5], dtype)
    variance = np.array([np.nan, 4.0, 0.0, np.inf], dtype)
    y = cn.ops.normalize_forward(x, mean, variance, naive=naive)
    assert_close(y, ref.normalize_forward(x, mean, variance), op="normalize")
    assert np.isnan(y[:, 0]).all() and np.isnan(y[:, 2]).all() and y[1, 1, 1] == np.inf
    assert (y[:, 3] == 0).all()
    dy = rng.standard_normal(x.shape).astype(dtype)
    dy[3, 1, 0] = np.nan
    dx = cn.ops.normalize_backward(dy, variance, naive=naive)
    assert_close(dx, ref.normalize_backward(dy, variance), op="normalize")
    assert np.isnan(dx[:, 0]).all() and np.isnan(dx[3, 1, 0]) and np.isfinite(dx[:, 2]).all()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fast_equals_naive_bitwise_for_any_thread_count(dtype, rng):
    before = cn.get_num_threads()
    x = rng.standard_normal((64, 8, 30, 30)).astype(dtype)
    mean, variance = stats(rng, 8, dtype)
    y0 = cn.ops.normalize_forward(x, mean, variance, naive=True)
    dx0 = cn.ops.normalize_backward(x, variance, naive=True)
    try:
        for t in (1, 2, 3):
            cn.set_num_threads(t)
            np.testing.assert_array_equal(cn.ops.normalize_forward(x, mean, variance).view(np.uint8),
                                          y0.view(np.uint8))
            np.testing.assert_array_equal(cn.ops.normalize_backward(x, variance).view(np.uint8),
                                          dx0.view(np.uint8))
    finally:
        cn.set_num_threads(before)


def test_gradient_check(rng):
    x = rng.standard_normal((3, 4, 2, 2))
    mean, variance = stats(rng, 4, np.float64)
    P = projection(x.shape, 1)
    numeric = numerical_gradient(lambda: float(np.sum(P * cn.ops.normalize_forward(x, mean, variance))), x)
    assert relative_difference(cn.ops.normalize_backward(P, variance), numeric) < GRADCHECK_THRESHOLD


V2 = np.ones(2)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: cn.ops.normalize_forward(np.ones(3), V2, V2), ValueError,
     r"normalize_forward: x must be \(batch, channels, ...\) or \(batch, features\), got shape \(3,\)"),
    (lambda: cn.ops.normalize_forward(np.ones((2, 3)), V2, np.ones(3)), ValueError,
     r"normalize_forward: mean must have shape \(3,\), got \(2,\)"),
    (lambda: cn.ops.normalize_forward(np.ones((2, 2)), V2.astype(np.float32), V2), TypeError,
     r"normalize_forward: mean must have the dtype of x \(float64\), got float32"),
    (lambda: cn.ops.normalize_forward(np.ones((2, 2), np.int64), V2, V2), TypeError,
     r"normalize_forward: x must be float32 or float64, got int64"),
    (lambda: cn.ops.normalize_backward(np.ones((2, 2)), np.ones(3)), ValueError,
     r"normalize_backward: variance must have shape \(2,\), got \(3,\)"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -------------------------------------------------------------------- layer
def test_standardizer_layer_equals_transform(rng):
    X = rng.normal(5, 3, (200, 6))
    X[:, 1] = 2.0
    s = cn.data.Standardizer().fit(X)
    m64 = cn.Sequential([L.Input((6,)), s.layer()], dtype="float64")
    np.testing.assert_array_equal(m64.predict(X), s.transform(X))  # bit for bit in float64
    m32 = cn.Sequential([L.Input((6,)), s.layer()])
    assert_close(m32.predict(X), s.transform(X), dtype=np.float32)
    mean, variance = m64.get_weights()  # state, in get_weights like batch norm's moving averages
    np.testing.assert_array_equal(mean, s.mean)
    np.testing.assert_array_equal(variance, s.variance)
    # Keras counts them as non-trainable weights; none is trained.
    assert m64.count_params() == 12 and m64._engine.count_layer_params(0) == 0


def test_standardizer_layer_per_channel_images(rng):
    X = rng.normal(0, 1, (20, 3, 4, 4)) * np.array([1.0, 3.0, 0.5])[:, None, None]
    s = cn.data.Standardizer().fit(X)
    model = cn.Sequential([L.Input((3, 4, 4)), s.layer()], dtype="float64")
    np.testing.assert_array_equal(model.predict(X), s.transform(X))


def test_training_never_changes_the_statistics(rng):
    X = rng.normal(3, 2, (64, 5))
    y = rng.integers(0, 3, 64)
    s = cn.data.Standardizer().fit(X)
    cn.seed(2)
    model = cn.Sequential([L.Input((5,)), s.layer(name="norm"), L.Dense(8, activation="tanh"), L.Dense(3)])
    model.compile(cn.optimizers.AdamW(0.05, weight_decay=0.1), "softmax_cross_entropy")
    before = model.get_layer("norm").get_weights()
    w_before = model.get_weights()[2]
    model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    for a, b in zip(model.get_layer("norm").get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(model.get_weights()[2], w_before)  # the Dense layer did train


def test_gradient_check_through_normalization(rng):
    cn.seed(3)
    layer = L.Normalization(mean=[0.5, -1.0, 2.0], variance=[4.0, 0.25, 0.0])
    model = cn.Sequential([L.Input((3,)), L.Dense(4, activation="tanh"), L.Dense(3), layer, L.Dense(2)],
                          dtype="float64")
    model.compile("sgd", "softmax_cross_entropy")
    assert cn.gradient_check(model, rng.standard_normal((5, 3)), np.array([0, 1, 1, 0, 1])) < GRADCHECK_THRESHOLD


def test_adapt_before_and_after_build(rng):
    X = rng.normal(1, 2, (50, 2, 3, 3))
    want = cn.data.Standardizer().fit(X)
    early = L.Normalization()
    early.adapt(X)
    np.testing.assert_allclose(early.mean, want.mean, **STATISTIC[np.dtype(np.float64)])
    late = L.Normalization()
    model = cn.Sequential([L.Input((2, 3, 3)), late], dtype="float64")
    np.testing.assert_array_equal(model.predict(X), X)  # no statistics yet: mean 0, variance 1
    late.adapt(X)
    np.testing.assert_allclose(model.predict(X), want.transform(X), **tolerance(np.float64))
    assert late.get_config()["mean"] == pytest.approx(list(want.mean))


def test_config_reconstructs_the_layer():
    layer = L.Normalization(mean=[1.0, 2.0], variance=[3.0, 4.0], name="n")
    config = layer.get_config()
    assert config == {"name": "n", "trainable": True, "mean": [1.0, 2.0], "variance": [3.0, 4.0]}
    again = L.Normalization(**config)
    np.testing.assert_array_equal(again.variance, layer.variance)


@pytest.mark.parametrize("call, match", [
    (lambda: L.Normalization(mean=[1.0]), r"Normalization: give both mean and variance, or neither"),
    (lambda: L.Normalization(mean=[1.0], variance=[1.0, 2.0]), r"mean and variance must have the same length"),
    (lambda: L.Normalization(mean=[1.0], variance=[-1.0]), r"variance finite and >= 0"),
    (lambda: L.Normalization(mean=[np.nan], variance=[1.0]), r"mean must be finite"),
    (lambda: L.Normalization().adapt(np.ones(5)), r"Normalization.adapt: X must be"),
    (lambda: L.Normalization().adapt(np.array([[1.0, 2.0], [3.0, np.nan]])),
     r"^Normalization.adapt: X contains NaN or inf \(first at example 1\)$"),
    (lambda: cn.Sequential([L.Input((4,)), L.Normalization([0.0] * 3, [1.0] * 3, name="n")]).build(),
     r"layer 'n' \(normalization\): has statistics for 3 features/channels, the input \(4,\) has 4"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
