"""Times one (side, workload, threads) in this process and prints one JSON line.

    python benchmarks/worker.py --side corenn --workload mlp_b64 --threads 2
    python benchmarks/worker.py --side torch --info

run.py launches one of these per measurement, so corenn (libgomp) and PyTorch
(its own OpenMP runtime) never share a process. The thread count is set in the
environment before any import (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, ...) and
then through the framework's own call (corenn.set_num_threads,
torch.set_num_threads).
"""

import argparse
import gc
import importlib
import json
import os
import sys
import time

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _set_env_threads(n):
    for var in _THREAD_VARS:
        os.environ[var] = str(n)


def _apply_threads(framework, n):
    """Set the framework's own thread count; return what it reports back."""
    if framework == "corenn":
        import corenn as cn
        cn.set_num_threads(n)
        return cn.get_num_threads()
    if framework == "torch":
        import torch
        torch.set_num_threads(n)
        return torch.get_num_threads()
    return n  # numpy: OPENBLAS_NUM_THREADS, read when its OpenBLAS loads


def _cpu_busy_seconds():
    """CPU seconds the whole machine spent busy so far (from /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(step, min_reps, min_time, max_reps, warmup_time, warmup_reps):
    """Warm up, then time single calls until both min_reps and min_time are met.

    Returns (times, foreign): foreign is how many cores OTHER processes kept busy
    on average during the timed calls (machine busy time minus this process's
    own CPU time, over wall time): a direct measure of the noise."""
    t_end = time.perf_counter() + warmup_time
    done = 0
    while done < warmup_reps or time.perf_counter() < t_end:
        step()
        done += 1
    gc.collect()
    gc.disable()
    busy0, own0 = _cpu_busy_seconds(), os.times()
    try:
        times = []
        started = time.perf_counter()
        while len(times) < max_reps and (len(times) < min_reps or
                                         time.perf_counter() - started < min_time):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    wall = time.perf_counter() - started
    busy1, own1 = _cpu_busy_seconds(), os.times()
    foreign = None
    if busy0 is not None and busy1 is not None and wall > 0:
        own = (own1.user + own1.system) - (own0.user + own0.system)
        foreign = max(0.0, (busy1 - busy0 - own) / wall)
    return times, foreign


def _resident_bytes(field):
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in bytes."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return 1024 * int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _reset_peak_rss():
    """Restart VmHWM from the current RSS (Linux >= 4.0), so the peak read after a
    workload is that workload's alone, even when several share a process (--quick).
    Returns False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def openblas_core(path_part=""):
    """The core type (kernel set) the loaded OpenBLAS whose file path contains
    path_part dispatched to, as threadpoolctl reports it ("SkylakeX", "Haswell",
    ...), or "?" without threadpoolctl or such a library."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "?"
    cores = [d.get("architecture") for d in threadpool_info()
             if d.get("internal_api") == "openblas" and path_part in d.get("filepath", "")]
    return cores[0] if cores and cores[0] else "?"


def info(framework):
    """Versions and BLAS/threading configuration of one side, as a dict."""
    import numpy as np
    out = {"python": sys.version.split()[0], "numpy": np.__version__}
    if framework == "numpy":
        try:
            cfg = np.show_config(mode="dicts")
            blas = cfg.get("Build Dependencies", {}).get("blas", {})
            out["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
        except Exception as exc:  # pragma: no cover - older NumPy
            out["numpy_blas"] = f"unknown ({exc})"
        try:
            from threadpoolctl import threadpool_info
            out["numpy_blas_detail"] = [
                {k: d.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                for d in threadpool_info() if d.get("user_api") == "blas"]
        except ImportError:
            pass
        out["numpy_blas_core"] = openblas_core()
    elif framework == "corenn":
        import corenn as cn
        import scipy_openblas32
        from importlib.metadata import version
        out["corenn"] = cn.__version__
        out["corenn_blas"] = (f"{cn._core.blas_backend()}: scipy-openblas32 "
                              f"{version('scipy-openblas32')} "
                              f"({scipy_openblas32.get_openblas_config().strip()})")
        out["corenn_default_threads"] = cn.get_num_threads()
        out["corenn_isa"] = cn.runtime_info()["isa"]
        out["corenn_blas_core"] = openblas_core("scipy_openblas32")
    elif framework == "torch":
        try:
            import torch
        except ImportError:
            return {"installed": False}
        import workloads
        out["torch"] = torch.__version__
        out["torch_isa"] = torch.backends.cpu.get_cpu_capability()
        out["torch_parallel"] = torch.__config__.parallel_info().strip().splitlines()[:6]
        import re
        cfg = torch.__config__.show()
        found = re.findall(r"\b(BLAS_INFO=[^,\s]+|USE_MKLDNN=[^,\s]+|USE_OPENMP=[^,\s]+)", cfg)
        out["torch_blas"] = ", ".join(found) or "see torch.__config__.show()"
        out["torch_adam_default_path"] = workloads.torch_adam_path()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--side", required=True)
    ap.add_argument("--workload", help="a workload name, or several comma-separated "
                    "(timed one after another in this process: one JSON line each)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--info", action="store_true")
    ap.add_argument("--min-reps", type=int, default=10)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--max-reps", type=int, default=20000)
    ap.add_argument("--warmup-time", type=float, default=0.3)
    ap.add_argument("--warmup-reps", type=int, default=3)
    args = ap.parse_args(argv)

    _set_env_threads(args.threads)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import workloads

    framework = workloads.framework_of(args.side)
    if args.info:
        print(json.dumps(info(framework)))
        return 0
    try:
        if framework in ("torch", "onnxruntime"):
            importlib.import_module(framework)
    except ImportError:
        for name in args.workload.split(","):
            print(json.dumps({"side": args.side, "workload": name, "threads": args.threads,
                              "error": "not installed"}))
        return 0
    effective = _apply_threads(framework, args.threads)
    for name in args.workload.split(","):
        w = workloads.WORKLOADS[name]
        record = {"side": args.side, "workload": name, "threads": args.threads}
        if args.side not in w.sides:
            print(json.dumps({**record, "error": "n/a"}), flush=True)
            continue
        gc.collect()
        rss_before = _resident_bytes("VmRSS")
        peak_known = _reset_peak_rss() and rss_before is not None
        step = w.sides[args.side]()
        if w.fixed_reps:  # a long call: best-of-a-few, no time-based loop
            times, foreign = measure(step, w.fixed_reps, 0.0, w.fixed_reps, 0.0, 1)
        else:
            min_reps = args.min_reps if args.min_reps > 0 else w.quick_reps
            times, foreign = measure(step, min_reps, args.min_time, args.max_reps,
                                     args.warmup_time, args.warmup_reps)
        # The memory the workload added at its peak (data, weights, workspaces,
        # the framework's caches), above what the process held before building it:
        # the imported framework itself is not counted.
        peak = _resident_bytes("VmHWM") if peak_known else None
        added = peak - rss_before if peak is not None else None
        del step
        gc.collect()
        print(json.dumps({**record, "effective_threads": effective, "foreign_load": foreign,
                          "peak_added_bytes": added, "times": times}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
