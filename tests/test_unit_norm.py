"""UnitNormalization (faces: L2-normalised embeddings): the kernels against the
NumPy reference in float32 and float64 (fast and naive), finite-difference
gradients, the zero vector, the layer in a model (predict and vjp against the
reference, any axis), PyTorch's F.normalize when torch is installed, and bad
inputs."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import unit_norm as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

L = cn.layers
ops = cn.ops

# (shape, NumPy axis): rows of an (N, D) batch, one value per vector, the
# channels of NCHW (a stride of H·W, past one block of 64 positions), a middle
# axis, and enough rows to split across threads.
CASES = [((5, 8), -1), ((4, 1), 1), ((7,), 0), ((2, 3, 9, 8), 1), ((3, 4, 6), 1), ((2000, 32), -1)]


def gid(v):
    return str(v).replace(" ", "")


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("shape, axis", CASES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_forward_backward_match_reference(dtype, shape, axis, naive, rng):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    y = ops.unit_norm_forward(x, axis=axis, naive=naive)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, ref.unit_norm_forward(x, axis), dtype, what="y")
    assert_close(np.linalg.norm(y.astype(np.float64), axis=axis), np.ones(np.delete(shape, axis)), dtype,
                 what="unit length")
    dx = ops.unit_norm_backward(dy, x, axis=axis, naive=naive)
    assert dx.dtype == dtype
    assert_close(dx, ref.unit_norm_backward(dy, x, axis), dtype, what="dx")


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("shape, axis", [((4, 5), -1), ((2, 3, 2, 2), 1), ((3, 4, 2), 0)], ids=gid)
def test_gradients_match_finite_differences(shape, axis, naive, rng):
    x = rng.standard_normal(shape)
    P = projection(shape, 5)
    loss = lambda: float(np.sum(P * ops.unit_norm_forward(x, axis=axis, naive=naive)))  # noqa: E731
    dx = ops.unit_norm_backward(P, x, axis=axis, naive=naive)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_zero_and_tiny_vectors_give_no_nan(dtype, naive):
    # Row 0 is the zero vector (0 / eps = 0), row 1 shorter than eps (x / eps), row 2 ordinary.
    x = np.array([[0.0, 0.0, 0.0], [1e-7, 0.0, -1e-7], [3.0, 0.0, 4.0]], dtype)
    y = ops.unit_norm_forward(x, epsilon=1e-3, naive=naive)
    assert np.all(np.isfinite(y))
    np.testing.assert_array_equal(y[0], 0.0)
    assert_close(y, ref.unit_norm_forward(x, eps=1e-3), dtype)
    assert_close(y[2], [0.6, 0.0, 0.8], dtype)
    dy = np.ones_like(x)
    dx = ops.unit_norm_backward(dy, x, epsilon=1e-3, naive=naive)
    assert np.all(np.isfinite(dx))
    assert_close(dx[:2], np.full((2, 3), 1e3), dtype)  # a constant divisor: dy / eps
    # With Keras's default eps the zero vector stays 0 (no 0/0).
    y = ops.unit_norm_forward(np.zeros((2, 4), dtype), naive=naive)
    np.testing.assert_array_equal(y, 0.0)


def test_nan_stays_in_its_vector():
    x = np.array([[np.nan, 1.0], [3.0, 4.0]])
    y = ops.unit_norm_forward(x)
    assert np.all(np.isnan(y[0]))
    assert_close(y[1], [0.6, 0.8])


def test_same_result_for_any_thread_count(rng):
    x = rng.standard_normal((3000, 40)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    threads = cn.get_num_threads()
    first = ops.unit_norm_forward(x), ops.unit_norm_backward(dy, x)
    try:
        cn.set_num_threads(1)
        serial = ops.unit_norm_forward(x), ops.unit_norm_backward(dy, x)
    finally:
        cn.set_num_threads(threads)
    for a, b in zip(first, serial):
        np.testing.assert_array_equal(a, b)


def test_strided_and_read_only_inputs(rng):
    x = rng.standard_normal((6, 5))
    xs = np.asfortranarray(x)
    xs.flags.writeable = False
    assert_close(ops.unit_norm_forward(xs), ref.unit_norm_forward(x))
    assert_close(ops.unit_norm_backward(xs, xs), ref.unit_norm_backward(x, x))


def test_matches_pytorch_normalize(rng):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    x = rng.standard_normal((4, 3, 5))
    x[0, :, 0] = 0.0  # a zero vector along axis 1
    for axis in (1, -1):
        want = torch.nn.functional.normalize(torch.from_numpy(x), p=2.0, dim=axis).numpy()
        assert_close(ops.unit_norm_forward(x, axis=axis), want)


# The layer ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape, axis", [((6,), -1), ((3, 4, 5), 1), ((3, 4, 5), 2), ((3, 4, 5), -2)], ids=gid)
def test_layer_predict_and_vjp_match_reference(shape, axis, dtype, rng):
    model = cn.Sequential([L.Input(shape), L.UnitNormalization(axis=axis)], dtype=dtype)
    x = rng.standard_normal((5, *shape)).astype(dtype)
    x[0] = 0.0  # a whole zero example: every vector of it is the zero vector
    y, pullback = model.vjp(x)
    assert_close(y, ref.unit_norm_forward(x, axis), dtype)
    assert_close(model.predict(x), ref.unit_norm_forward(x, axis), dtype)
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_close(pullback(dy), ref.unit_norm_backward(dy, x, axis), dtype)
    assert np.all(np.isfinite(pullback(dy)))


def test_layer_in_a_trained_embedding_keeps_unit_length(rng):
    cn.seed(0)
    model = cn.Sequential([L.Input((4,)), L.Dense(3), L.UnitNormalization()])
    model.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((32, 4)).astype(np.float32)
    target = ref.unit_norm_forward(rng.standard_normal((32, 3))).astype(np.float32)
    before = model.evaluate(x, target)["loss"]
    model.fit(x, target, epochs=20, batch_size=8, verbose=0)
    assert model.evaluate(x, target)["loss"] < before
    assert_close(np.linalg.norm(model.predict(x), axis=1), np.ones(32), np.float32)


def test_layer_config_and_defaults():
    layer = L.UnitNormalization()
    assert layer.get_config()["axis"] == -1 and layer.get_config()["epsilon"] == 1e-12
    again = L.UnitNormalization.from_config(L.UnitNormalization(axis=1, epsilon=1e-6).get_config())
    assert (again.axis, again.epsilon) == (1, 1e-6)


# Bad inputs ---------------------------------------------------------------------


@pytest.mark.parametrize("call, exc, match", [
    (lambda: ops.unit_norm_forward(np.ones((2, 3)), axis=2), ValueError,
     r"^unit_norm_forward: axis must lie in \[-2, 1\] for x of shape \(2, 3\), got 2$"),
    (lambda: ops.unit_norm_forward(np.ones(()), axis=0), ValueError, r"unit_norm_forward: axis"),
    (lambda: ops.unit_norm_forward(np.ones((2, 3)), epsilon=0.0), ValueError,
     r"^unit_norm_forward: epsilon must be finite and > 0, got 0$"),
    (lambda: ops.unit_norm_forward(np.ones((2, 3)), epsilon=np.nan), ValueError, r"epsilon must be finite"),
    (lambda: ops.unit_norm_forward(np.ones((2, 3), np.int64)), TypeError,
     r"unit_norm_forward: x must be float32 or float64, got int64"),
    (lambda: ops.unit_norm_backward(np.ones((2, 4)), np.ones((2, 3))), ValueError,
     r"unit_norm_backward: dy must have shape \(2, 3\), got \(2, 4\)"),
    (lambda: ops.unit_norm_backward(np.ones((2, 3), np.float32), np.ones((2, 3))), TypeError,
     r"unit_norm_backward: dy must have the dtype of x"),
    (lambda: L.UnitNormalization(axis=1.5), TypeError, r"^UnitNormalization: axis must be an int"),
    (lambda: L.UnitNormalization(axis=0)(L.Input((3,))), ValueError,
     r"unit_normalization.*axis 0 is the batch axis"),
    (lambda: L.UnitNormalization(axis=3)(L.Input((3, 4))), ValueError,
     r"unit_normalization.*axis must lie in \[1, 2\] or \[-2, -1\] for inputs of shape \(3, 4\), got 3"),
    (lambda: L.UnitNormalization(epsilon=-1.0)(L.Input((3,))), ValueError,
     r"unit_normalization.*epsilon must be finite and > 0, got -1"),
    (lambda: L.UnitNormalization(epsilon="small"), TypeError, r"UnitNormalization: epsilon must be a number"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
