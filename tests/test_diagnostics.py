"""corenn.diagnostics: the course's bias/variance arithmetic and advice, and
misclassified() for error analysis."""

import numpy as np
import pytest

import corenn as cn
from corenn.diagnostics import ADVICE, bias_variance, misclassified
from tolerances import tolerance

L = cn.layers


@pytest.mark.parametrize("errors, focus, gaps", [
    # Course 3 week 1: human 1%, train 8%, dev 10% -> avoidable bias 7% dominates.
    (dict(human=1, train=8, dev=10), "avoidable_bias", dict(avoidable_bias=7, variance=2)),
    # Human 7.5%: the same train/dev errors now point at variance.
    (dict(human=7.5, train=8, dev=10), "variance", dict(avoidable_bias=0.5, variance=2)),
    # Week 2, with a train-dev set: human 0, train 1, train-dev 1.5, dev 10 -> data mismatch.
    (dict(human=0, train=1, train_dev=1.5, dev=10), "data_mismatch",
     dict(avoidable_bias=1, variance=0.5, data_mismatch=8.5)),
    (dict(human=0, train=1, train_dev=9, dev=10), "variance",
     dict(avoidable_bias=1, variance=8, data_mismatch=1)),
    (dict(human=4, train=7, train_dev=10, dev=12, test=20), "dev_overfitting",
     dict(avoidable_bias=3, variance=3, data_mismatch=2, dev_overfitting=8)),
    # Fractions work the same way; without human-level error Bayes is taken as 0.
    (dict(train=0.15, dev=0.16), "avoidable_bias", dict(avoidable_bias=0.15, variance=0.01)),
])
def test_gaps_focus_and_advice(errors, focus, gaps):
    d = bias_variance(**errors)
    for name in ADVICE:
        want = gaps.get(name)
        got = getattr(d, name)
        assert (got is None) if want is None else got == pytest.approx(want)
    assert d.focus == focus and d.advice == ADVICE[focus]
    text = str(d)
    assert f"largest: {focus.replace('_', ' ')}" in text and ADVICE[focus][0] in text
    assert ("taken as 0" in text) == ("human" not in errors)


def test_course_advice_text():
    assert any("bigger model" in a for a in ADVICE["avoidable_bias"])
    assert any("Adam" in a for a in ADVICE["avoidable_bias"])
    assert any("more training data" in a for a in ADVICE["variance"])
    assert any("dropout" in a for a in ADVICE["variance"])
    assert any("error analysis" in a for a in ADVICE["data_mismatch"])
    assert ADVICE["dev_overfitting"] == ["get a bigger dev set"]


def test_no_positive_gap():
    d = bias_variance(human=5, train=5, dev=5)
    assert d.focus is None and d.advice == [] and "no gap is positive" in str(d)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(dev=3), ValueError, r"bias_variance: train error is required"),
    (dict(train=3), ValueError, r"bias_variance: dev error is required"),
    (dict(train=-1, dev=3), ValueError, r"bias_variance: train must be finite and in \[0.0, inf\), got -1"),
    (dict(train=1, dev=float("nan")), ValueError, r"bias_variance: dev must be finite"),
    (dict(train="1", dev=2), TypeError, r"bias_variance: train must be a number"),
])
def test_bias_variance_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        bias_variance(**kwargs)


def softmax_model(W, b):
    model = cn.Sequential([L.Input((W.shape[1],)), L.Dense(W.shape[0])], dtype="float64")
    model.build()
    model.set_weights([W, b])
    return model


def test_misclassified_softmax_most_confident_first(rng):
    W, b = rng.standard_normal((4, 6)), rng.standard_normal(4)
    model = softmax_model(W, b)
    X = rng.standard_normal((50, 6))
    z = X @ W.T + b
    y = rng.integers(0, 4, 50)
    y[:20] = z[:20].argmax(1)  # some right
    m = misclassified(model, X, y)
    wrong = np.flatnonzero(z.argmax(1) != y)
    np.testing.assert_array_equal(np.sort(m.indices), wrong)
    np.testing.assert_array_equal(m.y_true, y[m.indices])
    np.testing.assert_array_equal(m.y_pred, z[m.indices].argmax(1))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    np.testing.assert_allclose(m.confidence, p[m.indices, m.y_pred], **tolerance(np.float64))
    assert np.all(np.diff(m.confidence) <= 0)
    assert len(m) == len(wrong) and m.rate == pytest.approx(len(wrong) / 50)


def test_misclassified_binary_logit(rng):
    W, b = rng.standard_normal((1, 3)), np.zeros(1)
    model = softmax_model(W, b)
    X = rng.standard_normal((40, 3))
    z = (X @ W.T)[:, 0]
    y = (rng.random(40) < 0.5).astype(int)
    m = misclassified(model, X, y)
    np.testing.assert_array_equal(np.sort(m.indices), np.flatnonzero((z > 0) != y))
    sig = 1 / (1 + np.exp(-z[m.indices]))
    np.testing.assert_allclose(m.confidence, np.where(m.y_pred == 1, sig, 1 - sig), **tolerance(np.float64))
    with pytest.raises(ValueError, match=r"misclassified: y must have shape \(40,\)"):
        misclassified(model, X, y[:-1])
