"""The Python-only helpers' error messages: the shared array check of
corenn._validate (ragged lists, None, complex, strings and object arrays
named, never passed to NumPy) and one message per family of mistakes, in the
project's form "callee: argument must be ..., got ...". The bad-input sweep
(tests/test_bad_inputs_sweep.py, groups api-*) feeds every helper every
mistake; this file pins the wording and the cases that are still valid."""

import numpy as np
import pytest

import corenn as cn
from corenn import _validate, decoding, detection, faces, interop, metrics, style, text, tuning
from corenn.gradient_check import gradient_check


# ---------------------------------------------------------------- _validate.array

@pytest.mark.parametrize("value, error, match", [
    ([[1, 2, 3], [4, 5]], ValueError, r"f: x must be a rectangular array \(nested sequences of equal lengths\), "
                                      r"got a ragged list"),
    (None, TypeError, r"f: x must be an array of real numbers, got NoneType None"),
    ("abc", TypeError, r"f: x must be an array of real numbers, got str 'abc'"),
    (np.ones(3) + 1j, TypeError, r"f: x must be an array of real numbers, got shape \(3,\) dtype complex128"),
    (np.array(["a", "b"]), TypeError, r"got shape \(2,\) dtype <U1"),
    (np.array([None, 1.0], object), TypeError, r"got shape \(2,\) dtype object"),   # not [nan, 1.0]
    (np.array([{}, 1.0], object), TypeError, r"dtype object"),
])
def test_array_names_what_numpy_would_not(value, error, match):
    with pytest.raises(error, match=match):
        _validate.array("f", "x", value)


def test_array_keeps_what_is_valid():
    assert _validate.array("f", "x", [[1, 2], [3, 4]]).dtype == np.int64
    assert _validate.array("f", "x", np.array([np.float32(1), 2], object)).dtype == np.float64
    assert _validate.array("f", "x", [True, False], np.float64).tolist() == [1.0, 0.0]
    assert _validate.array("f", "x", ["cat", "dog"], labels=True).dtype.kind == "U"
    with pytest.raises(TypeError, match=r"f: x must be an array of labels \(numbers or strings\), got NoneType"):
        _validate.array("f", "x", None, labels=True)


def test_integer_maximum_and_examples_of_a_scalar():
    with pytest.raises(ValueError, match=r"f: n must be <= 2147483647, got 4611686018427387904"):
        _validate.integer("f", "n", 2**62, 1, _validate.INT_MAX)
    with pytest.raises(ValueError, match=r"f: X must hold examples in rows \(N, \.\.\.\), got a scalar 3"):
        _validate.examples("f", "X", 3)


def test_unknown_key_is_a_key_error_and_a_value_error():
    vectors = np.eye(4)
    for error in (KeyError, ValueError):
        with pytest.raises(error, match=r"^analogy: c='zz' is not in the vocabulary$"):
            text.analogy("a", "b", "zz", vectors, ["a", "b", "c", "d"])


# ---------------------------------------------------------------- the helpers

def _model():
    cn.seed(0)
    model = cn.Sequential([cn.layers.Input((4,)), cn.layers.Dense(3)], dtype="float64")
    model.compile(optimizer="sgd", loss="softmax_cross_entropy")
    return model


def _step(prefix):
    return np.log(np.full(4, 0.25))


@pytest.mark.parametrize("call, error, match", [
    (lambda: detection.box_convert([[1, 2, 3, 4], [1, 2]], "xyxy", "xywh"), ValueError,
     r"box_convert: boxes must be a rectangular array .* got a ragged list"),
    (lambda: detection.box_area([[0, 0, np.nan, 1]]), ValueError,
     r"box_area: boxes contains NaN or inf \(first at example 0\)"),
    (lambda: detection.batched_nms([[0, 0, 1, 1]], [0.5], [0], iou_threshold=-1), ValueError,
     r"batched_nms: nms: iou_threshold must be"),
    (lambda: detection.mean_average_precision(3, [], [], [], []), TypeError,
     r"mean_average_precision: pred_boxes must be a list with one array per image, got int 3"),
    (lambda: detection.yolo_decode(np.full((1, 6, 2, 2), np.inf), [[1.0, 1.0]], 8), ValueError,
     r"yolo_decode: output contains NaN or inf"),
    (lambda: detection.yolo_encode(np.zeros((0, 4)), [], 2**40, [[1.0, 1.0]], 2, 8), ValueError,
     r"yolo_encode: grid must be <= 2147483647"),
    (lambda: style.gram_matrix("image"), TypeError, r"gram_matrix: a must be an array of real numbers, got str"),
    (lambda: style.style_cost(np.ones((1, 2, 3, 3)), np.ones((1, 2, 3, 3)), weights=1j), TypeError,
     r"style_cost: weights must be a number or a list of numbers \(one per layer\), got complex"),
    (lambda: decoding.sample(np.ones(3) + 1j), TypeError,
     r"sample: logits must be an array of real numbers, got shape \(3,\) dtype complex128"),
    (lambda: decoding.greedy(_step, [0], max_len=2**62, end_id=0), ValueError,
     r"greedy: max_len must be <= 2147483647"),
    (lambda: decoding.greedy(lambda prefix: "x", [0], max_len=2), TypeError,
     r"greedy: step_fn's output must be an array of real numbers, got str 'x'"),
    (lambda: metrics.accuracy_score([1, 2], ["a", "b"]), TypeError,
     r"accuracy_score: y_true and y_pred must both hold numbers or both strings, got dtypes int64 and <U1"),
    (lambda: metrics.precision_score([0, 1], [0, 1], zero_division="1"), TypeError,
     r"precision_score: zero_division must be a number, got str '1'"),
    (lambda: metrics.confusion_matrix([0], [0], num_classes=2**62), ValueError,
     r"confusion_matrix: num_classes must be <= 2147483647"),
    (lambda: metrics.select(None, "acc"), TypeError, r"select: candidates must be a list of dicts of metric values"),
    (lambda: metrics.select([{"acc": 1.0}], "acc", satisficing="fast"), TypeError,
     r"select: satisficing must be None or a dict"),
    (lambda: metrics.binary_accuracy(np.zeros((4, 1)), np.zeros(3)), ValueError,
     r"binary_accuracy: y must have shape \(4, 1\) to match the outputs, got \(3,\)"),
    (lambda: metrics.accuracy(np.zeros((4, 3)), np.zeros(5), "softmax_cross_entropy"), ValueError,
     r"accuracy: y must have shape \(4,\) to match the outputs, got \(5,\)"),
    (lambda: metrics.TopKAccuracy(2)(np.zeros((4, 3)), np.zeros(2), "softmax_cross_entropy"), ValueError,
     r"metric 'top_2_accuracy': y must have shape \(4,\)"),
    (lambda: faces.Embedder(model=3), TypeError, r"Embedder: model must be None, a model with predict or a callable"),
    (lambda: faces.Embedder().enrol(3, np.zeros((1, 2))), TypeError,
     r"Embedder.enrol: names must be a list of names, got int 3"),
    (lambda: cn.data.Standardizer().fit([[1.0, 2.0], [3.0]]), ValueError,
     r"Standardizer.fit: X must be a rectangular array"),
    (lambda: tuning.sample({"a": 1}, 0), TypeError, r"sample: rng must be a np.random.Generator"),
    (lambda: tuning.Uniform(0, 1).sample("x"), TypeError, r"Uniform.sample: rng must be a np.random.Generator"),
    (lambda: tuning.Choice(3), TypeError, r"Choice: options must be a list, got int 3"),
    (lambda: tuning.random_search(lambda p: 1.0, {"a": 1}, n_trials=2**40), ValueError,
     r"random_search: n_trials must be <= 2147483647"),
    (lambda: tuning.random_search(lambda p: 1.0, {"a": 1}, metric=3), TypeError,
     r"random_search: metric must be None or the name \(a str\)"),
    (lambda: cn.diagnostics.misclassified("model", np.zeros((2, 4)), [0, 1]), TypeError,
     r"misclassified: model must be a corenn model \(cn.Model or cn.Sequential\), got str"),
    (lambda: gradient_check(_model(), np.zeros((2, 4)), None), TypeError, r"gradient_check: y must be the targets"),
    (lambda: interop.load_torch_state_dict(_model(), {"0.weight": np.zeros((3, 4))}, mapping="0"), TypeError,
     r"load_torch_state_dict: mapping must be None or a dict"),
    (lambda: interop.export_onnx(_model(), "m.onnx", opset=10**6), ValueError,
     r"export_onnx: opset must be at most \d+, the newest the installed onnx package knows, got 1000000"),
    (lambda: interop.export_onnx(_model(), None), TypeError, r"export_onnx: path must be a path"),
])
def test_helpers_name_the_callee_the_argument_and_what_was_given(call, error, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        call()


def test_an_unreadable_safetensors_file_is_an_os_error_naming_the_call(tmp_path):
    bad = tmp_path / "weights.safetensors"
    bad.write_bytes(b"not a safetensors file")
    for path in (bad, tmp_path / "missing.safetensors"):
        with pytest.raises(OSError, match=r"load_torch_state_dict: cannot read state_dict .* as a \.safetensors file"):
            interop.load_torch_state_dict(_model(), path)


def test_valid_edge_cases_still_work():
    assert detection.box_area(np.array([[0, 0, 2, 1]], object)).tolist() == [2.0]
    boxes, scores, classes = detection.yolo_decode(np.zeros((0, 12, 2, 2)), [[1.0, 1.0], [2.0, 2.0]], 8)
    assert boxes.shape == (0, 8, 4) and scores.shape == (0, 8) and classes.shape == (0, 8)
    assert metrics.accuracy_score(["cat", "dog"], ["cat", "cat"]) == 0.5
    assert metrics.binary_accuracy(np.array([1.0, -1.0]), np.array([[1.0], [0.0]])) == 1.0
    assert np.isnan(metrics.precision_score([0, 0], [0, 0], zero_division=np.nan))   # as scikit-learn
