"""The Python side of functional graphs (issue 14): the structure of inputs and
outputs (lists, dicts, single tensors), per-output compile arguments and their
Keras names, models called on tensors, the gradient methods' bookkeeping
(trainable_weights order, frozen layers, stale or misshapen pullbacks), files
that keep the structure, and the errors of each. The numbers themselves are
checked against NumPy in the graph tests; here the oracle is the model's own
fused path or a hand computation."""

import numpy as np
import pytest

import corenn as cn
from tolerances import tolerance

L = cn.layers


def two_headed(dtype="float32"):
    """Inputs a, b (4,); outputs o1 = Dense(2)(a) and o2 = Dense(3)(Add(a, enc(b))),
    enc called on both inputs."""
    a, b = L.Input((4,), name="a"), L.Input((4,), name="b")
    enc = L.Dense(4, activation="tanh", name="enc")
    o1 = L.Dense(2, name="o1")(enc(a))
    o2 = L.Dense(3, name="o2")(L.Add(name="sum")([a, enc(b)]))
    return cn.Model([a, b], [o1, o2], dtype=dtype, name="two")


def data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.standard_normal((n, 4)), rng.standard_normal((n, 4))]
    ys = [rng.integers(0, 2, n), rng.standard_normal((n, 3))]
    return xs, ys


def test_structure_of_inputs_and_outputs_follows_the_model():
    cn.seed(0)
    model = two_headed()
    xs, _ = data()
    assert model.input_names == ["a", "b"] and model.output_names == ["o1", "o2"]
    assert model.input_shape == [(None, 4), (None, 4)] and model.output_shape == [(None, 2), (None, 3)]
    by_list = model.predict(xs)
    by_dict = model.predict({"b": xs[1], "a": xs[0]})
    assert isinstance(by_list, list) and [p.shape for p in by_list] == [(12, 2), (12, 3)]
    for p, q in zip(by_list, by_dict):
        np.testing.assert_array_equal(p, q)
    # One tensor in, one out: arrays, not lists.
    single = cn.Model(model.inputs[0], model.get_layer("o1").output)
    assert isinstance(single.predict(xs[0]), np.ndarray)
    np.testing.assert_array_equal(single.predict(xs[0]), by_list[0])


def test_compile_per_output_names_and_reports_keras_keys():
    cn.seed(1)
    model = two_headed("float64")
    model.compile(optimizer=cn.optimizers.SGD(0.0), loss={"o1": "softmax_cross_entropy", "o2": "mse"},
                  loss_weights=[2.0, 0.5], metrics={"o1": ["accuracy"]})
    xs, ys = data()
    got = model.evaluate(xs, ys)
    assert list(got) == ["loss", "o1_loss", "o2_loss", "o1_accuracy"]
    # The total is the weighted sum of the per-output losses (no regularisation here).
    np.testing.assert_allclose(got["loss"], 2.0 * got["o1_loss"] + 0.5 * got["o2_loss"],
                               **tolerance("float64"))
    logits, pred = model.predict(xs)
    z = logits - logits.max(axis=1, keepdims=True)
    ce = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(12), ys[0]])
    np.testing.assert_allclose(got["o1_loss"], ce, **tolerance("float64"))
    np.testing.assert_allclose(got["o2_loss"], np.mean((pred - ys[1]) ** 2), **tolerance("float64"))
    assert got["o1_accuracy"] == np.mean(np.argmax(logits, axis=1) == ys[0])
    history = model.fit(xs, ys, epochs=2, verbose=0, validation_split=0.25)
    assert sorted(history.history) == sorted(["loss", "o1_loss", "o2_loss", "o1_accuracy", "val_loss",
                                              "val_o1_loss", "val_o2_loss", "val_o1_accuracy"])


def test_an_output_without_a_loss_takes_no_targets():
    cn.seed(2)
    model = two_headed()
    model.compile(optimizer="sgd", loss=[None, "mse"])
    xs, ys = data()
    before = model.get_layer("o1").get_weights()
    loss = model.train_on_batch(xs, [None, ys[1]])
    assert np.isfinite(loss) and "o1_loss" not in model.evaluate(xs, [None, ys[1]])
    for w, v in zip(before, model.get_layer("o1").get_weights()):
        np.testing.assert_array_equal(w, v)  # no loss reaches o1
    with pytest.raises(ValueError, match="loss is None for every output"):
        model.compile(loss=None)


@pytest.mark.parametrize("call, match", [
    (lambda m, xs, ys: m.predict(xs[:1]), r"predict: x must be a list of 2 arrays, one per input \('a', 'b'\), got 1"),
    (lambda m, xs, ys: m.predict(xs[0]), r"predict: x must be a list .* of 2 arrays"),
    (lambda m, xs, ys: m.predict({"a": xs[0], "c": xs[1]}), r"x must be keyed by the model's input names.*unknown 'c'"),
    (lambda m, xs, ys: m.fit(xs, ys[:1], verbose=0), r"fit: y must be a list of 2 arrays, one per output"),
    (lambda m, xs, ys: m.evaluate([xs[0], xs[1][:5]], ys), r"the inputs must hold the same number of examples"),
    (lambda m, xs, ys: m.compile(loss={"o3": "mse"}), r"compile: loss names output\(s\) 'o3' that the model does not have"),
    (lambda m, xs, ys: m.compile(loss=["mse"]), r"compile: loss must hold one entry per output \(2"),
    (lambda m, xs, ys: m.compile(loss="mse", loss_weights={"x": 1.0}), r"loss_weights names output\(s\) 'x'"),
    (lambda m, xs, ys: m.train_on_batch(xs, ys, class_weight={0: 2.0}), r"class_weight needs a model with one output"),
])
def test_bad_structures_raise_before_any_work(call, match):
    cn.seed(3)
    model = two_headed()
    model.compile(optimizer="sgd", loss=["softmax_cross_entropy", "mse"])
    xs, ys = data()
    before = model.get_weights()
    with pytest.raises(ValueError, match=match):
        call(model, xs, ys)
    for w, v in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w, v)


def test_a_model_called_on_tensors_reuses_its_layers():
    cn.seed(4)
    inner = two_headed()
    p, q = L.Input((4,), name="p"), L.Input((4,), name="q")
    o1, o2 = inner([p, q])
    outer = cn.Model([p, q], L.Concatenate(axis=-1, name="joined")([o1, o2]))
    assert [l.name for l in outer.layers] == ["enc", "o1", "sum", "o2", "joined"]
    xs, _ = data()
    np.testing.assert_array_equal(outer.predict(xs), np.concatenate(inner.predict(xs), axis=1))
    # Shared weights: training the outer model moves the inner one's predictions.
    outer.compile(optimizer=cn.optimizers.SGD(0.1), loss="mse")
    outer.train_on_batch(xs, np.ones((12, 5)))
    np.testing.assert_array_equal(outer.predict(xs), np.concatenate(inner.predict(xs), axis=1))
    with pytest.raises(ValueError, match=r"Model 'two': takes 2 input\(s\) \(a, b\), got 1"):
        inner(p)
    with pytest.raises(ValueError, match=r"input 'b' has shape \(None, 4\), got a tensor of shape \(None, 5\)"):
        inner([p, L.Input((5,))])


def test_another_dtype_copies_the_weights_instead_of_sharing():
    cn.seed(5)
    x = L.Input((3,), name="x")
    h = L.Dense(2, name="h")(x)
    first = cn.Model(x, h)
    second = cn.Model(x, h, dtype="float64")
    np.testing.assert_array_equal(second.get_weights()[0], first.get_weights()[0].astype(np.float64))
    second.compile(optimizer=cn.optimizers.SGD(1.0), loss="mse")
    second.train_on_batch(np.ones((2, 3)), np.zeros((2, 2)))
    assert not np.array_equal(second.get_weights()[0].astype(np.float32), first.get_weights()[0])


def test_gradients_then_apply_equal_one_fused_step():
    # SGD without momentum: w − lr·g, so compute + apply must land where
    # train_on_batch lands from the same start.
    xs, ys = data(seed=6)
    runs = []
    for fused in (True, False):
        cn.seed(6)
        model = two_headed("float64")
        model.get_layer("o1").trainable = False
        model.compile(optimizer=cn.optimizers.SGD(0.05), loss=["softmax_cross_entropy", "mse"])
        if fused:
            loss = model.train_on_batch(xs, ys)
        else:
            loss, grads = model.compute_gradients(xs, ys)
            assert [g.shape for g in grads] == [w.shape for w in model.trainable_weights]
            assert model.apply_gradients(grads)
        runs.append((loss, model.get_weights()))
    np.testing.assert_allclose(runs[0][0], runs[1][0], **tolerance("float64"))
    for a, b in zip(runs[0][1], runs[1][1]):
        np.testing.assert_allclose(a, b, **tolerance("float64"))


def test_trainable_weights_are_copies_of_trainable_layers_in_get_weights_order():
    cn.seed(7)
    model = two_headed()
    model.get_layer("enc").trainable = False
    got = model.trainable_weights
    want = [w for l in model.layers if l.trainable for w in l.get_weights()]
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    got[0][...] = 7  # a copy: the model is unchanged
    assert not np.any(model.get_layer("o1").get_weights()[0] == 7)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match=r"apply_gradients: grads must hold 4 arrays"):
        model.apply_gradients(got[:3])
    with pytest.raises(ValueError, match=r"apply_gradients: grads\[1\] must have shape \(2,\)"):
        model.apply_gradients([got[0], np.zeros(3), *got[2:]])


def test_pullback_checks_shapes_and_staleness():
    cn.seed(8)
    model = two_headed("float64")
    xs, _ = data()
    ys, pullback = model.vjp(xs)
    for y, p in zip(ys, model.predict(xs)):
        np.testing.assert_array_equal(y, p)
    dxs = pullback([np.zeros((12, 2)), np.zeros((12, 3))])
    assert [d.shape for d in dxs] == [(12, 4), (12, 4)] and not any(np.any(d) for d in dxs)
    # One output's dy alone, by hand: d(sum of o1)/da = W_enc^T·(tanh' ⊙ W_o1^T·1).
    (W, c), (V, _) = model.get_layer("enc").get_weights(), model.get_layer("o1").get_weights()
    h = np.tanh(xs[0] @ W.T + c)
    want = ((np.ones((12, 2)) @ V) * (1 - h ** 2)) @ W
    np.testing.assert_allclose(pullback({"o1": np.ones((12, 2)), "o2": np.zeros((12, 3))})[0], want,
                               **tolerance("float64"))
    with pytest.raises(ValueError, match=r"pullback: dy\['o2'\] must have the shape of the output y, \(12, 3\)"):
        pullback([np.ones((12, 2)), np.ones((12, 2))])
    model.vjp(xs)
    with pytest.raises(ValueError, match="ran another vjp"):
        pullback([np.ones((12, 2)), np.ones((12, 3))])


def test_custom_loss_object_and_a_wrong_gradient():
    cn.seed(9)
    x = L.Input((6,), name="x")
    emb = cn.Model(x, L.Reshape((3, 2), name="triplets")(L.Dense(6, name="proj")(x)), dtype="float64")
    triplet = cn.losses.TripletLoss(margin=0.2)
    emb.compile(optimizer=cn.optimizers.SGD(0.0), loss=triplet)
    xs = np.random.default_rng(9).standard_normal((5, 6))
    np.testing.assert_allclose(emb.evaluate(xs, np.zeros(5))["loss"], triplet(None, emb.predict(xs)),
                               **tolerance("float64"))
    emb.compile(optimizer=cn.optimizers.SGD(0.1), loss=lambda t, p: (0.0, np.zeros((len(p), 2))))
    before = emb.get_weights()
    with pytest.raises(ValueError, match=r"custom loss of output 0 \('triplets'\): the gradient must have"):
        emb.train_on_batch(xs, np.zeros(5))
    for w, v in zip(before, emb.get_weights()):
        np.testing.assert_array_equal(w, v)
    with pytest.raises(TypeError, match="compile: loss must be a name, None, a callable"):
        emb.compile(loss=3)


def test_files_keep_the_structure_and_the_per_output_losses(tmp_path):
    cn.seed(10)
    model = two_headed()
    model.compile(optimizer=cn.optimizers.Adam(1e-2), loss=["softmax_cross_entropy", "mse"],
                  loss_weights=[1.0, 0.25], metrics={"o1": ["accuracy"]})
    xs, ys = data()
    model.fit(xs, ys, epochs=1, verbose=0)
    model.save(tmp_path / "two.corenn")
    loaded = cn.load_model(tmp_path / "two.corenn")
    assert type(loaded) is cn.Model and loaded.output_names == ["o1", "o2"]
    assert loaded._loss == ["softmax_cross_entropy", "mse"] and loaded._loss_weights == [1.0, 0.25]
    assert loaded.evaluate(xs, ys) == model.evaluate(xs, ys)
    for p, q in zip(loaded.predict(xs), model.predict(xs)):
        np.testing.assert_array_equal(p, q)
    # One output given as a list stays a list.
    listed = cn.Model(model.inputs, [model.get_layer("o2").output])
    listed.save(tmp_path / "listed.corenn")
    again = cn.load_model(tmp_path / "listed.corenn")
    assert isinstance(again.predict(xs), list) and again.layers[0].name == "enc"


def test_a_layer_called_twice_in_a_sequential_stack_is_one_layer():
    cn.seed(11)
    shared = L.Dense(4, activation="tanh", name="shared")
    x = L.Input((4,), name="x")
    graph = cn.Model(x, shared(shared(x)))
    assert [l.name for l in graph.layers] == ["shared"] and graph.count_params() == 20
    W, b = shared.get_weights()
    xs = np.random.default_rng(11).standard_normal((3, 4)).astype(np.float32)
    want = np.tanh(np.tanh(xs @ W.T + b) @ W.T + b)
    np.testing.assert_allclose(graph.predict(xs), want, **tolerance("float32"))
    lines = []
    graph.summary(print_fn=lines.append)
    assert "x | shared" in lines[0]  # both calls listed
