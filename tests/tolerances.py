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
