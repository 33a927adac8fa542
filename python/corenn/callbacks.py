"""Callbacks: hooks into Model.fit (Keras's names, order and semantics).

fit calls, for each callback in the order given (History last):
on_train_begin, then per epoch on_epoch_begin, on_train_batch_begin/end around
every update (logs {"loss": batch loss}), on_epoch_end (logs: loss, metrics,
val_*), and on_train_end. Setting model.stop_training = True stops fit after
the current batch.
"""

import csv
import math
import os
import sys

from . import _validate, distributed
from .optimizers.schedules import LearningRateSchedule


class Callback:
    def __init__(self):
        self.model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_train_batch_begin(self, batch, logs=None): pass
    def on_train_batch_end(self, batch, logs=None): pass


def _say(owner, message):
    if distributed.is_chief():  # data-parallel training: rank 0 alone reports
        print(f"{owner}: {message}", file=sys.stderr)


class History(Callback):
    """Returned by fit: history[name] is the list of per-epoch values."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def plot(self, path, metrics=None):
        """Learning curves as an image (PNG for a .png path): one panel per
        metric (default: all), training and validation (val_*) together, over
        epochs. Needs matplotlib (pip install corenn[plot]). Returns the Figure."""
        try:
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("History.plot needs matplotlib, an optional dependency: "
                              "pip install matplotlib (or corenn[plot])") from None
        names = [k for k in self.history if not k.startswith("val_")] if metrics is None else list(metrics)
        missing = [n for n in names if n not in self.history]
        if missing or not names:
            raise ValueError(f"History.plot: no history for {missing or 'any metric'}; "
                             f"recorded: {', '.join(self.history) or 'nothing'}")
        fig = Figure(figsize=(4.5 * len(names), 3.5), layout="constrained")
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names):
            ax.plot(epochs, self.history[name], marker="o", label="train")
            if f"val_{name}" in self.history:
                ax.plot(epochs, self.history[f"val_{name}"], marker="o", label="validation")
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        fig.savefig(os.fspath(path))
        return fig


_HIGHER_IS_BETTER = ("acc", "f1", "precision", "recall", "auc")


def _mode(owner, mode, monitor):
    """'min' or 'max'; 'auto' is 'max' for accuracy-like names (acc, f1, precision, recall, auc)."""
    _validate.choice(owner, "mode", mode, ("auto", "min", "max"))
    if mode != "auto":
        return mode
    return "max" if any(tag in monitor for tag in _HIGHER_IS_BETTER) else "min"


class _Monitor(Callback):
    """Tracks the best value of logs[monitor] (NaN never improves)."""

    def __init__(self, monitor, mode, min_delta):
        super().__init__()
        owner = type(self).__name__
        if not isinstance(monitor, str):
            raise TypeError(f"{owner}: monitor must be a metric name such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.mode = _mode(owner, mode, monitor)
        self.min_delta = abs(_validate.real(owner, "min_delta", min_delta))
        self.best = None

    def _current(self, logs):
        if self.monitor not in (logs or {}):
            raise ValueError(f"{type(self).__name__}: monitor {self.monitor!r} is not in the epoch's logs "
                             f"({', '.join(logs or {}) or 'none'}); pass validation data for val_* "
                             "metrics, or name one of these")
        return float(logs[self.monitor])

    def _improves(self, current, reference):
        if math.isnan(current):
            return False
        if reference is None:
            return True
        if self.mode == "min":
            return current < reference - self.min_delta
        return current > reference + self.min_delta


class EarlyStopping(_Monitor):
    """Stops when `monitor` has not improved by more than min_delta for
    `patience` epochs (after start_from_epoch). restore_best_weights: at the
    end of training, put back the weights of the best epoch (Keras 3)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = _validate.integer("EarlyStopping", "patience", patience, minimum=0)
        self.start_from_epoch = _validate.integer("EarlyStopping", "start_from_epoch", start_from_epoch,
                                                  minimum=0)
        self.baseline = None if baseline is None else _validate.real("EarlyStopping", "baseline", baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, None, None
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        current = self._current(logs)
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        if epoch < self.start_from_epoch:
            return
        self.wait += 1
        if self._improves(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
                return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch is not None and self.verbose:
            _say("EarlyStopping", f"stopped after epoch {self.stopped_epoch + 1}")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose and self.best_epoch is not None:
                _say("EarlyStopping", f"restoring the weights of epoch {self.best_epoch + 1}")
            self.model.set_weights(self.best_weights)


def _optimizer(owner, model):
    opt = model.optimizer
    if opt is None:
        raise ValueError(f"{owner}: the model is not compiled")
    if callable(opt.learning_rate):
        raise TypeError(f"{owner}: the optimizer's learning rate is already a schedule "
                        f"({opt.learning_rate!r}); give the optimizer a number to let {owner} set it")
    return opt


class LearningRateScheduler(Callback):
    """Sets the learning rate at the start of each epoch: `schedule` is a
    corenn.optimizers.schedules object, called with the epoch (its step counts
    epochs here), or any fn(epoch, lr) -> new lr (Keras). Logs learning_rate."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be callable, got {schedule!r}")
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        opt = _optimizer("LearningRateScheduler", self.model)
        if isinstance(self.schedule, LearningRateSchedule):
            lr = self.schedule(epoch)
        else:
            lr = self.schedule(epoch, opt.learning_rate)
        opt.learning_rate = _validate.real("LearningRateScheduler", "the schedule's learning rate", lr, low=0.0)
        if self.verbose:
            _say("LearningRateScheduler", f"epoch {epoch + 1}: learning rate {opt.learning_rate:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class ReduceLROnPlateau(_Monitor):
    """Multiplies the learning rate by `factor` when `monitor` has not improved
    by more than min_delta for `patience` epochs, then waits `cooldown` epochs;
    never below min_lr. Logs learning_rate."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto", min_delta=1e-4,
                 cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta)
        owner = "ReduceLROnPlateau"
        self.factor = _validate.real(owner, "factor", factor, low=0.0, high=1.0, low_open=True, high_open=True)
        self.patience = _validate.integer(owner, "patience", patience, minimum=0)
        self.cooldown = _validate.integer(owner, "cooldown", cooldown, minimum=0)
        self.min_lr = _validate.real(owner, "min_lr", min_lr, low=0.0)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        _optimizer("ReduceLROnPlateau", self.model)
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        opt = _optimizer("ReduceLROnPlateau", self.model)
        logs = logs if logs is not None else {}
        current = self._current(logs)
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and opt.learning_rate > self.min_lr:
                opt.learning_rate = max(opt.learning_rate * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0
                if self.verbose:
                    _say("ReduceLROnPlateau", f"epoch {epoch + 1}: learning rate reduced to "
                                              f"{opt.learning_rate:.6g}")
        logs["learning_rate"] = opt.learning_rate


class ModelCheckpoint(_Monitor):
    """Saves the model (model.save) or its weights (model.save_weights) after
    each epoch, or only when `monitor` improves with save_best_only. filepath
    may name the epoch (1-based) and any logged value, as Keras:
    "ckpt-{epoch:02d}-{val_loss:.3f}.corenn"."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto"):
        super().__init__(monitor, mode, 0.0)
        self.filepath = _validate.path("ModelCheckpoint", "filepath", filepath)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            current = self._current(logs)
            if not self._improves(current, self.best):
                return
            self.best = current
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"ModelCheckpoint: cannot format filepath {self.filepath!r} with epoch and "
                             f"{', '.join(logs)}: {exc!r}") from None
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        if self.verbose:
            _say("ModelCheckpoint", f"epoch {epoch + 1}: saved {path}")


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch's loss is NaN or infinite (a learning
    rate too large, an overflow), with a message on stderr. `stopped_at` is
    (epoch, batch), 0-based, or None. The model skipped that batch's update
    (a non-finite loss or gradient never reaches the weights), so it keeps the
    weights of the last finite step."""

    def on_train_begin(self, logs=None):
        self.epoch, self.stopped_at = 0, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.stopped_at = (self.epoch, batch)
            self.model.stop_training = True
            _say("TerminateOnNaN", f"the loss became {loss} at batch {batch + 1} of epoch "
                                   f"{self.epoch + 1}; training stopped (the model keeps the weights "
                                   "of the last finite step; lower the learning rate)")


class CSVLogger(Callback):
    """Writes one row per epoch to a CSV file: epoch (0-based, as Keras) and
    every logged value. append=True continues an existing file. The file is
    opened for each row, so nothing stays open if training stops with an error."""

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = _validate.path("CSVLogger", "filename", filename)
        if not isinstance(separator, str) or len(separator) != 1:
            raise ValueError(f"CSVLogger: separator must be one character, got {separator!r}")
        self.separator = separator
        self.append = bool(append)
        self._keys = None

    def on_train_begin(self, logs=None):
        self._keys = None
        if not self.append and distributed.is_chief():  # rank 0 alone writes
            open(self.filename, "w").close()

    def on_epoch_end(self, epoch, logs=None):
        if not distributed.is_chief():
            return
        logs = logs or {}
        if self._keys is None:
            self._keys = list(logs)
        header = not os.path.exists(self.filename) or os.path.getsize(self.filename) == 0
        with open(self.filename, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["epoch", *self._keys], delimiter=self.separator,
                                    extrasaction="ignore")
            if header:
                writer.writeheader()
            writer.writerow({"epoch": epoch, **logs})


__all__ = ["CSVLogger", "Callback", "EarlyStopping", "History", "LearningRateScheduler", "ModelCheckpoint",
           "ReduceLROnPlateau", "TerminateOnNaN"]
