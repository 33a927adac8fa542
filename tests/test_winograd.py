"""Winograd F(2×2, 3×3) and F(4×4, 3×3) convolution (cpp/src/kernels/winograd.cpp)
and the process-wide conv algorithm setting (cn.set_conv_algorithm)."""

import contextlib
import itertools

import numpy as np
import pytest

import corenn as cn
from gradcheck import numerical_gradient, projection, relative_difference
from tolerances import GRADCHECK_EPS, WINOGRAD_F2, WINOGRAD_F4, WINOGRAD_GRADCHECK, WINOGRAD_TRAINING, assert_close

# The explicit tile sizes and their error bounds (tests/tolerances.py).
TILES = {"winograd2": WINOGRAD_F2, "winograd4": WINOGRAD_F4}


@contextlib.contextmanager
def conv_algorithm(name):
    before = cn.get_conv_algorithm()
    cn.set_conv_algorithm(name)
    try:
        yield
    finally:
        cn.set_conv_algorithm(before)


def make_case(rng, n, c, o, h, w):
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    W = (rng.standard_normal((o, c, 3, 3)) / np.sqrt(9 * c)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    return x, W, b


def f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def assert_winograd_close(got, want, what, tol=WINOGRAD_F2):
    """|got − want| <= tol · max |want| (WINOGRAD_F2 or WINOGRAD_F4, see tolerances.py)."""
    scale = max(float(np.max(np.abs(want))), np.finfo(np.float32).tiny)
    err = float(np.max(np.abs(got.astype(np.float64) - want))) / scale
    assert err <= tol, f"{what}: max error {err:.3g} of max |reference| > {tol}"


# ---------------------------------------------------------------- the setting


def test_setting_round_trips_and_defaults_to_auto():
    assert cn.get_conv_algorithm() == "auto"
    for name in ["gemm", "winograd", "winograd2", "winograd4", "auto"]:
        cn.set_conv_algorithm(name)
        assert cn.get_conv_algorithm() == name


@pytest.mark.parametrize("bad", ["", "fft", "Winograd", "direct", "winograd3", "winograd6"])
def test_setting_rejects_unknown_names(bad):
    with pytest.raises(ValueError, match="set_conv_algorithm: algorithm must be 'auto', 'gemm', 'winograd', "
                                         "'winograd2' or 'winograd4', got"):
        cn.set_conv_algorithm(bad)
    assert cn.get_conv_algorithm() == "auto"


@pytest.mark.parametrize("bad", [None, 1, b"gemm"])
def test_setting_rejects_non_strings(bad):
    with pytest.raises(TypeError, match="set_conv_algorithm: algorithm must be a str"):
        cn.set_conv_algorithm(bad)


# ---------------------------------------------------------------- parity grid against float64

# (n, c, o, h, w, padding): batch 1 and 3, channels 1 … 67, odd, even and
# non-square images down to the 3×3 kernel itself, padding 0, 1, 2 and asymmetric.
GRID = [(n, c, o, h, w, p) for (n, (c, o), (h, w), p) in itertools.product(
    [1, 3], [(1, 1), (2, 5), (7, 3), (67, 4), (5, 67)], [(3, 3), (5, 8), (9, 7)],
    [0, 1, 2, (0, 2, 1, 0)])]


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", GRID, ids=[f"n{n}c{c}o{o}-{h}x{w}-p{p}".replace(" ", "")
                                            for n, c, o, h, w, p in GRID])
def test_winograd_matches_float64_direct_convolution(case, tile, rng):
    n, c, o, h, w, padding = case
    tol = TILES[tile]
    x, W, b = make_case(rng, n, c, o, h, w)
    y64 = cn.ops.conv2d_forward(*f64(x, W, b), padding=padding, naive=True)
    dy = rng.standard_normal(y64.shape).astype(np.float32)
    want = cn.ops.conv2d_backward(*f64(dy, x, W), padding=padding, naive=True)
    with conv_algorithm(tile):
        y = cn.ops.conv2d_forward(x, W, b, padding=padding)
        got = cn.ops.conv2d_backward(dy, x, W, padding=padding)
    assert y.dtype == np.float32
    assert_winograd_close(y, y64, "y", tol)
    for g, e, name in zip(got[:2], want[:2], ["dx", "dW"]):
        assert g.dtype == np.float32
        assert_winograd_close(g, e, name, tol)
    assert_close(got[2], want[2], op="conv2d_backward", what="db (the GEMM path's bias_grad)")


@pytest.mark.parametrize("tile", TILES)
def test_winograd_blocks_batches_and_wide_padding(tile, rng):
    # 130×90 with 24 + 24 channels needs several blocks of tile rows; 17
    # images split over the threads, dW summed over per-range partials.
    # Padding beyond the kernel (3, (4, 0, 3, 5)) crops dy for the input gradient.
    tol = TILES[tile]
    for n, c, o, h, w, padding in [(1, 24, 24, 130, 90, 1), (17, 3, 5, 11, 10, 1), (5, 24, 24, 20, 20, 1),
                                   (2, 3, 4, 5, 6, 3), (2, 2, 3, 4, 5, (4, 0, 3, 5))]:
        x, W, b = make_case(rng, n, c, o, h, w)
        y64 = cn.ops.conv2d_forward(*f64(x, W, b), padding=padding)
        dy = rng.standard_normal(y64.shape).astype(np.float32)
        want = cn.ops.conv2d_backward(*f64(dy, x, W), padding=padding)
        with conv_algorithm(tile):
            assert_winograd_close(cn.ops.conv2d_forward(x, W, b, padding=padding), y64, "y", tol)
            got = cn.ops.conv2d_backward(dy, x, W, padding=padding)
        for g, e, name in zip(got[:2], want[:2], ["dx", "dW"]):
            assert_winograd_close(g, e, name, tol)


# The transforms take a piece of an image's tile rows kChunkTiles = 64 tiles at
# a time (at least one tile row) and split each input and dy row in place, all
# its tiles in one loop when the reads stay inside the plane, the edge tiles
# redone. Tile rows of 1, 3, 8, 9, 16 and 17 tiles (F(4×4); F(2×2) has twice
# as many), over several chunks, rows whose reads leave the plane (its first
# and last rows), crops and wide padding, channels 1 and 17.
CHUNK_CASES = [(2, 1, 1, 261, 4, 1), (1, 17, 3, 90, 11, 2), (2, 3, 17, 36, 32, 1), (1, 17, 17, 31, 35, 0),
               (2, 2, 5, 20, 64, 1), (1, 5, 2, 14, 67, (0, 2, 1, 0))]


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", CHUNK_CASES, ids=[f"n{n}c{c}o{o}-{h}x{w}-p{p}".replace(" ", "")
                                                  for n, c, o, h, w, p in CHUNK_CASES])
def test_winograd_chunks_of_tile_rows_and_row_edges(case, tile, rng):
    n, c, o, h, w, padding = case
    x, W, b = make_case(rng, n, c, o, h, w)
    y64 = cn.ops.conv2d_forward(*f64(x, W, b), padding=padding)
    dy = rng.standard_normal(y64.shape).astype(np.float32)
    want = cn.ops.conv2d_backward(*f64(dy, x, W), padding=padding)
    with conv_algorithm(tile):
        assert_winograd_close(cn.ops.conv2d_forward(x, W, b, padding=padding), y64, "y", TILES[tile])
        got = cn.ops.conv2d_backward(dy, x, W, padding=padding)
    for g, e, name in zip(got[:2], want[:2], ["dx", "dW"]):
        assert_winograd_close(g, e, name, TILES[tile])


@pytest.mark.parametrize("tile", TILES)
def test_winograd_without_input_gradient_or_bias(tile, rng):
    tol = TILES[tile]
    x, W, _ = make_case(rng, 2, 3, 4, 6, 7)
    dy = rng.standard_normal((2, 4, 6, 7)).astype(np.float32)
    want = cn.ops.conv2d_backward(*f64(dy, x, W), padding=1, with_bias=False)
    with conv_algorithm(tile):
        assert_winograd_close(cn.ops.conv2d_forward(x, W, padding=1),
                              cn.ops.conv2d_forward(*f64(x, W), padding=1), "y without bias", tol)
        dx, dW, db = cn.ops.conv2d_backward(dy, x, W, padding=1, with_bias=False)
    assert db is None
    assert_winograd_close(dx, want[0], "dx", tol)
    assert_winograd_close(dW, want[1], "dW", tol)


def test_winograd_error_is_that_of_its_tile_not_of_gemm(rng):
    # Forcing "winograd" really changes the arithmetic (the results are not
    # GEMM's bits), float64 and shapes Winograd cannot compute keep GEMM's.
    x, W, b = make_case(rng, 3, 16, 16, 12, 12)
    with conv_algorithm("gemm"):
        y_gemm = cn.ops.conv2d_forward(x, W, b, padding=1)
        y_gemm64 = cn.ops.conv2d_forward(*f64(x, W, b), padding=1)
        y_stride = cn.ops.conv2d_forward(x, W, b, padding=1, stride=2)
        y_dil = cn.ops.conv2d_forward(x, W, b, padding=2, dilation=2)
    ys = []
    for tile in TILES:
        with conv_algorithm(tile):
            ys.append(cn.ops.conv2d_forward(x, W, b, padding=1))
            assert np.array_equal(cn.ops.conv2d_forward(*f64(x, W, b), padding=1), y_gemm64)
            assert np.array_equal(cn.ops.conv2d_forward(x, W, b, padding=1, stride=2), y_stride)
            assert np.array_equal(cn.ops.conv2d_forward(x, W, b, padding=2, dilation=2), y_dil)
    assert not np.array_equal(ys[0], y_gemm)
    assert not np.array_equal(ys[1], y_gemm)
    assert not np.array_equal(ys[0], ys[1])  # two different algorithms


def test_gemm_setting_reproduces_the_gemm_path_bit_for_bit(rng):
    # "gemm" runs the im2col + GEMM code unchanged: the same bits before and
    # after Winograd ran in the same process (no state carried over), forward
    # and backward, over the three backward routes' shapes.
    for n, c, o, h, w, padding in [(3, 8, 8, 10, 9, 1), (2, 4, 12, 7, 7, 1), (3, 6, 5, 8, 8, 0)]:
        x, W, b = make_case(rng, n, c, o, h, w)
        dy = rng.standard_normal(cn.ops.conv2d_forward(x, W, b, padding=padding).shape).astype(np.float32)
        with conv_algorithm("gemm"):
            first = [cn.ops.conv2d_forward(x, W, b, padding=padding),
                     *cn.ops.conv2d_backward(dy, x, W, padding=padding)]
        with conv_algorithm("winograd"):
            wino = [cn.ops.conv2d_forward(x, W, b, padding=padding),
                    *cn.ops.conv2d_backward(dy, x, W, padding=padding)]
        with conv_algorithm("gemm"):
            again = [cn.ops.conv2d_forward(x, W, b, padding=padding),
                     *cn.ops.conv2d_backward(dy, x, W, padding=padding)]
        for a, g, wv in zip(first, again, wino):
            assert np.array_equal(a, g)
        assert not all(np.array_equal(a, wv) for a, wv in zip(first, wino))


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("n", [9, 1])
def test_winograd_is_deterministic_for_a_thread_count(tile, n, rng):
    # n = 1: the one image's tile rows split across the threads, dW summed
    # over per-range partials in range order.
    x, W, b = make_case(rng, n, 16, 16, 19, 19)
    dy = rng.standard_normal((n, 16, 19, 19)).astype(np.float32)
    with conv_algorithm(tile):
        runs = [cn.ops.conv2d_backward(dy, x, W, padding=1) for _ in range(3)]
    for run in runs[1:]:
        for a, r in zip(runs[0], run):
            assert np.array_equal(a, r)


@pytest.mark.parametrize("tile", TILES)
def test_one_image_split_across_threads_matches_one_thread(tile, rng):
    # Batch 1 on 2 threads runs each half of the image's tile rows on its own
    # thread: the results are those of one thread within the tile's error
    # (GEMM blocking may differ), and both match the float64 reference.
    x, W, b = make_case(rng, 1, 16, 24, 37, 29)
    y64 = cn.ops.conv2d_forward(*f64(x, W, b), padding=1)
    dy = rng.standard_normal(y64.shape).astype(np.float32)
    want = cn.ops.conv2d_backward(*f64(dy, x, W), padding=1)
    threads = cn.get_num_threads()
    try:
        for t in [1, 2]:
            cn.set_num_threads(t)
            with conv_algorithm(tile):
                assert_winograd_close(cn.ops.conv2d_forward(x, W, b, padding=1), y64, f"y, {t} threads", TILES[tile])
                got = cn.ops.conv2d_backward(dy, x, W, padding=1)
            for g, e, name in zip(got[:2], want[:2], ["dx", "dW"]):
                assert_winograd_close(g, e, f"{name}, {t} threads", TILES[tile])
    finally:
        cn.set_num_threads(threads)


# Fewer images than threads, a thread's share at least 8 tiles: the
# correlations (forward, input gradient) run each thread's tile rows through
# all three steps, the products by winograd.cpp's own register-blocked kernel
# (blocks of 8 output channels × 32, 16, 8, 4 and single tiles). (n, c, o, h,
# w, padding, threads): channels 1, 5, 9, 17, 67 (not multiples of 8), a
# thread's share from 8 to 170 tiles, padding 0, 1, 2, batch 3 on 4 threads.
OWN_PRODUCT_CASES = [(1, 1, 17, 40, 33, 1, 2), (1, 67, 5, 19, 21, 0, 2), (1, 17, 67, 13, 30, 2, 2),
                     (3, 9, 17, 23, 18, 1, 4), (1, 8, 16, 16, 16, 1, 2), (1, 33, 1, 24, 41, 1, 2)]


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", OWN_PRODUCT_CASES, ids=[f"n{n}c{c}o{o}-{h}x{w}-p{p}-t{t}"
                                                        for n, c, o, h, w, p, t in OWN_PRODUCT_CASES])
def test_fewer_images_than_threads_own_products(case, tile, rng):
    n, c, o, h, w, padding, threads = case
    x, W, b = make_case(rng, n, c, o, h, w)
    y64 = cn.ops.conv2d_forward(*f64(x, W, b), padding=padding, naive=True)
    dy = rng.standard_normal(y64.shape).astype(np.float32)
    dx64 = cn.ops.conv2d_backward(*f64(dy, x, W), padding=padding, naive=True)[0]
    before = cn.get_num_threads()
    try:
        cn.set_num_threads(threads)
        with conv_algorithm(tile):
            runs = [(cn.ops.conv2d_forward(x, W, b, padding=padding),
                     cn.ops.conv2d_backward(dy, x, W, padding=padding)[0]) for _ in range(2)]
    finally:
        cn.set_num_threads(before)
    for y, dx in runs:
        assert_winograd_close(y, y64, "y", TILES[tile])
        assert_winograd_close(dx, dx64, "dx", TILES[tile])
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def forward_bits(x, W, b, algorithm):
    with conv_algorithm(algorithm):
        return cn.ops.conv2d_forward(x, W, b, padding=1)


# (C_in, C_out, image side, Winograd under "auto") with at least one image per
# thread: the measured rule in winograd.cpp: >= 16 channels from 16×16
# outputs on, >= 32 on 8×8; smaller channel counts and images keep GEMM.
AUTO_CASES = [(16, 16, 32, True), (32, 64, 16, True), (64, 32, 16, True), (32, 32, 16, True), (16, 16, 16, True),
              (64, 64, 8, True), (8, 8, 32, False), (8, 16, 16, False), (16, 32, 8, False), (3, 32, 32, False)]


@pytest.mark.parametrize("case", AUTO_CASES, ids=[f"{c}to{o}-{h}" for c, o, h, _ in AUTO_CASES])
def test_auto_picks_winograd_where_it_measured_faster(case, rng):
    c, o, h, winograd = case
    x, W, b = make_case(rng, max(2, cn.get_num_threads()), c, o, h, h)
    auto = forward_bits(x, W, b, "auto")
    assert np.array_equal(auto, forward_bits(x, W, b, "winograd" if winograd else "gemm"))
    assert not np.array_equal(auto, forward_bits(x, W, b, "gemm" if winograd else "winograd"))


def test_auto_at_batch_one_depends_on_the_thread_count(rng):
    # 32→32 channels on 16×16, one image: on one thread Winograd F(4×4) wins;
    # on two, the image's tiles are shared across the threads, whose fixed
    # costs weigh more, and GEMM wins (winograd.cpp's table).
    threads = cn.get_num_threads()
    try:
        x, W, b = make_case(rng, 1, 32, 32, 16, 16)
        cn.set_num_threads(2)
        assert np.array_equal(forward_bits(x, W, b, "auto"), forward_bits(x, W, b, "gemm"))
        cn.set_num_threads(1)
        assert np.array_equal(forward_bits(x, W, b, "auto"), forward_bits(x, W, b, "winograd4"))
    finally:
        cn.set_num_threads(threads)


# ---------------------------------------------------------------- gradient checks


@pytest.mark.parametrize("algorithm", ["auto", "gemm", "winograd", "winograd2", "winograd4"])
def test_gradient_check_of_every_setting(algorithm, rng):
    # The float32 analytic gradients (the branch the setting selects) against
    # float64 central differences of the exact function: Winograd's backward
    # is the gradient of the convolution, not of its own rounding.
    n, c, o, h, w, padding = 2, 3, 4, 5, 6, 1
    x, W, b = make_case(rng, n, c, o, h, w)
    x64, W64, b64 = f64(x, W, b)
    P = projection((n, o, h, w), 11)
    loss = lambda: float(np.sum(P * cn.ops.conv2d_forward(x64, W64, b64, padding=padding)))  # noqa: E731
    with conv_algorithm(algorithm):
        dx, dW, db = cn.ops.conv2d_backward(P.astype(np.float32), x, W, padding=padding)
    for analytic, param in [(dx, x64), (dW, W64), (db, b64)]:
        assert relative_difference(analytic, numerical_gradient(loss, param)) < WINOGRAD_GRADCHECK


def directional_difference(loss, param, analytic, seed):
    """|⟨analytic, v⟩ − (loss(p + εv) − loss(p − εv)) / 2ε| / ||analytic|| along
    a random direction v ~ N(0, I): a finite-difference check of a whole
    gradient at the cost of two evaluations (param restored). ||analytic|| is
    the spread of ⟨analytic, v⟩ over directions, so a gradient wrong by e
    scores about ||e|| / ||analytic|| (not lowered by a cancelling ⟨analytic, v⟩)."""
    v = np.random.default_rng(seed).standard_normal(param.shape)
    before = param.copy()
    param += GRADCHECK_EPS * v
    plus = loss()
    param[...] = before - GRADCHECK_EPS * v
    minus = loss()
    param[...] = before
    numeric, exact = (plus - minus) / (2 * GRADCHECK_EPS), float(np.sum(analytic.astype(np.float64) * v))
    return abs(exact - numeric) / float(np.linalg.norm(analytic.astype(np.float64)))


# (batch, C_in, C_out, image side, what "auto" runs, what "winograd" runs) on
# 2 threads: every branch of the measured rule in winograd.cpp, with one image
# per thread (batch 2) and fewer (batch 1).
BRANCH_CASES = [(2, 16, 16, 32, "winograd4", "winograd4"), (2, 32, 32, 8, "winograd2", "winograd2"),
                (2, 128, 128, 4, "winograd2", "winograd2"), (2, 16, 16, 16, "winograd4", "winograd4"),
                (2, 8, 16, 16, "gemm", "winograd4"),
                (2, 8, 8, 4, "gemm", "winograd2"), (1, 16, 32, 32, "winograd4", "winograd4"),
                (1, 64, 64, 16, "winograd2", "winograd2"), (1, 32, 32, 16, "gemm", "winograd2")]


@pytest.mark.parametrize("case", BRANCH_CASES, ids=[f"{c}to{o}-{h}-n{n}-{a}" for n, c, o, h, a, _ in BRANCH_CASES])
@pytest.mark.parametrize("setting", ["auto", "winograd"])
def test_gradient_check_on_every_branch_of_the_rule(case, setting, rng):
    # Shapes where "auto" and "winograd" take each branch of the measured
    # rule: the gradients of the branch taken (identified by its bits)
    # against float64 central differences along random directions.
    n, c, o, h, auto, winograd = case
    branch = {"auto": auto, "winograd": winograd}[setting]
    x, W, b = make_case(rng, n, c, o, h, h)
    x64, W64, b64 = f64(x, W, b)
    P = projection((n, o, h, h), 5)
    loss = lambda: float(np.sum(P * cn.ops.conv2d_forward(x64, W64, b64, padding=1)))  # noqa: E731
    threads = cn.get_num_threads()
    try:
        cn.set_num_threads(2)
        with conv_algorithm(setting):
            y = cn.ops.conv2d_forward(x, W, b, padding=1)
            dx, dW, db = cn.ops.conv2d_backward(P.astype(np.float32), x, W, padding=1)
        assert np.array_equal(y, forward_bits(x, W, b, branch)), f"{setting} did not take {branch}"
    finally:
        cn.set_num_threads(threads)
    for k, (analytic, param) in enumerate([(dx, x64), (dW, W64), (db, b64)]):
        assert directional_difference(loss, param, analytic, k) < WINOGRAD_GRADCHECK


# ---------------------------------------------------------------- training


def train_digits(algorithm, build):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    with conv_algorithm(algorithm):
        cn.clear_session()
        cn.seed(0)
        model = build()
        model.compile(optimizer=cn.optimizers.Adam(3e-3), loss="softmax_cross_entropy", metrics=["accuracy"])
        history = model.fit(X[:1200], y[:1200], batch_size=32, epochs=4, verbose=0, shuffle=False)
        return history.history["loss"], model.evaluate(X[1200:], y[1200:])


def lenet():
    L = cn.layers
    return cn.Sequential([L.Input((1, 8, 8)), L.Conv2D(8, 3, padding="same", activation="relu"),
                          L.Conv2D(16, 3, padding="same", activation="relu"), L.MaxPooling2D(2),
                          L.Flatten(), L.Dense(10)])


def resnet():
    return cn.applications.resnet_small((1, 8, 8), widths=(16, 32), blocks=(1, 1))


@pytest.mark.parametrize("build", [lenet, resnet], ids=["lenet", "resnet_small"])
def test_training_with_winograd_matches_gemm(build):
    train_loss_g, test_g = train_digits("gemm", build)
    train_loss_w, test_w = train_digits("winograd", build)
    assert test_g["accuracy"] > 0.85  # both learned
    assert train_loss_g[-1] < 0.3 * train_loss_g[0]
    np.testing.assert_allclose(train_loss_w, train_loss_g, **WINOGRAD_TRAINING["train_loss"])
    np.testing.assert_allclose(test_w["loss"], test_g["loss"], **WINOGRAD_TRAINING["test_loss"])
    assert abs(test_w["accuracy"] - test_g["accuracy"]) <= WINOGRAD_TRAINING["accuracy"]


def test_float32_parity_tolerance_holds_for_winograd(rng):
    # test_conv.py's grids run under "auto", which may pick Winograd for
    # their float32 cases: the general parity tolerance must hold for it too.
    x, W, b = make_case(rng, 2, 32, 32, 9, 9)
    with conv_algorithm("winograd"):
        assert_close(cn.ops.conv2d_forward(x, W, b, padding=1),
                     cn.ops.conv2d_forward(*f64(x, W, b), padding=1), op="conv2d_forward")


# The output transform maps a group of output channels at once when a
# thread's tiles are all of its block's columns (a small image at batch 1,
# Tiling::channel_group): the bias, residual and ReLU of a fused convolution
# (docs/guide.md, "Fused inference") go to each channel of the group. Output
# channels 1, 17, 67 (groups of 4 or 8 tiles' worth leave remainders), odd and
# even sides, batch 1 and 3, 1 and 2 threads; the reference is GEMM with every
# layer as written.
GROUP_CASES = [(5, 17, 16), (3, 67, 15), (17, 1, 16), (9, 17, 9)]


@pytest.mark.parametrize("tile", TILES)
@pytest.mark.parametrize("case", GROUP_CASES, ids=[f"c{c}o{o}-{s}" for c, o, s in GROUP_CASES])
def test_output_channel_groups_through_the_fused_epilogue(case, tile):
    c, o, side = case
    L = cn.layers
    cn.seed(3)
    x = L.Input((c, side, side))
    short = L.Conv2D(o, 1, name="short")(x)
    main = L.Conv2D(o, 3, padding="same", name="main")(x)
    y = L.Activation("relu", name="out")(L.Add(name="add")([main, short]))
    model = cn.Model(x, y)
    model.compile(cn.optimizers.Adam(1e-2), "mse")
    model.build()
    kernel, _ = model.get_layer("main").get_weights()
    model.get_layer("main").set_weights([kernel, np.linspace(-1, 1, o).astype(np.float32)])  # a bias per channel
    assert ["main", "add", "out"] in [list(g) for g in model._engine.fusion_plan()]
    data = np.random.default_rng(4).standard_normal((3, c, side, side)).astype(np.float32)
    threads, fused = cn.get_num_threads(), cn.get_fusion()
    try:
        for t in [1, 2]:
            cn.set_num_threads(t)
            for batch in [data[:1], data]:
                cn.set_fusion(False)
                with conv_algorithm("gemm"):
                    want = model.predict(batch)
                cn.set_fusion(True)
                with conv_algorithm(tile):
                    got = [model.predict(batch) for _ in range(2)]
                assert_winograd_close(got[0], want.astype(np.float64), f"{t} threads, batch {len(batch)}",
                                      TILES[tile])
                assert np.array_equal(got[0], got[1])
    finally:
        cn.set_num_threads(threads)
        cn.set_fusion(fused)
