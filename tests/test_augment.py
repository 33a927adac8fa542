"""Augmentation kernels (random flip, random crop with padding, colour shift):
exact parity with the NumPy references (the draws reproduced from the
counter-based generator), fast = naive bitwise at any thread count, the draw
statistics, gradient checks, bad inputs; and the layers RandomFlip,
RandomCrop, ColorShift in models (active in training only)."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import augment as ref
from tolerances import GRADCHECK_THRESHOLD, frequency_atol

L = cn.layers
MODES = ["horizontal", "vertical", "horizontal_and_vertical"]
SHAPES = [(1, 1, 1, 1), (5, 3, 4, 6), (9, 2, 7, 5)]


@pytest.fixture
def threads():
    before = cn.get_num_threads()
    yield cn.set_num_threads
    cn.set_num_threads(before)


def images(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------------- flip
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("naive", [False, True])
def test_flip_equals_reference(dtype, shape, mode, naive, rng):
    x = images(rng, shape, dtype)
    y, flips = cn.ops.random_flip_forward(x, mode, 77, naive=naive)
    want_y, want_flips = ref.random_flip_forward(x, mode, 77)
    assert y.dtype == dtype and flips.dtype == np.uint8 and flips.shape == (shape[0],)
    np.testing.assert_array_equal(flips, want_flips)
    np.testing.assert_array_equal(y, want_y)
    dy = images(rng, shape, dtype)
    dx = cn.ops.random_flip_backward(dy, flips, naive=naive)
    np.testing.assert_array_equal(dx, ref.random_flip_backward(dy, flips))


def test_flip_modes_and_frequencies():
    x = np.arange(4.0).reshape(1, 1, 2, 2) * np.ones((4000, 1, 1, 1))
    _, h = cn.ops.random_flip_forward(x, "horizontal", 3)
    _, v = cn.ops.random_flip_forward(x, "vertical", 3)
    _, hv = cn.ops.random_flip_forward(x, "horizontal_and_vertical", 3)
    assert set(np.unique(h)) == {0, 1} and set(np.unique(v)) == {0, 2}
    assert set(np.unique(hv)) == {0, 1, 2, 3}
    # Each allowed flip with probability 1/2 (binomial, n = 4000: std 0.8%).
    for bits, mask in ((h, 1), (v, 2), (hv, 1), (hv, 2)):
        assert abs(np.mean((bits & mask) != 0) - 0.5) < 0.04
    # An explicit example: [[0, 1], [2, 3]] mirrored left-right is [[1, 0], [3, 2]].
    _, f = cn.ops.random_flip_forward(x[:64], "horizontal", 0)
    y, _ = cn.ops.random_flip_forward(x[:64], "horizontal", 0)
    n = int(np.flatnonzero(f)[0])
    np.testing.assert_array_equal(y[n, 0], [[1, 0], [3, 2]])


# ---------------------------------------------------------------------- crop
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("padding", [0, 1, (2, 1), (0, 3), 9])
@pytest.mark.parametrize("naive", [False, True])
def test_crop_equals_reference(dtype, shape, padding, naive, rng):
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    x = images(rng, shape, dtype)
    y, offsets = cn.ops.random_crop_forward(x, padding, 11, naive=naive)
    want_y, want_off = ref.random_crop_forward(x, ph, pw, 11)
    assert offsets.dtype == np.int64 and offsets.shape == (shape[0], 2)
    np.testing.assert_array_equal(offsets, want_off)
    np.testing.assert_array_equal(y, want_y)
    dy = images(rng, shape, dtype)
    dx = cn.ops.random_crop_backward(dy, offsets, padding, naive=naive)
    np.testing.assert_array_equal(dx, ref.random_crop_backward(dy, offsets, ph, pw))


def test_crop_offsets_are_uniform_and_the_shift_is_explicit():
    x = np.arange(9.0).reshape(1, 1, 3, 3) * np.ones((3000, 1, 1, 1))
    y, off = cn.ops.random_crop_forward(x, 1, 4)
    assert off.min() == 0 and off.max() == 2
    for col in (0, 1):  # each of 0, 1, 2 a third of the time (std 0.9%)
        np.testing.assert_allclose(np.bincount(off[:, col]) / len(off), 1 / 3, atol=frequency_atol(1 / 3, len(off)))
    # Offset (0, 0) moves the image one pixel down and right, zeros entering.
    n = int(np.flatnonzero((off[:, 0] == 0) & (off[:, 1] == 0))[0])
    np.testing.assert_array_equal(y[n, 0], [[0, 0, 0], [0, 0, 1], [0, 3, 4]])
    n = int(np.flatnonzero((off[:, 0] == 1) & (off[:, 1] == 1))[0])
    np.testing.assert_array_equal(y[n, 0], x[0, 0])  # the centre window is the image


# --------------------------------------------------------------- colour shift
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("naive", [False, True])
def test_color_shift_equals_reference(dtype, shape, naive, rng):
    x = images(rng, shape, dtype)
    y, shift = cn.ops.color_shift_forward(x, 0.3, 5, naive=naive)
    want_y, want_shift = ref.color_shift_forward(x, 0.3, 5)
    assert shift.dtype == dtype and shift.shape == shape[:2]
    np.testing.assert_array_equal(shift, want_shift)
    np.testing.assert_array_equal(y, want_y)


def test_color_shift_is_uniform_per_example_and_channel():
    x = np.zeros((2000, 3, 2, 2))
    y, shift = cn.ops.color_shift_forward(x, 0.5, 8)
    assert np.all(np.abs(shift) <= 0.5)
    # U[−0.5, 0.5]: mean 0 (std of the mean 0.0037 over 6000 draws), variance 1/12.
    assert abs(shift.mean()) < 0.02 and abs(shift.var() - 1 / 12) < 0.01
    np.testing.assert_array_equal(y, np.broadcast_to(shift[:, :, None, None], y.shape))
    _, zero = cn.ops.color_shift_forward(x, 0.0, 8)
    assert np.all(zero == 0)


# ------------------------------------------------------- shared properties
OPS = {
    "flip": (lambda x, **k: cn.ops.random_flip_forward(x, "horizontal_and_vertical", 21, **k),
             lambda dy, saved, **k: cn.ops.random_flip_backward(dy, saved, **k)),
    "crop": (lambda x, **k: cn.ops.random_crop_forward(x, (2, 3), 21, **k),
             lambda dy, saved, **k: cn.ops.random_crop_backward(dy, saved, (2, 3), **k)),
    "shift": (lambda x, **k: cn.ops.color_shift_forward(x, 0.7, 21, **k), None),
}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("op", list(OPS))
def test_fast_equals_naive_bitwise_for_any_thread_count(op, dtype, threads, rng):
    forward, backward = OPS[op]
    x = images(rng, (64, 3, 17, 19), dtype)  # many planes: the parallel split is used
    y0, s0 = forward(x, naive=True)
    dx0 = backward(x, s0, naive=True) if backward else None
    for t in (1, 2, 3):
        threads(t)
        y, s = forward(x)
        np.testing.assert_array_equal(s, s0)
        np.testing.assert_array_equal(y.view(np.uint8), y0.view(np.uint8))
        if backward:
            np.testing.assert_array_equal(backward(x, s).view(np.uint8), dx0.view(np.uint8))


@pytest.mark.parametrize("op", list(OPS))
def test_draws_depend_on_the_example_index_not_the_batch(op, rng):
    forward, _ = OPS[op]
    x = images(rng, (12, 2, 5, 5), np.float64)
    y_all, s_all = forward(x)
    y_head, s_head = forward(x[:5])
    np.testing.assert_array_equal(s_head, s_all[:5])
    np.testing.assert_array_equal(y_head, y_all[:5])


def test_different_seeds_draw_differently():
    x = np.ones((200, 1, 4, 4))
    assert not np.array_equal(cn.ops.random_flip_forward(x, "horizontal", 1)[1],
                              cn.ops.random_flip_forward(x, "horizontal", 2)[1])
    assert not np.array_equal(cn.ops.random_crop_forward(x, 2, 1)[1], cn.ops.random_crop_forward(x, 2, 2)[1])
    assert not np.array_equal(cn.ops.color_shift_forward(x, 1.0, 1)[1], cn.ops.color_shift_forward(x, 1.0, 2)[1])


@pytest.mark.parametrize("op", ["flip", "crop"])
def test_gradient_check(op, rng):
    # With the seed fixed each op is a fixed linear map of x.
    forward, backward = OPS[op]
    x = rng.standard_normal((4, 2, 5, 6))
    P = projection(x.shape, 6)
    _, saved = forward(x)
    dx = backward(P, saved)
    numeric = numerical_gradient(lambda: float(np.sum(P * forward(x)[0])), x)
    assert relative_difference(dx, numeric) < GRADCHECK_THRESHOLD


def test_color_shift_gradient_is_the_identity(rng):
    x = rng.standard_normal((3, 2, 4, 4))
    P = projection(x.shape, 2)
    numeric = numerical_gradient(lambda: float(np.sum(P * cn.ops.color_shift_forward(x, 0.4, 9)[0])), x)
    assert relative_difference(P, numeric) < GRADCHECK_THRESHOLD


def test_non_contiguous_input_is_copied_not_misread(rng):
    base = rng.standard_normal((4, 2, 6, 10))
    x = base[:, :, :, ::2]
    y, f = cn.ops.random_flip_forward(x, "horizontal_and_vertical", 3)
    np.testing.assert_array_equal(y, ref.random_flip_forward(np.ascontiguousarray(x), "horizontal_and_vertical", 3)[0])
    y, o = cn.ops.random_crop_forward(x, 1, 3)
    np.testing.assert_array_equal(y, ref.random_crop_forward(np.ascontiguousarray(x), 1, 1, 3)[0])


F64 = np.ones((2, 1, 3, 3))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: cn.ops.random_flip_forward(F64, "diagonal", 0), ValueError,
     r"random_flip: mode must be 'horizontal', 'vertical' or 'horizontal_and_vertical', got 'diagonal'"),
    (lambda: cn.ops.random_flip_forward(np.ones((2, 3, 3)), "horizontal", 0), ValueError,
     r"random_flip_forward: x must be 4-D \(batch, channels, height, width\), got shape \(2, 3, 3\)"),
    (lambda: cn.ops.random_flip_forward(np.ones((1, 1, 2, 2), np.int32), "horizontal", 0), TypeError,
     r"random_flip_forward: x must be float32 or float64, got int32"),
    (lambda: cn.ops.random_flip_backward(F64, np.zeros(2, np.int64)), TypeError,
     r"random_flip_backward: flips must be uint8 \(from random_flip_forward\), got int64"),
    (lambda: cn.ops.random_flip_backward(F64, np.zeros(3, np.uint8)), ValueError,
     r"random_flip_backward: flips must have shape \(2,\), got \(3,\)"),
    (lambda: cn.ops.random_flip_backward(F64, np.array([0, 4], np.uint8)), ValueError,
     r"random_flip_backward: flips must be 0..3, got 4 at index 1"),
    (lambda: cn.ops.random_crop_forward(F64, -1, 0), ValueError, r"random_crop_forward: padding must be >= 0, got \(-1, -1\)"),
    (lambda: cn.ops.random_crop_forward(F64, (1, 2, 3), 0), ValueError,
     r"random_crop_forward: padding must be an int or a pair \(pad_h, pad_w\), got 3 values \(1, 2, 3\)"),
    (lambda: cn.ops.random_crop_forward(F64, "same", 0), TypeError, r"random_crop_forward: padding must be an int"),
    (lambda: cn.ops.random_crop_backward(F64, np.zeros((2, 2), np.int32), 1), TypeError,
     r"random_crop_backward: offsets must be int64 \(from random_crop_forward\), got int32"),
    (lambda: cn.ops.random_crop_backward(F64, np.zeros((2, 3), np.int64), 1), ValueError,
     r"random_crop_backward: offsets must have shape \(2, 2\), got \(2, 3\)"),
    (lambda: cn.ops.random_crop_backward(F64, np.array([[0, 0], [3, 1]]), 1), ValueError,
     r"random_crop_backward: offsets must lie in \[0, 2\] x \[0, 2\] for padding \(1, 1\), got \(3, 1\) at index 1"),
    (lambda: cn.ops.color_shift_forward(F64, -0.1, 0), ValueError, r"color_shift_forward: delta must be finite and >= 0, got -0.1"),
    (lambda: cn.ops.color_shift_forward(F64, float("nan"), 0), ValueError, r"color_shift_forward: delta must be finite"),
    (lambda: cn.ops.color_shift_forward(np.ones((2, 3)), 0.1, 0), ValueError, r"color_shift_forward: x must be 4-D"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# -------------------------------------------------------------------- layers
AUGMENTERS = [lambda: L.RandomFlip("horizontal_and_vertical"), lambda: L.RandomCrop((1, 2)),
              lambda: L.ColorShift(0.3)]


@pytest.mark.parametrize("make", AUGMENTERS, ids=["flip", "crop", "shift"])
def test_layers_pass_through_at_inference_and_act_in_training(make, rng):
    cn.seed(1)
    model = cn.Sequential([L.Input((2, 5, 6)), make()], dtype="float64")
    model.compile("sgd", "mse")
    x = rng.standard_normal((16, 2, 5, 6))
    np.testing.assert_array_equal(model.predict(x), x)
    assert model.evaluate(x, x)["loss"] == 0.0
    _, _, (out,) = model._engine.train_step([x], [x], None, True)  # the training forward pass
    changed = [not np.array_equal(out[n], x[n]) for n in range(len(x))]
    assert any(changed)
    if isinstance(model.layers[0], L.RandomFlip):
        # each example is itself or one of its three flips
        for n in range(len(x)):
            assert any(np.array_equal(out[n], f) for f in
                       (x[n], x[n][:, :, ::-1], x[n][:, ::-1, :], x[n][:, ::-1, ::-1]))


def test_training_draws_differ_between_steps_and_repeat_with_the_seed(rng):
    x = rng.standard_normal((8, 1, 4, 4))

    def outputs():
        cn.seed(4)
        m = cn.Sequential([L.Input((1, 4, 4)), L.RandomCrop(1)], dtype="float64")
        m.compile("sgd", "mse")
        m.build()
        return [m._engine.train_step([x], [x], None, True)[2][0] for _ in range(3)]

    a, b = outputs(), outputs()
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], a[1])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradient_check_with_augmentation_between_layers(dtype):
    rng = np.random.default_rng(5)
    cn.seed(6)
    model = cn.Sequential([L.Input((2, 6, 6)), L.RandomFlip(), L.Conv2D(3, 3, padding="same", activation="tanh"),
                           L.RandomCrop(1), L.ColorShift(0.2), L.Conv2D(2, 3, activation="sigmoid"),
                           L.RandomFlip("vertical"), L.Flatten(), L.Dense(3)], dtype=dtype)
    model.compile(cn.optimizers.SGD(0.1), "softmax_cross_entropy")
    x, y = rng.standard_normal((4, 2, 6, 6)), np.array([0, 1, 2, 1])
    assert cn.gradient_check(model, x, y) < GRADCHECK_THRESHOLD


def test_fit_with_augmentation_learns_and_is_reproducible():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images[:600] / 16.0)[:, None].astype(np.float32)
    y = d.target[:600]

    def run():
        cn.seed(0)
        model = cn.Sequential([L.Input((1, 8, 8)), L.RandomCrop(1), L.ColorShift(0.1), L.Flatten(),
                               L.Dense(32, activation="relu"), L.Dense(10)])
        model.compile(cn.optimizers.Adam(0.01), "softmax_cross_entropy", metrics=["accuracy"])
        hist = model.fit(X, y, epochs=10, batch_size=32, verbose=0)
        return hist.history, model.get_weights(), model.evaluate(X, y)["accuracy"]

    h1, w1, acc = run()
    h2, w2, _ = run()
    assert h1 == h2 and all(np.array_equal(a, b) for a, b in zip(w1, w2))
    assert h1["loss"][-1] < 0.5 * h1["loss"][0] and acc > 0.8


def test_layer_configs_are_the_engine_fields():
    assert L.RandomFlip("vertical").get_config()["mode"] == "vertical"
    assert L.RandomFlip().mode == "horizontal_and_vertical"  # Keras's default
    assert L.RandomCrop((2, 3)).get_config()["pads"] == [2, 2, 3, 3]
    assert L.RandomCrop(4).get_config()["pads"] == [4, 4, 4, 4]
    assert L.ColorShift(0.25).get_config()["delta"] == 0.25


@pytest.mark.parametrize("call, exc, match", [
    (lambda: L.RandomFlip("diagonal"), ValueError, r"RandomFlip: mode must be one of 'horizontal', 'vertical'"),
    (lambda: L.RandomCrop(-1), ValueError, r"RandomCrop: padding must be >= 0, got -1"),
    (lambda: L.RandomCrop("same"), TypeError, r"RandomCrop: padding must be an int or a \(height, width\) pair"),
    (lambda: L.ColorShift(-0.5), ValueError, r"ColorShift: delta must be finite and in \[0.0, inf\)"),
    (lambda: L.ColorShift("a"), TypeError, r"ColorShift: delta must be a number"),
])
def test_layer_bad_hyper_parameters(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@pytest.mark.parametrize("make", AUGMENTERS, ids=["flip", "crop", "shift"])
def test_layers_need_images(make):
    layer = make()
    layer.name = "aug"
    model = cn.Sequential([L.Input((12,)), layer])
    with pytest.raises(ValueError, match=r"layer 'aug' \(\w+\): expects images \(channels, height, width\)"):
        model.build()
