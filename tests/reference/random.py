"""The counter-based generator of cpp/include/corenn/random.hpp, in NumPy.

SplitMix64's finaliser on uint64 arrays (NumPy integer arrays wrap modulo 2^64,
as C++ unsigned arithmetic does), so the references can reproduce a dropout
mask or an initialiser draw exactly from (key, index) instead of only checking
its statistics.
"""

import numpy as np

_U = np.uint64


def mix64(z):
    z = np.asarray(z, dtype=np.uint64) + _U(0x9E3779B97F4A7C15)
    z = (z ^ (z >> _U(30))) * _U(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> _U(27))) * _U(0x94D049BB133111EB)
    return z ^ (z >> _U(31))


def random_bits(key, index):
    return mix64(_U(key) ^ mix64(index))


def uniform01(key, index):
    """Uniform on [0, 1): the top 53 bits scaled by 2^-53 (exact in float64)."""
    return (random_bits(key, index) >> _U(11)).astype(np.float64) * 2.0**-53


def standard_normal(key, index):
    """Box-Muller over the pair (2i, 2i+1); 1 - u keeps the log finite."""
    index = np.asarray(index, dtype=np.uint64)
    u1 = 1.0 - uniform01(key, _U(2) * index)
    u2 = uniform01(key, _U(2) * index + _U(1))
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
