"""python -m corenn.demo: train an MLP on scikit-learn's handwritten digits
(1,797 8×8 images, shipped inside scikit-learn) and report accuracy and speed."""

import argparse
import time

import numpy as np

import corenn as cn


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("the demo needs scikit-learn: pip install 'corenn[demo]'") from None

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)  # pixels 0..16 -> 0..1
    X_train, X_test, y_train, y_test = train_test_split(
        X, digits.target, test_size=0.25, random_state=args.seed, stratify=digits.target)

    cn.seed(args.seed)
    L = cn.layers
    model = cn.Sequential([
        L.Input((64,)),
        L.Dense(128, activation="relu", kernel_initializer="he_normal"),
        L.Dropout(0.1),
        L.Dense(64, activation="relu", kernel_initializer="he_normal"),
        L.Dense(10),
    ], name="digits_mlp")
    model.compile(optimizer=cn.optimizers.Adam(1e-3), loss="softmax_cross_entropy",
                  metrics=["accuracy"])
    model.summary()

    start = time.perf_counter()
    history = model.fit(X_train, y_train, batch_size=args.batch_size, epochs=args.epochs,
                        validation_split=0.1, verbose=args.verbose)
    seconds = time.perf_counter() - start
    result = model.evaluate(X_test, y_test)
    seen = len(X_train) * 0.9 * len(history.history["loss"])
    print(f"threads: {cn.get_num_threads()}  epochs: {len(history.history['loss'])}  "
          f"final train loss: {history.history['loss'][-1]:.4f}")
    print(f"training: {seconds:.2f} s, {seen / seconds:,.0f} examples/s")
    print(f"test accuracy: {result['accuracy']:.4f} on {len(X_test)} held-out digits")
    return result["accuracy"]


if __name__ == "__main__":
    main()
