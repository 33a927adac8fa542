"""An adversarial sweep of the public API: every kernel in cn.ops, every layer
kind the engine's registry knows, the losses, metrics, optimizers and model
files get bad input (empty and 0-batch arrays, NaN/inf, wrong ndim, int,
complex, object and bool arrays, strided, read-only and Fortran-order arrays,
out-of-range indices, negative, zero, huge and mistyped hyper-parameters).

The rule checked: bad input gets a ValueError/TypeError/OSError whose message
names the callee, or (where the input is legitimate, e.g. NaN through a
forward pass or a Fortran-order copy) a result; never a crash, a hang, or
another exception. The cases run in child processes (one per group, with
faulthandler), so a segfault or an abort fails the test with the case that
caused it instead of killing pytest.

The cases are built from the registries: cn.ops.__all__ (each kernel has one
valid call in SEEDS, which a new kernel must join, and the mutations are
derived from it), _core.layer_kinds(), the loss/metric/optimizer names."""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

ALLOWED = (ValueError, TypeError, OSError)
HUGE = 2**62


# --- one valid call per kernel -------------------------------------------------------
# Each seed returns the keyword arguments of a call that succeeds. Arrays are
# small but not degenerate (no axis of size 1 where the op has a meaning for it),
# so a wrong ndim or a mismatched batch is a real mistake.

def _f(rng, *shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


def _recurrent(rng, kind):
    from corenn import ops
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    x, W_ih, W_hh, b = _f(rng, 2, 3, 4), _f(rng, gates * 5, 4), _f(rng, gates * 5, 5), _f(rng, gates * 5)
    h0 = _f(rng, 2, 5)
    fwd = dict(x=x, W_ih=W_ih, W_hh=W_hh, b=b, h0=h0)
    if kind == "gru":
        fwd["recurrent_bias"] = _f(rng, 15)
    if kind == "lstm":
        fwd["c0"] = _f(rng, 2, 5)
    out = getattr(ops, f"{kind}_forward")(**fwd)
    bwd = dict(fwd, dy=_f(rng, 2, 3, 5), dh_T=_f(rng, 2, 5), cache=out[-1])
    if kind == "lstm":
        bwd["dc_T"] = _f(rng, 2, 5)
    return fwd, bwd


def _seeds():
    from corenn import ops
    S = {}
    S["activation_forward"] = lambda r: dict(x=_f(r, 3, 4), kind="leaky_relu", alpha=0.1)
    S["activation_backward"] = lambda r: dict(dy=_f(r, 3, 4), x=_f(r, 3, 4), y=_f(r, 3, 4), kind="tanh")
    S["dense_forward"] = lambda r: dict(x=_f(r, 3, 4), W=_f(r, 5, 4), b=_f(r, 5))
    S["dense_backward"] = lambda r: dict(dy=_f(r, 3, 5), x=_f(r, 3, 4), W=_f(r, 5, 4))
    S["conv2d_forward"] = lambda r: dict(x=_f(r, 2, 4, 7, 6), W=_f(r, 6, 2, 3, 3), b=_f(r, 6), stride=1,
                                         padding=1, dilation=1, groups=2)
    S["conv2d_backward"] = lambda r: dict(dy=_f(r, 2, 6, 7, 6), x=_f(r, 2, 4, 7, 6), W=_f(r, 6, 2, 3, 3),
                                          stride=1, padding=1, dilation=1, groups=2)
    S["conv_transpose2d_forward"] = lambda r: dict(x=_f(r, 2, 3, 5, 4), W=_f(r, 3, 4, 3, 3), b=_f(r, 4),
                                                   stride=2, padding=1, output_padding=1)
    S["conv_transpose2d_backward"] = lambda r: dict(dy=_f(r, 2, 4, 10, 8), x=_f(r, 2, 3, 5, 4),
                                                    W=_f(r, 3, 4, 3, 3), stride=2, padding=1, output_padding=1)
    S["max_pool2d_forward"] = lambda r: dict(x=_f(r, 2, 3, 6, 5), kernel_size=2, stride=2, padding=0)

    def max_pool_backward(r):
        x = _f(r, 2, 3, 6, 5)
        y, argmax = ops.max_pool2d_forward(x, 2)
        return dict(dy=_f(r, *y.shape), argmax=argmax, x_shape=x.shape)
    S["max_pool2d_backward"] = max_pool_backward
    S["avg_pool2d_forward"] = lambda r: dict(x=_f(r, 2, 3, 6, 5), kernel_size=2, stride=2, padding=1)
    S["avg_pool2d_backward"] = lambda r: dict(dy=_f(r, 2, 3, 4, 3), x_shape=(2, 3, 6, 5), kernel_size=2,
                                              stride=2, padding=1)
    S["global_avg_pool2d_forward"] = lambda r: dict(x=_f(r, 2, 3, 6, 5))
    S["global_avg_pool2d_backward"] = lambda r: dict(dy=_f(r, 2, 3), x_shape=(2, 3, 6, 5))
    S["zero_pad2d_forward"] = lambda r: dict(x=_f(r, 2, 3, 6, 5), padding=(1, 2))
    S["zero_pad2d_backward"] = lambda r: dict(dy=_f(r, 2, 3, 8, 9), x_shape=(2, 3, 6, 5), padding=(1, 2))
    S["upsample2d_forward"] = lambda r: dict(x=_f(r, 2, 3, 4, 5), size=2, interpolation="bilinear")
    S["upsample2d_backward"] = lambda r: dict(dy=_f(r, 2, 3, 8, 10), x_shape=(2, 3, 4, 5), size=2,
                                              interpolation="bilinear")
    S["batch_norm_forward"] = lambda r: dict(x=_f(r, 4, 3, 2, 2), gamma=_f(r, 3), beta=_f(r, 3),
                                             running_mean=np.zeros(3), running_var=np.ones(3), training=True)

    def batch_norm_backward(r):
        x = _f(r, 4, 3, 2, 2)
        out = ops.batch_norm_forward(x, np.ones(3), np.zeros(3), None, None, True)
        return dict(dy=_f(r, 4, 3, 2, 2), x=x, gamma=np.ones(3), save_mean=out[1], save_invstd=out[2])
    S["batch_norm_backward"] = batch_norm_backward
    S["layer_norm_forward"] = lambda r: dict(x=_f(r, 3, 4), gamma=_f(r, 4), beta=_f(r, 4), eps=1e-3)

    def layer_norm_backward(r):
        x = _f(r, 3, 4)
        _, mean, invstd = ops.layer_norm_forward(x, np.ones(4), np.zeros(4))
        return dict(dy=_f(r, 3, 4), x=x, gamma=np.ones(4), mean=mean, invstd=invstd)
    S["layer_norm_backward"] = layer_norm_backward
    S["normalize_forward"] = lambda r: dict(x=_f(r, 3, 4), mean=_f(r, 4), variance=np.ones(4))
    S["normalize_backward"] = lambda r: dict(dy=_f(r, 3, 4), variance=np.ones(4))
    S["unit_norm_forward"] = lambda r: dict(x=_f(r, 3, 4), axis=-1)
    S["unit_norm_backward"] = lambda r: dict(dy=_f(r, 3, 4), x=_f(r, 3, 4), axis=-1)
    S["dropout_forward"] = lambda r: dict(x=_f(r, 3, 4), rate=0.3, seed=7)

    def dropout_backward(r):
        _, mask = ops.dropout_forward(_f(r, 3, 4), 0.3, 7)
        return dict(dy=_f(r, 3, 4), mask=mask, rate=0.3)
    S["dropout_backward"] = dropout_backward
    S["embedding_forward"] = lambda r: dict(ids=np.array([[1, 0, 8], [2, 2, 3]]), weights=_f(r, 9, 4))
    S["embedding_backward"] = lambda r: dict(dy=_f(r, 2, 3, 4), ids=np.array([[1, 0, 8], [2, 2, 3]]),
                                             input_dim=9)
    S["initialize"] = lambda r: dict(shape=(3, 4), kind="glorot_uniform", fan_in=4, fan_out=3, key=3)
    S["softmax_cross_entropy"] = lambda r: dict(logits=_f(r, 3, 4), labels=np.array([0, 3, 1]))
    S["sigmoid_cross_entropy"] = lambda r: dict(logits=_f(r, 3, 4), targets=r.random((3, 4)))
    S["mse"] = lambda r: dict(pred=_f(r, 3, 4), target=_f(r, 3, 4), sample_weight=np.ones(3))
    S["weight_penalty"] = lambda r: dict(w=_f(r, 3, 4), l1=0.1, l2=0.2)
    S["masked_mse"] = lambda r: dict(y_true=_f(r, 3, 4), y_pred=_f(r, 3, 4))
    S["triplet_loss"] = lambda r: dict(emb=_f(r, 5, 3, 4), margin=0.2)
    S["contrastive_loss"] = lambda r: dict(e1=_f(r, 3, 4), e2=_f(r, 3, 4), same=np.array([1.0, 0.0, 1.0]))
    S["sgd_step"] = lambda r: dict(param=_f(r, 3, 4), grad=_f(r, 3, 4), velocity=np.zeros((3, 4)), lr=0.1,
                                   momentum=0.9)
    S["rmsprop_step"] = lambda r: dict(param=_f(r, 3, 4), grad=_f(r, 3, 4), square_avg=np.zeros((3, 4)), lr=0.1)
    S["adam_step"] = lambda r: dict(param=_f(r, 3, 4), grad=_f(r, 3, 4), m=np.zeros((3, 4)), v=np.zeros((3, 4)),
                                    step=1, lr=0.1)
    S["attention_forward"] = lambda r: dict(q=_f(r, 2, 3, 4), k=_f(r, 2, 5, 4), v=_f(r, 2, 5, 6),
                                            mask=np.ones((2, 3, 5), bool))

    def attention_backward(r):
        q, k, v = _f(r, 2, 3, 4), _f(r, 2, 5, 4), _f(r, 2, 5, 6)
        _, p = ops.attention_forward(q, k, v)[:2]
        return dict(dout=_f(r, 2, 3, 6), q=q, k=k, v=v, p=p)
    S["attention_backward"] = attention_backward
    S["attention_weights_forward"] = lambda r: dict(scores=_f(r, 2, 3, 5), v=_f(r, 2, 5, 6))

    def attention_weights_backward(r):
        v = _f(r, 2, 5, 6)
        p = ops.attention_weights_forward(_f(r, 2, 3, 5), v)[1]
        return dict(dout=_f(r, 2, 3, 6), v=v, p=p)
    S["attention_weights_backward"] = attention_weights_backward
    S["additive_scores_forward"] = lambda r: dict(qp=_f(r, 2, 3, 4), kp=_f(r, 2, 5, 4), w=_f(r, 4))
    S["additive_scores_backward"] = lambda r: dict(dscores=_f(r, 2, 3, 5), qp=_f(r, 2, 3, 4), kp=_f(r, 2, 5, 4),
                                                   w=_f(r, 4))
    S["batched_matmul_forward"] = lambda r: dict(a=_f(r, 2, 3, 4), b=_f(r, 2, 4, 5))
    S["batched_matmul_backward"] = lambda r: dict(dc=_f(r, 2, 3, 5), a=_f(r, 2, 3, 4), b=_f(r, 2, 4, 5))
    S["random_flip_forward"] = lambda r: dict(x=_f(r, 2, 3, 4, 5), mode="horizontal_and_vertical", seed=3)

    def random_flip_backward(r):
        _, flips = ops.random_flip_forward(_f(r, 2, 3, 4, 5), "horizontal_and_vertical", 3)
        return dict(dy=_f(r, 2, 3, 4, 5), flips=flips)
    S["random_flip_backward"] = random_flip_backward
    S["random_crop_forward"] = lambda r: dict(x=_f(r, 2, 3, 4, 5), padding=1, seed=3)

    def random_crop_backward(r):
        _, offsets = ops.random_crop_forward(_f(r, 2, 3, 4, 5), 1, 3)
        return dict(dy=_f(r, 2, 3, 4, 5), offsets=offsets, padding=1)
    S["random_crop_backward"] = random_crop_backward
    S["color_shift_forward"] = lambda r: dict(x=_f(r, 2, 3, 4, 5), delta=0.3, seed=5)
    for kind in ("simple_rnn", "lstm", "gru"):
        S[f"{kind}_forward"] = lambda r, kind=kind: _recurrent(r, kind)[0]
        S[f"{kind}_backward"] = lambda r, kind=kind: _recurrent(r, kind)[1]
    S["gram_matrix"] = lambda r: dict(a=_f(r, 2, 3, 4, 5))
    S["gram_matrix_backward"] = lambda r: dict(dg=_f(r, 2, 3, 3), a=_f(r, 2, 3, 4, 5))
    S["content_cost"] = lambda r: dict(a_C=_f(r, 2, 3, 4, 5), a_G=_f(r, 2, 3, 4, 5))
    S["style_cost"] = lambda r: dict(a_S=_f(r, 2, 3, 4, 5), a_G=_f(r, 2, 3, 4, 5))
    S["total_variation"] = lambda r: dict(img=_f(r, 2, 3, 4, 5))
    boxes = lambda r: np.concatenate([r.random((6, 2)), 1 + r.random((6, 2))], axis=1)  # noqa: E731
    S["box_iou"] = lambda r: dict(a=boxes(r), b=boxes(r)[:4])
    S["nms"] = lambda r: dict(boxes=boxes(r), scores=r.random(6), iou_threshold=0.5)
    S["yolo_loss"] = lambda r: dict(y_true=np.zeros((2, 2 * 7, 3, 3)), y_pred=_f(r, 2, 2 * 7, 3, 3),
                                    anchors=np.array([[8.0, 8.0], [16.0, 12.0]]), image_size=(48, 48))
    S["localization_loss"] = lambda r: dict(y_true=np.round(r.random((3, 8))), y_pred=_f(r, 3, 8))
    return S


# --- mutations of a seed -------------------------------------------------------------
# Each yields (label, kwargs, must_raise). must_raise: the input is wrong for
# every op (complex, object, str arrays, a str for a number, a huge
# hyper-parameter); otherwise a result is fine too, an error must be clear.

def _array_mutations(name, a):
    f = a.dtype.kind == "f"
    yield f"{name}=empty", np.zeros((0,) * a.ndim, a.dtype), False
    yield f"{name}=0-batch", np.zeros((0, *a.shape[1:]), a.dtype), False
    yield f"{name}=ndim+1", a[None], False
    if a.ndim > 1:
        yield f"{name}=ndim-1", a[0], False
    yield f"{name}=scalar", np.asarray(a.ravel()[0] if a.size else 0, a.dtype), False
    yield f"{name}=batch+1", np.concatenate([a, a[:1]]) if a.ndim else a, False
    if f:
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b.flat[0] = bad
            yield f"{name}={bad}", b, False
        yield f"{name}=float32", a.astype(np.float32), False
        yield f"{name}=float16", a.astype(np.float16), False
        yield f"{name}=int64", a.astype(np.int64), False
    elif a.dtype.kind in "iu":  # indices, offsets, masks: values out of every range
        info = np.iinfo(a.dtype)
        for v in (-1, 2, 2**31, -2**62, 2**62):
            b = a.copy()
            if b.size:
                b.flat[b.size // 2] = min(max(v, info.min), info.max)
            yield f"{name}[mid]={v}", b, False
    if not f:
        yield f"{name}=float64", a.astype(np.float64), False
        yield f"{name}=int32", a.astype(np.int32), False
    yield f"{name}=complex", a.astype(np.complex128), True
    yield f"{name}=object", a.astype(object), False
    yield f"{name}=bool", a.astype(bool), False
    yield f"{name}=str", a.astype(str), True
    yield f"{name}=list", a.tolist(), False
    yield f"{name}=fortran", np.asfortranarray(a), False
    strided = np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a
    yield f"{name}=strided", strided, False
    ro = a.copy()
    ro.flags.writeable = False
    yield f"{name}=readonly", ro, False
    yield f"{name}=None", None, False


def _scalar_mutations(name, v):
    number = isinstance(v, (int, float)) and not isinstance(v, bool)
    for bad in (0, -1, -2**31, HUGE, 2**70, 0.5, -0.5, float("nan"), float("inf"), "1", None, True, [1, 2, 3],
                (1, 2, 3, 4, 5)):
        # a str for a number, or an int past int64 for an int, is wrong everywhere
        must = number and (isinstance(bad, str) or (isinstance(v, int) and bad == 2**70))
        yield f"{name}={bad!r}", bad, must


def _mutations(kwargs):
    for name, value in kwargs.items():
        if isinstance(value, np.ndarray):
            for label, bad, must in _array_mutations(name, value):
                yield label, {**kwargs, name: bad}, must
        elif isinstance(value, (bool, int, float, tuple, str)):
            for label, bad, must in _scalar_mutations(name, value):
                yield label, {**kwargs, name: bad}, must
            if isinstance(value, tuple):
                yield f"{name}=huge", {**kwargs, name: tuple(HUGE for _ in value)}, False
                yield f"{name}=negative", {**kwargs, name: tuple(-d for d in value)}, False
    arrays = [k for k, v in kwargs.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    if len(arrays) > 1:  # the second float input in the other float dtype
        other = {np.dtype(np.float32): np.float64, np.dtype(np.float64): np.float32}[kwargs[arrays[1]].dtype]
        yield f"{arrays[1]}=mixed dtype", {**kwargs, arrays[1]: kwargs[arrays[1]].astype(other)}, True
    yield "unknown keyword", {**kwargs, "bogus": 1}, True


# --- the cases, grouped per child process --------------------------------------------

def _op_cases(names):
    from corenn import ops
    seeds = _seeds()
    for name in names:
        op = getattr(ops, name)
        base = seeds[name](np.random.default_rng(0))
        owners = (name, name.replace("_forward", "").replace("_backward", ""))
        yield f"{name}(seed)", lambda op=op, base=base: op(**base), False, owners
        for label, kwargs, must in _mutations(base):
            yield f"{name}({label})", lambda op=op, kwargs=kwargs: op(**kwargs), must, owners


def _op_names():
    from corenn import ops
    return sorted(ops.__all__)


# Layer kinds: each kind from the engine's registry, configured from its
# registered defaults, on the first input shape it builds and predicts on.
_LAYER_OVERRIDES = {"units": 2, "filters": 2, "target_shape": [2, -1], "rate": 0.5, "delta": 0.5,
                    "pads": [1, 1, 1, 1], "input_dim": 5, "output_dim": 2, "num_heads": 2, "key_dim": 2,
                    "n": 2, "layer": {"kind": "lstm", "name": "inner", "units": 2}}
_INPUT_SHAPES = [(4,), (3, 4), (2, 6, 6)]
_WRAPPED = {"time_distributed": {"kind": "dense", "name": "inner", "units": 2}}


def _layer_model(kind, config, shape, inputs):
    """A model of one layer; several inputs go in as a list (merge layers) or
    as arguments (attention)."""
    import corenn as cn
    layer = cn.layers.layer_class(kind).from_config({"kind": kind, "name": "probe", **config})
    xs = [cn.layers.Input(shape) for _ in range(abs(inputs))]
    if inputs == 1:
        y = layer(xs[0])
    else:
        y = layer(xs) if inputs > 0 else layer(*xs)
    return cn.Model(xs if len(xs) > 1 else xs[0], y)


def _x(shape, inputs):
    x = np.floor(np.random.default_rng(0).random((2, *shape)) * 4)  # whole numbers: ids for embedding
    return [x] * abs(inputs) if abs(inputs) > 1 else x


def _working_layer(kind):
    """(config, input shape, number of inputs) of a model of `kind` that predicts."""
    from corenn import _core
    defaults = _core.layer_kinds()[kind]
    config = {k: _LAYER_OVERRIDES.get(k, v) for k, v in defaults.items()}
    if kind in _WRAPPED:
        config["layer"] = _WRAPPED[kind]
    for inputs in (1, 2, -2):
        for shape in _INPUT_SHAPES:
            try:
                _layer_model(kind, config, shape, inputs).predict(_x(shape, inputs), verbose=0)
            except Exception:  # noqa: BLE001 - trying shapes until one fits
                continue
            return config, shape, inputs
    raise AssertionError(f"no input shape builds a {kind} layer")


def _attribute_mutations(value):
    if isinstance(value, bool):
        return [0, "yes", None]
    if isinstance(value, (int, float)):
        return [0, -1, HUGE, 2**70, float("nan"), float("inf"), -0.5, "1", None, [1]]
    if isinstance(value, str):
        return ["", "no such", 3, None]
    if isinstance(value, list):
        n = max(len(value), 1)
        return [[], [0] * n, [-1] * n, [HUGE] * n, [0.5] * n, ["a"] * n, [1] * (n + 3), 7]
    return ["x", 3, {"kind": "no such"}]


def _layer_owners(kind):
    """What may name a layer in an error: its kind, its class, its name, or
    the regularizer its l1/l2 configure."""
    import corenn as cn
    # "__init__() missing 1 required positional argument": Python's own words for
    # a config without a required value (naming the class that declares it).
    return (kind, cn.layers.layer_class(kind).__name__, "'probe'", "L1L2", "__init__() missing")


def _layer_cases(kinds):
    for kind in kinds:
        config, shape, inputs = _working_layer(kind)
        owners = _layer_owners(kind)

        def build(config=config, kind=kind, shape=shape, inputs=inputs):
            _layer_model(kind, config, shape, inputs).predict(_x(shape, inputs), verbose=0)
        yield f"{kind}(seed)", build, False, owners
        for key, value in config.items():
            for bad in _attribute_mutations(value):
                yield f"{kind}({key}={bad!r})", lambda c={**config, key: bad}, b=build: b(c), False, owners


def _input_cases(kinds):
    """A working single-layer model fed bad arrays by predict, fit, evaluate and train_on_batch."""
    import corenn as cn
    for kind in kinds:
        config, shape, inputs = _working_layer(kind)
        x = _x(shape, 1)
        owners = _layer_owners(kind)

        def model_for(kind=kind, config=config, shape=shape, inputs=inputs):
            return _layer_model(kind, config, shape, inputs)

        def call(method, xb, yb=None, compiled=True, model_for=model_for, inputs=inputs):
            model = model_for()
            if compiled:
                model.compile(optimizer="sgd", loss="mse")
            xs = [xb] * abs(inputs) if abs(inputs) > 1 else xb
            if method == "predict":
                return model.predict(xs, verbose=0)
            y = model.predict(_x(x.shape[1:], inputs), verbose=0) if yb is None else yb
            if isinstance(y, list):
                y = y[0]
            return getattr(model, method)(xs, y, **({"verbose": 0} if method != "train_on_batch" else {}))
        for label, bad, _ in _array_mutations("x", x):
            yield f"{kind}.predict({label})", lambda bad=bad, c=call: c("predict", bad), False, ("predict", *owners)
        for method in ("fit", "evaluate", "train_on_batch"):
            for label, bad, _ in _array_mutations("x", x):
                if "nan" in label or "inf" in label or "batch" in label or "ndim" in label or label.endswith(
                        ("=empty", "=complex", "=str", "=None")):
                    yield f"{kind}.{method}({label})", lambda bad=bad, c=call, m=method: c(m, bad), False, (method, *owners)
            yield f"{kind}.{method}(y batch+1)", lambda c=call, m=method: c(
                m, x, np.zeros((3, 1))), False, (method, *owners)
            yield f"{kind}.{method}(not compiled)", lambda c=call, m=method: c(
                m, x, compiled=False), False, (method, *owners)


def _layer_kinds():
    from corenn import _core
    return sorted(_core.layer_kinds())


# Training objects: each optimizer, loss and metric name, and each callback,
# with one argument at a time made bad, used by compile/fit on a small model.

def _tiny_model():
    import corenn as cn
    cn.seed(0)
    model = cn.Sequential([cn.layers.Input((4,)), cn.layers.Dense(3)])
    return model, np.random.default_rng(0).random((6, 4)), np.array([0, 1, 2, 0, 1, 2])


def _fit(optimizer="sgd", loss="softmax_cross_entropy", metrics=None, callbacks=None, **fit):
    model, x, y = _tiny_model()
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    model.fit(x, y, epochs=2, batch_size=3, verbose=0, callbacks=callbacks, **fit)


def _argument_mutations(value):
    if isinstance(value, bool):
        return [0, "yes"]
    if isinstance(value, (int, float)):
        return [0, -1, HUGE, float("nan"), float("inf"), "1", [1]]
    if isinstance(value, str):
        return ["", "no such", 3]
    if value is None:
        return [-1, 0, float("nan"), "x"]
    return []


def _constructor_cases(owner, cls, required, use, also=()):
    """cls(**required) used by use(obj), then with each argument made bad;
    errors name the class (or one of `also`, the callee it drives)."""
    import inspect
    params = {n: p.default for n, p in inspect.signature(cls).parameters.items()
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
    params = {n: required.get(n, d) for n, d in params.items()}
    owners = (owner, cls.__name__, *also)
    yield f"{owner}(seed)", lambda: use(cls(**required)), False, owners
    for name, value in params.items():
        for bad in _argument_mutations(value):
            args = {**required, name: bad}
            yield f"{owner}({name}={bad!r})", lambda args=args: use(cls(**args)), False, owners


def _training_cases():
    import corenn as cn
    from corenn import callbacks, optimizers
    for name, cls in sorted(optimizers._BY_NAME.items()):
        yield from _constructor_cases(name, cls, {}, lambda opt: _fit(optimizer=opt))
    for name in ("adam", "ADAM", "adm", "", None, 3):
        yield f"compile(optimizer={name!r})", lambda name=name: _fit(optimizer=name), False, ("compile", "optimizer")
    for name in ("mse", "softmax_cross_entropy", "sigmoid_cross_entropy", "no such", "", None, 3):
        yield f"compile(loss={name!r})", lambda name=name: _fit(loss=name), False, ("compile", "loss", "fit")
    for name in ("accuracy", "mae", "no such", "", 3, ["accuracy", None]):
        yield f"compile(metrics={name!r})", lambda name=name: _fit(metrics=name if isinstance(name, list) else [name]), \
            False, ("compile", "metric", "fit", str(name))
    required = {"LearningRateScheduler": {"schedule": lambda epoch, lr: lr},
                "ModelCheckpoint": {"filepath": os.devnull}, "CSVLogger": {"filename": os.devnull}}
    for name in sorted(callbacks.__all__):
        cls = getattr(callbacks, name)
        if name in ("Callback", "History"):
            continue
        yield from _constructor_cases(name, cls, required.get(name, {}),
                                      lambda cb: _fit(callbacks=[cb], validation_split=0.5), ("save",))
    for key, bad in (("epochs", -1), ("epochs", "2"), ("batch_size", 0), ("batch_size", -3), ("batch_size", HUGE),
                     ("validation_split", 1.5), ("validation_split", float("nan")), ("shuffle", "yes"),
                     ("callbacks", 3), ("callbacks", [3]), ("sample_weight", np.ones(5)),
                     ("sample_weight", np.full(6, np.nan)), ("class_weight", {0: -1.0}),
                     ("validation_data", (np.zeros((2, 4)),)), ("validation_data", (np.zeros((2, 5)), np.zeros(2)))):
        yield f"fit({key}={bad!r})", lambda key=key, bad=bad: _fit(**{key: bad}), False, ("fit", key)


# Model files: a directory or an unreachable path, files of another model;
# a failed save must leave the old file, a failed load_weights the old weights.

def _file_cases():
    import corenn as cn
    tmp = tempfile.mkdtemp(dir=os.getcwd())  # inside the child's scratch directory
    model, x, _ = _tiny_model()
    model.compile(optimizer="adam", loss="softmax_cross_entropy")
    good = os.path.join(tmp, "good.corenn")
    model.save(good)
    other = cn.Sequential([cn.layers.Input((4,)), cn.layers.Dense(3), cn.layers.Dense(2)])
    other_path = os.path.join(tmp, "other.corenn")
    other.save(other_path)
    wider = cn.Sequential([cn.layers.Input((4,)), cn.layers.Dense(5)])
    wider_path = os.path.join(tmp, "wider.corenn")
    wider.save(wider_path)
    owners = ("save", "load", "corenn", tmp)

    def unchanged_weights_after(fn):
        before = [w.copy() for w in model.get_weights()]
        try:
            fn()
        finally:
            after = model.get_weights()
            if any(not np.array_equal(a, b) for a, b in zip(before, after)):
                raise AssertionError("the model's weights changed on a failed load")

    def save_keeps_old_file(path):
        before = open(good, "rb").read()
        try:
            model.save(path)
        finally:
            if open(good, "rb").read() != before:
                raise AssertionError(f"{good} changed")

    yield "save(directory)", lambda: model.save(tmp), False, owners
    yield "save(missing directory)", lambda: model.save(os.path.join(tmp, "no", "m.corenn")), False, owners
    yield "save(path=3)", lambda: model.save(3), False, owners
    yield "save(path=None)", lambda: model.save(None), False, owners
    yield "save(over a good file, into its directory)", lambda: save_keeps_old_file(good + "/x"), False, owners
    yield "load_model(directory)", lambda: cn.load_model(tmp), False, owners
    yield "load_model(missing)", lambda: cn.load_model(os.path.join(tmp, "none")), False, owners
    yield "load_model(empty file)", lambda: (open(os.path.join(tmp, "e"), "wb").close(),
                                             cn.load_model(os.path.join(tmp, "e"))), False, owners
    yield "load_model(/dev/null)", lambda: cn.load_model(os.devnull), False, owners
    yield "load_model(path=3)", lambda: cn.load_model(3), False, owners
    for name, path in (("another architecture", other_path), ("wider weights", wider_path),
                       ("directory", tmp), ("missing", os.path.join(tmp, "none"))):
        yield f"load_weights({name})", lambda path=path: unchanged_weights_after(
            lambda: model.load_weights(path)), False, owners
    raw = open(good, "rb").read()
    for cut in sorted({1, 7, 8, 9, len(raw) // 2, len(raw) - 1}):
        path = os.path.join(tmp, f"cut{cut}")
        open(path, "wb").write(raw[:cut])
        yield f"load_weights(truncated at {cut})", lambda path=path: unchanged_weights_after(
            lambda: model.load_weights(path)), False, owners


# The Python-only helpers (cn.detection, cn.style, cn.decoding, cn.metrics,
# cn.faces, cn.text, cn.data, cn.tuning, cn.diagnostics, cn.interop, cn.losses,
# cn.gradient_check, cn.initializers, cn.regularizers): every public function
# and class has one valid call in API_SEEDS (a new one must join, see
# test_every_helper_has_a_seed), and each of its arguments in turn gets bad
# values derived from the seed's: the wrong type (str, None, complex), NaN,
# inf, negative, zero, huge and non-integer numbers, bad enum strings, and for
# arrays empty, NaN/inf, complex, str, object, bool and ragged ones and one
# axis more or less. Calls that take arrays of examples must refuse a ragged
# list, a complex array and a missing (None) required argument outright.

_API_MODULES = ("data", "decoding", "detection", "diagnostics", "faces", "gradient_check", "initializers",
                "interop", "losses", "metrics", "regularizers", "style", "text", "tuning")
# Public names that are not called directly: constants, base classes and the
# result types the functions return (their constructors are internal).
_API_NOT_CALLED = {"text.PAD", "text.UNK", "diagnostics.ADVICE", "diagnostics.BiasVariance",
                   "diagnostics.Misclassified", "tuning.Distribution", "tuning.SearchResults",
                   "initializers.Initializer", "regularizers.Regularizer", "losses.NAMES", "initializers.NAMES"}


def _api_public(module_name):
    """The public names of corenn.<module_name>: its __all__, or the functions
    and classes defined there whose names do not start with "_"."""
    import importlib
    import inspect
    module = importlib.import_module(f"corenn.{module_name}")
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and (
            inspect.isfunction(v) or inspect.isclass(v)) and v.__module__ == module.__name__]
    return sorted(f"{module_name}.{n}" for n in names)


def _boxes(r, n):
    corner = r.uniform(0, 20, (n, 2))
    return np.concatenate([corner, corner + r.uniform(2, 10, (n, 2))], axis=1)


def _feature_model():
    import corenn as cn
    L = cn.layers
    cn.seed(0)
    return cn.Sequential([L.Input((3, 8, 8)), L.Conv2D(2, 3, name="c1"), L.Conv2D(2, 3, name="c2")],
                         dtype="float64")


def _classifier():
    import corenn as cn
    L = cn.layers
    cn.seed(0)
    model = cn.Sequential([L.Input((4,)), L.Dense(3)], dtype="float64")
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    return model


def _made(model):
    """A seed's model: built fresh for each call from its factory (a mutation
    replaces the factory with the bad value itself)."""
    return model() if any(model is factory for factory in (_feature_model, _classifier)) else model


def _step_fn(prefix):
    z = np.cos(np.arange(5.0) * (len(prefix) + 1))
    return z - np.log(np.exp(z).sum())


def _api_seeds():
    """"module.name" -> seed(rng) -> (call, kwargs): call(**kwargs) succeeds.
    call is the public function itself, or a use of the class (construct,
    then call its methods with the remaining arguments)."""
    import importlib
    from corenn import (data, decoding, detection, diagnostics, faces, initializers, interop, losses, metrics,
                        regularizers, style, text, tuning)
    gradient_check = importlib.import_module("corenn.gradient_check")  # cn.gradient_check is the function
    S = {}
    # detection
    S["detection.box_convert"] = lambda r: (detection.box_convert, dict(boxes=_boxes(r, 5), in_fmt="xywh",
                                                                         out_fmt="cxcywh"))
    S["detection.box_area"] = lambda r: (detection.box_area, dict(boxes=_boxes(r, 5)))
    S["detection.iou"] = lambda r: (detection.iou, dict(a=_boxes(r, 5), b=_boxes(r, 3)))
    S["detection.nms"] = lambda r: (detection.nms, dict(boxes=_boxes(r, 5), scores=r.random(5), iou_threshold=0.5,
                                                        score_threshold=0.1, max_output=3))
    S["detection.batched_nms"] = lambda r: (detection.batched_nms, dict(
        boxes=_boxes(r, 5), scores=r.random(5), classes=np.array([0, 1, 0, 1, 2]), iou_threshold=0.5,
        score_threshold=0.1, max_output=3))
    S["detection.mean_average_precision"] = lambda r: (detection.mean_average_precision, dict(
        pred_boxes=[_boxes(r, 4), _boxes(r, 3)], pred_scores=[r.random(4), r.random(3)],
        pred_classes=[np.array([0, 1, 0, 1]), np.array([1, 1, 0])], true_boxes=[_boxes(r, 2), _boxes(r, 2)],
        true_classes=[np.array([0, 1]), np.array([1, 0])], iou_threshold=0.5))
    S["detection.yolo_encode"] = lambda r: (detection.yolo_encode, dict(
        boxes=np.array([[2.0, 3.0, 12.0, 10.0], [15.0, 16.0, 30.0, 31.0]]), classes=np.array([0, 2]), grid=4,
        anchors=np.array([[8.0, 8.0], [16.0, 12.0]]), num_classes=3, image_size=32))
    S["detection.yolo_decode"] = lambda r: (detection.yolo_decode, dict(
        output=r.standard_normal((2, 16, 4, 4)), anchors=np.array([[8.0, 8.0], [16.0, 12.0]]),
        image_size=(32, 32), from_logits=True))
    S["detection.yolo_filter_boxes"] = lambda r: (detection.yolo_filter_boxes, dict(
        boxes=r.random((4, 4, 2, 4)), box_confidence=r.random((4, 4, 2, 1)),
        box_class_probs=r.random((4, 4, 2, 3)), threshold=0.3))
    # style
    S["style.gram_matrix"] = lambda r: (style.gram_matrix, dict(a=r.standard_normal((2, 3, 4, 5))))
    S["style.content_cost"] = lambda r: (style.content_cost, dict(
        a_C=r.standard_normal((2, 3, 4, 5)), a_G=r.standard_normal((2, 3, 4, 5)), return_grad=True))
    S["style.style_cost"] = lambda r: (style.style_cost, dict(
        a_S=r.standard_normal((2, 3, 4, 5)), a_G=r.standard_normal((2, 3, 4, 5)), weights=0.5, return_grad=True))
    S["style.total_variation"] = lambda r: (style.total_variation, dict(img=r.standard_normal((2, 3, 4, 5)),
                                                                        return_grad=True))

    def transfer_objective(feature_model, image, **kw):
        return style.transfer_objective(_made(feature_model), **kw)(image)
    S["style.transfer_objective"] = lambda r: (transfer_objective, dict(
        feature_model=_feature_model, image=r.random((3, 8, 8)), content=r.random((3, 8, 8)),
        style=r.random((1, 3, 8, 8)), content_layer="c2", style_layers=["c1", "c2"], style_weights=[0.5, 0.5],
        alpha=10.0, beta=40.0, tv_weight=0.1))
    S["style.transfer"] = lambda r: (lambda feature_model, **kw: style.transfer(_made(feature_model), **kw), dict(
        feature_model=_feature_model, content=r.random((3, 8, 8)), style=r.random((3, 8, 8)), content_layer="c2",
        style_layers="c1", style_weights=None, alpha=10.0, beta=40.0, steps=2, learning_rate=0.01, tv_weight=0.1,
        noise=0.1, seed=1, clip=(0.0, 1.0), callback=lambda step, image, cost: None))
    # decoding
    S["decoding.sample"] = lambda r: (decoding.sample, dict(logits=r.standard_normal((2, 5)), temperature=0.7,
                                                            seed=3))
    S["decoding.greedy"] = lambda r: (decoding.greedy, dict(step_fn=_step_fn, start=[0], max_len=4, end_id=2))
    S["decoding.beam_search"] = lambda r: (decoding.beam_search, dict(
        step_fn=_step_fn, start=[0], beam_width=2, max_len=4, end_id=2, length_penalty=0.7, return_all=True))
    # metrics
    labels = dict(y_true=np.array([0, 1, 2, 1, 0]), y_pred=np.array([0, 2, 2, 1, 1]))
    S["metrics.accuracy_score"] = lambda r: (metrics.accuracy_score, dict(labels))
    S["metrics.confusion_matrix"] = lambda r: (metrics.confusion_matrix, dict(labels, num_classes=3))
    for name in ("precision_score", "recall_score", "f1_score"):
        S[f"metrics.{name}"] = lambda r, name=name: (getattr(metrics, name), dict(
            labels, average="macro", pos_label=1, zero_division=0.0))
    S["metrics.top_k_accuracy_score"] = lambda r: (metrics.top_k_accuracy_score, dict(
        y_true=np.array([0, 1, 2, 1]), scores=r.random((4, 3)), k=2))
    S["metrics.select"] = lambda r: (metrics.select, dict(
        candidates=[{"acc": 0.9, "ms": 50.0}, {"acc": 0.95, "ms": 150.0}], optimizing="acc",
        satisficing={"ms": ("<=", 100.0)}, mode="max"))
    logits = dict(outputs=np.random.default_rng(1).standard_normal((4, 3)), y=np.array([0, 1, 2, 1]),
                  loss="softmax_cross_entropy")
    S["metrics.accuracy"] = lambda r: (metrics.accuracy, dict(logits))
    S["metrics.binary_accuracy"] = lambda r: (metrics.binary_accuracy, dict(
        outputs=r.standard_normal((4, 1)), y=np.array([[0.0], [1.0], [1.0], [0.0]]), loss="binary_cross_entropy"))
    for name in ("categorical_accuracy", "mean_absolute_error", "mean_squared_error"):
        S[f"metrics.{name}"] = lambda r, name=name: (getattr(metrics, name), dict(
            outputs=r.standard_normal((4, 3)), y=np.eye(3)[[0, 1, 2, 1]], loss=None))
    S["metrics.get"] = lambda r: (metrics.get, dict(metric="f1_macro"))
    for name in ("Precision", "Recall", "F1Score"):
        S[f"metrics.{name}"] = lambda r, name=name: (
            lambda average, name, outputs, y, loss, cls=getattr(metrics, name): cls(average, name)(outputs, y, loss),
            dict(logits, average="macro", name="m"))
    S["metrics.TopKAccuracy"] = lambda r: (lambda k, name, outputs, y, loss: metrics.TopKAccuracy(k, name)(
        outputs, y, loss), dict(logits, k=2, name="top2"))
    # faces
    S["faces.distance"] = lambda r: (faces.distance, dict(e1=r.standard_normal((3, 4)), e2=r.standard_normal((3, 4))))
    S["faces.choose_threshold"] = lambda r: (faces.choose_threshold, dict(
        distances=np.array([0.1, 0.5, 0.9, 1.2]), same=np.array([1, 1, 0, 0])))

    def embedder(model, threshold, unknown, names, x, query):
        e = faces.Embedder(model, threshold, unknown).enrol(names, x)
        return e.identify(query), e.verify(query, names)
    S["faces.Embedder"] = lambda r: (embedder, dict(model=None, threshold=0.7, unknown="?", names=["ann", "bo"],
                                                    x=r.standard_normal((2, 4)), query=r.standard_normal((2, 4))))
    # text
    S["text.tokenize"] = lambda r: (text.tokenize, dict(text="Don't panic, it's fine.", lower=True))

    def vocabulary(cls, encode, ids, **kw):
        v = cls(**kw)
        return v.encode(encode), v.decode(ids), v.token_to_id(encode)
    S["text.CharVocabulary"] = lambda r: (lambda **kw: vocabulary(text.CharVocabulary, **kw), dict(
        text="abracadabra", min_count=1, max_size=5, encode="cab", ids=np.array([2, 3, 0])))
    S["text.WordVocabulary"] = lambda r: (lambda **kw: vocabulary(text.WordVocabulary, **kw), dict(
        texts_or_tokens=["the cat sat", "the dog"], min_count=1, max_size=5, lower=True, encode="the cat",
        ids=np.array([2, 3, 0])))
    S["text.analogy"] = lambda r: (text.analogy, dict(a="a", b="b", c="c", vectors=r.standard_normal((6, 4)),
                                                      vocabulary=["a", "b", "c", "d", "e", "f"]))
    S["text.cosine_similarity"] = lambda r: (text.cosine_similarity, dict(u=r.standard_normal(4),
                                                                          v=r.standard_normal((3, 4))))
    S["text.neutralize"] = lambda r: (text.neutralize, dict(word_vector=r.standard_normal((3, 4)),
                                                            bias_axis=r.standard_normal(4)))
    S["text.equalize"] = lambda r: (text.equalize, dict(pair_vectors=r.standard_normal((2, 4)),
                                                        bias_axis=r.standard_normal(4)))
    # data
    S["data.train_dev_test_split"] = lambda r: (data.train_dev_test_split, dict(
        X=r.standard_normal((10, 3)), y=np.array([0, 1] * 5), fractions=(0.6, 0.2, 0.2), stratify=True,
        shuffle=True, seed=1))

    def standardizer(X, X_new):
        s = data.Standardizer().fit(X)
        return s.transform(X_new), s.inverse_transform(X_new), s.layer()
    S["data.Standardizer"] = lambda r: (standardizer, dict(X=r.standard_normal((5, 3)),
                                                           X_new=r.standard_normal((2, 3))))
    S["data.mini_batches"] = lambda r: (lambda **kw: list(data.mini_batches(**kw)), dict(
        X=r.standard_normal((7, 3)), y=np.arange(7), batch_size=3, shuffle=True, seed=1))
    # tuning
    for name, args in (("Uniform", (0.5, 2.0)), ("LogUniform", (1e-4, 1e-1)), ("OneMinusLogUniform", (0.9, 0.999)),
                       ("IntUniform", (1, 5))):
        S[f"tuning.{name}"] = lambda r, name=name, args=args: (
            lambda low, high, cls=getattr(tuning, name): cls(low, high).sample(np.random.default_rng(0)),
            dict(low=args[0], high=args[1]))
    S["tuning.Choice"] = lambda r: (lambda options: tuning.Choice(options).sample(np.random.default_rng(0)),
                                    dict(options=[1, 2, 3]))
    space = lambda: {"lr": tuning.LogUniform(1e-4, 1e-1), "units": tuning.IntUniform(1, 9), "act": "relu"}  # noqa: E731
    S["tuning.sample"] = lambda r: (tuning.sample, dict(space=space(), rng=np.random.default_rng(0)))
    S["tuning.random_search"] = lambda r: (tuning.random_search, dict(
        objective=lambda p: p["lr"] * p["units"], space=space(), n_trials=3, metric="score", mode="max", seed=1))
    S["tuning.refine"] = lambda r: (tuning.refine, dict(
        results=tuning.random_search(lambda p: p["lr"], space(), n_trials=4, seed=1), top_k=2, margin=0.1))
    # diagnostics
    S["diagnostics.bias_variance"] = lambda r: (diagnostics.bias_variance, dict(
        human=0.01, train=0.05, train_dev=0.07, dev=0.1, test=0.11))
    S["diagnostics.misclassified"] = lambda r: (
        lambda model, **kw: diagnostics.misclassified(_made(model), **kw),
        dict(model=_classifier, X=r.standard_normal((6, 4)), y=np.array([0, 1, 2, 0, 1, 2]), batch_size=4))
    # interop
    S["interop.load_torch_state_dict"] = lambda r: (
        lambda model, **kw: interop.load_torch_state_dict(_made(model), **kw),
        dict(model=_classifier, state_dict={"0.weight": r.standard_normal((3, 4)), "0.bias": r.standard_normal(3)},
             mapping=None, strict=True))
    S["interop.export_onnx"] = lambda r: (lambda model, **kw: interop.export_onnx(_made(model), **kw), dict(
        model=_classifier, path="m.onnx", opset=17))
    # losses
    S["losses.get"] = lambda r: (losses.get, dict(loss="binary_crossentropy"))
    S["losses.TripletLoss"] = lambda r: (
        lambda y_true, y_pred, **kw: losses.TripletLoss(**kw).loss_and_gradient(y_true, y_pred),
        dict(y_true=None, y_pred=r.standard_normal((3, 3, 4)), margin=0.2, squared=True, reduction="sum",
             eps=1e-6, mining=None))
    S["losses.ContrastiveLoss"] = lambda r: (
        lambda y_true, y_pred, margin: losses.ContrastiveLoss(margin).loss_and_gradient(y_true, y_pred),
        dict(y_true=np.array([1.0, 0.0, 1.0]), y_pred=r.standard_normal((3, 2, 4)), margin=1.0))
    S["losses.batch_hard_triplets"] = lambda r: (losses.batch_hard_triplets, dict(
        embeddings=r.standard_normal((6, 4)), labels=np.array([0, 1, 0, 1, 2, 2])))
    S["losses.semi_hard_triplets"] = lambda r: (losses.semi_hard_triplets, dict(
        embeddings=r.standard_normal((6, 4)), labels=np.array([0, 1, 0, 1, 2, 2]), margin=2.0, squared=True))

    def yolo_loss(y_true, y_pred, **kw):
        return losses.YoloLoss(**kw).loss_and_gradient(y_true, y_pred)
    S["losses.YoloLoss"] = lambda r: (yolo_loss, dict(
        y_true=detection.yolo_encode(np.array([[2.0, 3.0, 12.0, 10.0]]), np.array([1]), 4,
                                     np.array([[8.0, 8.0], [16.0, 12.0]]), 3, 32)[None].astype(np.float64),
        y_pred=r.standard_normal((1, 16, 4, 4)), anchors=np.array([[8.0, 8.0], [16.0, 12.0]]), num_classes=3,
        lambda_coord=5.0, lambda_noobj=0.5, image_size=32, ignore_threshold=0.6))
    S["losses.LocalizationLoss"] = lambda r: (
        lambda y_true, y_pred, class_loss: losses.LocalizationLoss(class_loss).loss_and_gradient(y_true, y_pred),
        dict(y_true=np.array([[1.0, 0.5, 0.5, 0.2, 0.3, 1.0, 0.0], [0.0] * 7]), y_pred=r.standard_normal((2, 7)),
             class_loss="cross_entropy"))
    S["losses.MaskedMSE"] = lambda r: (lambda y_true, y_pred: losses.MaskedMSE().loss_and_gradient(y_true, y_pred),
                                       dict(y_true=r.standard_normal((3, 4)), y_pred=r.standard_normal((3, 4))))
    # gradient_check, initializers, regularizers
    S["gradient_check.gradient_check"] = lambda r: (
        lambda model, **kw: gradient_check.gradient_check(_made(model), **kw),
        dict(model=_classifier, X=r.standard_normal((5, 4)), y=np.array([0, 1, 2, 1, 0]), epsilon=1e-7,
             max_params=10, seed=0, verbose=0))
    for name in ("Zeros", "Ones", "RandomUniform", "HeNormal", "HeUniform", "GlorotNormal", "GlorotUniform",
                 "Orthogonal"):
        S[f"initializers.{name}"] = lambda r, name=name: (
            lambda: getattr(initializers, name)().get_config(), {})
    S["initializers.RandomNormal"] = lambda r: (initializers.RandomNormal, dict(stddev=0.05))
    S["initializers.get"] = lambda r: (initializers.get, dict(value="he_normal", owner="Dense"))
    S["regularizers.L1L2"] = lambda r: (regularizers.L1L2, dict(l1=0.01, l2=0.02))
    S["regularizers.L1"] = lambda r: (regularizers.L1, dict(l1=0.01))
    S["regularizers.L2"] = lambda r: (regularizers.L2, dict(l2=0.01))
    S["regularizers.get"] = lambda r: (regularizers.get, dict(value="l2", owner="Dense"))
    return S


# Who may be named in an error besides the public name itself: the compiled
# kernel a class drives, the abbreviation a metric goes by, the call
# (compile, predict) a helper hands its argument to.
_API_ALSO = {"style.transfer_objective": ("transfer",), "losses.TripletLoss": ("triplet_loss",),
             "losses.ContrastiveLoss": ("contrastive_loss",), "losses.YoloLoss": ("yolo_loss",),
             "losses.LocalizationLoss": ("localization_loss",), "losses.MaskedMSE": ("masked_mse",),
             "metrics.mean_absolute_error": ("mae",), "metrics.mean_squared_error": ("mse",),
             "metrics.get": ("compile",), "losses.get": ("compile",), "metrics.Precision": ("metric 'm'",),
             "metrics.Recall": ("metric 'm'",), "metrics.F1Score": ("metric 'm'",),
             "metrics.TopKAccuracy": ("metric 'top2'",), "diagnostics.misclassified": ("predict",),
             "initializers.get": ("Dense",), "regularizers.get": ("Dense",)}


def _ragged(value):
    rows = value.tolist() if value.ndim > 1 else [value.tolist(), value.tolist()[:-1]]
    if value.ndim > 1:
        rows[-1] = rows[-1][:-1]
    return rows


def _api_array_mutations(value):
    """(label, bad value, must_raise) for an array argument."""
    out = [("empty", value[:0], False), ("ndim+1", value[None], False),
           ("ndim-1", value[0], False), ("str", np.full(value.shape, "a"), False), ("None", None, False),
           ("bool", value.astype(bool), False), ("scalar", 3, False)]
    if len(value) > 1:
        out.append(("ragged", _ragged(value), True))
    if value.dtype.kind == "f":
        for label, v in (("nan", np.nan), ("inf", np.inf)):
            bad = value.copy()
            bad.flat[-1] = v
            out.append((label, bad, False))
        obj = value.astype(object)
        obj.flat[0] = None
        out += [("complex", value + 1j, True), ("object", obj, True)]
    return out


def _api_value_mutations(value):
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.ndim >= 1:
        return _api_array_mutations(value)
    if isinstance(value, bool):
        return [(repr(v), v, False) for v in ("yes", None, 2)]
    if isinstance(value, int):
        return [(repr(v), v, False) for v in (-1, 0, HUGE, 1.5, float("nan"), "1", None)]
    if isinstance(value, float):
        return [(repr(v), v, False) for v in (-1.0, 0.0, float("nan"), float("inf"), "1", None, 1j)]
    if isinstance(value, str):
        return [(repr(v), v, False) for v in ("", "no such", 3, None)]
    if value is None:
        return [(repr(v), v, False) for v in (-1, "x", float("nan"))]
    if isinstance(value, (list, tuple)):
        bad = [("[]", type(value)(), False), ("None", None, False), ("'x'", "x", False), ("3", 3, False),
               ("[None]", [None] * len(value), False)]
        if all(isinstance(v, np.ndarray) for v in value):   # one array per image
            bad += [(f"[{label}, ...]", [b, *value[1:]], must) for label, b, must in _api_array_mutations(value[0])]
        return bad
    return [(repr(v), v, False) for v in ("x", 3, None, np.zeros((2, 4)))]


def _api_cases(keys):
    seeds = _api_seeds()
    for key in keys:
        module_name, name = key.split(".")
        owners = (name, *_API_ALSO.get(key, ()))

        def run(key=key, change=None):
            call, kwargs = seeds[key](np.random.default_rng(0))
            if change is not None:
                kwargs = {**kwargs, **change}
            return call(**kwargs)
        yield f"{key}(seed)", run, False, owners
        _, kwargs = seeds[key](np.random.default_rng(0))
        for arg, value in kwargs.items():
            for label, bad, must_raise in _api_value_mutations(value):
                yield f"{key}({arg}={label})", lambda run=run, c={arg: bad}: run(change=c), must_raise, owners


def _groups():
    names = _op_names()
    groups = {f"ops-{i}": (lambda chunk=names[i::4]: _op_cases(chunk)) for i in range(4)}
    kinds = _layer_kinds()
    groups.update({f"layers-{i}": (lambda chunk=kinds[i::2]: _layer_cases(chunk)) for i in range(2)})
    groups.update({f"inputs-{i}": (lambda chunk=kinds[i::2]: _input_cases(chunk)) for i in range(2)})
    groups["training"] = _training_cases
    groups["files"] = _file_cases
    helpers = sorted(_api_seeds())
    groups.update({f"api-{i}": (lambda chunk=helpers[i::4]: _api_cases(chunk)) for i in range(4)})
    return groups


def _owner_named(owners, message):
    """Whether the message names the callee: one of `owners` (an op's name
    and family, a layer's kind, class and name)."""
    return any(o in message for o in owners)


def _child(group, skip):
    """Runs one group's cases, from the one after the first `skip` ones, and
    prints one JSON line per case."""
    import faulthandler
    import warnings
    faulthandler.enable()
    warnings.simplefilter("ignore")
    for index, (case, fn, must_raise, owner) in enumerate(_groups()[group]()):
        if index < skip:
            continue
        print(json.dumps({"start": case}), flush=True)
        started = time.perf_counter()
        try:
            fn()
            outcome, message = "ok", ""
        except ALLOWED as exc:
            outcome, message = "clear" if _owner_named(owner, str(exc)) else "unnamed", str(exc)
            message = f"{type(exc).__name__}: {message}"
        except Exception as exc:  # noqa: BLE001 - the point is to catch what should not escape
            outcome, message = "wrong-type", f"{type(exc).__name__}: {exc}"
        print(json.dumps({"case": case, "outcome": outcome, "message": message[:400], "must_raise": must_raise,
                          "seconds": time.perf_counter() - started}), flush=True)


def _run(group, skip=0, timeout=120):
    """(records, return code, the case it died in or None, stderr) of a child
    running `group`'s cases from index `skip` on."""
    code = f"import sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); " \
           f"import test_bad_inputs_sweep as m; m._child({group!r}, {skip})"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:  # in a scratch directory: a callback given a bad file name writes it there
        with tempfile.TemporaryDirectory() as scratch:
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                                  env=env, cwd=scratch)
        out, err, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out, err, rc = exc.stdout or "", exc.stderr or "", "timeout"
        out = out.decode() if isinstance(out, bytes) else out
        err = err.decode() if isinstance(err, bytes) else err
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    started = sum(1 for r in records if "start" in r)
    finished = [r for r in records if "case" in r]
    died_in = records[-1]["start"] if started > len(finished) else None
    return finished, rc, died_in, skip + started, err


def _run_all(group):
    """Every case of `group` (a child dies at most once per crashing case, and
    the next child goes on after it): (records, crashes)."""
    records, crashes, skip = [], [], 0
    while True:
        done, rc, died_in, skip, err = _run(group, skip)
        records += done
        if rc == 0:
            return records, crashes
        kind = "hung" if rc == "timeout" else f"died ({rc})"
        crashes.append(f"{died_in}: the process {kind}:\n{err[-1500:]}")
        if died_in is None or len(crashes) > 20:
            return records, crashes


def _problems(records):
    """What breaks the rule in a group's records."""
    bad = []
    for r in records:
        if r["outcome"] == "wrong-type" or r["outcome"] == "unnamed":
            bad.append(f"{r['case']}: {r['outcome']}: {r['message']}")
        elif r["must_raise"] and r["outcome"] == "ok":
            bad.append(f"{r['case']}: returned a result")
        elif r["seconds"] > 5:
            bad.append(f"{r['case']}: took {r['seconds']:.1f} s")
    return bad


@pytest.mark.parametrize("group", sorted(_groups()))
def test_bad_inputs_never_crash_and_get_clear_errors(group):
    records, crashes = _run_all(group)
    assert not crashes, "\n".join(crashes)
    assert records
    problems = _problems(records)
    assert not problems, "\n".join(problems)


# --- mistyped scalar arguments of the compiled functions ----------------------------
# pybind11's own TypeError for an argument it cannot convert ("nms():
# incompatible function arguments. The following argument types are
# supported: ...") names neither the argument nor what it was given, and it
# turns a bool into a number without a word. Every scalar parameter of every
# cn.ops kernel, read from the signature pybind11 writes first in __doc__,
# gets a str; one that must be a number gets None, an int parameter a float,
# a number parameter a bool (refused as _validate.integer/real do): each a
# TypeError "<op>: <argument> must be <type>, got <given type> <value>".

def _scalar_parameters(op):
    """{name: (kind, optional)} of op's int and float parameters."""
    head = op.__doc__.lstrip().split("\n", 1)[0]
    inner = head[head.index("(") + 1:head.rindex(") ->")]
    out = {}
    for part in re.split(r", (?=\w+: )", inner):
        name, _, annotation = part.partition(": ")
        annotation = annotation.split(" = ")[0]
        alternatives = [a.strip() for a in annotation.split("|")]
        if "typing.SupportsFloat" in alternatives:
            out[name] = ("number", "None" in alternatives)
        elif "typing.SupportsInt" in alternatives:
            out[name] = ("int", "None" in alternatives)
    return out


def _mistyped_cases():
    from corenn import ops
    seeds = _seeds()
    for name in _op_names():
        for param, (kind, optional) in _scalar_parameters(getattr(ops, name)).items():
            bad = ["1"] + ([] if optional else [None]) + ([2.5] if kind == "int" else []) + [True]
            for value in bad:
                yield name, param, value, seeds[name]


def test_every_kernel_has_scalar_parameters_to_mistype():
    from corenn import ops
    assert "iou_threshold" in _scalar_parameters(ops.nms) and "max_output" in _scalar_parameters(ops.nms)
    assert sum(1 for _ in _mistyped_cases()) > 100


@pytest.mark.parametrize("name", sorted({case[0] for case in _mistyped_cases()}))
def test_mistyped_scalar_arguments_name_the_kernel_and_the_argument(name):
    from corenn import ops
    for _, param, value, seed in (c for c in _mistyped_cases() if c[0] == name):
        kwargs = {**seed(np.random.default_rng(0)), param: value}
        with pytest.raises(TypeError, match=rf"^{name}: {param} must be (a number|an int)( or None)?, "
                                            rf"got {type(value).__name__} {re.escape(repr(value))}$"):
            getattr(ops, name)(**kwargs)


@pytest.mark.parametrize("call, match", [
    (lambda cn: cn.detection.nms(np.array([[0, 0, 2, 2.0]]), np.array([0.5]), iou_threshold="0.5"),
     r"^nms: iou_threshold must be a number, got str '0.5'$"),
    (lambda cn: cn.detection.nms(np.array([[0, 0, 2, 2.0]]), np.array([0.5]), max_output=2.5),
     r"max_output must be an int( or None)?, got float 2.5"),
    (lambda cn: cn.losses.TripletLoss(margin="a").loss_and_gradient(None, np.zeros((2, 3, 4))),
     r"margin must be a number, got str 'a'"),
    (lambda cn: cn.ops.nms(np.array([[0, 0, 2, 2.0]]), np.array([0.5]), "0.5"),
     r"^nms: iou_threshold must be a number, got str '0.5'$"),
    (lambda cn: cn.ops.nms(np.array([[0, 0, 2, 2.0]]), np.array([0.5]), 0.5, bogus=1),
     r"^nms\(\) got an unexpected keyword argument 'bogus'"),
    (lambda cn: cn.ops.dropout_forward(np.zeros(3), True, 3),
     r"^dropout_forward: rate must be a number, got bool True$"),
])
def test_python_paths_to_compiled_functions_name_the_argument(call, match):
    import corenn as cn
    with pytest.raises(TypeError, match=match):
        call(cn)


def test_every_kernel_has_a_seed():
    assert set(_seeds()) == set(_op_names())


def test_every_helper_has_a_seed():
    public = {key for module in _API_MODULES for key in _api_public(module)}
    assert public - _API_NOT_CALLED == set(_api_seeds())
