"""The training loop behind Model.fit, evaluate, predict, train_on_batch and
the gradient methods (vjp, compute_gradients, apply_gradients).

Python here only checks the data, slices mini-batches and keeps the history;
every pass over a batch (forward, losses, backward, update) is one call into
the C++ engine with the GIL released. Each function takes the Model it
serves. Data travels as lists: one array per model input (x) and one per
model output (y, None for an output without a loss)."""

import math
import numbers
import sys
import time
from collections.abc import Iterator, Mapping

import numpy as np

from . import _core, _validate, callbacks as callbacks_module, distributed


def _as_array(owner, name, value):
    try:
        return np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"{owner}: {name} must be array-like: {exc}") from None


def _per_item(owner, what, value, names, listed, kind):
    """value as a list with one entry per name: a list (when there are several,
    or the model was given lists), a dict keyed by name, or one value."""
    if len(names) == 1 and type(value) is np.ndarray:  # the common call, without the Mapping ABC's 1 µs check
        return [value]
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in names]
        missing = [n for n in names if n not in value]
        if unknown or missing:
            raise ValueError(f"{owner}: {what} must be keyed by the model's {kind} names "
                             f"({', '.join(map(repr, names))}); "
                             + (f"unknown {', '.join(map(repr, unknown))}" if unknown else
                                f"missing {', '.join(map(repr, missing))}"))
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)) and (len(names) > 1 or listed):
        if len(value) != len(names):
            raise ValueError(f"{owner}: {what} must be a list of {len(names)} arrays, one per "
                             f"{kind} ({', '.join(map(repr, names))}), got {len(value)}")
        return list(value)
    if len(names) != 1:
        raise ValueError(f"{owner}: {what} must be a list (or a dict keyed by name) of "
                         f"{len(names)} arrays, one per {kind} ({', '.join(map(repr, names))}), "
                         f"got one {type(value).__name__}")
    return [value]


def _inputs(model, owner, x, empty_ok):
    """x as one cast, checked array per model input; whether each is integer."""
    model._ensure_built(x)
    names = model.input_names
    xs, integer = [], []
    for name, source, v in zip(names, model._inputs,
                               _per_item(owner, "x", x, names, model._inputs_listed, "input")):
        label = "x" if len(names) == 1 else f"x[{name!r}]"
        v = _as_array(owner, label, v)
        if v.dtype.kind not in "fiub":
            raise TypeError(f"{owner}: {label} must be numeric, got dtype {v.dtype}")
        shape = source.shape
        if v.shape != ((len(v), *shape) if v.ndim >= 1 else None):
            raise ValueError(f"{owner}: {label} must have shape (batch, {', '.join(map(str, shape))}),"
                             f" got {v.shape}{_validate.channels_last(label, v.shape, shape)}")
        if not empty_ok:
            _validate.examples(owner, label, v)
        integer.append(v.dtype.kind != "f")
        if v.dtype == model.dtype and v.flags.c_contiguous:
            xs.append(v)  # already what the engine takes (np.errstate alone costs a batch-1 MLP 10%)
            continue
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused below
            xs.append(np.ascontiguousarray(v, dtype=model.dtype))
    if len({len(v) for v in xs}) > 1:
        raise ValueError(f"{owner}: the inputs must hold the same number of examples, got "
                         f"{', '.join(f'{n}: {len(v)}' for n, v in zip(names, xs))}")
    return xs, integer


def prepare(model, owner, x, y=None, empty_ok=False):
    """Cast and check x (and y) against the model: errors before any work.
    Returns (xs, ys): one array per input, one per output (None where the
    output has no loss; ys is None without y). Zero examples are an error
    except where empty_ok (predict: zero rows out)."""
    xs, integer = _inputs(model, owner, x, empty_ok)
    if y is None:
        return xs, None  # predict: a NaN in a row propagates to that row's output
    # Training and evaluation refuse NaN/inf (after the cast, which may
    # overflow): one would turn the loss NaN and, in training, skip the step.
    for label, v, is_int in zip(model.input_names, xs, integer):
        if not is_int:
            _validate.finite(owner, "x" if len(xs) == 1 else f"x[{label!r}]", v)
    names = model.output_names
    n = len(xs[0])
    ys = []
    for o, (name, loss, t) in enumerate(zip(names, model._losses, _per_item(
            owner, "y", y, names, model._outputs_listed, "output"))):
        label = "y" if len(names) == 1 else f"y[{name!r}]"
        if loss is None:
            ys.append(None)  # no loss: the target is not used
        elif t is None:
            raise ValueError(f"{owner}: {label} is None, but output {name!r} has a loss")
        else:
            ys.append(_target(model, owner, label, loss, _as_array(owner, label, t), n,
                              tuple(model._outputs[o].shape[1:])))
    return xs, ys


def _target(model, owner, label, loss, y, n, out_shape):
    """One output's targets checked against its loss and shape."""
    if y.ndim == 0 or len(y) != n:
        raise ValueError(f"{owner}: x and {label} must hold the same number of examples, "
                         f"got {n} and {len(y) if y.ndim else 'a scalar'}")
    if loss == "softmax_cross_entropy":
        # A sequence output (N, T, K) takes a class id per step, -1 = ignored.
        sequence = len(out_shape) == 2
        classes = out_shape[-1] if sequence else int(np.prod(out_shape))
        if sequence and y.shape != (n, out_shape[0]):
            raise ValueError(f"{owner}: softmax_cross_entropy needs {label} of shape ({n}, {out_shape[0]}) "
                             f"(a class id per step, -1 = ignored) for the output of shape "
                             f"{(n, *out_shape)}, got {y.shape}")
        if not sequence and y.ndim != 1:
            raise ValueError(f"{owner}: softmax_cross_entropy needs {label} of shape ({n},) "
                             f"(integer class ids), got {y.shape}")
        if y.dtype.kind == "f":
            _validate.finite(owner, label, y)
            if np.any(y != np.round(y)):
                raise ValueError(f"{owner}: class ids in {label} must be whole numbers")
        elif y.dtype.kind not in "iub":
            raise TypeError(f"{owner}: {label} must hold integer class ids, got dtype {y.dtype}")
        y = np.ascontiguousarray(y, dtype=np.int64)
        low = -1 if sequence else 0
        if y.size and (y.min() < low or y.max() >= classes):
            bad = int(y[(y < low) | (y >= classes)][0])
            raise ValueError(f"{owner}: class id {bad} in {label} is outside [0, {classes}) "
                             f"for a model with {classes} outputs" + (" and is not -1 (ignored)" if sequence else ""))
        return y
    if y.dtype.kind not in "fiub":
        raise TypeError(f"{owner}: {label} must be numeric, got dtype {y.dtype}")
    if isinstance(loss, str):  # a built-in loss compares y with the output element-wise
        if y.ndim == 1 and out_shape == (1,):
            y = y.reshape(-1, 1)
        if y.shape != (n, *out_shape):
            raise ValueError(f"{owner}: {label} must have shape {(n, *out_shape)} to match the "
                             f"model's output, got {y.shape}")
    with np.errstate(over="ignore"):
        y = np.ascontiguousarray(y, dtype=model.dtype)
    # binary cross-entropy reads NaN targets as missing labels.
    _validate.finite(owner, label, y, allow_nan=loss == "binary_cross_entropy")
    return y


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


def _class_weight(model, owner, class_weight, ys):
    """Each example's weight from class_weight {class index: weight}, as Keras's
    class_weight_to_sample_weights: the integer label for softmax cross-entropy,
    the rounded 0/1 target for binary cross-entropy with one output column;
    classes missing from the dict (and missing binary labels) weigh 1."""
    if not isinstance(class_weight, Mapping):
        raise TypeError(f"{owner}: class_weight must be a dict {{class index: weight}}, got "
                        f"{type(class_weight).__name__}")
    if len(ys) != 1:
        raise ValueError(f"{owner}: class_weight needs a model with one output, this one has "
                         f"{len(ys)}; pass sample_weight instead")
    y, loss = ys[0], model._losses[0]
    out_shape = tuple(model._outputs[0].shape[1:])
    if loss == "softmax_cross_entropy":
        classes, labels = int(np.prod(out_shape)), y
    elif loss == "binary_cross_entropy" and int(np.prod(out_shape)) == 1:
        rounded = np.round(y.reshape(-1))
        # NaN targets (missing labels, skipped by the loss) index the spare slot.
        classes = 2
        labels = np.where(np.isfinite(rounded) & (rounded >= 0) & (rounded <= 1),
                          rounded, classes).astype(np.int64)
    else:
        raise ValueError(f"{owner}: class_weight needs softmax_cross_entropy (integer labels) "
                         f"or binary_cross_entropy with one output column; the model has "
                         f"loss {loss!r} and output shape {out_shape}")
    table = np.ones(classes + 1)  # the last slot: targets outside the classes weigh 1
    for key, value in class_weight.items():
        integral = isinstance(key, numbers.Integral) and not isinstance(key, bool)
        if not integral or not 0 <= key < classes:
            raise ValueError(f"{owner}: class_weight key {key!r} is not a class index in "
                             f"[0, {classes})")
        table[int(key)] = _validate.real(owner, f"class_weight[{key}]", value, low=0.0)
    return table[labels].astype(model.dtype)


def _example_weights(model, owner, ys, w, class_weight):
    """The per-example loss weights: the checked sample weights w times the
    class weight of each example's label (Keras multiplies the two); None
    when neither is given."""
    if class_weight is None:
        return w
    c = _class_weight(model, owner, class_weight, ys)
    return c if w is None else w * c


def _rows(arrays, index):
    """The same rows (a slice or an index array) of each array (None stays None)."""
    return [None if a is None else a[index] for a in arrays]


def _set_learning_rate(model):
    model._engine.set_learning_rate(model._optimizer.lr_at(model._engine.steps))


def train_on_batch(model, x, y, sample_weight=None, class_weight=None):
    """Model.train_on_batch (its docstring says what it does)."""
    model._require_compiled("train_on_batch")
    xs, ys = prepare(model, "train_on_batch", x, y)
    w = _example_weights(model, "train_on_batch", ys,
                         _sample_weight(model, "train_on_batch", sample_weight, len(xs[0])),
                         class_weight)
    _set_learning_rate(model)
    if distributed.active():
        distributed.ensure_broadcast(model)
        return float(distributed.train_step(model, xs, ys, w, False)[0])
    return float(model._engine.train_step(xs, ys, w)[0])


def fit(model, x, y, batch_size=32, epochs=1, validation_data=None, validation_split=0.0,
        shuffle=True, callbacks=None, verbose=1, class_weight=None, sample_weight=None, initial_epoch=0):
    """Model.fit (its docstring says what it does)."""
    if isinstance(x, Iterator):
        raise TypeError(f"fit: x is a {type(x).__name__}; generators and iterators of batches are not "
                        "supported: pass the arrays fit(x, y) (np.concatenate the batches), or call "
                        "train_on_batch(xb, yb) for each batch")
    if y is None:
        raise TypeError("fit: y (the targets) is missing: fit(x, y) takes arrays of examples and "
                        "targets; generators and datasets are not supported")
    model._require_compiled("fit")
    batch_size = _validate.integer("fit", "batch_size", batch_size, minimum=1)
    epochs = _validate.integer("fit", "epochs", epochs, minimum=0)
    initial_epoch = _validate.integer("fit", "initial_epoch", initial_epoch, minimum=0)
    validation_split = _validate.real("fit", "validation_split", validation_split, low=0.0,
                                      high=1.0, high_open=True)
    xs, ys = prepare(model, "fit", x, y)
    n = len(xs[0])
    sample_weight = _sample_weight(model, "fit", sample_weight, n)
    if validation_data is None and validation_split > 0:
        # Keras's split: the first ⌊n·(1 − split)⌋ examples train, the rest validate.
        cut = int(math.floor(n * (1.0 - validation_split)))
        if cut in (0, n):
            raise ValueError(f"fit: validation_split={validation_split} leaves no examples "
                             f"for training or validation out of {n}")
        split = (None, None) if sample_weight is None else (sample_weight[:cut], sample_weight[cut:])
        validation_data = (_rows(xs, slice(cut, None)), _rows(ys, slice(cut, None)), split[1])
        xs, ys, sample_weight = _rows(xs, slice(None, cut)), _rows(ys, slice(None, cut)), split[0]
    elif validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be a tuple (x_val, y_val) or "
                             "(x_val, y_val, sample_weight_val)")
        owner = "fit (validation_data)"
        xv, yv = prepare(model, owner, *validation_data[:2])
        wv = validation_data[2] if len(validation_data) == 3 else None
        validation_data = (xv, yv, _sample_weight(model, owner, wv, len(xv[0])))
    weights = _example_weights(model, "fit", ys, sample_weight, class_weight)

    history = callbacks_module.History()
    if callbacks is not None and not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"fit: callbacks must be a list of Callback instances, got {callbacks!r}")
    cbs = [*(callbacks or []), history]
    for cb in cbs:
        if not isinstance(cb, callbacks_module.Callback):
            raise TypeError(f"fit: callbacks must be Callback instances, got {cb!r}")
        cb.set_model(model)
    model.stop_training = False
    if distributed.active():  # every rank starts from rank 0's model; rank 0 alone reports
        distributed.broadcast_model(model)
        verbose = verbose if distributed.is_chief() else 0
    # Anything that fails mid-way (a callback, a bad schedule value) leaves
    # the model as it was before fit: weights, batch norm statistics,
    # optimizer state and step count.
    saved = (model._engine.get_parameters(), model._engine.get_state(),
             model._engine.get_optimizer_state())
    try:
        _fit_loop(model, xs, ys, weights, batch_size, range(initial_epoch, epochs), validation_data,
                  shuffle, cbs, verbose)
    except Exception:
        model._engine.set_parameters(saved[0])
        model._engine.set_state(saved[1])
        model._engine.set_optimizer_state(*saved[2])
        raise
    return history


def _logs(model, loss, output_losses, outputs, ys):
    """evaluate's and History's dict: "loss", then with several outputs each
    "<output>_loss", then the metrics (over all the outputs at once: precision,
    recall and F1 are not means of per-batch values)."""
    names = model.output_names
    logs = {"loss": loss}
    if len(names) > 1:
        logs.update({f"{name}_loss": float(value) for name, value, l in
                     zip(names, output_losses, model._losses) if l is not None})
    for o, metrics in enumerate(model._output_metrics):
        for name, fn in metrics:
            logs[model._metric_key(o, name)] = fn(outputs[o], ys[o], model._losses[o])
    return logs


def _masked_labels(model, xs, ys, batch_size=256):
    """(ys, metric_ys): the targets with those of masked steps marked missing,
    for the metrics of sequence outputs (N, T, ...): a metric sees targets and
    outputs only, so the output's mask (Embedding(mask_zero=True), Masking)
    reaches it as missing targets, which every built-in metric leaves out
    (corenn.metrics). Class ids (N, T) under softmax_cross_entropy become -1
    (ignored) in both: that loss leaves masked steps out already, so it is
    unchanged. Float targets become NaN in metric_ys only: the other losses
    read the mask in the engine (and mse would turn NaN into a NaN loss). Masks follow
    from x alone: one inference pass."""
    wanted = [o for o, (metrics, y) in enumerate(zip(model._output_metrics, ys))
              if metrics and y is not None and y.ndim >= 2]
    if not wanted:
        return ys, ys
    n = len(xs[0])
    parts = [model._engine.output_masks(_rows(xs, slice(s, s + batch_size))) for s in range(0, n, batch_size)]
    ys, metric_ys = list(ys), list(ys)
    for o in wanted:
        if not parts or parts[0][o] is None:
            continue
        mask = np.concatenate([p[o] for p in parts])
        if ys[o].shape[:mask.ndim] != mask.shape:
            continue
        kept = (mask != 0).reshape(mask.shape + (1,) * (ys[o].ndim - mask.ndim))
        if model._losses[o] == "softmax_cross_entropy" and ys[o].ndim == 2:
            ys[o] = metric_ys[o] = np.where(kept, ys[o], -1)
        else:
            metric_ys[o] = np.where(kept, ys[o], np.nan)
    return ys, metric_ys


def _fit_loop(model, xs, ys, w, batch_size, epoch_numbers, validation_data, shuffle, cbs, verbose):
    n = len(xs[0])
    ys, metric_ys = _masked_labels(model, xs, ys)
    batches = (n + batch_size - 1) // batch_size
    with_outputs = any(model._output_metrics)
    parallel = distributed.active()  # each rank trains on its shard (corenn/distributed.py)
    # Each epoch's permutation is seeded by a draw from the global generator;
    # under data parallelism by rank 0's draw, so all ranks (and one process
    # with the same corenn.seed) shuffle alike.
    draw = distributed.shuffle_seed if parallel else lambda next_key: next_key()
    span = distributed.size() * batch_size
    step = distributed.train_step if parallel else _engine_step
    for cb in cbs:
        cb.on_train_begin()
    epochs = epoch_numbers.stop
    for epoch in epoch_numbers:
        for cb in cbs:
            cb.on_epoch_begin(epoch)
        order = np.random.default_rng(draw(_core.next_key)).permutation(n) if shuffle else None
        if parallel:  # this rank's share of every global batch
            rows, batches = distributed.shard(np.arange(n) if order is None else order, batch_size)
            xe, ye, we = _rows(xs, rows), _rows(ys, rows), None if w is None else w[rows]
            me = _rows(metric_ys, rows)
        elif shuffle:
            # One gather per epoch; the batches are then contiguous views.
            xe, ye, me = _rows(xs, order), _rows(ys, order), _rows(metric_ys, order)
            we = None if w is None else w[order]
        else:
            xe, ye, me, we = xs, ys, metric_ys, w
        started = time.perf_counter()
        total_loss, seen, examples, outputs = 0.0, 0, 0, []
        output_totals = [0.0] * len(ys)  # logged for several outputs only
        bar = _progress(batches, f"Epoch {epoch + 1}/{epochs}", verbose)
        for b in range(batches):
            for cb in cbs:
                cb.on_train_batch_begin(b)
            batch = slice(b * batch_size, (b + 1) * batch_size)
            xb, yb, wb = _rows(xe, batch), _rows(ye, batch), None if we is None else we[batch]
            _set_learning_rate(model)
            result = step(model, xb, yb, wb, with_outputs)
            loss, per_output = result[0], result[1]
            if with_outputs:
                outputs.append(result[2])
            size = len(xb[0])
            behind = min(span, n - b * span) if parallel else size  # the examples `loss` is the mean of
            total_loss += loss * behind
            examples += behind
            if len(ys) > 1:
                output_totals = [t + v * size for t, v in zip(output_totals, per_output)]
            seen += size
            for cb in cbs:
                cb.on_train_batch_end(b, {"loss": loss})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if model.stop_training:  # e.g. TerminateOnNaN: not one more update
                break
        joined = [np.concatenate([o[k] for o in outputs]) for k in range(len(ys))] if outputs else []
        targets = _rows(me, slice(None, seen))
        if parallel:  # the logs of all the ranks' examples, the same on every rank
            *output_totals, seen = distributed.sum_over_ranks([*output_totals, seen])
            joined, targets = distributed.gather_rows(joined), distributed.gather_rows(targets)
            distributed.average_state(model)
        logs = _logs(model, total_loss / examples, [t / seen for t in output_totals], joined, targets)
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


def _engine_step(model, xb, yb, wb, with_outputs):
    return model._engine.train_step(xb, yb, wb, with_outputs)


def evaluate(model, x, y, batch_size=256, verbose=0, sample_weight=None):
    """Model.evaluate (its docstring says what it does)."""
    model._require_compiled("evaluate")
    batch_size = _validate.integer("evaluate", "batch_size", batch_size, minimum=1)
    xs, ys = prepare(model, "evaluate", x, y)
    sample_weight = _sample_weight(model, "evaluate", sample_weight, len(xs[0]))
    if distributed.active():
        distributed.average_state(model)
    return _evaluate_arrays(model, xs, ys, batch_size, sample_weight)


def _evaluate_arrays(model, xs, ys, batch_size, sample_weight=None):
    n = len(xs[0])
    ys, metric_ys = _masked_labels(model, xs, ys, batch_size)
    if not distributed.active():
        total, output_totals, joined = _evaluate_sums(model, xs, ys, batch_size, sample_weight)
    else:  # each rank evaluates every K-th row; the sums and outputs are gathered
        mine, order = distributed.evaluate_shard(n)
        total, output_totals, joined = _evaluate_sums(
            model, _rows(xs, mine), _rows(ys, mine), batch_size,
            None if sample_weight is None else sample_weight[mine])
        total, *output_totals = distributed.sum_over_ranks([total, *output_totals])
        joined, metric_ys = distributed.gather_rows(joined), _rows(metric_ys, order)
    return _logs(model, total / n, [t / n for t in output_totals], joined, metric_ys)


def _evaluate_sums(model, xs, ys, batch_size, sample_weight):
    """Σ loss·batch, Σ output loss·batch and the outputs over xs in batches."""
    n = len(xs[0])
    total, output_totals = 0.0, [0.0] * len(ys)
    outputs = [[np.zeros((0, *o.shape[1:]), model.dtype) for o in model._outputs]]
    for start in range(0, n, batch_size):
        rows = slice(start, start + batch_size)
        wb = None if sample_weight is None else sample_weight[rows]
        loss, per_output, out = model._engine.evaluate(_rows(xs, rows), _rows(ys, rows), wb)
        size = len(out[0])
        total += loss * size
        output_totals = [t + v * size for t, v in zip(output_totals, per_output)]
        outputs.append(out)
    return total, output_totals, [np.concatenate([o[k] for o in outputs]) for k in range(len(ys))]


def _structured_outputs(model, arrays):
    return list(arrays) if model._outputs_listed else arrays[0]


def predict(model, x, batch_size=256, verbose=0):
    """Model.predict (its docstring says what it does)."""
    batch_size = _validate.integer("predict", "batch_size", batch_size, minimum=1)
    xs, _ = prepare(model, "predict", x, empty_ok=True)
    n = len(xs[0])
    if n <= batch_size:
        return _structured_outputs(model, model._engine.predict(xs))
    parts = [model._engine.predict(_rows(xs, slice(s, s + batch_size))) for s in range(0, n, batch_size)]
    return _structured_outputs(model, [np.concatenate([p[k] for p in parts])
                                       for k in range(len(parts[0]))])


# ---------------------------------------------------------------- gradients

def vjp(model, x, training):
    """Model.vjp (its docstring says what it does)."""
    xs, _ = prepare(model, "vjp", x)
    ys = model._engine.vjp(xs, training)
    generation = model._engine.vjp_generation  # a later vjp makes this pullback stale
    shapes = [y.shape for y in ys]

    def pullback(dy):
        """dx (shaped like the model's inputs) from dy (shaped like its outputs)."""
        names = model.output_names
        dys = []
        for name, shape, d in zip(names, shapes, _per_item("pullback", "dy", dy, names,
                                                           model._outputs_listed, "output")):
            label = "dy" if len(names) == 1 else f"dy[{name!r}]"
            d = _as_array("pullback", label, d)
            if d.shape != shape:
                raise ValueError(f"pullback: {label} must have the shape of the output y, "
                                 f"{shape}, got {d.shape}")
            with np.errstate(over="ignore"):
                dys.append(np.ascontiguousarray(d, dtype=model.dtype))
        dxs = model._engine.pullback(dys, generation)
        return list(dxs) if model._inputs_listed else dxs[0]

    return _structured_outputs(model, ys), pullback


def compute_gradients(model, x, y, sample_weight=None):
    """Model.compute_gradients (its docstring says what it does)."""
    model._require_compiled("compute_gradients")
    xs, ys = prepare(model, "compute_gradients", x, y)
    w = _sample_weight(model, "compute_gradients", sample_weight, len(xs[0]))
    if distributed.active():  # the mean over every rank's batch
        distributed.ensure_broadcast(model)
        loss, flat = distributed.compute_gradients(model, xs, ys, w)
    else:
        loss, flat = model._engine.loss_and_gradients(xs, ys, w)
    return float(loss), [flat[o:o + _size(s)].reshape(s).copy() for o, s in model._trainable_layout()]


def apply_gradients(model, grads):
    """Model.apply_gradients (its docstring says what it does)."""
    model._require_compiled("apply_gradients")
    layout = model._trainable_layout()
    grads = list(grads)
    if len(grads) != len(layout):
        raise ValueError(f"apply_gradients: grads must hold {len(layout)} arrays, one per "
                         f"model.trainable_weights entry, got {len(grads)}")
    end = max((int(o) + _size(s) for _, _, o, s in model._engine.parameter_layout()), default=0)
    flat = np.zeros(end, dtype=model.dtype)  # frozen layers' entries stay zero
    for i, ((o, s), g) in enumerate(zip(layout, grads)):
        g = _as_array("apply_gradients", f"grads[{i}]", g)
        if g.shape != s:
            raise ValueError(f"apply_gradients: grads[{i}] must have shape {s} (like "
                             f"trainable_weights[{i}]), got {g.shape}")
        flat[o:o + _size(s)] = g.ravel()
    _set_learning_rate(model)
    return bool(model._engine.apply_gradients(flat))


def _is_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a stand-in stream, or a closed one
        return False


def _size(shape):
    return int(np.prod(shape, dtype=np.int64))


def _progress(total, desc, verbose):
    """A progress bar for verbose=1 on a terminal; None otherwise, and the epoch
    is logged as one line (Keras's non-interactive form: a redrawn bar would
    turn a log file into one long line of carriage returns)."""
    if verbose != 1 or not _is_terminal(sys.stderr):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stderr)
