"""Gradient checking (course 2, week 1): compare backpropagation's gradient
with two-sided finite differences of the loss,

    g~_i = (J(θ + ε e_i) − J(θ − ε e_i)) / 2ε,    difference = ‖g − g~‖ / (‖g‖ + ‖g~‖)

below 1e-7 the gradient is right; around 1e-3 or more it is wrong. The check runs
on a float64 copy of the model (float32 rounding would swamp ε), in training mode
with the dropout masks held fixed, so dropout layers are checked too; batch norm
uses the batch's statistics, and its moving averages, which every training-mode
forward moves, are put back afterwards.

Each checked parameter costs two forward/backward passes, so checking all of
them is for small models: by default a random subset of at most `max_params`
parameters is checked, spread over every parameter tensor, and the norms above
run over that subset (g and g~ restricted to the checked indices).
"""

import sys

import numpy as np

from . import _validate


def gradient_check(model, X, y, epsilon=1e-7, max_params=2000, seed=0, verbose=0):
    """The relative difference ‖g − g~‖ / (‖g‖ + ‖g~‖) between analytic (g) and
    numerical (g~) gradients over the checked parameters (a float).

    max_params: at most this many parameters are checked (default 2,000). A
    model with more gets a random subset drawn reproducibly from `seed`: every
    parameter tensor (each layer's kernel, bias, ...) contributes at least one
    parameter and the rest is shared in proportion to the tensors' sizes, so
    every layer is checked. max_params=None checks every parameter (two
    forward/backward passes each: hours for a model of 400,000 parameters).
    verbose: 1 shows progress (a tqdm bar when tqdm is installed, otherwise a
    line on stderr every tenth of the way).

    Raises ValueError for epsilon <= 0, zero examples, a model without
    parameters, or a max_params below the number of parameter tensors (one
    each is the least that covers every layer)."""
    owner = "gradient_check"
    _validate.model(owner, model)
    if y is None:
        raise TypeError(f"{owner}: y must be the targets of X (the loss needs them), got None")
    epsilon = _validate.real(owner, "epsilon", epsilon, low=0.0, low_open=True)
    if max_params is not None:
        max_params = _validate.integer(owner, "max_params", max_params, minimum=1)
    seed = _validate.integer(owner, "seed", seed, minimum=0)
    verbose = _validate.integer(owner, "verbose", verbose, minimum=0)
    model._require_compiled(owner)
    checked = model if model.dtype == np.float64 else model._clone("float64")
    xs, ys = checked._prepare(owner, X, y)  # one array per input, one per output
    engine = checked._engine
    indices = _subset(owner, _parameter_sizes(engine), max_params, seed)
    theta, state = engine.get_parameters(), engine.get_state()
    progress = _Progress(len(indices), verbose)
    try:
        _, analytic = engine.loss_and_gradients(xs, ys)
        numeric = np.empty(len(indices))
        shifted = theta.copy()
        for k, i in enumerate(indices):
            shifted[i] = theta[i] + epsilon
            engine.set_parameters(shifted)
            plus, _ = engine.loss_and_gradients(xs, ys)
            shifted[i] = theta[i] - epsilon
            engine.set_parameters(shifted)
            minus, _ = engine.loss_and_gradients(xs, ys)
            shifted[i] = theta[i]
            numeric[k] = (plus - minus) / (2 * epsilon)
            progress.update(k + 1)
    finally:
        progress.close()
        engine.set_parameters(theta)
        engine.set_state(state)
    analytic = analytic[indices]
    denominator = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return 0.0 if denominator == 0 else float(np.linalg.norm(analytic - numeric) / denominator)


def _parameter_sizes(engine):
    """Sizes of the parameter tensors in the engine's flat parameter vector:
    layer by layer, each layer's parameters in get_weights order (its state,
    such as batch norm's moving averages, follows in get_weights but lives
    elsewhere)."""
    sizes = []
    for layer in range(engine.num_layers):
        left = engine.count_layer_params(layer)
        for w in engine.get_weights(layer):
            if left == 0:
                break
            sizes.append(w.size)
            left -= w.size
    return sizes


def _subset(owner, sizes, max_params, seed):
    """Sorted flat indices to check: all of them, or max_params of them with
    at least one per tensor and the rest in proportion to size (largest
    remainders), drawn without replacement from numpy's generator at `seed`."""
    total = sum(sizes)
    if total == 0:
        raise ValueError(f"{owner}: the model has no parameters to check")
    if max_params is None or total <= max_params:
        return np.arange(total)
    if max_params < len(sizes):
        raise ValueError(f"{owner}: max_params={max_params} cannot cover the model's {len(sizes)} "
                         f"parameter tensors (one parameter each at least); pass at least "
                         f"{len(sizes)}, or None to check all {total} parameters")
    sizes = np.asarray(sizes)
    share = (max_params - len(sizes)) * (sizes - 1) / (total - len(sizes))
    counts = 1 + np.floor(share).astype(np.int64)
    counts[np.argsort(-(share - np.floor(share)), kind="stable")[:max_params - counts.sum()]] += 1
    rng = np.random.default_rng(seed)
    starts = np.cumsum(sizes) - sizes
    picks = [start + rng.choice(size, count, replace=False)
             for start, size, count in zip(starts, sizes, counts)]
    return np.sort(np.concatenate(picks))


class _Progress:
    """tqdm when it is installed (a demo/test extra, not a dependency), else a
    line on stderr at every tenth of the way; nothing when verbose is 0."""

    def __init__(self, total, verbose):
        self.total, self.bar, self.shown = total, None, 0
        self.enabled = bool(verbose)
        if not self.enabled:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, desc="gradient_check", unit="param", file=sys.stderr)

    def update(self, done):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
        elif done * 10 // self.total > self.shown:
            self.shown = done * 10 // self.total
            print(f"gradient_check: {done}/{self.total} parameters checked", file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
