"""python -m corenn.examples.workflow: the course's training workflow end to
end on scikit-learn's handwritten digits (docs/workflow.md walks through it).

1. split 60/20/20 into train/dev/test (stratified)
2. standardise with training statistics (a Normalization layer in the model)
3. train a network and diagnose bias/variance
4. regularise (L2 + dropout) against the variance
5. search the learning rate at random on a log scale, coarse to fine
6. train the chosen model with early stopping and report F1 on the test set

docs/workflow.md shows this program's printout, written into it by
`python -m corenn.examples.workflow --threads 1 --doc docs/workflow.md --plot docs/workflow.png`.
"""

import re
import sys

import numpy as np

import corenn as cn
from corenn.examples import _cli

L = cn.layers


def build(standardizer, units=256, l2=0.0, dropout=0.0, learning_rate=1e-3):
    reg = cn.regularizers.L2(l2) if l2 else None
    layers = [L.Input((64,)), standardizer.layer(name="standardize")]
    for _ in range(2):
        layers.append(L.Dense(units, activation="relu", kernel_initializer="he_normal",
                              kernel_regularizer=reg))
        if dropout:
            layers.append(L.Dropout(dropout))
    layers.append(L.Dense(10, kernel_regularizer=reg))
    model = cn.Sequential(layers)
    model.compile(cn.optimizers.Adam(learning_rate), "softmax_cross_entropy",
                  metrics=["accuracy", "f1_macro"])
    return model


def errors(model, train, dev):
    """(train error, dev error): 1 − accuracy, in inference mode."""
    return tuple(1.0 - model.evaluate(*part)["accuracy"] for part in (train, dev))


FULL = dict(epochs=40, trials=8, units=256)
FAST = dict(epochs=4, trials=2, units=32)  # --fast: the tests' short run


def run(epochs=40, trials=8, seed=0, units=256, out=print):
    from sklearn.datasets import load_digits

    cn.seed(seed)
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target
    train, dev, test = cn.data.train_dev_test_split(X, y, (0.6, 0.2, 0.2), stratify=True, seed=seed)
    out(f"1. split: {len(train[0])} train / {len(dev[0])} dev / {len(test[0])} test")

    standardizer = cn.data.Standardizer().fit(train[0])
    out(f"2. standardise: pixel means {standardizer.mean.min():.2f}..{standardizer.mean.max():.2f}, "
        f"σ up to {standardizer.scale.max():.2f} (from the training set only)")

    results = {}
    cn.seed(seed)
    plain = build(standardizer, units)
    plain.fit(*train, batch_size=32, epochs=epochs, verbose=0)
    results["plain"] = errors(plain, train, dev)
    diagnosis = cn.diagnostics.bias_variance(human=0.0, train=results["plain"][0], dev=results["plain"][1])
    out(f"3. unregularised: train error {results['plain'][0]:.4f}, dev error {results['plain'][1]:.4f}")
    out("   " + str(diagnosis).replace("\n", "\n   "))

    # Regularisation strength is a hyper-parameter like any other: try a few
    # and keep the one with the lowest dev error (the unregularised model too).
    candidates = [{"l2": 0.0, "dropout": 0.0, "dev_error": results["plain"][1]}]
    for l2, dropout in ((1e-4, 0.2), (1e-3, 0.2), (1e-4, 0.5), (1e-3, 0.5)):
        cn.seed(seed)
        model = build(standardizer, units, l2=l2, dropout=dropout)
        model.fit(*train, batch_size=32, epochs=epochs, verbose=0)
        train_error, dev_error = errors(model, train, dev)
        candidates.append({"l2": l2, "dropout": dropout, "dev_error": dev_error})
        out(f"4. L2({l2:g}) + dropout {dropout}: train error {train_error:.4f}, dev error {dev_error:.4f}")
    reg = cn.metrics.select(candidates, "dev_error", mode="min")
    results["regularisation"] = reg
    out(f"   kept: L2({reg['l2']:g}), dropout {reg['dropout']} (dev error {reg['dev_error']:.4f})")

    def objective(params):
        cn.seed(seed)
        model = build(standardizer, units, reg["l2"], reg["dropout"], params["learning_rate"])
        model.fit(*train, batch_size=32, epochs=max(epochs // 4, 1), verbose=0)
        return {"dev_accuracy": model.evaluate(*dev)["accuracy"]}

    space = {"learning_rate": cn.tuning.LogUniform(1e-5, 1.0)}
    coarse = cn.tuning.random_search(objective, space, n_trials=trials, metric="dev_accuracy", seed=seed)
    fine_space = cn.tuning.refine(coarse, top_k=3)
    fine = cn.tuning.random_search(objective, fine_space, n_trials=trials, metric="dev_accuracy",
                                   seed=seed + 1)
    best = cn.metrics.select([*coarse, *fine], "dev_accuracy")
    out(f"5. learning rate: coarse {space['learning_rate']} -> best {coarse.best['learning_rate']:.2e} "
        f"(dev accuracy {coarse.best['dev_accuracy']:.4f}); fine {fine_space['learning_rate']} -> "
        f"best {fine.best['learning_rate']:.2e} ({fine.best['dev_accuracy']:.4f})")
    for name, results_ in (("coarse", coarse), ("fine", fine)):
        out(f"   {name} pass, best first:\n" + _indent(trial_table(results_)))
    out(f"   kept: learning rate {best['learning_rate']:.4g} (dev accuracy {best['dev_accuracy']:.4g}, "
        f"the best of both passes)")

    cn.seed(seed)
    final = build(standardizer, units, reg["l2"], reg["dropout"], best["learning_rate"])
    stop = cn.callbacks.EarlyStopping(monitor="val_loss", patience=8, restore_best_weights=True)
    history = final.fit(*train, batch_size=32, epochs=epochs, validation_data=dev, verbose=0,
                        callbacks=[stop])
    scores = final.evaluate(*test)
    predicted = final.predict(test[0]).argmax(axis=1)
    wrong = cn.diagnostics.misclassified(final, *test)
    results.update(learning_rate=best["learning_rate"], epochs_run=len(history.history["loss"]),
                   best_epoch=stop.best_epoch, test_f1=scores["f1_macro"], test_accuracy=scores["accuracy"],
                   confusion=cn.metrics.confusion_matrix(test[1], predicted, num_classes=10),
                   history=history, coarse=coarse, fine=fine, misclassified=wrong)
    out(f"6. final: learning rate {best['learning_rate']:.4g}, early stopping kept epoch "
        f"{stop.best_epoch + 1} of {results['epochs_run']}; test F1 (macro) {scores['f1_macro']:.4f}, "
        f"accuracy {scores['accuracy']:.4f}, {len(wrong)} of {len(test[0])} digits wrong")
    shown = range(min(len(wrong), 5))
    out("   most confident mistakes: " + ", ".join(
        f"{wrong.y_true[i]} read as {wrong.y_pred[i]} ({wrong.confidence[i]:.2f})" for i in shown))
    confusion = results["confusion"] - np.diag(np.diag(results["confusion"]))
    pairs = [(confusion[t, p], t, p) for t, p in zip(*np.nonzero(confusion))]
    out("   confusions (true -> predicted, count): " + ", ".join(
        f"{t} -> {p} ×{n}" for n, t, p in sorted(pairs, key=lambda c: (-c[0], c[1], c[2]))))
    return results


def trial_table(results):
    """A search's trials as a table, best first: trial, learning rate and dev
    accuracy (the wall-time column of `results.table()` left out, so that a
    run's printout repeats exactly)."""
    rows = [("trial", "learning_rate", "dev_accuracy")]
    rows += [(str(r["trial"]), f"{r['learning_rate']:.4g}", f"{r['dev_accuracy']:.4g}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows)


def _indent(text, prefix="     "):
    return "\n".join(prefix + line for line in text.split("\n"))


def fill_doc(text, lines):
    """Put a run's printout into a Markdown page: the fenced block right after
    each `<!-- workflow output: N -->` comment is replaced by the lines of step
    N (a line "N. ..." starts step N; the lines after it belong to it until the
    next step). Returns the new text; a marker for a step the run did not print
    is an error."""
    steps, step = {}, None
    for line in "\n".join(lines).split("\n"):
        match = re.match(r"(\d+)\. ", line)
        step = match.group(1) if match else step
        steps.setdefault(step, []).append(line)

    def block(match):
        if match.group(1) not in steps:
            raise ValueError(f"fill_doc: the page has a block for step {match.group(1)}, "
                             f"the run printed steps {sorted(k for k in steps if k)}")
        return f"<!-- workflow output: {match.group(1)} -->\n```text\n" + "\n".join(steps[match.group(1)]) + "\n```"

    return re.sub(r"<!-- workflow output: (\d+) -->\n```[a-z]*\n(?:.*?\n)??```", block, text, flags=re.S)


def main(argv=None):
    parser = _cli.parser(__doc__, f"a short search (the tests' run: {FAST}); --epochs, --trials and "
                                  "--units given explicitly override it")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--units", type=int, help="units in each of the two hidden layers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="write the final learning curves to this PNG (needs matplotlib)")
    parser.add_argument("--doc", help="rewrite the output blocks of this Markdown page (docs/workflow.md) "
                                      "with this run's printout")
    args = _cli.parse(parser, argv)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise SystemExit("the example needs scikit-learn: pip install 'corenn[demo]'") from None
    sizes = {**(FAST if args.fast else FULL),
             **{k: v for k, v in (("epochs", args.epochs), ("trials", args.trials), ("units", args.units))
                if v is not None}}
    lines = []

    def out(line):
        print(line)
        lines.append(line)

    results = run(**sizes, seed=args.seed, out=out)
    if args.doc:
        with open(args.doc, encoding="utf-8") as f:
            text = f.read()
        with open(args.doc, "w", encoding="utf-8") as f:
            f.write(fill_doc(text, lines))
        print(f"output blocks rewritten: {args.doc}", file=sys.stderr)
    if args.plot:
        results["history"].plot(args.plot)
        print(f"learning curves: {args.plot}", file=sys.stderr)
    return results


if __name__ == "__main__":
    main()
