"""python -m corenn.examples.date_translation: the course's neural machine
translation with attention (course 5, week 3), from human-readable dates
("3 may 1979", "tuesday 05/03/79", "03.05.79", "may 3, 1979", ...) to ISO
dates ("1979-05-03").

The data is generated here from Python's ``datetime``: every day from
1950-01-01 to 2049-12-31 written in one of a dozen formats (lowercase, as the
course), so a two-digit year is never ambiguous. The calendar days are split
first: no held-out day appears in training, in any format. Characters are
ids of ``cn.text.CharVocabulary``; the input is one-hot ``(N, Tx, |human|)``
padded with id 0 to Tx = 30, the output Ty = 10 characters.

Two models, the same decoder:

- ``build_attention``: the course's model. A Bidirectional LSTM reads the
  input into a⟨t'⟩ (return_sequences); for each of the Ty output steps ONE
  attention step, shared across steps, computes the weights α⟨t,t'⟩ from the
  previous decoder state s⟨t−1⟩ and every a⟨t'⟩ (RepeatVector → Concatenate →
  Dense(10, tanh) → Dense(1, relu) → Softmax over time), the context⟨t⟩ =
  Σ_t' α⟨t,t'⟩ a⟨t'⟩ (Dot over time) feeds the post-attention LSTM, whose
  state s⟨t⟩ gives the output character (Dense over the machine vocabulary).
- ``build_encoder_decoder``: no attention. An LSTM encoder reads the whole
  input; its final state starts the decoder, and the context of every step is
  the same final encoding.

Each model has Ty outputs, one per character, each with its own
softmax cross-entropy (the course's Dense(softmax) + categorical
cross-entropy, fused: the Dense gives logits).

    python -m corenn.examples.date_translation            # the full run
    python -m corenn.examples.date_translation --fast     # fewer examples and epochs
    ... --plot date_attention.png     # also write the attention heatmap (needs matplotlib)
"""

import datetime

import numpy as np

import corenn as cn
from corenn.examples import _cli

L = cn.layers

TX, TY = 30, 10
FIRST, LAST = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
          "october", "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# The fields: d, m (no padding), dd, mm (two digits), yy, yyyy, month, mon
# (three letters), weekday. No two formats read one string as two dates
# (the only month-first numeric ones use "/", the day-first ones "." or " ").
FORMATS = (
    "{d} {month} {yyyy}",               # 3 may 1979
    "{weekday} {mm}/{dd}/{yy}",         # thursday 05/03/79
    "{dd}.{mm}.{yy}",                   # 03.05.79
    "{month} {d}, {yyyy}",              # may 3, 1979
    "{dd} {mon} {yyyy}",                # 03 may 1979
    "{d} {mon}, {yyyy}",                # 3 may, 1979
    "{m}/{d}/{yy}",                     # 5/3/79
    "{weekday}, {month} {d}, {yyyy}",   # thursday, may 3, 1979
    "{mon} {d}, {yyyy}",                # may 3, 1979
    "{dd} {mm} {yy}",                   # 03 05 79
    "{month} {d} {yyyy}",               # may 3 1979
    "{dd}, {mon} {yyyy}",               # 03, may 1979
)
# Every character a format can write, so the vocabulary does not depend on the sample.
HUMAN_VOCAB = cn.text.CharVocabulary("".join(MONTHS + WEEKDAYS) + "0123456789 ,./")
MACHINE_VOCAB = cn.text.CharVocabulary("0123456789-")
BASELINE_EPOCHS = 20  # the full run's training of the model without attention
FAST = dict(n_train=6000, n_test=300, epochs=7, baseline_epochs=1)  # main(fast=True): the tests' run


def human_date(day, fmt):
    """``day`` (a datetime.date) written in format string ``fmt`` (one of FORMATS)."""
    return fmt.format(d=day.day, m=day.month, dd=f"{day.day:02d}", mm=f"{day.month:02d}",
                      yy=f"{day.year % 100:02d}", yyyy=f"{day.year:04d}", month=MONTHS[day.month - 1],
                      mon=MONTHS[day.month - 1][:3], weekday=WEEKDAYS[day.weekday()])


def load_dates(n_train, n_test, seed=0):
    """(train, test): lists of (human, machine) string pairs, each day in a
    random format. The days are drawn without replacement from FIRST..LAST,
    the test days disjoint from the training days."""
    days = (LAST - FIRST).days + 1
    if n_train + n_test > days:
        raise ValueError(f"load_dates: n_train + n_test must be at most {days} (the days "
                         f"{FIRST}..{LAST}), got {n_train + n_test}")
    rng = np.random.default_rng(seed)
    offsets = rng.permutation(days)[:n_train + n_test]
    formats = rng.integers(0, len(FORMATS), n_train + n_test)
    pairs = []
    for offset, f in zip(offsets.tolist(), formats.tolist()):
        day = FIRST + datetime.timedelta(days=offset)
        pairs.append((human_date(day, FORMATS[f]), day.isoformat()))
    return pairs[:n_train], pairs[n_train:]


def one_hot(texts, Tx=TX):
    """X float32 (N, Tx, len(HUMAN_VOCAB)): the one-hot characters of each
    text, padded with id 0 (PAD) at the end."""
    X = np.zeros((len(texts), Tx, len(HUMAN_VOCAB)), dtype=np.float32)
    for i, text in enumerate(texts):
        if len(text) > Tx:
            raise ValueError(f"one_hot: a human date must have at most Tx = {Tx} characters, "
                             f"got {text!r} ({len(text)})")
        X[i, np.arange(Tx), np.pad(HUMAN_VOCAB.encode(text), (0, Tx - len(text)))] = 1.0
    return X


def encode(pairs, Tx=TX):
    """(X, Y) of (human, machine) pairs: X = one_hot(the human dates), Y int64
    (N, TY) the ids of the ISO dates."""
    Y = np.stack([MACHINE_VOCAB.encode(machine) for _, machine in pairs]) if pairs else \
        np.zeros((0, TY), dtype=np.int64)
    return one_hot([human for human, _ in pairs], Tx), Y


def decode(outputs):
    """The ISO strings the model predicts: ``outputs`` is the list of Ty logit
    arrays (N, |machine|) that predict returns; each character is the argmax."""
    ids = np.stack([np.argmax(z, axis=1) for z in outputs], axis=1)
    return [MACHINE_VOCAB.decode(row) for row in ids]


def _decoder_step(post_lstm, output_layer, context, s, c):
    """One decoder step: the post-attention LSTM reads context (None, 1, F)
    from state [s, c]; its new state gives the step's logits."""
    _, s, c = post_lstm(context, initial_state=[s, c])
    return output_layer(s), s, c


def build_attention(n_a=32, n_s=64, learning_rate=5e-3):
    """The course's attention model. Inputs: X (None, Tx, |human|) and the
    decoder's initial state s0, c0 (None, n_s) (zeros: see ``inputs``).
    Returns (model, attention): ``model``'s Ty outputs are the logits
    (None, |machine|) of each step; ``attention`` is a second Model on the
    same inputs and the same (shared) layers whose Ty outputs are the
    attention weights α⟨t,t'⟩ (None, Tx, 1) of each step."""
    X = L.Input((TX, len(HUMAN_VOCAB)), name="X")
    s0 = L.Input((n_s,), name="s0")
    c0 = L.Input((n_s,), name="c0")
    # a⟨t'⟩ = [a→⟨t'⟩; a←⟨t'⟩] (None, Tx, 2·n_a): every input step read both ways.
    a = L.Bidirectional(L.LSTM(n_a, return_sequences=True), name="pre_attention")(X)
    # One attention step, its layers shared by all Ty output steps.
    repeator = L.RepeatVector(TX, name="repeat")
    concatenator = L.Concatenate(axis=-1, name="concat")
    densor1 = L.Dense(10, activation="tanh", name="energy_hidden")
    densor2 = L.Dense(1, activation="relu", name="energy")
    activator = L.Softmax(axis=1, name="attention_weights")   # over the Tx input steps
    dotor = L.Dot(axes=1, name="context")

    post_lstm = L.LSTM(n_s, return_state=True, name="post_lstm")
    output_layer = L.Dense(len(MACHINE_VOCAB), name="output")
    s, c, outputs, alphas = s0, c0, [], []
    for _ in range(TY):
        # e⟨t,t'⟩ from s⟨t−1⟩ and a⟨t'⟩, α⟨t,t'⟩ = softmax over t' of e, and
        # context⟨t⟩ = Σ_t' α⟨t,t'⟩ a⟨t'⟩ (None, 1, 2·n_a).
        energies = densor2(densor1(concatenator([a, repeator(s)])))
        alpha = activator(energies)
        context = dotor([alpha, a])
        logits, s, c = _decoder_step(post_lstm, output_layer, context, s, c)
        outputs.append(logits)
        alphas.append(alpha)
    model = cn.Model(inputs=[X, s0, c0], outputs=outputs, name="date_attention")
    _compile(model, learning_rate)
    return model, cn.Model(inputs=[X, s0, c0], outputs=alphas, name="date_attention_weights")


def inputs(model, X):
    """What ``model`` takes for the one-hot dates X: X itself, or for the
    attention model [X, s0, c0] with zero initial states (as the course)."""
    if len(model.inputs) == 1:
        return X
    n_s = model.inputs[1].shape[-1]
    zeros = np.zeros((len(X), n_s), dtype=np.float32)
    return [X, zeros, zeros]


def build_encoder_decoder(n_s=64, learning_rate=5e-3):
    """The encoder–decoder without attention: LSTM(n_s) encoder, whose final
    state [h, c] starts the decoder and whose final output is every step's
    context. Inputs: X (None, Tx, |human|). Outputs: Ty logits (None, |machine|)."""
    X = L.Input((TX, len(HUMAN_VOCAB)), name="X")
    encoding, s, c = L.LSTM(n_s, return_state=True, name="encoder")(X)
    context = L.Reshape((1, n_s), name="context")(encoding)
    post_lstm = L.LSTM(n_s, return_state=True, name="post_lstm")
    output_layer = L.Dense(len(MACHINE_VOCAB), name="output")
    outputs = []
    for _ in range(TY):
        logits, s, c = _decoder_step(post_lstm, output_layer, context, s, c)
        outputs.append(logits)
    model = cn.Model(inputs=X, outputs=outputs, name="encoder_decoder")
    _compile(model, learning_rate)
    return model


def _compile(model, learning_rate):
    model.compile(optimizer=cn.optimizers.Adam(learning_rate), loss="softmax_cross_entropy")


def translate(model, texts):
    """The model's ISO dates for human dates ``texts`` (a list of str)."""
    X = one_hot(texts)
    return decode(model.predict(inputs(model, X)))


def exact_match(model, X, Y):
    """The fraction of examples whose Ty characters are all right."""
    ids = np.stack([np.argmax(z, axis=1) for z in model.predict(inputs(model, X))], axis=1)
    return float(np.mean(np.all(ids == Y, axis=1)))


class HeldOutExactMatch(cn.callbacks.Callback):
    """exact_match on held-out (X, Y) after every epoch, in ``.history``."""

    def __init__(self, X, Y):
        super().__init__()
        self.X, self.Y, self.history = X, Y, []

    def on_epoch_end(self, epoch, logs=None):
        self.history.append(exact_match(self.model, self.X, self.Y))


def attention_map(attention, text):
    """α⟨t,t'⟩ for one human date: float (Ty, len(text)), row t the weights
    output step t gives the input characters (the padding steps are left
    out, so a row sums to 1 minus the weight on padding)."""
    alphas = attention.predict(inputs(attention, one_hot([text])))
    return np.stack([alpha[0, :len(text), 0] for alpha in alphas])


def plot_attention(alpha, text, translation, path):
    """Write the heatmap of ``alpha`` (Ty, len(text)) to the PNG ``path``
    (matplotlib, the ``plot`` extra)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 3.6), dpi=80, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(alpha, cmap="Blues", vmin=0.0, aspect="auto")
    ax.set_xticks(range(len(text)), list(text))
    ax.set_yticks(range(len(translation)), list(translation))
    ax.set_xlabel("input character t'")
    ax.set_ylabel("output character t")
    ax.set_title(f"attention weights α⟨t,t'⟩: {text!r} -> {translation!r}")
    fig.colorbar(image, ax=ax)
    fig.savefig(path)


def run(n_train=10000, n_test=1000, epochs=10, baseline_epochs=BASELINE_EPOCHS, batch_size=100, seed=0,
        plot=None, out=print):
    """Train the attention model ``epochs`` and the encoder-decoder without
    attention ``baseline_epochs`` on the same data; print translations of
    held-out dates and each model's exact-match accuracy by epoch; write the
    attention heatmap of the first held-out date to ``plot`` (None: no plot)."""
    cn.seed(seed)
    train, test = load_dates(n_train, n_test, seed)
    X, Y = encode(train)
    X_test, Y_test = encode(test)
    targets = list(Y.T)   # Ty label arrays (N,): one per output
    out(f"{n_train} training / {n_test} held-out dates (disjoint days), Tx = {TX}, Ty = {TY}, "
        f"{len(HUMAN_VOCAB)} input / {len(MACHINE_VOCAB)} output characters")

    def train(model, epochs):
        curve = HeldOutExactMatch(X_test, Y_test)
        history = model.fit(inputs(model, X), targets, batch_size=batch_size, epochs=epochs, verbose=0,
                            callbacks=[curve])
        losses = history.history["loss"]
        trend = f"{losses[0]:.3f}" if len(losses) == 1 else f"{losses[0]:.3f} -> {losses[-1]:.3f}"
        out(f"  training loss {trend}; held-out exact match by epoch: "
            + " ".join(f"{a:.2f}" for a in curve.history))
        return curve.history

    model, attention = build_attention()
    untrained = exact_match(model, X_test, Y_test)
    out(f"attention model ({model.count_params():,} parameters), {epochs} epochs:")
    curve = train(model, epochs)
    texts = [human for human, _ in test[:8]]
    for (human, machine), guess in zip(test[:8], translate(model, texts)):
        out(f"  {human:>30} -> {guess}  {'ok' if guess == machine else 'WRONG, is ' + machine}")
    out(f"attention model: exact match {curve[-1]:.3f} on {n_test} held-out dates (untrained {untrained:.3f})")
    if plot is not None:
        alpha = attention_map(attention, texts[0])
        plot_attention(alpha, texts[0], translate(model, texts[:1])[0], plot)
        out(f"attention weights of {texts[0]!r} written to {plot}")

    baseline = build_encoder_decoder()
    out(f"encoder-decoder without attention ({baseline.count_params():,} parameters), "
        f"{baseline_epochs} epoch{'s' if baseline_epochs != 1 else ''}:")
    baseline_curve = train(baseline, baseline_epochs)
    full = BASELINE_EPOCHS
    short = (f" (only {baseline_epochs} of the full run's {full} epochs: too few to learn dates without "
             f"attention; it reaches about 0.9 after {full})") if baseline_epochs < full else ""
    out(f"encoder-decoder without attention: exact match {baseline_curve[-1]:.3f} on {n_test} held-out dates"
        + short)
    return {"model": model, "attention": attention, "accuracy": curve[-1], "untrained": untrained,
            "curve": curve, "baseline": baseline, "baseline_accuracy": baseline_curve[-1],
            "baseline_curve": baseline_curve}


def main(argv=None):
    parser = _cli.parser(__doc__, "fewer examples and epochs (tests)")
    parser.add_argument("--plot", metavar="PATH",
                        help="write the attention heatmap to this PNG (needs matplotlib; default: none)")
    args = _cli.parse(parser, argv)
    return run(**(FAST if args.fast else {}), plot=args.plot)


if __name__ == "__main__":
    main()
