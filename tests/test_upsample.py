"""The up-sampling op (nearest and bilinear, integer factors): the reference
against hand values and its own finite differences, fast and naive kernels
against the reference in float32 and float64, the kernel's gradient, bad input."""

import itertools

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import upsample as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

ops = cn.ops
MODES = ["nearest", "bilinear"]
SIZES = [1, 2, 3, (2, 1), (1, 3), (3, 2)]
X_SHAPES = [(1, 1, 1, 1), (1, 1, 2, 1), (2, 3, 5, 4)]


def gid(v):
    return str(v).replace(" ", "")


# ---------------------------------------------------------------- reference self-checks


def test_reference_hand_values():
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    # PyTorch: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    want = np.array([[1.0, 1.25, 1.75, 2.0],
                     [1.5, 1.75, 2.25, 2.5],
                     [2.5, 2.75, 3.25, 3.5],
                     [3.0, 3.25, 3.75, 4.0]])
    np.testing.assert_array_equal(ref.upsample2d_forward(x, 2, "bilinear")[0, 0], want)
    np.testing.assert_array_equal(ref.upsample2d_forward(x, (1, 2), "nearest")[0, 0],
                                  [[1, 1, 2, 2], [3, 3, 4, 4]])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size", [2, (3, 2)], ids=gid)
def test_reference_gradient(mode, size, rng):
    x = rng.standard_normal((2, 2, 3, 4))
    P = projection(ref.upsample2d_forward(x, size, mode).shape, 1)
    loss = lambda: float(np.sum(P * ref.upsample2d_forward(x, size, mode)))  # noqa: E731
    dx = ref.upsample2d_backward(P, x.shape, size, mode)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------- parity


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("mode, size, x_shape", list(itertools.product(MODES, SIZES, X_SHAPES)), ids=gid)
def test_forward_and_backward_match_reference(mode, size, x_shape, dtype, naive, rng):
    x = rng.standard_normal(x_shape).astype(dtype)
    y = ops.upsample2d_forward(x, size, mode, naive=naive)
    assert y.dtype == dtype
    assert_close(y, ref.upsample2d_forward(x.astype(np.float64), size, mode), op="upsample2d_forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.upsample2d_backward(dy, x.shape, size, mode, naive=naive)
    assert dx.dtype == dtype
    assert_close(dx, ref.upsample2d_backward(dy.astype(np.float64), x_shape, size, mode),
                 op="upsample2d_backward")


@pytest.mark.parametrize("mode", MODES)
def test_fast_kernels_do_not_depend_on_the_thread_count(mode, rng):
    # Enough planes for the work to be split across threads.
    x = rng.standard_normal((8, 16, 20, 24))
    dy = rng.standard_normal((8, 16, 40, 48))
    before = cn.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            cn.set_num_threads(n)
            results.append((ops.upsample2d_forward(x, 2, mode), ops.upsample2d_backward(dy, x.shape, 2, mode)))
    finally:
        cn.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", MODES)
def test_kernel_gradient_check(mode, rng):
    x = rng.standard_normal((2, 2, 3, 3))
    size = (2, 3)
    P = projection(ops.upsample2d_forward(x, size, mode).shape, 2)
    loss = lambda: float(np.sum(P * ops.upsample2d_forward(x, size, mode)))  # noqa: E731
    dx = ops.upsample2d_backward(P, x.shape, size, mode)
    assert relative_difference(dx, numerical_gradient(loss, x)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, exc, match", [
    (lambda x: ops.upsample2d_forward(x[0]), ValueError,
     r"upsample2d_forward: x must be 4-D \(batch, channels, height, width\), got shape \(3, 4, 5\)"),
    (lambda x: ops.upsample2d_forward(x, 0), ValueError, r"upsample2d_forward: size must be at least 1, got 0"),
    (lambda x: ops.upsample2d_forward(x, (2, 2, 2)), ValueError, r"upsample2d_forward: size must be an int or a pair"),
    (lambda x: ops.upsample2d_forward(x, "2"), TypeError, r"upsample2d_forward: size must be an int or a pair"),
    (lambda x: ops.upsample2d_forward(x, 2, "bicubic"), ValueError,
     r"upsample2d_forward: interpolation must be 'nearest' or 'bilinear', got 'bicubic'"),
    (lambda x: ops.upsample2d_forward(x.astype(np.int32)), TypeError,
     r"upsample2d_forward: x must be float32 or float64, got int32"),
    (lambda x: ops.upsample2d_backward(x, (2, 3, 4, 5)), ValueError,
     r"upsample2d_backward: dy must have shape \(2, 3, 8, 10\), got \(2, 3, 4, 5\)"),
    (lambda x: ops.upsample2d_backward(x, (2, 3, 4)), ValueError, r"upsample2d_backward: x_shape must be 4 ints"),
    (lambda x: ops.upsample2d_backward(x, (2, 3, 0, 5)), ValueError,
     r"upsample2d_backward: height must be at least 1, got 0"),
])
def test_bad_input_is_reported(call, exc, match, rng):
    x = rng.standard_normal((2, 3, 4, 5))
    with pytest.raises(exc, match=match):
        call(x)


def test_empty_batch_nan_and_read_only_inputs(rng):
    x = rng.standard_normal((0, 2, 3, 3))
    with pytest.raises(ValueError, match=r"upsample2d_forward: batch must be at least 1, got 0"):
        ops.upsample2d_forward(x)
    x = rng.standard_normal((1, 1, 2, 2))
    x[0, 0, 0, 0] = np.nan
    y = ops.upsample2d_forward(x, 2, "bilinear")
    # A NaN pixel propagates to the outputs interpolated from it; the far corner
    # reads only x[1, 1] and stays finite.
    assert np.isnan(y[0, 0, 0, 0]) and not np.isnan(y[0, 0, 3, 3])
    x = rng.standard_normal((1, 2, 3, 3))
    x.setflags(write=False)
    assert_close(ops.upsample2d_forward(x, 2, "bilinear"), ref.upsample2d_forward(x, 2, "bilinear"))
