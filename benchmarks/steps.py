"""Step builders shared by every model workload: one training step or one
inference call, written once per framework; and the NumPy Adam update every
NumPy Adam workload uses."""

import math

import numpy as np

# Adam's hyper-parameters in every Adam workload (PyTorch's defaults).
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8


def corenn_train_step(model, x, y, path="api"):
    """model.train_on_batch, or ("engine") the engine call alone: no Python-side checks."""
    if path == "engine":
        engine = model._engine
        return lambda: engine.train_step([x], [y])[0]
    return lambda: model.train_on_batch(x, y)


def corenn_infer_step(model, x, path="api"):
    """model.predict, or ("engine") the engine call alone."""
    if path == "engine":
        engine = model._engine
        return lambda: engine.predict([x])[0]
    return lambda: model.predict(x)


def torch_train_step(model, opt, x, y):
    """zero_grad(set_to_none=True), forward, cross-entropy, backward, step."""
    import torch
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def torch_infer_step(model, x):
    """model(x) in eval and inference mode."""
    import torch
    model.eval()

    def step():
        with torch.inference_mode():
            return model(x)
    return step


def numpy_adam_update(p, g, m, v, t, lr=LR, beta1=BETA1, beta2=BETA2, eps=EPS):
    """PyTorch's Adam formula, in place."""
    m *= beta1
    m += (1 - beta1) * g
    v *= beta2
    v += (1 - beta2) * (g * g)
    bc1 = 1 - beta1 ** t
    bc2 = 1 - beta2 ** t
    denom = np.sqrt(v)
    denom /= math.sqrt(bc2)
    denom += eps
    p -= (lr / bc1) * (m / denom)
