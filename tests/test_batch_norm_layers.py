"""BatchNormalization in models: Keras's weights and defaults, parity with a NumPy
forward in training and inference, the moving averages after several steps,
whole-model gradient checks, frozen layers (inference mode, nothing moves),
errors, and a Conv→BN→ReLU network on scikit-learn's digits."""

import numpy as np
import pytest

import corenn as cn
from reference import conv as ref_conv
from reference import dense as ref_dense
from reference import batch_norm as ref
from tolerances import CLOSED_FORM, GRADCHECK_THRESHOLD, assert_close

L = cn.layers
O = cn.optimizers


def bn_model(input_shape, dtype="float32", **bn):
    """Input → BatchNormalization → Flatten → Dense(3): BN sees the raw input."""
    cn.seed(0)
    m = cn.Sequential([L.Input(input_shape), L.BatchNormalization(name="bn", **bn), L.Flatten(), L.Dense(3)],
                      dtype=dtype)
    m.compile(O.SGD(0.1), "softmax_cross_entropy")
    return m


def random_bn_weights(m, rng):
    """Random gamma and beta (those the layer has) and moving averages (variance > 0)."""
    layer = m.get_layer("bn")
    C = layer.get_weights()[-1].shape[0]
    new = [rng.uniform(0.5, 2.0, C)] if layer.scale else []
    new += [rng.standard_normal(C)] if layer.center else []
    new += [rng.standard_normal(C), rng.uniform(0.5, 2.0, C)]
    layer.set_weights([w.astype(m.dtype) for w in new])
    return layer.get_weights()


def batch(shape, n, seed, offset=1.0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, *shape)) * 2.0 + offset, rng.integers(0, 3, n)


# ------------------------------------------------------------------ weights and config


def test_weights_in_keras_order_with_keras_initial_values():
    m = bn_model((4, 3, 3))
    m.build()
    gamma, beta, mean, var = m.get_layer("bn").get_weights()
    for w in (gamma, beta, mean, var):
        assert w.shape == (4,) and w.dtype == np.float32
    np.testing.assert_array_equal(gamma, 1.0)
    np.testing.assert_array_equal(beta, 0.0)
    np.testing.assert_array_equal(mean, 0.0)
    np.testing.assert_array_equal(var, 1.0)
    # The moving averages are state, not parameters: the engine trains gamma and
    # beta; count_params counts all four as Keras does, two of them non-trainable.
    assert m._engine.count_layer_params(0) == 8
    assert m._engine.count_layer_state(0) == 8
    lines = []
    m.summary(print_fn=lines.append)
    row = next(line for line in lines[0].splitlines() if line.startswith("bn (BatchNormalization)"))
    assert " 16 " in row  # gamma, beta, moving mean and variance of 4 channels
    assert m.count_params() == sum(w.size for w in m.get_weights())
    assert f"Non-trainable params: {8}" in lines[0]


@pytest.mark.parametrize("center, scale", [(True, False), (False, True), (False, False)])
def test_center_and_scale_off_drop_their_weights(center, scale):
    m = cn.Sequential([L.Input((5,)), L.BatchNormalization(center=center, scale=scale, name="bn")])
    m.build()
    weights = random_bn_weights(m, np.random.default_rng(1))
    assert len(weights) == center + scale + 2
    assert m._engine.count_layer_params(0) == 5 * (center + scale)
    gamma = weights[0] if scale else None
    beta = weights[int(scale)] if center else None
    x, _ = batch((5,), 8, 1)
    expected = ref.batch_norm_forward(x.astype(np.float32), gamma, beta, *weights[-2:], False, eps=1e-3)[0]
    assert_close(m.predict(x), expected, op="batch_norm", what="predict")


def test_get_config_is_the_engine_spec():
    layer = L.BatchNormalization(momentum=0.9, epsilon=1e-4, center=False, name="bn")
    assert layer.get_config() == {"name": "bn", "trainable": True, "axis": 1, "momentum": 0.9,
                                  "epsilon": 1e-4, "center": False, "scale": True}
    assert L.BatchNormalization().get_config()["momentum"] == 0.99
    assert L.BatchNormalization().get_config()["epsilon"] == 1e-3


@pytest.mark.parametrize("call, exc, match", [
    (lambda: L.BatchNormalization(momentum=1.5), ValueError,
     r"BatchNormalization: momentum must be finite and in \[0.0, 1.0\], got 1.5"),
    (lambda: L.BatchNormalization(epsilon=0), ValueError,
     r"BatchNormalization: epsilon must be finite and in \(0.0, inf\), got 0.0"),
    (lambda: L.BatchNormalization(epsilon="small"), TypeError, r"BatchNormalization: epsilon must be a number"),
    (lambda: L.BatchNormalization(axis=1.0), TypeError, r"BatchNormalization: axis must be an int, got float"),
    (lambda: L.BatchNormalization(axis=0), ValueError,
     r"BatchNormalization: axis 0 is the batch axis; the channels are axis=1"),
])
def test_bad_hyper_parameters(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("axis, input_shape, match", [
    (-1, (3, 4, 4), r"layer 'bn' \(batch_norm\): axis must be 1 \(the channels: corenn is channels-first\), "
                    r"got -1 for inputs of shape \(3, 4, 4\)"),
    (2, (3, 4, 4), r"layer 'bn' \(batch_norm\): axis must be 1 .*got 2"),
    (2, (5,), r"layer 'bn' \(batch_norm\): axis must be 1 \(the channels: corenn is channels-first, or -1\), got 2"),
])
def test_unsupported_axis_is_reported_at_build_naming_the_layer(axis, input_shape, match):
    m = cn.Sequential([L.Input(input_shape), L.BatchNormalization(axis=axis, name="bn")])
    with pytest.raises(ValueError, match=match):
        m.build()


@pytest.mark.parametrize("axis, input_shape", [(1, (5,)), (-1, (5,)), (1, (3, 4, 4)), (-3, (3, 4, 4))])
def test_supported_axes(axis, input_shape):
    m = cn.Sequential([L.Input(input_shape), L.BatchNormalization(axis=axis)])
    m.build()
    assert m.output_shape == (None, *input_shape)
    assert m.get_weights()[0].shape == (input_shape[0],)


# ------------------------------------------------------------------ parity with NumPy


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_bn_relu_matches_numpy_in_training_and_inference(dtype):
    rng = np.random.default_rng(2)
    cn.seed(1)
    m = cn.Sequential([L.Input((6,)), L.Dense(5), L.BatchNormalization(name="bn", momentum=0.8),
                       L.Activation("relu"), L.Dense(3)], dtype=dtype)
    m.compile(O.SGD(0.0), "softmax_cross_entropy")
    m.build()
    gamma, beta, mean, var = random_bn_weights(m, rng)
    W1, b1, _, _, _, _, W2, b2 = m.get_weights()
    x, y = batch((6,), 10, 3)

    def numpy_forward(training):
        z = ref_dense.dense_forward(x.astype(dtype), W1, b1)
        h, _, _, new_mean, new_var = ref.batch_norm_forward(z, gamma, beta, mean, var, training, 0.2, 1e-3)
        return ref_dense.dense_forward(np.maximum(h, 0), W2, b2), new_mean, new_var

    assert_close(m.predict(x), numpy_forward(False)[0], op="batch_norm", what="predict")
    _, _, (out,) = m._engine.train_step([x.astype(dtype)], [y], None, True)  # lr 0: only the moving averages move
    expected, new_mean, new_var = numpy_forward(True)
    assert_close(out, expected, op="batch_norm", what="training forward")
    _, _, got_mean, got_var = m.get_layer("bn").get_weights()
    assert_close(got_mean, new_mean, op="batch_norm", what="moving_mean")
    assert_close(got_var, new_var, op="batch_norm", what="moving_variance")


def test_conv_bn_matches_the_ops_and_numpy():
    rng = np.random.default_rng(5)
    cn.seed(2)
    m = cn.Sequential([L.Input((2, 6, 5)), L.Conv2D(3, 3, padding="same", use_bias=False),
                       L.BatchNormalization(name="bn")])
    m.build()
    W = m.get_weights()[0].astype(np.float64)
    gamma, beta, mean, var = (w.astype(np.float64) for w in random_bn_weights(m, rng))
    x = rng.standard_normal((4, 2, 6, 5)).astype(np.float32)
    z = ref_conv.conv2d_forward_loops(x.astype(np.float64), W, None, 1, 1)
    expected = ref.batch_norm_forward(z, gamma, beta, mean, var, False, eps=1e-3)[0]
    assert_close(m.predict(x), expected, op="batch_norm", what="conv + bn predict")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("input_shape", [(70,), (3, 5, 4)], ids=["features", "images"])
def test_moving_averages_after_several_steps(input_shape, dtype):
    m = bn_model(input_shape, dtype, momentum=0.9)
    m.build()
    mean, var = (w.astype(np.float64) for w in m.get_layer("bn").get_weights()[2:])
    for step in range(4):
        x, y = batch(input_shape, 6 + step, 10 + step, offset=step)
        m.train_on_batch(x, y)
        # Keras's momentum 0.9 keeps 90%: PyTorch's momentum 0.1 on the new batch.
        _, _, _, mean, var = ref.batch_norm_forward(x.astype(dtype), None, None, mean, var, True, 0.1)
    got_mean, got_var = m.get_layer("bn").get_weights()[2:]
    assert_close(got_mean, mean, op="batch_norm", what="moving_mean")
    assert_close(got_var, var, op="batch_norm", what="moving_variance")


def test_one_step_by_hand_with_keras_default_momentum():
    m = bn_model((1,))
    x = np.array([[1.0], [3.0]])  # μ = 2, unbiased variance 2
    m.train_on_batch(x, np.array([0, 1]))
    _, _, mean, var = m.get_layer("bn").get_weights()
    np.testing.assert_allclose(mean, [0.01 * 2.0], **CLOSED_FORM[mean.dtype])                # 0.99·0 + 0.01·2
    np.testing.assert_allclose(var, [0.99 * 1.0 + 0.01 * 2.0], **CLOSED_FORM[var.dtype])    # 0.99·1 + 0.01·2


def test_a_single_example_keeps_the_moving_variance():
    m = bn_model((4,))
    m.train_on_batch(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([1]))
    _, _, mean, var = m.get_layer("bn").get_weights()
    np.testing.assert_allclose(mean, 0.01 * np.array([1.0, 2.0, 3.0, 4.0]), **CLOSED_FORM[mean.dtype])
    np.testing.assert_array_equal(var, 1.0)


def test_inference_and_evaluation_leave_the_moving_averages_alone():
    m = bn_model((3, 4, 4))
    x, y = batch((3, 4, 4), 8, 4)
    m.train_on_batch(x, y)
    state = m._engine.get_state()
    m.predict(x)
    m.evaluate(x, y)
    np.testing.assert_array_equal(m._engine.get_state(), state)


def test_failed_fit_restores_the_moving_averages():
    class Boom(cn.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise RuntimeError("boom")

    m = bn_model((3, 4, 4))
    m.build()
    before = m.get_weights()
    x, y = batch((3, 4, 4), 12, 6)
    with pytest.raises(RuntimeError, match="boom"):
        m.fit(x, y, batch_size=4, callbacks=[Boom()], verbose=0)
    for a, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ gradient checks


@pytest.mark.parametrize("name, layers, input_shape", [
    ("conv_bn_tanh", lambda: [L.Conv2D(3, 3, padding="same"), L.BatchNormalization(name="bn"),
                              L.Activation("tanh"), L.Flatten(), L.Dense(3)], (2, 4, 4)),
    ("dense_bn", lambda: [L.Dense(5), L.BatchNormalization(name="bn", center=False, momentum=0.5),
                          L.Activation("tanh"), L.Dense(3)], (4,)),
    ("frozen_bn", lambda: [L.Dense(5), L.BatchNormalization(name="bn", trainable=False),
                           L.Activation("tanh"), L.Dense(3)], (4,)),
])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_whole_model_gradient_check(name, layers, input_shape, dtype):
    rng = np.random.default_rng(7)
    cn.seed(3)
    m = cn.Sequential([L.Input(input_shape), *layers()], dtype=dtype)
    m.compile(O.SGD(0.01), "softmax_cross_entropy")
    m.build()
    random_bn_weights(m, rng)
    X, y = batch(input_shape, 5, 8)
    state = m._engine.get_state()
    assert cn.gradient_check(m, X, y) < GRADCHECK_THRESHOLD
    # The check's training-mode forwards moved the moving averages; it put them back.
    np.testing.assert_array_equal(m._engine.get_state(), state)


# ------------------------------------------------------------------ frozen layers (transfer learning)


@pytest.mark.parametrize("when", ["before_build", "after_build"])
def test_frozen_bn_keeps_everything_and_runs_in_inference_mode(when):
    rng = np.random.default_rng(9)
    cn.seed(4)
    bn = L.BatchNormalization(name="bn", trainable=when != "before_build")
    m = cn.Sequential([L.Input((3, 4, 4)), L.Conv2D(3, 3, padding="same"), bn, L.Activation("relu"),
                       L.Flatten(), L.Dense(3)])
    m.compile(O.Adam(0.01), "softmax_cross_entropy")
    m.build()
    random_bn_weights(m, rng)
    if when == "after_build":
        bn.trainable = False
    before = bn.get_weights()
    x, y = batch((3, 4, 4), 32, 11)
    m.fit(x, y, batch_size=8, epochs=2, verbose=0)
    for a, b in zip(bn.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    # Inference mode while training: the training forward (before its update) is predict's, bit for bit
    # (predict's layers as written: the fused plan folds the batch norm, which rounds differently).
    xb = x[:8].astype(np.float32)
    cn.set_fusion(False)
    try:
        expected = m.predict(xb)
    finally:
        cn.set_fusion(True)
    _, _, (out,) = m._engine.train_step([xb], [y[:8]], None, True)
    np.testing.assert_array_equal(out, expected)
    # Unfrozen, it trains and its moving averages move again.
    bn.trainable = True
    m.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert all(np.any(a != b) for a, b in zip(bn.get_weights(), before))


# ------------------------------------------------------------------ training


def test_conv_bn_relu_on_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0)[:, None].astype(np.float32)  # (n, 1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=0, stratify=digits.target)
    cn.seed(0)
    model = cn.Sequential([
        L.Input((1, 8, 8)),
        L.Conv2D(16, 3, padding="same", use_bias=False), L.BatchNormalization(), L.Activation("relu"),
        L.MaxPool2D(2), L.Flatten(), L.Dense(10),
    ])
    model.compile(O.Adam(5e-3), "softmax_cross_entropy", metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=32, epochs=8, verbose=0)
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.95
