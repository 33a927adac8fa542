"""Argument checks shared by the Python API: each error names the callee, the
argument, what was expected and what was given."""

import math
import numbers


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


def examples(owner, name, value):
    """value (an array of examples in rows) must hold at least one: losses,
    metrics and updates over zero examples have no value (scikit-learn and
    Keras refuse them too), and a mean over none would pass as a perfect 0."""
    if len(value) == 0:
        raise ValueError(f"{owner}: {name} holds no examples")
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
