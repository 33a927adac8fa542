"""What a Keras user types on day one: the recurrent layers' positional
arguments in Keras's order, cell functions checked at construction,
Layer.set_weights taking float64 NumPy, a layer's weights before the model's
first use, one line per epoch in logs, and error messages that point to the
fix (one-hot losses, arrays passed to a layer call, generators in fit,
saving a model compiled with a custom loss)."""

import io
import pydoc
import warnings

import numpy as np
import pytest

import corenn as cn

L = cn.layers


# ------------------------------------------------------------- recurrent layers' arguments

def test_recurrent_positional_arguments_follow_keras():
    # Keras: (units, activation, [recurrent_activation,] use_bias, ...).
    assert L.SimpleRNN(4, "tanh", False).use_bias is False
    gru = L.GRU(4, "tanh", "sigmoid", False)
    assert (gru.activation, gru.recurrent_activation, gru.use_bias) == ("tanh", "sigmoid", False)
    lstm = L.LSTM(4, "tanh", "sigmoid", False)
    assert lstm.use_bias is False and lstm.unit_forget_bias is True
    with pytest.raises(TypeError):  # the rest is keyword-only: no silent slot
        L.LSTM(4, "tanh", "sigmoid", True, False)
    with pytest.raises(TypeError):
        L.SimpleRNN(4, "tanh", True, True)


@pytest.mark.parametrize("make, argument", [
    (lambda: L.LSTM(8, "relu"), "activation"),          # once landed in unit_forget_bias
    (lambda: L.GRU(8, "relu"), "activation"),           # once landed in recurrent_activation
    (lambda: L.SimpleRNN(8, "relu"), "activation"),
    (lambda: L.LSTM(8, activation="relu"), "activation"),
    (lambda: L.GRU(8, recurrent_activation="hard_sigmoid"), "recurrent_activation"),
])
def test_unsupported_cell_function_fails_at_construction(make, argument):
    with pytest.raises(ValueError, match=rf"{argument} must be '(tanh|sigmoid)'.*got '(relu|hard_sigmoid)'"):
        make()


@pytest.mark.parametrize("cls", [L.SimpleRNN, L.GRU, L.LSTM])
def test_recurrent_help_shows_shapes_and_errors(cls):
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    for phrase in ("(batch, timesteps, features)", "return_sequences", "return_state", "ValueError"):
        assert phrase in text


# ------------------------------------------------------------- weights

def test_layer_weights_exist_before_first_use():
    model = cn.Sequential([L.Input((4,)), L.Dense(8), L.Dense(3)])
    kernel, bias = model.layers[0].get_weights()
    assert kernel.shape == (8, 4) and bias.shape == (8,)
    # No input shape yet: nothing to build, so no weights (Keras's unbuilt layer).
    assert cn.Sequential([L.Dense(8)]).layers[0].get_weights() == []


def test_layer_set_weights_casts_float64_like_model_set_weights():
    model = cn.Sequential([L.Input((4,)), L.Dense(8), L.Dense(3)])
    dense = model.layers[0]
    dense.set_weights([np.full((8, 4), 0.5), np.arange(8.0)])   # float64, before any use
    kernel, bias = dense.get_weights()
    assert kernel.dtype == np.float32 and np.all(kernel == 0.5)
    np.testing.assert_array_equal(bias, np.arange(8, dtype=np.float32))
    np.testing.assert_array_equal(model.get_weights()[1], bias)


def test_layer_set_weights_errors_name_the_layer():
    model = cn.Sequential([L.Input((4,)), L.Dense(8, name="hidden")])
    dense = model.layers[0]
    with pytest.raises(ValueError, match=r"layer 'hidden' weight 0 must have shape \(8, 4\), got \(4, 8\)"):
        dense.set_weights([np.zeros((4, 8)), np.zeros(8)])
    with pytest.raises(ValueError, match=r"layer 'hidden' expects 2 arrays, got 1"):
        dense.set_weights([np.zeros((8, 4))])
    with pytest.raises(TypeError, match=r"layer 'hidden': array 1 must be real numbers"):
        dense.set_weights([np.zeros((8, 4)), ["a"] * 8])


# ------------------------------------------------------------- fit's log

class _Pipe(io.StringIO):
    def isatty(self):
        return False


def test_fit_logs_one_line_per_epoch_when_not_a_terminal(monkeypatch):
    pytest.importorskip("tqdm")   # the bar that used to be drawn
    log = _Pipe()
    monkeypatch.setattr("sys.stderr", log)
    model = cn.Sequential([L.Input((3,)), L.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((40, 3)).astype(np.float32)
    model.fit(x, x[:, :2], batch_size=8, epochs=3, verbose=1)
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 3 and all(line.startswith(f"Epoch {e}/3") and "loss:" in line
                                   for e, line in zip((1, 2, 3), lines))


# ------------------------------------------------------------- error messages

def test_categorical_crossentropy_points_to_softmax_cross_entropy():
    model = cn.Sequential([L.Input((3,)), L.Dense(2)])
    with pytest.raises(ValueError, match=r"'softmax_cross_entropy' with integer class ids") as error:
        model.compile(loss="categorical_crossentropy")
    assert "binary" not in str(error.value)


def test_array_given_to_a_layer_call_is_described_not_printed():
    q = L.Input((5, 8))
    mask = np.ones((2, 5, 5), dtype=bool)
    with pytest.raises(TypeError, match=r"got a ndarray of shape \(2, 5, 5\); .*Input of the model") as error:
        L.MultiHeadAttention(2, 4)(q, q, attention_mask=mask)
    assert "True" not in str(error.value) and len(str(error.value)) < 400


def test_fit_on_a_generator_says_what_to_pass():
    model = cn.Sequential([L.Input((3,)), L.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    batches = ((np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)) for _ in range(2))
    with pytest.raises(TypeError, match=r"generators .* not supported.*train_on_batch"):
        model.fit(batches)
    with pytest.raises(TypeError, match=r"fit: y \(the targets\) is missing"):
        model.fit(np.zeros((4, 3), np.float32))


def test_saving_a_custom_loss_model_warns_once(tmp_path):
    model = cn.Sequential([L.Input((3,)), L.Dense(2)], name="custom")
    model.compile(optimizer="sgd", loss=lambda y, p: (float(np.mean((p - y) ** 2)), 2 * (p - y) / p.size))
    with pytest.warns(UserWarning, match=r"model 'custom' is compiled with a custom \(Python\) loss"):
        model.save(tmp_path / "a.corenn")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.save(tmp_path / "b.corenn")   # once per model
        model.save(tmp_path / "c.corenn", include_optimizer=False)
    assert cn.load_model(tmp_path / "a.corenn")._losses is None   # what the warning says


# ------------------------------------------------------------- Keras APIs

def _compiled_mlp():
    cn.seed(3)
    model = cn.Sequential([L.Input((3,)), L.Dense(4, activation="relu"), L.Dense(2)])
    model.compile(optimizer=cn.optimizers.SGD(0.05), loss="softmax_cross_entropy", metrics=["accuracy"])
    rng = np.random.default_rng(3)
    return model, rng.standard_normal((20, 3)).astype(np.float32), rng.integers(0, 2, 20)


def test_model_weights_are_get_weights():
    model, _, _ = _compiled_mlp()
    assert [w.shape for w in model.weights] == [(4, 3), (4,), (2, 4), (2,)]
    for a, b in zip(model.weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_evaluate_return_dict_false_is_keras_list():
    model, x, y = _compiled_mlp()
    logs = model.evaluate(x, y)
    assert model.evaluate(x, y, return_dict=False) == [logs["loss"], logs["accuracy"]]
    only_loss = cn.Sequential([L.Input((3,)), L.Dense(2)])
    only_loss.compile(optimizer="sgd", loss="softmax_cross_entropy")
    assert only_loss.evaluate(x, y, return_dict=False) == only_loss.evaluate(x, y)["loss"]


def test_fit_initial_epoch_resumes_the_numbering():
    model, x, y = _compiled_mlp()
    seen = []

    class Record(cn.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            seen.append(epoch)

    history = model.fit(x, y, epochs=5, initial_epoch=3, verbose=0, callbacks=[Record()])
    assert seen == [3, 4] and len(history.history["loss"]) == 2
    with pytest.raises(ValueError, match="initial_epoch"):
        model.fit(x, y, epochs=2, initial_epoch=-1, verbose=0)


def test_load_model_compile_false(tmp_path):
    model, x, y = _compiled_mlp()
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn", compile=False)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="compile"):
        loaded.fit(x, y, verbose=0)
    assert cn.load_model(tmp_path / "m.corenn").evaluate(x, y) == model.evaluate(x, y)


# ------------------------------------------------------------- 1-D layers after sequence layers

@pytest.mark.parametrize("make", [lambda: L.Conv1D(4, 3), lambda: L.MaxPooling1D(2),
                                  lambda: L.GlobalAveragePooling1D()])
def test_channels_first_1d_layer_after_a_sequence_layer_warns(make):
    tokens = L.Input((12,))
    embedded = L.Embedding(50, 6, name="embed")(tokens)
    layer = make()
    with pytest.warns(UserWarning, match=rf"{type(layer).__name__} '{layer.name}' reads \(batch, channels, "
                                         r"length\).*Embedding 'embed' gives \(batch, timesteps, features\)"):
        layer(embedded)


def test_channels_first_1d_layer_on_its_own_layout_is_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = L.Input((3, 9))
        L.GlobalAveragePooling1D()(L.Conv1D(4, 3)(x))
