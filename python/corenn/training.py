"""The training loop behind Model.fit, evaluate, predict and train_on_batch.

Python here only checks the data, slices mini-batches and keeps the history;
every pass over a batch (forward, loss, backward, update) is one call into the
C++ engine with the GIL released. Each function takes the Model it serves."""

import math
import numbers
import sys
import time
from collections.abc import Mapping

import numpy as np

from . import _core, _validate, callbacks as callbacks_module


def _as_array(owner, name, value):
    try:
        return np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"{owner}: {name} must be array-like: {exc}") from None


def prepare(model, owner, x, y=None, empty_ok=False):
    """Cast and check x (and y) against the model: errors before any work.
    Zero examples are an error except where empty_ok (predict: zero rows out)."""
    x = _as_array(owner, "x", x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{owner}: x must be numeric, got dtype {x.dtype}")
    model._ensure_built(x)
    want = (len(x), *model._input_shape) if x.ndim >= 1 else None
    if x.shape != want:
        raise ValueError(f"{owner}: x must have shape (batch, {', '.join(map(str, model._input_shape))}),"
                         f" got {x.shape}{_validate.channels_last('x', x.shape, model._input_shape)}")
    if not empty_ok:
        _validate.examples(owner, "x", x)
    integer_x = x.dtype.kind != "f"
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused below
        x = np.ascontiguousarray(x, dtype=model.dtype)
    if y is None:
        return x, None  # predict: a NaN in a row propagates to that row's output
    # Training and evaluation refuse NaN/inf (after the cast, which may
    # overflow): one would turn the loss NaN and, in training, skip the step.
    if not integer_x:
        _validate.finite(owner, "x", x)
    y = _as_array(owner, "y", y)
    if len(y) != len(x):
        raise ValueError(f"{owner}: x and y must hold the same number of examples, "
                         f"got {len(x)} and {len(y)}")
    out_shape = tuple(model._engine.model_output_shape())
    if model._loss == "softmax_cross_entropy":
        classes = int(np.prod(out_shape))
        if y.ndim != 1:
            raise ValueError(f"{owner}: softmax_cross_entropy needs y of shape ({len(x)},) "
                             f"(integer class ids), got {y.shape}")
        if y.dtype.kind == "f":
            _validate.finite(owner, "y", y)
            if np.any(y != np.round(y)):
                raise ValueError(f"{owner}: class ids in y must be whole numbers")
        elif y.dtype.kind not in "iub":
            raise TypeError(f"{owner}: y must hold integer class ids, got dtype {y.dtype}")
        y = np.ascontiguousarray(y, dtype=np.int64)
        if len(y) and (y.min() < 0 or y.max() >= classes):
            bad = int(y[(y < 0) | (y >= classes)][0])
            raise ValueError(f"{owner}: class id {bad} in y is outside [0, {classes}) "
                             f"for a model with {classes} outputs")
    else:
        if y.dtype.kind not in "fiub":
            raise TypeError(f"{owner}: y must be numeric, got dtype {y.dtype}")
        if y.ndim == 1 and out_shape == (1,):
            y = y.reshape(-1, 1)
        if y.shape != (len(x), *out_shape):
            raise ValueError(f"{owner}: y must have shape {(len(x), *out_shape)} to match the "
                             f"model's output, got {y.shape}")
        with np.errstate(over="ignore"):
            y = np.ascontiguousarray(y, dtype=model.dtype)
        # binary cross-entropy reads NaN targets as missing labels.
        _validate.finite(owner, "y", y, allow_nan=model._loss == "binary_cross_entropy")
    return x, y


def _sample_weight(model, owner, sample_weight, n):
    """sample_weight as (n,) in the model's dtype, checked (finite, >= 0), or None."""
    if sample_weight is None:
        return None
    w = _as_array(owner, "sample_weight", sample_weight)
    if w.dtype.kind not in "fiub":
        raise TypeError(f"{owner}: sample_weight must be numeric, got dtype {w.dtype}")
    if w.shape != (n,):
        raise ValueError(f"{owner}: sample_weight must have shape ({n},) (one weight per "
                         f"example), got {w.shape}")
    # Checked after the cast: 1e300 is finite in float64 but not in float32.
    with np.errstate(over="ignore"):
        w = np.array(w, dtype=model.dtype)
    bad = ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{owner}: sample_weight must be finite and >= 0, got {w[i]} at "
                         f"example {i}")
    return w


def _class_weight(model, owner, class_weight, y):
    """Each example's weight from class_weight {class index: weight}, as Keras's
    class_weight_to_sample_weights: the integer label for softmax cross-entropy,
    the rounded 0/1 target for binary cross-entropy with one output column;
    classes missing from the dict (and missing binary labels) weigh 1."""
    if not isinstance(class_weight, Mapping):
        raise TypeError(f"{owner}: class_weight must be a dict {{class index: weight}}, got "
                        f"{type(class_weight).__name__}")
    out_shape = tuple(model._engine.model_output_shape())
    if model._loss == "softmax_cross_entropy":
        classes, labels = int(np.prod(out_shape)), y
    elif model._loss == "binary_cross_entropy" and int(np.prod(out_shape)) == 1:
        rounded = np.round(y.reshape(-1))
        # NaN targets (missing labels, skipped by the loss) index the spare slot.
        classes = 2
        labels = np.where(np.isfinite(rounded) & (rounded >= 0) & (rounded <= 1),
                          rounded, classes).astype(np.int64)
    else:
        raise ValueError(f"{owner}: class_weight needs softmax_cross_entropy (integer labels) "
                         f"or binary_cross_entropy with one output column; the model has "
                         f"loss {model._loss!r} and output shape {out_shape}")
    table = np.ones(classes + 1)  # the last slot: targets outside the classes weigh 1
    for key, value in class_weight.items():
        integral = isinstance(key, numbers.Integral) and not isinstance(key, bool)
        if not integral or not 0 <= key < classes:
            raise ValueError(f"{owner}: class_weight key {key!r} is not a class index in "
                             f"[0, {classes})")
        table[int(key)] = _validate.real(owner, f"class_weight[{key}]", value, low=0.0)
    return table[labels].astype(model.dtype)


def _example_weights(model, owner, y, w, class_weight):
    """The per-example loss weights: the checked sample weights w times the
    class weight of each example's label (Keras multiplies the two); None
    when neither is given."""
    if class_weight is None:
        return w
    c = _class_weight(model, owner, class_weight, y)
    return c if w is None else w * c


def train_on_batch(model, x, y, sample_weight=None, class_weight=None):
    """Model.train_on_batch (its docstring says what it does)."""
    model._require_compiled("train_on_batch")
    x, y = prepare(model, "train_on_batch", x, y)
    w = _example_weights(model, "train_on_batch", y,
                         _sample_weight(model, "train_on_batch", sample_weight, len(y)),
                         class_weight)
    model._engine.set_learning_rate(model._optimizer.lr_at(model._engine.steps))
    return float(model._engine.train_step(x, y, model._labels(), sample_weight=w))


def fit(model, x, y, batch_size=32, epochs=1, validation_data=None, validation_split=0.0,
        shuffle=True, callbacks=None, verbose=1, class_weight=None, sample_weight=None):
    """Model.fit (its docstring says what it does)."""
    model._require_compiled("fit")
    batch_size = _validate.integer("fit", "batch_size", batch_size, minimum=1)
    epochs = _validate.integer("fit", "epochs", epochs, minimum=0)
    validation_split = _validate.real("fit", "validation_split", validation_split, low=0.0,
                                      high=1.0, high_open=True)
    x, y = prepare(model, "fit", x, y)
    sample_weight = _sample_weight(model, "fit", sample_weight, len(x))
    if validation_data is None and validation_split > 0:
        # Keras's split: the first ⌊n·(1 − split)⌋ examples train, the rest validate.
        cut = int(math.floor(len(x) * (1.0 - validation_split)))
        if cut in (0, len(x)):
            raise ValueError(f"fit: validation_split={validation_split} leaves no examples "
                             f"for training or validation out of {len(x)}")
        split = (None, None) if sample_weight is None else (sample_weight[:cut], sample_weight[cut:])
        validation_data = (x[cut:], y[cut:], split[1])
        x, y, sample_weight = x[:cut], y[:cut], split[0]
    elif validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val)")
        owner = "fit (validation_data)"
        xv, yv = prepare(model, owner, *validation_data[:2])
        wv = validation_data[2] if len(validation_data) == 3 else None
        validation_data = (xv, yv, _sample_weight(model, owner, wv, len(xv)))
    weights = _example_weights(model, "fit", y, sample_weight, class_weight)

    history = callbacks_module.History()
    cbs = [*(callbacks or []), history]
    for cb in cbs:
        if not isinstance(cb, callbacks_module.Callback):
            raise TypeError(f"fit: callbacks must be Callback instances, got {cb!r}")
        cb.set_model(model)
    model.stop_training = False
    # Anything that fails mid-way (a callback, a bad schedule value) leaves
    # the model as it was before fit: weights, batch norm statistics,
    # optimizer state and step count.
    saved = (model._engine.get_parameters(), model._engine.get_state(),
             model._engine.get_optimizer_state())
    try:
        _fit_loop(model, x, y, weights, batch_size, epochs, validation_data, shuffle, cbs, verbose)
    except Exception:
        model._engine.set_parameters(saved[0])
        model._engine.set_state(saved[1])
        model._engine.set_optimizer_state(*saved[2])
        raise
    return history


def _fit_loop(model, x, y, w, batch_size, epochs, validation_data, shuffle, cbs, verbose):
    labels = model._labels()
    n = len(x)
    batches = (n + batch_size - 1) // batch_size
    for cb in cbs:
        cb.on_train_begin()
    for epoch in range(epochs):
        for cb in cbs:
            cb.on_epoch_begin(epoch)
        if shuffle:
            # One gather per epoch; the batches are then contiguous views.
            order = np.random.default_rng(_core.next_key()).permutation(n)
            xe, ye = x[order], y[order]
            we = None if w is None else w[order]
        else:
            xe, ye, we = x, y, w
        started = time.perf_counter()
        total_loss, seen, outputs = 0.0, 0, []
        bar = _progress(batches, f"Epoch {epoch + 1}/{epochs}", verbose)
        for b in range(batches):
            for cb in cbs:
                cb.on_train_batch_begin(b)
            batch = slice(b * batch_size, (b + 1) * batch_size)
            xb, yb, wb = xe[batch], ye[batch], None if we is None else we[batch]
            model._engine.set_learning_rate(model._optimizer.lr_at(model._engine.steps))
            if model._metrics:
                loss, out = model._engine.train_step(xb, yb, labels, True, wb)
                outputs.append(out)
            else:
                loss = model._engine.train_step(xb, yb, labels, sample_weight=wb)
            total_loss += loss * len(xb)
            seen += len(xb)
            for cb in cbs:
                cb.on_train_batch_end(b, {"loss": loss})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if model.stop_training:  # e.g. TerminateOnNaN: not one more update
                break
        logs = {"loss": total_loss / seen}
        # Training metrics over the epoch's outputs at once: precision, recall
        # and F1 are not means of per-batch values.
        if model._metrics:
            out = np.concatenate(outputs)
            logs.update({name: fn(out, ye[:seen], model._loss) for name, fn in model._metrics})
        if validation_data is not None:
            xv, yv, wv = validation_data
            val = _evaluate_arrays(model, xv, yv, max(batch_size, 256), wv)
            logs.update({f"val_{k}": v for k, v in val.items()})
        if bar is not None:
            bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
            bar.close()
        elif verbose:
            secs = time.perf_counter() - started
            shown = " - ".join(f"{k}: {v:.4f}" for k, v in logs.items())
            print(f"Epoch {epoch + 1}/{epochs} - {secs:.2f}s - {shown}", file=sys.stderr)
        for cb in cbs:
            cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for cb in cbs:
        cb.on_train_end()


def evaluate(model, x, y, batch_size=256, verbose=0, sample_weight=None):
    """Model.evaluate (its docstring says what it does)."""
    model._require_compiled("evaluate")
    batch_size = _validate.integer("evaluate", "batch_size", batch_size, minimum=1)
    x, y = prepare(model, "evaluate", x, y)
    sample_weight = _sample_weight(model, "evaluate", sample_weight, len(x))
    return _evaluate_arrays(model, x, y, batch_size, sample_weight)


def _evaluate_arrays(model, x, y, batch_size, sample_weight=None):
    labels = model._labels()
    total, outputs = 0.0, []
    for start in range(0, len(x), batch_size):
        xb, yb = x[start:start + batch_size], y[start:start + batch_size]
        wb = None if sample_weight is None else sample_weight[start:start + batch_size]
        loss, out = model._engine.evaluate(xb, yb, labels, wb)
        total += loss * len(xb)
        outputs.append(out)
    out = np.concatenate(outputs)
    result = {"loss": total / len(x)}
    for name, fn in model._metrics:
        result[name] = fn(out, y, model._loss)
    return result


def predict(model, x, batch_size=256, verbose=0):
    """Model.predict (its docstring says what it does)."""
    batch_size = _validate.integer("predict", "batch_size", batch_size, minimum=1)
    x, _ = prepare(model, "predict", x, empty_ok=True)
    if len(x) <= batch_size:
        return model._engine.predict(x)
    return np.concatenate([model._engine.predict(x[s:s + batch_size])
                           for s in range(0, len(x), batch_size)])


def _progress(total, desc, verbose):
    if verbose != 1:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stderr)
