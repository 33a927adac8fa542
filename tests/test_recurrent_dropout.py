"""The recurrent layers' `dropout` and `recurrent_dropout` (Keras's): in
training, ONE mask per sequence over the input units, and one over the units
of h_{t-1} in the recurrent products, each reused at every step (inverted
scaling); inference ignores them; the same seed draws the same masks.
Against the step-by-step NumPy reference run on the masked input
(tests/reference/dropout.py's sequence_dropout_forward) or with the recurrent
mask (tests/reference/recurrent.py), gradients included, and finite
differences with the masks held fixed."""

import numpy as np
import pytest

import corenn as cn
from reference import dropout as ref_dropout
from reference import recurrent as ref_rec
from test_recurrent_layers import KINDS, random_weights, reference_backward, reference_forward
from tolerances import FREQUENCY_SIGMAS, GRADCHECK_EPS, GRADCHECK_THRESHOLD, MODEL_F64, frequency_atol

L = cn.layers
N, T, F, RATE = 6, 5, 4, 0.5


def one_layer(cls, units, seed=5, **kwargs):
    cn.seed(seed)
    model = cn.Sequential([L.Input((T, F)), cls(units, return_sequences=True, dropout=RATE, name="rnn",
                                                **kwargs)], dtype="float64")
    model.build()
    return model


def drawn_mask(x, seed=5, go_backwards=False):
    """The mask a one-layer model built from `seed` draws at step 0, read off
    a SimpleRNN whose step is tanh(x_t ⊙ m / (1 − rate)) (W_ih = I, W_hh = 0)."""
    model = one_layer(L.SimpleRNN, F, seed, go_backwards=go_backwards)
    model.get_layer("rnn").set_weights([np.eye(F), np.zeros((F, F)), np.zeros(F)])
    y, _ = model.vjp(x, training=True)
    if go_backwards:
        y = y[:, ::-1]
    scale = np.arctanh(y) / x  # m / (1 − rate) at every step
    mask = np.round(scale[:, 0] * (1 - RATE))
    np.testing.assert_allclose(scale, np.broadcast_to(mask[:, None, :] / (1 - RATE), scale.shape), **MODEL_F64)
    return mask


def test_one_mask_per_sequence_scaled_and_ignored_at_inference(rng):
    x = rng.uniform(0.2, 1.0, (N, T, F))
    mask = drawn_mask(x)  # the same scale at every step, 0 or 1/(1 − rate)
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert not np.all(mask == mask[0])  # sequences draw their own masks
    model = one_layer(L.SimpleRNN, F)
    model.get_layer("rnn").set_weights([np.eye(F), np.zeros((F, F)), np.zeros(F)])
    np.testing.assert_allclose(model.predict(x), np.tanh(x), **MODEL_F64)  # no dropout at inference
    # The same seed draws the same masks.
    np.testing.assert_array_equal(drawn_mask(x, seed=5), mask)
    assert not np.array_equal(drawn_mask(x, seed=6), mask)


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_training_outputs_and_gradients_match_reference_on_the_masked_input(kind, go_backwards, rng):
    cls = KINDS[kind][0]
    H = 3
    x = rng.standard_normal((N, T, F))
    mask = drawn_mask(rng.uniform(0.2, 1.0, x.shape), go_backwards=go_backwards)  # the key's, not x's
    model = one_layer(cls, H, go_backwards=go_backwards)  # same seed and layout: the same key
    w = random_weights(kind, F, H, rng)
    model.get_layer("rnn").set_weights(w)
    masked = ref_dropout.sequence_dropout_forward(x, mask, RATE)
    y, _, saved = reference_forward(kind, masked, w, [], go_backwards)
    got, pullback = model.vjp(x, training=True)
    np.testing.assert_allclose(got, y, **MODEL_F64)
    dy = rng.standard_normal(y.shape)
    dx, dweights, _ = reference_backward(kind, w, saved, dy, [np.zeros((N, H))] * KINDS[kind][2])
    dx = dx[:, ::-1] if go_backwards else dx
    np.testing.assert_allclose(pullback(dy), ref_dropout.sequence_dropout_forward(dx, mask, RATE), **MODEL_F64)
    model.compile(optimizer="sgd", loss="mse")
    target = rng.standard_normal(y.shape)
    _, grads = model.compute_gradients(x, target)
    _, dweights, _ = reference_backward(kind, w, saved, 2 * (y - target) / y.size,
                                        [np.zeros((N, H))] * KINDS[kind][2])
    for g, e in zip(grads, dweights):
        np.testing.assert_allclose(g, e, **MODEL_F64)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradient_check_with_the_mask_held_fixed(kind, rng):
    cls = KINDS[kind][0]
    cn.seed(8)
    m = cn.Sequential([L.Input((T, F)), cls(4, return_sequences=True, dropout=0.3),
                       L.Bidirectional(cls(3, dropout=0.4)), L.Dense(3)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = rng.standard_normal((N, T, F)), rng.integers(0, 3, N)
    assert cn.gradient_check(m, x, y, epsilon=GRADCHECK_EPS, max_params=None) < GRADCHECK_THRESHOLD
    train_loss, _ = m._engine.loss_and_gradients([x], [y])
    assert train_loss != pytest.approx(m.evaluate(x, y)["loss"], rel=1e-6)  # dropout is active


def test_bad_rates():
    with pytest.raises(ValueError, match=r"LSTM: dropout must be finite and in \[0.0, 1.0\), got 1.0"):
        L.LSTM(3, dropout=1.0)
    with pytest.raises(ValueError, match=r"GRU: dropout must be finite and in \[0.0, 1.0\), got -0.1"):
        L.GRU(3, dropout=-0.1)
    e = cn._core.Engine("float32")
    with pytest.raises(ValueError, match=r"layer 'r' \(simple_rnn\): dropout must be in \[0, 1\), got 1.5"):
        e.add({"kind": "simple_rnn", "name": "r", "units": 2, "dropout": 1.5})


# ---------------------------------------------------------------- recurrent_dropout

REC_RATE = 0.4


def rec_model(cls, units, seed=5, bidirectional=False, **kwargs):
    cn.seed(seed)
    layer = cls(units, return_sequences=True, recurrent_dropout=REC_RATE, name="rnn", **kwargs)
    if bidirectional:
        layer = L.Bidirectional(layer, name="rnn")  # concat: forward's units, then backward's
    model = cn.Sequential([L.Input((T, F)), layer], dtype="float64")
    model.build()
    return model


def read_recurrent_masks(y, projected):
    """m (N, H) from a SimpleRNN with W_hh = I, b = 0, no initial state, whose
    steps (in processing order) are y_t = tanh(p_t + m ⊙ y_{t-1}), p_t = W_ih x_t:
    m = (artanh y_t − p_t) / y_{t-1} at every step t >= 1, asserted the same at
    each (one mask per sequence), rounded to 0 or 1/(1 − rate)."""
    per_step = (np.arctanh(y[:, 1:]) - projected[:, 1:]) / y[:, :-1]
    mask = np.round(per_step[:, 0] * (1 - REC_RATE)) / (1 - REC_RATE)
    np.testing.assert_allclose(per_step, np.broadcast_to(mask[:, None], per_step.shape), **MODEL_F64)
    return mask


def drawn_recurrent_masks(x, seed=5, bidirectional=False):
    """The masks (one per direction) a one-layer model built from `seed` draws."""
    model = rec_model(L.SimpleRNN, F, seed, bidirectional)
    W_ih = np.full((F, F), 0.3) + np.eye(F) * 0.2
    one = [W_ih, np.eye(F), np.zeros(F)]
    model.get_layer("rnn").set_weights(one * (2 if bidirectional else 1))
    ys, _ = model.vjp(x, training=True)
    projected = x @ W_ih.T
    if not bidirectional:
        return [read_recurrent_masks(ys, projected)]
    return [read_recurrent_masks(ys[..., :F], projected),
            read_recurrent_masks(ys[:, ::-1, F:], projected[:, ::-1])]  # the backward one in processing order


def test_recurrent_masks_one_per_sequence_scaled_seeded_and_per_direction(rng):
    x = rng.uniform(0.2, 1.0, (N, T, F))
    (mask,) = drawn_recurrent_masks(x)
    assert set(np.unique(mask)) == {0.0, 1 / (1 - REC_RATE)}
    assert not np.all(mask == mask[0])  # sequences draw their own masks
    np.testing.assert_array_equal(drawn_recurrent_masks(x, seed=5)[0], mask)  # same seed, same masks
    assert not np.array_equal(drawn_recurrent_masks(x, seed=6)[0], mask)
    forward, backward = drawn_recurrent_masks(x, bidirectional=True)
    assert not np.array_equal(forward, backward)  # each direction draws its own


def test_recurrent_mask_statistics():
    """Over 4000 units the dropped fraction is the rate, and the mask is
    independent of the input dropout's (both drawn in one call)."""
    n, H = 400, 10
    x = np.random.default_rng(0).uniform(0.2, 1.0, (n, T, F))
    cn.seed(3)
    model = cn.Sequential([L.Input((T, F)), L.SimpleRNN(H, return_sequences=True, recurrent_dropout=REC_RATE,
                                                        name="rnn")], dtype="float64")
    model.build()
    W_ih = np.full((H, F), 0.15)
    model.get_layer("rnn").set_weights([W_ih, np.eye(H), np.zeros(H)])
    y, _ = model.vjp(x, training=True)
    mask = read_recurrent_masks(y, x @ W_ih.T)
    dropped = np.mean(mask == 0)
    assert abs(dropped - REC_RATE) <= frequency_atol(REC_RATE, mask.size)
    # Unit j's drops are not unit 0's (correlation of independent draws: ~1/√n).
    assert abs(np.corrcoef(mask[:, 0], mask[:, 1])[0, 1]) < FREQUENCY_SIGMAS / np.sqrt(n)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recurrent_dropout_is_inference_free_and_rate_zero_is_no_dropout(kind, rng):
    cls = KINDS[kind][0]
    x = rng.standard_normal((N, T, F))
    w = random_weights(kind, F, 3, rng)
    dropped = rec_model(cls, 3)
    cn.seed(5)
    plain = cn.Sequential([L.Input((T, F)), cls(3, return_sequences=True, name="rnn")], dtype="float64")
    cn.seed(5)
    zero = cn.Sequential([L.Input((T, F)), cls(3, return_sequences=True, recurrent_dropout=0.0, name="rnn")],
                         dtype="float64")
    for m in (dropped, plain, zero):
        m.build()
        m.get_layer("rnn").set_weights(w)
    np.testing.assert_array_equal(dropped.predict(x), plain.predict(x))  # inference ignores it
    y_plain, pull_plain = plain.vjp(x, training=True)
    y_zero, pull_zero = zero.vjp(x, training=True)
    np.testing.assert_array_equal(y_zero, y_plain)  # rate 0 in training: bit for bit no dropout
    dy = rng.standard_normal(y_plain.shape)
    np.testing.assert_array_equal(pull_zero(dy), pull_plain(dy))
    y_dropped, _ = dropped.vjp(x, training=True)
    assert not np.allclose(y_dropped, y_plain)  # but a positive rate drops in training


def rec_reference(kind, x, w, r, go_backwards):
    """Outputs (processing order) and what the backward needs, with recurrent mask r."""
    x = x[:, ::-1] if go_backwards else x
    if kind == "simple_rnn":
        y, _ = ref_rec.simple_rnn_forward(x, w[0], w[1], w[2], recurrent_mask=r)
        return y, lambda dy: ref_rec.simple_rnn_backward(dy, None, x, w[0], w[1], None, y, recurrent_mask=r)[:4]
    if kind == "lstm":
        y, _, _, steps = ref_rec.lstm_forward(x, w[0], w[1], w[2], recurrent_mask=r)
        return y, lambda dy: ref_rec.lstm_backward(dy, None, None, x, w[0], w[1], steps)[:4]
    y, _, steps = ref_rec.gru_forward(x, w[0], w[1], w[2], w[3], recurrent_mask=r)
    return y, lambda dy: ref_rec.gru_backward(dy, None, x, w[0], w[1], steps)[:5]


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recurrent_dropout_training_matches_reference(kind, go_backwards, rng):
    """Outputs, input and weight gradients in training against the reference
    run with the mask the layer draws (read off a SimpleRNN of the same seed
    and layout: the same key), with the input dropout on too."""
    cls, H = KINDS[kind][0], F  # H = F: the read-off SimpleRNN has the layer's units
    x = rng.standard_normal((N, T, F))
    probe = rng.uniform(0.2, 1.0, x.shape)
    r = drawn_recurrent_masks(probe)[0]
    input_mask = drawn_mask(probe, go_backwards=go_backwards)
    cn.seed(5)
    model = cn.Sequential([L.Input((T, F)), cls(H, return_sequences=True, dropout=RATE, recurrent_dropout=REC_RATE,
                                                go_backwards=go_backwards, name="rnn")], dtype="float64")
    model.build()
    w = random_weights(kind, F, H, rng)
    model.get_layer("rnn").set_weights(w)
    y, backward = rec_reference(kind, ref_dropout.sequence_dropout_forward(x, input_mask, RATE), w, r, go_backwards)
    got, pullback = model.vjp(x, training=True)
    np.testing.assert_allclose(got, y, **MODEL_F64)
    dy = rng.standard_normal(y.shape)
    grads = backward(dy)
    dx = grads[0][:, ::-1] if go_backwards else grads[0]
    np.testing.assert_allclose(pullback(dy), ref_dropout.sequence_dropout_forward(dx, input_mask, RATE),
                               **MODEL_F64)
    model.compile(optimizer="sgd", loss="mse")
    target = rng.standard_normal(y.shape)
    _, weight_grads = model.compute_gradients(x, target)
    for g, e in zip(weight_grads, backward(2 * (y - target) / y.size)[1:]):
        np.testing.assert_allclose(g, e, **MODEL_F64)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradient_check_with_the_recurrent_mask_held_fixed(kind, rng):
    cls = KINDS[kind][0]
    cn.seed(9)
    m = cn.Sequential([L.Input((T, F)), cls(4, return_sequences=True, dropout=0.2, recurrent_dropout=0.3),
                       L.Bidirectional(cls(3, recurrent_dropout=0.4)), L.Dense(3)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = rng.standard_normal((N, T, F)), rng.integers(0, 3, N)
    assert cn.gradient_check(m, x, y, epsilon=GRADCHECK_EPS, max_params=None) < GRADCHECK_THRESHOLD
    train_loss, _ = m._engine.loss_and_gradients([x], [y])
    assert train_loss != pytest.approx(m.evaluate(x, y)["loss"], rel=1e-6)  # dropout is active


def test_recurrent_dropout_round_trips(tmp_path, rng):
    """The attribute survives the model file (the every-kind lists of
    test_saving.py, test_interop.py's ONNX export and cpp/examples/interop.py's
    C++ predict cover layers with it too)."""
    cn.seed(2)
    model = cn.Sequential([L.Input((T, F)), L.LSTM(3, return_sequences=True, recurrent_dropout=0.3),
                           L.GRU(2, recurrent_dropout=0.2)])
    model.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    model.fit(x, rng.standard_normal((N, 2)).astype(np.float32), epochs=1, batch_size=3, verbose=0)
    path = tmp_path / "m.corenn"
    model.save(path)
    loaded = cn.models.load_model(path)
    assert [layer.recurrent_dropout for layer in loaded.layers[:2]] == [0.3, 0.2]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_bad_recurrent_dropout_rates():
    with pytest.raises(ValueError, match=r"LSTM: recurrent_dropout must be finite and in \[0.0, 1.0\), got 1.0"):
        L.LSTM(3, recurrent_dropout=1.0)
    with pytest.raises(ValueError, match=r"SimpleRNN: recurrent_dropout must be finite and in \[0.0, 1.0\), "
                                         r"got -0.5"):
        L.SimpleRNN(3, recurrent_dropout=-0.5)
    with pytest.raises(ValueError, match=r"GRU: recurrent_dropout must be finite and in \[0.0, 1.0\), got nan"):
        L.GRU(3, recurrent_dropout=float("nan"))
    e = cn._core.Engine("float32")
    with pytest.raises(ValueError, match=r"layer 'r' \(gru\): recurrent_dropout must be in \[0, 1\), got 1.5"):
        e.add({"kind": "gru", "name": "r", "units": 2, "recurrent_dropout": 1.5})
