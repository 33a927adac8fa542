"""YOLO grid encoding (course 4, week 3): yolo_encode against a plain-loop
reference and a hand-computed case, the decode round trip, the anchor choice
by width/height IoU, and the course's yolo_filter_boxes."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from reference import detection as ref
from tolerances import assert_close

D = cn.detection


def one_box_per_cell(rng, grid, image_size, anchors):
    """Boxes whose centres sit in distinct cells (row-major order), sizes
    around the anchors', and their classes."""
    h, w = image_size
    cells = np.sort(rng.choice(grid * grid, size=grid * grid // 2, replace=False))
    row, col = cells // grid, cells % grid
    cx = (col + rng.uniform(0, 1, len(cells))) * w / grid
    cy = (row + rng.uniform(0, 1, len(cells))) * h / grid
    wh = anchors[rng.integers(0, len(anchors), len(cells))] * rng.uniform(0.5, 2, (len(cells), 2))
    boxes = D.box_convert(np.stack([cx, cy, wh[:, 0], wh[:, 1]], axis=1), "cxcywh", "xyxy")
    return boxes, rng.integers(0, 3, len(cells))


def test_encode_hand_case():
    # 64-pixel image, 4×4 grid (16-pixel cells), two anchors, C = 3 (depth 8).
    # Box centre (44, 20), size 28 × 14: cell (row 1, column 2), offsets
    # (44/16 − 2, 20/16 − 1) = (0.75, 0.25). Shape IoU with anchor (10, 20):
    # 10·14 / (392 + 200 − 140) = 0.31; with (30, 15): 28·14 / (392 + 450 − 392)
    # = 0.87, so anchor 1 (channels 8..15) takes it.
    anchors = np.array([[10, 20], [30, 15]])
    t = D.yolo_encode([[30, 13, 58, 27]], [2], 4, anchors, 3, 64)
    assert t.shape == (16, 4, 4) and t.dtype == np.float32
    expected = np.zeros((16, 4, 4))
    expected[8:16, 1, 2] = [1, 0.75, 0.25, np.log(28 / 30), np.log(14 / 15), 0, 0, 1]
    assert_close(t, expected)


def test_encode_anchor_by_shape_iou():
    # A tall 10 × 40 box: the square anchor (20, 20) has its area, but the tall
    # (8, 30) has the larger width/height IoU: 240 / 400 = 0.6 against 200 / 600.
    anchors = np.array([[20, 20], [8, 30]])
    t = D.yolo_encode([[0, 0, 10, 40]], [0], 1, anchors, 1, 100).reshape(2, 6)
    assert t[0, 0] == 0 and t[1, 0] == 1
    assert_close(t[1, 3:5], np.log([10 / 8, 40 / 30]), np.float32)


def test_encode_later_box_wins_and_matches_reference():
    anchors = np.array([[10, 10], [30, 20]])
    first, second = [1, 1, 9, 9], [2, 2, 12, 12]   # same cell, same anchor (0)
    t = D.yolo_encode([first, second], [0, 1], 2, anchors, 2, 40)
    assert_close(t[:7, 0, 0], [1, 7 / 20, 7 / 20, 0, 0, 0, 1], np.float32)
    rng = np.random.default_rng(0)
    boxes = np.concatenate([rng.uniform(0, 30, (40, 2)), np.zeros((40, 2))], axis=1)
    boxes[:, 2:] = boxes[:, :2] + rng.uniform(2, 30, (40, 2))   # many collisions on a 3×3 grid
    classes = rng.integers(0, 4, 40)
    anchors = np.array([[5, 5], [20, 8], [8, 20]])
    got = D.yolo_encode(boxes, classes, 3, anchors, 4, (50, 60))
    assert_close(got, ref.yolo_encode(boxes, classes, 3, anchors, 4, (50, 60)), np.float32)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_decode_round_trip(dtype):
    rng = np.random.default_rng(1)
    anchors = np.array([[12.0, 12.0], [30.0, 14.0], [10.0, 28.0]])
    boxes, classes = one_box_per_cell(rng, 5, (80, 120), anchors)
    target = D.yolo_encode(boxes, classes, 5, anchors, 3, (80, 120))
    out_boxes, scores, out_classes = D.yolo_decode(target[None].astype(dtype), anchors, (80, 120))
    assert out_boxes.shape == (1, 5 * 5 * 3, 4) and out_boxes.dtype == dtype
    found = scores[0] == 1    # p_c = 1 and a one-hot class; every other entry scores 0
    assert int(found.sum()) == len(boxes)
    assert_close(out_boxes[0, found], boxes, np.float32)   # the target is float32
    np.testing.assert_array_equal(out_classes[0, found], classes)
    assert not scores[0, ~found].any()


def test_decode_from_logits_activates_first():
    rng = np.random.default_rng(2)
    anchors = np.array([[10.0, 20.0], [25.0, 12.0]])
    logits = rng.standard_normal((2, 2 * 7, 3, 3))
    act = logits.reshape(2, 2, 7, 3, 3).copy()
    act[:, :, :3] = 1 / (1 + np.exp(-act[:, :, :3]))
    act[:, :, 5:] = np.exp(act[:, :, 5:]) / np.exp(act[:, :, 5:]).sum(axis=2, keepdims=True)
    got = D.yolo_decode(logits, anchors, 48, from_logits=True)
    want = D.yolo_decode(act.reshape(logits.shape), anchors, 48)
    assert_close(got[0], want[0])
    assert_close(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])
    # The box of image 1, cell (row 2, column 0), anchor 1, from the formula.
    t = act[1, 1, :, 2, 0]
    cx, cy, bw, bh = (0 + t[1]) * 16, (2 + t[2]) * 16, 25 * np.exp(t[3]), 12 * np.exp(t[4])
    assert_close(got[0][1, (2 * 3 + 0) * 2 + 1], [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    assert_close(got[1][1, (2 * 3 + 0) * 2 + 1], t[0] * t[5:].max())


def test_filter_boxes_course_semantics():
    boxes = np.arange(16, dtype=np.float64).reshape(2, 2, 4)
    conf = np.array([[[0.9], [0.5]], [[1.0], [0.8]]])
    probs = np.array([[[0.2, 0.7, 0.1], [0.9, 0.05, 0.05]],
                      [[0.6, 0.4, 0.0], [0.25, 0.25, 0.5]]])
    # Scores of the best class: 0.63 (class 1), 0.45 (0), 0.6 (0), 0.4 (2);
    # threshold 0.6 keeps 0.63 and the 0.6 exactly at it (the course's >=).
    scores, kept, classes = D.yolo_filter_boxes(boxes, conf, probs, threshold=0.6)
    assert_close(scores, [0.63, 0.6])
    assert_close(kept, boxes.reshape(4, 4)[[0, 2]])
    np.testing.assert_array_equal(classes, [1, 0])
    want = ref.yolo_filter_boxes(boxes, conf, probs, 0.6)
    assert_close(scores, want[0])
    assert_close(kept, want[1])
    np.testing.assert_array_equal(classes, want[2])
    # The confidence may drop its trailing 1; float32 stays float32.
    s32, _, _ = D.yolo_filter_boxes(boxes.astype(np.float32), conf[..., 0].astype(np.float32),
                                    probs.astype(np.float32), threshold=0.5)
    assert s32.dtype == np.float32 and len(s32) == 2


@pytest.mark.parametrize("call, match", [
    (lambda: D.yolo_encode([[0, 0, 1]], [0], 2, [[1, 1]], 2, 8), "yolo_encode: boxes"),
    (lambda: D.yolo_encode([[0, 0, 1, 1]], [0], 2, [[1, 1, 1]], 2, 8), "yolo_encode: anchors"),
    (lambda: D.yolo_encode([[0, 0, 1, 1]], [0], 2, [[1, 0]], 2, 8), "yolo_encode: anchors"),
    (lambda: D.yolo_encode([[0, 0, 1, 1]], [0], 0, [[1, 1]], 2, 8), "yolo_encode: grid"),
    (lambda: D.yolo_encode([[0, 0, 1, 1]], [2], 2, [[1, 1]], 2, 8), "yolo_encode: classes"),
    (lambda: D.yolo_encode([[0, 0, 1, 1]], [-1], 2, [[1, 1]], 2, 8), "yolo_encode: classes"),
    (lambda: D.yolo_encode([[0, 0, 1, 1]], [0.0], 2, [[1, 1]], 2, 8), "yolo_encode: classes"),
    (lambda: D.yolo_encode([[2, 2, 1, 3]], [0], 2, [[1, 1]], 2, 8), "yolo_encode: boxes"),
    (lambda: D.yolo_encode([[0, 0, np.nan, 1]], [0], 2, [[1, 1]], 2, 8), "yolo_encode: boxes"),
    (lambda: D.yolo_encode([[7, 7, 11, 11]], [0], 2, [[1, 1]], 2, 8), "yolo_encode: every box centre"),
    (lambda: D.yolo_encode([[0, 0, 1, 1]], [0], 2, [[1, 1]], 2, -8), "yolo_encode: image_size"),
    (lambda: D.yolo_decode(np.zeros((1, 13, 2, 2)), [[1, 1], [2, 2]], 8), "yolo_decode: output"),
    (lambda: D.yolo_decode(np.zeros((1, 10, 2, 2)), [[1, 1], [2, 2]], 8), "yolo_decode: output"),
    (lambda: D.yolo_decode(np.zeros((1, 12, 2, 3)), [[1, 1], [2, 2]], 8), "yolo_decode: output"),
    (lambda: D.yolo_decode(np.full((1, 12, 2, 2), np.nan), [[1, 1], [2, 2]], 8), "yolo_decode: output"),
    (lambda: D.yolo_decode(np.zeros((1, 12, 2, 2)), [[1, -1], [2, 2]], 8), "yolo_decode: anchors"),
    (lambda: D.yolo_filter_boxes(np.zeros((3, 4)), np.zeros(3), np.zeros((3, 2)), -0.1),
     "yolo_filter_boxes: threshold"),
    (lambda: D.yolo_filter_boxes(np.zeros((3, 4)), np.zeros(2), np.zeros((3, 2))),
     "yolo_filter_boxes: box_confidence"),
    (lambda: D.yolo_filter_boxes(np.zeros((3, 4)), np.zeros(3), np.zeros((2, 2))),
     "yolo_filter_boxes: box_class_probs"),
    (lambda: D.yolo_filter_boxes(np.zeros((3, 5)), np.zeros(3), np.zeros((3, 2))), "yolo_filter_boxes: boxes"),
])
def test_errors_name_function_and_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_encode_no_boxes_gives_zeros():
    t = D.yolo_encode(np.zeros((0, 4)), np.zeros(0, int), 3, [[4, 4]], 2, 12)
    assert t.shape == (7, 3, 3) and not t.any()
