"""Embedding losses (course 4, week 4): triplet and contrastive losses against
the NumPy references, fast against naive, gradients by finite differences,
the definitions on hand-computed cases, PyTorch's TripletMarginLoss settings,
the Keras-style loss objects, triplet mining against enumeration, and bad inputs."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, relative_difference
from reference import metric_losses as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

# Two triplets: the first is already separated by more than the margin (loss 0),
# the second costs ‖a−p‖² − ‖a−n‖² + 0.2 = 4 − 1 + 0.2 = 3.2.
HAND_TRIPLETS = np.array([[[0, 0], [1, 0], [0, 2]],
                          [[0, 0], [2, 0], [1, 0]]], float)


def triplets(rng, n, d, dtype):
    return rng.standard_normal((n, 3, d)).astype(dtype)


def pairs(rng, n, d, dtype):
    e1, e2 = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    same = (np.arange(n) % 2).astype(dtype)
    return e1.astype(dtype), e2.astype(dtype), same


# The definitions on hand-computed cases ------------------------------------------


def test_triplet_loss_hand_computed():
    loss = cn.losses.TripletLoss(margin=0.2)
    assert_close(loss(None, HAND_TRIPLETS), 3.2, what="course triplet loss")
    assert_close(cn.losses.TripletLoss(0.2, reduction="mean")(None, HAND_TRIPLETS), 1.6,
                 what="mean")
    _, grad = loss.loss_and_gradient(None, HAND_TRIPLETS)
    # Inactive row: no gradient. Active row: d/da = 2(n − p), d/dp = −2(a − p), d/dn = 2(a − n).
    np.testing.assert_array_equal(grad, [[[0, 0], [0, 0], [0, 0]], [[-2, 0], [4, 0], [-2, 0]]])


def test_contrastive_loss_hand_computed():
    # Similar pair at d = 5 costs 25; dissimilar pair at d = 1 inside margin 2 costs (2 − 1)².
    y_pred = np.array([[[0, 0], [3, 4]], [[0, 0], [0.6, 0.8]]])
    assert_close(cn.losses.ContrastiveLoss(margin=2.0)(np.array([1, 0]), y_pred), 13.0,
                 what="contrastive")
    # Beyond the margin a dissimilar pair costs nothing.
    assert cn.losses.ContrastiveLoss(margin=0.5)(np.array([0, 0]), y_pred) == 0


# Parity with the references ------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("squared, reduction", [(True, "sum"), (False, "mean"), (False, "sum"),
                                                (True, "mean")])
@pytest.mark.parametrize("n, d", [(1, 1), (7, 16), (300, 128)])
def test_triplet_loss_equals_reference(dtype, naive, squared, reduction, n, d, rng):
    emb = triplets(rng, n, d, dtype)
    margin = 0.2 if squared else 0.5
    loss, grad = cn.ops.triplet_loss(emb, margin=margin, squared=squared, reduction=reduction,
                                     naive=naive)
    assert grad.dtype == dtype and grad.shape == emb.shape
    assert_close(loss, ref.triplet_loss(emb, margin, squared, reduction), dtype, op="triplet_loss")
    _, oracle = cn.ops.triplet_loss(emb.astype(np.float64), margin=margin, squared=squared,
                                    reduction=reduction, naive=True)
    assert_close(grad, oracle, dtype, op="triplet_loss", what="gradient")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("n, d", [(1, 1), (8, 16), (300, 128)])
def test_contrastive_loss_equals_reference(dtype, naive, n, d, rng):
    e1, e2, same = pairs(rng, n, d, dtype)
    margin = float(np.sqrt(2 * d))  # about the typical distance: pairs on both sides of it
    loss, g1, g2 = cn.ops.contrastive_loss(e1, e2, same, margin=margin, naive=naive)
    assert g1.dtype == dtype and g2.shape == (n, d)
    assert_close(loss, ref.contrastive_loss(e1, e2, same, margin), dtype, op="contrastive_loss")
    _, o1, o2 = cn.ops.contrastive_loss(e1.astype(np.float64), e2.astype(np.float64),
                                        same.astype(np.float64), margin=margin, naive=True)
    assert_close(g1, o1, dtype, op="contrastive_loss", what="de1")
    assert_close(g2, o2, dtype, op="contrastive_loss", what="de2")


def test_pytorch_triplet_margin_loss_settings():
    # torch.nn.TripletMarginLoss(margin=1.0)(a, p, n) on a = (0, 0), p = (3, 4), n = (1, 0):
    # d(a, p) = ‖(−3 + 1e-6, −4 + 1e-6)‖, d(a, n) = ‖(−1 + 1e-6, 1e-6)‖, mean of one row.
    emb = np.array([[[0, 0], [3, 4], [1, 0]]], float)
    dp = np.hypot(-3 + 1e-6, -4 + 1e-6)
    dn = np.hypot(-1 + 1e-6, 1e-6)
    loss, _ = cn.ops.triplet_loss(emb, margin=1.0, squared=False, reduction="mean")
    assert_close(loss, dp - dn + 1.0, what="PyTorch semantics")


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("margin", [0.2, 1.0, 3.0])
def test_matches_torch_triplet_margin_loss(margin, reduction, rng):
    # squared=False with PyTorch's eps is TripletMarginLoss(margin, p=2, eps=1e-6):
    # the loss and, through autograd, the gradient of every anchor, positive, negative.
    torch = pytest.importorskip("torch", reason="torch is not installed")
    emb = rng.standard_normal((40, 3, 8))
    t = torch.tensor(emb, requires_grad=True)
    want = torch.nn.TripletMarginLoss(margin=margin, p=2.0, eps=1e-6, reduction=reduction)(
        t[:, 0], t[:, 1], t[:, 2])
    want.backward()
    loss = cn.losses.TripletLoss(margin=margin, squared=False, reduction=reduction)
    value, grad = loss.loss_and_gradient(None, emb)
    assert_close(value, want.item(), what="loss")
    assert_close(grad, t.grad.numpy(), what="gradient")
    assert 0 < want.item()  # some rows on each side of the hinge at these margins


# Gradients by finite differences (float64) ---------------------------------------


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("squared, reduction", [(True, "sum"), (False, "mean")])
def test_triplet_loss_gradcheck(naive, squared, reduction, rng):
    emb = rng.standard_normal((6, 3, 4))
    margin = 1.0  # random triplets on both sides of the hinge
    _, analytic = cn.ops.triplet_loss(emb, margin=margin, squared=squared, reduction=reduction,
                                      naive=naive)
    assert np.any(analytic) and not np.all(analytic)
    numeric = numerical_gradient(lambda: ref.triplet_loss(emb, margin, squared, reduction), emb)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("naive", [False, True])
def test_contrastive_loss_gradcheck(naive, rng):
    e1, e2, same = pairs(rng, 8, 3, np.float64)
    margin = 2.5
    _, g1, g2 = cn.ops.contrastive_loss(e1, e2, same, margin=margin, naive=naive)
    for e, g in ((e1, g1), (e2, g2)):
        numeric = numerical_gradient(lambda: ref.contrastive_loss(e1, e2, same, margin), e)
        assert relative_difference(g, numeric) < GRADCHECK_THRESHOLD


def test_contrastive_loss_object_gradient_stacks_pairs(rng):
    e1, e2, same = pairs(rng, 5, 3, np.float64)
    loss, grad = cn.losses.ContrastiveLoss(2.0).loss_and_gradient(same, np.stack([e1, e2], axis=1))
    _, g1, g2 = cn.ops.contrastive_loss(e1, e2, same, margin=2.0)
    assert loss == cn.ops.contrastive_loss(e1, e2, same, margin=2.0)[0]
    np.testing.assert_array_equal(grad, np.stack([g1, g2], axis=1))


def test_coincident_dissimilar_pair_is_finite():
    # d = 0 inside the margin: the loss is margin², the gradient has no direction: 0.
    e = np.zeros((1, 3))
    for naive in (False, True):
        loss, g1, g2 = cn.ops.contrastive_loss(e, e, np.zeros(1), margin=1.5, naive=naive)
        assert loss == 2.25 and not g1.any() and not g2.any()


# Bad inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("call, match", [
    (lambda: cn.ops.triplet_loss(np.zeros((4, 2, 3))), r"triplet_loss: emb must have shape \(N, 3, D\)"),
    (lambda: cn.ops.triplet_loss(np.zeros((4, 9))), r"triplet_loss: emb must have shape"),
    (lambda: cn.ops.triplet_loss(np.zeros((4, 3, 2)), margin=-0.1), r"triplet_loss: margin"),
    (lambda: cn.ops.triplet_loss(np.zeros((4, 3, 2)), margin=np.nan), r"triplet_loss: margin"),
    (lambda: cn.ops.triplet_loss(np.zeros((4, 3, 2)), reduction="avg"), r"triplet_loss: reduction"),
    (lambda: cn.ops.triplet_loss(np.full((1, 3, 2), np.nan)), r"triplet_loss: emb must be finite"),
    (lambda: cn.losses.TripletLoss(margin=-1), r"triplet_loss: margin"),
    (lambda: cn.losses.TripletLoss()(None, np.zeros((2, 3))), r"triplet_loss: emb must have shape"),
    (lambda: cn.ops.contrastive_loss(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2)),
     r"contrastive_loss: e2 must have shape"),
    (lambda: cn.ops.contrastive_loss(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3)),
     r"contrastive_loss: same must have shape"),
    (lambda: cn.ops.contrastive_loss(np.zeros((2, 3)), np.zeros((2, 3)), np.array([0, 2.0])),
     r"contrastive_loss: same must hold only 0 or 1"),
    (lambda: cn.ops.contrastive_loss(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)),
     r"contrastive_loss: e1 must not be empty"),
    (lambda: cn.losses.ContrastiveLoss(margin=-1.0), r"contrastive_loss: margin"),
    (lambda: cn.losses.ContrastiveLoss()(np.zeros(2), np.zeros((2, 3, 4))),
     r"ContrastiveLoss: y_pred must have shape \(N, 2, D\)"),
])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mixed_dtypes_are_a_type_error():
    with pytest.raises(TypeError, match="contrastive_loss: e2 must have the dtype of e1"):
        cn.ops.contrastive_loss(np.zeros((2, 3)), np.zeros((2, 3), np.float32), np.zeros(2))


def test_read_only_and_strided_embeddings(rng):
    emb = triplets(rng, 5, 8, np.float64)
    emb.flags.writeable = False
    assert_close(cn.losses.TripletLoss(1.0)(None, emb), ref.triplet_loss(emb, 1.0), what="read-only")
    wide = rng.standard_normal((5, 2, 16))
    e1, e2 = wide[:, 0, ::2], wide[:, 1, ::2]   # strided views
    same = np.array([1, 0, 1, 0, 0])
    assert_close(cn.ops.contrastive_loss(e1, e2, same.astype(float), margin=3.0)[0],
                 ref.contrastive_loss(e1, e2, same, 3.0), what="strided")


def test_fast_is_reproducible_across_thread_counts(rng):
    before = cn.get_num_threads()
    emb = triplets(rng, 2000, 32, np.float32)
    try:
        results = []
        for threads in (1, 2, 3):
            cn.set_num_threads(threads)
            loss, grad = cn.ops.triplet_loss(emb, margin=1.0)
            results.append((loss, grad))
        # Each thread count sums its own chunks; gradients are per row, so identical bits.
        for loss, grad in results[1:]:
            np.testing.assert_array_equal(grad, results[0][1])
            assert_close(loss, results[0][0], np.float32, op="triplet_loss")
        cn.set_num_threads(2)
        assert cn.ops.triplet_loss(emb, margin=1.0)[0] == results[1][0]
    finally:
        cn.set_num_threads(before)


# Triplet mining within a batch ------------------------------------------------------


def labelled(rng, n, d, identities):
    labels = rng.integers(0, identities, n)
    # Identities as clusters that overlap: some negatives are closer than some positives.
    centres = rng.standard_normal((identities, d))
    return centres[labels] + 0.8 * rng.standard_normal((n, d)), labels


@pytest.mark.parametrize("n, d, identities", [(2, 3, 2), (12, 4, 3), (40, 8, 5), (30, 2, 1)])
def test_batch_hard_triplets_equal_enumeration(n, d, identities, rng):
    emb, labels = labelled(rng, n, d, identities)
    got = cn.losses.batch_hard_triplets(emb, labels)
    assert got.dtype == np.int64 and got.shape[1] == 3
    np.testing.assert_array_equal(got, ref.batch_hard_triplets(emb, labels))
    if identities > 1 and n > 2:
        assert len(got) > 0


@pytest.mark.parametrize("squared, margin", [(True, 0.2), (True, 2.0), (False, 0.5)])
@pytest.mark.parametrize("n, d, identities", [(12, 4, 3), (40, 8, 5)])
def test_semi_hard_triplets_equal_enumeration(squared, margin, n, d, identities, rng):
    emb, labels = labelled(rng, n, d, identities)
    got = cn.losses.semi_hard_triplets(emb, labels, margin=margin, squared=squared)
    expected = ref.semi_hard_triplets(emb, labels, margin, squared)
    assert len(expected) > 0
    np.testing.assert_array_equal(got, expected)
    # Every semi-hard triple costs something, but less than the margin.
    losses = [ref.triplet_loss(emb[t][None], margin, squared) for t in got]
    assert min(losses) > 0 and max(losses) < margin


def test_mining_hand_case():
    # 1-D embeddings: identity 0 at 0 and 3, identity 1 at 1 and 10.
    emb, labels = np.array([[0.0], [3.0], [1.0], [10.0]]), np.array([0, 0, 1, 1])
    # Anchor 0: positive 1 (d² 9), closest negative 2 (d² 1); anchor 1: 0, 2 (4 < 49);
    # anchor 2: positive 3, negative 0 (1 < 4); anchor 3: positive 2, negative 1 (49 < 100).
    np.testing.assert_array_equal(cn.losses.batch_hard_triplets(emb, labels),
                                  [[0, 1, 2], [1, 0, 2], [2, 3, 0], [3, 2, 1]])
    # Semi-hard, squared distances 9 (0-1), 1 (0-2), 100 (0-3), 4 (1-2), 49 (1-3), 81 (2-3).
    # Margin 5 needs d(a,p) < d(a,n) < d(a,p) + 5: no pair has one.
    assert cn.losses.semi_hard_triplets(emb, labels, margin=5.0).shape == (0, 3)
    # Margin 45: (1, 0) takes 3 (9 < 49 < 54), (3, 2) takes 0 (81 < 100 < 126);
    # (0, 1) (1 and 100 against 9 … 54) and (2, 3) (1 and 4 against 81 …) have none.
    np.testing.assert_array_equal(cn.losses.semi_hard_triplets(emb, labels, margin=45.0),
                                  [[1, 0, 3], [3, 2, 0]])


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_triplet_loss_with_mining(mining, dtype, rng):
    emb, labels = labelled(rng, 24, 6, 4)
    emb = emb.astype(dtype)
    loss = cn.losses.TripletLoss(margin=1.0, mining=mining)
    idx = (cn.losses.batch_hard_triplets(emb, labels) if mining == "batch_hard"
           else cn.losses.semi_hard_triplets(emb, labels, margin=1.0))
    assert len(idx) > 0
    value, grad = loss.loss_and_gradient(labels, emb)
    assert grad.shape == emb.shape and grad.dtype == dtype
    assert_close(value, ref.triplet_loss(emb[idx], 1.0), dtype, op="triplet_loss")
    # The gradient of each triple's rows lands on the embeddings they came from.
    _, g3 = cn.ops.triplet_loss(emb.astype(np.float64)[idx], margin=1.0)
    expected = np.zeros(emb.shape)
    for t, rows in zip(idx, g3):
        for k in range(3):
            expected[t[k]] += rows[k]
    assert_close(grad, expected, dtype, op="triplet_loss", what="scattered gradient")


@pytest.mark.parametrize("mining", ["batch_hard", "semi_hard"])
def test_triplet_loss_with_mining_gradcheck(mining, rng):
    emb, labels = labelled(rng, 10, 3, 3)
    mine = ref.batch_hard_triplets if mining == "batch_hard" else (
        lambda e, y: ref.semi_hard_triplets(e, y, 1.0))
    _, analytic = cn.losses.TripletLoss(margin=1.0, mining=mining).loss_and_gradient(labels, emb)
    assert np.any(analytic)
    numeric = numerical_gradient(lambda: ref.triplet_loss(emb[mine(emb, labels)], 1.0), emb)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


def test_mining_without_triples_costs_nothing():
    emb, labels = np.eye(3), np.array([0, 1, 2])      # no positives at all
    value, grad = cn.losses.TripletLoss(mining="batch_hard").loss_and_gradient(labels, emb)
    assert value == 0 and not grad.any()


@pytest.mark.parametrize("call, match", [
    (lambda: cn.losses.batch_hard_triplets(np.zeros((4, 2, 1)), np.zeros(4)),
     r"batch_hard_triplets: embeddings must have shape \(N, D\)"),
    (lambda: cn.losses.batch_hard_triplets(np.zeros((4, 2)), np.zeros(3)),
     r"batch_hard_triplets: labels must have shape \(4,\)"),
    (lambda: cn.losses.semi_hard_triplets(np.full((2, 2), np.nan), np.zeros(2)),
     r"semi_hard_triplets: embeddings contains NaN"),
    (lambda: cn.losses.semi_hard_triplets(np.zeros((2, 2)), np.zeros(2), margin=-1),
     r"semi_hard_triplets: margin"),
    (lambda: cn.losses.TripletLoss(mining="hardest"), r"TripletLoss: mining"),
])
def test_mining_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
