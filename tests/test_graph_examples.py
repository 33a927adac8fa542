"""The graph examples on scikit-learn's digits (python/corenn/examples/siamese.py
and two_heads.py), in their fast mode, held to their bars: a siamese network
verifies held-out pairs at >= 0.95, and a two-headed model trains both heads."""

import numpy as np
import pytest

import corenn as cn
from corenn.examples import siamese, two_heads
from reference import graph as ref
from tolerances import assert_close


@pytest.fixture(scope="module")
def siamese_run():
    lines = []
    cn.clear_session()
    result = siamese.run(**siamese.FAST, out=lines.append)
    return result, lines


def test_siamese_verifies_held_out_pairs(siamese_run):
    result, lines = siamese_run
    assert result["accuracy"] >= 0.95  # the bar, on pairs of held-out images
    assert "verification accuracy" in lines[-1]
    assert f"{result['accuracy']:.4f}" in lines[-1]
    assert "50% same digit" in lines[0]


def test_siamese_head_reads_the_absolute_difference_of_one_encoder(siamese_run):
    model = siamese_run[0]["model"]
    names = [layer.name for layer in model.layers]
    assert names.count("encoder_hidden") == 1 and names.count("embedding") == 1
    rng = np.random.default_rng(0)
    xa, xb = rng.random((7, 64)).astype(np.float32), rng.random((7, 64)).astype(np.float32)
    w = {name: [a.astype(np.float64) for a in model.get_layer(name).get_weights()]
         for name in ("encoder_hidden", "embedding")}

    def embed(x):
        h, _ = ref.dense_node(x.astype(np.float64), w["encoder_hidden"], "relu")
        return ref.dense_node(h, w["embedding"])[0]

    distance = cn.Model(model.input, model.get_layer("abs_difference").output)
    assert_close(distance.predict([xa, xb]), np.abs(embed(xa) - embed(xb)), np.float32)
    # |e1 − e2| is one Subtract and one "abs" activation: no weights of its own
    assert isinstance(model.get_layer("difference"), cn.layers.Subtract)
    assert model.get_layer("abs_difference").activation == "abs"


def test_siamese_pairs_are_balanced_and_never_an_image_with_itself():
    y = np.repeat(np.arange(10), 5)
    a, b, t = siamese.make_pairs(y, 400, np.random.default_rng(1))
    assert t.shape == (400, 1) and t.sum() == 200
    assert np.all(a != b)
    np.testing.assert_array_equal(y[a] == y[b], t[:, 0] == 1)


def test_two_heads_trains_both_heads():
    lines = []
    cn.clear_session()
    result = two_heads.run(**two_heads.FAST, out=lines.append)
    before, after = result["before"], result["after"]
    assert after["digit_accuracy"] >= 0.9 and after["big_binary_accuracy"] >= 0.9
    assert after["digit_loss"] < before["digit_loss"] / 4
    assert after["big_loss"] < before["big_loss"] / 4
    assert_close(np.float32(after["loss"]), after["digit_loss"] + 0.5 * after["big_loss"],
                 np.float32)
    text = "\n".join(lines)
    assert f"{after['digit_accuracy']:.4f}" in text and f"{after['big_binary_accuracy']:.4f}" in text
