"""Step builders shared by every model workload: one training step or one
inference call, written once per framework."""


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
