"""python -m corenn.examples.siamese: face-verification's idea (course 4, week 4)
on scikit-learn's handwritten digits: "are these two images the same digit?"

A siamese network: two inputs, ONE encoder applied to both (its weights are
shared, and its gradient is the sum over both calls), and a head on the
distance between the two embeddings, the course's |f(x1) − f(x2)| (one line:
``L.Activation("abs")(L.Subtract()([e1, e2]))``), trained with
binary_cross_entropy on pairs. The digits are split into training and held-out
IMAGES first, so every held-out pair is made of images the network never saw;
pairs are balanced (half the same digit, half two different digits).

    python -m corenn.examples.siamese            # the full run
    python -m corenn.examples.siamese --fast     # fewer pairs and epochs
"""


import numpy as np

import corenn as cn
from corenn.examples._cli import fast_flag

L = cn.layers
FAST = dict(train_pairs=20000, epochs=4)  # main(fast=True): the tests' run, a few seconds


def make_pairs(y, n, rng):
    """n index pairs (i, j) into y, i ≠ j, half of one digit (target 1) and half
    of two different digits (target 0), in random order."""
    by_digit = [np.flatnonzero(y == d) for d in range(10)]
    half = n // 2
    same = rng.integers(0, 10, half)
    first = rng.integers(0, 10, n - half)
    other = (first + rng.integers(1, 10, n - half)) % 10  # never the same digit
    digits_a = np.concatenate([same, first])
    digits_b = np.concatenate([same, other])
    a = np.array([rng.choice(by_digit[d]) for d in digits_a])
    b = np.empty_like(a)
    for k, (d, i) in enumerate(zip(digits_b, a)):
        j = rng.choice(by_digit[d])
        while j == i:  # a pair of one image with itself tells nothing
            j = rng.choice(by_digit[d])
        b[k] = j
    target = np.concatenate([np.ones(half), np.zeros(n - half)]).astype(np.float32)
    order = rng.permutation(n)
    return a[order], b[order], target[order, None]


def build(hidden=128, embedding=32, head=32, learning_rate=1e-3):
    left, right = L.Input((64,), name="left"), L.Input((64,), name="right")
    encoder = [L.Dense(hidden, activation="relu", name="encoder_hidden"),
               L.Dense(embedding, name="embedding")]

    def encode(t):
        for layer in encoder:
            t = layer(t)
        return t

    distance = L.Activation("abs", name="abs_difference")(L.Subtract(name="difference")(
        [encode(left), encode(right)]))
    h = L.Dense(head, activation="relu", name="compare")(distance)
    same = L.Dense(1, name="same")(h)
    model = cn.Model(inputs=[left, right], outputs=same, name="siamese")
    model.compile(optimizer=cn.optimizers.Adam(learning_rate), loss="binary_cross_entropy",
                  metrics=["binary_accuracy"])
    return model


def run(train_pairs=60000, test_pairs=2000, epochs=3, seed=0, out=print):
    from sklearn.datasets import load_digits

    cn.seed(seed)
    rng = np.random.default_rng(seed)
    digits = load_digits()
    X, y = (digits.data / 16.0).astype(np.float32), digits.target
    (X_train, y_train), _, (X_test, y_test) = cn.data.train_dev_test_split(
        X, y, (0.7, 0.0, 0.3), stratify=True, seed=seed)
    a, b, t = make_pairs(y_train, train_pairs, rng)
    ta, tb, tt = make_pairs(y_test, test_pairs, rng)
    out(f"images: {len(X_train)} train / {len(X_test)} held out; pairs: {train_pairs} train / "
        f"{test_pairs} held out, {tt.mean():.0%} same digit")

    model = build()
    shared = model.get_layer("encoder_hidden")
    out(f"one encoder for both inputs: {model.count_params()} parameters "
        f"({sum(w.size for w in shared.get_weights())} in encoder_hidden, counted once)")
    history = model.fit([X_train[a], X_train[b]], t, batch_size=64, epochs=epochs, verbose=0)
    result = model.evaluate([X_test[ta], X_test[tb]], tt)
    out(f"after {epochs} epochs: training loss {history.history['loss'][-1]:.4f}; held-out "
        f"pairs: loss {result['loss']:.4f}, verification accuracy {result['binary_accuracy']:.4f}")
    return {"accuracy": result["binary_accuracy"], "loss": result["loss"], "model": model,
            "history": history.history}


def main(fast=False):
    return run(**FAST) if fast else run()


if __name__ == "__main__":
    main(fast=fast_flag(__doc__, "fewer pairs and epochs (tests)"))
