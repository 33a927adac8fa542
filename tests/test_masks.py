"""Masks of sequences, end to end (Keras's semantics): the recurrent kernels
with a step mask against the NumPy reference, PyTorch's packed sequences and
finite differences; the masked sequence loss; Embedding(mask_zero=True) and
Masking reaching the recurrent layers and the loss through the graph engine;
model files; bad input."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import loss as loss_ref
from reference import recurrent as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close, tolerance

ops = cn.ops
L = cn.layers

KINDS = ["rnn", "lstm", "gru"]
GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# (N, T, F, H): one step of one unit, a single step, batch 1, odd sizes.
SHAPES = [(1, 1, 1, 1), (3, 1, 5, 4), (1, 6, 4, 3), (4, 5, 3, 7), (5, 3, 9, 5)]


def gid(v):
    return str(v).replace(" ", "")


def step_mask(N, T, rng):
    """Row 0 right-padded, row 1 left-padded, row 2 all masked, the rest random;
    a batch of one is right-padded (with T = 1: its one step valid)."""
    m = rng.integers(0, 2, (N, T)).astype(np.uint8)
    m[0] = np.arange(T) < max(1, (T + 1) // 2)
    if N > 1:
        m[1] = np.arange(T) >= T // 2
    if N > 2:
        m[2] = 0
    return m


def weights(kind, F, H, dtype, rng):
    s = 1.5 / np.sqrt(H)
    G = GATES[kind]
    w = dict(W_ih=rng.uniform(-s, s, (G * H, F)), W_hh=rng.uniform(-s, s, (G * H, H)), b=rng.uniform(-s, s, G * H))
    if kind == "gru":
        w["rb"] = rng.uniform(-s, s, G * H)
    return {k: v.astype(dtype) for k, v in w.items()}


def states(kind, N, H, dtype, rng, given):
    names = ["h0", "c0"] if kind == "lstm" else ["h0"]
    return {n: (rng.standard_normal((N, H)) * 0.5).astype(dtype) if given else None for n in names}


def run(kind, x, w, s, dy, dstates, mask, naive=False):
    """((outputs), (gradients)) of the kernel pair, as the ops return them."""
    if kind == "lstm":
        y, h, c, cache = ops.lstm_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"], mask=mask, naive=naive)
        grads = ops.lstm_backward(dy, dstates[0], dstates[1], x, w["W_ih"], w["W_hh"], w["b"], s["h0"], s["c0"],
                                  cache, mask=mask, naive=naive)
        return (y, h, c), grads
    if kind == "rnn":
        y, h, cache = ops.simple_rnn_forward(x, w["W_ih"], w["W_hh"], w["b"], s["h0"], mask=mask, naive=naive)
        grads = ops.simple_rnn_backward(dy, dstates[0], x, w["W_ih"], w["W_hh"], w["b"], s["h0"], cache, mask=mask,
                                        naive=naive)
        return (y, h), grads
    y, h, cache = ops.gru_forward(x, w["W_ih"], w["W_hh"], w["b"], w["rb"], s["h0"], mask=mask, naive=naive)
    grads = ops.gru_backward(dy, dstates[0], x, w["W_ih"], w["W_hh"], w["b"], w["rb"], s["h0"], cache, mask=mask,
                             naive=naive)
    return (y, h), grads


def reference(kind, x, w, s, dy, dstates, mask):
    f = {k: None if v is None else v.astype(np.float64) for k, v in {**w, **s}.items()}
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    d = [None if v is None else v.astype(np.float64) for v in dstates]
    if kind == "lstm":
        y, h, c, steps = ref.lstm_forward(x, f["W_ih"], f["W_hh"], f["b"], f["h0"], f["c0"], mask=mask)
        return (y, h, c), ref.lstm_backward(dy, d[0], d[1], x, f["W_ih"], f["W_hh"], steps)
    if kind == "rnn":
        y, h = ref.simple_rnn_forward(x, f["W_ih"], f["W_hh"], f["b"], f["h0"], mask=mask)
        return (y, h), ref.simple_rnn_backward(dy, d[0], x, f["W_ih"], f["W_hh"], f["h0"], y, mask=mask)
    y, h, steps = ref.gru_forward(x, f["W_ih"], f["W_hh"], f["b"], f["rb"], f["h0"], mask=mask)
    return (y, h), ref.gru_backward(dy, d[0], x, f["W_ih"], f["W_hh"], steps)


def case(kind, shape, dtype, given, rng):
    N, T, F, H = shape
    x = rng.standard_normal((N, T, F)).astype(dtype)
    w, s = weights(kind, F, H, dtype, rng), states(kind, N, H, dtype, rng, given)
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    dstates = [rng.standard_normal((N, H)).astype(dtype) for _ in range(2 if kind == "lstm" else 1)]
    return x, w, s, dy, dstates, step_mask(N, T, rng)


# ---------------------------------------------------------------- kernels

@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("given", [True, False], ids=["states", "zero_states"])
@pytest.mark.parametrize("shape", SHAPES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_masked_kernels_match_reference(kind, dtype, shape, given, naive, rng):
    x, w, s, dy, dstates, mask = case(kind, shape, dtype, given, rng)
    outs, grads = run(kind, x, w, s, dy, dstates, mask, naive)
    want_outs, want_grads = reference(kind, x, w, s, dy, dstates, mask)
    for got, want in zip(outs + tuple(grads), want_outs + tuple(want_grads)):
        assert got.dtype == dtype
        assert_close(got, want, op=f"{kind}_masked")


@pytest.mark.parametrize("kind", KINDS)
def test_masked_steps_carry_the_state_and_get_no_gradient(kind, rng):
    x, w, s, dy, dstates, mask = case(kind, (4, 5, 3, 6), np.float64, True, rng)
    (y, h, *c), (dx, *_) = run(kind, x, w, s, dy, dstates, mask)
    for n in range(4):
        for t in range(5):
            if not mask[n, t]:
                before = y[n, t - 1] if t > 0 else s["h0"][n]
                assert np.array_equal(y[n, t], before)  # carried bit for bit
                assert np.all(dx[n, t] == 0)
    # The all-masked row keeps its initial states and passes dh_T (and dc_T) to dh0 (dc0).
    assert np.array_equal(h[2], s["h0"][2])
    grads = run(kind, x, w, s, dy, dstates, mask)[1]
    assert_close(grads[-2 if kind == "lstm" else -1][2], dstates[0][2] + dy[2].sum(axis=0), op=f"{kind}_masked")


@pytest.mark.parametrize("kind", KINDS)
def test_bool_mask_equals_integer_mask_and_full_mask_equals_none(kind, rng):
    x, w, s, dy, dstates, mask = case(kind, (3, 4, 2, 5), np.float32, True, rng)
    a = run(kind, x, w, s, dy, dstates, mask)
    b = run(kind, x, w, s, dy, dstates, mask.astype(bool))
    for u, v in zip(a[0] + tuple(a[1]), b[0] + tuple(b[1])):
        assert np.array_equal(u, v)
    full = run(kind, x, w, s, dy, dstates, np.ones((3, 4), np.int64))
    none = run(kind, x, w, s, dy, dstates, None)
    for u, v in zip(full[0] + tuple(full[1]), none[0] + tuple(none[1])):
        assert np.array_equal(u, v)


@pytest.mark.parametrize("kind", KINDS)
def test_masked_fast_matches_naive_when_threads_split_the_work(kind, rng):
    x, w, s, dy, dstates, _ = case(kind, (40, 4, 8, 48), np.float32, True, rng)
    mask = (rng.random((40, 4)) < 0.6).astype(np.uint8)
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(2)
        fast = run(kind, x, w, s, dy, dstates, mask)
    finally:
        cn.set_num_threads(before)
    naive = run(kind, x, w, s, dy, dstates, mask, naive=True)
    for got, want in zip(fast[0] + tuple(fast[1]), naive[0] + tuple(naive[1])):
        assert_close(got, want, op=f"{kind}_fast_vs_naive")


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_masked_gradients_match_finite_differences(kind, naive, rng):
    N, T, F, H = 3, 5, 3, 3
    x, w, s, _, _, mask = case(kind, (N, T, F, H), np.float64, True, rng)
    P = [projection((N, T, H), 1), projection((N, H), 2), projection((N, H), 3)]

    def scalar():
        outs = run(kind, x, w, s, P[0], P[1:3] if kind == "lstm" else P[1:2], mask, naive)[0]
        return sum(np.sum(p * o) for p, o in zip(P, outs))

    _, grads = run(kind, x, w, s, P[0], P[1:3] if kind == "lstm" else P[1:2], mask, naive)
    values = [x, w["W_ih"], w["W_hh"], w["b"]] + ([w["rb"]] if kind == "gru" else []) + [s["h0"]]
    values += [s["c0"]] if kind == "lstm" else []
    for value, grad in zip(values, grads):
        numeric = numerical_gradient(scalar, value)
        assert relative_difference(grad, numeric) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_right_padded_equals_torch_packed_sequence(kind, rng):
    torch = pytest.importorskip("torch", reason="the PyTorch oracle needs torch")
    N, T, F, H = 4, 6, 3, 5
    lengths = np.array([6, 3, 1, 4])
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.uint8)
    x, w, s, dy, dstates, _ = case(kind, (N, T, F, H), np.float64, False, rng)
    outs, _ = run(kind, x, w, s, dy, dstates, mask)
    module = dict(lstm=torch.nn.LSTM, gru=torch.nn.GRU)[kind](F, H, batch_first=True).double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(w["W_ih"]))
        module.weight_hh_l0.copy_(torch.from_numpy(w["W_hh"]))
        module.bias_ih_l0.copy_(torch.from_numpy(w["b"]))
        module.bias_hh_l0.copy_(torch.from_numpy(w["rb"] if kind == "gru" else np.zeros_like(w["b"])))
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                         batch_first=True, enforce_sorted=False)
        out, final = module(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    finals = final if kind == "lstm" else (final,)
    valid = mask.astype(bool)
    assert_close(outs[0][valid], y.numpy()[valid], op=f"{kind}_vs_torch")
    for got, want in zip(outs[1:], finals):
        assert_close(got, want[0].numpy(), op=f"{kind}_vs_torch")


def test_bad_masks_are_clear_errors(rng):
    x, w, s, dy, dstates, mask = case("lstm", (2, 3, 4, 5), np.float64, True, rng)
    with pytest.raises(ValueError, match=r"lstm_forward: mask must have shape \(2, 3\), got \(3, 2\)"):
        ops.lstm_forward(x, w["W_ih"], w["W_hh"], w["b"], mask=mask.T)
    with pytest.raises(TypeError, match=r"gru_forward: mask must be bool or integer .*got float64"):
        ops.gru_forward(x, np.zeros((15, 4)), np.zeros((15, 5)), np.zeros(15), np.zeros(15),
                        mask=mask.astype(np.float64))
    with pytest.raises(ValueError, match=r"simple_rnn_forward: mask must hold 0 or 1, got 2"):
        ops.simple_rnn_forward(x, np.zeros((5, 4)), np.zeros((5, 5)), np.zeros(5), mask=mask * 2 + 0)


# ---------------------------------------------------------------- the sequence loss

def sequence_case(N, T, K, dtype, rng):
    z = (rng.standard_normal((N, T, K)) * 3).astype(dtype)
    y = rng.integers(0, K, (N, T))
    y[0, -1] = -1  # an ignored label
    return z, y, step_mask(N, T, rng)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("shape", [(1, 1, 2), (3, 5, 4), (4, 7, 9)], ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_sequence_loss_matches_reference(dtype, shape, naive, weighted, rng):
    z, y, mask = sequence_case(*shape, dtype, rng)
    s = rng.uniform(0.5, 2.0, shape[0]).astype(dtype) if weighted else None
    for m in (None, mask):
        loss, dz = ops.softmax_cross_entropy(z, y, sample_weight=s, mask=m, naive=naive)
        want_loss, want_dz = loss_ref.sequence_softmax_cross_entropy(z, y, m, s)
        assert dz.dtype == dtype and dz.shape == z.shape
        assert_close(np.float64(loss), np.float64(want_loss), dtype=dtype, op="softmax_cross_entropy")
        assert_close(dz, want_dz, op="softmax_cross_entropy")


def test_sequence_loss_gradient_matches_finite_differences(rng):
    z, y, mask = sequence_case(3, 4, 5, np.float64, rng)
    _, dz = ops.softmax_cross_entropy(z, y, mask=mask)
    numeric = numerical_gradient(lambda: ops.softmax_cross_entropy(z, y, mask=mask)[0], z)
    assert relative_difference(dz, numeric) < GRADCHECK_THRESHOLD


def test_nothing_counted_gives_zero_not_nan(rng):
    z = rng.standard_normal((2, 3, 4))
    for y, mask in ((np.full((2, 3), -1), None), (np.zeros((2, 3), np.int64), np.zeros((2, 3), bool))):
        loss, dz = ops.softmax_cross_entropy(z, y, mask=mask)
        assert loss == 0.0 and np.all(dz == 0)


def test_sequence_loss_equals_torch_ignore_index(rng):
    torch = pytest.importorskip("torch", reason="the PyTorch oracle needs torch")
    z, y, _ = sequence_case(4, 6, 5, np.float64, rng)
    y[2, :3] = -1
    loss, dz = ops.softmax_cross_entropy(z, y)
    zt = torch.from_numpy(z).requires_grad_()
    want = torch.nn.functional.cross_entropy(zt.reshape(-1, 5), torch.from_numpy(y).reshape(-1), ignore_index=-1)
    want.backward()
    assert_close(np.float64(loss), np.float64(want.item()), op="softmax_cross_entropy")
    assert_close(dz, zt.grad.numpy(), op="softmax_cross_entropy")


def test_sequence_loss_bad_input(rng):
    z = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels must have shape \(2, 3\), got \(2,\)"):
        ops.softmax_cross_entropy(z, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"label -2 at row 1 is outside \[0, 4\) and is not -1"):
        ops.softmax_cross_entropy(z, np.array([[0, -2, 1], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"label -1 at row 0 is outside \[0, 4\)"):
        ops.softmax_cross_entropy(z[:, 0], np.array([-1, 0]))  # -1 is for sequences only
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: mask needs sequence logits"):
        ops.softmax_cross_entropy(z[:, 0], np.array([1, 0]), mask=np.ones((2, 1)))


# ---------------------------------------------------------------- the graph engine

V, D, H, K = 9, 4, 5, 3
SEQUENCES = [[3, 5, 2], [1], [4, 4, 7, 8], [6, 2]]
RECURRENT = {"rnn": L.SimpleRNN, "lstm": L.LSTM, "gru": L.GRU}


def padded(sequences, T, left=False):
    x = np.zeros((len(sequences), T))
    for i, s in enumerate(sequences):
        if left:
            x[i, T - len(s):] = s
        else:
            x[i, :len(s)] = s
    return x


def id_model(T, kind="lstm", between=(), weights=None, **kwargs):
    """ids (N, T) -> Embedding(mask_zero) -> [between] -> recurrent -> Dense(K) logits, float64."""
    cn.seed(3)
    m = cn.Sequential([L.Input((T,)), L.Embedding(V, D, mask_zero=True), *between, RECURRENT[kind](H, **kwargs),
                       L.Dense(K)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    if weights is not None:
        m.set_weights(weights)
    return m


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_padding_does_not_change_predictions(kind, go_backwards):
    base = id_model(4, kind, go_backwards=go_backwards)
    w = base.get_weights()
    alone = np.concatenate([id_model(len(s), kind, weights=w, go_backwards=go_backwards).predict(np.array([s], float))
                            for s in SEQUENCES])
    for T, left in ((4, False), (7, False), (6, True)):
        got = id_model(T, kind, weights=w, go_backwards=go_backwards).predict(padded(SEQUENCES, T, left))
        assert_close(got, alone, dtype=np.float64)


def test_masks_pass_through_per_step_layers_and_stop_at_others():
    w = id_model(4).get_weights()
    alone = np.concatenate([id_model(len(s), weights=w).predict(np.array([s], float)) for s in SEQUENCES])
    for between in ([L.Dropout(0.5)], [L.Activation("linear")]):
        got = id_model(7, between=between, weights=w).predict(padded(SEQUENCES, 7))
        assert_close(got, alone, dtype=np.float64)
    # Reshape (like Flatten, pooling, convolutions) drops the mask: the padding is read.
    got = id_model(7, between=[L.Reshape((7, D))], weights=w).predict(padded(SEQUENCES, 7))
    assert np.max(np.abs(got - alone)) > 1e-3


def test_unit_normalization_of_each_step_passes_the_mask():
    def between():  # the last axis: each step's vector alone; a new layer per model
        return [L.UnitNormalization()]
    w = id_model(4, between=between()).get_weights()
    alone = np.concatenate([id_model(len(s), between=between(), weights=w).predict(np.array([s], float))
                            for s in SEQUENCES])
    got = id_model(7, between=between(), weights=w).predict(padded(SEQUENCES, 7))
    assert_close(got, alone, dtype=np.float64)


def test_weight_gradients_equal_the_unpadded_ones():
    """The batch loss is the mean over examples, so its gradients are the mean
    of each sequence's own, computed without padding."""
    w = id_model(4).get_weights()
    y = np.array([0, 2, 1, 2])
    x = padded(SEQUENCES, 7, left=False)
    x[3] = padded([SEQUENCES[3]], 7, left=True)[0]  # right and left padding in one batch
    loss, grads = id_model(7, weights=w).compute_gradients(x, y)
    alone = [id_model(len(s), weights=w).compute_gradients(np.array([s], float), y[i:i + 1])
             for i, s in enumerate(SEQUENCES)]
    assert_close(np.float64(loss), np.mean([a[0] for a in alone]), dtype=np.float64)
    for k, g in enumerate(grads):
        assert_close(g, np.mean([a[1][k] for a in alone], axis=0), dtype=np.float64)


def test_gradient_check_of_a_masked_model():
    m = id_model(6)
    assert cn.gradient_check(m, padded(SEQUENCES, 6, left=True), np.array([0, 2, 1, 2]), max_params=None) < \
        GRADCHECK_THRESHOLD


def test_go_backwards_sequences_carry_the_reversed_mask():
    cn.seed(1)
    m = cn.Sequential([L.Input((5,)), L.Embedding(V, D, mask_zero=True),
                       L.LSTM(H, return_sequences=True, go_backwards=True)], dtype="float64")
    m.build()
    x = padded(SEQUENCES, 5)
    (mask,) = m._engine.output_masks([x])
    assert np.array_equal(mask, (x != 0)[:, ::-1].astype(np.int64))
    # A layer whose output carries no mask gives None.
    m2 = cn.Sequential([L.Input((5,)), L.Embedding(V, D, mask_zero=True), L.LSTM(H)], dtype="float64")
    m2.build()
    assert m2._engine.output_masks([x]) == [None]


def test_masking_layer_zeroes_and_masks_steps(rng):
    T, F = 6, 3
    x = rng.standard_normal((4, T, F))
    x[0, 4:] = 5.0
    x[1, :2] = 5.0
    x[2] = 5.0
    x[3, 3, 0] = 5.0  # one feature only: not masked
    m = cn.Sequential([L.Input((T, F)), L.Masking(mask_value=5.0)], dtype="float64")
    m.build()
    valid = ~np.all(x == 5.0, axis=-1)
    assert np.array_equal(m.predict(x), x * valid[..., None])
    assert np.array_equal(m._engine.output_masks([x])[0], valid.astype(np.int64))
    y, pullback = m.vjp(x)
    dy = rng.standard_normal(x.shape)
    assert np.array_equal(pullback(dy), dy * valid[..., None])


def test_masking_before_a_gru_ignores_zero_padding(rng):
    T, F = 6, 3
    lengths = [6, 2, 4]
    x = rng.standard_normal((3, T, F)) * (np.arange(T)[None, :, None] < np.array(lengths)[:, None, None])

    def model(steps):
        cn.seed(4)
        return cn.Sequential([L.Input((steps, F)), L.Masking(), L.GRU(H)], dtype="float64")

    got = model(T).predict(x)
    alone = np.concatenate([model(n).predict(x[i:i + 1, :n]) for i, n in enumerate(lengths)])
    assert_close(got, alone, dtype=np.float64)


def test_sequence_loss_and_accuracy_in_the_model():
    """Embedding(mask_zero) -> LSTM(K, return_sequences): logits (N, T, K) whose
    padded steps and -1 labels are left out of the loss and the accuracy."""
    T = 5
    cn.seed(2)
    m = cn.Sequential([L.Input((T,)), L.Embedding(V, D, mask_zero=True), L.LSTM(K, return_sequences=True)],
                      dtype="float64")
    m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    x = padded(SEQUENCES, T)
    y = np.array([[0, 1, 2, 0, 1], [2, 2, 2, 2, 2], [1, -1, 0, 2, 0], [0, 1, 1, 1, 1]])
    z = m.predict(x)
    logs = m.evaluate(x, y)
    want, _ = loss_ref.sequence_softmax_cross_entropy(z, y, mask=x != 0)
    assert_close(np.float64(logs["loss"]), np.float64(want), dtype=np.float64)
    counted = (x != 0) & (y != -1)
    assert logs["sparse_categorical_accuracy"] == np.mean(np.argmax(z, -1)[counted] == y[counted])
    loss, grads = m.compute_gradients(x, y)
    assert_close(np.float64(loss), np.float64(want), dtype=np.float64)
    assert cn.gradient_check(m, x, y, max_params=None) < GRADCHECK_THRESHOLD
    history = m.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_masked_model_round_trips_through_a_file(tmp_path):
    m = id_model(6, between=[L.Dropout(0.2)])
    m2 = cn.Sequential([L.Input((6, 2)), L.Masking(mask_value=-1.0), L.GRU(3, return_sequences=True),
                        L.SimpleRNN(2)], dtype="float32")
    x2 = np.where(np.arange(6)[None, :, None] < 3, 1.0, -1.0) * np.ones((2, 6, 2), np.float32)
    for model, x in ((m, padded(SEQUENCES, 6, left=True)), (m2, x2)):
        model.save(tmp_path / "m.corenn")
        loaded = cn.load_model(tmp_path / "m.corenn")
        assert np.array_equal(loaded.predict(x), model.predict(x))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match=r"masking.*expects a sequence \(timesteps, features\) per example"):
        L.Masking()(L.Input((4,)))
    with pytest.raises(TypeError, match=r"Masking: mask_value must be a number"):
        L.Masking("zero")
    cn.seed(0)
    m = cn.Sequential([L.Input((5,)), L.Embedding(V, D, mask_zero=True), L.LSTM(K, return_sequences=True)])
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x = padded(SEQUENCES, 5)
    with pytest.raises(ValueError, match=r"needs y of shape \(4, 5\) \(a class id per step, -1 = ignored\) "
                                         r"for the output of shape \(4, 5, 3\), got \(4,\)"):
        m.fit(x, np.zeros(4, np.int64), verbose=0)
    with pytest.raises(ValueError, match=r"class id -2 in y is outside \[0, 3\) .* and is not -1"):
        m.evaluate(x, np.full((4, 5), -2))


def test_onnx_export_refuses_masks_that_reach_recurrent_layers(tmp_path):
    pytest.importorskip("onnx", reason="export_onnx needs onnx")
    m = id_model(4)
    with pytest.raises(ValueError, match=r"export_onnx: the model masks sequences .* and has recurrent or attention layers"):
        cn.interop.export_onnx(m, tmp_path / "m.onnx")


# ---------------------------------------------------------------- wrappers

@pytest.mark.parametrize("return_sequences", [True, False])
def test_masked_bidirectional_equals_torch_packed(return_sequences, rng):
    torch = pytest.importorskip("torch", reason="the PyTorch oracle needs torch")
    N, T, F, Hb = 4, 6, 3, 5
    lengths = np.array([6, 2, 4, 1])
    valid = np.arange(T)[None, :] < lengths[:, None]
    x = rng.standard_normal((N, T, F)) * valid[..., None]
    cn.seed(6)
    inp = L.Input((T, F))
    out = L.Bidirectional(L.LSTM(Hb, return_sequences=return_sequences), name="bi")(L.Masking()(inp))
    model = cn.Model(inp, out, dtype="float64")
    got = model.predict(x)
    fk, frk, fb, bk, brk, bb = model.get_layer("bi").get_weights()
    lstm = torch.nn.LSTM(F, Hb, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for suffix, (k, rk, b) in (("", (fk, frk, fb)), ("_reverse", (bk, brk, bb))):
            getattr(lstm, f"weight_ih_l0{suffix}").copy_(torch.from_numpy(k))
            getattr(lstm, f"weight_hh_l0{suffix}").copy_(torch.from_numpy(rk))
            getattr(lstm, f"bias_ih_l0{suffix}").copy_(torch.from_numpy(b))
            getattr(lstm, f"bias_hh_l0{suffix}").zero_()
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                         batch_first=True, enforce_sorted=False)
        y, (h, _) = lstm(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=T)
    if return_sequences:
        assert_close(got[valid], y.numpy()[valid], op="lstm_vs_torch")
    else:
        assert_close(got, np.concatenate([h[0].numpy(), h[1].numpy()], axis=1), op="lstm_vs_torch")


def test_masks_pass_through_time_distributed_and_bidirectional_sequences():
    def model(T, head):
        cn.seed(8)
        return cn.Sequential([L.Input((T,)), L.Embedding(V, D, mask_zero=True), *head, L.GRU(3)], dtype="float64")

    for head in ([L.TimeDistributed(L.Dense(4))], [L.Dense(4, activation="tanh")],
                 [L.Bidirectional(L.SimpleRNN(2, return_sequences=True), merge_mode="ave")]):
        w = model(4, head).get_weights()
        alone = []
        for s in SEQUENCES:
            m = model(len(s), [type(l).from_config(l.get_config()) for l in head])
            m.set_weights(w)
            alone.append(m.predict(np.array([s], float)))
        m = model(7, [type(l).from_config(l.get_config()) for l in head])
        m.set_weights(w)
        assert_close(m.predict(padded(SEQUENCES, 7, left=True)), np.concatenate(alone), dtype=np.float64)
