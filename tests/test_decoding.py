"""cn.decoding: sampling, greedy search and beam search (course 5, weeks 1 and 3).

The searches are checked against brute-force enumeration of every hypothesis,
on step functions given as tables of next-token probabilities."""

import itertools
import math

import numpy as np
import pytest

import corenn as cn
from tolerances import tolerance

F64 = tolerance(np.float64)


def table_step(table):
    """A step function from a table (T, V, V) of log-probabilities: the next
    token's distribution depends on the position and the last id (0 at the start)."""

    def step(prefix):
        return table[len(prefix), prefix[-1] if prefix else 0]

    return step


def random_table(seed, T, V):
    z = np.random.default_rng(seed).standard_normal((T, V, V)) * 2
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def dict_step(probs, default):
    """A step function from {prefix tuple: probabilities}; other prefixes get default."""
    return lambda prefix: np.log(np.asarray(probs.get(tuple(prefix), default), dtype=np.float64))


def log_prob(step, ids):
    total = 0.0
    for t, token in enumerate(ids):
        total += float(step(ids[:t])[token])
    return total


def all_hypotheses(V, max_len, end_id):
    """Every sequence a search can return: ending in end_id (and nowhere
    before), or max_len ids without end_id."""
    for n in range(1, max_len + 1):
        for ids in itertools.product(range(V), repeat=n):
            if end_id not in ids[:-1] and (ids[-1] == end_id or n == max_len):
                yield list(ids)


def brute_force(step, V, max_len, end_id, alpha=0.0):
    scored = [(ids, log_prob(step, ids) / len(ids) ** alpha) for ids in all_hypotheses(V, max_len, end_id)]
    return max(scored, key=lambda h: h[1])


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("end_id", [None, 2])
def test_beam_width_one_is_greedy(seed, end_id):
    step = table_step(random_table(seed, 8, 5))
    ids, total = cn.decoding.greedy(step, [], max_len=7, end_id=end_id)
    assert cn.decoding.beam_search(step, [], beam_width=1, max_len=7, end_id=end_id) == (ids, total)
    assert total == log_prob(step, ids)
    assert len(ids) == 7 or ids[-1] == end_id


def test_greedy_is_wrong_and_beam_search_finds_the_best():
    # First token: 0 (p .5) beats 1 (p .4), but after 1 the end token is almost
    # certain: 1, END has p .36 while greedy's 0, 0, 0 has .08.
    step = dict_step({(): [0.5, 0.4, 0.1], (1,): [0.05, 0.05, 0.9]}, default=[0.4, 0.25, 0.35])
    best_ids, best = brute_force(step, 3, 3, end_id=2)
    assert best_ids == [1, 2]
    np.testing.assert_allclose(best, math.log(0.36), **F64)
    greedy_ids, greedy_lp = cn.decoding.greedy(step, [], max_len=3, end_id=2)
    assert greedy_ids == [0, 0, 0] and greedy_lp < best
    for width in (2, 3):
        assert cn.decoding.beam_search(step, [], beam_width=width, max_len=3, end_id=2) == (best_ids, best)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
def test_wide_beam_is_exhaustive(seed, alpha):
    # A beam as wide as the number of hypotheses keeps them all: the search is exact.
    V, max_len, end_id = 3, 3, 1
    step = table_step(random_table(100 + seed, max_len, V))
    ranked = cn.decoding.beam_search(step, [], beam_width=V ** max_len, max_len=max_len, end_id=end_id,
                                     length_penalty=alpha, return_all=True)
    expected = sorted(((ids, log_prob(step, ids) / len(ids) ** alpha)
                       for ids in all_hypotheses(V, max_len, end_id)), key=lambda h: (-h[1], h[0]))
    assert [ids for ids, _ in ranked] == [ids for ids, _ in expected]
    np.testing.assert_allclose([s for _, s in ranked], [s for _, s in expected], **F64)


def test_length_penalty_changes_the_winner_where_the_formula_says():
    # END at once: log .4 = -0.916. 0, 0, END: log(.55·.7·.7) = -1.311 over 3 tokens.
    # The long one wins when -1.311 / 3^α > -0.916, i.e. α > log(1.311/0.916)/log 3 ≈ 0.326.
    step = dict_step({(): [0.55, 0.05, 0.4], (0,): [0.7, 0.1, 0.2], (0, 0): [0.1, 0.2, 0.7]},
                     default=[0.3, 0.3, 0.4])
    short, long_ = math.log(0.4), math.log(0.55 * 0.7 * 0.7)
    crossover = math.log(long_ / short) / math.log(3)
    for alpha in (0.0, crossover - 0.05, crossover + 0.05, 0.7, 1.0):
        ids, score = cn.decoding.beam_search(step, [], beam_width=3, max_len=3, end_id=2, length_penalty=alpha)
        if alpha < crossover:
            assert ids == [2]
            np.testing.assert_allclose(score, short, **F64)
        else:
            assert ids == [0, 0, 2]
            np.testing.assert_allclose(score, long_ / 3 ** alpha, **F64)


def test_start_prefix_is_passed_and_not_returned():
    seen = []

    def step(prefix):
        seen.append(list(prefix))
        return np.log([0.2, 0.8])

    assert cn.decoding.greedy(step, [1, 0], max_len=2) == ([1, 1], 2 * math.log(0.8))
    assert seen == [[1, 0], [1, 0, 1]]


def test_ties_go_to_the_lower_id():
    step = lambda prefix: np.log([0.25, 0.25, 0.25, 0.25])  # noqa: E731
    assert cn.decoding.greedy(step, [], max_len=2)[0] == [0, 0]
    ranked = cn.decoding.beam_search(step, [], beam_width=3, max_len=2, return_all=True)
    assert [ids for ids, _ in ranked] == [[0, 0], [0, 1], [0, 2]]
    assert cn.decoding.sample(np.zeros(4), temperature=0) == 0


# Pearson's chi-square with 4 degrees of freedom exceeds 18.47 with probability
# 0.001 when the draws follow p; a wrong distribution (e.g. temperature ignored)
# gives statistics in the thousands at 20 000 draws. The seed fixes the outcome.
CHI2_4DF_999 = 18.47


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sample_frequencies_match_softmax(temperature):
    logits = np.array([1.0, -0.5, 0.3, 2.0, 0.0])
    n = 20000
    ids = cn.decoding.sample(np.tile(logits, (n, 1)), temperature=temperature, seed=1)
    assert ids.shape == (n,) and ids.dtype == np.int64
    p = np.exp(logits / temperature) / np.exp(logits / temperature).sum()
    counts = np.bincount(ids, minlength=5)
    assert ((counts - n * p) ** 2 / (n * p)).sum() < CHI2_4DF_999


def test_sample_temperature_zero_masks_and_seeds():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 7))
    np.testing.assert_array_equal(cn.decoding.sample(logits, temperature=0), logits.argmax(axis=1))
    np.testing.assert_array_equal(cn.decoding.sample(logits, temperature=1e-6, seed=0), logits.argmax(axis=1))
    a = cn.decoding.sample(logits, seed=5)
    assert not np.array_equal(a, logits.argmax(axis=1))
    np.testing.assert_array_equal(a, cn.decoding.sample(logits, seed=5))
    cn.seed(3)
    b = cn.decoding.sample(logits)
    cn.seed(3)
    np.testing.assert_array_equal(b, cn.decoding.sample(logits))
    masked = np.array([0.0, -np.inf, 5.0, -np.inf])
    drawn = cn.decoding.sample(np.tile(masked, (2000, 1)), temperature=3.0, seed=0)
    assert set(np.unique(drawn)) == {0, 2}
    assert isinstance(cn.decoding.sample(masked, seed=0), int)


@pytest.mark.parametrize("call, match", [
    (lambda: cn.decoding.sample([1.0, np.nan]), "sample: logits"),
    (lambda: cn.decoding.sample([1.0, np.inf]), "sample: logits"),
    (lambda: cn.decoding.sample([-np.inf, -np.inf]), "sample: logits"),
    (lambda: cn.decoding.sample(np.zeros((2, 0))), "sample: logits"),
    (lambda: cn.decoding.sample(np.zeros((2, 2, 2))), "sample: logits"),
    (lambda: cn.decoding.sample([1.0, 2.0], temperature=-1), "sample: temperature"),
    (lambda: cn.decoding.sample([1.0, 2.0], temperature=np.nan), "sample: temperature"),
    (lambda: cn.decoding.beam_search(lambda p: np.log([0.5, 0.5]), [], beam_width=0), "beam_search: beam_width"),
    (lambda: cn.decoding.beam_search(lambda p: np.log([0.5, 0.5]), [], max_len=0), "beam_search: max_len"),
    (lambda: cn.decoding.beam_search(lambda p: np.log([0.5, 0.5]), [], length_penalty=-1),
     "beam_search: length_penalty"),
    (lambda: cn.decoding.greedy(lambda p: np.log([0.5, 0.5]), [], max_len=0), "greedy: max_len"),
    (lambda: cn.decoding.greedy(lambda p: np.log([0.5, 0.5]), [], 3, end_id=2), "greedy: end_id"),
    (lambda: cn.decoding.greedy(lambda p: np.log([0.5, 0.5]), [-1], 3), "greedy: start"),
    (lambda: cn.decoding.greedy(lambda p: np.zeros((2, 2)), [], 3), "greedy: step_fn .* shape"),
    (lambda: cn.decoding.greedy(lambda p: np.zeros(2 + len(p)), [], 3), r"greedy: step_fn .* shape \(2,\)"),
    (lambda: cn.decoding.greedy(lambda p: [np.nan, 0.0], [], 3), "greedy: step_fn .* NaN"),
    (lambda: cn.decoding.beam_search(lambda p: np.zeros(0), [], 2), "beam_search: step_fn .* shape"),
    (lambda: cn.decoding.beam_search(lambda p: [0.0, np.nan], [], 2), "beam_search: step_fn .* NaN"),
])
def test_errors_name_the_function_and_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_type_errors():
    with pytest.raises(TypeError, match="greedy: step_fn must be callable"):
        cn.decoding.greedy(None, [], 3)
    with pytest.raises(TypeError, match="beam_search: beam_width must be an int"):
        cn.decoding.beam_search(lambda p: np.zeros(2), [], beam_width=2.0)
    with pytest.raises(TypeError, match="sample: seed must be an int"):
        cn.decoding.sample([0.0, 1.0], seed=1.5)
