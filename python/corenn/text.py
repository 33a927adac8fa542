"""Text: vocabularies and word-vector operations (course 5, weeks 1–2).

Vocabularies turn text into integer ids for ``L.Embedding`` and back. Id 0 is
reserved for padding (``PAD``, the empty string) and id 1 for every token not in
the vocabulary (``UNK``, ``"[UNK]"``), as Keras's ``TextVectorization``; the
other tokens follow by descending count, equal counts in alphabetical
(code point) order, so the same text always gives the same ids.

The word-vector functions are the course's (week 2, "Operations on word
vectors"): cosine similarity, the analogy "a is to b as c is to ?", and the
neutralize and equalize steps of debiasing (Bolukbasi et al. 2016, "Man is to
Computer Programmer as Woman is to Homemaker?"). They work in float64 with NumPy.
"""

import collections
import re

import numpy as np

from . import _validate

__all__ = ["CharVocabulary", "PAD", "UNK", "WordVocabulary", "analogy", "cosine_similarity", "equalize",
           "neutralize", "tokenize"]

PAD = ""
UNK = "[UNK]"

# A word is a run of letters and digits (any script; "_" is not a letter), with
# apostrophes kept inside it ("don't", "o'clock") and dropped at its ends.
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text, lower=True):
    """Split ``text`` into words: maximal runs of Unicode letters and digits,
    joined by single apostrophes inside a word (``"don't"`` stays one word,
    ``"'quoted'"`` gives ``"quoted"``); everything else (spaces, punctuation,
    ``_``, hyphens) separates words and is dropped. ``lower=True`` lowercases
    first. Returns a list of str."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize: text must be a str, got {type(text).__name__}")
    return _WORD.findall(text.lower() if lower else text)


class _Vocabulary:
    """Shared by both vocabularies: ids from counts, encode and decode."""

    _separator = ""

    def __init__(self, tokens, min_count, max_size, owner):
        self._owner = owner
        min_count = _validate.integer(owner, "min_count", min_count, minimum=1)
        if max_size is not None:
            max_size = _validate.integer(owner, "max_size", max_size, minimum=3)
        counts = collections.Counter(tokens)
        if not counts:
            raise ValueError(f"{owner}: the text has no tokens (it is empty)")
        kept = sorted((t for t, n in counts.items() if n >= min_count), key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max_size - 2]
        self._tokens = [PAD, UNK, *kept]
        self._ids = {t: i for i, t in enumerate(self._tokens)}
        self.counts = {t: counts[t] for t in kept}

    def __len__(self):
        return len(self._tokens)

    def get_vocabulary(self):
        """The tokens by id (a list: index 0 is ``PAD``, 1 is ``UNK``), as Keras."""
        return list(self._tokens)

    def token_to_id(self, token):
        """The id of ``token``, 1 (unknown) when it is not in the vocabulary."""
        return self._ids.get(token, 1)

    def _encode_tokens(self, tokens):
        return np.fromiter((self._ids.get(t, 1) for t in tokens), dtype=np.int64, count=len(tokens))

    def decode(self, ids):
        """Text from ids (a 1-D sequence of ints): padding (0) is dropped,
        unknown (1) becomes ``"[UNK]"``. An id outside ``[0, len(self))``
        raises ValueError."""
        ids = _validate.array(f"{self._owner}.decode", "ids", ids)
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise TypeError(f"{self._owner}.decode: ids must be a 1-D sequence of ints, "
                            f"got shape {ids.shape} dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= len(self._tokens))
        if bad.any():
            raise ValueError(f"{self._owner}.decode: ids must lie in [0, {len(self._tokens)}), "
                             f"got {ids[bad][0]}")
        return self._separator.join(self._tokens[i] for i in ids.tolist() if i != 0)

    def __repr__(self):
        return f"{self._owner}(size={len(self)})"


class CharVocabulary(_Vocabulary):
    """Character vocabulary of ``text`` (a str), e.g. for the course's
    character-level language model (dinosaur names).

    ``min_count`` (>= 1) drops rarer characters; ``max_size`` (>= 3, or None)
    caps ``len(vocabulary)``, the two reserved ids included. Characters are
    taken as they are (no lowercasing). ``encode(text)`` gives one int64 id per
    character, ``decode(ids)`` joins the characters back, so
    ``decode(encode(s)) == s`` when every character of ``s`` is in the
    vocabulary. Empty text raises ValueError."""

    def __init__(self, text, min_count=1, max_size=None):
        if not isinstance(text, str):
            raise TypeError(f"CharVocabulary: text must be a str, got {type(text).__name__}")
        super().__init__(text, min_count, max_size, "CharVocabulary")

    def encode(self, text):
        """Ids ``(len(text),)`` int64 of the characters of ``text`` (1 for unknown ones)."""
        if not isinstance(text, str):
            raise TypeError(f"CharVocabulary.encode: text must be a str, got {type(text).__name__}")
        return self._encode_tokens(text)


class WordVocabulary(_Vocabulary):
    """Word vocabulary of ``texts_or_tokens``: one str, a list of str (texts,
    each split by :func:`tokenize`), or a list of token lists (already split;
    still lowercased when ``lower``).

    ``min_count`` (>= 1) drops rarer words; ``max_size`` (>= 3, or None) caps
    ``len(vocabulary)``, the two reserved ids included, keeping the most
    frequent words. ``encode(text)`` tokenizes a str (or takes a list of tokens)
    and gives one int64 id per word; ``decode(ids)`` joins the words with single
    spaces, so ``decode(encode(s)) == " ".join(tokenize(s))`` when every word of
    ``s`` is in the vocabulary. Text without any word raises ValueError."""

    _separator = " "

    def __init__(self, texts_or_tokens, min_count=1, max_size=None, lower=True):
        self.lower = bool(lower)
        super().__init__(self._tokens_of(texts_or_tokens, "WordVocabulary", "texts_or_tokens", True),
                         min_count, max_size, "WordVocabulary")

    def _tokens_of(self, value, owner, name, many):
        if isinstance(value, str):
            return tokenize(value, self.lower)
        items = list(value) if isinstance(value, (list, tuple)) else None
        if items is not None and all(isinstance(t, str) for t in items):
            if many:   # a list of texts
                return [w for text in items for w in tokenize(text, self.lower)]
            return [t.lower() if self.lower else t for t in items]   # a list of tokens
        if many and items is not None and all(isinstance(s, (list, tuple)) for s in items) \
                and all(isinstance(t, str) for s in items for t in s):
            return [t.lower() if self.lower else t for s in items for t in s]
        expected = "a str, a list of str or a list of token lists" if many else "a str or a list of str tokens"
        raise TypeError(f"{owner}: {name} must be {expected}, got {type(value).__name__}")

    def encode(self, text):
        """Ids ``(n_words,)`` int64 of the words of ``text`` (a str, tokenized, or
        a list of tokens), 1 for unknown words."""
        return self._encode_tokens(self._tokens_of(text, "WordVocabulary.encode", "text", False))


# ---------------------------------------------------------------- word vectors

def _vectors(owner, name, value, ndims=(1, 2)):
    array = _validate.array(owner, name, value)
    if array.dtype.kind not in "iuf" or array.ndim not in ndims:
        raise ValueError(f"{owner}: {name} must be a real {' or '.join(f'{d}-D' for d in ndims)} array, "
                         f"got shape {array.shape} dtype {array.dtype}")
    if array.size == 0:
        raise ValueError(f"{owner}: {name} must not be empty, got shape {array.shape}")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{owner}: {name} must be finite, got NaN or infinity")
    return array


def _same_dim(owner, name, array, dim):
    if array.shape[-1] != dim:
        raise ValueError(f"{owner}: {name} must have {dim} components (the last axis), "
                         f"got shape {array.shape}")


def _axis(owner, bias_axis, dim):
    g = _vectors(owner, "bias_axis", bias_axis, ndims=(1,))
    _same_dim(owner, "bias_axis", g, dim)
    gg = g @ g
    if gg == 0:
        raise ValueError(f"{owner}: bias_axis must not be the zero vector")
    return g, gg


def cosine_similarity(u, v):
    """cos θ = u·v / (‖u‖·‖v‖) (the course's ``cosine_similarity``).

    ``u`` and ``v`` are vectors ``(D,)`` or row-wise matrices ``(N, D)``; a
    vector against a matrix is compared with every row. Returns a float for two
    vectors, else an ``(N,)`` float64 array. The similarity of a zero vector is
    undefined (0/0): a zero vector or row raises ValueError, as do NaN or
    infinite values, different D or different N."""
    owner = "cosine_similarity"
    u, v = _vectors(owner, "u", u), _vectors(owner, "v", v)
    _same_dim(owner, "v", v, u.shape[-1])
    if u.ndim == 2 and v.ndim == 2 and len(u) != len(v):
        raise ValueError(f"{owner}: u and v must have the same number of rows, got {u.shape} and {v.shape}")
    for name, x in (("u", u), ("v", v)):
        if (np.linalg.norm(x, axis=-1) == 0).any():
            raise ValueError(f"{owner}: {name} has a zero vector, whose cosine similarity is undefined")
    result = np.sum(u * v, axis=-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1))
    return float(result) if result.ndim == 0 else result


def analogy(a, b, c, vectors, vocabulary=None):
    """The word d with "a is to b as c is to d": the course's
    ``complete_analogy``, argmax over words w ∉ {a, b, c} of
    cos(e_b − e_a + e_c, e_w).

    ``vectors`` is a dict ``{word: vector (D,)}`` (``vocabulary`` None), or an
    ``(V, D)`` matrix with ``vocabulary`` naming its rows: a list of V words, or
    a :class:`WordVocabulary` / :class:`CharVocabulary` (row i is id i, e.g. an
    ``Embedding``'s weights; the reserved ids 0 and 1 are never answers). Words
    are matched exactly (no lowercasing). Candidates whose vector is zero are
    skipped; equal similarities go to the first candidate. Returns the word (str).
    A word of a, b, c not in the table raises KeyError naming it; a zero query
    vector e_b − e_a + e_c, no candidate left, or mismatched shapes raise ValueError."""
    owner = "analogy"
    if isinstance(vectors, dict):
        if vocabulary is not None:
            raise ValueError(f"{owner}: vocabulary must be None when vectors is a dict")
        words = list(vectors)
        rows = [_vectors(owner, f"vectors[{w!r}]", vectors[w], ndims=(1,)) for w in words]
        for w, row in zip(words, rows):
            _same_dim(owner, f"vectors[{w!r}]", row, rows[0].shape[0])
        matrix = np.stack(rows) if rows else None
        reserved = 0
    else:
        matrix = _vectors(owner, "vectors", vectors, ndims=(2,))
        if isinstance(vocabulary, _Vocabulary):
            words, reserved = vocabulary.get_vocabulary(), 2
        elif isinstance(vocabulary, (list, tuple)):
            words, reserved = list(vocabulary), 0
        else:
            raise TypeError(f"{owner}: vocabulary must be a list of words or a vocabulary when vectors is a "
                            f"matrix, got {type(vocabulary).__name__}")
        if len(words) != len(matrix):
            raise ValueError(f"{owner}: vocabulary has {len(words)} words but vectors has "
                             f"{len(matrix)} rows")
    if matrix is None:
        raise ValueError(f"{owner}: vectors must not be empty")
    index = {w: i for i, w in enumerate(words) if i >= reserved}
    for name, word in (("a", a), ("b", b), ("c", c)):
        if word not in index:
            raise _validate.UnknownKey(f"{owner}: {name}={word!r} is not in the vocabulary")
    query = matrix[index[b]] - matrix[index[a]] + matrix[index[c]]
    query_norm = np.linalg.norm(query)
    if query_norm == 0:
        raise ValueError(f"{owner}: e_b - e_a + e_c is the zero vector for a={a!r}, b={b!r}, c={c!r}")
    norms = np.linalg.norm(matrix, axis=1)
    candidate = norms > 0
    candidate[:reserved] = False
    candidate[[index[a], index[b], index[c]]] = False
    if not candidate.any():
        raise ValueError(f"{owner}: no candidate word besides a, b and c")
    similarity = np.full(len(matrix), -np.inf)
    similarity[candidate] = matrix[candidate] @ query / (norms[candidate] * query_norm)
    return words[int(np.argmax(similarity))]


def neutralize(word_vector, bias_axis):
    """e − (e·g / ‖g‖²)·g: removes from ``word_vector`` e ``(D,)`` or
    ``(N, D)`` (one vector per row) its component along ``bias_axis`` g ``(D,)``
    (the course's ``neutralize``; Bolukbasi et al. 2016). Returns float64 of e's
    shape, orthogonal to g. A zero g raises ValueError."""
    owner = "neutralize"
    e = _vectors(owner, "word_vector", word_vector)
    g, gg = _axis(owner, bias_axis, e.shape[-1])
    return e - np.multiply.outer(e @ g / gg, g)


def equalize(pair_vectors, bias_axis):
    """The course's ``equalize`` for a pair of words (e.g. "actress", "actor"),
    given as two vectors ``(D,)`` or a ``(2, D)`` array, along ``bias_axis`` g:

    μ = (e_w1 + e_w2)/2, μ_B = (μ·g/‖g‖²)g, μ_⊥ = μ − μ_B, e_wiB = (e_wi·g/‖g‖²)g,
    corrected e_wiB = √|1 − ‖μ_⊥‖²| · (e_wiB − μ_B) / ‖(e_wi − μ_⊥) − μ_B‖,
    e_i = corrected e_wiB + μ_⊥.

    Returns ``(e_1, e_2)`` float64: the same part μ_⊥ orthogonal to g and
    opposite parts along g, so they are equally far from every neutralized
    word. This is the course notebook's formula: its denominator
    ‖e_wi − μ‖ is the paper's ‖e_wiB − μ_B‖ (Bolukbasi et al. 2016, which makes
    unit vectors of unit vectors) only when the two words differ along g
    alone; otherwise the outputs are shorter than 1. Identical words (a zero
    denominator) or a zero g raise ValueError."""
    owner = "equalize"
    pair = _vectors(owner, "pair_vectors", pair_vectors, ndims=(2,))
    if len(pair) != 2:
        raise ValueError(f"{owner}: pair_vectors must be two vectors, got shape {pair.shape}")
    g, gg = _axis(owner, bias_axis, pair.shape[1])
    mu = pair.mean(axis=0)
    mu_B = (mu @ g / gg) * g
    mu_orth = mu - mu_B
    scale = np.sqrt(abs(1 - mu_orth @ mu_orth))
    result = []
    for e in pair:
        e_B = (e @ g / gg) * g
        denominator = np.linalg.norm(e - mu_orth - mu_B)
        if denominator == 0:
            raise ValueError(f"{owner}: pair_vectors are the same vector; there is nothing to equalize")
        result.append(scale * (e_B - mu_B) / denominator + mu_orth)
    return result[0], result[1]
