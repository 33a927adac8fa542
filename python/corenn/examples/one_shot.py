"""python -m corenn.examples.one_shot: one-shot recognition and verification
(course 4, week 4: face recognition) on scikit-learn's handwritten digits.

The identities ("people"): each digit at each quarter turn, 10 digits × 4
rotations = 40 characters (a 6 turned upside down reads as a 9: a rotated
digit is another character). The split is by identity, so the test is truly
one-shot: the embedding f(x) is trained on the 20 identities at 0° and 90°
only; the 20 at 180° and 270° are people it has never seen. (The two halves
are chosen so that no identity of one half looks like another of the same
half: 6 at 180° resembles 9 at 0°, which is in the other half.) The new
identities' images are split in half (stratified): a dev half, on which the
verification threshold τ is chosen, and a test half, which gives the
database (ONE enrolled image per identity) and the queries.

- f(x): a small CNN (two 3×3 convolutions, a Dense layer) ending in
  UnitNormalization, so ‖f(x)‖₂ = 1 and d(x1, x2) = ‖f(x1) − f(x2)‖₂ ∈ [0, 2];
  in training each image is shifted by up to one pixel (RandomCrop(1)).
- Training: cn.losses.TripletLoss(margin α), the course's
  J = Σ max(‖f(A) − f(P)‖² − ‖f(A) − f(N)‖² + α, 0), on the (A, P, N) triplets
  that semi-hard mining (FaceNet) picks within each batch of labelled images:
  random triplets are mostly satisfied already and teach nothing.
- Recognition: cn.applications.Embedder enrols one image per new identity;
  each query is the identity of its nearest enrolled encoding (closed set).
  Baseline: the same nearest-neighbour rule on the raw pixels, with the same
  enrolled images. Both are averaged over several random draws of the
  enrolled images (with one image, which one a person enrols with matters).
- Verification: "same person?" is d(x1, x2) ≤ τ, τ chosen on balanced dev
  pairs with cn.applications.choose_threshold, accuracy measured on balanced
  test pairs; against the same rule on pixel distances and on an untrained f.

``split="digits"`` is the harder split of the digits themselves: f learns
digits 0–5 and meets 6–9 (4 identities) at test time. Six identities are too
few to learn what makes digits differ in general, and there f only ties
with the pixels (see docs/guide.md, "One-shot recognition").

    python -m corenn.examples.one_shot                   # the full run
    python -m corenn.examples.one_shot --fast            # fewer epochs (the tests')
    python -m corenn.examples.one_shot --split digits    # train on 0-5, test on 6-9
"""

import numpy as np

import corenn as cn
from corenn.examples import _cli

L = cn.layers
FAST = dict(epochs=6, pairs=1000, draws=10)  # main(fast=True): the tests' run


def identities(split):
    """(X (N, 1, 8, 8) in [0, 1], identity (N,), known (N,) bool: a training
    identity) for split "rotations" or "digits"."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, y = (digits.images[:, None] / 16.0).astype(np.float32), digits.target
    if split == "digits":
        return X, y, y <= 5
    X = np.concatenate([np.rot90(X, k, axes=(2, 3)) for k in range(4)])
    turns = np.repeat(np.arange(4), len(y))
    return np.ascontiguousarray(X), np.tile(y, 4) + 10 * turns, turns <= 1


def build(embedding=64, learning_rate=2e-3, margin=0.2):
    """f(x): (1, 8, 8) images -> unit-length encodings (embedding,), compiled
    with the triplet loss mined semi-hard within each batch (labels as y)."""
    image = L.Input((1, 8, 8), name="image")
    shifted = L.RandomCrop(1, name="shift")(image)  # training only
    h = L.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(shifted)
    h = L.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(h)
    h = L.Flatten(name="flatten")(L.MaxPool2D(2, name="pool")(h))
    encoding = L.UnitNormalization(name="encoding")(L.Dense(embedding, name="embedding")(h))
    model = cn.Model(image, encoding, name="one_shot")
    model.compile(optimizer=cn.optimizers.Adam(learning_rate),
                  loss=cn.losses.TripletLoss(margin=margin, mining="semi_hard"))
    return model


def make_pairs(y, n, rng):
    """n index pairs (i, j), i ≠ j, into labels y: half of one identity (same =
    1), half of two different identities (same = 0)."""
    ids = np.unique(y)
    members = {k: np.flatnonzero(y == k) for k in ids}
    half = n // 2
    first, second = np.empty(n, np.int64), np.empty(n, np.int64)
    for k in range(n):
        a = rng.choice(ids)
        b = a if k < half else rng.choice(ids[ids != a])
        first[k] = rng.choice(members[a])
        second[k] = rng.choice(members[b][members[b] != first[k]])
    same = np.arange(n) < half
    return first, second, same


def verification(encode, X_dev, y_dev, X_test, y_test, pairs, rng):
    """(τ, held-out accuracy) of "same identity iff d ≤ τ" with encode(x) ->
    (N, D): τ from dev pairs, accuracy on test pairs."""
    faces = cn.applications
    a, b, same = make_pairs(y_dev, pairs, rng)
    tau = faces.choose_threshold(faces.distance(encode(X_dev[a]), encode(X_dev[b])), same)
    a, b, same = make_pairs(y_test, pairs, rng)
    d = faces.distance(encode(X_test[a]), encode(X_test[b]))
    return tau, float(np.mean((d <= tau) == same))


def recognition(model, X, y, draws, rng):
    """Mean accuracy over `draws` databases of one random image per identity,
    the other images as queries: with model's encodings (threshold 2, the
    diameter of the unit sphere: every query matches someone) and with raw
    pixels (model None; threshold 8, the diameter of [0, 1]^64)."""
    hits = []
    for _ in range(draws):
        enrolled = np.array([rng.choice(np.flatnonzero(y == k)) for k in np.unique(y)])
        queries = np.setdiff1d(np.arange(len(y)), enrolled)
        embedder = cn.applications.Embedder(model, threshold=2.0 if model is not None else 8.0)
        if model is None:
            embedder.enrol(y[enrolled], X[enrolled].reshape(len(enrolled), -1))
            found, _ = embedder.identify(X[queries].reshape(len(queries), -1))
        else:
            embedder.enrol(y[enrolled], X[enrolled])
            found, _ = embedder.identify(X[queries])
        hits.append(np.mean(found == y[queries]))
    return float(np.mean(hits))


def run(split="rotations", epochs=10, pairs=4000, draws=50, seed=0, out=print):
    cn.seed(seed)
    rng = np.random.default_rng(seed)
    X, y, known = identities(split)
    X_train, y_train = X[known], y[known]
    (X_dev, y_dev), _, (X_test, y_test) = cn.data.train_dev_test_split(
        X[~known], y[~known], (0.5, 0.0, 0.5), stratify=True, seed=seed)
    new = len(np.unique(y_test))
    out(f"split {split!r}: {len(np.unique(y_train))} training identities, {len(X_train)} images; "
        f"{new} new identities, {len(X_dev)} dev / {len(X_test)} test images, never seen in training")

    model = build()

    def pixels(x):
        return x.reshape(len(x), -1)

    _, untrained = verification(model.predict, X_dev, y_dev, X_test, y_test, pairs, rng)
    history = model.fit(X_train, y_train, batch_size=64, epochs=epochs, verbose=0)
    tau, accuracy = verification(model.predict, X_dev, y_dev, X_test, y_test, pairs, rng)
    pixel_tau, pixel_accuracy = verification(pixels, X_dev, y_dev, X_test, y_test, pairs, rng)
    out(f"triplet loss J over {epochs} epochs: {history.history['loss'][0]:.2f} -> "
        f"{history.history['loss'][-1]:.2f} per batch")
    out(f"verification d(x1, x2) <= tau on {pairs} held-out pairs of new identities (50% same): "
        f"accuracy {accuracy:.4f} (tau {tau:.3f} from dev pairs); pixels {pixel_accuracy:.4f} "
        f"(tau {pixel_tau:.3f}); untrained f {untrained:.4f}")
    recognised = recognition(model, X_test, y_test, draws, rng)
    pixel_recognised = recognition(None, X_test, y_test, draws, rng)
    out(f"one-shot recognition among {new} new identities, one enrolled image each "
        f"(mean of {draws} draws): accuracy {recognised:.4f}; nearest neighbour on pixels "
        f"{pixel_recognised:.4f}; chance {1 / new:.2f}")
    return {"verification": accuracy, "tau": tau, "pixel_verification": pixel_accuracy,
            "untrained_verification": untrained, "recognition": recognised,
            "pixel_recognition": pixel_recognised, "model": model, "history": history.history}


def main(fast=False, split="rotations"):
    return run(split, **FAST) if fast else run(split)


if __name__ == "__main__":
    parser = _cli.parser(__doc__, "fewer epochs and pairs (tests)")
    parser.add_argument("--split", choices=("rotations", "digits"), default="rotations",
                        help="new identities: the digits turned 180/270 degrees, or digits 6-9")
    args = _cli.parse(parser)
    main(fast=args.fast, split=args.split)
