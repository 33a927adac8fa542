"""Model files of format version 1, written before the layer registry: each
layer there holds every field of the old one-struct LayerSpec (tests/data/
README.md). Today's reader keeps each kind's own attributes and the models
predict what the old version predicted, bit for bit."""

import os

import numpy as np
import pytest

import corenn as cn

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("name", ["sequential", "graph"])
def test_version_1_files_load_and_predict_bit_for_bit(name):
    expected = np.load(os.path.join(DATA, "model_v1_expected.npz"))
    model = cn.load_model(os.path.join(DATA, f"model_v1_{name}.corenn"))
    x, y = expected[f"x_{name}"], expected[f"y_{name}"]
    assert model.input_shape[1:] == x.shape[1:]
    got = model.predict(x)
    assert got.dtype == y.dtype and np.array_equal(got, y)


def test_version_1_layers_keep_their_kinds_attributes_only():
    model = cn.load_model(os.path.join(DATA, "model_v1_sequential.corenn"))
    configs = [model._engine.layer_config(i) for i in range(len(model.layers))]
    assert [c["kind"] for c in configs] == ["conv2d", "batch_norm", "max_pool2d", "flatten", "dropout", "dense"]
    assert set(configs[3]) == {"kind", "name", "inputs", "trainable"}  # flatten takes no attribute
    assert configs[0]["filters"] == 4 and configs[0]["padding"] == "same" and "units" not in configs[0]
    assert configs[4]["rate"] == 0.2 and "filters" not in configs[4]
    assert configs[5]["units"] == 10 and configs[5]["l2"] == 1e-3
    # Trained and compiled: training resumes from the file.
    assert model._engine.compiled and model._engine.steps > 0
