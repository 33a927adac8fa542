"""Int-or-tuple hyper-parameters (stride, padding, dilation, kernel_size, size,
x_shape) are parsed by ONE helper in the bindings (python/bindings/common.hpp,
int_tuple): every op that takes one accepts a Python int, a NumPy integer or a
tuple/list of them, and refuses a bool with a TypeError (True is an int to
Python, but stride=True is a slip, not a 1), a float or a string with a
TypeError, and a tuple of the wrong length with a ValueError."""
import numpy as np
import pytest

import corenn as cn

ops = cn.ops
X = np.arange(2 * 3 * 6 * 6, dtype=np.float64).reshape(2, 3, 6, 6) / 10
X_SHAPE = (2, 3, 6, 6)
W = np.ones((4, 3, 3, 3))
WT = np.ones((3, 4, 3, 3))
DY_POOL = np.ones((2, 3, 3, 3))
OFFSETS = np.zeros((2, 2), np.int64)

# (name, call(value), a valid value): each int-or-tuple argument of every op.
ARGUMENTS = [
    ("conv2d_forward stride", lambda v: ops.conv2d_forward(X, W, stride=v), 1),
    ("conv2d_forward padding", lambda v: ops.conv2d_forward(X, W, padding=v), 1),
    ("conv2d_forward dilation", lambda v: ops.conv2d_forward(X, W, dilation=v), 1),
    ("conv2d_backward stride", lambda v: ops.conv2d_backward(np.ones((2, 4, 4, 4)), X, W, stride=v), 1),
    ("conv_transpose2d_forward stride", lambda v: ops.conv_transpose2d_forward(X, WT, stride=v), 2),
    ("conv_transpose2d_forward padding", lambda v: ops.conv_transpose2d_forward(X, WT, padding=v), 1),
    ("conv_transpose2d_forward output_padding",
     lambda v: ops.conv_transpose2d_forward(X, WT, stride=2, output_padding=v), 1),
    ("conv_transpose2d_forward dilation", lambda v: ops.conv_transpose2d_forward(X, WT, dilation=v), 1),
    ("max_pool2d_forward kernel_size", lambda v: ops.max_pool2d_forward(X, v), 2),
    ("max_pool2d_forward stride", lambda v: ops.max_pool2d_forward(X, 2, stride=v), 2),
    ("max_pool2d_forward padding", lambda v: ops.max_pool2d_forward(X, 2, padding=v), 1),
    ("avg_pool2d_forward kernel_size", lambda v: ops.avg_pool2d_forward(X, v), 2),
    ("avg_pool2d_backward kernel_size", lambda v: ops.avg_pool2d_backward(DY_POOL, X_SHAPE, v), 2),
    ("zero_pad2d_forward padding", lambda v: ops.zero_pad2d_forward(X, v), 1),
    ("upsample2d_forward size", lambda v: ops.upsample2d_forward(X, v), 2),
    ("upsample2d_backward size",
     lambda v: ops.upsample2d_backward(np.ones((2, 3, 12, 12)), X_SHAPE, v), 2),
    ("random_crop_forward padding", lambda v: ops.random_crop_forward(X, v, 0), 1),
    ("random_crop_backward padding", lambda v: ops.random_crop_backward(X, OFFSETS, v), 1),
]
IDS = [a[0] for a in ARGUMENTS]


def _same(a, b):
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        if u is None or v is None:
            assert u is v
        else:
            np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("label, call, good", ARGUMENTS, ids=IDS)
@pytest.mark.parametrize("bad", [True, False, (True, 1), [1, False], np.True_])
def test_bool_is_a_type_error(label, call, good, bad):
    op, arg = label.split()
    with pytest.raises(TypeError, match=rf"{op}: {arg} must be .*, got "):
        call(bad)


@pytest.mark.parametrize("label, call, good", ARGUMENTS, ids=IDS)
@pytest.mark.parametrize("bad", [1.0, "2", (1, 1.5), (1, "1"), (None, 1)])
def test_non_int_is_a_type_error(label, call, good, bad):
    op, arg = label.split()
    with pytest.raises(TypeError, match=rf"{op}: {arg} must be .*, got "):
        call(bad)


@pytest.mark.parametrize("label, call, good", ARGUMENTS, ids=IDS)
def test_wrong_length_is_a_value_error(label, call, good):
    op, arg = label.split()
    with pytest.raises(ValueError, match=rf"{op}: {arg} must be .*, got 3 values \({good}, {good}, {good}\)"):
        call((good, good, good))


@pytest.mark.parametrize("label, call, good", ARGUMENTS, ids=IDS)
def test_int_numpy_int_and_pair_agree(label, call, good):
    expected = call(good)
    _same(call(np.int64(good)), expected)
    _same(call((good, good)), expected)
    _same(call([np.int32(good), good]), expected)


@pytest.mark.parametrize("call", [
    lambda shape: ops.avg_pool2d_backward(DY_POOL, shape, 2),
    lambda shape: ops.max_pool2d_backward(DY_POOL, np.zeros(DY_POOL.shape, np.int64), shape),
    lambda shape: ops.global_avg_pool2d_backward(np.ones((2, 3)), shape),
    lambda shape: ops.zero_pad2d_backward(np.ones((2, 3, 8, 8)), shape, 1),
    lambda shape: ops.upsample2d_backward(np.ones((2, 3, 12, 12)), shape, 2),
], ids=["avg_pool2d", "max_pool2d", "global_avg_pool2d", "zero_pad2d", "upsample2d"])
def test_x_shape_takes_numpy_ints_and_refuses_bools(call):
    expected = call(X_SHAPE)
    _same(call(tuple(np.int64(d) for d in X_SHAPE)), expected)
    _same(call(list(X_SHAPE)), expected)
    with pytest.raises(TypeError, match=r"_backward: x_shape must be 4 ints"):
        call((2, 3, 6, True))
    with pytest.raises(ValueError, match=r"_backward: x_shape must be 4 ints .*, got 3 values"):
        call((2, 3, 6))
