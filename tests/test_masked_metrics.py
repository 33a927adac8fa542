"""compile() metrics on sequence outputs (N, T, ...) respect the output's mask
(Embedding(mask_zero=True), Masking) as Keras's do: equal to a NumPy model of
Keras's masked metrics (the mask as sample weight: a step's values averaged
over the last axis, then the weighted mean over the steps), fit's logs
included; metrics that cannot apply raise a clear ValueError."""

import numpy as np
import pytest

import corenn as cn
from corenn import metrics
from tolerances import tolerance

L = cn.layers
N, T, V, D, H = 6, 5, 7, 3, 4


def ids(rng):
    """Token ids with 0 = padding: different lengths, one sequence full, none empty."""
    x = rng.integers(1, V, (N, T))
    for i, length in enumerate([5, 3, 1, 4, 2, 5]):
        x[i, length:] = 0
    return x


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, **tolerance(np.float64))


def keras_masked_mean(per_value, mask):
    """Keras's masked metric: each step's values averaged over the last axis,
    then the mean over the unmasked steps (sample_weight = mask)."""
    per_step = per_value.mean(axis=-1)
    return float(np.sum(per_step * mask) / np.sum(mask))


def sequence_model(units, loss, metric_names, rng):
    cn.seed(4)
    m = cn.Sequential([L.Input((T,)), L.Embedding(V, D, mask_zero=True), L.GRU(H, return_sequences=True),
                       L.Dense(units)], dtype="float64")
    m.compile(optimizer="sgd", loss=loss, metrics=metric_names)
    return m


def test_binary_accuracy_mae_mse_and_categorical_accuracy_leave_masked_steps_out(rng):
    x = ids(rng)
    mask = (x != 0).astype(np.float64)
    m = sequence_model(3, "mse", ["binary_accuracy", "categorical_accuracy", "mae", "mse"], rng)
    z = m.predict(x)
    y = np.eye(3)[rng.integers(0, 3, (N, T))]  # one-hot targets, every step
    logs = m.evaluate(x, y)
    want = {
        "binary_accuracy": keras_masked_mean(((z > 0) == (y > 0.5)).astype(np.float64), mask),
        "categorical_accuracy": keras_masked_mean((np.argmax(z, -1) == np.argmax(y, -1))[..., None] * 1.0, mask),
        "mae": keras_masked_mean(np.abs(y - z), mask),
        "mse": keras_masked_mean((y - z) ** 2, mask),
    }
    for name, value in want.items():
        close(logs[name], value)
    assert logs["mae"] != np.mean(np.abs(y - z))  # the mask made a difference
    # The mse loss leaves the masked steps out as well (Keras's masked reduction).
    close(logs["loss"], want["mse"])
    # fit logs the same metrics over the epoch's outputs (before its update), masked alike.
    history = m.fit(x, y, epochs=1, batch_size=N, shuffle=False, verbose=0)
    close(history.history["mae"][0], want["mae"])


def test_binary_cross_entropy_sequence_outputs(rng):
    x = ids(rng)
    mask = (x != 0).astype(np.float64)
    m = sequence_model(1, "binary_cross_entropy", ["binary_accuracy", "accuracy"], rng)
    z = m.predict(x)
    y = rng.integers(0, 2, (N, T, 1)).astype(np.float64)
    logs = m.evaluate(x, y)
    want = keras_masked_mean(((z > 0) == (y > 0.5)).astype(np.float64), mask)
    close(logs["binary_accuracy"], want)
    close(logs["accuracy"], want)


def test_top_k_and_precision_on_sequences_count_the_unmasked_steps(rng):
    x = ids(rng)
    m = sequence_model(5, "softmax_cross_entropy", ["top_2_accuracy", "precision_macro", "accuracy"], rng)
    z = m.predict(x)
    y = rng.integers(0, 5, (N, T))
    y[0, 1] = -1  # ignored like a masked step
    logs = m.evaluate(x, y)
    counted = (x != 0) & (y != -1)
    own = z[counted][np.arange(counted.sum()), y[counted]]
    in_top_2 = (z[counted] > own[:, None]).sum(axis=1) < 2  # Keras's sparse_top_k_categorical_accuracy
    close(logs["top_2_accuracy"], np.mean(in_top_2))
    close(logs["accuracy"], np.mean(np.argmax(z, -1)[counted] == y[counted]))
    close(logs["precision_macro"], metrics.precision_score(y[counted], np.argmax(z, -1)[counted], average="macro"))


def test_metric_functions_skip_missing_targets():
    out = np.array([[[2.0, -1.0], [0.5, 0.1]], [[-3.0, 1.0], [0.0, 1.0]]])
    y = np.array([[[1.0, 0.0], [np.nan, np.nan]], [[0.0, 1.0], [1.0, 0.0]]])
    close(metrics.categorical_accuracy(out, y), 2 / 3)  # the NaN step left out
    close(metrics.mean_absolute_error(out, y), np.mean([1.0, 1.0, 3.0, 0.0, 1.0, 1.0]))
    close(metrics.mean_squared_error(out, y), np.mean([1.0, 1.0, 9.0, 0.0, 1.0, 1.0]))
    assert np.isnan(metrics.mean_squared_error(out, np.full(out.shape, np.nan)))
    tk = metrics.TopKAccuracy(1)
    logits = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    assert tk(logits, np.array([[1, -1]]), "softmax_cross_entropy") == 1.0
    assert np.isnan(tk(logits, np.array([[-1, -1]]), "softmax_cross_entropy"))


def test_metrics_that_cannot_apply_say_why(rng):
    with pytest.raises(ValueError, match=r"categorical_accuracy: needs targets shaped like the outputs "
                                         r"\(2, 3, 4\), got \(2, 3\)"):
        metrics.categorical_accuracy(np.zeros((2, 3, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"mae: needs targets shaped like the outputs \(2, 3\), got \(2,\)"):
        metrics.mean_absolute_error(np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match=r"needs labels \(N, T\) = \(2, 3\) for sequence logits \(2, 3, 4\), "
                                         r"got \(2, 4\)"):
        metrics.TopKAccuracy(2)(np.zeros((2, 3, 4)), np.zeros((2, 4), np.int64), "softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"compile: unknown metric 'categorical_acuracy'"):
        sequence_model(3, "mse", ["categorical_acuracy"], rng)
