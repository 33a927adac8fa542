"""corenn.tuning: the sampling scales (closed forms), random search, refine
(coarse to fine), and a real search over the learning rate on digits."""

import math

import numpy as np
import pytest

import corenn as cn
from corenn import tuning as T
from tolerances import frequency_atol

L = cn.layers


def draws(dist, n=4000, seed=0):
    rng = np.random.default_rng(seed)
    return np.array([dist.sample(rng) for _ in range(n)])


def test_log_uniform_is_uniform_in_the_exponent():
    x = draws(T.LogUniform(1e-4, 1))
    assert x.min() >= 1e-4 and x.max() <= 1
    # r = log10(α) is uniform on [−4, 0]: each decade gets a quarter of the draws
    # (binomial, n = 4000: std 0.7%, bound at 5 std).
    decades = np.histogram(np.log10(x), bins=[-4, -3, -2, -1, 0])[0] / len(x)
    np.testing.assert_allclose(decades, 0.25, atol=frequency_atol(0.25, len(x)))


def test_one_minus_log_uniform_is_the_courses_beta():
    b = draws(T.OneMinusLogUniform(0.9, 0.999))
    assert b.min() >= 0.9 and b.max() <= 0.999
    r = np.log10(1 - b)  # the course: r ∈ [−3, −1], β = 1 − 10^r
    assert r.min() >= -3 - 1e-12 and r.max() <= -1 + 1e-12
    halves = np.histogram(r, bins=[-3, -2, -1])[0] / len(r)
    np.testing.assert_allclose(halves, 0.5, atol=frequency_atol(0.5, len(r)))
    # As many draws in [0.9, 0.99] as in [0.99, 0.999].
    assert abs(np.mean(b < 0.99) - 0.5) < frequency_atol(0.5, len(b))


def test_uniform_int_uniform_and_choice():
    u = draws(T.Uniform(-2, 3))
    assert u.min() >= -2 and u.max() < 3 and abs(u.mean() - 0.5) < 0.1
    i = draws(T.IntUniform(2, 5))
    assert set(np.unique(i)) == {2, 3, 4, 5} and i.dtype.kind == "i"
    np.testing.assert_allclose(np.bincount(i)[2:] / len(i), 0.25, atol=frequency_atol(0.25, len(i)))
    c = draws(T.Choice(["relu", "tanh", "sigmoid"]), n=3000)
    for name in ("relu", "tanh", "sigmoid"):
        assert abs(np.mean(c == name) - 1 / 3) < 0.04


def quadratic(params):
    """Best at α = 10^-2.5, units = 64, activation relu; a deterministic score."""
    return -(math.log10(params["learning_rate"]) + 2.5) ** 2 - abs(params["units"] - 64) / 100 \
        - (params["activation"] != "relu")


SPACE = {"learning_rate": T.LogUniform(1e-4, 1), "units": T.IntUniform(16, 128),
         "activation": T.Choice(["relu", "tanh"]), "beta": T.OneMinusLogUniform(0.9, 0.999),
         "epochs": 3}


def test_random_search_sorts_best_first_and_is_reproducible():
    res = T.random_search(quadratic, SPACE, n_trials=25, metric="score", seed=4)
    scores = [r["score"] for r in res]
    assert scores == sorted(scores, reverse=True) and len(res) == 25
    assert res.best is res[0] and res.best_params == {k: res[0][k] for k in SPACE}
    assert all(r["epochs"] == 3 for r in res)  # constants pass through
    assert sorted(r["trial"] for r in res) == list(range(25))
    again = T.random_search(quadratic, SPACE, n_trials=25, metric="score", seed=4)
    assert [r["learning_rate"] for r in again] == [r["learning_rate"] for r in res]
    other = T.random_search(quadratic, SPACE, n_trials=25, metric="score", seed=5)
    assert [r["learning_rate"] for r in other] != [r["learning_rate"] for r in res]
    text = res.table(limit=3)
    assert text.splitlines()[0].split() == ["trial", "learning_rate", "units", "activation", "beta",
                                           "epochs", "score", "seconds"]
    assert len(text.splitlines()) == 4


def test_random_search_min_mode_dict_metrics_and_nan_last():
    def objective(p):
        return {"val_loss": float("nan") if p["x"] > 0.9 else (p["x"] - 0.3) ** 2, "other": 1.0}

    res = T.random_search(objective, {"x": T.Uniform(0, 1)}, n_trials=40, metric="val_loss",
                          mode="min", seed=1)
    losses = [r["val_loss"] for r in res]
    finite = [v for v in losses if not math.isnan(v)]
    assert finite == sorted(finite) and any(math.isnan(v) for v in losses)
    assert all(math.isnan(v) for v in losses[len(finite):])
    assert abs(res.best["x"] - 0.3) < 0.05


def test_random_search_seed_none_follows_corenn_seed():
    cn.seed(3)
    a = T.random_search(quadratic, SPACE, n_trials=5)
    cn.seed(3)
    b = T.random_search(quadratic, SPACE, n_trials=5)
    assert [r["learning_rate"] for r in a] == [r["learning_rate"] for r in b]
    assert a.metric == "score"


def test_refine_closed_form():
    rows = [{"trial": 0, "lr": 1e-3, "beta": 0.99, "n": 40, "act": "relu", "w": 0.2, "c": 1, "score": 3.0},
            {"trial": 1, "lr": 1e-2, "beta": 0.9, "n": 50, "act": "relu", "w": 0.4, "c": 1, "score": 2.0},
            {"trial": 2, "lr": 0.5, "beta": 0.999, "n": 10, "act": "tanh", "w": 0.9, "c": 1, "score": 1.0}]
    space = {"lr": T.LogUniform(1e-4, 1), "beta": T.OneMinusLogUniform(0.9, 0.999), "n": T.IntUniform(1, 100),
             "act": T.Choice(["tanh", "relu", "elu"]), "w": T.Uniform(0, 1), "c": 1}
    res = T.SearchResults(rows, space, "score", "max", list(space))
    fine = T.refine(res, top_k=2, margin=0.1)
    # log10 lr of the top two: [−3, −2], widened by 0.1 × 4 decades each side.
    assert fine["lr"].low == pytest.approx(10 ** -3.4) and fine["lr"].high == pytest.approx(10 ** -1.6)
    # r = log10(1 − β): [−2, −1], widened by 0.1 × 2 and clipped at −1 (β = 0.9).
    assert fine["beta"].low == pytest.approx(0.9) and fine["beta"].high == pytest.approx(1 - 10 ** -2.2)
    # n: [40, 50] ± 0.1 × 99 → [30.1, 59.9] → IntUniform(30, 60).
    assert (fine["n"].low, fine["n"].high) == (30, 60)
    assert fine["act"].options == ["relu"]
    assert fine["w"].low == pytest.approx(0.1) and fine["w"].high == pytest.approx(0.5)
    assert fine["c"] == 1
    # Clipped to the old range: the best at the edge stays inside it.
    edge = T.refine(T.SearchResults(rows[2:], space, "score", "max", list(space)), top_k=1)
    assert edge["lr"].high == pytest.approx(1.0) and edge["w"].high == pytest.approx(1.0)


def test_coarse_to_fine_narrows_around_the_optimum():
    coarse = T.random_search(quadratic, SPACE, n_trials=30, seed=0)
    fine_space = T.refine(coarse, top_k=5)
    lr = fine_space["learning_rate"]
    assert 1e-4 < lr.low < 10 ** -2.5 < lr.high < 1
    assert math.log10(lr.high / lr.low) < 4  # narrower than the coarse 4 decades
    fine = T.random_search(quadratic, fine_space, n_trials=30, seed=1)
    assert all(lr.low <= r["learning_rate"] <= lr.high for r in fine)
    # The fine pass samples densely near the optimum: its learning rates sit
    # closer to 10^-2.5 (in decades) than the coarse pass's.
    off = lambda res: np.median([abs(math.log10(r["learning_rate"]) + 2.5) for r in res])  # noqa: E731
    assert off(fine) < 0.75 * off(coarse)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: T.LogUniform(0, 1), ValueError, r"LogUniform: low must be finite and in \(0.0, inf\)"),
    (lambda: T.LogUniform(1, 1e-3), ValueError, r"LogUniform: high must be > low"),
    (lambda: T.OneMinusLogUniform(0.9, 1.0), ValueError, r"need 0 <= low < high < 1"),
    (lambda: T.IntUniform(5, 2), ValueError, r"IntUniform: high must be >= low"),
    (lambda: T.IntUniform(1.5, 2), TypeError, r"IntUniform: low must be an int"),
    (lambda: T.Choice([]), ValueError, r"Choice: options must not be empty"),
    (lambda: T.random_search(quadratic, {}, 3), TypeError, r"random_search: space must be a non-empty dict"),
    (lambda: T.random_search(quadratic, SPACE, 0), ValueError, r"n_trials must be >= 1"),
    (lambda: T.random_search("f", SPACE, 2), TypeError, r"objective must be callable"),
    (lambda: T.random_search(lambda p: {"a": 1, "b": 2}, SPACE, 2), ValueError, r"name the one to optimise"),
    (lambda: T.random_search(lambda p: {"a": 1}, SPACE, 2, metric="b"), ValueError, r"returned no 'b'"),
    (lambda: T.random_search(lambda p: {"units": 1}, SPACE, 2), ValueError, r"clash with parameter names"),
    (lambda: T.refine([], 2), TypeError, r"refine: expected the SearchResults"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------- a real search
def test_learning_rate_search_on_digits_finds_an_interior_optimum():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target
    (X_tr, y_tr), (X_dev, y_dev), _ = cn.data.train_dev_test_split(X, y, (0.6, 0.2, 0.2),
                                                                   stratify=True, seed=0)

    def objective(params):
        cn.seed(0)
        model = cn.Sequential([L.Input((64,)), L.Dense(32, activation="relu"), L.Dense(10)])
        model.compile(cn.optimizers.SGD(params["learning_rate"]), "softmax_cross_entropy",
                      metrics=["accuracy"])
        model.fit(X_tr, y_tr, batch_size=32, epochs=2, verbose=0)
        return model.evaluate(X_dev, y_dev)["accuracy"]

    space = {"learning_rate": T.LogUniform(1e-5, 100)}
    res = T.random_search(objective, space, n_trials=12, metric="val_accuracy", seed=0)
    lrs = sorted(r["learning_rate"] for r in res)
    by_lr = {r["learning_rate"]: r["val_accuracy"] for r in res}
    best = res.best["learning_rate"]
    # The draws cover the range: too small to learn in 2 epochs at one end,
    # diverging at the other. The best lies strictly inside, far from both.
    assert lrs[0] < 1e-4 and lrs[-1] > 10
    assert lrs[0] < best < lrs[-1] and 1e-2 < best < 1
    assert res.best["val_accuracy"] > 0.85
    assert by_lr[lrs[0]] < res.best["val_accuracy"] - 0.5
    assert by_lr[lrs[-1]] < res.best["val_accuracy"] - 0.5
    fine = T.refine(res, top_k=3)["learning_rate"]
    assert lrs[0] < fine.low <= best <= fine.high < lrs[-1]
