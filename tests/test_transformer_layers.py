"""The transformer's layers in models (course 5, weeks 3–4): Softmax over any
axis, LayerNormalization, PositionalEncoding, Attention and
MultiHeadAttention against the NumPy references (tests/reference/) in
float32 and float64; their gradients (model.vjp, compute_gradients) against
the references, against finite differences and against PyTorch
(nn.LayerNorm, nn.MultiheadAttention, F.scaled_dot_product_attention,
nn.TransformerEncoderLayer; skipped without torch); masks (causal, padding,
fully masked queries); the transformer encoder block trained on reversing
digit sequences; bad input."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import attention as attention_ref
from reference import layer_norm as ln_ref
from reference import transformer as ref
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, MODEL_F64, assert_close

L = cn.layers


def gid(v):
    return str(v).replace(" ", "")


def sequential(layers, dtype="float32"):
    model = cn.Sequential(layers, dtype=dtype)
    model.build()
    return model


def input_gradient_check(model, x, seed=0):
    """The course's relative difference between model.vjp's dx and central
    differences of <P, predict(x)> for a fixed random cotangent P (float64)."""
    y, pullback = model.vjp(x)
    P = projection(y.shape, seed)
    numeric = numerical_gradient(lambda: float(np.sum(P * model.predict(x))), x)
    return relative_difference(pullback(P), numeric)


# ---------------------------------------------------------------- Softmax

# (per-example shape, axis): the last axis, a middle one, the first, rank 1,
# one entry along the axis, negative axes.
SOFTMAX_CASES = [((5,), -1), ((3, 4), -1), ((3, 4), 1), ((2, 3, 4), 2), ((2, 3, 4), -3), ((4, 1, 3), 2),
                 ((6, 2), 1)]


@pytest.mark.parametrize("shape,axis", SOFTMAX_CASES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_softmax_matches_reference(dtype, shape, axis, rng):
    model = sequential([L.Input(shape), L.Softmax(axis=axis)], dtype=np.dtype(dtype).name)
    x = (3 * rng.standard_normal((4, *shape))).astype(dtype)
    y, pullback = model.vjp(x)
    expected = ref.softmax(x, axis)
    assert y.dtype == dtype
    assert_close(y, expected, dtype, what="y")
    assert_close(np.sum(y, axis=axis), np.ones(expected.sum(axis=axis).shape), dtype, what="sums")
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_close(pullback(dy), ref.softmax_backward(dy, expected, axis), dtype, what="dx")


@pytest.mark.parametrize("shape,axis", [((3, 4), 1), ((2, 3, 4), -1), ((2, 3, 2), 2)], ids=gid)
def test_softmax_gradient_check(shape, axis, rng):
    model = sequential([L.Input(shape), L.Softmax(axis=axis)], dtype="float64")
    assert input_gradient_check(model, rng.standard_normal((3, *shape))) < GRADCHECK_THRESHOLD


def test_softmax_over_time_in_a_graph(rng):
    # The course's attention weights: scores (N, Tx, 1) normalised over the Tx steps.
    x = L.Input((7, 1))
    model = cn.Model(x, L.Softmax(axis=1)(x))
    scores = rng.standard_normal((5, 7, 1)).astype(np.float32)
    assert_close(model.predict(scores), ref.softmax(scores, 1), np.float32, what="alphas")


def test_softmax_bad_axes():
    with pytest.raises(ValueError, match=r"softmax.*axis 0 is the batch axis"):
        L.Softmax(axis=0)(L.Input((3,)))
    with pytest.raises(ValueError, match=r"softmax.*axis must name a non-batch axis.*got 3"):
        L.Softmax(axis=3)(L.Input((3, 4)))
    with pytest.raises(ValueError, match=r"softmax.*got -4"):
        L.Softmax(axis=-4)(L.Input((3, 4)))
    with pytest.raises(TypeError, match="Softmax: axis must be an int"):
        L.Softmax(axis=1.0)


# ---------------------------------------------------------------- LayerNormalization

@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 7), (4, 1)], ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_layer_normalization_matches_reference(dtype, shape, rng):
    model = sequential([L.Input(shape), L.LayerNormalization(epsilon=1e-2, name="ln")],
                          dtype=np.dtype(dtype).name)
    D = shape[-1]
    gamma, beta = rng.uniform(0.5, 1.5, D), rng.standard_normal(D)
    model.get_layer("ln").set_weights([gamma.astype(dtype), beta.astype(dtype)])
    x = (2 + 3 * rng.standard_normal((3, *shape))).astype(dtype)
    y, pullback = model.vjp(x)
    rows = x.reshape(-1, D)
    assert_close(y, ln_ref.layer_norm_forward(rows, gamma, beta, 1e-2)[0].reshape(y.shape), dtype, what="y")
    dy = rng.standard_normal(y.shape)
    dx = ln_ref.layer_norm_backward(dy.reshape(-1, D), rows, gamma, 1e-2)[0]
    assert_close(pullback(dy.astype(dtype)), dx.reshape(x.shape), dtype, what="dx")


def test_layer_normalization_weights_and_options():
    model = sequential([L.Input((3, 4)), L.LayerNormalization(name="ln")])
    gamma, beta = model.get_layer("ln").get_weights()
    assert np.array_equal(gamma, np.ones(4, np.float32)) and np.array_equal(beta, np.zeros(4, np.float32))
    bare = sequential([L.Input((4,)), L.LayerNormalization(center=False, scale=False, axis=1)])
    assert bare.get_weights() == []
    only_gamma = sequential([L.Input((4,)), L.LayerNormalization(center=False, name="g")])
    assert [w.shape for w in only_gamma.get_layer("g").get_weights()] == [(4,)]


def test_layer_normalization_gradient_check(rng):
    cn.seed(2)
    m = sequential([L.Input((3, 4)), L.LayerNormalization(name="ln"), L.Flatten(), L.Dense(3)],
                      dtype="float64")
    m.get_layer("ln").set_weights([rng.uniform(0.5, 1.5, 4), rng.standard_normal(4)])
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    x, y = rng.standard_normal((5, 3, 4)), rng.integers(0, 3, 5)
    assert cn.gradient_check(m, x, y, epsilon=GRADCHECK_EPS, max_params=None) < GRADCHECK_THRESHOLD
    assert input_gradient_check(m, x) < GRADCHECK_THRESHOLD


def test_layer_normalization_matches_torch(rng):
    torch = pytest.importorskip("torch")
    net = torch.nn.LayerNorm(6, eps=1e-3).double()
    with torch.no_grad():
        net.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, 6)))
        net.bias.copy_(torch.from_numpy(rng.standard_normal(6)))
    model = sequential([L.Input((4, 6)), L.LayerNormalization(name="ln")], dtype="float64")
    cn.interop.load_torch_state_dict(model, net.state_dict())
    x = rng.standard_normal((3, 4, 6))
    tx = torch.from_numpy(x).requires_grad_()
    ty = net(tx)
    dy = rng.standard_normal(ty.shape)
    ty.backward(torch.from_numpy(dy))
    y, pullback = model.vjp(x)
    np.testing.assert_allclose(y, ty.detach().numpy(), **MODEL_F64)
    np.testing.assert_allclose(pullback(dy), tx.grad.numpy(), **MODEL_F64)


def test_layer_normalization_bad_arguments():
    with pytest.raises(ValueError, match=r"layer_norm.*epsilon: eps must be finite and > 0, got 0"):
        L.LayerNormalization(epsilon=0.0)(L.Input((3,)))
    with pytest.raises(ValueError, match=r"layer_norm.*last axis only.*got axis=1"):
        L.LayerNormalization(axis=1)(L.Input((3, 4)))
    with pytest.raises(ValueError, match=r"layer_norm.*axis 0 is the batch axis"):
        L.LayerNormalization(axis=0)(L.Input((3, 4)))


# ---------------------------------------------------------------- PositionalEncoding

@pytest.mark.parametrize("shape", [(1, 1), (5, 4), (7, 5), (50, 16)], ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_positional_encoding_adds_the_sinusoids(dtype, shape, rng):
    model = sequential([L.Input(shape), L.PositionalEncoding()], dtype=np.dtype(dtype).name)
    x = rng.standard_normal((3, *shape)).astype(dtype)
    y, pullback = model.vjp(x)
    pe = ref.positional_encoding(*shape)
    assert_close(y, x.astype(np.float64) + pe, dtype, what="x + PE")
    assert_close(model.predict(np.zeros_like(x))[1], pe, dtype, what="PE")
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert np.array_equal(pullback(dy), dy)
    assert model.get_weights() == []


def test_positional_encoding_gradient_check(rng):
    model = sequential([L.Input((4, 6)), L.PositionalEncoding(), L.Softmax()], dtype="float64")
    assert input_gradient_check(model, rng.standard_normal((2, 4, 6))) < GRADCHECK_THRESHOLD


def test_positional_encoding_of_the_paper():
    # The paper's first rows by hand: position 0 is (0, 1, 0, 1, ...); position
    # 1 of features 0, 1 is (sin 1, cos 1); max_wavelength sets the slowest frequency.
    model = sequential([L.Input((2, 4)), L.PositionalEncoding(max_wavelength=100.0)], dtype="float64")
    pe = model.predict(np.zeros((1, 2, 4)))[0]
    expected = [[0, 1, 0, 1], [np.sin(1), np.cos(1), np.sin(0.1), np.cos(0.1)]]
    assert_close(pe, expected, np.float64, what="PE")


def test_positional_encoding_bad_arguments():
    with pytest.raises(ValueError, match=r"positional_encoding.*max_wavelength must be finite and > 0"):
        L.PositionalEncoding(max_wavelength=-1.0)(L.Input((3, 4)))
    with pytest.raises(ValueError, match=r"positional_encoding.*expects a sequence \(timesteps, features\)"):
        L.PositionalEncoding()(L.Input((3,)))


# ---------------------------------------------------------------- Attention

def attention_model(Tq, Tv, D, Dv, with_key, dtype="float64", **options):
    q, v = L.Input((Tq, D), name="q"), L.Input((Tv, Dv), name="v")
    inputs = [q, v] + ([L.Input((Tv, D), name="k")] if with_key else [])
    call = {k: options.pop(k) for k in ("use_causal_mask",) if k in options}
    out, scores = L.Attention(name="att", **options)(inputs, return_attention_scores=True, **call)
    return cn.Model(inputs, [out, scores], dtype=dtype)


@pytest.mark.parametrize("use_scale", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", [(1, 1, 1, 1), (3, 5, 4, 2), (6, 6, 3, 3)], ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_attention_matches_reference(dtype, case, causal, use_scale, rng):
    Tq, Tv, D, Dv = case
    model = attention_model(Tq, Tv, D, Dv, True, np.dtype(dtype).name, use_scale=use_scale,
                            use_causal_mask=causal)
    s = 0.7 if use_scale else 1.0
    if use_scale:
        model.get_layer("att").set_weights([np.array([s], dtype)])
    q, v, k = (rng.standard_normal((2, *shape)).astype(dtype) for shape in ((Tq, D), (Tv, Dv), (Tv, D)))
    (out, scores), pullback = model.vjp([q, v, k])
    eo, ep = attention_ref.attention_forward(q, k, v, None, causal, s)
    assert_close(out, eo, dtype, what="output")
    assert_close(scores, ep, dtype, what="weights")
    do = rng.standard_normal(out.shape)
    dq, dv, dk = pullback([do.astype(dtype), np.zeros_like(scores)])
    edq, edk, edv = attention_ref.attention_backward(do, q, k, v, ep, s)
    assert_close(dq, edq, dtype, what="dq")
    assert_close(dk, edk, dtype, what="dk")
    assert_close(dv, edv, dtype, what="dv")


def test_attention_gradient_check(rng):
    cn.seed(4)
    q, v = L.Input((3, 4)), L.Input((5, 4))
    h = L.Attention(use_scale=True, name="att")([q, v])  # key = value
    m = cn.Model([q, v], L.Dense(2)(L.Flatten()(h)), dtype="float64")
    m.get_layer("att").set_weights([np.array([1.3])])
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    xs = [rng.standard_normal((4, 3, 4)), rng.standard_normal((4, 5, 4))]
    y = rng.integers(0, 2, 4)
    assert cn.gradient_check(m, xs, y, epsilon=GRADCHECK_EPS, max_params=None) < GRADCHECK_THRESHOLD
    _, pullback = m.vjp(xs)
    P = projection((4, 2), 1)
    dq, dv = pullback(P)
    for x, analytic in zip(xs, (dq, dv)):
        numeric = numerical_gradient(lambda: float(np.sum(P * m.predict(xs))), x)
        assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


def test_attention_bad_inputs():
    q, v = L.Input((3, 4)), L.Input((5, 4))
    with pytest.raises(ValueError, match=r"inputs must be a list \[query, value\]"):
        L.Attention()(q)
    with pytest.raises(ValueError, match=r"key and value must have the same number of steps"):
        L.Attention()([q, v, L.Input((6, 4))])
    with pytest.raises(ValueError, match=r"query and key must have the same features"):
        L.Attention()([q, L.Input((5, 3))])
    with pytest.raises(ValueError, match=r"query must be a sequence \(timesteps, features\)"):
        L.Attention()([L.Input((4,)), v])
    with pytest.raises(ValueError, match=r"score_mode must be one of 'dot', 'concat'"):
        L.Attention(score_mode="general")
    with pytest.raises(ValueError, match=r"Attention: dropout must be finite and in \[0\.0, 1\.0\)"):
        L.Attention(dropout=1.0)
    layer = L.Attention()
    layer([q, v], use_causal_mask=True)
    with pytest.raises(ValueError, match=r"use_causal_mask is fixed by the layer's first call"):
        layer([q, v])


def test_gradients_do_not_flow_through_the_scores(rng):
    q = L.Input((3, 4))
    out, scores = L.Attention()([q, q], return_attention_scores=True)
    m = cn.Model(q, [out, scores], dtype="float64")
    _, pullback = m.vjp(rng.standard_normal((2, 3, 4)))
    with pytest.raises(ValueError, match=r"attention scores output is for inspection"):
        pullback([np.ones((2, 3, 4)), np.ones((2, 3, 3))])


# ---------------------------------------------------------------- MultiHeadAttention

def mha_model(Tq, Tv, Dq, Dv, Dk, heads, key_dim, dtype="float64", mask=False, causal=False, **options):
    q, v, k = L.Input((Tq, Dq), name="q"), L.Input((Tv, Dv), name="v"), L.Input((Tv, Dk), name="k")
    inputs = [q, v, k] + ([L.Input((Tq, Tv), name="mask")] if mask else [])
    layer = L.MultiHeadAttention(heads, key_dim, name="mha", **options)
    out, scores = layer(q, v, k, attention_mask=inputs[3] if mask else None, return_attention_scores=True,
                        use_causal_mask=causal)
    return cn.Model(inputs, [out, scores], dtype=dtype)


def random_mask(rng, N, Tq, Tv):
    """A mask (True = attend) whose every query sees at least one key."""
    mask = rng.random((N, Tq, Tv)) < 0.6
    mask[np.arange(N)[:, None], np.arange(Tq)[None, :], rng.integers(0, Tv, (N, Tq))] = True
    return mask


# (Tq, Tv, Dq, Dv, Dk, heads, key_dim, value_dim, output_shape)
MHA_CASES = [(1, 1, 1, 1, 1, 1, 1, None, None), (3, 5, 4, 6, 2, 2, 3, None, None),
             (4, 4, 8, 8, 8, 4, 2, 5, 3), (5, 2, 6, 3, 3, 3, 2, None, 7)]


@pytest.mark.parametrize("mask", [False, True])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("case", MHA_CASES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_multi_head_attention_matches_reference(dtype, case, causal, mask, rng):
    Tq, Tv, Dq, Dv, Dk, H, dk, dv, out_dim = case
    model = mha_model(Tq, Tv, Dq, Dv, Dk, H, dk, np.dtype(dtype).name, mask, causal, value_dim=dv,
                      output_shape=out_dim)
    layer = model.get_layer("mha")
    weights = [rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights([w.astype(dtype) for w in weights])
    N = 3
    xs = [rng.standard_normal((N, *s)).astype(dtype) for s in ((Tq, Dq), (Tv, Dv), (Tv, Dk))]
    m = random_mask(rng, N, Tq, Tv) if mask else None
    out, scores = model.predict(xs + ([m.astype(dtype)] if mask else []))
    eo, ep = ref.multi_head_attention_forward(xs[0], xs[1], xs[2], weights, H, m, causal)
    assert_close(out, eo, dtype, what="output")
    assert_close(scores, ep, dtype, what="weights")


def test_multi_head_attention_weight_layout():
    model = mha_model(3, 5, 8, 6, 4, 2, 3, value_dim=5, output_shape=7)
    layer = model.get_layer("mha")
    assert [w.shape for w in layer.get_weights()] == [(6, 8), (6,), (6, 4), (6,), (10, 6), (10,), (7, 10), (7,)]
    assert model.output_shape == [(None, 3, 7), (None, 2, 3, 5)]
    bare = mha_model(3, 5, 8, 6, 4, 2, 3, use_bias=False).get_layer("mha")
    assert [w.shape for w in bare.get_weights()] == [(6, 8), (6, 4), (6, 6), (8, 6)]


def torch_mha(torch, E, H, rng):
    net = torch.nn.MultiheadAttention(E, H, batch_first=True).double()
    with torch.no_grad():  # non-zero biases, so a misplaced one shows
        net.in_proj_bias.copy_(torch.from_numpy(rng.standard_normal(3 * E) * 0.3))
        net.out_proj.bias.copy_(torch.from_numpy(rng.standard_normal(E) * 0.3))
    return net


@pytest.mark.parametrize("masking", ["none", "mask", "causal"])
def test_multi_head_attention_matches_torch(masking, rng):
    torch = pytest.importorskip("torch")
    N, T, S, E, H = 3, 5, 6, 8, 2
    torch.manual_seed(0)
    net = torch_mha(torch, E, H, rng)
    causal = masking == "causal"
    Tv = T if causal else S
    model = mha_model(T, Tv, E, E, E, H, E // H, mask=masking == "mask", causal=causal)
    cn.interop.load_torch_state_dict(model, net.state_dict())
    q, v, k = rng.standard_normal((N, T, E)), rng.standard_normal((N, Tv, E)), rng.standard_normal((N, Tv, E))
    mask = random_mask(rng, N, T, Tv) if masking == "mask" else None
    tq, tv, tk = (torch.from_numpy(a).requires_grad_() for a in (q, v, k))
    attn_mask = None
    if mask is not None:  # PyTorch's boolean attn_mask: True = NOT allowed, one per (batch, head)
        attn_mask = torch.from_numpy(~np.repeat(mask, H, axis=0))
    elif causal:
        attn_mask = torch.from_numpy(~np.tril(np.ones((T, T), bool)))
    ty, tw = net(tq, tk, tv, attn_mask=attn_mask, need_weights=True, average_attn_weights=False)
    dy = rng.standard_normal(ty.shape)
    ty.backward(torch.from_numpy(dy))
    xs = [q, v, k] + ([mask.astype(np.float64)] if mask is not None else [])
    (out, scores), pullback = model.vjp(xs)
    np.testing.assert_allclose(out, ty.detach().numpy(), **MODEL_F64)
    np.testing.assert_allclose(scores, tw.detach().numpy(), **MODEL_F64)
    grads = pullback([dy, np.zeros_like(scores)])
    for g, t in zip(grads, (tq, tv, tk)):
        np.testing.assert_allclose(g, t.grad.numpy(), **MODEL_F64)
    if mask is not None:
        assert np.array_equal(grads[3], np.zeros_like(xs[3]))

    # Weight gradients of mse(output, target) against autograd's.
    target = rng.standard_normal(ty.shape)
    model.compile(optimizer="sgd", loss=["mse", None])
    _, wgrads = model.compute_gradients(xs, [target, np.zeros(scores.shape)])
    net.zero_grad()
    ty, _ = net(tq, tk, tv, attn_mask=attn_mask)
    torch.mean((ty - torch.from_numpy(target)) ** 2).backward()
    ipw, ipb = net.in_proj_weight.grad.numpy(), net.in_proj_bias.grad.numpy()
    expected = [ipw[:E], ipb[:E], ipw[E:2 * E], ipb[E:2 * E], ipw[2 * E:], ipb[2 * E:],
                net.out_proj.weight.grad.numpy(), net.out_proj.bias.grad.numpy()]
    assert len(wgrads) == len(expected)
    for g, e in zip(wgrads, expected):
        np.testing.assert_allclose(g, e, **MODEL_F64)


def test_multi_head_attention_matches_torch_sdpa_self_attention(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    N, T, E, H = 2, 7, 12, 3
    cn.seed(6)
    x = L.Input((T, E))
    layer = L.MultiHeadAttention(H, E // H, name="mha")
    model = cn.Model(x, layer(x, x, use_causal_mask=True), dtype="float64")
    Wq, bq, Wk, bk, Wv, bv, Wo, bo = (torch.from_numpy(w.astype(np.float64)) for w in layer.get_weights())
    xv = rng.standard_normal((N, T, E))
    heads = lambda a: a.reshape(N, T, H, E // H).transpose(1, 2)  # noqa: E731
    tx = torch.from_numpy(xv)
    o = F.scaled_dot_product_attention(heads(tx @ Wq.T + bq), heads(tx @ Wk.T + bk), heads(tx @ Wv.T + bv),
                                       is_causal=True)
    want = o.transpose(1, 2).reshape(N, T, E) @ Wo.T + bo
    np.testing.assert_allclose(model.predict(xv), want.numpy(), **MODEL_F64)


def test_multi_head_attention_gradient_check(rng):
    cn.seed(7)
    q, v, mask = L.Input((3, 4)), L.Input((4, 5)), L.Input((3, 4))
    h = L.MultiHeadAttention(2, 3, value_dim=2, name="mha")(q, v, attention_mask=mask, use_causal_mask=True)
    m = cn.Model([q, v, mask], L.Dense(2)(L.Flatten()(h)), dtype="float64")
    layer = m.get_layer("mha")
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()])
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    xs = [rng.standard_normal((4, 3, 4)), rng.standard_normal((4, 4, 5)),
          random_mask(rng, 4, 3, 4).astype(np.float64)]
    y = rng.integers(0, 2, 4)
    assert cn.gradient_check(m, xs, y, epsilon=GRADCHECK_EPS, max_params=None) < GRADCHECK_THRESHOLD
    _, pullback = m.vjp(xs)
    P = projection((4, 2), 2)
    grads = pullback(P)
    for x, analytic in zip(xs[:2], grads[:2]):
        numeric = numerical_gradient(lambda: float(np.sum(P * m.predict(xs))), x)
        assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


def test_fully_masked_queries_give_zeros_not_nan(rng):
    model = mha_model(2, 3, 4, 4, 4, 2, 2, mask=True)
    xs = [rng.standard_normal((1, *s)) for s in ((2, 4), (3, 4), (3, 4))]
    mask = np.array([[[0, 0, 0], [1, 0, 1]]], np.float64)
    out, scores = model.predict(xs + [mask])
    assert np.all(np.isfinite(out)) and np.array_equal(scores[0, :, 0], np.zeros((2, 3)))
    assert np.allclose(scores[0, :, 1].sum(axis=-1), 1.0) and np.all(scores[0, :, 1, 1] == 0)


def test_multi_head_attention_bad_inputs():
    q, v = L.Input((3, 8)), L.Input((5, 8))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(3, 5\) per example"):
        L.MultiHeadAttention(2, 4)(q, v, attention_mask=L.Input((5, 3)))
    with pytest.raises(ValueError, match=r"key and value must have the same number of steps"):
        L.MultiHeadAttention(2, 4)(q, v, key=L.Input((4, 8)))
    with pytest.raises(ValueError, match=r"query must be a sequence \(timesteps, features\)"):
        L.MultiHeadAttention(2, 4)(L.Input((8,)), v)
    with pytest.raises(ValueError, match=r"value must be a sequence"):
        L.MultiHeadAttention(2, 4)(q, L.Input((2, 5, 8)))
    with pytest.raises(ValueError, match="MultiHeadAttention: num_heads must be >= 1, got 0"):
        L.MultiHeadAttention(0, 4)
    with pytest.raises(ValueError, match="MultiHeadAttention: key_dim must be >= 1"):
        L.MultiHeadAttention(2, 0)
    with pytest.raises(TypeError, match="MultiHeadAttention: num_heads must be an int"):
        L.MultiHeadAttention(2.5, 4)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: dropout must be finite and in \[0\.0, 1\.0\)"):
        L.MultiHeadAttention(2, 4, dropout=-0.5)


# ---------------------------------------------------------------- transformer_encoder

def sequence_cross_entropy(labels, logits):
    """Softmax cross-entropy averaged over every (example, step): logits (N, T, K),
    labels (N, T) (as the model's floats); (loss, dloss/dlogits)."""
    labels = labels.astype(np.int64)
    p = ref.softmax(logits, -1)
    N, T, K = logits.shape
    picked = p.reshape(-1, K)[np.arange(N * T), labels.reshape(-1)]
    grad = p.copy()
    grad.reshape(-1, K)[np.arange(N * T), labels.reshape(-1)] -= 1.0
    return float(-np.mean(np.log(picked))), (grad / (N * T)).astype(logits.dtype)


def reverser(T, vocab, width=32, heads=4, ff_dim=64):
    ids = L.Input((T,))
    h = L.Embedding(vocab, width)(ids)
    h = L.PositionalEncoding()(h)
    h = cn.applications.transformer_encoder(h, heads, ff_dim, name="enc")
    return cn.Model(ids, L.Dense(vocab)(h))


def test_transformer_encoder_learns_to_reverse_digit_sequences(rng):
    T, vocab = 6, 10
    cn.seed(0)
    model = reverser(T, vocab)
    model.compile(optimizer=cn.optimizers.Adam(3e-3), loss=sequence_cross_entropy)
    x = rng.integers(0, vocab, (3000, T))
    model.fit(x.astype(np.float32), x[:, ::-1].astype(np.float32), batch_size=50, epochs=4, verbose=0)
    test = rng.integers(0, vocab, (500, T))
    predicted = model.predict(test.astype(np.float32)).argmax(axis=-1)
    assert np.mean(predicted == test[:, ::-1]) >= 0.95


def test_transformer_encoder_structure_and_errors():
    x = L.Input((5, 12))
    y = cn.applications.transformer_encoder(x, 3, 24, name="blk")
    model = cn.Model(x, y)
    assert model.output_shape == (None, 5, 12)
    assert [w.shape for w in model.get_layer("blk_mha").get_weights()][:2] == [(12, 12), (12,)]
    assert model.get_layer("blk_ln1").epsilon == 1e-5
    with pytest.raises(ValueError, match=r"transformer_encoder: num_heads must divide the model width 12"):
        cn.applications.transformer_encoder(x, 5, 24)
    with pytest.raises(ValueError, match=r"transformer_encoder: x must be a sequence"):
        cn.applications.transformer_encoder(L.Input((12,)), 3, 24)


def test_transformer_encoder_matches_torch(rng):
    torch = pytest.importorskip("torch")
    T, E, H, FF = 5, 8, 2, 16
    torch.manual_seed(0)
    net = torch.nn.TransformerEncoderLayer(E, H, FF, dropout=0.0, batch_first=True).double().eval()
    x = L.Input((T, E))
    model = cn.Model(x, cn.applications.transformer_encoder(x, H, FF, name="enc"), dtype="float64")
    cn.interop.load_torch_state_dict(model, net.state_dict(), mapping={
        "enc_mha": "self_attn", "enc_ff1": "linear1", "enc_ff2": "linear2", "enc_ln1": "norm1", "enc_ln2": "norm2"})
    xv = rng.standard_normal((3, T, E))
    with torch.no_grad():
        want = net(torch.from_numpy(xv)).numpy()
    np.testing.assert_allclose(model.predict(xv), want, **MODEL_F64)


def test_dense_acts_on_the_last_axis(rng):
    # The transformer's position-wise feed-forward: one Dense for every step.
    model = sequential([L.Input((3, 4)), L.Dense(2, activation="tanh", name="fc")], dtype="float64")
    W, b = model.get_layer("fc").get_weights()
    assert W.shape == (2, 4) and model.output_shape == (None, 3, 2)
    x = rng.standard_normal((5, 3, 4))
    np.testing.assert_allclose(model.predict(x), np.tanh(x @ W.T + b), **MODEL_F64)
    model.compile(optimizer="sgd", loss="mse")
    assert cn.gradient_check(model, x, rng.standard_normal((5, 3, 2)), epsilon=GRADCHECK_EPS,
                             max_params=None) < GRADCHECK_THRESHOLD
