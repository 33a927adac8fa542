"""Keras-style layers. A layer here is a configuration: it validates its
hyper-parameters, describes itself to the C++ engine, and forwards the few
things a user changes later (trainable) to the engine that runs it."""

import collections
import inspect
import re
import reprlib
import warnings
import weakref

import numpy as np

from . import _core, _validate, initializers, regularizers

# The names the C++ activation registry accepts (one list, kept in C++).
ACTIVATIONS = tuple(name for name, _ in _core.ops._activation_registry())

# Automatic layer names, per kind as in Keras: dense, dense_1, dense_2, ... A
# name already taken in this session (given by hand, or loaded from a file) is
# skipped, so a new layer on a loaded model does not collide with its layers.
_name_counts = collections.Counter()
_names_taken = set()


def unique_name(prefix):
    """The next free name of `prefix`: prefix, prefix_1, prefix_2, ..."""
    n = _name_counts[prefix]
    while (name := f"{prefix}_{n}" if n else prefix) in _names_taken:
        n += 1
    _name_counts[prefix] = n + 1
    _names_taken.add(name)
    return name


def clear_session():
    """Restart automatic layer names (dense, dense_1, ...) from the beginning,
    as Keras's clear_session: names in a script then do not depend on what ran
    before it in the same process. Existing layers and models keep their names."""
    _name_counts.clear()
    _names_taken.clear()


def _snake_case(class_name):
    """Keras's automatic name of a class: Conv2D -> conv2d, MaxPooling2D -> max_pooling2d."""
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", class_name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _activation(owner, value, alpha):
    """(name, alpha) of a layer's activation: None is linear; alpha=None is the
    kind's default (leaky_relu's slope 0.01, elu's 1.0). The names come from the
    C++ registry; a wrong one gets the closest valid name suggested."""
    if value is None:
        value = "linear"
    if not isinstance(value, str):
        raise TypeError(f"{owner}: activation must be a name or None, got {value!r}")
    value = _validate.choice(owner, "activation", value, ACTIVATIONS)
    default = _core.ops._find_activation(value, f"{owner}: activation")
    return value, default if alpha is None else _validate.real(owner, "alpha", alpha)


class SymbolicTensor:
    """One output of one call of a layer in a graph under construction (Keras's
    functional API): `h = Dense(10)(x)`. It carries no data: the layer, which
    call of it (node_index: a layer called twice has nodes 0 and 1), which of
    that call's outputs (output_index), and the shape (None, *per-example
    shape), inferred and checked by the engine when the layer was called.
    cn.Model(inputs, outputs) follows these links back from the outputs."""

    def __init__(self, layer, node_index, output_index, shape):
        self.layer = layer
        self.node_index = node_index
        self.output_index = output_index
        self.shape = (None, *shape)

    @property
    def _node(self):
        return self.layer._nodes[self.node_index]

    def __repr__(self):
        return (f"<SymbolicTensor {self.layer.name!r} call {self.node_index} output "
                f"{self.output_index}, shape {self.shape}>")


class Node:
    """One call of a layer (Keras's inbound node): the tensors it was called on
    (an Input's own node has none) and the tensors it returned."""

    def __init__(self, layer, inputs, output_shapes):
        self.layer = layer
        self.index = len(layer._nodes)
        self.inputs = list(inputs)
        self.outputs = [SymbolicTensor(layer, self.index, k, tuple(shape))
                        for k, shape in enumerate(output_shapes)]

    @property
    def input_shapes(self):
        return [t.shape[1:] for t in self.inputs]


def trace(outputs):
    """The calls (nodes) the output tensors depend on, each after the calls
    whose outputs it takes, and the Inputs reached. Only what the outputs
    need: the engine orders the model's execution itself."""
    nodes, seen, inputs = [], set(), []
    stack = [(t._node, False) for t in reversed(outputs)]
    while stack:  # iterative depth-first search: deep graphs do not hit the recursion limit
        node, expanded = stack.pop()
        if isinstance(node.layer, Input):
            if node.layer not in inputs:
                inputs.append(node.layer)
        elif expanded:
            nodes.append(node)
        elif id(node) not in seen:
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((t._node, False) for t in reversed(node.inputs))
    return nodes, inputs


def _symbolic(owner, value):
    if isinstance(value, Input):
        return value.output
    if isinstance(value, SymbolicTensor):
        return value
    got = (f"a {type(value).__name__} of shape {tuple(value.shape)}" if hasattr(value, "shape")
           else reprlib.repr(value))  # never a whole array in the message
    hint = ("; layers are called on symbolic tensors when the model is defined: make the data an "
            "Input of the model and pass the array to fit/predict") if hasattr(value, "shape") else ""
    raise TypeError(f"{owner}: expected the output of Input(...) or of another layer, got {got}{hint}")


def _shapes_text(shapes):
    return ", ".join(str((None, *s)) for s in shapes)


def _init_parameters(cls):
    """Names of the arguments cls(...) accepts, following **kwargs up the MRO."""
    names = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names += [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                  and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


def _config_pads(config):
    """The explicit paddings (top, bottom, left, right) a config holds."""
    pads = config["pads"]
    if not isinstance(pads, (list, tuple)) or len(pads) != 4:
        raise ValueError(f"from_config: layer {config.get('name')!r} ({config.get('kind')}): pads must be 4 ints "
                         f"(top, bottom, left, right), got {pads!r}")
    return pads


def _argument_from_config(name, field, config):
    """A constructor argument from engine fields: the inverse of get_config's
    flattening (initialiser objects, padding modes, lists as tuples). None
    leaves the argument at its default (the engine's empty list)."""
    value = config[field]
    if name.endswith("_initializer") and value == "random_normal":
        return initializers.RandomNormal(config.get("initializer_stddev", 0.01))
    if name == "padding" and (field == "pads" or value == "explicit"):
        t, b, left, r = _config_pads(config)
        return ((t, b), (left, r))
    if isinstance(value, list):
        return tuple(value) if value else None
    return value


def cast_weights(owner, weights, dtype):
    """`weights` as C-contiguous arrays of `dtype`: the one conversion of
    Model.set_weights and Layer.set_weights (Keras users pass float64 NumPy)."""
    cast = []
    for i, w in enumerate(weights):
        try:
            cast.append(np.ascontiguousarray(w, dtype=dtype))
        except (TypeError, ValueError):
            raise TypeError(f"{owner}: array {i} must be real numbers, got {type(w).__name__}") from None
    return cast


# Kinds whose output is a sequence (batch, timesteps, features), Keras's layout.
_TIME_MAJOR_KINDS = frozenset({"embedding", "simple_rnn", "gru", "lstm", "bidirectional",
                               "attention", "additive_attention", "multi_head_attention"})


def _warn_time_major_input(layer, tensor):
    """A channels-first 1-D layer fed a (batch, timesteps, features) sequence
    would convolve or pool over the features, not the steps: the standard Keras
    text model (Embedding -> Conv1D) silently does the wrong thing. Warned once
    per pair of layers (Python's warning registry keys on the message)."""
    source = tensor.layer
    if source.kind in _TIME_MAJOR_KINDS and len(tensor.shape) == 3:
        warnings.warn(f"{type(layer).__name__} '{layer.name}' reads (batch, channels, length) "
                      f"(PyTorch's layout), but {type(source).__name__} '{source.name}' gives "
                      f"(batch, timesteps, features) {tuple(tensor.shape)}: it would run over the "
                      f"{tensor.shape[2]} features, not the {tensor.shape[1]} steps. Reduce over time "
                      "with a recurrent layer's final state (return_sequences=False), or give the "
                      "1-D layers (batch, channels, length) data", UserWarning, stacklevel=4)


class Layer(_validate.KeywordChecked):
    """Base class. `kind` is the engine's name for the layer; `merges` marks
    layers that take a list of two or more inputs (Add, Concatenate).
    A subclass's signature lists its arguments and the ones below, which
    every layer takes; a misspelt keyword raises TypeError naming the closest
    (corenn._validate.KeywordChecked)."""

    kind = None
    merges = False
    # The 1-D layers read (batch, channels, length), PyTorch's layout.
    _channels_first_1d = False
    # Constructor arguments stored under another engine field name.
    _renamed = {}

    def __init__(self, name=None, trainable=True, input_shape=None):
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
        if name is None:
            name = unique_name(_snake_case(type(self).__name__))
        _names_taken.add(name)
        self.name = name
        self._trainable = bool(trainable)
        self.input_shape = None if input_shape is None else _validate.shape(
            type(self).__name__, "input_shape", input_shape)
        self._engine = None  # (engine, index) once a model is built
        self._holder = None  # weak reference to the Sequential holding the layer (built on demand)
        self._index = None
        self._nodes = []  # one Node per call

    def __call__(self, inputs):
        """Call the layer on symbolic tensors (Input(...) or other layers'
        outputs): one tensor, or a list for the layers that take several
        (Add, Concatenate). Returns the output tensor, or a list for a layer
        with several outputs. A layer called again shares its weights between
        the calls, so every call must see the same input shapes. The shapes are
        checked here: ValueError naming the layer and the shapes."""
        return self._call_on(inputs)

    def _call_on(self, inputs, initial_state=None):
        """__call__'s work. A layer that takes an initial state (the recurrent
        layers) defines __call__(self, inputs, initial_state=None) as
        self._call_on(inputs, initial_state): the state tensors (one or a list)
        are passed after the inputs."""
        owner = f"{type(self).__name__} '{self.name}'"
        many = isinstance(inputs, (list, tuple))
        tensors = [_symbolic(owner, t) for t in (inputs if many else [inputs])]
        if self.merges and (not many or len(tensors) < 2):
            raise ValueError(f"{owner}: takes a list of two or more inputs, got {inputs!r}")
        if not self.merges and len(tensors) != 1:
            raise ValueError(f"{owner}: takes one input, got {len(tensors)}")
        if initial_state is not None:
            states = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
            tensors += [_symbolic(f"{owner} (initial_state)", t) for t in states]
        outputs = self._call(tensors)
        return outputs[0] if len(outputs) == 1 else outputs

    def _call(self, tensors):
        """A new node on these tensors (all inputs, initial states included): its
        output tensors, shapes inferred by the engine's rule for the kind."""
        shapes = [list(t.shape[1:]) for t in tensors]
        owner = f"{type(self).__name__} '{self.name}'"
        if self._nodes and [list(s) for s in self._nodes[0].input_shapes] != shapes:
            raise ValueError(f"{owner}: every call of a layer shares its weights, so must see the "
                             f"same input shapes: first called on {_shapes_text(self._nodes[0].input_shapes)}, "
                             f"now on {_shapes_text(shapes)}")
        try:  # the engine's message names the layer and the shapes
            output_shapes = _core.layer_output_shapes(self._engine_config(), shapes)
        except ValueError as exc:
            if len(tensors) == 1:
                raise
            sources = ", ".join(f"'{t.layer.name}' {tuple(s)}" for t, s in zip(tensors, shapes))
            raise ValueError(f"{exc} (from {sources})") from None
        if self._channels_first_1d:
            _warn_time_major_input(self, tensors[0])
        node = Node(self, tensors, output_shapes)
        self._nodes.append(node)
        return list(node.outputs)

    @property
    def output(self):
        """The output of the layer's first call (a list for several outputs);
        None before it is called."""
        if not self._nodes:
            return None
        outputs = self._nodes[0].outputs
        return outputs[0] if len(outputs) == 1 else list(outputs)

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        if self._engine is not None:
            self._engine.set_trainable(self._index, self._trainable)
        for ref in getattr(self, "_wrappers", ()):  # a wrapped layer tells its wrappers' engine copies
            wrapper = ref()
            if wrapper is not None:
                wrapper._sync_trainable()

    @property
    def _trains(self):
        """True when training updates the layer's parameters (a wrapper's:
        only while it and every layer it wraps are trainable)."""
        return self._trainable

    def get_config(self):
        """Keras-style configuration (also what the engine receives)."""
        return {"name": self.name, "trainable": self._trainable}

    def _engine_config(self):
        config = self.get_config()
        config["kind"] = self.kind
        return config

    @classmethod
    def from_config(cls, config):
        """The layer that get_config() (or the engine's layer_config, which
        holds every attribute of the kind) describes; keys it does not take are ignored."""
        args = {}
        for name in _init_parameters(cls):
            field = cls._renamed.get(name, name)
            value = _argument_from_config(name, field, config) if field in config else None
            if value is not None:
                args[name] = value
        if "kernel_regularizer" in _init_parameters(cls) and (config.get("l1") or config.get("l2")):
            args["kernel_regularizer"] = regularizers.L1L2(config.get("l1", 0.0), config.get("l2", 0.0))
        return cls(**args)

    def _ensure_built(self):
        """Build the model holding the layer once its input shape is known, as
        count_params and summary do: a fully defined model's layers have weights."""
        holder = self._holder() if self._holder is not None else None
        if self._engine is None and holder is not None and holder.input_shape is not None:
            holder._ensure_built()

    def get_weights(self):
        """The layer's arrays (parameters, then state) in the model's dtype; []
        while no model holding it can be built (its input shape unknown)."""
        self._ensure_built()
        if self._engine is None:
            return []
        return self._engine.get_weights(self._index)

    def set_weights(self, weights):
        """Arrays in get_weights() order, of any real dtype (cast to the model's,
        as Model.set_weights does); ValueError naming the layer for a wrong
        count or shape."""
        self._ensure_built()
        if self._engine is None:
            raise ValueError(f"set_weights: layer '{self.name}' is not part of a built model")
        dtype = np.dtype(self._engine.dtype)
        self._engine.set_weights(self._index, cast_weights(f"set_weights: layer '{self.name}'", weights, dtype))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class Input(Layer):
    """The per-example input shape, e.g. Input((1, 28, 28)) or Input((784,)):
    the first entry of a Sequential, or the start of a functional graph
    (`x = Input((3, 32, 32)); h = Conv2D(8, 3)(x)`): it stands for its own
    output tensor wherever a layer takes one."""

    def __init__(self, shape, name=None):
        super().__init__(name=name)
        self.shape = _validate.shape("Input", "shape", shape)
        self.input_shape = self.shape
        self._nodes.append(Node(self, [], [self.shape]))

    def __call__(self, inputs):
        raise TypeError(f"Input '{self.name}': an Input is not called; pass it to other layers")

    def get_config(self):
        return {"name": self.name, "shape": list(self.shape)}


class Dense(Layer):
    """Z = X·Wᵀ + b, A = activation(Z). Kernel W has shape (units, in_features)."""

    kind = "dense"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, alpha=None, **kwargs):
        super().__init__(**kwargs)
        self.units = _validate.integer("Dense", "units", units, minimum=1)
        self.activation, self.alpha = _activation("Dense", activation, alpha)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, "Dense")
        self.bias_initializer = initializers.get(bias_initializer, "Dense")
        self.kernel_regularizer = regularizers.get(kernel_regularizer, "Dense")

    def get_config(self):
        reg = self.kernel_regularizer
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "alpha": self.alpha, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer.name,
                "bias_initializer": self.bias_initializer.name,
                "initializer_stddev": self.kernel_initializer.stddev,
                "l1": reg.l1 if reg else 0.0, "l2": reg.l2 if reg else 0.0}


class Activation(Layer):
    """An activation on its own (names in ACTIVATIONS; alpha=None is the kind's
    default: 0.01 for leaky_relu, 1.0 for elu). Softmax normalises over the
    features: the channels (axis 1) of (N, C, H, W), the last axis of (N, F) and (N, T, F)."""

    kind = "activation"

    def __init__(self, activation, alpha=None, **kwargs):
        super().__init__(**kwargs)
        self.activation, self.alpha = _activation("Activation", activation, alpha)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation, "alpha": self.alpha}


class Softmax(Layer):
    """Softmax over one axis, Keras's Softmax(axis=-1) (PyTorch's nn.Softmax(dim)):
    y = e^{x − max} / Σ_axis e^{x − max}, the other axes independent. axis counts
    the batch axis as Keras does (-1 the last; 1 the first feature axis, e.g. the
    time axis of (N, T, 1) scores, the course's softmax over t' giving α⟨t,t'⟩);
    the batch axis 0 is a ValueError. Any float input of rank >= 2 (batch
    included); same shape out."""

    kind = "softmax"

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _validate.integer("Softmax", "axis", axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dropout(Layer):
    """Inverted dropout. rate is the DROP probability: the course's 1 - keep_prob."""

    kind = "dropout"

    def __init__(self, rate, **kwargs):
        super().__init__(**kwargs)
        self.rate = _validate.real("Dropout", "rate", rate, low=0.0, high=1.0, high_open=True)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


class Flatten(Layer):
    kind = "flatten"


class Reshape(Layer):
    """Reshape each example to target_shape (one dimension may be -1)."""

    kind = "reshape"

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            dims = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise TypeError(f"Reshape: target_shape must be a tuple of ints, got {target_shape!r}") from None
        if not dims or any(d == 0 or d < -1 for d in dims) or dims.count(-1) > 1:
            raise ValueError(f"Reshape: target_shape must hold positive ints and at most one -1, "
                             f"got {target_shape!r}")
        self.target_shape = dims

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


class RepeatVector(Layer):
    """Repeats each example's vector n times (Keras's RepeatVector): input
    (batch, features), output (batch, n, features), every step a copy, e.g. an
    encoder's summary fed to each step of a decoder (one-to-many RNNs). Its
    gradient is the sum of the n steps' gradients. Calling it on anything but
    (batch, features) is a ValueError."""

    kind = "repeat_vector"

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = _validate.integer("RepeatVector", "n", n, minimum=1)

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Embedding(Layer):
    """Token ids -> vectors: y[..., :] = embeddings[id, :] (Keras's Embedding,
    PyTorch's nn.Embedding; the course's e_w = E·o_w with E = embeddingsᵀ).

    input_dim: the vocabulary size (ids 0 .. input_dim − 1); output_dim: the
    vector length. Weights: "embeddings" (input_dim, output_dim), drawn from
    embeddings_initializer ("uniform": U(−0.05, 0.05), Keras's default).
    Per-example input: ids of any shape (T,) -> (T, output_dim), (…) -> (…, output_dim).
    The model hands them over in its float dtype: each must be a whole number
    in [0, input_dim), or the call raises ValueError naming the layer, the
    value and its index, and a training step leaves the model unchanged. The
    ids get no gradient (dL/d ids = 0: the output is piecewise constant in them).

    mask_zero=True makes id 0 padding (Keras's): the output carries a mask
    (N, T), 0 where the id is 0, that the recurrent layers (masked steps keep
    the state) and the loss (masked steps left out of the mean) read; it passes
    through Dense, Activation and Dropout and stops at other layers (see the
    guide's "Masks"). Id 0 still has its row in the table, so input_dim counts
    it (vocabulary + 1)."""

    kind = "embedding"

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", mask_zero=False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = _validate.integer("Embedding", "input_dim", input_dim, minimum=1)
        self.output_dim = _validate.integer("Embedding", "output_dim", output_dim, minimum=1)
        self.embeddings_initializer = initializers.get(embeddings_initializer, "Embedding")
        self.mask_zero = bool(mask_zero)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "mask_zero": self.mask_zero,
                "embeddings_initializer": self.embeddings_initializer.name,
                "initializer_stddev": self.embeddings_initializer.stddev}


class Masking(Layer):
    """Marks padded steps of a sequence (Keras's Masking): a step of x (N, T, F)
    is masked when all its F features equal mask_value. The output is x with
    the masked steps zeroed, and carries the mask (N, T) to the recurrent
    layers and the loss, like Embedding(mask_zero=True). Input (N, T, F) only
    (ValueError otherwise); gradient: dy at valid steps, 0 at masked ones."""

    kind = "masking"

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = _validate.real("Masking", "mask_value", mask_value)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


# ------------------------------------------------------------- convolutions

class PositionalEncoding(Layer):
    """Adds the sinusoidal positional encoding of Vaswani et al. (2017, section
    3.5) to a sequence (N, T, D): y = x + PE with PE[t, 2i] = sin(t·ω_i),
    PE[t, 2i+1] = cos(t·ω_i), ω_i = max_wavelength^(−2i/D) (10000 in the
    paper), the same for every example; no weights; dx = dy. Put it after an
    Embedding (whose output is often scaled by √D first) so that attention,
    which is blind to order, sees where each token is. Same as keras_hub's
    SinePositionEncoding added to its input."""

    kind = "positional_encoding"

    def __init__(self, max_wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = _validate.real("PositionalEncoding", "max_wavelength", max_wavelength)

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}


def _pair(owner, name, value, minimum=1):
    """An int or an (h, w) pair of ints, as a 2-tuple."""
    items = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        h, w = items
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be an int or a (height, width) pair, got {value!r}") from None
    return (_validate.integer(owner, name, h, minimum=minimum),
            _validate.integer(owner, name, w, minimum=minimum))


def _padding(owner, value):
    """'valid' / 'same' (Keras), or explicit sizes: an int, (ph, pw) or
    ((top, bottom), (left, right)). Returns (mode, (top, bottom, left, right))."""
    if isinstance(value, str):
        mode = _validate.choice(owner, "padding", value.lower(), ("valid", "same"))
        return mode, (0, 0, 0, 0)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, (tuple, list)) for v in value):
        (t, b), (left, r) = (_pair(owner, "padding", v, minimum=0) for v in value)
        return "explicit", (t, b, left, r)
    ph, pw = _pair(owner, "padding", value, minimum=0)
    return "explicit", (ph, ph, pw, pw)


class _Conv(Layer):
    """Shared configuration of the convolution layers (weights NCHW, PyTorch layout)."""

    _renamed = {"dilation_rate": "dilation"}

    def __init__(self, kernel_size, strides=1, padding="valid", dilation_rate=1, activation=None,
                 use_bias=True, kernel_initializer="he_normal", bias_initializer="zeros",
                 kernel_regularizer=None, alpha=None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.kernel_size = _pair(owner, "kernel_size", kernel_size)
        self.strides = _pair(owner, "strides", strides)
        self.padding, self.pads = _padding(owner, padding)
        self.dilation_rate = _pair(owner, "dilation_rate", dilation_rate)
        self.activation, self.alpha = _activation(owner, activation, alpha)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer, owner)
        self.bias_initializer = initializers.get(bias_initializer, owner)
        self.kernel_regularizer = regularizers.get(kernel_regularizer, owner)

    def get_config(self):
        reg = self.kernel_regularizer
        return {**super().get_config(), "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding, "pads": list(self.pads),
                "dilation": list(self.dilation_rate), "activation": self.activation,
                "alpha": self.alpha, "use_bias": self.use_bias,
                "kernel_initializer": self.kernel_initializer.name,
                "bias_initializer": self.bias_initializer.name,
                "initializer_stddev": self.kernel_initializer.stddev,
                "l1": reg.l1 if reg else 0.0, "l2": reg.l2 if reg else 0.0}


class Conv2D(_Conv):
    """Conv2D(filters, kernel_size, strides=1, padding="valid"|"same"|int|(ph, pw),
    dilation_rate=1, groups=1, activation=None). Kernel (filters, C/groups, KH, KW);
    "same" with an even kernel pads the extra cell at the bottom/right, as Keras."""

    kind = "conv2d"

    def __init__(self, filters, kernel_size, groups=1, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.filters = _validate.integer("Conv2D", "filters", filters, minimum=1)
        self.groups = _validate.integer("Conv2D", "groups", groups, minimum=1)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "groups": self.groups}


class DepthwiseConv2D(_Conv):
    """One KH×KW filter per input channel (depth_multiplier of them): MobileNet's
    depthwise step. Kernel (C·depth_multiplier, 1, KH, KW)."""

    kind = "depthwise_conv2d"

    def __init__(self, kernel_size, depth_multiplier=1, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.depth_multiplier = _validate.integer("DepthwiseConv2D", "depth_multiplier",
                                                  depth_multiplier, minimum=1)

    def get_config(self):
        return {**super().get_config(), "depth_multiplier": self.depth_multiplier}


class SeparableConv2D(_Conv):
    """Depthwise then 1×1 pointwise convolution. Weights: depthwise kernel
    (C·m, 1, KH, KW), pointwise kernel (filters, C·m, 1, 1), bias (filters,)."""

    kind = "separable_conv2d"

    def __init__(self, filters, kernel_size, depth_multiplier=1, **kwargs):
        super().__init__(kernel_size, **kwargs)
        self.filters = _validate.integer("SeparableConv2D", "filters", filters, minimum=1)
        self.depth_multiplier = _validate.integer("SeparableConv2D", "depth_multiplier",
                                                  depth_multiplier, minimum=1)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "depth_multiplier": self.depth_multiplier}


class Conv2DTranspose(_Conv):
    """Transposed convolution (U-Net's up-sampling). Kernel (C, filters, KH, KW) as
    PyTorch; "valid" gives (H − 1)·s + KH, "same" gives H·s and is the adjoint of
    Conv2D "same" on that H·s image (TensorFlow's rule: the odd cropped cell at
    the bottom/right); explicit padding is cropped from the output's sides."""

    kind = "conv2d_transpose"

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, **kwargs):
        super().__init__(kernel_size, strides=strides, padding=padding, **kwargs)
        self.filters = _validate.integer("Conv2DTranspose", "filters", filters, minimum=1)
        self.output_padding = None if output_padding is None else _pair(
            "Conv2DTranspose", "output_padding", output_padding, minimum=0)

    def get_config(self):
        config = {**super().get_config(), "filters": self.filters}
        config["output_padding"] = [] if self.output_padding is None else list(self.output_padding)
        return config


class _Pool(Layer):
    _renamed = {"pool_size": "kernel_size"}

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.pool_size = _pair(owner, "pool_size", pool_size)
        self.strides = None if strides is None else _pair(owner, "strides", strides)
        self.padding, self.pads = _padding(owner, padding)

    def get_config(self):
        return {**super().get_config(), "kernel_size": list(self.pool_size),
                "strides": [] if self.strides is None else list(self.strides),
                "padding": self.padding, "pads": list(self.pads)}


class MaxPooling2D(_Pool):
    """Max over pool_size windows (strides default to pool_size); "same" pads with −∞."""

    kind = "max_pool2d"


class AveragePooling2D(_Pool):
    """Mean over windows; "same" averages only the cells inside the image (Keras),
    explicit padding counts padded zeros (PyTorch's count_include_pad)."""

    kind = "avg_pool2d"


class GlobalAveragePooling2D(Layer):
    """(C, H, W) -> (C,): the mean of each channel."""

    kind = "global_avg_pool2d"


class UpSampling2D(Layer):
    """(C, H, W) -> (C, H·sh, W·sw) for size = (sh, sw) (an int: both axes);
    float32/float64 like the model. interpolation "nearest" repeats each pixel
    sh × sw times; "bilinear" interpolates with half-pixel centres, clamped at
    the edges: PyTorch's F.interpolate(mode="bilinear", align_corners=False),
    Keras 3's resize. No weights. U-Net decoders use it (then a convolution) in
    place of Conv2DTranspose."""

    kind = "up_sampling2d"
    INTERPOLATIONS = ("nearest", "bilinear")

    def __init__(self, size=(2, 2), interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = _pair("UpSampling2D", "size", size)
        self.interpolation = _validate.choice("UpSampling2D", "interpolation", interpolation,
                                              self.INTERPOLATIONS)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "interpolation": self.interpolation}


class ZeroPadding2D(Layer):
    """Zeros around each image: padding int, (ph, pw) or ((top, bottom), (left, right))."""

    kind = "zero_padding2d"
    _renamed = {"padding": "pads"}

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(padding, str):
            raise TypeError("ZeroPadding2D: padding must be an int, (ph, pw) or "
                            f"((top, bottom), (left, right)), got {padding!r}")
        _, self.pads = _padding("ZeroPadding2D", padding)

    def get_config(self):
        return {**super().get_config(), "pads": list(self.pads)}


# ------------------------------------------------------------- sequences
# 1-D signals are (C, L) per example, channels first like images: PyTorch's
# Conv1d layout (Keras's default is (L, C)). The engine runs them on the 2-D
# kernels as (C, 1, L) images, without copies.

def _length(owner, name, value):
    """An int or a 1-tuple of ints, as an int >= 1."""
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = value[0]
    return _validate.integer(owner, name, value, minimum=1)


class Conv1D(_Conv):
    """Conv1D(filters, kernel_size, strides=1, padding="valid"|"same"|"causal",
    dilation_rate=1, groups=1, activation=None, ...) on (C, L) -> (filters, L_out):
    y[o, t] = b[o] + Σ_{c in group(o), k} W[o, c, k] · x[c, t·s + k·d − pad_left]
    (PyTorch's Conv1d). Kernel (filters, C/groups, K), bias (filters,); float32/
    float64 like the model. "valid": L_out = ⌊(L − d·(K−1) − 1) / s⌋ + 1; "same":
    ⌈L / s⌉ with the odd padding cell on the right (Keras); "causal": pads
    d·(K−1) on the left only, so output t sees inputs ≤ t (Keras, WaveNet)."""

    kind = "conv1d"
    _channels_first_1d = True
    PADDINGS = ("valid", "same", "causal")

    def __init__(self, filters, kernel_size, strides=1, padding="valid", dilation_rate=1, groups=1,
                 **kwargs):
        k, s, d = (_length("Conv1D", n, v) for n, v in
                   (("kernel_size", kernel_size), ("strides", strides), ("dilation_rate", dilation_rate)))
        if not isinstance(padding, str):
            raise TypeError(f"Conv1D: padding must be one of {', '.join(map(repr, self.PADDINGS))}, "
                            f"got {padding!r}")
        super().__init__((1, k), strides=(1, s), dilation_rate=(1, d), **kwargs)
        self.kernel_size, self.strides, self.dilation_rate = (k,), (s,), (d,)
        self.padding = _validate.choice("Conv1D", "padding", padding.lower(), self.PADDINGS)
        self.filters = _validate.integer("Conv1D", "filters", filters, minimum=1)
        self.groups = _validate.integer("Conv1D", "groups", groups, minimum=1)

    def get_config(self):
        config = {**super().get_config(), "filters": self.filters, "groups": self.groups}
        del config["pads"]  # no explicit padding in 1-D
        return config


class MaxPooling1D(_Pool):
    """Max over windows of pool_size steps on (C, L) -> (C, L_out) (strides
    default to pool_size); padding "valid" or "same" (⌈L / s⌉ outputs, padded
    with −∞, the odd cell on the right), as Keras; float32/float64."""

    kind = "max_pool1d"
    _channels_first_1d = True

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        owner = type(self).__name__
        k = _length(owner, "pool_size", pool_size)
        s = None if strides is None else _length(owner, "strides", strides)
        if not isinstance(padding, str):
            raise TypeError(f"{owner}: padding must be 'valid' or 'same', got {padding!r}")
        super().__init__((1, k), None if s is None else (1, s), padding, **kwargs)
        self.pool_size, self.strides = (k,), None if s is None else (s,)

    def get_config(self):
        config = super().get_config()
        del config["pads"]
        return config


class AveragePooling1D(MaxPooling1D):
    """Mean over windows of pool_size steps on (C, L) -> (C, L_out) (strides
    default to pool_size; Keras's AveragePooling1D on PyTorch's layout):
    y[c, t] = mean of x[c, t·s − left … t·s − left + K − 1] over the steps
    inside the sequence. padding "valid", or "same" (⌈L / s⌉ outputs, the odd
    padding cell on the right, only the steps inside each window averaged:
    Keras's rule, PyTorch's count_include_pad=False); float32/float64."""

    kind = "avg_pool1d"


class GlobalAveragePooling1D(Layer):
    """(C, L) -> (C,): the mean of each channel over the steps; float32/float64."""

    kind = "global_avg_pool1d"
    _channels_first_1d = True


class GlobalMaxPooling1D(Layer):
    """(C, L) -> (C,): the max of each channel over the steps (Keras's
    GlobalMaxPooling1D on PyTorch's layout; its gradient goes to the first
    maximum); float32/float64. The text CNN's Embedding → Conv1D → global max
    needs the (batch, channels, steps) layout (see the guide)."""

    kind = "global_max_pool1d"
    _channels_first_1d = True


class Add(Layer):
    """Element-wise sum of two or more inputs: a residual connection's
    x + F(x). `Add()([h, x])`. The inputs broadcast as in Keras 3 (and
    NumPy): per example they have one rank, and along each axis their sizes
    are equal or 1, the output taking the largest (a (N, C, 1, 1) per-channel
    scale against (N, C, H, W) maps); a repeated input's gradient is dy summed
    over the axes it was repeated along. The other element-wise merges
    (Subtract, Multiply, Average, Maximum, Minimum) broadcast the same way.
    ValueError (naming the layer, the two shapes and the axis) for sizes
    that neither match nor are 1."""

    kind = "add"
    merges = True


class Subtract(Layer):
    """a − b of exactly two inputs, broadcast as Add's (Keras's Subtract): a siamese
    network's f(x1) − f(x2). `Subtract()([a, b])`; the course's verification
    head's |f(x1) − f(x2)| is `Activation("abs")(Subtract()([e1, e2]))`.
    Gradients: dy to a, −dy to b. ValueError (naming the layer) for another
    number of inputs or shapes that do not broadcast."""

    kind = "subtract"
    merges = True


class Multiply(Layer):
    """Element-wise product of two or more inputs, broadcast as Add's (Keras's
    Multiply): a gate's σ(a) ⊙ h, a squeeze-and-excitation block's per-channel
    scale. `Multiply()([gate, h])`. Input k's gradient is dy times the product
    of the other inputs (summed over the axes it was repeated along).
    float32/float64; ValueError (naming the layer) for fewer than two inputs
    or shapes that do not broadcast."""

    kind = "multiply"
    merges = True


class Average(Layer):
    """Element-wise mean of two or more inputs, broadcast as Add's (Keras's
    Average): (x_1 + ... + x_n) / n, an ensemble's averaged outputs. Every
    input receives dy / n. float32/float64; ValueError (naming the layer) for
    fewer than two inputs or shapes that do not broadcast."""

    kind = "average"
    merges = True


class Maximum(Layer):
    """Element-wise maximum of two or more inputs, broadcast as Add's (Keras's
    Maximum); a NaN in any input gives NaN (torch.maximum). The gradient goes
    to the input holding the maximum; where m inputs tie, each gets dy / m
    (torch.amax over the stacked inputs; torch.maximum for two). float32/float64;
    ValueError (naming the layer) for fewer than two inputs or shapes that do
    not broadcast."""

    kind = "maximum"
    merges = True


class Minimum(Layer):
    """Element-wise minimum of two or more inputs, broadcast as Add's (Keras's
    Minimum); NaN and ties as Maximum: tied inputs share dy equally."""

    kind = "minimum"
    merges = True


class Concatenate(Layer):
    """Joins inputs along `axis` (counting the batch axis, as Keras: 1 is the
    channel axis of NCHW); the other axes must match. `Concatenate()([a, b])`."""

    kind = "concatenate"
    merges = True

    def __init__(self, axis=1, **kwargs):
        super().__init__(**kwargs)
        self.axis = _validate.integer("Concatenate", "axis", axis)
        if self.axis == 0:
            raise ValueError("Concatenate: axis 0 is the batch axis and cannot be joined; got 0")

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


class Dot(Layer):
    """The dot product of two inputs over one axis of each, per example (Keras's
    Dot, batch_dot). `axes` is one axis for both inputs or a pair (one per
    input), counting the batch axis as Keras does (negative: from the end);
    the contracted axis must be the first or the last per-example axis of its
    input, and the two must have one size. The output holds the first input's
    other axes, then the second's: (N, T, D) and (N, S, D) with axes=2 give
    (N, T, S); two vectors (N, D) with axes=1 give (N, 1). normalize=True scales
    each input to unit L2 norm along its axis first (x / max(‖x‖, 1e-12), as
    torch.nn.functional.normalize), so the output is the cosine similarity.
    float32/float64. `Dot(axes=1)([u, v])`; bad axes or sizes: ValueError."""

    kind = "dot"
    merges = True

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axes, (list, tuple)):
            if len(axes) != 2:
                raise ValueError(f"Dot: axes must be one axis or a pair (one per input), got {axes!r}")
            self.axes = tuple(_validate.integer("Dot", "axes", a) for a in axes)
        else:
            self.axes = (_validate.integer("Dot", "axes", axes),) * 2
        if not isinstance(normalize, (bool, np.bool_)):
            raise TypeError(f"Dot: normalize must be True or False, got {normalize!r}")
        self.normalize = bool(normalize)

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "normalize": self.normalize}


class BatchNormalization(Layer):
    """Normalises each channel over the batch (and height, width): the course's
    z_norm = (z − μ) / √(σ² + ε), then γ·z_norm + β. axis 1 is the channels of NCHW
    images, or the features of (N, C) (-1 too). Training uses the batch's μ, σ² and
    updates moving = momentum·moving + (1 − momentum)·batch (Keras: momentum is the
    weight KEPT; the variance averaged is the unbiased one); inference, and a frozen
    layer (trainable=False) even in fit, use the moving averages and leave them be.
    Weights: gamma (if scale, starts 1), beta (if center, 0), moving_mean (0),
    moving_variance (1), each (C,)."""

    kind = "batch_norm"

    def __init__(self, axis=1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.axis = _validate.integer("BatchNormalization", "axis", axis)
        if self.axis == 0:
            raise ValueError("BatchNormalization: axis 0 is the batch axis; the channels are axis=1")
        self.momentum = _validate.real("BatchNormalization", "momentum", momentum, low=0.0, high=1.0)
        self.epsilon = _validate.real("BatchNormalization", "epsilon", epsilon, low=0.0, low_open=True)
        self.center = bool(center)
        self.scale = bool(scale)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale}
class UnitNormalization(Layer):
    """Scales every vector along `axis` to Euclidean length 1 (Keras 3's
    UnitNormalization; PyTorch's F.normalize(x, p=2, dim=axis)):
    y = x / max(‖x‖₂, epsilon), the FaceNet embedding with ‖f(x)‖₂ = 1, so
    squared distances lie in [0, 4]. axis counts the batch axis, as in Keras
    (-1, the default, is the last; 1 the channels of NCHW); one axis (Keras
    also takes a list). A vector shorter than epsilon (the zero vector) is
    divided by epsilon: no NaN. No weights; float32/float64.
    ValueError (from the engine, naming the layer): axis 0 or outside the
    input, epsilon not finite and > 0."""

    kind = "unit_normalization"

    def __init__(self, axis=-1, epsilon=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.axis = _validate.integer("UnitNormalization", "axis", axis)
        self.epsilon = _validate.real("UnitNormalization", "epsilon", epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


class LayerNormalization(Layer):
    """Normalises each position over its features (Ba, Kiros & Hinton 2016;
    Keras's LayerNormalization, PyTorch's nn.LayerNorm(D, eps=epsilon)): per
    example and position, μ and the biased σ² of its D = last-axis values,
    x̂ = (x − μ)/√(σ² + ε), y = γ ⊙ x̂ + β. Unlike BatchNormalization no batch
    statistics: training and inference compute the same. Inputs (N, ..., D),
    float32/float64; only the last axis (axis=-1) is supported (another is a
    ValueError when the layer is called). Weights gamma (D,) (scale=True,
    starts 1) and beta (D,) (center=True, starts 0): PyTorch's weight and bias."""

    kind = "layer_norm"

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        super().__init__(**kwargs)
        self.axis = _validate.integer("LayerNormalization", "axis", axis)
        self.epsilon = _validate.real("LayerNormalization", "epsilon", epsilon)
        self.center = bool(center)
        self.scale = bool(scale)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale}


# ------------------------------------------------------------- preprocessing

class Normalization(Layer):
    """(x − mean) / √variance per entry of axis 1: per feature of (N, F)
    inputs, per channel of NCHW images; a zero variance only centres. mean and
    variance are state (in get_weights, saved with the model, never trained).
    Give both, call adapt(X_train), or use corenn.data.Standardizer.layer()."""

    kind = "normalization"

    def __init__(self, mean=None, variance=None, **kwargs):
        super().__init__(**kwargs)
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: give both mean and variance, or neither")
        self.mean = self.variance = None
        if mean is not None:
            self._set_statistics(mean, variance)

    def _set_statistics(self, mean, variance):
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        variance = np.asarray(variance, dtype=np.float64).reshape(-1)
        if mean.shape != variance.shape:
            raise ValueError(f"Normalization: mean and variance must have the same length, got "
                             f"{mean.size} and {variance.size}")
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(variance)) and np.all(variance >= 0)):
            raise ValueError("Normalization: mean must be finite and variance finite and >= 0")
        self.mean, self.variance = mean, variance

    def adapt(self, X):
        """Statistics of X (the training set) over every axis but axis 1."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim < 2 or len(X) == 0:
            raise ValueError(f"Normalization.adapt: X must be (examples, features) or (examples, "
                             f"channels, ...) with at least one example, got shape {X.shape}")
        _validate.finite("Normalization.adapt", "X", X)
        axes = (0, *range(2, X.ndim))
        self._set_statistics(X.mean(axis=axes), X.var(axis=axes))
        if self._engine is not None:
            dtype = np.dtype(self._engine.dtype)
            self.set_weights([self.mean.astype(dtype), self.variance.astype(dtype)])

    def get_config(self):
        stats = {"mean": [], "variance": []} if self.mean is None else {
            "mean": self.mean.tolist(), "variance": self.variance.tolist()}
        return {**super().get_config(), **stats}


class RandomFlip(Layer):
    """Flips each training image at random: mode "horizontal" (left-right),
    "vertical" or "horizontal_and_vertical" (Keras's default), each allowed flip
    with probability 1/2. Passes images through untouched at inference."""

    kind = "random_flip"
    MODES = ("horizontal", "vertical", "horizontal_and_vertical")

    def __init__(self, mode="horizontal_and_vertical", **kwargs):
        super().__init__(**kwargs)
        self.mode = _validate.choice("RandomFlip", "mode", mode, self.MODES)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class RandomCrop(Layer):
    """Pads each training image with `padding` zeros on every side (an int or
    (pad_h, pad_w)) and crops it back to its size at a random offset: shifts of
    up to ±padding pixels (the CIFAR-style "pad 4, crop 32"). The shape is
    kept; inference passes images through untouched."""

    kind = "random_crop"

    def __init__(self, padding, **kwargs):
        super().__init__(**kwargs)
        self.padding = _pair("RandomCrop", "padding", padding, minimum=0)

    def get_config(self):
        ph, pw = self.padding
        return {**super().get_config(), "pads": [ph, ph, pw, pw]}

    @classmethod
    def from_config(cls, config):
        top, _, left, _ = _config_pads(config)
        return cls((top, left), name=config.get("name"), trainable=config.get("trainable", True))


class ColorShift(Layer):
    """Adds to each channel of each training image an offset drawn uniformly
    from [−delta, delta] (brightness/colour jitter). Identity at inference."""

    kind = "color_shift"

    def __init__(self, delta, **kwargs):
        super().__init__(**kwargs)
        self.delta = _validate.real("ColorShift", "delta", delta, low=0.0)

    def get_config(self):
        return {**super().get_config(), "delta": self.delta}


# ------------------------------------------------------------- recurrent

class _Recurrent(Layer):
    """Shared configuration of SimpleRNN, GRU and LSTM (course 5, weeks 1–2), on
    the C++ recurrent kernels in PyTorch's layouts and gate order.

    Input (batch, timesteps, features); output (batch, units), or with
    return_sequences every step's (batch, timesteps, units); with
    return_state the final states follow as extra outputs ([output, h] or, for
    the LSTM, [output, h, c], each (batch, units)). `layer(x,
    initial_state=[h0, ...])` starts from given states (zeros otherwise).
    go_backwards reads the sequence last step first; a returned sequence is
    then in that processing order (Keras). dropout (training only) drops
    input units with one mask per sequence, reused at every step and shared by
    all the gates (Keras's; inverted scaling; the same seed draws the same
    masks). recurrent_dropout (training only) drops units of the previous
    state h<t−1> where the recurrent kernel multiplies it, again with one
    mask per sequence (per example and unit, the same at every step), shared
    by all the gates: Keras's non-cuDNN LSTM and GRU draw one mask per gate,
    corenn one (Gal & Ghahramani 2016, tied weights); the GRU's z ⊙ h<t−1>
    and the carried state of a masked step read h<t−1> undropped, as
    Keras's. Kept units are scaled by 1/(1 − recurrent_dropout); the mask is
    independent of the input mask and, in a Bidirectional, of the other
    direction's. Inference ignores both. Weights in get_weights order:
    kernel (G·units, features), recurrent_kernel (G·units, units), bias
    (G·units,) — PyTorch's weight_ih, weight_hh and bias_ih + bias_hh, G = 1
    (SimpleRNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n; bias = bias_ih, then
    recurrent_bias = bias_hh). The kernels implement activation "tanh" and
    recurrent_activation "sigmoid" only: another is a ValueError when the layer
    is constructed.

    Arguments: units, activation, (GRU, LSTM: recurrent_activation,) use_bias
    by position in Keras's order, the others by keyword. Errors: ValueError
    for units < 1, dropout or recurrent_dropout outside [0, 1) or an
    unsupported cell function (at construction), for an input that is not
    (batch, timesteps, features) or initial states not (batch, units) (at the
    call); TypeError for a misspelt keyword."""

    _gated = True

    # Positional order as Keras: (units, activation, [recurrent_activation,] use_bias);
    # everything after use_bias is keyword-only.
    def __init__(self, units, activation="tanh", use_bias=True, *, return_sequences=False,
                 return_state=False, go_backwards=False, dropout=0.0, recurrent_dropout=0.0,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal", **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = _validate.integer(owner, "units", units, minimum=1)
        self.dropout = _validate.real(owner, "dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.recurrent_dropout = _validate.real(owner, "recurrent_dropout", recurrent_dropout, low=0.0, high=1.0,
                                                high_open=True)
        if not isinstance(activation, str):
            raise TypeError(f"{owner}: activation must be a name, got {activation!r}")
        self.activation = activation
        self.use_bias = bool(use_bias)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.kernel_initializer = initializers.get(kernel_initializer, owner)
        self.recurrent_initializer = initializers.get(recurrent_initializer, owner)
        normals = {i.stddev for i in (self.kernel_initializer, self.recurrent_initializer)
                   if i.name == "random_normal"}
        if len(normals) > 1:
            raise ValueError(f"{owner}: kernel_initializer and recurrent_initializer share one "
                             f"random_normal stddev, got {sorted(normals)}")
        self._stddev = normals.pop() if normals else initializers.RandomNormal().stddev
        # The engine validates the hyper-parameters (the cell functions among them)
        # when it makes the layer: making it now, on a one-step sequence of one
        # feature, raises those errors here rather than at the first call or
        # predict. Subclasses set their own attributes before calling this __init__.
        _core.layer_output_shapes(self._engine_config(), [[1, 1]])

    def __call__(self, inputs, initial_state=None):
        """Call on a sequence tensor; initial_state: the state tensors ([h], or
        [h, c] for the LSTM, each (None, units)). Returns the output, or with
        return_state the list [output, *final states]."""
        return self._call_on(inputs, initial_state)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout,
                "kernel_initializer": self.kernel_initializer.name,
                "recurrent_initializer": self.recurrent_initializer.name,
                "initializer_stddev": self._stddev}


class _GatedRecurrent(_Recurrent):
    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True, **kwargs):
        if not isinstance(recurrent_activation, str):
            raise TypeError(f"{type(self).__name__}: recurrent_activation must be a name, "
                            f"got {recurrent_activation!r}")
        self.recurrent_activation = recurrent_activation
        super().__init__(units, activation, use_bias, **kwargs)

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation}


# The shapes, options and errors every recurrent layer's help() shows.
_RECURRENT_DOC = _Recurrent.__doc__.split("\n\n", 1)[1]


class SimpleRNN(_Recurrent):
    __doc__ = """The course's basic RNN cell: a<t> = tanh(Waa·a<t−1> + Wax·x<t> + ba), with
    Wax = kernel (units, features), Waa = recurrent_kernel (units, units), ba = bias.
    States [h].

""" + _RECURRENT_DOC

    kind = "simple_rnn"


class GRU(_GatedRecurrent):
    __doc__ = """Gated recurrent unit, PyTorch's (Keras's reset_after=True): r and z gates
    (the course's Γr, Γu), n = tanh(W_in·x + b_n + r ⊙ (W_hn·h + rb_n)),
    h<t> = (1 − z) ⊙ n + z ⊙ h<t−1>. Weights kernel (3·units, features),
    recurrent_kernel (3·units, units), bias and recurrent_bias (3·units,), gates
    r, z, n. States [h].

""" + _RECURRENT_DOC

    kind = "gru"


class LSTM(_GatedRecurrent):
    __doc__ = """Long short-term memory: gates i, f, o (the course's Γu, Γf, Γo) and the
    candidate g (c̃), c<t> = f ⊙ c<t−1> + i ⊙ g, h<t> = o ⊙ tanh(c<t>). Weights
    kernel (4·units, features), recurrent_kernel (4·units, units), bias
    (4·units,), gates i, f, g, o. unit_forget_bias starts the forget gate's bias
    at 1. States [h, c].

""" + _RECURRENT_DOC

    kind = "lstm"

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True, *,
                 unit_forget_bias=True, **kwargs):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, activation, recurrent_activation, use_bias, **kwargs)

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


# ------------------------------------------------------------- attention

class _AttentionCall(Layer):
    """The attention layers' call: several tensors in, the output and the
    attention weights out (the second only with return_attention_scores)."""

    def _fix_call_option(self, owner, name, value):
        """A call option the engine saves with the layer: fixed by its first call."""
        if self._nodes and value != getattr(self, name):
            raise ValueError(f"{owner}: {name} is fixed by the layer's first call "
                             f"({getattr(self, name)}), got {value}")
        setattr(self, name, value)

    def _attend(self, tensors, return_attention_scores, use_causal_mask):
        owner = f"{type(self).__name__} '{self.name}'"
        self._fix_call_option(owner, "use_causal_mask", bool(use_causal_mask))
        output, scores = self._call([_symbolic(owner, t) for t in tensors])
        return [output, scores] if return_attention_scores else output


class _QueryValueAttention(_AttentionCall):
    """Attention and AdditiveAttention: Keras's call on [query, value] or
    [query, value, key], with mask=[query_mask, value_mask]."""

    def __call__(self, inputs, mask=None, return_attention_scores=False, use_causal_mask=False):
        owner = f"{type(self).__name__} '{self.name}'"
        if not isinstance(inputs, (list, tuple)) or len(inputs) not in (2, 3):
            raise ValueError(f"{owner}: inputs must be a list [query, value] or "
                             f"[query, value, key], got {inputs!r}")
        if mask is None:
            mask = [None, None]
        if not isinstance(mask, (list, tuple)) or len(mask) != 2:
            raise ValueError(f"{owner}: mask must be a list [query_mask, value_mask] (each a "
                             f"(batch, steps) tensor or None), got {mask!r}")
        self._fix_call_option(owner, "query_mask_input", mask[0] is not None)
        self._fix_call_option(owner, "value_mask_input", mask[1] is not None)
        tensors = list(inputs) + [m for m in mask if m is not None]
        return self._attend(tensors, return_attention_scores, use_causal_mask)

    def get_config(self):
        return {**super().get_config(), "use_scale": self.use_scale, "dropout": self.dropout,
                "use_causal_mask": self.use_causal_mask, "query_mask_input": self.query_mask_input,
                "value_mask_input": self.value_mask_input}


_QUERY_VALUE_CALL = """
    Call: `layer([query, value])` or `([query, value, key])` (key = value when
    not given), query (N, Tq, D), value (N, Tv, Dv), key (N, Tv, D); keys and
    values must have the same number of steps. Keyword arguments as Keras's:
    mask=[query_mask, value_mask], each (N, Tq) / (N, Tv) (nonzero = a valid
    step) or None: masked values are left out of the softmax and masked
    queries' output rows are zeros (Keras). Without an explicit mask the masks
    the query and value carry (Embedding(mask_zero=True), Masking) are used, and
    the output carries the query's. A query with no valid key gets α = 0 and a
    zero output (never NaN). use_causal_mask=True lets query i see keys j <= i
    only. return_attention_scores=True returns [output, α (N, Tq, Tv)] (after
    dropout in training, as Keras); α is for inspection (no gradient flows back
    through it). use_causal_mask and which masks are given are fixed by the
    layer's first call and saved with it (query_mask_input, value_mask_input).
    dropout (in [0, 1)): inverted dropout on α in training only, its mask drawn
    from the model's dropout generator as Dropout draws it (same seed, same
    mask); inference is unaffected."""


class Attention(_QueryValueAttention):
    __doc__ = """Dot-product attention (Luong et al. 2015; Keras's Attention).
    score_mode="dot": scores = s·query·keyᵀ (s: a trainable scalar weight
    `scale`, starting at 1, with use_scale=True; 1 otherwise — not 1/√D, as
    Keras); score_mode="concat" (Keras 3): scores[i, j] = c·Σ_d tanh(s·(query[i, d]
    + key[j, d])) with c the trainable scalar `concat_score_weight` (starting at
    1; weights in get_weights order: scale if use_scale, then
    concat_score_weight). α = softmax over the Tv keys (the course's α⟨t,t'⟩),
    output = α·value (N, Tq, Dv).""" + _QUERY_VALUE_CALL

    kind = "attention"

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, use_causal_mask=False,
                 query_mask_input=False, value_mask_input=False, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)
        self.score_mode = _validate.choice("Attention", "score_mode", score_mode, ("dot", "concat"))
        self.dropout = _validate.real("Attention", "dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.use_causal_mask = bool(use_causal_mask)
        self.query_mask_input = bool(query_mask_input)
        self.value_mask_input = bool(value_mask_input)

    def get_config(self):
        return {**super().get_config(), "score_mode": self.score_mode}


class AdditiveAttention(_QueryValueAttention):
    __doc__ = """Additive attention (Bahdanau et al. 2015; Keras's AdditiveAttention),
    the course's attention scores: scores[i, j] = Σ_d w_d·tanh(query[i, d] +
    key[j, d]), w the trainable (D,) weight `scale` with use_scale=True
    (glorot_uniform, Keras's), ones otherwise; α = softmax over the Tv keys,
    output = α·value (N, Tq, Dv). As in Keras the layer has no projections:
    give it W₁·query and W₂·key (Dense layers) for Bahdanau's
    vᵀ tanh(W₁ s + W₂ h).""" + _QUERY_VALUE_CALL

    kind = "additive_attention"

    def __init__(self, use_scale=True, dropout=0.0, use_causal_mask=False, query_mask_input=False,
                 value_mask_input=False, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = bool(use_scale)
        self.dropout = _validate.real("AdditiveAttention", "dropout", dropout, low=0.0, high=1.0,
                                      high_open=True)
        self.use_causal_mask = bool(use_causal_mask)
        self.query_mask_input = bool(query_mask_input)
        self.value_mask_input = bool(value_mask_input)


class MultiHeadAttention(_AttentionCall):
    """Multi-head attention (Vaswani et al. 2017, section 3.2.2; Keras's
    MultiHeadAttention). `layer(query, value, key=None, attention_mask=None,
    return_attention_scores=False, use_causal_mask=False)`, query (N, Tq, Dq),
    value (N, Tv, Dv), key (N, Tv, Dk) (= value when None):
    Q = query·W_qᵀ + b_q (N, Tq, num_heads·key_dim), K, V likewise, head h =
    softmax(Q_h K_hᵀ/√key_dim) V_h, output = concat(heads)·W_oᵀ + b_o
    (N, Tq, D_out), D_out = output_shape or Dq. attention_mask (N, Tq, Tv):
    nonzero/True = attend (Keras, PyTorch's boolean attn_mask); a query with no
    key to attend to gets zeros (never NaN). The masks the inputs carry
    (Embedding(mask_zero=True), Masking) restrict it too, as in Keras: masked
    value/key steps are not attended, a masked query attends nothing, ANDed
    with attention_mask and the causal mask; the output carries the query's
    mask. ONNX export refuses such a masked model (ValueError). use_causal_mask (a call option,
    fixed by the first call and saved with the layer): query i sees keys
    j <= i. With return_attention_scores the weights (N, num_heads, Tq, Tv)
    are returned too, for inspection (no gradient flows back through them).

    Weights in get_weights order: query kernel (num_heads·key_dim, Dq),
    query bias, key kernel (num_heads·key_dim, Dk), key bias, value kernel
    (num_heads·value_dim, Dv), value bias, output kernel (D_out,
    num_heads·value_dim), output bias (no biases with use_bias=False). These
    are PyTorch's nn.MultiheadAttention in_proj_weight split in three row
    blocks (q, k, v), in_proj_bias likewise, out_proj.weight, out_proj.bias
    (key_dim = embed_dim / num_heads there). Kernels glorot_uniform (each
    projection's own fan-in and fan-out), biases zeros. dropout (in [0, 1)):
    inverted dropout on the attention weights in training only (PyTorch's
    dropout, Keras's), the mask drawn from the model's dropout generator as
    Dropout draws it; the returned scores are the weights before dropout
    (Keras)."""

    kind = "multi_head_attention"

    def __init__(self, num_heads, key_dim, value_dim=None, dropout=0.0, use_bias=True, output_shape=None,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", use_causal_mask=False, **kwargs):
        super().__init__(**kwargs)
        owner = "MultiHeadAttention"
        self.num_heads = _validate.integer(owner, "num_heads", num_heads, minimum=1)
        self.key_dim = _validate.integer(owner, "key_dim", key_dim, minimum=1)
        # None (0 in the engine's configuration): key_dim.
        self.value_dim = self.key_dim if value_dim is None or value_dim == 0 else _validate.integer(
            owner, "value_dim", value_dim, minimum=1)
        self.dropout = _validate.real(owner, "dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.use_bias = bool(use_bias)
        if output_shape is not None and not isinstance(output_shape, (list, tuple)):
            output_shape = (output_shape,)
        self.output_shape = None if output_shape is None else tuple(
            _validate.integer(owner, "output_shape", d, minimum=1) for d in output_shape)
        self.kernel_initializer = initializers.get(kernel_initializer, owner)
        self.bias_initializer = initializers.get(bias_initializer, owner)
        normals = {i.stddev for i in (self.kernel_initializer, self.bias_initializer)
                   if i.name == "random_normal"}
        if len(normals) > 1:
            raise ValueError(f"{owner}: kernel_initializer and bias_initializer share one "
                             f"random_normal stddev, got {sorted(normals)}")
        self._stddev = normals.pop() if normals else initializers.RandomNormal().stddev
        self.use_causal_mask = bool(use_causal_mask)

    def __call__(self, query, value, key=None, attention_mask=None, return_attention_scores=False,
                 use_causal_mask=False):
        tensors = [query, value, value if key is None else key]
        if attention_mask is not None:
            tensors.append(attention_mask)
        return self._attend(tensors, return_attention_scores, use_causal_mask)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "key_dim": self.key_dim,
                "value_dim": self.value_dim, "dropout": self.dropout, "use_bias": self.use_bias,
                "output_shape": list(self.output_shape or ()),
                "kernel_initializer": self.kernel_initializer.name,
                "bias_initializer": self.bias_initializer.name, "initializer_stddev": self._stddev,
                "use_causal_mask": self.use_causal_mask}


# ------------------------------------------------------------- wrappers

def _wrapped(owner, name, layer):
    """A layer given to a wrapper: a corenn layer, not an Input. The wrapper
    builds its own copy in the engine (from the layer's config) and owns its
    weights: read them through the wrapper's get_weights."""
    if not isinstance(layer, Layer) or isinstance(layer, Input):
        raise TypeError(f"{owner}: {name} must be a corenn layer (e.g. Dense(8)), got {layer!r}")
    return layer


class _Wrapper(Layer):
    """A layer around others: its config nests theirs (the engine's "layer"
    attribute holds the inner layer's whole config dict; the model file a
    nested layer object), and from_config rebuilds them first."""

    _nested = ("layer",)

    def _wrap(self, layer):
        """Keeps `layer` and lets it tell this wrapper when its trainable flag
        changes (the engine runs a copy of it, built from its config)."""
        if layer is not None:
            if not hasattr(layer, "_wrappers"):
                layer._wrappers = []
            layer._wrappers.append(weakref.ref(self))
        return layer

    def _inner_layers(self):
        return [getattr(self, key) for key in self._nested if getattr(self, key) is not None]

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        # Keras's setter: the flag is also every wrapped layer's.
        self._trainable = bool(value)
        for inner in self._inner_layers():
            inner._trainable = self._trainable
        self._sync_trainable()

    @property
    def _trains(self):
        return self._trainable and all(inner._trains for inner in self._inner_layers())

    def _sync_trainable(self):
        """Gives the engine's copy the effective flag: frozen (the wrapper and
        the layers in it) as soon as the wrapper or a wrapped layer is."""
        if self._engine is not None:
            self._engine.set_trainable(self._index, self._trains)

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in cls._nested:
            if config.get(key) is not None:
                if not isinstance(config[key], dict):
                    raise TypeError(f"{cls.__name__}.from_config: {key} must be a layer's config dict, "
                                    f"got {config[key]!r}")
                config[key] = from_config(config[key])
        return super().from_config(config)


class TimeDistributed(_Wrapper):
    """Applies `layer` at every time step with the same weights (Keras's
    TimeDistributed): input (batch, timesteps, ...), output (batch, timesteps,
    ...') where `layer` maps (batch, ...) to (batch, ...'). The steps fold into
    the batch: the layer runs once on batch·timesteps examples, so
    TimeDistributed(Dense(k)) is one GEMM (the same as Dense, which acts on
    the last axis) and TimeDistributed(Conv2D(...)) one convolution over
    batch·timesteps images. `layer` is any layer with one input and one output
    (Dense, Conv2D, Flatten, Dropout, BatchNormalization, ...); the weights in
    get_weights are its weights, under its names. A ValueError for an input
    without a time axis ((batch, features)) or a layer with several inputs or outputs."""

    kind = "time_distributed"

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        self.layer = self._wrap(_wrapped("TimeDistributed", "layer", layer))

    def get_config(self):
        return {**super().get_config(), "layer": self.layer._engine_config()}


MERGE_MODES = ("concat", "sum", "mul", "ave", None)


class Bidirectional(_Wrapper):
    """A recurrent layer run both ways (Keras's Bidirectional; course 5, week 1):
    a forward copy of `layer` and a backward copy reading the sequence from
    the last step (go_backwards flipped, or `backward_layer` when given: the
    same kind, return_sequences and return_state, the other direction).
    With return_sequences the backward outputs are reversed back into time
    order, so step t holds both directions' states at t. merge_mode joins the
    two outputs: "concat" (last axis 2·units), "sum", "mul", "ave", or None
    for the two as separate outputs. Outputs: the merged output (None: the
    two), then with return_state the forward layer's final states, then the
    backward layer's ([out, h_f, c_f, h_b, c_b] for an LSTM). initial_state
    takes the states in the same order. Weights in get_weights order: the
    forward layer's, then the backward layer's (forward_kernel, ...,
    backward_kernel, ...; twice the layer's parameters), PyTorch's
    nn.LSTM(bidirectional=True) weights and their *_reverse twins."""

    kind = "bidirectional"
    _nested = ("layer", "backward_layer")

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        recurrent = (SimpleRNN, LSTM, GRU)
        for name, value in (("layer", layer), ("backward_layer", backward_layer)):
            if value is not None and not isinstance(_wrapped("Bidirectional", name, value), recurrent):
                raise ValueError(f"Bidirectional: {name} must be a SimpleRNN, LSTM or GRU, got "
                                 f"{type(value).__name__} '{value.name}'")
        if layer is None:
            raise TypeError("Bidirectional: layer must be a SimpleRNN, LSTM or GRU, got None")
        self.layer = self._wrap(layer)
        self.backward_layer = self._wrap(backward_layer)
        # The engine spells None "none" (its attributes are strings).
        merge_mode = None if merge_mode == "none" else merge_mode
        self.merge_mode = _validate.choice("Bidirectional", "merge_mode", merge_mode, MERGE_MODES)

    def __call__(self, inputs, initial_state=None):
        """Call on a sequence tensor; initial_state: the forward layer's states
        then the backward layer's. Returns the output, or a list (merge_mode
        None, return_state)."""
        return self._call_on(inputs, initial_state)

    def get_config(self):
        backward = self.backward_layer
        return {**super().get_config(), "layer": self.layer._engine_config(),
                "merge_mode": "none" if self.merge_mode is None else self.merge_mode,
                "backward_layer": None if backward is None else backward._engine_config()}


def layer_class(kind):
    """The layer class whose engine kind is `kind` ("dense", "conv2d", ...): one
    of the kinds the C++ engine registers (corenn._core.layer_kinds())."""
    kinds = _core.layer_kinds()
    if kind not in kinds:
        raise ValueError(f"unknown layer kind {kind!r}; expected one of {', '.join(kinds)}"
                         f"{_validate.did_you_mean(str(kind), list(kinds))}")
    found, todo = {}, [Layer]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.kind:
            found[cls.kind] = cls
    if kind not in found:
        raise ValueError(f"layer kind {kind!r} of the engine has no Python layer class")
    return found[kind]


def from_config(config):
    """A layer from an engine configuration (get_config() plus "kind"; the
    engine's layer_config gives every attribute of the kind)."""
    if not isinstance(config, dict) or "kind" not in config:
        raise TypeError(f"from_config: config must be a layer's config dict (with its 'kind'), got {config!r}")
    return layer_class(config["kind"]).from_config(config)


# Keras's functional forms of the merge layers: add([a, b]) is Add()([a, b]);
# the keyword arguments go to the layer (name=..., axis=..., axes=...).
def _functional_form(cls, what):
    def merge(inputs, **kwargs):
        return cls(**kwargs)(inputs)
    merge.__name__ = merge.__qualname__ = cls.__name__.lower()
    merge.__doc__ = f"{cls.__name__}(**kwargs)(inputs): {what}."
    return merge


add = _functional_form(Add, "the element-wise sum of a list of tensors")
subtract = _functional_form(Subtract, "a − b of a list [a, b]")
multiply = _functional_form(Multiply, "the element-wise product of a list of tensors")
average = _functional_form(Average, "the element-wise mean of a list of tensors")
maximum = _functional_form(Maximum, "the element-wise maximum of a list of tensors")
minimum = _functional_form(Minimum, "the element-wise minimum of a list of tensors")


def concatenate(inputs, axis=1, **kwargs):
    """Concatenate(axis, **kwargs)(inputs). axis defaults to 1, Concatenate's
    default here (the channels of NCHW; Keras's is -1, its channels-last axis)."""
    return Concatenate(axis=axis, **kwargs)(inputs)


def dot(inputs, axes=-1, normalize=False, **kwargs):
    """Dot(axes, normalize, **kwargs)(inputs), axes=-1 by default as in Keras."""
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)


MaxPool2D = MaxPooling2D
AvgPool2D = AveragePooling2D
GlobalAvgPool2D = GlobalAveragePooling2D
MaxPool1D = MaxPooling1D
AvgPool1D = AveragePooling1D
GlobalAvgPool1D = GlobalAveragePooling1D
GlobalMaxPool1D = GlobalMaxPooling1D

# The public names: every layer class (and alias) defined above, found rather
# than listed, so a new layer kind cannot be left out.
__all__ = sorted([name for name, value in list(globals().items())
                  if not name.startswith("_") and isinstance(value, type) and issubclass(value, Layer)]
                 + ["SymbolicTensor", "from_config", "layer_class"]
                 + ["add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"])
