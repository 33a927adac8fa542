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


# The Python-only functions (cn.detection, cn.style, cn.text, cn.decoding,
# cn.losses, cn.metrics): every public function with all of its required
# arguments given one bad value. Checked for crashes and exception types only:
# NumPy's own messages ("could not convert string to float") still reach the
# user from several of them (see the sweep's report).

_API_MODULES = ("detection", "style", "text", "decoding", "losses", "metrics")


def _bad_values():
    return {"empty": np.zeros((0, 4)), "nan": np.full((3, 4), np.nan), "complex": np.ones((3, 4), complex),
            "str": "x", "None": None, "object": np.array([None, 1], object), "3-D": np.ones((2, 3, 4)),
            "int": 3, "bool array": np.ones((3, 4), bool)}


def _api_cases():
    import importlib
    import inspect
    for module_name in _API_MODULES:
        module = importlib.import_module(f"corenn.{module_name}")
        for name in sorted(getattr(module, "__all__", [])):
            fn = getattr(module, name)
            if not inspect.isfunction(fn):
                continue
            required = [p.name for p in inspect.signature(fn).parameters.values()
                        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            for label, bad in _bad_values().items():
                yield f"{module_name}.{name}(all={label})", lambda fn=fn, bad=bad, n=len(required): fn(
                    *[bad] * n), False, (name, module_name)


def _groups():
    names = _op_names()
    groups = {f"ops-{i}": (lambda chunk=names[i::4]: _op_cases(chunk)) for i in range(4)}
    kinds = _layer_kinds()
    groups.update({f"layers-{i}": (lambda chunk=kinds[i::2]: _layer_cases(chunk)) for i in range(2)})
    groups.update({f"inputs-{i}": (lambda chunk=kinds[i::2]: _input_cases(chunk)) for i in range(2)})
    groups["training"] = _training_cases
    groups["files"] = _file_cases
    groups["api"] = _api_cases
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


def _problems(records, named=True):
    """What breaks the rule in a group's records; named=False lets an error
    that does not name its callee pass (the Python-only helpers, see _api_cases)."""
    bad = []
    for r in records:
        if r["outcome"] == "wrong-type" or (named and r["outcome"] == "unnamed"):
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
    problems = _problems(records, named=group != "api")
    assert not problems, "\n".join(problems)


def test_every_kernel_has_a_seed():
    assert set(_seeds()) == set(_op_names())
