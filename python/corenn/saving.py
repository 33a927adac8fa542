"""Model files: model.save / cn.load_model / model.save_weights / model.load_weights.

The format and its one reader live in C++ (cpp/src/io/io.cpp, through
corenn._core), shared with C++ programs: a safetensors-layout file whose
metadata holds the architecture (every engine layer setting), the weights and
batch norm state, and optionally the loss, optimizer and optimizer state. This
module adds what only Python knows, as JSON under the metadata key "python":
the model's name, the optimizer's Python settings (learning-rate schedules
included) and the metric names. Layer objects are rebuilt from the engine's
settings (Layer.from_config), so a file written by a C++ program loads too.
"""

import json
import os

from . import _core, layers as layers_module, losses, metrics as metrics_module
from . import optimizers as optimizers_module
from .layers import _init_parameters
from .optimizers import schedules

_PYTHON_KEY = "python"


def _class_config(obj):
    """{"class_name", "config"} from the constructor arguments an object keeps
    as attributes of the same name (optimizers and schedules do)."""
    config = {}
    for name in _init_parameters(type(obj)):
        value = getattr(obj, name)
        if callable(value):
            value = _schedule_config(value)
        config[name] = list(value) if isinstance(value, tuple) else value
    return {"class_name": type(obj).__name__, "config": config}


def _schedule_config(schedule):
    if not isinstance(schedule, schedules.LearningRateSchedule):
        raise ValueError(f"save: the learning rate {schedule!r} is a plain callable, which a file "
                         "cannot hold; use a schedule from corenn.optimizers.schedules (or a "
                         "LearningRateSchedule subclass), or save with include_optimizer=False")
    return _class_config(schedule)


def _lookup(name, base, module, custom_objects, what):
    if name in custom_objects:
        return custom_objects[name]
    found = getattr(module, name, None)
    if isinstance(found, type) and issubclass(found, base):
        return found
    raise ValueError(f"load_model: unknown {what} {name!r}; pass custom_objects={{{name!r}: ...}}")


def _from_class_config(entry, base, module, custom_objects, what):
    cls = _lookup(entry["class_name"], base, module, custom_objects, what)
    config = dict(entry["config"])
    rate = config.get("learning_rate")
    if isinstance(rate, dict):
        config["learning_rate"] = _from_class_config(rate, schedules.LearningRateSchedule, schedules,
                                                     custom_objects, "learning-rate schedule")
    return cls(**config)


def _optimizer_from_engine(settings):
    """A Python optimizer from the C++ settings of a file written without Python."""
    kind = settings["kind"]
    if kind == "sgd":
        h = settings["sgd"]
        return optimizers_module.SGD(h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                                     nesterov=h["nesterov"], weight_decay=h["weight_decay"])
    if kind == "rmsprop":
        h = settings["rmsprop"]
        return optimizers_module.RMSprop(h["lr"], rho=h["alpha"], epsilon=h["eps"],
                                         weight_decay=h["weight_decay"])
    h = settings["adam"]
    cls = optimizers_module.AdamW if kind == "adamw" else optimizers_module.Adam
    return cls(h["lr"], beta_1=h["beta1"], beta_2=h["beta2"], epsilon=h["eps"],
               weight_decay=h["weight_decay"])


def _metric(name, custom_objects):
    if name in custom_objects:
        return custom_objects[name]
    try:
        metrics_module.get(name)
    except ValueError:
        raise ValueError(f"load_model: metric {name!r} is not built in; pass "
                         f"custom_objects={{{name!r}: fn}}") from None
    return name


def save_model(model, path, include_optimizer=True):
    model._ensure_built()
    python = {"name": model.name}
    if include_optimizer and model._loss is not None:
        python["optimizer"] = _class_config(model._optimizer)
        python["metrics"] = [name for name, _ in model._metrics]
    model._engine.save(os.fspath(path), bool(include_optimizer), {_PYTHON_KEY: json.dumps(python)})


def load_model(path, custom_objects=None):
    custom_objects = dict(custom_objects or {})
    engine, metadata = _core.load_model(os.fspath(path))
    # The C++ reader checked the architecture, weights and training state; the
    # Python settings beside them are checked here, with the same ValueError.
    try:
        return _python_model(engine, metadata, custom_objects, path)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"load_model: '{os.fspath(path)}': invalid Python settings in the file "
                         f"({type(exc).__name__}: {exc})") from None


def _python_model(engine, metadata, custom_objects, path):
    python = json.loads(metadata.get(_PYTHON_KEY, "{}"))
    if not isinstance(python, dict):
        raise TypeError("the 'python' metadata must be a JSON object")
    configs = [engine.layer_config(i) for i in range(engine.num_layers)]
    layers = [layers_module.from_config(c) for c in configs]
    # Each layer's inputs, from the engine's calls (one call per layer here).
    for name, refs in engine.nodes():
        configs[engine.layer_index(name)]["inputs"] = [ref[0] for ref in refs]
    previous = [engine.input_name] + [c["name"] for c in configs[:-1]]
    if any(c["inputs"] != [p] for c, p in zip(configs, previous)):
        model = _graph(engine, configs, layers, python.get("name"))
    else:
        model = _sequential(engine, layers, python.get("name"))
    if engine.compiled:
        # Compiled before the engine is attached: the engine keeps the
        # optimizer state it was loaded with.
        training = json.loads(metadata["training"])
        if "optimizer" in python:
            optimizer = _from_class_config(python["optimizer"], optimizers_module.Optimizer,
                                           optimizers_module, custom_objects, "optimizer")
        else:
            optimizer = _optimizer_from_engine(training["optimizer"])
        loss = training["loss"]
        model.compile(optimizer=optimizer, loss=losses.get(loss[0] if isinstance(loss, list) else loss),
                      metrics=[_metric(m, custom_objects) for m in python.get("metrics", [])])
    model._engine = engine
    for i, layer in enumerate(model._layers):
        layer._engine, layer._index = engine, i
    return model


def _sequential(engine, layers, name):
    from .models import Sequential

    model = Sequential(layers, dtype=engine.dtype, name=name)
    model._input = layers_module.Input(tuple(engine.input_shape), name=engine.input_name)
    model._input_shape = model._input.shape
    tensor = model._input.output
    for layer in layers:
        tensor = layer(tensor)
    return model


def _graph(engine, configs, layers, name):
    """A functional Model over the file's layers, in the engine's order (each
    layer keeps its engine index), connected as the file's inputs say."""
    from .models import Model

    model = object.__new__(Model)
    model._init(engine.dtype, name or "model")
    model._input = layers_module.Input(tuple(engine.input_shape), name=engine.input_name)
    model._input_shape = model._input.shape
    model._layers = layers
    model._inbound = {l.name: list(c["inputs"]) for l, c in zip(layers, configs)}
    tensors = {model._input.name: model._input.output}
    pending = list(layers)
    while pending:
        waiting = []
        for layer in pending:
            names = model._inbound[layer.name]
            if all(n in tensors for n in names):
                inputs = [tensors[n] for n in names]
                tensors[layer.name] = layer(inputs if layer.merges else inputs[0])
            else:
                waiting.append(layer)
        if len(waiting) == len(pending):  # the engine accepted the graph, so never reached
            raise ValueError(f"load_model: layers {[l.name for l in waiting]} are not connected")
        pending = waiting
    return model


def load_weights(model, path):
    model._ensure_built()
    model._engine.load_weights(os.fspath(path))
