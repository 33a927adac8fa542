"""Attention layers beyond the dot product (course 5, week 3): AdditiveAttention
(Bahdanau's scores, Keras's layer), Attention(score_mode="concat") (Keras 3),
dropout on the attention weights of Attention, AdditiveAttention and
MultiHeadAttention, and Keras's mask=[query_mask, value_mask] (explicit, or the
masks of Embedding(mask_zero=True) flowing in) — against the NumPy references
of tests/reference/attention.py in float32 and float64, finite differences,
and Keras's semantics; bad input."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import attention as ref
from reference import dropout as dropout_ref
from reference import random as random_ref
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, assert_close

L = cn.layers


def gid(v):
    return str(v).replace(" ", "")


def scored_model(layer, Tq, Tv, D, Dv, with_key, masks=(False, False), dtype="float64", **call):
    """[query, value(, key)(, query_mask)(, value_mask)] -> [output, weights]."""
    q, v = L.Input((Tq, D), name="q"), L.Input((Tv, Dv), name="v")
    inputs = [q, v] + ([L.Input((Tv, D), name="k")] if with_key else [])
    qm = L.Input((Tq,), name="qm") if masks[0] else None
    vm = L.Input((Tv,), name="vm") if masks[1] else None
    extra = [m for m in (qm, vm) if m is not None]
    out, scores = layer(inputs, mask=[qm, vm] if extra else None, return_attention_scores=True, **call)
    return cn.Model(inputs + extra, [out, scores], dtype=dtype)


def valid_steps(rng, N, T):
    """(N, T) 0/1 with at least one valid step per example."""
    m = rng.random((N, T)) < 0.6
    m[np.arange(N), rng.integers(0, T, N)] = True
    return m


# (score, use_scale): Attention's dot and concat, AdditiveAttention.
SCORES = [("dot", True), ("concat", False), ("concat", True), ("additive", False), ("additive", True)]


def make_layer(score, use_scale, **options):
    if score == "additive":
        return L.AdditiveAttention(use_scale=use_scale, name="att", **options)
    return L.Attention(use_scale=use_scale, score_mode=score, name="att", **options)


def set_score_weights(layer, score, use_scale, D, rng, dtype):
    """Weights away from their initial values; returns the reference's (scale, concat_weight)."""
    if score == "additive":
        w = rng.standard_normal(D) if use_scale else 1.0
        if use_scale:
            layer.set_weights([w.astype(dtype)])
        return w, 1.0
    scale = 0.8 if use_scale else 1.0
    weights = ([np.array([scale])] if use_scale else []) + ([np.array([1.3])] if score == "concat" else [])
    layer.set_weights([w.astype(dtype) for w in weights])
    return scale, 1.3


@pytest.mark.parametrize("masks", [(False, False), (True, True)], ids=["nomask", "masks"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("score,use_scale", SCORES, ids=gid)
@pytest.mark.parametrize("case", [(1, 1, 1, 1), (3, 5, 4, 2), (6, 6, 3, 3)], ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_scores_match_reference(dtype, case, score, use_scale, causal, masks, rng):
    Tq, Tv, D, Dv = case
    model = scored_model(make_layer(score, use_scale), Tq, Tv, D, Dv, True, masks, np.dtype(dtype).name,
                         use_causal_mask=causal)
    scale, concat_weight = set_score_weights(model.get_layer("att"), score, use_scale, D, rng, dtype)
    N = 3
    q, v, k = (rng.standard_normal((N, *s)).astype(dtype) for s in ((Tq, D), (Tv, Dv), (Tv, D)))
    qm, vm = (valid_steps(rng, N, Tq), valid_steps(rng, N, Tv)) if masks[0] else (None, None)
    xs = [q, v, k] + ([qm.astype(dtype), vm.astype(dtype)] if masks[0] else [])
    (out, weights), pullback = model.vjp(xs)
    eo, ep = ref.layer_forward(q, v, k, score, scale, concat_weight, qm, vm, causal)
    assert out.dtype == weights.dtype == dtype
    assert_close(out, eo, dtype, what="output")
    assert_close(weights, ep, dtype, what="weights")
    assert np.all(np.isfinite(out))
    # The inputs' gradients against finite differences of the float64 reference.
    if dtype == np.float64:
        P = projection(out.shape, 3)
        grads = pullback([P, np.zeros_like(weights)])
        for name, x, g in zip(("query", "value", "key"), (q, v, k), grads):
            numeric = numerical_gradient(lambda: float(np.sum(P * ref.layer_forward(
                q, v, k, score, scale, concat_weight, qm, vm, causal)[0])), x)
            assert relative_difference(g, numeric) < GRADCHECK_THRESHOLD, name
        if masks[0]:
            assert not grads[3].any() and not grads[4].any()


@pytest.mark.parametrize("score,use_scale", SCORES, ids=gid)
def test_gradient_check_with_weights(score, use_scale, rng):
    # Every parameter (scale, concat_score_weight) and key = value, whose two uses add up.
    cn.seed(3)
    q, v = L.Input((3, 4)), L.Input((5, 4))
    h = make_layer(score, use_scale)([q, v])
    m = cn.Model([q, v], L.Dense(2)(L.Flatten()(h)), dtype="float64")
    set_score_weights(m.get_layer("att"), score, use_scale, 4, rng, np.float64)
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    xs = [rng.standard_normal((4, 3, 4)), rng.standard_normal((4, 5, 4))]
    assert cn.gradient_check(m, xs, rng.integers(0, 2, 4), epsilon=GRADCHECK_EPS, max_params=None) \
        < GRADCHECK_THRESHOLD
    _, pullback = m.vjp(xs)
    P = projection((4, 2), 1)
    for x, analytic in zip(xs, pullback(P)):
        numeric = numerical_gradient(lambda: float(np.sum(P * m.predict(xs))), x)
        assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


def test_additive_attention_weights_and_keras_defaults():
    cn.seed(5)
    layer = L.AdditiveAttention()
    assert layer.use_scale and layer.dropout == 0.0  # Keras's defaults
    model = scored_model(layer, 3, 5, 6, 2, True)
    (scale,) = layer.get_weights()
    assert scale.shape == (6,) and model._engine.weight_names(model.layers.index(layer)) == ["scale"]
    assert np.all(np.abs(scale) <= np.sqrt(6.0 / 12.0)) and np.std(scale) > 0  # glorot_uniform, fans (6, 6)
    assert model.count_params() == 6
    text = []
    model.summary(print_fn=text.append)
    row = next(line for line in text[0].splitlines() if "(AdditiveAttention)" in line)
    assert "  6  " in row and "Total params: 6" in text[0]
    bare = scored_model(L.AdditiveAttention(use_scale=False), 3, 5, 6, 2, True)
    assert bare.count_params() == 0
    concat = scored_model(L.Attention(score_mode="concat", use_scale=True, name="c"), 3, 5, 6, 2, True)
    assert [w.tolist() for w in concat.get_layer("c").get_weights()] == [[1.0], [1.0]]
    assert concat.count_params() == 2


def test_bahdanau_attention_from_the_course(rng):
    # The course's attention: the scores of W₁·s and W₂·h through AdditiveAttention
    # equal vᵀ tanh(W₁ s + W₂ h) computed by hand.
    cn.seed(9)
    s, h = L.Input((2, 3), name="s"), L.Input((4, 5), name="h")
    q, k = L.Dense(6, use_bias=False, name="W1")(s), L.Dense(6, use_bias=False, name="W2")(h)
    context, alphas = L.AdditiveAttention(name="att")([q, h, k], return_attention_scores=True)
    model = cn.Model([s, h], [context, alphas], dtype="float64")
    xs, xh = rng.standard_normal((3, 2, 3)), rng.standard_normal((3, 4, 5))
    W1, W2 = model.get_layer("W1").get_weights()[0], model.get_layer("W2").get_weights()[0]
    (vvec,) = model.get_layer("att").get_weights()
    e = np.tanh((xs @ W1.T)[:, :, None, :] + (xh @ W2.T)[:, None, :, :]) @ vvec
    a = np.exp(e - e.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    context_, alphas_ = model.predict([xs, xh])
    assert_close(alphas_, a, np.float64, what="alphas")
    assert_close(context_, a @ xh, np.float64, what="context")


# ---------------------------------------------------------------- masks

def test_fully_masked_values_give_zeros_never_nan(rng):
    model = scored_model(L.AdditiveAttention(name="att"), 2, 3, 4, 4, False, (True, True))
    q, v = rng.standard_normal((2, 2, 4)), rng.standard_normal((2, 3, 4))
    qm, vm = np.ones((2, 2)), np.array([[0, 0, 0], [1, 0, 1]], np.float64)
    (out, weights), pullback = model.vjp([q, v, qm, vm])
    assert np.all(np.isfinite(out)) and not out[0].any() and not weights[0].any()
    assert np.allclose(weights[1].sum(-1), 1.0) and not weights[1, :, 1].any()
    grads = pullback([np.ones_like(out), np.zeros_like(weights)])
    assert all(np.all(np.isfinite(g)) for g in grads)
    # A masked query's output row is zeros, its gradient too (Keras).
    (out, _), pullback = model.vjp([q, v, np.array([[1, 0], [0, 1]], np.float64), np.ones((2, 3))])
    assert not out[0, 1].any() and not out[1, 0].any() and out[0, 0].any()
    dq = pullback([np.ones_like(out), np.zeros((2, 2, 3))])[0]
    assert not dq[0, 1].any() and not dq[1, 0].any()


@pytest.mark.parametrize("kind", ["dot", "additive"])
def test_embedding_masks_flow_in_and_padding_changes_nothing(kind, rng):
    # Keras: Embedding(mask_zero=True)'s mask reaches the attention as the
    # query's and the value's; padded keys are left out and padded queries give
    # zeros, so the valid steps predict the same with or without padding.
    def model(T):
        cn.seed(11)
        ids = L.Input((T,))
        h = L.Embedding(9, 4, mask_zero=True, name="emb")(ids)
        att = L.Attention(use_scale=True, name="att") if kind == "dot" else L.AdditiveAttention(name="att")
        out = att([h, h])
        return cn.Model(ids, L.LSTM(3, return_sequences=True, name="rnn")(out))

    short, padded = model(3), model(6)
    padded.set_weights(short.get_weights())
    tokens = np.array([[3, 5, 2], [7, 1, 4]], np.float32)
    want = short.predict(tokens)
    got = padded.predict(np.concatenate([tokens, np.zeros((2, 3), np.float32)], axis=1))
    assert_close(got[:, :3], want, np.float32, what="valid steps")
    # The attention's output carries the query's mask: the LSTM keeps its state.
    assert np.array_equal(got[:, 3:], np.repeat(got[:, 2:3], 3, axis=1))
    # The mask of the attention's output as the engine sees it.
    att_out = cn.Model(padded.input, padded.get_layer("att").output)
    m = att_out._engine.output_masks([np.concatenate([tokens, np.zeros((2, 3), np.float32)], axis=1)])[0]
    assert np.array_equal(m, np.array([[1, 1, 1, 0, 0, 0]] * 2))


def test_explicit_masks_equal_the_propagated_ones(rng):
    cn.seed(12)
    ids = L.Input((5,))
    h = L.Embedding(9, 4, mask_zero=True, name="emb")(ids)
    auto = cn.Model(ids, L.AdditiveAttention(name="att")([h, h]))
    ids2, qm, vm = L.Input((5,)), L.Input((5,)), L.Input((5,))
    h2 = L.Embedding(9, 4, name="emb")(ids2)
    explicit = cn.Model([ids2, qm, vm], L.AdditiveAttention(name="att")([h2, h2], mask=[qm, vm]))
    explicit.set_weights(auto.get_weights())
    tokens = np.array([[3, 5, 0, 2, 0], [0, 1, 4, 4, 8]], np.float32)
    valid = (tokens != 0).astype(np.float32)
    assert np.array_equal(auto.predict(tokens), explicit.predict([tokens, valid, valid]))


def test_value_mask_only(rng):
    model = scored_model(L.Attention(name="att"), 3, 4, 2, 2, False, (False, True))
    q, v = rng.standard_normal((2, 3, 2)), rng.standard_normal((2, 4, 2))
    vm = np.array([[1, 1, 0, 0], [0, 1, 1, 1]], np.float64)
    out, weights = model.predict([q, v, vm])
    eo, ep = ref.layer_forward(q, v, value_mask=vm)
    assert_close(out, eo, np.float64)
    assert_close(weights, ep, np.float64)


# ---------------------------------------------------------------- dropout

def attention_and_mha(rate, dtype="float64"):
    """q (4, 3) self-attention through Attention, AdditiveAttention and MultiHeadAttention."""
    x = L.Input((4, 3))
    a = L.Attention(dropout=rate, name="att")([x, x])
    b = L.AdditiveAttention(dropout=rate, name="add")([x, x])
    c = L.MultiHeadAttention(2, 2, dropout=rate, name="mha")(x, x)
    return cn.Model(x, L.Concatenate()([a, b, c]), dtype=dtype)


def test_rate_zero_is_bit_identical_and_inference_ignores_dropout(rng):
    cn.seed(21)
    zero = attention_and_mha(0.0)
    cn.seed(21)
    half = attention_and_mha(0.5)
    x = rng.standard_normal((5, 4, 3))
    y0 = zero.predict(x)
    assert np.array_equal(zero.vjp(x, training=True)[0], y0)  # rate 0: training = inference, bit for bit
    assert np.array_equal(half.predict(x), y0)                # inference unaffected by the rate
    assert not np.array_equal(half.vjp(x, training=True)[0], y0)


def test_dropped_weights_are_the_mask_dropout_draws():
    # Keras's Attention returns the weights after dropout in training: P ⊙ keep / (1 − rate),
    # keep drawn from the model's dropout key as Dropout draws it (dropout_forward's bits).
    rate, x = 0.3, np.random.default_rng(0).standard_normal((6, 5, 4))
    model = scored_model(L.AdditiveAttention(dropout=rate, name="att"), 5, 5, 4, 4, False)
    p = model.predict([x, x])[1]
    (_, dropped), _ = model.vjp([x, x], training=True)
    # step 0, the model's one call (node 0 of 1)
    key = random_ref.random_bits(np.uint64(model._engine.dropout_key), np.zeros(1, np.uint64))[0]
    keep = dropout_ref.dropout_mask(p.shape, rate, key)
    assert_close(dropped, p * keep / (1 - rate), np.float64, what="dropped weights")


@pytest.mark.parametrize("layer", ["att", "add", "mha"])
def test_dropout_statistics_and_reproducibility(layer, rng):
    rate = 0.4
    x = rng.standard_normal((400, 4, 3))

    def run(seed):
        cn.seed(seed)
        m = attention_and_mha(rate)
        sub = cn.Model(m.input, m.get_layer(layer).output[0])  # the output, not the scores
        return sub.predict(x), sub.vjp(x, training=True)[0]

    clean, noisy = run(1)
    again_clean, again = run(1)
    assert np.array_equal(noisy, again)          # same seed, same masks
    assert not np.array_equal(run(2)[1], noisy)  # another seed, other masks
    # Inverted dropout keeps the mean: E[P̃] = P, so E[out] = out (noise averages out).
    err = np.abs((noisy - clean).mean(axis=0))
    assert np.all(err < 0.1 * np.abs(clean).mean() + 0.05)
    assert np.abs(noisy - clean).mean() > 0.01


def test_gradient_check_with_dropout_active(rng):
    # gradient_check runs training passes: the masks repeat within its step.
    cn.seed(8)
    m = attention_and_mha(0.3)
    m = cn.Model(m.input, L.Dense(2)(L.Flatten()(m.output)), dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x = rng.standard_normal((3, 4, 3))
    assert cn.gradient_check(m, x, rng.integers(0, 2, 3), epsilon=GRADCHECK_EPS, max_params=None) \
        < GRADCHECK_THRESHOLD


def test_dropout_survives_the_model_file(tmp_path, rng):
    cn.seed(4)
    model = attention_and_mha(0.25)
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn")
    for name in ("att", "add", "mha"):
        assert loaded.get_layer(name).dropout == 0.25
    x = rng.standard_normal((2, 4, 3))
    assert np.array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_masked_and_concat_models_round_trip(dtype, tmp_path, rng):
    # Masks are not stored: the loaded model derives them from mask_zero again;
    # explicit mask inputs and score_mode come back from the layer's attributes.
    cn.seed(13)
    ids, vm = L.Input((6,), name="ids"), L.Input((6,), name="vm")
    h = L.Embedding(7, 4, mask_zero=True, name="emb")(ids)
    a = L.AdditiveAttention(use_scale=False, name="add")([h, h])
    b = L.Attention(score_mode="concat", use_scale=True, name="cat")([a, h], mask=[None, vm])
    model = cn.Model([ids, vm], L.GRU(3, name="gru")(b), dtype=np.dtype(dtype).name)
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn")
    x = [rng.integers(0, 7, (5, 6)).astype(dtype), (rng.random((5, 6)) < 0.7).astype(dtype)]
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_layer("cat").get_config() == model.get_layer("cat").get_config()
    assert loaded.get_layer("cat").value_mask_input and not loaded.get_layer("cat").query_mask_input


# ---------------------------------------------------------------- bad input

def test_bad_inputs():
    q, v = L.Input((3, 4)), L.Input((5, 4))
    for make in (lambda **kw: L.Attention(**kw), lambda **kw: L.AdditiveAttention(**kw)):
        with pytest.raises(ValueError, match=r"dropout must be finite and in \[0\.0, 1\.0\)"):
            make(dropout=1.0)
        with pytest.raises(ValueError, match=r"dropout must be finite and in \[0\.0, 1\.0\)"):
            make(dropout=-0.1)
        with pytest.raises(ValueError, match=r"key and value must have the same number of steps"):
            make()([q, v, L.Input((6, 4))])
        with pytest.raises(ValueError, match=r"query and key must have the same features"):
            make()([q, L.Input((5, 3))])
        with pytest.raises(ValueError, match=r"mask: value_mask must have shape \(5,\) per example"):
            make()([q, v], mask=[None, L.Input((4,))])
        with pytest.raises(ValueError, match=r"mask: query_mask must have shape \(3,\) per example"):
            make()([q, v], mask=[L.Input((3, 1)), None])
        with pytest.raises(ValueError, match=r"mask must be a list \[query_mask, value_mask\]"):
            make()([q, v], mask=L.Input((5,)))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: dropout must be finite and in \[0\.0, 1\.0\)"):
        L.MultiHeadAttention(2, 4, dropout=1.5)
    with pytest.raises(ValueError, match=r"score_mode must be one of 'dot', 'concat'"):
        L.Attention(score_mode="additive")
    layer = L.AdditiveAttention()
    layer([q, v], mask=[None, L.Input((5,))])
    with pytest.raises(ValueError, match=r"value_mask_input is fixed by the layer's first call"):
        layer([q, v])


def test_engine_checks_dropout_and_score_mode():
    # The model file's values are checked by the engine itself.
    from corenn import _core
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1"):
        _core.layer_output_shapes({"kind": "additive_attention", "name": "a", "dropout": 1.0}, [[3, 4], [5, 4]])
    with pytest.raises(ValueError, match=r"score_mode must be 'dot' or 'concat', got 'sum'"):
        _core.layer_output_shapes({"kind": "attention", "name": "a", "score_mode": "sum"}, [[3, 4], [5, 4]])
    with pytest.raises(ValueError, match=r"multi_head_attention.*dropout must be in \[0, 1\)"):
        _core.layer_output_shapes({"kind": "multi_head_attention", "name": "m", "num_heads": 1, "key_dim": 2,
                                   "dropout": -1.0}, [[3, 4], [5, 4], [5, 4]])


# ---------------------------------------------------------------- PyTorch with kdim, vdim != embed_dim

def test_torch_multihead_attention_with_kdim_vdim_loads_and_matches(rng):
    torch = pytest.importorskip("torch")
    N, T, S, E, H, kdim, vdim = 3, 4, 6, 8, 2, 5, 3
    torch.manual_seed(0)
    net = torch.nn.MultiheadAttention(E, H, kdim=kdim, vdim=vdim, batch_first=True).double()
    with torch.no_grad():  # non-zero biases, so a misplaced one shows
        net.in_proj_bias.copy_(torch.from_numpy(rng.standard_normal(3 * E) * 0.3))
        net.out_proj.bias.copy_(torch.from_numpy(rng.standard_normal(E) * 0.3))
    assert {"q_proj_weight", "k_proj_weight", "v_proj_weight"} <= set(net.state_dict())
    q, v, k = L.Input((T, E)), L.Input((S, vdim)), L.Input((S, kdim))
    layer = L.MultiHeadAttention(H, E // H, name="mha")
    model = cn.Model([q, v, k], layer(q, v, key=k), dtype="float64")
    cn.interop.load_torch_state_dict(model, net.state_dict())
    sd = {name: t.detach().numpy() for name, t in net.state_dict().items()}
    got = layer.get_weights()
    assert np.array_equal(got[0], sd["q_proj_weight"]) and np.array_equal(got[2], sd["k_proj_weight"])
    assert np.array_equal(got[4], sd["v_proj_weight"]) and np.array_equal(got[5], sd["in_proj_bias"][2 * E:])
    xq, xv, xk = rng.standard_normal((N, T, E)), rng.standard_normal((N, S, vdim)), rng.standard_normal((N, S, kdim))
    tq, tv, tk = (torch.from_numpy(a).requires_grad_() for a in (xq, xv, xk))
    ty, _ = net(tq, tk, tv)
    dy = rng.standard_normal(ty.shape)
    ty.backward(torch.from_numpy(dy))
    out, pullback = model.vjp([xq, xv, xk])
    assert_close(out, ty.detach().numpy(), np.float64, what="output")
    for g, t, name in zip(pullback(dy), (tq, tv, tk), ("query", "value", "key")):
        assert_close(g, t.grad.numpy(), np.float64, what=f"d{name}")
