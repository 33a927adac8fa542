"""The report's derived sections (thread scaling, targets) from hand-made rows."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402


def _row(name, threads, corenn, numpy, torch, kind="train", pct=None):
    return {"workload": name, "threads": threads, "kind": kind,
            "corenn": {"median_ms": corenn}, "numpy": {"median_ms": numpy}, "torch": {"median_ms": torch},
            "ratio_numpy": corenn / numpy, "ratio_torch": corenn / torch, "pct_sgemm": pct}


def test_thread_scaling_is_one_thread_time_over_many():
    rows = [_row("mlp_b64", 1, 4.0, 10.0, 8.0), _row("mlp_b64", 2, 2.5, 10.0, 4.0)]
    lines = run.scaling_section(rows, [1, 2])
    assert "| mlp_b64 | 1.60 | 1.00 | 2.00 |" in lines
    assert run.scaling_section(rows, [2]) == []  # nothing to compare with


def test_targets_say_which_are_missed():
    rows = [_row("mlp_b64", 2, 6.0, 30.0, 10.0),             # 0.60 vs torch: met; 0.20 vs numpy: met
            _row("resnet_small_b64", 2, 95.0, 190.0, 100.0, pct=55.0),  # 0.95 > 0.9; 0.50 > 0.33; 55% < 60%
            _row("sgemm", 2, 1.0, 1.0, 1.0, kind="sgemm")]
    text = "\n".join(run.targets_section(rows, [1, 2]))
    assert "| training ≤ 0.7× PyTorch's time | mlp_b64 | 0.60 | yes |" in text
    assert "| training ≤ 0.9× PyTorch's time | resnet_small_b64 | 0.95 | **no** |" in text
    assert "| ≥ 3× faster than NumPy (ratio ≤ 0.33) | resnet_small_b64 | 0.50 | **no** |" in text
    assert "| training at ≥ 60% of the sgemm FLOP rate | resnet_small_b64 | 55% | **no** |" in text
    assert "| sgemm |" not in text  # the reference rate is no workload to hold to a target


def test_memory_section_lists_training_rows_at_the_most_threads():
    rows = [_row("mlp_b64", 2, 6.0, 30.0, 10.0), _row("mlp_b1_infer", 2, 1.0, 1.0, 1.0, kind="infer"),
            _row("mlp_b64", 1, 6.0, 30.0, 10.0)]
    for side, mb in (("corenn", 16.0), ("numpy", 20.0), ("torch", 64.0)):
        rows[0][side]["peak_added_mb"] = mb
    text = "\n".join(run.memory_section(rows, [1, 2]))
    assert "| mlp_b64 | 16.0 | 20.0 | 64.0 | 0.25 |" in text
    assert "mlp_b1_infer" not in text and text.count("| mlp_b64 |") == 1
    assert run.memory_section(rows[1:], [1, 2]) == []  # nothing measured: no section


def test_distributed_section_renders_the_saved_mpi_run(tmp_path):
    import json

    assert run.distributed_section(str(tmp_path)) == []  # no MPI run saved: no section
    row = {"arena_bytes": 2.14e6, "step_ms": 20.0, "allreduce_ms": 1.5, "alone_ms": 4.0,
           "1 GbE allreduce_ms (estimate)": 17.25, "1 GbE efficiency (estimate)": 0.19,
           "10 GbE allreduce_ms (estimate)": 1.73, "10 GbE efficiency (estimate)": 0.7}
    with open(tmp_path / run.DISTRIBUTED_JSON, "w") as f:
        json.dump({"meta": {"ranks": 2, "date": "2026-11-30"}, "rows": {"mlp_b64": row}}, f)
    text = "\n".join(run.distributed_section(str(tmp_path)))
    assert "| mlp_b64 | 2.14 | 20.00 | 1.500 | 4.00 | ~17.25 / ~19% | ~1.73 / ~70% |" in text
    assert "1 GbE allreduce ms / efficiency (estimate)" in text and "mpiexec -n 2" in text


def test_worker_reports_the_memory_a_workload_adds():
    import json
    import subprocess

    out = subprocess.run([sys.executable, os.path.join(run.ROOT, "benchmarks", "worker.py"),
                          "--side", "corenn", "--workload", "mlp_b64", "--min-reps", "2",
                          "--min-time", "0", "--warmup-time", "0", "--warmup-reps", "1"],
                         capture_output=True, text=True, check=True).stdout
    added = json.loads(out)["peak_added_bytes"]
    # mlp_b64 holds its batch (64×784 float32 = 0.2 MB) and 0.54 M float32 weights
    # with their gradients and Adam's two moments (≈ 8.6 MB): more than that, far
    # below 1 GiB.
    assert 8e6 < added < 2**30


def test_every_workload_has_a_readable_chart_label():
    # The chart names rows in words ("Adam update, 5×1M params"), never by code.
    assert set(run.LABELS) == set(run.W.WORKLOADS)
    assert all("_" not in label for label in run.LABELS.values())


def test_chart_renders_from_the_committed_run(tmp_path):
    import json

    with open(os.path.join(run.ROOT, "docs", "benchmarks.json")) as f:
        saved = json.load(f)
    rows = [run.derive(r) for r in saved["rows"]]
    run.write_png(str(tmp_path / "b.png"), rows, saved["threads_list"], saved["machine"])
    with open(tmp_path / "b.png", "rb") as f:
        assert f.read(4) == b"\x89PNG"


def test_header_names_the_cpu_and_the_isa_of_each_side():
    machine = {"cpu": "AMD EPYC 9R14", "simd": "avx2 avx512f", "usable_cores": 2}
    infos = {"corenn": {"corenn_isa": "x86-64-v4", "corenn_blas_core": "SkylakeX"},
             "numpy": {"numpy_blas_core": "Haswell"}, "torch": {"torch_isa": "AVX512"}}
    line = run.isa_line(machine, infos)
    assert "**AMD EPYC 9R14** (avx2 avx512f), 2 usable cores" in line
    assert "corenn `x86-64-v4` for its own loops" in line and "OpenBLAS `SkylakeX` for its GEMMs" in line
    assert "PyTorch `AVX512`" in line and "NumPy's OpenBLAS `Haswell`" in line
    # A side that said nothing (an older saved run, torch missing) shows as such.
    line = run.isa_line({}, {"torch": {"installed": False}})
    assert "corenn `?`" in line and "PyTorch not installed" in line


def test_worker_info_reports_the_isa_each_side_runs():
    import corenn as cn

    corenn_info = run.side_info("corenn")
    assert corenn_info["corenn_isa"] == cn.runtime_info()["isa"]
    assert corenn_info["corenn_blas_core"] not in ("", None)
    assert "numpy_blas_core" in run.side_info("numpy")
    torch_info = run.side_info("torch")
    if torch_info.get("installed", True):
        assert isinstance(torch_info["torch_isa"], str) and torch_info["torch_isa"]  # "AVX512", "DEFAULT", ...
