"""Argument checks shared by the Python API: each error names the callee, the
argument, what was expected and what was given."""

import difflib
import functools
import inspect
import math
import numbers
import os

import numpy as np


# The largest count or size an argument may give: the engine's bound on integer
# hyper-parameters (a layer's units, a kernel's size). A number of steps, trials
# or grid cells beyond it describes work that never ends or memory no machine has.
INT_MAX = 2**31 - 1


def integer(owner, name, value, minimum=None, maximum=None):
    # type() first: the ABC check below costs a microsecond on every predict call.
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__} {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}: {name} must be <= {maximum}, got {value}")
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
        raise ValueError(f"{owner}: {name} must be one of {', '.join(map(repr, options))}, "
                         f"got {value!r}{did_you_mean(value, options)}")
    return value


def examples(owner, name, value):
    """value (an array of examples in rows) must hold at least one: losses,
    metrics and updates over zero examples have no value (scikit-learn and
    Keras refuse them too), and a mean over none would pass as a perfect 0."""
    if np.ndim(value) == 0:
        raise ValueError(f"{owner}: {name} must hold examples in rows (N, ...), got a scalar {value!r}")
    if len(value) == 0:
        raise ValueError(f"{owner}: {name} holds no examples")
    return value


def array(owner, name, value, dtype=None, labels=False):
    """value (any array-like) as a NumPy array of real numbers, converted to
    `dtype` when given; labels=True also lets strings through (class labels
    compared with ==). Where np.asarray would give a ragged-list error, an
    object array that arithmetic later trips on, or silently drop the
    imaginary part of a complex one, this names the argument: ValueError for
    a ragged nested list, TypeError for None, complex, string or other
    non-numeric values. bool counts as a number (0/1), as in NumPy."""
    try:
        a = np.asarray(value)
    except ValueError:  # NumPy refuses nested sequences of different lengths
        raise ValueError(f"{owner}: {name} must be a rectangular array (nested sequences of equal "
                         f"lengths), got a ragged {type(value).__name__}") from None
    if a.dtype.kind == "O" and a.ndim and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in a.flat):
        a = a.astype(np.float64)  # numbers mixed with NumPy scalars or Fractions come as objects
    # (astype would turn None into NaN: an object array of anything else is refused below)
    if a.dtype.kind not in ("biufUS" if labels else "biuf"):
        what = "labels (numbers or strings)" if labels else "real numbers"
        got = f"{type(value).__name__} {value!r}" if a.ndim == 0 else f"shape {a.shape} dtype {a.dtype}"
        raise TypeError(f"{owner}: {name} must be an array of {what}, got {got}")
    return a if dtype is None else a.astype(dtype, copy=False)


class UnknownKey(KeyError, ValueError):
    """A key that is not in a table (a word not in a vocabulary): a KeyError,
    as a dict lookup gives, and a ValueError, as every bad argument value is."""

    def __str__(self):  # the message as given, without KeyError's quotes
        return str(self.args[0]) if self.args else ""


def model(owner, value, name="model"):
    """value, which must be a corenn model (cn.Model, cn.Sequential): TypeError
    naming the argument otherwise, before an attribute error deep inside."""
    from .models import Model  # here: models imports this module
    if not isinstance(value, Model):
        raise TypeError(f"{owner}: {name} must be a corenn model (cn.Model or cn.Sequential), "
                        f"got {type(value).__name__}")
    return value


def sequence(owner, name, value, what="a list"):
    """value (a list, tuple or other iterable, not a str) as a list; TypeError
    naming the argument for anything else."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{owner}: {name} must be {what}, got {type(value).__name__} {value!r}")
    return list(value)


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


def path(owner, name, value):
    """A file path (str, bytes or os.PathLike) as os.fspath gives it; TypeError
    for anything else, ValueError for an empty one."""
    try:
        value = os.fspath(value)
    except TypeError:
        raise TypeError(f"{owner}: {name} must be a path (str, bytes or os.PathLike), "
                        f"got {type(value).__name__} {value!r}") from None
    if not value:
        raise ValueError(f"{owner}: {name} must not be empty")
    return value


def did_you_mean(value, options):
    """"; did you mean 'x'?" naming the option closest to `value` (difflib's
    similarity, or the initials of a snake_case option: 'lr' -> 'learning_rate'),
    or "" when none is close."""
    if not isinstance(value, str):
        return ""
    options = [o for o in options if isinstance(o, str)]
    close = difflib.get_close_matches(value.lower(), options, n=1)
    if not close:
        close = [o for o in options if "_" in o and "".join(w[:1] for w in o.split("_")) == value.lower()]
    return f"; did you mean {close[0]!r}?" if close else ""


def keyword_signature(cls, parent):
    """The signature of cls(...) with every argument it accepts: the
    parameters of its own __init__, then, when that passes **kwargs on, those
    of `parent` (the signature of the class above, already complete) as
    keyword-only ones."""
    if "__init__" not in vars(cls):
        return parent
    params = list(inspect.signature(vars(cls)["__init__"]).parameters.values())[1:]  # no self
    passes_on = any(p.kind == p.VAR_KEYWORD for p in params)
    params = [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if passes_on and parent is not None:
        names = {p.name for p in params}
        params += [p.replace(kind=p.KEYWORD_ONLY) for p in parent.parameters.values()
                   if p.name not in names]
    return inspect.Signature(params)


def keywords(owner, signature, given):
    """TypeError for a keyword argument that `signature` does not take,
    suggesting the closest one it does."""
    for key in given:
        if key not in signature.parameters:
            hint = did_you_mean(key, signature.parameters) or (
                f"; it takes {', '.join(signature.parameters)}")
            raise TypeError(f"{owner} got an unexpected keyword argument {key!r}{hint}")


class _ClassSignature:
    """cls.__signature__ on the class only: an instance (a layer is callable
    on tensors) keeps the signature of its __call__."""

    def __get__(self, obj, cls):
        if obj is not None:
            raise AttributeError("__signature__")
        return cls._signature


class KeywordChecked:
    """Base of the classes configured by keyword arguments (layers,
    optimizers). Each subclass's signature lists every argument it accepts,
    its bases' ones included (followed up through **kwargs), so help(cls) and
    inspect.signature(cls) show them instead of a bare **kwargs; and cls(...)
    with a misspelt keyword raises TypeError naming the class and the closest
    argument before any __init__ runs."""

    _signature = None
    __signature__ = _ClassSignature()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._signature = keyword_signature(cls, cls._signature)  # the parent's, until set here
        if "__init__" in vars(cls):  # help(cls) also lists __init__
            self = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
            cls.__init__.__signature__ = inspect.Signature([self, *cls._signature.parameters.values()])

    def __new__(cls, *args, **kwargs):
        if kwargs:
            keywords(cls.__name__, cls._signature, kwargs)
        return super().__new__(cls)


def keyword_checked(method):
    """The same check for a method's keyword arguments (compile, fit)."""
    signature = inspect.signature(method)
    owner = f"{method.__name__}()"

    @functools.wraps(method)
    def checked(*args, **kwargs):
        keywords(owner, signature, kwargs)
        return method(*args, **kwargs)
    return checked


def channels_last(name, shape, expected=None):
    """A hint for an image batch given channels-last (N, H, W, C), the layout
    of Keras, TensorFlow and image files, where corenn expects (N, C, H, W):
    when `shape` is `expected` (C, H, W) with the channels moved last, or,
    with no `expected`, as a possibility. "" when it does not apply."""
    shape = tuple(shape)
    if len(shape) != 4:
        return ""
    if expected is None:
        return (f"; if {name} holds images channels-last (N, H, W, C), pass "
                f"{name}.transpose(0, 3, 1, 2): corenn expects (N, C, H, W)")
    c, h, w = expected if len(expected) == 3 else (None, None, None)
    if shape[1:] != (h, w, c) or shape[1:] == tuple(expected):
        return ""
    return (f"; corenn expects images as (N, C, H, W) and {name} looks channels-last "
            f"(N, H, W, C): pass {name}.transpose(0, 3, 1, 2)")


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
