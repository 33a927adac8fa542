"""Zero examples: a loss, metric or update over no data has no value, so every
entry point that computes one raises a ValueError naming the function and the
argument, before any update (scikit-learn's metrics refuse empty input too;
they are the oracle). predict on zero rows returns zero rows."""

import numpy as np
import pytest
import sklearn.metrics as skm

import corenn as cn

L = cn.layers
RNG = np.random.default_rng(0)
X = RNG.standard_normal((8, 4))
Y = RNG.integers(0, 3, 8)


def model(metrics=("accuracy",)):
    cn.seed(0)
    m = cn.Sequential([L.Input((4,)), L.Dense(5, activation="relu"), L.BatchNormalization(), L.Dense(3)])
    m.compile(optimizer=cn.optimizers.Adam(0.1), loss="softmax_cross_entropy", metrics=list(metrics))
    m.train_on_batch(X, Y)  # optimizer state and batch norm statistics exist
    return m


def snapshot(m):
    e = m._engine
    step, slots = e.get_optimizer_state()
    return [*m.get_weights(), e.get_state(), *slots, np.array(step), np.array(e.steps)]


MODEL_CASES = [
    ("evaluate", lambda m: m.evaluate(X[:0], Y[:0]), r"^evaluate: x holds no examples$"),
    ("fit x", lambda m: m.fit(X[:0], Y[:0], verbose=0), r"^fit: x holds no examples$"),
    ("fit validation_data", lambda m: m.fit(X, Y, validation_data=(X[:0], Y[:0]), verbose=0),
     r"^fit \(validation_data\): x holds no examples$"),
    ("fit validation_split, nothing to train", lambda m: m.fit(X[:1], Y[:1], validation_split=0.5, verbose=0),
     r"^fit: validation_split=0.5 leaves no examples for training or validation out of 1$"),
    ("fit validation_split, nothing to train (n=8)", lambda m: m.fit(X, Y, validation_split=0.9, verbose=0),
     r"^fit: validation_split=0.9 leaves no examples for training or validation out of 8$"),
    ("train_on_batch", lambda m: m.train_on_batch(X[:0], Y[:0]), r"^train_on_batch: x holds no examples$"),
    ("gradient_check", lambda m: cn.gradient_check(m, X[:0], Y[:0]), r"^gradient_check: x holds no examples$"),
    ("misclassified", lambda m: cn.diagnostics.misclassified(m, X[:0], Y[:0]),
     r"^misclassified: X holds no examples$"),
]


@pytest.mark.parametrize("metrics", [(), ("accuracy", "f1")])
@pytest.mark.parametrize("call,match", [c[1:] for c in MODEL_CASES], ids=[c[0] for c in MODEL_CASES])
def test_model_entry_points_refuse_zero_examples_before_any_update(call, match, metrics):
    m = model(metrics)
    before = snapshot(m)
    with pytest.raises(ValueError, match=match):
        call(m)
    after = snapshot(m)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("batch_size", [1, 256])
def test_predict_on_zero_rows_returns_zero_rows(dtype, batch_size):
    cn.seed(0)
    dense = cn.Sequential([L.Input((4,)), L.Dense(3)], dtype=dtype)
    conv = cn.Sequential([L.Input((2, 6, 6)), L.Conv2D(3, 3, padding=1), L.BatchNormalization(),
                          L.MaxPool2D(2), L.Flatten(), L.Dense(5)], dtype=dtype)
    for m, x, shape in ((dense, X, (0, 3)), (conv, RNG.standard_normal((4, 2, 6, 6)), (0, 5))):
        out = m.predict(x[:0], batch_size=batch_size)
        assert out.shape == shape
        assert out.dtype == np.dtype(dtype)
        assert m.predict(x[:0].astype(np.int64)).shape == shape  # cast like any input


def test_keras_validation_split_never_leaves_the_validation_side_empty():
    # Keras's split keeps ⌈n·split⌉-ish (n − ⌊n·(1 − split)⌋ >= 1) examples for
    # validation whenever split > 0: the smallest split on 8 examples still validates on one.
    m = model()
    hist = m.fit(X, Y, validation_split=0.01, epochs=1, verbose=0)
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}


EMPTY_LABELS = (np.zeros(0, np.int64), np.zeros(0, np.int64))
LABEL_METRICS = [
    ("accuracy_score", cn.metrics.accuracy_score, skm.accuracy_score, EMPTY_LABELS, "y_true"),
    ("confusion_matrix", cn.metrics.confusion_matrix, skm.confusion_matrix, EMPTY_LABELS, "y_true"),
    ("precision_score", cn.metrics.precision_score, skm.precision_score, EMPTY_LABELS, "y_true"),
    ("recall_score", cn.metrics.recall_score, skm.recall_score, EMPTY_LABELS, "y_true"),
    ("f1_score", cn.metrics.f1_score, skm.f1_score, EMPTY_LABELS, "y_true"),
    ("top_k_accuracy_score", lambda y, s: cn.metrics.top_k_accuracy_score(y, s, k=2),
     lambda y, s: skm.top_k_accuracy_score(y, s, k=2, labels=[0, 1, 2]),
     (np.zeros(0, np.int64), np.zeros((0, 3))), "y_true"),
]


@pytest.mark.parametrize("name,ours,theirs,args,arg", LABEL_METRICS, ids=[c[0] for c in LABEL_METRICS])
def test_label_metrics_refuse_empty_input_as_scikit_learn_does(name, ours, theirs, args, arg):
    with pytest.raises(ValueError):
        theirs(*args)
    with pytest.raises(ValueError, match=rf"^{name}: {arg} holds no examples$"):
        ours(*args)
    if name not in ("confusion_matrix", "top_k_accuracy_score"):
        for average in ("macro", "micro") if name.endswith("_score") and name != "accuracy_score" else ():
            with pytest.raises(ValueError, match=rf"^{name}: {arg} holds no examples$"):
                ours(*args, average=average)
    with pytest.raises(ValueError, match=rf"^{name}: {arg} holds no examples$"):
        ours([], []) if name != "top_k_accuracy_score" else ours([], np.zeros((0, 3)))


def test_confusion_matrix_with_num_classes_refuses_empty_input():
    with pytest.raises(ValueError, match=r"^confusion_matrix: y_true holds no examples$"):
        cn.metrics.confusion_matrix([], [], num_classes=3)


def test_multilabel_scores_refuse_empty_input():
    with pytest.raises(ValueError, match=r"^f1_score: y_true holds no examples$"):
        cn.metrics.f1_score(np.zeros((0, 2)), np.zeros((0, 2)), average="macro")


SCE, BCE = "softmax_cross_entropy", "binary_cross_entropy"
COMPILE_METRICS = [
    ("accuracy", cn.metrics.accuracy, SCE, (0, 3), r"accuracy"),
    ("accuracy (binary)", cn.metrics.accuracy, BCE, (0, 1), r"accuracy"),
    ("binary_accuracy", cn.metrics.binary_accuracy, BCE, (0, 1), r"binary_accuracy"),
    ("precision", cn.metrics.Precision(), SCE, (0, 3), r"metric 'precision'"),
    ("recall_micro", cn.metrics.Recall("micro"), BCE, (0, 2), r"metric 'recall_micro'"),
    ("f1", cn.metrics.F1Score(), BCE, (0, 1), r"metric 'f1'"),
    ("top_2_accuracy", cn.metrics.TopKAccuracy(2), SCE, (0, 3), r"metric 'top_2_accuracy'"),
    ("categorical_accuracy", cn.metrics.categorical_accuracy, "mse", (0, 3), r"categorical_accuracy"),
    ("mean_absolute_error", cn.metrics.mean_absolute_error, "mse", (0, 2), r"mae"),
    ("mean_squared_error", cn.metrics.mean_squared_error, "mse", (0, 2), r"mse"),
]


@pytest.mark.parametrize("name,fn,loss,shape,owner", COMPILE_METRICS, ids=[c[0] for c in COMPILE_METRICS])
def test_compile_metrics_refuse_empty_outputs(name, fn, loss, shape, owner):
    y = np.zeros(0, np.int64) if loss == SCE else np.zeros(shape)
    with pytest.raises(ValueError, match=rf"^{owner}: outputs holds no examples$"):
        fn(np.zeros(shape), y, loss)


def test_every_metric_is_covered():
    covered = {c[0] for c in LABEL_METRICS} | {"accuracy", "binary_accuracy", "Precision", "Recall",
                                                "F1Score", "TopKAccuracy", "categorical_accuracy",
                                                "mean_absolute_error", "mean_squared_error"}
    assert set(cn.metrics.__all__) - {"get", "select"} == covered


DATA_CASES = [
    ("train_dev_test_split", lambda: cn.data.train_dev_test_split(X[:0], Y[:0]),
     r"^train_dev_test_split: X must hold at least one example \(row\), got shape \(0, 4\)$"),
    ("mini_batches", lambda: list(cn.data.mini_batches(X[:0], Y[:0], 4)), r"^mini_batches: X holds no examples$"),
    ("mini_batches without y", lambda: list(cn.data.mini_batches(X[:0], batch_size=4)),
     r"^mini_batches: X holds no examples$"),
    ("Standardizer.fit", lambda: cn.data.Standardizer().fit(X[:0]), r"^Standardizer.fit: X holds no examples$"),
    ("Normalization.adapt", lambda: L.Normalization().adapt(X[:0]),
     r"^Normalization.adapt: X must be .* with at least one example, got shape \(0, 4\)$"),
]


@pytest.mark.parametrize("call,match", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_data_helpers_refuse_zero_examples(call, match):
    with pytest.raises(ValueError, match=match):
        call()
