"""Data preparation (course 2 week 1, course 3): train/dev/test splits,
standardisation with training statistics, and shuffled mini-batches.

Randomness: seed=None draws from corenn's generator (corenn.seed), so a seeded
program repeats bitwise; an int seed makes the call reproducible on its own.
"""

import math

import numpy as np

from . import _core, _validate
from .layers import Normalization


def _rng(owner, seed):
    if seed is None:
        return np.random.default_rng(_core.next_key())
    return np.random.default_rng(_validate.integer(owner, "seed", seed, minimum=0))


def _fractions(fractions):
    try:
        f = [float(v) for v in fractions]
    except (TypeError, ValueError):
        raise TypeError("train_dev_test_split: fractions must be three numbers "
                        f"(train, dev, test), got {fractions!r}") from None
    if len(f) != 3 or any(not math.isfinite(v) or v < 0 for v in f) or abs(sum(f) - 1) > 1e-6:
        raise ValueError("train_dev_test_split: fractions must be three numbers >= 0 summing to 1 "
                         f"(train, dev, test), got {fractions!r}")
    return np.array(f)


def _allocate(class_counts, f):
    """Examples per (class, split): each entry is ⌊c·f⌋ or ⌈c·f⌉ of its class
    count c, and the class's extra examples go to the splits furthest behind
    their overall target, so the split sizes stay within one example of n·f."""
    behind = np.zeros(len(f))
    table = []
    for c in class_counts:
        ideal = c * f
        counts = np.floor(ideal + 1e-9)
        extra = int(round(c - counts.sum()))
        remainder = ideal - counts
        # Only a split with a fractional share may round up (else it would
        # exceed the ceiling); among those, the one furthest behind first.
        rank = np.lexsort((-(behind + remainder), remainder <= 1e-9))
        counts[rank[:extra]] += 1
        behind += ideal - counts
        table.append(counts.astype(np.int64))
    return np.array(table)


def train_dev_test_split(X, y=None, fractions=(0.6, 0.2, 0.2), stratify=False, shuffle=True,
                         seed=None):
    """Split examples (rows) into train, dev and test sets.

    fractions: (train, dev, test), >= 0, summing to 1; big-data splits such as
    (0.98, 0.01, 0.01) work the same way. A zero fraction gives an empty split;
    a non-zero fraction too small for any example is an error. Split sizes are
    within one example of n·fraction.
    stratify: y's classes keep their proportions in every split (each class
    contributes ⌊c·fraction⌋ or ⌈c·fraction⌉ of its c examples).
    shuffle=False takes contiguous blocks in order (not with stratify).
    Returns ((X_train, y_train), (X_dev, y_dev), (X_test, y_test)), or
    (X_train, X_dev, X_test) when y is None.
    """
    owner = "train_dev_test_split"
    X = _validate.array(owner, "X", X, labels=True)
    if X.ndim < 1 or len(X) == 0:
        raise ValueError(f"{owner}: X must hold at least one example (row), got shape {X.shape}")
    n = len(X)
    if y is not None:
        y = _validate.array(owner, "y", y, labels=True)
        if y.ndim < 1 or len(y) != n:
            raise ValueError(f"{owner}: X and y must hold the same number of examples, "
                             f"got {n} and {len(y) if y.ndim else 'a scalar'}")
    f = _fractions(fractions)
    if stratify:
        if y is None or y.ndim != 1:
            raise ValueError(f"{owner}: stratify needs y of shape ({n},) with one class per example")
        if not shuffle:
            raise ValueError(f"{owner}: stratify needs shuffle=True")
    if shuffle:
        order = _rng(owner, seed).permutation(n)
    else:
        order = np.arange(n)
    # Positions in `order`: class by class (each class in shuffled order), cut
    # into per-split blocks; each split then keeps the shuffled order.
    if stratify:
        classes, inverse = np.unique(y[order], return_inverse=True)
        by_class = [np.flatnonzero(inverse == k) for k in range(len(classes))]
    else:
        by_class = [np.arange(n)]
    table = _allocate([len(p) for p in by_class], f)
    sizes = table.sum(axis=0)
    for name, frac, size in zip(("train", "dev", "test"), f, sizes):
        if frac > 0 and size == 0:
            raise ValueError(f"{owner}: a {name} fraction of {frac:g} leaves the {name} split empty "
                             f"with {n} examples")
    split_of = np.empty(n, dtype=np.int64)
    for positions, counts in zip(by_class, table):
        split_of[positions] = np.repeat(np.arange(3), counts)
    parts = [order[split_of == s] for s in range(3)]
    if y is None:
        return tuple(X[p] for p in parts)
    return tuple((X[p], y[p]) for p in parts)


def _stat_axes(owner, X):
    if X.ndim < 2:
        raise ValueError(f"{owner}: X must be (examples, features) or (examples, channels, ...), "
                         f"got shape {X.shape}")
    return (0, *range(2, X.ndim))


class Standardizer:
    """x' = (x − μ) / σ with μ and σ from the training set only, then applied
    unchanged to dev and test data (course 1 week 1's input normalisation).

    Statistics are per entry of axis 1: per feature for (N, F) inputs, per
    channel for (N, C, H, W) images (over N, H and W). σ is the population
    standard deviation (ddof=0, as scikit-learn's StandardScaler); a constant
    feature (σ = 0) is only centred. `layer()` puts the same transform into a
    model as a Normalization layer, so it is saved and loaded with the model.
    """

    def __init__(self):
        self.mean = None
        self.variance = None

    def fit(self, X):
        X = _validate.array("Standardizer.fit", "X", X, np.float64)
        axes = _stat_axes("Standardizer.fit", X)
        _validate.examples("Standardizer.fit", "X", X)
        _validate.finite("Standardizer.fit", "X", X)
        self.mean = X.mean(axis=axes)
        self.variance = X.var(axis=axes)
        return self

    @property
    def scale(self):
        """σ per feature/channel, 1 where σ = 0."""
        self._check_fitted("scale")
        s = np.sqrt(self.variance)
        return np.where(s > 0, s, 1.0)

    def _check_fitted(self, owner):
        if self.mean is None:
            raise ValueError(f"Standardizer.{owner}: call fit(X_train) first")

    def _broadcast(self, owner, X, values):
        _stat_axes(f"Standardizer.{owner}", X)
        if X.shape[1] != len(values):
            raise ValueError(f"Standardizer.{owner}: X has {X.shape[1]} entries on axis 1, "
                             f"the statistics were fitted on {len(values)}")
        return values.reshape((1, -1) + (1,) * (X.ndim - 2))

    def transform(self, X):
        """(X − μ)/σ, in X's float dtype (float64 for other dtypes)."""
        self._check_fitted("transform")
        X = _validate.array("Standardizer.transform", "X", X)
        dtype = X.dtype if X.dtype.kind == "f" else np.float64
        mean = self._broadcast("transform", X, self.mean)
        scale = self._broadcast("transform", X, self.scale)
        return ((X - mean) / scale).astype(dtype, copy=False)

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    def inverse_transform(self, X):
        self._check_fitted("inverse_transform")
        X = _validate.array("Standardizer.inverse_transform", "X", X)
        dtype = X.dtype if X.dtype.kind == "f" else np.float64
        mean = self._broadcast("inverse_transform", X, self.mean)
        scale = self._broadcast("inverse_transform", X, self.scale)
        return (X * scale + mean).astype(dtype, copy=False)

    def layer(self, name=None):
        """A Normalization layer holding μ and σ² (model state, never trained)."""
        self._check_fitted("layer")
        return Normalization(mean=self.mean, variance=self.variance, name=name)


def mini_batches(X, y=None, batch_size=64, shuffle=True, seed=None):
    """The course's random_mini_batches: one pass over the examples in a
    shuffled order (unless shuffle=False), in batches of batch_size, the last
    one partial. Yields (X_batch, y_batch), or X_batch when y is None."""
    owner = "mini_batches"
    X = _validate.array(owner, "X", X, labels=True)
    batch_size = _validate.integer(owner, "batch_size", batch_size, minimum=1)
    if X.ndim < 1:
        raise ValueError(f"{owner}: X must hold examples in rows, got a scalar")
    if y is not None:
        y = _validate.array(owner, "y", y, labels=True)
        if y.ndim < 1 or len(y) != len(X):
            raise ValueError(f"{owner}: X and y must hold the same number of examples, "
                             f"got {len(X)} and {len(y) if y.ndim else 'a scalar'}")
    _validate.examples(owner, "X", X)
    order = _rng(owner, seed).permutation(len(X)) if shuffle else None
    return _batches(X, y, order, batch_size)


def _batches(X, y, order, batch_size):
    for start in range(0, len(X), batch_size):
        idx = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
        yield X[idx] if y is None else (X[idx], y[idx])


__all__ = ["Standardizer", "mini_batches", "train_dev_test_split"]
