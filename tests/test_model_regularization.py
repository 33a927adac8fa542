"""Regularisation and multi-task learning through the model, beyond
test_model_gradients.py (which covers Dense kernels with L1/L2/L1L2, dropout
between Dense layers and masked binary cross-entropy against the NumPy MLP):
kernel regularisers on every convolution kind (penalty in the loss in closed
form, gradient by finite differences), dropout between convolutions, weight
decay against the course's L2 update, and NaN-masked multi-task targets
against formulas written out here and in a real fit."""

import numpy as np
import pytest

import corenn as cn
from tolerances import CLOSED_FORM, GRADCHECK_THRESHOLD, tolerance

L = cn.layers
R = cn.regularizers
REGULARIZERS = {"L1": R.L1(0.03), "L2": R.L2(0.05), "L1L2": R.L1L2(l1=0.02, l2=0.04)}

CONV_KINDS = {
    "conv2d": lambda reg: L.Conv2D(3, 3, padding="same", activation="tanh", kernel_regularizer=reg),
    "depthwise": lambda reg: L.DepthwiseConv2D(3, depth_multiplier=2, activation="tanh", kernel_regularizer=reg),
    "separable": lambda reg: L.SeparableConv2D(3, 2, activation="tanh", kernel_regularizer=reg),
    "transpose": lambda reg: L.Conv2DTranspose(2, 3, strides=2, activation="tanh", kernel_regularizer=reg),
}


def penalty(weights, reg):
    """Keras semantics, per kernel: l1·Σ|W| + l2·ΣW²."""
    return sum(reg.l1 * np.abs(W).sum() + reg.l2 * (W ** 2).sum() for W in weights)


@pytest.mark.parametrize("reg", list(REGULARIZERS))
@pytest.mark.parametrize("kind", list(CONV_KINDS))
def test_conv_kernel_regularizers_in_loss_and_gradient(kind, reg):
    reg_obj = REGULARIZERS[reg]
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((3, 2, 5, 5)), np.array([0, 2, 1])

    def model(r):
        cn.seed(2)
        m = cn.Sequential([L.Input((2, 5, 5)), CONV_KINDS[kind](r), L.GlobalAvgPool2D(),
                           L.Dense(3, kernel_regularizer=r)], dtype="float64")
        m.compile("sgd", "softmax_cross_entropy")
        m.build()
        return m

    regularised, plain = model(reg_obj), model(None)
    plain.set_weights(regularised.get_weights())
    conv = regularised.layers[0].get_weights()
    kernels = conv[:-1]  # every kernel (SeparableConv2D: depthwise and pointwise), not the bias
    dense_kernel = regularised.layers[2].get_weights()[0]
    want = plain.evaluate(x, y)["loss"] + penalty(kernels, reg_obj) + penalty([dense_kernel], reg_obj)
    assert regularised.evaluate(x, y)["loss"] == pytest.approx(want, rel=1e-12)
    assert cn.gradient_check(regularised, x, y) < GRADCHECK_THRESHOLD
    # The gradient really carries the penalty: it differs from the plain model's
    # by l1·sign(W) + 2·l2·W on the kernels and by nothing on the biases.
    _, g_reg = regularised._engine.loss_and_gradients([x], [y])
    _, g_plain = plain._engine.loss_and_gradients([x], [y])
    extra = [reg_obj.l1 * np.sign(W) + 2 * reg_obj.l2 * W for W in kernels] + [np.zeros_like(conv[-1])] + \
            [reg_obj.l1 * np.sign(dense_kernel) + 2 * reg_obj.l2 * dense_kernel,
             np.zeros(3)]
    np.testing.assert_allclose(g_reg - g_plain, np.concatenate([e.ravel() for e in extra]), **tolerance(np.float64))


def test_dropout_between_convolutions_gradient_check():
    rng = np.random.default_rng(3)
    cn.seed(4)
    model = cn.Sequential([L.Input((2, 6, 6)), L.Conv2D(4, 3, padding="same", activation="tanh"), L.Dropout(0.3),
                           L.MaxPool2D(2), L.Conv2D(3, 2, activation="sigmoid"), L.Dropout(0.5), L.Flatten(),
                           L.Dense(3)], dtype="float64")
    model.compile("sgd", "softmax_cross_entropy")
    x, y = rng.standard_normal((4, 2, 6, 6)), np.array([0, 1, 2, 0])
    assert cn.gradient_check(model, x, y) < GRADCHECK_THRESHOLD
    train_loss, _ = model._engine.loss_and_gradients([x], [y])
    assert train_loss != pytest.approx(model.evaluate(x, y)["loss"], rel=1e-6)  # dropout was active


def test_sgd_weight_decay_is_the_courses_l2_update_on_kernels():
    """Plain SGD: weight_decay = λ/m gives W −= α(dW + (λ/m)·W), the course's L2
    update, exactly what the regulariser L2(l2 = λ/(2m)) gives the kernel. The
    two differ on the bias, which weight decay shrinks too."""
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 3, 8)
    lam_over_m = 0.2

    def model(optimizer, reg):
        cn.seed(6)
        m = cn.Sequential([L.Input((4,)), L.Dense(3, kernel_regularizer=reg, bias_initializer="ones")],
                          dtype="float64")
        m.compile(optimizer, "softmax_cross_entropy")
        m.build()
        return m

    decayed = model(cn.optimizers.SGD(0.1, weight_decay=lam_over_m), None)
    l2 = model(cn.optimizers.SGD(0.1), R.L2(lam_over_m / 2))
    W0, b0 = decayed.get_weights()
    _, grad = decayed._engine.loss_and_gradients([x], [y])
    dW, db = grad[:12].reshape(3, 4), grad[12:]
    decayed.train_on_batch(x, y)
    l2.train_on_batch(x, y)
    W1, b1 = decayed.get_weights()
    STEP = CLOSED_FORM[np.dtype(np.float64)]  # one SGD step by hand
    np.testing.assert_allclose(W1, W0 - 0.1 * (dW + lam_over_m * W0), **STEP)
    np.testing.assert_allclose(b1, b0 - 0.1 * (db + lam_over_m * b0), **STEP)
    np.testing.assert_allclose(l2.get_weights()[0], W1, **STEP)
    np.testing.assert_allclose(l2.get_weights()[1], b0 - 0.1 * db, **STEP)


# ------------------------------------------------------------- multi-task
def logistic_model(n_in, n_tasks, dtype="float64", lr=0.5):
    cn.seed(7)
    m = cn.Sequential([L.Input((n_in,)), L.Dense(n_tasks)], dtype=dtype)
    m.compile(cn.optimizers.SGD(lr), "binary_cross_entropy", metrics=["binary_accuracy"])
    m.build()
    return m


def test_multitask_loss_and_gradient_leave_missing_labels_out():
    """The course's multi-task cost with '?' labels: J = (1/m) Σ_i Σ_{j: y_ij known}
    L(ŷ_ij, y_ij). For one Dense layer (a logistic regression per task),
    dZ = (σ(Z) − Y)/m on known entries and 0 on missing ones, dW = dZᵀX, db = Σ dZ."""
    rng = np.random.default_rng(8)
    m, n_in, tasks = 10, 5, 4
    X = rng.standard_normal((m, n_in))
    Y = (rng.random((m, tasks)) < 0.5).astype(np.float64)
    missing = rng.random((m, tasks)) < 0.3
    missing[:, 3] = True  # one task never labelled
    Y[missing] = np.nan
    model = logistic_model(n_in, tasks)
    W, b = model.get_weights()
    Z = X @ W.T + b
    known = ~missing
    per_entry = np.logaddexp(0.0, Z) - Z * np.where(known, Y, 0.0)  # −y log σ(z) − (1 − y) log(1 − σ(z))
    want_loss = per_entry[known].sum() / m
    dZ = np.where(known, 1 / (1 + np.exp(-Z)) - np.where(known, Y, 0.0), 0.0) / m
    loss, grad = model._engine.loss_and_gradients([X], [Y])
    assert loss == pytest.approx(want_loss, rel=1e-13)
    np.testing.assert_allclose(grad, np.concatenate([(dZ.T @ X).ravel(), dZ.sum(0)]), **tolerance(np.float64))
    assert model.evaluate(X, Y)["loss"] == pytest.approx(want_loss, rel=1e-13)
    assert cn.gradient_check(model, X, Y) < GRADCHECK_THRESHOLD


def test_fit_with_missing_labels_learns_the_known_tasks_only():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((400, 6))
    truth = rng.standard_normal((3, 6))
    Y = (X @ truth.T > 0).astype(np.float64)
    Y[rng.random((400, 3)) < 0.4] = np.nan  # 40% of labels missing
    Y[:, 2] = np.nan  # task 2: no labels at all
    model = logistic_model(6, 3, dtype="float32", lr=0.5)
    W0, b0 = model.get_weights()
    hist = model.fit(X, Y, epochs=15, batch_size=32, verbose=0)
    W1, b1 = model.get_weights()
    assert np.all(np.isfinite(hist.history["loss"]))
    assert hist.history["loss"][-1] < 0.5 * hist.history["loss"][0]
    # The unlabelled task receives no gradient: plain SGD leaves its weights bit-identical.
    np.testing.assert_array_equal(W1[2], W0[2])
    assert b1[2] == b0[2]
    # binary_accuracy counts known labels only; the known tasks are learned.
    z = model.predict(X)
    known = ~np.isnan(Y)
    assert hist.history["binary_accuracy"][-1] > 0.9
    assert model.evaluate(X, Y)["binary_accuracy"] == pytest.approx(
        np.mean((z[known] > 0) == (Y[known] > 0.5)))
