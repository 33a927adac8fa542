"""Per-example loss weights with Keras's semantics: the loss kernels' sample_weight
(NumPy references, float32/float64 parity, float64 gradient checks, bad input),
and fit / train_on_batch / evaluate with sample_weight and class_weight.

Keras 3 (keras/src/losses/loss.py, reduce_weighted_values with the default
reduction "sum_over_batch_size") multiplies each example's loss by its weight
and divides the sum by the number of examples, not by the sum of the weights;
class_weight becomes per-example weights as in
keras/src/trainers/data_adapters/data_adapter_utils.py
(class_weight_to_sample_weights), multiplied into any sample_weight."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, relative_difference
from reference import loss as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

L = cn.layers
O = cn.optimizers

SHAPES = [(1, 1), (5, 13), (64, 10), (300, 257)]  # the last takes the multi-thread path


def weights(n, rng, dtype):
    """Weights in [0, 3) with some exact zeros (an example left out)."""
    w = rng.uniform(0, 3, n)
    w[::4] = 0.0
    return w.astype(dtype)


# ---------------------------------------------------------------------------
# the kernels


def test_weighted_references_against_finite_differences(rng):
    s = weights(4, rng, np.float64)
    z, labels = rng.standard_normal((4, 5)), rng.integers(0, 5, 4)
    f = lambda: ref.softmax_cross_entropy_weighted(z, labels, s)  # noqa: E731
    assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], z)) < GRADCHECK_THRESHOLD
    t, mask = rng.uniform(0, 1, (4, 5)), rng.uniform(size=(4, 5)) < 0.7
    for m in (None, mask):
        f = lambda: ref.sigmoid_cross_entropy_weighted(z, t, s, m)  # noqa: E731, B023
        assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], z)) < GRADCHECK_THRESHOLD  # noqa: B023
    p, q = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 3))
    f = lambda: ref.mse_weighted(p, q, s)  # noqa: E731
    assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], p)) < GRADCHECK_THRESHOLD


def test_weighted_references_reduce_to_the_unweighted_ones(rng):
    z, labels = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    t = rng.uniform(0, 1, (6, 4))
    one = np.ones(6)
    pairs = [(ref.softmax_cross_entropy_weighted(z, labels, one), ref.softmax_cross_entropy(z, labels)),
             (ref.sigmoid_cross_entropy_weighted(z, t, one), ref.sigmoid_cross_entropy(z, t)),
             (ref.mse_weighted(z, t, one), ref.mse(z, t))]
    for (a, da), (b, db) in pairs:
        assert_close(a, b, np.float64, what="loss")
        assert_close(da, db, np.float64, what="gradient")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("naive", [False, True])
def test_weighted_kernels_match_reference(shape, dtype, naive, rng):
    n, c = shape
    z = (rng.standard_normal(shape) * 5).astype(dtype)
    labels = rng.integers(0, c, n)
    t = rng.uniform(0, 1, shape).astype(dtype)
    mask = rng.uniform(size=shape) < 0.7
    s = weights(n, rng, dtype)
    z64, t64, s64 = z.astype(np.float64), t.astype(np.float64), s.astype(np.float64)

    loss, dz = cn.ops.softmax_cross_entropy(z, labels, sample_weight=s, naive=naive)
    want = ref.softmax_cross_entropy_weighted(z64, labels, s64)
    assert dz.dtype == dtype
    assert_close(loss, want[0], dtype, op="softmax_cross_entropy", what="loss")
    assert_close(dz, want[1], op="softmax_cross_entropy", what="dlogits")

    for m in (None, mask):
        loss, dz = cn.ops.sigmoid_cross_entropy(z, t, m, sample_weight=s, naive=naive)
        want = ref.sigmoid_cross_entropy_weighted(z64, t64, s64, m)
        assert_close(loss, want[0], dtype, op="sigmoid_cross_entropy", what="loss")
        assert_close(dz, want[1], op="sigmoid_cross_entropy", what="dlogits")

    for p, q in ((z, t), (z.reshape(n, 1, c), t.reshape(n, 1, c))):
        loss, dp = cn.ops.mse(p, q, sample_weight=s, naive=naive)
        want = ref.mse_weighted(p.astype(np.float64), q.astype(np.float64), s64)
        assert dp.shape == p.shape
        assert_close(loss, want[0], dtype, op="mse", what="loss")
        assert_close(dp, want[1], op="mse", what="dpred")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
def test_all_ones_weights_give_the_unweighted_bits(dtype, naive, rng):
    z = rng.standard_normal((300, 257)).astype(dtype)
    labels, t = rng.integers(0, 257, 300), rng.uniform(0, 1, (300, 257)).astype(dtype)
    one = np.ones(300, dtype)
    calls = [lambda **kw: cn.ops.softmax_cross_entropy(z, labels, naive=naive, **kw),
             lambda **kw: cn.ops.sigmoid_cross_entropy(z, t, naive=naive, **kw),
             lambda **kw: cn.ops.mse(z, t, naive=naive, **kw)]
    for call in calls:
        (a, da), (b, db) = call(), call(sample_weight=one)
        assert a == b
        np.testing.assert_array_equal(da, db)


@pytest.mark.parametrize("naive", [False, True])
def test_weighted_gradient_check(naive, rng):
    s = weights(5, rng, np.float64)
    z, labels = rng.standard_normal((5, 6)), rng.integers(0, 6, 5)
    f = lambda: cn.ops.softmax_cross_entropy(z, labels, sample_weight=s, naive=naive)  # noqa: E731
    assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], z)) < GRADCHECK_THRESHOLD
    t, mask = rng.uniform(0, 1, (5, 6)), rng.uniform(size=(5, 6)) < 0.7
    for m in (None, mask):
        f = lambda: cn.ops.sigmoid_cross_entropy(z, t, m, sample_weight=s, naive=naive)  # noqa: E731, B023
        assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], z)) < GRADCHECK_THRESHOLD  # noqa: B023
    p, q = rng.standard_normal((5, 3, 2)), rng.standard_normal((5, 3, 2))
    f = lambda: cn.ops.mse(p, q, sample_weight=s, naive=naive)  # noqa: E731
    assert relative_difference(f()[1], numerical_gradient(lambda: f()[0], p)) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "sigmoid_cross_entropy", "mse"])
@pytest.mark.parametrize("bad, error, match", [
    (np.array([1.0, np.nan, 1.0]), ValueError, "finite and >= 0"),
    (np.array([1.0, 1.0, np.inf]), ValueError, "finite and >= 0"),
    (np.array([1.0, -0.5, 1.0]), ValueError, "finite and >= 0"),
    (np.ones(4), ValueError, "sample_weight"),
    (np.ones((3, 1)), ValueError, "sample_weight"),
    (np.ones(3, np.float32), TypeError, "sample_weight"),
    (np.ones(3, np.int64), TypeError, "sample_weight"),
])
def test_kernel_rejects_bad_weights(op, bad, error, match, rng):
    z = rng.standard_normal((3, 4))
    args = {"softmax_cross_entropy": (z, np.array([0, 1, 3])),
            "sigmoid_cross_entropy": (z, rng.uniform(0, 1, (3, 4))),
            "mse": (z, rng.standard_normal((3, 4)))}[op]
    with pytest.raises(error, match=f"{op}.*{match}"):
        getattr(cn.ops, op)(*args, sample_weight=bad)


# ---------------------------------------------------------------------------
# the model API


def linear(loss, outputs, dtype="float64", lr=0.1, seed=1):
    cn.seed(seed)
    model = cn.Sequential([L.Input((4,)), L.Dense(outputs)], dtype=dtype)
    model.build()  # now, while the seed holds: the weights are drawn at build
    model.compile(optimizer=O.SGD(lr), loss=loss)
    return model


def dataset(loss, n, rng):
    x = rng.standard_normal((n, 4))
    if loss == "softmax_cross_entropy":
        return x, rng.integers(0, 3, n), 3
    if loss == "binary_cross_entropy":
        return x, rng.integers(0, 2, (n, 1)).astype(np.float64), 1
    return x, rng.standard_normal((n, 2)), 2


def reference(loss, z, y, s):
    if loss == "softmax_cross_entropy":
        return ref.softmax_cross_entropy_weighted(z, y, s)
    if loss == "binary_cross_entropy":
        return ref.sigmoid_cross_entropy_weighted(z, y, s)
    return ref.mse_weighted(z, y, s)


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "binary_cross_entropy", "mse"])
def test_weighted_step_equals_the_numpy_reference(loss, rng):
    """One full-batch SGD step of a linear model: loss, evaluate and the update
    all follow J = (1/N) Σ s_i ℓ_i and its gradient through Z = X Wᵀ + b."""
    x, y, outputs = dataset(loss, 12, rng)
    s = weights(12, rng, np.float64)
    model = linear(loss, outputs)
    w, b = model.get_weights()
    want, dz = reference(loss, x @ w.T + b, y, s)
    assert_close(model.evaluate(x, y, sample_weight=s)["loss"], want, np.float64, what="evaluate")
    history = model.fit(x, y, batch_size=12, epochs=1, shuffle=False, verbose=0, sample_weight=s)
    assert_close(history.history["loss"][0], want, np.float64, what="fit loss")
    w1, b1 = model.get_weights()
    assert_close(w1, w - 0.1 * dz.T @ x, np.float64, what="kernel after the step")
    assert_close(b1, b - 0.1 * dz.sum(axis=0), np.float64, what="bias after the step")
    # train_on_batch takes the same weights and returns the loss before its update.
    z1 = x @ w1.T + b1
    assert_close(model.train_on_batch(x, y, sample_weight=s), reference(loss, z1, y, s)[0],
                 np.float64, what="train_on_batch")


def test_weight_two_equals_the_example_twice_with_n_changed(rng):
    """Keras divides by N, so weight 2 on example 0 of N = the example twice in
    N + 1 examples with the loss (and so the step) scaled by (N + 1) / N."""
    x, y, _ = dataset("softmax_cross_entropy", 6, rng)
    s = np.ones(6)
    s[0] = 2.0
    weighted = linear("softmax_cross_entropy", 3, lr=0.3)
    twice = linear("softmax_cross_entropy", 3, lr=0.3 * 7 / 6)
    lw = weighted.train_on_batch(x, y, sample_weight=s)
    ld = twice.train_on_batch(np.concatenate([x[:1], x]), np.concatenate([y[:1], y]))
    assert_close(lw * 6, ld * 7, np.float64, what="loss")
    for a, b in zip(weighted.get_weights(), twice.get_weights()):
        assert_close(a, b, np.float64, what="weights after the first step")


@pytest.mark.parametrize("loss", ["softmax_cross_entropy", "binary_cross_entropy"])
def test_class_weight_equals_the_equivalent_sample_weight(loss, rng):
    x, y, outputs = dataset(loss, 40, rng)
    class_weight = {0: 0.5, 1: 3.0} if outputs == 1 else {0: 0.5, 2: 4.0}  # class 1 of 3 absent: 1
    labels = y.reshape(-1).astype(np.int64)
    per_class = np.array([class_weight.get(k, 1.0) for k in range(3)])[labels]
    s = rng.uniform(0.5, 2, 40)
    fits = []
    for kwargs in ({"class_weight": class_weight}, {"sample_weight": per_class},
                   {"class_weight": class_weight, "sample_weight": s},
                   {"sample_weight": per_class * s}):
        model = linear(loss, outputs)
        cn.seed(7)  # the same shuffles
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, **kwargs).history
        fits.append((history["loss"], model.get_weights()))
    for (h1, w1), (h2, w2) in (fits[:2], fits[2:]):
        assert h1 == h2
        for a, b in zip(w1, w2):
            np.testing.assert_array_equal(a, b)
    assert fits[0][0] != fits[2][0]


def test_class_weight_in_train_on_batch_and_missing_binary_labels(rng):
    x, y, _ = dataset("binary_cross_entropy", 8, rng)
    y[3, 0] = np.nan  # a missing label: skipped by the loss, whatever its weight
    a, b = linear("binary_cross_entropy", 1), linear("binary_cross_entropy", 1)
    per_class = np.where(np.nan_to_num(y[:, 0], nan=0.0) == 1, 2.0, 1.0)
    assert a.train_on_batch(x, y, class_weight={1: 2.0}) == b.train_on_batch(x, y, sample_weight=per_class)
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_shuffling_moves_the_weights_with_their_examples(rng):
    """A full batch sees the same weighted examples in any order: shuffled and
    unshuffled runs differ only in summation order."""
    x, y, _ = dataset("softmax_cross_entropy", 16, rng)
    s = weights(16, rng, np.float64)
    runs = []
    for shuffle in (False, True):
        model = linear("softmax_cross_entropy", 3)
        model.fit(x, y, batch_size=16, epochs=4, verbose=0, shuffle=shuffle, sample_weight=s)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        assert_close(a, b, np.float64, what="weights")


def test_validation_split_splits_the_weights(rng):
    x, y, _ = dataset("softmax_cross_entropy", 20, rng)
    s = weights(20, rng, np.float64)
    split = linear("softmax_cross_entropy", 3)
    history = split.fit(x, y, batch_size=5, epochs=1, verbose=0, shuffle=False,
                        validation_split=0.25, sample_weight=s).history
    manual = linear("softmax_cross_entropy", 3)
    manual_history = manual.fit(x[:15], y[:15], batch_size=5, epochs=1, verbose=0, shuffle=False,
                                sample_weight=s[:15], validation_data=(x[15:], y[15:], s[15:])).history
    assert history == manual_history
    want = split.evaluate(x[15:], y[15:], sample_weight=s[15:])["loss"]
    assert history["val_loss"][0] == want
    assert want != split.evaluate(x[15:], y[15:])["loss"]


def test_validation_data_triple_and_pair(rng):
    x, y, _ = dataset("mse", 12, rng)
    s = weights(12, rng, np.float64)
    model = linear("mse", 2)
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y, s)).history
    assert history["val_loss"][0] == model.evaluate(x, y, sample_weight=s)["loss"]
    history = model.fit(x, y, epochs=1, verbose=0, validation_data=(x, y)).history
    assert history["val_loss"][0] == model.evaluate(x, y)["loss"]


def test_float32_model_casts_the_weights(rng):
    x, y, _ = dataset("softmax_cross_entropy", 10, rng)
    s = weights(10, rng, np.float64)
    a, b = linear("softmax_cross_entropy", 3, "float32"), linear("softmax_cross_entropy", 3, "float32")
    assert a.train_on_batch(x, y, sample_weight=s) == b.train_on_batch(x, y, sample_weight=list(s))
    with pytest.raises(ValueError, match="train_on_batch: sample_weight must be finite"):
        a.train_on_batch(x, y, sample_weight=np.full(10, 1e300))  # inf in float32


@pytest.mark.parametrize("call", ["fit", "train_on_batch", "evaluate"])
@pytest.mark.parametrize("bad, error, match", [
    (np.ones(5), ValueError, r"sample_weight must have shape \(6,\)"),
    (np.ones((6, 1)), ValueError, r"sample_weight must have shape \(6,\)"),
    (np.array([1, 1, np.nan, 1, 1, 1.0]), ValueError, "sample_weight must be finite and >= 0"),
    (np.array([1, 1, 1, -2, 1, 1.0]), ValueError, "sample_weight must be finite and >= 0, got -2.0 at example 3"),
    (np.array(["a"] * 6), TypeError, "sample_weight must be numeric"),
])
def test_bad_sample_weight_is_rejected_before_any_update(call, bad, error, match, rng):
    x, y, _ = dataset("softmax_cross_entropy", 6, rng)
    model = linear("softmax_cross_entropy", 3)
    before = model.get_weights()
    with pytest.raises(error, match=f"{call}: {match}"):
        getattr(model, call)(x, y, sample_weight=bad)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_bad_validation_weights_and_class_weights(rng):
    x, y, _ = dataset("softmax_cross_entropy", 6, rng)
    model = linear("softmax_cross_entropy", 3)
    with pytest.raises(ValueError, match=r"fit \(validation_data\): sample_weight must have shape"):
        model.fit(x, y, verbose=0, validation_data=(x, y, np.ones(2)))
    with pytest.raises(ValueError, match="validation_data must be a tuple"):
        model.fit(x, y, verbose=0, validation_data=(x, y, None, None))
    with pytest.raises(ValueError, match=r"fit: class_weight key 3 is not a class index in \[0, 3\)"):
        model.fit(x, y, verbose=0, class_weight={3: 1.0})
    with pytest.raises(ValueError, match="class_weight key -1"):
        model.train_on_batch(x, y, class_weight={-1: 1.0})
    with pytest.raises(ValueError, match="class_weight key '0'"):
        model.fit(x, y, verbose=0, class_weight={"0": 1.0})
    with pytest.raises(ValueError, match=r"class_weight\[1\] must be finite"):
        model.fit(x, y, verbose=0, class_weight={1: -1.0})
    with pytest.raises(TypeError, match="class_weight must be a dict"):
        model.fit(x, y, verbose=0, class_weight=[1.0, 2.0, 3.0])
    binary = linear("binary_cross_entropy", 1)
    with pytest.raises(ValueError, match=r"class index in \[0, 2\)"):
        binary.fit(x, y.reshape(-1, 1) % 2, verbose=0, class_weight={2: 1.0})
    for loss, outputs in (("mse", 2), ("binary_cross_entropy", 2)):
        with pytest.raises(ValueError, match="class_weight needs softmax_cross_entropy"):
            linear(loss, outputs).fit(x, np.zeros((6, 2)), verbose=0, class_weight={0: 1.0})
