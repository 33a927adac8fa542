"""Model and Sequential: Keras's model API over the C++ engine (corenn._core.Engine).

A Model holds the graph (the calls of its layers, its inputs and outputs), the
compiled losses, optimizer and metrics; the engine orders and runs the graph.
The training loop is corenn/training.py and the model files corenn/saving.py."""

import collections
import warnings
import weakref

import numpy as np

from . import _core, _validate, layers as layers_module, losses, metrics as metrics_module
from . import optimizers as optimizers_module, saving, training as _training


def _listed(value):
    """(items, given as a list?) of one item or a list/tuple of them."""
    if isinstance(value, (list, tuple)):
        return list(value), True
    return [value], False


def _is_symbolic(value):
    items, _ = _listed(value)
    return bool(items) and all(isinstance(v, (layers_module.SymbolicTensor, layers_module.Input))
                               for v in items)


class Model:
    """A graph of layers (Keras's functional API), run by the C++ engine:

        a, b = Input((4,), name="left"), Input((4,), name="right")
        enc = Dense(8, activation="relu", name="enc")      # called twice: shared weights
        same = Dense(1, name="same")(Concatenate(axis=-1)([enc(a), enc(b)]))
        model = Model(inputs=[a, b], outputs=[same, enc.output])

    inputs and outputs are one tensor or a list; predict and the other methods
    take and return the same structure (a dict keyed by input name is accepted
    for x). The model holds the calls (nodes) its outputs depend on; the engine
    checks them and initialises the weights right away. A layer called several
    times shares its weights between the calls (their gradients are summed). A
    layer that already belongs to a built model of the same dtype shares its
    weights with it (training one trains the other: feature extractors, a new
    head on a trained base); in another dtype its current weights are copied.
    Inputs of another dtype are cast to the model's dtype (float32 by default;
    float64 for gradient checking). A built model is callable on symbolic
    tensors like a layer (its layers are called again: shared weights), and on
    arrays (predict).
    """

    def __init__(self, inputs, outputs, dtype="float32", name=None):
        self._init(dtype, name or "model")
        self._connect(inputs, outputs)
        self.build()

    def _init(self, dtype, name):
        _validate.choice(type(self).__name__, "dtype", dtype, ("float32", "float64"))
        self.dtype = np.dtype(dtype)
        self.name = name
        self._layers = []
        self._nodes = []  # the layer calls the outputs depend on (layers.Node)
        self._inputs = []  # Input layers
        self._outputs = []  # SymbolicTensors
        self._inputs_listed = self._outputs_listed = False  # the structure of x and of predict's result
        self._engine = None
        self._losses = None  # one per output: a loss name, a custom loss, or None
        self._loss_weights = None
        self._optimizer = None
        self._output_metrics = []  # per output: [(name, fn)]
        self.stop_training = False

    def _connect(self, inputs, outputs):
        """The model's inputs, outputs, the calls between them and their layers,
        checked: every input used, no other input reached, unique layer names."""
        items, self._inputs_listed = _listed(inputs)
        sources = []
        for t in items:
            layer = t.layer if isinstance(t, layers_module.SymbolicTensor) else t
            if not isinstance(layer, layers_module.Input):
                raise TypeError(f"Model: inputs must be an Input (or a list of them), got {t!r}")
            if layer in sources:
                raise ValueError(f"Model: the input '{layer.name}' is given twice")
            sources.append(layer)
        if not sources:
            raise ValueError("Model: inputs is empty; give at least one Input")
        items, self._outputs_listed = _listed(outputs)
        ends = [layers_module._symbolic("Model (outputs)", t) for t in items]
        if not ends:
            raise ValueError("Model: outputs is empty; give at least one tensor")
        for t in ends:
            if isinstance(t.layer, layers_module.Input):
                raise ValueError(f"Model: the output is the input '{t.layer.name}' itself; add at "
                                 "least one layer")
        nodes, reached = layers_module.trace(ends)
        unused = [repr(s.name) for s in sources if s not in reached]
        if unused:
            raise ValueError(f"Model: the output{'s do' if len(ends) > 1 else ' does'} not depend on "
                             f"the input {', '.join(unused)} (it is unused)")
        foreign = [repr(i.name) for i in reached if i not in sources]
        if foreign:
            given = ", ".join(repr(s.name) for s in sources)
            raise ValueError(f"Model: the outputs depend on input(s) {', '.join(foreign)} that are "
                             f"not the model's input{'s' if len(sources) > 1 else ''} {given}")
        layers, names = [], {s.name for s in sources}
        if len(names) < len(sources):
            raise ValueError("Model: two inputs have the same name; input names must be unique")
        for node in nodes:
            if any(node.layer is l for l in layers):
                continue
            if node.layer.name in names:
                raise ValueError(f"Model: two layers are named '{node.layer.name}'; layer names "
                                 "must be unique")
            names.add(node.layer.name)
            layers.append(node.layer)
        self._inputs, self._outputs, self._nodes, self._layers = sources, ends, nodes, layers

    # ----------------------------------------------------------------- building
    @property
    def layers(self):
        return list(self._layers)

    @property
    def inputs(self):
        """The input tensors, a list."""
        return [i.output for i in self._inputs]

    @property
    def outputs(self):
        """The output tensors, a list."""
        self._ensure_built()
        return list(self._outputs)

    @property
    def input(self):
        """The input tensor (a list for several inputs); None before a
        Sequential knows its input."""
        if not self._inputs:
            return None
        return self.inputs if self._inputs_listed else self._inputs[0].output

    @property
    def output(self):
        self._ensure_built()
        return list(self._outputs) if self._outputs_listed else self._outputs[0]

    @property
    def input_names(self):
        return [i.name for i in self._inputs]

    @property
    def output_names(self):
        """Each output's name, as Keras: its layer's name (made unique with
        _1, _2 when one layer gives several outputs). Losses, loss weights and
        metrics given as dicts are keyed by these."""
        if not self._outputs:  # an unbuilt Sequential: its last layer's one output
            return [self._layers[-1].name] if self._layers else []
        taken, names = collections.Counter(), []
        for t in self._outputs:
            n = taken[t.layer.name]
            taken[t.layer.name] += 1
            names.append(t.layer.name if n == 0 else f"{t.layer.name}_{n}")
        return names

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
        """Hand the graph to a new engine, which checks every call and initialises
        the weights (layers of a built model keep theirs: shared in the same
        dtype, copied in another)."""
        if input_shape is not None:
            raise ValueError(f"{type(self).__name__}.build: a functional model's input shapes "
                             "come from its Inputs; input_shape must be None")
        engine = _core.Engine(self.dtype.name)
        for source in self._inputs:
            engine.add_input(source.name, list(source.shape))
        for layer in self._layers:
            engine.add(layer._engine_config())
        # Engine node numbers count the calls of each layer that this model holds.
        number, calls = {}, collections.Counter()
        for node in self._nodes:
            number[id(node)] = calls[node.layer.name]
            calls[node.layer.name] += 1
        self._number = number
        for node in self._nodes:
            engine.call(node.layer.name, [self._ref(t) for t in node.inputs])
        engine.set_outputs([self._ref(t) for t in self._outputs])
        carried = {}
        for layer in self._layers:
            if layer._engine is None:
                continue
            if layer._engine.dtype == self.dtype.name:
                engine.share_layer(layer.name, layer._engine, layer.name)
            else:
                carried[layer.name] = layer.get_weights()
        engine.build()
        for i, layer in enumerate(self._layers):
            if layer.name in carried:
                engine.set_weights(i, [np.asarray(w, dtype=self.dtype) for w in carried[layer.name]])
        self._attach(engine)
        if self._losses is not None:
            self._compile_engine()

    def _ref(self, tensor):
        """The engine's name of a tensor: (layer name, call number, output number)."""
        if isinstance(tensor.layer, layers_module.Input):
            return (tensor.layer.name, 0, 0)
        return (tensor.layer.name, self._number[id(tensor._node)], tensor.output_index)

    def _attach(self, engine):
        self._engine = engine
        for i, layer in enumerate(self._layers):
            layer._engine, layer._index = engine, i

    def _ensure_built(self, x=None):
        if self._engine is None:
            self.build()

    @property
    def input_shape(self):
        """(None, *shape) of the input (a list of them for several inputs)."""
        shapes = [(None, *i.shape) for i in self._inputs]
        if not shapes:
            return None
        return shapes if self._inputs_listed else shapes[0]

    @property
    def output_shape(self):
        self._ensure_built()
        shapes = [t.shape for t in self._outputs]
        return shapes if self._outputs_listed else shapes[0]

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
        graphs also list the inputs of each call."""
        self._ensure_built()
        e = self._engine
        graph = not isinstance(self, Sequential)
        header = ("Layer (type)", "Output Shape", "Param #", "Mult-Adds") + (("Connected to",) if graph else ())
        calls = collections.defaultdict(list)
        for node in self._nodes:
            calls[node.layer.name].append(node)
        rows = []
        for i, l in enumerate(self._layers):
            first = calls[l.name][0]
            shape = ", ".join(str(t.shape) for t in first.outputs)
            row = (f"{l.name} ({type(l).__name__})", shape, f"{self._layer_weight_count(i):,}",
                   f"{e.multiply_adds(i):,}")
            inbound = " | ".join(", ".join(_tensor_name(t) for t in node.inputs) for node in calls[l.name])
            rows.append(row + ((inbound,) if graph else ()))
        widths = [max(len(h), *(len(r[c]) for r in rows)) for c, h in enumerate(header)]
        line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
        trainable = sum(e.count_layer_params(i) for i, l in enumerate(self._layers) if l._trains)
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
        cast = layers_module.cast_weights("set_weights", weights, self.dtype)
        for i, (w, e) in enumerate(zip(cast, expected)):
            if w.shape != e.shape:
                raise ValueError(f"set_weights: array {i} must have shape {e.shape}, got {w.shape}")
        at = 0
        for i in range(len(self._layers)):
            n = len(self._engine.get_weights(i))
            self._engine.set_weights(i, cast[at:at + n])
            at += n

    def _trainable_layout(self):
        """(offset, shape) in the flat parameter arena of each trainable weight,
        in get_weights order."""
        self._ensure_built()
        return [(int(offset), tuple(shape)) for i, _, offset, shape in self._engine.parameter_layout()
                if self._layers[i]._trains]

    @property
    def weights(self):
        """Copies of every weight array (parameters and state, as get_weights()):
        Keras's model.weights, as NumPy arrays rather than variables."""
        return self.get_weights()

    @property
    def trainable_weights(self):
        """Copies of the trainable parameters (layers with trainable=True; no
        batch norm statistics), in get_weights order: what compute_gradients'
        grads match."""
        layout = self._trainable_layout()
        flat = self._engine.get_parameters()
        return [flat[o:o + int(np.prod(s, dtype=np.int64))].reshape(s).copy()
                for o, s in layout]

    # ---------------------------------------------------------------- training
    @_validate.keyword_checked
    def compile(self, optimizer="adam", loss="softmax_cross_entropy", metrics=None,
                loss_weights=None):
        """The optimizer, and per output a loss, its weight and metrics, as Keras:
        each may be one value for every output, a list (one per output) or a dict
        keyed by output name (model.output_names; a missing name has no loss,
        weight 1, no metrics). A loss is a built-in name, None (no loss for that
        output), a callable fn(y_true, y_pred) -> (loss, dloss_dy_pred) or an
        object with loss_and_gradient(y_true, y_pred) (cn.losses.TripletLoss):
        corenn/losses.py. The loss minimised is Σ loss_weight·loss over the
        outputs (plus regularisation)."""
        names = self.output_names
        self._optimizer = optimizers_module.get(optimizer)
        self._losses = _per_output("loss", loss, names, losses.get, None)
        if all(l is None for l in self._losses):
            raise ValueError("compile: loss is None for every output; give at least one output a loss")
        self._loss_weights = _per_output(
            "loss_weights", loss_weights, names,
            lambda w: _validate.real("compile", "loss_weights", w, low=0.0), 1.0)
        self._output_metrics = _metrics_per_output(metrics, names)
        ends = [t.layer for t in self._outputs] if self._outputs else self._layers[-1:]
        for layer, l in zip(ends, self._losses):
            _warn_activation_before_loss(layer, l)
        if self._engine is not None:
            self._compile_engine()

    def _compile_engine(self):
        self._engine.compile(list(self._losses), [float(w) for w in self._loss_weights],
                             self._optimizer._engine_config())

    @property
    def _loss(self):
        """The loss of a one-output model (the list of losses for several); None before compile."""
        if self._losses is None:
            return None
        return self._losses[0] if len(self._losses) == 1 else list(self._losses)

    @property
    def _metrics(self):
        """[(logged name, fn)] over the outputs: "accuracy" for one output,
        "<output>_accuracy" for several (Keras's names)."""
        return [(self._metric_key(o, name), fn) for o, ms in enumerate(self._output_metrics)
                for name, fn in ms]

    def _metric_key(self, output, name):
        names = self.output_names
        return name if len(names) == 1 else f"{names[output]}_{name}"

    @property
    def optimizer(self):
        """The compiled optimizer (None before compile); callbacks change its learning_rate."""
        return self._optimizer

    def _require_compiled(self, owner):
        if self._losses is None:
            raise ValueError(f"{owner}: call compile(optimizer, loss) first")

    def _labels(self):
        """Whether the (first) output's loss takes integer class ids (softmax cross-entropy)."""
        return self._losses is not None and self._losses[0] == "softmax_cross_entropy"

    def _prepare(self, owner, x, y=None, empty_ok=False):
        return _training.prepare(self, owner, x, y, empty_ok)

    def train_on_batch(self, x, y, sample_weight=None, class_weight=None):
        """One optimizer update on (x, y); returns the loss before the update.
        x is an array, or a list (or dict keyed by input name) for several
        inputs; y likewise per output (None for an output without a loss).
        sample_weight (N,) and class_weight {class: weight} weight each example's
        loss as in fit. A NaN or infinite loss or gradient skips the update
        (weights, batch norm statistics and optimizer state stay as they were)
        and returns NaN."""
        return _training.train_on_batch(self, x, y, sample_weight, class_weight)

    @_validate.keyword_checked
    def fit(self, x, y=None, batch_size=32, epochs=1, validation_data=None, validation_split=0.0,
            shuffle=True, callbacks=None, verbose=1, class_weight=None, sample_weight=None,
            initial_epoch=0):
        """Mini-batch training (the course's random_mini_batches: shuffled each
        epoch, the last batch partial). Returns a History whose keys are
        evaluate's. x and y as in train_on_batch; they must be finite (NaN targets of
        binary_cross_entropy are missing labels): ValueError
        otherwise, before any update. A batch whose loss or gradient is still not
        finite is skipped, and its loss (and so the epoch's) logged as NaN.

        sample_weight (N,) (finite, >= 0) and class_weight {class index: weight}
        follow Keras: each example's loss is multiplied by its weight (both
        multiply when both are given) and a batch's loss is the weighted sum
        divided by the batch size, not by the sum of the weights. The weights
        are shuffled with their examples and split off with validation_split;
        validation_data may be (x_val, y_val, sample_weight_val); class_weight
        applies to the training data only (one-output models). Metrics stay unweighted.
        Generators and datasets are not supported (TypeError): pass the arrays,
        or call train_on_batch(xb, yb) for each batch. initial_epoch (Keras's,
        to resume a run) numbers the first epoch: epochs initial_epoch + 1 ..
        epochs run, and the callbacks see those epoch numbers.

        verbose: 0 silent; 1 a progress bar (tqdm) on stderr when stderr is a
        terminal, otherwise one line per epoch (Keras's non-interactive form, so
        logs stay line by line); 2 one line per epoch."""
        return _training.fit(self, x, y, batch_size, epochs, validation_data, validation_split,
                            shuffle, callbacks, verbose, class_weight, sample_weight, initial_epoch)

    def evaluate(self, x, y, batch_size=256, verbose=0, sample_weight=None, return_dict=True):
        """Loss (with regularisation) and metrics in inference mode, as a dict:
        "loss" (the weighted total) and each metric by name for one output;
        with several outputs also "<output>_loss" (unweighted, no
        regularisation) and "<output>_<metric>" (Keras's names).
        sample_weight (N,) weights each example's loss as in fit (metrics stay
        unweighted). return_dict=False gives Keras's default form instead: the
        values as a list in the dict's order (the loss alone as a float)."""
        logs = _training.evaluate(self, x, y, batch_size, verbose, sample_weight)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=256, verbose=0):
        """The model's outputs (logits for classification), in inference mode:
        an array, or a list for a model whose outputs were given as a list."""
        return _training.predict(self, x, batch_size, verbose)

    def __call__(self, inputs):
        """On symbolic tensors (one, or a list like the model's inputs): calls
        the model's layers again on them (shared weights) and returns the
        outputs, as a layer does. On arrays: predict."""
        if not _is_symbolic(inputs):
            return self.predict(inputs)
        self._ensure_built()
        items, _ = _listed(inputs)
        if len(items) != len(self._inputs):
            raise ValueError(f"Model '{self.name}': takes {len(self._inputs)} input(s) "
                             f"({', '.join(self.input_names)}), got {len(items)}")
        tensors = [layers_module._symbolic(f"Model '{self.name}'", t) for t in items]
        for source, t in zip(self._inputs, tensors):
            if t.shape[1:] != source.shape:
                raise ValueError(f"Model '{self.name}': input '{source.name}' has shape "
                                 f"{(None, *source.shape)}, got a tensor of shape {t.shape}")
        outputs = _replay(self._engine, {l.name: l for l in self._layers}, tensors)
        return outputs if self._outputs_listed else outputs[0]

    # ------------------------------------------------------------- gradients
    def vjp(self, x, training=False):
        """(y, pullback): y the outputs as predict gives them, and pullback(dy)
        -> dx, the vector-Jacobian product: dy shaped like y, dx like x (a list
        for several inputs). training=True runs the training forward pass
        (dropout, batch statistics). No weight changes. ValueError when dy has
        the wrong shape or the model ran since (a stale pullback)."""
        return _training.vjp(self, x, bool(training))

    def compute_gradients(self, x, y, sample_weight=None):
        """(loss, grads) on (x, y) in training mode, no update: grads holds one
        array per model.trainable_weights entry (∂loss/∂w, the compiled losses
        and regularisation)."""
        return _training.compute_gradients(self, x, y, sample_weight)

    def apply_gradients(self, grads):
        """One optimizer step with grads (as compute_gradients gives them);
        returns False when a gradient is not finite (nothing changes)."""
        return _training.apply_gradients(self, grads)

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
        """The graph as data: inputs, layers (class and configuration), each
        call's input tensors as (layer, call, output) and the outputs."""
        self._ensure_built()
        return {"name": self.name, "dtype": self.dtype.name,
                "inputs": [{"name": i.name, "shape": list(i.shape)} for i in self._inputs],
                "layers": [{"class_name": type(l).__name__, "config": l.get_config()}
                           for l in self._layers],
                "nodes": [[n.layer.name, [list(self._ref(t)) for t in n.inputs]] for n in self._nodes],
                "outputs": [list(self._ref(t)) for t in self._outputs]}

    def _structure(self):
        return {"class_name": type(self).__name__, "inputs_listed": self._inputs_listed,
                "outputs_listed": self._outputs_listed}

    def _clone(self, dtype):
        """Same architecture, weights, losses and optimizer in another dtype."""
        self._ensure_built()
        clone = _rebuild(self._engine, self.name, dtype, self._structure())
        clone.set_weights(self.get_weights())
        if self._losses is not None:
            with warnings.catch_warnings():  # the user's compile already warned about this model
                warnings.simplefilter("ignore", UserWarning)
                clone.compile(self._optimizer, list(self._losses),
                              loss_weights=list(self._loss_weights))
        return clone

    def _adopt(self, engine):
        """Run on `engine`, a loaded engine of this model's graph, in place of
        the one built: its weights and training state are the model's from now on."""
        by_name = {layer.name: layer for layer in self._layers}
        self._layers = [by_name[engine.layer_name(i)] for i in range(engine.num_layers)]
        self._attach(engine)


class Sequential(Model):
    """A linear stack of layers: Sequential([Input((784,)), Dense(128, activation="relu"),
    Dense(10)]). Building it calls each layer on the one before, so its layers can
    start a functional model (a new head on a trained stack)."""

    def __init__(self, layers=None, dtype="float32", name=None):
        self._init(dtype, name or "sequential")
        self._input = None  # the Input given (or made when the shape is known)
        self._input_shape = None
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
        if layer._holder is None:
            layer._holder = weakref.ref(self)

    @property
    def input(self):
        return None if self._input is None else self._input.output

    @property
    def input_shape(self):
        return None if self._input_shape is None else (None, *self._input_shape)

    def _ensure_built(self, x=None):
        if self._engine is not None:
            return
        if self._input_shape is None and x is not None and not isinstance(x, dict):  # one input
            self._input_shape = tuple(int(d) for d in np.shape(x)[1:])
            try:
                self.build()
            except ValueError as exc:  # the shape came from x: x may be the mistake
                self._input_shape = None
                raise ValueError(f"{exc} (the input shape {tuple(np.shape(x)[1:])} was taken "
                                 f"from x){_validate.channels_last('x', np.shape(x))}") from None
        else:
            self.build()

    def build(self, input_shape=None):
        """Fix the per-example input shape, call each layer on the one before
        (once) and initialise the weights."""
        if input_shape is not None:
            self._input_shape = _validate.shape("Sequential.build", "input_shape", input_shape)
        if self._input_shape is None:
            raise ValueError("build: the input shape is unknown; start the model with "
                             "Input(shape) or call build(input_shape)")
        if not self._layers:
            raise ValueError("build: the model has no layers")
        given = self._input
        if self._input is None or self._input.shape != self._input_shape:
            self._input = layers_module.Input(self._input_shape,
                                              name="input" if given is None else given.name)
        tensor, called = self._input.output, []
        try:
            for layer in self._layers:
                # A rebuild finds each layer's call on the tensor before it.
                done = [n for n in layer._nodes if len(n.inputs) == 1 and n.inputs[0] is tensor]
                if done:
                    tensor = done[0].outputs[0]
                    continue
                out = layer(tensor)
                called.append(layer)
                if isinstance(out, list):
                    raise ValueError(f"Sequential: layer '{layer.name}' has {len(out)} outputs; "
                                     "use the functional cn.Model for graphs")
                tensor = out
            layers = list(self._layers)
            self._connect(self._input, tensor)
            self._layers = layers
            Model.build(self)
        except ValueError:  # undo the calls: a build with another input shape starts clean
            for layer in called:
                layer._nodes.pop()
            self._input = given
            raise


def load_model(path, custom_objects=None, compile=True):
    """The model a file holds (written by model.save, or by a C++ program):
    architecture, weights, batch norm state and, when saved compiled, the losses,
    optimizer (with its state, so training resumes on the same trajectory) and
    metrics. custom_objects maps the names of custom optimizers, schedules,
    losses and metrics to their classes or functions. OSError for an unreadable
    file, ValueError for a damaged or foreign one (corenn/saving.py).
    compile=False (Keras's) loads the architecture and weights only, uncompiled."""
    engine, settings, compiled = saving.read_model(path, custom_objects)
    if not compile:
        compiled = None
    model = _rebuild(engine, settings.get("name"), None, settings)
    if compiled is not None:
        # Compiled before the engine is adopted: the loaded engine keeps the
        # optimizer state it was saved with.
        model.compile(**compiled)
    model._adopt(engine)
    return model


def _replay(engine, layers, inputs):
    """Calls `layers` (by name) as the engine's graph calls them, in its
    execution order, on the tensors `inputs` (one per engine input): the output
    tensors, one per engine output."""
    tensors = {(name, 0, 0): t for name, t in zip(engine.input_names, inputs)}
    for layer_name, node, refs in _engine_nodes(engine):
        outputs = layers[layer_name]._call([tensors[tuple(r)] for r in refs])
        for k, t in enumerate(outputs):
            tensors[(layer_name, node, k)] = t
    return [tensors[tuple(r)] for r in engine.outputs]


def _engine_nodes(engine):
    """(layer, call number, input refs) of each engine node in execution order."""
    calls = collections.Counter()
    for layer_name, refs in engine.nodes():
        yield layer_name, calls[layer_name], refs
        calls[layer_name] += 1


def _is_stack(engine):
    """Whether the engine's graph is a Sequential's: one input, each layer called
    once on the layer before, the last one's output the model's."""
    names = [engine.layer_name(i) for i in range(engine.num_layers)]
    before = [(n, 0, 0) for n in engine.input_names[:1] + names[:-1]]
    nodes = list(engine.nodes())
    return (len(engine.input_names) == 1 and len(nodes) == len(names)
            and all(name == want and [tuple(r) for r in refs] == [ref]
                    for (name, refs), want, ref in zip(nodes, names, before))
            and [tuple(r) for r in engine.outputs] == [(names[-1], 0, 0)])


def _rebuild(engine, name=None, dtype=None, structure=None):
    """A new model of the engine's graph, with new layers from the engine's
    settings (Layer.from_config), called as the engine's nodes say, in dtype
    (the engine's by default), built with fresh weights. structure: the saved
    class name ("Sequential" or "Model") and whether inputs and outputs were
    lists; without it a stack is a Sequential, and a list means several."""
    structure = structure or {}
    dtype = dtype or engine.dtype
    layers = [layers_module.from_config(engine.layer_config(i)) for i in range(engine.num_layers)]
    inputs = [layers_module.Input(tuple(shape), name=n)
              for n, shape in zip(engine.input_names, engine.input_shapes)]
    if structure.get("class_name", "Sequential") == "Sequential" and _is_stack(engine):
        model = Sequential([inputs[0], *layers], dtype=dtype, name=name)
        model.build()
        return model
    outputs = _replay(engine, {l.name: l for l in layers}, [i.output for i in inputs])
    listed_in = structure.get("inputs_listed", len(inputs) > 1)
    listed_out = structure.get("outputs_listed", len(outputs) > 1)
    return Model(inputs if listed_in else inputs[0], outputs if listed_out else outputs[0],
                 dtype=dtype, name=name)


def _per_output(what, value, names, convert, missing):
    """One converted value per output from one value (for every output), a list
    (one per output) or a dict keyed by output name (missing names get
    `missing`). ValueError naming `what` for a wrong length or an unknown name."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"compile: {what} names output(s) {', '.join(map(repr, unknown))} that "
                             f"the model does not have; its outputs are {', '.join(map(repr, names))}")
        return [missing if value.get(n) is None else convert(value[n]) for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"compile: {what} must hold one entry per output ({len(names)}: "
                             f"{', '.join(map(repr, names))}), got {len(value)}")
        return [missing if v is None else convert(v) for v in value]
    if value is None:
        return [missing] * len(names)
    return [convert(value)] * len(names)


def _metrics_per_output(metrics, names):
    """[(name, fn)] per output from compile's metrics: a list (for every output),
    a list of lists (one per output) or a dict keyed by output name."""
    def resolve(ms):
        return [metrics_module.get(m) for m in ([] if ms is None else _listed(ms)[0])]

    if isinstance(metrics, (list, tuple)) and len(names) > 1 and len(metrics) == len(names) and all(
            m is None or isinstance(m, (list, tuple)) for m in metrics):
        return [resolve(m) for m in metrics]
    if isinstance(metrics, dict):
        return _per_output("metrics", metrics, names, resolve, [])
    shared = resolve(metrics)
    return [list(shared) for _ in names]


def _tensor_name(tensor):
    node = "" if tensor.node_index == 0 else f"[{tensor.node_index}]"
    output = "" if tensor.output_index == 0 else f":{tensor.output_index}"
    return f"{tensor.layer.name}{node}{output}"


# The losses that apply an activation themselves: a model ending in that same
# activation applies it twice, trains slowly and reports a wrong loss, silently.
_LOSS_ACTIVATION = {"softmax_cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}


def _warn_activation_before_loss(last, loss):
    applied = _LOSS_ACTIVATION.get(loss) if isinstance(loss, str) else None
    if applied is not None and getattr(last, "activation", None) == applied:
        warnings.warn(f"compile: the output layer '{last.name}' applies {applied} and the loss "
                      f"{loss!r} applies it again: {loss} expects logits, so use activation=None "
                      f"(linear) on '{last.name}' and apply {applied} to predict()'s outputs "
                      "when you need probabilities", UserWarning, stacklevel=4)
