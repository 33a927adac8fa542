"""Weights inference keeps across predict calls (cpp/src/engine/derived_weights.hpp;
docs/guide.md, "Fused inference"): batch norm folded into the convolution
before it and a 3×3 convolution's Winograd-transformed filters are computed
once and kept until the weights they come from change. A prediction must
never see stale ones: after every way of changing the weights (set_weights,
set_parameters, a training step, set_trainable, load_weights) and after a
change of the conv algorithm setting (another Winograd tile), predict gives,
bit for bit, what a fresh model with the same weights (nothing kept) gives."""

import contextlib
import threading

import numpy as np
import pytest

import corenn as cn
from corenn import layers as L
from tolerances import FUSION


@contextlib.contextmanager
def settings(algorithm, fusion=True):
    before = cn.get_conv_algorithm(), cn.get_fusion()
    cn.set_conv_algorithm(algorithm)
    cn.set_fusion(fusion)
    try:
        yield
    finally:
        cn.set_conv_algorithm(before[0])
        cn.set_fusion(before[1])


def small_resnet(name="m"):
    """16 channels on 8×8 (Winograd's shape), a conv + batch norm + ReLU
    group, a residual block, and a convolution outside any group (it feeds
    two layers)."""
    x = L.Input((3, 8, 8), name=f"{name}_in")
    h = L.Conv2D(16, 3, padding="same", use_bias=False, name=f"{name}_stem")(x)
    h = L.BatchNormalization(momentum=0.5, name=f"{name}_stem_bn")(h)
    h = L.Activation("relu", name=f"{name}_stem_relu")(h)
    a = L.Conv2D(16, 3, padding="same", activation="relu", name=f"{name}_a")(h)
    a = L.Conv2D(16, 3, padding="same", use_bias=False, name=f"{name}_b")(a)
    a = L.BatchNormalization(momentum=0.5, name=f"{name}_b_bn")(a)
    h = L.Activation("relu", name=f"{name}_out")(L.Add(name=f"{name}_add")([a, h]))
    lone = L.Conv2D(16, 3, padding="same", name=f"{name}_lone")(h)  # read twice: runs unfused
    h = L.Add(name=f"{name}_twice")([lone, L.Activation("relu", name=f"{name}_lone_relu")(lone)])
    model = cn.Model(x, L.Dense(4, name=f"{name}_logits")(L.GlobalAveragePooling2D(name=f"{name}_gap")(h)))
    model.compile(cn.optimizers.Adam(1e-2), "softmax_cross_entropy")
    return model


def data(n, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 3, 8, 8)).astype(np.float32), rng.integers(0, 4, n).astype(np.int64)


def fresh_prediction(model, x):
    """model's prediction from a new model given its weights: nothing kept from earlier calls."""
    twin = small_resnet(name="m")
    twin.set_weights(model.get_weights())
    return twin.predict(x)


WAYS = ["set_weights_conv", "set_weights_bn", "set_parameters", "train_on_batch", "set_trainable",
        "load_weights"]


@pytest.mark.parametrize("fusion", [True, False])
@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
@pytest.mark.parametrize("way", WAYS)
def test_predict_follows_every_change_of_the_weights(way, algorithm, fusion, tmp_path):
    cn.seed(0)
    with settings(algorithm, fusion):
        model = small_resnet()
        x, y = data(4, seed=1)
        model.train_on_batch(x, y)  # batch norm statistics away from 0 and 1
        path = tmp_path / "w.corenn"
        model.save(str(path))
        before = model.predict(x)  # keeps what it derived
        assert np.array_equal(before, fresh_prediction(model, x))
        rng = np.random.default_rng(2)
        if way == "set_weights_conv":
            for name in ("m_stem", "m_a", "m_lone"):
                layer = model.get_layer(name)
                layer.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) for w in layer.get_weights()])
        elif way == "set_weights_bn":
            bn = model.get_layer("m_b_bn")
            bn.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(w.dtype) for w in bn.get_weights()])
        elif way == "set_parameters":
            p = model._engine.get_parameters()
            model._engine.set_parameters(p + rng.standard_normal(p.shape).astype(p.dtype))
        elif way == "train_on_batch":
            model.train_on_batch(x, y)
        elif way == "set_trainable":
            model.get_layer("m_stem_bn").trainable = False
            model.train_on_batch(x, y)
        else:
            model.train_on_batch(x, y)
            after_training = model.predict(x)
            assert not np.array_equal(after_training, before)
            model.load_weights(str(path))
        after = model.predict(x)
        if way == "load_weights":
            assert np.array_equal(after, before)
        else:
            assert not np.array_equal(after, before)
        assert np.array_equal(after, fresh_prediction(model, x))


def test_predict_follows_the_conv_algorithm_setting():
    """The transformed filters differ per tile: a change of setting between
    calls runs with those of the new tile (and back)."""
    cn.seed(1)
    model = small_resnet()
    x, y = data(4, seed=3)
    model.train_on_batch(x, y)
    results = {}
    for algorithm in ("winograd2", "winograd4", "gemm", "winograd2", "winograd4"):
        with settings(algorithm):
            got = model.predict(x)
            assert np.array_equal(got, fresh_prediction(model, x)), algorithm
            assert np.array_equal(results.setdefault(algorithm, got), got)
    assert not np.array_equal(results["winograd2"], results["winograd4"])


def test_kept_filters_give_the_kernels_results_bit_for_bit():
    """One Conv2D predicted on the Winograd path with its kept transformed
    filters == cn.ops.conv2d_forward (the filters transformed in the call)."""
    cn.seed(2)
    x_in = L.Input((16, 8, 8))
    model = cn.Model(x_in, L.Conv2D(16, 3, padding="same", name="c")(x_in))
    x = np.random.default_rng(4).standard_normal((3, 16, 8, 8)).astype(np.float32)
    W, b = model.get_layer("c").get_weights()
    for algorithm in ("winograd2", "winograd4", "winograd2"):
        with settings(algorithm):
            for _ in range(2):
                assert np.array_equal(model.predict(x), cn.ops.conv2d_forward(x, W, b, padding=1))
            assert np.array_equal(model.predict(x[:1]), cn.ops.conv2d_forward(x[:1], W, b, padding=1))


@pytest.mark.parametrize("algorithm", ["auto", "winograd2", "winograd4"])
def test_batch_one_is_bitwise_repeatable_and_fused_matches_unfused(algorithm):
    cn.seed(3)
    model = small_resnet()
    x, y = data(4, seed=5)
    model.train_on_batch(x, y)
    x1 = x[:1]
    with settings(algorithm):
        first = model.predict(x1)
        for _ in range(3):
            assert np.array_equal(model.predict(x1), first)
    with settings(algorithm, fusion=False):
        plain = model.predict(x1)
    scale = np.max(np.abs(plain))
    assert scale > 0 and np.max(np.abs(first - plain)) <= FUSION[np.dtype(np.float32)] * scale


@pytest.mark.parametrize("fusion", [True, False])
def test_concurrent_predicts_agree(fusion):
    """Threads predicting at once, first after a change of weights (they meet
    where the derived weights are recomputed), all get the serial result."""
    cn.seed(4)
    with settings("winograd4", fusion):
        model = small_resnet()
        x, y = data(2, seed=6)
        model.train_on_batch(x, y)
        model.predict(x)  # keeps the derived weights
        model.train_on_batch(x, y)
        want = fresh_prediction(model, x)
        results, errors = [None] * 6, []
        start = threading.Barrier(len(results))

        def work(i):
            try:
                start.wait()
                results[i] = [model.predict(x) for _ in range(3)]
            except Exception as e:  # reported below: an assertion in a thread would be lost
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        for runs in results:
            for got in runs:
                assert np.array_equal(got, want)


def test_batch_one_rule_for_kept_filters():
    """At batch 1 on 2 threads inference keeps the transformed filters, and
    "auto" takes F(4×4) from 8×8 on where a call that transforms them takes
    F(2×2) or GEMM (winograd.cpp's rule): 64→64 on 16×16 and 32→32 on 16×16."""
    threads = cn.get_num_threads()
    rng = np.random.default_rng(7)
    try:
        cn.set_num_threads(2)
        for c, one_call in ((64, "winograd2"), (32, "gemm")):
            x_in = L.Input((c, 16, 16))
            model = cn.Model(x_in, L.Conv2D(c, 3, padding="same", name="c")(x_in))
            W, b = model.get_layer("c").get_weights()
            x = rng.standard_normal((1, c, 16, 16)).astype(np.float32)
            with settings("auto"):
                auto_kept, auto_call = model.predict(x), cn.ops.conv2d_forward(x, W, b, padding=1)
            with settings("winograd4"):
                assert np.array_equal(auto_kept, model.predict(x))
            with settings(one_call):
                assert np.array_equal(auto_call, cn.ops.conv2d_forward(x, W, b, padding=1))
            assert not np.array_equal(auto_kept, auto_call)
    finally:
        cn.set_num_threads(threads)


def residual_16x16():
    """16→24 conv with its ReLU, then a 24→24 conv, batch norm, the residual
    add and ReLU (fused into the second conv's output transform)."""
    x_in = L.Input((16, 16, 16))
    a = L.Conv2D(24, 3, padding="same", activation="relu", name="a")(x_in)
    b = L.BatchNormalization(name="b_bn")(L.Conv2D(24, 3, padding="same", use_bias=False, name="b")(a))
    return cn.Model(x_in, L.Activation("relu", name="out")(L.Add(name="add")([b, a])))


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
def test_kept_filters_at_batch_one_on_threads_own_products(algorithm):
    """Batch 1 on 2 threads, a thread's share of tiles at least 8 (16×16):
    each thread transforms, multiplies (winograd.cpp's own product) and
    transforms back its tile rows. The kept filters give the kernel's
    results bit for bit, calls repeat bitwise, a fresh model with the same
    weights predicts the same bits, and fused matches unfused."""
    rng = np.random.default_rng(8)
    cn.seed(5)
    model = residual_16x16()
    model.get_layer("b_bn").set_weights([rng.uniform(0.5, 1.5, 24).astype(np.float32) for _ in range(4)])
    x = rng.standard_normal((1, 16, 16, 16)).astype(np.float32)
    threads = cn.get_num_threads()
    try:
        cn.set_num_threads(2)
        with settings(algorithm):
            first = model.predict(x)
            for _ in range(3):
                assert np.array_equal(model.predict(x), first)
            twin = residual_16x16()
            twin.set_weights(model.get_weights())
            assert np.array_equal(twin.predict(x), first)
            W, bias = model.get_layer("a").get_weights()
            x_stem = L.Input((16, 16, 16))
            stem = cn.Model(x_stem, L.Conv2D(24, 3, padding="same", activation="relu", name="a")(x_stem))
            stem.get_layer("a").set_weights([W, bias])
            want = np.maximum(cn.ops.conv2d_forward(x, W, bias, padding=1), 0)
            for _ in range(2):
                assert np.array_equal(stem.predict(x), want)
        with settings(algorithm, fusion=False):
            plain = model.predict(x)
    finally:
        cn.set_num_threads(threads)
    scale = np.max(np.abs(plain))
    assert scale > 0 and np.max(np.abs(first - plain)) <= FUSION[np.dtype(np.float32)] * scale


def time_distributed_conv(name="td"):
    """A 3×3 convolution applied to every frame (Winograd's shape): its
    transformed filters are kept by the version of the wrapper's weights."""
    x = L.Input((2, 16, 8, 8), name=f"{name}_in")
    h = L.TimeDistributed(L.Conv2D(16, 3, padding="same", activation="relu"), name=f"{name}_conv")(x)
    h = L.TimeDistributed(L.GlobalAveragePooling2D(), name=f"{name}_gap")(h)
    model = cn.Model(x, L.Dense(4, name=f"{name}_logits")(L.Flatten(name=f"{name}_flat")(h)))
    model.compile(cn.optimizers.Adam(1e-2), "softmax_cross_entropy")
    return model


@pytest.mark.parametrize("algorithm", ["winograd2", "winograd4"])
@pytest.mark.parametrize("way", ["set_weights", "set_parameters", "train_on_batch", "load_weights"])
def test_a_wrapped_convolution_follows_every_change_of_the_weights(way, algorithm, tmp_path):
    """TimeDistributed hands its inner Conv2D the inference flag and its own
    weights version (the inner layer's never moves): changed weights must
    reach the next predict."""
    cn.seed(4)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2, 16, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, 3).astype(np.int64)
    with settings(algorithm):
        model = time_distributed_conv()
        path = tmp_path / "w.corenn"
        model.save(str(path))
        before = model.predict(x)
        twin = time_distributed_conv()
        conv = model.get_layer("td_conv")
        if way == "set_weights":
            conv.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) for w in conv.get_weights()])
        elif way == "set_parameters":
            p = model._engine.get_parameters()
            model._engine.set_parameters(p + rng.standard_normal(p.shape).astype(p.dtype))
        else:
            model.train_on_batch(x, y)
            assert not np.array_equal(model.predict(x), before)
            if way == "load_weights":
                model.load_weights(str(path))
        after = model.predict(x)
        assert np.array_equal(after, before) == (way == "load_weights")
        twin.set_weights(model.get_weights())
        assert np.array_equal(after, twin.predict(x))
