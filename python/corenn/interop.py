"""Models in and out of corenn: PyTorch state dicts in, ONNX files out.

corenn's weight layouts are PyTorch's and ONNX's (dense kernels (out, in),
convolution kernels (C_out, C_in/groups, KH, KW), transposed ones
(C_in, C_out, KH, KW)), so both directions copy arrays as they are; what
differs is names (batch norm's gamma/beta/moving_mean/moving_variance are
PyTorch's weight/bias/running_mean/running_var) and the hyper-parameters that
live outside the weights. See docs/interop.md.

Neither direction imports torch: state dicts may hold torch tensors (read
through .detach().cpu().numpy()), NumPy arrays, or come from a .safetensors
file (read with safetensors.numpy). export_onnx needs the `onnx` package
(`pip install corenn[onnx]`).
"""

import os

import numpy as np

from . import _validate

# ------------------------------------------------------------ state dicts in

# corenn weight name -> PyTorch parameter name, per layer kind. Layers of the
# other kinds hold no weights, or none PyTorch has (Normalization's statistics).
class _Rows:
    """Row block `part` of `parts` equal blocks of a PyTorch tensor (nn.MultiheadAttention's
    in_proj_weight holds the query, key and value projections one above the other).
    `separate`: the whole tensor PyTorch keeps instead when the blocks cannot be
    stacked (nn.MultiheadAttention with kdim or vdim != embed_dim: q_proj_weight,
    k_proj_weight, v_proj_weight)."""

    def __init__(self, name, part, parts=3, separate=None):
        self.name, self.part, self.parts, self.separate = name, part, parts, separate

    def take(self, key, value):
        rows = value.shape[0] // self.parts
        if value.shape[0] % self.parts:
            raise ValueError(f"load_torch_state_dict: {key} has shape {value.shape}, whose first axis "
                             f"does not split into {self.parts} equal blocks")
        return value[self.part * rows:(self.part + 1) * rows]


_TORCH_NAMES = {
    "dense": {"kernel": "weight", "bias": "bias"},
    "conv2d": {"kernel": "weight", "bias": "bias"},
    "depthwise_conv2d": {"depthwise_kernel": "weight", "bias": "bias"},
    "conv2d_transpose": {"kernel": "weight", "bias": "bias"},
    "batch_norm": {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                   "moving_variance": "running_var"},
    "embedding": {"embeddings": "weight"},
    # nn.RNN / nn.LSTM / nn.GRU (one layer, one direction): the one bias of
    # SimpleRNN and LSTM is the sum of PyTorch's two.
    "simple_rnn": {"kernel": "weight_ih_l0", "recurrent_kernel": "weight_hh_l0",
                   "bias": ("bias_ih_l0", "bias_hh_l0")},
    "lstm": {"kernel": "weight_ih_l0", "recurrent_kernel": "weight_hh_l0",
             "bias": ("bias_ih_l0", "bias_hh_l0")},
    "gru": {"kernel": "weight_ih_l0", "recurrent_kernel": "weight_hh_l0", "bias": "bias_ih_l0",
            "recurrent_bias": "bias_hh_l0"},
    "layer_norm": {"gamma": "weight", "beta": "bias"},
    # nn.MultiheadAttention: in_proj_weight (3E, E) and in_proj_bias (3E,) stack
    # the query, key and value projections; with kdim or vdim != embed_dim the
    # kernels are q_proj_weight (E, E), k_proj_weight (E, kdim), v_proj_weight
    # (E, vdim) and only the biases stay stacked.
    "multi_head_attention": {
        "query_kernel": _Rows("in_proj_weight", 0, separate="q_proj_weight"),
        "query_bias": _Rows("in_proj_bias", 0),
        "key_kernel": _Rows("in_proj_weight", 1, separate="k_proj_weight"),
        "key_bias": _Rows("in_proj_bias", 1),
        "value_kernel": _Rows("in_proj_weight", 2, separate="v_proj_weight"),
        "value_bias": _Rows("in_proj_bias", 2),
        "output_kernel": "out_proj.weight", "output_bias": "out_proj.bias"},
}


def _torch_names(layer, name):
    """PyTorch's parameter name(s) for weight `name` of a layer and the row block
    they are taken from (a _Rows, or None for whole tensors); (None, None) when
    PyTorch has no such module. A TimeDistributed layer's weights are its inner
    layer's; a Bidirectional's are forward_<w> and backward_<w>, PyTorch's
    bidirectional nn.RNN/LSTM/GRU names them <w> and <w>_reverse."""
    if layer.kind == "time_distributed":
        return _torch_names(layer.layer, name)
    if layer.kind == "bidirectional":
        direction, _, inner = name.partition("_")
        names, rows = _torch_names(layer.layer, inner)
        suffix = "_reverse" if direction == "backward" else ""
        return (None, None) if names is None else (tuple(f"{n}{suffix}" for n in names), rows)
    names = _TORCH_NAMES.get(layer.kind, {}).get(name)
    if isinstance(names, _Rows):
        return (names.name,), names
    return ((names,) if isinstance(names, str) else names), None


# PyTorch entries that are bookkeeping, not weights: read and ignored.
_TORCH_SKIPPED = ("num_batches_tracked",)


def _as_numpy(key, value):
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    return _validate.array("load_torch_state_dict", f"state_dict[{key!r}]", value)


def _read_state_dict(state_dict):
    if isinstance(state_dict, (str, os.PathLike)):
        try:
            from safetensors import SafetensorError
            from safetensors.numpy import load_file
        except ImportError:
            raise ImportError("load_torch_state_dict: reading a .safetensors file needs the "
                              "safetensors package (pip install safetensors)") from None
        try:
            return dict(load_file(os.fspath(state_dict)))
        except (OSError, SafetensorError) as exc:
            raise OSError(f"load_torch_state_dict: cannot read state_dict {os.fspath(state_dict)!r} as a "
                          f".safetensors file: {exc}") from None
    if not hasattr(state_dict, "items"):
        raise TypeError("load_torch_state_dict: state_dict must be a dict of arrays/tensors or a "
                        f".safetensors path, got {type(state_dict).__name__}")
    return {str(k): _as_numpy(k, v) for k, v in state_dict.items()}


def _modules(state):
    """The state dict's parameter-owning modules in order: prefix -> {param: key}."""
    modules = {}
    for key in state:
        prefix, _, param = key.rpartition(".")
        if param in _TORCH_SKIPPED:
            continue
        modules.setdefault(prefix, {})[param] = key
    # nn.MultiheadAttention's out_proj is a submodule: one module with its in_proj.
    for prefix in [p for p in modules if p == "out_proj" or p.endswith(".out_proj")]:
        parent = prefix[:-len("out_proj")].rstrip(".")
        if parent in modules and {"in_proj_weight", "q_proj_weight"} & set(modules[parent]):
            for param, key in modules.pop(prefix).items():
                modules[parent][f"out_proj.{param}"] = key
    return modules


def _weight_names(model, index):
    return list(model._engine.weight_names(index))


def load_torch_state_dict(model, state_dict, mapping=None, strict=True):
    """Copy a PyTorch state dict's weights into a corenn model.

    state_dict: {key: array or torch tensor} (torch's model.state_dict()), or
    the path of a .safetensors file of one. Layers are matched
    - in order (mapping=None): the model's layers that PyTorch has weights for
      (Dense, Conv2D, DepthwiseConv2D, Conv2DTranspose, BatchNormalization,
      Embedding, SimpleRNN, LSTM, GRU, LayerNormalization, MultiHeadAttention, and
      Bidirectional and TimeDistributed around them) in
      model.layers order against the state dict's modules (key prefixes before
      the last ".") in the order they appear — right for nn.Sequential;
    - or by name: mapping {corenn_layer_name: torch_prefix}, e.g.
      {"conv_a": "block.0"}; only the layers named are loaded.
    PyTorch's weight/bias become kernel/bias, batch norm's weight, bias,
    running_mean, running_var become gamma, beta, moving_mean,
    moving_variance, nn.Embedding's weight becomes embeddings;
    num_batches_tracked is ignored. One-layer nn.RNN / nn.LSTM / nn.GRU's
    weight_ih_l0, weight_hh_l0 become kernel, recurrent_kernel; bias is
    bias_ih_l0 + bias_hh_l0 (the GRU's bias and recurrent_bias are the two);
    with bidirectional=True they load a Bidirectional layer, the *_reverse
    weights its backward layer. TimeDistributed(layer) loads as its layer.
    nn.LayerNorm's weight, bias become gamma, beta; nn.MultiheadAttention's
    in_proj_weight and in_proj_bias split in three row blocks become the query,
    key and value kernels and biases, out_proj the output kernel and bias
    (MultiHeadAttention(num_heads, key_dim=embed_dim // num_heads)); with kdim
    or vdim != embed_dim PyTorch keeps the kernels apart, and q_proj_weight,
    k_proj_weight, v_proj_weight become the query, key and value kernels (the
    key input then has kdim features, the value vdim). Arrays are cast to the
    model's dtype. SeparableConv2D (two PyTorch convolutions) and
    Normalization (no PyTorch module) are not matched: set their weights with
    layer.set_weights.

    Every shape is checked before anything is written: on any error the model
    is untouched. strict=True raises ValueError naming unused state-dict keys
    and missing ones; strict=False loads what matches and leaves the rest.

    A state dict holds no hyper-parameters: set batch-norm epsilon (PyTorch
    1e-5, corenn/Keras default 1e-3) and momentum (PyTorch 0.1 = Keras 0.9),
    padding, strides, activations and groups on the corenn layers to match
    the PyTorch modules (docs/interop.md).
    Raises TypeError (not a dict/path), ValueError (shapes, names, counts)."""
    owner = "load_torch_state_dict"
    _validate.model(owner, model)
    if mapping is not None and not hasattr(mapping, "items"):
        raise TypeError(f"{owner}: mapping must be None or a dict {{layer_name: torch_prefix}}, "
                        f"got {type(mapping).__name__} {mapping!r}")
    model._ensure_built()
    state = _read_state_dict(state_dict)
    modules = _modules(state)
    weighted = [(i, layer) for i, layer in enumerate(model.layers)
                if _weight_names(model, i) and _torch_names(layer, _weight_names(model, i)[0])[0]]
    if mapping is None:
        if len(weighted) != len(modules) and strict:
            raise ValueError(
                f"load_torch_state_dict: the model has {len(weighted)} layers with PyTorch weights "
                f"({', '.join(l.name for _, l in weighted)}) but the state dict has {len(modules)} "
                f"modules ({', '.join(modules)}); pass mapping={{layer_name: prefix}} or strict=False")
        pairs = list(zip(weighted, modules))
    else:
        by_name = {layer.name: (i, layer) for i, layer in weighted}
        pairs = []
        for name, prefix in dict(mapping).items():
            if name not in by_name:
                raise ValueError(f"load_torch_state_dict: mapping names layer {name!r}, which is not "
                                 f"a layer with PyTorch weights; those are {', '.join(by_name)}")
            if prefix not in modules:
                raise ValueError(f"load_torch_state_dict: mapping[{name!r}] = {prefix!r} is no module "
                                 f"of the state dict; its modules are {', '.join(modules)}")
            pairs.append((by_name[name], prefix))

    used, missing, updates = set(), [], []
    for (index, layer), prefix in pairs:
        names = _weight_names(model, index)
        current = layer.get_weights()
        new = []
        for name, old in zip(names, current):
            torch_names, rows = _torch_names(layer, name)
            keys = [f"{prefix}.{t}" if prefix else t for t in torch_names]
            if rows is not None and rows.separate and keys[0] not in state:
                keys, rows = [f"{prefix}.{rows.separate}" if prefix else rows.separate], None
            absent = [k for k in keys if k not in state]
            if absent:
                missing += [f"{key} (for {layer.name}.{name})" for key in absent]
                new.append(old)
                continue
            values = [rows.take(key, state[key]) if rows else state[key] for key in keys]
            for key, value in zip(keys, values):
                if value.shape != old.shape:
                    part = f" (row block {rows.part} of {rows.parts})" if rows else ""
                    raise ValueError(f"load_torch_state_dict: {key}{part} has shape {value.shape} but layer "
                                     f"'{layer.name}' ({layer.kind}) expects {name} of shape {old.shape}")
            used.update(keys)
            value = sum(v.astype(np.float64) for v in values) if len(values) > 1 else values[0]
            new.append(value.astype(model.dtype))
        updates.append((layer, new))
    for key in state:
        if key.rpartition(".")[2] in _TORCH_SKIPPED and key.rpartition(".")[0] in {p for _, p in pairs}:
            used.add(key)
    unused = [k for k in state if k not in used]
    if strict and (unused or missing):
        parts = ([f"missing keys {missing}"] if missing else []) + \
                ([f"unused keys {unused}"] if unused else [])
        raise ValueError(f"load_torch_state_dict: {'; '.join(parts)} (strict=True)")
    for layer, weights in updates:
        layer.set_weights(weights)
    return model


# ------------------------------------------------------------------ ONNX out

def _same_pads(size, kernel, stride, dilation=1):
    """Keras/TensorFlow "same": ⌈in/stride⌉ outputs; the odd cell of padding
    goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Graph:
    """The ONNX nodes and initializers under construction."""

    def __init__(self, onnx, dtype):
        self.onnx, self.dtype, self.nodes, self.initializers = onnx, np.dtype(dtype), [], []

    def constant(self, name, array, dtype=None):
        array = np.ascontiguousarray(np.asarray(array, dtype=dtype or self.dtype))
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, output, **attributes):
        self.nodes.append(self.onnx.helper.make_node(op, inputs, [output], name=output, **attributes))
        return output


def _softmax(g, x, out, alpha):
    # The Activation layer: corenn normalises the channels of images
    # (N, C, H, W) and the last axis of everything else (fused: _fused).
    return g.node("Softmax", [x], out, axis=1 if len(g.shape_in) == 4 else -1)


def _leaky_relu(g, x, out, alpha):
    # PRelu's slope is a tensor of the model's dtype; LeakyRelu's alpha
    # attribute is float32 only, 3e-9 off for a float64 model.
    return g.node("PRelu", [x, g.constant(f"{out}/alpha", alpha)], out)


# The activations below are built from elementary ONNX operators with their
# constants as tensors of the model's dtype: ONNX's Elu, Selu and HardSigmoid
# take float32 attributes (a float64 model would be ~1e-8 off), and Gelu only
# exists from opset 20.

def _elu_scaled(g, x, out, alpha, scale):
    """scale·(max(x, 0) + α·(e^min(x, 0) − 1)): ELU (scale 1) and SELU."""
    positive = g.node("Relu", [x], f"{out}/positive")
    negative = g.node("Min", [x, g.constant(f"{out}/zero", 0.0)], f"{out}/negative")
    exp = g.node("Exp", [negative], f"{out}/exp")
    expm1 = g.node("Sub", [exp, g.constant(f"{out}/one", 1.0)], f"{out}/expm1")
    scaled = g.node("Mul", [expm1, g.constant(f"{out}/alpha", alpha)], f"{out}/scaled")
    total = g.node("Add", [positive, scaled], f"{out}/sum")
    return g.node("Mul", [total, g.constant(f"{out}/scale", scale)], out)


def _gelu(g, x, out, alpha):
    """½x(1 + erf(x/√2)), the exact GELU."""
    z = g.node("Mul", [x, g.constant(f"{out}/inv_sqrt2", 1.0 / np.sqrt(2.0))], f"{out}/z")
    erf = g.node("Erf", [z], f"{out}/erf")
    return _half_x_one_plus(g, x, erf, out)


def _gelu_tanh(g, x, out, alpha):
    """½x(1 + tanh(√(2/π)(x + 0.044715x³)))."""
    cube = g.node("Mul", [g.node("Mul", [x, x], f"{out}/square"), x], f"{out}/cube")
    inner = g.node("Add", [x, g.node("Mul", [cube, g.constant(f"{out}/c", 0.044715)], f"{out}/cx3")],
                   f"{out}/inner")
    z = g.node("Mul", [inner, g.constant(f"{out}/k", np.sqrt(2.0 / np.pi))], f"{out}/z")
    return _half_x_one_plus(g, x, g.node("Tanh", [z], f"{out}/tanh"), out)


def _half_x_one_plus(g, x, t, out):
    one_plus = g.node("Add", [t, g.constant(f"{out}/one", 1.0)], f"{out}/one_plus")
    half_x = g.node("Mul", [x, g.constant(f"{out}/half", 0.5)], f"{out}/half_x")
    return g.node("Mul", [half_x, one_plus], out)


def _silu(g, x, out, alpha):
    return g.node("Mul", [x, g.node("Sigmoid", [x], f"{out}/sigmoid")], out)


def _softplus(g, x, out, alpha):
    """max(x, 0) + log(1 + e^−|x|): never overflows, as corenn's kernel."""
    exp = g.node("Exp", [g.node("Neg", [g.node("Abs", [x], f"{out}/abs")], f"{out}/neg")], f"{out}/exp")
    log = g.node("Log", [g.node("Add", [exp, g.constant(f"{out}/one", 1.0)], f"{out}/one_plus")],
                 f"{out}/log")
    return g.node("Add", [g.node("Relu", [x], f"{out}/relu"), log], out)


def _relu6(g, x, out, alpha):
    return g.node("Clip", [x, g.constant(f"{out}/min", 0.0), g.constant(f"{out}/max", 6.0)], out)


def _hard_sigmoid(g, x, out, alpha):
    """relu6(x + 3) / 6 (Keras 3, PyTorch's Hardsigmoid)."""
    shifted = g.node("Add", [x, g.constant(f"{out}/three", 3.0)], f"{out}/shifted")
    return g.node("Div", [_relu6(g, shifted, f"{out}/relu6", alpha), g.constant(f"{out}/six", 6.0)], out)


# One converter per activation name (layers.ACTIVATIONS): (graph, input name,
# output name, alpha) -> output name.
ACTIVATION_CONVERTERS = {
    "linear": lambda g, x, out, alpha: g.node("Identity", [x], out),
    "sigmoid": lambda g, x, out, alpha: g.node("Sigmoid", [x], out),
    "tanh": lambda g, x, out, alpha: g.node("Tanh", [x], out),
    "relu": lambda g, x, out, alpha: g.node("Relu", [x], out),
    "leaky_relu": _leaky_relu,
    "softmax": _softmax,
    "elu": lambda g, x, out, alpha: _elu_scaled(g, x, out, alpha, 1.0),
    # PyTorch's SELU constants (the fixed α and λ of Klambauer et al. 2017).
    "selu": lambda g, x, out, alpha: _elu_scaled(g, x, out, 1.6732632423543772, 1.0507009873554805),
    "gelu": _gelu,
    "gelu_tanh": _gelu_tanh,
    "silu": _silu,
    "swish": _silu,
    "softplus": _softplus,
    "relu6": _relu6,
    "hard_sigmoid": _hard_sigmoid,
    "abs": lambda g, x, out, alpha: g.node("Abs", [x], out),
}


def _act_node(g, activation, alpha, x, out):
    if activation not in ACTIVATION_CONVERTERS:
        raise ValueError(f"export_onnx: layer '{out}': activation {activation!r} has no ONNX converter")
    return ACTIVATION_CONVERTERS[activation](g, x, out, alpha)


def _fused(g, config, pre, out, features_axis):
    """A layer's own activation after its affine part (Dense, Conv...).
    features_axis: the axis a fused softmax normalises, as the engine does:
    Dense's last axis (units, at every position of a sequence or grid), the
    convolutions' channels (axis 1)."""
    if config["activation"] == "linear":
        return g.node("Identity", [pre], out)
    if config["activation"] == "softmax":
        return g.node("Softmax", [pre], out, axis=features_axis)
    return _act_node(g, config["activation"], config["alpha"], pre, out)


def _conv_pads(g, config, kernel, dilation=(1, 1)):
    h, w = g.shape_in[2:]
    if config["padding"] == "same":
        (t, b), (left, r) = (_same_pads(h, kernel[0], config["strides"][0], dilation[0]),
                             _same_pads(w, kernel[1], config["strides"][1], dilation[1]))
        return [t, left, b, r]
    t, b, left, r = config["pads"]
    return [t, left, b, r]


def _conv(g, name, config, weights, x):
    kernel, dilation = weights[0].shape[2:], config["dilation"]
    groups = {"conv2d": config.get("groups", 1),
              "depthwise_conv2d": g.shape_in[1]}.get(config["kind"], 1)
    inputs = [x, g.constant(f"{name}/kernel", weights[0])]
    if config["use_bias"]:
        inputs.append(g.constant(f"{name}/bias", weights[1]))
    pre = g.node("Conv", inputs, f"{name}/pre", kernel_shape=list(kernel), strides=config["strides"],
                 dilations=dilation, pads=_conv_pads(g, config, kernel, dilation), group=int(groups))
    return _fused(g, config, pre, name, 1)


def _separable(g, name, config, weights, x):
    depthwise, pointwise = weights[0], weights[1]
    kernel, dilation = depthwise.shape[2:], config["dilation"]
    dw = g.node("Conv", [x, g.constant(f"{name}/depthwise_kernel", depthwise)], f"{name}/depthwise",
                kernel_shape=list(kernel), strides=config["strides"], dilations=dilation,
                pads=_conv_pads(g, config, kernel, dilation), group=int(g.shape_in[1]))
    inputs = [dw, g.constant(f"{name}/pointwise_kernel", pointwise)]
    if config["use_bias"]:
        inputs.append(g.constant(f"{name}/bias", weights[2]))
    pre = g.node("Conv", inputs, f"{name}/pre", kernel_shape=[1, 1])
    return _fused(g, config, pre, name, 1)


def _conv_transpose(g, name, config, weights, x):
    """ONNX's output: (in − 1)·s + output_padding + k − pad_begin − pad_end. The
    engine fixes the output size; "same" crops as TensorFlow's
    conv2d_transpose (Keras): total = (in − 1)·s + k − out, begin = total // 2,
    and a negative total (k < s) is extra rows at the end (output_padding)."""
    kernel, strides = weights[0].shape[2:], config["strides"]
    begin, end, extra = [], [], []
    for axis in range(2):
        size, out = g.shape_in[2 + axis], g.shape_out[1 + axis]
        if config["padding"] == "explicit":
            pad = config["pads"][2 * axis]
            begin.append(pad)
            end.append(pad)
            extra.append(out - ((size - 1) * strides[axis] + kernel[axis] - 2 * pad))
            continue
        total = (size - 1) * strides[axis] + kernel[axis] - out
        begin.append(max(total, 0) // 2)
        end.append(max(total, 0) - max(total, 0) // 2)
        extra.append(max(-total, 0))
    inputs = [x, g.constant(f"{name}/kernel", weights[0])]
    if config["use_bias"]:
        inputs.append(g.constant(f"{name}/bias", weights[1]))
    pre = g.node("ConvTranspose", inputs, f"{name}/pre", kernel_shape=list(kernel), strides=strides,
                 pads=begin + end, output_padding=extra)
    return _fused(g, config, pre, name, 1)


def _dense(g, name, config, weights, x):
    out = g.node("MatMul", [x, g.constant(f"{name}/kernel_t", weights[0].T)], f"{name}/matmul")
    if config["use_bias"]:
        out = g.node("Add", [out, g.constant(f"{name}/bias", weights[1])], f"{name}/pre")
    return _fused(g, config, out, name, -1)


def _pool(g, name, config, weights, x):
    kernel = config["kernel_size"]
    strides = config["strides"] or kernel
    h, w = g.shape_in[2:]
    if config["padding"] == "same":
        (t, b), (left, r) = _same_pads(h, kernel[0], strides[0]), _same_pads(w, kernel[1], strides[1])
        pads = [t, left, b, r]
    else:
        t, b, left, r = config["pads"]
        pads = [t, left, b, r]
    if config["kind"] == "max_pool2d":
        return g.node("MaxPool", [x], name, kernel_shape=kernel, strides=strides, pads=pads)
    # Keras's "same" averages only the cells inside the image; explicit
    # padding counts the padded zeros (PyTorch's count_include_pad).
    return g.node("AveragePool", [x], name, kernel_shape=kernel, strides=strides, pads=pads,
                  count_include_pad=int(config["padding"] == "explicit"))


def _batch_norm(g, name, config, weights, x):
    axis = config["axis"]
    if axis not in (1, -1) or (axis == -1 and len(g.shape_in) != 2):
        raise ValueError(f"export_onnx: layer '{name}' (batch_norm) normalises axis {axis} of a "
                         f"rank-{len(g.shape_in)} input; ONNX's BatchNormalization takes axis 1")
    named = dict(zip(g.weight_names, weights))
    channels = named["moving_mean"].shape
    gamma = named.get("gamma", np.ones(channels))
    beta = named.get("beta", np.zeros(channels))
    variance, epsilon = named["moving_variance"], float(config["epsilon"])
    if g.dtype == np.float64:
        # ONNX attributes are float32: a float64 model adds ε to the variance
        # in float64 here instead, as the engine does.
        variance, epsilon = variance + epsilon, 0.0
    inputs = [x] + [g.constant(f"{name}/{n}", v) for n, v in
                    (("gamma", gamma), ("beta", beta), ("moving_mean", named["moving_mean"]),
                     ("moving_variance", variance))]
    return g.node("BatchNormalization", inputs, name, epsilon=epsilon)


def _normalization(g, name, config, weights, x):
    mean, variance = (np.asarray(w, dtype=np.float64) for w in weights)
    scale = np.where(variance > 0, np.sqrt(variance), 1.0)  # a zero variance only centres
    shape = (-1,) + (1,) * (len(g.shape_in) - 2)
    centred = g.node("Sub", [x, g.constant(f"{name}/mean", mean.reshape(shape))], f"{name}/centred")
    return g.node("Div", [centred, g.constant(f"{name}/scale", scale.reshape(shape))], name)


def _reshape(g, name, config, weights, x):
    shape = g.constant(f"{name}/shape", [0, *g.shape_out], dtype=np.int64)  # 0 keeps the batch
    return g.node("Reshape", [x, shape], name)


def _zero_padding(g, name, config, weights, x):
    t, b, left, r = config["pads"]
    pads = g.constant(f"{name}/pads", [0, 0, t, left, 0, 0, b, r], dtype=np.int64)
    return g.node("Pad", [x, pads], name)


def _global_avg_pool(g, name, config, weights, x):
    pooled = g.node("GlobalAveragePool", [x], f"{name}/pooled")
    return g.node("Flatten", [pooled], name, axis=1)


def _global_max_pool1d(g, name, config, weights, x):
    """MaxPool over one window of the whole length (onnx's reference
    GlobalMaxPool does not keep float64)."""
    length = g.shape_in[2]
    pooled = g.node("MaxPool", [x], f"{name}/pooled", kernel_shape=[length], strides=[length])
    return g.node("Flatten", [pooled], name, axis=1)


def _pads_1d(g, config, kernel, stride, dilation):
    """[begin, end] of a 1-D layer: "same" by the Keras rule, "causal" all at the start."""
    if config["padding"] == "same":
        return list(_same_pads(g.shape_in[2], kernel, stride, dilation))
    if config["padding"] == "causal":
        return [(kernel - 1) * dilation, 0]
    return [0, 0]


def _conv1d(g, name, config, weights, x):
    (kernel,), (stride,), (dilation,) = weights[0].shape[2:], config["strides"], config["dilation"]
    inputs = [x, g.constant(f"{name}/kernel", weights[0])]
    if config["use_bias"]:
        inputs.append(g.constant(f"{name}/bias", weights[1]))
    pre = g.node("Conv", inputs, f"{name}/pre", kernel_shape=[kernel], strides=[stride],
                 dilations=[dilation], pads=_pads_1d(g, config, kernel, stride, dilation),
                 group=int(config["groups"]))
    return _fused(g, config, pre, name, 1)


def _max_pool1d(g, name, config, weights, x):
    (kernel,) = config["kernel_size"]
    (stride,) = config["strides"] or (kernel,)
    return g.node("MaxPool", [x], name, kernel_shape=[kernel], strides=[stride],
                  pads=_pads_1d(g, config, kernel, stride, 1))


def _avg_pool1d(g, name, config, weights, x):
    """count_include_pad=0: "same" windows average the steps inside only (Keras)."""
    (kernel,) = config["kernel_size"]
    (stride,) = config["strides"] or (kernel,)
    return g.node("AveragePool", [x], name, kernel_shape=[kernel], strides=[stride],
                  pads=_pads_1d(g, config, kernel, stride, 1), count_include_pad=0)


def _up_sampling(g, name, config, weights, x):
    """Nearest: each pixel repeated (floor of the asymmetric source coordinate);
    bilinear: half-pixel centres clamped at the edges, PyTorch's
    align_corners=False."""
    scales = g.constant(f"{name}/scales", [1.0, 1.0, *config["size"]], dtype=np.float32)
    if config["interpolation"] == "nearest":
        return g.node("Resize", [x, "", scales], name, mode="nearest",
                      coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    return g.node("Resize", [x, "", scales], name, mode="linear",
                  coordinate_transformation_mode="half_pixel")


def _embedding(g, name, config, weights, x):
    """Gather of the table's rows. The ids arrive as the model's floats and
    Cast truncates them to int64, exact for the whole numbers corenn accepts;
    ONNX does not refuse the others as the engine does (Gather fails only out
    of range)."""
    ids = g.node("Cast", [x], f"{name}/ids", to=g.onnx.TensorProto.INT64)
    return g.node("Gather", [g.constant(f"{name}/embeddings", weights[0]), ids], name, axis=0)


def _masking(g, name, config, weights, x):
    """y = x · keep, keep (N, T, 1) = 1 where some feature differs from
    mask_value: the steps Masking marks are zeroed. The mask itself has no ONNX
    form here (export_onnx refuses a model whose masks can reach a recurrent layer)."""
    value = g.constant(f"{name}/mask_value", np.array(config["mask_value"], dtype=g.dtype))
    differs = g.node("Not", [g.node("Equal", [x, value], f"{name}/equal")], f"{name}/differs")
    elem = g.onnx.helper.np_dtype_to_tensor_dtype(g.dtype)
    as_float = g.node("Cast", [differs], f"{name}/differs_float", to=elem)
    # How many features differ, as a product with ones (no opset-dependent Reduce).
    count = g.node("MatMul", [as_float, g.constant(f"{name}/ones", np.ones((g.shape_in[-1], 1)))], f"{name}/count")
    valid = g.node("Greater", [count, g.constant(f"{name}/half", np.array(0.5))], f"{name}/valid")
    keep = g.node("Cast", [valid], f"{name}/keep", to=elem)
    return g.node("Mul", [x, keep], name)


def _unit_normalization(g, name, config, weights, x):
    """x / max(√(Σ x² over the axis), epsilon). ReduceSum takes its axes as an
    input from opset 13 on (ReduceL2 only from 18), so every opset export_onnx
    writes reads it; the engine's axis counts the batch axis, as ONNX's."""
    axes = g.constant(f"{name}/axes", [int(config["axis"])], dtype=np.int64)
    squares = g.node("Mul", [x, x], f"{name}/squares")
    norm = g.node("Sqrt", [g.node("ReduceSum", [squares, axes], f"{name}/sum", keepdims=1)], f"{name}/norm")
    floor = g.node("Max", [norm, g.constant(f"{name}/epsilon", float(config["epsilon"]))], f"{name}/floor")
    return g.node("Div", [x, floor], name)


def _identity(g, name, config, weights, x):
    """Dropout and augmentation: identity at inference."""
    return g.node("Identity", [x], name)


# ONNX's gate orders, as indices into PyTorch's (LSTM i, f, g, o; GRU r, z, n):
# LSTM i, o, f, c and GRU z, r, h.
_ONNX_GATES = {"simple_rnn": ("RNN", [0]), "lstm": ("LSTM", [0, 3, 1, 2]), "gru": ("GRU", [1, 0, 2])}


def _recurrent(g, name, config, weights, x):
    """SimpleRNN, LSTM, GRU as ONNX's RNN, LSTM, GRU (time major: the sequence
    is transposed to (T, N, F) and back; the GRU's linear_before_reset=1 is
    PyTorch's). go_backwards reads a reversed copy, so the returned sequence
    stays in processing order, as the layer returns it. A layer returning its
    states (several outputs) or taking initial states is not exported."""
    if config["return_state"]:
        raise ValueError(f"export_onnx: layer '{name}' returns its states (return_state=True); "
                         f"only single-output layers are exported")
    op, order = _ONNX_GATES[config["kind"]]
    units = config["units"]

    def reorder(a):
        return a.reshape(len(order), units, *a.shape[1:])[order].reshape(a.shape)

    xt = g.node("Transpose", [x], f"{name}/time_major", perm=[1, 0, 2])
    if config["go_backwards"]:
        xt = g.node("Slice", [xt, g.constant(f"{name}/start", [-1], dtype=np.int64),
                              g.constant(f"{name}/end", [np.iinfo(np.int64).min], dtype=np.int64),
                              g.constant(f"{name}/axis", [0], dtype=np.int64),
                              g.constant(f"{name}/step", [-1], dtype=np.int64)], f"{name}/reversed")
    inputs = [xt, g.constant(f"{name}/W", reorder(weights[0])[None]),
              g.constant(f"{name}/R", reorder(weights[1])[None])]
    if config["use_bias"]:
        recurrent_bias = reorder(weights[3]) if op == "GRU" else np.zeros_like(weights[2])
        inputs.append(g.constant(f"{name}/B", np.concatenate([reorder(weights[2]), recurrent_bias])[None]))
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    y = g.node(op, inputs, f"{name}/y", hidden_size=int(units), **extra)  # (T, 1, N, H)
    if config["return_sequences"]:
        y = g.node("Squeeze", [y, g.constant(f"{name}/directions", [1], dtype=np.int64)], f"{name}/steps")
        return g.node("Transpose", [y], name, perm=[1, 0, 2])
    last = g.node("Gather", [y, g.constant(f"{name}/last", g.shape_in[1] - 1, dtype=np.int64)],
                  f"{name}/last_step", axis=0)
    # The index is stored as a 1-element tensor, so Gather keeps a step axis:
    # (1, 1, N, H) -> (N, H).
    return g.node("Squeeze", [last, g.constant(f"{name}/direction", [0, 1], dtype=np.int64)], name)


def _reverse_steps(g, name, x):
    """x (N, T, ...) with the steps in reverse order."""
    return g.node("Slice", [x, g.constant(f"{name}/start", [-1], dtype=np.int64),
                            g.constant(f"{name}/end", [np.iinfo(np.int64).min], dtype=np.int64),
                            g.constant(f"{name}/axis", [1], dtype=np.int64),
                            g.constant(f"{name}/step", [-1], dtype=np.int64)], name)


def _repeat_vector(g, name, config, weights, x):
    """(N, F) -> (N, 1, F), broadcast to (N, n, F)."""
    step = g.node("Unsqueeze", [x, g.constant(f"{name}/axis", [1], dtype=np.int64)], f"{name}/step")
    return g.node("Expand", [step, g.constant(f"{name}/shape", [1, *g.shape_out], dtype=np.int64)], name)


def _time_distributed(g, name, config, weights, x):
    """The steps folded into the batch, (N, T, ...) -> (N·T, ...), the inner
    layer's converter on that, and the steps unfolded (as the engine runs it)."""
    inner = config["layer"]
    if inner["kind"] not in CONVERTERS:
        raise ValueError(f"export_onnx: layer '{name}' wraps a {inner['kind']}, which has no ONNX converter")
    steps, outer = g.shape_in[1], (g.shape_in, g.shape_out)
    step_in, step_out = g.shape_in[2:], g.shape_out[1:]
    folded = g.node("Reshape", [x, g.constant(f"{name}/fold", [-1, *step_in], dtype=np.int64)], f"{name}/folded")
    g.shape_in, g.shape_out = (None, *step_in), tuple(step_out)
    y = CONVERTERS[inner["kind"]](g, f"{name}/{inner['name']}", inner, weights, folded)
    g.shape_in, g.shape_out = outer
    return g.node("Reshape", [y, g.constant(f"{name}/unfold", [-1, steps, *step_out], dtype=np.int64)], name)


def _bidirectional(g, name, config, weights, x):
    """Two ONNX recurrent nodes, one per direction (the backward one reads the
    reversed sequence; its returned sequence is reversed back into time
    order), then the merge. merge_mode None (two outputs) is not exported."""
    if config["merge_mode"] == "none":
        raise ValueError(f"export_onnx: layer '{name}' has merge_mode None (two outputs); "
                         f"only single-output layers are exported")
    forward = config["layer"]
    backward = config["backward_layer"] or {**forward, "go_backwards": not forward["go_backwards"]}
    split = sum(n.startswith("forward_") for n in g.weight_names)
    a = _recurrent(g, f"{name}/forward", forward, weights[:split], x)
    b = _recurrent(g, f"{name}/backward", backward, weights[split:], x)
    if forward["return_sequences"]:
        b = _reverse_steps(g, f"{name}/backward_in_time", b)
    mode = config["merge_mode"]
    if mode == "concat":
        return g.node("Concat", [a, b], name, axis=-1)
    if mode == "ave":
        total = g.node("Add", [a, b], f"{name}/sum")
        return g.node("Mul", [total, g.constant(f"{name}/half", 0.5)], name)
    return g.node({"sum": "Add", "mul": "Mul"}[mode], [a, b], name)


def _layer_norm(g, name, config, weights, x):
    """(x − μ)·(σ² + ε)^(−½)·γ + β over the last axis, the means as MatMuls by a
    (D, 1) column of 1/D (valid in every opset; LayerNormalization is opset 17+)."""
    D = g.shape_in[-1]
    column = g.constant(f"{name}/mean_column", np.full((D, 1), 1.0 / D))
    mean = g.node("MatMul", [x, column], f"{name}/mean")
    centred = g.node("Sub", [x, mean], f"{name}/centred")
    square = g.node("Mul", [centred, centred], f"{name}/square")
    var = g.node("MatMul", [square, column], f"{name}/variance")
    std = g.node("Sqrt", [g.node("Add", [var, g.constant(f"{name}/epsilon", config["epsilon"])], f"{name}/var_eps")],
                 f"{name}/std")
    out = g.node("Div", [centred, std], f"{name}/normed")
    params = iter(weights)
    if config["scale"]:
        out = g.node("Mul", [out, g.constant(f"{name}/gamma", next(params))], f"{name}/scaled")
    if config["center"]:
        out = g.node("Add", [out, g.constant(f"{name}/beta", next(params))], f"{name}/shifted")
    return g.node("Identity", [out], name)


def _positional_encoding(g, name, config, weights, x):
    """x + PE, the table from the formula (corenn/kernels/positional_encoding.hpp)."""
    T, D = g.shape_in[1:]
    i = np.arange(D) // 2
    angle = np.arange(T, dtype=np.float64)[:, None] / np.power(float(config["max_wavelength"]), 2.0 * i / D)
    table = np.where(np.arange(D) % 2 == 0, np.sin(angle), np.cos(angle))
    return g.node("Add", [x, g.constant(f"{name}/table", table)], name)


def _masked_softmax(g, name, scores, Tq, Tk, causal, mask=None):
    """Softmax over the keys of the allowed scores (the others −inf). ONNX
    Runtime gives NaN for a query with no allowed key, where corenn gives 0."""
    if mask is not None:
        scores = g.node("Where", [mask, scores, g.constant(f"{name}/minus_inf", -np.inf)], f"{name}/masked")
    if causal:
        lower = g.constant(f"{name}/causal", np.tril(np.ones((Tq, Tk), bool)), dtype=bool)
        scores = g.node("Where", [lower, scores, g.constant(f"{name}/causal_inf", -np.inf)], f"{name}/causal_scores")
    return g.node("Softmax", [scores], f"{name}/weights", axis=-1)


def _attention(g, name, config, weights, xs):
    """Attention and AdditiveAttention: the scores (dot: s·q kᵀ; Keras 3's
    concat: c·Σ_d tanh(s·(q + k)); additive: Σ_d w_d·tanh(q + k)), the softmax
    over the keys, times v; key = value when the layer has two inputs.
    Dropout is inert at inference."""
    if config["query_mask_input"] or config["value_mask_input"]:
        raise ValueError(f"export_onnx: layer '{name}' takes explicit masks (mask=[query_mask, value_mask]); "
                         f"only single-input models are exported")
    q, v = xs[0], xs[1]
    k = xs[2] if len(xs) == 3 else v
    (Tq, D), (Tk, _) = g.shapes_in[0][1:], g.shapes_in[1][1:]
    score = "additive" if config["kind"] == "additive_attention" else config["score_mode"]
    params = iter(weights)
    if score == "dot":
        scores = g.node("MatMul", [q, g.node("Transpose", [k], f"{name}/k_t", perm=[0, 2, 1])], f"{name}/scores")
        if config["use_scale"]:
            scores = g.node("Mul", [scores, g.constant(f"{name}/scale", next(params).reshape(()))], f"{name}/scaled")
    else:  # (N, Tq, 1, D) + (N, 1, Tk, D), tanh, then a (D, 1) column of weights
        q4 = g.node("Unsqueeze", [q, g.constant(f"{name}/key_axis", [2], dtype=np.int64)], f"{name}/q4")
        k4 = g.node("Unsqueeze", [k, g.constant(f"{name}/query_axis", [1], dtype=np.int64)], f"{name}/k4")
        total = g.node("Add", [q4, k4], f"{name}/sum")
        if score == "concat" and config["use_scale"]:
            total = g.node("Mul", [total, g.constant(f"{name}/scale", next(params).reshape(()))], f"{name}/scaled")
        if score == "concat":
            column = np.full((D, 1), next(params).reshape(()))
        else:
            column = (next(params) if config["use_scale"] else np.ones(D)).reshape(D, 1)
        tanh = g.node("Tanh", [total], f"{name}/tanh")
        scores = g.node("MatMul", [tanh, g.constant(f"{name}/score_weights", column)], f"{name}/scores4")
        scores = g.node("Squeeze", [scores, g.constant(f"{name}/unit_axis", [3], dtype=np.int64)], f"{name}/scores")
    weights_ = _masked_softmax(g, name, scores, Tq, Tk, config["use_causal_mask"])
    return g.node("MatMul", [weights_, v], name)


def _multi_head_attention(g, name, config, weights, xs):
    """The projections, the heads as an axis (N, H, T, d), softmax(QKᵀ/√d) V,
    the heads joined again and the output projection."""
    H, dk, dv = config["num_heads"], config["key_dim"], config["value_dim"] or config["key_dim"]
    Tq, Tk = g.shapes_in[0][1], g.shapes_in[1][1]
    params = iter(weights)

    def project(x, part):
        out = g.node("MatMul", [x, g.constant(f"{name}/{part}_kernel_t", next(params).T)], f"{name}/{part}_matmul")
        if config["use_bias"]:
            out = g.node("Add", [out, g.constant(f"{name}/{part}_bias", next(params))], f"{name}/{part}")
        return out

    def heads(x, part, steps, depth, perm):
        split = g.node("Reshape", [x, g.constant(f"{name}/{part}_split", [0, steps, H, depth], dtype=np.int64)],
                       f"{name}/{part}_split_heads")
        return g.node("Transpose", [split], f"{name}/{part}_heads", perm=perm)

    Q = heads(project(xs[0], "query"), "query", Tq, dk, [0, 2, 1, 3])   # (N, H, Tq, dk)
    K = heads(project(xs[2], "key"), "key", Tk, dk, [0, 2, 3, 1])       # (N, H, dk, Tk)
    V = heads(project(xs[1], "value"), "value", Tk, dv, [0, 2, 1, 3])   # (N, H, Tk, dv)
    scores = g.node("Mul", [g.node("MatMul", [Q, K], f"{name}/qk"), g.constant(f"{name}/scale", 1 / np.sqrt(dk))],
                    f"{name}/scores")
    mask = None
    if len(xs) == 4:  # (N, Tq, Tk), nonzero = attend, the same for every head
        allowed = g.node("Cast", [xs[3]], f"{name}/mask_bool", to=g.onnx.TensorProto.BOOL)
        mask = g.node("Unsqueeze", [allowed, g.constant(f"{name}/head_axis", [1], dtype=np.int64)], f"{name}/mask")
    weights_ = _masked_softmax(g, name, scores, Tq, Tk, config["use_causal_mask"], mask)
    joined = g.node("Transpose", [g.node("MatMul", [weights_, V], f"{name}/heads_out")], f"{name}/steps_heads",
                    perm=[0, 2, 1, 3])
    joined = g.node("Reshape", [joined, g.constant(f"{name}/join", [0, Tq, H * dv], dtype=np.int64)],
                    f"{name}/joined")
    return g.node("Identity", [project(joined, "output")], name)


def _dot(g, name, c, w, xs):
    """Dot as MatMul: input 0 as (N, M, K), input 1 as (N, K, N'), each
    reshaped (and transposed when its contracted axis is the other end);
    normalize divides by max(‖x‖, 1e-12) along the axis first, as the kernel."""
    operands = []
    for k, (x, shape, axis) in enumerate(zip(xs, g.shapes_in, c["axes"])):
        axis %= len(shape)  # Keras's axes count the batch axis, as shape does
        size = shape[axis]
        if c["normalize"]:
            axes = g.constant(f"{name}/axis{k}", [axis], dtype=np.int64)
            square = g.node("Mul", [x, x], f"{name}/square{k}")
            norm = g.node("Sqrt", [g.node("ReduceSum", [square, axes], f"{name}/sum{k}", keepdims=1)],
                          f"{name}/norm{k}")
            norm = g.node("Max", [norm, g.constant(f"{name}/eps{k}", np.array(1e-12, dtype=g.dtype))],
                          f"{name}/clamped{k}")
            x = g.node("Div", [x, norm], f"{name}/unit{k}")
        others = int(np.prod(shape[1:])) // size if size else 0
        first = axis == 1 and len(shape) > 2  # the contracted axis leads the example
        stored = [0, size, others] if first else [0, others, size]
        x = g.node("Reshape", [x, g.constant(f"{name}/shape{k}", stored, dtype=np.int64)], f"{name}/matrix{k}")
        if first == (k == 0):  # input 0 wants (M, K), input 1 (K, N')
            x = g.node("Transpose", [x], f"{name}/transposed{k}", perm=[0, 2, 1])
        operands.append(x)
    y = g.node("MatMul", operands, f"{name}/product")
    return g.node("Reshape", [y, g.constant(f"{name}/out_shape", [0, *g.shape_out], dtype=np.int64)], name)


def _multiply(g, name, c, w, xs):
    """ONNX's Mul takes two inputs: the product left to right, as the kernel's."""
    product = xs[0]
    for k, x in enumerate(xs[1:], start=1):
        product = g.node("Mul", [product, x], name if k == len(xs) - 1 else f"{name}/product{k}")
    return product


# One converter per layer kind: (graph, layer name, engine config, weights,
# input name(s)) -> output name. g.shape_in / g.shape_out are the layer's
# input and output shapes ((None, ...) in, per-example out).
CONVERTERS = {
    "dense": _dense,
    "activation": lambda g, name, c, w, x: _act_node(g, c["activation"], c["alpha"], x, name),
    "softmax": lambda g, name, c, w, x: g.node("Softmax", [x], name, axis=int(c["axis"])),
    "layer_norm": _layer_norm,
    "positional_encoding": _positional_encoding,
    "attention": _attention,
    "additive_attention": _attention,
    "multi_head_attention": _multi_head_attention,
    "dropout": _identity,
    "flatten": lambda g, name, c, w, x: g.node("Flatten", [x], name, axis=1),
    "reshape": _reshape,
    "conv2d": _conv,
    "depthwise_conv2d": _conv,
    "separable_conv2d": _separable,
    "conv2d_transpose": _conv_transpose,
    "max_pool2d": _pool,
    "avg_pool2d": _pool,
    "global_avg_pool2d": _global_avg_pool,
    "conv1d": _conv1d,
    "max_pool1d": _max_pool1d,
    "avg_pool1d": _avg_pool1d,
    "global_avg_pool1d": _global_avg_pool,
    "global_max_pool1d": _global_max_pool1d,
    "up_sampling2d": _up_sampling,
    "zero_padding2d": _zero_padding,
    "add": lambda g, name, c, w, xs: g.node("Sum", xs, name),
    "subtract": lambda g, name, c, w, xs: g.node("Sub", xs, name),
    "concatenate": lambda g, name, c, w, xs: g.node("Concat", xs, name, axis=int(c["axis"])),
    "dot": _dot,
    "multiply": _multiply,
    "average": lambda g, name, c, w, xs: g.node("Mean", xs, name),
    "maximum": lambda g, name, c, w, xs: g.node("Max", xs, name),
    "minimum": lambda g, name, c, w, xs: g.node("Min", xs, name),
    "batch_norm": _batch_norm,
    "normalization": _normalization,
    "unit_normalization": _unit_normalization,
    "random_flip": _identity,
    "random_crop": _identity,
    "color_shift": _identity,
    "embedding": _embedding,
    "masking": _masking,
    "simple_rnn": _recurrent,
    "lstm": _recurrent,
    "gru": _recurrent,
    "repeat_vector": _repeat_vector,
    "time_distributed": _time_distributed,
    "bidirectional": _bidirectional,
}
_MERGES = ("add", "subtract", "concatenate", "dot", "multiply", "average", "maximum", "minimum")
# Layers whose converter takes every input (the attention layers' query, value, key, mask).
_MULTI_INPUT = _MERGES + ("attention", "additive_attention", "multi_head_attention")
# Layers that read the masks of sequences (Keras's), which have no ONNX form here.
_MASK_READERS = ("attention", "additive_attention", "multi_head_attention")


def export_onnx(model, path, opset=17):
    """Write `model` as an ONNX file for inference (ONNX Runtime and others).

    The graph is the model at inference: Dropout and augmentation layers are
    Identity, batch norm uses its moving statistics (BatchNormalization),
    Normalization is (x − mean) / √variance. Inputs are NCHW (or (N, F)) as in
    corenn, the batch dimension is dynamic ("batch"), the element type is the
    model's dtype (float32 or float64), and the input and output are named
    after the model's Input and output layer. Keras "same" padding is written
    as explicit (possibly asymmetric) pads. opset: the ONNX operator set
    (>= 13); the file's IR version is the lowest that opset allows, so older
    runtimes read it. Needs the onnx package (pip install corenn[onnx]).
    Raises ValueError for a layer with no ONNX form (naming it), ImportError
    without onnx. Returns the path."""
    try:
        import onnx
    except ImportError:
        raise ImportError("export_onnx: needs the onnx package (pip install 'corenn[onnx]')") from None
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 13:
        raise ValueError(f"export_onnx: opset must be an int >= 13, got {opset!r}")
    if opset > onnx.defs.onnx_opset_version():
        raise ValueError(f"export_onnx: opset must be at most {onnx.defs.onnx_opset_version()}, the newest "
                         f"the installed onnx package knows, got {opset}")
    _validate.model("export_onnx", model)
    target = _validate.path("export_onnx", "path", path)
    model._ensure_built()
    engine = model._engine
    g = _Graph(onnx, model.dtype)
    input_name = engine.input_name
    shapes = {input_name: (None, *model.input_shape[1:])}
    # Each layer's inputs, from its call (layers called twice have no ONNX form here).
    calls = {name: [ref[0] for ref in refs] for name, refs in engine.nodes()}
    configs = [engine.layer_config(i) for i in range(len(model.layers))]
    makes_masks = [c["kind"] == "masking" or (c["kind"] == "embedding" and c["mask_zero"]) for c in configs]
    if any(makes_masks) and any(c["kind"] in (*_ONNX_GATES, *_MASK_READERS) for c in configs):
        raise ValueError("export_onnx: the model masks sequences (Embedding(mask_zero=True) or Masking) "
                         "and has recurrent or attention layers; masked steps have no ONNX form here")
    for i, layer in enumerate(model.layers):
        config = engine.layer_config(i)
        kind = config["kind"]
        if kind not in CONVERTERS:
            raise ValueError(f"export_onnx: layer '{layer.name}' ({type(layer).__name__}, kind "
                             f"{kind!r}) has no ONNX converter")
        inputs = calls[layer.name]
        if len(inputs) > 1 and kind not in _MULTI_INPUT:  # a recurrent layer's initial_state
            raise ValueError(f"export_onnx: layer '{layer.name}' takes {len(inputs)} inputs "
                             f"(an initial_state); only single-input layers are exported")
        g.shape_in = shapes[inputs[0]]
        g.shapes_in = [shapes[name] for name in inputs]
        g.shape_out = tuple(engine.output_shape(i))
        g.weight_names = list(engine.weight_names(i))
        x = inputs if kind in _MULTI_INPUT else inputs[0]
        out = CONVERTERS[kind](g, layer.name, config, layer.get_weights(), x)
        assert out == layer.name  # later layers refer to this output by the layer's name
        shapes[layer.name] = (None, *g.shape_out)
    output_layer = model.layers[engine.output_layer]
    elem = onnx.helper.np_dtype_to_tensor_dtype(model.dtype)
    graph = onnx.helper.make_graph(
        g.nodes, model.name,
        [onnx.helper.make_tensor_value_info(input_name, elem, ["batch", *model.input_shape[1:]])],
        [onnx.helper.make_tensor_value_info(output_layer.name, elem, ["batch", *model.output_shape[1:]])],
        initializer=g.initializers)
    opset_id = onnx.helper.make_opsetid("", opset)
    proto = onnx.helper.make_model(graph, opset_imports=[opset_id], producer_name="corenn")
    proto.ir_version = onnx.helper.find_min_ir_version_for([opset_id])
    onnx.checker.check_model(proto)
    onnx.save(proto, target)
    return path
