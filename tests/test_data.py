"""corenn.data: splits (against scikit-learn and the allocation rules),
Standardizer (against scikit-learn's StandardScaler and closed forms) and the
course's random_mini_batches."""

import numpy as np
import pytest
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import corenn as cn
from corenn.data import Standardizer, mini_batches, train_dev_test_split
from tolerances import CLOSED_FORM, STATISTIC, tolerance

STAT = STATISTIC[np.dtype(np.float64)]  # means, variances against scikit-learn's
F64 = tolerance(np.float64)  # standardised data: the same arithmetic in another order


def labelled(n=1000, classes=(0.5, 0.3, 0.15, 0.05), seed=0):
    """X holds each example's index, so every split can be traced back."""
    y = np.random.default_rng(seed).choice(len(classes), size=n, p=classes)
    return np.arange(n), y


# ------------------------------------------------------------------ splits
@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.98, 0.01, 0.01), (0.7, 0.3, 0.0),
                                       (1 / 3, 1 / 3, 1 / 3)])
@pytest.mark.parametrize("n", [100, 1000, 1797])
def test_split_sizes_partition_and_alignment(fractions, n):
    X, y = labelled(n)
    (Xa, ya), (Xb, yb), (Xc, yc) = train_dev_test_split(X, y, fractions, seed=3)
    for part, f in zip((Xa, Xb, Xc), fractions):
        assert abs(len(part) - n * f) < 1
    # A partition: every example exactly once, and y travels with X.
    np.testing.assert_array_equal(np.sort(np.concatenate([Xa, Xb, Xc])), np.arange(n))
    for part_x, part_y in ((Xa, ya), (Xb, yb), (Xc, yc)):
        np.testing.assert_array_equal(part_y, y[part_x])


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.98, 0.01, 0.01), (0.5, 0.25, 0.25)])
def test_stratified_counts_are_floor_or_ceil_per_class(fractions):
    X, y = labelled(5000)
    parts = train_dev_test_split(X, y, fractions, stratify=True, seed=1)
    f = np.array(fractions)
    for k, count in zip(*np.unique(y, return_counts=True)):
        got = np.array([np.sum(py == k) for _, py in parts])
        assert np.all(np.abs(got - count * f) < 1), (k, got, count * f)
    for (px, _), frac in zip(parts, fractions):
        assert abs(len(px) - len(X) * frac) < 1


def test_stratified_matches_scikit_learn_class_counts():
    X, y = labelled(997, seed=4)
    (_, y_tr), _, (_, y_te) = train_dev_test_split(X, y, (0.75, 0.0, 0.25), stratify=True, seed=0)
    _, _, sk_tr, sk_te = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    # scikit-learn also gives each class ⌊c/4⌋ or ⌈c/4⌉ test examples: the two
    # differ by at most one example per class.
    for k in np.unique(y):
        assert abs(np.sum(y_te == k) - np.sum(sk_te == k)) <= 1
        assert abs(np.sum(y_tr == k) - np.sum(sk_tr == k)) <= 1
    # The class proportions of each split are those of the whole set, to within
    # what one example per class can change.
    overall = np.bincount(y) / len(y)
    for part in (y_tr, y_te):
        assert np.max(np.abs(np.bincount(part, minlength=len(overall)) / len(part) - overall)) \
            <= 1 / len(part)


def test_stratified_splits_are_not_sorted_by_class():
    X, y = labelled(600)
    (_, y_tr), _, _ = train_dev_test_split(X, y, stratify=True, seed=2)
    assert np.any(np.diff(y_tr) < 0)


def test_reproducible_with_seed_and_with_global_seed():
    X, y = labelled(300)
    a = train_dev_test_split(X, y, seed=7)
    b = train_dev_test_split(X, y, seed=7)
    c = train_dev_test_split(X, y, seed=8)
    for (xa, _), (xb, _) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(a[0][0], c[0][0])
    cn.seed(5)
    d = train_dev_test_split(X, seed=None)
    cn.seed(5)
    e = train_dev_test_split(X, seed=None)
    for xd, xe in zip(d, e):
        np.testing.assert_array_equal(xd, xe)


def test_every_example_is_equally_likely_to_land_in_each_split():
    # The split is a random partition: over many seeds every example lands in
    # the test split about 20% of the time (binomial, 400 seeds: std 2%).
    X = np.arange(50)
    hits = np.zeros(50)
    for s in range(400):
        hits[train_dev_test_split(X, seed=s)[2]] += 1
    assert np.all(np.abs(hits / 400 - 0.2) < 0.1)


def test_no_shuffle_takes_blocks_in_order():
    X = np.arange(10)
    a, b, c = train_dev_test_split(X, fractions=(0.6, 0.2, 0.2), shuffle=False)
    np.testing.assert_array_equal(a, np.arange(6))
    np.testing.assert_array_equal(b, [6, 7])
    np.testing.assert_array_equal(c, [8, 9])


def test_images_split_along_the_first_axis():
    X = np.random.default_rng(0).standard_normal((20, 1, 4, 4))
    y = np.arange(20) % 2
    (xa, ya), (xb, yb), (xc, yc) = train_dev_test_split(X, y, (0.5, 0.25, 0.25), seed=0)
    assert xa.shape == (10, 1, 4, 4) and xb.shape == (5, 1, 4, 4) and xc.shape == (5, 1, 4, 4)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: train_dev_test_split(np.arange(10), fractions=(0.5, 0.5)), ValueError,
     r"fractions must be three numbers >= 0 summing to 1"),
    (lambda: train_dev_test_split(np.arange(10), fractions=(0.6, 0.3, 0.3)), ValueError,
     r"summing to 1 \(train, dev, test\), got \(0.6, 0.3, 0.3\)"),
    (lambda: train_dev_test_split(np.arange(10), fractions=(1.2, -0.1, -0.1)), ValueError,
     r"fractions must be three numbers >= 0"),
    (lambda: train_dev_test_split(np.arange(10), fractions="abc"), TypeError, r"fractions must be three numbers"),
    (lambda: train_dev_test_split(np.arange(10), fractions=(0.98, 0.01, 0.01)), ValueError,
     r"a dev fraction of 0.01 leaves the dev split empty with 10 examples"),
    (lambda: train_dev_test_split(np.arange(10), np.arange(9)), ValueError,
     r"X and y must hold the same number of examples, got 10 and 9"),
    (lambda: train_dev_test_split(np.arange(10), stratify=True), ValueError, r"stratify needs y"),
    (lambda: train_dev_test_split(np.arange(10), np.arange(10) % 2, stratify=True, shuffle=False),
     ValueError, r"stratify needs shuffle=True"),
    (lambda: train_dev_test_split(np.zeros((0, 3))), ValueError, r"at least one example"),
    (lambda: train_dev_test_split(np.arange(10), seed=-1), ValueError, r"seed must be >= 0"),
])
def test_split_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -------------------------------------------------------------- Standardizer
def test_standardizer_equals_scikit_learn_standard_scaler(rng):
    X_train = rng.normal(5.0, 3.0, (200, 6))
    X_train[:, 2] = 4.0  # a constant feature: only centred (σ taken as 1)
    X_dev = rng.normal(5.0, 3.0, (50, 6))
    ours, theirs = Standardizer().fit(X_train), StandardScaler().fit(X_train)
    np.testing.assert_allclose(ours.mean, theirs.mean_, **STAT)
    np.testing.assert_allclose(ours.variance, theirs.var_, **STAT)
    np.testing.assert_allclose(ours.scale, theirs.scale_, **STAT)
    np.testing.assert_allclose(ours.transform(X_train), theirs.transform(X_train), **F64)
    # Dev data gets the TRAINING statistics, not its own.
    np.testing.assert_allclose(ours.transform(X_dev), theirs.transform(X_dev), **F64)
    assert abs(ours.transform(X_dev).mean()) > 1e-3


def test_standardizer_closed_form_small_case():
    X = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    s = Standardizer().fit(X)
    np.testing.assert_array_equal(s.mean, [3.0, 10.0])
    np.testing.assert_allclose(s.variance, [8 / 3, 0.0])
    want = np.array([[-1.0, 0.0], [0.0, 0.0], [1.0, 0.0]]) * [np.sqrt(3 / 2), 1.0]
    np.testing.assert_allclose(s.transform(X), want, **CLOSED_FORM[np.dtype(np.float64)])


def test_standardizer_per_channel_for_images(rng):
    X = rng.normal(0, 1, (30, 3, 5, 4)) * np.array([1.0, 2.0, 5.0])[:, None, None] \
        + np.array([0.0, -3.0, 7.0])[:, None, None]
    s = Standardizer().fit(X)
    assert s.mean.shape == (3,) and s.variance.shape == (3,)
    np.testing.assert_allclose(s.mean, X.transpose(1, 0, 2, 3).reshape(3, -1).mean(axis=1), **STAT)
    Z = s.transform(X)
    np.testing.assert_allclose(Z.mean(axis=(0, 2, 3)), 0.0, **F64)
    np.testing.assert_allclose(Z.std(axis=(0, 2, 3)), 1.0, **STAT)
    np.testing.assert_allclose(s.inverse_transform(Z), X, **F64)


def test_standardizer_keeps_float32_and_casts_integers(rng):
    X = rng.integers(0, 255, (40, 8))
    s = Standardizer().fit(X)
    assert s.transform(X).dtype == np.float64
    assert s.transform(X.astype(np.float32)).dtype == np.float32


@pytest.mark.parametrize("call, match", [
    (lambda: Standardizer().transform(np.ones((2, 3))), r"Standardizer.transform: call fit\(X_train\) first"),
    (lambda: Standardizer().layer(), r"Standardizer.layer: call fit\(X_train\) first"),
    (lambda: Standardizer().fit(np.ones((4, 3))).transform(np.ones((4, 2))),
     r"Standardizer.transform: X has 2 entries on axis 1, the statistics were fitted on 3"),
    (lambda: Standardizer().fit(np.ones(4)), r"Standardizer.fit: X must be \(examples, features\)"),
    (lambda: Standardizer().fit(np.array([[1.0, np.nan]])), r"Standardizer.fit: X contains NaN"),
    (lambda: Standardizer().fit(np.ones((0, 3))), r"Standardizer.fit: X holds no examples"),
])
def test_standardizer_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------- mini-batches
def test_mini_batches_are_the_courses_random_mini_batches():
    X, y = np.arange(148)[:, None] * np.ones((1, 3)), np.arange(148)
    batches = list(mini_batches(X, y, batch_size=64, seed=0))
    assert [len(b[0]) for b in batches] == [64, 64, 20]  # the last one partial
    seen = np.concatenate([by for _, by in batches])
    np.testing.assert_array_equal(np.sort(seen), y)  # each example once
    assert not np.array_equal(seen, y)  # shuffled
    for bx, by in batches:
        np.testing.assert_array_equal(bx[:, 0], by)  # X and y stay paired


def test_mini_batches_without_shuffle_and_reproducible():
    X = np.arange(10)
    assert [b.tolist() for b in mini_batches(X, batch_size=4, shuffle=False)] == \
        [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    a = [b.tolist() for b in mini_batches(X, batch_size=3, seed=9)]
    assert a == [b.tolist() for b in mini_batches(X, batch_size=3, seed=9)]
    cn.seed(1)
    c = [b.tolist() for b in mini_batches(X, batch_size=3)]
    cn.seed(1)
    assert c == [b.tolist() for b in mini_batches(X, batch_size=3)]


@pytest.mark.parametrize("call, exc, match", [
    (lambda: mini_batches(np.arange(5), batch_size=0), ValueError, r"mini_batches: batch_size must be >= 1, got 0"),
    (lambda: mini_batches(np.arange(5), batch_size=2.0), TypeError, r"mini_batches: batch_size must be an int"),
    (lambda: mini_batches(np.arange(5), np.arange(4)), ValueError,
     r"mini_batches: X and y must hold the same number of examples, got 5 and 4"),
])
def test_mini_batches_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
