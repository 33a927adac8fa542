"""python -m corenn.examples.char_lm: a character-level language model (course
5, week 1's dinosaur names, on English) trained on the Python documentation's
topic texts that ship with Python itself (the standard library's
pydoc_data.topics; no download).

Many-to-one: an Embedding and an LSTM read a window of `steps` characters and
a Dense layer gives the logits of the next one (softmax cross-entropy). Each
epoch prints the held-out loss per character in nats against the unigram
baseline (the entropy of the training text's character frequencies, the loss
of a model that ignores the context); at the end the model writes text one
character at a time with cn.decoding.sample at a few temperatures.

    python -m corenn.examples.char_lm            # the full run (a few minutes on 2 cores)
    python -m corenn.examples.char_lm --fast     # a small run (tests)
"""

import time

import numpy as np

import corenn as cn
from corenn.examples._cli import fast_flag

L = cn.layers
FAST = dict(chars=40_000, steps=16, stride=2, units=64, epochs=2, sample_length=80)  # the tests' run
TEMPERATURES = (0.3, 0.6, 1.0)


def load_text(chars=None):
    """The pydoc topics as one text (sorted by topic, so the same on every
    run), whitespace runs collapsed to single spaces; the first `chars` (None: all 433k)."""
    from pydoc_data.topics import topics

    text = " ".join(" ".join(topics[k].split()) for k in sorted(topics))
    return text[:chars] if chars else text


def windows(ids, steps, stride):
    """X (N, steps): windows of ids (as float32, the model's type); y (N,): the id after each."""
    starts = np.arange(0, len(ids) - steps, stride)
    X = ids[starts[:, None] + np.arange(steps)]
    return X.astype(np.float32), ids[starts + steps]


def unigram_loss(train_ids, test_ids, size):
    """Cross-entropy (nats per character) of the held-out characters under the
    training text's character frequencies (add-one smoothed)."""
    counts = np.bincount(train_ids, minlength=size) + 1.0
    return float(-np.mean(np.log(counts[test_ids] / counts.sum())))


def build(vocab_size, steps, units, learning_rate=3e-3):
    chars = L.Input((steps,), name="chars")
    h = L.Embedding(vocab_size, 32, name="embed")(chars)
    h = L.LSTM(units, name="lstm")(h)
    model = cn.Model(chars, L.Dense(vocab_size, name="next")(h), name="char_lm")
    # clipvalue: the course's clip(gradients, maxValue) against exploding gradients.
    model.compile(optimizer=cn.optimizers.Adam(learning_rate, clipvalue=5.0), loss="softmax_cross_entropy")
    return model


def generate(model, vocabulary, prompt, length, temperature, steps, seed):
    """`length` characters after `prompt` (at least `steps` long), each drawn
    from softmax(logits / temperature)."""
    if len(prompt) < steps:
        raise ValueError(f"generate: prompt must hold at least steps={steps} characters, got {len(prompt)}")
    ids = list(vocabulary.encode(prompt))
    for i in range(length):
        window = np.array(ids[-steps:], dtype=np.float32)[None]
        logits = model.predict(window)[0]
        logits[:2] = -np.inf  # never the padding or the unknown id
        ids.append(cn.decoding.sample(logits, temperature, seed=seed + i))
    return vocabulary.decode(ids[len(prompt):])


def run(chars=100_000, steps=16, stride=3, units=64, epochs=3, sample_length=200, seed=0,
        prompt="A function definition defines a user-defined function object. ", out=print):
    cn.seed(seed)
    text = load_text(chars)
    vocabulary = cn.text.CharVocabulary(text, min_count=20)
    ids = vocabulary.encode(text)
    split = int(0.9 * len(ids))
    X_train, y_train = windows(ids[:split], steps, stride)
    X_test, y_test = windows(ids[split:], steps, stride)
    baseline = unigram_loss(ids[:split], y_test, len(vocabulary))
    out(f"{len(text)} characters of pydoc_data.topics, {len(vocabulary)} ids; {len(X_train)} training / "
        f"{len(X_test)} held-out windows of {steps}; Embedding(32) -> LSTM({units}) -> Dense({len(vocabulary)})")
    out(f"unigram baseline: {baseline:.3f} nats/char")
    model = build(len(vocabulary), steps, units)
    losses = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.fit(X_train, y_train, batch_size=128, epochs=1, verbose=0)
        loss = model.evaluate(X_test, y_test)["loss"]
        losses.append(loss)
        out(f"epoch {epoch}: held-out loss {loss:.3f} nats/char (unigram {baseline:.3f}), "
            f"{time.perf_counter() - start:.0f} s")
    samples = {}
    for t in TEMPERATURES:
        samples[t] = generate(model, vocabulary, prompt, sample_length, t, steps, seed)
        out(f"temperature {t}: {prompt}{samples[t]}")
    return {"losses": losses, "baseline": baseline, "samples": samples, "model": model}


def main(fast=False):
    return run(**FAST) if fast else run()


if __name__ == "__main__":
    main(fast=fast_flag(__doc__, "a small run (tests)"))
