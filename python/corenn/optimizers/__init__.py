"""Optimizers (PyTorch's update rules, run in C++ as one fused pass over all
parameters). learning_rate is a number or a schedule: any callable
schedule(step) -> lr, e.g. from corenn.optimizers.schedules.

SGD's rule is v = μ·v + (1 − dampening)·g (v starts at 0), p −= lr·v:
dampening = momentum gives the course's exponentially weighted momentum,
dampening = 0 PyTorch's.

Every optimizer clips gradients when asked (Keras's arguments; None = off),
inside the fused C++ update, on the raw gradients before weight decay:
clipnorm = c scales each weight tensor's gradient to L2 norm at most c
(g·c / max(‖g‖, c), tf.clip_by_norm); global_clipnorm = c scales all of them
together so that their joint norm is at most c (tf.clip_by_global_norm;
torch.nn.utils.clip_grad_norm_ divides by ‖G‖ + 1e-6); clipvalue = c clips
each element to [−c, c] (torch.nn.utils.clip_grad_value_). Norm clipping
comes first, then clipvalue; clipnorm and global_clipnorm exclude each other.
"""

from .. import _validate
from . import schedules


class Optimizer(_validate.KeywordChecked):
    """Base class. A misspelt keyword (Adam(lr=...)) raises TypeError naming
    the closest argument (corenn._validate.KeywordChecked)."""

    kind = None

    def __init__(self, learning_rate, weight_decay=0.0, clipnorm=None, clipvalue=None, global_clipnorm=None):
        owner = type(self).__name__
        self.learning_rate = learning_rate
        self.weight_decay = _validate.real(owner, "weight_decay", weight_decay, low=0.0)
        self.clipnorm, self.clipvalue, self.global_clipnorm = (
            None if value is None else _validate.real(owner, name, value, low=0.0, low_open=True)
            for name, value in (("clipnorm", clipnorm), ("clipvalue", clipvalue),
                                ("global_clipnorm", global_clipnorm)))
        if self.clipnorm is not None and self.global_clipnorm is not None:
            raise ValueError(f"{owner}: only one of clipnorm and global_clipnorm can be set (as Keras), got "
                             f"clipnorm={self.clipnorm}, global_clipnorm={self.global_clipnorm}")

    @property
    def learning_rate(self):
        """A number or a schedule(step) -> lr. Assignable (callbacks such as
        ReduceLROnPlateau do); fit applies it from the next update on."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if not callable(value):
            value = _validate.real(type(self).__name__, "learning_rate", value, low=0.0)
        self._learning_rate = value

    def lr_at(self, step):
        """The learning rate for the 0-based update number `step`."""
        if not callable(self.learning_rate):
            return self.learning_rate
        lr = self.learning_rate(step)
        return _validate.real(f"{type(self).__name__} schedule", "learning rate", lr, low=0.0)

    def _engine_config(self, step=0):
        config = {"kind": self.kind, "lr": self.lr_at(step), "weight_decay": self.weight_decay}
        for name in ("clipnorm", "clipvalue", "global_clipnorm"):  # the engine's 0 is None, off
            if getattr(self, name) is not None:
                config[name] = getattr(self, name)
        return config

    def get_config(self):
        config = self._engine_config()
        if callable(self.learning_rate):
            config["lr"] = self.learning_rate
        return config


class SGD(Optimizer):
    kind = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, dampening=0.0, nesterov=False,
                 weight_decay=0.0, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.momentum = _validate.real("SGD", "momentum", momentum, low=0.0, high=1.0)
        self.dampening = _validate.real("SGD", "dampening", dampening, low=0.0, high=1.0)
        self.nesterov = bool(nesterov)
        if self.nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError("SGD: nesterov needs momentum > 0 and dampening == 0, got "
                             f"momentum={self.momentum}, dampening={self.dampening}")

    def _engine_config(self, step=0):
        return {**super()._engine_config(step), "momentum": self.momentum,
                "dampening": self.dampening, "nesterov": self.nesterov}


class RMSprop(Optimizer):
    kind = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.99, epsilon=1e-8, weight_decay=0.0, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        self.rho = _validate.real("RMSprop", "rho", rho, low=0.0, high=1.0)
        self.epsilon = _validate.real("RMSprop", "epsilon", epsilon, low=0.0, low_open=True)

    def _engine_config(self, step=0):
        return {**super()._engine_config(step), "alpha": self.rho, "eps": self.epsilon}


class Adam(Optimizer):
    kind = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 weight_decay=0.0, clipnorm=None, clipvalue=None, global_clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm, clipvalue, global_clipnorm)
        owner = type(self).__name__
        self.beta_1 = _validate.real(owner, "beta_1", beta_1, low=0.0, high=1.0, high_open=True)
        self.beta_2 = _validate.real(owner, "beta_2", beta_2, low=0.0, high=1.0, high_open=True)
        self.epsilon = _validate.real(owner, "epsilon", epsilon, low=0.0, low_open=True)

    def _engine_config(self, step=0):
        return {**super()._engine_config(step), "beta1": self.beta_1, "beta2": self.beta_2,
                "eps": self.epsilon}


class AdamW(Adam):
    """Adam with decoupled weight decay: p *= 1 − lr·wd before the Adam step."""

    kind = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.01, **kwargs):
        super().__init__(learning_rate, weight_decay=weight_decay, **kwargs)


_BY_NAME = {"sgd": SGD, "rmsprop": RMSprop, "adam": Adam, "adamw": AdamW}


def get(value):
    if isinstance(value, Optimizer):
        return value
    if isinstance(value, str) and value.lower() in _BY_NAME:
        return _BY_NAME[value.lower()]()
    raise ValueError(f"compile: optimizer must be an Optimizer or one of "
                     f"{', '.join(map(repr, _BY_NAME))}, got {value!r}"
                     f"{_validate.did_you_mean(value, _BY_NAME)}")


__all__ = ["Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "get", "schedules"]
