"""The oracle of the graph-engine tests (tests/reference/graph.py) checked on
its own: every hand-written backward against float64 central differences of
its forward, and, when PyTorch is installed, against torch autograd on the
same weights. No corenn code runs here."""

import numpy as np
import pytest

from gradcheck import numerical_gradient, relative_difference
from reference import graph as ref
from tolerances import GRADCHECK_THRESHOLD, tolerance

F64 = tolerance(np.float64)


# ------------------------------------------------------------------ graphs
def shared_tower_case(encoder, k, seed=0):
    rng = np.random.default_rng(seed)
    if encoder == "dense":
        xs = [rng.standard_normal((5, 4)) for _ in range(k)]
        enc = [rng.standard_normal((6, 4)) * 0.5, rng.standard_normal(6) * 0.1]
        width = 6
    else:
        xs = [rng.standard_normal((2, 2, 5, 5)) for _ in range(k)]
        enc = [rng.standard_normal((3, 2, 3, 3)) * 0.3, rng.standard_normal(3) * 0.1]
        width = 3 * 3 * 3
    params = {"enc": enc, "head": [rng.standard_normal((2, k * width)) * 0.3,
                                   rng.standard_normal(2) * 0.1]}
    return params, xs


def two_in_two_out_case(seed=0):
    rng = np.random.default_rng(seed)
    params = {"da": [rng.standard_normal((5, 4)) * 0.5, rng.standard_normal(5) * 0.1],
              "db": [rng.standard_normal((5, 3)) * 0.5, rng.standard_normal(5) * 0.1],
              "same": [rng.standard_normal((2, 8)) * 0.5, rng.standard_normal(2) * 0.1],
              "reg": [rng.standard_normal((3, 5)) * 0.5, rng.standard_normal(3) * 0.1]}
    xs = [rng.standard_normal((6, 4)), rng.standard_normal((6, 3))]
    return params, xs


def conv_bn_pool_dense_case(seed=0):
    rng = np.random.default_rng(seed)
    params = {"conv": [rng.standard_normal((3, 2, 3, 3)) * 0.4, rng.standard_normal(3) * 0.1],
              "bn": [1 + 0.2 * rng.standard_normal(3), 0.1 * rng.standard_normal(3),
                     0.3 * rng.standard_normal(3), 0.5 + rng.random(3)],
              "out": [rng.standard_normal((4, 12)) * 0.4, rng.standard_normal(4) * 0.1]}
    x = rng.standard_normal((3, 2, 6, 6))
    return params, x


def check_against_finite_differences(scalar, params, grads, inputs, dinputs):
    """Every trainable weight's and every input's gradient of scalar()."""
    for name, g in grads.items():
        for j, gj in enumerate(g):
            numeric = numerical_gradient(scalar, params[name][j])
            assert relative_difference(gj, numeric) < GRADCHECK_THRESHOLD, (name, j)
    for x, dx in zip(inputs, dinputs):
        assert relative_difference(dx, numerical_gradient(scalar, x)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("encoder", ["dense", "conv"])
@pytest.mark.parametrize("k", [2, 3])
def test_shared_tower_backward_equals_finite_differences(encoder, k):
    params, xs = shared_tower_case(encoder, k)
    targets = np.random.default_rng(1).standard_normal((len(xs[0]), 2))

    def loss():
        return ref.output_loss("mse", ref.shared_tower_forward(params, xs, encoder)[0], targets)[0]

    out, cache = ref.shared_tower_forward(params, xs, encoder)
    grads, dxs = ref.shared_tower_backward(cache, ref.output_loss("mse", out, targets)[1])
    check_against_finite_differences(loss, params, grads, xs, dxs)


def test_shared_tower_gradient_is_the_sum_of_its_uses():
    # Two copies of the encoder, one per input, give the per-use gradients; the
    # shared encoder's gradient is their sum, and the forward is unchanged.
    params, xs = shared_tower_case("dense", 2)
    out, cache = ref.shared_tower_forward(params, xs)
    dout = np.random.default_rng(2).standard_normal(out.shape)
    grads, _ = ref.shared_tower_backward(cache, dout)
    per_use = []
    for i in range(2):
        e = [ref.dense_node(x, params["enc"], "relu") for x in xs]
        c = np.concatenate([a for a, _ in e], axis=1)
        dc, _ = ref.dense_node_backward(dout, ref.dense_node(c, params["head"])[1])
        per_use.append(ref.dense_node_backward(np.split(dc, 2, axis=1)[i], e[i][1])[1])
    for j in range(2):
        np.testing.assert_allclose(grads["enc"][j], per_use[0][j] + per_use[1][j], **F64)
        assert np.abs(per_use[0][j]).max() > 0 and np.abs(per_use[1][j]).max() > 0


@pytest.mark.parametrize("loss_weights", [(1.0, 1.0), (0.7, 0.2)])
def test_two_in_two_out_backward_equals_finite_differences(loss_weights):
    params, xs = two_in_two_out_case()
    rng = np.random.default_rng(3)
    targets = [(rng.random((6, 2)) < 0.5).astype(np.float64), rng.standard_normal((6, 3))]
    kinds = ["binary_cross_entropy", "mse"]

    def loss():
        outs = ref.two_in_two_out_forward(params, xs)[0]
        return ref.total_loss(kinds, loss_weights, outs, targets)[0]

    outs, cache = ref.two_in_two_out_forward(params, xs)
    total, per_output, douts = ref.total_loss(kinds, loss_weights, outs, targets)
    assert total == pytest.approx(loss_weights[0] * per_output[0] + loss_weights[1] * per_output[1])
    grads, dxs = ref.two_in_two_out_backward(cache, douts)
    check_against_finite_differences(loss, params, grads, xs, dxs)


def test_output_without_loss_sends_no_gradient():
    params, xs = two_in_two_out_case()
    targets = [np.ones((6, 2)), None]
    outs, cache = ref.two_in_two_out_forward(params, xs)
    total, per_output, douts = ref.total_loss(["binary_cross_entropy", None], [1.0, 1.0], outs,
                                              targets)
    assert np.isnan(per_output[1]) and total == per_output[0]
    grads, _ = ref.two_in_two_out_backward(cache, douts)
    assert not np.any(grads["reg"][0]) and not np.any(grads["reg"][1])


@pytest.mark.parametrize("training", [True, False])
def test_conv_bn_pool_dense_backward_equals_finite_differences(training):
    params, x = conv_bn_pool_dense_case()
    dout = np.random.default_rng(4).standard_normal((len(x), 4))

    def projected():
        return float(np.sum(dout * ref.conv_bn_pool_dense_forward(params, x, training)[0]))

    out, cache = ref.conv_bn_pool_dense_forward(params, x, training)
    grads, dx = ref.conv_bn_pool_dense_backward(cache, dout)
    check_against_finite_differences(projected, params, grads, [x], [dx])


# ------------------------------------------------------------------- torch
def test_graphs_equal_torch_autograd():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    T = lambda a: torch.tensor(np.asarray(a, np.float64), requires_grad=True)  # noqa: E731

    def compare(got, want_tensor):
        np.testing.assert_allclose(got, want_tensor.detach().numpy(), **F64)

    # (a) a conv encoder shared by three inputs
    params, xs = shared_tower_case("conv", 3)
    targets = np.random.default_rng(5).standard_normal((2, 2))
    out, cache = ref.shared_tower_forward(params, xs, "conv")
    grads, dxs = ref.shared_tower_backward(cache, ref.output_loss("mse", out, targets)[1])
    tw = {k: [T(w) for w in v] for k, v in params.items()}
    txs = [T(x) for x in xs]
    es = [F.relu(F.conv2d(x, *tw["enc"])).flatten(1) for x in txs]
    tout = F.linear(torch.cat(es, 1), *tw["head"])
    F.mse_loss(tout, torch.tensor(targets)).backward()
    compare(out, tout)
    for name in ("enc", "head"):
        for g, w in zip(grads[name], tw[name]):
            compare(g, w.grad)
    for dx, x in zip(dxs, txs):
        compare(dx, x.grad)

    # (b) two inputs, two outputs, two weighted losses
    params, xs = two_in_two_out_case()
    rng = np.random.default_rng(6)
    targets = [(rng.random((6, 2)) < 0.5).astype(np.float64), rng.standard_normal((6, 3))]
    outs, cache = ref.two_in_two_out_forward(params, xs)
    total, _, douts = ref.total_loss(["binary_cross_entropy", "mse"], [0.7, 0.2], outs, targets)
    grads, dxs = ref.two_in_two_out_backward(cache, douts)
    tw = {k: [T(w) for w in v] for k, v in params.items()}
    ta, tb = T(xs[0]), T(xs[1])
    ha, hb = F.relu(F.linear(ta, *tw["da"])), torch.sigmoid(F.linear(tb, *tw["db"]))
    same = F.linear(torch.cat([ha + hb, tb], 1), *tw["same"])
    reg = F.linear(hb, *tw["reg"])
    tloss = (0.7 * F.binary_cross_entropy_with_logits(same, torch.tensor(targets[0]),
                                                      reduction="sum") / 6
             + 0.2 * F.mse_loss(reg, torch.tensor(targets[1])))
    tloss.backward()
    compare(total, tloss)
    for name in params:
        for g, w in zip(grads[name], tw[name]):
            compare(g, w.grad)
    compare(dxs[0], ta.grad)
    compare(dxs[1], tb.grad)

    # (c) conv -> batch norm (training and inference) -> max pool -> dense
    for training in (True, False):
        params, x = conv_bn_pool_dense_case()
        dout = np.random.default_rng(7).standard_normal((len(x), 4))
        out, cache = ref.conv_bn_pool_dense_forward(params, x, training)
        grads, dx = ref.conv_bn_pool_dense_backward(cache, dout)
        tw = {k: [T(w) for w in v] for k, v in params.items()}
        tx = T(x)
        gamma, beta, mean, var = tw["bn"]
        z = F.relu(F.conv2d(tx, *tw["conv"]))
        y = F.batch_norm(z, mean.detach().clone(), var.detach().clone(), gamma, beta,
                         training=training, eps=1e-3)
        tout = F.linear(F.max_pool2d(y, 2).flatten(1), *tw["out"])
        (tout * torch.tensor(dout)).sum().backward()
        compare(out, tout)
        compare(dx, tx.grad)
        for name, g in grads.items():
            for gj, w in zip(g, tw[name]):
                compare(gj, w.grad)
