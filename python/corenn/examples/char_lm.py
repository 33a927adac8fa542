"""python -m corenn.examples.char_lm: a character-level language model (course
5, week 1's dinosaur names, on English) trained on the Python documentation's
topic texts that ship with Python itself (the standard library's
pydoc_data.topics; no download).

Many-to-many: an Embedding and an LSTM (return_sequences=True) read a window
of `steps` characters and a Dense layer over the last axis gives, at every
step t, the logits of the character at t + 1: the sequence softmax
cross-entropy with (N, T) labels, so one window trains `steps` predictions.
The training text is cut into non-overlapping windows, at a new random offset
every epoch (other window edges, so other contexts). Each epoch prints the
held-out loss per character in nats against the unigram baseline (the
cross-entropy of the held-out characters under the training text's character
frequencies: the loss of a model that ignores the context). At the end a
one-step copy of the model (the same weights; the LSTM's state in and out)
writes text one character at a time with cn.decoding.sample, its state
carrying the whole growing context.

    python -m corenn.examples.char_lm            # the full run (~110 s of CPU at one thread)
    python -m corenn.examples.char_lm --fast     # a small run (tests)
"""

import re
import time

import numpy as np

import corenn as cn
from corenn.examples._cli import fast_flag

L = cn.layers
FAST = dict(chars=60_000, steps=32, units=128, epochs=3, batch_size=16, sample_length=80)  # the tests' run
TEMPERATURES = (0.5, 0.8, 1.0)


def load_text(chars=None):
    """The pydoc topics as one text (sorted by topic, so the same on every
    run), whitespace runs collapsed to single spaces; the first `chars` (None: all 433k)."""
    from pydoc_data.topics import topics

    text = " ".join(" ".join(topics[k].split()) for k in sorted(topics))
    return text[:chars] if chars else text


def windows(ids, steps, offset=0):
    """The non-overlapping windows of ids from `offset` on, each with the ids
    one step later: X (N, steps) as float32 (the model's type), Y (N, steps)."""
    n = (len(ids) - 1 - offset) // steps
    starts = offset + steps * np.arange(n)
    X = ids[starts[:, None] + np.arange(steps)]
    return X.astype(np.float32), ids[starts[:, None] + np.arange(1, steps + 1)]


def unigram_loss(train_ids, test_ids, size):
    """Cross-entropy (nats per character) of the held-out characters under the
    training text's character frequencies (add-one smoothed)."""
    counts = np.bincount(train_ids, minlength=size) + 1.0
    return float(-np.mean(np.log(counts[test_ids] / counts.sum())))


def word_share(sample, words):
    """The share of the sample's words (runs of letters; the last, perhaps cut
    short, left out) that occur in `words` (a set): how much of it is real
    words rather than pronounceable noise."""
    found = re.findall(r"[A-Za-z]+", sample)[:-1]
    return sum(w in words for w in found) / max(len(found), 1)


def network(vocab_size, steps, units, learning_rate=1e-2, stateful_step=False):
    """Embedding(64) -> LSTM(units) -> Dense(vocab_size) over `steps` characters.
    stateful_step: the one-step sampler instead, inputs [chars (N, 1), h, c],
    outputs [logits (N, 1, V), h, c]."""
    chars = L.Input((steps,), name="chars")
    h = L.Embedding(vocab_size, 64, name="embed")(chars)
    lstm = L.LSTM(units, return_sequences=True, return_state=stateful_step, name="lstm")
    if not stateful_step:
        model = cn.Model(chars, L.Dense(vocab_size, name="next")(lstm(h)), name="char_lm")
        # global_clipnorm: the course's clip against exploding gradients, on the
        # whole gradient at once.
        model.compile(optimizer=cn.optimizers.Adam(learning_rate, global_clipnorm=5.0),
                      loss="softmax_cross_entropy")
        return model
    h0, c0 = L.Input((units,), name="h0"), L.Input((units,), name="c0")
    h, h1, c1 = lstm(h, initial_state=[h0, c0])
    return cn.Model([chars, h0, c0], [L.Dense(vocab_size, name="next")(h), h1, c1], name="char_lm_step")


def step_model(model):
    """The one-step sampler of a trained network(): its weights, one character
    in, the LSTM's state [h, c] in and out."""
    step = network(model.get_layer("next").units, 1, model.get_layer("lstm").units, stateful_step=True)
    for name in ("embed", "lstm", "next"):
        step.get_layer(name).set_weights(model.get_layer(name).get_weights())
    return step


def generate(model, vocabulary, prompt, length, temperature, seed):
    """`length` characters after `prompt` (not empty), each drawn from
    softmax(logits / temperature) given everything before it."""
    if not prompt:
        raise ValueError("generate: prompt must hold at least one character, got ''")
    step = step_model(model)
    state = [np.zeros((1, model.get_layer("lstm").units), np.float32)] * 2
    ids = list(vocabulary.encode(prompt))
    for i in range(len(prompt) - 1 + length):
        logits, *state = step.predict([np.array([[ids[i]]], np.float32), *state])
        if i >= len(prompt) - 1:  # past the prompt: draw the next character
            logits = logits[0, 0]
            logits[:2] = -np.inf  # never the padding or the unknown id
            ids.append(cn.decoding.sample(logits, temperature, seed=seed + i))
    return vocabulary.decode(ids[len(prompt):])


def run(chars=None, steps=64, units=256, epochs=8, batch_size=32, learning_rate=1e-2, sample_length=300,
        seed=0, prompt="A function definition defines a user-defined function object. ", out=print):
    cn.seed(seed)
    rng = np.random.default_rng(seed)
    text = load_text(chars)
    vocabulary = cn.text.CharVocabulary(text, min_count=20)
    ids = vocabulary.encode(text)
    split = int(0.9 * len(ids))
    X_test, Y_test = windows(ids[split:], steps)
    baseline = unigram_loss(ids[:split], Y_test.ravel(), len(vocabulary))
    out(f"{len(text)} characters of pydoc_data.topics, {len(vocabulary)} ids; {split} training / "
        f"{Y_test.size} held-out characters in windows of {steps}; "
        f"Embedding(64) -> LSTM({units}) -> Dense({len(vocabulary)}) at every step")
    out(f"unigram baseline: {baseline:.3f} nats/char")
    # Adam from learning_rate down to a tenth of it along a cosine over all the updates.
    updates = epochs * -(-(split // steps) // batch_size)
    model = network(len(vocabulary), steps, units, cn.optimizers.schedules.CosineDecay(learning_rate, updates, 0.1))
    losses = []
    wall, cpu = time.perf_counter(), time.process_time()
    for epoch in range(1, epochs + 1):
        X, Y = windows(ids[:split], steps, offset=int(rng.integers(steps)))
        model.fit(X, Y, batch_size=batch_size, epochs=1, verbose=0)
        loss = model.evaluate(X_test, Y_test)["loss"]
        losses.append(loss)
        out(f"epoch {epoch}: held-out loss {loss:.3f} nats/char (unigram {baseline:.3f}), "
            f"{time.perf_counter() - wall:.0f} s ({time.process_time() - cpu:.0f} s CPU)")
    words = set(re.findall(r"[A-Za-z]+", text[:split]))
    unigram = vocabulary.decode(rng.choice(ids[:split], sample_length))  # characters drawn by frequency
    shares = {"unigram": word_share(unigram, words)}
    out(f"unigram sample ({shares['unigram']:.0%} of its words occur in the training text): {unigram}")
    samples = {}
    for t in TEMPERATURES:
        samples[t] = generate(model, vocabulary, prompt, sample_length, t, seed)
        shares[t] = word_share(samples[t], words)
        out(f"temperature {t} ({shares[t]:.0%} of its words occur in the training text): {prompt}{samples[t]}")
    return {"losses": losses, "baseline": baseline, "samples": samples, "word_shares": shares, "model": model}


def main(fast=False):
    return run(**FAST) if fast else run()


if __name__ == "__main__":
    main(fast=fast_flag(__doc__, "a small run (tests)"))
