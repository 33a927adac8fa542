"""Model and Sequential: Keras's model API over the C++ engine (corenn._core.Engine).

Python here only slices mini-batches and keeps the history; every pass over the
data (forward, loss, backward, update) is one call into C++ with the GIL
released."""

import math
import numbers
import sys
import time
import warnings
from collections.abc import Mapping

import numpy as np

from . import _core, _validate, callbacks as callbacks_module, layers as layers_module
from . import losses, metrics as metrics_module, optimizers as optimizers_module, saving


def _as_array(owner, name, value):
    try:
        return np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy's own message is kept
        raise TypeError(f"{owner}: {name} must be array-like: {exc}") from None


class Model:
    """A graph of layers (Keras's functional API), run by the C++ engine:

        x = Input((3, 32, 32))
        h = Conv2D(8, 3, padding="same", activation="relu")(x)
        y = Dense(10)(Flatten()(Add()([h, Conv2D(8, 1)(x)])))
        model = Model(inputs=x, outputs=y)

    One input and one output. The layers are those on a path from the input to
    the output; shapes are checked, and weights initialised, right away. A layer
    that already belongs to another model brings its current weights along
    (transfer learning: a new head on a trained base); the two models then
    train independently, and the layer's get_weights() reads the newer one.
    Inputs of another dtype are cast to the model's dtype (float32 by default;
    float64 for gradient checking).
    """

    def __init__(self, inputs, outputs, dtype="float32", name=None):
        self._init(dtype, name or "model")
        source = self._single("inputs", inputs)
        if not isinstance(source, (layers_module.Input, layers_module.SymbolicTensor)) or (
                isinstance(source, layers_module.SymbolicTensor)
                and not isinstance(source.layer, layers_module.Input)):
            raise TypeError(f"Model: inputs must be an Input, got {source!r}")
        self._input = source if isinstance(source, layers_module.Input) else source.layer
        self._input_shape = self._input.shape
        self._layers, self._inbound = _trace(self._input, layers_module._symbolic(
            "Model (outputs)", self._single("outputs", outputs)))
        self.build()

    def _init(self, dtype, name):
        _validate.choice(type(self).__name__, "dtype", dtype, ("float32", "float64"))
        self.dtype = np.dtype(dtype)
        self.name = name
        self._layers = []
        self._inbound = None  # layer name -> names of its inputs (the Input's among them)
        self._input = None
        self._input_shape = None
        self._engine = None
        self._loss = None
        self._optimizer = None
        self._metrics = []
        self.stop_training = False

    @staticmethod
    def _single(what, value):
        if isinstance(value, (list, tuple)):
            if len(value) != 1:
                raise ValueError(f"Model: {what} must be one tensor (models have one input and "
                                 f"one output), got {len(value)}")
            value = value[0]
        return value

    # ----------------------------------------------------------------- building
    @property
    def layers(self):
        return list(self._layers)

    @property
    def input(self):
        return None if self._input is None else self._input.output

    @property
    def output(self):
        self._ensure_built()
        return self._layers[self._engine.output_layer].output

    def get_layer(self, name=None, index=None):
        """A layer by name, or by its position in model.layers."""
        if index is not None:
            index = _validate.integer("get_layer", "index", index)
            if not -len(self._layers) <= index < len(self._layers):
                raise ValueError(f"get_layer: index {index} is out of range for "
                                 f"{len(self._layers)} layers")
            return self._layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"get_layer: no layer named {name!r}; layers are "
                         f"{', '.join(l.name for l in self._layers)}")

    @property
    def built(self):
        return self._engine is not None

    def build(self, input_shape=None):
        """Fix the per-example input shape, check every layer and initialise weights."""
        if input_shape is not None:
            self._input_shape = _validate.shape(f"{type(self).__name__}.build", "input_shape",
                                                input_shape)
        if self._input_shape is None:
            raise ValueError("build: the input shape is unknown; start the model with "
                             "Input(shape) or call build(input_shape)")
        if not self._layers:
            raise ValueError("build: the model has no layers")
        # A layer built before (in another model) keeps its weights.
        carried = {l.name: l.get_weights() for l in self._layers if l._engine is not None}
        engine = _core.Engine(self.dtype.name)
        engine.input_name = self._input_name()
        for layer in self._layers:
            config = layer._engine_config()
            if self._inbound is not None:
                config["inputs"] = self._inbound[layer.name]
            engine.add(config)
        engine.build(list(self._input_shape))
        for i, layer in enumerate(self._layers):
            if layer.name in carried:
                engine.set_weights(i, [np.asarray(w, dtype=self.dtype) for w in carried[layer.name]])
        for i, layer in enumerate(self._layers):
            layer._engine, layer._index = engine, i
        self._engine = engine
        if self._loss is not None:
            self._engine.compile(self._loss, None, self._optimizer._engine_config())

    def _input_name(self):
        return self._input.name if self._input is not None else "input"

    def _ensure_built(self, x=None):
        if self._engine is None:
            if self._input_shape is None and x is not None:
                self._input_shape = tuple(int(d) for d in np.shape(x)[1:])
                try:
                    self.build()
                except ValueError as exc:  # the shape came from x: x may be the mistake
                    self._input_shape = None
                    raise ValueError(f"{exc} (the input shape {tuple(np.shape(x)[1:])} was taken "
                                     f"from x){_validate.channels_last('x', np.shape(x))}") from None
            else:
                self.build()

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None, *self._input_shape)

    @property
    def output_shape(self):
        self._ensure_built()
        return (None, *self._engine.model_output_shape())

    def count_params(self):
        """Every weight, as Keras counts: parameters plus state (batch norm's
        moving averages, which summary() lists as non-trainable)."""
        self._ensure_built()
        return sum(self._layer_weight_count(i) for i in range(len(self._layers)))

    def _layer_weight_count(self, i):
        return int(self._engine.count_layer_params(i)) + int(self._engine.count_layer_state(i))

    def summary(self, print_fn=print):
        """Per layer: output shape, parameters and multiply-adds per example (the
        course's cost of a convolution: weights × the positions they slide over);
        graphs also list each layer's inputs."""
        self._ensure_built()
        e = self._engine
        graph = self._inbound is not None
        header = ("Layer (type)", "Output Shape", "Param #", "Mult-Adds") + (("Connected to",) if graph else ())
        rows = []
        for i, l in enumerate(self._layers):
            row = (f"{l.name} ({type(l).__name__})", str((None, *e.output_shape(i))),
                   f"{self._layer_weight_count(i):,}", f"{e.multiply_adds(i):,}")
            rows.append(row + ((", ".join(e.layer_inputs(i)),) if graph else ()))
        widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(header)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        trainable = sum(e.count_layer_params(i) for i, l in enumerate(self._layers) if l.trainable)
        total = self.count_params()
        rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
        out = [f'Model: "{self.name}"', line(header), rule, *(line(r) for r in rows), rule,
               f"Total params: {total:,}", f"Trainable params: {trainable:,}",
               f"Non-trainable params: {total - trainable:,}",
               f"Mult-adds per example: {self.multiply_adds():,}"]
        print_fn("\n".join(out))

    def multiply_adds(self):
        """Multiplications in one example's forward pass, summed over the layers."""
        self._ensure_built()
        return sum(int(self._engine.multiply_adds(i)) for i in range(len(self._layers)))

    def get_weights(self):
        self._ensure_built()
        return [w for i in range(len(self._layers)) for w in self._engine.get_weights(i)]

    def set_weights(self, weights):
        """Weights in get_weights() order; all are checked before any is written."""
        self._ensure_built()
        weights = list(weights)
        expected = self.get_weights()
        if len(weights) != len(expected):
            raise ValueError(f"set_weights: expected {len(expected)} arrays, got {len(weights)}")
        cast = []
        for i, (w, e) in enumerate(zip(weights, expected)):
            w = np.ascontiguousarray(w, dtype=self.dtype)
            if w.shape != e.shape:
                raise ValueError(f"set_weights: array {i} must have shape {e.shape}, got {w.shape}")
            cast.append(w)
        at = 0
        for i in range(len(self._layers)):
            n = len(self._engine.get_weights(i))
            self._engine.set_weights(i, cast[at:at + n])
            at += n

    # ---------------------------------------------------------------- training
    @_validate.keyword_checked
    def compile(self, optimizer="adam", loss="softmax_cross_entropy", metrics=None):
        self._optimizer = optimizers_module.get(optimizer)
        self._loss = losses.get(loss)
        self._metrics = [metrics_module.get(m) for m in (metrics or [])]
        _warn_activation_before_loss(self._layers[-1] if self._layers else None, self._loss)
        if self._engine is not None:
            self._engine.compile(self._loss, None, self._optimizer._engine_config())

    @property
    def optimizer(self):
        """The compiled optimizer (None before compile); callbacks change its learning_rate."""
        return self._optimizer

    def _require_compiled(self, owner):
        if self._loss is None:
            raise ValueError(f"{owner}: call compile(optimizer, loss) first")

    def _prepare(self, owner, x, y=None, empty_ok=False):
        """Cast and check x (and y) against the model: errors before any work.
        Zero examples are an error except where empty_ok (predict: zero rows out)."""
        x = _as_array(owner, "x", x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{owner}: x must be numeric, got dtype {x.dtype}")
        self._ensure_built(x)
        want = (len(x), *self._input_shape) if x.ndim >= 1 else None
        if x.shape != want:
            raise ValueError(f"{owner}: x must have shape (batch, {', '.join(map(str, self._input_shape))}),"
                             f" got {x.shape}{_validate.channels_last('x', x.shape, self._input_shape)}")
        if not empty_ok:
            _validate.examples(owner, "x", x)
        integer_x = x.dtype.kind != "f"
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf: refused below
            x = np.ascontiguousarray(x, dtype=self.dtype)
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
        out_shape = tuple(self._engine.model_output_shape())
        if self._loss == "softmax_cross_entropy":
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
                y = np.ascontiguousarray(y, dtype=self.dtype)
            # binary cross-entropy reads NaN targets as missing labels.
            _validate.finite(owner, "y", y, allow_nan=self._loss == "binary_cross_entropy")
        return x, y

    def _labels(self):
        return self._loss == "softmax_cross_entropy"

    def _sample_weight(self, owner, sample_weight, n):
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
            w = np.array(w, dtype=self.dtype)
        bad = ~(np.isfinite(w) & (w >= 0))
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{owner}: sample_weight must be finite and >= 0, got {w[i]} at "
                             f"example {i}")
        return w

    def _class_weight(self, owner, class_weight, y):
        """Each example's weight from class_weight {class index: weight}, as Keras's
        class_weight_to_sample_weights: the integer label for softmax cross-entropy,
        the rounded 0/1 target for binary cross-entropy with one output column;
        classes missing from the dict (and missing binary labels) weigh 1."""
        if not isinstance(class_weight, Mapping):
            raise TypeError(f"{owner}: class_weight must be a dict {{class index: weight}}, got "
                            f"{type(class_weight).__name__}")
        out_shape = tuple(self._engine.model_output_shape())
        if self._loss == "softmax_cross_entropy":
            classes, labels = int(np.prod(out_shape)), y
        elif self._loss == "binary_cross_entropy" and int(np.prod(out_shape)) == 1:
            rounded = np.round(y.reshape(-1))
            # NaN targets (missing labels, skipped by the loss) index the spare slot.
            classes = 2
            labels = np.where(np.isfinite(rounded) & (rounded >= 0) & (rounded <= 1),
                              rounded, classes).astype(np.int64)
        else:
            raise ValueError(f"{owner}: class_weight needs softmax_cross_entropy (integer labels) "
                             f"or binary_cross_entropy with one output column; the model has "
                             f"loss {self._loss!r} and output shape {out_shape}")
        table = np.ones(classes + 1)  # the last slot: targets outside the classes weigh 1
        for key, value in class_weight.items():
            integral = isinstance(key, numbers.Integral) and not isinstance(key, bool)
            if not integral or not 0 <= key < classes:
                raise ValueError(f"{owner}: class_weight key {key!r} is not a class index in "
                                 f"[0, {classes})")
            table[int(key)] = _validate.real(owner, f"class_weight[{key}]", value, low=0.0)
        return table[labels].astype(self.dtype)

    def _example_weights(self, owner, y, w, class_weight):
        """The per-example loss weights: the checked sample weights w times the
        class weight of each example's label (Keras multiplies the two); None
        when neither is given."""
        if class_weight is None:
            return w
        c = self._class_weight(owner, class_weight, y)
        return c if w is None else w * c

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None):
        """One optimizer update on (x, y); returns the loss before the update.
        sample_weight (N,) and class_weight {class: weight} weight each example's
        loss as in fit. A NaN or infinite loss or gradient skips the update
        (weights, batch norm statistics and optimizer state stay as they were)
        and returns NaN."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare("train_on_batch", x, y)
        w = self._example_weights("train_on_batch", y,
                                  self._sample_weight("train_on_batch", sample_weight, len(y)),
                                  class_weight)
        self._engine.set_learning_rate(self._optimizer.lr_at(self._engine.steps))
        return float(self._engine.train_step([x], [y], w)[0])

    @_validate.keyword_checked
    def fit(self, x, y, batch_size=32, epochs=1, validation_data=None, validation_split=0.0,
            shuffle=True, callbacks=None, verbose=1, class_weight=None, sample_weight=None):
        """Mini-batch training (the course's random_mini_batches: shuffled each
        epoch, the last batch partial). Returns a History. x and y must be finite
        (NaN targets of binary_cross_entropy are missing labels): ValueError
        otherwise, before any update. A batch whose loss or gradient is still not
        finite is skipped, and its loss (and so the epoch's) logged as NaN.

        sample_weight (N,) (finite, >= 0) and class_weight {class index: weight}
        follow Keras: each example's loss is multiplied by its weight (both
        multiply when both are given) and a batch's loss is the weighted sum
        divided by the batch size, not by the sum of the weights. The weights
        are shuffled with their examples and split off with validation_split;
        validation_data may be (x_val, y_val, sample_weight_val); class_weight
        applies to the training data only. Metrics stay unweighted."""
        self._require_compiled("fit")
        batch_size = _validate.integer("fit", "batch_size", batch_size, minimum=1)
        epochs = _validate.integer("fit", "epochs", epochs, minimum=0)
        validation_split = _validate.real("fit", "validation_split", validation_split, low=0.0,
                                          high=1.0, high_open=True)
        x, y = self._prepare("fit", x, y)
        sample_weight = self._sample_weight("fit", sample_weight, len(x))
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
            xv, yv = self._prepare(owner, *validation_data[:2])
            wv = validation_data[2] if len(validation_data) == 3 else None
            validation_data = (xv, yv, self._sample_weight(owner, wv, len(xv)))
        weights = self._example_weights("fit", y, sample_weight, class_weight)

        history = callbacks_module.History()
        cbs = [*(callbacks or []), history]
        for cb in cbs:
            if not isinstance(cb, callbacks_module.Callback):
                raise TypeError(f"fit: callbacks must be Callback instances, got {cb!r}")
            cb.set_model(self)
        self.stop_training = False
        # Anything that fails mid-way (a callback, a bad schedule value) leaves
        # the model as it was before fit: weights, batch norm statistics,
        # optimizer state and step count.
        saved = (self._engine.get_parameters(), self._engine.get_state(),
                 self._engine.get_optimizer_state())
        try:
            self._fit_loop(x, y, weights, batch_size, epochs, validation_data, shuffle, cbs,
                           verbose)
        except Exception:
            self._engine.set_parameters(saved[0])
            self._engine.set_state(saved[1])
            self._engine.set_optimizer_state(*saved[2])
            raise
        return history

    def _fit_loop(self, x, y, w, batch_size, epochs, validation_data, shuffle, cbs, verbose):
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
                self._engine.set_learning_rate(self._optimizer.lr_at(self._engine.steps))
                if self._metrics:
                    loss, _, (out,) = self._engine.train_step([xb], [yb], wb, True)
                    outputs.append(out)
                else:
                    loss = self._engine.train_step([xb], [yb], wb)[0]
                total_loss += loss * len(xb)
                seen += len(xb)
                for cb in cbs:
                    cb.on_train_batch_end(b, {"loss": loss})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4f}")
                if self.stop_training:  # e.g. TerminateOnNaN: not one more update
                    break
            logs = {"loss": total_loss / seen}
            # Training metrics over the epoch's outputs at once: precision, recall
            # and F1 are not means of per-batch values.
            if self._metrics:
                out = np.concatenate(outputs)
                logs.update({name: fn(out, ye[:seen], self._loss) for name, fn in self._metrics})
            if validation_data is not None:
                xv, yv, wv = validation_data
                val = self._evaluate_arrays(xv, yv, max(batch_size, 256), wv)
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
            if self.stop_training:
                break
        for cb in cbs:
            cb.on_train_end()

    def evaluate(self, x, y, batch_size=256, verbose=0, sample_weight=None):
        """Loss (with regularisation) and metrics in inference mode, as a dict.
        sample_weight (N,) weights each example's loss as in fit (metrics stay
        unweighted)."""
        self._require_compiled("evaluate")
        batch_size = _validate.integer("evaluate", "batch_size", batch_size, minimum=1)
        x, y = self._prepare("evaluate", x, y)
        sample_weight = self._sample_weight("evaluate", sample_weight, len(x))
        return self._evaluate_arrays(x, y, batch_size, sample_weight)

    def _evaluate_arrays(self, x, y, batch_size, sample_weight=None):
        total, outputs = 0.0, []
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            wb = None if sample_weight is None else sample_weight[start:start + batch_size]
            loss, _, (out,) = self._engine.evaluate([xb], [yb], wb)
            total += loss * len(xb)
            outputs.append(out)
        out = np.concatenate(outputs)
        result = {"loss": total / len(x)}
        for name, fn in self._metrics:
            result[name] = fn(out, y, self._loss)
        return result

    def predict(self, x, batch_size=256, verbose=0):
        """The model's outputs (logits for classification), in inference mode."""
        batch_size = _validate.integer("predict", "batch_size", batch_size, minimum=1)
        x, _ = self._prepare("predict", x, empty_ok=True)
        if len(x) <= batch_size:
            return self._engine.predict([x])[0]
        return np.concatenate([self._engine.predict([x[s:s + batch_size]])[0]
                               for s in range(0, len(x), batch_size)])

    def __call__(self, x):
        return self.predict(x)

    # ------------------------------------------------------------------ files
    def save(self, path, include_optimizer=True):
        """Architecture, weights and (include_optimizer) the compiled training
        state in one file; cn.load_model reads it back (corenn/saving.py)."""
        saving.save_model(self, path, include_optimizer)

    def save_weights(self, path):
        saving.save_model(self, path, include_optimizer=False)

    def load_weights(self, path):
        """Weights of a file saved from the same architecture; checked before any is written."""
        saving.load_weights(self, path)

    # ------------------------------------------------------------------ copies
    def get_config(self):
        layers = []
        for layer in self._layers:
            entry = {"class_name": type(layer).__name__, "config": layer.get_config()}
            if self._inbound is not None:
                entry["inbound"] = list(self._inbound[layer.name])
            layers.append(entry)
        return {"name": self.name, "dtype": self.dtype.name, "input_name": self._input_name(),
                "input_shape": None if self._input_shape is None else list(self._input_shape),
                "layers": layers}

    def _clone(self, dtype):
        """Same architecture, weights, loss and optimizer in another dtype."""
        self._ensure_built()
        clone = object.__new__(type(self))
        clone._init(dtype, self.name)
        clone._input, clone._input_shape = self._input, self._input_shape
        clone._inbound = None if self._inbound is None else dict(self._inbound)
        for layer in self._layers:
            copy = object.__new__(type(layer))
            copy.__dict__.update(layer.__dict__)
            copy._engine = copy._index = copy._inbound = copy.output = None
            clone._layers.append(copy)
        clone.build()
        clone.set_weights(self.get_weights())
        if self._loss is not None:
            with warnings.catch_warnings():  # the user's compile already warned about this model
                warnings.simplefilter("ignore", UserWarning)
                clone.compile(self._optimizer, self._loss)
        return clone


class Sequential(Model):
    """A linear stack of layers: Sequential([Input((784,)), Dense(128, activation="relu"),
    Dense(10)]). Building it connects the layers as a graph (layer.output, model.input),
    so its layers can start a functional model (a new head on a trained stack)."""

    def __init__(self, layers=None, dtype="float32", name=None):
        self._init(dtype, name or "sequential")
        for layer in layers or []:
            self.add(layer)

    def add(self, layer):
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(f"Sequential.add: expected a corenn layer, got {layer!r}")
        if self._engine is not None:
            raise ValueError("Sequential.add: the model is already built; create a new model")
        if isinstance(layer, layers_module.Input):
            if self._layers or self._input is not None:
                raise ValueError("Sequential.add: Input must come first")
            self._input, self._input_shape = layer, layer.shape
            return
        if layer.merges:
            raise ValueError(f"Sequential.add: {type(layer).__name__} '{layer.name}' merges several "
                             "inputs; use the functional cn.Model for graphs")
        if any(existing.name == layer.name for existing in self._layers):
            raise ValueError(f"Sequential.add: a layer named '{layer.name}' is already in the model")
        if not self._layers and self._input_shape is None and layer.input_shape is not None:
            self._input_shape = layer.input_shape
        self._layers.append(layer)

    def build(self, input_shape=None):
        if input_shape is not None:
            self._input_shape = _validate.shape("Sequential.build", "input_shape", input_shape)
        given_input = self._input
        if self._input is None and self._input_shape is not None:
            self._input = layers_module.Input(self._input_shape, name="input")
        if self._input is not None and self._input_shape != self._input.shape:
            self._input = layers_module.Input(self._input_shape, name=self._input.name)
        # Connect the stack (once), so layer.output and model.input exist.
        tensor = None if self._input is None else self._input.output
        connected = []
        for layer in self._layers:
            if tensor is None:
                break
            if layer._inbound is None:
                tensor = layer(tensor)
                connected.append(layer)
            elif layer._inbound == [tensor]:
                tensor = layer.output
            else:
                raise ValueError(f"Sequential.build: layer '{layer.name}' is already connected "
                                 "elsewhere; create a new layer")
        try:
            super().build()
        except ValueError:  # undo the connections: a build with another input shape starts clean
            for layer in connected:
                layer._inbound = layer.output = None
            self._input = given_input
            raise


# The losses that apply an activation themselves: a model ending in that same
# activation applies it twice, trains slowly and reports a wrong loss, silently.
_LOSS_ACTIVATION = {"softmax_cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}


def _warn_activation_before_loss(last, loss):
    applied = _LOSS_ACTIVATION.get(loss)
    if applied is not None and getattr(last, "activation", None) == applied:
        warnings.warn(f"compile: the output layer '{last.name}' applies {applied} and the loss "
                      f"{loss!r} applies it again: {loss} expects logits, so use activation=None "
                      f"(linear) on '{last.name}' and apply {applied} to predict()'s outputs "
                      "when you need probabilities", UserWarning, stacklevel=4)


def _trace(source, output):
    """The layers between source (an Input) and output in execution order, and
    each layer's input names. ValueError when the output does not depend on
    source or depends on another Input, or when two layers share a name."""
    if output.layer is source:
        raise ValueError("Model: outputs is the input itself; add at least one layer")
    order, inbound, inputs = layers_module.trace(output)
    if source not in inputs:
        raise ValueError(f"Model: the output does not depend on the input '{source.name}' "
                         "(it is unused)")
    others = [i.name for i in inputs if i is not source]
    if others:
        raise ValueError(f"Model: the output depends on input(s) {', '.join(others)} that are not "
                         f"the model's input '{source.name}'")
    names = {source.name}
    for layer in order:
        if layer.name in names:
            raise ValueError(f"Model: two layers are named '{layer.name}'; layer names must be unique")
        names.add(layer.name)
    return order, inbound


def _progress(total, desc, verbose):
    if verbose != 1:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="batch", leave=True, file=sys.stderr)
