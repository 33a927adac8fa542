"""Kernel regularisers with Keras semantics: L2(l2) adds l2·ΣW² to the loss and
2·l2·W to the gradient. The course's λ/(2m)·Σ‖W‖² is L2(l2=λ/(2m))."""

from . import _validate


class Regularizer:
    l1 = 0.0
    l2 = 0.0

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}

    def __repr__(self):
        return f"{type(self).__name__}(l1={self.l1}, l2={self.l2})"


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1 = _validate.real(type(self).__name__, "l1", l1, low=0.0)
        self.l2 = _validate.real(type(self).__name__, "l2", l2, low=0.0)


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)


def get(value, owner="regularizer"):
    if value is None or isinstance(value, Regularizer):
        return value
    if value in ("l1", "l2"):
        return L1() if value == "l1" else L2()
    raise TypeError(f"{owner}: kernel_regularizer must be None, 'l1', 'l2' or a Regularizer, got {value!r}")
