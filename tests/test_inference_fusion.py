"""The fused inference plan (docs/guide.md, "Fused inference"): batch norm
folded into the convolution before it, bias + residual add + ReLU applied in
the convolution's output write. The unfused path (cn.set_fusion(False),
every layer as written) is the reference: predictions agree within
tolerances.FUSION, after training moved the statistics, and again after
anything changed the weights (the plan refolds)."""

import contextlib

import numpy as np
import pytest

import corenn as cn
from corenn import layers as L
from tolerances import FUSION


@contextlib.contextmanager
def fusion(enabled):
    before = cn.get_fusion()
    cn.set_fusion(enabled)
    try:
        yield
    finally:
        cn.set_fusion(before)


def both(model, x):
    """(fused, unfused) predictions of the same model on x."""
    with fusion(True):
        fused = model.predict(x)
    with fusion(False):
        plain = model.predict(x)
    return fused, plain


def assert_close(fused, plain, dtype):
    scale = np.max(np.abs(plain))
    assert scale > 0
    err = np.max(np.abs(fused - plain))
    assert err <= FUSION[np.dtype(dtype)] * scale, (err, scale)


def plan(model):
    return [list(g) for g in model._engine.fusion_plan()]


def conv_bn(h, filters, name, kernel=3, relu=True, bn=None, use_bias=False, **conv_kwargs):
    h = L.Conv2D(filters, kernel, padding="same", use_bias=use_bias, name=f"{name}_conv", **conv_kwargs)(h)
    h = L.BatchNormalization(momentum=0.5, name=f"{name}_bn", **(bn or {}))(h)
    return L.Activation("relu", name=f"{name}_relu")(h) if relu else h


def resnet_like(dtype, residual=True, bn=None, name="r"):
    """Stem, an identity block, a projection block (whose shortcut is computed
    after the main branch: the Add's residual comes late), pooling, logits."""
    x = L.Input((3, 8, 8), name=f"{name}_in")
    h = conv_bn(x, 8, f"{name}_stem", bn=bn)
    for b, width in enumerate((8, 12)):
        a = conv_bn(h, width, f"{name}_b{b}a", bn=bn)
        a = conv_bn(a, width, f"{name}_b{b}b", relu=False, bn=bn)
        if residual:
            short = h if b == 0 else conv_bn(h, width, f"{name}_b{b}p", kernel=1, relu=False, bn=bn)
            a = L.Add(name=f"{name}_b{b}add")([a, short])
        h = L.Activation("relu", name=f"{name}_b{b}out")(a)
    h = L.GlobalAveragePooling2D(name=f"{name}_gap")(h)
    model = cn.Model(x, L.Dense(5, name=f"{name}_logits")(h), dtype=np.dtype(dtype).name)
    model.compile(cn.optimizers.Adam(1e-2), "softmax_cross_entropy")
    return model


def data(dtype, n=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 3, 8, 8)).astype(dtype), rng.integers(0, 5, n).astype(np.int64))


def train(model, dtype, steps=3, seed=1):
    """A few steps: the moving statistics (momentum 0.5) and γ, β move away from 0 and 1."""
    x, y = data(dtype, seed=seed)
    for _ in range(steps):
        model.train_on_batch(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("residual", [True, False])
def test_fused_predictions_match_the_layers_as_written(dtype, residual):
    cn.seed(0)
    model = resnet_like(dtype, residual=residual)
    train(model, dtype)
    mean = model.get_layer("r_b0a_bn").get_weights()[2]
    assert np.max(np.abs(mean)) > 1e-2  # the statistics moved: folding them is not the identity
    groups = plan(model)
    assert ["r_stem_conv", "r_stem_bn", "r_stem_relu"] in groups
    if residual:
        assert ["r_b0b_conv", "r_b0b_bn", "r_b0add", "r_b0out"] in groups
        assert ["r_b1b_conv", "r_b1b_bn", "r_b1add", "r_b1out"] in groups  # the residual comes later
        assert ["r_b1p_conv", "r_b1p_bn"] in groups
    else:
        assert ["r_b0b_conv", "r_b0b_bn", "r_b0out"] in groups
    x, _ = data(dtype, n=5, seed=2)
    fused, plain = both(model, x)
    assert_close(fused, plain, dtype)
    x1 = x[:1]  # batch 1: the GEMM path splits one image's rows across threads
    assert_close(both(model, x1)[0], plain[:1], dtype)


@pytest.mark.parametrize("bn", [dict(epsilon=0.5), dict(center=False), dict(scale=False),
                                dict(center=False, scale=False)])
def test_batch_norm_settings_fold(bn):
    cn.seed(1)
    model = resnet_like(np.float64, bn=bn)
    train(model, np.float64)
    assert len(plan(model)) == 6
    fused, plain = both(model, data(np.float64, n=4, seed=3)[0])
    assert_close(fused, plain, np.float64)


def test_the_plan_refolds_after_weights_change(tmp_path):
    dtype = np.float32
    cn.seed(2)
    model = resnet_like(dtype)
    train(model, dtype)
    x, y = data(dtype, n=4, seed=4)
    before, _ = both(model, x)

    # set_weights on a batch norm (γ, β and the statistics) and on a convolution
    bn = model.get_layer("r_b0a_bn")
    rng = np.random.default_rng(5)
    bn.set_weights([(rng.uniform(0.5, 2.0, 8)).astype(dtype), rng.standard_normal(8).astype(dtype),
                    rng.standard_normal(8).astype(dtype), rng.uniform(0.5, 2.0, 8).astype(dtype)])
    fused, plain = both(model, x)
    assert not np.allclose(fused, before)
    assert_close(fused, plain, dtype)
    conv = model.get_layer("r_stem_conv")
    conv.set_weights([2.0 * w for w in conv.get_weights()])
    fused, plain = both(model, x)
    assert_close(fused, plain, dtype)

    # a training step, then a frozen layer trained around
    previous = fused
    model.train_on_batch(x, y)
    fused, plain = both(model, x)
    assert not np.allclose(fused, previous)
    assert_close(fused, plain, dtype)
    model.get_layer("r_b1a_bn").trainable = False
    model.train_on_batch(x, y)
    fused, plain = both(model, x)
    assert_close(fused, plain, dtype)

    # a model file holds the weights as trained, never the folded ones
    path = tmp_path / "m.corenn"
    model.save(str(path))
    first = path.read_bytes()
    with fusion(True):
        model.predict(x)
    model.save(str(path))
    assert path.read_bytes() == first
    loaded = cn.load_model(str(path))
    assert_close(both(loaded, x)[0], plain, dtype)

    # load_weights into the first model after it changed again
    model.train_on_batch(x, y)
    model.load_weights(str(path))
    assert_close(both(model, x)[0], plain, dtype)


def test_set_parameters_and_state_refold():
    dtype = np.float64
    cn.seed(3)
    model = resnet_like(dtype)
    other = resnet_like(dtype, name="o")
    train(other, dtype)
    x, _ = data(dtype, n=3, seed=6)
    model.predict(x)  # folds the untrained weights
    for a, b in zip(model.layers, other.layers):
        a.set_weights(b.get_weights())
    assert_close(both(model, x)[0], both(other, x)[1], dtype)


def test_a_batch_norm_read_twice_is_not_fused_past():
    cn.seed(4)
    x = L.Input((3, 6, 6))
    h = L.Conv2D(4, 3, padding="same", name="c")(x)
    n = L.BatchNormalization(momentum=0.5, name="bn")(h)
    a = L.Activation("relu", name="relu")(n)
    b = L.Conv2D(4, 1, name="side")(n)  # a second reader of the batch norm's output
    model = cn.Model(x, L.Add(name="sum")([a, b]))
    model.compile(cn.optimizers.SGD(0.1), "mse")
    xs = np.random.default_rng(7).standard_normal((8, 3, 6, 6)).astype(np.float32)
    for _ in range(3):
        model.train_on_batch(xs, np.ones((8, 4, 6, 6), np.float32))
    # the batch norm still folds into "c" (its only reader), but its output is
    # materialised for both readers: the ReLU is not pulled in
    assert ["c", "bn"] in plan(model)
    assert not any("relu" in g for g in plan(model))
    assert_close(*both(model, xs), np.float32)


def test_a_convolution_read_twice_or_a_model_output_is_not_folded():
    cn.seed(5)
    x = L.Input((3, 6, 6))
    h = L.Conv2D(4, 3, padding="same", name="c")(x)
    n = L.BatchNormalization(name="bn")(h)
    k = L.Conv2D(4, 3, padding="same", name="k")(x)
    m = L.BatchNormalization(name="bm")(k)
    model = cn.Model(x, [L.Add(name="sum")([n, h]), k, L.Activation("relu", name="r")(m)])
    model.compile(cn.optimizers.SGD(0.1), "mse")
    # "c" feeds the batch norm and the Add; "k" is a model output: neither folds
    assert plan(model) == []
    xs = np.random.default_rng(8).standard_normal((2, 3, 6, 6)).astype(np.float32)
    for f, p in zip(*both(model, xs)):
        assert_close(f, p, np.float32)


def test_other_convolutions_fuse():
    """A convolution with a bias and its own ReLU, a depthwise convolution with
    batch norm, a Conv1D with batch norm, Winograd's path."""
    cn.seed(6)
    x = L.Input((4, 9, 9))
    h = L.Conv2D(6, 3, padding="same", activation="relu", name="own_relu")(x)
    h = L.DepthwiseConv2D(3, padding="same", name="dw")(h)
    h = L.BatchNormalization(momentum=0.5, name="dw_bn")(h)
    h = L.Activation("relu", name="dw_relu")(h)
    h = L.Conv2D(6, 3, padding="same", name="biased")(h)
    h = L.BatchNormalization(momentum=0.5, name="biased_bn")(h)
    model = cn.Model(x, L.GlobalAveragePooling2D()(h))
    model.compile(cn.optimizers.Adam(1e-2), "mse")
    xs = np.random.default_rng(9).standard_normal((16, 4, 9, 9)).astype(np.float32)
    for _ in range(3):
        model.train_on_batch(xs, np.ones((16, 6), np.float32))
    assert plan(model) == [["own_relu"], ["dw", "dw_bn", "dw_relu"], ["biased", "biased_bn"]]
    for algorithm in ("gemm", "winograd"):
        before = cn.get_conv_algorithm()
        cn.set_conv_algorithm(algorithm)
        try:
            assert_close(*both(model, xs), np.float32)
        finally:
            cn.set_conv_algorithm(before)

    s = L.Input((3, 20))
    c = L.Conv1D(5, 3, padding="same", name="c1")(s)
    c = L.BatchNormalization(momentum=0.5, name="c1_bn")(c)
    seq = cn.Model(s, L.Activation("relu", name="c1_relu")(c))
    seq.compile(cn.optimizers.Adam(1e-2), "mse")
    xs = np.random.default_rng(10).standard_normal((8, 3, 20)).astype(np.float32)
    for _ in range(3):
        seq.train_on_batch(xs, np.ones((8, 5, 20), np.float32))
    assert plan(seq) == [["c1", "c1_bn", "c1_relu"]]
    assert_close(*both(seq, xs), np.float32)


def test_winograd_residual_epilogue():
    """The residual and ReLU through Winograd's output transform (batch >= threads)."""
    cn.seed(7)
    before = cn.get_conv_algorithm()
    cn.set_conv_algorithm("winograd")
    try:
        model = resnet_like(np.float32)
        train(model, np.float32)
        x, _ = data(np.float32, n=6, seed=11)
        assert_close(*both(model, x), np.float32)
    finally:
        cn.set_conv_algorithm(before)


def test_evaluate_uses_the_plan():
    cn.seed(8)
    model = resnet_like(np.float64)
    train(model, np.float64)
    x, y = data(np.float64, n=6, seed=12)
    with fusion(True):
        fused = model.evaluate(x, y)["loss"]
    with fusion(False):
        plain = model.evaluate(x, y)["loss"]
    assert abs(fused - plain) <= FUSION[np.dtype(np.float64)] * abs(plain)


def test_set_fusion_checks_its_argument():
    with pytest.raises(TypeError, match="set_fusion: enabled must be a bool"):
        cn.set_fusion(1)
    assert cn.get_fusion() is True


# ------------------------------------------------------------------ training: BatchNormalization + ReLU in one pass

def weights_after_training(dtype, enabled, seed=9):
    with fusion(enabled):
        cn.seed(seed)
        model = resnet_like(dtype)
        train(model, dtype, steps=3)
        x, y = data(dtype, n=6, seed=13)
        loss, grads = model.compute_gradients(x, y)
        return model.get_weights(), loss, grads


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_fused_batch_norm_relu_is_the_two_layers_bit_for_bit(dtype):
    fused_w, fused_loss, fused_g = weights_after_training(dtype, True)
    plain_w, plain_loss, plain_g = weights_after_training(dtype, False)
    assert fused_loss == plain_loss
    for a, b in zip(fused_w + fused_g, plain_w + plain_g):
        np.testing.assert_array_equal(a, b)


def test_training_fused_batch_norm_relu_gradient_check():
    """The fused backward against float64 central differences of the loss, on
    a conv → BN → ReLU stack (both BN + ReLU pairs fused, one on images, one
    on (N, C) features)."""
    from gradcheck import engine_finite_differences, relative_difference
    from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD
    cn.seed(10)
    m = cn.Sequential([L.Input((2, 4, 4)), L.Conv2D(3, 3, padding="same"), L.BatchNormalization(),
                       L.Activation("relu"), L.Flatten(), L.Dense(5), L.BatchNormalization(),
                       L.Activation("relu"), L.Dense(3)], dtype="float64")
    m.compile(optimizer="sgd", loss="softmax_cross_entropy")
    m.build()
    x, y = np.random.default_rng(14).standard_normal((6, 2, 4, 4)), np.array([0, 2, 1, 2, 0, 1])
    state = m._engine.get_state()
    with fusion(True):
        _, analytic = m._engine.loss_and_gradients([x], [y])
        m._engine.set_state(state)
        numeric = engine_finite_differences(m._engine, x, y, True, GRADCHECK_EPS)
    m._engine.set_state(state)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD
    with fusion(False):
        _, plain = m._engine.loss_and_gradients([x], [y])
    np.testing.assert_array_equal(analytic, plain)


def test_training_fusion_leaves_a_relu_read_twice_or_a_frozen_batch_norm_alone():
    """A batch norm whose output has another reader, or is frozen (inference
    statistics inside fit), keeps its ReLU separate; results equal either way."""
    def run(enabled):
        with fusion(enabled):
            cn.seed(11)
            x = L.Input((3, 6, 6))
            h = L.Conv2D(4, 3, padding="same", name="c")(x)
            n = L.BatchNormalization(name="bn")(h)
            a = L.Activation("relu", name="relu")(n)
            frozen = L.BatchNormalization(name="frozen")(L.Conv2D(4, 3, padding="same", name="k")(x))
            b = L.Activation("relu", name="relu2")(frozen)
            model = cn.Model(x, [L.Add(name="sum")([a, n]), b])
            model.get_layer("frozen").trainable = False
            model.compile(cn.optimizers.SGD(0.1), "mse")
            xs = np.random.default_rng(15).standard_normal((4, 3, 6, 6))
            for _ in range(2):
                model.train_on_batch(xs.astype(np.float32), [np.ones((4, 4, 6, 6), np.float32)] * 2)
            return model.get_weights()
    for u, v in zip(run(True), run(False)):
        np.testing.assert_array_equal(u, v)


# ------------------------------------------------------------------ training: Add + ReLU, shared gradient buffers

def residual_gradients(enabled, dtype, x, y, build):
    with fusion(enabled):
        cn.seed(16)
        model = build(dtype)
        model.build()
        state = model._engine.get_state()
        loss, grads = model._engine.loss_and_gradients([x], [y])
        model._engine.set_state(state)
        return model, loss, grads, state


def tiny_residual(dtype):
    """Conv → BN → ReLU → Conv → BN, added to the block input, ReLU: every
    training fusion at once (BN + ReLU twice, Add + ReLU), on a float64 model small
    enough for finite differences."""
    x = L.Input((2, 4, 4))
    h = conv_bn(x, 2, "stem")
    a = conv_bn(h, 2, "a")
    a = conv_bn(a, 2, "b", relu=False)
    h = L.Activation("relu", name="out")(L.Add(name="add")([a, h]))
    h = L.GlobalAveragePooling2D()(h)
    model = cn.Model(x, L.Dense(3)(h), dtype=np.dtype(dtype).name)
    model.compile(cn.optimizers.SGD(0.1), "softmax_cross_entropy")
    return model


def test_training_fused_add_relu_gradient_check():
    """The fused Add + ReLU (and batch norm's fused ReLU backward) against
    float64 central differences, and bit for bit the layers as written."""
    from gradcheck import engine_finite_differences, relative_difference
    from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD
    x = np.random.default_rng(17).standard_normal((5, 2, 4, 4))
    y = np.array([0, 2, 1, 2, 0])
    model, loss, analytic, state = residual_gradients(True, np.float64, x, y, tiny_residual)
    with fusion(True):
        numeric = engine_finite_differences(model._engine, x, y, True, GRADCHECK_EPS)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD
    _, plain_loss, plain, _ = residual_gradients(False, np.float64, x, y, tiny_residual)
    assert loss == plain_loss
    np.testing.assert_array_equal(analytic, plain)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_training_fused_add_relu_is_the_two_layers_bit_for_bit(dtype):
    x = np.random.default_rng(18).standard_normal((6, 2, 4, 4)).astype(dtype)
    y = np.array([0, 2, 1, 2, 0, 1])
    _, fused_loss, fused, _ = residual_gradients(True, dtype, x, y, tiny_residual)
    _, plain_loss, plain, _ = residual_gradients(False, dtype, x, y, tiny_residual)
    assert fused_loss == plain_loss
    np.testing.assert_array_equal(fused, plain)


def test_an_add_read_twice_keeps_its_relu_separate():
    """An Add whose sum is also a model output (or read by another layer)
    must not write relu(sum): results equal with the training plan on and off."""
    def run(enabled):
        with fusion(enabled):
            cn.seed(19)
            x = L.Input((3, 5, 5))
            a = L.Conv2D(3, 3, padding="same", name="c")(x)
            s = L.Add(name="sum")([a, x])
            r = L.Activation("relu", name="relu")(s)
            t = L.Add(name="sum2")([r, x])
            u = L.Activation("relu", name="relu2")(t)
            model = cn.Model(x, [L.Conv2D(2, 1, name="k")(s), u, t])
            model.compile(cn.optimizers.SGD(0.1), "mse")
            xs = np.random.default_rng(20).standard_normal((4, 3, 5, 5)).astype(np.float32)
            targets = [np.ones((4, 2, 5, 5), np.float32), np.ones((4, 3, 5, 5), np.float32),
                       np.zeros((4, 3, 5, 5), np.float32)]
            for _ in range(2):
                model.train_on_batch(xs, targets)
            return model.get_weights(), model.predict(xs)
    fused_w, fused_p = run(True)
    plain_w, plain_p = run(False)
    for u, v in zip(fused_w + list(fused_p), plain_w + list(plain_p)):
        np.testing.assert_array_equal(u, v)


def test_a_shared_add_gradient_is_copied_for_a_layer_that_writes_over_it():
    """An Add hands one gradient buffer to both its inputs; a Dense with a
    ReLU writes its activation's gradient over dy, so the first of the two to
    run back must get a copy, or the second reads a masked gradient: finite
    differences catch either mistake."""
    from gradcheck import engine_finite_differences, relative_difference
    from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD
    cn.seed(21)
    x = L.Input((4,))
    s = L.Add()([L.Dense(3, activation="relu")(x), L.Dense(3, activation="relu")(x), L.Dense(3)(x)])
    model = cn.Model(x, L.Dense(2)(L.Activation("tanh")(s)), dtype="float64")
    model.compile(cn.optimizers.SGD(0.1), "softmax_cross_entropy")
    model.build()
    xs, ys = np.random.default_rng(22).standard_normal((6, 4)), np.array([0, 1, 1, 0, 1, 0])
    _, analytic = model._engine.loss_and_gradients([xs], [ys])
    numeric = engine_finite_differences(model._engine, xs, ys, True, GRADCHECK_EPS)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD
