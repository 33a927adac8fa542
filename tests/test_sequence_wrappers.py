"""The sequence layers around the recurrent ones: RepeatVector, Dense on the
last axis (and softmax over it), TimeDistributed and Bidirectional. Outputs and
every gradient against the float64 NumPy references (tests/reference/
sequence_wrappers.py, recurrent.py), float32 parity, finite differences,
PyTorch's bidirectional nn.RNN/GRU/LSTM on the same weights, Keras's
parameter counts, configs and bad input."""

import numpy as np
import pytest

import corenn as cn
from gradcheck import numerical_gradient, projection, relative_difference
from reference import conv as ref_conv
from reference import dense as ref_dense
from reference import sequence_wrappers as ref
from test_recurrent_layers import KINDS, random_weights, reference_backward, reference_forward
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, MODEL_F64, assert_close

L = cn.layers
DTYPES = ["float32", "float64"]


def input_gradient_check(model, x, seed=3):
    """Relative difference between the vjp's dx and central differences of
    <P, predict(x)> (float64)."""
    y, pullback = model.vjp(x)
    P = projection(y.shape, seed)
    numeric = numerical_gradient(lambda: float(np.sum(P * model.predict(x))), x)
    return relative_difference(pullback(P), numeric)


# ---------------------------------------------------------------- RepeatVector


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, F, n", [(1, 1, 1), (3, 4, 5), (2, 7, 1)])
def test_repeat_vector_matches_reference(N, F, n, dtype, rng):
    model = cn.Sequential([L.Input((F,)), L.RepeatVector(n)], dtype=dtype)
    x = rng.standard_normal((N, F))
    got = model.predict(x.astype(dtype))
    assert got.shape == (N, n, F) and got.dtype == dtype
    assert_close(got, ref.repeat_vector_forward(x.astype(dtype), n), what="repeat_vector")
    dy = rng.standard_normal((N, n, F))
    _, pullback = model.vjp(x.astype(dtype))
    assert_close(pullback(dy.astype(dtype)), ref.repeat_vector_backward(dy.astype(dtype)),
                 what="repeat_vector backward")


def test_repeat_vector_gradients_match_finite_differences(rng):
    x = rng.standard_normal((3, 4))
    model = cn.Sequential([L.Input((4,)), L.RepeatVector(3)], dtype="float64")
    assert input_gradient_check(model, x) < GRADCHECK_THRESHOLD
    # One-to-many: a vector repeated into an RNN, every weight checked.
    cn.seed(2)
    m = cn.Sequential([L.Input((4,)), L.Dense(3, activation="tanh"), L.RepeatVector(5),
                       L.SimpleRNN(2), L.Dense(3)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert cn.gradient_check(m, x, rng.integers(0, 3, 3), epsilon=GRADCHECK_EPS,
                             max_params=None) < GRADCHECK_THRESHOLD


def test_repeat_vector_bad_input():
    with pytest.raises(ValueError, match=r"layer 'rep' \(repeat_vector\): expects a vector \(features,\) "
                                         r"per example.*got \(2, 3\) per example"):
        L.RepeatVector(2, name="rep")(L.Input((2, 3)))
    with pytest.raises(ValueError, match="RepeatVector: n must be >= 1, got 0"):
        L.RepeatVector(0)
    with pytest.raises(TypeError, match="RepeatVector: n must be an int"):
        L.RepeatVector(2.5)


# ---------------------------------------------------------------- Dense on the last axis


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", [None, "tanh", "softmax"])
def test_dense_acts_on_the_last_axis(activation, dtype, rng):
    N, T, F, U = 3, 4, 5, 6
    model = cn.Sequential([L.Input((T, F)), L.Dense(U, activation=activation, name="fc")], dtype=dtype)
    assert model.output_shape == (None, T, U)
    assert model.count_params() == U * (F + 1)  # Keras's: the kernel does not depend on T
    W, b = rng.standard_normal((U, F)), rng.standard_normal(U)
    model.get_layer("fc").set_weights([W.astype(dtype), b.astype(dtype)])
    x = rng.standard_normal((N, T, F)).astype(dtype)

    def step(xt):
        z = ref_dense.dense_forward(xt.astype(np.float64), W, b)
        if activation == "tanh":
            return np.tanh(z)
        if activation == "softmax":
            e = np.exp(z - z.max(axis=-1, keepdims=True))
            return e / e.sum(axis=-1, keepdims=True)
        return z

    assert_close(model.predict(x), ref.per_step(step, x), what=f"dense {activation}")


def test_dense_on_sequences_gradients(rng):
    N, T, F, U = 3, 4, 5, 2
    model = cn.Sequential([L.Input((T, F)), L.Dense(U, name="fc")], dtype="float64")
    model.build()
    W, b = rng.standard_normal((U, F)), rng.standard_normal(U)
    model.get_layer("fc").set_weights([W, b])
    x, target = rng.standard_normal((N, T, F)), rng.standard_normal((N, T, U))
    model.compile(optimizer="sgd", loss="mse")
    _, grads = model.compute_gradients(x, target)
    dz = 2 * (ref.per_step(lambda xt: ref_dense.dense_forward(xt, W, b), x) - target) / target.size
    _, dW, db = ref_dense.dense_backward(dz.reshape(-1, U), x.reshape(-1, F), W)
    np.testing.assert_allclose(grads[0], dW, **MODEL_F64)
    np.testing.assert_allclose(grads[1], db, **MODEL_F64)
    assert input_gradient_check(model, x) < GRADCHECK_THRESHOLD
    # A 4-D input: every leading axis folds into the rows.
    m4 = cn.Sequential([L.Input((2, 3, F)), L.Dense(U, activation="gelu")], dtype="float64")
    m4.compile(optimizer="sgd", loss="mse")
    x4 = rng.standard_normal((2, 2, 3, F))
    assert cn.gradient_check(m4, x4, rng.standard_normal((2, 2, 3, U)), epsilon=GRADCHECK_EPS,
                             max_params=None) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_activation_normalises_the_last_axis_of_sequences(dtype, rng):
    z = rng.standard_normal((2, 5, 4)).astype(dtype)
    model = cn.Sequential([L.Input((5, 4)), L.Activation("softmax")], dtype=dtype)
    e = np.exp(z.astype(np.float64) - z.max(axis=-1, keepdims=True))
    assert_close(model.predict(z), e / e.sum(axis=-1, keepdims=True), what="softmax (N, T, K)")


# ---------------------------------------------------------------- TimeDistributed


@pytest.mark.parametrize("dtype", DTYPES)
def test_time_distributed_dense_matches_reference(dtype, rng):
    N, T, F, U = 3, 5, 4, 2
    td = L.TimeDistributed(L.Dense(U, activation="tanh"), name="td")
    model = cn.Sequential([L.Input((T, F)), td], dtype=dtype)
    assert model.output_shape == (None, T, U)
    assert model._engine.weight_names(0) == ["kernel", "bias"]  # the inner layer's Keras names
    assert model.count_params() == U * (F + 1)
    W, b = rng.standard_normal((U, F)), rng.standard_normal(U)
    td.set_weights([W.astype(dtype), b.astype(dtype)])
    x = rng.standard_normal((N, T, F)).astype(dtype)
    want = ref.per_step(lambda xt: np.tanh(ref_dense.dense_forward(xt.astype(np.float64), W, b)), x)
    assert_close(model.predict(x), want, what="time_distributed(dense)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_time_distributed_conv2d_and_flatten(dtype, rng):
    N, T, C, H, W_ = 2, 3, 2, 5, 4
    x = rng.standard_normal((N, T, C, H, W_)).astype(dtype)
    conv = L.TimeDistributed(L.Conv2D(3, 2, strides=(1, 2), padding=1), name="conv")
    model = cn.Sequential([L.Input((T, C, H, W_)), conv, L.TimeDistributed(L.Flatten())], dtype=dtype)
    model.build()
    K, b = rng.standard_normal((3, C, 2, 2)), rng.standard_normal(3)
    conv.set_weights([K.astype(dtype), b.astype(dtype)])
    want = ref.per_step(lambda xt: ref_conv.conv2d_forward(xt.astype(np.float64), K, b, stride=(1, 2),
                                                           padding=1).reshape(N, -1), x)
    assert model.output_shape == (None, T, want.shape[2])
    assert_close(model.predict(x), want, what="time_distributed(conv2d) + flatten")


def test_time_distributed_gradients(rng):
    N, T, F = 3, 4, 3
    x, y = rng.standard_normal((N, T, F)), rng.integers(0, 2, N)

    def model(wrapped, dropout=False):
        dense = L.Dense(4, activation="tanh", kernel_regularizer="l2")
        inner = [L.TimeDistributed(dense)] if wrapped else [dense]
        inner += [L.TimeDistributed(L.Dropout(0.3))] if dropout else []
        m = cn.Sequential([L.Input((T, F)), *inner, L.LSTM(3), L.Dense(2)], dtype="float64")
        m.compile(optimizer="sgd", loss="softmax_cross_entropy")
        return m

    cn.seed(4)
    m = model(True, dropout=True)
    assert input_gradient_check(m, x) < GRADCHECK_THRESHOLD
    assert cn.gradient_check(m, x, y, epsilon=GRADCHECK_EPS, max_params=None) < GRADCHECK_THRESHOLD
    # TimeDistributed(Dense) is Dense on the last axis: the same loss and gradients.
    wrapped, plain = model(True), model(False)
    plain.set_weights(wrapped.get_weights())
    (loss_a, grads_a), (loss_b, grads_b) = wrapped.compute_gradients(x, y), plain.compute_gradients(x, y)
    np.testing.assert_allclose(loss_a, loss_b, **MODEL_F64)
    for a, b in zip(grads_a, grads_b):
        np.testing.assert_allclose(a, b, **MODEL_F64)


def test_time_distributed_bad_input():
    with pytest.raises(ValueError, match=r"layer 'td' \(time_distributed\): expects a sequence \(timesteps, "
                                         r"\.\.\.\) per example.*got \(4,\) per example"):
        L.TimeDistributed(L.Dense(2), name="td")(L.Input((4,)))
    with pytest.raises(ValueError, match=r"attribute 'layer' must be a layer with one input and one output, "
                                         r"got layer 'rnn' \(lstm\)"):
        L.TimeDistributed(L.LSTM(2, name="rnn"))(L.Input((3, 4, 5)))
    with pytest.raises(TypeError, match="TimeDistributed: layer must be a corenn layer"):
        L.TimeDistributed("dense")
    # The inner layer's own check names it.
    with pytest.raises(ValueError, match=r"layer 'c' \(conv2d\)"):
        L.TimeDistributed(L.Conv2D(2, 3, name="c"))(L.Input((3, 4)))


def test_time_distributed_config_round_trips():
    td = L.TimeDistributed(L.Dense(3, activation="relu", name="inner"), name="td")
    config = td.get_config()
    assert config["layer"]["kind"] == "dense" and config["layer"]["name"] == "inner"
    again = L.TimeDistributed.from_config(config)
    assert isinstance(again.layer, L.Dense) and again.get_config() == config
    # The engine's full spec nests the inner layer's full spec.
    m = cn.Sequential([L.Input((2, 4)), td])
    m.build()
    engine = m._engine.layer_config(0)
    assert engine["layer"]["units"] == 3 and engine["layer"]["kernel_initializer"] == "glorot_uniform"
    assert L.from_config(engine).get_config() == config


# ---------------------------------------------------------------- Bidirectional

MODES = ["concat", "sum", "mul", "ave", None]
# (return_sequences, return_state, initial_state)
BI_OPTIONS = [(False, False, False), (True, False, False), (True, True, True), (False, True, True)]


def bidirectional_model(kind, shape, options, mode, dtype):
    N, T, F, H = shape
    return_sequences, return_state, given = options
    cls, _, n_states = KINDS[kind]
    x = L.Input((T, F), name="x")
    states = [L.Input((H,), name=f"s{k}") for k in range(2 * n_states)] if given else []
    layer = L.Bidirectional(cls(H, return_sequences=return_sequences, return_state=return_state),
                            merge_mode=mode, name="bi")
    out = layer(x, initial_state=states or None)
    return cn.Model([x, *states] if given else x, out, dtype=dtype)


def bidirectional_reference(kind, x, w, states, options, mode):
    """Outputs, and what the backward reference needs, for weights w = (w_f, w_b)
    and states = (forward's, backward's)."""
    return_sequences, return_state, _ = options
    saved = [None, None]

    def run(x_in, d):
        y, finals, saved[d] = reference_forward(kind, x_in, w[d], states[d], False)
        return (y if return_sequences else y[:, -1]), finals

    out, finals_f, finals_b, (a, b) = ref.bidirectional_forward(run, x, mode, return_sequences)
    outputs = list(out) if mode is None else [out]
    if return_state:
        outputs += finals_f + finals_b
    return outputs, (a, b, saved)


def bidirectional_reference_backward(kind, w, douts, options, mode, merged, N, T, H):
    """(dx, [weight gradients], [initial-state gradients]) from the outputs' gradients."""
    return_sequences, return_state, _ = options
    a, b, saved = merged
    n_states = KINDS[kind][2]
    k = 2 if mode is None else 1
    da, db = ref.merge_backward(douts[:2] if mode is None else douts[0], a, b, mode)
    if return_sequences:
        db = db[:, ::-1]  # back into the backward run's processing order
    dx, dweights, dinit = np.zeros(saved[0][0].shape), [], []
    for d, dout in enumerate((da, db)):
        dstates = (list(douts[k + d * n_states:k + (d + 1) * n_states]) if return_state
                   else [np.zeros((N, H))] * n_states)
        if return_sequences:
            dy = dout
        else:
            dy = np.zeros((N, T, H))
            dstates[0] = dstates[0] + dout
        dxd, dw, di = reference_backward(kind, w[d], saved[d], dy, dstates)
        dx += dxd if d == 0 else dxd[:, ::-1]
        dweights += dw
        dinit += di
    return dx, dweights, dinit


@pytest.mark.parametrize("mode", MODES, ids=str)
@pytest.mark.parametrize("options", BI_OPTIONS, ids=str)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bidirectional_outputs_and_gradients_match_reference(kind, options, mode, rng):
    N, T, F, H = 2, 4, 3, 5
    _, _, given = options
    n_states = KINDS[kind][2]
    model = bidirectional_model(kind, (N, T, F, H), options, mode, "float64")
    w = (random_weights(kind, F, H, rng), random_weights(kind, F, H, rng))
    model.get_layer("bi").set_weights(w[0] + w[1])
    x = rng.standard_normal((N, T, F))
    init = [rng.standard_normal((N, H)) * 0.5 for _ in range(2 * n_states)] if given else []
    states = (init[:n_states], init[n_states:])
    want, merged = bidirectional_reference(kind, x, w, states, options, mode)
    xs = [x, *init] if given else x
    got = model.predict(xs)
    got = got if isinstance(got, list) else [got]
    assert [g.shape for g in got] == [e.shape for e in want]
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, **MODEL_F64)

    targets = [rng.standard_normal(e.shape) for e in want]
    model.compile(optimizer="sgd", loss=["mse"] * len(want))
    _, grads = model.compute_gradients(xs, targets if len(targets) > 1 else targets[0])
    douts = [2.0 * (e - t) / e.size for e, t in zip(want, targets)]
    dx, dweights, dinit = bidirectional_reference_backward(kind, w, douts, options, mode, merged, N, T, H)
    assert len(grads) == len(dweights)
    for g, e in zip(grads, dweights):
        np.testing.assert_allclose(g, e, **MODEL_F64)
    _, pullback = model.vjp(xs)
    dxs = pullback(douts if len(douts) > 1 else douts[0])
    dxs = dxs if isinstance(dxs, list) else [dxs]
    np.testing.assert_allclose(dxs[0], dx, **MODEL_F64)
    for g, e in zip(dxs[1:], dinit if given else []):
        np.testing.assert_allclose(g, e, **MODEL_F64)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bidirectional_float32_and_parameter_counts(kind, rng):
    N, T, F, H = 3, 5, 4, 6
    model = bidirectional_model(kind, (N, T, F, H), (True, False, False), "concat", "float32")
    G = KINDS[kind][1]
    # Keras's formulas: G·H·(F + H + 1) per direction (the GRU, reset_after: G·H·(F + H + 2)).
    per_direction = G * H * (F + H + (2 if kind == "gru" else 1))
    assert model.count_params() == 2 * per_direction
    names = model._engine.weight_names(0)
    assert names[:2] == ["forward_kernel", "forward_recurrent_kernel"] and names[len(names) // 2] == "backward_kernel"
    w = (random_weights(kind, F, H, rng), random_weights(kind, F, H, rng))
    model.get_layer("bi").set_weights([v.astype(np.float32) for v in w[0] + w[1]])
    x = rng.standard_normal((N, T, F))
    want, _ = bidirectional_reference(kind, x, w, ([], []), (True, False, False), "concat")
    got = model.predict(x.astype(np.float32))
    assert got.dtype == np.float32
    assert_close(got, want[0], dtype=np.float32, what=f"bidirectional {kind}")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bidirectional_gradient_check(kind, rng):
    cls = KINDS[kind][0]
    cn.seed(6)
    m = cn.Sequential([L.Input((4, 3)), L.Bidirectional(cls(3, return_sequences=True)),
                       L.Bidirectional(cls(2), merge_mode="mul"), L.Dense(3)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x = rng.standard_normal((4, 4, 3))
    assert cn.gradient_check(m, x, rng.integers(0, 3, 4), epsilon=GRADCHECK_EPS,
                             max_params=None) < GRADCHECK_THRESHOLD
    assert input_gradient_check(m, x) < GRADCHECK_THRESHOLD


def test_bidirectional_backward_layer(rng):
    N, T, F = 2, 4, 3
    x = L.Input((T, F))
    bi = L.Bidirectional(L.GRU(4, return_sequences=True),
                         backward_layer=L.GRU(2, return_sequences=True, go_backwards=True), name="bi")
    model = cn.Model(x, bi(x), dtype="float64")
    assert model.output_shape == (None, T, 6)  # concat of 4 and 2 units
    w = (random_weights("gru", F, 4, rng), random_weights("gru", F, 2, rng))
    bi.set_weights(w[0] + w[1])
    xv = rng.standard_normal((N, T, F))
    a, _, _ = reference_forward("gru", xv, w[0], [], False)
    b, _, _ = reference_forward("gru", xv, w[1], [], True)
    np.testing.assert_allclose(model.predict(xv), np.concatenate([a, b[:, ::-1]], axis=-1), **MODEL_F64)
    config = bi.get_config()
    assert L.Bidirectional.from_config(config).get_config() == config


def test_bidirectional_bad_input():
    with pytest.raises(ValueError, match="Bidirectional: layer must be a SimpleRNN, LSTM or GRU, got Dense"):
        L.Bidirectional(L.Dense(3))
    with pytest.raises(ValueError, match="Bidirectional: merge_mode must be one of 'concat', 'sum', 'mul', "
                                         "'ave', None, got 'add'"):
        L.Bidirectional(L.LSTM(3), merge_mode="add")
    with pytest.raises(ValueError, match="backward_layer must have the layer's return_sequences"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3, return_sequences=True,
                                                        go_backwards=True))(L.Input((2, 3)))
    with pytest.raises(ValueError, match="backward_layer must read the other way"):
        L.Bidirectional(L.LSTM(3), backward_layer=L.LSTM(3))(L.Input((2, 3)))
    with pytest.raises(ValueError, match=r"merge_mode 'sum' needs both directions' outputs of one shape, "
                                         r"got \(3,\) and \(2,\)"):
        L.Bidirectional(L.GRU(3), merge_mode="sum",
                        backward_layer=L.GRU(2, go_backwards=True))(L.Input((2, 3)))
    with pytest.raises(ValueError, match=r"initial_state, the forward layer's \[h, c\] then the backward "
                                         r"layer's \(4 tensors\), got 3 inputs"):
        L.Bidirectional(L.LSTM(3))(L.Input((2, 3)), initial_state=[L.Input((3,)), L.Input((3,))])
    with pytest.raises(ValueError, match=r"expects a sequence \(timesteps, features\)"):
        L.Bidirectional(L.LSTM(3))(L.Input((3,)))


TORCH_MODULES = {"simple_rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bidirectional_matches_pytorch(kind, rng):
    torch = pytest.importorskip("torch")
    N, T, F, H = 3, 5, 4, 6
    torch.manual_seed(0)
    net = getattr(torch.nn, TORCH_MODULES[kind])(F, H, batch_first=True, bidirectional=True).double()
    model = cn.Sequential([L.Input((T, F)), L.Bidirectional(KINDS[kind][0](H, return_sequences=True),
                                                            name="bi")], dtype="float64")
    cn.interop.load_torch_state_dict(model, net.state_dict())
    x = rng.standard_normal((N, T, F))
    target = rng.standard_normal((N, T, 2 * H))
    tx = torch.from_numpy(x).requires_grad_()
    ty, _ = net(tx)
    loss = torch.nn.functional.mse_loss(ty, torch.from_numpy(target))
    loss.backward()
    np.testing.assert_allclose(model.predict(x), ty.detach().numpy(), **MODEL_F64)
    model.compile(optimizer="sgd", loss="mse")
    got_loss, grads = model.compute_gradients(x, target)
    np.testing.assert_allclose(got_loss, loss.item(), **MODEL_F64)
    p = dict(net.named_parameters())
    for d, suffix in enumerate(("", "_reverse")):
        g = grads[d * len(grads) // 2:(d + 1) * len(grads) // 2]
        np.testing.assert_allclose(g[0], p[f"weight_ih_l0{suffix}"].grad.numpy(), **MODEL_F64)
        np.testing.assert_allclose(g[1], p[f"weight_hh_l0{suffix}"].grad.numpy(), **MODEL_F64)
        # One bias (= bias_ih + bias_hh) receives each of their (equal) gradients; the GRU keeps two.
        np.testing.assert_allclose(g[2], p[f"bias_ih_l0{suffix}"].grad.numpy(), **MODEL_F64)
        if kind == "gru":
            np.testing.assert_allclose(g[3], p[f"bias_hh_l0{suffix}"].grad.numpy(), **MODEL_F64)
    y, pullback = model.vjp(x)
    dy = 2 * (y - target) / target.size
    np.testing.assert_allclose(pullback(dy), tx.grad.numpy(), **MODEL_F64)


def test_bidirectional_lstm_states_match_pytorch(rng):
    torch = pytest.importorskip("torch")
    N, T, F, H = 2, 4, 3, 5
    torch.manual_seed(1)
    net = torch.nn.LSTM(F, H, batch_first=True, bidirectional=True).double()
    x = L.Input((T, F))
    init = [L.Input((H,)) for _ in range(4)]
    outs = L.Bidirectional(L.LSTM(H, return_state=True), merge_mode="sum")(x, initial_state=init)
    model = cn.Model([x, *init], outs, dtype="float64")
    cn.interop.load_torch_state_dict(model, net.state_dict())
    xv = rng.standard_normal((N, T, F))
    h0, c0 = rng.standard_normal((2, N, H)), rng.standard_normal((2, N, H))
    with torch.no_grad():
        ty, (th, tc) = net(torch.from_numpy(xv), (torch.from_numpy(h0), torch.from_numpy(c0)))
    # Keras's initial_state order: forward [h, c], then backward [h, c].
    got = model.predict([xv, h0[0], c0[0], h0[1], c0[1]])
    want_out = ty[:, -1, :H].numpy() + ty[:, 0, H:].numpy()  # forward's last step, backward's first
    np.testing.assert_allclose(got[0], want_out, **MODEL_F64)
    for g, e in zip(got[1:], [th[0], tc[0], th[1], tc[1]]):
        np.testing.assert_allclose(g, e.numpy(), **MODEL_F64)


@pytest.mark.parametrize("mode", ["concat", "sum", "mul", "ave"])
def test_bidirectional_and_wrappers_export_to_onnx(mode, rng, tmp_path):
    onnx_reference = pytest.importorskip("onnx.reference", reason="onnx is not installed")
    cn.seed(7)
    model = cn.Sequential([L.Input((4,)), L.RepeatVector(5), L.TimeDistributed(L.Dense(3, activation="tanh")),
                           L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode=mode),
                           L.Bidirectional(L.GRU(2), merge_mode=mode), L.Dense(2)], dtype="float64")
    path = cn.interop.export_onnx(model, tmp_path / "m.onnx")
    x = rng.standard_normal((3, 4))
    out = onnx_reference.ReferenceEvaluator(str(path)).run(None, {model._engine.input_name: x})[0]
    assert out.shape == (3, 2)
    np.testing.assert_allclose(out, model.predict(x), **MODEL_F64)
    seq = L.Input((5, 4))
    none = cn.Model(seq, L.Bidirectional(L.GRU(2), merge_mode=None, name="two")(seq)[0])
    with pytest.raises(ValueError, match="layer 'two' has merge_mode None"):
        cn.interop.export_onnx(none, tmp_path / "none.onnx")


@pytest.mark.parametrize("when", ["before_build", "after_build", "from_file"])
def test_frozen_batch_norm_inside_time_distributed_runs_in_inference_mode(when, tmp_path):
    """TimeDistributed(BatchNormalization) frozen (the wrapper's trainable =
    False, as Keras's setter passes it to the wrapped layer): fit leaves gamma,
    beta and the moving statistics be, and its training forward normalises
    with the moving statistics, (x − mean)/√(var + ε)·γ + β, as predict does."""
    rng = np.random.default_rng(3)
    T, F, eps = 4, 3, 1e-3
    cn.seed(5)
    td = L.TimeDistributed(L.BatchNormalization(epsilon=eps), name="td", trainable=when == "after_build")
    m = cn.Sequential([L.Input((T, F)), L.Dense(F), td, L.Flatten(), L.Dense(2)], dtype="float64")
    m.compile(optimizer="adam", loss="softmax_cross_entropy")
    m.build()
    gamma, beta, mean, var = (rng.uniform(0.5, 1.5, F), rng.standard_normal(F), rng.standard_normal(F),
                              rng.uniform(0.5, 2.0, F))
    td.set_weights([gamma, beta, mean, var])
    if when == "after_build":
        td.trainable = False
    if when == "from_file":
        m.save(tmp_path / "m.corenn")
        m = cn.load_model(tmp_path / "m.corenn")
        m.compile(optimizer="adam", loss="softmax_cross_entropy")
        td = m.get_layer("td")
    assert not td.trainable
    x, y = rng.standard_normal((16, T, F)), rng.integers(0, 2, 16)
    m.fit(x, y, batch_size=4, epochs=2, verbose=0)
    for a, b in zip(td.get_weights(), [gamma, beta, mean, var]):
        np.testing.assert_array_equal(a, b)
    # The training forward (before its update) is predict's: the moving statistics, bit for bit.
    expected = m.predict(x[:4])
    dense, head = m.layers[0].get_weights(), m.layers[-1].get_weights()
    _, _, (out,) = m._engine.train_step([x[:4]], [y[:4]], None, True)
    np.testing.assert_array_equal(out, expected)
    h = x[:4] @ dense[0].T + dense[1]  # Dense: W (units, in_features)
    normalised = (h - mean) / np.sqrt(var + eps) * gamma + beta
    np.testing.assert_allclose(out, normalised.reshape(4, -1) @ head[0].T + head[1], **MODEL_F64)
    # Unfrozen, it trains and its moving statistics move again.
    td.trainable = True
    m.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert all(np.any(a != b) for a, b in zip(td.get_weights(), [gamma, beta, mean, var]))
