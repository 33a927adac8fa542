"""MultiHeadAttention and the masks its inputs carry (Keras's
_compute_attention_mask): masked value/key steps are not attended, a masked
query attends nothing, ANDed with attention_mask and the causal mask; the
output carries the query's mask. Against tests/reference/transformer.py in
float32 and float64, padding invariance (MHA, transformer_encoder, a
following LSTM), finite differences, the model file and ONNX export."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from reference import transformer as ref
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, assert_close

L = cn.layers

TOKENS = np.array([[5, 3, 8], [2, 7, 1]])


def padded(tokens, T):
    return np.pad(tokens, ((0, 0), (0, T - tokens.shape[1]))).astype(np.float64)


def self_attention(T, dtype, head=None, mask_zero=True):
    """ids (T,) -> Embedding(10, 8, mask_zero) -> MultiHeadAttention(2, 4)(e, e) [-> head]."""
    cn.seed(3)
    ids = L.Input((T,))
    e = L.Embedding(10, 8, mask_zero=mask_zero, name="emb")(ids)
    y = L.MultiHeadAttention(2, 4, name="mha")(e, e)
    return cn.Model(ids, head(y) if head else y, dtype=np.dtype(dtype).name)


def with_random_biases(model, rng):
    """The MHA's biases random, so a zero-head row (output = b_o) is visible."""
    mha = model.get_layer("mha")
    mha.set_weights([w if w.ndim == 2 else rng.standard_normal(w.shape).astype(w.dtype)
                     for w in mha.get_weights()])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_padding_leaves_the_valid_steps_unchanged_and_matches_reference(dtype, rng):
    short, long = self_attention(3, dtype), self_attention(6, dtype)
    with_random_biases(short, rng)
    long.set_weights(short.get_weights())
    want = short.predict(TOKENS.astype(dtype))
    x = padded(TOKENS, 6).astype(dtype)
    got = long.predict(x)
    assert_close(got[:, :3], want, dtype, what="valid steps")
    # The whole output against the reference with Keras's combined mask: the
    # padded queries attend nothing (zero heads, so the output bias).
    valid = x != 0
    emb = long.get_layer("emb").get_weights()[0][x.astype(int)]
    mask = valid[:, :, None] & valid[:, None, :]
    expected, _ = ref.multi_head_attention_forward(emb, emb, emb, long.get_layer("mha").get_weights(), 2, mask)
    assert_close(got, expected, dtype)
    assert_close(got[:, 3:], np.broadcast_to(long.get_layer("mha").get_weights()[-1], (2, 3, 8)), dtype)
    # The output carries the query's mask.
    m = long._engine.output_masks([x])[0]
    assert np.array_equal(m, valid.astype(m.dtype))


def test_padding_changed_the_output_before(rng):
    # The failure this fixes: without the masks the padded keys are attended.
    short, long = self_attention(3, np.float64, mask_zero=False), self_attention(6, np.float64, mask_zero=False)
    long.set_weights(short.get_weights())
    assert np.abs(long.predict(padded(TOKENS, 6))[:, :3] - short.predict(TOKENS.astype(np.float64))).max() > 1e-4


def test_no_mask_is_bit_identical_to_an_all_valid_mask(rng):
    # ids with no 0: mask_zero=True carries an all-ones mask, which must change nothing.
    plain, masked = self_attention(4, np.float64, mask_zero=False), self_attention(4, np.float64)
    masked.set_weights(plain.get_weights())
    x = rng.integers(1, 10, (3, 4)).astype(np.float64)
    assert np.array_equal(masked.predict(x), plain.predict(x))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_transformer_encoder_ignores_padding(dtype):
    def model(T):
        cn.seed(5)
        ids = L.Input((T,))
        e = L.Embedding(10, 8, mask_zero=True, name="emb")(ids)
        return cn.Model(ids, cn.applications.transformer_encoder(e, 2, 16, name="enc"), dtype=np.dtype(dtype).name)

    short, long = model(3), model(7)
    long.set_weights(short.get_weights())
    assert_close(long.predict(padded(TOKENS, 7).astype(dtype))[:, :3], short.predict(TOKENS.astype(dtype)), dtype,
                 what="valid steps")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_attention_mask_combines_with_the_value_mask(dtype, rng):
    cn.seed(6)
    T = 5
    ids, am = L.Input((T,), name="ids"), L.Input((T, T), name="am")
    e = L.Embedding(10, 8, mask_zero=True, name="emb")(ids)
    model = cn.Model([ids, am], L.MultiHeadAttention(2, 4, name="mha")(e, e, attention_mask=am, use_causal_mask=True),
                     dtype=np.dtype(dtype).name)
    with_random_biases(model, rng)
    x = np.array([[4, 9, 0, 2, 0], [0, 1, 3, 3, 7], [6, 0, 0, 0, 0]], dtype)
    attend = rng.random((3, T, T)) < 0.7
    attend[0, 3] = [False, False, True, False, True]  # only padded keys (and causal) left: zeros
    got = model.predict([x, attend.astype(dtype)])
    valid = x != 0
    mask = attend & valid[:, :, None] & valid[:, None, :]
    emb = model.get_layer("emb").get_weights()[0][x.astype(int)]
    expected, _ = ref.multi_head_attention_forward(emb, emb, emb, model.get_layer("mha").get_weights(), 2, mask,
                                                   causal=True)
    assert_close(got, expected, dtype)
    assert_close(got[0, 3], model.get_layer("mha").get_weights()[-1], dtype, what="a query with no key")
    # Not the reference without the value mask.
    unmasked, _ = ref.multi_head_attention_forward(emb, emb, emb, model.get_layer("mha").get_weights(), 2, attend,
                                                   causal=True)
    assert np.abs(got - unmasked).max() > 1e-3


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_output_mask_reaches_a_following_lstm(dtype):
    head = lambda y: L.Dense(2, name="out")(L.LSTM(5, name="rnn")(y))  # noqa: E731
    short, long = self_attention(3, dtype, head), self_attention(6, dtype, head)
    long.set_weights(short.get_weights())
    assert_close(long.predict(padded(TOKENS, 6).astype(dtype)), short.predict(TOKENS.astype(dtype)), dtype)


def test_gradient_check_masked_mha(rng):
    model = self_attention(5, np.float64, lambda y: L.Dense(2)(L.LSTM(3)(y)))
    with_random_biases(model, rng)
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x = np.array([[4, 9, 2, 0, 0], [1, 3, 0, 0, 0], [6, 5, 8, 7, 2]], np.float64)
    assert cn.gradient_check(model, x, rng.integers(0, 2, 3), epsilon=GRADCHECK_EPS, max_params=None) \
        < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_masked_model_round_trips(dtype, tmp_path, rng):
    model = self_attention(6, dtype, lambda y: L.GRU(3, name="gru")(y))
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn")
    x = padded(rng.integers(1, 10, (4, 4)), 6).astype(dtype)
    assert np.array_equal(loaded.predict(x), model.predict(x))


def test_onnx_export_refuses_masked_mha(tmp_path):
    pytest.importorskip("onnx", reason="export_onnx needs onnx")
    with pytest.raises(ValueError, match=r"export_onnx: the model masks sequences .* attention layers"):
        cn.interop.export_onnx(self_attention(4, np.float32), tmp_path / "m.onnx")
