"""The course-4 architectures: each builds, has the parameter count its
formula gives, and trains (loss goes down); a residual network learns digits."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import corenn as cn
from corenn import applications as apps

L = cn.layers


def bn(c):
    return 4 * c  # gamma, beta, moving mean, moving variance


def conv(cin, cout, k, bias=True):
    return k * k * cin * cout + (cout if bias else 0)


def weights_count(model):
    return sum(w.size for w in model.get_weights())


def test_residual_block_identity_and_projection_parameter_counts():
    x = L.Input((8, 6, 6))
    identity = cn.Model(x, apps.residual_block(x, 8, name="id"))
    assert identity.count_params() == 2 * (conv(8, 8, 3, bias=False) + bn(8))
    assert weights_count(identity) == identity.count_params()
    assert not any(l.name.endswith("proj_conv") for l in identity.layers)
    y = L.Input((8, 6, 6))
    projected = cn.Model(y, apps.residual_block(y, 16, strides=2, name="pr"))
    assert projected.output_shape == (None, 16, 3, 3)
    assert projected.count_params() == (conv(8, 16, 3, False) + conv(16, 16, 3, False)
                                        + conv(8, 16, 1, False) + 3 * bn(16))


def test_resnet_small_is_the_benchmark_network():
    model = apps.resnet_small()
    stem0 = conv(3, 32, 3, False) + bn(32)
    block32 = 2 * (conv(32, 32, 3, False) + bn(32))
    stem1 = conv(32, 64, 3, False) + bn(64)
    block64 = 2 * (conv(64, 64, 3, False) + bn(64))
    assert model.count_params() == stem0 + 2 * block32 + stem1 + block64 + (64 * 10 + 10)
    assert model.output_shape == (None, 10)
    # Forward multiply-adds per example: convs (weights × positions) and the dense layer.
    macs = (27 * 32 + 4 * 9 * 32 * 32) * 32 * 32 + (9 * 32 * 64 + 2 * 9 * 64 * 64) * 16 * 16 + 640
    assert model.multiply_adds() == macs


def test_inception_module_parameters_and_channels():
    x = L.Input((12, 8, 8))
    h = apps.inception_module(x, 4, 6, 8, 2, 3, 5, name="inc")
    model = cn.Model(x, h)
    assert model.output_shape == (None, 4 + 8 + 3 + 5, 8, 8)
    assert model.count_params() == (conv(12, 4, 1) + conv(12, 6, 1) + conv(6, 8, 3) + conv(12, 2, 1)
                                    + conv(2, 3, 5) + conv(12, 5, 1))


def test_mobilenet_blocks_parameter_counts():
    x = L.Input((8, 6, 6))
    v1 = cn.Model(x, apps.depthwise_separable_block(x, 16, name="v1"))
    assert v1.count_params() == 9 * 8 + bn(8) + 8 * 16 + bn(16)
    y = L.Input((8, 6, 6))
    v2 = cn.Model(y, apps.inverted_residual_block(y, 8, expansion=6, name="v2"))
    assert any(isinstance(l, L.Add) for l in v2.layers)  # same shape: residual
    assert v2.count_params() == 8 * 48 + bn(48) + 9 * 48 + bn(48) + 48 * 8 + bn(8)
    z = L.Input((8, 6, 6))
    v2s = cn.Model(z, apps.inverted_residual_block(z, 12, expansion=6, strides=2, name="v2s"))
    assert not any(isinstance(l, L.Add) for l in v2s.layers)
    assert v2s.output_shape == (None, 12, 3, 3)


def test_efficientnet_compound_scaling():
    d, w, r = apps.efficientnet_scaling(2)
    assert (d, w, r) == pytest.approx((1.2 ** 2, 1.1 ** 2, 1.15 ** 2))
    assert apps.efficientnet_scaling(0) == (1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="phi must be >= 0"):
        apps.efficientnet_scaling(-1)
    small, big = apps.efficientnet(0), apps.efficientnet(2)
    assert small.input_shape == (None, 3, 32, 32)
    assert big.input_shape == (None, 3, 44, 44)  # 32 · 1.3225 = 42.3 → nearest multiple of 4
    assert big.count_params() > small.count_params()
    deeper = sum(isinstance(l, L.DepthwiseConv2D) for l in big.layers)
    assert deeper > sum(isinstance(l, L.DepthwiseConv2D) for l in small.layers)


def test_unet_shapes_and_parameters():
    model = apps.unet((1, 16, 16), classes=1, filters=4, depth=2)
    assert model.output_shape == (None, 1, 16, 16)
    expected = (conv(1, 4, 3) + conv(4, 4, 3) + conv(4, 8, 3) + conv(8, 8, 3)  # down
                + conv(8, 16, 3) + conv(16, 16, 3)                             # bottom
                + conv(16, 8, 2) + conv(16, 8, 3) + conv(8, 8, 3)              # up 1 (transpose: 16→8)
                + conv(8, 4, 2) + conv(8, 4, 3) + conv(4, 4, 3)                # up 0
                + conv(4, 1, 1))
    assert model.count_params() == expected
    assert sum(isinstance(l, L.Concatenate) for l in model.layers) == 2
    with pytest.raises(ValueError, match="divisible by 2\\*\\*depth = 4"):
        apps.unet((1, 10, 10), depth=2)


BUILDERS = {
    "resnet_small": lambda: apps.resnet_small((3, 8, 8), widths=(8, 16), blocks=(1, 1)),
    "inception_small": lambda: apps.inception_small((3, 8, 8)),
    "mobilenet_v1": lambda: apps.mobilenet_v1((3, 8, 8), alpha=0.5),
    "mobilenet_v2": lambda: apps.mobilenet_v2((3, 8, 8), alpha=0.5),
    "efficientnet": lambda: apps.efficientnet(0, base_resolution=8),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_application_trains(name):
    cn.seed(0)
    model = BUILDERS[name]()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, *model.input_shape[1:])).astype(np.float32)
    y = rng.integers(0, 10, 32)
    model.compile(optimizer=cn.optimizers.Adam(0.01), loss="softmax_cross_entropy")
    # Training-mode losses (batch statistics): a few steps are too few for the
    # moving averages that inference uses.
    losses = [model.train_on_batch(x, y) for _ in range(16)]
    assert losses[-1] < 0.7 * losses[0]


def test_unet_learns_a_mask():
    # Segment the bright square: per-pixel logits, binary cross-entropy.
    cn.seed(1)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((16, 1, 8, 8)).astype(np.float32) * 0.3
    masks = np.zeros((16, 1, 8, 8), np.float32)
    for i in range(16):
        r, c = rng.integers(0, 5, 2)
        x[i, 0, r:r + 3, c:c + 3] += 2.0
        masks[i, 0, r:r + 3, c:c + 3] = 1.0
    model = apps.unet((1, 8, 8), filters=4, depth=1)
    model.compile(optimizer=cn.optimizers.Adam(0.01), loss="binary_cross_entropy")
    first = model.evaluate(x, masks)["loss"]
    model.fit(x, masks, batch_size=8, epochs=30, verbose=0)
    assert model.evaluate(x, masks)["loss"] < 0.3 * first
    pixel_accuracy = np.mean((model.predict(x) > 0) == (masks > 0.5))
    assert pixel_accuracy > 0.95


def test_residual_network_learns_digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                        stratify=y)
    cn.seed(0)
    model = apps.resnet_small((1, 8, 8), widths=(16, 32), blocks=(1, 1))
    model.compile(optimizer=cn.optimizers.Adam(3e-3), loss="softmax_cross_entropy",
                  metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=32, epochs=8, verbose=0)
    assert model.evaluate(X_test, y_test)["accuracy"] >= 0.95


def test_applications_is_an_attribute_of_corenn():
    # `import corenn as cn; cn.applications.resnet_small(...)` as the guide
    # writes it, in a fresh interpreter (here the test modules imported it already).
    import subprocess
    import sys

    code = "import corenn as cn; assert 'applications' in cn.__all__; cn.applications.resnet_small"
    subprocess.run([sys.executable, "-c", code], check=True)
