"""Decoding sequences from a model's next-token distribution (course 5, weeks 1
and 3): sampling novel sequences, greedy search and beam search with the
course's length normalisation.

The search functions take the model as a function: ``step_fn(prefix)`` gets the
ids so far (a list of ints: ``start`` followed by the ids generated) and
returns the log-probabilities log P(y⟨t⟩ | x, y⟨1⟩…y⟨t−1⟩) of every next token,
a float array ``(V,)``. Returned ids are the generated ones only (``start``
is not repeated); a hypothesis that produced ``end_id`` ends with it.

Randomness: ``seed=None`` draws from corenn's generator (``corenn.seed``), so a
seeded session repeats; an int seed gives its own NumPy generator.
"""

import math

import numpy as np

from . import _core
from . import _validate

__all__ = ["beam_search", "greedy", "sample"]


def _rng(owner, seed):
    if seed is None:
        return np.random.default_rng(_core.next_key())
    return np.random.default_rng(_validate.integer(owner, "seed", seed, minimum=0))


def sample(logits, temperature=1.0, seed=None):
    """Draw one id per row from softmax(logits / temperature).

    ``logits``: float array ``(V,)`` (returns an int) or ``(N, V)`` (returns
    int64 ``(N,)``). ``temperature`` ≥ 0: below 1 sharpens the distribution,
    above 1 flattens it, and 0 takes the argmax (greedy; ties: the lower id).
    −inf logits have probability 0 (a mask); NaN or +inf logits, a row of
    only −inf, an empty axis or a negative temperature raise ValueError.
    The draw is the inverse CDF of one uniform number per row.
    """
    owner = "sample"
    temperature = _validate.real(owner, "temperature", temperature, low=0.0)
    z = _validate.array(owner, "logits", logits, np.float64)
    if z.ndim not in (1, 2) or z.size == 0:
        raise ValueError(f"{owner}: logits must have shape (V,) or (N, V) with V, N >= 1, got {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError(f"{owner}: logits must not hold NaN or +inf")
    rows = np.atleast_2d(z)
    top = rows.max(axis=1, keepdims=True)
    if np.isneginf(top).any():
        raise ValueError(f"{owner}: logits has a row where every value is -inf (no token can be drawn)")
    if temperature == 0.0:
        ids = rows.argmax(axis=1)
    else:
        # Shift by the row maximum before dividing, so a tiny temperature gives
        # -inf (probability 0) rather than inf - inf.
        p = np.exp((rows - top) / temperature)
        cdf = np.cumsum(p, axis=1)
        u = _rng(owner, seed).random((rows.shape[0], 1)) * cdf[:, -1:]
        ids = np.minimum((cdf <= u).sum(axis=1), rows.shape[1] - 1)
    ids = ids.astype(np.int64)
    return int(ids[0]) if z.ndim == 1 else ids


def _ids(owner, start):
    try:
        ids = list(start)
    except TypeError:
        raise TypeError(f"{owner}: start must be a list of ids, got {type(start).__name__}") from None
    return [_validate.integer(owner, "start", i, minimum=0) for i in ids]


class _Step:
    """step_fn with its output checked: (V,) finite-or-−inf floats, the same V at every call."""

    def __init__(self, owner, step_fn, end_id):
        if not callable(step_fn):
            raise TypeError(f"{owner}: step_fn must be callable, got {type(step_fn).__name__}")
        self.owner, self.fn, self.end_id, self.V = owner, step_fn, end_id, None

    def __call__(self, prefix):
        lp = _validate.array(self.owner, "step_fn's output", self.fn(list(prefix)), np.float64)
        want = "(V,)" if self.V is None else f"({self.V},)"
        if lp.ndim != 1 or lp.size == 0 or (self.V is not None and lp.size != self.V):
            raise ValueError(f"{self.owner}: step_fn must return log-probabilities of shape {want}, "
                             f"got shape {lp.shape} for prefix {list(prefix)}")
        if np.isnan(lp).any() or np.isposinf(lp).any():
            raise ValueError(f"{self.owner}: step_fn returned NaN or +inf for prefix {list(prefix)}")
        if self.V is None:
            self.V = lp.size
            if self.end_id is not None and self.end_id >= self.V:
                raise ValueError(f"{self.owner}: end_id must be < V = {self.V} (step_fn's output size), "
                                 f"got {self.end_id}")
        return lp


def _common(owner, step_fn, start, max_len, end_id):
    start = _ids(owner, start)
    max_len = _validate.integer(owner, "max_len", max_len, minimum=1, maximum=_validate.INT_MAX)
    if end_id is not None:
        end_id = _validate.integer(owner, "end_id", end_id, minimum=0)
    return _Step(owner, step_fn, end_id), start, max_len, end_id


def greedy(step_fn, start, max_len, end_id=None):
    """Greedy search: append the most likely next token until ``end_id`` or
    ``max_len`` generated tokens.

    Returns ``(ids, log_prob)``: the generated ids (a list, ``end_id`` included
    when reached) and Σ log P of those tokens. Ties go to the lower id. Errors:
    ``max_len`` < 1, a negative id in ``start``, ``end_id`` outside [0, V), or
    ``step_fn`` returning a wrong shape, NaN or +inf raise ValueError.
    """
    step, start, max_len, end_id = _common("greedy", step_fn, start, max_len, end_id)
    ids, total = [], 0.0
    for _ in range(max_len):
        lp = step(start + ids)
        token = int(np.argmax(lp))
        ids.append(token)
        total += float(lp[token])
        if token == end_id:
            break
    return ids, total


def beam_search(step_fn, start, beam_width=3, max_len=20, end_id=None, length_penalty=0.0,
                return_all=False):
    """Beam search with the course's length normalisation.

    At each step every live hypothesis is extended by every token and the
    ``beam_width`` extensions with the highest Σ log P stay; those that end
    in ``end_id`` are set aside as finished (the beam narrows), the rest go
    on until ``max_len`` generated tokens. The finished hypotheses and those
    still live at ``max_len`` are then ranked by

        score = (1 / T_y^α) · Σ_t log P(y⟨t⟩ | x, y⟨1⟩…y⟨t−1⟩),

    T_y the number of generated tokens (``end_id`` included), α =
    ``length_penalty`` (0: the raw sum, which favours short outputs; the
    course suggests α ≈ 0.7; 1: the mean log-probability).

    Ties, everywhere: the lexicographically smaller id sequence first (at
    each step, the lower token id). With ``beam_width=1`` this is
    :func:`greedy`.

    Returns ``(ids, score)`` of the best hypothesis, or with
    ``return_all=True`` the list of every ranked hypothesis ``(ids, score)``,
    best first. ``beam_width`` < 1, ``max_len`` < 1, ``length_penalty`` < 0
    and ``step_fn`` returning a wrong shape, NaN or +inf raise ValueError.
    """
    owner = "beam_search"
    step, start, max_len, end_id = _common(owner, step_fn, start, max_len, end_id)
    beam_width = _validate.integer(owner, "beam_width", beam_width, minimum=1, maximum=_validate.INT_MAX)
    alpha = _validate.real(owner, "length_penalty", length_penalty, low=0.0)

    live, done = [((), 0.0)], []
    for _ in range(max_len):
        candidates = []
        for ids, total in live:
            lp = step(start + list(ids))
            # Only a beam's own best beam_width tokens can make the global top;
            # the stable sort keeps lower ids first among equal log-probs.
            for token in np.argsort(-lp, kind="stable")[:beam_width]:
                candidates.append((ids + (int(token),), total + float(lp[token])))
        candidates.sort(key=lambda c: (-c[1], c[0]))
        live = []
        for ids, total in candidates[:beam_width]:
            (done if ids[-1] == end_id else live).append((ids, total))
        if not live:
            break
    ranked = [(list(ids), total / math.pow(len(ids), alpha)) for ids, total in done + live]
    ranked.sort(key=lambda h: (-h[1], h[0]))
    return ranked if return_all else ranked[0]
