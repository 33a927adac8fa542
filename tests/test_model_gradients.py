"""Whole-model gradient checks (course 2, week 1): backpropagation through every
layer kind, loss and regulariser against two-sided finite differences, plus
negative controls showing that a wrong gradient would be caught."""

import numpy as np
import pytest

import corenn as cn
from gradcheck import engine_finite_differences, relative_difference
from model_numpy import NumpyMLP
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, MODEL_F64

L = cn.layers
DTYPES = ["float64", "float32"]


def data(shape, n=6, seed=0):
    return np.random.default_rng(seed).standard_normal((n, *shape))


def checked(model, x, y):
    """gradient_check, plus: it must leave the model's weights as they were."""
    before = [w.copy() for w in model.get_weights()]
    diff = cn.gradient_check(model, x, y)
    for w, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(w, b)
    return diff


def away_from_kinks(model, x, kinks=("relu", "leaky_relu"), margin=1e-4):
    """The relu family is not differentiable at 0: a finite difference straddling
    the kink is not a test of backprop. Check, with the NumPy oracle, that no
    pre-activation of a relu layer lies within margin of it."""
    acts = [l.activation for l in model.layers]
    net = NumpyMLP(model.get_weights(), acts, "mse")
    _, cache = net.forward(x)
    for kind, (_, z, _) in zip(acts, cache):
        if kind in kinks:
            assert np.min(np.abs(z)) > margin, f"{kind} pre-activation too close to 0"


def every_activation_mlp(dtype):
    return cn.Sequential([L.Input((4,)),
                          L.Dense(5, activation="sigmoid"),
                          L.Dense(5, activation="tanh"),
                          L.Dense(5, activation="relu"),
                          L.Dense(5, activation="leaky_relu", alpha=0.1),
                          L.Dense(3, activation="linear")], dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_deep_mlp_every_activation(dtype):
    cn.seed(10)
    model = every_activation_mlp(dtype)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = data((4,)), np.array([0, 1, 2, 0, 1, 2])
    away_from_kinks(model, x)
    assert checked(model, x, y) < GRADCHECK_THRESHOLD


def test_engine_gradients_match_numpy_oracle():
    """The engine's analytic gradient equals the NumPy reference MLP's, array by array."""
    cn.seed(11)
    model = every_activation_mlp("float64")
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    model.build()
    x, y = data((4,)), np.array([0, 1, 2, 0, 1, 2])
    loss, flat = model._engine.loss_and_gradients([x], [y])
    net = NumpyMLP(model.get_weights(), [l.activation for l in model.layers],
                   "softmax_cross_entropy", alpha=0.1)  # the leaky_relu layer's slope
    want_loss, want = net.loss_and_gradients(x, y)
    assert loss == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(flat, np.concatenate([g.ravel() for g in want]), **MODEL_F64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_layers_with_softmax_mid_network(dtype):
    cn.seed(12)
    model = cn.Sequential([L.Input((4,)), L.Dense(6), L.Activation("tanh"), L.Dense(5),
                           L.Activation("softmax"), L.Dense(4), L.Activation("sigmoid"),
                           L.Dense(3), L.Activation("leaky_relu", alpha=0.2), L.Dense(3),
                           L.Activation("relu"), L.Activation("linear"), L.Dense(2)], dtype=dtype)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = data((4,), seed=1), np.array([0, 1, 1, 0, 1, 0])
    assert checked(model, x, y) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_masks_held_fixed(dtype):
    cn.seed(13)
    model = cn.Sequential([L.Input((5,)), L.Dense(8, activation="tanh"), L.Dropout(0.4),
                           L.Dense(6, activation="sigmoid"), L.Dropout(0.25), L.Dense(3)],
                          dtype=dtype)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = data((5,), n=8, seed=2), np.array([0, 1, 2, 0, 1, 2, 0, 1])
    assert checked(model, x, y) < GRADCHECK_THRESHOLD
    # Dropout is really active in the checked pass: the training-mode loss
    # differs from the inference-mode loss.
    m64 = model if model.dtype == np.float64 else model._clone("float64")
    train_loss, _ = m64._engine.loss_and_gradients([x], [y])
    assert train_loss != pytest.approx(m64.evaluate(x, y)["loss"], rel=1e-6)


@pytest.mark.parametrize("reg", [cn.regularizers.L1(0.05), cn.regularizers.L2(0.1),
                                 cn.regularizers.L1L2(l1=0.03, l2=0.07)],
                         ids=["L1", "L2", "L1L2"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_regularizers(reg, dtype):
    cn.seed(14)
    model = cn.Sequential([L.Input((4,)), L.Dense(5, activation="tanh", kernel_regularizer=reg),
                           L.Dense(3, kernel_regularizer=reg)], dtype=dtype)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = data((4,), seed=3), np.array([2, 1, 0, 0, 1, 2])
    assert checked(model, x, y) < GRADCHECK_THRESHOLD
    # The penalty is really in the loss: Keras semantics l1·Σ|W| + l2·ΣW² per kernel.
    m64 = model if model.dtype == np.float64 else model._clone("float64")
    plain = cn.Sequential([L.Input((4,)), L.Dense(5, activation="tanh"), L.Dense(3)],
                          dtype="float64")
    plain.compile(optimizer="sgd", loss="softmax_cross_entropy")
    plain.set_weights(m64.get_weights())
    W1, _, W2, _ = m64.get_weights()
    penalty = sum(reg.l1 * np.abs(W).sum() + reg.l2 * (W ** 2).sum() for W in (W1, W2))
    assert m64.evaluate(x, y)["loss"] == pytest.approx(plain.evaluate(x, y)["loss"] + penalty,
                                                      rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_cross_entropy_with_missing_targets(dtype):
    cn.seed(15)
    model = cn.Sequential([L.Input((4,)), L.Dense(5, activation="tanh"), L.Dense(3)], dtype=dtype)
    model.compile(optimizer="sgd", loss="binary_cross_entropy")
    x = data((4,), seed=4)
    y = (np.random.default_rng(5).random((6, 3)) > 0.5).astype(np.float64)
    y[0, 1] = y[3, 0] = y[3, 2] = y[5, 1] = np.nan
    assert checked(model, x, y) < GRADCHECK_THRESHOLD
    # Missing labels contribute nothing: the loss equals the masked NumPy reference.
    m64 = model if model.dtype == np.float64 else model._clone("float64")
    net = NumpyMLP(m64.get_weights(), ["tanh", "linear"], "binary_cross_entropy")
    want, grads = net.loss_and_gradients(x, y)
    loss, flat = m64._engine.loss_and_gradients([x], [y])
    assert np.isfinite(loss) and loss == pytest.approx(want, rel=1e-12)
    np.testing.assert_allclose(flat, np.concatenate([g.ravel() for g in grads]), **MODEL_F64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mse(dtype):
    cn.seed(16)
    model = cn.Sequential([L.Input((3,)), L.Dense(6, activation="sigmoid"), L.Dense(2)],
                          dtype=dtype)
    model.compile(optimizer="sgd", loss="mse")
    x, y = data((3,), seed=6), data((2,), seed=7)
    assert checked(model, x, y) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_and_flatten(dtype):
    cn.seed(17)
    model = cn.Sequential([L.Input((2, 3)), L.Flatten(), L.Dense(6, activation="tanh"),
                           L.Reshape((3, 2)), L.Activation("softmax"), L.Reshape((-1,)),
                           L.Dense(6), L.Reshape((2, 3))], dtype=dtype)
    assert model.output_shape == (None, 2, 3)
    model.compile(optimizer="sgd", loss="mse")
    x, y = data((2, 3), seed=8), data((2, 3), seed=9)
    assert checked(model, x, y) < GRADCHECK_THRESHOLD


# ------------------------------------------------------------ negative controls


@pytest.fixture
def small_model():
    cn.seed(18)
    model = cn.Sequential([L.Input((4,)), L.Dense(5, activation="tanh"), L.Dense(3)],
                          dtype="float64")
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    model.build()
    return model, data((4,), seed=10), np.array([0, 1, 2, 2, 1, 0])


def test_negative_control_corrupted_gradients_are_caught(small_model):
    model, x, y = small_model
    _, analytic = model._engine.loss_and_gradients([x], [y])
    numeric = engine_finite_differences(model._engine, x, y, True)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD  # the honest one
    # A wrong sign on the whole gradient: relative difference 1.
    assert relative_difference(-analytic, numeric) > 0.99
    # A wrong sign on one layer's bias gradient only (the last 3 entries).
    flipped = analytic.copy()
    flipped[-3:] *= -1
    assert relative_difference(flipped, numeric) > 1e-3
    # A factor-of-2 slip in one layer (e.g. a forgotten 1/m or a doubled sum).
    doubled = analytic.copy()
    doubled[:20] *= 2  # the first kernel (5, 4)
    assert relative_difference(doubled, numeric) > 1e-3
    # A single entry wrong.
    nudged = analytic.copy()
    nudged[7] += 0.1 * np.abs(analytic).max()
    assert relative_difference(nudged, numeric) > 1e-3


class _WrongSignEngine:
    """Wraps a real engine; returns the NEGATED gradient (the loss is untouched),
    i.e. what a backward pass with a sign error would produce."""

    def __init__(self, engine):
        self._engine = engine

    def loss_and_gradients(self, xs, ys, sample_weight=None):
        loss, grads = self._engine.loss_and_gradients(xs, ys, sample_weight)
        return loss, -grads

    def __getattr__(self, name):
        return getattr(self._engine, name)


def test_negative_control_gradient_check_flags_wrong_sign(small_model):
    model, x, y = small_model
    assert cn.gradient_check(model, x, y) < GRADCHECK_THRESHOLD
    model._engine = _WrongSignEngine(model._engine)
    assert cn.gradient_check(model, x, y) > 0.99
