"""Small functional graphs written out by hand, float64: the oracle of
tests/test_graph_engine.py (issue 14). Each graph is a forward/backward pair
built from the single-op references beside this file (dense, conv, batch_norm,
pool, merge, activation, loss); the backward applies the chain rule node by
node in reverse order, and at every fork it adds what each use sends back:

- a layer called k times (shared weights) gets the SUM of its k calls' weight
  gradients, ∂J/∂W = Σ_calls ∂J/∂W|call (the total derivative through every
  path that reads W; PyTorch's autograd accumulates .grad the same way);
- a tensor read by several layers gets the sum of their input gradients.

Weights are given as {layer name: [arrays in get_weights order]}:
Dense [W (out, in), b (out,)] (Z = X·Wᵀ + b), Conv2D [W (O, C, KH, KW), b (O,)],
BatchNormalization [gamma, beta, moving_mean, moving_variance] (C,) each.
Gradients come back as {layer name: [arrays]} for the TRAINABLE weights only,
in the same order ([dW, db]; [dgamma, dbeta]): model.trainable_weights' order.

Losses (corenn.losses; reference/loss.py gives each value and gradient):
    softmax_cross_entropy  int class ids (N,); mean over the batch
    binary_cross_entropy   0/1 targets (N, K) on logits; Σ over K, mean over N
    mse                    mean over all elements
A model's loss is Σ_k w_k · J_k over the outputs that have one (loss_weights
w_k, default 1); its gradient reaching output k is w_k · ∂J_k/∂ŷ_k.
"""

import numpy as np

from . import activation as act_ref
from . import batch_norm as bn_ref
from . import conv as conv_ref
from . import dense as dense_ref
from . import loss as loss_ref
from . import merge as merge_ref
from . import pool as pool_ref


# --------------------------------------------------------------- single nodes
def dense_node(x, weights, activation="linear"):
    """A = g(X·Wᵀ + b); returns (A, cache)."""
    z = dense_ref.dense_forward(x, *weights)
    a = act_ref.activation_forward(z, activation)
    return a, (x, weights[0], z, a, activation)


def dense_node_backward(da, cache):
    """dZ = dA ⊙ g'(Z); (dX, [dW, db])."""
    x, W, z, a, activation = cache
    dz = act_ref.activation_backward(da, z, a, activation)
    dx, dW, db = dense_ref.dense_backward(dz, x, W)
    return dx, [dW, db]


def conv_node(x, weights, activation="linear"):
    """A = g(conv2d(X, W) + b), stride 1, no padding (Conv2D's defaults)."""
    z = conv_ref.conv2d_forward(x, *weights)
    a = act_ref.activation_forward(z, activation)
    return a, (x, weights[0], z, a, activation)


def conv_node_backward(da, cache):
    x, W, z, a, activation = cache
    dz = act_ref.activation_backward(da, z, a, activation)
    dx, dW, db = conv_ref.conv2d_backward(dz, x, W)
    return dx, [dW, db]


def add_grads(total, grads):
    """Accumulate one call's weight gradients into a shared layer's sum."""
    return [g.copy() for g in grads] if total is None else [t + g for t, g in zip(total, grads)]


# --------------------------------------------------------------------- losses
def output_loss(kind, y_pred, y_true):
    """(J, ∂J/∂ŷ) of one output under a built-in loss, by its corenn name."""
    if kind == "softmax_cross_entropy":
        return loss_ref.softmax_cross_entropy(y_pred, np.asarray(y_true, np.int64))
    if kind == "binary_cross_entropy":
        return loss_ref.sigmoid_cross_entropy(y_pred, y_true)
    if kind == "mse":
        return loss_ref.mse(y_pred, y_true)
    raise ValueError(f"unknown loss {kind!r}")


def total_loss(kinds, loss_weights, outputs, targets):
    """J = Σ_k w_k J_k (kind None: no loss, no gradient for that output);
    returns (J, [J_k or nan], [w_k ∂J_k/∂ŷ_k])."""
    total, per_output, douts = 0.0, [], []
    for kind, w, y_pred, y_true in zip(kinds, loss_weights, outputs, targets):
        if kind is None:
            per_output.append(float("nan"))
            douts.append(np.zeros_like(y_pred))
            continue
        j, g = output_loss(kind, y_pred, y_true)
        total += w * j
        per_output.append(j)
        douts.append(w * g)
    return total, per_output, douts


# ------------------------------------------- (a) one encoder over k inputs
# x_i -> enc (shared: Dense(relu), or Conv2D(relu) then Flatten) -> e_i;
# c = Concatenate([e_1, ..., e_k]); out = head(c) = c·W_hᵀ + b_h.

def shared_tower_forward(params, xs, encoder="dense"):
    node = dense_node if encoder == "dense" else conv_node
    calls = [node(x, params["enc"], "relu") for x in xs]
    es = [a.reshape(len(a), -1) for a, _ in calls]  # Flatten (a no-op for Dense)
    c = merge_ref.concat_forward(es, axis=1)
    out, head_cache = dense_node(c, params["head"])
    return out, (encoder, calls, es, head_cache)


def shared_tower_backward(cache, dout):
    """(grads, [dx_i]): d enc = Σ over the k calls."""
    encoder, calls, es, head_cache = cache
    dc, dhead = dense_node_backward(dout, head_cache)
    back = dense_node_backward if encoder == "dense" else conv_node_backward
    denc, dxs = None, []
    for de, (a, call_cache) in zip(merge_ref.concat_backward(dc, [e.shape[1] for e in es], axis=1),
                                   calls):
        dx, dw = back(de.reshape(a.shape), call_cache)
        denc = add_grads(denc, dw)
        dxs.append(dx)
    return {"enc": denc, "head": dhead}, dxs


# -------------------------------------------- (b) two inputs, two outputs
# ha = Dense "da" (relu)(a);  hb = Dense "db" (sigmoid)(b)
# s = Add([ha, hb]);  c = Concatenate([s, b])
# same = Dense "same"(c)   (logits: binary_cross_entropy)
# reg  = Dense "reg"(hb)   (regression: mse)
# hb feeds s and reg, b feeds db and c: both forks are summed in backward.

def two_in_two_out_forward(params, xs):
    a, b = xs
    ha, da_cache = dense_node(a, params["da"], "relu")
    hb, db_cache = dense_node(b, params["db"], "sigmoid")
    s = merge_ref.add_forward([ha, hb])
    c = merge_ref.concat_forward([s, b], axis=1)
    same, same_cache = dense_node(c, params["same"])
    reg, reg_cache = dense_node(hb, params["reg"])
    return [same, reg], (da_cache, db_cache, same_cache, reg_cache, s.shape[1], b.shape[1])


def two_in_two_out_backward(cache, douts):
    da_cache, db_cache, same_cache, reg_cache, s_width, b_width = cache
    dsame, dreg = douts
    dc, g_same = dense_node_backward(dsame, same_cache)
    dhb_from_reg, g_reg = dense_node_backward(dreg, reg_cache)
    ds, db_from_c = merge_ref.concat_backward(dc, [s_width, b_width], axis=1)
    dha, dhb_from_s = merge_ref.add_backward(ds, 2)
    dxa, g_da = dense_node_backward(dha, da_cache)
    dxb_from_db, g_db = dense_node_backward(dhb_from_s + dhb_from_reg, db_cache)
    grads = {"da": g_da, "db": g_db, "same": g_same, "reg": g_reg}
    return grads, [dxa, dxb_from_db + db_from_c]


# ------------------------------------ (c) conv -> batch norm -> pool -> dense
# z = Conv2D "conv" (relu)(x);  y = BatchNormalization "bn"(z) (axis 1);
# p = MaxPooling2D(2)(y);  out = Dense "out"(Flatten(p)).
# training: BN normalises with the batch's statistics (which depend on x);
# inference: with moving_mean / moving_variance (constants).

def conv_bn_pool_dense_forward(params, x, training, epsilon=1e-3):
    z, conv_cache = conv_node(x, params["conv"], "relu")
    gamma, beta, moving_mean, moving_var = params["bn"]
    y, mean, invstd, _, _ = bn_ref.batch_norm_forward(z, gamma, beta, moving_mean, moving_var,
                                                      training, eps=epsilon)
    p, argmax = pool_ref.max_pool2d_forward(y, 2)
    out, out_cache = dense_node(p.reshape(len(p), -1), params["out"])
    return out, (conv_cache, z, gamma, mean, invstd, training, argmax, y.shape, p.shape, out_cache)


def conv_bn_pool_dense_backward(cache, dout):
    conv_cache, z, gamma, mean, invstd, training, argmax, y_shape, p_shape, out_cache = cache
    dflat, g_out = dense_node_backward(dout, out_cache)
    dy = pool_ref.max_pool2d_backward(dflat.reshape(p_shape), argmax, y_shape)
    dz, dgamma, dbeta = bn_ref.batch_norm_backward(dy, z, gamma, mean, invstd, training)
    dx, g_conv = conv_node_backward(dz, conv_cache)
    return {"conv": g_conv, "bn": [dgamma, dbeta], "out": g_out}, dx
