"""Transfer learning (course 3/4): a new head on a trained network, frozen base
layers that stay bit-identical through fit, then fine-tuning at a lower rate."""

import numpy as np
from sklearn.datasets import load_digits

import corenn as cn

L = cn.layers


def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def test_new_head_on_a_trained_base_frozen_then_fine_tuned():
    X, y = digits()
    cn.seed(0)
    base = cn.Sequential([L.Input((64,), name="pixels"), L.Dense(32, activation="relu", name="h1"),
                          L.Dense(16, activation="relu", name="h2"), L.Dense(10, name="digits10")])
    base.compile(optimizer=cn.optimizers.Adam(0.01), loss="softmax_cross_entropy")
    base.fit(X, y, batch_size=64, epochs=5, verbose=0)
    trained = {n: [w.copy() for w in base.get_layer(n).get_weights()] for n in ("h1", "h2")}

    # A new task: is the digit even? Replace the 10-way head, keep h1 and h2.
    for name in ("h1", "h2"):
        base.get_layer(name).trainable = False
    head = L.Dense(2, name="parity")(base.get_layer("h2").output)
    model = cn.Model(inputs=base.input, outputs=head)
    assert [l.name for l in model.layers] == ["h1", "h2", "parity"]
    for name in ("h1", "h2"):  # the layers brought their trained weights along
        for got, want in zip(model.get_layer(name).get_weights(), trained[name]):
            np.testing.assert_array_equal(got, want)
    lines = []
    model.summary(print_fn=lines.append)
    assert "Trainable params: 34" in lines[0]  # only the head: 16·2 + 2

    parity = (y % 2).astype(np.int64)
    model.compile(optimizer=cn.optimizers.Adam(0.01), loss="softmax_cross_entropy",
                  metrics=["accuracy"])
    head_before = [w.copy() for w in model.get_layer("parity").get_weights()]
    hist = model.fit(X, parity, batch_size=64, epochs=5, verbose=0)
    for name in ("h1", "h2"):
        for got, want in zip(model.get_layer(name).get_weights(), trained[name]):
            np.testing.assert_array_equal(got, want)  # bit-identical: frozen
    assert not np.array_equal(model.get_layer("parity").get_weights()[0], head_before[0])
    assert hist.history["accuracy"][-1] > 0.85

    # Fine-tuning: unfreeze everything, a learning rate 10× lower.
    for layer in model.layers:
        layer.trainable = True
    model.compile(optimizer=cn.optimizers.Adam(0.001), loss="softmax_cross_entropy",
                  metrics=["accuracy"])
    before = model.evaluate(X, parity)["loss"]
    model.fit(X, parity, batch_size=64, epochs=3, verbose=0)
    assert model.evaluate(X, parity)["loss"] < before
    assert not np.array_equal(model.get_layer("h1").get_weights()[0], trained["h1"][0])


def test_frozen_layers_below_get_no_gradient_work_but_stay_exact_in_a_graph():
    # A frozen conv base under a residual block: the base must not move.
    cn.seed(1)
    x = L.Input((1, 8, 8), name="img")
    base = L.Conv2D(4, 3, padding="same", activation="relu", name="base", trainable=False)(x)
    h = L.Conv2D(4, 3, padding="same", name="branch")(base)
    out = L.Dense(3, name="head")(L.Flatten()(L.Add()([h, base])))
    model = cn.Model(x, out)
    model.compile(optimizer=cn.optimizers.SGD(0.05, momentum=0.9), loss="softmax_cross_entropy")
    before = [w.copy() for w in model.get_layer("base").get_weights()]
    rng = np.random.default_rng(0)
    model.fit(rng.standard_normal((32, 1, 8, 8)), rng.integers(0, 3, 32), batch_size=8, epochs=2,
              verbose=0)
    for got, want in zip(model.get_layer("base").get_weights(), before):
        np.testing.assert_array_equal(got, want)
