"""The recurrent layers (SimpleRNN, GRU, LSTM) in models: outputs, final states
and every gradient (weights through model.compute_gradients, inputs and
initial states through model.vjp) against the step-by-step NumPy reference
written from the course's cell equations, in float64 (and float32 outputs);
PyTorch's nn.RNN/GRU/LSTM on the same weights; whole-model gradient checks; a
seq2seq graph (encoder states as the decoder's initial_state) trained on a
toy copy task and checked against finite differences; bad input."""

import numpy as np
import pytest

import corenn as cn
from gradcheck import numerical_gradient, relative_difference
from reference import recurrent as ref
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, MODEL_F64, assert_close

L = cn.layers
# kind: (class, gates, states)
KINDS = {"simple_rnn": (L.SimpleRNN, 1, 1), "lstm": (L.LSTM, 4, 2), "gru": (L.GRU, 3, 1)}
# (N, T, F, H): one step, batch 1, odd sizes.
SHAPES = [(1, 1, 1, 1), (3, 1, 4, 5), (1, 6, 3, 2), (2, 5, 3, 7)]
OPTIONS = [  # (return_sequences, return_state, go_backwards, initial_state)
    (False, False, False, False), (True, False, False, False), (False, True, False, True),
    (True, True, True, True), (True, False, True, False), (False, False, True, True),
]


def gid(v):
    return str(v).replace(" ", "")


def random_weights(kind, F, H, rng, use_bias=True):
    _, G, _ = KINDS[kind]
    s = 1.5 / np.sqrt(H)  # wide enough that the gates leave their linear range
    w = [rng.uniform(-s, s, (G * H, F)), rng.uniform(-s, s, (G * H, H))]
    if use_bias:  # the GRU's bias and recurrent_bias, one bias otherwise
        w += [rng.uniform(-s, s, G * H) for _ in range(2 if kind == "gru" else 1)]
    return w


def reference_forward(kind, x, w, states, go_backwards):
    """(y (N, T, H), final states, what reference_backward needs) in float64."""
    x = np.asarray(x, dtype=np.float64)[:, ::-1] if go_backwards else np.asarray(x, dtype=np.float64)
    H = w[1].shape[1]
    b = w[2] if len(w) > 2 else np.zeros(w[0].shape[0])
    s = list(states) + [None] * (KINDS[kind][2] - len(states))
    if kind == "simple_rnn":
        y, h = ref.simple_rnn_forward(x, w[0], w[1], b, s[0])
        return y, [h], (x, y, s[0])
    if kind == "lstm":
        y, h, c, steps = ref.lstm_forward(x, w[0], w[1], b, s[0], s[1])
        return y, [h, c], (x, steps)
    rb = w[3] if len(w) > 3 else np.zeros(3 * H)
    y, h, steps = ref.gru_forward(x, w[0], w[1], b, rb, s[0])
    return y, [h], (x, steps)


def reference_backward(kind, w, saved, dy, dstates):
    """(dx in processing order, [dW_ih, dW_hh, db(, drb)], [dh0(, dc0)])."""
    if kind == "simple_rnn":
        x, y, h0 = saved
        dx, dW_ih, dW_hh, db, dh0 = ref.simple_rnn_backward(dy, dstates[0], x, w[0], w[1], h0, y)
        return dx, [dW_ih, dW_hh, db], [dh0]
    if kind == "lstm":
        x, steps = saved
        dx, dW_ih, dW_hh, db, dh0, dc0 = ref.lstm_backward(dy, dstates[0], dstates[1], x, w[0], w[1], steps)
        return dx, [dW_ih, dW_hh, db], [dh0, dc0]
    x, steps = saved
    dx, dW_ih, dW_hh, db, drb, dh0 = ref.gru_backward(dy, dstates[0], x, w[0], w[1], steps)
    return dx, [dW_ih, dW_hh, db, drb], [dh0]


def layer_model(kind, shape, options, dtype, use_bias=True):
    N, T, F, H = shape
    return_sequences, return_state, go_backwards, given = options
    cls, _, n_states = KINDS[kind]
    x = L.Input((T, F), name="x")
    states = [L.Input((H,), name=f"s{k}") for k in range(n_states)] if given else []
    layer = cls(H, return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards,
                use_bias=use_bias, name="rnn")
    out = layer(x, initial_state=states or None)
    outs = out if isinstance(out, list) else [out]
    return cn.Model([x, *states], outs, dtype=dtype)


def expected_outputs(y, finals, options):
    return_sequences, return_state, _, _ = options
    first = y if return_sequences else y[:, -1]
    return [first, *finals] if return_state else [first]


@pytest.mark.parametrize("options", OPTIONS, ids=gid)
@pytest.mark.parametrize("shape", SHAPES, ids=gid)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_layer_outputs_and_gradients_match_reference(kind, shape, options, rng):
    N, T, F, H = shape
    _, return_state, go_backwards, given = options
    model = layer_model(kind, shape, options, "float64")
    w = random_weights(kind, F, H, rng)
    model.get_layer("rnn").set_weights(w)
    x = rng.standard_normal((N, T, F))
    states = [rng.standard_normal((N, H)) * 0.5 for _ in range(KINDS[kind][2])] if given else []
    xs = [x, *states]
    y, finals, saved = reference_forward(kind, x, w, states, go_backwards)
    want = expected_outputs(y, finals, options)
    got = model.predict(xs)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(want)
    for g, e in zip(got, want):
        assert_close(g, e, what=f"{kind} output")

    # Weight gradients of Σ mse(output_k, target_k) through the engine.
    targets = [rng.standard_normal(e.shape) for e in want]
    model.compile(optimizer="sgd", loss=["mse"] * len(want))
    _, grads = model.compute_gradients(xs, targets)
    douts = [2.0 * (e - t) / e.size for e, t in zip(want, targets)]
    dy, dstates = _kernel_gradients(kind, douts, options, N, T, H)
    dx, dweights, dinit = reference_backward(kind, w, saved, dy, dstates)
    assert len(grads) == len(dweights)
    for g, e in zip(grads, dweights):
        np.testing.assert_allclose(g, e, **MODEL_F64)

    # Input and initial-state gradients through the vector-Jacobian product.
    _, pullback = model.vjp(xs)
    dxs = pullback(douts if len(douts) > 1 else douts[0])
    dxs = dxs if isinstance(dxs, list) else [dxs]
    np.testing.assert_allclose(dxs[0], dx[:, ::-1] if go_backwards else dx, **MODEL_F64)
    for g, e in zip(dxs[1:], dinit if given else []):
        np.testing.assert_allclose(g, e, **MODEL_F64)


def _kernel_gradients(kind, douts, options, N, T, H):
    """dL/dy for every step and dL/d(final states) from the outputs' gradients."""
    return_sequences, return_state, _, _ = options
    dy = douts[0] if return_sequences else np.zeros((N, T, H))
    dstates = list(douts[1:]) if return_state else [np.zeros((N, H))] * KINDS[kind][2]
    if not return_sequences:
        dstates[0] = dstates[0] + douts[0]
    return dy, dstates


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_float32_outputs_and_no_bias(kind, rng):
    N, T, F, H = 3, 4, 5, 6
    options = (True, True, False, True)
    w = random_weights(kind, F, H, rng, use_bias=False)
    x = rng.standard_normal((N, T, F))
    states = [rng.standard_normal((N, H)) * 0.5 for _ in range(KINDS[kind][2])]
    y, finals, _ = reference_forward(kind, x, w, states, False)
    model = layer_model(kind, (N, T, F, H), options, "float32", use_bias=False)
    assert [v.shape for v in model.get_layer("rnn").get_weights()] == [v.shape for v in w]
    model.get_layer("rnn").set_weights([v.astype(np.float32) for v in w])
    got = model.predict([x.astype(np.float32)] + [s.astype(np.float32) for s in states])
    for g, e in zip(got, expected_outputs(y, finals, options)):
        assert g.dtype == np.float32
        assert_close(g, e, dtype=np.float32, what=kind)


def test_weight_layout_and_initialisers():
    cn.seed(3)
    m = cn.Sequential([L.Input((7, 5)), L.LSTM(6, name="lstm"), L.Dense(2)])
    m.build()
    kernel, recurrent, bias = m.get_layer("lstm").get_weights()
    assert kernel.shape == (24, 5) and recurrent.shape == (24, 6) and bias.shape == (24,)
    # unit_forget_bias: the forget gate (second block of i, f, g, o) starts at 1, the rest at 0.
    np.testing.assert_array_equal(bias, np.r_[np.zeros(6), np.ones(6), np.zeros(12)])
    # Orthogonal W_hh (4H, H): orthonormal columns; glorot_uniform W_ih within ±√(6/(F + 4H)).
    np.testing.assert_allclose(recurrent.T @ recurrent, np.eye(6), atol=1e-6)
    assert np.abs(kernel).max() <= np.sqrt(6 / (5 + 24)) and kernel.std() > 0.1
    g = cn.Sequential([L.Input((3, 4)), L.GRU(5, name="g")])
    g.build()
    assert [w.shape for w in g.get_layer("g").get_weights()] == [(15, 4), (15, 5), (15,), (15,)]
    # Keras's parameter counts: LSTM 4·(H·(F + H) + H), GRU (reset_after) 3·(H·(F + H) + 2H).
    assert m.count_params() == 4 * (6 * (5 + 6) + 6) + (6 * 2 + 2)
    assert g.count_params() == 3 * (5 * (4 + 5) + 2 * 5)
    assert [w.shape for w in cn.Sequential([L.Input((3, 4)), L.SimpleRNN(2, use_bias=False)]).get_weights()] == \
        [(2, 4), (2, 2)]


def test_orthogonal_initializer():
    for shape, fan_in in [((12, 3), 3), ((3, 12), 12), ((5, 5), 5), ((2, 3, 4), 12)]:
        w = cn.ops.initialize(shape, "orthogonal", fan_in, 0, dtype="float64", key=4)
        m = w.reshape(-1, fan_in)
        gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
        np.testing.assert_allclose(gram, np.eye(min(m.shape)), atol=1e-12)
        w32 = cn.ops.initialize(shape, "orthogonal", fan_in, 0, dtype="float32", key=4)
        np.testing.assert_array_equal(w32, w.astype(np.float32))  # the rounded float64 draw
    with pytest.raises(ValueError, match="orthogonal needs fan_in > 0 dividing the 6 values, got fan_in=4"):
        cn.ops.initialize((2, 3), "orthogonal", 4, 0)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_matches_pytorch(kind, go_backwards, rng):
    torch = pytest.importorskip("torch")
    N, T, F, H = 3, 5, 4, 6
    cls, _, n_states = KINDS[kind]
    net = {"simple_rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](
        F, H, batch_first=True).double()
    x = rng.standard_normal((N, T, F))
    states = [rng.standard_normal((N, H)) for _ in range(n_states)]
    with torch.no_grad():
        tx = torch.from_numpy(x[:, ::-1].copy() if go_backwards else x)
        ts = [torch.from_numpy(s)[None] for s in states]
        ty, tfinal = net(tx, tuple(ts) if kind == "lstm" else ts[0])
    p = {k: v.detach().numpy() for k, v in net.named_parameters()}
    if kind == "gru":
        w = [p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]]
    else:
        w = [p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"] + p["bias_hh_l0"]]
    model = layer_model(kind, (N, T, F, H), (True, True, go_backwards, True), "float64")
    model.get_layer("rnn").set_weights(w)
    got = model.predict([x, *states])
    finals = list(tfinal) if kind == "lstm" else [tfinal]
    np.testing.assert_allclose(got[0], ty.numpy(), **MODEL_F64)
    for g, e in zip(got[1:], finals):
        np.testing.assert_allclose(g, e[0].numpy(), **MODEL_F64)


def test_load_torch_state_dict_sums_the_two_biases(rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.LSTM(3, 4, batch_first=True), torch.nn.GRU(4, 5, batch_first=True),
                              torch.nn.RNN(5, 2, batch_first=True)).double()
    model = cn.Sequential([L.Input((6, 3)), L.LSTM(4, return_sequences=True),
                           L.GRU(5, return_sequences=True), L.SimpleRNN(2, return_sequences=True)],
                          dtype="float64")
    cn.interop.load_torch_state_dict(model, net.state_dict())
    x = rng.standard_normal((2, 6, 3))
    with torch.no_grad():
        want = torch.from_numpy(x)
        for module in net:
            want, _ = module(want)
    np.testing.assert_allclose(model.predict(x), want.numpy(), **MODEL_F64)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradient_check_of_recurrent_dense_model(kind, rng):
    cls = KINDS[kind][0]
    cn.seed(5)
    m = cn.Sequential([L.Input((4, 3)), cls(5, return_sequences=True), cls(4, go_backwards=True),
                       L.Dense(3)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x = rng.standard_normal((5, 4, 3))
    y = rng.integers(0, 3, 5)
    assert cn.gradient_check(m, x, y, epsilon=GRADCHECK_EPS, max_params=None) < GRADCHECK_THRESHOLD


def seq2seq(units=8, steps=4, vocab=3, dtype="float32"):
    """Encoder LSTM whose final [h, c] start the decoder LSTM (teacher forcing:
    the decoder reads the shifted target), then a Dense readout of every step
    over the flattened sequence."""
    enc_in = L.Input((steps, vocab), name="encoder_in")
    dec_in = L.Input((steps, vocab), name="decoder_in")
    _, h, c = L.LSTM(units, return_state=True, name="encoder")(enc_in)
    seq = L.LSTM(units, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    out = L.Reshape((steps, vocab))(L.Dense(steps * vocab, name="readout")(L.Flatten()(seq)))
    return cn.Model([enc_in, dec_in], out, dtype=dtype)


def copy_task(rng, n, steps=4, vocab=3):
    """Sequences of one-hot symbols; the decoder reads them shifted right (a zero
    start step) and must output them: the target is the encoder's input."""
    ids = rng.integers(0, vocab, (n, steps))
    x = np.eye(vocab)[ids]
    shifted = np.concatenate([np.zeros((n, 1, vocab)), x[:, :-1]], axis=1)
    return x, shifted


def test_seq2seq_states_gradients_match_finite_differences(rng):
    cn.seed(6)
    x, shifted = copy_task(rng, 3)
    m = seq2seq(dtype="float64")
    m.compile(optimizer="sgd", loss="mse")
    target = rng.standard_normal((3, 4, 3))
    _, grads = m.compute_gradients([x, shifted], target)
    weights = m.get_weights()

    def loss():
        return float(np.mean((m.predict([x, shifted]) - target) ** 2))

    analytic, numeric = [], []
    for k, w in enumerate(weights):
        def f(k=k, w=w):  # numerical_gradient moves the entries of w in place
            m.set_weights(weights[:k] + [w] + weights[k + 1:])
            return loss()
        numeric.append(numerical_gradient(f, w).ravel())
        analytic.append(grads[k].ravel())
    m.set_weights(weights)
    assert relative_difference(np.concatenate(analytic), np.concatenate(numeric)) < GRADCHECK_THRESHOLD
    # The encoder is trained only through the states it hands the decoder.
    encoder = m.get_layer("encoder")
    assert len(encoder.get_weights()) == 3 and np.abs(grads[0]).max() > 0


def test_seq2seq_learns_a_copy_task(rng):
    cn.seed(7)
    model = seq2seq(units=16)
    model.compile(optimizer=cn.optimizers.Adam(0.02), loss="mse")
    x, shifted = copy_task(rng, 64)
    first = model.evaluate([x, shifted], x, verbose=0)["loss"]
    model.fit([x, shifted], x, batch_size=16, epochs=30, verbose=0)
    last = model.evaluate([x, shifted], x, verbose=0)["loss"]
    assert last < 0.1 * first
    # The decoder's inputs never hold the last symbol: only the encoder's states bring it.
    predicted = model.predict([x, shifted])
    assert np.mean(predicted[:, -1].argmax(axis=1) == x[:, -1].argmax(axis=1)) > 0.95


# ---------------------------------------------------------------- bad input

def test_bad_inputs():
    with pytest.raises(ValueError, match=r"layer 'l' \(lstm\): expects a sequence \(timesteps, features\) per "
                                         r"example.*got \(5,\) per example"):
        L.LSTM(3, name="l")(L.Input((5,)))
    with pytest.raises(ValueError, match=r"layer 'l2' \(lstm\): initial_state 1 \(c\) must have shape \(3,\) per "
                                         r"example \(units\), got \(4,\)"):
        L.LSTM(3, name="l2")(L.Input((2, 5)), initial_state=[L.Input((3,)), L.Input((4,))])
    with pytest.raises(ValueError, match=r"layer 'l3' \(lstm\): takes a sequence and optionally its "
                                         r"initial_state \[h, c\], got 2 inputs"):
        L.LSTM(3, name="l3")(L.Input((2, 5)), initial_state=L.Input((3,)))
    with pytest.raises(ValueError, match=r"layer 'g' \(gru\): recurrent_activation must be 'sigmoid' \(the only "
                                         r"one the recurrent kernels implement\), got 'hard_sigmoid'"):
        L.GRU(3, recurrent_activation="hard_sigmoid", name="g")(L.Input((2, 5)))
    with pytest.raises(ValueError, match=r"layer 's' \(simple_rnn\): activation must be 'tanh'.*got 'relu'"):
        L.SimpleRNN(3, activation="relu", name="s")(L.Input((2, 5)))
    with pytest.raises(ValueError, match=r"LSTM: units must be"):
        L.LSTM(0)
    with pytest.raises(TypeError, match=r"LSTM got an unexpected keyword argument 'reccurent_dropout'"):
        L.LSTM(3, reccurent_dropout=0.1)  # dropout and recurrent_dropout: tests/test_recurrent_dropout.py
    # Data of the wrong shape: a 2-D batch for sequences, an initial state of the wrong width.
    m = cn.Sequential([L.Input((4, 2)), L.LSTM(3)])
    m.build()
    with pytest.raises(ValueError, match=r"predict: x must have shape \(batch, 4, 2\), got \(5, 8\)"):
        m.predict(np.zeros((5, 8), dtype=np.float32))
    x, h0 = L.Input((3, 2), name="seq"), L.Input((4,), name="h0")
    m = cn.Model([x, h0], L.GRU(4)(x, initial_state=h0))
    with pytest.raises(ValueError, match=r"predict: x\['h0'\] must have shape \(batch, 4\), got \(2, 5\)"):
        m.predict([np.zeros((2, 3, 2), np.float32), np.zeros((2, 5), np.float32)])


def test_onnx_export_names_the_state_layers(tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed")
    x = L.Input((3, 2))
    _, h = L.GRU(4, return_state=True, name="enc")(x)
    with pytest.raises(ValueError, match="layer 'enc' returns its states"):
        cn.interop.export_onnx(cn.Model(x, h), tmp_path / "m.onnx")
    seq = L.Input((3, 2))
    out = L.SimpleRNN(4, name="dec")(seq, initial_state=L.Dense(4)(L.Flatten()(seq)))
    with pytest.raises(ValueError, match="layer 'dec' takes 2 inputs"):
        cn.interop.export_onnx(cn.Model(seq, out), tmp_path / "m.onnx")
