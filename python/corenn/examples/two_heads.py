"""python -m corenn.examples.two_heads: one input, two outputs (course 3's
multi-task learning) on scikit-learn's handwritten digits.

A shared trunk reads the image; one head names the digit (10 logits,
softmax_cross_entropy), the other answers "is it 5 or more?" (one logit,
binary_cross_entropy). The model's loss is the weighted sum of the two; both
heads are trained at once, and evaluate reports each head's loss and accuracy
under Keras's names (digit_loss, digit_accuracy, big_loss, big_binary_accuracy).

    python -m corenn.examples.two_heads            # the full run
    python -m corenn.examples.two_heads --fast     # fewer epochs
"""


import numpy as np

import corenn as cn
from corenn.examples._cli import fast_flag

L = cn.layers
FAST = dict(epochs=10)  # main(fast=True): the tests' run


def build(units=128, learning_rate=1e-3, big_weight=0.5):
    image = L.Input((64,), name="image")
    h = L.Dense(units, activation="relu", name="trunk1")(image)
    h = L.Dense(units, activation="relu", name="trunk2")(h)
    digit = L.Dense(10, name="digit")(h)
    big = L.Dense(1, name="big")(h)
    model = cn.Model(inputs=image, outputs=[digit, big], name="two_heads")
    model.compile(optimizer=cn.optimizers.Adam(learning_rate),
                  loss={"digit": "softmax_cross_entropy", "big": "binary_cross_entropy"},
                  loss_weights={"digit": 1.0, "big": big_weight},
                  metrics={"digit": ["accuracy"], "big": ["binary_accuracy"]})
    return model


def run(epochs=30, seed=0, out=print):
    from sklearn.datasets import load_digits

    cn.seed(seed)
    digits = load_digits()
    X, y = (digits.data / 16.0).astype(np.float32), digits.target
    (X_train, y_train), _, (X_test, y_test) = cn.data.train_dev_test_split(
        X, y, (0.7, 0.0, 0.3), stratify=True, seed=seed)

    def targets(labels):
        return [labels, (labels >= 5).astype(np.float32)[:, None]]

    model = build()
    before = model.evaluate(X_test, targets(y_test))
    history = model.fit(X_train, targets(y_train), batch_size=32, epochs=epochs, verbose=0)
    after = model.evaluate(X_test, targets(y_test))
    digit_logits, big_logits = model.predict(X_test)
    out(f"{len(X_train)} training / {len(X_test)} held-out images, {epochs} epochs")
    out(f"held-out loss {before['loss']:.3f} -> {after['loss']:.3f} "
        f"(digit_loss {after['digit_loss']:.3f}, big_loss {after['big_loss']:.3f})")
    out(f"digit head:  accuracy {after['digit_accuracy']:.4f} (chance 0.10)")
    out(f"is-it-5+ head: accuracy {after['big_binary_accuracy']:.4f} (chance 0.50)")
    # The two heads agree when the digit head's class falls on the side the
    # other head predicts: they learnt one consistent picture from one trunk.
    agree = np.mean((np.argmax(digit_logits, axis=1) >= 5) == (big_logits[:, 0] > 0))
    out(f"the heads agree on {agree:.1%} of held-out images")
    return {"before": before, "after": after, "agree": agree, "history": history.history,
            "model": model}


def main(fast=False):
    return run(**FAST) if fast else run()


if __name__ == "__main__":
    main(fast=fast_flag(__doc__, "fewer epochs (tests)"))
