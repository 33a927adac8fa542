"""python -m corenn.examples.digits_lstm: sequence classification (course 5,
many-to-one) on scikit-learn's handwritten digits, each 8×8 image read row by
row as a sequence of 8 steps of 8 features by an LSTM whose last hidden state
a Dense layer turns into 10 logits.

    python -m corenn.examples.digits_lstm            # the full run
    python -m corenn.examples.digits_lstm --fast     # fewer epochs (tests)
"""

import time

import numpy as np

import corenn as cn
from corenn.examples._cli import fast_flag

L = cn.layers
FAST = dict(epochs=12)  # main(fast=True): the tests' run


def build(units=64, learning_rate=1e-2):
    rows = L.Input((8, 8), name="rows")  # (steps, features): one image row per step
    h = L.LSTM(units, name="lstm")(rows)  # the last step's a⟨8⟩
    model = cn.Model(rows, L.Dense(10, name="logits")(h), name="digits_lstm")
    model.compile(optimizer=cn.optimizers.Adam(learning_rate, clipnorm=1.0),
                  loss="softmax_cross_entropy", metrics=["accuracy"])
    return model


def run(epochs=30, seed=0, out=print):
    from sklearn.datasets import load_digits

    cn.seed(seed)
    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)  # (1797, 8, 8): rows as steps
    (X_train, y_train), _, (X_test, y_test) = cn.data.train_dev_test_split(
        X, digits.target, (0.7, 0.0, 0.3), stratify=True, seed=seed)
    model = build()
    start = time.perf_counter()
    model.fit(X_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    seconds = time.perf_counter() - start
    result = model.evaluate(X_test, y_test)
    out(f"{len(X_train)} training / {len(X_test)} held-out images as 8 steps × 8 features, "
        f"LSTM(64) -> Dense(10), {epochs} epochs in {seconds:.1f} s")
    out(f"held-out loss {result['loss']:.3f}, accuracy {result['accuracy']:.4f} (chance 0.10)")
    return {"accuracy": result["accuracy"], "loss": result["loss"], "model": model}


def main(fast=False):
    return run(**FAST) if fast else run()


if __name__ == "__main__":
    main(fast=fast_flag(__doc__, "fewer epochs (tests)"))
