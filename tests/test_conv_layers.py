"""Convolutional layers in models: shapes (Keras's padding rules), parity with
the functional ops, whole-model gradient checks, build-time errors and a LeNet
on scikit-learn's digits."""

import numpy as np
import pytest

import corenn as cn
from tolerances import GRADCHECK_THRESHOLD, assert_close

L = cn.layers


def built(layers, input_shape, dtype="float32"):
    m = cn.Sequential([L.Input(input_shape), *layers], dtype=dtype)
    m.build()
    return m


@pytest.mark.parametrize(
    "layer, input_shape, expected",
    [
        (lambda: L.Conv2D(4, 3), (2, 9, 7), (4, 7, 5)),
        (lambda: L.Conv2D(4, 3, padding="same"), (2, 9, 7), (4, 9, 7)),
        (lambda: L.Conv2D(4, 4, padding="same"), (2, 9, 7), (4, 9, 7)),   # even kernel: asymmetric
        (lambda: L.Conv2D(4, 3, strides=2, padding="same"), (2, 9, 7), (4, 5, 4)),
        (lambda: L.Conv2D(4, 3, strides=2), (2, 9, 7), (4, 4, 3)),
        (lambda: L.Conv2D(4, 3, dilation_rate=2), (2, 9, 7), (4, 5, 3)),
        (lambda: L.Conv2D(4, (1, 3), padding=(0, 1)), (2, 9, 7), (4, 9, 7)),
        (lambda: L.Conv2D(4, 3, groups=2), (2, 9, 7), (4, 7, 5)),
        (lambda: L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), (3, 8, 8), (6, 8, 8)),
        (lambda: L.SeparableConv2D(5, 3), (3, 8, 8), (5, 6, 6)),
        (lambda: L.Conv2DTranspose(3, 2, strides=2), (4, 5, 6), (3, 10, 12)),
        (lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same"), (4, 5, 6), (3, 10, 12)),
        (lambda: L.Conv2DTranspose(3, 3), (4, 5, 6), (3, 7, 8)),
        (lambda: L.MaxPooling2D(2), (3, 9, 8), (3, 4, 4)),
        (lambda: L.MaxPool2D(2, padding="same"), (3, 9, 8), (3, 5, 4)),
        (lambda: L.AveragePooling2D(3, strides=1), (3, 9, 8), (3, 7, 6)),
        (lambda: L.GlobalAveragePooling2D(), (3, 9, 8), (3,)),
        (lambda: L.ZeroPadding2D(((1, 2), (0, 3))), (3, 4, 4), (3, 7, 7)),
    ],
)
def test_output_shapes_follow_keras_rules(layer, input_shape, expected):
    m = built([layer()], input_shape)
    assert m.output_shape == (None, *expected)
    x = np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32)
    assert m.predict(x).shape == (2, *expected)


def test_conv2d_layer_equals_the_op_with_its_weights():
    rng = np.random.default_rng(1)
    m = built([L.Conv2D(5, 4, strides=2, padding="same", activation="relu")], (3, 11, 10))
    W, b = m.get_weights()
    assert W.shape == (5, 3, 4, 4) and b.shape == (5,)
    x = rng.standard_normal((2, 3, 11, 10)).astype(np.float32)
    # Keras "same" for 11 rows, kernel 4, stride 2: 6 outputs, padding 1 top 2 bottom.
    z = cn.ops.conv2d_forward(x, W, b, stride=2, padding=(1, 2, 1, 1))
    assert_close(m.predict(x), np.maximum(z, 0), op="conv2d_forward", what="layer vs op")


def test_pooling_layers_equal_the_ops():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    m = built([L.MaxPool2D(3, strides=2)], (3, 9, 8))
    assert_close(m.predict(x), cn.ops.max_pool2d_forward(x, 3, 2)[0], op="max_pool2d_forward")
    m = built([L.AvgPool2D(2)], (3, 9, 8))
    assert_close(m.predict(x), cn.ops.avg_pool2d_forward(x, 2), op="avg_pool2d_forward")
    m = built([L.GlobalAvgPool2D()], (3, 9, 8))
    assert_close(m.predict(x), x.mean(axis=(2, 3)), op="global_avg_pool2d_forward")


def test_count_params_formulas():
    m = built([L.Conv2D(8, 3), L.DepthwiseConv2D(3, depth_multiplier=2), L.SeparableConv2D(4, 3),
               L.Conv2DTranspose(2, 2, strides=2), L.Conv2D(6, 1, use_bias=False, groups=2)],
              (3, 16, 16))
    expected = [8 * 3 * 9 + 8, 16 * 9 + 16, 16 * 9 + 4 * 16 + 4, 4 * 2 * 4 + 2, 6 * 1 * 1]
    counts = [m._engine.count_layer_params(i) for i in range(5)]
    assert counts == expected
    assert m.count_params() == sum(expected)


def _cnn(dtype, layers, input_shape, loss="softmax_cross_entropy"):
    cn.seed(3)
    m = cn.Sequential([L.Input(input_shape), *layers], dtype=dtype)
    m.compile(cn.optimizers.SGD(0.01), loss)
    return m


@pytest.mark.parametrize("name, layers", [
    ("conv_pool", lambda: [L.Conv2D(3, 3, padding="same", activation="tanh"), L.MaxPool2D(2),
                           L.Conv2D(2, 2, strides=2, dilation_rate=1), L.Flatten(), L.Dense(3)]),
    ("depthwise_separable", lambda: [L.DepthwiseConv2D(3, depth_multiplier=2, activation="sigmoid"),
                                     L.SeparableConv2D(3, 2, padding="same"), L.AvgPool2D(2, padding="same"),
                                     L.GlobalAvgPool2D(), L.Dense(3)]),
    ("transpose_padding", lambda: [L.ZeroPadding2D(1), L.Conv2D(2, 3, strides=2, groups=2),
                                   L.Conv2DTranspose(2, 3, strides=2, padding="same", activation="tanh"),
                                   L.Flatten(), L.Dense(3, kernel_regularizer=cn.regularizers.L2(0.01))]),
])
def test_whole_model_gradient_check(name, layers):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((3, 2, 6, 6))
    y = rng.integers(0, 3, 3)
    m = _cnn("float64", layers(), (2, 6, 6))
    assert cn.gradient_check(m, X, y) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("make, match", [
    (lambda: [L.Conv2D(2, 7)], r"layer 'c' \(conv2d\).*kernel"),
    (lambda: [L.Conv2D(3, 3, groups=2)], r"layer 'c' \(conv2d\).*groups"),
    (lambda: [L.MaxPool2D(7)], r"layer 'c' \(max_pool2d\)"),
    (lambda: [L.RepeatVector(3)], r"layer 'c' \(repeat_vector\): expects a vector \(features,\)"),
    (lambda: [L.Conv2DTranspose(2, 2, strides=2, padding="same", output_padding=0)],
     r"layer 'c' \(conv2d_transpose\).*output_padding 0.*8 cells.*4 windows, not the input.s 5"),
])
def test_invalid_geometry_is_reported_at_build_naming_the_layer(make, match):
    layers = make()
    layers[0].name = "c"
    m = cn.Sequential([L.Input((4, 5, 5)), *layers])
    with pytest.raises(ValueError, match=match):
        m.build()


@pytest.mark.parametrize("call, exc, match", [
    (lambda: L.Conv2D(0, 3), ValueError, r"Conv2D: filters must be >= 1, got 0"),
    (lambda: L.Conv2D(2, 0), ValueError, r"Conv2D: kernel_size must be >= 1, got 0"),
    (lambda: L.Conv2D(2, 3, strides=0), ValueError, r"Conv2D: strides must be >= 1, got 0"),
    (lambda: L.Conv2D(2, 3, padding="full"), ValueError, r"Conv2D: padding must be one of 'valid', 'same'"),
    (lambda: L.Conv2D(2, 3, padding=-1), ValueError, r"Conv2D: padding must be >= 0, got -1"),
    (lambda: L.Conv2D(2, (1, 2, 3)), TypeError, r"Conv2D: kernel_size must be an int or a \(height, width\) pair"),
    (lambda: L.MaxPool2D(2, padding="wide"), ValueError, r"MaxPooling2D: padding must be one of"),
    (lambda: L.ZeroPadding2D("same"), TypeError, r"ZeroPadding2D: padding must be an int"),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=0), ValueError, r"depth_multiplier must be >= 1"),
])
def test_bad_hyper_parameters(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_lenet_on_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 8×8 digits upsampled to 16×16 (nearest), one channel, pixels in [0, 1].
    images = np.kron(digits.images / 16.0, np.ones((2, 2)))[:, None].astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    cn.seed(0)
    model = cn.Sequential([
        L.Input((1, 16, 16)),
        L.Conv2D(6, 5, padding="same", activation="relu"), L.MaxPool2D(2),
        L.Conv2D(16, 5, activation="relu"), L.MaxPool2D(2),
        L.Flatten(), L.Dense(120, activation="relu"), L.Dense(84, activation="relu"), L.Dense(10),
    ])
    model.compile(cn.optimizers.Adam(2e-3), "softmax_cross_entropy", metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=32, epochs=15, verbose=0)
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.97


# A Conv2D's training step computes the ops' gradients, bit for bit, over the
# geometries the kernels route differently (columns copied row by row or as
# whole shifted planes, scatter-added back by rows), also after a step changed
# the weights. With an MSE loss against zeros the loss gradient is (2/n)·y,
# which NumPy computes alike.
@pytest.mark.parametrize("batch, cin, size, kwargs, ops_kwargs", [
    (1, 1, 12, dict(kernel_size=5, padding=2), dict(padding=2)),              # LeNet's first layer
    (5, 3, 9, dict(kernel_size=3), dict()),                                   # odd batch, C_in 3
    (4, 4, 8, dict(kernel_size=3, groups=2), dict(groups=2)),
    (3, 3, 9, dict(kernel_size=3, strides=2, padding=1), dict(stride=2, padding=1)),
    (3, 2, 9, dict(kernel_size=2, dilation_rate=2), dict(dilation=2)),
    (64, 6, 14, dict(kernel_size=5), dict()),                                 # LeNet's second layer
    (64, 3, 36, dict(kernel_size=5), dict()),                                 # rows of 32
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv2d_training_gradients_equal_the_ops_bit_for_bit(batch, cin, size, kwargs, ops_kwargs, dtype):
    rng = np.random.default_rng(7)
    m = _cnn(dtype, [L.Conv2D(6, **kwargs)], (cin, size, size), loss="mse")
    x = rng.standard_normal((batch, cin, size, size)).astype(dtype)
    for _ in range(2):  # after a step: new weights, a new batch in another buffer
        W, b = m.get_weights()
        y = cn.ops.conv2d_forward(x, W, b, **ops_kwargs)
        _, (dW, db) = m.compute_gradients(x, np.zeros_like(y))
        _, want_dW, want_db = cn.ops.conv2d_backward(y * np.asarray(2 / y.size, dtype), x, W, **ops_kwargs)
        assert np.array_equal(dW, want_dW) and np.array_equal(db, want_db)
        m.train_on_batch(x, np.zeros_like(y))
        x = x[::-1].copy()


# A convolution's own ReLU is applied as its epilogue in training and its
# gradient taken from the output: the training forward and the gradients are
# bit for bit ReLU(the op's forward) and the op's backward of dy·[z > 0],
# over the routes (GEMM with dx gathered or by col2im, the first layer's
# dW-only pass, Winograd's 3×3, depthwise), pre-activations of exactly 0
# included. (NaN through the fused ReLU: tests/test_fusion.py's and the
# ops' tests; the models reject NaN inputs.)
@pytest.mark.parametrize("layer, cin, size, op_kwargs", [
    (lambda: L.Conv2D(6, 5, padding=2, activation="relu"), 1, 12, dict(padding=2)),   # first layer: no dx
    (lambda: L.Conv2D(4, 3, activation="relu"), 3, 9, dict()),                        # 3×3: Winograd where "auto" picks it
    (lambda: L.Conv2D(5, 3, strides=2, activation="relu"), 2, 9, dict(stride=2)),
    (lambda: L.DepthwiseConv2D(3, activation="relu"), 3, 8, dict(groups=3)),
])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_conv_relu_training_equals_the_ops_bit_for_bit(layer, cin, size, op_kwargs, dtype):
    rng = np.random.default_rng(11)
    m = _cnn(dtype, [layer()], (cin, size, size), loss="mse")
    W, b = m.get_weights()
    x = rng.standard_normal((3, cin, size, size)).astype(dtype)
    x_zero = x.copy()
    x_zero[1] = 0  # z = the bias, zeros at initialisation: the ReLU's kink, gradient 0
    for x in (x, x_zero):
        z = cn.ops.conv2d_forward(x, W, b, **op_kwargs)
        y = np.where(z < 0, np.zeros_like(z), z)
        dz = y * np.asarray(2 / y.size, dtype) * (z > 0).astype(dtype)  # the MSE gradient against 0, through the ReLU
        want_dx, want_dW, want_db = cn.ops.conv2d_backward(dz, x, W, **op_kwargs)
        _, (dW, db) = m.compute_gradients(x, np.zeros_like(y))  # the first layer: dW and db only
        assert np.array_equal(dW, want_dW, equal_nan=True) and np.array_equal(db, want_db, equal_nan=True)
        got_y, pullback = m.vjp(x, training=True)
        assert np.array_equal(got_y, y, equal_nan=True)
        assert np.array_equal(pullback(y * np.asarray(2 / y.size, dtype)), want_dx, equal_nan=True)


# A layer applied to two inputs (two calls, each with its own forward state)
# whose outputs are read three times gets its gradient summed over its calls.
def test_conv2d_called_twice_gradient_check():
    rng = np.random.default_rng(8)
    cn.seed(5)
    a, b = L.Input((2, 7, 7)), L.Input((2, 7, 7))
    conv = L.Conv2D(3, 3, activation="tanh")
    ya, yb = conv(a), conv(b)
    out = L.Dense(2)(L.Flatten()(L.Add()([ya, yb, ya])))
    m = cn.Model([a, b], out, dtype="float64")
    m.compile(cn.optimizers.SGD(0.01), "mse")
    X = [rng.standard_normal((3, 2, 7, 7)), rng.standard_normal((3, 2, 7, 7))]
    assert cn.gradient_check(m, X, rng.standard_normal((3, 2))) < GRADCHECK_THRESHOLD

