"""Hyper-parameter search (course 2 week 3): sample at random rather than on a
grid, on the scale that suits each parameter, then zoom in (coarse to fine).

    space = {"learning_rate": LogUniform(1e-4, 1),         # r ∈ [−4, 0], α = 10^r
             "beta_1": OneMinusLogUniform(0.9, 0.999),     # r ∈ [−3, −1], β = 1 − 10^r
             "units": IntUniform(16, 128), "activation": Choice(["relu", "tanh"]),
             "epochs": 10}                                  # a constant is passed through
    results = random_search(objective, space, n_trials=20, metric="val_accuracy", seed=0)
    results = random_search(objective, refine(results, top_k=3), n_trials=20, ...)

objective(params) trains and returns a number or a dict of metrics.
"""

import math
import time

import numpy as np

from . import _core, _validate


class Distribution:
    """A parameter's range, sampled uniformly in its own coordinate u."""

    def _u(self, value):
        return value

    def _value(self, u):
        return u

    def sample(self, rng):
        """One draw with `rng`, a np.random.Generator."""
        return self._draw(_generator(f"{type(self).__name__}.sample", rng))

    def _draw(self, rng):
        return self._value(rng.uniform(self._lo, self._hi))

    def _narrowed(self, lo, hi):
        raise NotImplementedError

    def refine(self, values, margin):
        """[min, max] of values in u, widened by margin × the current u width on
        each side and clipped to the current range."""
        us = [self._u(v) for v in values]
        pad = margin * (self._hi - self._lo)
        return self._narrowed(max(self._lo, min(us) - pad), min(self._hi, max(us) + pad))


def _generator(owner, rng):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{owner}: rng must be a np.random.Generator (np.random.default_rng(seed)), "
                        f"got {type(rng).__name__} {rng!r}")
    return rng


def _bounds(owner, low, high, positive=False):
    low = _validate.real(owner, "low", low, low=0.0 if positive else None, low_open=positive)
    high = _validate.real(owner, "high", high)
    if not high > low:
        raise ValueError(f"{owner}: high must be > low, got low={low}, high={high}")
    return low, high


class Uniform(Distribution):
    def __init__(self, low, high):
        self.low, self.high = _bounds("Uniform", low, high)
        self._lo, self._hi = self.low, self.high

    def _narrowed(self, lo, hi):
        return Uniform(lo, hi) if hi > lo else Uniform(lo, lo + 1e-12 * max(1.0, abs(lo)))

    def __repr__(self):
        return f"Uniform({self.low:g}, {self.high:g})"


class LogUniform(Distribution):
    """10^r with r uniform on [log10 low, log10 high]: as many draws in
    [1e-4, 1e-3] as in [0.1, 1] (the course's learning-rate scale)."""

    def __init__(self, low, high):
        self.low, self.high = _bounds("LogUniform", low, high, positive=True)
        self._lo, self._hi = math.log10(self.low), math.log10(self.high)

    def _u(self, value):
        return math.log10(value)

    def _value(self, u):
        return min(max(float(10.0 ** u), self.low), self.high)  # 10^log10(x) may round past x

    def _narrowed(self, lo, hi):
        hi = max(hi, lo + 1e-9)
        return LogUniform(10.0 ** lo, 10.0 ** hi)

    def __repr__(self):
        return f"LogUniform({self.low:g}, {self.high:g})"


class OneMinusLogUniform(Distribution):
    """β = 1 − 10^r with r uniform: for (0.9, 0.999), r ∈ [−3, −1] (the course's
    sampling of momentum β, dense near 1 where β matters most)."""

    def __init__(self, low, high):
        self.low, self.high = _bounds("OneMinusLogUniform", low, high)
        if not (0 <= self.low and self.high < 1):
            raise ValueError(f"OneMinusLogUniform: need 0 <= low < high < 1, got low={self.low}, "
                             f"high={self.high}")
        self._lo, self._hi = math.log10(1 - self.high), math.log10(1 - self.low)

    def _u(self, value):
        return math.log10(1 - value)

    def _value(self, u):
        return min(max(float(1.0 - 10.0 ** u), self.low), self.high)

    def _narrowed(self, lo, hi):
        hi = max(hi, lo + 1e-9)
        return OneMinusLogUniform(1.0 - 10.0 ** hi, 1.0 - 10.0 ** lo)

    def __repr__(self):
        return f"OneMinusLogUniform({self.low:g}, {self.high:g})"


class IntUniform(Distribution):
    """An integer in [low, high], both included, each equally likely."""

    def __init__(self, low, high):
        self.low = _validate.integer("IntUniform", "low", low)
        self.high = _validate.integer("IntUniform", "high", high)
        if self.high < self.low:
            raise ValueError(f"IntUniform: high must be >= low, got low={low}, high={high}")
        self._lo, self._hi = self.low, self.high

    def _draw(self, rng):
        return int(rng.integers(self.low, self.high + 1))

    def _narrowed(self, lo, hi):
        return IntUniform(int(math.floor(lo)), int(math.ceil(hi)))

    def __repr__(self):
        return f"IntUniform({self.low}, {self.high})"


class Choice(Distribution):
    """One of the options, each equally likely."""

    def __init__(self, options):
        self.options = _validate.sequence("Choice", "options", options)
        if not self.options:
            raise ValueError("Choice: options must not be empty")

    def _draw(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def refine(self, values, margin):
        """The options that the top trials used, in their original order."""
        return Choice([o for o in self.options if any(o == v for v in values)])

    def __repr__(self):
        return f"Choice({self.options!r})"


def _check_space(owner, space):
    if not isinstance(space, dict) or not space:
        raise TypeError(f"{owner}: space must be a non-empty dict name -> Distribution or constant, "
                        f"got {space!r}")
    return space


def sample(space, rng):
    """One draw of every parameter (constants as they are), in space's order;
    rng a np.random.Generator."""
    space, rng = _check_space("sample", space), _generator("sample", rng)
    return {name: d.sample(rng) if isinstance(d, Distribution) else d for name, d in space.items()}


class SearchResults:
    """Trials sorted best first by `metric` (NaN, e.g. a diverged run, last).
    Each row is a dict: trial (its 0-based draw number), the parameters, the
    objective's metrics and seconds (wall time of the objective)."""

    def __init__(self, rows, space, metric, mode, param_names):
        self.space, self.metric, self.mode = space, metric, mode
        self.param_names = list(param_names)
        sign = -1.0 if mode == "max" else 1.0

        def key(row):
            v = row[metric]
            return (1, 0.0) if isinstance(v, float) and math.isnan(v) else (0, sign * v)

        self.rows = sorted(rows, key=key)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    @property
    def best(self):
        return self.rows[0]

    @property
    def best_params(self):
        return {name: self.rows[0][name] for name in self.param_names}

    def table(self, limit=None):
        rows = self.rows[:limit]
        cols = list(rows[0]) if rows else []
        cell = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
        cells = [[cell(r[c]) for c in cols] for r in rows]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def random_search(objective, space, n_trials=20, metric=None, mode="max", seed=None):
    """Runs objective(params) on n_trials random draws from space and returns
    SearchResults sorted by metric (mode "max" or "min"). objective returns a
    number (recorded as metric, default name "score") or a dict of metrics
    (metric names the one to sort by; it may be omitted for a one-entry dict).
    seed=None draws from corenn's generator (corenn.seed)."""
    owner = "random_search"
    if not callable(objective):
        raise TypeError(f"{owner}: objective must be callable objective(params), got {objective!r}")
    space = _check_space(owner, space)
    n_trials = _validate.integer(owner, "n_trials", n_trials, minimum=1, maximum=_validate.INT_MAX)
    _validate.choice(owner, "mode", mode, ("max", "min"))
    if metric is not None and not isinstance(metric, str):
        raise TypeError(f"{owner}: metric must be None or the name (a str) of the metric to sort by, "
                        f"got {type(metric).__name__} {metric!r}")
    rng = np.random.default_rng(_core.next_key() if seed is None else
                                _validate.integer(owner, "seed", seed, minimum=0))
    draws = [sample(space, rng) for _ in range(n_trials)]
    rows = []
    for i, params in enumerate(draws):
        started = time.perf_counter()
        outcome = objective(dict(params))
        seconds = time.perf_counter() - started
        if isinstance(outcome, dict):
            metrics = {k: float(v) for k, v in outcome.items()}
            if metric is None:
                if len(metrics) != 1:
                    raise ValueError(f"{owner}: the objective returned {', '.join(map(repr, metrics))};"
                                     " name the one to optimise with metric=")
                metric = next(iter(metrics))
        else:
            metric = metric or "score"
            metrics = {metric: float(outcome)}
        if metric not in metrics:
            raise ValueError(f"{owner}: the objective returned no {metric!r}; it returned "
                             f"{', '.join(map(repr, metrics))}")
        clash = set(metrics) & (set(params) | {"trial", "seconds"})
        if clash:
            raise ValueError(f"{owner}: metric names {sorted(clash)} clash with parameter names")
        rows.append({"trial": i, **params, **metrics, "seconds": seconds})
    return SearchResults(rows, space, metric, mode, list(space))


def refine(results, top_k=3, margin=0.1):
    """A narrower space around the top_k trials (coarse to fine): each range
    becomes the span of the top trials' values in its sampling coordinate (log
    scale for LogUniform, log(1 − β) for OneMinusLogUniform), widened by margin
    × the old width on each side, within the old range; a Choice keeps the
    options the top trials used; constants stay."""
    top_k = _validate.integer("refine", "top_k", top_k, minimum=1)
    margin = _validate.real("refine", "margin", margin, low=0.0)
    if not isinstance(results, SearchResults):
        raise TypeError(f"refine: expected the SearchResults of random_search, got {results!r}")
    top = [r for r in results.rows[:top_k]
           if not (isinstance(r[results.metric], float) and math.isnan(r[results.metric]))]
    if not top:
        raise ValueError(f"refine: every trial's {results.metric!r} is NaN; nothing to refine around")
    return {name: d.refine([r[name] for r in top], margin) if isinstance(d, Distribution) else d
            for name, d in results.space.items()}


__all__ = ["Choice", "Distribution", "IntUniform", "LogUniform", "OneMinusLogUniform",
           "SearchResults", "Uniform", "random_search", "refine", "sample"]
