import itertools

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import conv as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close, tolerance


def make_conv(rng, dtype, n, c, h, w, o, k, groups=1):
    kh, kw = (k, k) if np.isscalar(k) else k
    x = rng.standard_normal((n, c, h, w))
    W = rng.standard_normal((o, c // groups, kh, kw)) / np.sqrt(c // groups * kh * kw)
    b = rng.standard_normal(o)
    return [a.astype(dtype) for a in (x, W, b)]


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


# ---------------------------------------------------------------- the references themselves


def test_reference_loops_match_im2col(rng):
    x, W, b = make_conv(rng, np.float64, 2, 4, 7, 6, 6, (3, 2), groups=2)
    for stride, padding, dilation in [(1, 0, 1), ((2, 1), (1, 0, 2, 1), (1, 2)), (3, 2, 2)]:
        args = dict(stride=stride, padding=padding, dilation=dilation, groups=2)
        np.testing.assert_allclose(ref.conv2d_forward(x, W, b, **args),
                                   ref.conv2d_forward_loops(x, W, b, **args), **tolerance(np.float64))


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, 0, 1, 1), (2, (1, 0, 2, 1), (2, 1), 2), (1, 1, 1, 4)])
def test_conv_reference_gradient(stride, padding, dilation, groups, rng):
    x, W, b = make_conv(rng, np.float64, 1, 4, 5, 6, 4, 3, groups=groups)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    P = projection(ref.conv2d_forward_loops(x, W, b, **args).shape, 3)
    loss = lambda: float(np.sum(P * ref.conv2d_forward_loops(x, W, b, **args)))  # noqa: E731
    dx, dW, db = ref.conv2d_backward(P, x, W, **args)
    for analytic, wrt in [(dx, x), (dW, W), (db, b)]:
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("stride, padding, output_padding", [(1, 0, 0), (2, 1, 1), ((3, 2), (0, 1), (2, 0))])
def test_transpose_reference_gradient(stride, padding, output_padding, rng):
    x = rng.standard_normal((2, 3, 3, 4))
    W = rng.standard_normal((3, 2, 3, 2))
    b = rng.standard_normal(2)
    args = dict(stride=stride, padding=padding, output_padding=output_padding)
    P = projection(ref.conv_transpose2d_forward(x, W, b, **args).shape, 5)
    loss = lambda: float(np.sum(P * ref.conv_transpose2d_forward(x, W, b, **args)))  # noqa: E731
    dx, dW, db = ref.conv_transpose2d_backward(P, x, W, **args)
    for analytic, wrt in [(dx, x), (dW, W), (db, b)]:
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


def test_transpose_reference_is_adjoint_of_conv(rng):
    # <conv(u), v> = <u, convT(v)> for the same W, stride and padding.
    W = rng.standard_normal((3, 2, 3, 3))  # conv: (out 3, in 2); transposed: (in 3, out 2)
    u = rng.standard_normal((1, 2, 8, 7))
    v_shape = ref.conv2d_forward(u, W, stride=2, padding=1).shape
    v = rng.standard_normal(v_shape)
    lhs = np.sum(ref.conv2d_forward(u, W, stride=2, padding=1) * v)
    rhs = np.sum(u * ref.conv_transpose2d_forward(v, W, stride=2, padding=1, output_padding=(1, 0)))
    assert abs(lhs - rhs) < 1e-10 * max(1.0, abs(lhs))


# ---------------------------------------------------------------- conv2d parity grid

# (n, c, h, w, o, k, groups, stride, padding, dilation): a generated grid over
# kernel size, stride, padding (incl. asymmetric), dilation and groups (plain,
# grouped, depthwise, depthwise with multiplier 2), batch 1 and 3, odd and
# non-square images. Combinations whose dilated kernel exceeds the padded
# input are skipped by construction.
def conv_grid():
    cases = []
    for k, stride, padding, dilation, (c, o, groups) in itertools.product(
            [1, 2, 3, 5], [1, 2, 3], [0, 1, (2, 0, 1, 2)], [1, 2],
            [(4, 6, 1), (4, 6, 2), (4, 4, 4), (3, 6, 3)]):
        n, h, w = (3, 9, 11) if (k + stride) % 2 else (1, 7, 5)
        pt, pb, pl, pr = ref.pad4(padding)
        ek = dilation * (k - 1) + 1
        if ek > h + pt + pb or ek > w + pl + pr:
            continue
        cases.append((n, c, h, w, o, k, groups, stride, padding, dilation))
    return cases


GRID = conv_grid()


def grid_id(case):
    n, c, h, w, o, k, g, s, p, d = case
    return f"n{n}c{c}o{o}g{g}-{h}x{w}-k{k}s{s}p{p}d{d}".replace(" ", "")


def check_conv2d_parity(case, rng, naive_modes=(False,)):
    """Forward and backward of every mode against the reference, float32 and float64."""
    n, c, h, w, o, k, groups, stride, padding, dilation = case
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    for dtype in FLOAT_DTYPES:
        x, W, b = make_conv(rng, dtype, n, c, h, w, o, k, groups)
        y_ref = ref.conv2d_forward(*f64(x, W, b), **args)
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        edx, edW, edb = ref.conv2d_backward(*f64(dy, x, W), **args)
        for naive in naive_modes:
            y = cn.ops.conv2d_forward(x, W, b, naive=naive, **args)
            assert y.dtype == dtype
            assert_close(y, y_ref, op="conv2d_forward", what=f"y naive={naive}")
            dx, dW, db = cn.ops.conv2d_backward(dy, x, W, naive=naive, **args)
            for got, want, name in [(dx, edx, "dx"), (dW, edW, "dW"), (db, edb, "db")]:
                assert got.dtype == dtype
                assert_close(got, want, op="conv2d_backward", what=f"{name} naive={naive}")


@pytest.mark.parametrize("case", GRID, ids=[grid_id(c) for c in GRID])
def test_conv2d_parity(case, rng):
    check_conv2d_parity(case, rng, naive_modes=(False, True))


def test_conv2d_loops_reference_on_small_cases(rng):
    # The slow course loops against corenn directly on a few cases (the grid uses im2col).
    for case in GRID[::17]:
        n, c, h, w, o, k, groups, stride, padding, dilation = case
        args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        x, W, b = make_conv(rng, np.float64, n, c, h, w, o, k, groups)
        assert_close(cn.ops.conv2d_forward(x, W, b, **args),
                     ref.conv2d_forward_loops(x, W, b, **args), op="conv2d_forward", what=str(case))


def test_conv2d_without_bias_and_pair_arguments(rng):
    x, W, _ = make_conv(rng, np.float64, 2, 3, 8, 7, 5, (3, 2))
    args = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))
    assert_close(cn.ops.conv2d_forward(x, W, **args), ref.conv2d_forward(x, W, **args),
                 op="conv2d_forward", what="no bias")
    dy = rng.standard_normal(ref.conv2d_forward(x, W, **args).shape)
    assert cn.ops.conv2d_backward(dy, x, W, with_bias=False, **args)[2] is None


def test_conv2d_pointwise_and_large_batch(rng):
    # 1×1 stride 1 (the skip-im2col path), one image and a batch larger than any
    # thread count. Widening the channels more than 2× (c -> o per group) takes
    # the col2im input gradient, which once wrote past the scratch of a
    # pointwise kernel (it has no column matrix): a heap overflow.
    for n, groups, c, o in [(37, 1, 4, 8), (37, 2, 4, 8), (1, 1, 1, 6), (3, 1, 2, 8), (37, 2, 2, 12)]:
        x, W, b = make_conv(rng, np.float32, n, c, 5, 6, o, 1, groups)
        y = cn.ops.conv2d_forward(x, W, b, groups=groups)
        assert_close(y, ref.conv2d_forward(*f64(x, W, b), groups=groups), op="conv2d_forward")
        dy = rng.standard_normal(y.shape).astype(np.float32)
        got = cn.ops.conv2d_backward(dy, x, W, groups=groups)
        want = ref.conv2d_backward(*f64(dy, x, W), groups=groups)
        for g, e in zip(got, want):
            assert_close(g, e, op="conv2d_backward")


# Batches above the thread count, of sizes that split unevenly, over both
# input-gradient paths: stride 1 with "same" or larger output (gathered: a
# correlation of dy with the flipped kernel, also with padding beyond the
# kernel), and col2im (strides, "valid", channels widened more than 2×);
# groups, dilation, asymmetric padding and 1×1 kernels.
BATCH_CASES = [
    # (n, c, h, w, o, k, groups, stride, padding, dilation)
    (17, 3, 6, 7, 5, 3, 1, 1, 1, 1),
    (19, 4, 5, 5, 6, 3, 2, 1, (2, 0, 1, 1), 2),
    (35, 2, 4, 3, 4, 2, 1, 1, (0, 1, 1, 0), 1),
    (19, 4, 7, 6, 4, 3, 1, 2, 1, 1),
    (17, 3, 6, 6, 2, 3, 1, 1, 0, 1),
    (35, 4, 3, 4, 6, 1, 2, 1, 0, 1),
    (17, 2, 4, 5, 3, 1, 1, 1, 1, 1),
    (16, 6, 5, 5, 6, (3, 1), 3, (1, 2), (1, 1, 0, 0), (2, 1)),
    (19, 1, 6, 7, 6, 3, 1, 1, 1, 1),
]


@pytest.mark.parametrize("case", BATCH_CASES, ids=[grid_id(c) for c in BATCH_CASES])
def test_conv2d_parity_larger_batches(case, rng):
    check_conv2d_parity(case, rng)


# Depthwise convolutions with stride 1 run on zero-padded planes, 16 output
# columns per block, up to 6 output channels of a plane in registers at once
# (depthwise_conv.cpp): batch 1 and odd batches above the thread count, rows
# narrower than, equal to and wider than a block (with a partial last block),
# multipliers 1, 2, 6 (one block) and 8 (blocks of 6 + 2), padding 0, 2 and
# asymmetric, dilation, non-square kernels; and a strided case beside them
# (the general loops).
DEPTHWISE_STRIDE1_CASES = [
    # (n, c, h, w, o, k, groups, stride, padding, dilation)
    (1, 3, 9, 11, 3, 3, 3, 1, 0, 1),
    (17, 2, 13, 37, 12, 3, 2, 1, (2, 0, 1, 2), 2),
    (3, 2, 8, 14, 16, (5, 3), 2, 1, 2, 1),
    (5, 4, 28, 28, 8, 5, 4, 1, 2, 1),
    (2, 3, 6, 20, 3, 2, 3, 1, 0, 1),
    (5, 3, 12, 12, 6, 3, 3, 2, 1, 1),
]


@pytest.mark.parametrize("case", DEPTHWISE_STRIDE1_CASES, ids=[grid_id(c) for c in DEPTHWISE_STRIDE1_CASES])
def test_conv2d_depthwise_stride1(case, rng):
    check_conv2d_parity(case, rng, naive_modes=(False, True))


def test_conv2d_depthwise_stride1_independent_of_thread_count(rng, restore_threads):
    # Each output and each dW entry is summed in one order for any thread
    # count: forward and backward are bitwise the same on 1 and 2 threads.
    x, W, b = make_conv(rng, np.float32, 9, 3, 28, 28, 18, 5, groups=3)
    dy = rng.standard_normal((9, 18, 28, 28)).astype(np.float32)
    results = []
    for threads in (1, 2):
        cn.set_num_threads(threads)
        results.append((cn.ops.conv2d_forward(x, W, b, padding=2, groups=3),
                        *cn.ops.conv2d_backward(dy, x, W, padding=2, groups=3)))
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def test_conv2d_depthwise_stride1_weight_gradient_ignores_non_finite_pixels_it_does_not_read(rng):
    # The last block of a row reads pixels past the row's end (masked out):
    # an infinity there must not turn dW into NaN. A 3×3 "valid" kernel on
    # 20 columns: the output's 18 columns are a block of 16 and one of 2;
    # the infinity sits where only the lanes past OW reach it.
    x, W, _ = make_conv(rng, np.float64, 1, 2, 5, 20, 2, 3, groups=2)
    x[0, 0, :, 19] = np.inf  # read by output column 17 through tap q = 2 only
    dy = rng.standard_normal((1, 2, 3, 18))
    _, dW, _ = cn.ops.conv2d_backward(dy, x, W, groups=2)
    assert np.all(np.isfinite(dW[0, 0, :, :2]))


# Column matrices of more than 2^20 elements are cut into tiles of window
# rows, the products reading and writing the image in place: "same" (tiles
# of the gathered input gradient too), strided with asymmetric padding, and
# widening with dilation (col2im per tile).
TILE_CASES = [
    (1, 4, 75, 80, 5, 7, 1, 1, 3, 1),
    (2, 4, 160, 150, 4, 7, 1, 2, (3, 2, 3, 1), 1),
    (1, 8, 120, 100, 20, (5, 3), 1, 1, (2, 2, 1, 1), (1, 2)),
]


@pytest.mark.parametrize("case", TILE_CASES, ids=[grid_id(c) for c in TILE_CASES])
def test_conv2d_parity_in_row_tiles(case, rng):
    check_conv2d_parity(case, rng)


# Window rows of every length class that im2col copies and col2im adds as
# short rows (fewer than 16 bytes, two 16-, 32- or 64-byte blocks overlapping
# in the middle, longer): stride 1 with OW != W, so no tap is one flat copy;
# batch 2 and 3 so that 2 threads split the images (the backward's per-image
# pass of dW's and col2im's products shares each chunk's column scratch).
ROW_WIDTH_CASES = [(n, c, 3, ow + 4, 4, (3, 5), 1, 1, 0, 1)
                   for ow, (n, c) in zip([1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 40],
                                         itertools.cycle([(2, 1), (3, 3)]))]


@pytest.mark.parametrize("case", ROW_WIDTH_CASES, ids=[grid_id(c) for c in ROW_WIDTH_CASES])
def test_conv2d_parity_for_every_window_row_length(case, rng):
    check_conv2d_parity(case, rng)


# One-sided padding as wide as the kernel on a 1- or 2-pixel image: some
# kernel taps read nothing but padding for every output position (their rows
# and columns of the column matrix are all zeros; this once wrote past them).
@pytest.mark.parametrize("case", [
    (3, 2, 1, 2, 3, 5, 1, 1, (4, 0, 4, 0), 1),
    (3, 2, 2, 1, 3, 5, 1, 1, (0, 4, 1, 4), 1),
    (2, 2, 1, 1, 2, 7, 1, 1, (6, 0, 0, 6), 1),
    (17, 2, 1, 3, 2, 3, 1, 1, (0, 2, 3, 0), 1),
], ids=grid_id)
def test_conv2d_taps_wholly_in_the_padding(case, rng):
    check_conv2d_parity(case, rng)


def test_non_contiguous_input_is_copied(rng):
    x = rng.standard_normal((2, 3, 8, 10))[:, :, :, ::2]
    W = rng.standard_normal((4, 3, 3, 3))
    assert_close(cn.ops.conv2d_forward(x, W, padding=1), ref.conv2d_forward(x, W, padding=1),
                 op="conv2d_forward", what="strided x")


# ---------------------------------------------------------------- gradient checks of corenn


# Stride-1 cases with "same" padding take the gathered input gradient (a
# correlation of dy with the flipped kernel), the others (and the 1 -> 4
# widening) col2im.
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("n, c, o, groups, stride, padding, dilation", [
    (2, 2, 3, 1, 1, 1, 1), (2, 4, 4, 2, 2, (1, 0, 0, 1), 1), (2, 3, 6, 3, 1, 1, 2), (2, 2, 2, 1, 1, 0, 1),
    (2, 3, 6, 3, 1, 2, 2), (16, 2, 3, 1, 1, (2, 0, 1, 1), 1), (2, 1, 4, 1, 1, 1, 1)])
def test_conv2d_gradient_check(n, c, o, groups, stride, padding, dilation, naive, rng):
    k = 1 if (c, o) == (2, 2) else 3
    x, W, b = make_conv(rng, np.float64, n, c, 5, 6, o, k, groups)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    P = projection(cn.ops.conv2d_forward(x, W, b, **args).shape, 11)
    loss = lambda: float(np.sum(P * cn.ops.conv2d_forward(x, W, b, naive=naive, **args)))  # noqa: E731
    dx, dW, db = cn.ops.conv2d_backward(P, x, W, naive=naive, **args)
    for analytic, wrt in [(dx, x), (dW, W), (db, b)]:
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("stride, padding, output_padding", [(1, 0, 0), (2, 1, 1), ((3, 2), (1, 0), (1, 1))])
def test_conv_transpose2d_gradient_check(stride, padding, output_padding, naive, rng):
    x = rng.standard_normal((2, 3, 3, 4))
    W = rng.standard_normal((3, 2, 3, 3))
    b = rng.standard_normal(2)
    args = dict(stride=stride, padding=padding, output_padding=output_padding)
    P = projection(cn.ops.conv_transpose2d_forward(x, W, b, **args).shape, 13)
    loss = lambda: float(np.sum(P * cn.ops.conv_transpose2d_forward(x, W, b, naive=naive, **args)))  # noqa: E731
    dx, dW, db = cn.ops.conv_transpose2d_backward(P, x, W, naive=naive, **args)
    for analytic, wrt in [(dx, x), (dW, W), (db, b)]:
        assert relative_difference(analytic, numerical_gradient(loss, wrt)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------- transposed conv parity


def transpose_grid():
    cases = []
    for k, stride, padding, output_padding in itertools.product(
            [1, 2, 3, 4], [1, 2, 3], [0, 1, 2], [0, 1, 2]):
        if output_padding >= stride:
            continue
        n, h, w = (3, 4, 5) if (k + stride) % 2 else (1, 5, 3)
        if (h - 1) * stride - 2 * padding + k + output_padding < 1 or \
                (w - 1) * stride - 2 * padding + k + output_padding < 1:
            continue
        cases.append((n, 3, h, w, 4, k, stride, padding, output_padding))
    return cases


TGRID = transpose_grid()


@pytest.mark.parametrize("case", TGRID, ids=[f"n{c[0]}-{c[2]}x{c[3]}-k{c[5]}s{c[6]}p{c[7]}op{c[8]}" for c in TGRID])
def test_conv_transpose2d_parity(case, rng):
    n, c, h, w, o, k, stride, padding, output_padding = case
    args = dict(stride=stride, padding=padding, output_padding=output_padding)
    for dtype in FLOAT_DTYPES:
        x = rng.standard_normal((n, c, h, w)).astype(dtype)
        W = (rng.standard_normal((c, o, k, k)) / k).astype(dtype)
        b = rng.standard_normal(o).astype(dtype)
        y_ref = ref.conv_transpose2d_forward(*f64(x, W, b), **args)
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        edx, edW, edb = ref.conv_transpose2d_backward(*f64(dy, x, W), **args)
        for naive in (False, True):
            y = cn.ops.conv_transpose2d_forward(x, W, b, naive=naive, **args)
            assert y.dtype == dtype
            assert_close(y, y_ref, op="conv_transpose2d_forward", what=f"y naive={naive}")
            dx, dW, db = cn.ops.conv_transpose2d_backward(dy, x, W, naive=naive, **args)
            for got, want, name in [(dx, edx, "dx"), (dW, edW, "dW"), (db, edb, "db")]:
                assert got.dtype == dtype
                assert_close(got, want, op="conv_transpose2d_backward", what=f"{name} naive={naive}")


def test_conv_transpose2d_large_batch_and_no_bias(rng):
    x = rng.standard_normal((9, 3, 4, 4)).astype(np.float32)
    W = rng.standard_normal((3, 5, 2, 2)).astype(np.float32)
    y = cn.ops.conv_transpose2d_forward(x, W, stride=2)
    assert y.shape == (9, 5, 8, 8)
    assert_close(y, ref.conv_transpose2d_forward(*f64(x, W), stride=2), op="conv_transpose2d_forward")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx, dW, db = cn.ops.conv_transpose2d_backward(dy, x, W, stride=2, with_bias=False)
    edx, edW, _ = ref.conv_transpose2d_backward(*f64(dy, x, W), stride=2)
    assert db is None
    assert_close(dx, edx, op="conv_transpose2d_backward", what="dx")
    assert_close(dW, edW, op="conv_transpose2d_backward", what="dW")


# ---------------------------------------------------------------- thread-count independence


@pytest.fixture
def restore_threads():
    before = cn.get_num_threads()
    yield
    cn.set_num_threads(before)


@pytest.mark.parametrize("groups, c, o", [(1, 4, 8), (4, 4, 8)])
def test_conv2d_independent_of_thread_count(groups, c, o, rng, restore_threads):
    x, W, b = make_conv(rng, np.float32, 6, c, 12, 10, o, 3, groups)
    args = dict(padding=1, groups=groups)
    dy = rng.standard_normal((6, o, 12, 10)).astype(np.float32)
    results = []
    for threads in (1, 2):
        cn.set_num_threads(threads)
        results.append((cn.ops.conv2d_forward(x, W, b, **args), cn.ops.conv2d_backward(dy, x, W, **args)))
    (y1, g1), (y2, g2) = results
    np.testing.assert_array_equal(y1, y2)  # forward: bitwise
    for a, bb in zip(g1, g2):  # backward: dW partial sums may be grouped differently
        assert_close(a, bb.astype(np.float64), op="conv2d_backward")
    # and the same thread count twice is bitwise reproducible
    again = cn.ops.conv2d_backward(dy, x, W, **args)
    for a, bb in zip(g2, again):
        np.testing.assert_array_equal(a, bb)


# With fewer images than threads the forward splits each image's window rows
# across the threads (each part its own im2col and product): 3×3 "same",
# pointwise (the plane read in place from the part's first row), strided with
# groups and asymmetric padding, and a large image whose parts hold several
# column tiles. Each has enough work per row for two parts.
ROW_SPLIT_CASES = [
    # (n, c, h, w, o, k, groups, stride, padding, dilation)
    (1, 16, 20, 24, 32, 3, 1, 1, 1, 1),
    (1, 64, 16, 16, 64, 1, 1, 1, 0, 1),
    (1, 32, 23, 19, 48, 3, 2, 2, (1, 0, 2, 1), 1),
    (1, 8, 100, 300, 16, 5, 1, 1, 2, (2, 1)),
]


@pytest.mark.parametrize("case", ROW_SPLIT_CASES, ids=[grid_id(c) for c in ROW_SPLIT_CASES])
def test_conv2d_forward_rows_split_across_threads(case, rng, restore_threads):
    n, c, h, w, o, k, groups, stride, padding, dilation = case
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    for dtype in FLOAT_DTYPES:
        x, W, b = make_conv(rng, dtype, n, c, h, w, o, k, groups)
        want = ref.conv2d_forward(*f64(x, W, b), **args)
        for threads in (2, 1):
            cn.set_num_threads(threads)
            y = cn.ops.conv2d_forward(x, W, b, **args)
            assert_close(y, want, op="conv2d_forward", what=f"y, {threads} threads")
        cn.set_num_threads(2)
        np.testing.assert_array_equal(cn.ops.conv2d_forward(x, W, b, **args),
                                      cn.ops.conv2d_forward(x, W, b, **args))


def test_conv_transpose2d_independent_of_thread_count(rng, restore_threads):
    x = rng.standard_normal((6, 4, 5, 5)).astype(np.float32)
    W = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    ys = []
    for threads in (1, 2):
        cn.set_num_threads(threads)
        ys.append(cn.ops.conv_transpose2d_forward(x, W, b, stride=2, padding=1, output_padding=1))
    np.testing.assert_array_equal(ys[0], ys[1])


# ---------------------------------------------------------------- bad inputs

X = np.ones((1, 4, 3, 3))


@pytest.mark.parametrize("args, kwargs, exc, match", [
    ((X, np.ones((2, 4, 5, 5))), {}, ValueError,
     r"conv2d_forward: kernel 5x5 \(dilated\) is larger than the padded input 3x3"),
    ((X, np.ones((2, 4, 3, 3))), dict(dilation=2), ValueError,
     r"conv2d_forward: kernel 5x5 \(dilated\) is larger than the padded input 3x3"),
    ((X, np.ones((2, 4, 3, 3))), dict(stride=0), ValueError,
     r"conv2d_forward: stride must be >= 1, got 0"),
    ((X, np.ones((2, 4, 3, 3))), dict(dilation=(1, 0)), ValueError,
     r"conv2d_forward: dilation must be >= 1, got 0"),
    ((X, np.ones((2, 4, 3, 3))), dict(padding=(0, -1)), ValueError,
     r"conv2d_forward: padding must be >= 0, got -1"),
    ((X, np.ones((3, 1, 3, 3))), dict(groups=3), ValueError,
     r"conv2d_forward: groups=3 must divide in_channels=4"),
    ((X, np.ones((3, 2, 3, 3))), dict(groups=2), ValueError,
     r"conv2d_forward: groups=2 must divide out_channels=3"),
    ((X, np.ones((2, 4, 3, 3))), dict(groups=0), ValueError,
     r"conv2d_forward: groups must be >= 1, got 0"),
    ((X, np.ones((2, 3, 3, 3))), {}, ValueError,
     r"conv2d_forward: W must have shape \(2, 4, 3, 3\), got \(2, 3, 3, 3\)"),
    ((X, np.ones((2, 4, 3))), {}, ValueError,
     r"conv2d_forward: W must be 4-D \(out_channels, in_channels/groups, kernel_h, kernel_w\), got shape \(2, 4, 3\)"),
    ((np.ones((4, 3, 3)), np.ones((2, 4, 3, 3))), {}, ValueError,
     r"conv2d_forward: x must be 4-D \(batch, in_channels, height, width\), got shape \(4, 3, 3\)"),
    ((X, np.ones((2, 4, 3, 3), np.float32)), {}, TypeError,
     r"conv2d_forward: W must have the dtype of x \(float64\), got float32"),
    ((X.astype(np.int32), np.ones((2, 4, 3, 3))), {}, TypeError,
     r"conv2d_forward: x must be float32 or float64, got int32"),
    ((X, np.ones((2, 4, 3, 3)), np.ones(3)), {}, ValueError,
     r"conv2d_forward: b must have shape \(2,\), got \(3,\)"),
    ((X, np.ones((2, 4, 3, 3))), dict(stride=(1, 2, 3)), ValueError,
     r"conv2d_forward: stride must be an int or an \(h, w\) pair, got 3 values \(1, 2, 3\)"),
    ((X, np.ones((2, 4, 3, 3))), dict(padding=1.5), TypeError,
     r"conv2d_forward: padding must be an int, \(h, w\) or \(top, bottom, left, right\), got 1.5"),
])
def test_conv2d_forward_bad_inputs(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        cn.ops.conv2d_forward(*args, **kwargs)


def test_conv2d_backward_bad_inputs():
    W = np.ones((2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"conv2d_backward: dy must have shape \(1, 2, 1, 1\), got \(1, 2, 2, 2\)"):
        cn.ops.conv2d_backward(np.ones((1, 2, 2, 2)), X, W)
    with pytest.raises(TypeError, match=r"conv2d_backward: dy must have the dtype of x \(float64\), got float32"):
        cn.ops.conv2d_backward(np.ones((1, 2, 1, 1), np.float32), X, W)
    with pytest.raises(ValueError, match=r"conv2d_backward: stride must be >= 1, got 0"):
        cn.ops.conv2d_backward(np.ones((1, 2, 1, 1)), X, W, stride=0)


@pytest.mark.parametrize("kwargs, W, exc, match", [
    (dict(stride=2, output_padding=2), np.ones((4, 2, 3, 3)), ValueError,
     r"conv_transpose2d_forward: output_padding \(2, 2\) must be smaller than stride \(2, 2\)"),
    (dict(output_padding=1), np.ones((4, 2, 3, 3)), ValueError,
     r"conv_transpose2d_forward: output_padding \(1, 1\) must be smaller than stride \(1, 1\)"),
    (dict(stride=0), np.ones((4, 2, 3, 3)), ValueError,
     r"conv_transpose2d_forward: stride must be >= 1, got 0"),
    (dict(padding=-1), np.ones((4, 2, 3, 3)), ValueError,
     r"conv_transpose2d_forward: padding must be >= 0, got -1"),
    (dict(padding=4), np.ones((4, 2, 3, 3)), ValueError,
     r"conv_transpose2d_forward: output size -3x-3 must be >= 1"),
    ({}, np.ones((3, 2, 3, 3)), ValueError,
     r"conv_transpose2d_forward: W must have shape \(4, 2, 3, 3\), got \(3, 2, 3, 3\)"),
    ({}, np.ones((4, 2, 3, 3), np.float32), TypeError,
     r"conv_transpose2d_forward: W must have the dtype of x \(float64\), got float32"),
])
def test_conv_transpose2d_forward_bad_inputs(kwargs, W, exc, match):
    with pytest.raises(exc, match=match):
        cn.ops.conv_transpose2d_forward(X, W, **kwargs)


def test_conv_transpose2d_backward_bad_dy():
    with pytest.raises(ValueError, match=r"conv_transpose2d_backward: dy must have shape \(1, 2, 5, 5\), got \(1, 2, 4, 4\)"):
        cn.ops.conv_transpose2d_backward(np.ones((1, 2, 4, 4)), X, np.ones((4, 2, 3, 3)))


# ------------------------------------------------------- the ops' kept scratch

# (n, c, h, w, o, k, padding, algorithm): 3×3 stride-1 cases on each of the
# three routes (their scratch sizes differ by far), a 5×5 im2col case with
# padding (its columns have zeroed border cells) and a valid one, smaller
# and bigger in turn.
_SCRATCH_CASES = {
    "wino4": (4, 16, 17, 15, 24, 3, 1, "winograd4"),
    "small": (1, 3, 6, 7, 5, 5, 2, "gemm"),
    "wino2": (3, 8, 9, 9, 8, 3, 0, "winograd2"),
    "gemm3": (2, 6, 12, 10, 7, 3, 1, "gemm"),
    "valid": (2, 6, 14, 14, 16, 5, 0, "gemm"),
}


def _scratch_run(name, transpose=False):
    n, c, h, w, o, k, padding, algorithm = _SCRATCH_CASES[name]
    x, W, b = make_conv(np.random.default_rng(len(name)), np.float32, n, c, h, w, o, k)
    before = cn.get_conv_algorithm()
    cn.set_conv_algorithm(algorithm)
    try:
        if transpose:  # W read as (C_in, C_out, kh, kw): c → o channels become o → c
            y = cn.ops.conv_transpose2d_forward(x, W.transpose(1, 0, 2, 3).copy(), padding=padding)
            dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
            return [y, *cn.ops.conv_transpose2d_backward(dy, x, W.transpose(1, 0, 2, 3).copy(), padding=padding)]
        y = cn.ops.conv2d_forward(x, W, b, padding=padding)
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
        return [y, *cn.ops.conv2d_backward(dy, x, W, padding=padding)]
    finally:
        cn.set_conv_algorithm(before)


@pytest.mark.parametrize("transpose", [False, True])
def test_kept_scratch_gives_the_same_bits_whatever_ran_before(transpose):
    """The ops keep their scratch between calls (bindings' kept_scratch): each
    case run after every other, in growing and shrinking sizes, gives the
    bits it gives on its own first call, so no kernel reads what an earlier
    call left there."""
    first = {name: _scratch_run(name, transpose) for name in _SCRATCH_CASES}
    for name in [*reversed(_SCRATCH_CASES), "small", "wino4", "small", "valid", "wino2"]:
        for a, b in zip(first[name], _scratch_run(name, transpose)):
            assert np.array_equal(a, b), name
