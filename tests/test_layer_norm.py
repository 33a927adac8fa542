import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import layer_norm as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

ops = cn.ops

# A single value per row (D = 1), a vector, rows shorter and longer than the
# kernel's 8-lane sums, several leading axes, and enough rows (1500·40 values)
# for the rows to be split across threads.
SHAPES = [(4, 1), (7,), (3, 5), (2, 3, 17), (4, 1, 64), (1500, 40)]


def gid(v):
    return str(v).replace(" ", "")


def _data(shape, dtype, rng, offset=0.0):
    D = shape[-1]
    x = (rng.standard_normal(shape) * 2.0 + offset).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, D).astype(dtype)
    beta = rng.standard_normal(D).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    return x, gamma, beta, dy


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_forward_backward_match_reference(dtype, shape, affine, naive, rng):
    x, gamma, beta, dy = _data(shape, dtype, rng)
    if not affine:
        gamma = beta = None
    y, mean, invstd = ops.layer_norm_forward(x, gamma, beta, eps=1e-3, naive=naive)
    ey, emean, einvstd = ref.layer_norm_forward(x, gamma, beta, eps=1e-3)
    assert y.dtype == mean.dtype == invstd.dtype == dtype
    assert mean.shape == invstd.shape == shape[:-1]
    assert_close(y, ey, dtype, what="y")
    assert_close(mean, emean, dtype, what="mean")
    assert_close(invstd, einvstd, dtype, what="invstd")
    dx, dgamma, dbeta = ops.layer_norm_backward(dy, x, gamma, mean, invstd, naive=naive)
    edx, edgamma, edbeta = ref.layer_norm_backward(dy, x, gamma, eps=1e-3)
    assert_close(dx, edx, dtype, what="dx")
    assert_close(dgamma, edgamma, dtype, what="dgamma")
    assert_close(dbeta, edbeta, dtype, what="dbeta")


def test_default_eps_is_pytorchs(rng):
    x, gamma, beta, _ = _data((3, 4), np.float64, rng)
    x[0] = [1.0, 1.0, 1.0, 1.001]  # a tiny variance, where eps shows
    y = ops.layer_norm_forward(x, gamma, beta)[0]
    assert_close(y, ref.layer_norm_forward(x, gamma, beta, eps=1e-5)[0], np.float64)
    assert not np.allclose(y, ref.layer_norm_forward(x, gamma, beta, eps=1e-3)[0])


@pytest.mark.parametrize("naive", [False, True])
def test_large_mean_is_stable(naive, rng):
    # Two-pass variance: E[x²] − μ² would lose ~8 digits of σ² = 4 at μ = 1e4
    # (x itself carries μ·u of rounding, so a larger μ is ill-conditioned for any method).
    x, gamma, beta, _ = _data((5, 33), np.float64, rng, offset=1e4)
    y, _, invstd = ops.layer_norm_forward(x, gamma, beta, naive=naive)
    ey, _, einvstd = ref.layer_norm_forward(x, gamma, beta)
    assert_close(y, ey, np.float64)
    assert_close(invstd, einvstd, np.float64)


def test_float32_large_mean_forward(rng):
    x, gamma, beta, _ = _data((5, 33), np.float32, rng, offset=1e4)
    y = ops.layer_norm_forward(x, gamma, beta)[0]
    assert_close(y, ref.layer_norm_forward(x, gamma, beta)[0], np.float32)


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(3, 5), (2, 2, 7)], ids=gid)
def test_gradients_match_finite_differences(shape, affine, rng):
    x, gamma, beta, _ = _data(shape, np.float64, rng)
    if not affine:
        gamma = beta = None
    P = projection(shape, 7)

    def loss():
        return float(np.sum(P * ops.layer_norm_forward(x, gamma, beta)[0]))

    _, mean, invstd = ops.layer_norm_forward(x, gamma, beta)
    dx, dgamma, dbeta = ops.layer_norm_backward(P, x, gamma, mean, invstd)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD
    if affine:
        assert relative_difference(dgamma, numerical_gradient(loss, gamma)) < GRADCHECK_THRESHOLD
        assert relative_difference(dbeta, numerical_gradient(loss, beta)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_same_threads_give_bitwise_the_same_gradients(dtype, rng):
    x, gamma, beta, dy = _data((1500, 40), dtype, rng)
    _, mean, invstd = ops.layer_norm_forward(x, gamma, beta)
    first = ops.layer_norm_backward(dy, x, gamma, mean, invstd)
    again = ops.layer_norm_backward(dy, x, gamma, mean, invstd)
    for a, b in zip(first, again):
        assert np.array_equal(a, b)
    threads = cn.get_num_threads()
    try:
        cn.set_num_threads(1)
        serial = ops.layer_norm_backward(dy, x, gamma, mean, invstd)
    finally:
        cn.set_num_threads(threads)
    for a, b in zip(first, serial):
        assert_close(a, b, dtype)


def test_strided_and_read_only_inputs(rng):
    x, gamma, beta, dy = _data((6, 10), np.float64, rng)
    xs = np.asfortranarray(x)
    xs.flags.writeable = False
    y, mean, invstd = ops.layer_norm_forward(xs, gamma, beta)
    assert_close(y, ref.layer_norm_forward(x, gamma, beta)[0], np.float64)
    dx = ops.layer_norm_backward(dy[:, ::1], xs, gamma, mean, invstd)[0]
    assert_close(dx, ref.layer_norm_backward(dy, x, gamma)[0], np.float64)


def test_nan_stays_in_its_row(rng):
    x, gamma, beta, _ = _data((4, 6), np.float64, rng)
    x[1, 2] = np.nan
    y = ops.layer_norm_forward(x, gamma, beta)[0]
    assert np.isnan(y[1]).all()
    assert np.isfinite(np.delete(y, 1, axis=0)).all()


F, B = "layer_norm_forward", "layer_norm_backward"


def test_errors(rng):
    x, gamma, beta, dy = _data((3, 4), np.float64, rng)
    _, mean, invstd = ops.layer_norm_forward(x, gamma, beta)
    cases = [
        (lambda: ops.layer_norm_forward(x, gamma, beta, eps=0.0), ValueError, F + r": eps must be finite and > 0, got 0"),
        (lambda: ops.layer_norm_forward(x, gamma, beta, eps=float("nan")), ValueError, F + r": eps must be finite"),
        (lambda: ops.layer_norm_forward(np.array(1.0), None, None), ValueError,
         F + r": x must have at least 1 dimension"),
        (lambda: ops.layer_norm_forward(np.zeros((0, 4)), gamma, beta), ValueError,
         F + r": x must have positive dimensions, got shape \(0, 4\)"),
        (lambda: ops.layer_norm_forward(x, gamma[:3], beta), ValueError, F + r": gamma must have shape \(4,\), got \(3,\)"),
        (lambda: ops.layer_norm_forward(x, gamma, beta.astype(np.float32)), TypeError,
         F + r": beta must have the dtype of x \(float64\), got float32"),
        (lambda: ops.layer_norm_forward(x.astype(np.int32), None, None), TypeError, F + r": x must be float32 or float64"),
        (lambda: ops.layer_norm_forward(x, "gamma", beta), TypeError, F + r": gamma must have the dtype of x"),
        (lambda: ops.layer_norm_backward(dy[:2], x, gamma, mean, invstd), ValueError,
         B + r": dy must have shape \(3, 4\), got \(2, 4\)"),
        (lambda: ops.layer_norm_backward(dy, x, gamma, mean[:2], invstd), ValueError,
         B + r": mean must have shape \(3,\), got \(2,\)"),
        (lambda: ops.layer_norm_backward(dy, x, gamma, mean, invstd.astype(np.float32)), TypeError,
         B + r": invstd must have the dtype of x"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()


def test_matches_torch_layer_norm(rng):
    torch = pytest.importorskip("torch")
    x, gamma, beta, dy = _data((3, 2, 9), np.float64, rng)
    layer = torch.nn.LayerNorm(9, eps=1e-3, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma))
        layer.bias.copy_(torch.from_numpy(beta))
    tx = torch.from_numpy(x).requires_grad_(True)
    ty = layer(tx)
    ty.backward(torch.from_numpy(dy))
    y, mean, invstd = ops.layer_norm_forward(x, gamma, beta, eps=1e-3)
    dx, dgamma, dbeta = ops.layer_norm_backward(dy, x, gamma, mean, invstd)
    assert_close(y, ty.detach().numpy(), np.float64)
    assert_close(dx, tx.grad.numpy(), np.float64)
    assert_close(dgamma, layer.weight.grad.numpy(), np.float64)
    assert_close(dbeta, layer.bias.grad.numpy(), np.float64)
