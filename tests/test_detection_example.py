"""The detection example (python/corenn/examples/detection.py) in its fast
form: the pasted canvases are what they claim, the anchors come from the
boxes, and the trained detector finds held-out digits (mAP@0.5 well above an
untrained network's)."""

import numpy as np
import pytest

import corenn as cn
from corenn.examples import detection

D = cn.detection


@pytest.fixture(scope="module")
def fast_run():
    # One thread, as the docs' runs: on a machine shared with other jobs OpenMP
    # workers that wait for each other make all-core training many times slower.
    lines, threads = [], cn.get_num_threads()
    cn.clear_session()
    cn.set_num_threads(1)
    try:
        result = detection.run(**detection.FAST, out=lines.append)
    finally:
        cn.set_num_threads(threads)
    return result, lines


def test_fast_run_detects_held_out_digits(fast_run):
    result, lines = fast_run
    # The full run reaches >= 0.7 (docs/guide.md); the fast one trains for seconds.
    # An untrained detector scores ~0: its boxes and classes are noise.
    assert result["map"] >= 0.5, result["map"]   # 0.71-0.76 over seeds 0-3
    assert result["untrained_map"] < 0.05, result["untrained_map"]
    assert result["history"]["loss"][-1] < 0.5 * result["history"]["loss"][0]
    assert f"held-out mAP@0.5: {result['map']:.3f}" in lines[-1]


def test_canvases_hold_their_digits():
    rng = np.random.default_rng(0)
    digits = np.zeros((3, 8, 8))
    digits[:, 2:6, 3:5] = 1.0   # a 4 × 2 block of ink in each digit image
    images, boxes, classes = detection.paste_digits(digits, np.array([4, 7, 9]), 30, rng)
    assert images.shape == (30, 1, detection.CANVAS, detection.CANVAS) and images.dtype == np.float32
    for image, b, c in zip(images, boxes, classes):
        assert 1 <= len(b) <= 4 and b.shape == (len(c), 4) and set(c) <= {4, 7, 9}
        assert (b[:, :2] >= 0).all() and (b[:, 2:] <= detection.CANVAS).all()
        wh = b[:, 2:] - b[:, :2]
        assert (wh[:, 1] > wh[:, 0]).all()   # the block is twice as tall as wide, at any scale
        if len(b) > 1:
            overlaps = D.iou(b, b)[~np.eye(len(b), dtype=bool)]
            assert overlaps.max() <= 0.1
        mask = np.zeros(image.shape[1:], bool)
        for x1, y1, x2, y2 in b.astype(int):
            mask[y1:y2, x1:x2] = True
            assert image[0, y1, x1:x2].max() >= detection.INK   # each box edge touches ink
            assert image[0, y2 - 1, x1:x2].max() >= detection.INK
        assert not image[0][~mask].any()                       # no ink outside the boxes


def test_anchor_clusters_find_the_box_shapes():
    rng = np.random.default_rng(1)
    sizes = np.array([[6, 12], [20, 10], [30, 30]])
    wh = np.repeat(sizes, 50, axis=0) * rng.uniform(0.95, 1.05, (150, 2))
    boxes = np.concatenate([np.zeros((150, 2)), wh], axis=1)
    anchors = detection.anchor_clusters(boxes, 3, rng)
    np.testing.assert_allclose(anchors, sizes, rtol=0.05)   # sorted by area


def test_detect_decodes_an_encoded_target():
    # A head output that is the target in logit space decodes to the true boxes.
    anchors = np.array([[8.0, 10.0], [14.0, 18.0], [22.0, 26.0]])
    boxes = np.array([[3, 4, 11, 14], [20, 22, 42, 46]], float)
    target = D.yolo_encode(boxes, [2, 5], detection.GRID, anchors, detection.CLASSES, detection.CANVAS)
    t = target.reshape(3, 15, detection.GRID, detection.GRID).astype(np.float64)
    raw = np.where(t[:, :1] > 0, 6.0, -6.0) * np.ones_like(t)   # p_c logits; classes follow
    raw[:, 1:3] = np.log(np.clip(t[:, 1:3], 1e-6, 1 - 1e-6) / (1 - np.clip(t[:, 1:3], 1e-6, 1 - 1e-6)))
    raw[:, 3:5] = t[:, 3:5]
    raw[:, 5:] = 8.0 * t[:, 5:]
    found_boxes, scores, classes = detection.detect(raw.reshape(1, 45, detection.GRID, detection.GRID),
                                                    anchors, threshold=0.5)[0]
    order = np.argsort(found_boxes[:, 0])
    np.testing.assert_allclose(found_boxes[order], boxes, atol=1e-3)
    np.testing.assert_array_equal(classes[order], [2, 5])
    assert (scores > 0.9).all()
