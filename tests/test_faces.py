"""Face verification and recognition (course 4, week 4) on hand-built
embeddings: the distance, the threshold chosen on a dev set against an
exhaustive search, and the Embedder's enrol / identify / verify."""

import numpy as np
import pytest

import corenn as cn

A = cn.applications


def test_distance_is_euclidean():
    e1 = np.array([[0, 0], [1, 1.0]])
    e2 = np.array([[3, 4], [1, 1.0]])
    np.testing.assert_array_equal(A.distance(e1, e2), [5.0, 0.0])


def test_choose_threshold_hand_case():
    # Sorted: 0.1 s, 0.2 s, 0.5 d, 0.6 s, 0.9 d. τ in (0.2, 0.5) gets 4 of 5
    # right, as does τ in (0.6, 0.9); ties go to the smaller: the midpoint 0.35.
    d = np.array([0.6, 0.1, 0.9, 0.5, 0.2])
    same = np.array([1, 1, 0, 0, 1])
    assert A.choose_threshold(d, same) == pytest.approx(0.35)
    # All "same" is best: τ = the largest distance; all "different": below the smallest.
    assert A.choose_threshold([0.3, 0.4], [True, True]) == 0.4
    tau = A.choose_threshold([0.3, 0.4], [0, 0])
    assert 0 <= tau < 0.3


def accuracy(d, same, tau):
    return np.mean((d <= tau) == same)


@pytest.mark.parametrize("seed", range(5))
def test_choose_threshold_is_best_among_all_thresholds(seed):
    rng = np.random.default_rng(seed)
    same = rng.random(60) < 0.5
    d = np.where(same, rng.gamma(2, 0.3, 60), rng.gamma(4, 0.3, 60)).round(2)   # .round: ties
    tau = A.choose_threshold(d, same)
    # Exhaustive: every distance itself and a point below the smallest.
    candidates = np.concatenate([[d.min() / 2], np.unique(d)])
    best = max(accuracy(d, same, t) for t in candidates)
    assert accuracy(d, same, tau) == best


def test_embedder_identifies_and_rejects_strangers():
    # Three identities at the corners of a triangle, unit apart-ish, τ = 0.5.
    db = np.array([[0, 0], [1, 0], [0, 1.0]])
    faces = cn.applications.Embedder(threshold=0.5, unknown="unknown")
    faces.enrol(["ana", "bo", "cy"], db)
    queries = np.array([[0.1, 0.1], [0.9, -0.2], [0.05, 1.3], [3, 3.0], [0.5, 0.5]])
    ids, dist = faces.identify(queries)
    assert list(ids) == ["ana", "bo", "cy", "unknown", "unknown"]
    np.testing.assert_allclose(dist, [np.hypot(0.1, 0.1), np.hypot(0.1, 0.2), np.hypot(0.05, 0.3),
                                      np.hypot(2, 3), np.hypot(0.5, 0.5)])
    # The course's verify: is this the claimed person? d ≤ τ.
    dist, match = faces.verify(queries[:3], ["ana", "cy", "cy"])
    np.testing.assert_array_equal(match, [True, False, True])
    # A second enrolment of an identity: the nearest one counts.
    faces.enrol(["bo"], [[3, 3.2]])
    ids, dist = faces.identify(queries[3:4])
    assert ids[0] == "bo" and dist[0] == pytest.approx(0.2)


def test_embedder_runs_the_model():
    # The model maps inputs (N, 4) to encodings: here a fixed linear map, as a
    # cn.Model and as a plain callable.
    L = cn.layers
    model = cn.Sequential([L.Input((4,)), L.Dense(2, use_bias=False)])
    model.set_weights([np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32)])   # (units, inputs)
    x = np.array([[0, 0, 7, 7], [1, 0, -3, 2], [0, 1, 5, 5]], np.float32)
    for encoder in (model, lambda batch: batch[:, :2]):
        faces = cn.applications.Embedder(encoder, threshold=0.2, unknown=-1)
        faces.enrol([10, 20, 30], x)
        ids, dist = faces.identify(np.array([[1, 0.1, 0, 0], [5, 5, 5, 5]], np.float32))
        assert list(ids) == [20, -1]
        assert dist[0] == pytest.approx(0.1, rel=1e-6)


@pytest.mark.parametrize("call, match", [
    (lambda: A.distance(np.zeros((2, 3)), np.zeros((2, 4))), r"distance: e2 must have the shape of e1"),
    (lambda: A.distance(np.zeros(3), np.zeros(3)), r"distance: e1 must have shape \(N, D\)"),
    (lambda: A.choose_threshold([], []), r"choose_threshold: distances must have shape \(N,\) with N >= 1"),
    (lambda: A.choose_threshold([0.1, 0.2], [1]), r"choose_threshold: same must have shape"),
    (lambda: A.choose_threshold([0.1, np.nan], [1, 0]), r"choose_threshold: distances must be finite"),
    (lambda: A.choose_threshold([0.1, -0.2], [1, 0]), r"choose_threshold: distances must be finite and >= 0"),
    (lambda: A.choose_threshold([0.1, 0.2], [1, 2]), r"choose_threshold: same must hold only 0/1"),
    (lambda: A.Embedder(threshold=-1), r"Embedder: threshold"),
    (lambda: A.Embedder().identify(np.zeros((1, 2))), r"Embedder.identify: no identity enrolled"),
    (lambda: A.Embedder().enrol(["a"], np.zeros((2, 2))), r"Embedder.enrol: names must hold one name per input"),
    (lambda: A.Embedder().enrol(["a"], np.full((1, 2), np.nan)), r"Embedder: encodings contains NaN"),
    (lambda: A.Embedder().enrol(["a"], np.zeros((1, 2))).identify(np.zeros((1, 3))),
     r"Embedder: encodings must have 2 columns"),
    (lambda: A.Embedder().enrol(["a"], np.zeros((1, 2))).verify(np.zeros((1, 2)), ["b"]),
     r"Embedder.verify: 'b' is not enrolled"),
])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
