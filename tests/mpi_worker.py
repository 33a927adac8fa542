"""The program tests/test_distributed.py runs under `mpiexec -n 2`: each
scenario trains data-parallel and every rank saves what it ended with to
OUT/<scenario>_rank<r>.npz; the test compares the ranks with each other and
with one process trained in pytest (tests/test_distributed.py builds the same
models with the same seeds).

    mpiexec -n 2 python tests/mpi_worker.py OUT          # every scenario
    mpiexec -n 2 python tests/mpi_worker.py OUT abort    # rank 1 raises
"""

import os
import sys

import numpy as np

import corenn as cn
from corenn import callbacks, distributed, layers as L

TRAJECTORY = dict(n=80, batch=4, epochs=2)  # 2 ranks × 4 = batch 8: 10 steps an epoch, 20 in all
UNEVEN = dict(n=17, batch=4, epochs=2)      # global batches of 8, 8, 1: rank 1's last share is empty


def data(n, features=6, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (np.abs(x[:, 0] * 2 + x[:, 1]).astype(np.int64)) % classes
    return x, y


def mlp(optimizer, seed=7, dtype="float32"):
    """The trajectory model: no dropout, no batch norm."""
    cn.seed(seed)
    model = cn.Sequential([L.Input((6,)), L.Dense(16, activation="tanh"), L.Dense(3)], dtype=dtype)
    model.compile(optimizer=optimizer, loss="softmax_cross_entropy", metrics=["accuracy"])
    model.build()
    return model


def optimizer(name):
    return cn.optimizers.SGD(0.1, momentum=0.9) if name == "sgd" else cn.optimizers.Adam(0.01)


def noisy(seed=7):
    """Dropout and batch norm: replicas must still stay identical."""
    cn.seed(seed)
    model = cn.Sequential([L.Input((6,)), L.Dense(16), L.BatchNormalization(), L.Activation("relu"),
                           L.Dropout(0.3), L.Dense(3)])
    model.compile(optimizer=cn.optimizers.Adam(0.01), loss="softmax_cross_entropy")
    return model


class LastLocalState(callbacks.Callback):
    """The batch norm state after each step, before the epoch end averages it."""

    def on_train_batch_end(self, batch, logs=None):
        self.state = self.model._engine.get_state().copy()


def run(out):
    r = distributed.rank()
    x, y = data(TRAJECTORY["n"])
    for name in ("sgd", "adam"):
        model = mlp(optimizer(name))
        model.fit(x, y, batch_size=TRAJECTORY["batch"], epochs=TRAJECTORY["epochs"], verbose=0)  # shuffled
        loss, grads = model.compute_gradients(x[r::2], y[r::2])
        np.savez(f"{out}/{name}_rank{r}.npz", params=model._engine.get_parameters(), steps=model._engine.steps,
                 loss=loss, **{f"grad{k}": g for k, g in enumerate(grads)})

    model = noisy(seed=7)
    local = LastLocalState()
    history = model.fit(x, y, batch_size=8, epochs=2, callbacks=[local], verbose=0)
    model.save(f"{out}/noisy_model_{r}.corenn")  # rank 1's call writes nothing
    opt_step, slots = model._engine.get_optimizer_state()
    np.savez(f"{out}/noisy_rank{r}.npz", params=model._engine.get_parameters(),
             state=model._engine.get_state(), local_state=local.state, slots=np.concatenate(slots),
             steps=model._engine.steps, dropout_key=np.uint64(model._engine.dropout_key),
             loss=np.array(history.history["loss"]), predictions=model.predict(x))

    model = mlp(optimizer("adam"), seed=100 + r)  # ranks seeded differently
    before = model._engine.get_parameters()
    model.train_on_batch(x[:4], y[:4])
    np.savez(f"{out}/seeded_rank{r}.npz", before=before, after=model._engine.get_parameters())

    xu, yu = data(UNEVEN["n"], seed=1)
    xv, yv = data(9, seed=2)
    model = mlp(optimizer("sgd"), dtype="float64")
    log = callbacks.CSVLogger(f"{out}/log_{r}.csv")
    history = model.fit(xu, yu, batch_size=UNEVEN["batch"], epochs=UNEVEN["epochs"], shuffle=False, verbose=0,
                        validation_data=(xv, yv), callbacks=[log])
    scores = model.evaluate(xv, yv)
    np.savez(f"{out}/uneven_rank{r}.npz", params=model._engine.get_parameters(), steps=model._engine.steps,
             loss=np.array(history.history["loss"]), val_loss=np.array(history.history["val_loss"]),
             val_accuracy=np.array(history.history["val_accuracy"]), eval_loss=scores["loss"],
             eval_accuracy=scores["accuracy"])


def abort():
    """Rank 1 fails before the first step; rank 0 would wait in it forever."""
    x, y = data(32)
    model = mlp(optimizer("sgd"))
    if distributed.rank() == 1:
        raise RuntimeError("rank 1 fails on purpose")
    model.fit(x, y, batch_size=4, epochs=1000, verbose=0)


if __name__ == "__main__":
    cn.set_num_threads(1)
    distributed.init()
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    if sys.argv[2:] == ["abort"]:
        abort()
    else:
        run(out)
