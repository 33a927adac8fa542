"""corenn.metrics against scikit-learn on random cases, the compile() metrics
on model outputs, and select() (optimising + satisficing metrics)."""

import numpy as np
import pytest
from sklearn import metrics as skm

import corenn as cn
from corenn import metrics as M

L = cn.layers


def random_labels(rng, n, k, skew=False):
    p = rng.dirichlet(np.ones(k) * (0.3 if skew else 5.0))
    return rng.choice(k, size=n, p=p), rng.choice(k, size=n, p=p)


CASES = [(n, k, skew, seed) for seed, (n, k, skew) in enumerate(
    [(50, 2, False), (200, 2, True), (7, 2, False), (300, 5, False), (120, 10, True), (3, 4, False)])]


@pytest.mark.parametrize("n, k, skew, seed", CASES)
@pytest.mark.parametrize("average", ["macro", "micro", "binary"])
def test_precision_recall_f1_equal_scikit_learn(n, k, skew, seed, average):
    rng = np.random.default_rng(seed)
    y_true, y_pred = random_labels(rng, n, k, skew)
    if average == "binary" and k > 2:
        with pytest.raises(ValueError, match=r"average='binary' needs two classes"):
            M.f1_score(y_true, y_pred, average="binary")
        return
    for ours, theirs in ((M.precision_score, skm.precision_score), (M.recall_score, skm.recall_score),
                         (M.f1_score, skm.f1_score)):
        assert ours(y_true, y_pred, average=average) == pytest.approx(
            theirs(y_true, y_pred, average=average, zero_division=0), rel=1e-12, abs=1e-15)


def test_binary_pos_label_and_zero_division():
    y_true = np.array([0, 0, 1, 1, 1])
    y_pred = np.array([0, 1, 1, 0, 1])
    for pos in (0, 1):
        assert M.f1_score(y_true, y_pred, pos_label=pos) == pytest.approx(
            skm.f1_score(y_true, y_pred, pos_label=pos))
    # Nothing predicted positive: precision is 0/0 -> zero_division.
    none = np.zeros(5, int)
    assert M.precision_score(y_true, none) == 0.0
    assert M.precision_score(y_true, none, zero_division=1.0) == 1.0
    assert M.recall_score(y_true, none) == 0.0


def test_micro_average_of_single_label_classes_is_accuracy(rng):
    y_true, y_pred = random_labels(rng, 400, 6)
    acc = M.accuracy_score(y_true, y_pred)
    assert acc == pytest.approx(skm.accuracy_score(y_true, y_pred))
    for fn in (M.precision_score, M.recall_score, M.f1_score):
        assert fn(y_true, y_pred, average="micro") == pytest.approx(acc)


def test_multilabel_indicators_equal_scikit_learn(rng):
    y_true = (rng.random((80, 4)) < 0.4).astype(int)
    y_pred = (rng.random((80, 4)) < 0.5).astype(int)
    for average in ("macro", "micro"):
        for ours, theirs in ((M.precision_score, skm.precision_score), (M.recall_score, skm.recall_score),
                             (M.f1_score, skm.f1_score)):
            assert ours(y_true, y_pred, average=average) == pytest.approx(
                theirs(y_true, y_pred, average=average, zero_division=0), rel=1e-12)


def test_multilabel_missing_labels_are_skipped(rng):
    y_true = (rng.random((60, 3)) < 0.5).astype(float)
    y_pred = (rng.random((60, 3)) < 0.5).astype(float)
    missing = rng.random((60, 3)) < 0.3
    with_nan = np.where(missing, np.nan, y_true)
    for col in range(3):
        keep = ~missing[:, col]
        want = skm.f1_score(y_true[keep, col], y_pred[keep, col])
        got = M.f1_score(with_nan[:, [col]], y_pred[:, [col]], average="binary")
        assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("n, k, skew, seed", CASES)
def test_confusion_matrix_equals_scikit_learn(n, k, skew, seed):
    y_true, y_pred = random_labels(np.random.default_rng(seed), n, k, skew)
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred, num_classes=k + 2),
                                  skm.confusion_matrix(y_true, y_pred, labels=np.arange(k + 2)))


def test_confusion_matrix_string_labels():
    y_true, y_pred = ["cat", "dog", "cat", "bird"], ["cat", "cat", "cat", "bird"]
    np.testing.assert_array_equal(M.confusion_matrix(y_true, y_pred),
                                  skm.confusion_matrix(y_true, y_pred))


@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("classes", [5, 10])
def test_top_k_accuracy_equals_scikit_learn(k, classes, rng):
    scores = rng.standard_normal((200, classes))
    y = rng.integers(0, classes, 200)
    if k >= classes:  # every class is in the top k (scikit-learn warns here)
        assert M.top_k_accuracy_score(y, scores, k) == 1.0
        return
    assert M.top_k_accuracy_score(y, scores, k) == pytest.approx(
        skm.top_k_accuracy_score(y, scores, k=k, labels=np.arange(classes)))
    if k == 1:
        assert M.top_k_accuracy_score(y, scores, 1) == pytest.approx(np.mean(scores.argmax(1) == y))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: M.f1_score([0, 1], [0, 1], average="weighted"), ValueError, r"f1_score: average must be one of"),
    (lambda: M.precision_score([0, 1], [0, 1, 1]), ValueError, r"precision_score: y_true and y_pred must have the same shape"),
    (lambda: M.confusion_matrix([0, 1], [0, 3], num_classes=3), ValueError,
     r"confusion_matrix: labels must be integers in \[0, 3\), got 3"),
    (lambda: M.confusion_matrix([0, 1], [0, 1], num_classes=0), ValueError, r"num_classes must be >= 1"),
    (lambda: M.top_k_accuracy_score([0, 5], np.zeros((2, 3)), 1), ValueError, r"class ids in \[0, 3\)"),
    (lambda: M.top_k_accuracy_score([0, 1], np.zeros((2, 3)), 0), ValueError, r"k must be >= 1"),
    (lambda: M.top_k_accuracy_score([0, 1, 2], np.array([[0, 1, 2], [0, 1, 2], [0, np.nan, 2.0]]), 1),
     ValueError, r"^top_k_accuracy_score: scores contains NaN \(first at example 2\)$"),
    (lambda: M.get("auc"), ValueError, r"compile: unknown metric 'auc'"),
    (lambda: M.get(3), TypeError, r"a metric must be a name or a callable"),
    (lambda: M.F1Score(average="weighted"), ValueError, r"F1Score: average must be one of"),
])
def test_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------ compile() metrics
def test_metric_names_resolve():
    assert M.get("acc")[0] == "accuracy"
    assert M.get("f1")[0] == "f1" and M.get("f1_macro")[1].average == "macro"
    assert M.get("precision_micro")[1].average == "micro"
    assert M.get("top_k_accuracy")[1].k == 5 and M.get("top_3_accuracy")[1].k == 3
    assert M.get(M.F1Score(average="micro"))[0] == "f1_micro"
    assert M.get(M.TopKAccuracy(2))[0] == "top_2_accuracy"


def test_metric_objects_on_logits(rng):
    logits = rng.standard_normal((90, 4))
    y = rng.integers(0, 4, 90)
    pred = logits.argmax(1)
    loss = "softmax_cross_entropy"
    assert M.get("f1")[1](logits, y, loss) == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert M.get("recall_micro")[1](logits, y, loss) == pytest.approx(skm.recall_score(y, pred, average="micro"))
    assert M.get("top_2_accuracy")[1](logits, y, loss) == pytest.approx(
        skm.top_k_accuracy_score(y, logits, k=2))
    # One logit + binary cross-entropy: the positive class is z > 0, f1 is binary.
    z = rng.standard_normal((70, 1))
    t = (rng.random(70) < 0.4).astype(float)
    assert M.get("f1")[1](z, t, "binary_cross_entropy") == pytest.approx(skm.f1_score(t, z[:, 0] > 0))
    t_missing = t.copy()
    t_missing[:10] = np.nan
    assert M.get("precision")[1](z, t_missing, "binary_cross_entropy") == pytest.approx(
        skm.precision_score(t[10:], z[10:, 0] > 0))
    with pytest.raises(ValueError, match=r"metric 'f1': needs a classification loss"):
        M.get("f1")[1](z, t, "mse")


@pytest.mark.parametrize("name", ["accuracy", "f1", "precision_micro", "recall", "top_2_accuracy"])
def test_nan_logits_give_nan_metrics_not_lucky_scores(name):
    # A NaN row would otherwise "predict" argmax = the NaN's index (np.argmax
    # takes the first NaN), or pass every "score > own" test as a top-k hit;
    # here the NaN sits exactly where that would score every example right.
    y = np.array([1, 1, 0])
    logits = np.array([[0.0, np.nan, -1.0], [0.0, np.nan, -1.0], [2.0, 1.0, 0.0]])
    assert np.isnan(M.get(name)[1](logits, y, "softmax_cross_entropy"))
    assert M.get(name)[1](np.nan_to_num(logits, nan=5.0), y, "softmax_cross_entropy") == 1.0


@pytest.mark.parametrize("name", ["binary_accuracy", "accuracy", "f1", "recall_macro"])
def test_nan_logits_give_nan_binary_metrics(name):
    t = np.array([[0.0, 1.0], [0.0, 0.0], [1.0, np.nan]])
    z = np.array([[np.nan, 2.0], [-1.0, -3.0], [4.0, -0.5]])  # NaN > 0 is False: "right" for t = 0
    assert np.isnan(M.get(name)[1](z, t, "binary_cross_entropy"))
    assert not np.isnan(M.get(name)[1](np.nan_to_num(z, nan=-1.0), t, "binary_cross_entropy"))


def digits_model():
    from sklearn.datasets import load_digits

    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target
    cn.seed(0)
    model = cn.Sequential([L.Input((64,)), L.Dense(32, activation="relu"), L.Dense(10)])
    model.compile(cn.optimizers.Adam(0.01), "softmax_cross_entropy",
                  metrics=["accuracy", "f1_macro", M.TopKAccuracy(3)])
    return model, X, y


def test_compile_metrics_in_evaluate_and_fit_equal_scikit_learn():
    model, X, y = digits_model()
    hist = model.fit(X[:1200], y[:1200], epochs=2, batch_size=50, validation_data=(X[1200:], y[1200:]),
                     verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "f1_macro", "top_3_accuracy", "val_loss",
                                 "val_accuracy", "val_f1_macro", "val_top_3_accuracy"}
    result = model.evaluate(X[1200:], y[1200:])
    z = model.predict(X[1200:])
    assert result["f1_macro"] == pytest.approx(skm.f1_score(y[1200:], z.argmax(1), average="macro"))
    assert result["top_3_accuracy"] == pytest.approx(skm.top_k_accuracy_score(y[1200:], z, k=3))
    assert hist.history["val_f1_macro"][-1] == pytest.approx(result["f1_macro"])


# ------------------------------------------------------------------ select
MODELS = [{"name": "A", "accuracy": 0.90, "runtime_ms": 80},
          {"name": "B", "accuracy": 0.92, "runtime_ms": 95},
          {"name": "C", "accuracy": 0.95, "runtime_ms": 1500}]


def test_select_course_example():
    # "maximise accuracy subject to running time <= 100 ms": B, not C.
    assert M.select(MODELS, "accuracy", {"runtime_ms": ("<=", 100)})["name"] == "B"
    assert M.select(MODELS, "accuracy")["name"] == "C"
    assert M.select(MODELS, "runtime_ms", mode="min")["name"] == "A"
    assert M.select(MODELS, "accuracy", {"runtime_ms": lambda t: t < 90})["name"] == "A"
    assert M.select(MODELS, "accuracy", {"runtime_ms": ("<", 2000), "accuracy": (">=", 0.91)})["name"] == "C"


def test_select_skips_nan_and_breaks_ties_by_order():
    cands = [{"n": 0, "f1": float("nan")}, {"n": 1, "f1": 0.5}, {"n": 2, "f1": 0.5}]
    assert M.select(cands, "f1")["n"] == 1


@pytest.mark.parametrize("call, match", [
    (lambda: M.select(MODELS, "accuracy", {"runtime_ms": ("<=", 10)}), r"no candidate satisfies"),
    (lambda: M.select(MODELS, "f1"), r"candidate 0 has no 'f1'"),
    (lambda: M.select(MODELS, "accuracy", {"runtime_ms": ("~", 10)}), r"constraint on 'runtime_ms'"),
    (lambda: M.select(MODELS, "accuracy", mode="best"), r"select: mode must be one of"),
])
def test_select_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
