"""N-step training trajectories of a 2-hidden-layer MLP in float64 against a
plain NumPy implementation assembled from tests/reference (dense, activation,
loss, optim), starting from identical weights (set_weights). Every step's loss
and every weight array must agree to the float64 parity tolerance."""

import numpy as np
import pytest

import corenn as cn
from model_numpy import NumpyMLP, NumpyOptimizer
from tolerances import STEP_FROM_DIFFERENCE, assert_close

L = cn.layers
O = cn.optimizers
STEPS = 10
N, BATCH = 24, 8  # three mini-batches per epoch, taken in order
ACTS = ["tanh", "relu", "linear"]


def problem(loss="softmax_cross_entropy", seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, 5))
    if loss == "softmax_cross_entropy":
        y = rng.integers(0, 3, N)
    elif loss == "binary_cross_entropy":
        y = (rng.random((N, 3)) > 0.5).astype(np.float64)
        y[rng.random((N, 3)) < 0.2] = np.nan
    else:
        y = rng.standard_normal((N, 3))
    return x, y


def mlp(regularizer=None):
    return cn.Sequential([L.Input((5,)),
                          L.Dense(8, activation="tanh", kernel_regularizer=regularizer),
                          L.Dense(6, activation="relu", kernel_regularizer=regularizer),
                          L.Dense(3, kernel_regularizer=regularizer)], dtype="float64")


def initial_weights(seed=1):
    rng = np.random.default_rng(seed)
    shapes = [(8, 5), (8,), (6, 8), (6,), (3, 6), (3,)]
    return [rng.standard_normal(s) * (0.5 if len(s) == 2 else 0.1) for s in shapes]


def run_both(optimizer, ref_kind, ref_hyper, lr_of_step, loss="softmax_cross_entropy",
             l2=0.0):
    x, y = problem(loss)
    model = mlp(cn.regularizers.L2(l2) if l2 else None)
    model.compile(optimizer=optimizer, loss=loss)
    w0 = initial_weights()
    model.set_weights(w0)
    net = NumpyMLP(w0, ACTS, loss, l2=[l2] * 3)
    ref_opt = NumpyOptimizer(ref_kind, **ref_hyper)
    for step in range(STEPS):
        sl = slice((step * BATCH) % N, (step * BATCH) % N + BATCH)
        got_loss = model.train_on_batch(x[sl], y[sl])
        want_loss, grads = net.loss_and_gradients(x[sl], y[sl])
        net.params = ref_opt.apply(net.params, grads, lr_of_step(step))
        assert_close(np.array(got_loss), np.array(want_loss), what=f"loss at step {step}")
        for i, (got, want) in enumerate(zip(model.get_weights(), net.params)):
            assert_close(got, want, what=f"weight {i} after step {step + 1}")
    # The run moved the weights: a do-nothing engine could not pass.
    assert max(np.max(np.abs(a - b)) for a, b in zip(model.get_weights(), w0)) > 1e-3
    return model


CASES = {
    "sgd": (lambda: O.SGD(0.1), "sgd", {}),
    "sgd_momentum_pytorch": (lambda: O.SGD(0.1, momentum=0.9), "sgd", dict(momentum=0.9)),
    "sgd_momentum_course": (lambda: O.SGD(0.1, momentum=0.9, dampening=0.9), "sgd",
                            dict(momentum=0.9, dampening=0.9)),
    "sgd_nesterov": (lambda: O.SGD(0.1, momentum=0.8, nesterov=True), "sgd",
                     dict(momentum=0.8, nesterov=True)),
    "sgd_weight_decay": (lambda: O.SGD(0.1, momentum=0.5, weight_decay=0.05), "sgd",
                         dict(momentum=0.5, weight_decay=0.05)),
    "rmsprop": (lambda: O.RMSprop(0.01, rho=0.9, epsilon=1e-7), "rmsprop",
                dict(alpha=0.9, eps=1e-7)),
    "rmsprop_weight_decay": (lambda: O.RMSprop(0.01, weight_decay=0.1), "rmsprop",
                             dict(alpha=0.99, eps=1e-8, weight_decay=0.1)),
    "adam": (lambda: O.Adam(0.01, beta_1=0.8, beta_2=0.95), "adam",
             dict(beta1=0.8, beta2=0.95, eps=1e-8)),
    "adam_l2_coupled": (lambda: O.Adam(0.01, weight_decay=0.1), "adam",
                        dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1)),
    "adamw": (lambda: O.AdamW(0.01, weight_decay=0.2), "adamw",
              dict(beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.2)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_trajectory(case):
    make, kind, hyper = CASES[case]
    lr = make().learning_rate
    run_both(make(), kind, hyper, lambda step: lr)


@pytest.mark.parametrize("case", ["sgd_momentum_course", "adam"])
def test_trajectory_with_l2_regularisation(case):
    make, kind, hyper = CASES[case]
    lr = make().learning_rate
    run_both(make(), kind, hyper, lambda step: lr, l2=0.05)


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "mse"])
def test_trajectory_other_losses(loss):
    run_both(O.SGD(0.05, momentum=0.9), "sgd", dict(momentum=0.9), lambda step: 0.05, loss=loss)


def expected_inverse_time(step, initial=0.2, decay_steps=3, rate=0.5, staircase=True):
    ratio = step // decay_steps if staircase else step / decay_steps
    return initial / (1.0 + rate * ratio)


@pytest.mark.parametrize("staircase", [True, False])
def test_trajectory_with_inverse_time_decay(staircase):
    schedule = O.schedules.InverseTimeDecay(0.2, decay_steps=3, decay_rate=0.5,
                                            staircase=staircase)
    run_both(O.SGD(schedule, momentum=0.9, dampening=0.9), "sgd",
             dict(momentum=0.9, dampening=0.9),
             lambda step: expected_inverse_time(step, staircase=staircase))


def test_learning_rate_used_at_each_step():
    """Plain SGD: p_new = p − lr·g, so the lr the engine applied at each step is
    recovered from the weight change and the engine's own gradient."""
    schedule = O.schedules.InverseTimeDecay(0.2, decay_steps=3, decay_rate=0.5, staircase=True)
    x, y = problem()
    model = mlp()
    model.compile(optimizer=O.SGD(schedule), loss="softmax_cross_entropy")
    model.set_weights(initial_weights())
    used = []
    for step in range(STEPS):
        sl = slice((step * BATCH) % N, (step * BATCH) % N + BATCH)
        before = model._engine.get_parameters()
        _, grad = model._engine.loss_and_gradients([x[sl]], [y[sl]])
        model.train_on_batch(x[sl], y[sl])
        delta = before - model._engine.get_parameters()
        big = np.abs(grad) > 1e-3
        lrs = delta[big] / grad[big]
        assert np.ptp(lrs) < STEP_FROM_DIFFERENCE["rtol"] * lrs.max()  # one learning rate for every parameter
        used.append(float(np.median(lrs)))
    expected = [expected_inverse_time(s) for s in range(STEPS)]
    np.testing.assert_allclose(used, expected, rtol=STEP_FROM_DIFFERENCE["rtol"])
    # staircase: constant within each block of decay_steps, strictly lower after it.
    assert used[0] == pytest.approx(used[2]) and used[3] < used[2]
    assert model._engine.steps == STEPS
