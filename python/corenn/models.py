"""Model and Sequential: Keras's model API over the C++ engine (corenn._core.Engine).

Python here only slices mini-batches and keeps the history; every pass over the
data (forward, loss, backward, update) is one call into C++ with the GIL
released."""

import math
import sys
import time

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
            self._engine.compile(self._loss, self._optimizer._engine_config())

    def _input_name(self):
        return self._input.name if self._input is not None else "input"

    def _ensure_built(self, x=None):
        if self._engine is None:
            if self._input_shape is None and x is not None:
                self._input_shape = tuple(int(d) for d in np.shape(x)[1:])
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
    def compile(self, optimizer="adam", loss="softmax_cross_entropy", metrics=None):
        self._optimizer = optimizers_module.get(optimizer)
        self._loss = losses.get(loss)
        self._metrics = [metrics_module.get(m) for m in (metrics or [])]
        if self._engine is not None:
            self._engine.compile(self._loss, self._optimizer._engine_config())

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
                             f" got {x.shape}")
        if not empty_ok:
            _validate.examples(owner, "x", x)
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if y is None:
            return x, None
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
                if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
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
            y = np.ascontiguousarray(y, dtype=self.dtype)
        return x, y

    def _labels(self):
        return self._loss == "softmax_cross_entropy"

    def train_on_batch(self, x, y):
        """One optimizer update on (x, y); returns the loss before the update."""
        self._require_compiled("train_on_batch")
        x, y = self._prepare("train_on_batch", x, y)
        self._engine.set_learning_rate(self._optimizer.lr_at(self._engine.steps))
        return float(self._engine.train_step(x, y, self._labels()))

    def fit(self, x, y, batch_size=32, epochs=1, validation_data=None, validation_split=0.0,
            shuffle=True, callbacks=None, verbose=1):
        """Mini-batch training (the course's random_mini_batches: shuffled each
        epoch, the last batch partial). Returns a History."""
        self._require_compiled("fit")
        batch_size = _validate.integer("fit", "batch_size", batch_size, minimum=1)
        epochs = _validate.integer("fit", "epochs", epochs, minimum=0)
        validation_split = _validate.real("fit", "validation_split", validation_split, low=0.0,
                                          high=1.0, high_open=True)
        x, y = self._prepare("fit", x, y)
        if validation_data is None and validation_split > 0:
            # Keras's split: the first ⌊n·(1 − split)⌋ examples train, the rest validate.
            cut = int(math.floor(len(x) * (1.0 - validation_split)))
            if cut in (0, len(x)):
                raise ValueError(f"fit: validation_split={validation_split} leaves no examples "
                                 f"for training or validation out of {len(x)}")
            validation_data = (x[cut:], y[cut:])
            x, y = x[:cut], y[:cut]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("fit: validation_data must be a tuple (x_val, y_val)")
            validation_data = self._prepare("fit (validation_data)", *validation_data)

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
            self._fit_loop(x, y, batch_size, epochs, validation_data, shuffle, cbs, verbose)
        except Exception:
            self._engine.set_parameters(saved[0])
            self._engine.set_state(saved[1])
            self._engine.set_optimizer_state(*saved[2])
            raise
        return history

    def _fit_loop(self, x, y, batch_size, epochs, validation_data, shuffle, cbs, verbose):
        labels = self._labels()
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
            else:
                xe, ye = x, y
            started = time.perf_counter()
            total_loss, seen, outputs = 0.0, 0, []
            bar = _progress(batches, f"Epoch {epoch + 1}/{epochs}", verbose)
            for b in range(batches):
                for cb in cbs:
                    cb.on_train_batch_begin(b)
                xb, yb = xe[b * batch_size:(b + 1) * batch_size], ye[b * batch_size:(b + 1) * batch_size]
                self._engine.set_learning_rate(self._optimizer.lr_at(self._engine.steps))
                if self._metrics:
                    loss, out = self._engine.train_step(xb, yb, labels, True)
                    outputs.append(out)
                else:
                    loss = self._engine.train_step(xb, yb, labels)
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
                val = self._evaluate_arrays(*validation_data, batch_size=max(batch_size, 256))
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

    def evaluate(self, x, y, batch_size=256, verbose=0):
        """Loss (with regularisation) and metrics in inference mode, as a dict."""
        self._require_compiled("evaluate")
        batch_size = _validate.integer("evaluate", "batch_size", batch_size, minimum=1)
        x, y = self._prepare("evaluate", x, y)
        return self._evaluate_arrays(x, y, batch_size)

    def _evaluate_arrays(self, x, y, batch_size):
        labels = self._labels()
        total, outputs = 0.0, []
        for start in range(0, len(x), batch_size):
            xb, yb = x[start:start + batch_size], y[start:start + batch_size]
            loss, out = self._engine.evaluate(xb, yb, labels)
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
            return self._engine.predict(x)
        return np.concatenate([self._engine.predict(x[s:s + batch_size])
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
        if self._input is None and self._input_shape is not None:
            self._input = layers_module.Input(self._input_shape, name="input")
        if self._input is not None and self._input_shape != self._input.shape:
            self._input = layers_module.Input(self._input_shape, name=self._input.name)
        # Connect the stack (once), so layer.output and model.input exist.
        tensor = None if self._input is None else self._input.output
        for layer in self._layers:
            if tensor is None:
                break
            if layer._inbound is None:
                tensor = layer(tensor)
            elif layer._inbound == [tensor]:
                tensor = layer.output
            else:
                raise ValueError(f"Sequential.build: layer '{layer.name}' is already connected "
                                 "elsewhere; create a new layer")
        super().build()


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
