import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import dropout as ref
from tolerances import GRADCHECK_THRESHOLD


@pytest.fixture
def threads():
    """Yields a setter for the thread count and restores the original afterwards."""
    before = cn.get_num_threads()
    yield cn.set_num_threads
    cn.set_num_threads(before)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_keep_fraction_is_one_minus_rate(rate):
    # Each unit is kept independently with probability q = 1 - rate, so the kept
    # fraction of n units has std sqrt(q(1 - q)/n) (<= 5e-4 for n = 10^6); six
    # standard deviations make a false failure a < 2e-9 event.
    n = 10**6
    _, mask = cn.ops.dropout_forward(np.ones(n), rate, 2024)
    q = 1 - rate
    assert abs(mask.mean() - q) < 6 * np.sqrt(q * (1 - q) / n)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 13), (4, 3, 5, 5), (50_000,)])
@pytest.mark.parametrize("naive", [False, True])
def test_forward_is_exactly_the_formula(shape, dtype, naive, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y, mask = cn.ops.dropout_forward(x, 0.3, 99, naive=naive)
    assert y.dtype == dtype and y.shape == shape
    assert mask.dtype == np.uint8 and mask.shape == shape
    assert set(np.unique(mask)) <= {0, 1}
    # Same counter-based bits as the reference generator: the mask is reproducible
    # from (key, index) alone, and y = x·mask/(1 − rate) rounds once per element.
    want_y, want_mask = ref.dropout_forward(x, 0.3, 99)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(y, x * mask.astype(dtype) / (dtype(1) - dtype(0.3)))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_backward_is_exactly_the_formula(dtype, naive, rng):
    dy = rng.standard_normal((9, 31)).astype(dtype)
    _, mask = cn.ops.dropout_forward(dy, 0.45, 5)
    dx = cn.ops.dropout_backward(dy, mask, 0.45, naive=naive)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, ref.dropout_backward(dy, mask, 0.45))
    assert np.all(dx[mask == 0] == 0)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_nan_and_inf_survive_dropping(dtype, naive, rng):
    # x·mask/(1 − rate) read literally, as PyTorch's dropout multiplies: a dropped
    # NaN stays NaN and a dropped ±inf becomes NaN (0·inf), so dropout never
    # hides a bad value; the backward pass multiplies dy the same way.
    x = rng.standard_normal((4, 50)).astype(dtype)
    x[:, 0], x[:, 1], x[:, 2] = np.nan, np.inf, -np.inf
    y, mask = cn.ops.dropout_forward(x, 0.5, 7, naive=naive)
    with np.errstate(invalid="ignore"):
        want_y, _ = ref.dropout_forward(x, 0.5, 7)
        want_dx = ref.dropout_backward(x, mask, 0.5)
    np.testing.assert_array_equal(y, want_y)
    assert (mask[:, :3] == 0).any() and np.isnan(y[:, 0]).all() and np.isnan(y[:, 1:3][mask[:, 1:3] == 0]).all()
    np.testing.assert_array_equal(cn.ops.dropout_backward(x, mask, 0.5, naive=naive), want_dx)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fast_equals_naive_bitwise_for_any_thread_count(dtype, threads, rng):
    n = 200_003  # > the kernel's grain, so the parallel split is exercised
    x = rng.standard_normal(n).astype(dtype)
    y0, m0 = cn.ops.dropout_forward(x, 0.25, 7, naive=True)
    dx0 = cn.ops.dropout_backward(x, m0, 0.25, naive=True)
    for t in (1, 2, 3, 4):
        threads(t)
        y, m = cn.ops.dropout_forward(x, 0.25, 7)
        np.testing.assert_array_equal(m, m0)
        np.testing.assert_array_equal(y.view(np.uint8), y0.view(np.uint8))  # bitwise
        dx = cn.ops.dropout_backward(x, m, 0.25)
        np.testing.assert_array_equal(dx.view(np.uint8), dx0.view(np.uint8))


def test_same_seed_same_mask_different_seed_different_mask():
    x = np.ones(10_000)
    _, a = cn.ops.dropout_forward(x, 0.5, 11)
    _, b = cn.ops.dropout_forward(x, 0.5, 11)
    _, c = cn.ops.dropout_forward(x, 0.5, 12)
    np.testing.assert_array_equal(a, b)
    # Independent masks at rate 0.5 disagree on half the units (std 0.005 here).
    assert abs(np.mean(a != c) - 0.5) < 0.03


def test_seed_is_a_full_uint64():
    x = np.ones(1000)
    _, a = cn.ops.dropout_forward(x, 0.5, 2**64 - 1)
    np.testing.assert_array_equal(a, ref.dropout_mask(x.shape, 0.5, 2**64 - 1))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_rate_zero_is_identity(dtype, rng):
    x = rng.standard_normal((6, 8)).astype(dtype)
    y, mask = cn.ops.dropout_forward(x, 0.0, 3)
    assert np.all(mask == 1)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(cn.ops.dropout_backward(x, mask, 0.0), x)


def test_gradient_check(rng):
    # The mask depends on the seed only, so with a fixed seed the forward is a
    # fixed linear map of x and central differences see exactly that map.
    x = rng.standard_normal((5, 7))
    P = projection(x.shape, 3)
    loss = lambda: float(np.sum(P * cn.ops.dropout_forward(x, 0.4, 17)[0]))  # noqa: E731
    _, mask = cn.ops.dropout_forward(x, 0.4, 17)
    assert 0 < mask.sum() < mask.size  # both kept and dropped units are checked
    dx = cn.ops.dropout_backward(P, mask, 0.4)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


def test_reference_gradient(rng):
    x = rng.standard_normal((4, 6))
    P = projection(x.shape, 5)
    loss = lambda: float(np.sum(P * ref.dropout_forward(x, 0.3, 9)[0]))  # noqa: E731
    _, mask = ref.dropout_forward(x, 0.3, 9)
    assert 0 < mask.sum() < mask.size
    dx = ref.dropout_backward(P, mask, 0.3)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


def test_non_contiguous_input_is_copied_not_misread(rng):
    base = rng.standard_normal((8, 10))
    x = base[:, ::2]
    y, mask = cn.ops.dropout_forward(x, 0.5, 1)
    want_y, want_mask = ref.dropout_forward(np.ascontiguousarray(x), 0.5, 1)
    np.testing.assert_array_equal(mask, want_mask)
    np.testing.assert_array_equal(y, want_y)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: cn.ops.dropout_forward(np.ones(3), 1.0, 0), ValueError,
         r"dropout_forward: rate must be in \[0, 1\), got 1"),
        (lambda: cn.ops.dropout_forward(np.ones(3), -0.1, 0), ValueError,
         r"dropout_forward: rate must be in \[0, 1\), got -0.1"),
        (lambda: cn.ops.dropout_forward(np.ones(3), float("nan"), 0), ValueError,
         r"dropout_forward: rate must be in \[0, 1\), got nan"),
        (lambda: cn.ops.dropout_forward(np.ones(3, np.int32), 0.5, 0), TypeError,
         r"dropout_forward: x must be float32 or float64, got int32"),
        (lambda: cn.ops.dropout_backward(np.ones(3), np.ones(3, np.uint8), 1.5), ValueError,
         r"dropout_backward: rate must be in \[0, 1\), got 1.5"),
        (lambda: cn.ops.dropout_backward(np.ones(3), np.ones(3, bool), 0.5), TypeError,
         r"dropout_backward: mask must be uint8 \(from dropout_forward\), got bool"),
        (lambda: cn.ops.dropout_backward(np.ones(3), np.ones(4, np.uint8), 0.5), ValueError,
         r"dropout_backward: mask must have shape \(3,\), got \(4,\)"),
        (lambda: cn.ops.dropout_backward(np.ones(3, np.int64), np.ones(3, np.uint8), 0.5),
         TypeError, r"dropout_backward: dy must be float32 or float64, got int64"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
