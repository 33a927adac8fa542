"""Keras's padding="same" is TensorFlow's rule, for every layer (issue 12):
out = ⌈in / stride⌉ windows and total padding max((out − 1)·stride +
(k − 1)·dilation + 1 − in, 0), the odd cell at the bottom/right. A generated
grid of kernel, stride, dilation and input size (odd, even, smaller than the
kernel) checks every "same" layer's output shape against that formula and its
values against the NumPy reference padded explicitly by it
(reference.conv.same_pads); Conv2DTranspose "same" against the adjoint (input
gradient) of the forward "same" convolution on the H·s image; and float64
gradients through the asymmetric pads."""

import itertools

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import conv as ref
from reference import pool as refp
from tolerances import GRADCHECK_THRESHOLD, assert_close

L = cn.layers

# Kernel (k, 6 − k) puts every size 1..5 on both axes, square at k = 3.
KERNELS = [(k, 6 - k) for k in range(1, 6)]
STRIDES = (1, 2, 3)
DILATIONS = (1, 2)
SIZES = [(1, 3), (2, 5), (4, 4), (5, 2), (7, 6)]  # (H, W): odd, even, smaller than the kernel


def keras_same_shape(size_hw, stride):
    """Keras's "same" output size: ⌈in / stride⌉ per axis."""
    return tuple(-(-n // stride) for n in size_hw)


def predict(layer, x, weights):
    m = cn.Sequential([L.Input(x.shape[1:]), layer], dtype=x.dtype)
    m.build()
    m.set_weights(weights)
    return m.predict(x)


def test_same_pads_is_tensorflow_rule():
    # Worked cases: 11 rows, kernel 4, stride 2 -> 6 outputs, 1 on top, 2 below;
    # kernel 2, stride 1 -> the one cell at the bottom; kernel smaller than the
    # stride -> no padding at all; dilation 2 widens a 3-tap kernel to 5.
    assert ref.same_pads(11, 4, 2) == (6, 1, 2)
    assert ref.same_pads(5, 2, 1) == (5, 0, 1)
    assert ref.same_pads(8, 1, 3) == (3, 0, 0)
    assert ref.same_pads(6, 3, 1, dilation=2) == (6, 2, 2)
    assert ref.same_pads(1, 5, 1) == (1, 2, 2)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conv2d_same_grid(dtype):
    rng = np.random.default_rng(10)
    for kernel, s, d, hw in itertools.product(KERNELS, STRIDES, DILATIONS, SIZES):
        x = rng.standard_normal((2, 2, *hw)).astype(dtype)
        W = rng.standard_normal((3, 2, *kernel)).astype(dtype)
        b = rng.standard_normal(3).astype(dtype)
        y = predict(L.Conv2D(3, kernel, strides=s, dilation_rate=d, padding="same"), x, [W, b])
        case = f"kernel {kernel} stride {s} dilation {d} input {hw}"
        assert y.shape == (2, 3, *keras_same_shape(hw, s)), case
        expected = ref.conv2d_forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64),
                                      stride=s, dilation=d, padding=ref.same_pad4(hw, kernel, s, d))
        assert_close(y, expected, op="conv2d_forward", what=case)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_depthwise_conv2d_same_grid(dtype):
    rng = np.random.default_rng(11)
    for kernel, s, d, hw in itertools.product(KERNELS, STRIDES, DILATIONS, SIZES):
        x = rng.standard_normal((2, 2, *hw)).astype(dtype)
        W = rng.standard_normal((4, 1, *kernel)).astype(dtype)  # depth_multiplier 2
        b = rng.standard_normal(4).astype(dtype)
        layer = L.DepthwiseConv2D(kernel, strides=s, dilation_rate=d, depth_multiplier=2, padding="same")
        y = predict(layer, x, [W, b])
        case = f"kernel {kernel} stride {s} dilation {d} input {hw}"
        assert y.shape == (2, 4, *keras_same_shape(hw, s)), case
        expected = ref.conv2d_forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64),
                                      stride=s, dilation=d, groups=2,
                                      padding=ref.same_pad4(hw, kernel, s, d))
        assert_close(y, expected, op="conv2d_forward", what=case)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_separable_conv2d_same_grid(dtype):
    rng = np.random.default_rng(12)
    for kernel, s, d, hw in itertools.product(KERNELS, STRIDES, DILATIONS, SIZES):
        x = rng.standard_normal((2, 2, *hw)).astype(dtype)
        Wd = rng.standard_normal((2, 1, *kernel)).astype(dtype)
        Wp = rng.standard_normal((3, 2, 1, 1)).astype(dtype)
        b = rng.standard_normal(3).astype(dtype)
        y = predict(L.SeparableConv2D(3, kernel, strides=s, dilation_rate=d, padding="same"), x, [Wd, Wp, b])
        case = f"kernel {kernel} stride {s} dilation {d} input {hw}"
        assert y.shape == (2, 3, *keras_same_shape(hw, s)), case
        mid = ref.conv2d_forward(x.astype(np.float64), Wd.astype(np.float64), stride=s, dilation=d, groups=2,
                                 padding=ref.same_pad4(hw, kernel, s, d))
        expected = ref.conv2d_forward(mid, Wp.astype(np.float64), b.astype(np.float64))
        assert_close(y, expected, op="conv2d_forward", what=case)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pooling_same_grid(kind, dtype):
    """Padded cells never win the max and are left out of the average's count
    (TensorFlow's SAME pooling)."""
    rng = np.random.default_rng(13)
    layer_of = L.MaxPooling2D if kind == "max" else L.AveragePooling2D
    for pool, s, hw in itertools.product(KERNELS, STRIDES, SIZES):
        # Negative inputs: a padded zero would win the max or dilute the mean.
        x = -np.abs(rng.standard_normal((2, 3, *hw))).astype(dtype) - 1
        y = predict(layer_of(pool, strides=s, padding="same"), x, [])
        case = f"pool {pool} stride {s} input {hw}"
        assert y.shape == (2, 3, *keras_same_shape(hw, s)), case
        pads = ref.same_pad4(hw, pool, s)
        x64 = x.astype(np.float64)
        if kind == "max":
            expected = refp.max_pool2d_forward(x64, pool, s, pads)[0]
        else:
            expected = refp.avg_pool2d_forward(x64, pool, s, pads, count_include_pad=False)
        assert_close(y, expected, op=f"{kind}_pool2d_forward", what=case)


def conv_transpose_same_reference(x, K, hw, stride, dilation=1):
    """Conv2DTranspose "same" as TensorFlow defines it: the input gradient of
    the forward "same" convolution of an (H·s, W·s) image with the same kernel
    (K (C_in, filters, KH, KW) is that convolution's weight (out, in, KH, KW))."""
    out_hw = (hw[0] * stride, hw[1] * stride)
    image = np.zeros((x.shape[0], K.shape[1], *out_hw))
    pads = ref.same_pad4(out_hw, K.shape[2:], stride, dilation)
    return ref.conv2d_backward(x, image, K, stride=stride, padding=pads, dilation=dilation)[0]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_conv2d_transpose_same_is_the_adjoint_of_conv2d_same(dtype):
    rng = np.random.default_rng(14)
    for kernel, s, d, hw in itertools.product(KERNELS, STRIDES, DILATIONS, SIZES):
        x = rng.standard_normal((2, 3, *hw)).astype(dtype)
        K = rng.standard_normal((3, 2, *kernel)).astype(dtype)
        layer = L.Conv2DTranspose(2, kernel, strides=s, dilation_rate=d, padding="same", use_bias=False)
        y = predict(layer, x, [K])
        case = f"kernel {kernel} stride {s} dilation {d} input {hw}"
        assert y.shape == (2, 2, hw[0] * s, hw[1] * s), case  # Keras: in·stride
        expected = conv_transpose_same_reference(x.astype(np.float64), K.astype(np.float64), hw, s, d)
        assert_close(y, expected, op="conv_transpose2d_forward", what=case)


def test_conv2d_transpose_same_and_conv2d_same_layers_are_adjoint():
    """<conv(u), v> = <u, convT(v)> with corenn's own two layers, one kernel."""
    rng = np.random.default_rng(15)
    for kernel, s, d, hw in itertools.product(KERNELS, STRIDES, DILATIONS, SIZES):
        v = rng.standard_normal((1, 3, *hw))
        u = rng.standard_normal((1, 2, hw[0] * s, hw[1] * s))
        K = rng.standard_normal((3, 2, *kernel))
        args = dict(strides=s, dilation_rate=d, padding="same", use_bias=False)
        conv_u = predict(L.Conv2D(3, kernel, **args), u, [K])
        convT_v = predict(L.Conv2DTranspose(2, kernel, **args), v, [K])
        lhs, rhs = np.sum(conv_u * v), np.sum(u * convT_v)
        assert_close(np.array(lhs), np.array(rhs), op="conv2d_forward",
                     what=f"adjoint, kernel {kernel} stride {s} dilation {d} input {hw}")


def test_conv2d_transpose_issue_example():
    """Issue 12: 4×4 -> 8×8 with kernel 3, stride 2 was one pixel up-left."""
    rng = np.random.default_rng(16)
    x = rng.standard_normal((1, 1, 4, 4))
    K = rng.standard_normal((1, 1, 3, 3))
    y = predict(L.Conv2DTranspose(1, 3, strides=2, padding="same", use_bias=False), x, [K])
    assert_close(y, conv_transpose_same_reference(x, K, (4, 4), 2), op="conv_transpose2d_forward")


@pytest.mark.parametrize("kernel, stride", [(2, 1), (4, 2), ((2, 3), (1, 3)), (1, 2)])
def test_conv2d_transpose_same_accepts_even_kernels(kernel, stride):
    m = cn.Sequential([L.Input((2, 5, 4)), L.Conv2DTranspose(3, kernel, strides=stride, padding="same")])
    m.build()
    s = stride if isinstance(stride, tuple) else (stride, stride)
    assert m.output_shape == (None, 3, 5 * s[0], 4 * s[1])


def test_conv2d_transpose_same_with_output_padding_follows_keras():
    """Keras: output (in − 1)·s + span mod 2 + output_padding, cropped as the
    adjoint of the forward "same" convolution of that size."""
    rng = np.random.default_rng(17)
    x = rng.standard_normal((1, 2, 3, 4))
    K = rng.standard_normal((2, 1, 3, 3))
    y = predict(L.Conv2DTranspose(1, 3, strides=2, padding="same", output_padding=0, use_bias=False), x, [K])
    out_hw = (2 * 2 + 1, 3 * 2 + 1)
    assert y.shape == (1, 1, *out_hw)
    image = np.zeros((1, 1, *out_hw))
    expected = ref.conv2d_backward(x, image, K, stride=2, padding=ref.same_pad4(out_hw, 3, 2))[0]
    assert_close(y, expected, op="conv_transpose2d_forward")


def test_conv2d_transpose_same_refuses_an_output_padding_tensorflow_refuses():
    # Kernel 2, stride 2, output_padding 0: Keras's size (3 − 1)·2 + 0 = 4 has
    # ⌈4 / 2⌉ = 2 "same" windows, not the 3 input rows: no adjoint exists.
    m = cn.Sequential([L.Input((1, 3, 3)), L.Conv2DTranspose(1, 2, strides=2, padding="same",
                                                             output_padding=0, name="t")])
    with pytest.raises(ValueError, match=r"layer 't' \(conv2d_transpose\).*output_padding"):
        m.build()


# Even kernels and stride 2 on odd/even sizes: the top/left and bottom/right pads differ.
ASYMMETRIC = [
    ("conv2d", lambda: L.Conv2D(2, (2, 4), strides=(1, 2), padding="same", activation="tanh"), (2, 5, 6)),
    ("conv2d_dilated", lambda: L.Conv2D(2, 2, dilation_rate=2, padding="same"), (2, 4, 5)),
    ("depthwise", lambda: L.DepthwiseConv2D(4, strides=2, depth_multiplier=2, padding="same"), (2, 5, 6)),
    ("separable", lambda: L.SeparableConv2D(2, (2, 3), strides=(2, 1), padding="same"), (2, 5, 4)),
    ("transpose", lambda: L.Conv2DTranspose(2, (2, 5), strides=(1, 2), padding="same"), (2, 3, 4)),
    ("transpose_k4s2", lambda: L.Conv2DTranspose(2, 4, strides=2, padding="same"), (2, 3, 3)),
    ("transpose_dilated", lambda: L.Conv2DTranspose(2, 2, dilation_rate=(2, 3), padding="same"), (2, 3, 4)),
    ("max_pool", lambda: L.MaxPooling2D(2, strides=1, padding="same"), (2, 5, 4)),
    ("avg_pool", lambda: L.AveragePooling2D((2, 3), strides=2, padding="same"), (2, 5, 4)),
]


@pytest.mark.parametrize("name, make, input_shape", ASYMMETRIC, ids=[a[0] for a in ASYMMETRIC])
def test_asymmetric_same_gradients(name, make, input_shape):
    """float64 finite differences through the asymmetric "same" pads: the
    layer's parameters, and its input gradient through those of the 1×1
    convolution in front of it (mse on the output)."""
    cn.seed(5)
    rng = np.random.default_rng(18)
    m = cn.Sequential([L.Input(input_shape), L.Conv2D(2, 1), make()], dtype="float64")
    m.compile(cn.optimizers.SGD(0.01), "mse")
    X = rng.standard_normal((2, *input_shape))
    Y = rng.standard_normal((2, *m.output_shape[1:]))
    assert cn.gradient_check(m, X, Y) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_ops_express_keras_same_with_four_pads(dtype):
    """The functional ops take (top, bottom, left, right) padding, so Keras's
    asymmetric "same" is expressible there too."""
    rng = np.random.default_rng(20)
    x = rng.standard_normal((2, 2, 5, 4)).astype(dtype)
    pads = ref.same_pad4((5, 4), 2, 2)  # (0, 1, 0, 0)
    y, _ = cn.ops.max_pool2d_forward(x, 2, 2, pads)
    assert_close(y, refp.max_pool2d_forward(x.astype(np.float64), 2, 2, pads)[0], op="max_pool2d_forward")
    y = cn.ops.avg_pool2d_forward(x, 2, 2, pads, count_include_pad=False)
    assert_close(y, refp.avg_pool2d_forward(x.astype(np.float64), 2, 2, pads, count_include_pad=False),
                 op="avg_pool2d_forward")
    # Transposed: the adjoint of conv2d with pads (top, bottom, left, right).
    K = rng.standard_normal((2, 3, 4, 3)).astype(dtype)
    args = dict(stride=2, padding=(1, 2, 1, 0), output_padding=(1, 0), dilation=(1, 2))
    y = cn.ops.conv_transpose2d_forward(x, K, **args)
    assert_close(y, ref.conv_transpose2d_forward(x.astype(np.float64), K.astype(np.float64), **args),
                 op="conv_transpose2d_forward")


@pytest.mark.parametrize("dilation", [1, (2, 3)])
def test_conv_transpose2d_op_gradient_with_asymmetric_pads(dilation):
    rng = np.random.default_rng(21)
    x = rng.standard_normal((2, 2, 3, 4))
    K = rng.standard_normal((2, 3, 3, 4))
    b = rng.standard_normal(3)
    args = dict(stride=(2, 1), padding=(0, 2, 2, 1), output_padding=(1, 0), dilation=dilation)
    y = cn.ops.conv_transpose2d_forward(x, K, b, **args)
    P = projection(y.shape, seed=22)
    dx, dK, db = cn.ops.conv_transpose2d_backward(P, x, K, **args)
    loss = lambda: float(np.sum(P * cn.ops.conv_transpose2d_forward(x, K, b, **args)))  # noqa: E731
    for analytic, wrt in ((dx, x), (dK, K), (db, b)):
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_pooling_ops_backward_with_four_pads(dtype):
    rng = np.random.default_rng(23)
    x = rng.standard_normal((2, 2, 5, 4)).astype(dtype)
    pads = ref.same_pad4((5, 4), (2, 3), 2)  # (0, 1, 1, 1)
    y, argmax = cn.ops.max_pool2d_forward(x, (2, 3), 2, pads)
    dy = rng.standard_normal(y.shape).astype(dtype)
    _, eargmax = refp.max_pool2d_forward(x.astype(np.float64), (2, 3), 2, pads)
    np.testing.assert_array_equal(argmax, eargmax)
    assert_close(cn.ops.max_pool2d_backward(dy, argmax, x.shape),
                 refp.max_pool2d_backward(dy.astype(np.float64), eargmax, x.shape), op="max_pool2d_backward")
    for include in (True, False):
        assert_close(cn.ops.avg_pool2d_backward(dy, x.shape, (2, 3), 2, pads, count_include_pad=include),
                     refp.avg_pool2d_backward(dy.astype(np.float64), x.shape, (2, 3), 2, pads, include),
                     op="avg_pool2d_backward", what=f"count_include_pad={include}")


def test_same_layers_round_trip_through_model_files(tmp_path):
    """"same" is stored as the string: a reloaded model rebuilds the same geometry."""
    cn.seed(6)
    m = cn.Sequential([L.Input((2, 5, 4)), L.Conv2D(3, 2, padding="same"),
                       L.Conv2DTranspose(2, 2, strides=1, padding="same"),
                       L.Conv2DTranspose(2, 3, strides=2, padding="same"),
                       L.MaxPooling2D(2, strides=1, padding="same"), L.AveragePooling2D(3, padding="same")])
    m.build()
    x = np.random.default_rng(24).standard_normal((2, 2, 5, 4)).astype(np.float32)
    m.save(tmp_path / "same.corenn")
    loaded = cn.load_model(tmp_path / "same.corenn")
    assert loaded.output_shape == m.output_shape == (None, 2, 4, 3)
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))
