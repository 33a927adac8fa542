import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import batch_norm as ref
from tolerances import GRADCHECK_THRESHOLD, STATISTIC, assert_close

ops = cn.ops

# (N, C) features and (N, C, H, W) images: more than one 64-channel block on the
# (N, C) route (with a remainder), planes shorter and longer than the kernels'
# 8-lane sums (S = 1, 7, 16, 35), a single example with several pixels.
SHAPES = [(5, 3), (7, 70), (2, 4, 1, 1), (3, 2, 1, 7), (4, 3, 4, 4), (1, 5, 5, 7), (3, 6, 5, 7)]


def gid(v):
    return str(v).replace(" ", "")


def _data(shape, dtype, rng, offset=0.0):
    C = shape[1]
    x = (rng.standard_normal(shape) * 2.0 + offset).astype(dtype)
    gamma = rng.uniform(0.5, 2.0, C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    running_mean = rng.standard_normal(C).astype(dtype)
    running_var = rng.uniform(0.5, 2.0, C).astype(dtype)
    return x, gamma, beta, running_mean, running_var


# ---------------------------------------------------------------- reference self-checks

# Recorded once from torch 2.13 (float64): torch.nn.functional.batch_norm with
# momentum 0.3, eps 1e-3, then torch.autograd.grad with DY; two training steps
# (x, then 2x + 1), then inference on x with the updated running statistics.
TORCH_X = np.array([[[[1., 2.]], [[0., -3.]]], [[[4., -1.]], [[2., 5.]]], [[[0.5, 3.]], [[-2., 1.]]]])
TORCH_DY = np.array([[[[1., -1.]], [[0.5, 2.]]], [[[0., 3.]], [[-1., 1.]]], [[[2., 0.5]], [[1., -2.]]]])
TORCH_GAMMA, TORCH_BETA = np.array([1.5, -0.5]), np.array([0.25, 1.0])
TORCH_RUNNING = (np.array([0.5, -1.0]), np.array([2.0, 0.5]))
TORCH = dict(
    y=[-0.28227262368101946, 0.6301947312007283, 1.0950517666149664, 1.6653623663047643,
       2.4551294409642237, -2.107207333444515, 0.714844700155101, 0.14453410046530316,
       -0.7385063011218933, 1.5426620860824762, 1.4752588330748317, 0.9049482333850337],
    dx=[-0.25907297325970463, -1.5095301067377425, -0.029777818177959988, -0.2084447272457199,
        0.5518924007149208, 0.4169065839328757, 0.18438522114884628, -0.30231023608815805,
        0.36615559347931437, 0.433648501870337, -0.05383732427483363, 0.4099848846378253],
    dgamma=[-6.209847276278561, -2.946604765063956], dbeta=[5.5, 1.5],
    running1=([0.825, -0.5499999999999999], [2.3725, 2.8400000000000003]),
    running2=([1.8275, 0.21500000000000002], [5.550749999999999, 11.948]),
    y_eval=[-0.27679823459297925, 0.359815946184035, 1.0310987321394496, 1.4650345294340936,
            1.6330443077380634, -1.5500265961470077, 0.7418082006096869, 0.30787240331504284,
            -0.5951053249814864, 0.9964301269610493, 1.3203892636692123, 0.8864534663745682],
    dx_eval=[0.6366141807770143, -0.6366141807770143, -0.07232263288244067, -0.2892905315297627,
             0.0, 1.9098425423310428, 0.14464526576488135, -0.14464526576488135,
             1.2732283615540285, 0.31830709038850713, -0.14464526576488135, 0.2892905315297627],
    dgamma_eval=[-4.902459703800323, -2.118329917126687], dbeta_eval=[5.5, 1.5],
)


def _torch_case(forward, backward):
    """Runs the recorded torch case through forward(x, rm, rv, training) -> (y, mean,
    invstd, rm, rv) and backward(mean, invstd, training) -> (dx, dgamma, dbeta)."""
    rm, rv = (a.copy() for a in TORCH_RUNNING)
    y, mean, invstd, rm, rv = forward(TORCH_X, rm, rv, True)
    got = dict(y=y, running1=(rm.copy(), rv.copy()))  # the ops update rm, rv in place
    got["dx"], got["dgamma"], got["dbeta"] = backward(mean, invstd, True)
    _, _, _, rm, rv = forward(2 * TORCH_X + 1, rm, rv, True)
    got["running2"] = (rm, rv)
    y, mean, invstd, _, _ = forward(TORCH_X, rm, rv, False)
    got["y_eval"] = y
    got["dx_eval"], got["dgamma_eval"], got["dbeta_eval"] = backward(mean, invstd, False)
    return got


def _assert_torch_values(got, dtype=np.float64):
    for key, expected in TORCH.items():
        if key.startswith("running"):
            for a, e in zip(got[key], expected):
                assert_close(a, e, dtype, op="batch_norm", what=key)
        else:
            assert_close(np.ravel(got[key]), expected, dtype, op="batch_norm", what=key)


def test_reference_matches_recorded_torch_values():
    def forward(x, rm, rv, training):
        return ref.batch_norm_forward(x, TORCH_GAMMA, TORCH_BETA, rm, rv, training, 0.3, 1e-3)

    def backward(mean, invstd, training):
        return ref.batch_norm_backward(TORCH_DY, TORCH_X, TORCH_GAMMA, mean, invstd, training)
    _assert_torch_values(_torch_case(forward, backward))


def test_reference_hand_values():
    # One channel, values 1 and 3: μ = 2, σ² = 1 (biased), unbiased 2.
    x = np.array([[1.0], [3.0]])
    y, mean, invstd, rm, rv = ref.batch_norm_forward(x, None, None, np.zeros(1), np.ones(1), True, 0.1, 0.0)
    np.testing.assert_allclose(y.ravel(), [-1.0, 1.0])
    assert mean[0] == 2.0 and invstd[0] == 1.0
    np.testing.assert_allclose(rm, [0.2])        # 0.9·0 + 0.1·2
    np.testing.assert_allclose(rv, [1.1])        # 0.9·1 + 0.1·2
    # A single value per channel leaves the running variance alone.
    _, _, _, rm, rv = ref.batch_norm_forward(np.array([[5.0]]), None, None, np.zeros(1), np.ones(1), True, 0.5)
    assert rm[0] == 2.5 and rv[0] == 1.0


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 3)], ids=gid)
def test_reference_gradients(shape, training, rng):
    x, gamma, beta, rm, rv = _data(shape, np.float64, rng)
    P = projection(shape, 11)

    def loss():
        return float(np.sum(P * ref.batch_norm_forward(x, gamma, beta, rm, rv, training)[0]))
    _, mean, invstd, _, _ = ref.batch_norm_forward(x, gamma, beta, rm, rv, training)
    dx, dgamma, dbeta = ref.batch_norm_backward(P, x, gamma, mean, invstd, training)
    for analytic, wrt in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------- parity with the reference


@pytest.mark.parametrize("naive", [False, True])
def test_recorded_torch_values(naive):
    def forward(x, rm, rv, training):
        y, mean, invstd = ops.batch_norm_forward(x, TORCH_GAMMA, TORCH_BETA, rm, rv, training, 0.3, 1e-3,
                                                 naive=naive)
        return y, mean, invstd, rm, rv

    def backward(mean, invstd, training):
        return ops.batch_norm_backward(TORCH_DY, TORCH_X, TORCH_GAMMA, mean, invstd, training, naive=naive)
    _assert_torch_values(_torch_case(forward, backward))


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "no_affine"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=gid)
def test_matches_reference(shape, dtype, training, affine, rng):
    x, gamma, beta, rm, rv = _data(shape, dtype, rng)
    if not affine:
        gamma = beta = None
    dy = rng.standard_normal(shape).astype(dtype)
    ey, emean, einvstd, erm, erv = ref.batch_norm_forward(x, gamma, beta, rm, rv, training, 0.2, 1e-3)
    edx, edgamma, edbeta = ref.batch_norm_backward(dy, x, gamma, emean, einvstd, training)
    for naive in (False, True):
        rm_n, rv_n = rm.copy(), rv.copy()
        y, mean, invstd = ops.batch_norm_forward(x, gamma, beta, rm_n, rv_n, training, 0.2, 1e-3, naive=naive)
        assert y.dtype == mean.dtype == invstd.dtype == dtype and y.shape == shape
        what = f"naive={naive}"
        assert_close(y, ey, op="batch_norm_forward", what="y " + what)
        assert_close(mean, emean, op="batch_norm_forward", what="save_mean " + what)
        assert_close(invstd, einvstd, op="batch_norm_forward", what="save_invstd " + what)
        assert_close(rm_n, erm, op="batch_norm_forward", what="running_mean " + what)
        assert_close(rv_n, erv, op="batch_norm_forward", what="running_var " + what)
        dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, invstd, training, naive=naive)
        assert dx.dtype == dgamma.dtype == dbeta.dtype == dtype
        assert_close(dx, edx, op="batch_norm_backward", what="dx " + what)
        assert_close(dgamma, edgamma, op="batch_norm_backward", what="dgamma " + what)
        assert_close(dbeta, edbeta, op="batch_norm_backward", what="dbeta " + what)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(6, 70), (4, 3, 5, 6)], ids=gid)
def test_running_statistics_after_several_steps(shape, dtype, rng):
    _, gamma, beta, rm, rv = _data(shape, dtype, rng)
    expected_rm, expected_rv = rm.astype(np.float64), rv.astype(np.float64)
    for step in range(5):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(dtype)
        ops.batch_norm_forward(x, gamma, beta, rm, rv, True, momentum=0.25)
        _, _, _, expected_rm, expected_rv = ref.batch_norm_forward(x, gamma, beta, expected_rm, expected_rv,
                                                                   True, 0.25)
    assert rm.dtype == rv.dtype == dtype
    assert_close(rm, expected_rm, op="batch_norm_forward", what="running_mean")
    assert_close(rv, expected_rv, op="batch_norm_forward", what="running_var")


def test_running_statistics_are_updated_in_place_only_when_training(rng):
    x, gamma, beta, rm, rv = _data((4, 3, 2, 2), np.float32, rng)
    before = rm.copy(), rv.copy()
    y, mean, invstd = ops.batch_norm_forward(x, gamma, beta, rm, rv, False)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])
    # In inference the saved statistics are the running ones.
    np.testing.assert_array_equal(mean, rm)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(rv.astype(np.float64) + 1e-5), **STATISTIC[invstd.dtype])
    # Read-only running statistics are fine when nothing writes them.
    rm.flags.writeable = rv.flags.writeable = False
    np.testing.assert_array_equal(ops.batch_norm_forward(x, gamma, beta, rm, rv, False)[0], y)
    rm, rv = before[0].copy(), before[1].copy()
    ops.batch_norm_forward(x, gamma, beta, rm, rv, True)
    assert not np.array_equal(rm, before[0]) and not np.array_equal(rv, before[1])


def test_training_without_running_statistics(rng):
    x, gamma, beta, rm, rv = _data((3, 4, 2, 5), np.float64, rng)
    y, mean, invstd = ops.batch_norm_forward(x, gamma, beta, None, None, True)
    ey, emean, einvstd, _, _ = ref.batch_norm_forward(x, gamma, beta, None, None, True)
    for got, expected in ((y, ey), (mean, emean), (invstd, einvstd)):
        assert_close(got, expected, op="batch_norm_forward")
    np.testing.assert_array_equal(y, ops.batch_norm_forward(x, gamma, beta, rm, rv, True)[0])


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_variance_is_robust_to_a_large_mean(dtype, rng):
    # σ = 1 around μ = 3000: E[x²] − μ² in float32 would lose every digit of σ².
    x = (3000.0 + rng.standard_normal((8, 3, 16, 16))).astype(dtype)
    _, mean, invstd = ops.batch_norm_forward(x, None, None, None, None, True)
    _, emean, einvstd, _, _ = ref.batch_norm_forward(x, None, None, None, None, True)
    np.testing.assert_allclose(mean, emean, **STATISTIC[np.dtype(dtype)])
    np.testing.assert_allclose(invstd, einvstd, **STATISTIC[np.dtype(dtype)])


def test_strided_inputs_are_copied_not_misread(rng):
    x = rng.standard_normal((4, 3, 6, 10))[:, :, :, ::2]
    gamma = rng.standard_normal(6)[::2]
    y, mean, invstd = ops.batch_norm_forward(x, gamma, None, None, None, True)
    ey, emean, einvstd, _, _ = ref.batch_norm_forward(x, gamma, None, None, None, True)
    assert_close(y, ey, op="batch_norm_forward")
    dy = rng.standard_normal((4, 3, 6, 10))[:, :, :, 1::2]
    for got, expected in zip(ops.batch_norm_backward(dy, x, gamma, mean, invstd),
                             ref.batch_norm_backward(dy, x, gamma, emean, einvstd)):
        assert_close(got, expected, op="batch_norm_backward")


def test_parameter_gradients_are_returned_without_gamma(rng):
    x, _, _, _, _ = _data((5, 4), np.float64, rng)
    dy = rng.standard_normal((5, 4))
    _, mean, invstd = ops.batch_norm_forward(x, None, None, None, None, True)
    dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, None, mean, invstd)
    edx, edgamma, edbeta = ref.batch_norm_backward(dy, x, None, mean, invstd)
    assert_close(dx, edx, op="batch_norm_backward")
    assert_close(dgamma, edgamma, op="batch_norm_backward")
    assert_close(dbeta, edbeta, op="batch_norm_backward")


# ---------------------------------------------------------------- NaN and ±inf

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", [(6, 70), (4, 3, 5, 6)], ids=gid)
@pytest.mark.parametrize("training", [True, False])
def test_nan_and_inf_spread_as_in_numpy(shape, training, dtype, rng):
    # Training (PyTorch's batch_norm gives the same): a NaN or ±inf in a channel
    # makes its mean or variance NaN, so that channel's y, saved statistics,
    # running variance and gradients are all NaN; the other channels are
    # untouched. Inference: only the bad value's own output is NaN (or ±inf).
    x, gamma, beta, rm, rv = _data(shape, dtype, rng)
    x[1, 0], x[2, 1] = np.nan, np.inf
    x.reshape(shape[0], shape[1], -1)[0, 2, 0] = -np.inf
    dy = rng.standard_normal(shape).astype(dtype)
    dy.reshape(shape[0], shape[1], -1)[3, 2, 0] = np.nan
    with np.errstate(invalid="ignore"):  # inf − inf in the reference
        ey, emean, einvstd, erm, erv = ref.batch_norm_forward(x, gamma, beta, rm, rv, training, 0.2, 1e-3)
        edx, edgamma, edbeta = ref.batch_norm_backward(dy, x, gamma, emean, einvstd, training)
    assert np.isnan(ey).any() and np.isnan(edx).any()
    for naive in (False, True):
        rm_n, rv_n = rm.copy(), rv.copy()
        y, mean, invstd = ops.batch_norm_forward(x, gamma, beta, rm_n, rv_n, training, 0.2, 1e-3, naive=naive)
        dx, dgamma, dbeta = ops.batch_norm_backward(dy, x, gamma, mean, invstd, training, naive=naive)
        for name, got, expected in (("y", y, ey), ("save_mean", mean, emean), ("save_invstd", invstd, einvstd),
                                    ("running_mean", rm_n, erm), ("running_var", rv_n, erv),
                                    ("dx", dx, edx), ("dgamma", dgamma, edgamma), ("dbeta", dbeta, edbeta)):
            assert_close(got, expected, op="batch_norm", what=f"{name} naive={naive}")
        if training:
            assert np.isnan(y[:, :3]).all() and np.isfinite(y[:, 3:]).all()


# ---------------------------------------------------------------- gradient checks (float64)


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 3, 4)], ids=gid)
def test_gradient_check(shape, training, naive, rng):
    x, gamma, beta, rm, rv = _data(shape, np.float64, rng)
    P = projection(shape, 12)

    def loss():
        # Copies of the running statistics: every evaluation starts from the same ones.
        return float(np.sum(P * ops.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training,
                                                       naive=naive)[0]))
    _, mean, invstd = ops.batch_norm_forward(x, gamma, beta, rm.copy(), rv.copy(), training, naive=naive)
    dx, dgamma, dbeta = ops.batch_norm_backward(P, x, gamma, mean, invstd, training, naive=naive)
    for analytic, wrt in ((dx, x), (dgamma, gamma), (dbeta, beta)):
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------- threads


@pytest.fixture
def restore_threads():
    before = cn.get_num_threads()
    yield
    cn.set_num_threads(before)


@pytest.mark.parametrize("shape", [(8, 64, 32, 32), (512, 300)], ids=gid)
def test_one_and_two_threads_agree_bitwise(shape, rng, restore_threads):
    # Large enough that every kernel splits its channels across two threads.
    x, gamma, beta, rm, rv = _data(shape, np.float32, rng)
    dy = rng.standard_normal(shape).astype(np.float32)
    results = []
    for threads in (1, 2):
        cn.set_num_threads(threads)
        rm_t, rv_t = rm.copy(), rv.copy()
        out = list(ops.batch_norm_forward(x, gamma, beta, rm_t, rv_t, True)) + [rm_t, rv_t]
        out += ops.batch_norm_backward(dy, x, gamma, out[1], out[2])
        y, mean, invstd = ops.batch_norm_forward(x, gamma, beta, rm, rv, False)
        out += [y, *ops.batch_norm_backward(dy, x, gamma, mean, invstd, False)]
        results.append(out)
    for a, b in zip(*results):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()


# ---------------------------------------------------------------- bad inputs

X = np.ones((2, 3, 2, 2), np.float32)
C3 = np.ones(3, np.float32)


def _stats():
    return np.zeros(3, np.float32), np.ones(3, np.float32)


def _forward(x=X, gamma=C3, beta=C3, running_mean="fresh", running_var="fresh", training=True, **kw):
    rm, rv = _stats()
    rm = rm if isinstance(running_mean, str) else running_mean
    rv = rv if isinstance(running_var, str) else running_var
    return ops.batch_norm_forward(x, gamma, beta, rm, rv, training, **kw)


def _backward(dy=X, x=X, gamma=C3, save_mean=C3, save_invstd=C3, training=True):
    return ops.batch_norm_backward(dy, x, gamma, save_mean, save_invstd, training)


SHARED = np.zeros(6, np.float32)
F = "batch_norm_forward"
B = "batch_norm_backward"


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: _forward(x=np.ones((2, 3, 4), np.float32)), ValueError,
         F + r": x must be 2-D \(batch, channels\) or 4-D \(batch, channels, height, width\), got shape \(2, 3, 4\)"),
        (lambda: _forward(x=np.ones((0, 3), np.float32)), ValueError,
         F + r": x must have positive dimensions, got shape \(0, 3\)"),
        (lambda: _forward(x=X.astype(np.int32)), TypeError, F + r": x must be float32 or float64, got int32"),
        (lambda: _forward(gamma=np.ones(3)), TypeError,
         F + r": gamma must have the dtype of x \(float32\), got float64"),
        (lambda: _forward(beta=np.ones(4, np.float32)), ValueError, F + r": beta must have shape \(3,\), got \(4,\)"),
        (lambda: _forward(gamma="one"), TypeError, F + r": gamma must have the dtype of x"),
        (lambda: _forward(momentum=1.5), ValueError, F + r": momentum must be in \[0, 1\], got 1.5"),
        (lambda: _forward(eps=0.0), ValueError, F + r": eps must be finite and > 0, got 0"),
        (lambda: _forward(eps=float("nan"), training=False), ValueError, F + r": eps must be finite and > 0"),
        (lambda: _forward(x=np.ones((1, 3), np.float32)), ValueError,
         F + r": training needs more than one value per channel \(batch·height·width >= 2\), got x of shape \(1, 3\)"),
        (lambda: _forward(x=np.ones((1, 3, 1, 1), np.float32)), ValueError, F + r": training needs more than one"),
        (lambda: _forward(running_mean=[0.0, 0.0, 0.0]), TypeError,
         F + r": running_mean must be a numpy array \(it is updated in place when training\), got list"),
        (lambda: _forward(running_var=np.ones(3)), TypeError,
         F + r": running_var must have the dtype of x \(float32\), got float64"),
        (lambda: _forward(running_var=np.ones(4, np.float32)), ValueError,
         F + r": running_var must have shape \(3,\), got \(4,\)"),
        (lambda: _forward(running_mean=np.zeros(6, np.float32)[::2]), ValueError,
         F + r": running_mean must be C-contiguous \(it is updated in place when training\), got a strided view"),
        (lambda: _forward(running_var=None), ValueError,
         F + r": running_mean and running_var must both be arrays or both be None"),
        (lambda: _forward(running_mean=None, running_var=None, training=False), ValueError,
         F + r": inference \(training=False\) needs running_mean and running_var, got None"),
        (lambda: _forward(running_mean=SHARED[:3], running_var=SHARED[2:5]), ValueError,
         F + r": running_var must not share memory with running_mean"),
        (lambda: _forward(gamma=SHARED[:3], running_mean=SHARED[3:], running_var=SHARED[:3]), ValueError,
         F + r": running_var must not share memory with gamma"),
        (lambda: _forward(x=SHARED.reshape(2, 3), gamma=None, beta=None, running_mean=SHARED[:3]), ValueError,
         F + r": running_mean must not share memory with x"),
        (lambda: _backward(dy=np.ones((2, 3, 2, 1), np.float32)), ValueError,
         B + r": dy must have shape \(2, 3, 2, 2\), got \(2, 3, 2, 1\)"),
        (lambda: _backward(dy=X.astype(np.float64)), TypeError,
         B + r": dy must have the dtype of x \(float32\), got float64"),
        (lambda: _backward(x=np.ones(3, np.float32)), ValueError, B + r": x must be 2-D \(batch, channels\) or 4-D"),
        (lambda: _backward(save_mean=None), TypeError, B + r": save_mean must be an array, got NoneType"),
        (lambda: _backward(save_invstd=np.ones(2, np.float32)), ValueError,
         B + r": save_invstd must have shape \(3,\), got \(2,\)"),
        (lambda: _backward(gamma=np.ones(3, np.float64)), TypeError,
         B + r": gamma must have the dtype of x \(float32\), got float64"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_read_only_running_statistics_are_rejected_when_training():
    rm, rv = _stats()
    rv.flags.writeable = False
    with pytest.raises(ValueError, match=F + r": running_var must be writeable \(it is updated in place when "
                                          r"training\), got a read-only array"):
        ops.batch_norm_forward(X, C3, C3, rm, rv, True)
    np.testing.assert_array_equal(rm, 0.0)  # nothing was written before the check failed
