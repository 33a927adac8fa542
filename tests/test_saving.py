"""Model files from Python: every layer kind round-trips with bit-identical
predictions, Layer.from_config inverts get_config, training resumed from a file
follows the uninterrupted trajectory bit for bit, save_weights/load_weights
check before they write, failed saves leave nothing behind, and the installed
CMake package is where get_cmake_dir says. Damaged files: test_saving_fuzz.py."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import corenn as cn
from corenn import _core, applications

L = cn.layers
O = cn.optimizers

# One model per layer kind (with non-default settings), each on its input shape.
LAYER_CASES = {
    "dense": ([L.Dense(4, activation="leaky_relu", alpha=0.2, use_bias=False,
                       kernel_initializer=cn.initializers.RandomNormal(0.3),
                       kernel_regularizer=cn.regularizers.L1L2(0.01, 0.02))], (5,)),
    "activation": ([L.Activation("softmax")], (2, 3)),
    "softmax": ([L.Softmax(axis=1), L.Softmax()], (3, 2, 4)),
    "layer_norm": ([L.LayerNormalization(epsilon=1e-2), L.LayerNormalization(center=False)], (3, 4)),
    "positional_encoding": ([L.PositionalEncoding(max_wavelength=100.0)], (5, 4)),
    # graphs (see layer_model): self-attention over x, the key a normalised x
    "attention": ([L.Attention(use_scale=True, use_causal_mask=True)], (5, 4)),
    "multi_head_attention": ([L.MultiHeadAttention(2, 3, value_dim=2, output_shape=5, use_causal_mask=True,
                                                   kernel_initializer="he_uniform", dropout=0.1)], (5, 4)),
    "additive_attention": ([L.AdditiveAttention(dropout=0.2, use_causal_mask=True)], (5, 4)),
    "attention_concat": ([L.Attention(score_mode="concat", use_scale=True, dropout=0.3)], (5, 4)),
    "dropout": ([L.Dropout(0.4), L.Dense(3)], (6,)),
    "flatten": ([L.Flatten(), L.Dense(2, activation="sigmoid")], (2, 3, 4)),
    "reshape": ([L.Reshape((4, -1)), L.Activation("tanh")], (2, 3, 4)),
    "conv2d": ([L.Conv2D(4, (3, 2), strides=(2, 1), padding=((1, 0), (2, 1)), dilation_rate=(1, 2),
                         groups=2, activation="relu", bias_initializer="ones")], (2, 9, 8)),
    "conv2d_same": ([L.Conv2D(3, 4, padding="same", trainable=False)], (2, 7, 6)),
    "depthwise_conv2d": ([L.DepthwiseConv2D(3, depth_multiplier=2, padding="same",
                                            activation="tanh")], (3, 6, 5)),
    "separable_conv2d": ([L.SeparableConv2D(5, 3, depth_multiplier=2, strides=2,
                                            kernel_regularizer="l2")], (3, 8, 7)),
    "conv2d_transpose": ([L.Conv2DTranspose(3, 3, strides=2, padding="same",
                                            output_padding=1)], (4, 5, 6)),
    "conv2d_transpose_explicit": ([L.Conv2DTranspose(2, 3, strides=2, padding=1)], (3, 4, 4)),
    "max_pool2d": ([L.MaxPooling2D((3, 2), strides=(1, 2), padding="same")], (2, 7, 8)),
    "avg_pool2d": ([L.AveragePooling2D(2, padding=1)], (2, 7, 8)),
    "global_avg_pool2d": ([L.GlobalAveragePooling2D(), L.Dense(2)], (3, 5, 4)),
    "zero_padding2d": ([L.ZeroPadding2D(((1, 2), (0, 3))), L.Conv2D(2, 2)], (2, 4, 4)),
    "batch_norm": ([L.Conv2D(3, 3), L.BatchNormalization(momentum=0.9, epsilon=1e-2)], (2, 5, 5)),
    "batch_norm_dense": ([L.Dense(4), L.BatchNormalization(center=False, scale=False)], (3,)),
    "add_concatenate": ([L.Dense(4)], (4,)),  # replaced by a graph in layer_model
    "subtract": ([L.Dense(3)], (3,)),  # replaced by a graph in layer_model
    "elementwise_merges": ([L.Dense(4)], (4,)),  # replaced by a graph in layer_model
    "unit_normalization": ([L.Conv2D(3, 2), L.UnitNormalization(axis=1, epsilon=1e-6)], (2, 4, 4)),
    "dot": ([L.Dense(4)], (3, 4)),  # replaced by a graph in layer_model
    "normalization": ([L.Normalization([1.0, -2.0, 0.5], [4.0, 0.25, 1.0]), L.Dense(2)], (3,)),
    "conv1d": ([L.Conv1D(4, 3, strides=2, padding="causal", dilation_rate=2, groups=2, activation="tanh",
                         bias_initializer="ones")], (2, 9)),
    "conv1d_same": ([L.Conv1D(3, 4, padding="same", use_bias=False,
                              kernel_regularizer=cn.regularizers.L2(0.01))], (2, 7)),
    "max_pool1d": ([L.MaxPooling1D(3, strides=2, padding="same")], (2, 9)),
    "avg_pool1d": ([L.AveragePooling1D(3, strides=2, padding="same"), L.AvgPool1D(2)], (2, 9)),
    "global_avg_pool1d": ([L.GlobalAveragePooling1D(), L.Dense(2)], (3, 5)),
    "global_max_pool1d": ([L.Conv1D(4, 2), L.GlobalMaxPooling1D(), L.Dense(2)], (3, 5)),
    "up_sampling2d": ([L.UpSampling2D((2, 3), interpolation="bilinear"), L.UpSampling2D(2)], (2, 3, 4)),
    "augmentation": ([L.RandomFlip("horizontal"), L.RandomCrop((1, 2)), L.ColorShift(0.3),
                      L.Conv2D(2, 3)], (2, 6, 6)),
    "embedding": ([L.Embedding(7, 3, embeddings_initializer="glorot_normal", mask_zero=True), L.Flatten(),
                   L.Dense(2)], (5,)),  # input: token ids (see inputs)
    "simple_rnn": ([L.SimpleRNN(3, return_sequences=True, go_backwards=True, recurrent_dropout=0.1), L.Flatten()],
                   (4, 2)),
    # Masks reaching recurrent layers: tests/test_masks.py (ONNX has no form for them).
    "masking": ([L.Masking(mask_value=0.5), L.Flatten(), L.Dense(2)], (4, 3)),
    "gru": ([L.GRU(4, return_sequences=True, use_bias=False, dropout=0.25), L.GRU(2, kernel_initializer="he_normal", recurrent_dropout=0.2)],
            (3, 5)),
    "lstm": ([L.LSTM(3, return_sequences=True, unit_forget_bias=False, recurrent_dropout=0.3),
              L.LSTM(2, go_backwards=True, recurrent_initializer=cn.initializers.RandomNormal(0.2))], (5, 2)),
    "repeat_vector": ([L.RepeatVector(3), L.Flatten()], (4,)),
    "time_distributed": ([L.TimeDistributed(L.Dense(3, activation="tanh", use_bias=False)),
                          L.TimeDistributed(L.BatchNormalization(momentum=0.8))], (4, 2)),
    "time_distributed_conv": ([L.TimeDistributed(L.Conv2D(2, 2, padding="same")), L.TimeDistributed(L.Flatten())],
                              (3, 1, 4, 4)),
    "bidirectional": ([L.Bidirectional(L.LSTM(3, return_sequences=True, unit_forget_bias=False)),
                       L.Bidirectional(L.GRU(2), merge_mode="concat",
                                       backward_layer=L.GRU(2, go_backwards=True, use_bias=False))], (5, 2)),
}


def layer_model(case, dtype="float32"):
    layers, shape = LAYER_CASES[case]
    if case == "add_concatenate":
        x = L.Input(shape, name="x")
        a = L.Dense(4, name="a")(x)
        s = L.Add(name="s")([a, x])
        out = L.Concatenate(axis=-1, name="c")([s, L.Dense(2, name="b")(a)])
        model = cn.Model(x, out, dtype=dtype)
        return model
    if case == "subtract":  # the course's verification head: |f(x) − x| into a Dense
        x = L.Input(shape, name="x")
        d = L.Subtract(name="d")([L.Dense(3, name="f")(x), x])
        return cn.Model(x, L.Dense(2, name="head")(L.Activation("abs", name="abs")(d)), dtype=dtype)
    if case == "elementwise_merges":  # a gate, then the mean, maximum and minimum of branches
        x = L.Input(shape, name="x")
        a, g = L.Dense(4, name="a")(x), L.Dense(4, activation="sigmoid", name="g")(x)
        m = L.Multiply(name="m")([a, g])
        hi = L.Maximum(name="hi")([L.Average(name="avg")([m, x, a]), x])
        return cn.Model(x, L.Minimum(name="lo")([hi, a, m]), dtype=dtype)
    if case in ("attention", "multi_head_attention", "additive_attention", "attention_concat"):
        x = L.Input(shape, name="x")
        key = L.LayerNormalization(name="key")(x)
        layer = type(layers[0]).from_config({**layers[0].get_config(), "name": "att"})
        out = layer(x, x, key=key) if case == "multi_head_attention" else layer([x, x, key])
        return cn.Model(x, out, dtype=dtype)
    if case == "dot":  # a sequence's cosine self-similarity (3, 3), then that times the sequence (3, 4)
        x = L.Input(shape, name="x")
        s = L.Dot(axes=2, normalize=True, name="cos")([x, x])
        out = L.Dot(axes=1, name="d")([s, x])
        return cn.Model(x, L.Dense(2, name="o")(L.Flatten(name="g")(out)), dtype=dtype)
    fresh = [type(l).from_config(l.get_config()) for l in layers]  # new names per model
    model = cn.Sequential([L.Input(shape), *fresh], dtype=dtype)
    model.build()
    return model


def inputs(model, n=6, seed=0):
    rng = np.random.default_rng(seed)
    shape = (n, *model.input_shape[1:])
    first = next(layer for layer in model.layers if not isinstance(layer, L.Input))
    if isinstance(first, L.Embedding):  # token ids, as the model's floats
        return rng.integers(0, first.input_dim, shape).astype(model.dtype)
    x = rng.standard_normal(shape).astype(model.dtype)
    if isinstance(first, L.Masking):  # every other step masked
        x[:, ::2] = first.mask_value
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_every_layer_round_trips_bit_for_bit(case, dtype, tmp_path):
    cn.seed(1)
    model = layer_model(case, dtype)
    # Positive values everywhere: batch norm's moving variance too.
    rng = np.random.default_rng(2)
    model.set_weights([np.abs(rng.standard_normal(w.shape)) + 0.5 for w in model.get_weights()])
    path = tmp_path / "m.corenn"
    model.save(path)
    loaded = cn.load_model(path)
    x = inputs(model)
    assert loaded.dtype == model.dtype and loaded.input_shape == model.input_shape
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert os.listdir(tmp_path) == ["m.corenn"]


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_from_config_inverts_get_config_and_the_engine_spec(case):
    model = layer_model(case)
    for i, layer in enumerate(model.layers):
        again = type(layer).from_config(layer.get_config())
        assert again.get_config() == layer.get_config()
        # The engine's full spec (every field of every kind) rebuilds it too.
        engine_spec = model._engine.layer_config(i)
        assert L.from_config(engine_spec).get_config() == layer.get_config()


def test_layer_class_names_every_engine_kind():
    for kind in _core.layer_kinds():
        assert L.layer_class(kind).kind == kind
    assert L.layer_class("max_pool2d") is L.MaxPool2D is L.MaxPooling2D
    assert L.layer_class("max_pool1d") is L.MaxPool1D is L.MaxPooling1D
    assert L.layer_class("global_avg_pool1d") is L.GlobalAvgPool1D is L.GlobalAveragePooling1D
    with pytest.raises(ValueError, match="unknown layer kind 'transformer'"):
        L.layer_class("transformer")
    with pytest.raises(ValueError, match="unknown layer kind 'conv_2d'.*did you mean 'conv2d'"):
        L.layer_class("conv_2d")


# The every-kind models must hold every kind the engine registers: a new kind
# missing from one of them fails here.
def test_layer_cases_cover_every_engine_kind():
    kinds = {layer.kind for case in LAYER_CASES for layer in layer_model(case).layers
             if not isinstance(layer, L.Input)}
    assert kinds == set(_core.layer_kinds())


def test_interop_example_covers_every_engine_kind():
    path = os.path.join(os.path.dirname(__file__), "..", "cpp", "examples", "interop.py")
    spec = importlib.util.spec_from_file_location("interop_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model = example.every_layer_model()
    kinds = {layer.kind for layer in model.layers if not isinstance(layer, L.Input)}
    assert kinds == set(_core.layer_kinds())


def test_file_layout_is_safetensors_with_our_metadata(tmp_path):
    cn.seed(2)
    model = layer_model("separable_conv2d")
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "m.corenn")
    raw = (tmp_path / "m.corenn").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    assert (8 + n) % 8 == 0
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__")
    assert meta["format"] == "corenn" and meta["format_version"] == "2"
    arch = json.loads(meta["model"])
    assert arch["inputs"] == [{"name": "input", "shape": [3, 8, 7]}]
    assert arch["layers"][0]["kind"] == "separable_conv2d"
    assert arch["calls"][0]["inputs"] == [["input", 0, 0]]
    assert json.loads(meta["training"])["loss"] == ["mse"]
    assert json.loads(meta["python"])["optimizer"]["class_name"] == "Adam"
    name = model.layers[0].name
    assert list(header) == [f"{name}/depthwise_kernel", f"{name}/pointwise_kernel", f"{name}/bias",
                            "optimizer/step", "optimizer/m", "optimizer/v"]
    data = raw[8 + n:]
    kernel = header[f"{name}/depthwise_kernel"]
    begin, end = kernel["data_offsets"]
    assert kernel["dtype"] == "F32" and kernel["shape"] == [6, 1, 3, 3]
    assert np.array_equal(np.frombuffer(data[begin:end], "<f4").reshape(6, 1, 3, 3),
                          model.get_weights()[0])
    step = header["optimizer/step"]
    begin, end = step["data_offsets"]
    assert step["dtype"] == "I64" and step["shape"] == [] and end - begin == 8
    assert int.from_bytes(data[begin:end], "little") == 0
    assert max(e["data_offsets"][1] for e in header.values()) == len(data)


def resumable_model(dropout):
    layers = [L.Input((6,)), L.Dense(16), L.BatchNormalization(), L.Activation("tanh")]
    if dropout:
        layers.append(L.Dropout(0.3))
    return cn.Sequential([*layers, L.Dense(8, activation="relu"), L.Dense(3)])


@pytest.mark.parametrize("optimizer", [
    lambda: O.Adam(O.schedules.ExponentialDecay(0.01, 4, 0.8)),
    lambda: O.SGD(0.05, momentum=0.9),
    lambda: O.SGD(O.schedules.PiecewiseConstant([5, 9], [0.1, 0.05, 0.01]), momentum=0.8,
                  nesterov=True, weight_decay=1e-3),
    lambda: O.RMSprop(O.schedules.InverseTimeDecay(0.01, 3, 0.5, staircase=True)),
    lambda: O.Adam(O.schedules.CosineDecay(0.001, 12, alpha=0.1, warmup_target=0.01, warmup_steps=4)),
    lambda: O.SGD(O.schedules.CosineDecayRestarts(0.05, 3, t_mul=2.0, m_mul=0.8), momentum=0.9),
])
@pytest.mark.parametrize("dropout", [False, True])
def test_training_resumed_from_a_file_follows_the_same_trajectory(optimizer, dropout, tmp_path):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    y = rng.integers(0, 3, 40)

    def fresh():
        cn.seed(4)
        model = resumable_model(dropout)
        model.compile(optimizer=optimizer(), loss="softmax_cross_entropy", metrics=["accuracy"])
        return model

    straight = fresh()
    first = straight.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    second = straight.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    straight_losses = [straight.train_on_batch(x[:8], y[:8]) for _ in range(3)]

    resumed = fresh()
    assert resumed.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history == first
    resumed.save(tmp_path / "run.corenn")
    resumed = cn.load_model(tmp_path / "run.corenn")
    assert type(resumed._optimizer) is type(straight._optimizer)
    assert resumed.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history == second
    assert [resumed.train_on_batch(x[:8], y[:8]) for _ in range(3)] == straight_losses
    for a, b in zip(resumed.get_weights(), straight.get_weights()):
        assert np.array_equal(a, b)
    step_a, slots_a = resumed._engine.get_optimizer_state()
    step_b, slots_b = straight._engine.get_optimizer_state()
    assert step_a == step_b == 23
    assert all(np.array_equal(a, b) for a, b in zip(slots_a, slots_b))


def test_without_the_optimizer_the_loaded_model_is_not_compiled(tmp_path):
    cn.seed(5)
    model = resumable_model(False)
    model.compile(optimizer=O.Adam(lambda step: 0.01), loss="mse")
    with pytest.raises(ValueError, match="plain callable"):
        model.save(tmp_path / "m.corenn")
    assert os.listdir(tmp_path) == []
    model.save(tmp_path / "m.corenn", include_optimizer=False)
    loaded = cn.load_model(tmp_path / "m.corenn")
    with pytest.raises(ValueError, match="compile"):
        loaded.train_on_batch(np.zeros((2, 6)), np.zeros((2, 3)))
    loaded.compile(optimizer="sgd", loss="mse")
    loaded.train_on_batch(np.zeros((2, 6)), np.zeros((2, 3)))


def test_custom_metrics_need_custom_objects(tmp_path):
    def hits(outputs, y, loss):
        return float(np.mean(outputs.argmax(axis=1) == y))

    cn.seed(6)
    model = resumable_model(False)
    model.compile(optimizer="adam", loss="softmax_cross_entropy", metrics=["acc", hits])
    model.save(tmp_path / "m.corenn")
    with pytest.raises(ValueError, match="metric 'hits' is not built in"):
        cn.load_model(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn", custom_objects={"hits": hits})
    assert [name for name, _ in loaded._metrics] == ["accuracy", "hits"]
    x, y = np.zeros((4, 6), np.float32), np.array([0, 1, 2, 0])
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_save_weights_and_load_weights(tmp_path):
    cn.seed(7)
    source = layer_model("conv2d", "float64")
    source.save_weights(tmp_path / "w.corenn")
    target = layer_model("conv2d", "float32")   # other names, other dtype
    target.load_weights(tmp_path / "w.corenn")
    for a, b in zip(target.get_weights(), source.get_weights()):
        assert a.dtype == np.float32 and np.array_equal(a, b.astype(np.float32))

    before = [w.copy() for w in target.get_weights()]
    other = layer_model("conv2d_same")           # same kinds, other shapes
    other.save_weights(tmp_path / "other.corenn")
    with pytest.raises(ValueError, match="shape"):
        target.load_weights(tmp_path / "other.corenn")
    layer_model("dense").save_weights(tmp_path / "dense.corenn")
    with pytest.raises(ValueError, match="conv2d"):
        target.load_weights(tmp_path / "dense.corenn")
    layer_model("dropout").save_weights(tmp_path / "two.corenn")
    with pytest.raises(ValueError, match="2 layers"):
        target.load_weights(tmp_path / "two.corenn")
    assert all(np.array_equal(a, b) for a, b in zip(target.get_weights(), before))
    with pytest.raises(OSError):
        target.load_weights(tmp_path / "absent.corenn")


def test_failed_saves_leave_the_old_file_and_no_temporary(tmp_path):
    cn.seed(8)
    model = layer_model("dense")
    model.save(tmp_path / "m.corenn")
    good = (tmp_path / "m.corenn").read_bytes()
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        model.save(tmp_path / "taken")
    with pytest.raises(OSError):
        model.save(tmp_path / "missing" / "m.corenn")
    with pytest.raises(ValueError, match="input shape is unknown"):
        cn.Sequential([L.Dense(2)]).save(tmp_path / "m.corenn")
    assert (tmp_path / "m.corenn").read_bytes() == good
    assert sorted(os.listdir(tmp_path)) == ["m.corenn", "taken"]


def test_loading_errors_name_the_problem(tmp_path):
    with pytest.raises(OSError, match="absent"):
        cn.load_model(tmp_path / "absent.corenn")
    with pytest.raises(OSError, match="directory"):
        cn.load_model(tmp_path)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="too short"):
        cn.load_model(tmp_path / "empty")


def graph_model(dtype="float32"):
    x = L.Input((3, 6, 6), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="a")(x)
    b = L.Conv2D(4, 1, name="b")(x)
    s = L.Add(name="sum")([a, b])
    c = L.Concatenate(axis=1, name="cat")([s, L.DepthwiseConv2D(3, padding="same")(a)])
    y = L.Dense(3, name="head")(L.Flatten()(L.MaxPool2D(2)(c)))
    return cn.Model(inputs=x, outputs=y, dtype=dtype, name="branchy")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_graph_models_round_trip_with_their_edges(dtype, tmp_path):
    cn.seed(9)
    model = graph_model(dtype)
    model.compile(optimizer=O.Adam(1e-2), loss="softmax_cross_entropy")
    x = inputs(model, n=8)
    y = np.arange(8) % 3
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "g.corenn")
    loaded = cn.load_model(tmp_path / "g.corenn")
    assert type(loaded) is cn.Model and loaded.name == "branchy"
    assert loaded.get_config() == model.get_config()
    for layer in model.layers:
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_layer("cat").output.shape == model.get_layer("cat").output.shape
    # Training carries on identically, and the loaded layers start new graphs.
    assert (loaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history
            == model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0).history)
    head = cn.Model(loaded.input, L.Dense(2)(L.Flatten()(loaded.get_layer("sum").output)))
    assert head.predict(x).shape == (8, 2)


def test_cmake_dir_holds_the_package():
    folder = cn.get_cmake_dir()
    assert os.path.isfile(os.path.join(folder, "corennConfig.cmake"))
    assert os.path.isfile(os.path.join(folder, "corennConfigVersion.cmake"))
    printed = subprocess.run([sys.executable, "-m", "corenn", "--cmake-dir"], check=True,
                             capture_output=True, text=True).stdout.strip()
    assert printed == folder
    include = os.path.join(folder, "..", "..", "..", "include", "corenn", "corenn.hpp")
    assert os.path.isfile(include)


def test_a_file_written_without_python_loads_compiled(tmp_path):
    # What a C++ program writes: no "python" metadata; the optimizer comes from
    # the engine's settings.
    cn.seed(10)
    engine = cn._core.Engine("float64")
    engine.add({"kind": "dense", "name": "hidden", "units": 4, "activation": "tanh"})
    engine.add({"kind": "dense", "name": "out", "units": 2})
    engine.build([3])
    engine.compile("mse", None, {"kind": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.1})
    x, y = np.ones((2, 3)), np.zeros((2, 2))
    engine.train_step([x], [y])
    engine.save(str(tmp_path / "c.corenn"), True, {})
    model = cn.load_model(tmp_path / "c.corenn")
    assert model.name == "sequential" and model.dtype == np.float64
    assert [l.name for l in model.layers] == ["hidden", "out"]
    assert isinstance(model.layers[0], L.Dense) and model.layers[0].activation == "tanh"
    opt = model._optimizer
    assert isinstance(opt, O.SGD) and (opt.learning_rate, opt.momentum, opt.dampening) == (0.05, 0.9, 0.1)
    assert model._loss == "mse" and model._engine.steps == 1
    assert np.array_equal(model.predict(x), engine.predict([x])[0])
    assert model.train_on_batch(x, y) == engine.train_step([x], [y])[0]


@pytest.mark.parametrize("build", [
    lambda: applications.resnet_small((3, 8, 8), classes=3, widths=(4, 8), blocks=(1, 1)),
    lambda: applications.mobilenet_v2((3, 8, 8), classes=3, alpha=0.25),
    lambda: applications.inception_small((3, 8, 8), classes=3),
    lambda: applications.unet((1, 8, 8), filters=2, depth=2),
])
def test_applications_round_trip(build, tmp_path):
    cn.seed(12)
    model = build()
    model.save(tmp_path / "app.corenn")
    loaded = cn.load_model(tmp_path / "app.corenn")
    x = inputs(model, n=2)
    assert loaded.get_config() == model.get_config()
    assert np.array_equal(loaded.predict(x), model.predict(x))
