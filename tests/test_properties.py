"""Property-based tests (hypothesis): invariants of the formulas that must hold
for any shape and any values, not just the grids of the parity tests."""

import numpy as np
from hypothesis import given, settings, strategies as st

import corenn as cn
from reference import dense as ref_dense
from tolerances import CLOSED_FORM, SHIFTED_LOGITS, assert_close, tolerance

# Derandomised: the same examples on every run, so CI never flakes.
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)
dims = st.integers(min_value=1, max_value=40)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


@SETTINGS
@given(n=dims, i=dims, o=dims, seed=seeds)
def test_dense_matches_reference_for_any_shape(n, i, o, seed):
    rng = np.random.default_rng(seed)
    x, W, b = rng.standard_normal((n, i)), rng.standard_normal((o, i)), rng.standard_normal(o)
    assert_close(cn.ops.dense_forward(x, W, b), ref_dense.dense_forward(x, W, b), op="dense_forward")


@SETTINGS
@given(n=dims, c=st.integers(min_value=2, max_value=30), shift=st.floats(-50, 50), seed=seeds)
def test_softmax_cross_entropy_ignores_a_per_row_shift(n, c, shift, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, c)) * 3
    labels = rng.integers(0, c, n)
    loss, dz = cn.ops.softmax_cross_entropy(z, labels)
    loss_shifted, dz_shifted = cn.ops.softmax_cross_entropy(z + shift, labels)
    assert abs(loss - loss_shifted) <= SHIFTED_LOGITS["rtol"] * max(1.0, abs(loss))
    np.testing.assert_allclose(dz_shifted, dz, **SHIFTED_LOGITS)
    # softmax(z) − onehot sums to zero in each row; the loss is positive.
    np.testing.assert_allclose(dz.sum(axis=1), 0.0, **tolerance(np.float64))
    assert loss > 0


@SETTINGS
@given(n=st.integers(1, 5000), rate=st.floats(0.0, 0.95), key=seeds)
def test_dropout_keeps_or_zeroes_and_rescales(n, rate, key):
    x = np.random.default_rng(key).standard_normal(n)
    y, mask = cn.ops.dropout_forward(x, rate, key)
    kept = mask.astype(bool)
    np.testing.assert_array_equal(y[~kept], 0.0)
    np.testing.assert_allclose(y[kept], x[kept] / (1 - rate), **CLOSED_FORM[np.dtype(np.float64)])
    dx = cn.ops.dropout_backward(np.ones(n), mask, rate)
    np.testing.assert_allclose(dx, kept / (1 - rate), **CLOSED_FORM[np.dtype(np.float64)])


@SETTINGS
@given(rows=dims, cols=dims, seed=seeds)
def test_softmax_rows_are_distributions(rows, cols, seed):
    x = np.random.default_rng(seed).standard_normal((rows, cols)) * 20
    y = cn.ops.activation_forward(x, "softmax")
    assert np.all(y >= 0)
    np.testing.assert_allclose(y.sum(axis=1), 1.0, **tolerance(np.float64))
