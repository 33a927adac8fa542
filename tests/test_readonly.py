"""Read-only inputs: arrays over immutable memory (np.frombuffer of bytes) and
memory-mapped datasets (np.load(mmap_mode="r")) go into every entry point that
only reads them, with the same results as writeable copies and, where dtype
and layout allow, without a copy. Ops that update an argument in place refuse
a read-only one with a ValueError naming the op and the argument."""

import tracemalloc

import numpy as np
import pytest

import corenn as cn

L = cn.layers
ops = cn.ops


def frombuffer(a):
    a = np.ascontiguousarray(a)
    return np.frombuffer(a.tobytes(), dtype=a.dtype).reshape(a.shape)


@pytest.fixture(params=["frombuffer", "mmap"])
def readonly(request, tmp_path):
    """A function turning an array into a read-only one with the same values."""
    if request.param == "frombuffer":
        return frombuffer
    counter = iter(range(10**6))

    def mmap(a):
        path = tmp_path / f"a{next(counter)}.npy"
        np.save(path, np.ascontiguousarray(a))
        return np.load(path, mmap_mode="r")

    return mmap


def check_readonly(readonly, *arrays):
    out = [readonly(a) for a in arrays]
    for a in out:
        assert not a.flags.writeable
    return out


def assert_same(got, expected):
    if isinstance(expected, dict):
        assert got.keys() == expected.keys()
        for k in expected:
            np.testing.assert_array_equal(got[k], expected[k])
    elif isinstance(expected, (tuple, list)):
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_same(g, e)
    else:
        np.testing.assert_array_equal(got, expected)


RNG = np.random.default_rng(0)
X = RNG.standard_normal((12, 6)).astype(np.float32)
Y = RNG.integers(0, 3, 12)
X4 = RNG.standard_normal((2, 3, 6, 6))
W4 = RNG.standard_normal((4, 3, 3, 3))
B4 = RNG.standard_normal(4)
C3 = np.abs(RNG.standard_normal(3)) + 0.5


def make_model():
    cn.seed(3)
    m = cn.Sequential([L.Input((6,)), L.Dense(5, activation="relu"), L.BatchNormalization(),
                       L.Dropout(0.2), L.Dense(3)])
    m.compile(optimizer=cn.optimizers.Adam(1e-2), loss="softmax_cross_entropy",
              metrics=["accuracy", "f1"])
    return m


def model_call(action):
    """Run `action(model, *arrays)` on a fresh model with the same seed: the
    result and the weights afterwards."""
    def run(*arrays):
        m = make_model()
        cn.seed(5)
        out = action(m, *arrays)
        if isinstance(out, cn.callbacks.History):
            out = out.history
        return out, m.get_weights()
    return run


# (name, function of arrays, the writeable arrays it reads)
MODEL_CASES = [
    ("predict", model_call(lambda m, x: m.predict(x)), (X,)),
    ("predict in batches", model_call(lambda m, x: m.predict(x, batch_size=5)), (X,)),
    ("evaluate", model_call(lambda m, x, y: m.evaluate(x, y)), (X, Y)),
    ("fit", model_call(lambda m, x, y: m.fit(x, y, batch_size=4, epochs=2, verbose=0)), (X, Y)),
    ("fit unshuffled", model_call(lambda m, x, y: m.fit(x, y, batch_size=4, shuffle=False, verbose=0)),
     (X, Y)),
    ("fit validation_data", model_call(lambda m, x, y, xv, yv: m.fit(
        x, y, batch_size=4, validation_data=(xv, yv), shuffle=False, verbose=0)), (X, Y, X[:5], Y[:5])),
    ("fit validation_split", model_call(lambda m, x, y: m.fit(
        x, y, batch_size=4, validation_split=0.25, shuffle=False, verbose=0)), (X, Y)),
    ("train_on_batch", model_call(lambda m, x, y: m.train_on_batch(x, y)), (X, Y)),
    ("set_weights", model_call(lambda m, *ws: m.set_weights(ws)),
     tuple(w + 0.5 for w in make_model().get_weights())),
    ("gradient_check", model_call(lambda m, x, y: cn.gradient_check(m, x, y)), (X[:4], Y[:4])),
    ("misclassified", model_call(lambda m, x, y: cn.diagnostics.misclassified(m, x, y).indices),
     (X, Y)),
]


@pytest.mark.parametrize("name,call,arrays", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_model_entry_points_read_readonly_arrays(name, call, arrays, readonly):
    expected = call(*arrays)
    got = call(*check_readonly(readonly, *arrays))
    assert_same(got, expected)


def _running(training):
    return (np.zeros(3), np.ones(3)) if training else (C3 - 0.5, C3)


def _max_pool_backward(dy, x):
    _, argmax = ops.max_pool2d_forward(x, 2)
    return ops.max_pool2d_backward(dy, argmax, x.shape)


OP_CASES = [
    ("dense_forward", lambda x, w, b: ops.dense_forward(x, w, b),
     (X.astype(np.float64), RNG.standard_normal((4, 6)), RNG.standard_normal(4))),
    ("dense_backward", lambda dy, x, w: ops.dense_backward(dy, x, w),
     (RNG.standard_normal((12, 4)), X.astype(np.float64), RNG.standard_normal((4, 6)))),
    ("activation_forward", lambda x: ops.activation_forward(x, "tanh"), (X,)),
    ("activation_backward", lambda dy, x, y: ops.activation_backward(dy, x, y, "tanh"),
     (X, X, np.tanh(X))),
    ("softmax_cross_entropy", ops.softmax_cross_entropy, (RNG.standard_normal((12, 3)), Y)),
    ("sigmoid_cross_entropy", ops.sigmoid_cross_entropy,
     (RNG.standard_normal((12, 3)), (RNG.random((12, 3)) > 0.5) * 1.0, RNG.random((12, 3)) > 0.3)),
    ("mse", ops.mse, (X, X[::-1].copy())),
    ("weight_penalty", lambda w: ops.weight_penalty(w, 0.1, 0.2), (X,)),
    ("conv2d_forward", lambda x, w, b: ops.conv2d_forward(x, w, b, padding=1), (X4, W4, B4)),
    ("conv2d_backward", lambda dy, x, w: ops.conv2d_backward(dy, x, w, padding=1),
     (RNG.standard_normal((2, 4, 6, 6)), X4, W4)),
    ("conv_transpose2d_forward", lambda x, w, b: ops.conv_transpose2d_forward(x, w, b),
     (X4, RNG.standard_normal((3, 4, 3, 3)), B4)),
    ("conv_transpose2d_backward", lambda dy, x, w: ops.conv_transpose2d_backward(dy, x, w),
     (RNG.standard_normal((2, 4, 8, 8)), X4, RNG.standard_normal((3, 4, 3, 3)))),
    ("max_pool2d_forward", lambda x: ops.max_pool2d_forward(x, 2), (X4,)),
    ("max_pool2d_backward", _max_pool_backward, (RNG.standard_normal((2, 3, 3, 3)), X4)),
    ("avg_pool2d_forward", lambda x: ops.avg_pool2d_forward(x, 2), (X4,)),
    ("avg_pool2d_backward", lambda dy: ops.avg_pool2d_backward(dy, X4.shape, 2),
     (RNG.standard_normal((2, 3, 3, 3)),)),
    ("global_avg_pool2d_forward", ops.global_avg_pool2d_forward, (X4,)),
    ("global_avg_pool2d_backward", lambda dy: ops.global_avg_pool2d_backward(dy, X4.shape),
     (RNG.standard_normal((2, 3)),)),
    ("zero_pad2d_forward", lambda x: ops.zero_pad2d_forward(x, 1), (X4,)),
    ("zero_pad2d_backward", lambda dy: ops.zero_pad2d_backward(dy, X4.shape, 1),
     (RNG.standard_normal((2, 3, 8, 8)),)),
    ("batch_norm_forward inference", lambda x, g, b, rm, rv: ops.batch_norm_forward(
        x, g, b, rm, rv, False), (X4, C3, -C3, *_running(False))),
    ("batch_norm_forward training, untracked", lambda x, g, b: ops.batch_norm_forward(
        x, g, b, None, None, True), (X4, C3, -C3)),
    ("batch_norm_backward", lambda dy, x, g, m, s: ops.batch_norm_backward(dy, x, g, m, s),
     (X4[::-1].copy(), X4, C3, *ops.batch_norm_forward(X4, C3, -C3, None, None, True)[1:])),
    ("dropout_forward", lambda x: ops.dropout_forward(x, 0.3, 7), (X,)),
    ("dropout_backward", lambda dy, mask: ops.dropout_backward(dy, mask, 0.3),
     (X, ops.dropout_forward(X, 0.3, 7)[1])),
    ("random_flip_forward", lambda x: ops.random_flip_forward(x, "horizontal_and_vertical", 3), (X4,)),
    ("random_flip_backward", ops.random_flip_backward,
     (X4, ops.random_flip_forward(X4, "horizontal_and_vertical", 3)[1])),
    ("random_crop_forward", lambda x: ops.random_crop_forward(x, 1, 3), (X4,)),
    ("random_crop_backward", lambda dy, off: ops.random_crop_backward(dy, off, 1),
     (X4, ops.random_crop_forward(X4, 1, 3)[1])),
    ("color_shift_forward", lambda x: ops.color_shift_forward(x, 0.2, 3), (X4,)),
    ("normalize_forward", ops.normalize_forward, (X4, -C3, C3)),
    ("normalize_backward", ops.normalize_backward, (X4, C3)),
    # The gradient of an in-place optimizer step is only read.
    ("sgd_step grad", lambda g: _step(lambda p, s: ops.sgd_step(p, g, s[0], 0.1, 0.9)), (X,)),
    ("rmsprop_step grad", lambda g: _step(lambda p, s: ops.rmsprop_step(p, g, s[0], 0.1)), (X,)),
    ("adam_step grad", lambda g: _step(lambda p, s: ops.adam_step(p, g, s[0], s[1], 1, 0.1)), (X,)),
]


# Sequences (N, T, F) = (2, 4, 3), hidden 5; boxes; attention (B, T, d) = (2, 4, 3).
XS = RNG.standard_normal((2, 4, 3))
H0 = RNG.standard_normal((2, 5))
BOXES = np.concatenate([RNG.uniform(0, 5, (6, 2)), RNG.uniform(5, 10, (6, 2))], axis=1)


def _cache(forward, *arrays):
    """Forward's cache from writeable copies, so only backward reads read-only arrays."""
    return forward(*[np.array(a) for a in arrays])[-1]


def _recurrent_cases(name, gates, forward, backward):
    w_ih, w_hh = RNG.standard_normal((gates * 5, 3)), RNG.standard_normal((gates * 5, 5))
    b = RNG.standard_normal(gates * 5)
    extra = {"lstm": (H0,), "gru": (RNG.standard_normal(gates * 5),), "simple_rnn": ()}[name]
    if name == "lstm":
        fwd = lambda x, wi, wh, bb, h0, c0: forward(x, wi, wh, bb, h0, c0)  # noqa: E731
        args = (XS, w_ih, w_hh, b, H0, H0 * 0.5)
        bwd = lambda dy, x, wi, wh, bb, h0, c0: backward(  # noqa: E731
            dy, None, None, x, wi, wh, bb, h0, c0, _cache(forward, x, wi, wh, bb, h0, c0))
    elif name == "gru":
        fwd = lambda x, wi, wh, bb, rb, h0: forward(x, wi, wh, bb, rb, h0)  # noqa: E731
        args = (XS, w_ih, w_hh, b, *extra, H0)
        bwd = lambda dy, x, wi, wh, bb, rb, h0: backward(  # noqa: E731
            dy, None, x, wi, wh, bb, rb, h0, _cache(forward, x, wi, wh, bb, rb, h0))
    else:
        fwd = lambda x, wi, wh, bb, h0: forward(x, wi, wh, bb, h0)  # noqa: E731
        args = (XS, w_ih, w_hh, b, H0)
        bwd = lambda dy, x, wi, wh, bb, h0: backward(  # noqa: E731
            dy, None, x, wi, wh, bb, h0, _cache(forward, x, wi, wh, bb, h0))
    dy = RNG.standard_normal((2, 4, 5))
    return [(f"{name}_forward", fwd, args), (f"{name}_backward", bwd, (dy, *args))]


def _attention_backward(dout, q, k, v):
    _, p = ops.attention_forward(np.array(q), np.array(k), np.array(v))
    return ops.attention_backward(dout, q, k, v, p)


def _attention_weights_backward(dout, v, scores):
    _, p = ops.attention_weights_forward(np.array(scores), np.array(v))
    return ops.attention_weights_backward(dout, v, p)


def _layer_norm_backward(dy, x, gamma):
    _, mean, invstd = ops.layer_norm_forward(np.array(x), np.array(gamma), None)
    return ops.layer_norm_backward(dy, x, gamma, mean, invstd)


OP_CASES += [
    ("upsample2d_forward", lambda x: ops.upsample2d_forward(x, 2, "bilinear"), (X4,)),
    ("upsample2d_backward", lambda dy: ops.upsample2d_backward(dy, X4.shape, 2, "bilinear"),
     (RNG.standard_normal((2, 3, 12, 12)),)),
    ("embedding_forward", lambda ids, w: ops.embedding_forward(ids, w), (Y.reshape(3, 4), X)),
    ("embedding_backward", lambda dy, ids: ops.embedding_backward(dy, ids, 12),
     (RNG.standard_normal((3, 4, 6)), Y.reshape(3, 4).astype(np.float64))),
    ("box_iou", lambda a, b: ops.box_iou(a, b), (BOXES, BOXES[::-1].copy())),
    ("nms", lambda boxes, scores: ops.nms(boxes, scores, 0.3), (BOXES, RNG.uniform(0, 1, 6))),
    *_recurrent_cases("lstm", 4, ops.lstm_forward, ops.lstm_backward),
    *_recurrent_cases("gru", 3, ops.gru_forward, ops.gru_backward),
    *_recurrent_cases("simple_rnn", 1, ops.simple_rnn_forward, ops.simple_rnn_backward),
    ("gram_matrix", lambda a: ops.gram_matrix(a), (X4,)),
    ("gram_matrix_backward", lambda dg, a: ops.gram_matrix_backward(dg, a),
     (RNG.standard_normal((2, 3, 3)), X4)),
    ("content_cost", lambda a, g: ops.content_cost(a, g), (X4, X4 + 0.1)),
    ("style_cost", lambda a, g: ops.style_cost(a, g), (X4, X4 * 0.9)),
    ("total_variation", lambda img: ops.total_variation(img), (X4,)),
    ("triplet_loss", lambda e: ops.triplet_loss(e), (RNG.standard_normal((4, 3, 5)),)),
    ("yolo_loss", lambda t, z: ops.yolo_loss(t, z, np.array([[4.0, 6.0], [8.0, 3.0]]), (12, 12)),
     (np.stack([cn.detection.yolo_encode([[1, 2, 6, 9]], [1], 3, [[4, 6], [8, 3]], 2, 12)] * 2
               ).astype(np.float64), RNG.standard_normal((2, 14, 3, 3)))),
    ("localization_loss", lambda t, p: ops.localization_loss(t, p, "cross_entropy"),
     (np.array([[1, 0.5, 0.5, 0.2, 0.3, 0, 1], [0, np.nan, 0, 0, 0, 0, 0]]), RNG.standard_normal((2, 7)))),
    ("masked_mse", ops.masked_mse, (np.where(X > 0.5, np.nan, X), X[::-1].copy())),
    ("contrastive_loss", lambda a, b, same: ops.contrastive_loss(a, b, same),
     (RNG.standard_normal((4, 5)), RNG.standard_normal((4, 5)), np.array([1.0, 0.0, 1.0, 0.0]))),
    ("layer_norm_forward", lambda x, g, b: ops.layer_norm_forward(x, g, b),
     (X4, RNG.standard_normal(6), RNG.standard_normal(6))),
    ("layer_norm_backward", _layer_norm_backward, (RNG.standard_normal(X4.shape), X4, RNG.standard_normal(6))),
    ("unit_norm_forward", lambda x: ops.unit_norm_forward(x, axis=1), (X4,)),
    ("unit_norm_backward", lambda dy, x: ops.unit_norm_backward(dy, x, axis=1), (X4[::-1].copy(), X4)),
    ("batched_matmul_forward", lambda a, b: ops.batched_matmul_forward(a, b, trans_b=True), (XS, XS[::-1].copy())),
    ("batched_matmul_backward", lambda dc, a, b: ops.batched_matmul_backward(dc, a, b, trans_b=True),
     (RNG.standard_normal((2, 4, 4)), XS, XS[::-1].copy())),
    ("attention_forward", lambda q, k, v: ops.attention_forward(q, k, v), (XS, XS[::-1].copy(), XS * 2)),
    ("attention_backward", _attention_backward, (XS * 0.5, XS, XS[::-1].copy(), XS * 2)),
    ("attention_weights_forward", lambda s, v: ops.attention_weights_forward(s, v),
     (XS @ XS.transpose(0, 2, 1), XS * 2)),
    ("attention_weights_backward", _attention_weights_backward,
     (XS * 0.5, XS * 2, XS @ XS.transpose(0, 2, 1))),
    ("additive_scores_forward", lambda q, k, w: ops.additive_scores_forward(q, k, w),
     (XS, XS[:, :3].copy(), RNG.standard_normal(3))),
    ("additive_scores_backward", lambda d, q, k, w: ops.additive_scores_backward(d, q, k, w),
     (RNG.standard_normal((2, 4, 3)), XS, XS[:, :3].copy(), RNG.standard_normal(3))),
]

def _step(update):
    p, state = X.copy(), [np.zeros_like(X), np.zeros_like(X)]
    update(p, state)
    return p, state


def test_every_op_is_in_the_readonly_cases():
    covered = {name.split()[0] for name, _, _ in OP_CASES}
    assert covered >= set(ops.__all__) - {"initialize"}, "a new op needs a read-only case here"


@pytest.mark.parametrize("name,call,arrays", OP_CASES, ids=[c[0] for c in OP_CASES])
def test_ops_read_readonly_arrays(name, call, arrays, readonly):
    expected = call(*arrays)
    got = call(*check_readonly(readonly, *arrays))
    assert_same(got, expected)


def test_normalization_adapt_reads_readonly_arrays(readonly):
    (x,) = check_readonly(readonly, X4)
    layer, reference = L.Normalization(), L.Normalization()
    layer.adapt(x)
    reference.adapt(X4)
    assert_same(layer.get_weights(), reference.get_weights())


Y2 = RNG.integers(0, 3, 12)
S = RNG.standard_normal((12, 3))
HELPER_CASES = [
    ("accuracy_score", cn.metrics.accuracy_score, (Y, Y2)),
    ("confusion_matrix", cn.metrics.confusion_matrix, (Y, Y2)),
    ("precision_score", lambda a, b: cn.metrics.precision_score(a, b, average="macro"), (Y, Y2)),
    ("recall_score", lambda a, b: cn.metrics.recall_score(a, b, average="micro"), (Y, Y2)),
    ("f1_score", lambda a, b: cn.metrics.f1_score(a, b, average="macro"), (Y, Y2)),
    ("top_k_accuracy_score", lambda a, s: cn.metrics.top_k_accuracy_score(a, s, k=2), (Y, S)),
    ("accuracy", lambda s, y: cn.metrics.accuracy(s, y, "softmax_cross_entropy"), (S, Y)),
    ("binary_accuracy", cn.metrics.binary_accuracy, (S, (S > 0.3) * 1.0)),
    ("F1Score", lambda s, y: cn.metrics.F1Score("macro")(s, y, "softmax_cross_entropy"), (S, Y)),
    ("TopKAccuracy", lambda s, y: cn.metrics.TopKAccuracy(2)(s, y, "softmax_cross_entropy"), (S, Y)),
    ("train_dev_test_split", lambda x, y: cn.data.train_dev_test_split(x, y, seed=1), (X, Y)),
    ("mini_batches", lambda x, y: list(cn.data.mini_batches(x, y, 5, seed=1)), (X, Y)),
    ("Standardizer", lambda x: cn.data.Standardizer().fit_transform(x), (X,)),
]


@pytest.mark.parametrize("name,call,arrays", HELPER_CASES, ids=[c[0] for c in HELPER_CASES])
def test_metrics_and_data_helpers_read_readonly_arrays(name, call, arrays, readonly):
    expected = call(*arrays)
    got = call(*check_readonly(readonly, *arrays))
    assert_same(got, expected)


def test_predict_on_a_memory_map_makes_no_copy(tmp_path):
    # A 4 MB float32 dataset read through a memory map: NumPy reports every
    # array it allocates to tracemalloc, so a copy of x would show as a peak of
    # its size; prediction itself keeps only the small outputs.
    cn.seed(0)
    m = cn.Sequential([L.Input((512,)), L.Dense(2)])
    x = RNG.standard_normal((2048, 512)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    expected = m.predict(x)
    tracemalloc.start()
    try:
        got = m.predict(mapped)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(got, expected)
    assert peak < x.nbytes // 8, f"predict allocated {peak} bytes for a {x.nbytes}-byte input"


INPLACE_CASES = [
    ("sgd_step", "param", lambda p, g, s, t: ops.sgd_step(p, g, s, 0.1, 0.9)),
    ("sgd_step", "velocity", lambda p, g, s, t: ops.sgd_step(p, g, s, 0.1, 0.9)),
    ("rmsprop_step", "param", lambda p, g, s, t: ops.rmsprop_step(p, g, s, 0.1)),
    ("rmsprop_step", "square_avg", lambda p, g, s, t: ops.rmsprop_step(p, g, s, 0.1)),
    ("adam_step", "param", lambda p, g, s, t: ops.adam_step(p, g, s, t, 1, 0.1)),
    ("adam_step", "m", lambda p, g, s, t: ops.adam_step(p, g, s, t, 1, 0.1)),
    ("adam_step", "v", lambda p, g, s, t: ops.adam_step(p, g, s, t, 1, 0.1)),
]
_SLOT = {"param": 0, "velocity": 2, "square_avg": 2, "m": 2, "v": 3}


@pytest.mark.parametrize("op,arg,call", INPLACE_CASES, ids=[f"{c[0]}-{c[1]}" for c in INPLACE_CASES])
def test_inplace_ops_refuse_readonly_arguments_they_write(op, arg, call, readonly):
    arrays = [X.copy(), X.copy(), np.zeros_like(X), np.zeros_like(X)]
    arrays[_SLOT[arg]] = readonly(arrays[_SLOT[arg]])
    before = [a.copy() for a in arrays]
    with pytest.raises(ValueError, match=rf"^{op}: {arg} must be writeable \(it is updated in place\), "
                                         r"got a read-only array$"):
        call(*arrays)
    assert_same(arrays, before)  # nothing was half-updated


@pytest.mark.parametrize("arg", ["running_mean", "running_var"])
def test_batch_norm_training_refuses_readonly_running_statistics(arg, readonly):
    stats = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    stats[arg] = readonly(stats[arg])
    with pytest.raises(ValueError, match=rf"^batch_norm_forward: {arg} must be writeable \(it is updated "
                                         r"in place when training\), got a read-only array$"):
        ops.batch_norm_forward(X4, C3, -C3, stats["running_mean"], stats["running_var"], True)
    # In inference mode the statistics are only read.
    ops.batch_norm_forward(X4, C3, -C3, stats["running_mean"], stats["running_var"], False)
