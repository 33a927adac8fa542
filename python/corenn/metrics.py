"""Metrics (course 3: one optimising metric, the rest satisficing).

Two faces:
- functions on labels, with scikit-learn's names and conventions:
  accuracy_score, confusion_matrix, precision_score, recall_score, f1_score
  (average "binary", "macro" or "micro"), top_k_accuracy_score; and `select`,
  which picks the best candidate by one optimising metric subject to
  satisficing constraints;
- metrics for compile(metrics=[...]), computed from the model's outputs
  (logits) and targets: "accuracy", "binary_accuracy", "categorical_accuracy",
  "mae", "mse", "precision", "recall", "f1" (and their "_macro"/"_micro"
  variants), "top_k_accuracy" (k = 5) or "top_<k>_accuracy"; or objects such
  as F1Score(average="macro") and TopKAccuracy(k=3); or any callable
  fn(outputs, y, loss).
Predicted labels from logits: the argmax for softmax_cross_entropy, z > 0 (σ(z)
> 0.5) per column for binary_cross_entropy, where NaN targets (missing labels)
are skipped. A NaN logit predicts nothing: a compile() metric over outputs
holding NaN is NaN (as the loss is), never the score of an argmax or a sign
test that NaN happened to pass.

Sequences (outputs (N, T, ...)) respect the output's mask (Embedding(
mask_zero=True), Masking) as Keras's metrics do: fit and evaluate hand the
metrics the targets of masked steps as missing, label -1 for class ids
((N, T) under softmax_cross_entropy) and NaN for float targets, and every
metric above leaves missing targets out, so its value is Keras's with the
mask as sample weight (a step's values averaged over the last axis, then the
mean over the unmasked steps).
"""

import collections.abc
import math
import operator
import re

import numpy as np

from . import _validate

AVERAGES = ("binary", "macro", "micro")


# ------------------------------------------------------------ label metrics
def _labels(owner, y_true, y_pred):
    """y_true and y_pred as arrays of labels of one kind: numbers, or strings
    (a string never equals a number, so a mix would score 0 silently)."""
    y_true = _validate.array(owner, "y_true", y_true, labels=True)
    y_pred = _validate.array(owner, "y_pred", y_pred, labels=True)
    if (y_true.dtype.kind in "US") != (y_pred.dtype.kind in "US"):
        raise TypeError(f"{owner}: y_true and y_pred must both hold numbers or both strings, got dtypes "
                        f"{y_true.dtype} and {y_pred.dtype}")
    return y_true, y_pred


def _labels_1d(owner, y_true, y_pred):
    y_true, y_pred = _labels(owner, y_true, y_pred)
    if y_true.ndim != 1 or y_true.shape != y_pred.shape:
        raise ValueError(f"{owner}: y_true and y_pred must be 1-D of the same length, got shapes "
                         f"{y_true.shape} and {y_pred.shape}")
    _validate.examples(owner, "y_true", y_true)
    return y_true, y_pred


def accuracy_score(y_true, y_pred):
    """Fraction of exact matches."""
    y_true, y_pred = _labels_1d("accuracy_score", y_true, y_pred)
    return float(np.mean(y_true == y_pred))


def confusion_matrix(y_true, y_pred, num_classes=None):
    """C[i, j] = number of examples of true class i predicted as j (scikit-learn's
    layout). Classes are 0..num_classes-1 when given (integer labels), else the
    sorted union of the labels seen."""
    y_true, y_pred = _labels_1d("confusion_matrix", y_true, y_pred)
    if num_classes is None:
        labels, idx = np.unique(np.concatenate([y_true, y_pred]), return_inverse=True)
        t, p, k = idx[:len(y_true)], idx[len(y_true):], len(labels)
    else:
        k = _validate.integer("confusion_matrix", "num_classes", num_classes, minimum=1,
                               maximum=_validate.INT_MAX)
        for name, given in (("y_true", y_true), ("y_pred", y_pred)):
            if given.dtype.kind not in "biuf":
                raise TypeError(f"confusion_matrix: {name} must hold integer class ids with num_classes, "
                                f"got dtype {given.dtype}")
        with np.errstate(invalid="ignore"):  # NaN or inf labels: caught as != below
            t, p = y_true.astype(np.int64), y_pred.astype(np.int64)
        for given, ids in ((y_true, t), (y_pred, p)):
            bad = (ids != given) | (ids < 0) | (ids >= k)
            if bad.any():
                raise ValueError(f"confusion_matrix: labels must be integers in [0, {k}), "
                                 f"got {given[bad][0]}")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _counts(owner, y_true, y_pred, average, pos_label):
    """True positives, false positives and false negatives per label (per
    class, per column for 0/1 indicator matrices, or of pos_label for binary)."""
    _validate.choice(owner, "average", average, AVERAGES)
    y_true, y_pred = _labels(owner, y_true, y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim not in (1, 2):
        raise ValueError(f"{owner}: y_true and y_pred must have the same shape, (n,) for labels or "
                         f"(n, labels) for 0/1 indicators, got {y_true.shape} and {y_pred.shape}")
    _validate.examples(owner, "y_true", y_true)
    if y_true.ndim == 2:  # multi-label indicators; NaN in y_true = missing label
        if average == "binary" and y_true.shape[1] != 1:
            raise ValueError(f"{owner}: average='binary' needs one label column, got "
                             f"{y_true.shape[1]}; use 'macro' or 'micro'")
        present = ~np.isnan(y_true) if y_true.dtype.kind == "f" else np.ones(y_true.shape, bool)
        t, p = (y_true == 1) & present, (y_pred == 1) & present
        return (t & p).sum(0), (~t & p & present).sum(0), (t & ~p).sum(0)
    if average == "binary":
        labels = np.union1d(y_true, y_pred)
        if len(labels) > 2:
            raise ValueError(f"{owner}: average='binary' needs two classes, got {len(labels)}; "
                             "use 'macro' or 'micro'")
        labels = np.array([pos_label])
    else:
        labels = np.union1d(y_true, y_pred)
    t, p = y_true[:, None] == labels, y_pred[:, None] == labels
    return (t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0)


def _zero_division(owner, value):
    # scikit-learn's choices (without "warn"): a number in [0, 1], or NaN.
    if isinstance(value, float) and math.isnan(value):
        return value
    return _validate.real(owner, "zero_division", value, 0.0, 1.0)


def _score(num, den, average, zero_division):
    num, den = np.asarray(num, float), np.asarray(den, float)
    if average == "micro":
        num, den = num.sum(), den.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(den > 0, num / np.where(den > 0, den, 1), zero_division)
    return float(np.mean(per)) if np.size(per) else float(zero_division)


def precision_score(y_true, y_pred, average="binary", pos_label=1, zero_division=0.0):
    """tp / (tp + fp). average: 'binary' (of pos_label), 'macro' (the mean over
    labels seen in y_true or y_pred) or 'micro' (pooled counts). A 0/0 gives
    zero_division, as scikit-learn (without its warning)."""
    tp, fp, _ = _counts("precision_score", y_true, y_pred, average, pos_label)
    return _score(tp, tp + fp, average, _zero_division("precision_score", zero_division))


def recall_score(y_true, y_pred, average="binary", pos_label=1, zero_division=0.0):
    """tp / (tp + fn); averages as precision_score."""
    tp, _, fn = _counts("recall_score", y_true, y_pred, average, pos_label)
    return _score(tp, tp + fn, average, _zero_division("recall_score", zero_division))


def f1_score(y_true, y_pred, average="binary", pos_label=1, zero_division=0.0):
    """2·tp / (2·tp + fp + fn), the harmonic mean of precision and recall;
    'macro' averages the per-label F1, 'micro' pools the counts."""
    tp, fp, fn = _counts("f1_score", y_true, y_pred, average, pos_label)
    return _score(2 * tp, 2 * tp + fp + fn, average, _zero_division("f1_score", zero_division))


def top_k_accuracy_score(y_true, scores, k=5):
    """Fraction of examples whose true class is among the k highest scores (a
    tie with the k-th score counts as a hit)."""
    k = _validate.integer("top_k_accuracy_score", "k", k, minimum=1)
    y_true = _validate.array("top_k_accuracy_score", "y_true", y_true)
    scores = _validate.array("top_k_accuracy_score", "scores", scores)
    if scores.ndim != 2 or y_true.shape != (len(scores),):
        raise ValueError(f"top_k_accuracy_score: need y_true (n,) and scores (n, classes), got "
                         f"{y_true.shape} and {scores.shape}")
    _validate.examples("top_k_accuracy_score", "y_true", y_true)
    if np.isnan(scores).any():  # NaN compares false with everything: it would always be a hit
        raise ValueError(f"top_k_accuracy_score: scores contains NaN (first at example "
                         f"{int(np.argmax(np.isnan(scores).any(axis=1)))})")
    y = y_true.astype(np.int64)
    if (np.any(y != y_true) or y.min() < 0 or y.max() >= scores.shape[1]):
        raise ValueError(f"top_k_accuracy_score: y_true must hold class ids in [0, {scores.shape[1]})")
    own = scores[np.arange(len(y)), y]
    return float(np.mean((scores > own[:, None]).sum(axis=1) < k))


_COMPARE = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq}


def select(candidates, optimizing, satisficing=None, mode="max"):
    """The candidate (a dict of metric values) that is best on `optimizing`
    among those meeting every satisficing constraint, e.g.

        select(models, "accuracy", {"runtime_ms": ("<=", 100)})

    A constraint is (op, bound) with op one of <=, <, >=, >, ==, or a predicate
    value -> bool. mode="min" for metrics such as error. Ties go to the first
    candidate. ValueError when no candidate satisfies the constraints."""
    _validate.choice("select", "mode", mode, ("max", "min"))
    candidates = _validate.sequence("select", "candidates", candidates, "a list of dicts of metric values")
    if satisficing is not None and not isinstance(satisficing, collections.abc.Mapping):
        raise TypeError(f"select: satisficing must be None or a dict {{metric: (op, bound) or predicate}}, "
                        f"got {type(satisficing).__name__} {satisficing!r}")
    checks = []
    for name, rule in (satisficing or {}).items():
        if callable(rule):
            checks.append((name, rule))
        elif isinstance(rule, (tuple, list)) and len(rule) == 2 and rule[0] in _COMPARE:
            op, bound = _COMPARE[rule[0]], rule[1]
            checks.append((name, lambda v, op=op, bound=bound: op(v, bound)))
        else:
            raise ValueError(f"select: constraint on {name!r} must be (op, bound) with op in "
                             f"{', '.join(_COMPARE)} or a predicate, got {rule!r}")
    best, best_value = None, None
    for i, c in enumerate(candidates):
        if not isinstance(c, collections.abc.Mapping):
            raise TypeError(f"select: candidate {i} must be a dict of metric values, got {type(c).__name__}")
        for name in (optimizing, *(n for n, _ in checks)):
            if name not in c:
                raise ValueError(f"select: candidate {i} has no {name!r}; it has {', '.join(map(repr, c))}")
        if not all(check(c[name]) for name, check in checks):
            continue
        value = c[optimizing]
        if isinstance(value, float) and math.isnan(value):
            continue
        if best is None or (value > best_value if mode == "max" else value < best_value):
            best, best_value = c, value
    if best is None:
        raise ValueError(f"select: no candidate satisfies {dict(satisficing or {})!r}")
    return best


# ------------------------------------------------- metrics for compile()
def _nan_in(outputs):
    return bool(np.isnan(outputs).any())


def _outputs(owner, outputs):
    """A model's outputs (N, ...): a real array of at least one example."""
    return _validate.examples(owner, "outputs", _validate.array(owner, "outputs", outputs))


def _targets(owner, y, shape, labels=False):
    """Targets as an array of `shape` (the outputs', or (N,) class ids): any
    array of that many values (a column (N, 1) of ids too), else ValueError."""
    y = _validate.array(owner, "y", y, None if labels else np.float64)
    if y.size != math.prod(shape) or (y.ndim and len(y) != shape[0]):
        raise ValueError(f"{owner}: y must have shape {shape} to match the outputs, got {y.shape}")
    return y.reshape(shape)


def _predictions(outputs, y, loss, owner):
    """(y_true, y_pred) from logits: class ids, or 0/1 columns with NaN kept in y_true."""
    outputs = _outputs(owner, outputs)
    if loss == "softmax_cross_entropy" and outputs.ndim == 3:  # a sequence: its counted steps
        outputs, y = _counted_steps(owner, outputs, y)
        return y, np.argmax(outputs, axis=1)
    if loss == "softmax_cross_entropy":
        return _targets(owner, y, (len(outputs),), labels=True), np.argmax(outputs.reshape(len(outputs), -1), axis=1)
    if loss == "binary_cross_entropy":
        z = outputs.reshape(len(outputs), -1)
        return _targets(owner, y, z.shape), (z > 0).astype(np.float64)
    raise ValueError(f"{owner}: needs a classification loss (softmax_cross_entropy or "
                     f"binary_cross_entropy), the model uses {loss!r}")


def accuracy(outputs, y, loss):
    """Fraction right: argmax of the logits for class ids; for 0/1 targets, the
    logit's sign (σ(z) > 0.5) against the label, missing (NaN) labels skipped.
    Sequences (Keras's sparse_categorical_accuracy over (N, T, K) logits and
    (N, T) labels): the fraction of the counted steps, those whose label is not
    -1 and whose step is not masked (fit and evaluate turn masked steps' labels
    into -1); NaN when no step counts."""
    outputs = _outputs("accuracy", outputs)
    if _nan_in(outputs):
        return float("nan")
    if loss == "softmax_cross_entropy" and outputs.ndim == 3:
        outputs, y = _counted_steps("accuracy", outputs, y)
        if not len(y):
            return float("nan")
        return float(np.mean(np.argmax(outputs, axis=-1) == y))
    if loss == "softmax_cross_entropy":
        y = _targets("accuracy", y, (len(outputs),), labels=True)
        return float(np.mean(np.argmax(outputs.reshape(len(outputs), -1), axis=1) == y))
    return binary_accuracy(outputs, y)


def binary_accuracy(outputs, y, loss=None):
    """Fraction of logits whose sign (σ(z) > 0.5) matches the 0/1 target;
    NaN targets (missing labels, masked steps) skipped; NaN when none is left."""
    outputs = _outputs("binary_accuracy", outputs)
    y = _targets("binary_accuracy", y, outputs.shape)
    present = ~np.isnan(y)
    if not present.any() or _nan_in(outputs):
        return float("nan")
    return float(np.mean((outputs[present] > 0) == (y[present] > 0.5)))


def _present_rows(owner, outputs, y):
    """outputs and float targets of the same shape as (rows, last axis), and
    which rows count: those without a NaN target (missing: a masked step)."""
    outputs = _outputs(owner, outputs)
    y = _validate.array(owner, "y", y, np.float64)
    if y.shape != outputs.shape:
        raise ValueError(f"{owner}: needs targets shaped like the outputs {outputs.shape}, got {y.shape}")
    width = outputs.shape[-1] if outputs.ndim > 1 else 1
    out, y = outputs.reshape(-1, width), y.reshape(-1, width)
    return out, y, ~np.isnan(y).any(axis=1)


def categorical_accuracy(outputs, y, loss=None):
    """Keras's categorical_accuracy: the fraction of rows (examples, or steps of
    a sequence) whose largest output is where the one-hot target y (shaped
    like the outputs) has its largest value; rows with NaN targets skipped."""
    out, y, present = _present_rows("categorical_accuracy", outputs, y)
    if not present.any() or _nan_in(outputs):
        return float("nan")
    return float(np.mean(np.argmax(out[present], axis=1) == np.argmax(y[present], axis=1)))


def mean_absolute_error(outputs, y, loss=None):
    """mean |y − outputs| over the rows with targets (NaN targets skipped)."""
    out, y, present = _present_rows("mae", outputs, y)
    if not present.any():
        return float("nan")
    return float(np.mean(np.abs(y[present] - out[present])))


def mean_squared_error(outputs, y, loss=None):
    """mean (y − outputs)² over the rows with targets (NaN targets skipped)."""
    out, y, present = _present_rows("mse", outputs, y)
    if not present.any():
        return float("nan")
    return float(np.mean((y[present] - out[present]) ** 2))


def _counted_steps(owner, outputs, y):
    """Sequence logits (N, T, K) and labels (N, T) as the counted steps' rows
    (K,) and labels: those whose label is not -1 (ignored, or masked)."""
    y = _validate.array(owner, "y", y, labels=True)
    if y.shape != outputs.shape[:2]:
        raise ValueError(f"{owner}: needs labels (N, T) = {outputs.shape[:2]} for sequence logits "
                         f"{outputs.shape}, got {y.shape}")
    counted = y != -1
    return outputs[counted], y[counted]


class _Averaged:
    """Precision, recall or F1 of a model's predictions. average=None picks
    'binary' for a one-logit model and 'macro' otherwise."""

    score = None
    short = None

    def __init__(self, average=None, name=None):
        if average is not None:
            _validate.choice(type(self).__name__, "average", average, AVERAGES)
        self.average = average
        self.name = name or (self.short if average is None else f"{self.short}_{average}")

    def __call__(self, outputs, y, loss):
        outputs = _outputs(f"metric {self.name!r}", outputs)
        y_true, y_pred = _predictions(outputs, y, loss, f"metric {self.name!r}")
        if _nan_in(outputs):
            return float("nan")
        if y_true.ndim == 2 and y_true.shape[1] == 1:
            y_true, y_pred = y_true[:, 0], y_pred[:, 0]
            present = ~np.isnan(y_true)
            y_true, y_pred = y_true[present], y_pred[present]
        binary = loss == "binary_cross_entropy" and y_true.ndim == 1
        average = self.average or ("binary" if binary else "macro")
        return type(self).score(y_true, y_pred, average=average)


class Precision(_Averaged):
    score = staticmethod(precision_score)
    short = "precision"


class Recall(_Averaged):
    score = staticmethod(recall_score)
    short = "recall"


class F1Score(_Averaged):
    score = staticmethod(f1_score)
    short = "f1"


class TopKAccuracy:
    """Fraction of examples whose class is among the k largest logits; for
    sequence logits (N, T, K) and labels (N, T), of the counted steps (label
    not -1, step not masked), NaN when none counts."""

    def __init__(self, k=5, name=None):
        self.k = _validate.integer("TopKAccuracy", "k", k, minimum=1)
        self.name = name or f"top_{self.k}_accuracy"

    def __call__(self, outputs, y, loss):
        if loss != "softmax_cross_entropy":
            raise ValueError(f"metric {self.name!r}: needs softmax_cross_entropy, the model uses {loss!r}")
        outputs = _outputs(f"metric {self.name!r}", outputs)
        if _nan_in(outputs):
            return float("nan")
        if outputs.ndim == 3:
            outputs, y = _counted_steps(f"metric {self.name!r}", outputs, y)
            if not len(y):
                return float("nan")
        else:
            y = _targets(f"metric {self.name!r}", y, (len(outputs),), labels=True)
        return top_k_accuracy_score(y, outputs.reshape(len(outputs), -1), self.k)


def _by_name(name):
    simple = {"accuracy": accuracy, "acc": accuracy, "sparse_categorical_accuracy": accuracy,
              "binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
              "mae": mean_absolute_error, "mean_absolute_error": mean_absolute_error,
              "mse": mean_squared_error, "mean_squared_error": mean_squared_error}
    if name in simple:
        return ("accuracy" if name == "acc" else name), simple[name]
    for cls in (Precision, Recall, F1Score):
        for average in (None, *AVERAGES):
            metric = cls(average)
            if metric.name == name:
                return name, metric
    match = re.fullmatch(r"top_(k|\d+)_accuracy", name)
    if match:
        metric = TopKAccuracy(5 if match.group(1) == "k" else int(match.group(1)), name=name)
        return name, metric
    return None


def get(metric):
    """(name, fn(outputs, y, loss)) for a name, a metric object or a callable."""
    if isinstance(metric, str):
        found = _by_name(metric)
        if found is None:
            raise ValueError(f"compile: unknown metric {metric!r}; expected accuracy, "
                             "sparse_categorical_accuracy, binary_accuracy, categorical_accuracy, mae, mse, "
                             "precision, recall, f1 (optionally with _binary, _macro or _micro), "
                             "top_k_accuracy, top_<k>_accuracy, or a callable fn(outputs, y, loss)"
                             + _validate.did_you_mean(metric, ("accuracy", "binary_accuracy", "precision",
                                                               "recall", "f1", "top_k_accuracy")))
        return found
    if callable(metric):
        return getattr(metric, "name", None) or getattr(metric, "__name__", "metric"), metric
    raise TypeError(f"compile: a metric must be a name or a callable, got {metric!r}")


__all__ = ["F1Score", "Precision", "Recall", "TopKAccuracy", "accuracy", "accuracy_score",
           "binary_accuracy", "categorical_accuracy", "confusion_matrix", "f1_score", "get",
           "mean_absolute_error", "mean_squared_error", "precision_score", "recall_score", "select",
           "top_k_accuracy_score"]
