"""Non-finite values in training: fit, train_on_batch and evaluate refuse NaN/inf
in x and y up front (binary cross-entropy's NaN targets excepted: missing
labels); predict lets a NaN row propagate; a step whose loss or gradient is NaN
or infinite all the same (an overflow, a diverging learning rate) is skipped:
weights, batch norm statistics, optimizer state and step count stay as they
were, the step reports NaN, and TerminateOnNaN stops on it."""

import math

import numpy as np
import pytest

import corenn as cn
from corenn import callbacks as C

L = cn.layers
O = cn.optimizers


def snapshot(model):
    e = model._engine
    step, slots = e.get_optimizer_state()
    return [e.get_parameters(), e.get_state(), *slots], step


def assert_unchanged(model, before):
    arrays, step = snapshot(model)
    assert step == before[1] and len(arrays) == len(before[0])
    for a, b in zip(arrays, before[0]):
        np.testing.assert_array_equal(a, b)


def overflow_model():
    """Input(1) -> Dense a -> BatchNormalization -> Dense b (logits); the tests
    set a's kernel so that a's output overflows float32 where they want it to."""
    cn.seed(0)
    m = cn.Sequential([L.Input((1,)), L.Dense(1, name="a"), L.BatchNormalization(name="bn"),
                       L.Dense(2, name="b")])
    m.compile(O.Adam(1e-3), "softmax_cross_entropy")
    m.build()
    return m


def set_dense(m, name, kernel):
    m.get_layer(name).set_weights([np.asarray(kernel, np.float32), np.zeros(len(kernel), np.float32)])


def test_overflowing_forward_pass_skips_the_step():
    # a's output 1e30 · 1e10 is +inf in float32: batch norm's statistics, the
    # loss and the gradients all turn NaN. Without the skip the weights, Adam's
    # moments and the moving averages would hold NaN from then on.
    m = overflow_model()
    x, y = np.array([[1.0], [2.0]], np.float32), np.array([0, 1])
    assert math.isfinite(m.train_on_batch(x, y))
    set_dense(m, "a", [[1e30]])
    before = snapshot(m)
    big = np.array([[1e10], [2e10]], np.float32)
    assert math.isnan(m.train_on_batch(big, y))
    assert_unchanged(m, before)
    assert m._engine.steps == 1
    # The model still trains, and evaluates the same data to a non-finite loss.
    assert not math.isfinite(m.evaluate(big, y)["loss"])
    set_dense(m, "a", [[1.0]])
    assert math.isfinite(m.train_on_batch(x, y)) and m._engine.steps == 2


def test_finite_loss_with_an_infinite_gradient_skips_the_step():
    # h = 1e-35 · 1e10 = 1e-25, logits ±1e30 · h = ±1e5: the loss (2e5) is finite,
    # but dL/dh = 2e30 and dL/da.kernel = 2e30 · 1e10 overflow float32. Only the
    # gradient scan catches this one.
    cn.seed(0)
    m = cn.Sequential([L.Input((1,)), L.Dense(1, name="a"), L.Dense(2, name="b")])
    m.compile(O.SGD(0.1), "softmax_cross_entropy")
    m.build()
    set_dense(m, "a", [[1e-35]])
    set_dense(m, "b", [[1e30], [-1e30]])
    x, y = np.array([[1e10]], np.float32), np.array([1])
    loss = m.evaluate(x, y)["loss"]
    assert math.isfinite(loss) and loss > 1e5
    before = snapshot(m)
    assert math.isnan(m.train_on_batch(x, y))
    assert_unchanged(m, before)
    assert m._engine.steps == 0


def test_terminate_on_nan_stops_on_the_skipped_batch(capsys):
    # Batches of 2: the third holds the example whose forward pass overflows
    # (1e20 · 1e20); batch norm brings the others' 1e19-sized outputs back to ±1.
    m = overflow_model()
    set_dense(m, "a", [[1e20]])
    x = np.array([[0.1], [0.2], [-0.1], [0.3], [1e20], [0.4], [0.5], [-0.2]], np.float32)
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    stop = C.TerminateOnNaN()
    batch_losses = []

    class Losses(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            batch_losses.append(logs["loss"])

    hist = m.fit(x, y, batch_size=2, epochs=3, shuffle=False, verbose=0, callbacks=[Losses(), stop])
    assert stop.stopped_at == (0, 2) and m._engine.steps == 2
    assert all(math.isfinite(v) for v in batch_losses[:2]) and math.isnan(batch_losses[2])
    assert len(batch_losses) == 3 and math.isnan(hist.history["loss"][0])
    assert all(np.isfinite(w).all() for w in m.get_weights())
    assert "TerminateOnNaN: the loss became nan at batch 3 of epoch 1; training stopped" in capsys.readouterr().err


def test_without_terminate_on_nan_fit_skips_bad_batches_and_goes_on():
    m = overflow_model()
    set_dense(m, "a", [[1e20]])
    x = np.array([[0.1], [0.2], [-0.1], [0.3], [1e20], [0.4], [0.5], [-0.2]], np.float32)
    y = np.array([0, 1, 0, 1, 1, 0, 1, 0])
    hist = m.fit(x, y, batch_size=2, epochs=2, shuffle=False, verbose=0)
    # Three good batches per epoch were applied, the bad one twice skipped; the
    # epoch's mean loss is NaN, as Keras would log it.
    assert m._engine.steps == 6
    assert all(math.isnan(v) for v in hist.history["loss"])
    assert all(np.isfinite(w).all() for w in m.get_weights())


def test_binary_cross_entropy_nan_targets_stay_missing_labels():
    cn.seed(0)
    m = cn.Sequential([L.Input((4,)), L.Dense(3)])
    m.compile(O.SGD(0.1), "binary_cross_entropy")
    x = np.random.default_rng(1).standard_normal((5, 4))
    y = np.array([[0, 1, np.nan], [1, np.nan, 0], [np.nan, np.nan, 1], [0, 0, 0], [1, 1, 1]])
    assert math.isfinite(m.train_on_batch(x, y)) and m._engine.steps == 1
    assert math.isfinite(m.evaluate(x, y)["loss"])


def test_predict_lets_a_nan_row_propagate_to_its_own_output_only():
    cn.seed(0)
    m = cn.Sequential([L.Input((4,)), L.Dense(3, activation="tanh"), L.Dense(2)])
    x = np.random.default_rng(2).standard_normal((5, 4)).astype(np.float32)
    clean = m.predict(x)
    x[3, 1] = np.nan
    out = m.predict(x)
    assert np.isnan(out[3]).all()
    np.testing.assert_array_equal(np.delete(out, 3, axis=0), np.delete(clean, 3, axis=0))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8])
def test_integer_inputs_need_no_finiteness_check(dtype):
    cn.seed(0)
    m = cn.Sequential([L.Input((4,)), L.Dense(3)])
    m.compile(O.SGD(0.1), "softmax_cross_entropy")
    x = np.arange(20, dtype=dtype).reshape(5, 4)
    assert math.isfinite(m.train_on_batch(x, np.array([0, 1, 2, 0, 1])))
