"""Model and Sequential: Keras's model API over the C++ engine (corenn._core.Engine).

A Model holds the graph (its layers and how they connect), the compiled loss,
optimizer and metrics; the training loop is corenn/training.py and the model
files corenn/saving.py."""

import warnings

import numpy as np

from . import _core, _validate, layers as layers_module, losses, metrics as metrics_module
from . import optimizers as optimizers_module, saving, training


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
            self._engine.compile(self._loss, self._optimizer._engine_config())

    @property
    def optimizer(self):
        """The compiled optimizer (None before compile); callbacks change its learning_rate."""
        return self._optimizer

    def _require_compiled(self, owner):
        if self._loss is None:
            raise ValueError(f"{owner}: call compile(optimizer, loss) first")

    def _labels(self):
        """Whether the loss takes integer class ids (softmax cross-entropy)."""
        return self._loss == "softmax_cross_entropy"

    def _prepare(self, owner, x, y=None, empty_ok=False):
        return training.prepare(self, owner, x, y, empty_ok)

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None):
        """One optimizer update on (x, y); returns the loss before the update.
        sample_weight (N,) and class_weight {class: weight} weight each example's
        loss as in fit. A NaN or infinite loss or gradient skips the update
        (weights, batch norm statistics and optimizer state stay as they were)
        and returns NaN."""
        return training.train_on_batch(self, x, y, sample_weight, class_weight)

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
        return training.fit(self, x, y, batch_size, epochs, validation_data, validation_split,
                            shuffle, callbacks, verbose, class_weight, sample_weight)

    def evaluate(self, x, y, batch_size=256, verbose=0, sample_weight=None):
        """Loss (with regularisation) and metrics in inference mode, as a dict.
        sample_weight (N,) weights each example's loss as in fit (metrics stay
        unweighted)."""
        return training.evaluate(self, x, y, batch_size, verbose, sample_weight)

    def predict(self, x, batch_size=256, verbose=0):
        """The model's outputs (logits for classification), in inference mode."""
        return training.predict(self, x, batch_size, verbose)

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
        clone = _rebuild(self._engine, self.name, dtype)
        clone.set_weights(self.get_weights())
        if self._loss is not None:
            with warnings.catch_warnings():  # the user's compile already warned about this model
                warnings.simplefilter("ignore", UserWarning)
                clone.compile(self._optimizer, self._loss)
        return clone

    def _adopt(self, engine):
        """Run on `engine`, a loaded engine of this model's graph, in place of
        the one built: its weights and training state are the model's from now on."""
        by_name = {layer.name: layer for layer in self._layers}
        self._layers = [by_name[engine.layer_name(i)] for i in range(engine.num_layers)]
        self._engine = engine
        for i, layer in enumerate(self._layers):
            layer._engine, layer._index = engine, i


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


def load_model(path, custom_objects=None):
    """The model a file holds (written by model.save, or by a C++ program):
    architecture, weights, batch norm state and, when saved compiled, the loss,
    optimizer (with its state, so training resumes on the same trajectory) and
    metrics. custom_objects maps the names of custom optimizers, schedules and
    metrics to their classes or functions. OSError for an unreadable file,
    ValueError for a damaged or foreign one (corenn/saving.py)."""
    engine, name, compiled = saving.read_model(path, custom_objects)
    model = _rebuild(engine, name)
    if compiled is not None:
        # Compiled before the engine is adopted: the loaded engine keeps the
        # optimizer state it was saved with.
        model.compile(**compiled)
    model._adopt(engine)
    return model


def _rebuild(engine, name=None, dtype=None):
    """A new model of the engine's graph, with new layers from the engine's
    settings (Layer.from_config): a Sequential for a stack, else a functional
    Model, in dtype (the engine's by default), built with fresh weights."""
    dtype = dtype or engine.dtype
    configs = [engine.layer_config(i) for i in range(engine.num_layers)]
    layers = [layers_module.from_config(c) for c in configs]
    source = layers_module.Input(tuple(engine.input_shape), name=engine.input_name)
    if not any(c["inputs"] for c in configs):
        model = Sequential([source, *layers], dtype=dtype, name=name)
        model.build()
        return model
    tensors = {source.name: source.output}
    for layer, config in zip(layers, configs):  # files list each layer after its inputs
        inputs = [tensors[n] for n in config["inputs"]]
        tensors[layer.name] = layer(inputs if layer.merges else inputs[0])
    return Model(source, tensors[layers[engine.output_layer].name], dtype=dtype, name=name)


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
