"""Optimizer updates from PyTorch's formulas, float64, on copies (inputs untouched).

Each returns the new parameter and the new state; see cpp/include/corenn/kernels/optim.hpp.
"""

import numpy as np


def sgd_step(p, g, v, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
    """g += wd·p; v = μ·v + (1 − dampening)·g (v starts at 0);
    p −= lr·(g + μ·v) if nesterov else lr·v; plain p −= lr·g when μ = 0."""
    p, g, v = (np.array(a, dtype=np.float64) for a in (p, g, v))
    g = g + weight_decay * p
    if momentum == 0:
        return p - lr * g, v
    v = momentum * v + (1 - dampening) * g
    step = g + momentum * v if nesterov else v
    return p - lr * step, v


def rmsprop_step(p, g, s, lr, alpha=0.99, eps=1e-8, weight_decay=0.0):
    """g += wd·p; s = α·s + (1 − α)·g²; p −= lr·g / (√s + eps)."""
    p, g, s = (np.array(a, dtype=np.float64) for a in (p, g, s))
    g = g + weight_decay * p
    s = alpha * s + (1 - alpha) * g**2
    return p - lr * g / (np.sqrt(s) + eps), s


def adam_step(p, g, m, v, step, lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False):
    """Adam (coupled L2: g += wd·p) or AdamW (decoupled: p *= 1 − lr·wd first);
    m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²;
    p −= lr·m̂ / (√v̂ + eps) with m̂ = m/(1 − β1^t), v̂ = v/(1 − β2^t), t = step ≥ 1."""
    p, g, m, v = (np.array(a, dtype=np.float64) for a in (p, g, m, v))
    if decoupled:
        p = p * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * p
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g**2
    m_hat = m / (1 - beta1**step)
    v_hat = v / (1 - beta2**step)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps), m, v


def clip_gradients(grads, clipnorm=None, clipvalue=None, global_clipnorm=None):
    """Keras's gradient clipping, on copies of a list of gradient tensors:
    clipnorm scales each tensor to L2 norm <= c (g·c / max(‖g‖, c)),
    global_clipnorm all together (g·c / max(‖G‖, c), ‖G‖² = Σ‖g‖²), then
    clipvalue clips each element to [−c, c]."""
    grads = [np.array(g, dtype=np.float64) for g in grads]
    if clipnorm is not None:
        grads = [g * clipnorm / max(np.linalg.norm(g), clipnorm) for g in grads]
    if global_clipnorm is not None:
        total = np.sqrt(sum(np.sum(g * g) for g in grads))
        grads = [g * global_clipnorm / max(total, global_clipnorm) for g in grads]
    if clipvalue is not None:
        grads = [np.clip(g, -clipvalue, clipvalue) for g in grads]
    return grads
