import re

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, relative_difference
from reference import loss as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

# (batch, classes or outputs): batch 1, a single class, odd sizes, a wide row,
# and one large enough (77k elements) to take the multi-thread path.
SHAPES = [(1, 1), (1, 7), (5, 13), (64, 10), (3, 1000), (300, 257)]
SCALES = [1.0, 50.0, 500.0]  # logit magnitudes: ordinary, saturated, far past exp overflow


def logits_labels(shape, dtype, rng, scale=1.0):
    n, c = shape
    return (rng.standard_normal(shape) * scale).astype(dtype), rng.integers(0, c, size=n)


def logits_targets_mask(shape, dtype, rng, scale=1.0):
    z = (rng.standard_normal(shape) * scale).astype(dtype)
    t = rng.uniform(0, 1, size=shape).astype(dtype)  # soft targets cover the 0/1 case too
    mask = rng.uniform(size=shape) < 0.7
    return z, t, mask


# ---------------------------------------------------------------------------
# (a) the references against finite differences of themselves


def test_reference_gradients(rng):
    z, labels = logits_labels((4, 5), np.float64, rng)
    assert relative_difference(ref.softmax_cross_entropy(z, labels)[1],
                               numerical_gradient(lambda: ref.softmax_cross_entropy(z, labels)[0], z)
                               ) < GRADCHECK_THRESHOLD
    z, t, mask = logits_targets_mask((4, 5), np.float64, rng)
    for m in (None, mask):
        g = numerical_gradient(lambda: ref.sigmoid_cross_entropy(z, t, m)[0], z)  # noqa: B023
        assert relative_difference(ref.sigmoid_cross_entropy(z, t, m)[1], g) < GRADCHECK_THRESHOLD
    p, q = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    assert relative_difference(ref.mse(p, q)[1],
                               numerical_gradient(lambda: ref.mse(p, q)[0], p)) < GRADCHECK_THRESHOLD
    w = away_from_zero(rng.standard_normal((3, 4)))
    assert relative_difference(ref.weight_penalty(w, 0.3, 0.2)[1],
                               numerical_gradient(lambda: ref.weight_penalty(w, 0.3, 0.2)[0], w)
                               ) < GRADCHECK_THRESHOLD


def away_from_zero(w):
    """|w| has a kink at 0; finite differences across it are meaningless."""
    return np.where(w >= 0, 1.0, -1.0) * (np.abs(w) + 1e-2)


# ---------------------------------------------------------------------------
# (b) parity of the fast and naive kernels with the references


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("naive", [False, True])
def test_softmax_cross_entropy_matches_reference(shape, scale, dtype, naive, rng):
    z, labels = logits_labels(shape, dtype, rng, scale)
    loss, dz = cn.ops.softmax_cross_entropy(z, labels, naive=naive)
    assert isinstance(loss, float) and dz.dtype == dtype
    assert np.isfinite(loss) and np.all(np.isfinite(dz))
    want_loss, want_dz = ref.softmax_cross_entropy(z.astype(np.float64), labels)
    assert_close(loss, want_loss, dtype, op="softmax_cross_entropy", what="loss")
    assert_close(dz, want_dz, op="softmax_cross_entropy", what="dlogits")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("naive", [False, True])
def test_sigmoid_cross_entropy_matches_reference(shape, scale, dtype, masked, naive, rng):
    z, t, mask = logits_targets_mask(shape, dtype, rng, scale)
    m = mask if masked else None
    loss, dz = cn.ops.sigmoid_cross_entropy(z, t, m, naive=naive)
    assert isinstance(loss, float) and dz.dtype == dtype
    assert np.isfinite(loss) and np.all(np.isfinite(dz))
    want_loss, want_dz = ref.sigmoid_cross_entropy(z.astype(np.float64), t.astype(np.float64), m)
    assert_close(loss, want_loss, dtype, op="sigmoid_cross_entropy", what="loss")
    assert_close(dz, want_dz, op="sigmoid_cross_entropy", what="dlogits")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7,), (5, 13), (2, 3, 5), (300, 257)])
@pytest.mark.parametrize("naive", [False, True])
def test_mse_matches_reference(shape, dtype, naive, rng):
    p, t = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    loss, dp = cn.ops.mse(p, t, naive=naive)
    assert isinstance(loss, float) and dp.dtype == dtype
    want_loss, want_dp = ref.mse(p.astype(np.float64), t.astype(np.float64))
    assert_close(loss, want_loss, dtype, op="mse", what="loss")
    assert_close(dp, want_dp, op="mse", what="dpred")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(1,), (7, 3), (32, 5, 3, 3), (300, 257)])
@pytest.mark.parametrize("l1, l2", [(0.0, 0.0), (0.01, 0.0), (0.0, 0.005), (0.3, 0.2)])
@pytest.mark.parametrize("naive", [False, True])
def test_weight_penalty_matches_reference(shape, l1, l2, dtype, naive, rng):
    w = rng.standard_normal(shape).astype(dtype)
    w.flat[0] = 0  # sign(0) = 0: no L1 push on an exact zero
    loss, dw = cn.ops.weight_penalty(w, l1, l2, naive=naive)
    assert isinstance(loss, float) and dw.dtype == dtype
    want_loss, want_dw = ref.weight_penalty(w.astype(np.float64), l1, l2)
    assert_close(loss, want_loss, dtype, op="weight_penalty", what="loss")
    assert_close(dw, want_dw, op="weight_penalty", what="dw")


@pytest.mark.parametrize("label_dtype", [np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64])
def test_any_integer_label_dtype(label_dtype, rng):
    z, labels = logits_labels((6, 5), np.float64, rng)
    got = cn.ops.softmax_cross_entropy(z, labels.astype(label_dtype))
    want = ref.softmax_cross_entropy(z, labels)
    assert_close(got[0], want[0], op="softmax_cross_entropy", what="loss")
    assert_close(got[1], want[1], op="softmax_cross_entropy", what="dlogits")


def test_thread_count_does_not_change_results_and_sums_are_reproducible(rng):
    z, labels = logits_labels((300, 257), np.float64, rng)
    _, t, mask = logits_targets_mask((300, 257), np.float64, rng)
    calls = [
        lambda: cn.ops.softmax_cross_entropy(z, labels),
        lambda: cn.ops.sigmoid_cross_entropy(z, t, mask),
        lambda: cn.ops.mse(z, t),
        lambda: cn.ops.weight_penalty(z, 0.1, 0.2),
    ]
    before = cn.get_num_threads()
    try:
        for n in (1, 3):
            cn.set_num_threads(n)
            for call in calls:
                (a, da), (b, db) = call(), call()
                assert a == b  # same thread count: bitwise the same sum
                np.testing.assert_array_equal(da, db)
                cn.set_num_threads(1)
                serial = call()[0]
                cn.set_num_threads(n)
                # Another split changes only the summation order.
                assert abs(a - serial) <= 1e-13 * abs(serial)
    finally:
        cn.set_num_threads(before)


# ---------------------------------------------------------------------------
# (c) float64 finite-difference checks of the corenn kernels


@pytest.mark.parametrize("naive", [False, True])
def test_gradient_check(naive, rng):
    z, labels = logits_labels((4, 6), np.float64, rng)
    f = lambda: cn.ops.softmax_cross_entropy(z, labels, naive=naive)  # noqa: E731
    assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], z)) < GRADCHECK_THRESHOLD

    z, t, mask = logits_targets_mask((4, 6), np.float64, rng)
    for m in (None, mask):
        f = lambda: cn.ops.sigmoid_cross_entropy(z, t, m, naive=naive)  # noqa: E731, B023
        assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], z)) < GRADCHECK_THRESHOLD  # noqa: B023

    p, q = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    f = lambda: cn.ops.mse(p, q, naive=naive)  # noqa: E731
    assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], p)) < GRADCHECK_THRESHOLD

    w = away_from_zero(rng.standard_normal((3, 5)))
    f = lambda: cn.ops.weight_penalty(w, 0.3, 0.2, naive=naive)  # noqa: E731
    assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], w)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------------------
# (d) masked sigmoid cross-entropy


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(5, 13), (300, 257)])
@pytest.mark.parametrize("naive", [False, True])
def test_masked_entries_contribute_nothing(shape, dtype, naive, rng):
    z, t, mask = logits_targets_mask(shape, dtype, rng)
    loss, dz = cn.ops.sigmoid_cross_entropy(z, t, mask, naive=naive)
    assert (~mask).any() and mask.any()
    assert np.all(dz[~mask] == 0)
    # Whatever sits under the mask — huge logits, targets outside [0, 1], NaN
    # targets (how a missing label is often stored) — changes neither the loss
    # nor any gradient.
    z2, t2 = z.copy(), t.copy()
    z2[~mask] = 1e4
    t2[~mask] = np.where(rng.uniform(size=t2[~mask].shape) < 0.5, -7.0, np.nan)
    loss2, dz2 = cn.ops.sigmoid_cross_entropy(z2, t2, mask, naive=naive)
    assert loss2 == loss
    np.testing.assert_array_equal(dz2, dz)
    # The mean stays over the batch N, not over the present entries.
    unmasked = ref.sigmoid_cross_entropy(z.astype(np.float64), t.astype(np.float64))[1]
    assert_close(dz[mask], unmasked[mask], op="sigmoid_cross_entropy", what="dlogits")


@pytest.mark.parametrize("mask_dtype", [bool, np.uint8, np.int32, np.int64, np.float32, np.float64])
def test_mask_of_zeros_and_ones_in_any_dtype(mask_dtype, rng):
    # A 0/1 mask means the same as booleans whatever its dtype (float masks
    # come from NumPy arithmetic, e.g. ~np.isnan(t) * 1.0).
    z, t, mask = logits_targets_mask((6, 4), np.float64, rng)
    want = cn.ops.sigmoid_cross_entropy(z, t, mask)
    got = cn.ops.sigmoid_cross_entropy(z, t, mask.astype(mask_dtype))
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    ref_loss, ref_dz = ref.sigmoid_cross_entropy(z, t, mask)
    assert_close(got[1], ref_dz, op="sigmoid_cross_entropy", what="dlogits")
    assert_close(np.float64(got[0]), np.float64(ref_loss), op="sigmoid_cross_entropy", what="loss")


@pytest.mark.parametrize("mask_dtype,value,shown", [
    (np.float64, 0.5, "0.5"), (np.float32, 0.25, "0.25"), (np.float64, np.nan, "nan"),
    (np.float64, 1 + 1e-9, "1.000000001"), (np.float64, -0.0 - 1, "-1.0"),
    (np.int64, 2, "2.0"), (np.int32, -1, "-1.0"), (np.uint8, 255, "255.0")])
def test_mask_values_other_than_zero_and_one_are_refused(mask_dtype, value, shown, rng):
    z, t, mask = logits_targets_mask((6, 4), np.float64, rng)
    m = mask.astype(mask_dtype)
    m[2, 3] = value
    with pytest.raises(ValueError, match=r"^sigmoid_cross_entropy: mask must hold only 0 and 1 "
                                         r"\(False and True\), got " + re.escape(shown) +
                                         r" at row 2, column 3$"):
        cn.ops.sigmoid_cross_entropy(z, t, m)


def test_all_present_mask_equals_no_mask(rng):
    z, t, _ = logits_targets_mask((6, 4), np.float64, rng)
    a = cn.ops.sigmoid_cross_entropy(z, t, np.ones((6, 4), bool))
    b = cn.ops.sigmoid_cross_entropy(z, t)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])


# ---------------------------------------------------------------------------
# (e) NaN and ±inf: the values PyTorch gives, never a silently finite loss


NAN, INF = np.nan, np.inf


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_softmax_cross_entropy_nan_and_inf_as_pytorch(dtype, naive):
    # F.cross_entropy: a NaN or +inf logit makes its row's log-softmax NaN (the
    # max subtraction gives NaN or inf − inf), so the loss and that whole row of
    # the gradient are NaN; a −inf logit is a zero probability: no loss, zero
    # gradient, unless it is the label's, whose loss is +inf (gradient p − 1 = −1).
    z = np.array([[NAN, 0.5, -1.0], [0.2, INF, -1.0], [-INF, 0.5, -1.0], [0.3, 0.5, -1.0]], dtype)
    labels = np.array([1, 0, 1, 2])
    loss, dz = cn.ops.softmax_cross_entropy(z, labels, naive=naive)
    with np.errstate(invalid="ignore"):
        want_loss, want_dz = ref.softmax_cross_entropy(z.astype(np.float64), labels)
    assert np.isnan(loss) and np.isnan(want_loss)
    assert_close(dz, want_dz, op="softmax_cross_entropy", what="dlogits")
    assert np.isnan(dz[:2]).all() and np.isfinite(dz[2:]).all() and dz[2, 0] == 0
    # The finite rows alone: finite, as the reference; the −inf label costs +inf.
    loss, dz = cn.ops.softmax_cross_entropy(z[2:], labels[2:], naive=naive)
    assert_close(loss, ref.softmax_cross_entropy(z[2:].astype(np.float64), labels[2:])[0], dtype,
                 op="softmax_cross_entropy")
    loss, dz = cn.ops.softmax_cross_entropy(z[2:3], np.array([0]), naive=naive)
    assert loss == INF and dz[0, 0] == -1
    assert_close(dz, ref.softmax_cross_entropy(z[2:3].astype(np.float64), np.array([0]))[1],
                 op="softmax_cross_entropy")


# (logit, target) -> PyTorch's binary_cross_entropy_with_logits loss and gradient
# (loss = (1 − t)·z − log σ(z), dz = σ(z) − t): infinite logits give NaN (0·inf)
# except the confidently wrong +inf with t = 0, whose loss is +inf; the gradient
# stays σ(z) − t, finite.
SIGMOID_CASES = [((NAN, 1.0), NAN, NAN), ((NAN, 0.0), NAN, NAN),
                 ((INF, 1.0), NAN, 0.0), ((INF, 0.0), INF, 1.0),
                 ((-INF, 1.0), NAN, -1.0), ((-INF, 0.0), NAN, 0.0)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("case, want_loss, want_dz", SIGMOID_CASES, ids=str)
def test_sigmoid_cross_entropy_nan_and_inf_as_pytorch(case, want_loss, want_dz, dtype, naive):
    z, t = case
    loss, dz = cn.ops.sigmoid_cross_entropy(np.array([[z]], dtype), np.array([[t]], dtype), naive=naive)
    np.testing.assert_array_equal([loss, dz[0, 0]], [want_loss, want_dz])
    with np.errstate(invalid="ignore"):
        ref_loss, ref_dz = ref.sigmoid_cross_entropy(np.array([[z]]), np.array([[t]]))
    np.testing.assert_array_equal([ref_loss, ref_dz[0, 0]], [want_loss, want_dz])
    # In a batch the entry spoils the loss and its own gradient only.
    Z = np.array([[z, 0.3], [-0.4, 1.2]], dtype)
    T = np.array([[t, 1.0], [0.0, 1.0]], dtype)
    loss, dz = cn.ops.sigmoid_cross_entropy(Z, T, naive=naive)
    assert not np.isfinite(loss)
    np.testing.assert_array_equal(np.isnan(dz), [[np.isnan(want_dz), False], [False, False]])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_mse_nan_and_inf_as_pytorch(dtype, naive):
    # mean((p − t)²): NaN stays NaN, an infinite difference costs +inf with an
    # infinite gradient, inf − inf is NaN.
    p = np.array([[NAN, 1.0], [INF, 2.0], [INF, -INF]], dtype)
    t = np.array([[0.0, 1.5], [1.0, 2.0], [INF, 3.0]], dtype)
    with np.errstate(invalid="ignore"):
        want_loss, want_dp = ref.mse(p.astype(np.float64), t.astype(np.float64))
    for rows, expected in ((slice(0, 1), NAN), (slice(1, 2), INF), (slice(2, 3), NAN)):
        loss, dp = cn.ops.mse(p[rows], t[rows], naive=naive)
        np.testing.assert_array_equal(loss, expected)
    loss, dp = cn.ops.mse(p, t, naive=naive)
    assert np.isnan(loss) and np.isnan(want_loss)
    assert_close(dp, want_dp, op="mse", what="dpred")
    np.testing.assert_array_equal(dp[:, 0], [NAN, INF, NAN])


# ---------------------------------------------------------------------------
# (f) bad inputs


F64 = np.ones((4, 10))


@pytest.mark.parametrize(
    "fn, args, exc, match",
    [
        ("softmax_cross_entropy", (F64, np.array([0, 1, 2, 12])), ValueError,
         r"softmax_cross_entropy: label 12 at row 3 is outside \[0, 10\)"),
        ("softmax_cross_entropy", (F64, np.array([-1, 1, 2, 3])), ValueError,
         r"softmax_cross_entropy: label -1 at row 0 is outside \[0, 10\)"),
        ("softmax_cross_entropy", (F64, np.array([0.0, 1.0, 2.0, 3.0])), TypeError,
         r"softmax_cross_entropy: labels must be an integer array, got float64"),
        ("softmax_cross_entropy", (F64, np.array([True, False, True, True])), TypeError,
         r"softmax_cross_entropy: labels must be an integer array, got bool"),
        ("softmax_cross_entropy", (F64, np.array([0, 1, 2])), ValueError,
         r"softmax_cross_entropy: labels must have shape \(4,\), got \(3,\)"),
        ("softmax_cross_entropy", (F64, np.zeros((4, 1), np.int64)), ValueError,
         r"softmax_cross_entropy: labels must have shape \(4,\), got \(4, 1\)"),
        ("softmax_cross_entropy", (np.ones(10), np.array([0])), ValueError,
         r"softmax_cross_entropy: logits must be 2-D \(batch, classes\) or 3-D \(batch, steps, classes\), "
         r"got shape \(10,\)"),
        ("softmax_cross_entropy", (np.ones((4, 10), np.int64), np.zeros(4, np.int64)), TypeError,
         r"softmax_cross_entropy: logits must be float32 or float64, got int64"),
        ("softmax_cross_entropy", (np.ones((0, 10)), np.zeros(0, np.int64)), ValueError,
         r"softmax_cross_entropy: logits must not be empty, got shape \(0, 10\)"),
        ("sigmoid_cross_entropy", (F64, F64.astype(np.float32)), TypeError,
         r"sigmoid_cross_entropy: targets must have the dtype of logits \(float64\), got float32"),
        ("sigmoid_cross_entropy", (F64, np.ones((4, 9))), ValueError,
         r"sigmoid_cross_entropy: targets must have shape \(4, 10\), got \(4, 9\)"),
        ("sigmoid_cross_entropy", (F64, F64, np.ones((10, 4), bool)), ValueError,
         r"sigmoid_cross_entropy: mask must have shape \(4, 10\), got \(10, 4\)"),
        ("sigmoid_cross_entropy", (F64, F64, np.ones((4, 10), complex)), TypeError,
         r"sigmoid_cross_entropy: mask must be bool, integer or float \(0 or 1\), got complex128"),
        ("sigmoid_cross_entropy", (np.ones(4), np.ones(4)), ValueError,
         r"sigmoid_cross_entropy: logits must be 2-D \(batch, outputs\), got shape \(4,\)"),
        ("mse", (np.ones((2, 3)), np.ones((3, 2))), ValueError,
         r"mse: target must have shape \(2, 3\), got \(3, 2\)"),
        ("mse", (np.ones(3, np.float32), np.ones(3)), TypeError,
         r"mse: target must have the dtype of pred \(float32\), got float64"),
        ("mse", (np.ones(3, np.float16), np.ones(3, np.float16)), TypeError,
         r"mse: pred must be float32 or float64, got float16"),
        ("mse", (np.ones(0), np.ones(0)), ValueError, r"mse: pred must not be empty, got shape \(0,\)"),
        ("weight_penalty", (F64, -0.1), ValueError,
         r"weight_penalty: l1 must be finite and >= 0, got -0.1"),
        ("weight_penalty", (F64, 0.0, float("nan")), ValueError,
         r"weight_penalty: l2 must be finite and >= 0, got nan"),
        ("weight_penalty", (np.ones(3, np.int32), 0.1), TypeError,
         r"weight_penalty: w must be float32 or float64, got int32"),
    ],
)
def test_bad_inputs(fn, args, exc, match):
    with pytest.raises(exc, match=match):
        getattr(cn.ops, fn)(*args)
