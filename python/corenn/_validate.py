"""Argument checks shared by the Python API: each error names the callee, the
argument, what was expected and what was given."""

import ast
import difflib
import functools
import inspect
import math
import numbers
import operator
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


# Compiled functions (corenn._core, corenn._core.ops) ------------------------------
# pybind11 refuses an argument it cannot convert with one TypeError, "nms():
# incompatible function arguments", that lists the signature but not which
# argument is wrong or what it was given; and it converts a bool to a number
# without a word. Every compiled function is wrapped once, at import, by
# compiled_arguments(): it refuses a bool for a number (as integer() and
# real() do) and turns pybind11's message into ours, found from the
# signature pybind11 writes as the first line of __doc__. The wrapper costs
# nothing else on a call that succeeds; the C++ checks values.

_INT64 = 2**63
_BOOLS = frozenset((bool, np.bool_))


def _split_top(text, sep):
    """text split at each `sep` outside brackets, parentheses and quotes."""
    parts, depth, quote, start = [], 0, None, 0
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _accepts_number(v):
    return not isinstance(v, (str, bytes)) and (hasattr(type(v), "__float__") or hasattr(type(v), "__index__"))


def _accepts_int(v):
    try:
        return -_INT64 <= operator.index(v) < _INT64
    except TypeError:
        return False


# What pybind11's casters take, by the type names of its signatures (the
# same class of values as the checks above); unknown types are not judged.
_COMPILED_TYPES = (
    ("SupportsFloat", "a number", _accepts_number),
    ("float", "a number", _accepts_number),
    ("SupportsInt", "an int", _accepts_int),
    ("int", "an int", _accepts_int),
    ("bool", "a bool", lambda v: v is None or hasattr(type(v), "__bool__")),
    ("str", "a str", lambda v: isinstance(v, (str, bytes))),
    ("tuple", "a tuple or list", lambda v: isinstance(v, (tuple, list))),
    ("list", "a list", lambda v: isinstance(v, (tuple, list))),
    ("Sequence", "a sequence", lambda v: isinstance(v, (tuple, list))),
    ("None", "None", lambda v: v is None),
)


def _compiled_type(annotation):
    """(what it says it expects, accepts(value), numeric) for a pybind11
    annotation ("typing.SupportsFloat | typing.SupportsIndex | None"), or None
    when it names no type judged here (arrays, objects)."""
    kinds = []
    for alternative in _split_top(annotation, "|"):
        head = alternative.split("[", 1)[0].rsplit(".", 1)[-1]
        for key, what, accepts in _COMPILED_TYPES:
            if head == key:
                kinds.append((what, accepts))
                break
        else:
            if head != "SupportsIndex":
                return None
    kinds = list(dict.fromkeys(kinds))
    if not kinds:
        return None
    whats = list(dict.fromkeys(w for w, _ in kinds))
    numeric = any(w in ("a number", "an int") for w in whats)
    return " or ".join(whats), (lambda v: any(a(v) for _, a in kinds)), numeric


def _literal(text):
    """A default as pybind11 writes it (its repr) as the value, or the text."""
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def compiled_signature(function):
    """(inspect.Signature, {name: (expected, accepts, numeric)}) of a
    pybind11 function, from the first line of its __doc__."""
    head = (function.__doc__ or "").lstrip().split("\n", 1)[0]
    inner = head[head.find("(") + 1:head.rfind(") ->") if ") ->" in head else head.rfind(")")]
    params, types, kind = [], {}, inspect.Parameter.POSITIONAL_OR_KEYWORD
    for text in _split_top(inner, ","):
        name_type, _, default = text.partition("=")
        name, _, annotation = name_type.partition(":")
        name = name.strip()
        if name in ("*", "/"):  # py::kw_only(), py::pos_only()
            kind = inspect.Parameter.KEYWORD_ONLY if name == "*" else kind
            continue
        if not name.isidentifier():  # *args, **kwargs, overloads: nothing to check
            return None, {}
        params.append(inspect.Parameter(name, kind, default=_literal(default) if default else inspect.Parameter.empty))
        judged = _compiled_type(annotation.strip())
        if judged is not None:
            types[name] = judged
    return inspect.Signature(params), types


def _mistyped(owner, signature, types, args, kwargs):
    """The clear message for a call pybind11 refused, or None."""
    if signature is None:
        return None
    keywords(f"{owner}()", signature, kwargs)
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        return f"{owner}(): {exc}"
    for name, value in bound.arguments.items():
        if name in types:
            expected, accepts, numeric = types[name]
            if (numeric and isinstance(value, (bool, np.bool_))) or not accepts(value):
                if "an int" in expected and hasattr(type(value), "__index__") and not isinstance(value, bool):
                    expected = expected.replace("an int", "an int in [-2**63, 2**63)")
                return f"{owner}: {name} must be {expected}, got {type(value).__name__} {value!r}"
    return None


def compiled_arguments(function):
    """`function` (a pybind11 function) wrapped so that a mistyped argument
    gets a TypeError naming the function, the argument, the type expected
    and the value given."""
    signature, types = compiled_signature(function)
    owner = function.__name__
    numeric = {name for name, (_, _, is_numeric) in types.items() if is_numeric}

    @functools.wraps(function)
    def checked(*args, **kwargs):
        if numeric and not (_BOOLS.isdisjoint(map(type, args)) and _BOOLS.isdisjoint(map(type, kwargs.values()))):
            message = _mistyped(owner, signature, types, args, kwargs)
            if message is not None:
                raise TypeError(message)
        try:
            return function(*args, **kwargs)
        except TypeError as exc:
            if "incompatible function arguments" not in str(exc):
                raise
            message = _mistyped(owner, signature, types, args, kwargs)
            if message is None:
                raise
        raise TypeError(message)
    if signature is not None:
        checked.__signature__ = signature
    return checked


def check_compiled_arguments(module):
    """Wraps each public function of a compiled module in place (see
    compiled_arguments), so every caller, corenn's own modules included,
    gets the clear errors."""
    for name in dir(module):
        value = getattr(module, name)
        if not name.startswith("_") and type(value).__name__ == "builtin_function_or_method":
            setattr(module, name, compiled_arguments(value))
