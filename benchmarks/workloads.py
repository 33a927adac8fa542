"""The benchmark workloads (../shared/WORKLOADS.md) for each side: corenn, NumPy, PyTorch.

A workload is a name, a FLOP count and one builder per side. A builder takes
the workload's parameters and returns ``step()``: a zero-argument callable that
does one unit of work (one training step, one forward call, one op call) and
returns something small (the loss, or the output) so nothing is optimised away.

Each side's imports happen inside its builders: a worker process imports only
the framework it times (corenn's libgomp and PyTorch's OpenMP runtime never
share a process). Adding a workload means: one ``Workload`` entry in
``WORKLOADS`` and one builder per side that can run it (a side without a
builder is reported as "n/a"); model workloads live in their own files
(workloads_cnn.py, workloads_resnet.py).
"""

import dataclasses
import math
from typing import Callable, Dict, Optional

import numpy as np

import steps
import workloads_attention as attn
import workloads_cnn as cnn
import workloads_detection as det
import workloads_recurrent as rnn
import workloads_resnet as resnet
from steps import BETA1, BETA2, EPS, LR, numpy_adam_update

# ----------------------------------------------------------------- shared specs

# The MLP of mlp_b64 / mlp_b512 / mlp_b1_infer: (in, out, activation) per Dense.
MLP_INPUT = (1, 28, 28)
MLP_LAYERS = [(784, 512, "relu"), (512, 256, "relu"), (256, 10, None)]
CLASSES = 10

DENSE_N, DENSE_IN, DENSE_OUT = 512, 784, 512   # x (512, 784), W (512, 784)
ADAM_ARRAYS, ADAM_SIZE = 5, 1_000_000          # five 1M-element float32 parameters
SGEMM_N = 2048                                 # the machine's reference rate: 2048³ float32


def mlp_forward_flops(batch):
    """2·N·in·out per Dense layer."""
    return sum(2 * batch * i * o for i, o, _ in MLP_LAYERS)


def train_flops(forward, first_layer_forward):
    """A training step's useful FLOPs: forward, then backward at 2× forward
    (input and weight gradients), except the first layer's input gradient,
    which nothing needs and no framework computes."""
    return 3 * forward - first_layer_forward


def mlp_train_flops(batch):
    i, o, _ = MLP_LAYERS[0]
    return train_flops(mlp_forward_flops(batch), 2 * batch * i * o)


def _data(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *MLP_INPUT), dtype=np.float32)
    y = rng.integers(0, CLASSES, size=batch, dtype=np.int64)
    return x, y


# ====================================================================== corenn

def _corenn_mlp():
    import corenn as cn
    cn.seed(0)
    L = cn.layers
    layers = [L.Input(MLP_INPUT), L.Flatten()]
    layers += [L.Dense(o, activation=a) for _, o, a in MLP_LAYERS]
    model = cn.Sequential(layers)
    model.build()  # the engine exists from here on (else on the first call)
    model.compile(optimizer=cn.optimizers.Adam(LR), loss="softmax_cross_entropy")
    return model


def corenn_train(batch, path="api"):
    return steps.corenn_train_step(_corenn_mlp(), *_data(batch), path)


def corenn_infer(batch, path="api"):
    return steps.corenn_infer_step(_corenn_mlp(), _data(batch)[0], path)


def _dense_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((DENSE_N, DENSE_IN), dtype=np.float32)
    W = rng.standard_normal((DENSE_OUT, DENSE_IN), dtype=np.float32) * 0.05
    b = rng.standard_normal(DENSE_OUT, dtype=np.float32)
    dy = rng.standard_normal((DENSE_N, DENSE_OUT), dtype=np.float32)
    return x, W, b, dy


def corenn_dense_forward():
    import corenn as cn
    x, W, b, _ = _dense_data()
    return lambda: cn.ops.dense_forward(x, W, b)


def corenn_dense_backward():
    import corenn as cn
    x, W, _, dy = _dense_data()
    return lambda: cn.ops.dense_backward(dy, x, W)


def _adam_data(seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(ADAM_SIZE, dtype=np.float32) for _ in range(ADAM_ARRAYS)]
    grads = [rng.standard_normal(ADAM_SIZE, dtype=np.float32) for _ in range(ADAM_ARRAYS)]
    return params, grads


def corenn_adam():
    import corenn as cn
    params, grads = _adam_data()
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    state = {"t": 0}
    adam_step = cn.ops.adam_step

    def step():
        state["t"] += 1
        t = state["t"]
        for p, g, m, v in zip(params, grads, ms, vs):
            adam_step(p, g, m, v, t, LR, BETA1, BETA2, EPS)
        return t
    return step


def _sgemm_data(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)
    b = rng.standard_normal((SGEMM_N, SGEMM_N), dtype=np.float32)
    return a, b


def corenn_sgemm():
    """corenn's own BLAS (scipy-openblas32) through dense_forward: a · bᵀ."""
    import corenn as cn
    a, b = _sgemm_data()
    return lambda: cn.ops.dense_forward(a, b)


# ======================================================================= NumPy
# Plain NumPy: matmul is BLAS, everything else hand-written array math.

class NumpyMLP:
    """Dense layers, ReLU, softmax cross-entropy and Adam in plain NumPy."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.params = []
        for i, o, _ in MLP_LAYERS:
            limit = math.sqrt(6.0 / (i + o))  # glorot_uniform, as corenn's Dense default
            self.params.append(rng.uniform(-limit, limit, (o, i)).astype(np.float32))
            self.params.append(np.zeros(o, np.float32))
        self.m = [np.zeros_like(p) for p in self.params]
        self.v = [np.zeros_like(p) for p in self.params]
        self.t = 0

    def forward(self, x):
        a = x.reshape(len(x), -1)
        acts = [a]
        for li, (_, _, act) in enumerate(MLP_LAYERS):
            W, b = self.params[2 * li], self.params[2 * li + 1]
            z = a @ W.T
            z += b
            if act == "relu":
                np.maximum(z, 0, out=z)
            a = z
            acts.append(a)
        return acts

    def train_step(self, x, y):
        acts = self.forward(x)
        logits = acts[-1]
        n = len(logits)
        # softmax cross-entropy, mean over the batch (log-sum-exp form)
        shifted = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - shifted[np.arange(n), y]))
        dz = e / s
        dz[np.arange(n), y] -= 1.0
        dz /= n
        grads = [None] * len(self.params)
        for li in range(len(MLP_LAYERS) - 1, -1, -1):
            W = self.params[2 * li]
            a_in = acts[li]
            grads[2 * li] = dz.T @ a_in
            grads[2 * li + 1] = dz.sum(axis=0)
            if li > 0:
                da = dz @ W
                da *= acts[li] > 0          # ReLU backward (acts[li] is the ReLU output)
                dz = da
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            numpy_adam_update(p, g, m, v, self.t)
        return loss


def numpy_train(batch):
    net = NumpyMLP()
    x, y = _data(batch)
    return lambda: net.train_step(x, y)


def numpy_infer(batch):
    net = NumpyMLP()
    x, _ = _data(batch)
    return lambda: net.forward(x)[-1]


def numpy_dense_forward():
    x, W, b, _ = _dense_data()
    return lambda: x @ W.T + b


def numpy_dense_backward():
    x, W, _, dy = _dense_data()
    return lambda: (dy @ W, dy.T @ x, dy.sum(axis=0))


def numpy_adam():
    params, grads = _adam_data()
    ms = [np.zeros_like(p) for p in params]
    vs = [np.zeros_like(p) for p in params]
    state = {"t": 0}

    def step():
        state["t"] += 1
        for p, g, m, v in zip(params, grads, ms, vs):
            numpy_adam_update(p, g, m, v, state["t"])
        return state["t"]
    return step


def numpy_sgemm():
    a, b = _sgemm_data()
    return lambda: a @ b.T


# ===================================================================== PyTorch
# Eager mode, torch.nn modules, torch.optim.Adam, zero_grad(set_to_none=True).

def _torch_mlp():
    import torch
    torch.manual_seed(0)
    mods = [torch.nn.Flatten()]
    for i, o, a in MLP_LAYERS:
        mods.append(torch.nn.Linear(i, o))
        if a == "relu":
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)


def torch_train(batch):
    import torch
    model = _torch_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, y = (torch.from_numpy(a) for a in _data(batch))
    return steps.torch_train_step(model, opt, x, y)


def torch_infer(batch):
    import torch
    return steps.torch_infer_step(_torch_mlp(), torch.from_numpy(_data(batch)[0]))


def torch_dense_forward():
    import torch
    x, W, b, _ = (torch.from_numpy(a) for a in _dense_data())
    F = torch.nn.functional

    def step():
        with torch.no_grad():
            return F.linear(x, W, b)
    return step


def torch_dense_backward():
    import torch
    x, W, _, dy = (torch.from_numpy(a) for a in _dense_data())

    def step():
        with torch.no_grad():
            return dy @ W, dy.t() @ x, dy.sum(0)
    return step


def torch_adam(variant="default"):
    """variant: "default" (foreach=None: PyTorch picks), "foreach", "fused"."""
    import torch
    params_np, grads_np = _adam_data()
    params = [torch.nn.Parameter(torch.from_numpy(p)) for p in params_np]
    for p, g in zip(params, grads_np):
        p.grad = torch.from_numpy(g)
    kwargs = {"foreach": {"default": None, "foreach": True, "fused": None}[variant]}
    if variant == "fused":
        kwargs["fused"] = True
    opt = torch.optim.Adam(params, lr=LR, betas=(BETA1, BETA2), eps=EPS, **kwargs)
    return lambda: opt.step()


def torch_adam_path():
    """Which implementation torch.optim.Adam uses by default for CPU tensors."""
    import torch
    p = torch.nn.Parameter(torch.zeros(4))
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach
        fused, foreach = _default_to_fused_or_foreach([p], differentiable=False, use_fused=False)
    except Exception as exc:  # private helper: report what we could not tell
        return f"unknown ({type(exc).__name__})"
    if fused:
        return "fused"
    return "foreach (multi-tensor)" if foreach else "for-loop (_single_tensor_adam)"


def torch_sgemm():
    import torch
    a, b = (torch.from_numpy(t) for t in _sgemm_data())
    return lambda: a @ b.t()


# ==================================================================== registry

@dataclasses.dataclass
class Workload:
    name: str
    kind: str                       # "train" (ms per step), "infer" (per call), "op", "sgemm"
    description: str
    flops: Optional[float]          # useful FLOPs per call (None: not FLOP-bound)
    sides: Dict[str, Callable]      # side -> builder() -> step
    bytes_moved: Optional[float] = None   # for memory-bound ops: bytes read + written per call
    bytes_note: Optional[str] = None      # how bytes_moved is counted, for the report
    quick_reps: int = 5             # minimum timed calls per process in --quick
    fixed_reps: Optional[int] = None  # long calls (sgemm): one warm-up call, then exactly this many


def _w(name, kind, description, flops, sides, **kw):
    return Workload(name, kind, description, flops, sides, **kw)


# Sides: "corenn", "numpy" and "torch" make the main table; any other side
# ("corenn_engine", "torch_fused", ...) is a labelled variant reported beside it.
MAIN_SIDES = ("corenn", "torch", "numpy")

WORKLOADS = {w.name: w for w in [
    _w("mlp_b64", "train", "MLP 784-512-256-10 training step, batch 64, Adam 1e-3",
       mlp_train_flops(64), {
           "corenn": lambda: corenn_train(64),
           "corenn_engine": lambda: corenn_train(64, "engine"),
           "numpy": lambda: numpy_train(64),
           "torch": lambda: torch_train(64)}),
    _w("mlp_b512", "train", "MLP 784-512-256-10 training step, batch 512, Adam 1e-3",
       mlp_train_flops(512), {
           "corenn": lambda: corenn_train(512),
           "corenn_engine": lambda: corenn_train(512, "engine"),
           "numpy": lambda: numpy_train(512),
           "torch": lambda: torch_train(512)}),
    _w("mlp_b1_infer", "infer", "MLP forward, batch 1, inference mode",
       mlp_forward_flops(1), {
           "corenn": lambda: corenn_infer(1),
           "corenn_engine": lambda: corenn_infer(1, "engine"),
           "numpy": lambda: numpy_infer(1),
           "torch": lambda: torch_infer(1)}, quick_reps=200),
    _w("dense_fwd", "op", "dense forward x (512, 784) · Wᵀ (784, 512) + b",
       2 * DENSE_N * DENSE_IN * DENSE_OUT, {
           "corenn": corenn_dense_forward, "numpy": numpy_dense_forward,
           "torch": torch_dense_forward}),
    _w("dense_bwd", "op", "dense backward: dx = dy·W, dW = dyᵀ·x, db = Σ dy (512×784, 512 out)",
       4 * DENSE_N * DENSE_IN * DENSE_OUT, {
           "corenn": corenn_dense_backward, "numpy": numpy_dense_backward,
           "torch": torch_dense_backward}),
    _w("adam_5x1M", "op", "Adam step over 5 × 1,000,000 float32 parameters",
       None, {
           "corenn": corenn_adam, "numpy": numpy_adam,
           "torch": lambda: torch_adam("default"),
           "torch_foreach": lambda: torch_adam("foreach"),
           "torch_fused": lambda: torch_adam("fused")},
       # read p, g, m, v; write p, m, v: 7 float32 per parameter
       bytes_moved=ADAM_ARRAYS * ADAM_SIZE * 7 * 4, bytes_note="7 floats/param"),
    _w("conv3x3_fwd", "op", "conv 3×3, 64→64, same padding, no bias, on (32, 64, 32, 32): forward",
       cnn.conv_flops(), {
           "corenn": lambda: cnn.corenn_conv(False), "numpy": lambda: cnn.numpy_conv(False),
           "torch": lambda: cnn.torch_conv(False)}),
    _w("conv3x3_fwdbwd", "op", "conv 3×3, 64→64 on (32, 64, 32, 32): forward + backward (dx, dW)",
       3 * cnn.conv_flops(), {
           "corenn": lambda: cnn.corenn_conv(True), "numpy": lambda: cnn.numpy_conv(True),
           "torch": lambda: cnn.torch_conv(True)}),
    _w("bn_fwdbwd", "op", "batch norm (training) on (32, 64, 32, 32): forward + backward (dx, dγ, dβ)",
       None, {
           "corenn": cnn.corenn_bn, "numpy": cnn.numpy_bn, "torch": cnn.torch_bn},
       bytes_moved=cnn.bn_bytes(), bytes_note="x, y, dy, x, dx: 5 floats/value"),
    _w("maxpool2_fwdbwd", "op", "max pool 2×2 on (32, 64, 32, 32): forward + backward (dx)",
       None, {"corenn": cnn.corenn_pool, "numpy": cnn.numpy_pool, "torch": cnn.torch_pool},
       bytes_moved=cnn.pool_bytes(), bytes_note="x, y, dy, dx: 2.5 floats/input value"),
    _w("lenet_b64", "train", "LeNet training step, batch 64, SGD 0.01 momentum 0.9",
       train_flops(cnn.lenet_forward_flops(64), cnn.lenet_first_layer_flops(64)), {
           "corenn": lambda: cnn.corenn_lenet_train(64), "numpy": lambda: cnn.numpy_lenet_train(64),
           "torch": lambda: cnn.torch_lenet_train(64)}),
    _w("lenet_b1_infer", "infer", "LeNet forward, batch 1, inference mode",
       cnn.lenet_forward_flops(1), {
           "corenn": lambda: cnn.corenn_lenet_infer(1), "numpy": lambda: cnn.numpy_lenet_infer(1),
           "torch": lambda: cnn.torch_lenet_infer(1)}, quick_reps=200),
    _w("resnet_small_b64", "train", "resnet_small training step (3×32×32, conv-BN-ReLU stems, "
       "3 residual blocks, 32 and 64 channels), batch 64, Adam 1e-3",
       train_flops(resnet.resnet_forward_flops(64), resnet.resnet_first_layer_flops(64)), {
           "corenn": lambda: resnet.corenn_resnet_train(64),
           "corenn_engine": lambda: resnet.corenn_resnet_train(64, "engine"),
           "numpy": lambda: resnet.numpy_resnet_train(64),
           "torch": lambda: resnet.torch_resnet_train(64)}),
    # The large-batch regime: 4× the images per step, the same model. NumPy is
    # not run (its batch-64 step already takes ~1.2 s: ~5 s a step here).
    _w("resnet_small_b256", "train", "resnet_small training step as resnet_small_b64, batch 256, "
       "Adam 1e-3",
       train_flops(resnet.resnet_forward_flops(256), resnet.resnet_first_layer_flops(256)), {
           "corenn": lambda: resnet.corenn_resnet_train(256),
           "corenn_engine": lambda: resnet.corenn_resnet_train(256, "engine"),
           "torch": lambda: resnet.torch_resnet_train(256)}, quick_reps=2),
    _w("resnet_small_b1_infer", "infer", "resnet_small forward, batch 1, inference mode",
       resnet.resnet_forward_flops(1), {
           "corenn": lambda: resnet.corenn_resnet_infer(1),
           "corenn_engine": lambda: resnet.corenn_resnet_infer(1, "engine"),
           "numpy": lambda: resnet.numpy_resnet_infer(1),
           "torch": lambda: resnet.torch_resnet_infer(1)}, quick_reps=50),
    _w("iou_2000x2000", "op", "IoU matrix of 2,000 × 2,000 corner boxes (float32)",
       None, {"corenn": det.corenn_iou, "numpy": det.numpy_iou, "torch": det.torch_iou},
       bytes_moved=det.iou_bytes(), bytes_note="the (N, M) float32 output"),
    _w("nms_10k", "op", "non-max suppression of 10,000 boxes at IoU 0.5 (float32)",
       None, {"corenn": det.corenn_nms, "numpy": det.numpy_nms, "onnxruntime": det.onnxruntime_nms}),
    _w("lstm_fwdbwd_b64", "op", "LSTM(256) kernels over T = 50 steps of 128 features, batch 64: "
       "forward + backward through time (input, state and weight gradients)",
       rnn.fwdbwd_flops("lstm", 64), {
           "corenn": lambda: rnn.corenn_fwdbwd("lstm"), "numpy": rnn.numpy_lstm_fwdbwd,
           "torch": lambda: rnn.torch_fwdbwd("lstm")}),
    _w("gru_fwdbwd_b64", "op", "GRU(256) kernels over T = 50 steps of 128 features, batch 64: "
       "forward + backward through time",
       rnn.fwdbwd_flops("gru", 64), {
           "corenn": lambda: rnn.corenn_fwdbwd("gru"), "torch": lambda: rnn.torch_fwdbwd("gru")}),
    _w("lstm_b1_infer", "op", "LSTM(256) kernel forward over T = 50 steps of 128 features, "
       "batch 1, inference (op level: the layer alone)",
       rnn.forward_flops("lstm", 1), {
           "corenn": rnn.corenn_lstm_infer, "numpy": rnn.numpy_lstm_infer,
           "torch": rnn.torch_lstm_infer}, quick_reps=50),
    _w("lstm_b64", "train", "LSTM(256) over T = 50 steps of 128 features, last step -> Dense 10: "
       "training step, batch 64, Adam 1e-3",
       rnn.train_flops("lstm", 64), {
           "corenn": lambda: rnn.corenn_model_train("lstm"), "numpy": lambda: rnn.numpy_model_train("lstm"),
           "torch": lambda: rnn.torch_model_train("lstm")}),
    _w("gru_b64", "train", "GRU(256) over T = 50 steps of 128 features, last step -> Dense 10: "
       "training step, batch 64, Adam 1e-3",
       rnn.train_flops("gru", 64), {
           "corenn": lambda: rnn.corenn_model_train("gru"), "numpy": lambda: rnn.numpy_model_train("gru"),
           "torch": lambda: rnn.torch_model_train("gru")}),
    _w("gru_b1_infer", "infer", "GRU(256) over T = 50 steps of 128 features -> Dense 10: forward, batch 1, "
       "inference mode (model level)",
       rnn.forward_flops("gru", 1) + 2 * rnn.UNITS * rnn.CLASSES, {
           "corenn": lambda: rnn.corenn_model_infer("gru"), "numpy": rnn.numpy_gru_infer,
           "torch": lambda: rnn.torch_model_infer("gru")}, quick_reps=50),
    _w("mha_b32", "op", "MultiHeadAttention(8 heads, key_dim 64) self-attention on (32, 128, 512): "
       "forward + backward (input and weight gradients)",
       attn.mha_fwdbwd_flops(), {"corenn": attn.corenn_mha, "torch": attn.torch_mha}),
    _w("transformer_block_b32", "train", "transformer encoder block (MultiHeadAttention(8, 64) + residual + "
       "LayerNormalization, Dense 2048 ReLU → Dense 512 + residual + LayerNormalization), mean over time, "
       "Dense 10: training step on (32, 128, 512), Adam 1e-3",
       attn.block_train_flops(), {"corenn": attn.corenn_block_train, "torch": attn.torch_block_train}),
    _w("sgemm", "sgemm", f"float32 matmul {SGEMM_N}³ (a · bᵀ), the machine's reference rate",
       2 * SGEMM_N ** 3, {
           "corenn": corenn_sgemm, "numpy": numpy_sgemm, "torch": torch_sgemm}, fixed_reps=3),
]}

# What each variant side is, for the report.
VARIANT_LABELS = {
    "corenn_engine": "corenn, engine call (model._engine.train_step / .predict: no Python-side "
                     "checks or casts)",
    "torch_foreach": "torch.optim.Adam(foreach=True)",
    "torch_fused": "torch.optim.Adam(fused=True)",
    "onnxruntime": "ONNX Runtime NonMaxSuppression (opset 17, one-node model, CPU)",
}


def framework_of(side):
    return side.split("_")[0]
