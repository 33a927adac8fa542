"""The Keras-style model API: weights in and out, parameter counts, summary,
layer lookup, frozen layers, determinism, train_on_batch, learning-rate
schedules and the course's momentum."""

import math
import re

import numpy as np
import pytest

import corenn as cn
from model_numpy import NumpyMLP
from tolerances import STEP_FROM_DIFFERENCE, assert_close, tolerance

L = cn.layers
O = cn.optimizers
S = cn.optimizers.schedules


def mlp(dtype="float32", dropout=0.0, names=("hidden1", "hidden2", "logits")):
    layers = [L.Input((5,)), L.Dense(8, activation="tanh", name=names[0])]
    if dropout:
        layers.append(L.Dropout(dropout, name="drop"))
    layers += [L.Dense(6, activation="relu", name=names[1]), L.Dense(3, name=names[2])]
    return cn.Sequential(layers, dtype=dtype)


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 5))
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)


# ------------------------------------------------------------------ weights
def test_get_set_weights_round_trip_keras_order():
    cn.seed(0)
    model = mlp("float64")
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(8, 5), (8,), (6, 8), (6,), (3, 6), (3,)]
    assert all(w.dtype == np.float64 for w in weights)
    rng = np.random.default_rng(1)
    new = [rng.standard_normal(w.shape) for w in weights]
    model.set_weights(new)
    for got, want in zip(model.get_weights(), new):
        np.testing.assert_array_equal(got, want)
    # The per-layer view agrees, and the weights really drive the forward pass:
    # kernel (units, in), Z = X·Wᵀ + b.
    np.testing.assert_array_equal(model.get_layer("hidden2").get_weights()[0], new[2])
    x = data(7)[0]
    want = NumpyMLP(new, ["tanh", "relu", "linear"], "mse").forward(x)[0]
    assert_close(model.predict(x), want, what="predict with set weights")
    # get_weights returns copies: mutating one changes nothing.
    got = model.get_weights()
    got[0][:] = 0
    assert np.any(model.get_weights()[0] != 0)


def test_set_weights_casts_to_model_dtype():
    cn.seed(0)
    model = mlp("float32")
    new = [np.full(w.shape, 0.25, dtype=np.float64) for w in model.get_weights()]
    model.set_weights(new)
    assert all(w.dtype == np.float32 and np.all(w == 0.25) for w in model.get_weights())


@pytest.mark.parametrize("mutate, match", [
    (lambda ws: ws[:-1], r"set_weights: expected 6 arrays, got 5"),
    (lambda ws: ws + [ws[-1]], r"set_weights: expected 6 arrays, got 7"),
    (lambda ws: [ws[0].T] + ws[1:], r"set_weights: array 0 must have shape \(8, 5\), got \(5, 8\)"),
    # Only the LAST array is wrong: nothing before it may have been written.
    (lambda ws: ws[:-1] + [np.zeros(4)], r"set_weights: array 5 must have shape \(3,\), got \(4,\)"),
])
def test_set_weights_bad_input_leaves_weights_untouched(mutate, match):
    cn.seed(0)
    model = mlp()
    before = model.get_weights()
    new = [np.full(w.shape, 7.0) for w in before]
    with pytest.raises(ValueError, match=match):
        model.set_weights(mutate(new))
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_count_params_formula():
    model = cn.Sequential([L.Input((2, 5)), L.Flatten(), L.Dense(7), L.Dropout(0.3),
                           L.Dense(4, use_bias=False), L.Activation("relu"), L.Dense(2)])
    expected = (10 * 7 + 7) + (7 * 4) + (4 * 2 + 2)
    assert model.count_params() == expected
    assert sum(w.size for w in model.get_weights()) == expected
    assert [w.shape for w in model.get_weights()] == [(7, 10), (7,), (4, 7), (2, 4), (2,)]


def test_summary_prints_names_shapes_and_counts():
    model = cn.Sequential([L.Input((2, 5)), L.Flatten(name="flat"), L.Dense(7, name="fc1"),
                           L.Dropout(0.3, name="drop"), L.Dense(2, name="out")], name="tiny")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert 'Model: "tiny"' in text
    # name, type, output shape, parameters, multiply-adds per example (Dense: in × out)
    expected_rows = [("flat", "Flatten", "(None, 10)", 0, 0), ("fc1", "Dense", "(None, 7)", 77, 70),
                     ("drop", "Dropout", "(None, 7)", 0, 0), ("out", "Dense", "(None, 2)", 16, 14)]
    for name, kind, shape, count, macs in expected_rows:
        row = next(line for line in text.splitlines() if line.startswith(f"{name} ({kind})"))
        assert re.search(rf"{re.escape(shape)}\s+{count}\s+{macs}\s*$", row), row
    assert "Mult-adds per example: 84" in text
    assert "Total params: 93" in text
    assert "Trainable params: 93" in text and "Non-trainable params: 0" in text
    model.get_layer("fc1").trainable = False
    lines.clear()
    model.summary(print_fn=lines.append)
    assert "Trainable params: 16" in lines[0] and "Non-trainable params: 77" in lines[0]


def test_get_layer():
    model = mlp()
    layer = model.get_layer("hidden2")
    assert layer is model.layers[1] and layer.units == 6
    with pytest.raises(ValueError, match=r"get_layer: no layer named 'nope'; layers are "
                                         r"hidden1, hidden2, logits"):
        model.get_layer("nope")


# ------------------------------------------------------------ frozen layers
@pytest.mark.parametrize("when", ["before_build", "after_build"])
@pytest.mark.parametrize("optimizer", [lambda: O.SGD(0.1, momentum=0.9, weight_decay=0.01),
                                       lambda: O.AdamW(0.01)], ids=["sgd", "adamw"])
def test_frozen_layer_keeps_weights_bit_identical(when, optimizer):
    cn.seed(1)
    model = mlp()
    if when == "before_build":
        model.get_layer("hidden2").trainable = False
    model.compile(optimizer=optimizer(), loss="softmax_cross_entropy")
    if when == "after_build":
        model.build()
        model.get_layer("hidden2").trainable = False
    before = model.get_weights()
    x, y = data()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    after = model.get_weights()
    np.testing.assert_array_equal(after[2], before[2])
    np.testing.assert_array_equal(after[3], before[3])
    for i in (0, 1, 4, 5):
        assert np.any(after[i] != before[i]), f"weight {i} did not train"
    # Unfreezing lets it train again.
    model.get_layer("hidden2").trainable = True
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.any(model.get_weights()[2] != after[2])


# -------------------------------------------------------------- determinism
def trained_weights(seed):
    cn.seed(seed)
    model = mlp(dropout=0.3)
    model.compile(optimizer=O.Adam(0.01), loss="softmax_cross_entropy")
    x, y = data(50)
    model.fit(x, y, batch_size=8, epochs=3, shuffle=True, verbose=0)
    return model.get_weights()


def test_same_seed_bitwise_identical_training():
    a, b = trained_weights(123), trained_weights(123)
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa, wb)


def test_different_seed_different_training():
    a, b = trained_weights(123), trained_weights(124)
    assert any(np.any(wa != wb) for wa, wb in zip(a, b))


def test_same_initial_weights_different_shuffle_and_dropout():
    """With the initial weights fixed by set_weights, the seed still changes the run
    (shuffling and dropout masks come from the seeded generator)."""
    def run(seed):
        cn.seed(seed)
        model = mlp(dropout=0.3)
        model.compile(optimizer=O.SGD(0.1), loss="softmax_cross_entropy")
        model.set_weights([np.full(w.shape, 0.1) for w in model.get_weights()])
        x, y = data(50)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        return model.get_weights()
    a, b, c = run(5), run(5), run(6)
    assert all(np.array_equal(wa, wb) for wa, wb in zip(a, b))
    assert any(np.any(wa != wc) for wa, wc in zip(a, c))


# ----------------------------------------------------------- train_on_batch
def test_train_on_batch_returns_float_and_loss_decreases():
    cn.seed(2)
    model = mlp()
    model.compile(optimizer=O.SGD(0.1), loss="softmax_cross_entropy")
    x, y = data(32)
    losses = [model.train_on_batch(x, y) for _ in range(30)]
    assert all(type(v) is float and math.isfinite(v) for v in losses)
    assert losses[-1] < 0.8 * losses[0]
    assert sum(b < a for a, b in zip(losses, losses[1:])) >= 25
    assert model._engine.steps == 30


def test_train_on_batch_returns_loss_before_update():
    cn.seed(3)
    model = mlp("float64")
    model.compile(optimizer=O.SGD(0.5), loss="softmax_cross_entropy")
    x, y = data(16)
    expected = model.evaluate(x, y)["loss"]  # no dropout: train and test passes agree
    assert model.train_on_batch(x, y) == pytest.approx(expected, rel=1e-12)
    assert model.evaluate(x, y)["loss"] < expected


# ---------------------------------------------------------------- schedules
@pytest.mark.parametrize("step", [0, 1, 2, 5, 9, 10, 11, 99, 1000])
def test_schedule_formulas(step):
    assert S.InverseTimeDecay(0.1, 10, 0.5)(step) == pytest.approx(0.1 / (1 + 0.5 * step / 10))
    assert S.InverseTimeDecay(0.1, 10, 0.5, staircase=True)(step) == pytest.approx(
        0.1 / (1 + 0.5 * (step // 10)))
    assert S.ExponentialDecay(0.2, 10, 0.95)(step) == pytest.approx(0.2 * 0.95 ** (step / 10))
    assert S.ExponentialDecay(0.2, 10, 0.95, staircase=True)(step) == pytest.approx(
        0.2 * 0.95 ** (step // 10))
    assert S.InverseSqrtDecay(0.3, 4)(step) == pytest.approx(0.3 / math.sqrt(1 + step / 4))
    assert S.InverseSqrtDecay(0.3, 4, staircase=True)(step) == pytest.approx(
        0.3 / math.sqrt(1 + step // 4))
    # Keras: values[i] for boundaries[i-1] < step <= boundaries[i] (a boundary keeps the earlier value)
    expected = 1.0 if step <= 5 else 0.5 if step <= 10 else 0.1
    assert S.PiecewiseConstant([5, 10], [1.0, 0.5, 0.1])(step) == expected


def test_schedule_course_values():
    # Course 2 week 2: lr = lr0 / (1 + decay_rate · epoch_num), one decay per epoch.
    per_epoch = S.InverseTimeDecay(0.5, decay_steps=100, decay_rate=1.0, staircase=True)
    assert [per_epoch(e * 100 + 37) for e in range(4)] == pytest.approx([0.5, 0.25, 0.5 / 3, 0.125])
    assert S.ExponentialDecay(1.0, 1, 0.95)(3) == pytest.approx(0.857375)


@pytest.mark.parametrize("bad", [
    lambda: S.InverseTimeDecay(0.1, 0, 0.5), lambda: S.InverseTimeDecay(-0.1, 10, 0.5),
    lambda: S.ExponentialDecay(0.1, 10, 0.0), lambda: S.InverseSqrtDecay(0.1, -1),
    lambda: S.PiecewiseConstant([5, 10], [1.0, 0.5]), lambda: S.PiecewiseConstant([10, 5], [1, 2, 3]),
])
def test_schedule_bad_arguments(bad):
    with pytest.raises(ValueError):
        bad()


def test_schedule_drives_fit():
    """A PiecewiseConstant that drops to 0 after 4 updates freezes the weights."""
    cn.seed(4)
    model = mlp()
    model.compile(optimizer=O.SGD(S.PiecewiseConstant([3], [0.1, 0.0])), loss="softmax_cross_entropy")
    x, y = data(64)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)  # 4 updates
    after_four = model.get_weights()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    for a, b in zip(after_four, model.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------- the course's momentum
def test_course_momentum_is_ewma_of_gradients():
    """SGD(momentum=β, dampening=β): v_t = β·v_{t−1} + (1 − β)·g_t (v_0 = 0), the
    course's exponentially weighted average, and p_t = p_{t−1} − lr·v_t."""
    beta, lr = 0.9, 0.05
    cn.seed(5)
    model = mlp("float64")
    model.compile(optimizer=O.SGD(lr, momentum=beta, dampening=beta), loss="softmax_cross_entropy")
    model.build()
    x, y = data(40)
    engine, ewma = model._engine, None
    grads = []
    for step in range(8):
        xb, yb = x[step * 5:(step + 1) * 5], y[step * 5:(step + 1) * 5]
        before = engine.get_parameters()
        _, g = engine.loss_and_gradients([xb], [yb])
        grads.append(g)
        model.train_on_batch(xb, yb)
        ewma = (1 - beta) * g if ewma is None else beta * ewma + (1 - beta) * g
        # The closed form of the same average: Σ_k (1 − β) β^(t−k) g_k.
        closed = sum((1 - beta) * beta ** (step - k) * gk for k, gk in enumerate(grads))
        np.testing.assert_allclose(ewma, closed, **tolerance(np.float64))
        np.testing.assert_allclose(before - engine.get_parameters(), lr * ewma, **STEP_FROM_DIFFERENCE)
    # Differs from PyTorch's undamped momentum (which would be 1/(1 − β) = 10× larger).
    assert np.linalg.norm(ewma) < 0.5 * np.linalg.norm(sum(beta ** (7 - k) * g
                                                           for k, g in enumerate(grads)))


def test_fit_verbose_reports_progress_per_epoch(capsys, monkeypatch):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    m = cn.Sequential([cn.layers.Input((3,)), cn.layers.Dense(2)])
    m.compile(cn.optimizers.SGD(0.1), "softmax_cross_entropy", metrics=["accuracy"])
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    m.fit(X, y, batch_size=8, epochs=2, verbose=1)
    err = terminal.getvalue()
    # On a terminal tqdm (the demo/test extras install it) draws one bar per epoch of
    # 5 batches (elsewhere: one line per epoch, tests/test_keras_usability.py).
    assert "Epoch 1/2" in err and "Epoch 2/2" in err
    assert "5/5" in err and "accuracy" in err
    monkeypatch.undo()
    m.fit(X, y, batch_size=8, epochs=1, verbose=0)
    assert capsys.readouterr().err == ""


def keras_piecewise_constant(boundaries, values, step):
    """Keras 3's PiecewiseConstantDecay.__call__, written out: x <= b0 -> v0,
    b_{i-1} < x <= b_i -> v_i, x > b_last -> v_last."""
    if step <= boundaries[0]:
        return values[0]
    if step > boundaries[-1]:
        return values[-1]
    for low, high, v in zip(boundaries[:-1], boundaries[1:], values[1:-1]):
        if low < step <= high:
            return v
    raise AssertionError("unreachable")


@pytest.mark.parametrize("boundaries,values", [([5, 10], [1.0, 0.5, 0.1]), ([0], [0.3, 0.2]),
                                               ([2, 3, 7], [4.0, 3.0, 2.0, 1.0])])
def test_piecewise_constant_boundaries_follow_keras(boundaries, values):
    schedule = S.PiecewiseConstant(boundaries, values)
    for step in range(0, boundaries[-1] + 3):
        assert schedule(step) == keras_piecewise_constant(boundaries, values, step), step
    # The step equal to a boundary keeps the earlier value, the next one moves on.
    for i, b in enumerate(boundaries):
        assert schedule(b) == values[i] and schedule(b + 1) == values[i + 1]
