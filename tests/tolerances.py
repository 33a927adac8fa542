"""The one table of numerical tolerances, and why each is what it is.

Parity tests compare a corenn kernel with the float64 NumPy reference run on the
same inputs. The kernels and the reference sum in different orders (BLAS blocks
its dot products), so the error of a length-K sum is bounded by about
K·u·Σ|terms| (u = unit roundoff) and is typically √K·u·|result|.

- float64, u = 1.1e-16: with K up to ~10^3 in the parameter grids the typical
  error is ~4e-15 relative; rtol 1e-11 leaves two orders of margin for
  exp/log based ops while still failing on any wrong formula (errors >= 1e-3).
- float32, u = 6e-8: inputs are rounded to float32 first (0.5u relative each),
  then sums of up to ~10^3 terms: worst realistic error ~1e-5 relative; rtol
  1e-4 with an absolute floor scaled to the data covers cancellation in sums.
- Gradient checks: the course's relative difference ||g - g~|| / (||g|| + ||g~||)
  with central differences in float64 has truncation error O(eps²) and
  roundoff O(u/eps); at eps = 1e-6 both are ~1e-10, so the course's threshold of
  1e-7 means the analytic gradient is right, 1e-3 or more means it is wrong.
"""

import math

import numpy as np

PARITY = {
    np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-11, atol=1e-12),
}

# Ops whose float32 error grows beyond the sum bound above, with the reason.
OVERRIDES = {
    # exp/log of logits up to |z| ~ 10 amplify the float32 input rounding by |z|.
    ("softmax_cross_entropy", np.dtype(np.float32)): dict(rtol=2e-4, atol=2e-5),
    ("sigmoid_cross_entropy", np.dtype(np.float32)): dict(rtol=2e-4, atol=2e-5),
}

# corenn against another runtime (ONNX Runtime, PyTorch) on the same weights:
# max |other − corenn| <= rtol · max |corenn|. Both sum the same products in
# different orders (K up to ~10^3 per output, a few layers deep), so float32
# differs by ~√K·u per layer (~1e-6); 1e-5 is the bound and still fails
# on any wrong padding, axis or statistic (errors >= 1e-2). float64: ONNX
# Runtime's double tanh/exp are approximations good to ~1e-12 relative
# (measured 3.4e-12 through tanh and softmax), so 1e-10.
INTEROP_RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}

# ---------------------------------------------------------------- beyond kernel parity
# Tests other than a kernel against its reference take their tolerance from
# here too (no inline rtol/atol): each entry says what it compares and why.
# Comparisons of the same float64 computation summed in another order (a model
# against NumPy, a loop reference against a vectorised one, one path of the API
# against another) use PARITY's float64 entry through tolerance(np.float64).

# A closed form recomputed in NumPy by a different but equally short expression:
# a learning-rate schedule, one optimizer step, a dropout rescale, a
# standardisation. Each side rounds a handful of times (u each), and a − b·c
# may cancel by up to ~10×: float64 agrees to ~1e-14, so rtol 1e-13 (failing on
# any wrong constant, errors >= 1e-3); float32 (running statistics kept in the
# model's float32) to a few of its u = 6e-8, so rtol 1e-6.
CLOSED_FORM = {
    np.dtype(np.float32): dict(rtol=1e-6, atol=0.0),
    np.dtype(np.float64): dict(rtol=1e-13, atol=0.0),
}

# A statistic (mean, variance, 1/σ) accumulated in float64 by corenn and by the
# reference (NumPy, scikit-learn) in different orders and by different
# algorithms (one pass with Welford/compensation against two passes): ~√K·u
# relative for K up to ~10^4 values, 1e-14, so rtol 1e-12 in float64; in
# float32 the float64 result is rounded once to the output (6e-8): rtol 1e-6.
STATISTIC = {
    np.dtype(np.float32): dict(rtol=1e-6, atol=0.0),
    np.dtype(np.float64): dict(rtol=1e-12, atol=0.0),
}

# A whole network's gradient (or logits) against a NumPy model of it, float64:
# every layer adds PARITY-sized differences (~1e-15 relative), the chain rule
# carries them through a few layers and through tanh'/σ' factors, and the small
# components (1e-3 of the largest) of a gradient vector lose that much relative
# accuracy: ~1e-12, so rtol 1e-10 with an absolute floor of 1e-13 for entries
# that are zero up to roundoff. A wrong derivative is off by >= 1e-3.
MODEL_F64 = dict(rtol=1e-10, atol=1e-13)

# An optimizer step recovered as the difference of the parameters before and
# after it (p_before − p_after = lr·v): the two parameters carry a rounding of
# u·|p| each, and their difference cancels by |p| / |Δp| (up to ~10^4 for steps
# of 1e-4 on weights of ~1): relative error up to ~1e-12·10^2 for the smallest
# gradients kept; rtol 1e-8 (atol 1e-15 for zero steps). A wrong learning rate
# or momentum is off by >= 1e-3.
STEP_FROM_DIFFERENCE = dict(rtol=1e-8, atol=1e-15)

# softmax(z + c) = softmax(z) exactly, but z + c is rounded: each logit moves by
# up to |z + c|·u (|c| <= 50, |z| <= ~15: 7e-15), which exp turns into a
# relative change of the probabilities of that size; dz = p − onehot then
# cancels by up to 1/(1 − p) ~ 10^5 for confident rows: ~1e-9 (atol 1e-12 for
# dz entries that are zero up to roundoff).
SHIFTED_LOGITS = dict(rtol=1e-9, atol=1e-12)

# Frequencies of seeded random draws (samplers, random crops): the observed
# frequency of an event of probability p over n draws has standard deviation
# √(p(1 − p)/n); a correct sampler stays within FREQUENCY_SIGMAS of them with
# probability 1 − 6e-7, and a bias of a few percent still fails at n ~ 4000.
FREQUENCY_SIGMAS = 5


def frequency_atol(p, n):
    """The allowed |observed − p| for a frequency over n independent draws."""
    return FREQUENCY_SIGMAS * math.sqrt(p * (1 - p) / n)


# Keras's global_clipnorm against torch.nn.utils.clip_grad_norm_ (float64):
# torch scales by c / (‖G‖ + 1e-6) where Keras (and corenn) take c / ‖G‖, a
# relative difference of 1e-6 / ‖G‖ <= 1e-6 / c; the tests clip to c >= 0.5, so
# 2.1e-6 bounds it. A wrong norm (per tensor, not squared) is off by >= 1e-2.
TORCH_CLIP_GRAD_NORM = dict(rtol=2.1e-6, atol=0.0)

GRADCHECK_THRESHOLD = 1e-7  # course 2, week 1
GRADCHECK_EPS = 1e-6


def tolerance(dtype, op=None):
    dtype = np.dtype(dtype)
    return OVERRIDES.get((op, dtype), PARITY[dtype])


def assert_close(actual, expected, dtype=None, op=None, what=""):
    """Parity assertion: the atol floor scales with the largest finite expected
    value; NaN and ±inf must sit at the same places in both (an infinite scale
    would let every finite value pass)."""
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual)
    dtype = actual.dtype if dtype is None else dtype
    tol = tolerance(dtype, op)
    finite = np.abs(expected[np.isfinite(expected)])
    scale = max(1.0, float(np.max(finite))) if finite.size else 1.0
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    np.testing.assert_allclose(
        actual.astype(np.float64), expected, rtol=tol["rtol"], atol=tol["atol"] * scale,
        err_msg=f"{op or ''} {what} ({np.dtype(dtype).name})",
    )

# Winograd F(2×2, 3×3) convolution (float32) against the float64 direct
# convolution: max |error| <= WINOGRAD_F2 · max |reference|. Its transforms
# only add, subtract and halve (points 0, ±1, ∞), so each output carries a few
# more roundings than the GEMM's sum but no amplification: measured worst
# 7.8e-7 (forward), 7.2e-7 (dx), 3.6e-7 (dW) over C_in up to 512 and 4·8·8
# tiles, where im2col + GEMM gives 6.2e-7, 5.6e-7, 4.1e-7 (tests/test_winograd.py).
# On 64→64 channels, 32×32, x ~ N(0, 1), He weights (batch 8; max, RMS of the
# error relative to max, RMS of the reference): y 3.6e-7, 2.6e-7; dx 3.9e-7,
# 2.6e-7; dW 4.3e-7, 3.7e-7 (GEMM: y 4.9e-7, 3.0e-7; dx 5.0e-7, 3.0e-7; dW
# 4.1e-7, 3.4e-7). 1e-5 leaves an order of magnitude of margin and fails on any
# wrong transform entry, tile offset or padding (errors >= 1e-2).
WINOGRAD_F2 = 1e-5

# Winograd F(4×4, 3×3), the same measure. Its points ±2 bring factors 4, 5
# and 8 into Bᵀ and Aᵀ and 1/6, 1/12, 1/24 into G: the transformed values
# grow by up to ~100× before the products cancel them again, so the float32
# rounding is amplified by about ten. Measured (same shape and inputs as
# above; max, RMS): 64→64 on 32×32: y 7.1e-6, 1.7e-6; dx 5.2e-6, 1.6e-6; dW
# 3.9e-6, 1.7e-6; 256→256 on 16×16: y 1.2e-5, 2.9e-6; dx 1.4e-5, 2.9e-6; dW
# 2.9e-6, 1.1e-6, about 15× F(2×2)'s and growing with C_in. 1e-4 keeps a
# 7× margin at 256 channels and still fails any wrong entry (>= 1e-2). Where
# that accuracy matters, use "winograd2" (or "gemm").
WINOGRAD_F4 = 1e-4

# Gradient check of a float32 analytic gradient (Winograd or GEMM backward)
# against float64 central differences of the exact function: the course's
# relative difference is then bounded by the float32 rounding of the inputs
# and of the sums (~1e-7), not by 1e-7's float64 argument; 1e-5 passes a right
# float32 gradient and fails a wrong one (>= 1e-3). F(4×4, 3×3)'s larger
# rounding (RMS 1.7e-6 relative, WINOGRAD_F4) still fits: measured <= 4.8e-7.
WINOGRAD_GRADCHECK = 1e-5

# Training LeNet-style and resnet_small on digits for 4 epochs with
# "winograd" against "gemm", same seed and batches: the two differ by float32
# rounding at every step (~1e-7), which the training trajectory amplifies like
# any other rounding. Measured with resnet_small: the GEMM path itself, given
# inputs perturbed by 1e-6 relative, moves the per-epoch training losses by up
# to 1.9 %, the held-out loss by 13 % (0.364 -> 0.411: an overfit model's
# test loss is the most sensitive number) and the held-out accuracy by 0.012;
# Winograd moved them by 2.3 %, 19 % and 0.025. So: training losses rtol 5 %,
# held-out loss rtol 30 %, accuracy within 0.04 (24 of 597 digits). A wrong
# gradient leaves the loss 10-100x higher after 4 epochs.
WINOGRAD_TRAINING = {"train_loss": dict(rtol=5e-2, atol=1e-3), "test_loss": dict(rtol=0.3, atol=0.0),
                     "accuracy": 0.04}

# Data parallelism (tests/test_distributed.py): 2 ranks × batch B against one
# process with batch 2B, max |Δw| after 20 steps. The ranks' gradients are
# averaged from two half-batch sums instead of one, so each step's gradient
# differs by a few float32 roundings (~1e-7 relative) and the weights by far
# less than the bound of 1e-6; a wrong weighting of the shards (the
# mean of means on uneven shards, a gradient summed instead of averaged) moves
# them by >= 1e-3.
DATA_PARALLEL_TRAJECTORY = 1e-6
