"""The course's CNN architectures (course 4), small by default and parameterised.

Blocks are functions on symbolic tensors (`h = residual_block(x, 32)`), so they
compose into any functional model; the model builders return a `cn.Model`.
All work on NCHW inputs. Layer names start with the block's `name`, so a
block's layers can be found again with `model.get_layer`.

- `residual_block`: ResNet's identity block, relu(x + F(x)), with a 1×1
  projection shortcut when the shape changes (course 4, week 2).
- `inception_module`: 1×1, 3×3 and 5×5 branches (the larger ones behind 1×1
  bottlenecks) and a pooling branch, concatenated along the channels.
- `depthwise_separable_block` (MobileNet v1) and `inverted_residual_block`
  (MobileNet v2: 1×1 expansion, depthwise 3×3, linear 1×1 projection, a
  residual connection when input and output shapes agree).
- `efficientnet_scaling`: the compound scaling rule d = α^φ, w = β^φ, r = γ^φ.
- `unet`: a contracting path, a Conv2DTranspose expanding path and skip
  concatenations, ending in per-pixel logits.
- `fully_convolutional`: a trained Conv → Flatten → Dense classifier as the
  equivalent fully convolutional model, which runs every sliding window of a
  larger image in one pass (course 4, week 3; OverFeat).
- Faces (course 4, week 4; from `corenn.faces`): `distance`, `choose_threshold`
  (verification, d(img1, img2) ≤ τ) and `Embedder` (recognition against a
  database of enrolled identities).
- `transformer_encoder` (course 5, week 4): multi-head self-attention and a
  position-wise feed-forward network, each with a residual connection and layer
  normalisation, on (None, T, D) sequences.
"""

import math

from . import _validate
from . import layers as L
from . import models
from .faces import Embedder, choose_threshold, distance  # noqa: F401  (re-exported)


def _prefix(name, kind):
    # Unnamed blocks count per kind like layers (res, res_1, ...; cn.clear_session restarts).
    return name if name is not None else L.unique_name(kind)


def _conv_bn(x, filters, kernel_size, name, strides=1, activation="relu", batch_norm=True):
    """Conv (no bias when batch norm follows: β plays its part), BN, activation."""
    h = L.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=not batch_norm,
                 name=f"{name}_conv")(x)
    if batch_norm:
        h = L.BatchNormalization(name=f"{name}_bn")(h)
    if activation is not None:
        h = L.Activation(activation, name=f"{name}_{activation}")(h)
    return h


def _channels(tensor):
    return L._symbolic("applications", tensor).shape[1]


# -------------------------------------------------------------------- ResNet

def residual_block(x, filters, strides=1, kernel_size=3, batch_norm=True, name=None):
    """relu(shortcut + BN(Conv(relu(BN(Conv(x)))))): the identity shortcut when
    x already has `filters` channels and strides is 1, else a 1×1 convolution
    (with BN) of the same stride: the projection shortcut."""
    name = _prefix(name, "res")
    h = _conv_bn(x, filters, kernel_size, f"{name}_a", strides=strides, batch_norm=batch_norm)
    h = _conv_bn(h, filters, kernel_size, f"{name}_b", activation=None, batch_norm=batch_norm)
    shortcut = x
    if strides != 1 or _channels(x) != filters:
        shortcut = _conv_bn(x, filters, 1, f"{name}_proj", strides=strides, activation=None,
                            batch_norm=batch_norm)
    h = L.Add(name=f"{name}_add")([h, shortcut])
    return L.Activation("relu", name=f"{name}_out")(h)


def resnet_small(input_shape=(3, 32, 32), classes=10, widths=(32, 64), blocks=(2, 1),
                 batch_norm=True, dtype="float32", name="resnet_small"):
    """The benchmark's small ResNet (WORKLOADS.md) by default: per stage a
    Conv-BN-ReLU stem, `blocks[i]` residual blocks of `widths[i]` channels, and
    a 2×2 max pool between stages; then global average pooling and the
    classifier (logits)."""
    if len(widths) != len(blocks) or not widths:
        raise ValueError(f"resnet_small: widths and blocks must be non-empty and of one length, "
                         f"got {widths!r} and {blocks!r}")
    x = L.Input(input_shape, name=f"{name}_input")
    h = x
    for stage, (width, count) in enumerate(zip(widths, blocks)):
        if stage > 0:
            h = L.MaxPool2D(2, name=f"{name}_pool{stage}")(h)
        h = _conv_bn(h, width, 3, f"{name}_stem{stage}", batch_norm=batch_norm)
        for b in range(count):
            h = residual_block(h, width, batch_norm=batch_norm, name=f"{name}_s{stage}b{b}")
    h = L.GlobalAveragePooling2D(name=f"{name}_gap")(h)
    out = L.Dense(classes, name=f"{name}_logits")(h)
    return models.Model(x, out, dtype=dtype, name=name)


# ----------------------------------------------------------------- Inception

def inception_module(x, f1, f3_reduce, f3, f5_reduce, f5, pool_proj, name=None):
    """Four branches concatenated along the channels: 1×1 (f1); 1×1 (f3_reduce)
    → 3×3 (f3); 1×1 (f5_reduce) → 5×5 (f5); 3×3 max pool (stride 1) → 1×1
    (pool_proj). The 1×1 bottlenecks cut the 5×5 branch's multiplies ~10×."""
    name = _prefix(name, "inception")

    def conv(h, filters, k, tag):
        return L.Conv2D(filters, k, padding="same", activation="relu", name=f"{name}_{tag}")(h)

    b1 = conv(x, f1, 1, "1x1")
    b3 = conv(conv(x, f3_reduce, 1, "3x3_reduce"), f3, 3, "3x3")
    b5 = conv(conv(x, f5_reduce, 1, "5x5_reduce"), f5, 5, "5x5")
    bp = conv(L.MaxPool2D(3, strides=1, padding="same", name=f"{name}_pool")(x), pool_proj, 1,
              "pool_proj")
    return L.Concatenate(axis=1, name=f"{name}_concat")([b1, b3, b5, bp])


def inception_small(input_shape=(3, 32, 32), classes=10, dtype="float32", name="inception_small"):
    """A stem convolution, two Inception modules around a max pool, global
    average pooling and the classifier."""
    x = L.Input(input_shape, name=f"{name}_input")
    h = L.Conv2D(16, 3, padding="same", activation="relu", name=f"{name}_stem")(x)
    h = inception_module(h, 8, 8, 16, 4, 8, 8, name=f"{name}_a")  # 40 channels
    h = L.MaxPool2D(2, name=f"{name}_pool")(h)
    h = inception_module(h, 16, 12, 24, 4, 8, 8, name=f"{name}_b")  # 56 channels
    h = L.GlobalAveragePooling2D(name=f"{name}_gap")(h)
    return models.Model(x, L.Dense(classes, name=f"{name}_logits")(h), dtype=dtype, name=name)


# ----------------------------------------------------------------- MobileNet

def depthwise_separable_block(x, filters, strides=1, batch_norm=True, name=None):
    """MobileNet v1: depthwise 3×3 (BN, ReLU) then pointwise 1×1 (BN, ReLU) —
    about 1/filters + 1/9 of a full 3×3 convolution's multiplies."""
    name = _prefix(name, "dwsep")
    h = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=not batch_norm,
                          name=f"{name}_dw")(x)
    if batch_norm:
        h = L.BatchNormalization(name=f"{name}_dw_bn")(h)
    h = L.Activation("relu", name=f"{name}_dw_relu")(h)
    return _conv_bn(h, filters, 1, f"{name}_pw", batch_norm=batch_norm)


def _width(filters, alpha):
    return max(1, int(round(filters * alpha)))


def mobilenet_v1(input_shape=(3, 32, 32), classes=10, alpha=1.0,
                 blocks=((32, 1), (64, 2), (64, 1), (128, 2)), dtype="float32", name="mobilenet_v1"):
    """A stride-2 stem then depthwise-separable blocks (filters, stride), each
    width multiplied by alpha (MobileNet's width multiplier)."""
    x = L.Input(input_shape, name=f"{name}_input")
    h = _conv_bn(x, _width(16, alpha), 3, f"{name}_stem")
    for i, (filters, strides) in enumerate(blocks):
        h = depthwise_separable_block(h, _width(filters, alpha), strides, name=f"{name}_b{i}")
    h = L.GlobalAveragePooling2D(name=f"{name}_gap")(h)
    return models.Model(x, L.Dense(classes, name=f"{name}_logits")(h), dtype=dtype, name=name)


def inverted_residual_block(x, filters, expansion=6, strides=1, name=None):
    """MobileNet v2: 1×1 expansion to expansion·C (BN, ReLU), depthwise 3×3
    (BN, ReLU), linear 1×1 projection to `filters` (BN, no activation: a ReLU
    would destroy information in the narrow layer), plus x when the shapes allow."""
    name = _prefix(name, "invres")
    channels = _channels(x)
    h = x
    if expansion != 1:
        h = _conv_bn(h, channels * expansion, 1, f"{name}_expand")
    h = L.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(h)
    h = L.BatchNormalization(name=f"{name}_dw_bn")(h)
    h = L.Activation("relu", name=f"{name}_dw_relu")(h)
    h = _conv_bn(h, filters, 1, f"{name}_project", activation=None)
    if strides == 1 and channels == filters:
        h = L.Add(name=f"{name}_add")([h, x])
    return h


def mobilenet_v2(input_shape=(3, 32, 32), classes=10, alpha=1.0, expansion=6,
                 blocks=((16, 1, 1), (24, 2, 2), (32, 2, 2)), dtype="float32", name="mobilenet_v2"):
    """A stem then stages (filters, repeats, first stride) of inverted residual
    blocks, a 1×1 convolution and the classifier."""
    x = L.Input(input_shape, name=f"{name}_input")
    h = _conv_bn(x, _width(16, alpha), 3, f"{name}_stem")
    for s, (filters, repeats, strides) in enumerate(blocks):
        for r in range(repeats):
            h = inverted_residual_block(h, _width(filters, alpha), expansion if s or r else 1,
                                        strides if r == 0 else 1, name=f"{name}_s{s}r{r}")
    h = _conv_bn(h, _width(64, alpha), 1, f"{name}_head")
    h = L.GlobalAveragePooling2D(name=f"{name}_gap")(h)
    return models.Model(x, L.Dense(classes, name=f"{name}_logits")(h), dtype=dtype, name=name)


# -------------------------------------------------------------- EfficientNet

def efficientnet_scaling(phi, alpha=1.2, beta=1.1, gamma=1.15):
    """EfficientNet's compound scaling: depth ×α^φ, width ×β^φ, resolution ×γ^φ
    (α·β²·γ² ≈ 2, so each step of φ about doubles the FLOPs). Returns the three
    multipliers."""
    if phi < 0:
        raise ValueError(f"efficientnet_scaling: phi must be >= 0, got {phi}")
    return alpha ** phi, beta ** phi, gamma ** phi


def efficientnet(phi=0, classes=10, base_resolution=32, channels=3,
                 blocks=((16, 1, 1), (24, 2, 2), (40, 2, 2)), alpha=1.2, beta=1.1, gamma=1.15,
                 dtype="float32", name=None):
    """A small MobileNet-v2-style base scaled by efficientnet_scaling(phi):
    repeats ×depth (rounded up), filters ×width (rounded), input side ×resolution
    (rounded to a multiple of 4, the base's total stride)."""
    depth, width, resolution = efficientnet_scaling(phi, alpha, beta, gamma)
    side = 4 * max(1, int(round(base_resolution * resolution / 4)))
    scaled = tuple((_width(f, width), int(math.ceil(r * depth)), s) for f, r, s in blocks)
    return mobilenet_v2((channels, side, side), classes, alpha=width, blocks=scaled, dtype=dtype,
                        name=name or f"efficientnet_phi{phi}")


# --------------------------------------------------------------------- U-Net

def unet(input_shape=(1, 32, 32), classes=1, filters=8, depth=2, dtype="float32", name="unet"):
    """Contracting path: per level two 3×3 same convolutions (ReLU) and a 2×2
    max pool, doubling the filters; expanding path: a 2×2 stride-2
    Conv2DTranspose, concatenation with the matching contracting output (the
    skip connection) and two convolutions; a final 1×1 convolution gives
    `classes` logits per pixel, shape (classes, H, W). For binary masks train
    with loss="binary_cross_entropy" on (N, 1, H, W) targets."""
    side = input_shape[1:]
    if any(s % (2 ** depth) for s in side):
        raise ValueError(f"unet: height and width must be divisible by 2**depth = {2 ** depth}, "
                         f"got input_shape {tuple(input_shape)}")

    def double_conv(h, f, tag):
        h = L.Conv2D(f, 3, padding="same", activation="relu", name=f"{name}_{tag}_conv1")(h)
        return L.Conv2D(f, 3, padding="same", activation="relu", name=f"{name}_{tag}_conv2")(h)

    x = L.Input(input_shape, name=f"{name}_input")
    skips, h = [], x
    for level in range(depth):
        h = double_conv(h, filters * 2 ** level, f"down{level}")
        skips.append(h)
        h = L.MaxPool2D(2, name=f"{name}_down{level}_pool")(h)
    h = double_conv(h, filters * 2 ** depth, "bottom")
    for level in reversed(range(depth)):
        f = filters * 2 ** level
        h = L.Conv2DTranspose(f, 2, strides=2, name=f"{name}_up{level}_transpose")(h)
        h = L.Concatenate(axis=1, name=f"{name}_up{level}_concat")([h, skips[level]])
        h = double_conv(h, f, f"up{level}")
    out = L.Conv2D(classes, 1, name=f"{name}_logits")(h)
    return models.Model(x, out, dtype=dtype, name=name)


# ----------------------------------------------- convolutional sliding windows

# The layers that slide with the window: rebuilt as they are, same weights.
_SLIDING = (L.Conv2D, L.DepthwiseConv2D, L.SeparableConv2D, L.MaxPooling2D, L.AveragePooling2D,
            L.BatchNormalization, L.Activation, L.Dropout)
# The layers of the head after the first Dense (which must directly follow Flatten).
_HEAD = (L.Dense, L.Activation, L.Dropout)


def transformer_encoder(x, num_heads, ff_dim, key_dim=None, epsilon=1e-5, attention_mask=None,
                        use_causal_mask=False, name=None):
    """The transformer's encoder block (Vaswani et al. 2017, section 3.1; post-norm,
    as the paper, PyTorch's nn.TransformerEncoderLayer(norm_first=False) and
    the course) on a sequence x (None, T, D):
        h = LayerNormalization(x + MultiHeadAttention(x, x))
        y = LayerNormalization(h + Dense(D)(Dense(ff_dim, relu)(h)))
    key_dim defaults to D // num_heads (ValueError unless num_heads divides D);
    attention_mask (None, T, T), nonzero = attend, and use_causal_mask pass to
    the attention; epsilon is the layer norms' (PyTorch's and keras_hub's 1e-5).
    Layers are named <name>_mha, <name>_add1, <name>_ln1, <name>_ff1,
    <name>_ff2, <name>_add2, <name>_ln2. Returns y (None, T, D)."""
    name = _prefix(name, "transformer")
    x = L._symbolic("transformer_encoder", x)
    shape = x.shape
    if len(shape) != 3:
        raise ValueError(f"transformer_encoder: x must be a sequence (None, timesteps, features), got shape {shape}")
    width = shape[-1]
    num_heads = _validate.integer("transformer_encoder", "num_heads", num_heads, minimum=1)
    ff_dim = _validate.integer("transformer_encoder", "ff_dim", ff_dim, minimum=1)
    if key_dim is None:
        if width % num_heads:
            raise ValueError(f"transformer_encoder: num_heads must divide the model width {width} "
                             f"(key_dim = width / num_heads), got num_heads={num_heads}")
        key_dim = width // num_heads
    attention = L.MultiHeadAttention(num_heads, key_dim, name=f"{name}_mha")(
        x, x, attention_mask=attention_mask, use_causal_mask=use_causal_mask)
    h = L.LayerNormalization(epsilon=epsilon, name=f"{name}_ln1")(L.Add(name=f"{name}_add1")([x, attention]))
    f = L.Dense(ff_dim, activation="relu", name=f"{name}_ff1")(h)
    f = L.Dense(width, name=f"{name}_ff2")(f)
    return L.LayerNormalization(epsilon=epsilon, name=f"{name}_ln2")(L.Add(name=f"{name}_add2")([h, f]))


def fully_convolutional(model, input_shape, name=None):
    """The convolutional implementation of sliding windows (course 4, week 3;
    Sermanet et al. 2014, OverFeat): `model`, a cn.Sequential classifier

        [Conv2D | DepthwiseConv2D | SeparableConv2D | MaxPooling2D |
         AveragePooling2D | BatchNormalization(axis=1) | Activation | Dropout]*
        → Flatten → Dense → [Dense | Activation | Dropout]*

    on inputs (C, H, W), becomes a cn.Sequential on inputs `input_shape` =
    (C, H_big, W_big) whose output (N, classes, S_h, S_w) holds, in cell (i, j),
    the original model's output on the H×W window at (i·s, j·s), s being the
    product of the strides before Flatten (the pools' and convolutions'), with
    S = (H_big − H) // s + 1 per side: the windows share the convolutions
    instead of recomputing them.

    The first Dense becomes a Conv2D whose kernel covers Flatten's input
    (C', H', W'): its weights (units, C'·H'·W') reshape exactly to
    (units, C', H', W') as Flatten reads NCHW in C order. Every later Dense
    becomes a 1×1 Conv2D (weights (units, in, 1, 1)); activations (fused ones
    too) and Dropout are kept, softmax then normalising over the channels of each
    cell. The layers before Flatten are rebuilt from their configurations with
    the same weights and names. The cells equal the windows' predictions
    exactly when those layers use "valid" padding; with "same" padding the
    border cells see the image's neighbouring pixels where the original saw zeros.

    Returns a new built model of `model`'s dtype (named `name`, default
    model.name + "_fcn"); `model` is unchanged. Raises TypeError when model is
    not a cn.Sequential, ValueError naming the first layer outside the pattern,
    for a model without an input shape, and for an input_shape of another rank or channel
    count than the model's input or smaller than it.
    """
    where = "fully_convolutional"
    if not isinstance(model, models.Sequential):
        raise TypeError(f"{where}: model must be a cn.Sequential, got {type(model).__name__}")
    model._ensure_built()  # a model given its Input but not run yet builds (and initialises) here
    original = tuple(model.input.shape[1:])
    big = _validate.shape(where, "input_shape", input_shape)
    if len(original) != 3:
        raise ValueError(f"{where}: model '{model.name}' must take images (C, H, W), "
                         f"it takes {original}")
    if len(big) != 3 or big[0] != original[0] or big[1] < original[1] or big[2] < original[2]:
        raise ValueError(f"{where}: input_shape must be (C, H, W) with C = {original[0]} and H, W "
                         f"at least the model's input {original[1:]}, got {big}")

    layers = model.layers
    flat = next((i for i, layer in enumerate(layers) if isinstance(layer, L.Flatten)), None)
    if flat is None or flat + 1 == len(layers) or not isinstance(layers[flat + 1], L.Dense):
        raise ValueError(f"{where}: model '{model.name}' must end in Flatten → Dense → "
                         "[Dense | Activation | Dropout]*; "
                         + ("it has no Flatten" if flat is None else
                            f"Flatten '{layers[flat].name}' is not followed by a Dense"))
    for layer in layers[:flat]:
        if not isinstance(layer, _SLIDING) or (isinstance(layer, L.BatchNormalization)
                                               and layer.axis != 1):
            raise ValueError(f"{where}: cannot convert {type(layer).__name__} '{layer.name}' "
                             "before Flatten; expected convolutions, pools, BatchNormalization "
                             "(axis=1), Activation or Dropout")
    for layer in layers[flat + 2:]:
        if not isinstance(layer, _HEAD):
            raise ValueError(f"{where}: cannot convert {type(layer).__name__} '{layer.name}' "
                             "after Flatten; expected Dense, Activation or Dropout")

    flat_input = layers[flat - 1].output.shape[1:] if flat else original
    rebuilt, weights, features = [], [], None
    for layer in layers[:flat]:
        rebuilt.append(type(layer).from_config(layer.get_config()))
        weights.append(layer.get_weights())
    for layer in layers[flat + 1:]:
        if isinstance(layer, L.Dense):
            # The first Dense sees all of Flatten's input; later ones one cell's features.
            kernel = (flat_input[1], flat_input[2]) if features is None else (1, 1)
            config = {**layer.get_config(), "filters": layer.units, "kernel_size": list(kernel)}
            rebuilt.append(L.Conv2D.from_config(config))
            w = layer.get_weights()
            channels = flat_input[0] if features is None else features
            weights.append([w[0].reshape(layer.units, channels, *kernel), *w[1:]])
            features = layer.units
        else:
            rebuilt.append(type(layer).from_config(layer.get_config()))
            weights.append(layer.get_weights())

    fcn = models.Sequential([L.Input(big), *rebuilt], dtype=model.dtype.name,
                            name=name or f"{model.name}_fcn")
    fcn.build()
    for layer, w in zip(rebuilt, weights):
        if w:
            layer.set_weights(w)
    return fcn


__all__ = ["depthwise_separable_block", "efficientnet", "efficientnet_scaling",
           "fully_convolutional", "inception_module", "inception_small", "inverted_residual_block",
           "mobilenet_v1", "mobilenet_v2", "residual_block", "resnet_small", "transformer_encoder", "unet"]
