"""Functional graphs (cn.Model): forward parity with NumPy, gradients through
fan-out, Add and Concatenate, build-time errors, summary with multiply-adds,
and the Sequential/Model equivalence (one engine)."""

import numpy as np
import pytest

import corenn as cn
from reference import conv as conv_ref
from reference import dense as dense_ref
from reference import merge as merge_ref
from tolerances import GRADCHECK_THRESHOLD, tolerance

L = cn.layers


def relu(z):
    return np.maximum(z, 0)


def residual_mlp(dtype="float32", width=6):
    """x -> a (tanh) -> b; out = Dense(3)(Add([b, proj(x)]) and Concatenate([a, x]))."""
    x = L.Input((width,), name="x")
    a = L.Dense(5, activation="tanh", name="a")(x)
    b = L.Dense(4, name="b")(a)
    p = L.Dense(4, use_bias=False, name="proj")(x)
    s = L.Add(name="sum")([b, p])
    c = L.Concatenate(name="cat")([s, a, x])
    out = L.Dense(3, name="out")(c)
    return cn.Model(inputs=x, outputs=out, dtype=dtype, name="residual")


def residual_mlp_numpy(model, x):
    w = {l.name: l.get_weights() for l in model.layers}
    a = np.tanh(dense_ref.dense_forward(x, *w["a"]))
    b = dense_ref.dense_forward(a, *w["b"])
    p = dense_ref.dense_forward(x, *w["proj"])
    s = merge_ref.add_forward([b, p])
    c = merge_ref.concat_forward([s, a, x], axis=1)
    return dense_ref.dense_forward(c, *w["out"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_graph_forward_matches_numpy(dtype):
    cn.seed(1)
    model = residual_mlp(dtype)
    x = np.random.default_rng(0).standard_normal((9, 6))
    got = model.predict(x.astype(dtype))
    want = residual_mlp_numpy(model, x.astype(dtype).astype(np.float64))
    np.testing.assert_allclose(got, want, **tolerance(dtype))
    assert [l.name for l in model.layers] == ["a", "b", "proj", "sum", "cat", "out"]
    assert model.output_shape == (None, 3)


def test_graph_gradients_through_fan_out_add_and_concatenate():
    # x feeds proj, a and cat; a feeds b and cat: gradients must be summed.
    cn.seed(2)
    model = residual_mlp("float64")
    model.compile(optimizer=cn.optimizers.SGD(0.1), loss="softmax_cross_entropy")
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((7, 6)), rng.integers(0, 3, 7)
    assert cn.gradient_check(model, x, y) < GRADCHECK_THRESHOLD


def test_graph_gradients_equal_numpy_backpropagation():
    # The sums at fan-out points written out by hand: x reaches the loss
    # through proj and cat, a through b and cat.
    cn.seed(2)
    model = residual_mlp("float64")
    model.compile(optimizer=cn.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((5, 6)), rng.standard_normal((5, 3))
    _, grads = model._engine.loss_and_gradients([x], [y])
    w = {l.name: l.get_weights() for l in model.layers}
    a = np.tanh(dense_ref.dense_forward(x, *w["a"]))
    s = merge_ref.add_forward([dense_ref.dense_forward(a, *w["b"]), dense_ref.dense_forward(x, *w["proj"])])
    c = merge_ref.concat_forward([s, a, x], axis=1)
    out = dense_ref.dense_forward(c, *w["out"])
    dout = 2 * (out - y) / out.size
    dc, dW_out, db_out = dense_ref.dense_backward(dout, c, w["out"][0])
    ds, da_cat, _ = merge_ref.concat_backward(dc, [4, 5, 6], axis=1)
    db_branch, dp = merge_ref.add_backward(ds, 2)
    da_b, dW_b, db_b = dense_ref.dense_backward(db_branch, a, w["b"][0])
    _, dW_p, _ = dense_ref.dense_backward(dp, x, w["proj"][0])
    dz = (da_b + da_cat) * (1 - a ** 2)
    _, dW_a, db_a = dense_ref.dense_backward(dz, x, w["a"][0])
    want = np.concatenate([g.ravel() for g in (dW_a, db_a, dW_b, db_b, dW_p, dW_out, db_out)])
    np.testing.assert_allclose(grads, want, **tolerance("float64"))


def test_residual_conv_graph_gradient_check():
    cn.seed(5)
    x = L.Input((2, 5, 5), name="img")
    h = L.Conv2D(3, 3, padding="same", activation="tanh", name="c1")(x)
    h = L.Conv2D(2, 3, padding="same", name="c2")(h)
    s = L.Add(name="res")([h, x])  # identity shortcut
    t = L.Concatenate(axis=1, name="cat")([s, L.Conv2D(1, 1, name="c3")(x)])
    out = L.Dense(4, name="head")(L.Flatten(name="flat")(L.AvgPool2D(2, name="pool")(t)))
    model = cn.Model(x, out, dtype="float64")
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    rng = np.random.default_rng(6)
    xs, ys = rng.standard_normal((4, 2, 5, 5)), rng.integers(0, 4, 4)
    assert cn.gradient_check(model, xs, ys) < GRADCHECK_THRESHOLD
    # Forward against the NumPy references, layer by layer.
    w = {l.name: l.get_weights() for l in model.layers}
    h = np.tanh(conv_ref.conv2d_forward(xs, *w["c1"], padding=1))
    h = conv_ref.conv2d_forward(h, *w["c2"], padding=1)
    t = merge_ref.concat_forward([merge_ref.add_forward([h, xs]),
                                  conv_ref.conv2d_forward(xs, *w["c3"])], axis=1)
    pooled = t[:, :, :4, :4].reshape(4, 3, 2, 2, 2, 2).mean(axis=(3, 5))
    want = dense_ref.dense_forward(pooled.reshape(4, -1), *w["head"])
    np.testing.assert_allclose(model.predict(xs), want, **tolerance("float64"))


def test_same_tensor_twice_in_add_doubles_the_gradient():
    cn.seed(0)
    x = L.Input((3,), name="x")
    h = L.Dense(2, name="h")(x)
    model = cn.Model(x, L.Add(name="twice")([h, h]), dtype="float64")
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(1)
    xs, ys = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    W, b = model.get_layer("h").get_weights()
    np.testing.assert_allclose(model.predict(xs), 2 * (xs @ W.T + b), **tolerance(np.float64))
    assert cn.gradient_check(model, xs, ys) < GRADCHECK_THRESHOLD


def test_sequential_and_model_train_identically():
    def layers():
        return [L.Dense(8, activation="relu", name="h"), L.Dense(3, name="o")]

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((64, 5)).astype(np.float32), rng.integers(0, 3, 64)
    runs = []
    for functional in (False, True):
        cn.seed(11)
        if functional:
            inp = L.Input((5,), name="inp")
            h, o = layers()
            model = cn.Model(inp, o(h(inp)))
        else:
            model = cn.Sequential([L.Input((5,)), *layers()])
        model.compile(optimizer=cn.optimizers.Adam(0.01), loss="softmax_cross_entropy")
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_sequential_layers_are_connected():
    model = cn.Sequential([L.Input((4,), name="x"), L.Dense(3, name="a"), L.Dense(2, name="b")])
    model.build()
    assert model.input.layer.name == "x"
    assert model.get_layer("b").output is model.output
    assert model.get_layer(index=0).name == "a"
    with pytest.raises(ValueError, match="index 5 is out of range"):
        model.get_layer(index=5)


# ---------------------------------------------------------------- bad graphs

def test_add_with_mismatched_shapes_names_the_layer():
    x = L.Input((6,))
    with pytest.raises(ValueError, match=r"layer 'bad_sum' \(add\).*broadcast.*axis 1 has sizes 4 and 5.*from 'd4' \(4,\), 'd5' \(5,\)"):
        cn.Model(x, L.Add(name="bad_sum")([L.Dense(4, name="d4")(x), L.Dense(5, name="d5")(x)]))


def test_concatenate_with_mismatched_sizes_names_the_layer():
    x = L.Input((3, 8, 8))
    a = L.Conv2D(2, 3, padding="same")(x)
    b = L.Conv2D(2, 3)(x)  # 6×6
    with pytest.raises(ValueError, match=r"layer 'joint' \(concatenate\).*every axis but axis 1"):
        cn.Model(x, L.Concatenate(name="joint")([a, b]))
    with pytest.raises(ValueError, match=r"axis must lie in \[1, 3\]"):
        cn.Model(x, L.Concatenate(axis=4, name="far")([a, L.Conv2D(2, 3, padding="same")(x)]))
    with pytest.raises(ValueError, match="batch axis"):
        L.Concatenate(axis=0)


def test_concatenate_along_other_axes_and_negative_axis():
    cn.seed(0)
    x = L.Input((2, 3, 4), name="x")
    a = L.Conv2D(2, 1, name="a")(x)
    model = cn.Model(x, L.Concatenate(axis=-1, name="cat")([a, x]), dtype="float64")
    xs = np.random.default_rng(0).standard_normal((3, 2, 3, 4))
    W, b = model.get_layer("a").get_weights()
    want = merge_ref.concat_forward([conv_ref.conv2d_forward(xs, W, b), xs], axis=-1)
    np.testing.assert_allclose(model.predict(xs), want, **tolerance(np.float64))
    assert model.output_shape == (None, 2, 3, 8)


def test_unused_and_foreign_inputs():
    x, other = L.Input((4,), name="x"), L.Input((4,), name="other")
    with pytest.raises(ValueError, match="does not depend on the input 'x'"):
        cn.Model(x, L.Dense(2)(other))
    with pytest.raises(ValueError, match="input.*other.*not the model's input 'x'"):
        cn.Model(x, L.Add()([L.Dense(2)(x), L.Dense(2)(other)]))
    with pytest.raises(ValueError, match="does not depend on the input 'other' \\(it is unused\\)"):
        cn.Model([x, other], L.Dense(2)(x))
    with pytest.raises(TypeError, match="inputs must be an Input"):
        cn.Model(L.Dense(2)(x), L.Dense(2)(x))
    with pytest.raises(ValueError, match="add at least one layer"):
        cn.Model(x, x)


def test_layer_calls_are_checked():
    x = L.Input((4,))
    d = L.Dense(2, name="twice")
    first, second = d(x), d(x)  # a second call is a second node with the same weights
    assert (first.node_index, second.node_index) == (0, 1) and d.output is first
    with pytest.raises(ValueError, match=r"Dense 'twice': every call of a layer shares its weights.*"
                                         r"first called on \(None, 4\), now on \(None, 3\)"):
        d(L.Input((3,)))
    with pytest.raises(ValueError, match="two or more inputs"):
        L.Add()(x)
    with pytest.raises(ValueError, match="two or more inputs"):
        L.Add()([x])
    with pytest.raises(ValueError, match="takes one input"):
        L.Dense(2)([x, x])
    with pytest.raises(TypeError, match="expected the output of Input"):
        L.Dense(2)(np.zeros((1, 4)))
    with pytest.raises(TypeError, match="is not called"):
        x(x)
    with pytest.raises(ValueError, match="use the functional cn.Model"):
        cn.Sequential([L.Input((4,)), L.Add()])


def test_duplicate_layer_names_are_rejected():
    x = L.Input((4,))
    with pytest.raises(ValueError, match="two layers are named 'twin'"):
        cn.Model(x, L.Dense(2, name="twin")(L.Dense(3, name="twin")(x)))


def _engine(specs, input_shape=(3,)):
    engine = cn._core.Engine("float32")
    for spec in specs:
        engine.add({"kind": "dense", "units": 3, **spec})
    engine.build(list(input_shape))
    return engine


def test_engine_rejects_cycles_dangling_layers_and_unknown_inputs():
    # Graphs reach the engine by name, so a C++ or file-built graph can hold
    # mistakes the Python API never produces; the engine names the layers.
    with pytest.raises(ValueError, match=r"'a', 'b' depend on each other in a cycle"):
        _engine([{"name": "a", "inputs": ["b"]}, {"name": "b", "inputs": ["a"]},
                 {"name": "c", "inputs": ["input"]}])
    with pytest.raises(ValueError, match=r"'b', 'c' all feed no other layer"):
        _engine([{"name": "a", "inputs": ["input"]}, {"name": "b", "inputs": ["a"]},
                 {"name": "c", "inputs": ["a"]}])
    with pytest.raises(ValueError, match=r"takes input 'ghost', which is neither"):
        _engine([{"name": "a", "inputs": ["ghost"]}])
    with pytest.raises(ValueError, match=r"'a' \(dense\) takes one input, got 2"):
        _engine([{"name": "a", "inputs": ["input", "input"]}])
    with pytest.raises(ValueError, match="has the name of the model input"):
        _engine([{"name": "input"}])
    engine = _engine([{"name": "b", "inputs": ["a"]}, {"name": "a", "inputs": ["input"]}])
    assert engine.output_layer == 0 and engine.layer_inputs(0) == ["a"]


def test_failed_build_leaves_the_engine_unbuilt():
    engine = cn._core.Engine("float32")
    engine.add({"kind": "dense", "units": 2, "name": "a", "inputs": ["nope"]})
    with pytest.raises(ValueError):
        engine.build([3])
    assert not engine.built


# ---------------------------------------------------------- summary and costs

def test_summary_multiply_adds_match_the_course_arithmetic():
    # Course 4, week 2: a 28×28×192 input through 32 5×5 filters costs
    # 28·28·32 · 5·5·192 ≈ 120M multiplies; a 1×1×16 bottleneck first, 12.4M.
    x = L.Input((192, 28, 28), name="x")
    direct = cn.Model(x, L.Conv2D(32, 5, padding="same", name="conv5")(x))
    assert direct.multiply_adds() == 28 * 28 * 32 * 5 * 5 * 192 == 120_422_400
    y = L.Input((192, 28, 28), name="y")
    b = L.Conv2D(16, 1, name="bottleneck")(y)
    cheap = cn.Model(y, L.Conv2D(32, 5, padding="same", name="conv5b")(b))
    assert cheap.multiply_adds() == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 == 12_443_648
    lines = []
    cheap.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text
    row = next(l for l in text.splitlines() if l.startswith("conv5b (Conv2D)"))
    assert "(None, 32, 28, 28)" in row and "10,035,200" in row and row.endswith("bottleneck")
    assert "Mult-adds per example: 12,443,648" in text


@pytest.mark.parametrize("layer, shape, macs", [
    (L.DepthwiseConv2D(3, padding="same"), (4, 6, 6), 4 * 9 * 36),
    (L.SeparableConv2D(5, 3), (4, 6, 6), 4 * 9 * 16 + 5 * 4 * 16),
    (L.Conv2DTranspose(3, 2, strides=2), (4, 5, 5), 4 * 3 * 4 * 25),
    (L.Conv2D(6, 3, groups=2), (4, 5, 5), 6 * 2 * 9 * 9),
    (L.MaxPool2D(2), (4, 6, 6), 0),
])
def test_multiply_adds_per_layer_kind(layer, shape, macs):
    model = cn.Sequential([L.Input(shape), layer])
    assert model.multiply_adds() == macs


def test_symbolic_tensors_know_their_shape():
    x = L.Input((3, 8, 8), name="x")
    h = L.Conv2D(5, 3, name="c")(x)
    assert x.output.shape == (None, 3, 8, 8)
    assert h.shape == (None, 5, 6, 6)
    assert L.Concatenate()([h, L.Conv2D(2, 3)(x)]).shape == (None, 7, 6, 6)
    with pytest.raises(ValueError, match=r"broadcast.*axis 1 has sizes 5 and 3.*from 'c' \(5, 6, 6\), 'x' \(3, 8, 8\)"):
        _ = L.Add()([h, x]).shape
