"""Weight initialisers (course 1 week 4, course 2 week 1). The values are drawn
in C++ from the generator seeded by corenn.seed, so a seed fixes them.

    zeros, ones
    random_normal(stddev=0.01)   N(0, stddev²): the course's np.random.randn(...) * 0.01
    uniform                      U(±0.05): Keras's "uniform" (RandomUniform()), Embedding's default
    he_normal                    N(0, 2/fan_in)            — for ReLU networks
    he_uniform                   U(±√(6/fan_in))
    glorot_normal                N(0, 2/(fan_in + fan_out)) — Xavier, for tanh
    glorot_uniform               U(±√(6/(fan_in + fan_out))) — Keras's default
    orthogonal                   orthonormal columns (rows of a wide matrix), Gram–Schmidt
                                 on a normal matrix — the recurrent kernels' default
"""

from . import _validate

NAMES = ("zeros", "ones", "random_normal", "uniform", "he_normal", "he_uniform", "glorot_normal",
         "glorot_uniform", "orthogonal")


class Initializer:
    name = None
    stddev = 0.01

    def get_config(self):
        return {"name": self.name, "stddev": self.stddev}

    def __repr__(self):
        return f"{type(self).__name__}()"


def _simple(class_name, kind):
    return type(class_name, (Initializer,), {"name": kind, "__doc__": f"The '{kind}' initialiser."})


Zeros = _simple("Zeros", "zeros")
Ones = _simple("Ones", "ones")
RandomUniform = _simple("RandomUniform", "uniform")  # Keras's defaults, minval=-0.05, maxval=0.05
HeNormal = _simple("HeNormal", "he_normal")
HeUniform = _simple("HeUniform", "he_uniform")
GlorotNormal = _simple("GlorotNormal", "glorot_normal")
GlorotUniform = _simple("GlorotUniform", "glorot_uniform")
Orthogonal = _simple("Orthogonal", "orthogonal")


class RandomNormal(Initializer):
    """N(0, stddev²); the default 0.01 is the course's ×0.01."""

    name = "random_normal"

    def __init__(self, stddev=0.01):
        self.stddev = _validate.real("RandomNormal", "stddev", stddev, low=0.0, low_open=True)

    def __repr__(self):
        return f"RandomNormal(stddev={self.stddev})"


def get(value, owner="initializer"):
    """An Initializer from a name or an Initializer."""
    if isinstance(value, Initializer):
        return value
    if isinstance(value, str):
        _validate.choice(owner, "initializer", value, NAMES)
        return RandomNormal() if value == "random_normal" else next(
            c for c in (Zeros, Ones, RandomUniform, HeNormal, HeUniform, GlorotNormal, GlorotUniform,
                        Orthogonal)
            if c.name == value)()
    raise TypeError(f"{owner}: initializer must be a name or an Initializer, got {value!r}")
