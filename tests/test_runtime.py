"""Process-wide behaviour: threads, seeds, processes, concurrent inference."""

import multiprocessing
import re
import threading

import numpy as np
import pytest

import corenn as cn

L = cn.layers


def small_model(seed=0):
    cn.seed(seed)
    m = cn.Sequential([L.Input((20,)), L.Dense(64, activation="relu"), L.Dense(5)])
    m.compile(cn.optimizers.Adam(1e-2), "softmax_cross_entropy")
    return m


def test_version_comes_from_the_package_metadata():
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", cn.__version__)


def test_set_num_threads_round_trips_and_validates():
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(1)
        assert cn.get_num_threads() == 1
        cn.set_num_threads(3)
        assert cn.get_num_threads() == 3
    finally:
        cn.set_num_threads(before)
    with pytest.raises(ValueError, match=r"set_num_threads: n must be >= 1, got 0"):
        cn.set_num_threads(0)
    with pytest.raises(TypeError, match=r"set_num_threads: n must be an int, got float"):
        cn.set_num_threads(2.0)


def test_training_is_deterministic_for_a_thread_count():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((300, 20)), rng.integers(0, 5, 300)
    runs = []
    for _ in range(2):
        m = small_model()
        cn.seed(7)
        m.fit(X, y, batch_size=32, epochs=2, verbose=0)
        runs.append(m.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def _predict_in_child(weights, x):
    import corenn as child_cn  # a fresh interpreter: the spawn start method
    m = child_cn.Sequential([child_cn.layers.Input((20,)), child_cn.layers.Dense(64, activation="relu"),
                             child_cn.layers.Dense(5)])
    m.set_weights(weights)
    return m.predict(x)


def test_spawned_processes_run_models():
    # libgomp cannot run in a child forked after it started threads; spawn is
    # the documented start method, and it must work.
    m = small_model()
    x = np.random.default_rng(1).standard_normal((8, 20)).astype(np.float32)
    m.predict(x)  # the parent's OpenMP pool exists before the children start
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(_predict_in_child, [(m.get_weights(), x)] * 2)
    for r in results:
        np.testing.assert_array_equal(r, m.predict(x))


def test_predict_is_reentrant_across_threads():
    m = small_model()
    rng = np.random.default_rng(2)
    inputs = [rng.standard_normal((n, 20)).astype(np.float32) for n in (1, 7, 64, 200)]
    expected = [m.predict(x) for x in inputs]
    failures = []

    def worker(k):
        for _ in range(50):
            i = k % len(inputs)
            if not np.array_equal(m.predict(inputs[i]), expected[i]):
                failures.append(i)
            k += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
