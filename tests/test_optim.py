import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from reference import optim as ref
from tolerances import CLOSED_FORM, assert_close

EXACT = CLOSED_FORM[np.dtype(np.float64)]  # one optimizer step by hand

STEPS = 20

# (name, hyper-parameters): every option of every optimizer.
SGD = [
    ("plain", dict(lr=0.1)),
    ("plain+wd", dict(lr=0.1, weight_decay=0.05)),
    ("momentum", dict(lr=0.05, momentum=0.9)),
    ("ewa-momentum", dict(lr=0.05, momentum=0.9, dampening=0.9)),  # the course's β form
    ("nesterov", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("nesterov+wd", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01)),
    ("momentum+damp+wd", dict(lr=0.05, momentum=0.5, dampening=0.3, weight_decay=0.1)),
]
RMSPROP = [
    ("default", dict(lr=0.01)),
    ("options", dict(lr=0.02, alpha=0.9, eps=1e-6, weight_decay=0.05)),
]
ADAM = [
    ("default", dict(lr=0.05)),
    ("betas+eps", dict(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6)),
    ("l2", dict(lr=0.05, weight_decay=0.1)),
    ("adamw", dict(lr=0.05, weight_decay=0.1, decoupled=True)),
    ("adamw-no-wd", dict(lr=0.05, decoupled=True)),
]


@pytest.fixture
def threads():
    before = cn.get_num_threads()
    yield cn.set_num_threads
    cn.set_num_threads(before)


def problem(shape, dtype, seed):
    """A start point and one random gradient per step (the same for both sides)."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal(shape).astype(dtype)
    grads = [rng.standard_normal(shape).astype(dtype) for _ in range(STEPS)]
    return p, grads


def run_sgd(p, grads, hyper, naive=False):
    p, v = p.copy(), np.zeros_like(p)
    for g in grads:
        cn.ops.sgd_step(p, g, v, naive=naive, **hyper)
    return p, v


def run_sgd_ref(p, grads, hyper):
    p, v = p.astype(np.float64), np.zeros(p.shape)
    for g in grads:
        p, v = ref.sgd_step(p, g.astype(np.float64), v, **hyper)
    return p, v


def run_rmsprop(p, grads, hyper, naive=False):
    p, s = p.copy(), np.zeros_like(p)
    for g in grads:
        cn.ops.rmsprop_step(p, g, s, naive=naive, **hyper)
    return p, s


def run_rmsprop_ref(p, grads, hyper):
    p, s = p.astype(np.float64), np.zeros(p.shape)
    for g in grads:
        p, s = ref.rmsprop_step(p, g.astype(np.float64), s, **hyper)
    return p, s


def run_adam(p, grads, hyper, naive=False):
    p, m, v = p.copy(), np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        cn.ops.adam_step(p, g, m, v, t, naive=naive, **hyper)
    return p, m, v


def run_adam_ref(p, grads, hyper):
    p, m, v = p.astype(np.float64), np.zeros(p.shape), np.zeros(p.shape)
    for t, g in enumerate(grads, start=1):
        p, m, v = ref.adam_step(p, g.astype(np.float64), m, v, t, **hyper)
    return p, m, v


CASES = ([("sgd", n, h) for n, h in SGD] + [("rmsprop", n, h) for n, h in RMSPROP]
         + [("adam", n, h) for n, h in ADAM])
RUN = {"sgd": (run_sgd, run_sgd_ref), "rmsprop": (run_rmsprop, run_rmsprop_ref),
       "adam": (run_adam, run_adam_ref)}


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("opt, name, hyper", CASES, ids=[f"{o}-{n}" for o, n, _ in CASES])
def test_trajectory_matches_reference(opt, name, hyper, dtype, naive):
    run, run_ref = RUN[opt]
    p0, grads = problem((13, 7), dtype, seed=len(name))
    got = run(p0, grads, hyper, naive=naive)
    want = run_ref(p0, grads, hyper)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == dtype
        assert_close(g, w, op=f"{opt}_step", what=f"{name} state {i} after {STEPS} steps")
    # The parameters moved by far more than the tolerance, so a no-op would fail.
    assert np.max(np.abs(want[0] - p0)) > 0.05


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("opt, name, hyper", CASES, ids=[f"{o}-{n}" for o, n, _ in CASES])
def test_fast_equals_naive_bitwise_on_a_parallel_arena(opt, name, hyper, dtype, threads):
    # 100k elements is above the 32k grain: the fused kernel splits across
    # threads. Each element is updated by the same operations in the same order
    # in both versions (IEEE, no FMA contraction), so they agree bit for bit.
    run, run_ref = RUN[opt]
    p0, grads = problem(100_003, dtype, seed=3)
    grads = grads[:5]
    slow = run(p0, grads, hyper, naive=True)
    for t in (1, 3):
        threads(t)
        fast = run(p0, grads, hyper)
        for f, s in zip(fast, slow):
            np.testing.assert_array_equal(f.view(np.uint8), s.view(np.uint8))
    for f, w in zip(fast, run_ref(p0, grads, hyper)):
        assert_close(f, w, op=f"{opt}_step", what=f"{name} on a 100k arena")


def test_first_sgd_momentum_step_equals_plain_step():
    # v starts at 0 and dampening = 0, so the first step is p -= lr·g (PyTorch).
    p, g, v = np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.zeros(2)
    cn.ops.sgd_step(p, g, v, 0.1, momentum=0.9)
    np.testing.assert_array_equal(v, g)
    np.testing.assert_array_equal(p, np.array([1.0, -2.0]) - 0.1 * g)


def test_first_sgd_step_with_dampening_is_the_course_average_not_pytorch():
    # v = μ·v + (1 − dampening)·g from v = 0: the first step is (1 − dampening)·g,
    # the course's v = βv + (1 − β)dW. PyTorch's SGD instead sets its buffer to g
    # on the first step (no dampening) and dampens only later steps.
    p, g, v = np.array([1.0, -2.0]), np.array([0.5, 0.25]), np.zeros(2)
    cn.ops.sgd_step(p, g, v, 0.1, momentum=0.9, dampening=0.9)
    np.testing.assert_array_equal(v, (1 - 0.9) * g)
    np.testing.assert_array_equal(p, np.array([1.0, -2.0]) - 0.1 * ((1 - 0.9) * g))
    assert not np.allclose(v, g)  # PyTorch's first buffer
    g2 = np.array([-1.0, 2.0])
    cn.ops.sgd_step(p, g2, v, 0.1, momentum=0.9, dampening=0.9)
    np.testing.assert_allclose(v, 0.9 * (0.1 * g) + 0.1 * g2, **EXACT)


def test_single_adam_step_by_hand():
    # t = 1: m̂ = g and v̂ = g², so the step is lr·g/(|g| + eps) ≈ lr·sign(g).
    p, g = np.array([1.0, 1.0]), np.array([0.2, -3.0])
    m, v = np.zeros(2), np.zeros(2)
    cn.ops.adam_step(p, g, m, v, 1, 0.01)
    np.testing.assert_allclose(m, 0.1 * g, **EXACT)
    np.testing.assert_allclose(v, 0.001 * g**2, **EXACT)
    np.testing.assert_allclose(p, 1.0 - 0.01 * g / (np.abs(g) + 1e-8), **EXACT)


def test_adamw_decays_the_weight_not_the_gradient():
    # Zero gradient: Adam's L2 term still moves p through m/√v, AdamW only shrinks it.
    p, g = np.array([2.0]), np.zeros(1)
    m, v = np.zeros(1), np.zeros(1)
    cn.ops.adam_step(p, g, m, v, 1, 0.1, weight_decay=0.5, decoupled=True)
    np.testing.assert_allclose(p, [2.0 * (1 - 0.1 * 0.5)], **EXACT)
    assert m[0] == 0 and v[0] == 0


def test_lr_zero_keeps_param_and_updates_state():
    p, g, s = np.ones(3), np.full(3, 2.0), np.zeros(3)
    cn.ops.rmsprop_step(p, g, s, 0.0)
    np.testing.assert_array_equal(p, np.ones(3))
    np.testing.assert_allclose(s, 0.01 * 4.0, **EXACT)


def test_plain_sgd_accepts_no_velocity():
    p, g = np.ones(3), np.full(3, 2.0)
    cn.ops.sgd_step(p, g, None, 0.5)
    np.testing.assert_array_equal(p, np.zeros(3))


def test_updates_the_callers_arrays_in_place_and_accepts_strided_grad():
    p = np.ones((4, 3), np.float32)
    m, v = np.zeros_like(p), np.zeros_like(p)
    g = np.ones((4, 6), np.float32)[:, ::2]  # read-only input: copied, fine
    ids = (id(p), id(m), id(v))
    assert cn.ops.adam_step(p, g, m, v, 1, 0.1) is None
    assert (id(p), id(m), id(v)) == ids
    assert np.all(p < 1) and np.all(m > 0) and np.all(v > 0)


def f32(*shape):
    return np.ones(shape, np.float32)


def read_only(a):
    a.setflags(write=False)
    return a


def _aliased():
    m = np.zeros(3)
    return cn.ops.adam_step(np.ones(3), np.ones(3), m, m, 1, 0.1)


BAD = [
    # arrays
    (lambda: cn.ops.sgd_step(f32(4, 6)[:, ::2], f32(4, 3), f32(4, 3), 0.1), ValueError,
     r"sgd_step: param must be C-contiguous \(it is updated in place\), got a strided view"),
    (lambda: cn.ops.sgd_step(f32(3), f32(3), f32(6)[::2], 0.1, momentum=0.9), ValueError,
     r"sgd_step: velocity must be C-contiguous"),
    (lambda: cn.ops.sgd_step(f32(3), np.ones(3), f32(3), 0.1), TypeError,
     r"sgd_step: grad must have the dtype of param \(float32\), got float64"),
    (lambda: cn.ops.adam_step(f32(3), f32(3), f32(3), np.ones(3), 1, 0.1), TypeError,
     r"adam_step: v must have the dtype of param \(float32\), got float64"),
    (lambda: cn.ops.sgd_step(np.ones(3, np.int64), np.ones(3), np.ones(3), 0.1), TypeError,
     r"sgd_step: param must be float32 or float64, got int64"),
    (lambda: cn.ops.sgd_step(f32(3), f32(4), f32(3), 0.1), ValueError,
     r"sgd_step: grad must have shape \(3,\), got \(4,\)"),
    (lambda: cn.ops.rmsprop_step(f32(2, 3), f32(2, 3), f32(3, 2), 0.1), ValueError,
     r"rmsprop_step: square_avg must have shape \(2, 3\), got \(3, 2\)"),
    (lambda: cn.ops.adam_step(read_only(f32(3)), f32(3), f32(3), f32(3), 1, 0.1), ValueError,
     r"adam_step: param must be writeable \(it is updated in place\), got a read-only array"),
    (lambda: cn.ops.adam_step(f32(3), f32(3), read_only(f32(3)), f32(3), 1, 0.1), ValueError,
     r"adam_step: m must be writeable"),
    (lambda: cn.ops.sgd_step([1.0, 2.0], np.ones(2), np.zeros(2), 0.1), TypeError,
     r"sgd_step: param must be a numpy array \(it is updated in place\), got list"),
    (lambda: cn.ops.rmsprop_step(np.ones(2), np.ones(2), [0.0, 0.0], 0.1), TypeError,
     r"rmsprop_step: square_avg must be a numpy array \(it is updated in place\), got list"),
    (lambda: cn.ops.sgd_step(np.ones(2), np.ones(2), None, 0.1, momentum=0.9), ValueError,
     r"sgd_step: velocity must be an array when momentum > 0, got None"),
    (_aliased, ValueError, r"adam_step: v must not share memory with m"),
    # hyper-parameters
    (lambda: cn.ops.sgd_step(f32(3), f32(3), f32(3), -1.0), ValueError,
     r"sgd_step: lr must be finite and >= 0, got -1"),
    (lambda: cn.ops.sgd_step(f32(3), f32(3), f32(3), float("nan")), ValueError,
     r"sgd_step: lr must be finite and >= 0, got nan"),
    (lambda: cn.ops.adam_step(f32(3), f32(3), f32(3), f32(3), 1, float("inf")), ValueError,
     r"adam_step: lr must be finite and >= 0, got inf"),
    (lambda: cn.ops.sgd_step(f32(3), f32(3), f32(3), 0.1, momentum=1.5), ValueError,
     r"sgd_step: momentum must be in \[0, 1\], got 1.5"),
    (lambda: cn.ops.sgd_step(f32(3), f32(3), f32(3), 0.1, momentum=0.9, dampening=-0.1),
     ValueError, r"sgd_step: dampening must be in \[0, 1\], got -0.1"),
    (lambda: cn.ops.sgd_step(f32(3), f32(3), f32(3), 0.1, nesterov=True), ValueError,
     r"sgd_step: nesterov requires momentum > 0 and dampening == 0, got momentum=0, dampening=0"),
    (lambda: cn.ops.sgd_step(f32(3), f32(3), f32(3), 0.1, momentum=0.9, dampening=0.5,
                             nesterov=True), ValueError,
     r"sgd_step: nesterov requires momentum > 0 and dampening == 0, got momentum=0.9, "
     r"dampening=0.5"),
    (lambda: cn.ops.sgd_step(f32(3), f32(3), f32(3), 0.1, weight_decay=-0.01), ValueError,
     r"sgd_step: weight_decay must be finite and >= 0, got -0.01"),
    (lambda: cn.ops.rmsprop_step(f32(3), f32(3), f32(3), 0.1, alpha=1.01), ValueError,
     r"rmsprop_step: alpha must be in \[0, 1\], got 1.01"),
    (lambda: cn.ops.rmsprop_step(f32(3), f32(3), f32(3), 0.1, eps=0.0), ValueError,
     r"rmsprop_step: eps must be finite and > 0, got 0"),
    (lambda: cn.ops.adam_step(f32(3), f32(3), f32(3), f32(3), 1, 0.1, beta1=1.0), ValueError,
     r"adam_step: beta1 must be in \[0, 1\), got 1"),
    (lambda: cn.ops.adam_step(f32(3), f32(3), f32(3), f32(3), 1, 0.1, beta2=-0.5), ValueError,
     r"adam_step: beta2 must be in \[0, 1\), got -0.5"),
    (lambda: cn.ops.adam_step(f32(3), f32(3), f32(3), f32(3), 1, 0.1, eps=-1e-8), ValueError,
     r"adam_step: eps must be finite and > 0, got -1e-08"),
    (lambda: cn.ops.adam_step(f32(3), f32(3), f32(3), f32(3), 0, 0.1), ValueError,
     r"adam_step: step must be >= 1, got 0"),
    (lambda: cn.ops.adam_step(f32(3), f32(3), f32(3), f32(3), 1, 0.1, weight_decay=-1.0,
                              decoupled=True), ValueError,
     r"adam_step: weight_decay must be finite and >= 0, got -1"),
]


@pytest.mark.parametrize("call, exc, match", BAD)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_rejected_call_leaves_everything_untouched():
    p, g, m = np.ones(3), np.ones(3), np.full(3, 0.5)
    v_bad = np.zeros(4)
    with pytest.raises(ValueError, match=r"adam_step: v must have shape \(3,\), got \(4,\)"):
        cn.ops.adam_step(p, g, m, v_bad, 1, 0.1)
    np.testing.assert_array_equal(p, np.ones(3))
    np.testing.assert_array_equal(m, np.full(3, 0.5))
    np.testing.assert_array_equal(v_bad, np.zeros(4))


@pytest.mark.parametrize(
    "call",
    [
        lambda p, s: cn.ops.sgd_step(p, p.copy(), s, 0.1, momentum=1.0, dampening=1.0),
        lambda p, s: cn.ops.sgd_step(p, p.copy(), s, 0.0, momentum=0.0),
        lambda p, s: cn.ops.rmsprop_step(p, p.copy(), s, 0.1, alpha=0.0),
        lambda p, s: cn.ops.rmsprop_step(p, p.copy(), s, 0.1, alpha=1.0),
        lambda p, s: cn.ops.adam_step(p, p.copy(), s, np.zeros_like(p), 1, 0.1, beta1=0.0,
                                      beta2=0.0),
    ],
)
def test_boundary_hyper_parameters_are_accepted(call):
    p, s = np.ones(4), np.zeros(4)
    call(p, s)
    assert np.all(np.isfinite(p))
