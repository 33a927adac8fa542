"""The sequence examples on real data (python/corenn/examples/digits_lstm.py,
char_lm.py, sunspots.py, word_vectors.py), each in its fast mode, held to its
bar: digits read row by row at >= 0.95 held-out accuracy, a character language
model well below the unigram baseline whose samples are mostly real words, a sunspot forecast below the
repeat-the-last-value baseline, skip-gram word vectors that tell held-out
pairs from noise better than the label mix alone."""

import numpy as np
import pytest

import corenn as cn
from corenn.examples import char_lm, digits_lstm, sunspots, word_vectors
from tolerances import tolerance


def run(module):
    lines = []
    cn.clear_session()
    return module.run(**module.FAST, out=lines.append), lines


def test_digits_lstm_reads_rows_as_steps_and_reaches_the_bar():
    result, lines = run(digits_lstm)
    assert result["accuracy"] >= 0.95  # the bar
    assert f"accuracy {result['accuracy']:.4f}" in lines[-1]
    assert result["model"].get_layer("lstm").get_weights()[0].shape == (4 * 64, 8)  # W_ih (4H, F = 8)


# The fast run's bar: 0.7 nats/char below the unigram baseline (it ends ~1.1
# below; an untrained network sits above the baseline, near log V), and
# samples at temperature 0.5 with at least 20 points more of their words found
# in the training text than a sample of characters drawn by frequency (~57% against ~12%).
CHAR_LM_MARGIN = 0.7


def test_char_lm_beats_the_unigram_baseline_and_samples_words():
    result, lines = run(char_lm)
    assert result["losses"][-1] < result["baseline"] - CHAR_LM_MARGIN
    assert f"unigram baseline: {result['baseline']:.3f}" in lines[1]
    assert result["word_shares"][0.5] >= result["word_shares"]["unigram"] + 0.2
    for t in char_lm.TEMPERATURES:
        sample = result["samples"][t]
        assert len(sample) == char_lm.FAST["sample_length"]
        assert lines[-len(char_lm.TEMPERATURES) + char_lm.TEMPERATURES.index(t)].endswith(sample)


def test_char_lm_bar_fails_for_an_untrained_network():
    fast = char_lm.FAST
    cn.seed(0)
    text = char_lm.load_text(fast["chars"])
    vocabulary = cn.text.CharVocabulary(text, min_count=20)
    ids = vocabulary.encode(text)
    split = int(0.9 * len(ids))
    X_test, Y_test = char_lm.windows(ids[split:], fast["steps"])
    baseline = char_lm.unigram_loss(ids[:split], Y_test.ravel(), len(vocabulary))
    model = char_lm.network(len(vocabulary), fast["steps"], fast["units"])
    assert model.evaluate(X_test, Y_test)["loss"] > baseline  # not even the unigram's


def test_char_lm_windows_predict_the_next_character():
    ids = np.arange(23)
    X, Y = char_lm.windows(ids, 5, offset=2)
    assert X.dtype == np.float32 and X.shape == Y.shape == (4, 5)  # (23 - 1 - 2) // 5 non-overlapping
    assert np.array_equal(X[:, 0], [2, 7, 12, 17]) and np.array_equal(Y, X + 1)


def test_char_lm_sampler_steps_through_what_the_network_reads_at_once():
    # The one-step model with its state fed back gives, character by
    # character, the logits the trained many-to-many network gives the window.
    cn.seed(5)
    model = char_lm.network(12, 9, 16)
    window = np.random.default_rng(5).integers(2, 12, (1, 9)).astype(np.float32)
    want = model.predict(window)[0]
    step, state = char_lm.step_model(model), [np.zeros((1, 16), np.float32)] * 2
    for t in range(9):
        logits, *state = step.predict([window[:, t:t + 1], *state])
        np.testing.assert_allclose(logits[0, 0], want[t], **tolerance(np.float32))


def test_char_lm_unigram_baseline_is_the_frequency_entropy():
    ids = np.array([2, 2, 3, 2, 4])
    counts = np.array([1, 1, 4, 2, 2])  # add-one smoothed over 5 ids
    want = -np.mean(np.log(counts[ids] / counts.sum()))
    assert char_lm.unigram_loss(ids, ids, 5) == pytest.approx(want, rel=1e-12)


def test_sunspots_forecast_beats_repeating_the_last_value():
    pytest.importorskip("statsmodels", reason="statsmodels is not installed")
    result, lines = run(sunspots)
    assert result["mse"] < 0.8 * result["baseline_mse"]
    assert f"GRU {result['mse']:.1f}" in lines[-1] and f"baseline {result['baseline_mse']:.1f}" in lines[-1]
    # The baseline by hand: each held-out year predicted by the year before it.
    years, spots = sunspots.load()
    held = years >= sunspots.FIRST_TEST_YEAR
    assert result["baseline_mse"] == pytest.approx(np.mean((spots[held] - spots[np.flatnonzero(held) - 1]) ** 2))


def test_word_vectors_tell_held_out_pairs_from_noise():
    result, lines = run(word_vectors)
    # Below what the label mix alone gives (H(q) = 0.637 for 1 positive in 3): the
    # vectors carry which words go together.
    assert result["loss"] < result["baseline_loss"] - 0.03
    assert f"loss {result['loss']:.3f}" in lines[1]
    assert result["analogy"] is not None and "analogy:" in lines[-1]
    vectors = result["model"].get_layer("target_vectors").get_weights()[0]
    assert vectors.shape == (len(result["vocabulary"]), 64)
