"""Data-parallel step time against allreduce time (docs/distributed.md).

    OMP_NUM_THREADS=1 mpiexec -n 2 python benchmarks/distributed.py [--steps 30] \\
        [--json docs/benchmarks-distributed.json]   # then benchmarks/run.py shows it

For mlp_b64, mlp_b512 and resnet_small_b64 (../shared/WORKLOADS.md), each
rank takes the workload's batch (weak scaling, as Horovod reports it) and the
script times, as medians over --steps steps (each rank's slowest):
- step: one data-parallel training step (compute_gradients, the allreduce of
  the gradient arena, apply_gradients), what fit runs per batch;
- allreduce: the MPI_Allreduce of the arena alone, on this machine's shared
  memory;
- alone: the single-process engine.train_step on the same batch.
The 1 GbE and 10 GbE rows are ESTIMATES, not measurements: a ring allreduce
over K ranks sends and receives 2·(K−1)/K of the arena per rank, so its time
is about that many bytes over the link (125 MB/s, 1.25 GB/s) plus 2·(K−1)
latencies (50 µs, 10 µs); the scaling efficiency is alone / (alone + that).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import corenn as cn  # noqa: E402
from corenn import distributed  # noqa: E402

LINKS = {"1 GbE": (125e6, 50e-6), "10 GbE": (1.25e9, 10e-6)}  # bytes/s, latency per message


def workloads():
    import workloads as mlp
    import workloads_resnet as resnet
    return {"mlp_b64": (mlp._corenn_mlp, lambda: mlp._data(64)),
            "mlp_b512": (mlp._corenn_mlp, lambda: mlp._data(512)),
            "resnet_small_b64": (resnet._corenn_resnet, lambda: resnet._resnet_data(64))}


def slowest_median(comm, seconds):
    """The median over steps of the slowest rank's time."""
    mine = np.asarray(seconds, dtype=np.float64)
    slowest = np.empty_like(mine)
    comm.Allreduce(mine, slowest, op=distributed._MPI.MAX)
    return float(np.median(slowest))


def measure(comm, build, data, steps):
    model = build()
    x, y = data()
    distributed.broadcast_model(model)
    engine, arena = model._engine, model._engine.gradient_arena()
    step_s, reduce_s, alone_s = [], [], []
    for i in range(steps + 3):  # 3 warm-up steps
        comm.Barrier()
        t0 = time.perf_counter()
        distributed.train_step(model, [x], [y], None, False)
        t1 = time.perf_counter()
        comm.Barrier()
        t2 = time.perf_counter()
        comm.Allreduce(distributed._MPI.IN_PLACE, arena, op=distributed._MPI.SUM)
        t3 = time.perf_counter()
        comm.Barrier()
        t4 = time.perf_counter()
        engine.train_step([x], [y])
        t5 = time.perf_counter()
        if i >= 3:
            step_s.append(t1 - t0)
            reduce_s.append(t3 - t2)
            alone_s.append(t5 - t4)
    k = comm.Get_size()
    row = {"ranks": k, "threads_per_rank": cn.get_num_threads(), "batch_per_rank": len(x),
           "arena_bytes": int(arena.nbytes), "step_ms": 1e3 * slowest_median(comm, step_s),
           "allreduce_ms": 1e3 * slowest_median(comm, reduce_s), "alone_ms": 1e3 * slowest_median(comm, alone_s)}
    for link, (bandwidth, latency) in LINKS.items():
        wire = 2 * (k - 1) / k * arena.nbytes / bandwidth + 2 * (k - 1) * latency
        row[f"{link} allreduce_ms (estimate)"] = 1e3 * wire
        row[f"{link} efficiency (estimate)"] = row["alone_ms"] / (row["alone_ms"] + 1e3 * wire)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    comm = distributed.init()
    rows = {}
    for name, (build, data) in workloads().items():
        rows[name] = measure(comm, build, data, args.steps)
        if distributed.is_chief():
            r = rows[name]
            print(f"{name:17s} arena {r['arena_bytes'] / 1e6:7.2f} MB  step {r['step_ms']:8.2f} ms  "
                  f"allreduce {r['allreduce_ms']:7.3f} ms  alone {r['alone_ms']:8.2f} ms  "
                  + "  ".join(f"{link}: ~{r[f'{link} allreduce_ms (estimate)']:.2f} ms, "
                              f"~{100 * r[f'{link} efficiency (estimate)']:.0f}%" for link in LINKS), flush=True)
    if args.json and distributed.is_chief():
        meta = {"ranks": distributed.size(), "steps": args.steps,
                "date": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
