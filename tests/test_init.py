import numpy as np
import pytest

import corenn as cn
from reference import init as ref
from tolerances import assert_close

N = 10**5
FANS = [(1, 1), (3, 1000), (784, 128), (4096, 10)]
RANDOM_KINDS = ["random_normal", "uniform", "he_normal", "he_uniform", "glorot_normal", "glorot_uniform"]
# Kurtosis E[x⁴]/σ⁴ of each family: 3 for a normal, 9/5 for a uniform.
KURTOSIS = {"normal": 3.0, "uniform": 1.8}


@pytest.fixture
def threads():
    before = cn.get_num_threads()
    yield cn.set_num_threads
    cn.set_num_threads(before)


@pytest.mark.parametrize("fans", FANS, ids=str)
@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_moments_within_sampling_error(kind, fans):
    fan_in, fan_out = fans
    w = cn.ops.initialize((100, N // 100), kind, fan_in, fan_out, stddev=0.05, key=31,
                          dtype="float64")
    dist, scale = ref.spread(kind, fan_in, fan_out, stddev=0.05)
    sigma = scale if dist == "normal" else scale / np.sqrt(3)
    # The sample mean of n draws has std σ/√n; the sample variance has relative
    # std √((κ − 1)/n), κ the kurtosis. Six standard deviations: a false failure
    # is a < 2e-9 event, while a wrong fan (factor 2 in variance) misses by ~100σ.
    assert abs(w.mean()) < 6 * sigma / np.sqrt(N)
    assert abs(w.var() / sigma**2 - 1) < 6 * np.sqrt((KURTOSIS[dist] - 1) / N)
    if dist == "uniform":
        # Support [−a, a): respected, and nearly reached (P(max < a(1 − 1e-3)) ≈ e^-50).
        assert w.min() >= -scale and w.max() < scale
        assert w.max() > scale * (1 - 1e-3) and w.min() < -scale * (1 - 1e-3)


@pytest.mark.parametrize("kind", ref.KINDS)
def test_values_are_the_reference_draws(kind):
    # The reference runs the same counter-based generator in NumPy; only libm's
    # log/cos against NumPy's may differ, by an ulp or so.
    w = cn.ops.initialize((37, 29), kind, 29, 37, stddev=0.02, key=2**63 + 5, dtype="float64")
    assert w.dtype == np.float64 and w.shape == (37, 29)
    assert_close(w, ref.initialize((37, 29), kind, 29, 37, stddev=0.02, key=2**63 + 5),
                 op="initialize", what=kind)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_zeros_and_ones_are_exact(dtype):
    np.testing.assert_array_equal(cn.ops.initialize((3, 4), "zeros", 4, 3, dtype=dtype),
                                  np.zeros((3, 4), dtype))
    np.testing.assert_array_equal(cn.ops.initialize((3, 4), "ones", 4, 3, dtype=dtype),
                                  np.ones((3, 4), dtype))


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_same_key_same_values_other_key_other_values(kind):
    a = cn.ops.initialize((50, 40), kind, 40, 50, key=9)
    b = cn.ops.initialize((50, 40), kind, 40, 50, key=9)
    c = cn.ops.initialize((50, 40), kind, 40, 50, key=10)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a == c) < 0.01


@pytest.mark.parametrize("kind", RANDOM_KINDS)
def test_float32_is_the_rounded_float64(kind):
    w32 = cn.ops.initialize((64, 33), kind, 33, 64, key=4, dtype="float32")
    w64 = cn.ops.initialize((64, 33), kind, 33, 64, key=4, dtype=np.float64)
    assert w32.dtype == np.float32
    np.testing.assert_array_equal(w32, w64.astype(np.float32))


@pytest.mark.parametrize("kind", ["he_normal", "glorot_uniform"])
def test_values_do_not_depend_on_thread_count(kind, threads):
    threads(1)
    want = cn.ops.initialize(100_003, kind, 100, 100, key=8)
    for t in (2, 3, 4):
        threads(t)
        np.testing.assert_array_equal(cn.ops.initialize(100_003, kind, 100, 100, key=8), want)


def test_shapes():
    assert cn.ops.initialize(5, "ones", 1, 1).shape == (5,)
    assert cn.ops.initialize((2, 3, 4, 5), "he_normal", 60, 24).shape == (2, 3, 4, 5)
    assert cn.ops.initialize((0, 3), "he_normal", 3, 1).shape == (0, 3)
    assert cn.ops.initialize((), "ones", 1, 1).shape == ()


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: cn.ops.initialize((2, 2), "he", 2, 2), ValueError,
         r"^initializer: unknown 'he'; expected one of zeros, ones, random_normal, uniform, "
         r"he_normal, he_uniform, glorot_normal, glorot_uniform, orthogonal$"),
        (lambda: cn.ops.initialize((2, 2), "he_normal", 0, 2), ValueError,
         r"initializer: he_normal needs fan_in > 0, got fan_in=0, fan_out=2"),
        (lambda: cn.ops.initialize((2, 2), "glorot_uniform", 0, 0), ValueError,
         r"initializer: glorot_uniform needs fan_in, fan_out >= 0 and fan_in \+ fan_out > 0, "
         r"got fan_in=0, fan_out=0"),
        (lambda: cn.ops.initialize((2, 2), "random_normal", 2, 2, stddev=-1.0), ValueError,
         r"initializer: random_normal needs a finite stddev >= 0, got -1"),
        (lambda: cn.ops.initialize((2, -2), "zeros", 2, 2), ValueError,
         r"initialize: shape must not have negative sizes, got \(2, -2\)"),
        (lambda: cn.ops.initialize((2, 2.0), "zeros", 2, 2), TypeError,
         r"initialize: shape must hold ints, got float"),
        (lambda: cn.ops.initialize("22", "zeros", 2, 2), TypeError,
         r"initialize: shape must be an int or a sequence of ints, got str"),
        (lambda: cn.ops.initialize((2, 2), "zeros", 2, 2, dtype="int32"), TypeError,
         r"initialize: dtype must be float32 or float64, got int32"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
