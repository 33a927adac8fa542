"""The style-transfer example (python/corenn/examples/style_transfer.py) in
its fast form on scikit-learn's two photographs: the cost falls, the style
term most, and the image stays a valid picture that moved away from the
content."""

import numpy as np
import pytest

import corenn as cn
from corenn.examples import style_transfer


@pytest.fixture(scope="module")
def fast_run():
    lines, threads = [], cn.get_num_threads()
    cn.clear_session()
    cn.set_num_threads(1)   # as test_detection_example.py
    try:
        return style_transfer.run(**style_transfer.FAST, out=lines.append), lines
    finally:
        cn.set_num_threads(threads)


def test_fast_run_lowers_the_cost(fast_run):
    result, lines = fast_run
    costs = result["costs"]
    assert len(costs["total"]) == style_transfer.FAST["steps"] + 1
    assert costs["total"][-1] < costs["total"][0] / 4     # 9× at seed 0
    assert costs["style"][-1] < costs["style"][0] / 10    # 24× at seed 0
    assert costs["content"][-1] > costs["content"][0]     # it started at the (noisy) content
    assert lines[-1].startswith("J fell by a factor")


def test_fast_run_image_is_a_picture_between_content_and_style(fast_run):
    result, _ = fast_run
    image, content, style = result["image"], result["content"], result["style"]
    size = style_transfer.FAST["size"]
    assert image.shape == content.shape == style.shape == (3, size, size)
    assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1
    # The colours move towards the flower's: the mean colour is closer to the style's.
    moved = np.abs(image.mean(axis=(1, 2)) - style.mean(axis=(1, 2))).sum()
    assert moved < np.abs(content.mean(axis=(1, 2)) - style.mean(axis=(1, 2))).sum()


def test_photographs_are_scaled_squares():
    content, style = style_transfer.photographs(24)
    for img in (content, style):
        assert img.shape == (3, 24, 24) and img.dtype == np.float32
        assert 0 <= img.min() and img.max() <= 1 and img.std() > 0.05
    assert not np.allclose(content, style)
