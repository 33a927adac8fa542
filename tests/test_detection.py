"""Boxes for detection (course 4, week 3): IoU and NMS kernels against the NumPy
and plain-Python references and against ONNX Runtime's NonMaxSuppression, box
formats, batched NMS and VOC mean average precision on hand-computed cases."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from reference import detection as ref
from tolerances import assert_close

D = cn.detection


def random_boxes(rng, n, dtype, special=True):
    """Corner boxes in [0, 20)², with (when `special`) every edge case the IoU
    formula has: degenerate (x2 < x1 or y2 < y1), zero-area, identical,
    disjoint and touching boxes."""
    xy = rng.uniform(0, 16, (n, 2))
    wh = rng.uniform(0.5, 6, (n, 2))
    b = np.concatenate([xy, xy + wh], axis=1)
    if special and n >= 8:
        b[0] = [5, 5, 3, 9]        # x2 < x1: degenerate
        b[1] = [4, 6, 8, 2]        # y2 < y1: degenerate
        b[2] = [3, 3, 3, 7]        # zero width
        b[3] = [2, 2, 2, 2]        # a point
        b[4] = b[5]                # identical to the next
        b[6] = [100, 100, 101, 101]  # disjoint from everything
        b[7] = [b[5, 2], b[5, 1], b[5, 2] + 2, b[5, 3]]  # touches box 5 along an edge
    return b.astype(dtype)


# IoU ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_iou_course_value(dtype):
    # Course 4, week 3 (YOLO assignment): iou((2,1,4,3), (1,2,3,4)) = 1/7.
    a = np.array([[2, 1, 4, 3]], dtype)
    b = np.array([[1, 2, 3, 4]], dtype)
    assert_close(D.iou(a, b), [[1 / 7]], what="course IoU")
    assert D.iou(a, b).dtype == dtype


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("n, m", [(40, 33), (1, 1), (0, 5), (5, 0), (8, 200)])
def test_iou_equals_reference(dtype, naive, n, m, rng):
    a = random_boxes(rng, n, dtype)
    b = np.concatenate([random_boxes(rng, m, dtype), a[:min(n, m) // 2]])[:m]
    got = cn.ops.box_iou(a, b, naive=naive)
    assert got.dtype == dtype and got.shape == (n, m)
    assert_close(got, ref.iou(a, b), op="box_iou")
    assert np.all((got >= 0) & (got <= 1))


def test_iou_edge_cases_exact():
    boxes = np.array([
        [0, 0, 2, 2],      # 0 proper
        [0, 0, 2, 2],      # 1 identical to 0
        [2, 0, 4, 2],      # 2 touches 0 along x = 2
        [5, 5, 6, 6],      # 3 disjoint
        [1, 1, 1, 1],      # 4 a point inside 0
        [2, 2, 0, 0],      # 5 corners swapped: degenerate, area 0
        [0, 0, 1, 2],      # 6 half of 0
    ], float)
    got = D.iou(boxes, boxes)
    assert not np.isnan(got).any()
    assert got[0, 1] == 1 and got[0, 2] == 0 and got[0, 3] == 0
    assert got[4, 4] == 0 and got[5, 5] == 0 and got[0, 5] == 0  # empty union or no overlap: 0
    assert got[0, 6] == 0.5
    np.testing.assert_array_equal(got, got.T)
    np.testing.assert_array_equal(D.box_area(boxes), [4, 4, 4, 1, 0, 0, 2])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_iou_fast_equals_naive_bitwise_for_any_thread_count(dtype, rng):
    before = cn.get_num_threads()
    a, b = random_boxes(rng, 300, dtype), random_boxes(rng, 500, dtype)
    naive = cn.ops.box_iou(a, b, naive=True)
    try:
        for threads in (1, 2, 3):
            cn.set_num_threads(threads)
            np.testing.assert_array_equal(cn.ops.box_iou(a, b), naive)
    finally:
        cn.set_num_threads(before)


def test_iou_accepts_lists_and_mixed_dtypes():
    got = D.iou([[2, 1, 4, 3]], np.array([[1, 2, 3, 4]], np.float32))
    assert got.dtype == np.float64  # ints and float32 together: float64
    assert_close(got, [[1 / 7]])


def test_read_only_and_strided_inputs(rng):
    a = random_boxes(rng, 20, np.float64)
    a.flags.writeable = False
    wide = np.concatenate([random_boxes(rng, 9, np.float64)] * 2, axis=1)
    b = wide[:, 4:]  # not C-contiguous: copied once
    assert_close(D.iou(a, b), ref.iou(a, b))
    scores = rng.random(20)
    scores.flags.writeable = False
    np.testing.assert_array_equal(D.nms(a, scores[::-1][::-1]), ref.nms(a, scores))


# NMS ------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("iou_threshold, score_threshold, max_output", [
    (0.5, None, None), (0.0, None, None), (0.3, 0.4, None), (0.7, None, 5), (1.0, 0.2, 3),
])
def test_nms_equals_reference(dtype, naive, iou_threshold, score_threshold, max_output, rng):
    boxes = random_boxes(rng, 150, dtype)
    scores = rng.choice([0.1, 0.3, 0.5, 0.8, 0.9], 150).astype(dtype)  # many equal scores
    got = cn.ops.nms(boxes, scores, iou_threshold, score_threshold, max_output, naive=naive)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, ref.nms(boxes, scores, iou_threshold, score_threshold, max_output))
    np.testing.assert_array_equal(D.nms(boxes, scores, iou_threshold, score_threshold, max_output), got)


def test_nms_large_fast_equals_naive(rng):
    boxes = random_boxes(rng, 2000, np.float32)
    scores = rng.random(2000).astype(np.float32)
    np.testing.assert_array_equal(cn.ops.nms(boxes, scores, 0.3),
                                  cn.ops.nms(boxes, scores, 0.3, naive=True))


def test_nms_ties_go_to_the_lower_index():
    boxes = np.array([[0, 0, 2, 2], [0, 0, 2, 2.1], [10, 10, 12, 12], [0, 0, 2, 2]], float)
    scores = np.array([0.5, 0.9, 0.9, 0.5])
    # 1 and 2 tie at 0.9 (1 first); 0 and 3 tie at 0.5 but overlap 1 by more than 0.5.
    np.testing.assert_array_equal(D.nms(boxes, scores), [1, 2])
    np.testing.assert_array_equal(D.nms(boxes, np.full(4, 0.5)), [0, 2])


def test_nms_threshold_is_strict():
    boxes = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], float)  # IoU exactly 0.5
    scores = np.array([0.9, 0.8])
    np.testing.assert_array_equal(D.nms(boxes, scores, iou_threshold=0.5), [0, 1])  # not > 0.5
    np.testing.assert_array_equal(D.nms(boxes, scores, iou_threshold=0.49), [0])
    # score_threshold: a score equal to it is dropped (kept only when > threshold).
    np.testing.assert_array_equal(D.nms(boxes, scores, score_threshold=0.8), [0])


def test_nms_small_and_degenerate_inputs():
    empty = D.nms(np.zeros((0, 4)), np.zeros(0))
    assert empty.dtype == np.int64 and empty.shape == (0,)
    np.testing.assert_array_equal(D.nms([[0, 0, 1, 1]], [0.3]), [0])
    same = np.tile([[1.0, 1, 3, 3]], (5, 1))
    np.testing.assert_array_equal(D.nms(same, np.arange(5.0)), [4])      # all others suppressed
    np.testing.assert_array_equal(D.nms(same, np.arange(5.0), score_threshold=10), [])
    np.testing.assert_array_equal(D.nms(same, np.arange(5.0), max_output=0), [])
    # Zero-area boxes overlap nothing, so even at threshold 0 all are kept.
    points = np.tile([[1.0, 1, 1, 1]], (3, 1))
    np.testing.assert_array_equal(D.nms(points, [0.2, 0.3, 0.1], iou_threshold=0.0), [1, 0, 2])


def test_batched_nms_equals_reference(rng):
    boxes = random_boxes(rng, 120, np.float64)
    scores = rng.choice([0.2, 0.4, 0.6, 0.9], 120)
    classes = rng.integers(0, 4, 120)
    for kw in (dict(), dict(iou_threshold=0.2, score_threshold=0.3), dict(max_output=7)):
        np.testing.assert_array_equal(D.batched_nms(boxes, scores, classes, **kw),
                                      ref.batched_nms(boxes, scores, classes, **kw))


def test_batched_nms_classes_do_not_suppress_each_other():
    boxes = np.array([[0, 0, 2, 2], [0, 0, 2, 2], [0, 0, 2, 2]], float)
    np.testing.assert_array_equal(D.batched_nms(boxes, [0.5, 0.9, 0.7], [0, 1, 0]), [1, 2])
    assert D.batched_nms(np.zeros((0, 4)), [], np.zeros(0, int)).shape == (0,)


# Formats --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_box_convert_values_and_round_trips(dtype, rng):
    xyxy = np.array([[1, 2, 5, 8]], dtype)
    np.testing.assert_array_equal(D.box_convert(xyxy, "xyxy", "xywh"), [[1, 2, 4, 6]])
    np.testing.assert_array_equal(D.box_convert(xyxy, "xyxy", "cxcywh"), [[3, 5, 4, 6]])
    boxes = random_boxes(rng, 30, dtype, special=False).reshape(5, 6, 4)
    for fmt_in in ("xyxy", "xywh", "cxcywh"):
        for fmt_out in ("xyxy", "xywh", "cxcywh"):
            got = D.box_convert(boxes, fmt_in, fmt_out)
            assert got.dtype == dtype and got.shape == boxes.shape
            assert_close(got, ref.box_convert(boxes, fmt_in, fmt_out), what=f"{fmt_in}->{fmt_out}")
            assert_close(D.box_convert(got, fmt_out, fmt_in), boxes, what=f"round trip {fmt_in}")


# Mean average precision -----------------------------------------------------


def test_map_one_perfect_detection_is_one():
    box = np.array([[0, 0, 4, 4]], float)
    assert D.mean_average_precision([box], [[0.9]], [[0]], [box], [[0]]) == 1.0


def test_map_false_positive_ranked_first():
    # Ranked: FP (0.9), TP (0.8). Precision 0 then 1/2 at recall 1: the
    # envelope is 1/2 over recall (0, 1], so AP = 0.5.
    truth = np.array([[0, 0, 4, 4]], float)
    pred = np.array([[10, 10, 12, 12], [0, 0, 4, 4]], float)
    assert D.mean_average_precision([pred], [[0.9, 0.8]], [[0, 0]], [truth], [[0]]) == 0.5
    # The same detections ranked the other way: TP first, AP = 1.
    assert D.mean_average_precision([pred], [[0.7, 0.8]], [[0, 0]], [truth], [[0]]) == 1.0


def test_map_two_classes_two_images_and_duplicates():
    # Class 0: two truths (one per image); detections by score: TP (img 0),
    # duplicate of the same truth (FP), TP (img 1). Recall 1/2, 1/2, 1 with
    # precision 1, 1/2, 2/3: AP = 1/2·1 + 1/2·2/3 = 5/6.
    # Class 1: one truth, one detection with IoU 1/7 (< 0.5): AP = 0.
    # A class-2 detection has no truth and is not scored. mAP = (5/6 + 0)/2.
    t0 = np.array([[0, 0, 4, 4], [2, 1, 4, 3]], float)
    t1 = np.array([[0, 0, 4, 4]], float)
    p0 = np.array([[0, 0, 4, 4], [0, 0, 4, 4.2], [1, 2, 3, 4], [20, 20, 21, 21]], float)
    p1 = np.array([[0.1, 0, 4, 4]], float)
    got = D.mean_average_precision([p0, p1], [[0.9, 0.8, 0.5, 0.99], [0.7]], [[0, 0, 1, 2], [0]],
                                   [t0, t1], [[0, 1], [0]])
    assert_close(got, (5 / 6 + 0) / 2)


def test_map_perfect_detections_on_many_images_is_one(rng):
    truths = [random_boxes(rng, k, np.float64, special=False) for k in (3, 0, 5, 2)]
    classes = [rng.integers(0, 3, len(t)) for t in truths]
    scores = [rng.random(len(t)) for t in truths]
    assert D.mean_average_precision(truths, scores, classes, truths, classes) == 1.0


def test_map_threshold_matters():
    # IoU of the detection with the truth is exactly 1/2: not a match at 0.5 (VOC: must exceed).
    truth, pred = np.array([[0, 0, 2, 1]], float), np.array([[0, 0, 1, 1]], float)
    assert D.mean_average_precision([pred], [[1.0]], [[3]], [truth], [[3]]) == 0.0
    assert D.mean_average_precision([pred], [[1.0]], [[3]], [truth], [[3]], iou_threshold=0.4) == 1.0


# Errors ---------------------------------------------------------------------


@pytest.mark.parametrize("call, match", [
    (lambda: D.iou(np.zeros((3, 5)), np.zeros((2, 4))), "iou: a must have shape"),
    (lambda: D.iou(np.zeros((3, 4)), np.zeros(4)), "iou: b must have shape"),
    (lambda: cn.ops.box_iou(np.zeros((3, 4)), np.zeros((2, 3))), "box_iou: b must have shape"),
    (lambda: D.iou([[0, 0, np.nan, 1]], [[0, 0, 1, 1]]), "box_iou: a must be finite"),
    (lambda: D.iou([[0, 0, 1, 1]], [[0, 0, np.inf, 1]]), "box_iou: b must be finite"),
    (lambda: D.nms(np.zeros((3, 4)), np.zeros(2)), "nms: scores must have shape"),
    (lambda: D.nms(np.zeros((3, 2)), np.zeros(3)), "nms: boxes must have shape"),
    (lambda: D.nms([[0, 0, 1, 1]], [np.nan]), "nms: scores must not contain NaN"),
    (lambda: D.nms([[0, np.nan, 1, 1]], [0.5]), "nms: boxes must be finite"),
    (lambda: D.nms([[0, 0, 1, 1]], [0.5], iou_threshold=-0.1), "nms: iou_threshold must be"),
    (lambda: D.nms([[0, 0, 1, 1]], [0.5], iou_threshold=np.nan), "nms: iou_threshold must be"),
    (lambda: D.nms([[0, 0, 1, 1]], [0.5], score_threshold=np.nan), "nms: score_threshold must be"),
    (lambda: D.nms([[0, 0, 1, 1]], [0.5], max_output=-1), "nms: max_output must be"),
    (lambda: D.batched_nms(np.zeros((0, 4)), [], [], max_output=-2), "nms: max_output must be"),
    (lambda: D.batched_nms([[0, 0, 1, 1]], [0.5], [0, 1]), "batched_nms: classes must be"),
    (lambda: D.batched_nms([[0, 0, 1, 1]], [0.5], [0.5]), "batched_nms: classes must be"),
    (lambda: D.box_convert(np.zeros((2, 3)), "xyxy", "xywh"), "box_convert: boxes must have shape"),
    (lambda: D.box_convert(np.zeros((2, 4)), "xyxy", "yxyx"), "box_convert: out_fmt must be one of"),
    (lambda: D.mean_average_precision([], [], [], [], []), "no ground-truth box"),
    (lambda: D.mean_average_precision([np.zeros((1, 4))], [[0.5]], [[0]], [], []),
     "true_boxes must hold one entry per image"),
    (lambda: D.mean_average_precision([np.zeros((1, 4))], [[0.5, 0.2]], [[0]], [np.zeros((1, 4))], [[0]]),
     r"pred_scores\[0\] must have shape"),
    (lambda: D.mean_average_precision([np.zeros((1, 4))], [[0.5]], [[0]], [np.zeros((1, 4))], [[0]],
                                      iou_threshold=-1), "iou_threshold must be finite"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_mixed_dtypes_in_ops_raise_type_error():
    with pytest.raises(TypeError, match="nms: scores must have the dtype of boxes"):
        cn.ops.nms(np.zeros((2, 4)), np.zeros(2, np.float32))


# ONNX Runtime oracle --------------------------------------------------------


def ort_nms(boxes, scores, iou_threshold, score_threshold, max_output):
    """ONNX NonMaxSuppression (opset 17, center_point_box=0) as a one-node model.

    ONNX takes boxes as [y1, x1, y2, x2] and normalises swapped corners (a box
    with x2 < x1 is the box from x2 to x1), where corenn gives such a box area
    0; collapsing each swapped side to zero length gives ORT the same box.
    Its rules otherwise are corenn's: visit by descending score, suppress when
    IoU > iou_threshold, drop scores <= score_threshold, max_output per class.
    """
    onnx = pytest.importorskip("onnx", reason="the ONNX Runtime oracle needs onnx")
    ort = pytest.importorskip("onnxruntime", reason="the ONNX Runtime oracle needs onnxruntime")
    h = onnx.helper
    f32, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    node = h.make_node("NonMaxSuppression", ["boxes", "scores", "max", "iou", "score"], ["selected"],
                       center_point_box=0)
    graph = h.make_graph([node], "nms", [
        h.make_tensor_value_info("boxes", f32, [1, None, 4]),
        h.make_tensor_value_info("scores", f32, [1, 1, None]),
        h.make_tensor_value_info("max", i64, [1]),
        h.make_tensor_value_info("iou", f32, [1]),
        h.make_tensor_value_info("score", f32, [1]),
    ], [h.make_tensor_value_info("selected", i64, [None, 3])])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x1, y1 = boxes[:, 0], boxes[:, 1]
    x2, y2 = np.maximum(boxes[:, 2], x1), np.maximum(boxes[:, 3], y1)
    yxyx = np.stack([y1, x1, y2, x2], axis=1).astype(np.float32)
    feeds = {"boxes": yxyx[None], "scores": scores.astype(np.float32)[None, None],
             "max": np.array([len(boxes) if max_output is None else max_output], np.int64),
             "iou": np.array([iou_threshold], np.float32),
             "score": np.array([-np.inf if score_threshold is None else score_threshold], np.float32)}
    return session.run(None, feeds)[0][:, 2]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("iou_threshold, score_threshold, max_output", [
    (0.5, None, None), (0.0, None, None), (0.25, 0.5, None), (0.6, None, 9),
])
def test_nms_equals_onnx_runtime(seed, iou_threshold, score_threshold, max_output):
    rng = np.random.default_rng(seed)
    boxes = random_boxes(rng, 300, np.float32)
    scores = rng.choice([0.2, 0.5, 0.7, 0.75, 0.9], 300).astype(np.float32)  # ties
    scores[::7] = rng.random(len(scores[::7]))
    expected = ort_nms(boxes, scores, iou_threshold, score_threshold, max_output)
    assert len(expected) > 1
    np.testing.assert_array_equal(D.nms(boxes, scores, iou_threshold, score_threshold, max_output), expected)
