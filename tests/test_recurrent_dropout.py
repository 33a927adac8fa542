"""The recurrent layers' `dropout` (Keras's): in training, ONE mask over the
input units per sequence, reused at every step (inverted scaling); inference
ignores it; the same seed draws the same masks. Against the step-by-step
NumPy reference run on the masked input (tests/reference/dropout.py's
sequence_dropout_forward), gradients included, and finite differences with
the mask held fixed."""

import numpy as np
import pytest

import corenn as cn
from reference import dropout as ref_dropout
from test_recurrent_layers import KINDS, random_weights, reference_backward, reference_forward
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, MODEL_F64

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
