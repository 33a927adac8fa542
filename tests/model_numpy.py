"""A plain NumPy multi-layer perceptron assembled from the reference formulas in
tests/reference (dense, activation, loss, optim): the oracle for whole-model
tests. float64 throughout; weights in Keras order [W1, b1, W2, b2, ...] with
W of shape (units, in) as in corenn."""

import numpy as np

from reference import activation as ref_act
from reference import dense as ref_dense
from reference import loss as ref_loss
from reference import optim as ref_optim


class NumpyMLP:
    def __init__(self, weights, activations, loss, l1=None, l2=None, alpha=0.01):
        assert len(weights) == 2 * len(activations)
        self.params = [np.array(w, dtype=np.float64) for w in weights]
        self.activations = list(activations)
        self.loss = loss
        n = len(activations)
        self.l1 = list(l1) if l1 is not None else [0.0] * n
        self.l2 = list(l2) if l2 is not None else [0.0] * n
        self.alpha = alpha

    def forward(self, x):
        """Returns the output and the per-layer (input, Z, A) cache."""
        cache, a = [], np.asarray(x, dtype=np.float64)
        for i, kind in enumerate(self.activations):
            W, b = self.params[2 * i], self.params[2 * i + 1]
            z = ref_dense.dense_forward(a, W, b)
            out = ref_act.activation_forward(z, kind, self.alpha)
            cache.append((a, z, out))
            a = out
        return a, cache

    def _data_loss(self, out, y):
        if self.loss == "softmax_cross_entropy":
            return ref_loss.softmax_cross_entropy(out, np.asarray(y, dtype=np.int64))
        if self.loss == "binary_cross_entropy":
            y = np.asarray(y, dtype=np.float64).reshape(out.shape)
            missing = np.isnan(y)
            return ref_loss.sigmoid_cross_entropy(out, np.where(missing, 0.0, y), ~missing)
        return ref_loss.mse(out, np.asarray(y, dtype=np.float64).reshape(out.shape))

    def loss_and_gradients(self, x, y):
        out, cache = self.forward(x)
        loss, dy = self._data_loss(out, y)
        grads = [None] * len(self.params)
        for i in reversed(range(len(self.activations))):
            a_in, z, a_out = cache[i]
            dz = ref_act.activation_backward(dy, z, a_out, self.activations[i], self.alpha)
            dx, dW, db = ref_dense.dense_backward(dz, a_in, self.params[2 * i])
            penalty, dpen = ref_loss.weight_penalty(self.params[2 * i], self.l1[i], self.l2[i])
            loss += penalty
            grads[2 * i], grads[2 * i + 1] = dW + dpen, db
            dy = dx
        return loss, grads


class NumpyOptimizer:
    """Optimizer state per parameter array, updates from tests/reference/optim.py."""

    def __init__(self, kind, **hyper):
        self.kind, self.hyper, self.state, self.step = kind, hyper, None, 0

    def apply(self, params, grads, lr):
        if self.state is None:
            self.state = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
        self.step += 1
        out = []
        for p, g, s in zip(params, grads, self.state):
            if self.kind == "sgd":
                p, s[0] = ref_optim.sgd_step(p, g, s[0], lr, **self.hyper)
            elif self.kind == "rmsprop":
                p, s[0] = ref_optim.rmsprop_step(p, g, s[0], lr, **self.hyper)
            else:
                p, s[0], s[1] = ref_optim.adam_step(p, g, s[0], s[1], self.step, lr,
                                                    decoupled=self.kind == "adamw", **self.hyper)
            out.append(p)
        return out
