"""Interoperability (issue 18): model files are valid safetensors, PyTorch
state dicts load into corenn (layouts are PyTorch's), and exported ONNX
models run in ONNX Runtime with corenn's predictions. Tests needing an
optional package skip with the reason when it is absent."""

import numpy as np
import pytest

import corenn as cn
from corenn import applications as apps
from corenn import interop
from test_saving import LAYER_CASES, inputs, layer_model
from tolerances import INTEROP_RTOL

L = cn.layers


def assert_close(actual, expected):
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected)))
    err = float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected)))
    assert err <= INTEROP_RTOL[expected.dtype] * scale, f"max |diff| {err:.3g} vs max |value| {scale:.3g}"


def randomised(model, seed=2):
    """Random non-trivial weights (positive variances), so every weight matters."""
    rng = np.random.default_rng(seed)
    model.set_weights([(np.abs(rng.standard_normal(w.shape)) * 0.5 + 0.5).astype(w.dtype)
                       for w in model.get_weights()])
    return model


# ------------------------------------------------------------- safetensors

@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_model_files_are_safetensors_both_ways(case, tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    from safetensors import safe_open
    cn.seed(1)
    model = randomised(layer_model(case))
    model.save(tmp_path / "m.corenn")
    tensors = st.load_file(str(tmp_path / "m.corenn"))
    weights = model.get_weights()
    assert len(tensors) == len(weights)
    assert sorted(a.tobytes() for a in tensors.values()) == sorted(w.tobytes() for w in weights)
    with safe_open(str(tmp_path / "m.corenn"), "np") as f:
        metadata = f.metadata()
    # A file re-written by safetensors itself, with the same metadata, loads back.
    st.save_file(tensors, str(tmp_path / "again.corenn"), metadata=metadata)
    again = cn.load_model(tmp_path / "again.corenn")
    x = inputs(model, 5)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


# ----------------------------------------------------- PyTorch state dicts

def stack_model():
    cn.seed(0)
    model = cn.Sequential([L.Input((3,)), L.Dense(4, activation="relu"),
                           L.BatchNormalization(epsilon=1e-5), L.Dropout(0.5), L.Dense(2)])
    model.build()
    return model


def torch_style_state(rng):
    """PyTorch's keys for nn.Sequential(Linear(3, 4), ReLU(), BatchNorm1d(4), Dropout(), Linear(4, 2))."""
    return {"0.weight": rng.standard_normal((4, 3)), "0.bias": rng.standard_normal(4),
            "2.weight": rng.standard_normal(4), "2.bias": rng.standard_normal(4),
            "2.running_mean": rng.standard_normal(4), "2.running_var": rng.random(4) + 0.5,
            "2.num_batches_tracked": np.array(7), "4.weight": rng.standard_normal((2, 4)),
            "4.bias": rng.standard_normal(2)}


def test_state_dict_with_pytorch_names_loads_in_order():
    model, state = stack_model(), torch_style_state(np.random.default_rng(0))
    interop.load_torch_state_dict(model, state)
    dense, bn, _, head = model.layers
    np.testing.assert_array_equal(dense.get_weights()[0], state["0.weight"].astype(np.float32))
    gamma, beta, mean, var = bn.get_weights()
    for ours, key in ((gamma, "weight"), (beta, "bias"), (mean, "running_mean"), (var, "running_var")):
        np.testing.assert_array_equal(ours, state[f"2.{key}"].astype(np.float32))
    np.testing.assert_array_equal(head.get_weights()[1], state["4.bias"].astype(np.float32))
    # The same arithmetic as PyTorch's eval(): relu(x Wᵀ + b), batch norm, x Wᵀ + b.
    x = np.random.default_rng(1).standard_normal((5, 3))
    h = np.maximum(x @ state["0.weight"].T + state["0.bias"], 0)
    h = (h - state["2.running_mean"]) / np.sqrt(state["2.running_var"] + 1e-5) * state["2.weight"] + state["2.bias"]
    assert_close(model.predict(x.astype(np.float32)), (h @ state["4.weight"].T + state["4.bias"]).astype(np.float32))


def test_state_dict_from_a_safetensors_file(tmp_path):
    st = pytest.importorskip("safetensors.numpy", reason="safetensors is not installed")
    state = {k: np.asarray(v, dtype=np.float32) for k, v in torch_style_state(np.random.default_rng(0)).items()}
    st.save_file(state, str(tmp_path / "w.safetensors"))
    a, b = stack_model(), stack_model()
    interop.load_torch_state_dict(a, tmp_path / "w.safetensors")
    interop.load_torch_state_dict(b, state)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"4.weight": np.zeros((3, 4))}),
     r"4.weight has shape \(3, 4\) but layer '.*' \(dense\) expects kernel of shape \(2, 4\)"),
    (lambda s: s.update({"9.extra": np.zeros(1)}), r"has 3 layers with PyTorch weights .* 4 modules"),
    (lambda s: s.update({"4.scale": np.zeros(1)}), r"unused keys \['4.scale'\]"),
    (lambda s: s.pop("2.running_var"), r"missing keys \['2.running_var \(for .*moving_variance\)'\]"),
    (lambda s: s.update({"0.weight": "text"}), r"state_dict\['0.weight'\] must be an array"),
])
def test_bad_state_dicts_name_the_key_and_leave_the_model_untouched(change, message):
    model = stack_model()
    before = model.get_weights()
    state = torch_style_state(np.random.default_rng(0))
    change(state)
    with pytest.raises((ValueError, TypeError), match=message):
        interop.load_torch_state_dict(model, state)
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_strict_false_loads_what_matches():
    model = stack_model()
    before = model.layers[1].get_weights()
    state = torch_style_state(np.random.default_rng(0))
    del state["2.running_var"]
    state["4.scale"] = np.zeros(1)
    interop.load_torch_state_dict(model, state, strict=False)
    np.testing.assert_array_equal(model.layers[1].get_weights()[3], before[3])  # kept
    np.testing.assert_array_equal(model.layers[1].get_weights()[2], state["2.running_mean"].astype(np.float32))


def test_mapping_loads_named_layers_and_checks_names():
    x = L.Input((3,))
    h = L.Dense(4, name="hidden")(x)
    model = cn.Model(x, L.Dense(2, name="out")(h))
    rng = np.random.default_rng(0)
    state = {"fc_out.weight": rng.standard_normal((2, 4)), "fc_out.bias": rng.standard_normal(2)}
    hidden_before = model.get_layer("hidden").get_weights()
    interop.load_torch_state_dict(model, state, mapping={"out": "fc_out"})
    np.testing.assert_array_equal(model.get_layer("out").get_weights()[0], state["fc_out.weight"].astype(np.float32))
    np.testing.assert_array_equal(model.get_layer("hidden").get_weights()[0], hidden_before[0])
    with pytest.raises(ValueError, match=r"mapping names layer 'nope'"):
        interop.load_torch_state_dict(model, state, mapping={"nope": "fc_out"})
    with pytest.raises(ValueError, match=r"mapping\['out'\] = 'fc' is no module"):
        interop.load_torch_state_dict(model, state, mapping={"out": "fc"})
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        interop.load_torch_state_dict(model, [1, 2])


def test_torch_sequential_predicts_the_same_in_corenn():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(16, 128), nn.ReLU(), nn.Unflatten(1, (2, 8, 8)),
        nn.Conv2d(2, 4, 3, padding=1, groups=2), nn.Conv2d(4, 6, 3, dilation=2, padding=2),
        nn.BatchNorm2d(6), nn.ReLU(),
        nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1),
        nn.MaxPool2d(2), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 5))
    with torch.no_grad():  # trained statistics and a non-trivial affine part
        net.train()
        for _ in range(3):
            net(torch.randn(32, 16) * 2 + 1)
        net[5].weight.uniform_(0.5, 1.5)
        net[5].bias.uniform_(-0.5, 0.5)
    net.eval()
    model = cn.Sequential([
        L.Input((16,)), L.Dense(128, activation="relu"), L.Reshape((2, 8, 8)),
        L.Conv2D(4, 3, padding=1, groups=2), L.Conv2D(6, 3, dilation_rate=2, padding=2),
        L.BatchNormalization(epsilon=1e-5), L.Activation("relu"),
        L.Conv2DTranspose(4, 3, strides=2, padding=1, output_padding=1),
        L.MaxPooling2D(2), L.AveragePooling2D(2), L.Flatten(), L.Dense(5)])
    interop.load_torch_state_dict(model, net.state_dict())
    x = np.random.default_rng(0).standard_normal((7, 16)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert_close(model.predict(x), expected)


def test_torch_residual_block_loads_by_mapping():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(3)
            self.conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)

        def forward(self, x):
            return torch.relu(x + self.conv2(torch.relu(self.bn1(self.conv1(x)))))

    torch.manual_seed(1)
    net = Block()
    with torch.no_grad():
        net.train()
        net(torch.randn(16, 3, 6, 6))
    net.eval()
    x_in = L.Input((3, 6, 6))
    h = L.Conv2D(3, 3, padding="same", name="c1")(x_in)
    h = L.Activation("relu")(L.BatchNormalization(epsilon=1e-5, name="b1")(h))
    h = L.Conv2D(3, 3, padding="same", use_bias=False, name="c2")(h)
    model = cn.Model(x_in, L.Activation("relu")(L.Add()([h, x_in])))
    interop.load_torch_state_dict(model, net.state_dict(), mapping={"c1": "conv1", "b1": "bn1", "c2": "conv2"})
    x = np.random.default_rng(0).standard_normal((4, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert_close(model.predict(x), expected)


# ---------------------------------------------------------------- ONNX out

APPLICATIONS = {
    "resnet_small": lambda: apps.resnet_small((3, 8, 8), widths=(8, 16), blocks=(1, 1)),
    "inception_small": lambda: apps.inception_small((3, 8, 8)),
    "mobilenet_v1": lambda: apps.mobilenet_v1((3, 8, 8), alpha=0.5),
    "mobilenet_v2": lambda: apps.mobilenet_v2((3, 8, 8), alpha=0.5),
    "efficientnet": lambda: apps.efficientnet(0, base_resolution=8),
    "unet": lambda: apps.unet((1, 8, 8), filters=4),
}


def run_onnx(path, model, x):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.name == model._engine.input_name
    assert out.name == model.layers[model._engine.output_layer].name
    assert inp.shape[0] == "batch"
    return session.run(None, {inp.name: x})[0]


def check_export(model, tmp_path):
    pytest.importorskip("onnx", reason="onnx is not installed")
    path = interop.export_onnx(model, tmp_path / "m.onnx")
    for n in (1, 6):
        x = inputs(model, n, seed=n)
        assert_close(run_onnx(path, model, x), model.predict(x))


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_every_layer_kind_exports_to_onnx(case, tmp_path):
    cn.seed(1)
    check_export(randomised(layer_model(case)), tmp_path)


def test_softmax_on_images_exports_as_the_channel_softmax(tmp_path):
    model = cn.Sequential([L.Input((3, 4, 5)), L.Activation("softmax")])
    model.build()
    check_export(model, tmp_path)


# A fused softmax normalises what the engine normalises: Dense's units (the last
# axis, at every step of a sequence or position of a grid), a convolution's
# channels (axis 1).
FUSED_SOFTMAX_CASES = {
    "dense_on_sequences": lambda: [L.Input((5, 6)), L.Dense(4, activation="softmax")],
    "dense_on_grids": lambda: [L.Input((3, 5, 6)), L.Dense(4, activation="softmax")],
    "conv1d": lambda: [L.Input((3, 7)), L.Conv1D(4, 3, activation="softmax")],
    "conv2d": lambda: [L.Input((3, 6, 6)), L.Conv2D(4, 3, activation="softmax")],
}


@pytest.mark.parametrize("case", sorted(FUSED_SOFTMAX_CASES))
def test_fused_softmax_exports_over_the_engines_axis(case, tmp_path):
    cn.seed(4)
    model = cn.Sequential(FUSED_SOFTMAX_CASES[case]())
    model.build()
    check_export(model, tmp_path)


@pytest.mark.parametrize("activation", L.ACTIVATIONS)
def test_every_activation_exports_to_onnx(activation, tmp_path):
    cn.seed(3)
    model = cn.Sequential([L.Input((6,)), L.Dense(5, activation=activation, alpha=0.3)])
    check_export(randomised(model), tmp_path)
    assert set(L.ACTIVATIONS) == set(interop.ACTIVATION_CONVERTERS)


def test_every_layer_kind_has_a_converter_and_a_case():
    kinds = {l.kind for layers, _ in LAYER_CASES.values() for l in layers} | {"add", "subtract", "concatenate",
                                                                                 "dot", "multiply", "average",
                                                                                 "maximum", "minimum"}
    assert kinds == set(interop.CONVERTERS)


@pytest.mark.parametrize("name", sorted(APPLICATIONS))
def test_every_application_exports_to_onnx(name, tmp_path):
    cn.seed(0)
    check_export(randomised(APPLICATIONS[name](), seed=3), tmp_path)


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_every_layer_kind_exports_in_float64(case, tmp_path):
    # ONNX Runtime's CPU provider has no double Conv or pooling, so the
    # float64 graphs run in onnx's reference evaluator (a second, independent
    # implementation of the operators).
    onnx_reference = pytest.importorskip("onnx.reference", reason="onnx is not installed")
    cn.seed(1)
    model = randomised(layer_model(case, "float64"))
    path = interop.export_onnx(model, tmp_path / "m.onnx")
    evaluator = onnx_reference.ReferenceEvaluator(str(path))
    for n in (1, 4):
        x = inputs(model, n, seed=n)
        out = evaluator.run(None, {model._engine.input_name: x})[0]
        assert out.dtype == np.float64
        assert_close(out, model.predict(x))


def test_float64_models_export_as_double(tmp_path):
    cn.seed(0)
    model = randomised(cn.Sequential([L.Input((6,)), L.Dense(5, activation="tanh"),
                                      L.BatchNormalization(), L.Dense(3, activation="softmax")],
                                     dtype="float64"))
    check_export(model, tmp_path)


def test_export_options_and_errors(tmp_path):
    onnx = pytest.importorskip("onnx", reason="onnx is not installed")
    model = stack_model()
    interop.export_onnx(model, tmp_path / "m.onnx", opset=13)
    proto = onnx.load(str(tmp_path / "m.onnx"))
    assert proto.opset_import[0].version == 13 and proto.ir_version == 7
    assert interop.export_onnx(model, tmp_path / "n.onnx").name == "n.onnx"
    assert onnx.load(str(tmp_path / "n.onnx")).ir_version == 8  # opset 17
    with pytest.raises(ValueError, match="export_onnx: opset must be an int >= 13, got 9"):
        interop.export_onnx(model, tmp_path / "m.onnx", opset=9)
    saved = interop.CONVERTERS.pop("dropout")
    try:
        with pytest.raises(ValueError, match=r"layer 'dropout(_\d+)?' \(Dropout, kind 'dropout'\) has no ONNX"):
            interop.export_onnx(model, tmp_path / "m.onnx")
    finally:
        interop.CONVERTERS["dropout"] = saved


def test_transfer_learning_from_a_pytorch_backbone_in_safetensors(tmp_path):
    """Issue 18's worked case: a backbone trained in PyTorch on digits 0-4, saved
    as .safetensors, loaded into corenn, frozen, and a new head trained on 5-9."""
    torch = pytest.importorskip("torch", reason="torch is not installed")
    st = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    old, new = y < 5, y >= 5
    nn = torch.nn
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(8 * 4 * 4, 64), nn.ReLU())
    net = nn.Sequential(backbone, nn.Linear(64, 5))
    optimizer = torch.optim.Adam(net.parameters(), 1e-2)
    xs, ys = torch.from_numpy(X[old]), torch.from_numpy(y[old])
    for _ in range(60):  # full-batch: a few seconds
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(xs), ys).backward()
        optimizer.step()
    path = tmp_path / "backbone.safetensors"
    st.save_file(backbone.state_dict(), str(path))

    base = cn.Sequential([L.Input((1, 8, 8)), L.Conv2D(8, 3, padding=1, activation="relu"),
                          L.MaxPooling2D(2), L.Flatten(), L.Dense(64, activation="relu")])
    interop.load_torch_state_dict(base, path)
    with torch.no_grad():
        assert_close(base.predict(X[:16]), backbone(torch.from_numpy(X[:16])).numpy())
    for layer in base.layers:
        layer.trainable = False
    frozen = [w.copy() for w in base.get_weights()]
    model = cn.Model(base.input, L.Dense(5, name="new_head")(base.output))
    model.compile(cn.optimizers.Adam(1e-2), "softmax_cross_entropy", metrics=["accuracy"])
    Xn, yn = X[new], y[new] - 5
    cut = int(0.7 * len(Xn))
    model.fit(Xn[:cut], yn[:cut], batch_size=32, epochs=60, verbose=0)
    accuracy = model.evaluate(Xn[cut:], yn[cut:])["accuracy"]
    # Frozen features learnt on the other five digits: 0.87 here, chance is 0.2.
    assert accuracy >= 0.8
    for before, after in zip(frozen, base.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_broadcasting_merges_export_to_onnx(tmp_path):
    # ONNX's Sum, Sub, Mul, Mean, Max and Min broadcast as corenn's merges do
    # (one rank, axes of size 1): a per-channel gate (3, 1, 1) and a per-row
    # term (1, 4, 1) against (3, 4, 4) maps.
    cn.seed(4)
    x = L.Input((3, 4, 4), name="image")
    gate = L.Reshape((3, 1, 1))(L.Dense(3, activation="sigmoid")(L.GlobalAveragePooling2D()(x)))
    row = L.Reshape((1, 4, 1))(L.Dense(4)(L.Flatten()(x)))
    h = L.Add()([L.Multiply()([x, gate]), row])
    h = L.Average()([L.Subtract()([h, gate]), row, gate])
    h = L.Minimum()([L.Maximum()([h, row]), gate, x])
    check_export(randomised(cn.Model(x, L.Flatten()(h))), tmp_path)
