"""Synchronous data parallelism over MPI (``pip install "corenn[mpi]"``;
docs/distributed.md).

Under ``mpiexec -n K python -m mpi4py script.py``, ``init()`` makes every
model's ``fit``, ``train_on_batch``, ``evaluate`` and ``compute_gradients``
data-parallel across the K processes (ranks), as Horovod and PyTorch's DDP do:

- start: parameters, batch norm statistics and optimizer state are broadcast
  from rank 0 (so ranks seeded differently start identical); each rank draws
  its own dropout masks (rank 0 keeps its key, the others derive theirs);
- data: every rank shuffles with the same permutation, seeded each epoch by
  rank 0's draw from its generator (one process seeded alike draws the same); global batch s is rows
  [s·K·B, (s+1)·K·B) of it and rank r takes every K-th row from the r-th,
  so all ranks take the same number of steps (a rank whose share of the last
  batch is empty still joins the reduction);
- step: the engine leaves its flat gradient arena in summable form (each
  gradient times the local batch, then batch·loss and batch appended); ONE
  in-place MPI_Allreduce sums it; the update divides by the summed batch.
  That is the exact mean gradient over the K·B examples, so K ranks with
  batch B follow the trajectory of one process with batch K·B;
- batch norm: each rank normalises with its own batch's statistics; the
  moving averages are averaged across ranks at each epoch end and before
  evaluate and save;
- evaluation: each rank evaluates every K-th row; loss sums, outputs and
  targets are gathered so the logs (and EarlyStopping, ReduceLROnPlateau)
  are identical on every rank;
- files and logs: only rank 0 writes model files and CSV logs and shows
  progress; every collective runs on every rank unconditionally;
- failure: an uncaught exception on any rank prints its traceback and aborts
  the whole job (MPI_Abort), so no rank waits forever in a collective.

mpi4py is imported by ``init()`` only: ``import corenn`` never needs it."""

import sys
import time

import numpy as np

_comm = None       # the communicator after init(); None: one process
_rank, _size = 0, 1
_MPI = None
_ABORT_GRACE_SECONDS = 1.0  # time for mpiexec to forward a failing rank's traceback


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("corenn.distributed needs mpi4py and an MPI library: "
                          "pip install \"corenn[mpi]\" (mpi4py + mpich), or mpi4py alone "
                          "built against a cluster's MPI") from exc
    return MPI


def init(comm=None):
    """Start data parallelism on `comm` (default MPI.COMM_WORLD) and return it.
    Call it once, on every rank, before building models. With one process it
    changes nothing. Raises ImportError naming the extra without mpi4py."""
    global _comm, _rank, _size, _MPI
    MPI = _mpi()
    if comm is None:
        comm = MPI.COMM_WORLD
    if not isinstance(comm, MPI.Comm):
        raise TypeError(f"init: comm must be an mpi4py communicator, got {type(comm).__name__}")
    _MPI, _comm, _rank, _size = MPI, comm, comm.Get_rank(), comm.Get_size()
    if _size > 1 and not getattr(sys.excepthook, "_corenn_abort", False):
        sys.excepthook = _abort_hook(sys.excepthook)
    return comm


def _abort_hook(previous):
    """An excepthook that prints the traceback (the previous hook), then ends
    every rank: the others would otherwise wait in their next collective."""
    def hook(kind, value, traceback):
        previous(kind, value, traceback)
        sys.stderr.flush()
        # mpiexec forwards each rank's stderr through a pipe, and MPI_Abort
        # lets it kill the job before that pipe is drained: without a pause
        # the traceback was lost in about 1 run of 20.
        time.sleep(_ABORT_GRACE_SECONDS)
        _comm.Abort(1)
    hook._corenn_abort = True
    return hook


def rank():
    """This process's rank: 0 .. size() - 1 (0 without init())."""
    return _rank


def size():
    """The number of processes training together (1 without init())."""
    return _size


def active():
    """Whether training is data-parallel: init() ran and there are 2+ ranks."""
    return _size > 1


def is_chief():
    """Rank 0: the one process that writes files and logs."""
    return _rank == 0


# ---------------------------------------------------------------- start

def _derived_key(key, r):
    return int(np.random.SeedSequence([int(key), int(r)]).generate_state(1, np.uint64)[0])


def broadcast_model(model):
    """Parameters, batch norm state and optimizer state from rank 0 to all;
    every rank then draws its own dropout masks (rank 0 keeps its key)."""
    engine = model._engine
    for get, put in ((engine.get_parameters, engine.set_parameters),
                     (engine.get_state, engine.set_state)):
        flat = get()
        _comm.Bcast(flat, root=0)
        put(flat)
    step, slots = engine.get_optimizer_state()
    step = _comm.bcast(step, root=0)
    for slot in slots:
        _comm.Bcast(slot, root=0)
    engine.set_optimizer_state(step, slots)
    key = _comm.bcast(engine.dropout_key, root=0)
    engine.dropout_key = key if _rank == 0 else _derived_key(key, _rank)
    model._distributed_engine = engine


def ensure_broadcast(model):
    """broadcast_model once per engine (train_on_batch, compute_gradients)."""
    if getattr(model, "_distributed_engine", None) is not model._engine:
        broadcast_model(model)


def average_state(model):
    """Batch norm moving averages: their mean over the ranks, on every rank."""
    state = model._engine.get_state()
    if state.size:
        _comm.Allreduce(_MPI.IN_PLACE, state, op=_MPI.SUM)
        state /= _size
        model._engine.set_state(state)


def shuffle_seed(next_key):
    """An epoch's permutation seed: rank 0's draw, on every rank (each rank
    draws too, so the global generators stay in step)."""
    return _comm.bcast(int(next_key()), root=0)


def shard(order, batch_size):
    """This rank's rows of `order`: global batch s is order[s·K·B:(s+1)·K·B],
    of which rank r takes every K-th row from the r-th. Every full global batch
    gives each rank B rows, so local batch s is rows [s·B, (s+1)·B) of the
    result. Returns (rows, steps): steps = ⌈n / (K·B)⌉ on every rank."""
    n = len(order)
    span = _size * batch_size
    position = np.arange(n)
    mine = (position % span) % _size == _rank
    return order[mine], (n + span - 1) // span


# ---------------------------------------------------------------- a step

def _arena(model):
    return model._engine.gradient_arena()


def reduce_arena(model, local_rows):
    """Sum the gradient arena over the ranks in place (an empty local batch
    contributes zeros) and return (mean loss, summed example count)."""
    arena = _arena(model)
    if local_rows == 0:
        arena[:] = 0
    _comm.Allreduce(_MPI.IN_PLACE, arena, op=_MPI.SUM)
    examples = float(arena[-1])
    return float(arena[-2]) / examples, examples


def train_step(model, xb, yb, wb, with_outputs):
    """One data-parallel step; returns what engine.train_step returns, with
    the loss the mean over all ranks' examples (per-output losses and
    outputs stay this rank's)."""
    engine = model._engine
    rows = len(xb[0])
    if rows:
        result = engine.compute_gradients(xb, yb, wb, with_outputs)
    else:
        empty = [np.zeros((0, *o.shape[1:]), model.dtype) for o in model._outputs]
        result = (0.0, [0.0] * len(model._outputs), empty)[:3 if with_outputs else 2]
    loss, examples = reduce_arena(model, rows)
    ok = engine.apply_gradient_arena(1.0 / examples)
    return (loss if ok else float("nan"), *result[1:])


def compute_gradients(model, xs, ys, w):
    """(mean loss, flat mean gradient) over every rank's batch."""
    rows = len(xs[0])
    if rows:
        model._engine.compute_gradients(xs, ys, w)
    loss, examples = reduce_arena(model, rows)
    arena = _arena(model)
    return loss, arena[:-2] / arena.dtype.type(examples)


# ---------------------------------------------------------------- gathering

def sum_over_ranks(values):
    """Element-wise sum of a list of floats over the ranks, added in rank
    order so every rank gets the same bits."""
    parts = _comm.allgather([float(v) for v in values])
    return [float(sum(p[k] for p in parts)) for k in range(len(values))]


def gather_rows(arrays):
    """Each array's rows from all ranks, concatenated in rank order (None stays None)."""
    parts = _comm.allgather(arrays)
    return [None if a is None else np.concatenate([p[k] for p in parts]) for k, a in enumerate(arrays)]


def evaluate_shard(n):
    """This rank's rows of an evaluation set of n rows and the order in which
    gathered rows arrive (every rank's shard, rank by rank)."""
    rows = np.arange(n)
    return rows[_rank::_size], np.concatenate([rows[r::_size] for r in range(_size)])


__all__ = ["average_state", "broadcast_model", "init", "is_chief", "rank", "size"]
