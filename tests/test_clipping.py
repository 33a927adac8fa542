"""Gradient clipping on every optimizer (clipnorm, clipvalue, global_clipnorm;
Keras's arguments, the course's `clip`), fused into the C++ update: the
kernels' transform against tests/reference/optim.py, the model's clipped steps
against unclipped steps on the NumPy-clipped gradients, PyTorch's
clip_grad_norm_ / clip_grad_value_, the optimizer config in model files, and
bad values."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from reference import optim as ref
from tolerances import CLOSED_FORM, TORCH_CLIP_GRAD_NORM, assert_close, tolerance

L = cn.layers
O = cn.optimizers

OPTIMIZERS = {
    "sgd": lambda **clip: O.SGD(0.1, **clip),
    "sgd_momentum": lambda **clip: O.SGD(0.05, momentum=0.9, nesterov=True, weight_decay=0.01, **clip),
    "rmsprop": lambda **clip: O.RMSprop(0.01, weight_decay=0.05, **clip),
    "adam": lambda **clip: O.Adam(0.05, **clip),
    "adamw": lambda **clip: O.AdamW(0.05, **clip),
}
CLIPS = {
    "clipnorm": dict(clipnorm=0.5),
    "clipvalue": dict(clipvalue=0.05),
    "global_clipnorm": dict(global_clipnorm=0.7),
    "clipnorm+clipvalue": dict(clipnorm=0.5, clipvalue=0.05),
    "global_clipnorm+clipvalue": dict(global_clipnorm=0.7, clipvalue=0.05),
}


# ---------------------------------------------------------------- the kernels

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_kernels_clip_the_gradient_before_the_update(dtype, naive):
    rng = np.random.default_rng(0)
    n = 70_000  # past the parallel grain
    p0, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    scale, value = 0.4, 0.3
    clipped = np.clip(g.astype(np.float64) * np.asarray(scale, dtype).astype(np.float64), -value, value)
    p, v = p0.copy(), np.zeros_like(p0)
    cn.ops.sgd_step(p, g, v, 0.1, momentum=0.9, weight_decay=0.01, grad_scale=scale, clipvalue=value, naive=naive)
    want, _ = ref.sgd_step(p0, clipped, np.zeros(n), 0.1, momentum=0.9, weight_decay=0.01)
    assert_close(p, want, op="sgd_step")
    p, s = p0.copy(), np.zeros_like(p0)
    cn.ops.rmsprop_step(p, g, s, 0.01, grad_scale=scale, clipvalue=value, naive=naive)
    assert_close(p, ref.rmsprop_step(p0, clipped, np.zeros(n), 0.01)[0], op="rmsprop_step")
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    cn.ops.adam_step(p, g, m, v, 1, 0.01, grad_scale=scale, clipvalue=value, naive=naive)
    assert_close(p, ref.adam_step(p0, clipped, np.zeros(n), np.zeros(n), 1, 0.01)[0], op="adam_step")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fast_and_naive_clipped_updates_agree_bit_for_bit(dtype):
    rng = np.random.default_rng(1)
    p0, g = rng.standard_normal(50_000).astype(dtype), 3 * rng.standard_normal(50_000).astype(dtype)
    results = []
    for naive in (False, True):
        p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        cn.ops.adam_step(p, g, m, v, 1, 0.01, weight_decay=0.1, decoupled=True, grad_scale=0.25, clipvalue=0.5,
                         naive=naive)
        results.append(p)
    assert np.array_equal(*results)


def test_kernel_clip_arguments_are_validated():
    p, g, v = np.zeros(3), np.ones(3), np.zeros(3)
    for kwargs, match in ((dict(clipvalue=-1.0), "clipvalue must be finite and >= 0"),
                          (dict(clipvalue=float("nan")), "clipvalue must be finite and >= 0"),
                          (dict(grad_scale=0.0), r"grad_scale must be in \(0, 1\]"),
                          (dict(grad_scale=1.5), r"grad_scale must be in \(0, 1\]")):
        with pytest.raises(ValueError, match=r"sgd_step: " + match):
            cn.ops.sgd_step(p, g, v, 0.1, **kwargs)
    assert np.array_equal(p, np.zeros(3))


# ---------------------------------------------------------------- in a model

def model_with(optimizer, seed=0):
    cn.seed(seed)
    x = L.Input((5,))
    h = L.Dense(6, activation="tanh", name="h")(x)
    model = cn.Model(x, L.Dense(3, name="o")(h), dtype="float64")
    model.compile(optimizer=optimizer, loss="softmax_cross_entropy")
    return model


def data(seed=2):
    rng = np.random.default_rng(seed)
    return 3 * rng.standard_normal((16, 5)), rng.integers(0, 3, 16)


@pytest.mark.parametrize("clip", sorted(CLIPS))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_clipped_steps_equal_unclipped_steps_on_numpy_clipped_gradients(name, clip):
    clipped = model_with(OPTIMIZERS[name](**CLIPS[clip]))
    plain = model_with(OPTIMIZERS[name]())
    x, y = data()
    for _ in range(3):  # optimizer state carried across steps
        _, grads = plain.compute_gradients(x, y)
        clipped_grads = ref.clip_gradients(grads, **CLIPS[clip])
        plain.apply_gradients(clipped_grads)
        clipped.train_on_batch(x, y)
    for a, b in zip(clipped.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, **tolerance(np.float64))


def test_clipping_changes_the_step_only_when_the_gradient_is_large():
    x, y = data()
    _, grads = model_with(O.SGD(0.1)).compute_gradients(x, y)
    norms = [np.linalg.norm(g) for g in grads]
    assert max(norms) > 0.5 > 0.0 < min(norms)  # the clip above bites on some tensors
    big = model_with(O.SGD(0.1, global_clipnorm=1e6))  # never reached: the plain step
    plain = model_with(O.SGD(0.1))
    big.train_on_batch(x, y)
    plain.train_on_batch(x, y)
    for a, b in zip(big.get_weights(), plain.get_weights()):
        assert np.array_equal(a, b)


def test_apply_gradients_clips_too():
    model = model_with(O.SGD(1.0, clipvalue=0.01))
    before = model.get_weights()
    grads = [np.full(w.shape, 5.0) for w in model.trainable_weights]
    model.apply_gradients(grads)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_allclose(b - a, 0.01, **CLOSED_FORM[np.dtype(np.float64)])


def test_frozen_layers_are_left_out_of_the_global_norm():
    x, y = data()
    model = model_with(O.SGD(1.0, global_clipnorm=0.5))
    model.get_layer("h").trainable = False
    frozen = [w.copy() for w in model.get_layer("h").get_weights()]
    _, grads = model.compute_gradients(x, y)  # the trainable weights' (layer o only)
    before = model.get_layer("o").get_weights()
    model.train_on_batch(x, y)
    want = ref.clip_gradients(grads, global_clipnorm=0.5)
    for a, b, g in zip(model.get_layer("o").get_weights(), before, want):
        np.testing.assert_allclose(b - a, g, **tolerance(np.float64))
    for a, b in zip(model.get_layer("h").get_weights(), frozen):
        assert np.array_equal(a, b)


def sgd_update(model, x, y):
    before = model.get_weights()
    model.train_on_batch(x, y)
    return [b - a for a, b in zip(model.get_weights(), before)]  # lr = 1: the gradient used


def test_global_clipnorm_and_clipvalue_equal_pytorch():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    x, y = data()
    _, grads = model_with(O.SGD(1.0)).compute_gradients(x, y)
    for max_norm in (0.5, 2.0):
        tensors = [torch.tensor(g) for g in grads]
        for t in tensors:
            t.grad = t.clone()
        torch.nn.utils.clip_grad_norm_(tensors, max_norm)
        got = sgd_update(model_with(O.SGD(1.0, global_clipnorm=max_norm)), x, y)
        for a, t in zip(got, tensors):
            np.testing.assert_allclose(a, t.grad.numpy(), **TORCH_CLIP_GRAD_NORM)
    tensors = [torch.tensor(g) for g in grads]
    for t in tensors:
        t.grad = t.clone()
    torch.nn.utils.clip_grad_value_(tensors, 0.02)
    got = sgd_update(model_with(O.SGD(1.0, clipvalue=0.02)), x, y)
    for a, t in zip(got, tensors):
        np.testing.assert_allclose(a, t.grad.numpy(), **tolerance(np.float64))
    # clipnorm is clip_grad_norm_ applied to each tensor alone.
    got = sgd_update(model_with(O.SGD(1.0, clipnorm=0.3)), x, y)
    for a, g in zip(got, grads):
        t = torch.tensor(g)
        t.grad = t.clone()
        torch.nn.utils.clip_grad_norm_([t], 0.3)
        np.testing.assert_allclose(a, t.grad.numpy(), **TORCH_CLIP_GRAD_NORM)


# ---------------------------------------------------------------- config, files, errors

def test_clip_settings_are_saved_with_the_optimizer(tmp_path):
    model = model_with(O.Adam(0.01, clipnorm=0.5, clipvalue=0.1))
    x, y = data()
    model.train_on_batch(x, y)
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn")
    assert (loaded.optimizer.clipnorm, loaded.optimizer.clipvalue, loaded.optimizer.global_clipnorm) == \
        (0.5, 0.1, None)
    loaded.train_on_batch(x, y)
    model.train_on_batch(x, y)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert np.array_equal(a, b)
    config = O.SGD(0.1, global_clipnorm=2.0).get_config()
    assert config["global_clipnorm"] == 2.0 and "clipnorm" not in config


def test_the_engines_clip_settings_rebuild_the_python_optimizer():
    from corenn import saving

    settings = {"kind": "rmsprop", "rmsprop": {"lr": 0.1, "alpha": 0.9, "eps": 1e-7, "weight_decay": 0.0},
                "clip": {"clipnorm": 0.0, "clipvalue": 0.25, "global_clipnorm": 3.0}}
    optimizer = saving._optimizer_from_engine(settings)
    assert (optimizer.clipnorm, optimizer.clipvalue, optimizer.global_clipnorm) == (None, 0.25, 3.0)
    del settings["clip"]  # a file from before clipping
    assert saving._optimizer_from_engine(settings).clipvalue is None


@pytest.mark.parametrize("cls", [O.SGD, O.RMSprop, O.Adam, O.AdamW])
def test_bad_clip_values_raise(cls):
    for name in ("clipnorm", "clipvalue", "global_clipnorm"):
        for bad in (-1.0, 0.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match=rf"{cls.__name__}: {name} must be finite and in \(0.0, inf\)"):
                cls(**{name: bad})
        with pytest.raises(TypeError, match=rf"{name} must be a number"):
            cls(**{name: "1"})
    with pytest.raises(ValueError, match=rf"{cls.__name__}: only one of clipnorm and global_clipnorm"):
        cls(clipnorm=1.0, global_clipnorm=1.0)


def test_the_engine_validates_clip_settings_too():
    model = cn.Sequential([L.Input((2,)), L.Dense(1)])
    model.build()
    for config, match in (({"clipnorm": -1.0}, "clipnorm must be finite and > 0"),
                          ({"clipvalue": float("nan")}, "clipvalue must be finite and > 0"),
                          ({"clipnorm": 1.0, "global_clipnorm": 2.0}, "only one of clipnorm and global_clipnorm")):
        with pytest.raises(ValueError, match="compile: " + match):
            model._engine.compile(["mse"], None, {"kind": "sgd", "lr": 0.1, **config})
