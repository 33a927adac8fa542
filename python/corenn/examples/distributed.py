"""python -m corenn.examples.distributed: the digits CNN trained data-parallel
on MPI (docs/distributed.md; needs ``pip install "corenn[mpi]"``).

    mpiexec -n 2 python -m mpi4py -m corenn.examples.distributed    # 2 ranks
    python -m corenn.examples.distributed                           # 1 process

--global-batch is the batch of one update over all ranks; each of K ranks
takes global-batch / K rows of it, so every K follows the same trajectory and
reaches the same test accuracy (up to float32 rounding). Each rank prints its
own throughput; rank 0 prints the test accuracy. Threads per rank come from
--threads or OMP_NUM_THREADS (keep threads × ranks <= cores); --fast trains
a couple of epochs only."""

import time

import numpy as np

import corenn as cn
from corenn import distributed
from corenn.examples import _cli

L = cn.layers
FAST_EPOCHS = 2  # --fast


def build(seed):
    cn.seed(seed)
    model = cn.Sequential([
        L.Input((1, 8, 8)),
        L.Conv2D(16, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Conv2D(32, 3, padding="same", activation="relu"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(10),
    ], name="digits_cnn")
    model.compile(optimizer=cn.optimizers.Adam(2e-3), loss="softmax_cross_entropy", metrics=["accuracy"])
    return model


def main(argv=None):
    parser = _cli.parser(__doc__, f"{FAST_EPOCHS} epochs instead of --epochs (a quick check)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = _cli.parse(parser, argv)
    if args.fast:
        args.epochs = FAST_EPOCHS
    try:
        distributed.init()
    except ImportError:
        pass  # one process without the extra: the same training, undivided
    k, rank = distributed.size(), distributed.rank()
    if args.global_batch % k:
        raise SystemExit(f"--global-batch {args.global_batch} must be a multiple of the {k} ranks")
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("the example needs scikit-learn: pip install 'corenn[demo]'") from None
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8), pixels 0..1
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target)

    model = build(args.seed)
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=args.global_batch // k, epochs=args.epochs, verbose=0)
    seconds = time.perf_counter() - start
    mine = len(distributed.shard(np.arange(len(x_train)), args.global_batch // k)[0]) if k > 1 else len(x_train)
    print(f"rank {rank}/{k}: {cn.get_num_threads()} threads, {mine * args.epochs / seconds:,.0f} examples/s "
          f"of its own ({len(x_train) * args.epochs / seconds:,.0f} for all ranks), {seconds:.2f} s", flush=True)
    result = model.evaluate(x_test, y_test)  # every rank takes part; the logs are the same everywhere
    if distributed.is_chief():
        print(f"test accuracy: {result['accuracy']:.4f} on {len(x_test)} held-out digits "
              f"(global batch {args.global_batch}, {k} rank{'s' * (k > 1)})")
    return result["accuracy"]


if __name__ == "__main__":
    main()
