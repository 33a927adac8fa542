"""Whole-model training on real (bundled, local) data sets: the model learns,
the History and evaluate() report what Keras reports, and batched inference
equals one-shot inference."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.model_selection import train_test_split

import corenn as cn
from tolerances import assert_close

L = cn.layers


def standardise(x_train, x_test):
    """Scale with the TRAINING statistics only (no peeking at the test set)."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std[std == 0] = 1.0
    return (x_train - mean) / std, (x_test - mean) / std


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer()
    x_tr, x_te, y_tr, y_te = train_test_split(data.data, data.target, test_size=0.25,
                                              random_state=1, stratify=data.target)
    x_tr, x_te = standardise(x_tr, x_te)
    return x_tr, x_te, y_tr.astype(np.float64), y_te.astype(np.float64)


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x_tr, x_te, y_tr, y_te = train_test_split(data.data / 16.0, data.target, test_size=0.25,
                                              random_state=0, stratify=data.target)
    return x_tr, x_te, y_tr, y_te


def logistic_regression(dtype="float32"):
    model = cn.Sequential([L.Input((30,)), L.Dense(1)], dtype=dtype)
    model.compile(optimizer=cn.optimizers.SGD(0.1), loss="binary_cross_entropy",
                  metrics=["accuracy"])
    return model


def binary_test_accuracy(model, x, y):
    return float(np.mean((model.predict(x)[:, 0] > 0) == (y > 0.5)))


def test_logistic_regression_breast_cancer(cancer):
    x_tr, x_te, y_tr, y_te = cancer
    cn.seed(0)
    model = logistic_regression()
    before = model.evaluate(x_te, y_te)["loss"]
    hist = model.fit(x_tr, y_tr, batch_size=32, epochs=100, verbose=0)
    assert len(hist.history["loss"]) == 100
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert model.evaluate(x_te, y_te)["loss"] < before
    acc = binary_test_accuracy(model, x_te, y_te)
    assert acc >= 0.95, acc
    # evaluate's accuracy metric agrees with the accuracy computed by hand.
    assert model.evaluate(x_te, y_te)["accuracy"] == pytest.approx(acc)


def test_logistic_regression_float64(cancer):
    x_tr, x_te, y_tr, y_te = cancer
    cn.seed(1)
    model = logistic_regression("float64")
    model.fit(x_tr, y_tr, batch_size=32, epochs=100, verbose=0)
    out = model.predict(x_te)
    assert out.dtype == np.float64 and out.shape == (len(x_te), 1)
    assert binary_test_accuracy(model, x_te, y_te) >= 0.95


def mlp_digits(dtype="float32"):
    model = cn.Sequential([L.Input((64,)), L.Dense(128, activation="relu",
                                                   kernel_initializer="he_normal"),
                           L.Dense(10)], dtype=dtype)
    model.compile(optimizer=cn.optimizers.Adam(3e-3), loss="softmax_cross_entropy",
                  metrics=["accuracy"])
    return model


def test_mlp_digits(digits):
    x_tr, x_te, y_tr, y_te = digits
    cn.seed(2)
    model = mlp_digits()
    hist = model.fit(x_tr, y_tr, batch_size=32, epochs=30, verbose=0)
    assert hist.history["accuracy"][-1] > hist.history["accuracy"][0]
    pred = np.argmax(model.predict(x_te), axis=1)
    acc = float(np.mean(pred == y_te))
    assert acc >= 0.97, acc
    result = model.evaluate(x_te, y_te)
    assert result["accuracy"] == pytest.approx(acc)


def test_mlp_digits_float64(digits):
    x_tr, x_te, y_tr, y_te = digits
    cn.seed(3)
    model = mlp_digits("float64")
    model.fit(x_tr, y_tr, batch_size=32, epochs=30, verbose=0)
    assert model.get_weights()[0].dtype == np.float64
    assert float(np.mean(np.argmax(model.predict(x_te), axis=1) == y_te)) >= 0.97


def test_validation_split_history(digits):
    x_tr, _, y_tr, _ = digits
    cn.seed(4)
    model = mlp_digits()
    hist = model.fit(x_tr, y_tr, batch_size=64, epochs=3, validation_split=0.2, verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 3 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2]
    # Keras semantics: the validation set is the LAST examples, from ⌊n·(1 − 0.2)⌋ on,
    # before shuffling.
    cut = int(np.floor(len(x_tr) * (1 - 0.2)))
    val = model.evaluate(x_tr[cut:], y_tr[cut:])
    assert hist.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)
    assert hist.history["val_accuracy"][-1] == pytest.approx(val["accuracy"])


def test_validation_data_history(cancer):
    x_tr, x_te, y_tr, y_te = cancer
    cn.seed(5)
    model = logistic_regression()
    hist = model.fit(x_tr, y_tr, batch_size=32, epochs=4, validation_data=(x_te, y_te),
                     verbose=0)
    assert len(hist.history["val_loss"]) == 4 and len(hist.history["val_accuracy"]) == 4
    assert hist.history["val_loss"][-1] < hist.history["val_loss"][0]
    val = model.evaluate(x_te, y_te)
    assert hist.history["val_loss"][-1] == pytest.approx(val["loss"], rel=1e-6)
    assert hist.history["val_accuracy"][-1] == pytest.approx(val["accuracy"])


def test_evaluate_returns_loss_and_metrics_matching_numpy(digits):
    x_tr, x_te, y_tr, y_te = digits
    cn.seed(6)
    model = cn.Sequential([L.Input((64,)), L.Dense(10)], dtype="float64")
    model.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=["accuracy"])
    result = model.evaluate(x_te, y_te, batch_size=100)  # several batches, last partial
    assert set(result) == {"loss", "accuracy"}
    W, b = model.get_weights()
    z = x_te @ W.T + b
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    assert result["loss"] == pytest.approx(-np.mean(logp[np.arange(len(y_te)), y_te]), rel=1e-12)
    assert result["accuracy"] == pytest.approx(np.mean(np.argmax(z, axis=1) == y_te))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predict_batching_equals_one_shot(dtype, digits):
    x = digits[0][:157]
    cn.seed(7)
    model = cn.Sequential([L.Input((64,)), L.Dense(16, activation="tanh"), L.Dropout(0.5),
                           L.Dense(10)], dtype=dtype)
    one_shot = model.predict(x, batch_size=1000)
    assert one_shot.shape == (157, 10) and one_shot.dtype == np.dtype(dtype)
    # BLAS may block a GEMM differently for other row counts: parity tolerance,
    # not bit equality (a misplaced or dropped row would be off by O(1)).
    for batch_size in (1, 10, 64, 156):
        assert_close(model.predict(x, batch_size=batch_size), one_shot, what=f"batch {batch_size}")
    assert_close(model.predict(x[5:6]), one_shot[5:6], what="single row")


def test_inference_buffers_are_reused_without_stale_values(rng):
    # predict and evaluate keep their buffers between calls: a call after a
    # larger one, after training and after an evaluate must see none of their
    # values (bit-identical to a model that never ran another call).
    cn.seed(3)
    model = cn.Sequential([L.Input((2, 8, 8)), L.Conv2D(4, 3, padding="same", use_bias=False),
                           L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(2), L.Flatten(),
                           L.Dropout(0.3), L.Dense(5)])
    model.compile(cn.optimizers.Adam(1e-2), "softmax_cross_entropy")
    x = rng.standard_normal((9, 2, 8, 8))
    y = rng.integers(0, 5, size=9)
    twin = cn.Sequential([L.Input((2, 8, 8)), L.Conv2D(4, 3, padding="same", use_bias=False),
                          L.BatchNormalization(), L.Activation("relu"), L.MaxPooling2D(2), L.Flatten(),
                          L.Dropout(0.3), L.Dense(5)])
    twin.build()
    twin.set_weights(model.get_weights())
    first = model.predict(x[:2])
    np.testing.assert_array_equal(first, twin.predict(x[:2]))
    model.predict(x * 100.0)
    model.evaluate(x, y)
    np.testing.assert_array_equal(model.predict(x[:2]), first)
    model.train_on_batch(x, y)
    twin.set_weights(model.get_weights())
    np.testing.assert_array_equal(model.predict(x[:2]), twin.predict(x[:2]))
