"""Argument checks shared by the Python API: each error names the callee, the
argument, what was expected and what was given."""

import math
import numbers

import numpy as np


def integer(owner, name, value, minimum=None):
    # type() first: the ABC check below costs a microsecond on every predict call.
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


def real(owner, name, value, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value <= low if low_open else value < low
    if high is not None:
        bad |= value >= high if high_open else value > high
    if bad:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        rng = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ValueError(f"{owner}: {name} must be finite and in {rng}, got {value}")
    return value


def choice(owner, name, value, options):
    if value not in options:
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def shape(owner, name, value):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    try:
        dims = tuple(value)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be a tuple of ints, got {value!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
            raise ValueError(f"{owner}: {name} must be a tuple of positive ints, got {value!r}")
    return tuple(int(d) for d in dims)


def finite(owner, name, array, allow_nan=False):
    """ValueError unless every value of a float array (ndim >= 1) is finite,
    naming the first bad example (index along axis 0); allow_nan lets NaN through
    (missing labels). Integer arrays pass unchecked. A clean array costs two
    vectorised reductions and no temporary: min/max propagate NaN, fmin/fmax skip it."""
    if array.dtype.kind != "f" or array.size == 0:
        return array
    if allow_nan:
        low, high = np.fmin.reduce(array, axis=None), np.fmax.reduce(array, axis=None)
        if not (np.isinf(low) or np.isinf(high)):
            return array
        bad, what = np.isinf(array), "inf"
    else:
        low, high = array.min(), array.max()
        if np.isfinite(low) and np.isfinite(high):
            return array
        bad, what = ~np.isfinite(array), "NaN or inf"
    first = int(np.argmax(bad.reshape(len(array), -1).any(axis=1)))
    raise ValueError(f"{owner}: {name} contains {what} (first at example {first})")
