"""corenn under threadpoolctl (how scikit-learn and NumPy limit threads):
threadpool_info lists corenn, threadpool_limits sets its thread count, a BLAS
limit never leaves corenn's private OpenBLAS above one thread while corenn
runs, and cn.get_num_threads() reads the live OpenMP value."""

import numpy as np
import pytest

import corenn as cn

threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl is not installed")
L = cn.layers


def corenn_entries():
    return [i for i in threadpoolctl.threadpool_info() if i["internal_api"] == "corenn"]


def corenn_openblas():
    """The controller of the OpenBLAS libcorenn calls (scipy-openblas32's)."""
    found = [c for c in threadpoolctl.ThreadpoolController().select(internal_api="openblas").lib_controllers
             if "scipy_openblas32" in c.filepath]
    if not found:
        pytest.skip("corenn is not built with scipy-openblas32's OpenBLAS")
    return found[0]


def test_threadpool_info_lists_corenn():
    entries = corenn_entries()
    assert len(entries) == 1
    info = entries[0]
    assert info["user_api"] == "openmp" and info["prefix"] == "libcorenn"
    assert info["num_threads"] == cn.get_num_threads()
    assert info["version"] == cn.__version__ and info["blas"] == cn._core.blas_backend()


@pytest.mark.parametrize("limits", [1, {"libcorenn": 1}])
def test_threadpool_limits_set_corenn_threads_and_restore_them(limits):
    before = cn.get_num_threads()
    cn.set_num_threads(2)
    try:
        with threadpoolctl.threadpool_limits(limits=limits):
            assert cn.get_num_threads() == 1
            assert corenn_entries()[0]["num_threads"] == 1
        assert cn.get_num_threads() == 2
    finally:
        cn.set_num_threads(before)


def test_get_num_threads_reads_an_openmp_limit_live():
    # Only the OpenMP runtime's controller: corenn must see the limit anyway.
    before = cn.get_num_threads()
    cn.set_num_threads(2)
    try:
        gomp = threadpoolctl.ThreadpoolController().select(internal_api="openmp")
        assert gomp.lib_controllers, "no OpenMP runtime found"
        with gomp.limit(limits=1):
            assert cn.get_num_threads() == 1
        assert cn.get_num_threads() == 2
    finally:
        cn.set_num_threads(before)


@pytest.mark.parametrize("conv", [False, True])
def test_a_blas_limit_does_not_raise_corenns_openblas_above_one_thread(conv):
    cn.seed(0)
    if conv:  # convolutions call BLAS inside their own parallel regions
        model = cn.Sequential([L.Input((3, 16, 16)), L.Conv2D(8, 3), L.Flatten(), L.Dense(4)])
    else:
        model = cn.Sequential([L.Input((64,)), L.Dense(64), L.Dense(4)])
    x = np.random.default_rng(0).standard_normal((32, *model.input_shape[1:])).astype(np.float32)
    expected = model.predict(x)
    openblas = corenn_openblas()
    assert openblas.num_threads == 1
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert openblas.num_threads == 2  # threadpoolctl raised it ...
        np.testing.assert_array_equal(model.predict(x), expected)
        assert openblas.num_threads == 1  # ... and corenn put it back before its BLAS work
    assert openblas.num_threads == 1
