import itertools

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import pool as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

ops = cn.ops


def _valid(kernel, padding):
    kh, kw = ref._pair(kernel)
    ph, pw = ref._pair(padding)
    return 2 * ph <= kh and 2 * pw <= kw


# (kernel, stride, padding): kernels 1-3, strides 1-3 and None, padding 0/1, and
# rectangular kernels with per-axis padding (asymmetric in h and w).
GEOMETRIES = [
    (k, s, p)
    for k, s, p in itertools.product([1, 2, 3], [1, 2, 3, None], [0, 1])
    if _valid(k, p)
] + [((2, 3), (1, 2), (1, 0)), ((3, 1), None, (0, 0)), ((3, 2), (2, 1), (1, 1))]

# batch 1 and odd, non-square planes.
X_SHAPES = [(1, 1, 7, 5), (2, 3, 9, 11)]


def distinct(shape, rng, dtype=np.float64):
    """Values 0.1 apart in random order: no ties, and a finite-difference step of
    1e-6 cannot change which cell of a window is the maximum."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 3.0).astype(dtype)


def gid(v):
    return str(v).replace(" ", "")


# ---------------------------------------------------------------- reference self-checks


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), 1, (1, 1))])
def test_reference_max_pool_gradient(kernel, stride, padding, rng):
    x = distinct((2, 2, 5, 6), rng)
    y, argmax = ref.max_pool2d_forward(x, kernel, stride, padding)
    P = projection(y.shape, 1)
    loss = lambda: float(np.sum(P * ref.max_pool2d_forward(x, kernel, stride, padding)[0]))  # noqa: E731
    dx = ref.max_pool2d_backward(P, argmax, x.shape)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((2, 3), 1, (1, 1))])
def test_reference_avg_pool_gradient(kernel, stride, padding, count_include_pad, rng):
    x = rng.standard_normal((2, 2, 5, 6))
    y = ref.avg_pool2d_forward(x, kernel, stride, padding, count_include_pad)
    P = projection(y.shape, 2)
    loss = lambda: float(np.sum(P * ref.avg_pool2d_forward(x, kernel, stride, padding, count_include_pad)))  # noqa: E731
    dx = ref.avg_pool2d_backward(P, x.shape, kernel, stride, padding, count_include_pad)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


def test_reference_global_avg_and_zero_pad_gradients(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    P = projection((2, 3), 3)
    loss = lambda: float(np.sum(P * ref.global_avg_pool2d_forward(x)))  # noqa: E731
    dx = ref.global_avg_pool2d_backward(P, x.shape)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD
    pad = (1, 2, 0, 3)
    P = projection(ref.zero_pad2d_forward(x, pad).shape, 4)
    loss = lambda: float(np.sum(P * ref.zero_pad2d_forward(x, pad)))  # noqa: E731
    dx = ref.zero_pad2d_backward(P, x.shape, pad)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


def test_reference_hand_values():
    # 4x4 ramp, 2x2 windows: maxima are the bottom-right cells, means the centres.
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y, argmax = ref.max_pool2d_forward(x, 2)
    assert y.ravel().tolist() == [5, 7, 13, 15] and argmax.ravel().tolist() == [5, 7, 13, 15]
    assert ref.avg_pool2d_forward(x, 2).ravel().tolist() == [2.5, 4.5, 10.5, 12.5]
    # 3x3 with padding 1 at the corner: 4 inside cells 0, 1, 4, 5.
    assert ref.avg_pool2d_forward(x, 3, 1, 1)[0, 0, 0, 0] == pytest.approx(10 / 9)
    assert ref.avg_pool2d_forward(x, 3, 1, 1, False)[0, 0, 0, 0] == pytest.approx(10 / 4)


# ---------------------------------------------------------------- parity with the reference


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("x_shape", X_SHAPES, ids=gid)
@pytest.mark.parametrize("kernel, stride, padding", GEOMETRIES, ids=gid)
def test_max_pool_matches_reference(kernel, stride, padding, x_shape, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    dy = rng.standard_normal(ref.max_pool2d_forward(x, kernel, stride, padding)[0].shape).astype(dtype)
    ey, eargmax = ref.max_pool2d_forward(x.astype(np.float64), kernel, stride, padding)
    edx = ref.max_pool2d_backward(dy.astype(np.float64), eargmax, x_shape)
    for naive in (False, True):
        y, argmax = ops.max_pool2d_forward(x, kernel, stride, padding, naive=naive)
        assert y.dtype == dtype and argmax.dtype == np.int64
        np.testing.assert_array_equal(argmax, eargmax)
        # A maximum is one of the inputs: exact.
        np.testing.assert_array_equal(y, ey.astype(dtype))
        dx = ops.max_pool2d_backward(dy, argmax, x_shape, naive=naive)
        assert dx.dtype == dtype
        assert_close(dx, edx, op="max_pool2d_backward", what=f"dx naive={naive}")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("x_shape", X_SHAPES, ids=gid)
@pytest.mark.parametrize("kernel, stride, padding", GEOMETRIES, ids=gid)
def test_avg_pool_matches_reference(kernel, stride, padding, x_shape, dtype, count_include_pad, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    x64 = x.astype(np.float64)
    ey = ref.avg_pool2d_forward(x64, kernel, stride, padding, count_include_pad)
    dy = rng.standard_normal(ey.shape).astype(dtype)
    edx = ref.avg_pool2d_backward(dy.astype(np.float64), x_shape, kernel, stride, padding,
                                  count_include_pad)
    for naive in (False, True):
        y = ops.avg_pool2d_forward(x, kernel, stride, padding, count_include_pad, naive=naive)
        assert y.dtype == dtype
        assert_close(y, ey, op="avg_pool2d_forward", what=f"y naive={naive}")
        dx = ops.avg_pool2d_backward(dy, x_shape, kernel, stride, padding, count_include_pad,
                                     naive=naive)
        assert dx.dtype == dtype
        assert_close(dx, edx, op="avg_pool2d_backward", what=f"dx naive={naive}")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("x_shape", X_SHAPES + [(3, 2, 1, 1)], ids=gid)
def test_global_avg_pool_matches_reference(x_shape, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    y = ops.global_avg_pool2d_forward(x)
    assert y.dtype == dtype and y.shape == x_shape[:2]
    assert_close(y, ref.global_avg_pool2d_forward(x.astype(np.float64)), op="global_avg_pool2d_forward")
    dy = rng.standard_normal(x_shape[:2]).astype(dtype)
    dx = ops.global_avg_pool2d_backward(dy, x_shape)
    assert dx.dtype == dtype
    assert_close(dx, ref.global_avg_pool2d_backward(dy.astype(np.float64), x_shape),
                 op="global_avg_pool2d_backward")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("padding", [0, 2, (1, 3), (0, 2, 3, 1)], ids=gid)
@pytest.mark.parametrize("x_shape", X_SHAPES, ids=gid)
def test_zero_pad_matches_reference(x_shape, padding, dtype, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    y = ops.zero_pad2d_forward(x, padding)
    assert y.dtype == dtype
    # Copies and zeros: exact.
    np.testing.assert_array_equal(y, ref.zero_pad2d_forward(x, padding))
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(ops.zero_pad2d_backward(dy, x_shape, padding),
                                  ref.zero_pad2d_backward(dy, x_shape, padding))


def test_strided_input_is_copied_not_misread(rng):
    x = rng.standard_normal((2, 3, 8, 10))[:, :, :, ::2]
    assert_close(ops.avg_pool2d_forward(x, 2), ref.avg_pool2d_forward(x, 2), op="avg_pool2d_forward")
    np.testing.assert_array_equal(ops.max_pool2d_forward(x, 2)[0], ref.max_pool2d_forward(x, 2)[0])


# ---------------------------------------------------------------- max pool semantics


@pytest.mark.parametrize("naive", [False, True])
def test_overlapping_windows_accumulate_in_max_backward(naive):
    # The centre is the maximum of all four 2x2 stride-1 windows of a 3x3 plane.
    x = np.array([[1, 2, 3], [4, 9, 5], [6, 7, 8]], np.float64).reshape(1, 1, 3, 3)
    y, argmax = ops.max_pool2d_forward(x, 2, 1, naive=naive)
    assert argmax.ravel().tolist() == [4, 4, 4, 4]
    dy = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    dx = ops.max_pool2d_backward(dy, argmax, x.shape, naive=naive)
    expected = np.zeros((1, 1, 3, 3))
    expected[0, 0, 1, 1] = 10.0
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 2, 1), (2, 1, 1)])
def test_ties_pick_the_first_maximum_in_row_major_order(kernel, stride, padding, naive):
    x = np.ones((1, 2, 6, 5), np.float32)
    _, argmax = ops.max_pool2d_forward(x, kernel, stride, padding, naive=naive)
    _, expected = ref.max_pool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(argmax, expected)
    # The first inside cell of window (0, 0) is (0, 0) whatever the padding.
    assert argmax[0, 0, 0, 0] == 0


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("kernel, stride", [(2, None), (3, 1)])
def test_nan_propagates_and_is_the_argmax(kernel, stride, naive):
    x = np.arange(36, dtype=np.float64).reshape(1, 1, 6, 6)
    x[0, 0, 1, 0] = np.nan  # after (0, 0) and (0, 1) in row-major order, smaller than neither
    x[0, 0, 1, 1] = np.nan  # a second NaN in the same window: the first one wins
    y, argmax = ops.max_pool2d_forward(x, kernel, stride, naive=naive)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 6
    ey, eargmax = ref.max_pool2d_forward(x, kernel, stride)
    np.testing.assert_array_equal(argmax, eargmax)
    np.testing.assert_array_equal(y, ey)  # NaNs compare equal in assert_array_equal


# 2×2 stride-2 pooling runs rows of 4 to 15 outputs (LeNet's 14 and 5) as
# vectors in blocks of 8 or 4, the last block overlapping: ties, NaNs (several
# per window), ±inf, odd sizes and every short row length must pick the same
# maxima and positions as the naive loop, bit for bit.
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("height, width", [(8, 8), (9, 9), (6, 10), (7, 15), (4, 20), (28, 28), (10, 31)])
def test_max_pool_2x2_short_rows_match_the_naive_loop_bitwise(height, width, dtype, rng):
    x = rng.integers(-2, 3, (2, 3, height, width)).astype(dtype)  # many ties
    flat = x.reshape(-1)
    picks = rng.choice(flat.size, size=3 * (flat.size // 10), replace=False)
    flat[picks[0::3]] = np.nan
    flat[picks[1::3]] = np.inf
    flat[picks[2::3]] = -np.inf
    y, argmax = ops.max_pool2d_forward(x, 2)
    ey, eargmax = ops.max_pool2d_forward(x, 2, naive=True)
    assert y.shape == (2, 3, height // 2, width // 2)
    np.testing.assert_array_equal(argmax, eargmax)
    assert np.array_equal(y, ey, equal_nan=True)
    assert np.isnan(y).any()


def test_minus_infinity_inputs_still_name_an_input_cell():
    x = np.full((1, 1, 3, 3), -np.inf)
    for naive in (False, True):
        y, argmax = ops.max_pool2d_forward(x, 3, 1, 1, naive=naive)
        assert np.all(y == -np.inf)
        np.testing.assert_array_equal(argmax, ref.max_pool2d_forward(x, 3, 1, 1)[1])


# ---------------------------------------------------------------- NaN and ±inf

def nonfinite(shape, dtype, rng):
    """Distinct finite values with a NaN, +inf, −inf and an adjacent +inf/−inf
    pair planted in different planes and windows."""
    x = distinct(shape, rng, dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 1, 2, 3] = np.inf
    x[1, 0, 4, 4] = -np.inf
    x[1, 1, 3, 1], x[1, 1, 3, 2] = np.inf, -np.inf
    return x


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), (3, 2, 0)], ids=gid)
def test_max_pool_nan_wins_and_infinities_order_as_numbers(kernel, stride, padding, dtype, naive, rng):
    # np.max's semantics (PyTorch's max_pool2d gives the same values): a window
    # holding NaN is NaN, +inf wins over everything else, −inf loses to everything.
    x = nonfinite((2, 2, 6, 6), dtype, rng)
    y, argmax = ops.max_pool2d_forward(x, kernel, stride, padding, naive=naive)
    ey, eargmax = ref.max_pool2d_forward(x, kernel, stride, padding)
    np.testing.assert_array_equal(y, ey)
    np.testing.assert_array_equal(argmax, eargmax)
    assert np.isnan(y[0, 0]).any() and np.isinf(y[0, 1]).any()
    # The NaN window's gradient goes to the NaN; a NaN in dy reaches its winner.
    dy = np.ones(y.shape, dtype)
    dy[1, 0, 0, 0] = np.nan
    dx = ops.max_pool2d_backward(dy, argmax, x.shape, naive=naive)
    assert_close(dx, ref.max_pool2d_backward(dy.astype(np.float64), eargmax, x.shape),
                 op="max_pool2d_backward")
    assert dx[0, 0, 1, 1] >= 1 and np.isnan(dx[1, 0].flat[argmax[1, 0, 0, 0]])


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1)], ids=gid)
def test_avg_pool_sums_nan_and_inf_as_numpy(kernel, stride, padding, dtype, count_include_pad, naive, rng):
    # A mean over a window holding NaN, or both +inf and −inf, is NaN; one
    # infinity makes it that infinity.
    x = nonfinite((2, 2, 6, 6), dtype, rng)
    with np.errstate(invalid="ignore"):  # inf − inf in the reference's sums
        ey = ref.avg_pool2d_forward(x.astype(np.float64), kernel, stride, padding, count_include_pad)
    y = ops.avg_pool2d_forward(x, kernel, stride, padding, count_include_pad, naive=naive)
    assert_close(y, ey, op="avg_pool2d_forward")
    assert np.isnan(y).any() and np.isposinf(y).any() and np.isneginf(y).any()
    dy = rng.standard_normal(y.shape).astype(dtype)
    dy[0, 1, 1, 0], dy[1, 0, 0, 1] = np.nan, np.inf
    with np.errstate(invalid="ignore"):
        edx = ref.avg_pool2d_backward(dy.astype(np.float64), x.shape, kernel, stride, padding,
                                      count_include_pad)
    dx = ops.avg_pool2d_backward(dy, x.shape, kernel, stride, padding, count_include_pad, naive=naive)
    assert_close(dx, edx, op="avg_pool2d_backward")
    assert np.isnan(dx).any() and np.isinf(dx).any()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_global_avg_pool_sums_nan_and_inf_as_numpy(dtype, rng):
    x = nonfinite((2, 2, 6, 6), dtype, rng)
    y = ops.global_avg_pool2d_forward(x)
    with np.errstate(invalid="ignore"):
        ey = ref.global_avg_pool2d_forward(x.astype(np.float64))
    assert_close(y, ey, op="global_avg_pool2d_forward")
    assert np.isnan(y[0, 0]) and y[0, 1] == np.inf and y[1, 0] == -np.inf and np.isnan(y[1, 1])
    dy = np.array([[np.nan, 1.0], [np.inf, -2.0]], dtype)
    assert_close(ops.global_avg_pool2d_backward(dy, x.shape),
                 ref.global_avg_pool2d_backward(dy.astype(np.float64), x.shape),
                 op="global_avg_pool2d_backward")


# ---------------------------------------------------------------- gradient checks (float64)


@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), ((3, 2), (2, 1), (1, 0))])
def test_max_pool_gradient_check(kernel, stride, padding, rng):
    x = distinct((2, 2, 5, 7), rng)
    y, argmax = ops.max_pool2d_forward(x, kernel, stride, padding)
    P = projection(y.shape, 5)
    loss = lambda: float(np.sum(P * ops.max_pool2d_forward(x, kernel, stride, padding)[0]))  # noqa: E731
    dx = ops.max_pool2d_backward(P, argmax, x.shape)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kernel, stride, padding", [(2, None, 0), (3, 1, 1), ((3, 2), (2, 1), (1, 0))])
def test_avg_pool_gradient_check(kernel, stride, padding, count_include_pad, rng):
    x = rng.standard_normal((2, 2, 5, 7))
    y = ops.avg_pool2d_forward(x, kernel, stride, padding, count_include_pad)
    P = projection(y.shape, 6)
    loss = lambda: float(np.sum(P * ops.avg_pool2d_forward(x, kernel, stride, padding, count_include_pad)))  # noqa: E731
    dx = ops.avg_pool2d_backward(P, x.shape, kernel, stride, padding, count_include_pad)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


def test_global_avg_and_zero_pad_gradient_check(rng):
    x = rng.standard_normal((2, 3, 4, 5))
    P = projection((2, 3), 7)
    loss = lambda: float(np.sum(P * ops.global_avg_pool2d_forward(x)))  # noqa: E731
    dx = ops.global_avg_pool2d_backward(P, x.shape)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD
    pad = (2, 0, 1, 3)
    P = projection(ops.zero_pad2d_forward(x, pad).shape, 8)
    loss = lambda: float(np.sum(P * ops.zero_pad2d_forward(x, pad)))  # noqa: E731
    dx = ops.zero_pad2d_backward(P, x.shape, pad)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------- threads


@pytest.fixture
def restore_threads():
    before = cn.get_num_threads()
    yield
    cn.set_num_threads(before)


def _run_all(x, dy_max, dy_avg, dy_pad):
    y, argmax = ops.max_pool2d_forward(x, 2)
    y3, argmax3 = ops.max_pool2d_forward(x, 3, 1, 1)
    return [
        y, argmax, y3, argmax3,
        ops.max_pool2d_backward(dy_max, argmax, x.shape),
        ops.avg_pool2d_forward(x, 3, 1, 1, count_include_pad=False),
        ops.avg_pool2d_backward(dy_avg, x.shape, 3, 1, 1, count_include_pad=False),
        ops.global_avg_pool2d_forward(x),
        ops.global_avg_pool2d_backward(x[:, :, 0, 0], x.shape),
        ops.zero_pad2d_forward(x, 1),
        ops.zero_pad2d_backward(dy_pad, x.shape, 1),
    ]


def test_one_and_two_threads_agree_bitwise(rng, restore_threads):
    # 512 planes of 32x32: large enough that every kernel splits across threads.
    x = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
    dy_max = rng.standard_normal((8, 64, 16, 16)).astype(np.float32)
    dy_avg = rng.standard_normal((8, 64, 32, 32)).astype(np.float32)
    dy_pad = rng.standard_normal((8, 64, 34, 34)).astype(np.float32)
    cn.set_num_threads(1)
    one = _run_all(x, dy_max, dy_avg, dy_pad)
    cn.set_num_threads(2)
    two = _run_all(x, dy_max, dy_avg, dy_pad)
    for a, b in zip(one, two):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- bad inputs

X = np.ones((1, 1, 4, 4), np.float32)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: ops.max_pool2d_forward(X, 3, 1, 2), ValueError,
         r"max_pool2d_forward: padding 2 is more than half the kernel 3"),
        (lambda: ops.avg_pool2d_forward(X, (2, 3), 1, (0, 2)), ValueError,
         r"avg_pool2d_forward: padding 2 is more than half the kernel 3"),
        (lambda: ops.max_pool2d_forward(X, 2, 0), ValueError,
         r"max_pool2d_forward: stride must be at least 1, got 0"),
        (lambda: ops.avg_pool2d_forward(X, 2, (1, 0)), ValueError,
         r"avg_pool2d_forward: stride must be at least 1, got 0"),
        (lambda: ops.max_pool2d_forward(X, 0), ValueError,
         r"max_pool2d_forward: kernel_size must be at least 1, got 0"),
        (lambda: ops.avg_pool2d_forward(X, 3, 1, -1), ValueError,
         r"avg_pool2d_forward: padding must be non-negative, got -1"),
        (lambda: ops.max_pool2d_forward(X, 7, 1, 1), ValueError,
         r"max_pool2d_forward: kernel height 7 is larger than the padded input height 6"),
        (lambda: ops.max_pool2d_forward(X, (2, 7)), ValueError,
         r"max_pool2d_forward: kernel width 7 is larger than the padded input width 4"),
        (lambda: ops.avg_pool2d_backward(np.ones((1, 1, 1, 1)), (1, 1, 2, 2), 3), ValueError,
         r"avg_pool2d_backward: kernel height 3 is larger than the padded input height 2"),
        (lambda: ops.max_pool2d_forward(np.ones((1, 4, 4), np.float32), 2), ValueError,
         r"max_pool2d_forward: x must be 4-D \(batch, channels, height, width\), got shape \(1, 4, 4\)"),
        (lambda: ops.avg_pool2d_forward(np.ones((4, 4)), 2), ValueError,
         r"avg_pool2d_forward: x must be 4-D \(batch, channels, height, width\), got shape \(4, 4\)"),
        (lambda: ops.global_avg_pool2d_forward(np.ones((2, 3))), ValueError,
         r"global_avg_pool2d_forward: x must be 4-D \(batch, channels, height, width\), got shape \(2, 3\)"),
        (lambda: ops.zero_pad2d_forward(np.ones((1, 2, 3)), 1), ValueError,
         r"zero_pad2d_forward: x must be 4-D \(batch, channels, height, width\), got shape \(1, 2, 3\)"),
        (lambda: ops.max_pool2d_backward(np.ones((1, 1, 2)), np.zeros((1, 1, 2), np.int64), (1, 1, 4, 4)),
         ValueError, r"max_pool2d_backward: dy must be 4-D"),
        (lambda: ops.max_pool2d_forward(X.astype(np.int64), 2), TypeError,
         r"max_pool2d_forward: x must be float32 or float64, got int64"),
        (lambda: ops.avg_pool2d_backward(np.ones((1, 1, 2, 2), np.float16), (1, 1, 4, 4), 2), TypeError,
         r"avg_pool2d_backward: dy must be float32 or float64, got float16"),
        (lambda: ops.max_pool2d_backward(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int32), (1, 1, 4, 4)),
         TypeError, r"max_pool2d_backward: argmax must be int64, got int32"),
        (lambda: ops.max_pool2d_backward(np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), 16, np.int64), (1, 1, 4, 4)),
         ValueError, r"max_pool2d_backward: argmax values must lie in \[0, 16\) \(the height·width plane\), got 16"),
        (lambda: ops.max_pool2d_backward(np.ones((1, 1, 2, 2)), np.full((1, 1, 2, 2), -1, np.int64), (1, 1, 4, 4)),
         ValueError, r"max_pool2d_backward: argmax values must lie in \[0, 16\) .*got -1"),
        (lambda: ops.max_pool2d_backward(np.ones((1, 1, 2, 2)), np.zeros((1, 1, 2, 3), np.int64), (1, 1, 4, 4)),
         ValueError, r"max_pool2d_backward: argmax must have shape \(1, 1, 2, 2\), got \(1, 1, 2, 3\)"),
        (lambda: ops.max_pool2d_backward(np.ones((1, 2, 2, 2)), np.zeros((1, 2, 2, 2), np.int64), (1, 1, 4, 4)),
         ValueError, r"max_pool2d_backward: dy must have batch and channels \(1, 1\) of x_shape"),
        (lambda: ops.avg_pool2d_backward(np.ones((1, 1, 3, 2)), (1, 1, 4, 4), 2), ValueError,
         r"avg_pool2d_backward: dy must have shape \(1, 1, 2, 2\), got \(1, 1, 3, 2\)"),
        (lambda: ops.global_avg_pool2d_backward(np.ones((2, 3)), (2, 4, 5, 5)), ValueError,
         r"global_avg_pool2d_backward: dy must have shape \(2, 4\), got \(2, 3\)"),
        (lambda: ops.zero_pad2d_backward(np.ones((1, 1, 4, 4)), (1, 1, 4, 4), 1), ValueError,
         r"zero_pad2d_backward: dy must have shape \(1, 1, 6, 6\), got \(1, 1, 4, 4\)"),
        (lambda: ops.zero_pad2d_forward(X, (1, 2, 3)), ValueError,
         r"zero_pad2d_forward: padding must be an int, \(h, w\) or \(top, bottom, left, right\), got 3 values"),
        (lambda: ops.zero_pad2d_forward(X, -1), ValueError,
         r"zero_pad2d_forward: padding must be non-negative, got -1"),
        (lambda: ops.max_pool2d_forward(X, (2, 2, 2)), ValueError,
         r"max_pool2d_forward: kernel_size must be an int or a pair \(h, w\), got 3 values"),
        (lambda: ops.max_pool2d_forward(X, "2"), TypeError,
         r"max_pool2d_forward: kernel_size must be an int or a pair \(h, w\), got '2'"),
        (lambda: ops.global_avg_pool2d_backward(np.ones((2, 3)), (2, 3, 5)), ValueError,
         r"global_avg_pool2d_backward: x_shape must be 4 ints \(batch, channels, height, width\), got 3 values"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
