"""The 1-D layers on sequences (N, C, L) — Conv1D, MaxPooling1D,
GlobalAveragePooling1D — and UpSampling2D in models: Keras's shapes, parity
with the NumPy references written from the 1-D formulas (forward, and the
backward pass through the engine's loss gradients), whole-model gradient
checks, bad input, and worked examples on scikit-learn's digits."""

import numpy as np
import pytest

import corenn as cn
from gradcheck import numerical_gradient, projection, relative_difference
from reference import sequence as ref
from reference import upsample as ref_up
from tolerances import GRADCHECK_THRESHOLD, assert_close

L = cn.layers
DTYPES = ["float32", "float64"]
# (kernel, strides, padding, dilation, groups) on (4, 9) sequences, 6 filters.
CONV1D_GRID = [
    (3, 1, "valid", 1, 1), (3, 1, "same", 1, 1), (4, 2, "same", 1, 1), (5, 3, "same", 1, 2),
    (3, 1, "causal", 2, 1), (2, 3, "causal", 1, 2), (3, 2, "valid", 2, 2), (1, 1, "same", 1, 1),
]


def built(layers, input_shape, dtype="float32"):
    m = cn.Sequential([L.Input(input_shape), *layers], dtype=dtype)
    m.build()
    return m


# ---------------------------------------------------------------- reference self-checks


def test_reference_hand_values():
    x = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    W = np.array([[[1.0, 10.0]]])
    # Causal: output t = x[t − 1] + 10·x[t] with x[−1] = 0.
    np.testing.assert_array_equal(ref.conv1d_forward(x, W, padding="causal")[0, 0], [10, 21, 32, 43])
    # "same" with an even kernel pads on the right: t = x[t] + 10·x[t + 1].
    np.testing.assert_array_equal(ref.conv1d_forward(x, W, padding="same")[0, 0], [21, 32, 43, 4])
    y, argmax = ref.max_pool1d_forward(np.array([[[3.0, 1.0, 5.0]]]), 2, padding="same")
    np.testing.assert_array_equal(y[0, 0], [3, 5])
    np.testing.assert_array_equal(argmax[0, 0], [0, 2])


@pytest.mark.parametrize("k, s, padding, d, groups", CONV1D_GRID)
def test_reference_conv1d_gradient(k, s, padding, d, groups, rng):
    x, W, b = rng.standard_normal((2, 4, 9)), rng.standard_normal((6, 4 // groups, k)), rng.standard_normal(6)
    fwd = lambda: ref.conv1d_forward(x, W, b, s, padding, d, groups)  # noqa: E731
    P = projection(fwd().shape, 1)
    dx, dW, db = ref.conv1d_backward(P, x, W, s, padding, d, groups)
    for analytic, wrt in ((dx, x), (dW, W), (db, b)):
        numeric = numerical_gradient(lambda: float(np.sum(P * fwd())), wrt)
        assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("k, s, padding", [(2, None, "valid"), (3, 2, "same"), (2, 1, "same")])
def test_reference_pooling_gradients(k, s, padding, rng):
    x = rng.permutation(30).reshape(2, 3, 5) * 0.1  # no ties
    y, argmax = ref.max_pool1d_forward(x, k, s, padding)
    P = projection(y.shape, 2)
    numeric = numerical_gradient(lambda: float(np.sum(P * ref.max_pool1d_forward(x, k, s, padding)[0])), x)
    assert relative_difference(ref.max_pool1d_backward(P, argmax, x.shape), numeric) < GRADCHECK_THRESHOLD
    P = projection((2, 3), 3)
    numeric = numerical_gradient(lambda: float(np.sum(P * ref.global_avg_pool1d_forward(x))), x)
    assert relative_difference(ref.global_avg_pool1d_backward(P, x.shape), numeric) < GRADCHECK_THRESHOLD
    P = projection(ref.avg_pool1d_forward(x, k, s, padding).shape, 4)
    numeric = numerical_gradient(lambda: float(np.sum(P * ref.avg_pool1d_forward(x, k, s, padding))), x)
    assert relative_difference(ref.avg_pool1d_backward(P, x.shape, k, s, padding), numeric) < GRADCHECK_THRESHOLD


def test_reference_average_pooling_hand_values():
    # "same" with pool 2 on 3 steps pads one cell on the right, not counted: [2, 5].
    np.testing.assert_array_equal(ref.avg_pool1d_forward(np.array([[[1.0, 3.0, 5.0]]]), 2, padding="same")[0, 0],
                                  [2.0, 5.0])


# ---------------------------------------------------------------- layers


@pytest.mark.parametrize(
    "layer, input_shape, expected",
    [
        (lambda: L.Conv1D(4, 3), (2, 9), (4, 7)),
        (lambda: L.Conv1D(4, 3, padding="same"), (2, 9), (4, 9)),
        (lambda: L.Conv1D(4, 4, strides=2, padding="same"), (2, 9), (4, 5)),
        (lambda: L.Conv1D(4, 3, padding="causal", dilation_rate=2), (2, 9), (4, 9)),
        (lambda: L.Conv1D(4, 3, strides=2, dilation_rate=2), (2, 9), (4, 3)),
        (lambda: L.Conv1D(4, (3,), groups=2), (2, 9), (4, 7)),
        (lambda: L.MaxPooling1D(), (3, 9), (3, 4)),
        (lambda: L.MaxPool1D(2, padding="same"), (3, 9), (3, 5)),
        (lambda: L.MaxPool1D(3, strides=1), (3, 9), (3, 7)),
        (lambda: L.AveragePooling1D(), (3, 9), (3, 4)),
        (lambda: L.AvgPool1D(2, padding="same"), (3, 9), (3, 5)),
        (lambda: L.AvgPool1D(3, strides=1), (3, 9), (3, 7)),
        (lambda: L.GlobalAveragePooling1D(), (3, 9), (3,)),
        (lambda: L.GlobalAvgPool1D(), (1, 1), (1,)),
        (lambda: L.GlobalMaxPooling1D(), (3, 9), (3,)),
        (lambda: L.GlobalMaxPool1D(), (1, 1), (1,)),
        (lambda: L.UpSampling2D(), (3, 4, 5), (3, 8, 10)),
        (lambda: L.UpSampling2D((3, 1), interpolation="bilinear"), (3, 4, 5), (3, 12, 5)),
    ],
)
def test_output_shapes_follow_keras_rules(layer, input_shape, expected):
    m = built([layer()], input_shape)
    assert m.output_shape == (None, *expected)
    x = np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32)
    assert m.predict(x).shape == (2, *expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, s, padding, d, groups", CONV1D_GRID)
def test_conv1d_layer_matches_reference(k, s, padding, d, groups, dtype):
    rng = np.random.default_rng(1)
    m = built([L.Conv1D(6, k, strides=s, padding=padding, dilation_rate=d, groups=groups)], (4, 9), dtype)
    W, b = m.get_weights()
    assert W.shape == (6, 4 // groups, k) and b.shape == (6,)  # PyTorch's Conv1d weight
    b = rng.standard_normal(6).astype(dtype)
    m.set_weights([W, b])
    x = rng.standard_normal((3, 4, 9)).astype(dtype)
    want = ref.conv1d_forward(x.astype(np.float64), W.astype(np.float64), b.astype(np.float64),
                              s, padding, d, groups)
    assert_close(m.predict(x), want, op="conv2d_forward", what="conv1d layer")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k, s, padding", [(2, None, "valid"), (3, 2, "same"), (2, 1, "same"),
                                           (3, None, "same"), (4, 3, "valid")])
def test_pooling_layers_match_reference(k, s, padding, dtype):
    x = np.random.default_rng(2).standard_normal((2, 3, 10)).astype(dtype)
    m = built([L.MaxPooling1D(k, strides=s, padding=padding)], (3, 10), dtype)
    assert_close(m.predict(x), ref.max_pool1d_forward(x.astype(np.float64), k, s, padding)[0],
                 op="max_pool2d_forward", what="max_pool1d layer")
    m = built([L.GlobalAveragePooling1D()], (3, 10), dtype)
    assert_close(m.predict(x), ref.global_avg_pool1d_forward(x.astype(np.float64)),
                 op="global_avg_pool2d_forward", what="global_avg_pool1d layer")
    m = built([L.AveragePooling1D(k, strides=s, padding=padding)], (3, 10), dtype)
    assert_close(m.predict(x), ref.avg_pool1d_forward(x.astype(np.float64), k, s, padding),
                 op="avg_pool2d_forward", what="avg_pool1d layer")
    # Its gradient: the model's vjp against the reference backward.
    dy = np.random.default_rng(5).standard_normal(m.predict(x).shape).astype(dtype)
    _, pullback = m.vjp(x)
    assert_close(pullback(dy), ref.avg_pool1d_backward(dy.astype(np.float64), x.shape, k, s, padding),
                 op="avg_pool2d_backward", what="avg_pool1d layer gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_max_pooling_1d_matches_reference_and_torch(dtype):
    import torch
    rng = np.random.default_rng(6)
    x = rng.permutation(60).reshape(2, 3, 10).astype(dtype) * 0.1  # no ties
    m = built([L.GlobalMaxPooling1D()], (3, 10), dtype)
    want, argmax = ref.global_max_pool1d_forward(x.astype(np.float64))
    assert_close(m.predict(x), want, op="max_pool2d_forward", what="global_max_pool1d layer")
    np.testing.assert_array_equal(m.predict(x), torch.amax(torch.from_numpy(x), dim=2).numpy())
    dy = rng.standard_normal((2, 3)).astype(dtype)
    _, pullback = m.vjp(x)
    assert_close(pullback(dy), ref.global_max_pool1d_backward(dy.astype(np.float64), argmax, x.shape),
                 op="max_pool2d_backward", what="global_max_pool1d layer gradient")


def test_reference_global_max_pooling_gradient(rng):
    x = rng.permutation(30).reshape(2, 3, 5) * 0.1
    y, argmax = ref.global_max_pool1d_forward(x)
    P = projection(y.shape, 5)
    numeric = numerical_gradient(lambda: float(np.sum(P * ref.global_max_pool1d_forward(x)[0])), x)
    assert relative_difference(ref.global_max_pool1d_backward(P, argmax, x.shape), numeric) < GRADCHECK_THRESHOLD


def test_global_max_pooling_1d_needs_sequences():
    with pytest.raises(ValueError, match="global_max_pool1d.*expects sequences \\(channels, steps\\) per example"):
        built([L.GlobalMaxPooling1D()], (3, 4, 5))


def test_average_pooling_1d_bad_arguments_name_the_layer():
    with pytest.raises(TypeError, match="AveragePooling1D: padding must be 'valid' or 'same', got 3"):
        L.AveragePooling1D(2, padding=3)
    with pytest.raises(ValueError, match="AveragePooling1D: .*pool_size"):
        L.AveragePooling1D(0)
    with pytest.raises(ValueError, match="AveragePooling1D.*padding"):
        L.AveragePooling1D(2, padding="causal")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size, mode", [(2, "nearest"), ((3, 2), "bilinear"), ((1, 3), "bilinear")])
def test_upsampling_layer_matches_reference(size, mode, dtype):
    x = np.random.default_rng(3).standard_normal((2, 3, 4, 5)).astype(dtype)
    m = built([L.UpSampling2D(size, interpolation=mode)], (3, 4, 5), dtype)
    assert m.get_weights() == [] and m.count_params() == 0
    assert_close(m.predict(x), ref_up.upsample2d_forward(x.astype(np.float64), size, mode),
                 op="upsample2d_forward", what="up_sampling2d layer")


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_through_the_1d_layers_matches_reference(dtype):
    """The engine's loss gradients of Conv1D → Conv1D → MaxPooling1D →
    GlobalAveragePooling1D under mse equal the reference chain's: every layer's
    input gradient (and both kernels' and biases') is on the path."""
    rng = np.random.default_rng(4)
    cn.seed(4)
    m = cn.Sequential([L.Input((2, 11)),
                       L.Conv1D(4, 3, padding="causal", dilation_rate=2),
                       L.Conv1D(6, 2, strides=2, padding="same", groups=2),
                       L.MaxPool1D(2, padding="same"),
                       L.GlobalAvgPool1D()], dtype=dtype)
    m.compile(cn.optimizers.SGD(0.1), "mse")
    m.set_weights([w + 0.1 * rng.standard_normal(w.shape).astype(dtype) for w in m.get_weights()])
    x = rng.standard_normal((3, 2, 11)).astype(dtype)
    t = rng.standard_normal((3, 6)).astype(dtype)
    loss, flat = m._engine.loss_and_gradients([x], [t])

    W1, b1, W2, b2 = (w.astype(np.float64) for w in m.get_weights())
    x64 = x.astype(np.float64)
    y1 = ref.conv1d_forward(x64, W1, b1, 1, "causal", 2)
    y2 = ref.conv1d_forward(y1, W2, b2, 2, "same", 1, 2)
    y3, argmax = ref.max_pool1d_forward(y2, 2, None, "same")
    y4 = ref.global_avg_pool1d_forward(y3)
    want_loss = np.mean((y4 - t) ** 2)
    dy3 = ref.global_avg_pool1d_backward(2 * (y4 - t) / y4.size, y3.shape)
    dy2 = ref.max_pool1d_backward(dy3, argmax, y2.shape)
    dy1, dW2, db2 = ref.conv1d_backward(dy2, y1, W2, 2, "same", 1, 2)
    _, dW1, db1 = ref.conv1d_backward(dy1, x64, W1, 1, "causal", 2)
    assert_close(np.float64(loss), want_loss, dtype=dtype, what="loss")
    assert_close(flat, np.concatenate([g.ravel() for g in (dW1, db1, dW2, db2)]),
                 op="conv2d_backward", what="parameter gradients")


def _gradient_checked(layers, input_shape, seed):
    rng = np.random.default_rng(seed)
    cn.seed(seed)
    m = cn.Sequential([L.Input(input_shape), *layers], dtype="float64")
    m.compile(cn.optimizers.SGD(0.01), "softmax_cross_entropy")
    X = rng.standard_normal((3, *input_shape))
    return cn.gradient_check(m, X, rng.integers(0, 3, 3))


def test_gradient_check_of_a_model_with_the_1d_layers():
    layers = [L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="tanh"),
              L.MaxPooling1D(2, padding="same"),
              L.Conv1D(4, 2, strides=2, padding="same", groups=2, activation="tanh",
                       kernel_regularizer=cn.regularizers.L2(0.01)),
              L.Conv1D(4, 1),
              L.GlobalAveragePooling1D(), L.Dense(3)]
    assert _gradient_checked(layers, (3, 10), 5) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_gradient_check_of_a_model_with_upsampling(mode):
    layers = [L.Conv2D(3, 3, padding="same", activation="tanh"),
              L.UpSampling2D(2, interpolation=mode),
              L.Conv2D(2, 3, strides=2, activation="tanh"),
              L.UpSampling2D((1, 2), interpolation=mode),
              L.Flatten(), L.Dense(3)]
    assert _gradient_checked(layers, (2, 4, 5), 6) < GRADCHECK_THRESHOLD


def test_count_params_multiply_adds_and_summary():
    m = built([L.Conv1D(8, 3, padding="same"), L.MaxPool1D(2), L.Conv1D(6, 2, groups=2, use_bias=False),
               L.GlobalAvgPool1D()], (4, 10))
    # Conv1D: filters·(C/groups)·K + filters; applied at every output step.
    assert [m._engine.count_layer_params(i) for i in range(4)] == [8 * 4 * 3 + 8, 0, 6 * 4 * 2, 0]
    assert m.multiply_adds() == 8 * 4 * 3 * 10 + 6 * 4 * 2 * 4
    lines = []
    m.summary(print_fn=lines.append)
    text = lines[0]
    assert "(Conv1D)" in text and "(None, 8, 10)" in text and "(MaxPooling1D)" in text
    assert "(GlobalAveragePooling1D)" in text and "(None, 6)" in text
    m = built([L.UpSampling2D(2, interpolation="bilinear")], (3, 4, 4))
    assert m.count_params() == 0 and m.multiply_adds() == 0


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("layer, input_shape, match", [
    (lambda: L.Conv1D(2, 3), (1, 8, 8),
     r"layer 'c' \(conv1d\): expects sequences \(channels, steps\) per example, got \(1, 8, 8\)"),
    (lambda: L.MaxPool1D(2), (8,), r"layer 'c' \(max_pool1d\): expects sequences"),
    (lambda: L.GlobalAvgPool1D(), (2, 3, 4), r"layer 'c' \(global_avg_pool1d\): expects sequences"),
    (lambda: L.UpSampling2D(), (3, 8), r"layer 'c' \(up_sampling2d\): expects images"),
    (lambda: L.Conv1D(2, 9), (3, 5), r"layer 'c' \(conv1d\).*kernel .* larger than the padded input"),
    (lambda: L.Conv1D(3, 3, groups=2), (4, 8), r"layer 'c' \(conv1d\).*groups=2 must divide out_channels=3"),
    (lambda: L.MaxPool1D(6), (3, 5), r"layer 'c' \(max_pool1d\).*larger than the padded input"),
])
def test_wrong_inputs_are_reported_at_build_naming_the_layer(layer, input_shape, match):
    lay = layer()
    lay.name = "c"
    m = cn.Sequential([L.Input(input_shape), lay])
    with pytest.raises(ValueError, match=match):
        m.build()


@pytest.mark.parametrize("call, exc, match", [
    (lambda: L.Conv1D(0, 3), ValueError, r"Conv1D: filters must be >= 1, got 0"),
    (lambda: L.Conv1D(2, 0), ValueError, r"Conv1D: kernel_size must be >= 1, got 0"),
    (lambda: L.Conv1D(2, (3, 3)), TypeError, r"Conv1D: kernel_size must be an int"),
    (lambda: L.Conv1D(2, 3, strides=0), ValueError, r"Conv1D: strides must be >= 1, got 0"),
    (lambda: L.Conv1D(2, 3, dilation_rate=0), ValueError, r"Conv1D: dilation_rate must be >= 1, got 0"),
    (lambda: L.Conv1D(2, 3, padding="full"), ValueError,
     r"Conv1D: padding must be one of 'valid', 'same', 'causal', got 'full'"),
    (lambda: L.Conv1D(2, 3, padding=1), TypeError, r"Conv1D: padding must be one of"),
    (lambda: L.MaxPooling1D(0), ValueError, r"MaxPooling1D: pool_size must be >= 1, got 0"),
    (lambda: L.MaxPooling1D(2, padding="causal"), ValueError,
     r"MaxPooling1D: padding must be one of 'valid', 'same', got 'causal'"),
    (lambda: L.MaxPooling1D(2, padding=1), TypeError, r"MaxPooling1D: padding must be 'valid' or 'same'"),
    (lambda: L.UpSampling2D(0), ValueError, r"UpSampling2D: size must be >= 1, got 0"),
    (lambda: L.UpSampling2D((2, 2, 2)), TypeError, r"UpSampling2D: size must be an int or a \(height, width\) pair"),
    (lambda: L.UpSampling2D(interpolation="bicubic"), ValueError,
     r"UpSampling2D: interpolation must be one of 'nearest', 'bilinear', got 'bicubic'"),
])
def test_bad_hyper_parameters(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("spec, input_shape, match", [
    ({"kind": "conv1d", "filters": 2, "kernel_size": [3], "padding": "full"}, [2, 8],
     r"layer 'c' \(conv1d\): padding must be 'valid', 'same' or 'causal', got 'full'"),
    ({"kind": "conv1d", "filters": 2, "kernel_size": [3, 3]}, [2, 8],
     r"layer 'c' \(conv1d\): kernel_size must be one length, got \(3, 3\)"),
    ({"kind": "max_pool1d", "kernel_size": [2], "padding": "causal"}, [2, 8],
     r"layer 'c' \(max_pool1d\): padding must be 'valid', 'same', got 'causal'"),
    ({"kind": "up_sampling2d", "size": [0, 2]}, [1, 4, 4],
     r"layer 'c' \(up_sampling2d\): size must be at least 1, got 0"),
    ({"kind": "up_sampling2d", "interpolation": "area"}, [1, 4, 4],
     r"layer 'c' \(up_sampling2d\): interpolation must be 'nearest' or 'bilinear', got 'area'"),
])
def test_the_engine_validates_specs_itself(spec, input_shape, match):
    """What a C++ program or a damaged file may hand the engine directly."""
    engine = cn._core.Engine("float32")
    with pytest.raises(ValueError, match=match):
        engine.add({**spec, "name": "c"})
        engine.build(input_shape)


# ---------------------------------------------------------------- worked examples


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    return digits, train_test_split(np.arange(len(digits.target)), test_size=0.25, random_state=0,
                                    stratify=digits.target)


def test_conv1d_classifier_on_digits_read_as_sequences():
    """Each 8×8 digit read as a sequence of 8 steps (the columns) with 8
    channels (the rows): two Conv1D → MaxPooling1D stages, GlobalAveragePooling1D,
    Dense. Held-out accuracy ≥ 0.9 in about a second of CPU (measured 0.94)."""
    digits, (train, test) = _digits()
    X = (digits.images / 16.0).astype(np.float32)  # (N, 8 rows = channels, 8 columns = steps)
    y = digits.target
    cn.seed(0)
    model = cn.Sequential([
        L.Input((8, 8)),
        L.Conv1D(16, 3, padding="same", activation="relu"), L.MaxPooling1D(2),
        L.Conv1D(32, 3, padding="same", activation="relu"),
        L.GlobalAveragePooling1D(), L.Dense(10),
    ])
    model.compile(cn.optimizers.Adam(1e-2), "softmax_cross_entropy", metrics=["accuracy"])
    model.fit(X[train], y[train], batch_size=32, epochs=8, verbose=0)
    assert model.evaluate(X[test], y[test])["accuracy"] >= 0.9


def test_upsampling_autoencoder_on_digits():
    """A tiny convolutional autoencoder: MaxPool2D halves the 8×8 digits,
    UpSampling2D (bilinear) brings them back, as a U-Net decoder does. Its
    held-out reconstruction error ends at half of predicting the mean image's
    or less (measured 0.33 of it)."""
    digits, (train, test) = _digits()
    X = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    cn.seed(0)
    model = cn.Sequential([
        L.Input((1, 8, 8)),
        L.Conv2D(8, 3, padding="same", activation="relu"), L.MaxPool2D(2),
        L.UpSampling2D(2, interpolation="bilinear"),
        L.Conv2D(8, 3, padding="same", activation="relu"), L.Conv2D(1, 3, padding="same"),
    ])
    model.compile(cn.optimizers.Adam(1e-2), "mse")
    model.fit(X[train], X[train], batch_size=32, epochs=5, verbose=0)
    baseline = float(np.mean((X[test] - X[train].mean(axis=0)) ** 2))
    assert model.evaluate(X[test], X[test])["loss"] < 0.5 * baseline
