import numpy as np


def _logsumexp(z):
    m = np.max(z, axis=1, keepdims=True)
    return (m + np.log(np.sum(np.exp(z - m), axis=1, keepdims=True)))[:, 0]


def softmax_cross_entropy(logits, labels):
    """J = (1/N) Σ_i -log softmax(z_i)[y_i];  dZ = (softmax(Z) - onehot(Y)) / N."""
    n = logits.shape[0]
    lse = _logsumexp(logits)
    rows = np.arange(n)
    loss = np.mean(lse - logits[rows, labels])
    grad = np.exp(logits - lse[:, None])
    grad[rows, labels] -= 1.0
    return float(loss), grad / n


def sigmoid_cross_entropy(logits, targets, mask=None):
    """J = (1/N) Σ m [-t log σ(z) - (1-t) log(1-σ(z))], in PyTorch's form
    (1 - t) z - log σ(z) = (1 - t) z - min(z, 0) + log(1 + e^{-|z|}), which holds for
    every finite z (and gives PyTorch's NaN/inf at infinite z);  dZ = m (σ(Z) - T) / N."""
    n = logits.shape[0]
    m = np.ones_like(logits) if mask is None else (np.asarray(mask) != 0).astype(np.float64)
    with np.errstate(invalid="ignore"):  # 0·inf at infinite logits is NaN, as in PyTorch
        per = (1.0 - targets) * logits - np.minimum(logits, 0.0) + np.log1p(np.exp(-np.abs(logits)))
    e = np.exp(-np.abs(logits))
    sigma = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    loss = np.sum(np.where(m != 0, per, 0.0)) / n
    return float(loss), np.where(m != 0, sigma - targets, 0.0) / n


def mse(pred, target):
    """J = mean((P - T)²);  dP = 2 (P - T) / n."""
    d = pred - target
    return float(np.mean(d ** 2)), 2.0 * d / d.size


def weight_penalty(w, l1=0.0, l2=0.0):
    """l1 Σ|W| + l2 Σ W² (Keras L1L2);  dW = l1 sign(W) + 2 l2 W."""
    return float(l1 * np.sum(np.abs(w)) + l2 * np.sum(w ** 2)), l1 * np.sign(w) + 2.0 * l2 * w


# Per-example weights s (Keras's sample_weight with its default reduction,
# "sum_over_batch_size"): each example's loss is multiplied by its weight and
# the sum divided by the number of examples N (not by Σs).


def softmax_cross_entropy_weighted(logits, labels, s):
    """J = (1/N) Σ_i s_i ℓ_i, ℓ_i = logsumexp(z_i) - z_i[y_i];  dz_i = s_i (softmax(z_i) - onehot(y_i)) / N."""
    n = logits.shape[0]
    rows = np.arange(n)
    lse = _logsumexp(logits)
    per_example = lse - logits[rows, labels]
    grad = np.exp(logits - lse[:, None])
    grad[rows, labels] -= 1.0
    return float(np.sum(s * per_example) / n), s[:, None] * grad / n


def sigmoid_cross_entropy_weighted(logits, targets, s, mask=None):
    """J = (1/N) Σ_i s_i ℓ_i, ℓ_i = Σ_j m_ij [max(z,0) - z t + log(1 + e^-|z|)];  dz_ij = s_i m_ij (σ(z) - t) / N."""
    n = logits.shape[0]
    present = np.ones(logits.shape, bool) if mask is None else np.asarray(mask) != 0
    per = np.maximum(logits, 0.0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
    per_example = np.sum(np.where(present, per, 0.0), axis=1)
    e = np.exp(-np.abs(logits))
    sigma = np.where(logits >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    grad = np.where(present, sigma - targets, 0.0)
    return float(np.sum(s * per_example) / n), s[:, None] * grad / n


def mse_weighted(pred, target, s):
    """Keras: ℓ_i = mean over example i's elements of (p - t)², J = (1/N) Σ_i s_i ℓ_i;
    dP = 2 s_i (P - T) / (N · elements per example)."""
    n = pred.shape[0]
    d = (pred - target).reshape(n, -1)
    per_example = np.mean(d ** 2, axis=1)
    grad = 2.0 * s[:, None] * d / d.size
    return float(np.sum(s * per_example) / n), grad.reshape(pred.shape)


def sequence_softmax_cross_entropy(logits, labels, mask=None, s=None):
    """Over the steps of sequences: logits (N, T, K), labels (N, T) with -1 ignored
    (PyTorch's ignore_index), mask (N, T) (0 = a padded step) or None, s (N,) or None.
    A step counts when its label is not -1 and its mask is 1; with C counted steps
    J = (1/C) Σ_counted s_n ℓ_nt, dz_nt = s_n (softmax(z_nt) - onehot(y_nt)) / C,
    dz = 0 elsewhere; C = 0 gives J = 0, dz = 0."""
    N, T, K = logits.shape
    z = logits.reshape(N * T, K).astype(np.float64)
    y = np.asarray(labels).reshape(N * T)
    counted = y != -1
    if mask is not None:
        counted &= np.asarray(mask).reshape(N * T) != 0
    w = np.repeat(np.ones(N) if s is None else np.asarray(s, np.float64), T)
    C = int(counted.sum())
    grad = np.zeros((N * T, K))
    if C == 0:
        return 0.0, grad.reshape(N, T, K)
    rows = np.flatnonzero(counted)
    lse = _logsumexp(z[rows])
    per_step = lse - z[rows, y[rows]]
    g = np.exp(z[rows] - lse[:, None])
    g[np.arange(len(rows)), y[rows]] -= 1.0
    grad[rows] = w[rows, None] * g / C
    return float(np.sum(w[rows] * per_step) / C), grad.reshape(N, T, K)
