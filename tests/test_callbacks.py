"""Callbacks: EarlyStopping (restoring the best weights in a real run),
TerminateOnNaN (a diverging run), LearningRateScheduler and ReduceLROnPlateau
(closed-form learning rates, and the rate fit really applies), CSVLogger,
History.plot, stop_training between batches, and epoch-level training metrics.
ModelCheckpoint needs model files: tests/test_checkpoint.py."""

import csv
import math
import sys

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.datasets import load_digits

import corenn as cn
from corenn import callbacks as C
from tolerances import CLOSED_FORM

L = cn.layers
O = cn.optimizers


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target


def mlp(lr=0.1, width=32, optimizer=None, metrics=None):
    cn.seed(0)
    m = cn.Sequential([L.Input((64,)), L.Dense(width, activation="relu"), L.Dense(10)])
    m.compile(optimizer or O.SGD(lr), "softmax_cross_entropy", metrics=metrics)
    return m


class Recorder(C.Callback):
    """Keeps the weights and logs at the end of every epoch."""

    def on_train_begin(self, logs=None):
        self.weights, self.logs = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())
        self.logs.append(dict(logs))


class FakeModel:
    """Just what the monitoring callbacks touch, to script their inputs."""

    def __init__(self, lr=0.1):
        self.optimizer = O.SGD(lr)
        self.stop_training = False
        self.weights = [np.zeros(1)]

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, ws):
        self.weights = [w.copy() for w in ws]


def drive(cb, values, key="val_loss", model=None):
    """Runs cb over epochs with logs {key: value}; returns the model and the epochs run."""
    model = model or FakeModel()
    cb.set_model(model)
    cb.on_train_begin()
    ran = 0
    for epoch, v in enumerate(values):
        model.weights = [np.array([float(epoch)])]
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {key: v})
        ran += 1
        if model.stop_training:
            break
    cb.on_train_end()
    return model, ran


# ------------------------------------------------------------ EarlyStopping
def test_early_stopping_restores_the_best_weights_in_a_real_run(digits):
    """A wide network on 180 training examples with 30% wrong labels overfits:
    the validation loss bottoms out and rises; EarlyStopping stops `patience`
    epochs after the best one and puts its weights back."""
    X, y = digits
    (Xtr, ytr), (Xv, yv), _ = cn.data.train_dev_test_split(X, y, (0.1, 0.3, 0.6), stratify=True, seed=0)
    rng = np.random.default_rng(0)
    noisy = ytr.copy()
    flip = rng.random(len(ytr)) < 0.3
    noisy[flip] = rng.integers(0, 10, flip.sum())
    cn.seed(0)
    model = cn.Sequential([L.Input((64,)), L.Dense(256, activation="relu"), L.Dense(256, activation="relu"),
                           L.Dense(10)])
    model.compile(O.Adam(3e-3), "softmax_cross_entropy", metrics=["accuracy"])
    rec = Recorder()
    stop = C.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True)
    hist = model.fit(Xtr, noisy, epochs=40, batch_size=16, validation_data=(Xv, yv), verbose=0,
                     callbacks=[rec, stop])
    val = hist.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) < 40 and stop.stopped_epoch == len(val) - 1 == best + 5
    assert stop.best_epoch == best and stop.best == val[best]
    assert val[-1] > val[best]  # the last epoch was worse: restoring matters
    for w, want in zip(model.get_weights(), rec.weights[best]):
        np.testing.assert_array_equal(w, want)
    assert model.evaluate(Xv, yv)["loss"] == pytest.approx(val[best], rel=1e-12)


@pytest.mark.parametrize("kwargs, values, ran, best_epoch", [
    (dict(patience=0), [3, 2, 2.5, 1], 3, 1),                       # stops at the first non-improvement
    (dict(patience=2), [3, 2, 2.5, 2.2, 1], 4, 1),                  # two epochs without improvement
    (dict(patience=2), [3, 2, 2.5, 1.5, 1.6, 1.7], 6, 3),
    (dict(patience=1, min_delta=0.5), [3, 2.8, 2.7], 2, 0),           # improvements under min_delta don't count
    (dict(patience=1, start_from_epoch=3), [1, 2, 3, 4, 5], 5, 3),  # nothing counts before epoch 3
    (dict(patience=3, baseline=1.0), [3, 2, 1.5, 1.2], 3, 2),       # not beating the baseline counts as no progress
    (dict(patience=1, monitor="val_accuracy"), [0.5, 0.7, 0.6, 0.65], 3, 1),  # auto: accuracy is maximised
    (dict(patience=1, mode="max"), [0.5, 0.7, 0.6], 3, 1),
    (dict(patience=1), [2.0, float("nan"), float("nan")], 2, 0),    # NaN never improves
])
def test_early_stopping_rules(kwargs, values, ran, best_epoch):
    key = kwargs.get("monitor", "val_loss")
    cb = C.EarlyStopping(restore_best_weights=True, **kwargs)
    model, epochs = drive(cb, values, key)
    assert epochs == ran
    assert model.weights[0][0] == best_epoch  # the best epoch's weights are back


def test_early_stopping_without_restore_keeps_the_last_weights():
    model, ran = drive(C.EarlyStopping(patience=1), [1.0, 2.0, 3.0])
    assert ran == 2 and model.weights[0][0] == 1.0


# ----------------------------------------------------------- TerminateOnNaN
def test_terminate_on_nan_stops_a_diverging_run(digits, capsys):
    X, y = digits
    model = mlp(lr=1e12)  # diverges within a few updates
    stop = C.TerminateOnNaN()
    hist = model.fit(X, y, epochs=5, batch_size=32, verbose=0, callbacks=[stop])
    epoch, batch = stop.stopped_at
    # The NaN batch's update was skipped: the model holds the last finite step.
    assert epoch == 0 and model._engine.steps == batch < math.ceil(len(X) / 32)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert len(hist.history["loss"]) == 1 and not math.isfinite(hist.history["loss"][0])
    err = capsys.readouterr().err
    assert f"TerminateOnNaN: the loss became nan at batch {batch + 1} of epoch 1; training stopped" in err
    # Without the callback the run goes on to the end, skipping every NaN step.
    losses = []

    class Losses(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            losses.append(logs["loss"])

    free = mlp(lr=1e12)
    free.fit(X, y, epochs=2, batch_size=32, verbose=0, callbacks=[Losses()])
    assert len(losses) == 2 * math.ceil(len(X) / 32)
    assert free._engine.steps == sum(math.isfinite(v) for v in losses) < len(losses)


def test_stop_training_takes_effect_after_the_current_batch(digits):
    X, y = digits

    class StopAtBatch(C.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                self.model.stop_training = True

    model = mlp(metrics=["accuracy"])
    hist = model.fit(X[:320], y[:320], epochs=3, batch_size=32, verbose=0, callbacks=[StopAtBatch()])
    assert model._engine.steps == 3 and len(hist.history["loss"]) == 1
    assert 0 <= hist.history["accuracy"][0] <= 1


# ------------------------------------------------------ learning-rate control
def test_learning_rate_scheduler_equals_setting_the_rate_by_hand(digits):
    X, y = digits[0][:256], digits[1][:256]
    model = mlp(lr=0.3)
    hist = model.fit(X, y, epochs=3, batch_size=64, verbose=0,
                     callbacks=[C.LearningRateScheduler(lambda epoch, lr: 0.2 * 0.5 ** epoch)])
    assert hist.history["learning_rate"] == [0.2, 0.1, 0.05]
    by_hand = mlp(lr=0.3)
    for epoch in range(3):
        by_hand.optimizer.learning_rate = 0.2 * 0.5 ** epoch
        by_hand.fit(X, y, epochs=1, batch_size=64, verbose=0)
    for a, b in zip(model.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_learning_rate_scheduler_with_a_schedule_object_counts_epochs(digits):
    X, y = digits[0][:128], digits[1][:128]
    model = mlp()
    schedule = O.schedules.InverseTimeDecay(0.5, decay_steps=1, decay_rate=1.0)
    hist = model.fit(X, y, epochs=4, batch_size=64, verbose=0, callbacks=[C.LearningRateScheduler(schedule)])
    # The course's α = α0 / (1 + decay_rate · epoch_num).
    np.testing.assert_allclose(hist.history["learning_rate"], [0.5 / (1 + e) for e in range(4)],
                               **CLOSED_FORM[np.dtype(np.float64)])
    assert model.optimizer.learning_rate == pytest.approx(0.125)


def test_reduce_lr_on_plateau_closed_form():
    cb = C.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=2, cooldown=1, min_lr=0.02, min_delta=0.0)
    model = FakeModel(lr=0.1)
    cb.set_model(model)
    cb.on_train_begin()
    lrs = []
    for epoch, v in enumerate([1.0, 0.9, 0.9, 0.9, 0.95, 0.95, 0.95, 0.95, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]):
        logs = {"val_loss": v}
        cb.on_epoch_end(epoch, logs)
        lrs.append(logs["learning_rate"])
    # Keras's rule: two epochs without improvement halve the rate; the epoch
    # after a cut ends the one-epoch cooldown and starts a new count (so two
    # more flat epochs cut again); an improvement resets; never below min_lr.
    want = [0.1, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02]
    np.testing.assert_allclose(lrs, want, **CLOSED_FORM[np.dtype(np.float64)])


def test_reduce_lr_on_plateau_in_fit_changes_the_rate_used(digits):
    X, y = digits[0][:256], digits[1][:256]
    model = mlp(lr=0.1)
    # monitor the training loss with a min_delta no epoch can beat: a plateau every epoch
    cb = C.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0)
    hist = model.fit(X, y, epochs=3, batch_size=64, verbose=0, callbacks=[cb])
    assert hist.history["learning_rate"] == [0.1, 0.05, 0.025]
    assert model.optimizer.learning_rate == 0.025


@pytest.mark.parametrize("make", [lambda: C.LearningRateScheduler(lambda e, lr: lr),
                                  lambda: C.ReduceLROnPlateau(monitor="loss")])
def test_learning_rate_callbacks_refuse_an_optimizer_schedule(make, digits):
    X, y = digits
    model = mlp(optimizer=O.SGD(O.schedules.ExponentialDecay(0.1, 10, 0.9)))
    with pytest.raises(TypeError, match=r"the optimizer's learning rate is already a schedule"):
        model.fit(X[:64], y[:64], epochs=1, verbose=0, callbacks=[make()])


def test_learning_rate_scheduler_rejects_bad_rates(digits):
    X, y = digits
    model = mlp()
    w = model.get_weights() if model.built else None
    with pytest.raises(ValueError, match=r"LearningRateScheduler: the schedule's learning rate must be finite"):
        model.fit(X[:64], y[:64], epochs=2, verbose=0,
                  callbacks=[C.LearningRateScheduler(lambda e, lr: float("nan"))])
    assert w is None or all(np.array_equal(a, b) for a, b in zip(model.get_weights(), w))


# ---------------------------------------------------------- logs and plots
def test_csv_logger_rows_equal_history_and_append(digits, tmp_path):
    X, y = digits[0][:300], digits[1][:300]
    path = tmp_path / "log.csv"
    model = mlp(metrics=["accuracy"])
    hist = model.fit(X, y, epochs=3, batch_size=64, verbose=0, validation_split=0.2,
                     callbacks=[C.CSVLogger(path)])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for key, values in hist.history.items():
        assert [float(r[key]) for r in rows] == values  # repr round-trips floats exactly
    model.fit(X, y, epochs=2, batch_size=64, verbose=0, validation_split=0.2,
              callbacks=[C.CSVLogger(path, append=True)])
    with open(path, newline="") as f:
        lines = f.read().splitlines()
    assert len(lines) == 1 + 5 and lines[0].startswith("epoch,loss")
    model.fit(X, y, epochs=1, batch_size=64, verbose=0, callbacks=[C.CSVLogger(path, separator=";")])
    with open(path) as f:
        assert f.read().splitlines()[0] == "epoch;loss;accuracy"


def test_history_plot_writes_a_png(digits, tmp_path):
    X, y = digits[0][:300], digits[1][:300]
    hist = mlp(metrics=["accuracy"]).fit(X, y, epochs=3, verbose=0, validation_split=0.2)
    path = tmp_path / "curves.png"
    fig = hist.plot(path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert [ax.get_title() for ax in fig.axes] == ["loss", "accuracy"]
    assert [line.get_label() for line in fig.axes[0].lines] == ["train", "validation"]
    np.testing.assert_array_equal(fig.axes[1].lines[1].get_ydata(), hist.history["val_accuracy"])
    fig = hist.plot(tmp_path / "loss.png", metrics=["loss"])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match=r"History.plot: no history for \['f1'\]"):
        hist.plot(tmp_path / "x.png", metrics=["f1"])


def test_history_plot_without_matplotlib_says_how_to_get_it(monkeypatch, tmp_path):
    hist = C.History()
    hist.on_epoch_end(0, {"loss": 1.0})
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"History.plot needs matplotlib.*pip install matplotlib"):
        hist.plot(tmp_path / "x.png")


def test_training_metrics_cover_the_whole_epoch(digits):
    """With a zero learning rate the training-mode outputs are the predictions,
    so the epoch's F1 must equal F1 over all examples (a mean of per-batch F1
    would not)."""
    X, y = digits[0][:500], digits[1][:500]
    model = mlp(optimizer=O.SGD(0.0), metrics=["f1_macro", "accuracy"])
    hist = model.fit(X, y, epochs=1, batch_size=50, verbose=0)
    pred = model.predict(X).argmax(1)
    assert hist.history["f1_macro"][0] == pytest.approx(skm.f1_score(y, pred, average="macro"), rel=1e-12)
    assert hist.history["accuracy"][0] == pytest.approx(np.mean(pred == y), rel=1e-12)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: C.EarlyStopping(patience=-1), ValueError, r"EarlyStopping: patience must be >= 0"),
    (lambda: C.EarlyStopping(mode="up"), ValueError, r"EarlyStopping: mode must be one of 'auto', 'min', 'max'"),
    (lambda: C.EarlyStopping(monitor=3), TypeError, r"EarlyStopping: monitor must be a metric name"),
    (lambda: C.ReduceLROnPlateau(factor=1.0), ValueError, r"ReduceLROnPlateau: factor must be finite and in \(0.0, 1.0\)"),
    (lambda: C.ReduceLROnPlateau(min_lr=-1), ValueError, r"ReduceLROnPlateau: min_lr must be finite"),
    (lambda: C.LearningRateScheduler(0.1), TypeError, r"LearningRateScheduler: schedule must be callable"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_a_missing_monitor_is_named_with_what_is_available(digits):
    X, y = digits
    model = mlp()
    with pytest.raises(ValueError, match=r"EarlyStopping: monitor 'val_loss' is not in the epoch's logs \(loss\)"):
        model.fit(X[:64], y[:64], epochs=1, verbose=0, callbacks=[C.EarlyStopping()])
