"""The engine's layer registry seen from Python: corenn._core.layer_kinds()
lists every kind with its attributes' defaults, Engine.add converts a config
dict generically (bool, int, float, str, lists of ints or floats) and the C++
engine alone validates it, and Engine.layer_config gives back every attribute
of the kind."""

import numpy as np
import pytest

import corenn as cn
from corenn import _core

L = cn.layers


def test_layer_kinds_lists_each_kind_with_typed_defaults():
    kinds = _core.layer_kinds()
    assert list(kinds) == sorted(kinds)
    assert kinds["dense"] == {"activation": "linear", "alpha": 0.01, "bias_initializer": "zeros",
                              "initializer_stddev": 0.01, "kernel_initializer": "glorot_uniform",
                              "l1": 0.0, "l2": 0.0, "units": 0, "use_bias": True}
    assert kinds["flatten"] == {} and kinds["add"] == {}
    assert kinds["max_pool2d"]["kernel_size"] == [2, 2] and kinds["max_pool2d"]["strides"] == []
    assert kinds["normalization"] == {"mean": [], "variance": []}
    assert kinds["time_distributed"] == {"layer": None}  # a nested layer, none by default
    for attributes in kinds.values():
        for value in attributes.values():
            assert value is None or isinstance(value, (bool, int, float, str, list))


@pytest.mark.parametrize("kind", sorted(_core.layer_kinds()))
def test_every_python_config_uses_exactly_its_kinds_attributes(kind):
    """What get_config() emits for a kind is a subset of its registered
    attributes, of the registered types (an int where a float is registered
    aside, which the engine converts). activation "tanh": one every kind that
    has the attribute accepts (the recurrent layers check theirs at construction)."""
    cls = L.layer_class(kind)
    layer = cls.from_config({"kind": kind, **_core.layer_kinds()[kind], "units": 2, "filters": 2,
                             "target_shape": [2, -1], "rate": 0.5, "delta": 0.5,
                             "activation": "tanh", "pads": [1, 1, 1, 1], "input_dim": 2, "output_dim": 2,
                             "layer": {"kind": "lstm", "name": "inner", "units": 2}})
    config = layer.get_config()
    attributes = _core.layer_kinds()[kind]
    emitted = {k: v for k, v in config.items() if k not in ("name", "trainable")}
    assert set(emitted) <= set(attributes), set(emitted) - set(attributes)
    for key, value in emitted.items():
        want = attributes[key]
        if isinstance(want, float):
            assert isinstance(value, (int, float)) and not isinstance(value, bool), key
        elif isinstance(want, list) and not want:
            assert isinstance(value, list), key
        elif want is None:  # a nested layer: its config dict, or None
            assert value is None or isinstance(value, dict), key
        else:
            assert type(value) is type(want), key


def test_engine_add_converts_and_the_engine_validates():
    e = _core.Engine("float32")
    with pytest.raises(ValueError, match=r"layer 'fc' \(dense\): unknown attribute 'unit'; did you mean 'units'\?"):
        e.add({"kind": "dense", "name": "fc", "unit": 3})
    with pytest.raises(ValueError, match=r"layer 'fc' \(dense\): attribute 'units' must be int, got str 'three'"):
        e.add({"kind": "dense", "name": "fc", "units": "three"})
    with pytest.raises(ValueError, match=r"attribute 'kernel_size' must be list of ints, got list of floats"):
        e.add({"kind": "conv2d", "name": "c", "filters": 2, "kernel_size": [0.5, 1.0]})
    with pytest.raises(ValueError, match=r"layer 'x': unknown kind 'dens'; did you mean 'dense'\?"):
        e.add({"kind": "dens", "name": "x"})
    with pytest.raises(ValueError, match=r"attribute 'units' must be int, got layer None"):
        e.add({"kind": "dense", "name": "fc", "units": None})
    with pytest.raises(TypeError, match=r"attribute 'units' must be a bool, int, float, str, a list of ints or "
                                        r"floats, or a layer's config dict, got \{1, 2\}"):
        e.add({"kind": "dense", "name": "fc", "units": {1, 2}})
    with pytest.raises(ValueError, match=r"layer 'td' \(time_distributed\): attribute 'layer' must be set"):
        e.add({"kind": "time_distributed", "name": "td"})
    with pytest.raises(ValueError, match=r"layer 'in' \(dense\): unknown attribute 'unit'"):
        e.add({"kind": "time_distributed", "name": "td", "layer": {"kind": "dense", "name": "in", "unit": 3}})
    with pytest.raises(TypeError, match=r"attribute 'pads' must be"):
        e.add({"kind": "zero_padding2d", "name": "z", "pads": [1, "a", 1, 1]})
    assert e.num_layers == 0
    # Ints where floats are expected (also in lists), NumPy integers, tuples.
    e.add({"kind": "normalization", "name": "n", "mean": [1, 2], "variance": (4, 1.0)})
    e.add({"kind": "dense", "name": "fc", "units": np.int64(3), "l2": 0, "use_bias": False})
    e.build([2])
    assert e.layer_config(0) == {"kind": "normalization", "name": "n", "inputs": [], "trainable": True,
                                 "mean": [1.0, 2.0], "variance": [4.0, 1.0]}
    config = e.layer_config(1)
    assert config["units"] == 3 and config["l2"] == 0.0 and isinstance(config["l2"], float)
    assert config["use_bias"] is False and config["kernel_initializer"] == "glorot_uniform"
    assert set(config) == {"kind", "name", "inputs", "trainable", *_core.layer_kinds()["dense"]}


def test_python_configs_pass_through_unchanged():
    model = cn.Sequential([L.Input((2, 6, 6)), L.Conv2D(3, 3, padding="same", dilation_rate=(1, 2)),
                           L.MaxPool2D(2), L.Flatten(), L.Dense(4, activation="elu", alpha=1.0)])
    model.build()
    for i, layer in enumerate(model.layers):
        config = model._engine.layer_config(i)
        for key, value in layer.get_config().items():
            assert config[key] == value, (layer.name, key)
