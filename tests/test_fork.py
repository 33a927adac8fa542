"""Children forked after corenn ran threads: libgomp's pool does not survive
fork(), so corenn runs single-threaded in the child (runtime.cpp's at-fork
handler) instead of hanging, says so once with a RuntimeWarning naming
cn.set_num_threads and the spawn start method, and refuses more threads there.
Every pool result is fetched with a timeout, so a regression fails, not hangs."""

import multiprocessing
import os
import warnings

import numpy as np
import pytest

import corenn as cn

L = cn.layers
TIMEOUT = 60
RNG = np.random.default_rng(0)
X = RNG.standard_normal((300, 256)).astype(np.float32)  # large enough for BLAS and several chunks
IMAGES = RNG.standard_normal((16, 3, 12, 12)).astype(np.float32)

_MODEL = None  # the parent's model, inherited by the forked workers


def dense_model():
    cn.seed(1)
    m = cn.Sequential([L.Input((256,)), L.Dense(384, activation="relu"), L.Dense(10)])
    m.compile(cn.optimizers.Adam(1e-3), "softmax_cross_entropy")
    return m


def conv_model():
    cn.seed(2)
    m = cn.Sequential([L.Input((3, 12, 12)), L.Conv2D(8, 3, padding=1, activation="relu"),
                       L.BatchNormalization(), L.MaxPool2D(2), L.Flatten(), L.Dense(4)])
    m.compile(cn.optimizers.SGD(0.05), "softmax_cross_entropy")
    return m


@pytest.fixture
def two_threads():
    before = cn.get_num_threads()
    cn.set_num_threads(2)
    yield
    cn.set_num_threads(before)


def _predict_in_child(x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _MODEL.predict(x)
    return os.getpid(), out, [(w.category, str(w.message)) for w in caught], cn.get_num_threads()


def _fork_map(model, fn, inputs):
    global _MODEL
    _MODEL = model
    try:
        with warnings.catch_warnings():
            # Python >= 3.12 warns that fork() in a multi-threaded process may
            # deadlock the child: the case under test.
            warnings.filterwarnings("ignore", r".*multi-threaded.*fork\(\)", DeprecationWarning)
            with multiprocessing.get_context("fork").Pool(2) as pool:
                return pool.map_async(fn, inputs, chunksize=1).get(timeout=TIMEOUT)
    finally:
        _MODEL = None


def _check_children(results, expected):
    warned = {}
    for pid, out, caught, threads in results:
        np.testing.assert_array_equal(out, expected)
        assert threads == 1
        warned.setdefault(pid, []).extend(caught)
    for pid, caught in warned.items():
        assert len(caught) == 1, f"child {pid} warned {len(caught)} times: {caught}"
        category, message = caught[0]
        assert category is RuntimeWarning
        assert "forked from one that used 2 threads" in message
        assert "cn.set_num_threads" in message and "'spawn'" in message


@pytest.mark.parametrize("make,x", [(dense_model, X), (conv_model, IMAGES)], ids=["dense", "conv"])
def test_forked_children_predict_after_inference(make, x, two_threads):
    m = make()
    expected = m.predict(x)  # the parent's OpenMP pool now exists
    _check_children(_fork_map(m, _predict_in_child, [x] * 6), expected)


@pytest.mark.parametrize("make,x", [(dense_model, X), (conv_model, IMAGES)], ids=["dense", "conv"])
def test_forked_children_predict_after_training(make, x, two_threads):
    m = make()
    y = np.arange(len(x)) % 4
    m.fit(x, y, batch_size=32, epochs=2, verbose=0)
    expected = m.predict(x)
    _check_children(_fork_map(m, _predict_in_child, [x] * 6), expected)


def _train_in_child(x):
    warnings.simplefilter("ignore", RuntimeWarning)  # the one-time notice, checked above
    m = conv_model()
    m.fit(x, np.arange(len(x)) % 4, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return m.get_weights()


def test_forked_children_train_like_a_single_threaded_parent(two_threads):
    conv_model().predict(IMAGES)
    results = _fork_map(None, _train_in_child, [IMAGES] * 2)
    cn.set_num_threads(1)
    expected = _train_in_child(IMAGES)
    for weights in results:
        for a, b in zip(weights, expected):
            np.testing.assert_array_equal(a, b)


def _set_threads_in_child(n):
    warnings.simplefilter("ignore", RuntimeWarning)
    try:
        cn.set_num_threads(n)
    except ValueError as e:
        return str(e)
    return cn.get_num_threads()


def test_more_threads_are_refused_in_a_forked_child(two_threads):
    dense_model().predict(X)
    refused, one = _fork_map(None, _set_threads_in_child, [2, 1])
    assert refused == ("set_num_threads: n must be 1 in a process forked from one that loaded corenn "
                       "(OpenMP's threads do not survive fork()), got 2; start worker processes with "
                       "the 'spawn' start method to use threads")
    assert one == 1
    assert cn.get_num_threads() == 2  # the parent is untouched


def _predict_quietly(x):
    return _MODEL.predict(x)  # the suite's warnings-as-errors filter is inherited


def test_a_single_threaded_parent_forks_children_without_a_warning():
    before = cn.get_num_threads()
    cn.set_num_threads(1)
    try:
        m = dense_model()
        expected = m.predict(X)
        for out in _fork_map(m, _predict_quietly, [X] * 2):
            np.testing.assert_array_equal(out, expected)
    finally:
        cn.set_num_threads(before)
