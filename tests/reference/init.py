"""Weight initialisers, float64, drawn from the same counter-based generator.

random_normal N(0, stddev²); uniform U(±0.05) (Keras's "uniform");
he_normal N(0, 2/fan_in); he_uniform U(±√(6/fan_in));
glorot_normal N(0, 2/(fan_in + fan_out)); glorot_uniform U(±√(6/(fan_in + fan_out))).
"""

import numpy as np

from .random import standard_normal, uniform01

KINDS = ["zeros", "ones", "random_normal", "uniform", "he_normal", "he_uniform", "glorot_normal",
         "glorot_uniform"]


def spread(kind, fan_in, fan_out, stddev=0.01):
    """(distribution, scale): the normal's std or the uniform's half-width."""
    if kind == "random_normal":
        return "normal", stddev
    if kind == "uniform":
        return "uniform", 0.05
    if kind.startswith("he_"):
        var_num, fan = 2.0, fan_in
    else:
        var_num, fan = 2.0, fan_in + fan_out
    if kind.endswith("_normal"):
        return "normal", np.sqrt(var_num / fan)
    return "uniform", np.sqrt(3 * var_num / fan)  # U(±a) has variance a²/3


def initialize(shape, kind, fan_in, fan_out, stddev=0.01, key=0):
    n = int(np.prod(shape, dtype=np.int64))
    if kind in ("zeros", "ones"):
        return np.full(shape, 1.0 if kind == "ones" else 0.0)
    index = np.arange(n, dtype=np.uint64)
    dist, scale = spread(kind, fan_in, fan_out, stddev)
    if dist == "normal":
        w = scale * standard_normal(key, index)
    else:
        w = scale * (2.0 * uniform01(key, index) - 1.0)
    return w.reshape(shape)
