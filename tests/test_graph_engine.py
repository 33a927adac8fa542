"""Issue 14's general graphs (DESIGN.md "General functional graphs") against
independent oracles: the hand-written NumPy forward/backward of
tests/reference/graph.py (itself checked against finite differences and torch
in test_graph_reference.py) and finite differences of the engine's own forward.

Covered: a layer shared by 2 and 3 inputs (its gradient is the sum of its
calls); a 2-input 2-output model with two losses and loss_weights (loss, every
gradient, input gradients); model.vjp on conv + batch norm + pool + dense;
compute_gradients / apply_gradients / trainable_weights; custom losses;
sub-models sharing weights with their base; Keras's evaluate/History names;
bad inputs leave the weights untouched; predict's structure; model files."""

import numpy as np
import pytest

import corenn as cn
from gradcheck import numerical_gradient, projection, relative_difference
from reference import graph as ref
from reference import pool as pool_ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

L = cn.layers
DTYPES = ["float32", "float64"]


# ------------------------------------------------------------------ helpers
def weights_of(model):
    """{layer name: [float64 copies in get_weights order]} of the layers with weights."""
    return {l.name: [w.astype(np.float64) for w in l.get_weights()]
            for l in model.layers if l.get_weights()}


def in_trainable_order(model, per_layer):
    """A {layer name: [arrays]} of the reference flattened in model.layers order
    (the order of get_weights and so of trainable_weights)."""
    return [a for l in model.layers for a in per_layer.get(l.name, [])]


def assert_gradients(model, got, want, dtype, op=None):
    """compute_gradients' list against the reference's {layer: [grads]}; and
    trainable_weights holds, in the same order, the weights those grads are for."""
    params = weights_of(model)
    want_list = in_trainable_order(model, want)
    weights_list = in_trainable_order(model, {k: params[k][:len(g)] for k, g in want.items()})
    trainable = model.trainable_weights
    assert len(got) == len(want_list) == len(trainable)
    for g, w, t, v in zip(got, want_list, trainable, weights_list):
        assert g.dtype == np.dtype(dtype) and g.shape == w.shape == t.shape
        np.testing.assert_array_equal(t, v)
        assert_close(g, w, dtype, op)


def assert_same_weights(before, after):
    assert len(before) == len(after)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


def as64(arrays):
    return [None if a is None else np.asarray(a, np.float64) for a in arrays]


# ---------------------------------------------------------- (a) shared layers
def shared_tower_model(encoder, k, dtype):
    """k inputs through ONE encoder (Dense, or Conv2D + one Flatten), concatenated,
    one head: reference.graph.shared_tower_forward."""
    if encoder == "dense":
        xs = [L.Input((4,), name=f"x{i}") for i in range(k)]
        enc = L.Dense(6, activation="relu", name="enc")
        es = [enc(x) for x in xs]
    else:
        xs = [L.Input((2, 5, 5), name=f"x{i}") for i in range(k)]
        enc = L.Conv2D(3, 3, activation="relu", name="enc")
        flatten = L.Flatten(name="flat")
        es = [flatten(enc(x)) for x in xs]
    out = L.Dense(2, name="head")(L.Concatenate(axis=1, name="cat")(es))
    return cn.Model(inputs=xs, outputs=out, dtype=dtype, name=f"tower{k}")


def check_shared_tower(model, encoder, k, dtype, seed):
    """predict, loss and every gradient of a shared_tower_model-like model
    against reference.graph.shared_tower_forward/backward."""
    model.compile(optimizer=cn.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(seed)
    shape = (5, 4) if encoder == "dense" else (3, 2, 5, 5)
    xs = [rng.standard_normal(shape).astype(dtype) for _ in range(k)]
    y = rng.standard_normal((shape[0], 2)).astype(dtype)
    out, cache = ref.shared_tower_forward(weights_of(model), as64(xs), encoder)
    want_loss, dout = ref.output_loss("mse", out, y.astype(np.float64))
    want, _ = ref.shared_tower_backward(cache, dout)

    assert_close(model.predict(xs), out, dtype, what="predict")
    before = model.get_weights()
    loss, grads = model.compute_gradients(xs, y)
    assert_close(np.float64(loss), want_loss, dtype, what="loss")
    assert_gradients(model, grads, want, dtype)
    assert_same_weights(before, model.get_weights())  # gradients, with no update
    return grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("encoder", ["dense", "conv"])
@pytest.mark.parametrize("k", [2, 3])
def test_shared_layer_gradient_is_the_sum_of_its_calls(dtype, encoder, k):
    cn.seed(k)
    model = shared_tower_model(encoder, k, dtype)
    named = [l.name for l in model.layers]
    assert named.count("enc") == 1 and named.count("head") == 1
    enc_size = sum(w.size for w in model.get_layer("enc").get_weights())
    head_size = sum(w.size for w in model.get_layer("head").get_weights())
    assert model.count_params() == enc_size + head_size  # shared weights counted once
    check_shared_tower(model, encoder, k, dtype, seed=10 + k)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_model_called_on_three_inputs_shares_its_layers(dtype):
    # A built model called like a layer (a shared tower): its layers are called
    # again, so this is shared_tower_model("dense", 3) with the encoder in a tower.
    cn.seed(9)
    one = L.Input((4,), name="one")
    tower = cn.Model(one, L.Dense(6, activation="relu", name="enc")(one), dtype=dtype)
    xs = [L.Input((4,), name=f"x{i}") for i in range(3)]
    out = L.Dense(2, name="head")(L.Concatenate(axis=1, name="cat")([tower(x) for x in xs]))
    model = cn.Model(inputs=xs, outputs=out, dtype=dtype)
    grads = check_shared_tower(model, "dense", 3, dtype, seed=25)
    start = tower.get_layer("enc").get_weights()
    model.apply_gradients(grads)  # training the model trains the tower
    assert np.abs(tower.get_layer("enc").get_weights()[0] - start[0]).max() > 0
    assert_same_weights(model.get_layer("enc").get_weights(), tower.get_layer("enc").get_weights())
    x = np.random.default_rng(26).standard_normal((4, 4)).astype(dtype)
    assert_close(tower.predict(x), ref.dense_node(x.astype(np.float64), weights_of(tower)["enc"],
                                                  "relu")[0], dtype)


def test_every_call_of_a_shared_layer_must_see_the_same_shape():
    enc = L.Dense(3, name="enc")
    enc(L.Input((4,), name="a"))
    with pytest.raises(ValueError, match="enc"):
        enc(L.Input((5,), name="b"))


def test_a_merge_of_mismatched_shapes_fails_at_the_call():
    a, b = L.Input((4,), name="a"), L.Input((3,), name="b")
    with pytest.raises(ValueError, match="sum"):
        L.Add(name="sum")([a, b])


# ------------------------------------------------ (b) two inputs, two outputs
def two_in_two_out_model(dtype):
    """reference.graph.two_in_two_out_forward as a cn.Model."""
    a, b = L.Input((4,), name="a"), L.Input((3,), name="b")
    ha = L.Dense(5, activation="relu", name="da")(a)
    hb = L.Dense(5, activation="sigmoid", name="db")(b)
    s = L.Add(name="sum")([ha, hb])
    c = L.Concatenate(axis=1, name="cat")([s, b])
    same = L.Dense(2, name="same")(c)
    reg = L.Dense(3, name="reg")(hb)
    return cn.Model(inputs=[a, b], outputs=[same, reg], dtype=dtype, name="two_by_two")


def two_in_two_out_data(dtype, n=6, seed=20):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n, 4)).astype(dtype), rng.standard_normal((n, 3)).astype(dtype)]
    ys = [(rng.random((n, 2)) < 0.5).astype(dtype), rng.standard_normal((n, 3)).astype(dtype)]
    return xs, ys


def mse_by_hand(y_true, y_pred):
    """A custom loss equal to the built-in "mse": J = mean((ŷ − y)²), ∂J/∂ŷ = 2(ŷ − y)/n."""
    d = np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)
    return float(np.mean(d ** 2)), (2.0 * d / d.size).astype(y_pred.dtype)


COMPILE_FORMS = {
    "list": dict(loss=["binary_cross_entropy", "mse"], loss_weights=[0.7, 0.2]),
    "dict": dict(loss={"reg": "mse", "same": "binary_cross_entropy"},
                 loss_weights={"reg": 0.2, "same": 0.7}),
    "custom": dict(loss=["binary_cross_entropy", mse_by_hand], loss_weights=[0.7, 0.2]),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", sorted(COMPILE_FORMS))
def test_two_losses_with_loss_weights_equal_the_reference(dtype, form):
    cn.seed(3)
    model = two_in_two_out_model(dtype)
    model.compile(optimizer=cn.optimizers.SGD(0.1), **COMPILE_FORMS[form])
    xs, ys = two_in_two_out_data(dtype)
    outs, cache = ref.two_in_two_out_forward(weights_of(model), as64(xs))
    want_loss, per_output, douts = ref.total_loss(["binary_cross_entropy", "mse"], [0.7, 0.2],
                                                  outs, as64(ys))
    want, _ = ref.two_in_two_out_backward(cache, douts)

    loss, grads = model.compute_gradients(xs, ys)
    assert_close(np.float64(loss), want_loss, dtype, op="sigmoid_cross_entropy", what="loss")
    assert_gradients(model, grads, want, dtype, op="sigmoid_cross_entropy")

    result = model.evaluate(xs, ys)
    assert_close(np.float64(result["same_loss"]), per_output[0], dtype, op="sigmoid_cross_entropy")
    assert_close(np.float64(result["reg_loss"]), per_output[1], dtype)
    assert_close(np.float64(result["loss"]), want_loss, dtype, op="sigmoid_cross_entropy")


@pytest.mark.parametrize("dtype", DTYPES)
def test_an_output_without_a_loss_gets_no_gradient(dtype):
    cn.seed(4)
    model = two_in_two_out_model(dtype)
    model.compile(optimizer=cn.optimizers.SGD(0.1),
                  loss={"same": "binary_cross_entropy", "reg": None})
    xs, ys = two_in_two_out_data(dtype)
    outs, cache = ref.two_in_two_out_forward(weights_of(model), as64(xs))
    want_loss, _, douts = ref.total_loss(["binary_cross_entropy", None], [1.0, 1.0], outs,
                                         [ys[0].astype(np.float64), None])
    want, _ = ref.two_in_two_out_backward(cache, douts)
    loss, grads = model.compute_gradients(xs, [ys[0], None])
    assert_close(np.float64(loss), want_loss, dtype, op="sigmoid_cross_entropy")
    assert_gradients(model, grads, want, dtype, op="sigmoid_cross_entropy")
    assert not any(np.any(g) for g in grads[-2:])  # reg's kernel and bias: no loss reaches them


@pytest.mark.parametrize("dtype", DTYPES)
def test_vjp_of_two_inputs_and_two_outputs_equals_the_reference(dtype):
    cn.seed(5)
    model = two_in_two_out_model(dtype)
    xs, _ = two_in_two_out_data(dtype)
    outs, cache = ref.two_in_two_out_forward(weights_of(model), as64(xs))
    dys = [projection(o.shape, seed=i) for i, o in enumerate(outs)]
    _, want = ref.two_in_two_out_backward(cache, dys)
    ys, pullback = model.vjp(xs)
    assert isinstance(ys, list) and len(ys) == 2
    for got, o in zip(ys, outs):
        assert_close(got, o, dtype, what="vjp outputs")
    dxs = pullback([d.astype(dtype) for d in dys])
    assert isinstance(dxs, list) and len(dxs) == 2
    for got, w, x in zip(dxs, want, xs):
        assert got.shape == x.shape
        assert_close(got, w, dtype, what="input gradient")


@pytest.mark.parametrize("dtype", DTYPES)
def test_apply_gradients_is_one_optimizer_step_and_train_step_is_both(dtype):
    xs, ys = two_in_two_out_data(dtype)
    models = []
    for _ in range(2):
        cn.seed(6)
        m = two_in_two_out_model(dtype)
        m.compile(optimizer=cn.optimizers.SGD(0.1), loss=["binary_cross_entropy", "mse"],
                  loss_weights=[0.7, 0.2])
        models.append(m)
    by_hand, fused = models
    before = by_hand.trainable_weights
    loss, grads = by_hand.compute_gradients(xs, ys)
    by_hand.apply_gradients(grads)
    for w, g, new in zip(before, grads, by_hand.trainable_weights):
        assert_close(new, w.astype(np.float64) - 0.1 * g.astype(np.float64), dtype)
    fused_loss = fused.train_on_batch(xs, ys)
    assert_close(np.float64(fused_loss), loss, dtype)
    for a, b in zip(by_hand.get_weights(), fused.get_weights()):
        assert_close(a, b, dtype)


# ---------------------------------------- (c) conv + batch norm + pool + dense
def conv_bn_pool_dense_model(dtype, seed=7):
    """reference.graph.conv_bn_pool_dense_forward as a cn.Model, with moving
    statistics far from (0, 1) so that inference mode is not the identity."""
    cn.seed(seed)
    x = L.Input((2, 6, 6), name="image")
    z = L.Conv2D(3, 3, activation="relu", name="conv")(x)
    y = L.BatchNormalization(name="bn")(z)
    p = L.MaxPooling2D(2, name="pool")(y)
    out = L.Dense(4, name="out")(L.Flatten(name="flat")(p))
    model = cn.Model(inputs=x, outputs=out, dtype=dtype)
    rng = np.random.default_rng(seed)
    model.get_layer("bn").set_weights([(1 + 0.2 * rng.standard_normal(3)).astype(dtype),
                                       (0.1 * rng.standard_normal(3)).astype(dtype),
                                       (0.3 * rng.standard_normal(3)).astype(dtype),
                                       (0.5 + rng.random(3)).astype(dtype)])
    return model


@pytest.mark.parametrize("training", [False, True])
def test_vjp_input_gradient_equals_finite_differences(training):
    model = conv_bn_pool_dense_model("float64")
    x = np.random.default_rng(8).standard_normal((3, 2, 6, 6))
    dy = projection((3, 4), seed=9)
    before = model.get_weights()
    y, pullback = model.vjp(x, training=training)
    dx = pullback(dy)
    assert dx.shape == x.shape and dx.dtype == np.float64
    assert_same_weights(before, model.get_weights())  # batch norm's moving statistics too

    def projected():  # <dy, f(x)> through the engine's own forward in the same mode
        return float(np.sum(dy * (model.vjp(x, training=True)[0] if training
                                  else model.predict(x))))

    assert relative_difference(dx, numerical_gradient(projected, x)) < GRADCHECK_THRESHOLD
    out, cache = ref.conv_bn_pool_dense_forward(weights_of(model), x, training)
    assert_close(y, out, np.float64, what="vjp output")
    assert_close(dx, ref.conv_bn_pool_dense_backward(cache, dy)[1], np.float64, what="dx")


@pytest.mark.parametrize("training", [False, True])
def test_vjp_in_float32_equals_the_reference(training):
    model = conv_bn_pool_dense_model("float32")
    x = np.random.default_rng(8).standard_normal((3, 2, 6, 6)).astype(np.float32)
    dy = projection((3, 4), seed=9)
    out, cache = ref.conv_bn_pool_dense_forward(weights_of(model), x.astype(np.float64), training)
    y, pullback = model.vjp(x, training=training)
    assert_close(y, out, np.float32)
    assert_close(pullback(dy.astype(np.float32)), ref.conv_bn_pool_dense_backward(cache, dy)[1],
                 np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
def test_trainable_weights_and_gradients_leave_out_batch_norm_statistics(dtype):
    model = conv_bn_pool_dense_model(dtype)
    model.compile(optimizer=cn.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 2, 6, 6)).astype(dtype)
    y = rng.standard_normal((4, 4)).astype(dtype)
    out, cache = ref.conv_bn_pool_dense_forward(weights_of(model), x.astype(np.float64), True)
    want_loss, dout = ref.output_loss("mse", out, y.astype(np.float64))
    want, _ = ref.conv_bn_pool_dense_backward(cache, dout)
    loss, grads = model.compute_gradients(x, y)  # training mode: the batch's statistics
    assert_close(np.float64(loss), want_loss, dtype)
    assert [t.shape for t in model.trainable_weights] == [(3, 2, 3, 3), (3,), (3,), (3,),
                                                          (4, 12), (4,)]
    assert_gradients(model, grads, want, dtype)


# ------------------------------------------------------------- custom losses
@pytest.mark.parametrize("dtype", DTYPES)
def test_custom_loss_trains_to_the_same_weights_as_the_built_in_loss(dtype):
    rng = np.random.default_rng(12)
    x = rng.standard_normal((16, 5)).astype(dtype)
    y = rng.standard_normal((16, 3)).astype(dtype)
    calls = []

    def counted_mse(y_true, y_pred):
        calls.append((np.array(y_true), np.array(y_pred)))
        return mse_by_hand(y_true, y_pred)

    trained = []
    for loss in ("mse", counted_mse):
        cn.seed(13)
        i = L.Input((5,), name="x")
        out = L.Dense(3, name="out")(L.Dense(8, activation="tanh", name="hidden")(i))
        model = cn.Model(i, out, dtype=dtype)
        model.compile(optimizer=cn.optimizers.SGD(0.05, momentum=0.9), loss=loss)
        start = model.get_weights()
        losses = []
        for step in range(5):
            batch = slice(4 * (step % 4), 4 * (step % 4) + 4)
            losses.append(model.train_on_batch(x[batch], y[batch]))
        trained.append((start, model.get_weights(), losses))

    (start_builtin, w_builtin, l_builtin), (start_custom, w_custom, l_custom) = trained
    assert_same_weights(start_builtin, start_custom)  # the same seed, the same start
    assert len(calls) == 5  # once per step
    np.testing.assert_array_equal(calls[0][0], y[:4])
    assert calls[0][1].shape == (4, 3) and calls[0][1].dtype == np.dtype(dtype)
    assert_close(np.array(l_custom), np.array(l_builtin), dtype, what="losses")
    for a, b in zip(w_custom, w_builtin):
        assert_close(a, b, dtype, what="weights after 5 steps")
    assert max(np.abs(a - b).max() for a, b in zip(w_custom, start_custom)) > 1e-3


def two_output_regressor(dtype, loss):
    cn.seed(14)
    i = L.Input((5,), name="x")
    h = L.Dense(4, activation="tanh", name="hidden")(i)
    model = cn.Model(i, [L.Dense(3, name="first")(h), L.Dense(2, name="second")(h)], dtype=dtype)
    model.compile(optimizer=cn.optimizers.SGD(0.1), loss=loss)
    rng = np.random.default_rng(15)
    x = rng.standard_normal((6, 5)).astype(dtype)
    ys = [rng.standard_normal((6, 3)).astype(dtype), rng.standard_normal((6, 2)).astype(dtype)]
    return model, x, ys


@pytest.mark.parametrize("bad", ["shape", "exception", "nan"])
def test_a_failing_custom_loss_leaves_the_weights_untouched(bad):
    def broken(y_true, y_pred):
        loss, grad = mse_by_hand(y_true, y_pred)
        if bad == "shape":
            return loss, grad[:, :1]
        if bad == "exception":
            raise RuntimeError("broken loss")
        return float("nan"), grad

    model, x, ys = two_output_regressor("float64", ["mse", broken])
    before = model.get_weights()
    if bad == "shape":
        with pytest.raises(ValueError, match="loss"):
            model.train_on_batch(x, ys)
        with pytest.raises(ValueError, match="loss"):
            model.compute_gradients(x, ys)
    elif bad == "exception":
        with pytest.raises(RuntimeError, match="broken loss"):
            model.train_on_batch(x, ys)
    else:
        assert np.isnan(model.train_on_batch(x, ys))
    assert_same_weights(before, model.get_weights())
    # and the model still trains once the loss is fixed
    model.compile(optimizer=cn.optimizers.SGD(0.1), loss=["mse", mse_by_hand])
    model.train_on_batch(x, ys)
    assert any(np.any(a != b) for a, b in zip(before, model.get_weights()))


# ------------------------------------------------- sub-models share weights
def small_convnet():
    cn.seed(16)
    x = L.Input((1, 8, 8), name="image")
    h = L.Conv2D(3, 3, activation="relu", name="c1")(x)
    h = L.MaxPooling2D(2, name="p1")(h)
    h = L.Conv2D(4, 2, activation="tanh", name="c2")(h)
    out = L.Dense(3, name="logits")(L.Flatten(name="flat")(h))
    return cn.Model(x, out, dtype="float64", name="base")


def features_by_hand(weights, x):
    """c1 and c2's outputs of small_convnet, from the reference ops."""
    c1, _ = ref.conv_node(x, weights["c1"], "relu")
    p1, _ = pool_ref.max_pool2d_forward(c1, 2)
    c2, _ = ref.conv_node(p1, weights["c2"], "tanh")
    return c1, c2


def test_a_feature_extractor_shares_its_base_weights():
    base = small_convnet()
    base.compile(optimizer=cn.optimizers.SGD(0.5), loss="softmax_cross_entropy")
    features = cn.Model(base.input, [base.get_layer("c1").output, base.get_layer("c2").output],
                        dtype="float64")
    rng = np.random.default_rng(17)
    x = rng.standard_normal((5, 1, 8, 8))
    labels = rng.integers(0, 3, 5)
    tol = np.float64

    first = features.predict(x)
    assert isinstance(first, list) and len(first) == 2
    for got, want in zip(first, features_by_hand(weights_of(base), x)):
        assert_close(got, want, tol)

    # Training the base changes what the extractor computes, to the base's new weights.
    for _ in range(3):
        base.train_on_batch(x, labels)
    after = features.predict(x)
    for got, old, want in zip(after, first, features_by_hand(weights_of(base), x)):
        assert np.abs(got - old).max() > 1e-6
        assert_close(got, want, tol)

    # Weights set on one are read on the other, in both directions.
    new_c1 = [w + 0.25 for w in base.get_layer("c1").get_weights()]
    features.get_layer("c1").set_weights(new_c1)
    assert_same_weights(new_c1, base.get_layer("c1").get_weights())
    new_c2 = [w * 0.5 for w in features.get_layer("c2").get_weights()]
    base.get_layer("c2").set_weights(new_c2)
    assert_same_weights(new_c2, features.get_layer("c2").get_weights())
    for got, want in zip(features.predict(x), features_by_hand(weights_of(base), x)):
        assert_close(got, want, tol)

    # Training the extractor trains the base.
    features.compile(optimizer=cn.optimizers.SGD(0.1), loss=["mse", "mse"])
    targets = [np.zeros_like(f) for f in features.predict(x)]
    features.train_on_batch(x, targets)
    assert np.abs(base.get_layer("c1").get_weights()[0] - new_c1[0]).max() > 1e-6
    assert_same_weights(features.get_layer("c1").get_weights(), base.get_layer("c1").get_weights())
    logits = ref.dense_node(features_by_hand(weights_of(base), x)[1].reshape(5, -1),
                            weights_of(base)["logits"])[0]
    assert_close(base.predict(x), logits, tol)


# ------------------------------------------------- names, structure, errors
def two_heads(dtype="float32"):
    cn.seed(18)
    i = L.Input((6,), name="x")
    h = L.Dense(8, activation="relu", name="trunk")(i)
    model = cn.Model(i, [L.Dense(4, name="digit")(h), L.Dense(1, name="big")(h)], dtype=dtype)
    model.compile(optimizer=cn.optimizers.SGD(0.1),
                  loss={"digit": "softmax_cross_entropy", "big": "binary_cross_entropy"},
                  loss_weights={"digit": 1.0, "big": 0.5},
                  metrics={"digit": ["accuracy"], "big": ["binary_accuracy"]})
    rng = np.random.default_rng(19)
    x = rng.standard_normal((12, 6)).astype(dtype)
    ys = [rng.integers(0, 4, 12), (rng.random((12, 1)) < 0.5).astype(dtype)]
    return model, x, ys


NAMES = {"loss", "digit_loss", "big_loss", "digit_accuracy", "big_binary_accuracy"}


def test_evaluate_reports_keras_names_and_values():
    model, x, ys = two_heads("float64")
    result = model.evaluate(x, ys)
    assert set(result) == NAMES
    digit, big = model.predict(x)
    digit_loss, _ = ref.output_loss("softmax_cross_entropy", digit, ys[0])
    big_loss, _ = ref.output_loss("binary_cross_entropy", big, ys[1])
    assert_close(np.float64(result["digit_loss"]), digit_loss, np.float64)
    assert_close(np.float64(result["big_loss"]), big_loss, np.float64)
    assert_close(np.float64(result["loss"]), digit_loss + 0.5 * big_loss, np.float64)
    assert result["digit_accuracy"] == np.mean(np.argmax(digit, axis=1) == ys[0])
    assert result["big_binary_accuracy"] == np.mean((big > 0) == (ys[1] > 0.5))


def test_history_reports_keras_names():
    model, x, ys = two_heads()
    before = model.evaluate(x, ys)
    history = model.fit(x, ys, batch_size=12, epochs=2, shuffle=False, verbose=0,
                        validation_data=(x, ys))
    assert set(history.history) == NAMES | {f"val_{n}" for n in NAMES}
    assert all(len(v) == 2 for v in history.history.values())
    # One batch per epoch: the first epoch's losses are those of the starting weights.
    for name in ("loss", "digit_loss", "big_loss"):
        assert_close(np.float64(history.history[name][0]), before[name], np.float32)
    assert history.history["val_loss"][1] < before["loss"]


def test_predict_returns_the_structure_of_the_outputs():
    model, x, _ = two_heads()
    out = model.predict(x)
    assert isinstance(out, list) and [o.shape for o in out] == [(12, 4), (12, 1)]
    one = cn.Model(model.input, model.get_layer("digit").output)
    single = one.predict(x)
    assert isinstance(single, np.ndarray) and single.shape == (12, 4)
    np.testing.assert_array_equal(single, out[0])


def test_a_list_of_the_wrong_length_is_refused():
    cn.seed(21)
    model = two_in_two_out_model("float32")
    model.compile(optimizer=cn.optimizers.SGD(0.1), loss=["binary_cross_entropy", "mse"])
    xs, ys = two_in_two_out_data("float32")
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"\bx\b"):
        model.predict(xs[:1])
    with pytest.raises(ValueError, match=r"\bx\b"):
        model.fit(xs + [xs[0]], ys, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"\bx\b"):
        model.train_on_batch(xs[0], ys)
    with pytest.raises(ValueError, match=r"\by\b"):
        model.train_on_batch(xs, ys[:1])
    with pytest.raises(ValueError, match=r"\bx\b"):
        model.compute_gradients(xs[:1], ys)
    with pytest.raises(ValueError, match=r"\bx\b"):
        model.vjp(xs[:1])
    assert_same_weights(before, model.get_weights())


def test_a_loss_for_an_unknown_output_is_refused():
    model = two_in_two_out_model("float32")
    with pytest.raises(ValueError, match="loss") as info:
        model.compile(loss={"same": "binary_cross_entropy", "nope": "mse"})
    assert "nope" in str(info.value)
    with pytest.raises(ValueError, match="loss_weights"):
        model.compile(loss=["binary_cross_entropy", "mse"], loss_weights={"nope": 1.0})
    with pytest.raises(ValueError, match="loss"):
        model.compile(loss=["binary_cross_entropy", "mse", "mse"])


def test_pullback_refuses_a_wrong_shape():
    cn.seed(22)
    model = two_in_two_out_model("float64")
    xs, _ = two_in_two_out_data("float64")
    before = model.get_weights()
    (same, reg), pullback = model.vjp(xs)
    with pytest.raises(ValueError, match="dy"):
        pullback([np.ones((6, 1)), np.ones_like(reg)])
    with pytest.raises(ValueError, match="dy"):
        pullback([np.ones_like(same)])
    with pytest.raises(ValueError, match="dy"):
        pullback([np.ones_like(same), np.ones((5, 3))])
    # still usable with the right shapes
    dxs = pullback([np.ones_like(same), np.ones_like(reg)])
    assert [d.shape for d in dxs] == [(6, 4), (6, 3)]
    assert_same_weights(before, model.get_weights())


# ------------------------------------------------------------- model files
def siamese_pair_model(dtype):
    """DESIGN.md's example: one encoder on two inputs, two outputs."""
    cn.seed(23)
    a, b = L.Input((4,), name="left"), L.Input((4,), name="right")
    enc = L.Dense(8, activation="relu", name="enc")
    ea, eb = enc(a), enc(b)
    same = L.Dense(1, name="same")(L.Concatenate(axis=1, name="cat")([ea, eb]))
    model = cn.Model(inputs=[a, b], outputs=[same, ea], dtype=dtype, name="pair")
    model.compile(optimizer=cn.optimizers.Adam(1e-2), loss=["binary_cross_entropy", "mse"],
                  loss_weights=[1.0, 0.1], metrics={"same": ["binary_accuracy"]})
    return model


def pair_by_hand(weights, xa, xb):
    ea, _ = ref.dense_node(xa, weights["enc"], "relu")
    eb, _ = ref.dense_node(xb, weights["enc"], "relu")
    return [ref.dense_node(np.concatenate([ea, eb], axis=1), weights["same"])[0], ea]


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_shared_layer_model_round_trips_through_a_file(tmp_path, dtype):
    model = siamese_pair_model(dtype)
    rng = np.random.default_rng(24)
    xa, xb = (rng.standard_normal((10, 4)).astype(dtype) for _ in range(2))
    ys = [(rng.random((10, 1)) < 0.5).astype(dtype), rng.standard_normal((10, 8)).astype(dtype)]
    model.fit([xa, xb], ys, batch_size=5, epochs=2, verbose=0)
    model.save(tmp_path / "pair.corenn")
    loaded = cn.load_model(tmp_path / "pair.corenn")
    want = model.predict([xa, xb])
    got = loaded.predict([xa, xb])
    assert isinstance(got, list) and len(got) == 2
    for g, w in zip(got, want):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(g, w)
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert loaded.count_params() == model.count_params()
    assert set(loaded.evaluate([xa, xb], ys)) == set(model.evaluate([xa, xb], ys))
    # Still one encoder after loading: new weights reach both of its calls.
    enc = loaded.get_layer("enc")
    enc.set_weights([w * -1.5 for w in enc.get_weights()])
    for g, w in zip(loaded.predict([xa, xb]),
                    pair_by_hand(weights_of(loaded), xa.astype(np.float64), xb.astype(np.float64))):
        assert_close(g, w, dtype)
