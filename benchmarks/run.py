"""Benchmark corenn against plain NumPy and PyTorch CPU; write docs/benchmarks.{md,png,json}.

    python benchmarks/run.py [--quick] [--threads 1,2] [--workloads mlp_b64,adam_5x1M]

One subprocess per (side, workload, threads) measurement (benchmarks/worker.py),
so corenn's libgomp and PyTorch's OpenMP runtime never share a process. The
sides alternate (corenn, torch, numpy, variants, corenn, torch, ...) over
several rounds, so machine noise hits every side alike; each figure is the
median of all timed calls of all rounds, after warm-up. Ratios are
corenn median / other median: below 1 corenn is faster.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import workloads as W  # noqa: E402  (NumPy only: no framework is imported here)

FULL = dict(rounds=3, min_time=0.3, warmup_time=0.15, min_reps=10, batched=False,
            variants=None)
# --quick: 2 rounds of short timings; one process per (side, threads, round) running
# all of that side's workloads (the frameworks still never share a process), and
# of the variants only corenn's engine path.
QUICK = dict(rounds=2, min_time=0.05, warmup_time=0.03, min_reps=0, batched=True,
             variants=("corenn_engine",))
WORKER_TIMEOUT = 600


def run_worker(side, names, threads, settings):
    """One worker process; returns one result dict per workload in names."""
    cmd = [sys.executable, os.path.join(HERE, "worker.py"), "--side", side,
           "--workload", ",".join(names), "--threads", str(threads),
           "--min-reps", str(settings["min_reps"]), "--min-time", str(settings["min_time"]),
           "--warmup-time", str(settings["warmup_time"])]
    try:
        out = _call(cmd, threads)
    except subprocess.TimeoutExpired:
        out = [{"error": f"timed out after {WORKER_TIMEOUT} s"}]
    by_name = {r.get("workload"): r for r in out}
    results = []
    for name in names:
        r = by_name.get(name) or {"error": out[-1].get("error", "no result") if out else "no result"}
        r.update(side=side, workload=name, threads=threads)
        results.append(r)
    return results


def _call(cmd, threads):
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=WORKER_TIMEOUT)
    found = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        found.append({"error": f"worker exit {proc.returncode}: " + " | ".join(tail)})
    return found or [{"error": "worker printed nothing"}]


def side_info(side):
    return _call([sys.executable, os.path.join(HERE, "worker.py"), "--side", side, "--info"], 1)[0]


# --------------------------------------------------------------------- machine

def machine_info():
    info = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "platform": platform.platform(), "python": platform.python_version()}
    cpu = "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    info["cpu"] = cpu
    simd = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
            if f in flags]
    info["simd"] = " ".join(simd)
    info["cores"] = os.cpu_count()
    try:
        info["usable_cores"] = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        info["usable_cores"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            kb = int(f.readline().split()[1])
        info["memory_gib"] = round(kb / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        info["git"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "cpp", "python"],
                               capture_output=True, text=True).stdout.strip()
        if dirty:
            info["git"] += " (cpp/ or python/ modified)"
    except OSError:
        pass
    return info


# ----------------------------------------------------------------------- stats

def summarise(results):
    """results: list of worker dicts -> {(workload, threads, side): stats}."""
    pooled = {}
    for r in results:
        key = (r["workload"], r["threads"], r["side"])
        entry = pooled.setdefault(key, {"times": [], "round_medians": [], "error": None,
                                        "effective_threads": set(), "foreign": [],
                                        "peak_added": []})
        if "error" in r:
            entry["error"] = r["error"]
            continue
        entry["times"].extend(r["times"])
        entry["round_medians"].append(statistics.median(r["times"]))
        entry["effective_threads"].add(r.get("effective_threads"))
        if r.get("foreign_load") is not None:
            entry["foreign"].append(r["foreign_load"])
        if r.get("peak_added_bytes") is not None:
            entry["peak_added"].append(r["peak_added_bytes"])
    stats = {}
    for key, e in pooled.items():
        if not e["times"]:
            stats[key] = {"error": e["error"] or "no data"}
            continue
        rm = e["round_medians"]
        stats[key] = {"median_ms": 1e3 * statistics.median(e["times"]),
                      "best_ms": 1e3 * min(e["times"]),
                      "calls": len(e["times"]), "rounds": len(rm),
                      "round_spread": (max(rm) - min(rm)) / statistics.median(rm),
                      "effective_threads": sorted(t for t in e["effective_threads"] if t),
                      "foreign_load": (statistics.mean(e["foreign"]) if e["foreign"] else None),
                      "peak_added_mb": (max(e["peak_added"]) / 2**20 if e["peak_added"] else None)}
    return stats


def build_rows(stats, workload_names, threads_list):
    rows = []
    for threads in threads_list:
        sg = [stats.get(("sgemm", threads, s), {}) for s in W.MAIN_SIDES]
        sg_rates = {s: W.WORKLOADS["sgemm"].flops / (st["best_ms"] * 1e-3) / 1e9
                    for s, st in zip(W.MAIN_SIDES, sg) if "best_ms" in st}
        sgemm_side = max(sg_rates, key=sg_rates.get) if sg_rates else None
        sgemm_rate = sg_rates.get(sgemm_side)
        for name in workload_names:
            w = W.WORKLOADS[name]
            row = {"workload": name, "threads": threads, "kind": w.kind,
                   "sgemm_gflops": sgemm_rate, "sgemm_side": sgemm_side,
                   "sgemm_rates": sg_rates}
            for side in W.MAIN_SIDES:
                st = stats.get((name, threads, side), {"error": "not run"})
                row[side] = st
            row["variants"] = {s: stats.get((name, threads, s), {"error": "not run"})
                               for s in w.sides if s not in W.MAIN_SIDES}
            rows.append(derive(row))
    return rows


def derive(row):
    """The columns computed from a row's timings and its workload's definition
    (ratios, GFLOP/s, % of sgemm, GB/s): recomputed on --report-only too, so a
    corrected FLOP count re-renders a saved run."""
    w = W.WORKLOADS[row["workload"]]
    c = row["corenn"].get("median_ms")
    for other in ("numpy", "torch"):
        o = row[other].get("median_ms")
        row[f"ratio_{other}"] = c / o if c and o else None
    row["gflops"] = w.flops / (c * 1e-3) / 1e9 if c and w.flops else None
    if w.kind == "sgemm" and row["corenn"].get("best_ms"):
        row["gflops"] = w.flops / (row["corenn"]["best_ms"] * 1e-3) / 1e9
    rate = row["sgemm_gflops"]
    row["pct_sgemm"] = 100 * row["gflops"] / rate if row["gflops"] and rate else None
    row["gbps"] = w.bytes_moved / (c * 1e-3) / 1e9 if c and w.bytes_moved else None
    row["bytes_note"] = w.bytes_note
    return row


# ---------------------------------------------------------------------- report

NOISY_SPREAD = 0.30  # per-round medians of one side differ by more than 30% of their median
NOISY_LOAD = 0.25    # other processes kept more than a quarter of a core busy


def noise_of(r):
    """(largest round spread, largest other-process load) over the main sides of a row."""
    spread = max((r[s].get("round_spread") or 0 for s in W.MAIN_SIDES), default=0)
    load = max((r[s].get("foreign_load") or 0 for s in W.MAIN_SIDES), default=0)
    return spread, load


def is_noisy(r):
    spread, load = noise_of(r)
    return spread > NOISY_SPREAD or load > NOISY_LOAD


def _ms(st):
    if "median_ms" not in st:
        return st.get("error", "—")
    v = st["median_ms"]
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}"


def _num(v, fmt):
    return "—" if v is None else format(v, fmt)


def scaling_section(rows, threads_list):
    """Speed-up of each side from 1 thread to the most threads measured."""
    if len(threads_list) < 2 or 1 not in threads_list:
        return []
    top = max(threads_list)
    by_key = {(r["workload"], r["threads"]): r for r in rows}
    L = ["## Thread scaling", "",
         f"Median time at 1 thread over median time at {top} threads, per side "
         f"(ideal: {top}.00).", "",
         "| workload | corenn | numpy | torch |", "| --- | ---: | ---: | ---: |"]
    for name in dict.fromkeys(r["workload"] for r in rows):
        one, many = by_key.get((name, 1)), by_key.get((name, top))
        if not one or not many:
            continue
        cells = []
        for side in ("corenn", "numpy", "torch"):
            a, b = one[side].get("median_ms"), many[side].get("median_ms")
            cells.append(f"{a / b:.2f}" if a and b else "—")
        L.append(f"| {name} | {' | '.join(cells)} |")
    return L + [""]


# The speed targets corenn claims (issues 7 and 15), checked against this run's rows
# at the most threads measured: (workloads, column, bound, what it means).
TARGETS = [
    (("mlp_b64", "mlp_b512", "lenet_b64"), "ratio_torch", 0.7, "training ≤ 0.7× PyTorch's time"),
    (("resnet_small_b64",), "ratio_torch", 0.9, "training ≤ 0.9× PyTorch's time"),
    (("mlp_b1_infer", "lenet_b1_infer", "resnet_small_b1_infer"), "ratio_torch", 0.3,
     "batch-1 inference ≤ 0.3× PyTorch's time"),
    (("conv3x3_fwdbwd",), "ratio_torch", 1.0, "forward + backward ≤ 1.0× PyTorch's time"),
    (None, "ratio_numpy", 1 / 3, "≥ 3× faster than NumPy (ratio ≤ 0.33)"),
    (("resnet_small_b64",), "pct_sgemm", 60, "training at ≥ 60% of the sgemm FLOP rate"),
    # issue 15: the recurrent kernels
    (("lstm_fwdbwd_b64", "gru_fwdbwd_b64"), "ratio_torch", 1.0, "forward + backward ≤ 1.0× PyTorch's time"),
    (("lstm_b1_infer",), "ratio_torch", 0.6, "batch-1 inference ≤ 0.6× PyTorch's time"),
    (("lstm_fwdbwd_b64", "lstm_b1_infer"), "ratio_numpy", 0.2, "≥ 5× faster than NumPy (ratio ≤ 0.2)"),
    # issue 15: the recurrent models (training step, batch-1 inference)
    (("lstm_b64", "gru_b64"), "ratio_torch", 1.0, "training ≤ 1.0× PyTorch's time"),
    (("gru_b1_infer",), "ratio_torch", 0.6, "batch-1 inference ≤ 0.6× PyTorch's time"),
    (("lstm_b64", "gru_b64", "gru_b1_infer"), "ratio_numpy", 0.2, "≥ 5× faster than NumPy (ratio ≤ 0.2)"),
    # issue 16: attention
    (("mha_b32", "transformer_block_b32"), "ratio_torch", 1.0, "forward + backward / training ≤ 1.0× PyTorch's time"),
]


def memory_section(rows, threads_list):
    """Peak memory each training workload adds to its process, per side."""
    top = max(threads_list)
    train = [r for r in rows if r["threads"] == top and r["kind"] == "train"]
    if not any(r["corenn"].get("peak_added_mb") for r in train):
        return []
    L = ["## Peak memory", "",
         "Resident memory a training workload adds to its process at its peak (Linux "
         "VmHWM, reset just before the workload is built, minus the resident size at "
         "that moment): data, weights, optimizer state, workspaces and whatever the "
         "framework allocates or loads on first use; the imported framework itself is "
         "not counted. Largest over the rounds, in MiB, at "
         f"{top} thread{'s' if top > 1 else ''}.", "",
         "| workload | corenn MiB | numpy MiB | torch MiB | corenn / torch |",
         "| --- | ---: | ---: | ---: | ---: |"]
    for r in train:
        mb = [r[s].get("peak_added_mb") for s in ("corenn", "numpy", "torch")]
        ratio = f"{mb[0] / mb[2]:.2f}" if mb[0] and mb[2] else "—"
        L.append(f"| {r['workload']} | " + " | ".join(_num(v, ".1f") for v in mb)
                 + f" | {ratio} |")
    return L + [""]


# benchmarks/distributed.py --json writes this beside the report; run.py does
# not launch MPI itself, so the section shows that script's last run.
DISTRIBUTED_JSON = "benchmarks-distributed.json"


def distributed_section(out):
    """Per-step allreduce and step times with 2 ranks, from DISTRIBUTED_JSON."""
    path = os.path.join(out, DISTRIBUTED_JSON)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        saved = json.load(f)
    rows, meta = saved["rows"], saved.get("meta", {})
    links = [k.split(" allreduce_ms")[0] for k in next(iter(rows.values())) if k.endswith("allreduce_ms (estimate)")]
    L = ["## Data parallelism (MPI)", "",
         f"`OMP_NUM_THREADS=1 mpiexec -n {meta.get('ranks', 2)} python benchmarks/distributed.py --json "
         f"docs/{DISTRIBUTED_JSON}`" + (f", run on {meta['date']}" if meta.get("date") else "")
         + ": each rank takes the workload's batch; medians over the steps of the slowest rank. "
         "step = compute_gradients + allreduce of the gradient arena + apply_gradients; allreduce = "
         "the MPI_Allreduce alone (this machine's shared memory); alone = the single-process "
         "training step. The link columns are ESTIMATES from the measured message size (a ring "
         "allreduce moves 2·(K−1)/K of the arena per rank), not measurements (docs/distributed.md).", "",
         "| workload | arena MB | step ms | allreduce ms | alone ms | "
         + " | ".join(f"{link} allreduce ms / efficiency (estimate)" for link in links) + " |",
         "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in links) + " |"]
    for name, r in rows.items():
        cells = [f"{r['arena_bytes'] / 1e6:.2f}", f"{r['step_ms']:.2f}", f"{r['allreduce_ms']:.3f}",
                 f"{r['alone_ms']:.2f}"]
        cells += [f"~{r[f'{link} allreduce_ms (estimate)']:.2f} / ~{100 * r[f'{link} efficiency (estimate)']:.0f}%"
                  for link in links]
        L.append(f"| {name} | " + " | ".join(cells) + " |")
    return L + [""]


def targets_section(rows, threads_list):
    top = max(threads_list)
    rs = {r["workload"]: r for r in rows if r["threads"] == top}
    L = ["## Targets", "",
         f"The speed targets, checked against this run at {top} thread{'s' if top > 1 else ''}.", "",
         "| target | workload | measured | met |", "| --- | --- | ---: | --- |"]
    for names, key, bound, what in TARGETS:
        for name in names or [n for n, r in rs.items() if r["kind"] != "sgemm"]:
            r = rs.get(name)
            if r is None or r.get(key) is None:
                continue
            v = r[key]
            met = v >= bound if key == "pct_sgemm" else v <= bound
            shown = f"{v:.0f}%" if key == "pct_sgemm" else f"{v:.2f}"
            L.append(f"| {what} | {name} | {shown} | {'yes' if met else '**no**'} |")
    return L + [""]


def isa_line(machine, infos):
    """Where the run was measured: the CPU model and the instruction set each side's
    code ran on (corenn: its runtime dispatch's pick for its own loops and the
    core type its OpenBLAS picked; PyTorch: its dispatch's CPU capability;
    NumPy: its OpenBLAS's core type). "?" where a side did not say."""
    ci, ni, ti = infos.get("corenn", {}), infos.get("numpy", {}), infos.get("torch", {})
    torch_part = (f"PyTorch `{ti.get('torch_isa', '?')}` (torch.backends.cpu.get_cpu_capability())"
                  if ti.get("installed", True) and "error" not in ti else "PyTorch not installed")
    return (f"Measured on: **{machine.get('cpu', '?')}** ({machine.get('simd', '')}), "
            f"{machine.get('usable_cores', '?')} usable cores. Instruction sets used: "
            f"corenn `{ci.get('corenn_isa', '?')}` for its own loops (runtime dispatch, "
            f"`cn.runtime_info()`) and OpenBLAS `{ci.get('corenn_blas_core', '?')}` for its GEMMs; "
            f"{torch_part}; NumPy's OpenBLAS `{ni.get('numpy_blas_core', '?')}`.")


def write_markdown(path, rows, machine, infos, settings, threads_list, elapsed, png_name):
    torch_info = infos.get("torch", {})
    torch_installed = torch_info.get("installed", True) and "error" not in torch_info
    L = ["# corenn benchmarks", "",
         "Generated by `python benchmarks/run.py" + (" --quick" if settings["quick"] else "")
         + f" --threads {','.join(map(str, threads_list))}` "
         f"on {machine['date']} in {elapsed:.0f} s. Do not edit by hand.", "",
         isa_line(machine, infos), "",
         "Each figure is the median of every timed call over all rounds (after warm-up), in "
         "milliseconds per training step (forward + backward + update on one mini-batch), "
         "per forward call (`*_infer`) or per op call. Every "
         + ("(framework, threads) runs its workloads in its own process (--quick)"
            if settings["batched"] else "(framework, workload, threads) is timed in its own process")
         + " (corenn's libgomp and PyTorch's OpenMP never share one) and the frameworks "
         f"alternate over {settings['rounds']} rounds. **Ratio = corenn ms / other ms: below 1 corenn is "
         "faster.** GFLOP/s is useful work (2 FLOPs per multiply-add of the dense and "
         "convolution layers' forward pass, backward counted as 2× forward except the first "
         "layer's input gradient, which nothing needs; batch norm, "
         "activations, pooling and the optimizer not counted) over corenn's median time; "
         "sgemm GFLOP/s is the best float32 "
         f"{W.SGEMM_N}³ matmul rate measured in the same run with the same thread count "
         "(the fastest of NumPy's, corenn's and PyTorch's BLAS; which one is named in the "
         "sgemm rows).", "",
         "| workload | threads | corenn ms | numpy ms | torch ms | ratio vs numpy | "
         "ratio vs torch | corenn GFLOP/s | sgemm GFLOP/s | % of sgemm | notes |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        notes = []
        if r["kind"] == "sgemm":
            notes.append("rates (best call): " + ", ".join(
                f"{s} {v:.0f}" for s, v in r["sgemm_rates"].items()))
        if r["gbps"]:
            counted = f" ({r['bytes_note']})" if r.get("bytes_note") else ""  # older JSON: absent
            notes.append(f"corenn moves {r['gbps']:.1f} GB/s{counted}")
        if r["workload"] == "adam_5x1M" and torch_installed:
            notes.append(f"torch default path: {torch_info.get('torch_adam_default_path')}")
        if r["kind"] == "train":
            notes.append("corenn: `model.train_on_batch`")
        if r["kind"] == "infer":
            notes.append("corenn: `model.predict`")
        spread, load = noise_of(r)
        if is_noisy(r):
            why = []
            if spread > NOISY_SPREAD:
                why.append(f"round medians differ by up to {100 * spread:.0f}%")
            if load > NOISY_LOAD:
                why.append(f"other processes used up to {load:.1f} cores")
            notes.append("noisy (see Noise): " + ", ".join(why))
        torch_ms = _ms(r["torch"]) if torch_installed else "not installed"
        L.append(f"| {r['workload']} | {r['threads']} | {_ms(r['corenn'])} | {_ms(r['numpy'])} | "
                 f"{torch_ms} | {_num(r['ratio_numpy'], '.2f')} | "
                 f"{_num(r['ratio_torch'], '.2f')} | {_num(r['gflops'], '.1f')} | "
                 f"{_num(r['sgemm_gflops'], '.1f')} | {_num(r['pct_sgemm'], '.0f')} | "
                 f"{'; '.join(notes)} |")
    L += ["", f"![ratios](./{png_name})", ""]

    variant_lines = []
    for r in rows:
        c = r["corenn"].get("median_ms")
        for side, st in r["variants"].items():
            if "median_ms" not in st:
                continue
            v = st["median_ms"]
            if side.startswith("corenn"):
                rel = f"{v / c:.2f}× corenn's main path" if c else "—"
                ratios = (f"vs numpy {_num(v / r['numpy']['median_ms'] if 'median_ms' in r['numpy'] else None, '.2f')}, "
                          f"vs torch {_num(v / r['torch']['median_ms'] if 'median_ms' in r['torch'] else None, '.2f')}")
            else:
                rel = f"corenn / this = {c / v:.2f}" if c else "—"
                ratios = ""
            variant_lines.append(f"| {r['workload']} | {r['threads']} | {W.VARIANT_LABELS.get(side, side)} "
                                 f"| {_ms(st)} | {rel} | {ratios} |")
    if variant_lines:
        L += ["## Variants", "",
              "Other paths of the same workload, timed the same way in the same run.", "",
              "| workload | threads | variant | ms | relative | ratios of this path |",
              "| --- | ---: | --- | ---: | --- | --- |", *variant_lines, ""]

    L += scaling_section(rows, threads_list)
    L += targets_section(rows, threads_list)
    L += memory_section(rows, threads_list)
    L += distributed_section(os.path.dirname(path))

    L += ["## Noise", "",
          "The machine is shared: other processes' CPU use during each timed loop is measured "
          "(busy time of the whole machine from /proc/stat minus the worker's own CPU time, "
          "over wall time, in cores; mean over rounds). With 2 cores, any other load slows "
          "2-thread runs far more than 1-thread ones. Per side: median ms, best ms, ± half "
          "the range of the per-round medians, other load.", "",
          "| workload | threads | corenn | numpy | torch | calls (c/n/t) |",
          "| --- | ---: | --- | --- | --- | --- |"]
    for r in rows:
        cells = []
        for side in ("corenn", "numpy", "torch"):
            st = r[side]
            if "median_ms" not in st:
                cells.append(st.get("error", "—"))
                continue
            load = st.get("foreign_load")
            cells.append(f"{st['median_ms']:.3g} / {st['best_ms']:.3g} "
                         f"±{100 * st['round_spread'] / 2:.0f}%"
                         + (f", load {load:.2f}" if load is not None else ""))
        calls = "/".join(str(r[side].get("calls", 0)) for side in ("corenn", "numpy", "torch"))
        L.append(f"| {r['workload']} | {r['threads']} | {' | '.join(cells)} | {calls} |")
    L.append("")

    L += ["## Machine and versions", ""]
    L.append(f"- CPU: {machine['cpu']} ({machine.get('simd', '')}); {machine['cores']} cores, "
             f"{machine['usable_cores']} usable by this process; "
             f"{machine.get('memory_gib', '?')} GiB memory")
    L.append(f"- Load average before / after the run: {machine.get('load_before')} / "
             f"{machine.get('load_after')} (other work on the machine shows up as noise)")
    L.append(f"- OS: {machine['platform']}; Python {machine['python']}")
    ci = infos.get("corenn", {})
    L.append(f"- corenn {ci.get('corenn', ci.get('error', '?'))} (git {machine.get('git', '?')}); "
             f"BLAS: {ci.get('corenn_blas', '?')}")
    ni = infos.get("numpy", {})
    L.append(f"- NumPy {ni.get('numpy', '?')}; BLAS: {ni.get('numpy_blas', '?')}"
             + ("; " + ", ".join(f"{d.get('internal_api')} {d.get('version')} {d.get('architecture')}"
                                 for d in ni.get("numpy_blas_detail", [])) if ni.get("numpy_blas_detail") else ""))
    if torch_installed:
        L.append(f"- PyTorch {torch_info.get('torch')}; {torch_info.get('torch_blas')}; "
                 f"Adam default on CPU: {torch_info.get('torch_adam_default_path')}")
        L.append("- PyTorch threading: " + "; ".join(
            l.strip() for l in torch_info.get("torch_parallel", [])
            if "OpenMP" in l or "Math Kernel" in l or "oneDNN" in l))
    else:
        L.append("- PyTorch: not installed (`pip install -e .[bench]`)")
    L.append(f"- Settings: {settings['rounds']} rounds; per process ≥ "
             f"{settings['min_time']} s of timed calls after {settings['warmup_time']} s warm-up "
             f"(sgemm: one warm-up call, then 3 timed, per process); "
             + ("one process per (framework, threads, round) running all its workloads (--quick); "
                if settings["batched"] else "one process per (framework, workload, threads, round); ")
             + "threads set through "
             "`corenn.set_num_threads` / `torch.set_num_threads` and OMP/OPENBLAS_NUM_THREADS")
    L += ["", "## Workloads", ""]
    for name in dict.fromkeys(r["workload"] for r in rows):
        w = W.WORKLOADS[name]
        L.append(f"- `{name}`: {w.description}"
                 + (f"; {w.flops / 1e6:.1f} MFLOP per call" if w.flops else ""))
    L += ["", "Studies measured by hand (algorithm A/B comparisons, CPU-time profiles) are in "
          "[performance-notes.md](performance-notes.md).", ""]
    with open(path, "w") as f:
        f.write("\n".join(L))


# What each workload is, in words a newcomer reads at a glance (the chart's
# row labels); a workload missing here shows its description.
LABELS = {
    "mlp_b64": "MLP training step, batch 64",
    "mlp_b512": "MLP training step, batch 512",
    "mlp_b1_infer": "MLP inference, 1 example",
    "dense_fwd": "Dense layer forward, 512×784→512",
    "dense_bwd": "Dense layer backward, 512×784→512",
    "adam_5x1M": "Adam update, 5×1M params",
    "conv3x3_fwd": "Conv 3×3 forward, 32×64×32×32",
    "conv3x3_fwdbwd": "Conv 3×3 forward + backward",
    "bn_fwdbwd": "Batch norm forward + backward",
    "maxpool2_fwdbwd": "Max pool 2×2 forward + backward",
    "lenet_b64": "LeNet training step, batch 64",
    "lenet_b1_infer": "LeNet inference, 1 image",
    "resnet_small_b64": "Small ResNet training step, batch 64",
    "resnet_small_b256": "Small ResNet training step, batch 256",
    "resnet_small_b1_infer": "Small ResNet inference, 1 image",
    "iou_2000x2000": "Box IoU matrix, 2,000 × 2,000 boxes",
    "nms_10k": "Non-max suppression, 10,000 boxes",
    "lstm_fwdbwd_b64": "LSTM(256) forward + backward, batch 64, 50 steps",
    "gru_fwdbwd_b64": "GRU(256) forward + backward, batch 64, 50 steps",
    "lstm_b1_infer": "LSTM(256) inference, 1 sequence of 50 steps",
    "lstm_b64": "LSTM(256) → Dense 10 training step, batch 64, 50 steps",
    "gru_b64": "GRU(256) → Dense 10 training step, batch 64, 50 steps",
    "gru_b1_infer": "GRU(256) → Dense 10 inference, 1 sequence of 50 steps",
    "mha_b32": "Multi-head attention forward + backward, 32×128×512",
    "transformer_block_b32": "Transformer encoder block training step, batch 32",
    "sgemm": f"Matrix product {W.SGEMM_N}³ (reference)",
}


def label_of(name):
    return LABELS.get(name) or W.WORKLOADS[name].description


def _short_ms(st):
    v = st.get("median_ms")
    if v is None:
        return "—"
    return f"{v:.3g} ms" if v < 1000 else f"{v / 1e3:.3g} s"


def write_png(path, rows, threads_list, machine=None):
    """One panel per thread count, one row per workload: horizontal bars of
    corenn's time over PyTorch's and over NumPy's (log scale, < 1: corenn
    faster), each ratio printed at its bar's end, and the absolute median times
    in a column on the right. Rows the report marks noisy are hatched."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    sides = (("ratio_torch", "vs PyTorch", "#DD8452"), ("ratio_numpy", "vs NumPy", "#4C72B0"))
    ratios = [r[key] for r in rows for key, _, _ in sides if r[key]]
    lo, hi = (min(ratios) / 1.5, max(ratios) * 1.6) if ratios else (0.01, 10)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10) if lo <= t <= hi]
    n = max(len([r for r in rows if r["threads"] == t]) for t in threads_list)
    fig, axes = plt.subplots(len(threads_list), 1, figsize=(13, 0.42 * n * len(threads_list) + 2.2),
                             squeeze=False)
    for ax, threads in zip(axes[:, 0], threads_list):
        rs = [r for r in rows if r["threads"] == threads]
        y = np.arange(len(rs))
        for off, (key, label, color) in zip((-0.2, 0.2), sides):
            vals = [r[key] if r[key] else np.nan for r in rs]
            bars = ax.barh(y + off, vals, 0.4, label=label, color=color)
            for bar, r, v in zip(bars, rs, vals):
                if is_noisy(r):
                    bar.set_hatch("///")
                    bar.set_edgecolor("white")
                if np.isfinite(v):
                    ax.text(v * 1.04, bar.get_y() + bar.get_height() / 2, f"{v:.2f}", va="center",
                            fontsize=7.5)
        ax.axvline(1.0, color="black", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.minorticks_off()
        ax.set_yticks(y)
        ax.set_yticklabels([label_of(r["workload"]) for r in rs], fontsize=9)
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{threads} thread{'s' if threads > 1 else ''}", fontsize=11, loc="left")
        ax.set_xlabel("corenn time / other library's time  (< 1: corenn faster; log scale)")
        # Absolute times beside each row, outside the bars: nothing overlaps.
        right = blended_transform_factory(ax.transAxes, ax.transData)
        ax.text(1.02, -0.9, "median time: corenn / PyTorch / NumPy", transform=right, fontsize=8,
                weight="bold", va="center")
        for yi, r in zip(y, rs):
            text = " / ".join(_short_ms(r[s]) for s in ("corenn", "torch", "numpy"))
            ax.text(1.02, yi, text + ("  (noisy)" if is_noisy(r) else ""), transform=right,
                    fontsize=8, va="center")
    fig.legend(handles=[Patch(color=c, label=lab) for _, lab, c in sides]
               + [Patch(facecolor="#999999", hatch="///", edgecolor="white",
                        label="noisy measurement (see docs/benchmarks.md)")],
               loc="lower center", ncol=3)
    where = ""
    if machine:
        where = (f" — {machine.get('cpu', '?')}, {machine.get('usable_cores', machine.get('cores', '?'))}"
                 f" cores, {str(machine.get('date', ''))[:10]}")
    fig.suptitle(f"corenn vs PyTorch CPU and NumPy: time per call, same machine, same run{where}",
                 fontsize=12)
    # Fixed margins: the times column sits outside the axes, where tight_layout does not look.
    fig.subplots_adjust(left=0.21, right=0.7, top=1 - 0.75 / fig.get_figheight(),
                        bottom=1.0 / fig.get_figheight(), hspace=0.2)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ------------------------------------------------------------------------ main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short timings, fewer rounds (~1 min)")
    ap.add_argument("--threads", default=None,
                    help="comma-separated thread counts (default: 1 and all usable cores)")
    ap.add_argument("--workloads", default=None, help="comma-separated subset of: "
                    + ", ".join(W.WORKLOADS))
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--no-variants", action="store_true",
                    help="time only corenn, numpy and torch (skip engine/foreach/fused variants)")
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"),
                    help="folder for benchmarks.md / .png / .json")
    ap.add_argument("--report-only", metavar="JSON",
                    help="re-render the .md and .png from a saved benchmarks.json (no timing)")
    args = ap.parse_args(argv)
    if args.report_only:
        with open(args.report_only) as f:
            saved = json.load(f)
        rows = [derive(r) for r in saved["rows"]]
        tl = saved.get("threads_list") or sorted({r["threads"] for r in rows})
        write_report(args.out, rows, saved["machine"], saved["infos"], saved["settings"], tl,
                     saved.get("elapsed", 0.0))
        print(f"re-rendered {args.out}/benchmarks.{{md,png,json}}", file=sys.stderr)
        return 0

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads_list = ([int(t) for t in args.threads.split(",")] if args.threads
                    else sorted({1, cores}))
    names = args.workloads.split(",") if args.workloads else list(W.WORKLOADS)
    unknown = [n for n in names if n not in W.WORKLOADS]
    if unknown:
        ap.error(f"unknown workloads {unknown}; choose from {list(W.WORKLOADS)}")
    if "sgemm" not in names:
        names.append("sgemm")  # the reference rate is always measured
    settings = dict(QUICK if args.quick else FULL)
    settings["quick"] = args.quick
    if args.rounds:
        settings["rounds"] = args.rounds

    started = time.perf_counter()
    machine = machine_info()
    machine["load_before"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    infos = {s: side_info(s) for s in ("corenn", "numpy", "torch")}
    torch_ok = infos["torch"].get("installed", True) and "error" not in infos["torch"]
    if not torch_ok:
        print("PyTorch is not installed: the torch column will say so.", file=sys.stderr)

    plan = []  # (round, side, [workloads], threads)
    for rnd in range(settings["rounds"]):
        units = []
        for name in names:
            w = W.WORKLOADS[name]
            for side in w.sides:
                if side not in W.MAIN_SIDES and (args.no_variants or (
                        settings["variants"] is not None and side not in settings["variants"])):
                    continue
                if not torch_ok and W.framework_of(side) == "torch":
                    continue
                units.append((side, name))
        order = list(W.MAIN_SIDES) + sorted({s for s, _ in units} - set(W.MAIN_SIDES))
        # Rotate the starting side every round: no side always runs first.
        k = rnd % len(W.MAIN_SIDES)
        order = order[k:len(W.MAIN_SIDES)] + order[:k] + order[len(W.MAIN_SIDES):]
        for threads in threads_list:
            if settings["batched"]:
                for side in order:
                    todo = [n for s, n in units if s == side]
                    if todo:
                        plan.append((rnd, side, todo, threads))
            else:
                for name in names:
                    plan += [(rnd, side, [name], threads) for side in order
                             if (side, name) in units]

    results = []
    for i, (rnd, side, todo, threads) in enumerate(plan, 1):
        t0 = time.perf_counter()
        for r in run_worker(side, todo, threads, settings):
            r["round"] = rnd
            results.append(r)
            shown = (f"{1e3 * statistics.median(r['times']):.3f} ms ({len(r['times'])} calls, "
                     f"other load {r.get('foreign_load') or 0:.2f} cores)"
                     if "times" in r else r["error"])
            print(f"[{i}/{len(plan)}] round {rnd + 1} t={threads} {side} {r['workload']}: {shown}",
                  file=sys.stderr, flush=True)
        print(f"    [{time.perf_counter() - t0:.1f} s]", file=sys.stderr, flush=True)
    if not torch_ok:
        for name in names:
            for threads in threads_list:
                results.append({"side": "torch", "workload": name, "threads": threads,
                                "error": "not installed"})

    machine["load_after"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    stats = summarise(results)
    rows = build_rows(stats, names, threads_list)
    elapsed = time.perf_counter() - started

    md = write_report(args.out, rows, machine, infos, settings, threads_list, elapsed)
    print(f"wrote {args.out}/benchmarks.{{md,png,json}} in {elapsed:.0f} s", file=sys.stderr)
    with open(md) as f:
        print(f.read().split("\n\n![ratios]")[0].split("\n\n", 2)[-1])
    return 0


def write_report(out, rows, machine, infos, settings, threads_list, elapsed):
    """benchmarks.md, .png and .json into out; returns the .md's path."""
    os.makedirs(out, exist_ok=True)
    md, png, js = (os.path.join(out, f"benchmarks.{ext}") for ext in ("md", "png", "json"))
    write_png(png, rows, threads_list, machine)
    write_markdown(md, rows, machine, infos, settings, threads_list, elapsed, os.path.basename(png))
    with open(js, "w") as f:
        json.dump({"machine": machine, "infos": infos, "settings": settings,
                   "threads_list": threads_list, "elapsed": elapsed, "rows": rows}, f, indent=1,
                  default=str)
    return md


if __name__ == "__main__":
    sys.exit(main())
