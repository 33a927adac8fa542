"""Face verification and recognition on embeddings (course 4, week 4), exported
as ``cn.applications``'s ``distance``, ``choose_threshold`` and ``Embedder``.

Verification: two images show the same person when d(img1, img2) =
‖f(img1) − f(img2)‖₂ ≤ τ (the course's Euclidean distance between encodings,
τ chosen on a dev set of labelled pairs). Recognition (one-shot): enrol one
(or a few) encodings per identity; an image is the identity of its nearest
enrolled encoding, or "unknown" when even that one is farther than τ.
"""

import numpy as np

from . import _validate

__all__ = ["Embedder", "choose_threshold", "distance"]


def _rows(owner, name, x):
    x = _validate.array(owner, name, x)
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{owner}: {name} must have shape (N, D) (one embedding per row), got {x.shape}")
    return _validate.finite(owner, name, x.astype(np.float64))


def distance(e1, e2):
    """d = ‖e1 − e2‖₂ row by row: e1, e2 ``(N, D)`` -> ``(N,)`` float64 (the
    course's verification distance). ValueError: shapes differ or not 2-D,
    NaN or inf."""
    a, b = _rows("distance", "e1", e1), _rows("distance", "e2", e2)
    if a.shape != b.shape:
        raise ValueError(f"distance: e2 must have the shape of e1 {a.shape}, got {b.shape}")
    return np.linalg.norm(a - b, axis=1)


def choose_threshold(distances, same):
    """The threshold τ that classifies a dev set of pairs best as "same"
    (d ≤ τ) or "different" (d > τ): the largest accuracy, returned as a float.

    distances ``(N,)`` of labelled pairs, same ``(N,)`` of 1/True (same
    identity) or 0/False. Every distinct split of the sorted distances is tried;
    τ is the midpoint between the two distances around the best split (below
    the smallest distance when calling every pair "different" is best, the
    largest distance when calling every pair "same" is), ties going to the
    smallest τ. ValueError: shapes differ, empty, NaN or negative distances,
    same not 0/1.
    """
    owner = "choose_threshold"
    d = _validate.array(owner, "distances", distances, np.float64)
    s = _validate.array(owner, "same", same)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"{owner}: distances must have shape (N,) with N >= 1, got {d.shape}")
    if s.shape != d.shape:
        raise ValueError(f"{owner}: same must have shape {d.shape}, got {s.shape}")
    if not (np.isin(s, (0, 1)).all()):
        raise ValueError(f"{owner}: same must hold only 0/1 (or booleans), got {np.unique(s)[:5]}")
    if not (np.isfinite(d).all() and (d >= 0).all()):
        raise ValueError(f"{owner}: distances must be finite and >= 0")
    s = s.astype(bool)
    order = np.argsort(d, kind="stable")
    d, s = d[order], s[order]
    # Threshold just below d[k] (k = 0 … N) calls pairs 0 … k−1 "same": correct
    # ones are the same pairs among them plus the different pairs from k on.
    same_before = np.concatenate([[0], np.cumsum(s)])
    diff_after = np.concatenate([np.cumsum((~s)[::-1])[::-1], [0]])
    correct = same_before + diff_after
    # Only cuts between distinct distances are thresholds (equal ones go together);
    # τ >= 0 always calls a pair at distance 0 "same".
    valid = np.concatenate([[d[0] > 0], d[1:] > d[:-1], [True]])
    k = int(np.argmax(np.where(valid, correct, -1)))
    if k == 0:
        return float(d[0] / 2)    # every pair "different": any τ in [0, d_min)
    if k == len(d):
        return float(d[-1])
    return float((d[k - 1] + d[k]) / 2)


class Embedder:
    """Face recognition against a database of enrolled identities (one-shot).

    ``model``: a fitted ``cn.Model`` (its ``predict`` gives the encodings),
    any callable from a batch of inputs to ``(N, D)`` encodings, or None when
    the inputs are encodings already. ``threshold`` τ: the largest distance
    still called a match (the course uses 0.7 on unit-length encodings; choose
    it with :func:`choose_threshold`). ``unknown``: the identity returned for
    a face that matches nobody.

    ``enrol(names, x)`` adds encodings of ``x`` under ``names`` (one per row;
    an identity may be enrolled several times: the nearest one counts).
    ``identify(x) -> (ids, distances)``: each input's nearest enrolled
    identity (an object array; ``unknown`` where the distance is > τ) and that
    distance ``(N,)``. ``verify(x, names) -> (distances, matches)``: the
    course's ``verify``, d(f(x_i), identity names_i) ≤ τ. Distances are
    Euclidean, as :func:`distance`.

    ValueError: a negative threshold, encodings not (N, D) or not finite, a
    name count that differs from the rows, identify before enrol, verify of a
    name never enrolled.
    """

    def __init__(self, model=None, threshold=0.7, unknown=None):
        if not (model is None or callable(model) or callable(getattr(model, "predict", None))):
            raise TypeError(f"Embedder: model must be None, a model with predict or a callable, "
                            f"got {type(model).__name__} {model!r}")
        self.model = model
        self.threshold = _validate.real("Embedder", "threshold", threshold, 0.0)
        self.unknown = unknown
        self.names = []
        self.encodings = np.zeros((0, 0))

    def embed(self, x):
        """The encodings ``(N, D)`` float64 of a batch of inputs."""
        if self.model is None:
            out = x
        elif hasattr(self.model, "predict"):
            out = self.model.predict(x)
        else:
            out = self.model(x)
        return _rows("Embedder", "encodings", out)

    def enrol(self, names, x):
        e = self.embed(x)
        names = _validate.sequence("Embedder.enrol", "names", names, "a list of names")
        if len(names) != len(e):
            raise ValueError(f"Embedder.enrol: names must hold one name per input ({len(e)}), got {len(names)}")
        if self.names and e.shape[1] != self.encodings.shape[1]:
            raise ValueError(f"Embedder.enrol: encodings must have {self.encodings.shape[1]} columns "
                             f"like those enrolled, got {e.shape[1]}")
        self.encodings = e if not self.names else np.concatenate([self.encodings, e])
        self.names += names
        return self

    def _distances(self, x):
        if not self.names:
            raise ValueError("Embedder.identify: no identity enrolled; call enrol(names, x) first")
        e = self.embed(x)
        if e.shape[1] != self.encodings.shape[1]:
            raise ValueError(f"Embedder: encodings must have {self.encodings.shape[1]} columns like "
                             f"those enrolled, got {e.shape[1]}")
        return np.linalg.norm(e[:, None, :] - self.encodings[None, :, :], axis=2)   # (N, enrolled)

    def identify(self, x):
        d = self._distances(x)
        nearest = np.argmin(d, axis=1)
        dist = d[np.arange(len(d)), nearest]
        ids = np.empty(len(d), dtype=object)
        for i, k in enumerate(nearest):
            ids[i] = self.names[k] if dist[i] <= self.threshold else self.unknown
        return ids, dist

    def verify(self, x, names):
        d = self._distances(x)
        names = _validate.sequence("Embedder.verify", "names", names, "a list of names")
        if len(names) != len(d):
            raise ValueError(f"Embedder.verify: names must hold one name per input ({len(d)}), got {len(names)}")
        dist = np.empty(len(d))
        for i, name in enumerate(names):
            rows = [k for k, n in enumerate(self.names) if n == name]
            if not rows:
                raise ValueError(f"Embedder.verify: {name!r} is not enrolled")
            dist[i] = d[i, rows].min()
        return dist, dist <= self.threshold
