"""python -m corenn.examples.word_vectors: word vectors by skip-gram with
negative sampling (Mikolov et al. 2013; course 5, week 2) on the Python
documentation's topic texts that ship with Python (pydoc_data.topics).

Each (target word, context word) pair seen within `window` words of each other
is a positive example, and `negatives` pairs with context words drawn from the
unigram distribution to the 3/4 power are negative ones. The model is Keras's
skip-gram: two Embedding layers (target and context vectors), Dot(axes=1) of
the two vectors as the logit, sigmoid cross-entropy (binary_cross_entropy on
logits). The target embeddings are the word vectors: the run prints the
nearest neighbours of a few words by cosine similarity and one analogy
(cn.text.cosine_similarity, cn.text.analogy).

    python -m corenn.examples.word_vectors            # the full run
    python -m corenn.examples.word_vectors --fast     # a small run (tests)
"""

import time

import numpy as np

import corenn as cn
from corenn.examples._cli import fast_flag
from corenn.examples.char_lm import load_text

L = cn.layers
FAST = dict(chars=60_000, max_words=600, window=2, negatives=2, epochs=3)  # main(fast=True): the tests' run
WORDS = ("list", "true", "function", "class", "error", "string")
ANALOGY = ("integer", "integers", "string")  # integer : integers :: string : ?


def pairs(ids, window, negatives, vocab_size, rng):
    """(targets, contexts, labels): every pair within `window` words (label 1)
    and `negatives` noise contexts per pair (label 0). Ids 0 and 1 (padding,
    unknown words) are left out."""
    targets, contexts = [], []
    for offset in range(1, window + 1):
        for a, b in ((ids[:-offset], ids[offset:]), (ids[offset:], ids[:-offset])):
            keep = (a > 1) & (b > 1)
            targets.append(a[keep])
            contexts.append(b[keep])
    targets, contexts = np.concatenate(targets), np.concatenate(contexts)
    counts = np.bincount(ids, minlength=vocab_size).astype(np.float64)
    counts[:2] = 0.0
    noise = counts ** 0.75 / np.sum(counts ** 0.75)
    noise_contexts = rng.choice(vocab_size, size=negatives * len(targets), p=noise)
    all_targets = np.concatenate([targets, np.repeat(targets, negatives)])
    all_contexts = np.concatenate([contexts, noise_contexts])
    labels = np.concatenate([np.ones(len(targets)), np.zeros(len(noise_contexts))])
    order = rng.permutation(len(labels))
    return all_targets[order], all_contexts[order], labels[order]


def build(vocab_size, dim, learning_rate=3e-3):
    target, context = L.Input((1,), name="target"), L.Input((1,), name="context")
    u = L.Reshape((dim,), name="u")(L.Embedding(vocab_size, dim, name="target_vectors")(target))
    v = L.Reshape((dim,), name="v")(L.Embedding(vocab_size, dim, name="context_vectors")(context))
    model = cn.Model([target, context], L.Dot(axes=1, name="score")([u, v]), name="skip_gram")
    model.compile(optimizer=cn.optimizers.Adam(learning_rate), loss="binary_cross_entropy",
                  metrics=["binary_accuracy"])
    return model


def neighbours(vectors, vocabulary, word, k=5):
    """The k words whose vectors are nearest `word`'s by cosine similarity."""
    i = vocabulary.token_to_id(word)
    rows = np.arange(2, len(vectors))  # not padding or unknown
    rows = rows[(rows != i) & (np.linalg.norm(vectors[rows], axis=1) > 0)]
    similarity = cn.text.cosine_similarity(vectors[i], vectors[rows])
    best = rows[np.argsort(-similarity, kind="stable")[:k]]
    words = vocabulary.get_vocabulary()
    return [words[j] for j in best]


def run(chars=200_000, max_words=2000, dim=64, window=3, negatives=4, epochs=2, seed=0, out=print):
    cn.seed(seed)
    rng = np.random.default_rng(seed)
    vocabulary = cn.text.WordVocabulary(load_text(chars), max_size=max_words)
    ids = vocabulary.encode(load_text(chars))
    targets, contexts, labels = pairs(ids, window, negatives, len(vocabulary), rng)
    held = len(labels) // 20  # 5% of the pairs held out
    xs = [targets[:, None].astype(np.float32), contexts[:, None].astype(np.float32)]
    y = labels[:, None].astype(np.float32)
    model = build(len(vocabulary), dim)
    out(f"{len(ids)} words, vocabulary {len(vocabulary)}, {int(labels.sum())} positive pairs "
        f"(window {window}) and {negatives} negatives each; Embedding({dim}) × 2 -> Dot -> sigmoid")
    start = time.perf_counter()
    model.fit([x[held:] for x in xs], y[held:], batch_size=512, epochs=epochs, verbose=0)
    result = model.evaluate([x[:held] for x in xs], y[:held])
    # Without looking at the words, the best is the share q of positive pairs: loss H(q).
    q = float(y[:held].mean())
    baseline = -(q * np.log(q) + (1 - q) * np.log(1 - q))
    out(f"{epochs} epochs in {time.perf_counter() - start:.0f} s: held-out pairs loss {result['loss']:.3f} "
        f"(predicting the share of positive pairs: {baseline:.3f}), accuracy {result['binary_accuracy']:.3f} "
        f"(all-negative {1 - q:.3f})")
    vectors = model.get_layer("target_vectors").get_weights()[0].astype(np.float64)
    found = {}
    for word in WORDS:
        if vocabulary.token_to_id(word) > 1:
            found[word] = neighbours(vectors, vocabulary, word)
            out(f"nearest to {word!r}: {', '.join(found[word])}")
    answer = None
    if all(vocabulary.token_to_id(w) > 1 for w in ANALOGY):
        answer = cn.text.analogy(*ANALOGY, vectors, vocabulary)
        out(f"analogy: {ANALOGY[0]} is to {ANALOGY[1]} as {ANALOGY[2]} is to {answer}")
    return {"loss": result["loss"], "accuracy": result["binary_accuracy"], "baseline_loss": baseline,
            "held_out_negative_share": 1 - q, "neighbours": found, "analogy": answer,
            "model": model, "vocabulary": vocabulary}


def main(fast=False):
    return run(**FAST) if fast else run()


if __name__ == "__main__":
    main(fast=fast_flag(__doc__, "a small run (tests)"))
