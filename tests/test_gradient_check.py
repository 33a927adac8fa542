"""cn.gradient_check on models of any size: by default at most max_params
parameters, a reproducible random subset (seed) with every parameter tensor
represented; the full check on request (max_params=None); progress on request
(verbose); the course's relative difference over the checked subset."""

import sys

import numpy as np
import pytest

import corenn as cn
from corenn.gradient_check import _parameter_sizes, _subset
from gradcheck import engine_finite_differences, relative_difference
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, assert_close

L = cn.layers


def conv_model(dtype="float64"):
    cn.seed(4)
    m = cn.Sequential([L.Input((2, 6, 6)), L.Conv2D(4, 3, activation="tanh"), L.BatchNormalization(),
                       L.Flatten(), L.Dense(7, activation="tanh"), L.Dense(3)], dtype=dtype)
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    m.build()
    x = np.random.default_rng(5).standard_normal((5, 2, 6, 6))
    return m, x, np.array([0, 1, 2, 1, 0])


def test_parameter_sizes_split_the_flat_parameter_vector():
    m, _, _ = conv_model()
    sizes = _parameter_sizes(m._engine)
    # conv kernel, conv bias, gamma, beta, dense kernel, bias, dense kernel, bias
    assert sizes == [4 * 2 * 3 * 3, 4, 4, 4, 7 * 64, 7, 3 * 7, 3]
    weights = m.get_weights()
    params = weights[:4] + weights[6:]  # without moving_mean, moving_variance
    np.testing.assert_array_equal(np.concatenate([w.ravel() for w in params]), m._engine.get_parameters())


def test_subset_is_reproducible_spread_over_every_tensor_and_proportional():
    sizes = [72, 4, 4, 4, 448, 7, 21, 3]
    a = _subset("gradient_check", sizes, 60, seed=3)
    assert len(a) == 60 and len(np.unique(a)) == 60 and np.all(np.diff(a) > 0)
    np.testing.assert_array_equal(a, _subset("gradient_check", sizes, 60, seed=3))
    assert not np.array_equal(a, _subset("gradient_check", sizes, 60, seed=4))
    bounds = np.cumsum([0, *sizes])
    per_tensor = np.histogram(a, bins=bounds)[0]
    assert np.all(per_tensor >= 1)
    # One each, then the other 52 in proportion to size − 1 (largest remainders).
    share = 52 * (np.array(sizes) - 1) / (sum(sizes) - len(sizes))
    assert np.all(np.abs(per_tensor - (1 + share)) < 1)
    assert per_tensor.sum() == 60


def test_subset_is_everything_when_the_model_is_small_enough():
    np.testing.assert_array_equal(_subset("gradient_check", [3, 4], 7, 0), np.arange(7))
    np.testing.assert_array_equal(_subset("gradient_check", [3, 4], None, 0), np.arange(7))




def test_value_is_the_relative_difference_over_the_checked_subset():
    cn.seed(6)
    m = cn.Sequential([L.Input((1, 4, 4)), L.Conv2D(2, 3, activation="tanh"), L.BatchNormalization(),
                       L.Flatten(), L.Dense(3)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    m.build()
    x, y = np.random.default_rng(7).standard_normal((4, 1, 4, 4)), np.array([0, 2, 1, 2])
    state = m._engine.get_state()
    _, analytic = m._engine.loss_and_gradients([x], [y])
    m._engine.set_state(state)
    numeric = engine_finite_differences(m._engine, x, y, True, GRADCHECK_EPS)
    m._engine.set_state(state)
    idx = _subset("gradient_check", _parameter_sizes(m._engine), 12, seed=9)
    assert len(idx) == 12 < m._engine.count_params()
    got = cn.gradient_check(m, x, y, epsilon=GRADCHECK_EPS, max_params=12, seed=9)
    assert_close(np.float64(got), np.float64(relative_difference(analytic[idx], numeric[idx])))
    assert got < GRADCHECK_THRESHOLD
    full = cn.gradient_check(m, x, y, epsilon=GRADCHECK_EPS, max_params=None)
    assert_close(np.float64(full), np.float64(relative_difference(analytic, numeric)))
    assert cn.gradient_check(m, x, y, epsilon=GRADCHECK_EPS, max_params=10**6) == full


class _Engine:
    """A real engine that counts gradient evaluations and can corrupt the
    gradient of one flat range (a backward pass with a bug in one tensor)."""

    def __init__(self, engine, wrong=None):
        self._engine, self.wrong, self.calls = engine, wrong, 0

    def loss_and_gradients(self, xs, ys, sample_weight=None):
        self.calls += 1
        loss, grads = self._engine.loss_and_gradients(xs, ys, sample_weight)
        if self.wrong is not None:
            grads[self.wrong] *= -1
        return loss, grads

    def __getattr__(self, name):
        return getattr(self._engine, name)


def test_a_bug_in_the_smallest_tensor_is_caught_by_the_smallest_subset():
    m, x, y = conv_model()
    sizes = _parameter_sizes(m._engine)
    assert cn.gradient_check(m, x, y, max_params=len(sizes)) < GRADCHECK_THRESHOLD
    m._engine = _Engine(m._engine, wrong=slice(sum(sizes) - 3, None))  # the last bias, 3 of 563
    assert cn.gradient_check(m, x, y, max_params=len(sizes)) > 1e-3


def test_default_checks_2000_parameters_of_a_large_model():
    cn.seed(1)
    m = cn.Sequential([L.Input((64,)), L.Dense(256, activation="tanh"), L.Dense(10)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert m.count_params() == 19210
    x, y = np.random.default_rng(2).standard_normal((3, 64)), np.array([1, 5, 9])
    before = m.get_weights()
    m._engine = counting = _Engine(m._engine)
    assert cn.gradient_check(m, x, y) < GRADCHECK_THRESHOLD
    assert counting.calls == 1 + 2 * 2000
    for a, b in zip(m.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_float32_models_are_checked_on_a_float64_copy_with_the_same_subset():
    m32, x, y = conv_model("float32")
    m64, _, _ = conv_model("float64")
    m64.set_weights(m32.get_weights())
    assert cn.gradient_check(m32, x, y, max_params=30, seed=1) == cn.gradient_check(
        m64, x, y, max_params=30, seed=1)


ERRORS = [
    (dict(max_params=0), ValueError, r"^gradient_check: max_params must be >= 1, got 0$"),
    (dict(max_params=7), ValueError,
     r"^gradient_check: max_params=7 cannot cover the model's 8 parameter tensors \(one parameter each "
     r"at least\); pass at least 8, or None to check all 563 parameters$"),
    (dict(max_params=2.5), TypeError, r"^gradient_check: max_params must be an int, got float 2.5$"),
    (dict(seed=-1), ValueError, r"^gradient_check: seed must be >= 0, got -1$"),
    (dict(verbose=-1), ValueError, r"^gradient_check: verbose must be >= 0, got -1$"),
]


@pytest.mark.parametrize("kwargs,exc,match", ERRORS, ids=[str(e[0]) for e in ERRORS])
def test_impossible_requests_are_refused(kwargs, exc, match):
    m, x, y = conv_model()
    with pytest.raises(exc, match=match):
        cn.gradient_check(m, x, y, **kwargs)


def test_a_model_without_parameters_is_refused():
    m = cn.Sequential([L.Input((2, 3)), L.Flatten()], dtype="float64")
    m.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"^gradient_check: the model has no parameters to check$"):
        cn.gradient_check(m, np.ones((2, 2, 3)), np.ones((2, 6)))


def test_progress_is_shown_only_when_verbose(capsys, monkeypatch):
    m, x, y = conv_model()
    cn.gradient_check(m, x, y, max_params=20)
    assert capsys.readouterr().err == ""
    pytest.importorskip("tqdm")
    cn.gradient_check(m, x, y, max_params=20, verbose=1)
    err = capsys.readouterr().err
    assert "gradient_check" in err and "20/20" in err
    # Without tqdm: a line at every tenth of the way.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    cn.gradient_check(m, x, y, max_params=20, verbose=1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"gradient_check: {k}/20 parameters checked" for k in range(2, 21, 2)]
