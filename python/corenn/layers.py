"""Keras-style layers. A layer here is a configuration: it validates its
hyper-parameters, describes itself to the C++ engine, and forwards the few
things a user changes later (trainable) to the engine that runs it."""

import itertools

from . import _validate, initializers, regularizers

ACTIVATIONS = ("linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax")
_counter = itertools.count()


def _activation(owner, value):
    if value is None:
        return "linear"
    if not isinstance(value, str):
        raise TypeError(f"{owner}: activation must be a name or None, got {value!r}")
    return _validate.choice(owner, "activation", value, ACTIVATIONS)


class Layer:
    """Base class. `kind` is the engine's name for the layer."""

    kind = None

    def __init__(self, name=None, trainable=True, input_shape=None):
        base = type(self).__name__.lower()
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
        self.name = name if name is not None else f"{base}_{next(_counter)}"
        self._trainable = bool(trainable)
        self.input_shape = None if input_shape is None else _validate.shape(
            type(self).__name__, "input_shape", input_shape)
        self._engine = None  # (engine, index) once a model is built
        self._index = None

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        if self._engine is not None:
            self._engine.set_trainable(self._index, self._trainable)

    def get_config(self):
        """Keras-style configuration (also what the engine receives)."""
        return {"name": self.name, "trainable": self._trainable}

    def _engine_config(self):
        config = self.get_config()
        config["kind"] = self.kind
        return config

    def get_weights(self):
        if self._engine is None:
            return []
        return self._engine.get_weights(self._index)

    def set_weights(self, weights):
        if self._engine is None:
            raise ValueError(f"set_weights: layer '{self.name}' is not part of a built model")
        self._engine.set_weights(self._index, list(weights))

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class Input(Layer):
    """The per-example input shape, e.g. Input((1, 28, 28)) or Input((784,))."""

    def __init__(self, shape, name=None):
        super().__init__(name=name)
        self.shape = _validate.shape("Input", "shape", shape)
        self.input_shape = self.shape

    def get_config(self):
        return {"name": self.name, "shape": list(self.shape)}


class Dense(Layer):
    """Z = X·Wᵀ + b, A = activation(Z). Kernel W has shape (units, in_features)."""

    kind = "dense"

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, alpha=0.01, **kwargs):
        super().__init__(**kwargs)
        self.units = _validate.integer("Dense", "units", units, minimum=1)
        self.activation = _activation("Dense", activation)
        self.alpha = _validate.real("Dense", "alpha", alpha)
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
    """An activation on its own; softmax normalises over the last axis."""

    kind = "activation"

    def __init__(self, activation, alpha=0.01, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activation("Activation", activation)
        self.alpha = _validate.real("Activation", "alpha", alpha)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation, "alpha": self.alpha}


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


__all__ = ["Activation", "Dense", "Dropout", "Flatten", "Input", "Layer", "Reshape"]
