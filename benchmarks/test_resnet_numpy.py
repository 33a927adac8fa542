"""The NumPy resnet_small of the benchmarks computes what it claims: its
gradients match central differences (float64, a small instance of the same
architecture), its inference path matches training mode once the running
statistics equal the batch's, and Adam steps lower the loss. Needs NumPy only."""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from tolerances import MODEL_F64  # noqa: E402
from workloads_resnet import NumpyResNet  # noqa: E402

SMALL = dict(input_shape=(3, 6, 6), widths=(3, 4), blocks=(2, 1), classes=5, dtype=np.float64)
BATCH = 4
FD_EPS = 1e-6


def _small_net_and_batch(seed=0):
    net = NumpyResNet(**SMALL, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for p in net.params:  # move γ, β and the biases off their initial 1 / 0
        p += 0.1 * rng.standard_normal(p.shape)
    x = rng.standard_normal((BATCH, *SMALL["input_shape"]))
    y = rng.integers(0, SMALL["classes"], size=BATCH)
    return net, x, y


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_central_differences(seed):
    net, x, y = _small_net_and_batch(seed)
    _, grads = net.gradients(x, y)
    rng = np.random.default_rng(seed + 2)
    checked = 0
    for p, g in zip(net.params, grads):
        assert g.shape == p.shape and g.dtype == np.float64
        flat, gflat = p.reshape(-1), g.reshape(-1)
        for i in rng.choice(flat.size, size=min(2, flat.size), replace=False):
            old = flat[i]
            flat[i] = old + FD_EPS
            plus = net.gradients(x, y)[0]
            flat[i] = old - FD_EPS
            minus = net.gradients(x, y)[0]
            flat[i] = old
            numeric = (plus - minus) / (2 * FD_EPS)
            assert gflat[i] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (checked, i)
            checked += 1
    assert checked == 2 * len(net.params)


def test_inference_uses_running_statistics():
    """With momentum 1 the running statistics become the batch's (unbiased
    variance); rescaled to the biased one, inference mode reproduces training mode."""
    net, x, _ = _small_net_and_batch()
    net.momentum = 1.0
    train_logits, _ = net.forward(x, training=True)
    units_per_stage = [1 + 2 * b for b in SMALL["blocks"]]
    h, w = SMALL["input_shape"][1:]
    u = 0
    for stage, units in enumerate(units_per_stage):
        m = BATCH * (h >> stage) * (w >> stage)
        for _ in range(units):
            net.running_var[u] *= (m - 1) / m
            u += 1
    assert u == len(net.running_var)
    infer_logits, tape = net.forward(x, training=False)
    assert tape is None
    np.testing.assert_allclose(infer_logits, train_logits, **MODEL_F64)


def test_adam_steps_lower_the_loss():
    net, x, y = _small_net_and_batch()
    losses = [net.train_step(x, y) for _ in range(20)]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.95 * losses[0]
