"""Model files: model.save / cn.load_model / model.save_weights / model.load_weights.

The format and its one reader live in C++ (cpp/src/io/io.cpp, through
corenn._core), shared with C++ programs: a safetensors-layout file whose
metadata holds the architecture (every engine layer setting), the weights and
batch norm state, and optionally the loss, optimizer and optimizer state. This
module adds what only Python knows, as JSON under the metadata key "python":
the model's name, the optimizer's Python settings (learning-rate schedules
included) and the metric names. corenn/models.py's load_model rebuilds the
Model from the engine read here (Layer.from_config on the engine's settings),
so a file written by a C++ program loads too.
"""

import json
import os
import warnings

from . import _core, _validate, distributed, losses, metrics as metrics_module
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
    # The engine's 0 is "no clipping"; files from before clipping have no "clip".
    clip = {name: value for name, value in settings.get("clip", {}).items() if value > 0}
    if kind == "sgd":
        h = settings["sgd"]
        return optimizers_module.SGD(h["lr"], momentum=h["momentum"], dampening=h["dampening"],
                                     nesterov=h["nesterov"], weight_decay=h["weight_decay"], **clip)
    if kind == "rmsprop":
        h = settings["rmsprop"]
        return optimizers_module.RMSprop(h["lr"], rho=h["alpha"], epsilon=h["eps"],
                                         weight_decay=h["weight_decay"], **clip)
    h = settings["adam"]
    cls = optimizers_module.AdamW if kind == "adamw" else optimizers_module.Adam
    return cls(h["lr"], beta_1=h["beta1"], beta_2=h["beta2"], epsilon=h["eps"],
               weight_decay=h["weight_decay"], **clip)


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
    path = _validate.path("save", "filepath", path)
    model._ensure_built()
    if distributed.active():  # every rank averages its statistics; rank 0 alone writes
        distributed.average_state(model)
        if not distributed.is_chief():
            return
    python = {"name": model.name, **model._structure()}
    custom = [loss for loss in model._losses or [] if loss is not None and not isinstance(loss, str)]
    if include_optimizer and custom and not getattr(model, "_warned_custom_loss", False):
        model._warned_custom_loss = True  # once per model (a checkpoint saves every epoch)
        warnings.warn(f"save: model '{model.name}' is compiled with a custom (Python) loss, which a file "
                      f"cannot hold; {os.fspath(path)!r} keeps the architecture and weights but no "
                      "training state: compile the loaded model again", UserWarning, stacklevel=3)
    if include_optimizer and model._losses is not None:
        python["optimizer"] = _class_config(model._optimizer)
        metrics = [[name for name, _ in ms] for ms in model._output_metrics]
        python["metrics"] = metrics[0] if len(metrics) == 1 else dict(zip(model.output_names, metrics))
    model._engine.save(path, bool(include_optimizer), {_PYTHON_KEY: json.dumps(python)})


def read_model(path, custom_objects=None):
    """What cn.load_model needs from a file: (engine, settings, compiled), the
    engine (architecture, weights and training state, checked by the C++
    reader), the Python settings ({name, class_name, inputs_listed,
    outputs_listed}, each optional: a file written by C++ has none) and the
    compile() arguments {optimizer, loss, metrics} (None for a file saved
    uncompiled)."""
    custom_objects = dict(custom_objects or {})
    path = _validate.path("load_model", "filepath", path)
    engine, metadata = _core.load_model(path)
    # The Python settings beside the engine's are checked here, with the same ValueError.
    try:
        settings, compiled = _python_settings(engine, metadata, custom_objects)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"load_model: '{os.fspath(path)}': invalid Python settings in the file "
                         f"({type(exc).__name__}: {exc})") from None
    return engine, settings, compiled


def _python_settings(engine, metadata, custom_objects):
    python = json.loads(metadata.get(_PYTHON_KEY, "{}"))
    if not isinstance(python, dict):
        raise TypeError("the 'python' metadata must be a JSON object")
    settings = {k: python[k] for k in ("name", "class_name", "inputs_listed", "outputs_listed")
                if k in python}
    for key, kind in (("name", str), ("class_name", str), ("inputs_listed", bool),
                      ("outputs_listed", bool)):
        if key in settings and not isinstance(settings[key], kind):
            raise TypeError(f"{key} must be a {kind.__name__}, got {settings[key]!r}")
    if not engine.compiled:
        return settings, None
    training = json.loads(metadata["training"])
    if "optimizer" in python:
        optimizer = _from_class_config(python["optimizer"], optimizers_module.Optimizer,
                                       optimizers_module, custom_objects, "optimizer")
    else:
        optimizer = _optimizer_from_engine(training["optimizer"])
    metrics = python.get("metrics", [])
    if isinstance(metrics, dict):
        metrics = {k: [_metric(m, custom_objects) for m in v] for k, v in metrics.items()}
    else:
        metrics = [_metric(m, custom_objects) for m in metrics]
    # Version 1 holds one loss name; version 2 one per output ("none": no loss) and their weights.
    names = training["loss"] if isinstance(training["loss"], list) else [training["loss"]]
    return settings, {"optimizer": optimizer, "metrics": metrics,
                      "loss": [None if n == "none" else losses.get(n) for n in names],
                      "loss_weights": training.get("loss_weights")}


def load_weights(model, path):
    path = _validate.path("load_weights", "filepath", path)
    model._ensure_built()
    model._engine.load_weights(path)
