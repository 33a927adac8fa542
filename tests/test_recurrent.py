"""SimpleRNN, LSTM and GRU kernels over whole sequences: parity with the step-by-step
NumPy reference (forward and backward through time), fast against naive,
finite-difference gradients of every output, PyTorch when it is installed,
and the errors of bad input."""

import threading

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import recurrent as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

ops = cn.ops

# (N, T, F, H): one step of one unit, a single step, batch 1, odd sizes, more
# units than features and the reverse.
SHAPES = [(1, 1, 1, 1), (3, 1, 5, 4), (1, 6, 4, 3), (2, 5, 3, 7), (4, 3, 9, 5)]


def gid(v):
    return str(v).replace(" ", "")


def _weights(kind, F, H, dtype, rng):
    G = {"rnn": 1, "lstm": 4, "gru": 3}[kind]
    # Scaled like PyTorch's default U(-1/√H, 1/√H), wider, so gates leave their linear range.
    s = 1.5 / np.sqrt(H)
    w = dict(W_ih=rng.uniform(-s, s, (G * H, F)), W_hh=rng.uniform(-s, s, (G * H, H)),
             b=rng.uniform(-s, s, G * H))
    if kind == "gru":
        w["recurrent_bias"] = rng.uniform(-s, s, G * H)
    return {k: v.astype(dtype) for k, v in w.items()}


def _states(kind, N, H, dtype, rng, given):
    names = ["h0", "c0"] if kind == "lstm" else ["h0"]
    return {n: (rng.standard_normal((N, H)) * 0.5).astype(dtype) if given else None for n in names}


def _f64(d):
    return {k: None if v is None else v.astype(np.float64) for k, v in d.items()}


def _lstm_all(x, w, s, dy, dh_T, dc_T, naive, mask=None):
    y, h, c, cache = ops.lstm_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"], mask=mask, naive=naive)
    grads = ops.lstm_backward(dy, dh_T, dc_T, x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"], cache,
                              mask=mask, naive=naive)
    return (y, h, c), grads


def _rnn_all(x, w, s, dy, dh_T, naive, mask=None):
    y, h, cache = ops.simple_rnn_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], mask=mask, naive=naive)
    grads = ops.simple_rnn_backward(dy, dh_T, x, w["W_ih"], w["W_hh"], w["b"], s["h0"], cache, mask=mask,
                                    naive=naive)
    return (y, h), grads


def _gru_all(x, w, s, dy, dh_T, naive, mask=None):
    y, h, cache = ops.gru_forward(x, w["W_ih"], w["W_hh"], w["b"], w["recurrent_bias"], s["h0"], mask=mask,
                                  naive=naive)
    grads = ops.gru_backward(dy, dh_T, x, w["W_ih"], w["W_hh"], w["b"], w["recurrent_bias"], s["h0"], cache,
                             mask=mask, naive=naive)
    return (y, h), grads


# ---------------------------------------------------------------- parity with the reference

@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("given", [True, False], ids=["states", "zero_states"])
@pytest.mark.parametrize("shape", SHAPES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_simple_rnn_matches_reference(shape, dtype, given, naive, rng):
    N, T, F, H = shape
    x = rng.standard_normal((N, T, F)).astype(dtype)
    w, s = _weights("rnn", F, H, dtype, rng), _states("rnn", N, H, dtype, rng, given)
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    dh_T = rng.standard_normal((N, H)).astype(dtype)
    outs, grads = _rnn_all(x, w, s, dy, dh_T, naive)
    w64, s64 = _f64(w), _f64(s)
    y, h = ref.simple_rnn_forward(x.astype(np.float64), w64["W_ih"], w64["W_hh"], w64["b"], s64["h0"])
    for got, want, what in zip(outs, (y, h), ("y", "h_T")):
        assert got.dtype == dtype
        assert_close(got, want, op="simple_rnn_forward", what=what)
    want = ref.simple_rnn_backward(dy.astype(np.float64), dh_T.astype(np.float64), x, w64["W_ih"], w64["W_hh"],
                                   s64["h0"], y)
    for got, exp, what in zip(grads, want, ("dx", "dW_ih", "dW_hh", "db", "dh0")):
        assert got.dtype == dtype
        assert_close(got, exp, op="simple_rnn_backward", what=what)


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("given", [True, False], ids=["states", "zero_states"])
@pytest.mark.parametrize("shape", SHAPES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_lstm_matches_reference(shape, dtype, given, naive, rng):
    N, T, F, H = shape
    x = rng.standard_normal((N, T, F)).astype(dtype)
    w, s = _weights("lstm", F, H, dtype, rng), _states("lstm", N, H, dtype, rng, given)
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    dh_T, dc_T = (rng.standard_normal((N, H)).astype(dtype) for _ in range(2))
    outs, grads = _lstm_all(x, w, s, dy, dh_T, dc_T, naive)
    w64, s64 = _f64(w), _f64(s)
    y, h, c, steps = ref.lstm_forward(x.astype(np.float64), w64["W_ih"], w64["W_hh"], w64["b"], s64["h0"], s64["c0"])
    for got, want, what in zip(outs, (y, h, c), ("y", "h_T", "c_T")):
        assert got.dtype == dtype
        assert_close(got, want, op="lstm_forward", what=what)
    want = ref.lstm_backward(dy.astype(np.float64), dh_T.astype(np.float64), dc_T.astype(np.float64),
                             x, w64["W_ih"], w64["W_hh"], steps)
    for got, exp, what in zip(grads, want, ("dx", "dW_ih", "dW_hh", "db", "dh0", "dc0")):
        assert got.dtype == dtype
        assert_close(got, exp, op="lstm_backward", what=what)


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("given", [True, False], ids=["states", "zero_states"])
@pytest.mark.parametrize("shape", SHAPES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_gru_matches_reference(shape, dtype, given, naive, rng):
    N, T, F, H = shape
    x = rng.standard_normal((N, T, F)).astype(dtype)
    w, s = _weights("gru", F, H, dtype, rng), _states("gru", N, H, dtype, rng, given)
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    dh_T = rng.standard_normal((N, H)).astype(dtype)
    outs, grads = _gru_all(x, w, s, dy, dh_T, naive)
    w64, s64 = _f64(w), _f64(s)
    y, h, steps = ref.gru_forward(x.astype(np.float64), w64["W_ih"], w64["W_hh"], w64["b"],
                                  w64["recurrent_bias"], s64["h0"])
    for got, want, what in zip(outs, (y, h), ("y", "h_T")):
        assert got.dtype == dtype
        assert_close(got, want, op="gru_forward", what=what)
    want = ref.gru_backward(dy.astype(np.float64), dh_T.astype(np.float64), x, w64["W_ih"], w64["W_hh"], steps)
    for got, exp, what in zip(grads, want, ("dx", "dW_ih", "dW_hh", "db", "drecurrent_bias", "dh0")):
        assert got.dtype == dtype
        assert_close(got, exp, op="gru_backward", what=what)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_only_the_last_step_feeds_back(dtype, rng):
    """dy zero but the last step (a layer returning h_T only): the backward still
    reaches every input step, as the reference does."""
    N, T, F, H = 2, 6, 3, 4
    x = rng.standard_normal((N, T, F)).astype(dtype)
    w, s = _weights("lstm", F, H, dtype, rng), _states("lstm", N, H, dtype, rng, True)
    dy = np.zeros((N, T, H), dtype)
    dy[:, -1] = rng.standard_normal((N, H))
    _, grads = _lstm_all(x, w, s, dy, None, None, False)
    w64, s64 = _f64(w), _f64(s)
    *_, steps = ref.lstm_forward(x.astype(np.float64), w64["W_ih"], w64["W_hh"], w64["b"], s64["h0"], s64["c0"])
    want = ref.lstm_backward(dy.astype(np.float64), None, None, x, w64["W_ih"], w64["W_hh"], steps)
    assert np.all(grads[0][:, 0] != 0)
    for got, exp in zip(grads, want):
        assert_close(got, exp, op="lstm_backward")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fast_matches_naive(kind, dtype, rng):
    N, T, F, H = 5, 7, 6, 9
    x = rng.standard_normal((N, T, F)).astype(dtype)
    w, s = _weights(kind, F, H, dtype, rng), _states(kind, N, H, dtype, rng, True)
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    dh_T = rng.standard_normal((N, H)).astype(dtype)
    if kind == "lstm":
        fast = _lstm_all(x, w, s, dy, dh_T, dh_T, False)
        naive = _lstm_all(x, w, s, dy, dh_T, dh_T, True)
    elif kind == "rnn":
        fast = _rnn_all(x, w, s, dy, dh_T, False)
        naive = _rnn_all(x, w, s, dy, dh_T, True)
    else:
        fast = _gru_all(x, w, s, dy, dh_T, False)
        naive = _gru_all(x, w, s, dy, dh_T, True)
    for got, want in zip(fast[0] + fast[1], naive[0] + naive[1]):
        assert_close(got, want, op=f"{kind}_fast_vs_naive")


# (N, T, F, H) large enough that two threads split the work. By examples (at
# least 16 per thread) for the whole recurrence: an even and an odd batch
# (rows left over from the kernel's blocks of 4) with units that leave a
# partial panel (16 floats each). Below that, the forward splits each step's
# hidden units (one barrier per step, at least 2^17 multiply-adds per thread):
# batch 1, the benchmark's 256 units, and 333 and 200 units, whose panels
# (21, 13) do not divide by two threads and whose last panel is partial.
SPLIT_SHAPES = [(40, 4, 8, 48), (37, 3, 8, 49), (20, 3, 8, 64), (1, 3, 8, 256), (1, 4, 5, 333), (3, 3, 4, 200)]


def _split_mask(N, T, rng):
    """Example 0 right-padded, example 1 (if any) left-padded, the rest random."""
    m = rng.integers(0, 2, (N, T)).astype(np.uint8)
    m[0] = np.arange(T) < (T + 1) // 2
    if N > 1:
        m[1] = np.arange(T) >= T // 2
    return m


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("masked", [False, True], ids=["all_steps", "masked"])
@pytest.mark.parametrize("given", [True, False], ids=["states", "zero_states"])
@pytest.mark.parametrize("shape", SPLIT_SHAPES, ids=gid)
def test_fast_matches_naive_when_threads_split_the_work(kind, shape, given, masked, rng):
    N, T, F, H = shape
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    w, s = _weights(kind, F, H, np.float32, rng), _states(kind, N, H, np.float32, rng, given)
    dy = rng.standard_normal((N, T, H)).astype(np.float32)
    dh_T = rng.standard_normal((N, H)).astype(np.float32)
    mask = _split_mask(N, T, rng) if masked else None
    run = {"lstm": lambda naive: _lstm_all(x, w, s, dy, dh_T, dh_T, naive, mask),
           "rnn": lambda naive: _rnn_all(x, w, s, dy, dh_T, naive, mask),
           "gru": lambda naive: _gru_all(x, w, s, dy, dh_T, naive, mask)}[kind]
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(2)
        fast, again = run(False), run(False)
        cn.set_num_threads(1)
        one_thread = run(False)
    finally:
        cn.set_num_threads(before)
    naive = run(True)
    for got, got2, got1, want in zip(fast[0] + fast[1], again[0] + again[1], one_thread[0] + one_thread[1],
                                     naive[0] + naive[1]):
        assert np.array_equal(got, got2)  # the same thread count gives the same bits
        assert_close(got, want, op=f"{kind}_fast_vs_naive")
        assert_close(got1, want, op=f"{kind}_fast_vs_naive")


# ---------------------------------------------------------------- the backward's kept scratch
# The cn.ops backward kernels' scratch is one buffer per calling thread, kept
# between calls and grown to the largest call (ops_recurrent.cpp).

# (N, T, F, H), dy over every step (return_sequences) or the last only, a mask or none.
SCRATCH_CASES = {
    "big": ((33, 6, 5, 40), True, False),
    "small": ((1, 3, 2, 5), False, True),
    "odd": ((7, 4, 3, 9), True, True),
    "bigger": ((41, 5, 7, 53), False, False),
}


def _scratch_run(kind, name, dtype, naive=False):
    """Forward and backward of one case, its inputs made from its own seed."""
    (N, T, F, H), every_step, masked = SCRATCH_CASES[name]
    rng = np.random.default_rng(list(SCRATCH_CASES).index(name))
    x = rng.standard_normal((N, T, F)).astype(dtype)
    w, s = _weights(kind, F, H, dtype, rng), _states(kind, N, H, dtype, rng, True)
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    if not every_step:
        dy[:, :-1] = 0
    dh_T = rng.standard_normal((N, H)).astype(dtype)
    mask = _split_mask(N, T, rng) if masked else None
    if kind == "lstm":
        out = _lstm_all(x, w, s, dy, dh_T, dh_T, naive, mask)
    elif kind == "rnn":
        out = _rnn_all(x, w, s, dy, dh_T, naive, mask)
    else:
        out = _gru_all(x, w, s, dy, dh_T, naive, mask)
    return out[0] + out[1]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_kept_scratch_serves_shapes_in_any_order(kind, dtype):
    """Bigger, smaller (batch 1, masked), bigger again, an odd batch, then the
    biggest (the buffer grows after use): each call matches the naive kernels,
    and a repeated case gives the same bits whatever ran before it."""
    order = ["big", "small", "big", "odd", "bigger", "small", "odd"]
    got = [_scratch_run(kind, name, dtype) for name in order]
    for name, result in zip(order, got):
        for g, want in zip(result, _scratch_run(kind, name, dtype, naive=True)):
            assert_close(g, want, op=f"{kind}_fast_vs_naive")
    for name in set(order):
        first, *later = [result for n, result in zip(order, got) if n == name]
        for again in later:
            for a, b in zip(first, again):
                assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_threads_calling_at_once_get_the_serial_results(kind):
    """Four Python threads running forward + backward at once (the kernels
    release the GIL), over different shapes, get the bits one thread gets
    calling them in turn: no thread reads another's scratch."""
    names = ["big", "bigger", "odd", "small"]
    rounds = 4

    def work(i, out, errors, start=None):
        try:
            if start is not None:
                start.wait()
            out[i] = [_scratch_run(kind, names[(i + r) % len(names)], np.float32) for r in range(rounds)]
        except Exception as e:  # reported below: an assertion in a thread would be lost
            errors.append(e)

    def run(concurrently):
        out, errors = [None] * len(names), []
        start = threading.Barrier(len(names)) if concurrently else None
        threads = [threading.Thread(target=work, args=(i, out, errors, start)) for i in range(len(names))]
        for t in threads:
            t.start()
            if not concurrently:
                t.join()
        for t in threads:
            t.join()
        assert not errors
        return out

    serial, concurrent = run(False), run(True)
    for want_runs, got_runs in zip(serial, concurrent):
        for want, got in zip(want_runs, got_runs):
            for w, g in zip(want, got):
                assert np.array_equal(g, w)


# ---------------------------------------------------------------- gradient checks

@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("naive", [False, True])
def test_gradients_match_finite_differences(kind, naive, rng):
    """The scalar <P_y, y> + <P_h, h_T> (+ <P_c, c_T>) by central differences wrt
    x, every initial state and every weight."""
    N, T, F, H = 2, 4, 3, 3
    x = rng.standard_normal((N, T, F))
    w, s = _weights(kind, F, H, np.float64, rng), _states(kind, N, H, np.float64, rng, True)
    P = dict(y=projection((N, T, H), 1), h=projection((N, H), 2), c=projection((N, H), 3))

    def scalar():
        if kind == "lstm":
            y, h, c, _ = ops.lstm_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"], naive=naive)
            return np.sum(P["y"] * y) + np.sum(P["h"] * h) + np.sum(P["c"] * c)
        if kind == "rnn":
            y, h, _ = ops.simple_rnn_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], naive=naive)
            return np.sum(P["y"] * y) + np.sum(P["h"] * h)
        y, h, _ = ops.gru_forward(x, w["W_ih"], w["W_hh"], w["b"], w["recurrent_bias"], s["h0"], naive=naive)
        return np.sum(P["y"] * y) + np.sum(P["h"] * h)

    if kind == "lstm":
        _, (dx, dW_ih, dW_hh, db, dh0, dc0) = _lstm_all(x, w, s, P["y"], P["h"], P["c"], naive)
        analytic = dict(x=(x, dx), W_ih=(w["W_ih"], dW_ih), W_hh=(w["W_hh"], dW_hh), b=(w["b"], db),
                        h0=(s["h0"], dh0), c0=(s["c0"], dc0))
    elif kind == "rnn":
        _, (dx, dW_ih, dW_hh, db, dh0) = _rnn_all(x, w, s, P["y"], P["h"], naive)
        analytic = dict(x=(x, dx), W_ih=(w["W_ih"], dW_ih), W_hh=(w["W_hh"], dW_hh), b=(w["b"], db),
                        h0=(s["h0"], dh0))
    else:
        _, (dx, dW_ih, dW_hh, db, drb, dh0) = _gru_all(x, w, s, P["y"], P["h"], naive)
        analytic = dict(x=(x, dx), W_ih=(w["W_ih"], dW_ih), W_hh=(w["W_hh"], dW_hh), b=(w["b"], db),
                        recurrent_bias=(w["recurrent_bias"], drb), h0=(s["h0"], dh0))
    for name, (value, grad) in analytic.items():
        numeric = numerical_gradient(scalar, value)
        assert relative_difference(grad, numeric) < GRADCHECK_THRESHOLD, name


# ---------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_matches_torch(kind, rng):
    torch = pytest.importorskip("torch", reason="the PyTorch oracle needs torch")
    N, T, F, H = 3, 5, 4, 6
    x = rng.standard_normal((N, T, F))
    w, s = _weights(kind, F, H, np.float64, rng), _states(kind, N, H, np.float64, rng, True)
    module = dict(rnn=torch.nn.RNN, lstm=torch.nn.LSTM, gru=torch.nn.GRU)[kind](F, H, batch_first=True).double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(w["W_ih"]))
        module.weight_hh_l0.copy_(torch.from_numpy(w["W_hh"]))
        module.bias_ih_l0.copy_(torch.from_numpy(w["b"]))
        # One SimpleRNN/LSTM bias in corenn = bias_ih + bias_hh; the GRU keeps both.
        module.bias_hh_l0.copy_(torch.from_numpy(w.get("recurrent_bias", np.zeros_like(w["b"]))))
    xt = torch.from_numpy(x).requires_grad_()
    h0 = torch.from_numpy(s["h0"][None]).requires_grad_()
    dy, dh = rng.standard_normal((N, T, H)), rng.standard_normal((N, H))
    if kind == "lstm":
        c0 = torch.from_numpy(s["c0"][None]).requires_grad_()
        yt, (ht, ct) = module(xt, (h0, c0))
        dc = rng.standard_normal((N, H))
        torch.autograd.backward([yt, ht, ct], [torch.from_numpy(dy), torch.from_numpy(dh[None]),
                                               torch.from_numpy(dc[None])])
        outs, grads = _lstm_all(x, w, s, dy, dh, dc, False)
        want_outs = (yt, ht[0], ct[0])
        want_grads = (xt.grad, module.weight_ih_l0.grad, module.weight_hh_l0.grad, module.bias_ih_l0.grad,
                      h0.grad[0], c0.grad[0])
    else:
        yt, ht = module(xt, h0)
        torch.autograd.backward([yt, ht], [torch.from_numpy(dy), torch.from_numpy(dh[None])])
        outs, grads = (_gru_all if kind == "gru" else _rnn_all)(x, w, s, dy, dh, False)
        want_outs = (yt, ht[0])
        want_grads = (xt.grad, module.weight_ih_l0.grad, module.weight_hh_l0.grad, module.bias_ih_l0.grad)
        want_grads += (module.bias_hh_l0.grad, h0.grad[0]) if kind == "gru" else (h0.grad[0],)
    for got, want in zip(outs + grads, want_outs + want_grads):
        assert_close(got, want.detach().numpy(), op=f"{kind}_torch")


# ---------------------------------------------------------------- errors

def _lstm_args(rng, N=2, T=3, F=4, H=5):
    x = rng.standard_normal((N, T, F))
    return dict(x=x, W_ih=np.zeros((4 * H, F)), W_hh=np.zeros((4 * H, H)), b=np.zeros(4 * H))


@pytest.mark.parametrize("change, match", [
    (dict(x=np.zeros((2, 3))), r"lstm_forward: x must be 3-D \(batch, steps, features\), got shape \(2, 3\)"),
    (dict(x=np.zeros((2, 0, 4))), r"lstm_forward: x must have positive dimensions, got shape \(2, 0, 4\)"),
    (dict(W_hh=np.zeros((20, 4))), r"lstm_forward: W_hh must have shape \(16, 4\), got \(20, 4\)"),
    (dict(W_ih=np.zeros((20, 3))), r"lstm_forward: W_ih must have shape \(20, 4\), got \(20, 3\)"),
    (dict(b=np.zeros(5)), r"lstm_forward: b must have shape \(20,\), got \(5,\)"),
    (dict(h0=np.zeros((3, 5))), r"lstm_forward: h0 must have shape \(2, 5\), got \(3, 5\)"),
    (dict(c0=np.zeros((2, 4))), r"lstm_forward: c0 must have shape \(2, 5\), got \(2, 4\)"),
])
def test_lstm_forward_rejects_bad_shapes(change, match, rng):
    args = {**_lstm_args(rng), **change}
    with pytest.raises(ValueError, match=match):
        ops.lstm_forward(**args)


def test_rejects_bad_dtypes_and_cache(rng):
    a = _lstm_args(rng)
    with pytest.raises(TypeError, match=r"lstm_forward: W_hh must have the dtype of x \(float64\), got float32"):
        ops.lstm_forward(a["x"], a["W_ih"], a["W_hh"].astype(np.float32), a["b"])
    with pytest.raises(TypeError, match=r"lstm_forward: x must be float32 or float64, got int64"):
        ops.lstm_forward(a["x"].astype(np.int64), a["W_ih"], a["W_hh"], a["b"])
    y, h, c, cache = ops.lstm_forward(**a)
    n = cache.size  # the kernel's workspace and y
    with pytest.raises(ValueError, match=rf"lstm_backward: cache must have shape \({n},\), got \({n - 1},\)"):
        ops.lstm_backward(y, None, None, a["x"], a["W_ih"], a["W_hh"], a["b"], None, None, cache[1:])
    with pytest.raises(ValueError, match=r"lstm_backward: dy must have shape \(2, 3, 5\), got \(2, 5\)"):
        ops.lstm_backward(h, None, None, a["x"], a["W_ih"], a["W_hh"], a["b"], None, None, cache)
    x = a["x"]
    with pytest.raises(ValueError, match=r"gru_forward: W_ih must have shape \(15, 4\), got \(20, 4\)"):
        ops.gru_forward(x, a["W_ih"], np.zeros((15, 5)), np.zeros(15), np.zeros(15))
    with pytest.raises(ValueError, match=r"gru_forward: recurrent_bias must have shape \(15,\), got \(20,\)"):
        ops.gru_forward(x, np.zeros((15, 4)), np.zeros((15, 5)), np.zeros(15), np.zeros(20))
    with pytest.raises(TypeError, match=r"gru_forward: b must be an array, got NoneType"):
        ops.gru_forward(x, np.zeros((15, 4)), np.zeros((15, 5)), None, np.zeros(15))
    with pytest.raises(ValueError, match=r"simple_rnn_forward: W_hh must have shape \(5, 5\), got \(20, 5\)"):
        ops.simple_rnn_forward(x, np.zeros((5, 4)), a["W_hh"], np.zeros(5))
    y, h, cache = ops.simple_rnn_forward(x, np.zeros((5, 4)), np.zeros((5, 5)), np.zeros(5))
    with pytest.raises(ValueError, match=r"simple_rnn_backward: h0 must have shape \(2, 5\), got \(5,\)"):
        ops.simple_rnn_backward(y, None, x, np.zeros((5, 4)), np.zeros((5, 5)), np.zeros(5), np.zeros(5), cache)


def test_strided_and_read_only_inputs(rng):
    """Views and read-only arrays are read through one contiguous copy: same results."""
    N, T, F, H = 2, 4, 3, 5
    big = rng.standard_normal((N, T, 2 * F))
    x = big[:, :, ::2]
    w, s = _weights("lstm", F, H, np.float64, rng), _states("lstm", N, H, np.float64, rng, True)
    for v in list(w.values()) + list(s.values()):
        v.flags.writeable = False
    y1 = ops.lstm_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"])[0]
    y2 = ops.lstm_forward(np.ascontiguousarray(x), w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"])[0]
    np.testing.assert_array_equal(y1, y2)
