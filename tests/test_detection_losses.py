"""Detection losses (course 4, week 3): the YOLO loss, classification with
localization and the masked MSE against their NumPy references, fast against
naive, gradients by finite differences, hand-computed cases, the "don't care"
rule, consistency with yolo_decode, the loss objects and bad inputs."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, relative_difference
from reference import detection_losses as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

D = cn.detection
LN2 = np.log(2)


# YOLO -----------------------------------------------------------------------------

ANCHORS = np.array([[12.0, 12.0], [30.0, 14.0], [10.0, 28.0]])
IMAGE = (60, 75)   # (height, width): 20 × 25-pixel cells on a 3 × 3 grid


def yolo_batch(rng, n, dtype, grid=3, classes=2, anchors=ANCHORS, image=IMAGE):
    """Targets from yolo_encode of random boxes (a few per image) and raw
    outputs: random, except that some anchors without an object predict a box
    close to a true one (so the "don't care" rule has work to do)."""
    h, w = image
    targets, outputs = [], []
    a_count, depth = len(anchors), 5 + classes
    for _ in range(n):
        k = 3
        centre = rng.uniform(0.05, 0.95, (k, 2)) * [w, h]
        size = anchors[rng.integers(0, a_count, k)] * rng.uniform(0.6, 1.6, (k, 2))
        boxes = D.box_convert(np.concatenate([centre, size], axis=1), "cxcywh", "xyxy")
        t = D.yolo_encode(boxes, rng.integers(0, classes, k), grid, anchors, classes, image)
        z = rng.standard_normal(t.shape) * 1.5
        tt, zz = t.reshape(a_count, depth, grid, grid), z.reshape(a_count, depth, grid, grid)
        for a, i, j in zip(*np.nonzero(tt[:, 0])):
            # Another anchor of the same cell guesses this box: IoU high, it is "don't care".
            b = (a + 1) % a_count
            if tt[b, 0, i, j] == 0:
                zz[b, 1:3, i, j] = np.log(tt[a, 1:3, i, j] / (1 - tt[a, 1:3, i, j]))
                zz[b, 3:5, i, j] = tt[a, 3:5, i, j] + np.log(anchors[a] / anchors[b])
        targets.append(t)
        outputs.append(z)
    return np.stack(targets).astype(dtype), np.stack(outputs).astype(dtype)


def away_from_threshold(y_true, y_pred, threshold, anchors=ANCHORS, image=IMAGE):
    """Both sides of the "don't care" threshold occur, and no prediction
    without an object is within 1e-3 of it (float32 rounding cannot flip it)."""
    best = ref.yolo_best_iou(y_true, y_pred, anchors, image)
    a_count = len(anchors)
    noobj = y_true.reshape(len(y_true), a_count, -1, *y_true.shape[2:])[:, :, 0] == 0
    ious = best[noobj]
    return (ious > threshold).any() and (ious <= threshold).any() and np.abs(ious - threshold).min() > 1e-3


def test_yolo_loss_hand_computed():
    # One anchor (8 × 8), C = 2, a 2 × 2 grid on a 64-pixel image, all outputs 0:
    # σ(0) = 0.5, softmax uniform. The object sits in cell (row 0, column 1) with
    # t = (0.5, 0.25, log 2, 0), class 1. Its terms: 5·[(0.5 − 0.25)² + (log 2)²]
    # + (−log σ(0)) + (−log 1/2). Each of the three empty cells predicts an
    # 8 × 8 box at its centre, far from the truth (IoU 0): λnoobj·log 2 each.
    anchors = np.array([[8.0, 8.0]])
    y_true = np.zeros((1, 7, 2, 2))
    y_true[0, :, 0, 1] = [1, 0.5, 0.25, LN2, 0, 0, 1]
    y_pred = np.zeros_like(y_true)
    expected = 5 * (0.0625 + LN2 ** 2) + 2 * LN2 + 3 * 0.5 * LN2
    loss = cn.losses.YoloLoss(anchors, 2, image_size=64)
    assert_close(loss(y_true, y_pred), expected, what="hand YOLO loss")
    for naive in (False, True):
        value, grad = cn.ops.yolo_loss(y_true, y_pred, anchors, (64, 64), naive=naive)
        assert_close(value, expected, what="hand YOLO loss")
        # d/dz0 = σ − 1 = −0.5 at the object, λnoobj·σ = 0.25 elsewhere; offsets:
        # 2·5·(σ − t)·σ(1 − σ); log sizes 2·5·(z − t); classes softmax − onehot.
        cell = grad[0, :, 0, 1]
        assert_close(cell, [-0.5, 0, 10 * 0.25 * 0.25, -10 * LN2, 0, 0.5, -0.5], what="object gradient")
        assert_close(grad[0, 0], [[0.25, -0.5], [0.25, 0.25]], what="objectness gradient")
        assert not grad[0, 1:, [0, 1, 1], [0, 0, 1]].any()   # empty cells: only p_c


def test_yolo_dont_care_prediction_is_not_penalised():
    # Two identical anchors, one 32-pixel cell. Anchor 0 holds the object, a
    # 16 × 16 box at the centre; anchor 1 (no object) predicts the same box at
    # z = 0 with objectness logit 3: IoU 1 > 0.6, so it costs nothing.
    anchors = np.array([[16.0, 16.0], [16.0, 16.0]])
    y_true = np.zeros((1, 12, 1, 1))
    y_true[0, :6, 0, 0] = [1, 0.5, 0.5, 0, 0, 1]
    y_pred = np.zeros_like(y_true)
    y_pred[0, 6] = 3.0
    obj = LN2 + 0.0   # −log σ(0); boxes exact; one class: cross-entropy 0
    for naive in (False, True):
        loss, grad = cn.ops.yolo_loss(y_true, y_pred, anchors, (32, 32), naive=naive)
        assert_close(loss, obj, what="ignored")
        assert grad[0, 6, 0, 0] == 0
        # With ignore_threshold = 1 nothing is ignored: λnoobj·softplus(3), gradient λnoobj·σ(3).
        loss, grad = cn.ops.yolo_loss(y_true, y_pred, anchors, (32, 32), ignore_threshold=1.0,
                                      naive=naive)
        assert_close(loss, obj + 0.5 * np.log1p(np.exp(3.0)), what="not ignored")
        assert_close(grad[0, 6, 0, 0], 0.5 / (1 + np.exp(-3.0)), what="not ignored")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_yolo_loss_equals_reference(dtype, naive):
    rng = np.random.default_rng(7)
    y_true, y_pred = yolo_batch(rng, 4, dtype)
    assert away_from_threshold(y_true, y_pred, 0.6)
    loss, grad = cn.ops.yolo_loss(y_true, y_pred, ANCHORS, IMAGE, naive=naive)
    assert grad.dtype == dtype and grad.shape == y_pred.shape
    assert_close(loss, ref.yolo_loss(y_true, y_pred, ANCHORS, IMAGE), dtype, op="yolo_loss")
    _, oracle = cn.ops.yolo_loss(y_true.astype(np.float64), y_pred.astype(np.float64), ANCHORS,
                                 IMAGE, naive=True)
    assert_close(grad, oracle, dtype, op="yolo_loss", what="gradient")


@pytest.mark.parametrize("settings", [dict(), dict(lambda_coord=1.0, lambda_noobj=2.0, ignore_threshold=0.4)])
def test_yolo_loss_gradcheck(settings):
    rng = np.random.default_rng(3)
    y_true, y_pred = yolo_batch(rng, 2, np.float64)
    assert away_from_threshold(y_true, y_pred, settings.get("ignore_threshold", 0.6))
    for naive in (False, True):
        _, analytic = cn.ops.yolo_loss(y_true, y_pred, ANCHORS, IMAGE, naive=naive, **settings)
        numeric = numerical_gradient(lambda: ref.yolo_loss(y_true, y_pred, ANCHORS, IMAGE, **settings),
                                     y_pred)
        assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


def test_yolo_loss_descent_recovers_the_boxes_through_yolo_decode():
    # The loss reads the head output as yolo_decode(from_logits=True) does:
    # minimising it over the raw output itself must decode to the encoded boxes.
    boxes = np.array([[5, 8, 30, 22], [40, 30, 70, 58]], float)
    target = D.yolo_encode(boxes, [1, 0], 3, ANCHORS, 2, IMAGE)[None].astype(np.float64)
    z = np.zeros_like(target)
    loss = cn.losses.YoloLoss(ANCHORS, 2, image_size=IMAGE)
    first = loss(target, z)
    for _ in range(500):   # step 0.15: the log sizes' curvature is 2·λcoord = 10
        value, grad = loss.loss_and_gradient(target, z)
        z -= 0.15 * grad
    assert value < 0.05 * first
    out, scores, classes = D.yolo_decode(z, ANCHORS, IMAGE, from_logits=True)
    found = scores[0] > 0.5
    assert found.sum() == 2
    order = np.argsort(out[0, found][:, 0])
    np.testing.assert_allclose(out[0, found][order], boxes, atol=0.5)
    np.testing.assert_array_equal(classes[0, found][order], [1, 0])


def test_yolo_nan_prediction_propagates():
    rng = np.random.default_rng(1)
    y_true, y_pred = yolo_batch(rng, 1, np.float64)
    y_pred[0, 0, 0, 0] = np.nan
    for naive in (False, True):
        assert np.isnan(cn.ops.yolo_loss(y_true, y_pred, ANCHORS, IMAGE, naive=naive)[0])


def noobj_and_obj_entries(y_true, anchors=ANCHORS):
    """(a, k, i, j) channel positions of y_pred, as (anchor·depth + k, i, j): a
    box field of a cell without an object, a class logit there, and a box field
    of a cell with one."""
    a_count = len(anchors)
    depth = y_true.shape[1] // a_count
    pc = y_true[0].reshape(a_count, depth, *y_true.shape[2:])[:, 0]
    (a0, i0, j0), (a1, i1, j1) = np.argwhere(pc == 0)[0], np.argwhere(pc == 1)[0]
    return {"no object, box x": (a0 * depth + 1, i0, j0), "no object, class": (a0 * depth + 5, i0, j0),
            "no object, p_c": (a0 * depth, i0, j0), "object, box w": (a1 * depth + 3, i1, j1)}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_yolo_non_finite_prediction_propagates_at_every_cell(dtype, bad):
    # PyTorch's `mask * loss`: a masked-out term is 0·term, so a NaN (or ±inf)
    # output gives a NaN loss and a NaN gradient at that entry even where no
    # object is (it used to vanish behind the mask); every other gradient
    # entry stays finite, as autograd's would.
    rng = np.random.default_rng(1)
    y_true, y_pred = yolo_batch(rng, 2, dtype)
    for where, (c, i, j) in noobj_and_obj_entries(y_true).items():
        if bad == np.inf and where in ("no object, p_c", "object, box w"):
            continue   # not masked out there: +inf has its own value (inf), as in PyTorch
        z = y_pred.copy()
        z[0, c, i, j] = bad
        assert np.isnan(ref.yolo_loss(y_true, z, ANCHORS, IMAGE)), where
        results = [cn.ops.yolo_loss(y_true, z, ANCHORS, IMAGE, naive=naive) for naive in (False, True)]
        for loss, grad in results:
            assert np.isnan(loss), where
            assert np.isnan(grad[0, c, i, j]), where
            others = np.delete(grad.ravel(), np.ravel_multi_index((0, c, i, j), grad.shape))
            assert np.isfinite(others).all(), where
        np.testing.assert_array_equal(np.isnan(results[0][1]), np.isnan(results[1][1]))


def test_yolo_ignored_objectness_propagates_nan():
    # An ignored ("don't care") objectness is masked out too: NaN there is NaN.
    rng = np.random.default_rng(7)
    y_true, y_pred = yolo_batch(rng, 1, np.float64)
    best = ref.yolo_best_iou(y_true, y_pred, ANCHORS, IMAGE)
    depth = y_true.shape[1] // len(ANCHORS)
    pc = y_true[0].reshape(len(ANCHORS), depth, 3, 3)[:, 0]
    a, i, j = np.argwhere((pc == 0) & (best[0] > 0.6))[0]
    z = y_pred.copy()
    z[0, a * depth, i, j] = np.nan
    for naive in (False, True):
        loss, grad = cn.ops.yolo_loss(y_true, z, ANCHORS, IMAGE, naive=naive)
        assert np.isnan(loss) and np.isnan(grad[0, a * depth, i, j])
    _, clean = cn.ops.yolo_loss(y_true, y_pred, ANCHORS, IMAGE)
    assert clean[0, a * depth, i, j] == 0   # finite: ignored, gradient 0


def test_yolo_loss_is_reproducible_across_thread_counts():
    rng = np.random.default_rng(2)
    y_true, y_pred = yolo_batch(rng, 64, np.float32, grid=8)
    before = cn.get_num_threads()
    try:
        results = []
        for threads in (1, 2, 3):
            cn.set_num_threads(threads)
            results.append(cn.ops.yolo_loss(y_true, y_pred, ANCHORS, IMAGE))
        for loss, grad in results[1:]:
            np.testing.assert_array_equal(grad, results[0][1])   # per-entry gradients
            assert_close(loss, results[0][0], np.float32, op="yolo_loss")
    finally:
        cn.set_num_threads(before)


# Classification with localization ------------------------------------------------


def test_localization_loss_course_formula():
    # The lecture's y = (p_c, b_x, b_y, b_h, b_w, c_1, c_2, c_3). With a car
    # (class 2) every entry counts; with no object only p_c does, and the
    # other target entries are "?" (NaN here).
    y_true = np.array([[1, 0.5, 0.7, 0.3, 0.4, 0, 1, 0],
                       [0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan]])
    y_pred = np.array([[0.9, 0.4, 0.7, 0.5, 0.4, 0.1, 0.8, 0.0],
                       [0.3, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0]])
    first = 0.01 + 0.01 + 0 + 0.04 + 0 + 0.01 + 0.04 + 0
    loss = cn.losses.LocalizationLoss()
    assert_close(loss(y_true, y_pred), (first + 0.09) / 2, what="course loss")
    _, grad = loss.loss_and_gradient(y_true, y_pred)
    assert_close(grad[1], [0.3, 0, 0, 0, 0, 0, 0, 0], what="no object: p_c only")
    assert_close(grad[0], (y_pred[0] - y_true[0]), what="object: 2(ŷ − y)/N")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("class_loss", ["squared", "cross_entropy"])
@pytest.mark.parametrize("n, k", [(1, 1), (9, 3), (2000, 10)])
def test_localization_loss_equals_reference(dtype, naive, class_loss, n, k, rng):
    y_true, y_pred = localization_batch(rng, n, k)
    y_true, y_pred = y_true.astype(dtype), y_pred.astype(dtype)
    loss, grad = cn.ops.localization_loss(y_true, y_pred, class_loss=class_loss, naive=naive)
    assert grad.dtype == dtype and grad.shape == y_pred.shape
    assert_close(loss, ref.localization_loss(y_true, y_pred, class_loss), dtype, op="localization_loss")
    _, oracle = cn.ops.localization_loss(y_true.astype(np.float64), y_pred.astype(np.float64),
                                         class_loss=class_loss, naive=True)
    assert_close(grad, oracle, dtype, op="localization_loss", what="gradient")


def localization_batch(rng, n, k):
    pc = (np.arange(n) % 3 != 0).astype(float)          # some rows without an object
    box = rng.uniform(0, 1, (n, 4))
    onehot = np.eye(k)[rng.integers(0, k, n)]
    y_true = np.concatenate([pc[:, None], box, onehot], axis=1)
    y_true[pc == 0, 1:] = np.nan                          # don't care
    return y_true, rng.standard_normal((n, 5 + k))


@pytest.mark.parametrize("class_loss", ["squared", "cross_entropy"])
def test_localization_loss_gradcheck(class_loss, rng):
    y_true, y_pred = localization_batch(rng, 6, 3)
    for naive in (False, True):
        _, analytic = cn.ops.localization_loss(y_true, y_pred, class_loss=class_loss, naive=naive)
        numeric = numerical_gradient(lambda: ref.localization_loss(y_true, y_pred, class_loss), y_pred)
        assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("class_loss", ["squared", "cross_entropy"])
@pytest.mark.parametrize("column", [0, 1, 5])
@pytest.mark.parametrize("has_object", [False, True])
def test_localization_nan_prediction_propagates_in_every_row(dtype, class_loss, column, has_object, rng):
    # Where p_c = 0 the box and class entries are masked out: 0·term, so NaN
    # there makes the loss and that gradient entry NaN (PyTorch's `mask *
    # loss`), as it does where p_c = 1; the other entries stay finite.
    y_true, y_pred = localization_batch(rng, 6, 3)
    row = 1 if has_object else 0   # localization_batch: row 0 has no object, row 1 has one
    assert y_true[row, 0] == has_object
    y_true, y_pred = y_true.astype(dtype), y_pred.astype(dtype)
    y_pred[row, column] = np.nan
    assert np.isnan(ref.localization_loss(y_true, y_pred, class_loss))
    for naive in (False, True):
        loss, grad = cn.ops.localization_loss(y_true, y_pred, class_loss=class_loss, naive=naive)
        assert np.isnan(loss)
        assert np.isnan(grad[row, column])
        rest = np.isfinite(grad)
        rest[row] = True
        assert rest.all()   # other rows untouched
        if not (has_object and class_loss == "cross_entropy" and column >= 5):   # softmax: the whole row
            assert np.isfinite(np.delete(grad[row], column)).all()
    with_inf = y_pred.copy()
    with_inf[row, column] = np.inf
    if not has_object and column > 0:
        assert np.isnan(cn.ops.localization_loss(y_true, with_inf, class_loss=class_loss)[0])   # 0·inf


# Masked MSE ----------------------------------------------------------------------


def test_masked_mse_hand_computed():
    # Two landmarks (x, y) per face, the second face's second landmark missing:
    # 4 + 0 + 1 + 0 + 1 + 1 over 6 present entries.
    y_true = np.array([[0, 0, 1, 1], [2, 2, np.nan, np.nan]])
    y_pred = np.array([[2, 0, 0, 1], [1, 3, 5, 5.0]])
    loss = cn.losses.MaskedMSE()
    assert_close(loss(y_true, y_pred), 7 / 6, what="masked mse")
    _, grad = loss.loss_and_gradient(y_true, y_pred)
    assert_close(grad, [[4 / 6, 0, -2 / 6, 0], [-2 / 6, 2 / 6, 0, 0]], what="gradient")
    # Nothing missing: the built-in mse. Everything missing: 0.
    full = np.array([[1, 2], [3, 4.0]])
    assert_close(loss(full, y_pred[:, :2]), cn.ops.mse(y_pred[:, :2], full)[0], what="= mse")
    value, grad = loss.loss_and_gradient(np.full((2, 2), np.nan), full)
    assert value == 0 and not grad.any()


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("shape", [(1, 1), (7, 10), (300, 136)])
def test_masked_mse_equals_reference(dtype, naive, shape, rng):
    y_true = rng.standard_normal(shape)
    y_true[rng.random(shape) < 0.3] = np.nan
    y_true, y_pred = y_true.astype(dtype), rng.standard_normal(shape).astype(dtype)
    loss, grad = cn.ops.masked_mse(y_true, y_pred, naive=naive)
    assert grad.dtype == dtype and grad.shape == shape
    assert_close(loss, ref.masked_mse(y_true, y_pred), dtype, op="masked_mse")
    _, oracle = cn.ops.masked_mse(y_true.astype(np.float64), y_pred.astype(np.float64), naive=True)
    assert_close(grad, oracle, dtype, op="masked_mse", what="gradient")


def test_masked_mse_gradcheck(rng):
    y_true = rng.standard_normal((5, 6))
    y_true[rng.random((5, 6)) < 0.3] = np.nan
    y_pred = rng.standard_normal((5, 6))
    for naive in (False, True):
        _, analytic = cn.ops.masked_mse(y_true, y_pred, naive=naive)
        numeric = numerical_gradient(lambda: ref.masked_mse(y_true, y_pred), y_pred)
        assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


# The loss-object protocol ----------------------------------------------------------


def test_loss_objects_follow_the_custom_loss_protocol(rng):
    # loss(y_true, y_pred) -> float, loss_and_gradient(...) -> (float, array like y_pred).
    y_true, y_pred = yolo_batch(rng, 2, np.float32)
    lt, lp = localization_batch(rng, 4, 2)
    cases = [(cn.losses.YoloLoss(ANCHORS, 2, image_size=IMAGE), y_true, y_pred),
             (cn.losses.LocalizationLoss("cross_entropy"), lt, lp),
             (cn.losses.MaskedMSE(), lt, lp),
             (cn.losses.TripletLoss(), None, rng.standard_normal((3, 3, 4))),
             (cn.losses.ContrastiveLoss(), np.array([1, 0]), rng.standard_normal((2, 2, 4)))]
    for loss, yt, yp in cases:
        value, grad = loss.loss_and_gradient(yt, yp)
        assert isinstance(value, float) and loss(yt, yp) == value
        assert grad.shape == np.shape(yp) and grad.dtype == np.asarray(yp).dtype


# Bad inputs ----------------------------------------------------------------------

T1 = np.zeros((1, 7, 2, 2))
BAD_PC = T1.copy()
BAD_PC[0, 0, 1, 1] = 0.5
NAN_T = T1.copy()
NAN_T[0, 3, 0, 0] = np.nan
A1 = np.array([[8.0, 8.0]])


@pytest.mark.parametrize("call, match", [
    (lambda: cn.ops.yolo_loss(BAD_PC, T1, A1, (8, 8)), r"yolo_loss: y_true p_c .* must be 0 or 1"),
    (lambda: cn.ops.yolo_loss(NAN_T, T1, A1, (8, 8)), r"yolo_loss: y_true must be finite"),
    (lambda: cn.ops.yolo_loss(T1, np.zeros((1, 7, 2, 3)), A1, (8, 8)), r"yolo_loss: y_pred must have shape"),
    (lambda: cn.ops.yolo_loss(T1, np.zeros((1, 5, 2, 2)), A1, (8, 8)), r"yolo_loss: y_pred must have shape"),
    (lambda: cn.ops.yolo_loss(T1[:, :6], T1, A1, (8, 8)), r"yolo_loss: y_true must have shape"),
    (lambda: cn.ops.yolo_loss(T1[:0], T1[:0], A1, (8, 8)), r"yolo_loss: y_pred must not be empty"),
    (lambda: cn.ops.yolo_loss(T1, T1, np.ones((1, 3)), (8, 8)), r"yolo_loss: anchors must have shape"),
    (lambda: cn.ops.yolo_loss(T1, T1, -A1, (8, 8)), r"yolo_loss: anchors must be finite and > 0"),
    (lambda: cn.ops.yolo_loss(T1, T1, A1, (0, 8)), r"yolo_loss: image_size must be finite and > 0"),
    (lambda: cn.ops.yolo_loss(T1, T1, A1, (8, 8), lambda_coord=-1), r"yolo_loss: lambda_coord"),
    (lambda: cn.ops.yolo_loss(T1, T1, A1, (8, 8), lambda_noobj=np.nan), r"yolo_loss: lambda_noobj"),
    (lambda: cn.ops.yolo_loss(T1, T1, A1, (8, 8), ignore_threshold=1.5), r"yolo_loss: ignore_threshold"),
    (lambda: cn.losses.YoloLoss(np.ones((2, 3)), 2, image_size=8), r"yolo_loss: anchors must have shape"),
    (lambda: cn.losses.YoloLoss(A1, 2, image_size=(8, 8, 8)), r"YoloLoss: image_size"),
    (lambda: cn.losses.YoloLoss(A1, 0, image_size=8), r"YoloLoss: num_classes must be >= 1"),
    (lambda: cn.losses.YoloLoss(A1, 2, lambda_noobj=-0.5, image_size=8), r"yolo_loss: lambda_noobj"),
    (lambda: cn.losses.YoloLoss(A1, 3, image_size=8)(T1, T1), r"YoloLoss: y_pred must have A\*\(5\+C\) = 8"),
    (lambda: cn.ops.localization_loss(np.zeros((2, 5)), np.zeros((2, 5))),
     r"localization_loss: y_pred must have shape \(N, 5 \+ K\)"),
    (lambda: cn.ops.localization_loss(np.zeros((2, 6)), np.zeros((3, 6))), r"localization_loss: y_true must have shape"),
    (lambda: cn.ops.localization_loss(np.full((1, 6), 0.5), np.zeros((1, 6))),
     r"localization_loss: y_true p_c \(column 0\) must be 0 or 1"),
    (lambda: cn.ops.localization_loss(np.array([[1, np.nan, 0, 0, 0, 1.0]]), np.zeros((1, 6))),
     r"localization_loss: y_true must be finite where p_c = 1"),
    (lambda: cn.ops.localization_loss(np.zeros((0, 6)), np.zeros((0, 6))), r"localization_loss: y_pred must have shape"),
    (lambda: cn.ops.localization_loss(np.zeros((1, 6)), np.zeros((1, 6)), class_loss="hinge"),
     r"localization_loss: class_loss must be one of"),
    (lambda: cn.losses.LocalizationLoss("hinge"), r"LocalizationLoss: class_loss"),
    (lambda: cn.ops.masked_mse(np.zeros((2, 3)), np.zeros((3, 2))), r"masked_mse: y_true must have shape"),
    (lambda: cn.ops.masked_mse(np.zeros(0), np.zeros(0)), r"masked_mse: y_pred must not be empty"),
])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("op, args", [
    (cn.ops.yolo_loss, (T1.astype(np.float32), T1, A1, (8, 8))),
    (cn.ops.localization_loss, (np.zeros((1, 6), np.float32), np.zeros((1, 6)))),
    (cn.ops.masked_mse, (np.zeros(3, np.float32), np.zeros(3))),
])
def test_mixed_dtypes_are_a_type_error(op, args):
    with pytest.raises(TypeError, match=r"y_true must have the dtype of y_pred"):
        op(*args)
