"""Data-parallel training on MPI (corenn.distributed, issue 19): two ranks
launched with `mpiexec -n 2` (one thread each) run tests/mpi_worker.py once;
these tests compare what each rank saved with the other rank and with one
process trained here on the same data. Skipped without the extra."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import corenn as cn
import mpi_worker as worker
from tolerances import DATA_PARALLEL_TRAJECTORY, assert_close

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "mpi_worker.py")


def _mpiexec():
    """The mpiexec of the `mpich` wheel (installed beside this Python), else PATH's."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


if importlib.util.find_spec("mpi4py") is None or _mpiexec() is None:
    pytest.skip("data-parallel tests need mpi4py and mpiexec: pip install \"corenn[mpi]\"",
                allow_module_level=True)


def _launch(out, *args, timeout):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.path.join(ROOT, "tests"))
    started = time.perf_counter()
    done = subprocess.run([_mpiexec(), "-n", "2", sys.executable, WORKER, str(out), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    return done, time.perf_counter() - started


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """{scenario: [rank 0's arrays, rank 1's arrays]} and the output folder."""
    out = tmp_path_factory.mktemp("mpi")
    done, _ = _launch(out, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    saved = {}
    for name in ("sgd", "adam", "noisy", "seeded", "uneven"):
        saved[name] = [dict(np.load(out / f"{name}_rank{r}.npz")) for r in (0, 1)]
    return saved, out


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_two_ranks_of_batch_b_follow_one_process_of_batch_2b(ranks, name):
    saved, _ = ranks
    x, y = worker.data(worker.TRAJECTORY["n"])
    one = worker.mlp(worker.optimizer(name))
    # Shuffled: one process seeded as rank 0 draws the permutations the ranks share.
    one.fit(x, y, batch_size=2 * worker.TRAJECTORY["batch"], epochs=worker.TRAJECTORY["epochs"], verbose=0)
    r0, r1 = saved[name]
    assert int(r0["steps"]) == int(r1["steps"]) == one._engine.steps == 20
    assert np.array_equal(r0["params"], r1["params"])  # the replicas never drift apart
    assert np.max(np.abs(r0["params"] - one._engine.get_parameters())) <= DATA_PARALLEL_TRAJECTORY
    # compute_gradients on each rank's half: the gradient of the whole batch.
    one._engine.set_parameters(r0["params"])
    loss, grads = one.compute_gradients(x, y)
    assert_close(float(r0["loss"]), loss, np.float32, what="mean loss over both ranks")
    for k, g in enumerate(grads):
        assert np.array_equal(r0[f"grad{k}"], r1[f"grad{k}"])
        assert_close(r0[f"grad{k}"], g, np.float32, what=f"gradient {k}")


def test_dropout_and_batch_norm_replicas_stay_identical(ranks):
    saved, out = ranks
    r0, r1 = saved["noisy"]
    for key in ("params", "state", "slots", "loss", "predictions"):
        assert np.array_equal(r0[key], r1[key]), key
    assert int(r0["steps"]) == int(r1["steps"]) == 2 * 5  # 80 rows in global batches of 16, 2 epochs
    assert r0["dropout_key"] != r1["dropout_key"]  # each rank draws its own masks
    # Each rank's moving averages saw its own batches; the epoch end averages them.
    assert not np.array_equal(r0["local_state"], r1["local_state"])
    assert np.array_equal(r0["state"], (r0["local_state"] + r1["local_state"]) / 2)
    # Only rank 0 wrote its file, holding those statistics; it predicts the same.
    assert not (out / "noisy_model_1.corenn").exists()
    loaded = cn.load_model(out / "noisy_model_0.corenn")
    assert np.array_equal(loaded._engine.get_state(), r0["state"])
    x, _ = worker.data(worker.TRAJECTORY["n"])
    assert_close(loaded.predict(x), r0["predictions"], np.float32, what="predictions of the reloaded model")


def test_ranks_seeded_differently_end_identical(ranks):
    saved, _ = ranks
    r0, r1 = saved["seeded"]
    assert not np.array_equal(r0["before"], r1["before"])
    assert np.array_equal(r0["after"], r1["after"])


def test_unequal_shards_finish_with_the_global_mean(ranks):
    saved, out = ranks
    r0, r1 = saved["uneven"]
    xu, yu = worker.data(worker.UNEVEN["n"], seed=1)
    xv, yv = worker.data(9, seed=2)
    one = worker.mlp(worker.optimizer("sgd"), dtype="float64")
    history = one.fit(xu, yu, batch_size=2 * worker.UNEVEN["batch"], epochs=worker.UNEVEN["epochs"],
                      shuffle=False, verbose=0, validation_data=(xv, yv))
    scores = one.evaluate(xv, yv)
    assert int(r0["steps"]) == int(r1["steps"]) == one._engine.steps == 6
    for key in ("params", "loss", "val_loss", "val_accuracy", "eval_loss", "eval_accuracy"):
        assert np.array_equal(r0[key], r1[key]), key  # EarlyStopping decides the same everywhere
    assert_close(r0["params"], one._engine.get_parameters(), np.float64, what="parameters")
    assert_close(r0["loss"], np.array(history.history["loss"]), np.float64, what="training loss")
    assert_close(r0["val_loss"], np.array(history.history["val_loss"]), np.float64, what="val_loss")
    assert_close(r0["eval_loss"], scores["loss"], np.float64, what="evaluate")
    assert float(r0["eval_accuracy"]) == scores["accuracy"]
    assert (out / "log_0.csv").exists() and not (out / "log_1.csv").exists()
    assert len((out / "log_0.csv").read_text().splitlines()) == 1 + worker.UNEVEN["epochs"]


def test_an_exception_on_one_rank_ends_the_job(tmp_path):
    # Without the abort, rank 0 would wait in its first collective until the
    # 120 s timeout; two Python start-ups and the 1 s grace take a few seconds
    # (more on a loaded CI machine, hence the margin).
    done, seconds = _launch(tmp_path, "abort", timeout=120)
    assert done.returncode != 0
    assert re.search("rank 1 fails on purpose", done.stderr), done.stderr
    assert seconds < 40


def test_the_ci_installs_the_pinned_extra():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        extra = tomllib.load(f)["project"]["optional-dependencies"]["mpi"]
    assert all("==" in requirement for requirement in extra)
    with open(os.path.join(ROOT, ".ci", "run")) as f:
        ci = f.read()
    assert f"pip install {' '.join(extra)}" in ci


def test_the_example_reaches_the_accuracy_of_one_process():
    pytest.importorskip("sklearn", reason="the example trains on scikit-learn's digits")
    args = ["-m", "corenn.examples.distributed", "--epochs", "3"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    two = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-m", "mpi4py", *args], env=env,
                         capture_output=True, text=True, timeout=180)
    one = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=180)
    accuracy = [re.search(r"test accuracy: ([0-9.]+)", run.stdout) for run in (two, one)]
    assert all(accuracy), two.stdout + two.stderr + one.stdout + one.stderr
    assert accuracy[0].group(1) == accuracy[1].group(1)
    assert "rank 0/2: " in two.stdout and "rank 1/2: " in two.stdout  # each rank's throughput
