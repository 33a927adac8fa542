"""The recurrent kernels' recurrent_mask (recurrent dropout, one mask per
sequence): a fixed (N, H) mask r of 0 or 1/(1 − rate) multiplies h_{t-1} in
the recurrent products only. Parity with the step-by-step NumPy reference
(tests/reference/recurrent.py) in float32 and float64, fast and naive, with
and without step masks and initial states; fast against naive when threads
split the work; finite differences with the mask held fixed; bad masks."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import recurrent as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close
from test_recurrent import SPLIT_SHAPES, _f64, _states, _weights, gid

ops = cn.ops
SHAPES = [(1, 1, 1, 1), (3, 1, 5, 4), (1, 6, 4, 3), (2, 5, 3, 7), (4, 3, 9, 5)]
RATE = 0.4


def recurrent_mask(N, H, dtype, rng):
    """0 or 1/(1 − rate), with at least one unit dropped and, but for one unit, one kept."""
    keep = rng.uniform(size=(N, H)) >= RATE
    keep.flat[-1] = True
    keep.flat[0] = False
    return (keep / (1 - RATE)).astype(dtype)


def step_mask(N, T, rng):
    m = rng.uniform(size=(N, T)) > 0.3
    m[:, 0] = True
    return m


def run(kind, x, w, s, r, mask, dy, dh_T, dc_T, naive):
    """(outputs, gradients) of the kernel pair."""
    if kind == "lstm":
        y, h, c, cache = ops.lstm_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"], mask=mask,
                                          recurrent_mask=r, naive=naive)
        grads = ops.lstm_backward(dy, dh_T, dc_T, x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"], cache,
                                  mask=mask, recurrent_mask=r, naive=naive)
        return (y, h, c), grads
    if kind == "rnn":
        y, h, cache = ops.simple_rnn_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], mask=mask,
                                             recurrent_mask=r, naive=naive)
        grads = ops.simple_rnn_backward(dy, dh_T, x, w["W_ih"], w["W_hh"], w["b"], s["h0"], cache, mask=mask,
                                        recurrent_mask=r, naive=naive)
        return (y, h), grads
    y, h, cache = ops.gru_forward(x, w["W_ih"], w["W_hh"], w["b"], w["recurrent_bias"], s["h0"], mask=mask,
                                  recurrent_mask=r, naive=naive)
    grads = ops.gru_backward(dy, dh_T, x, w["W_ih"], w["W_hh"], w["b"], w["recurrent_bias"], s["h0"], cache,
                             mask=mask, recurrent_mask=r, naive=naive)
    return (y, h), grads


def reference(kind, x, w, s, r, mask, dy, dh_T, dc_T):
    x, w, s, r = x.astype(np.float64), _f64(w), _f64(s), r.astype(np.float64)
    dy, dh_T, dc_T = (a.astype(np.float64) for a in (dy, dh_T, dc_T))
    if kind == "lstm":
        y, h, c, steps = ref.lstm_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"], mask, r)
        return (y, h, c), ref.lstm_backward(dy, dh_T, dc_T, x, w["W_ih"], w["W_hh"], steps)
    if kind == "rnn":
        y, h = ref.simple_rnn_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], mask, r)
        return (y, h), ref.simple_rnn_backward(dy, dh_T, x, w["W_ih"], w["W_hh"], s["h0"], y, mask, r)
    y, h, steps = ref.gru_forward(x, w["W_ih"], w["W_hh"], w["b"], w["recurrent_bias"], s["h0"], mask, r)
    return (y, h), ref.gru_backward(dy, dh_T, x, w["W_ih"], w["W_hh"], steps)


def inputs(kind, shape, dtype, given, masked, rng):
    N, T, F, H = shape
    x = rng.standard_normal((N, T, F)).astype(dtype)
    w, s = _weights(kind, F, H, dtype, rng), _states(kind, N, H, dtype, rng, given)
    r = recurrent_mask(N, H, dtype, rng)
    mask = step_mask(N, T, rng) if masked else None
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    dh_T, dc_T = (rng.standard_normal((N, H)).astype(dtype) for _ in range(2))
    return x, w, s, r, mask, dy, dh_T, dc_T


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("masked", [False, True], ids=["all_steps", "step_mask"])
@pytest.mark.parametrize("given", [True, False], ids=["states", "zero_states"])
@pytest.mark.parametrize("shape", SHAPES, ids=gid)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_matches_reference(kind, shape, dtype, given, masked, naive, rng):
    args = inputs(kind, shape, dtype, given, masked, rng)
    x, w, s, r, mask, dy, dh_T, dc_T = args
    outs, grads = run(kind, x, w, s, r, mask, dy, dh_T, dc_T, naive)
    want_outs, want_grads = reference(kind, x, w, s, r, mask, dy, dh_T, dc_T)
    for got, want in zip(outs + tuple(grads), tuple(want_outs) + tuple(want_grads)):
        assert got.dtype == dtype
        assert_close(got, want, op=f"{kind}_recurrent_dropout")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_the_mask_changes_the_result_and_ones_do_not(kind, rng):
    """A mask of ones is no dropout, bit for bit; a dropping mask changes y
    (so the parity above cannot pass by ignoring it)."""
    x, w, s, r, mask, dy, dh_T, dc_T = inputs(kind, (3, 4, 5, 6), np.float64, True, False, rng)
    plain = run(kind, x, w, s, None, mask, dy, dh_T, dc_T, False)
    ones = run(kind, x, w, s, np.ones_like(r), mask, dy, dh_T, dc_T, False)
    dropped = run(kind, x, w, s, r, mask, dy, dh_T, dc_T, False)
    for a, b in zip(plain[0] + tuple(plain[1]), ones[0] + tuple(ones[1])):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(plain[0][0], dropped[0][0])


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("shape", SPLIT_SHAPES, ids=gid)
def test_fast_matches_naive_when_threads_split_the_work(kind, shape, rng):
    args = inputs(kind, shape, np.float32, True, True, rng)
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(2)
        fast = run(kind, *args, False)
        cn.set_num_threads(1)
        one_thread = run(kind, *args, False)
    finally:
        cn.set_num_threads(before)
    naive = run(kind, *args, True)
    for got2, got1, want in zip(fast[0] + tuple(fast[1]), one_thread[0] + tuple(one_thread[1]),
                                naive[0] + tuple(naive[1])):
        assert_close(got2, want, op=f"{kind}_recurrent_dropout_fast_vs_naive")
        assert_close(got1, want, op=f"{kind}_recurrent_dropout_fast_vs_naive")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("naive", [False, True])
def test_gradients_match_finite_differences_with_the_mask_fixed(kind, naive, rng):
    N, T, F, H = 2, 4, 3, 3
    x, w, s, r, mask, _, _, _ = inputs(kind, (N, T, F, H), np.float64, True, True, rng)
    P = dict(y=projection((N, T, H), 1), h=projection((N, H), 2), c=projection((N, H), 3))

    def scalar():
        outs, _ = run(kind, x, w, s, r, mask, P["y"], P["h"], P["c"], naive)
        return sum(np.sum(p * o) for p, o in zip((P["y"], P["h"], P["c"]), outs))

    _, grads = run(kind, x, w, s, r, mask, P["y"], P["h"], P["c"], naive)
    values = [x, w["W_ih"], w["W_hh"], w["b"]] + ([w["recurrent_bias"]] if kind == "gru" else [])
    values += [s["h0"]] + ([s["c0"]] if kind == "lstm" else [])
    for value, grad in zip(values, grads):
        numeric = numerical_gradient(scalar, value)
        assert relative_difference(grad, numeric) < GRADCHECK_THRESHOLD


def test_bad_recurrent_masks(rng):
    x, w, s, r, *_ = inputs("lstm", (2, 3, 4, 5), np.float32, False, False, rng)
    with pytest.raises(ValueError, match=r"lstm_forward: recurrent_mask must have shape \(2, 5\)"):
        ops.lstm_forward(x, w["W_ih"], w["W_hh"], w["b"], recurrent_mask=r[:, :4])
    with pytest.raises(TypeError, match=r"recurrent_mask"):
        ops.simple_rnn_forward(x, w["W_ih"][:5], w["W_hh"][:5, :], w["b"][:5], recurrent_mask=r.astype(np.float64))
