"""Attention workloads (course 5, week 4; ../shared/WORKLOADS.md):

- mha_b32: MultiHeadAttention(8 heads, key_dim 64) self-attention on
  (32, 128, 512), forward + backward (input and weight gradients);
- transformer_block_b32: one Adam training step of a post-norm transformer
  encoder block (MultiHeadAttention + residual + LayerNormalization, Dense 2048
  ReLU → Dense 512 + residual + LayerNormalization), the mean over time and
  Dense 10, on (32, 128, 512) with 10 classes.

corenn runs its layers through the model API (model.vjp for mha_b32,
train_on_batch for the block); PyTorch runs nn.MultiheadAttention
(batch_first=True) and nn.TransformerEncoderLayer (post-norm, ReLU, dropout 0)
with the same shapes. No NumPy side: a NumPy attention is its matrix products,
which the PyTorch side already measures against BLAS.
"""

import numpy as np

from steps import LR

BATCH, STEPS, WIDTH, HEADS, KEY_DIM, FF, CLASSES = 32, 128, 512, 8, 64, 2048, 10


def mha_forward_flops(batch=BATCH):
    """2·N·T·D·D per projection (4), 2·N·H·T·T·d for QKᵀ and again for P·V."""
    return 4 * 2 * batch * STEPS * WIDTH * WIDTH + 2 * 2 * batch * HEADS * STEPS * STEPS * KEY_DIM


def mha_fwdbwd_flops(batch=BATCH):
    return 3 * mha_forward_flops(batch)


def block_train_flops(batch=BATCH):
    """Forward: attention, the two feed-forward products and the classifier;
    backward at 2× forward (the input gradient of the first layer included:
    the residual needs it)."""
    forward = mha_forward_flops(batch) + 2 * 2 * batch * STEPS * WIDTH * FF + 2 * batch * WIDTH * CLASSES
    return 3 * forward


def _data(batch=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, STEPS, WIDTH), dtype=np.float32)
    dy = rng.standard_normal((batch, STEPS, WIDTH), dtype=np.float32)
    y = rng.integers(0, CLASSES, batch)
    return x, dy, y


# ====================================================================== corenn

def corenn_mha(batch=BATCH):
    import corenn as cn
    L = cn.layers
    cn.seed(0)
    x_in = L.Input((STEPS, WIDTH))
    model = cn.Model(x_in, L.MultiHeadAttention(HEADS, KEY_DIM)(x_in, x_in))
    x, dy, _ = _data(batch)

    def step():
        _, pullback = model.vjp(x, training=True)
        return pullback(dy)
    return step


def corenn_block_model():
    import corenn as cn
    L = cn.layers
    cn.seed(0)
    x_in = L.Input((STEPS, WIDTH))
    h = cn.applications.transformer_encoder(x_in, HEADS, FF, key_dim=KEY_DIM, epsilon=1e-5)
    # The mean over time as a frozen 1×1 convolution over the T steps read as channels.
    mean = L.Conv1D(1, 1, use_bias=False, trainable=False, name="mean_over_time")
    h = L.Dense(CLASSES)(L.Flatten()(mean(h)))
    model = cn.Model(x_in, h)
    mean.set_weights([np.full((1, STEPS, 1), 1.0 / STEPS, np.float32)])
    model.compile(optimizer=cn.optimizers.Adam(LR), loss="softmax_cross_entropy")
    return model


def corenn_block_train(batch=BATCH):
    import steps
    x, _, y = _data(batch)
    return steps.corenn_train_step(corenn_block_model(), x, y)


# ====================================================================== torch

def torch_mha(batch=BATCH):
    import torch
    torch.manual_seed(0)
    m = torch.nn.MultiheadAttention(WIDTH, HEADS, batch_first=True)
    x, dy, _ = _data(batch)
    xt, dyt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy)

    def step():
        m.zero_grad(set_to_none=True)
        xt.grad = None
        y, _ = m(xt, xt, xt, need_weights=False)
        y.backward(dyt)
        return xt.grad
    return step


def torch_block_train(batch=BATCH):
    import torch
    import steps

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.TransformerEncoderLayer(WIDTH, HEADS, FF, dropout=0.0, batch_first=True)
            self.head = torch.nn.Linear(WIDTH, CLASSES)

        def forward(self, x):
            return self.head(self.encoder(x).mean(dim=1))

    torch.manual_seed(0)
    model = Block()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    x, _, y = _data(batch)
    return steps.torch_train_step(model, opt, torch.from_numpy(x), torch.from_numpy(y))
