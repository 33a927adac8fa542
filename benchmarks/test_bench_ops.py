"""pytest-benchmark suite for regression tracking of corenn alone.

    pytest benchmarks/                                  # time (saves nothing)
    pytest benchmarks/ --benchmark-autosave             # keep a run in .benchmarks/
    pytest benchmarks/ --benchmark-compare              # compare with the last saved run
    pytest benchmarks/ --benchmark-disable              # smoke test: each body runs once

Not part of the main test suite (pyproject's testpaths = ["tests"]). The
comparison against NumPy and PyTorch is benchmarks/run.py; this file imports
corenn only. Each body is checked for a sane result, so the smoke run also
catches a broken op. Threads: corenn's default (all usable cores) unless
CORENN_BENCH_THREADS is set.
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import workloads as W  # noqa: E402
from tolerances import tolerance  # noqa: E402

import corenn as cn  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _threads():
    before = cn.get_num_threads()
    if os.environ.get("CORENN_BENCH_THREADS"):
        cn.set_num_threads(int(os.environ["CORENN_BENCH_THREADS"]))
    yield
    cn.set_num_threads(before)


def _bench(benchmark, step, flops=None):
    benchmark.extra_info["threads"] = cn.get_num_threads()
    result = benchmark(step)
    stats = getattr(benchmark, "stats", None)
    if flops and stats is not None and getattr(stats, "stats", None) is not None:
        benchmark.extra_info["gflops_at_median"] = flops / stats.stats.median / 1e9
    return result


def test_dense_forward_512x784x512(benchmark):
    benchmark.group = "ops"
    y = _bench(benchmark, W.corenn_dense_forward(), W.WORKLOADS["dense_fwd"].flops)
    assert y.shape == (W.DENSE_N, W.DENSE_OUT) and y.dtype == np.float32
    assert np.isfinite(y).all()


def test_dense_backward_512x784x512(benchmark):
    benchmark.group = "ops"
    dx, dW, db = _bench(benchmark, W.corenn_dense_backward(), W.WORKLOADS["dense_bwd"].flops)
    assert dx.shape == (W.DENSE_N, W.DENSE_IN)
    assert dW.shape == (W.DENSE_OUT, W.DENSE_IN)
    assert db.shape == (W.DENSE_OUT,)


def test_adam_step_5x1M(benchmark):
    benchmark.group = "ops"
    t = _bench(benchmark, W.corenn_adam())
    assert t >= 1


def test_batch_norm_fwdbwd_32x64x32x32(benchmark):
    benchmark.group = "ops"
    y, (dx, dgamma, dbeta) = _bench(benchmark, W.cnn.corenn_bn())
    assert y.shape == dx.shape == W.cnn.CONV_SHAPE and y.dtype == dx.dtype == np.float32
    assert dgamma.shape == dbeta.shape == (W.cnn.CONV_SHAPE[1],)
    assert np.isfinite(dx).all()
    # Normalised per channel: mean 0 before β (β is the channel mean of y).
    _, _, beta, _ = W.cnn._bn_data()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), beta, **tolerance(np.float32))


def test_conv3x3_forward_32x64x32x32(benchmark):
    benchmark.group = "ops"
    y = _bench(benchmark, W.cnn.corenn_conv(False), W.WORKLOADS["conv3x3_fwd"].flops)
    assert y.shape == (32, W.cnn.CONV_OUT, 32, 32) and np.isfinite(y).all()


def test_conv3x3_forward_backward_32x64x32x32(benchmark):
    benchmark.group = "ops"
    y, (dx, dW, db) = _bench(benchmark, W.cnn.corenn_conv(True), W.WORKLOADS["conv3x3_fwdbwd"].flops)
    assert dx.shape == W.cnn.CONV_SHAPE and dW.shape == (W.cnn.CONV_OUT, 64, 3, 3) and db is None
    assert np.isfinite(dx).all() and np.isfinite(dW).all()


def test_max_pool2_forward_backward_32x64x32x32(benchmark):
    benchmark.group = "ops"
    y, dx = _bench(benchmark, W.cnn.corenn_pool())
    x, dy = W.cnn._pool_data()
    np.testing.assert_array_equal(y, W.cnn.np_maxpool2(x))
    np.testing.assert_array_equal(dx, W.cnn.np_maxpool2_backward(dy, x, y))  # no ties in random data


def test_iou_2000x2000(benchmark):
    benchmark.group = "ops"
    got = _bench(benchmark, W.det.corenn_iou())
    a, b = W.det._iou_data()
    assert got.shape == (W.det.IOU_N, W.det.IOU_N) and got.dtype == np.float32
    np.testing.assert_allclose(got[:50], W.det.numpy_iou_formula(a[:50], b), **tolerance(np.float32))


def test_nms_10k(benchmark):
    benchmark.group = "ops"
    kept = _bench(benchmark, W.det.corenn_nms())
    np.testing.assert_array_equal(kept, W.det.numpy_nms()())


def test_lstm_fwdbwd_b64(benchmark):
    benchmark.group = "ops"
    dW_ih = _bench(benchmark, W.rnn.corenn_fwdbwd("lstm"), W.WORKLOADS["lstm_fwdbwd_b64"].flops)
    want = W.rnn.numpy_lstm_fwdbwd()()[1]  # float32 both, summed in other orders over N·T = 3,200 rows
    np.testing.assert_allclose(dW_ih, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def test_gru_fwdbwd_b64(benchmark):
    benchmark.group = "ops"
    dW_ih = _bench(benchmark, W.rnn.corenn_fwdbwd("gru"), W.WORKLOADS["gru_fwdbwd_b64"].flops)
    assert dW_ih.shape == (3 * W.rnn.UNITS, W.rnn.FEATURES) and np.isfinite(dW_ih).all()
    assert np.abs(dW_ih).max() > 0


def test_lstm_b1_infer(benchmark):
    benchmark.group = "ops"
    h = _bench(benchmark, W.rnn.corenn_lstm_infer(), W.WORKLOADS["lstm_b1_infer"].flops)
    np.testing.assert_allclose(h, W.rnn.numpy_lstm_infer()(), rtol=1e-4, atol=1e-5)


def test_lenet_b64_train_on_batch(benchmark):
    benchmark.group = "models"
    loss = _bench(benchmark, W.cnn.corenn_lenet_train(64), W.WORKLOADS["lenet_b64"].flops)
    assert np.isfinite(loss) and loss > 0


def test_mlp_b64_train_on_batch(benchmark):
    benchmark.group = "models"
    loss = _bench(benchmark, W.corenn_train(64), W.WORKLOADS["mlp_b64"].flops)
    assert np.isfinite(loss) and loss > 0


def test_mlp_b64_engine_train_step(benchmark):
    benchmark.group = "models"
    loss = _bench(benchmark, W.corenn_train(64, "engine"), W.WORKLOADS["mlp_b64"].flops)
    assert np.isfinite(loss) and loss > 0


def test_mlp_b1_predict(benchmark):
    benchmark.group = "models"
    out = _bench(benchmark, W.corenn_infer(1))
    assert out.shape == (1, W.CLASSES)


def test_mlp_b1_engine_predict(benchmark):
    benchmark.group = "models"
    out = _bench(benchmark, W.corenn_infer(1, "engine"))
    assert out.shape == (1, W.CLASSES)


def test_resnet_small_flops_are_the_models_multiply_adds():
    """The hand count in workloads_resnet.py is what the engine counts (batch
    norm adds none), so the GFLOP/s of the report are 3 × 2 × multiply-adds
    less the stem's input gradient."""
    model = W.resnet._corenn_resnet()
    assert model.multiply_adds() == W.resnet.resnet_multiply_adds() == 62_227_072
    stem = model.layers[0]
    assert isinstance(stem, cn.layers.Conv2D) and stem.output.shape == (None, 32, 32, 32)
    stem_multiply_adds = 32 * 32 * 32 * 3 * 9  # output values × input channels × taps
    assert W.resnet.resnet_first_layer_flops(1) == 2 * stem_multiply_adds
    assert W.WORKLOADS["resnet_small_b64"].flops == 64 * 2 * (3 * model.multiply_adds() - stem_multiply_adds)
    assert W.WORKLOADS["resnet_small_b1_infer"].flops == 2 * model.multiply_adds()
    assert W.WORKLOADS["resnet_small_b256"].flops == 4 * W.WORKLOADS["resnet_small_b64"].flops


def test_resnet_small_b64_train_on_batch(benchmark):
    benchmark.group = "models"
    flops = W.WORKLOADS["resnet_small_b64"].flops
    loss = _bench(benchmark, W.resnet.corenn_resnet_train(64), flops)
    assert np.isfinite(loss) and loss > 0


def test_resnet_small_b256_train_on_batch(benchmark):
    benchmark.group = "models"
    flops = W.WORKLOADS["resnet_small_b256"].flops
    loss = _bench(benchmark, W.resnet.corenn_resnet_train(256), flops)
    assert np.isfinite(loss) and loss > 0


def test_resnet_small_b1_predict(benchmark):
    benchmark.group = "models"
    out = _bench(benchmark, W.resnet.corenn_resnet_infer(1))
    assert out.shape == (1, W.resnet.CLASSES) and np.isfinite(out).all()
