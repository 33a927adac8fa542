"""Diagnosis (course 3): where the error comes from, and what to try next.

    human ──avoidable bias── train ──variance── train-dev ──data mismatch── dev ──dev overfitting── test

Errors are fractions or percentages (consistently). Human-level error stands
in for Bayes error; train-dev is a held-out slice of the training
distribution, needed to tell variance from data mismatch when train and dev
come from different distributions.
"""

import math

import numpy as np

from . import _validate

ADVICE = {
    "avoidable_bias": ["train a bigger model (more units or layers)",
                       "train longer, or with a better optimizer (momentum, RMSprop, Adam)",
                       "search the architecture and hyper-parameters"],
    "variance": ["get more training data",
                 "regularise: L2, dropout, data augmentation",
                 "search the architecture and hyper-parameters"],
    "data_mismatch": ["carry out manual error analysis to see how train and dev/test differ",
                      "make the training data more like dev/test (e.g. artificial data synthesis), "
                      "or collect more data like dev/test"],
    "dev_overfitting": ["get a bigger dev set"],
}
_LABELS = {"avoidable_bias": "avoidable bias", "variance": "variance",
           "data_mismatch": "data mismatch", "dev_overfitting": "dev overfitting"}


class BiasVariance:
    """The gaps between consecutive errors (None where an error is missing):
    avoidable_bias = train − human (human = 0 when unknown), variance =
    train_dev − train (dev − train without a train-dev error), data_mismatch =
    dev − train_dev, dev_overfitting = test − dev. `focus` is the largest
    positive gap, `advice` the course's next steps for it."""

    def __init__(self, human, train, train_dev, dev, test):
        self.human, self.train, self.train_dev, self.dev, self.test = human, train, train_dev, dev, test
        self.avoidable_bias = train - (0.0 if human is None else human)
        self.variance = (dev if train_dev is None else train_dev) - train
        self.data_mismatch = None if train_dev is None else dev - train_dev
        self.dev_overfitting = None if test is None else test - dev
        known = {k: v for k, v in self.gaps().items() if v is not None and v > 0}
        self.focus = max(known, key=known.get) if known else None
        self.advice = list(ADVICE[self.focus]) if self.focus else []

    def gaps(self):
        return {k: getattr(self, k) for k in ADVICE}

    def __str__(self):
        lines = []
        for name, value in self.gaps().items():
            if value is None:
                continue
            note = " (human-level error unknown: taken as 0)" if name == "avoidable_bias" and self.human is None else ""
            lines.append(f"{_LABELS[name]:>15}: {value:.4g}{note}")
        if self.focus:
            lines.append(f"largest: {_LABELS[self.focus]}; next:")
            lines += [f"  - {a}" for a in self.advice]
        else:
            lines.append("no gap is positive")
        return "\n".join(lines)

    def __repr__(self):
        return f"BiasVariance({', '.join(f'{k}={v!r}' for k, v in self.gaps().items())})"


def bias_variance(human=None, train=None, train_dev=None, dev=None, test=None):
    """Splits the error into avoidable bias, variance, data mismatch and dev
    overfitting (see BiasVariance). train and dev are required."""
    values = {}
    for name, value in (("human", human), ("train", train), ("train_dev", train_dev), ("dev", dev),
                        ("test", test)):
        if value is None:
            if name in ("train", "dev"):
                raise ValueError(f"bias_variance: {name} error is required")
            values[name] = None
        else:
            values[name] = _validate.real("bias_variance", name, value, low=0.0)
    return BiasVariance(**values)


class Misclassified:
    """Examples a model gets wrong, the most confident mistakes first: indices
    into X, y_true, y_pred and confidence (the probability the model gave its
    prediction). rate = len / number of examples."""

    def __init__(self, indices, y_true, y_pred, confidence, total):
        self.indices, self.y_true, self.y_pred, self.confidence = indices, y_true, y_pred, confidence
        self.rate = len(indices) / total if total else math.nan

    def __len__(self):
        return len(self.indices)

    def __repr__(self):
        return f"Misclassified({len(self)} examples, rate={self.rate:.4g})"


def misclassified(model, X, y, batch_size=256):
    """The examples of (X, y) that the model classifies wrongly, for error
    analysis. One logit: a binary classifier (z > 0 is class 1); several: a
    softmax classifier over integer labels."""
    _validate.model("misclassified", model)
    logits = np.asarray(model.predict(X, batch_size=batch_size), dtype=np.float64)
    _validate.examples("misclassified", "X", logits)
    logits = logits.reshape(len(logits), -1)
    y = _validate.array("misclassified", "y", y)
    if y.shape not in ((len(logits),), (len(logits), 1)):
        raise ValueError(f"misclassified: y must have shape ({len(logits)},) (one label per example), "
                         f"got {y.shape}")
    y = y.reshape(-1)
    if logits.shape[1] == 1:
        z = logits[:, 0]
        pred = (z > 0).astype(np.int64)
        p1 = 1.0 / (1.0 + np.exp(-z))
        confidence = np.where(pred == 1, p1, 1.0 - p1)
    else:
        pred = np.argmax(logits, axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        confidence = e[np.arange(len(e)), pred] / e.sum(axis=1)
    wrong = np.flatnonzero(pred != y)
    wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
    return Misclassified(wrong, y[wrong], pred[wrong], confidence[wrong], len(y))


__all__ = ["ADVICE", "BiasVariance", "Misclassified", "bias_variance", "misclassified"]
