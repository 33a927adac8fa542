import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import attention as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

ops = cn.ops

# (B, Tq, Tk, d, dv): one of everything, one key, one query, odd sizes, more
# batch elements than threads (split across threads, serial GEMMs) and one
# element with products large enough for the GEMMs to split themselves
# (140·120·64 > 2^20 multiply-adds, gemm.cpp's serial bound).
CASES = [(1, 1, 1, 1, 1), (2, 3, 5, 4, 6), (3, 7, 1, 5, 2), (2, 1, 9, 8, 3), (5, 13, 11, 7, 9),
         (4, 33, 40, 16, 16), (1, 140, 120, 64, 48)]
MASKS = ["none", "batch", "shared", "causal", "causal+batch"]


def gid(v):
    return str(v).replace(" ", "")


def _data(case, dtype, rng, mask_kind="none"):
    B, Tq, Tk, d, dv = case
    q = rng.standard_normal((B, Tq, d)).astype(dtype)
    k = rng.standard_normal((B, Tk, d)).astype(dtype)
    v = rng.standard_normal((B, Tk, dv)).astype(dtype)
    do = rng.standard_normal((B, Tq, dv)).astype(dtype)
    mask, causal = None, "causal" in mask_kind
    if "batch" in mask_kind:
        mask = rng.random((B, Tq, Tk)) < 0.7
    elif mask_kind == "shared":
        mask = rng.random((1, Tq, Tk)) < 0.7
    return q, k, v, do, mask, causal


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("case", CASES, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_forward_backward_match_reference(dtype, case, mask_kind, naive, rng):
    q, k, v, do, mask, causal = _data(case, dtype, rng, mask_kind)
    o, p = ops.attention_forward(q, k, v, mask=mask, causal=causal, naive=naive)
    eo, ep = ref.attention_forward(q, k, v, mask, causal)
    assert o.dtype == p.dtype == dtype
    assert_close(o, eo, dtype, what="o")
    assert_close(p, ep, dtype, what="p")
    dq, dk, dv = ops.attention_backward(do, q, k, v, p, naive=naive)
    edq, edk, edv = ref.attention_backward(do, q, k, v, ep)
    assert_close(dq, edq, dtype, what="dq")
    assert_close(dk, edk, dtype, what="dk")
    assert_close(dv, edv, dtype, what="dv")


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_explicit_scale(dtype, naive, rng):
    q, k, v, do, _, _ = _data((2, 4, 6, 3, 5), dtype, rng)
    o, p = ops.attention_forward(q, k, v, scale=0.25, naive=naive)
    eo, ep = ref.attention_forward(q, k, v, scale=0.25)
    assert_close(o, eo, dtype)
    grads = ops.attention_backward(do, q, k, v, p, scale=0.25, naive=naive)
    for got, expected in zip(grads, ref.attention_backward(do, q, k, v, ep, scale=0.25)):
        assert_close(got, expected, dtype)


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fully_masked_rows_give_zeros_not_nan(dtype, naive, rng):
    q, k, v, do, _, _ = _data((2, 4, 5, 3, 2), dtype, rng)
    mask = rng.random((2, 4, 5)) < 0.8
    mask[0, 1] = False
    mask[1, 3] = False
    mask[1, 0] = True
    o, p = ops.attention_forward(q, k, v, mask=mask, naive=naive)
    assert np.isfinite(o).all() and np.isfinite(p).all()
    assert not o[0, 1].any() and not p[0, 1].any() and not o[1, 3].any()
    assert_close(p.sum(axis=-1)[mask.any(axis=-1)], np.ones(int(mask.any(axis=-1).sum())), dtype)
    dq, dk, dv = ops.attention_backward(do, q, k, v, p, naive=naive)
    assert np.isfinite(dq).all() and np.isfinite(dk).all() and np.isfinite(dv).all()
    assert not dq[0, 1].any() and not dq[1, 3].any()
    # Only key 0 of element 1 is allowed for query 0; other keys there get no weight.
    assert_close(o[1, 0], np.asarray(ref.attention_forward(q, k, v, mask)[0][1, 0]), dtype)


def test_masked_keys_are_left_out(rng):
    # Changing a key and value that nobody attends to changes nothing.
    q, k, v, _, _, _ = _data((1, 3, 4, 2, 2), np.float64, rng)
    mask = np.ones((1, 3, 4), bool)
    mask[..., 2] = False
    o = ops.attention_forward(q, k, v, mask=mask)[0]
    k[0, 2] += 100.0
    v[0, 2] -= 50.0
    assert np.array_equal(o, ops.attention_forward(q, k, v, mask=mask)[0])


def test_causal_first_query_sees_only_the_first_key(rng):
    q, k, v, _, _, _ = _data((2, 4, 4, 3, 5), np.float64, rng)
    o, p = ops.attention_forward(q, k, v, causal=True)
    assert np.array_equal(o[:, 0], v[:, 0])
    assert not np.triu(p[0], 1).any()


@pytest.mark.parametrize("mask_kind", ["none", "batch", "causal+batch"])
@pytest.mark.parametrize("case", [(2, 3, 4, 3, 2), (1, 1, 5, 2, 3)], ids=gid)
def test_gradients_match_finite_differences(case, mask_kind, rng):
    q, k, v, _, mask, causal = _data(case, np.float64, rng, mask_kind)
    if mask is not None:
        mask[0, -1] = False  # a fully masked query: its gradients are 0
    R = projection((case[0], case[1], case[4]), 3)

    def loss():
        return float(np.sum(R * ops.attention_forward(q, k, v, mask=mask, causal=causal, scale=0.7)[0]))

    p = ops.attention_forward(q, k, v, mask=mask, causal=causal, scale=0.7)[1]
    grads = ops.attention_backward(R, q, k, v, p, scale=0.7)
    for name, arg, grad in zip("qkv", (q, k, v), grads):
        assert relative_difference(grad, numerical_gradient(loss, arg)) < GRADCHECK_THRESHOLD, name


def test_same_input_gives_bitwise_the_same_result(rng):
    q, k, v, do, mask, _ = _data((4, 33, 40, 16, 16), np.float32, rng, "batch")
    first = ops.attention_forward(q, k, v, mask=mask)
    again = ops.attention_forward(q, k, v, mask=mask)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    g1 = ops.attention_backward(do, q, k, v, first[1])
    g2 = ops.attention_backward(do, q, k, v, first[1])
    assert all(np.array_equal(a, b) for a, b in zip(g1, g2))


def test_strided_and_read_only_inputs(rng):
    q, k, v, do, mask, _ = _data((2, 3, 4, 5, 2), np.float64, rng, "batch")
    kt = np.ascontiguousarray(k.transpose(0, 2, 1)).transpose(0, 2, 1)  # a strided view of k
    for a in (q, kt, v, mask):
        a.flags.writeable = False
    o, p = ops.attention_forward(q, kt, v, mask=mask[:, :, ::1])
    eo, ep = ref.attention_forward(q, k, v, mask)
    assert_close(o, eo, np.float64)
    dk = ops.attention_backward(do, q, kt, v, p)[1]
    assert_close(dk, ref.attention_backward(do, q, k, v, ep)[1], np.float64)


def test_nan_stays_in_its_batch_element(rng):
    q, k, v, _, _, _ = _data((2, 3, 4, 2, 2), np.float64, rng)
    k[1, 2, 0] = np.nan
    o = ops.attention_forward(q, k, v)[0]
    assert np.isnan(o[1]).all() and np.isfinite(o[0]).all()


F, B = "attention_forward", "attention_backward"


def test_errors(rng):
    q, k, v, do, _, _ = _data((2, 3, 4, 5, 6), np.float64, rng)
    p = ops.attention_forward(q, k, v)[1]
    cases = [
        (lambda: ops.attention_forward(q, k, v[:, :3]), ValueError,
         F + r": v must have as many steps as k \(key and value lengths 4\), got shape \(2, 3, 6\)"),
        (lambda: ops.attention_forward(q, k[..., :4], v), ValueError,
         F + r": k must have the depth of q \(last axis 5\), got shape \(2, 4, 4\)"),
        (lambda: ops.attention_forward(q, k[:1], v), ValueError, F + r": k must have the batch size of q \(2\)"),
        (lambda: ops.attention_forward(q[0], k, v), ValueError, F + r": q must be 3-D \(batch, length, depth\)"),
        (lambda: ops.attention_forward(q[:, :0], k, v), ValueError, F + r": q must have positive dimensions"),
        (lambda: ops.attention_forward(q, k, v, mask=np.ones((2, 3, 5), bool)), ValueError,
         F + r": mask must have shape \(2 or 1, 3, 4\) \(batch, queries, keys\), got shape \(2, 3, 5\)"),
        (lambda: ops.attention_forward(q, k, v, mask=np.ones((3, 4), bool)), ValueError, F + r": mask must have shape"),
        (lambda: ops.attention_forward(q, k, v, mask=np.ones((2, 3, 4))), TypeError,
         F + r": mask must be a bool array \(True = attend\), got float64"),
        (lambda: ops.attention_forward(q, k, v, scale=float("nan")), ValueError, F + r": scale must be finite"),
        (lambda: ops.attention_forward(q, k.astype(np.float32), v), TypeError, F + r": k must have the dtype of q"),
        (lambda: ops.attention_forward(q.astype(np.int64), k, v), TypeError, F + r": q must be float32 or float64"),
        (lambda: ops.attention_backward(do, q, k, v, p[:, :, :3]), ValueError,
         B + r": p must have shape \(2, 3, 4\), got \(2, 3, 3\)"),
        (lambda: ops.attention_backward(do[..., :2], q, k, v, p), ValueError, B + r": dout must have shape \(2, 3, 6\)"),
        (lambda: ops.attention_backward(do, q, k, v[:, :2], p), ValueError, B + r": v must have as many steps as k"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()


@pytest.mark.parametrize("mask_kind", ["none", "batch", "causal"])
def test_matches_torch_scaled_dot_product_attention(mask_kind, rng):
    torch = pytest.importorskip("torch")
    q, k, v, do, mask, causal = _data((2, 5, 6, 4, 3), np.float64, rng, mask_kind)
    if mask is not None:
        mask[:, :, 0] = True  # PyTorch gives NaN for a query with no key
    tq, tk, tv = (torch.from_numpy(a).requires_grad_(True) for a in (q, k, v))
    to = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=None if mask is None else torch.from_numpy(mask), is_causal=causal)
    to.backward(torch.from_numpy(do))
    o, p = ops.attention_forward(q, k, v, mask=mask, causal=causal)
    assert_close(o, to.detach().numpy(), np.float64)
    for got, t in zip(ops.attention_backward(do, q, k, v, p), (tq, tk, tv)):
        assert_close(got, t.grad.numpy(), np.float64)


# ---------------------------------------------------------------- additive (Bahdanau) scores

# (B, Tq, Tk, U); the last has enough batch elements for several thread chunks.
ADDITIVE = [(1, 1, 1, 1), (2, 3, 5, 4), (3, 7, 1, 9), (2, 1, 6, 3), (40, 9, 11, 10)]


def _additive(case, dtype, rng):
    B, Tq, Tk, U = case
    qp = rng.standard_normal((B, Tq, U)).astype(dtype)
    kp = rng.standard_normal((B, Tk, U)).astype(dtype)
    w = rng.standard_normal(U).astype(dtype)
    ds = rng.standard_normal((B, Tq, Tk)).astype(dtype)
    return qp, kp, w, ds


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("case", ADDITIVE, ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_additive_scores_match_reference(dtype, case, naive, rng):
    qp, kp, w, ds = _additive(case, dtype, rng)
    scores = ops.additive_scores_forward(qp, kp, w, naive=naive)
    assert scores.dtype == dtype
    assert_close(scores, ref.additive_scores_forward(qp, kp, w), dtype, what="scores")
    grads = ops.additive_scores_backward(ds, qp, kp, w, naive=naive)
    for name, got, expected in zip(("dqp", "dkp", "dw"), grads, ref.additive_scores_backward(ds, qp, kp, w)):
        assert_close(got, expected, dtype, what=name)


def test_additive_scores_gradients_match_finite_differences(rng):
    qp, kp, w, _ = _additive((2, 3, 4, 5), np.float64, rng)
    R = projection((2, 3, 4), 11)

    def loss():
        return float(np.sum(R * ops.additive_scores_forward(qp, kp, w)))

    grads = ops.additive_scores_backward(R, qp, kp, w)
    for name, arg, grad in zip(("qp", "kp", "w"), (qp, kp, w), grads):
        assert relative_difference(grad, numerical_gradient(loss, arg)) < GRADCHECK_THRESHOLD, name


def test_additive_scores_errors(rng):
    qp, kp, w, ds = _additive((2, 3, 4, 5), np.float64, rng)
    A, AB = "additive_scores_forward", "additive_scores_backward"
    cases = [
        (lambda: ops.additive_scores_forward(qp, kp[..., :4], w), ValueError,
         A + r": kp must have the units of qp \(last axis 5\), got shape \(2, 4, 4\)"),
        (lambda: ops.additive_scores_forward(qp, kp[:1], w), ValueError, A + r": kp must have the batch size of qp"),
        (lambda: ops.additive_scores_forward(qp, kp, w[:3]), ValueError, A + r": w must have shape \(5,\), got shape \(3,\)"),
        (lambda: ops.additive_scores_forward(qp[0], kp, w), ValueError, A + r": qp must be 3-D"),
        (lambda: ops.additive_scores_forward(qp, kp, w.astype(np.float32)), TypeError, A + r": w must have the dtype of qp"),
        (lambda: ops.additive_scores_backward(ds[:, :2], qp, kp, w), ValueError,
         AB + r": dscores must have shape \(2, 3, 4\), got \(2, 2, 4\)"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()


# ---------------------------------------------------------------- the weights alone, and dropout on them

def _keep(shape, rate, rng):
    return rng.random(shape) >= rate


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("dropout", [False, True])
@pytest.mark.parametrize("mask_kind", ["none", "batch", "causal+batch"])
@pytest.mark.parametrize("case", [(1, 1, 1, 1, 1), (2, 3, 5, 4, 6), (5, 13, 11, 7, 9), (1, 140, 120, 64, 48)],
                         ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_weights_from_given_scores_match_reference(dtype, case, mask_kind, dropout, naive, rng):
    # The second half of attention (softmax, dropout, P̃ v) on scores from elsewhere.
    q, k, v, do, mask, causal = _data(case, dtype, rng, mask_kind)
    s = (2 * rng.standard_normal((case[0], case[1], case[2]))).astype(dtype)
    keep, rate = (_keep(s.shape, 0.3, rng), 0.3) if dropout else (None, 0.0)
    o, p = ops.attention_weights_forward(s, v, mask=mask, causal=causal, keep=keep, rate=rate, naive=naive)
    eo, ep = ref.weights_forward(s, v, mask, causal, keep, rate)
    assert o.dtype == p.dtype == dtype
    assert_close(o, eo, dtype, what="o")
    assert_close(p, ep, dtype, what="p")
    ds, dv = ops.attention_weights_backward(do, v, p, keep=keep, rate=rate, naive=naive)
    eds, edv = ref.weights_backward(do, v, ep, keep, rate)
    assert_close(ds, eds, dtype, what="dscores")
    assert_close(dv, edv, dtype, what="dv")


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("case", [(2, 3, 5, 4, 6), (4, 33, 40, 16, 16)], ids=gid)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dropout_on_the_weights_matches_reference(dtype, case, naive, rng):
    q, k, v, do, mask, causal = _data(case, dtype, rng, "causal+batch")
    keep = _keep((case[0], case[1], case[2]), 0.4, rng)
    o, p = ops.attention_forward(q, k, v, mask=mask, causal=causal, keep=keep, rate=0.4, naive=naive)
    eo, ep = ref.attention_forward(q, k, v, mask, causal, keep=keep, rate=0.4)
    assert_close(o, eo, dtype, what="o")
    assert_close(p, ep, dtype, what="p (before dropout)")
    grads = ops.attention_backward(do, q, k, v, p, keep=keep, rate=0.4, naive=naive)
    for name, got, expected in zip(("dq", "dk", "dv"), grads, ref.attention_backward(do, q, k, v, ep, keep=keep,
                                                                                   rate=0.4)):
        assert_close(got, expected, dtype, what=name)


def test_rate_zero_and_all_kept_is_no_dropout(rng):
    q, k, v, do, mask, _ = _data((3, 6, 7, 5, 4), np.float32, rng, "batch")
    o, p = ops.attention_forward(q, k, v, mask=mask)
    o2, p2 = ops.attention_forward(q, k, v, mask=mask, keep=np.ones(p.shape, bool), rate=0.0)
    assert np.array_equal(o, o2) and np.array_equal(p, p2)
    g = ops.attention_backward(do, q, k, v, p)
    g2 = ops.attention_backward(do, q, k, v, p, keep=np.ones(p.shape, bool), rate=0.0)
    assert all(np.array_equal(a, b) for a, b in zip(g, g2))


def test_gradients_with_a_fixed_dropout_mask_match_finite_differences(rng):
    q, k, v, _, mask, causal = _data((2, 3, 4, 3, 2), np.float64, rng, "causal+batch")
    keep = _keep((2, 3, 4), 0.5, rng)
    R = projection((2, 3, 2), 5)

    def loss():
        return float(np.sum(R * ops.attention_forward(q, k, v, mask=mask, causal=causal, keep=keep, rate=0.5)[0]))

    p = ops.attention_forward(q, k, v, mask=mask, causal=causal, keep=keep, rate=0.5)[1]
    grads = ops.attention_backward(R, q, k, v, p, keep=keep, rate=0.5)
    for name, arg, grad in zip("qkv", (q, k, v), grads):
        assert relative_difference(grad, numerical_gradient(loss, arg)) < GRADCHECK_THRESHOLD, name

    s = rng.standard_normal((2, 3, 4))

    def weights_loss():
        return float(np.sum(R * ops.attention_weights_forward(s, v, mask=mask, keep=keep, rate=0.5)[0]))

    p = ops.attention_weights_forward(s, v, mask=mask, keep=keep, rate=0.5)[1]
    ds, dv = ops.attention_weights_backward(R, v, p, keep=keep, rate=0.5)
    assert relative_difference(ds, numerical_gradient(weights_loss, s)) < GRADCHECK_THRESHOLD
    assert relative_difference(dv, numerical_gradient(weights_loss, v)) < GRADCHECK_THRESHOLD


def test_dropout_and_weights_errors(rng):
    q, k, v, do, _, _ = _data((2, 3, 4, 5, 6), np.float64, rng)
    p = ops.attention_forward(q, k, v)[1]
    keep = np.ones((2, 3, 4), bool)
    W, WB = "attention_weights_forward", "attention_weights_backward"
    cases = [
        (lambda: ops.attention_forward(q, k, v, keep=keep, rate=1.0), ValueError,
         F + r": rate must be in \[0, 1\), got 1"),
        (lambda: ops.attention_forward(q, k, v, keep=keep, rate=-0.1), ValueError, F + r": rate must be in \[0, 1\)"),
        (lambda: ops.attention_forward(q, k, v, keep=keep[:, :2], rate=0.5), ValueError,
         F + r": keep must have shape \(2, 3, 4\), got \(2, 2, 4\)"),
        (lambda: ops.attention_forward(q, k, v, keep=keep.astype(np.float64), rate=0.5), TypeError,
         F + r": keep must be a bool array"),
        (lambda: ops.attention_backward(do, q, k, v, p, keep=keep, rate=float("nan")), ValueError,
         B + r": rate must be in \[0, 1\)"),
        (lambda: ops.attention_weights_forward(p, v[:, :3]), ValueError,
         W + r": v must have as many steps as k \(key and value lengths 4\)"),
        (lambda: ops.attention_weights_forward(p[0], v), ValueError, W + r": scores must be 3-D"),
        (lambda: ops.attention_weights_forward(p, v, mask=np.ones((2, 4, 3), bool)), ValueError,
         W + r": mask must have shape \(2 or 1, 3, 4\)"),
        (lambda: ops.attention_weights_forward(p, v.astype(np.float32)), TypeError, W + r": v must have the dtype"),
        (lambda: ops.attention_weights_backward(do[:, :2], v, p), ValueError, WB + r": dout must have shape \(2, 3, 6\)"),
        (lambda: ops.attention_weights_backward(do, v, p, keep=keep, rate=1.5), ValueError,
         WB + r": rate must be in \[0, 1\)"),
    ]
    for call, exc, match in cases:
        with pytest.raises(exc, match=match):
            call()
