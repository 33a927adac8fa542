"""cn.applications.fully_convolutional: the convolutional implementation of
sliding windows (course 4, week 3). Each cell of the converted model's grid
must equal the original classifier's output on the window it covers."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

import corenn as cn
from corenn import applications as apps
from tolerances import assert_close

L = cn.layers


def digits():
    data = load_digits()
    return (data.images / 16.0)[:, None], data.target


def canvases(images, count, side):
    """Large images made of real digits: 2×2 tiles of four digits, cropped to side."""
    tiles = images[:4 * count].reshape(count, 2, 2, 8, 8)
    return tiles.transpose(0, 1, 3, 2, 4).reshape(count, 1, 16, 16)[:, :, :side, :side]


def pooled_model(dtype):
    # 8×8 → conv 6×6 → pool 3×3 (stride 2) → Flatten(4·3·3) → head; fused activations.
    return cn.Sequential([L.Input((1, 8, 8)), L.Conv2D(4, 3, activation="relu"), L.MaxPool2D(2),
                          L.Flatten(), L.Dense(16, activation="relu"), L.Dropout(0.2),
                          L.Dense(10, activation="softmax")], dtype=dtype)


def normalised_model(dtype):
    # conv 6×6 → BN → relu → average pool 3×3 (stride 2) → conv 2×2 → Flatten(8·2·2);
    # separate Activation layers after Flatten.
    return cn.Sequential([L.Input((1, 8, 8)), L.Conv2D(6, 3), L.BatchNormalization(),
                          L.Activation("relu"), L.AvgPool2D(2), L.Conv2D(8, 2, activation="tanh"),
                          L.Flatten(), L.Dense(12), L.Activation("relu"), L.Dense(10),
                          L.Activation("softmax")], dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("build, side", [(pooled_model, 16), (normalised_model, 12)])
def test_every_cell_is_the_window_prediction(build, side, dtype):
    images, labels = digits()
    cn.seed(0)
    model = build(dtype)
    # Brief training: real weights and batch-norm statistics, not the initial ones
    # (mse on one-hot targets: the models end in softmax, which the loss takes as given).
    model.compile("adam", "mse")
    model.fit(images.astype(dtype), np.eye(10)[labels], epochs=1, batch_size=64, verbose=0)
    before = model.predict(images[:8])

    big = canvases(images, 6, side).astype(dtype)
    fcn = apps.fully_convolutional(model, (1, side, side))
    grid = fcn.predict(big)
    stride, cells = 2, (side - 8) // 2 + 1
    assert grid.shape == (6, 10, cells, cells) and grid.dtype == np.dtype(dtype)
    for i in range(cells):
        for j in range(cells):
            window = big[:, :, i * stride:i * stride + 8, j * stride:j * stride + 8]
            assert_close(grid[:, :, i, j], model.predict(window), dtype, what=f"cell ({i}, {j})")
    np.testing.assert_array_equal(model.predict(images[:8]), before)  # the original is untouched


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_original_size_gives_one_cell(dtype):
    images, _ = digits()
    cn.seed(1)
    model = normalised_model(dtype)
    fcn = apps.fully_convolutional(model, (1, 8, 8))
    grid = fcn.predict(images[:20])
    assert grid.shape == (20, 10, 1, 1)
    assert_close(grid[:, :, 0, 0], model.predict(images[:20]), dtype)
    # The layers before Flatten keep their names; the Dense layers become Conv2D.
    assert fcn.get_layer(model.layers[0].name).get_config() == model.layers[0].get_config()
    assert isinstance(fcn.get_layer(model.layers[6].name), L.Conv2D)


def sequential(*layers):
    return cn.Sequential([L.Input((1, 8, 8)), *layers])


@pytest.mark.parametrize("model, culprit", [
    (lambda: sequential(L.Conv2D(2, 3), L.GlobalAvgPool2D(), L.Dense(10)), "no Flatten"),
    (lambda: sequential(L.Conv2D(2, 3), L.Flatten()), "Flatten"),
    (lambda: sequential(L.Flatten(), L.Activation("relu"), L.Dense(10)), "flatten"),
    (lambda: sequential(L.UpSampling2D(2, name="up"), L.Flatten(), L.Dense(10)), "'up'"),
    (lambda: sequential(L.ZeroPadding2D(1, name="pad"), L.Flatten(), L.Dense(10)), "'pad'"),
    (lambda: sequential(L.Flatten(), L.Dense(8), L.BatchNormalization(name="bn"), L.Dense(10)),
     "'bn'"),
    (lambda: sequential(L.Flatten(), L.Dense(8), L.Reshape((2, 4), name="reshape")), "'reshape'"),
])
def test_models_outside_the_pattern_are_refused(model, culprit):
    model = model()
    model.build()
    with pytest.raises(ValueError, match=culprit):
        apps.fully_convolutional(model, (1, 12, 12))


def test_bad_input_shapes_and_models_are_refused():
    model = pooled_model("float32")
    for shape in [(1, 7, 12), (1, 12, 6), (2, 12, 12), (12, 12)]:
        with pytest.raises(ValueError, match="input_shape"):
            apps.fully_convolutional(model, shape)
    with pytest.raises(ValueError, match="input_shape"):
        apps.fully_convolutional(model, (1, 0, 12))
    x = L.Input((1, 8, 8))
    functional = cn.Model(x, L.Dense(10)(L.Flatten()(L.Conv2D(2, 3)(x))))
    with pytest.raises(TypeError, match="cn.Sequential"):
        apps.fully_convolutional(functional, (1, 12, 12))
    unbuilt = cn.Sequential([L.Conv2D(2, 3), L.Flatten(), L.Dense(10)])
    with pytest.raises(ValueError, match="input shape is unknown"):
        apps.fully_convolutional(unbuilt, (1, 12, 12))
    flat = cn.Sequential([L.Input((64,)), L.Dense(10)])
    with pytest.raises(ValueError, match=r"images \(C, H, W\)"):
        apps.fully_convolutional(flat, (1, 12, 12))
