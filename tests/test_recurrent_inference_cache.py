"""Recurrent weights kept across predict calls (cpp/src/engine/layers_recurrent.cpp,
engine/derived_weights.hpp): at inference the LSTM and GRU layers, alone or as
Bidirectional's two directions, keep W_hh packed into the kernels' panels
(cn.ops' kernels pack them at every call) until the weights change. A
prediction must never see stale panels: after every way of changing the
weights predict gives, bit for bit, what a fresh model with the same weights
gives; the kept panels give the kernels' results bit for bit in every variant
(sequences, states in and out, masks, go_backwards); training never keeps them."""

import threading

import numpy as np
import pytest

import corenn as cn
from corenn import layers as L

STEPS, FEATURES, UNITS = 7, 5, 20  # 20 units: a partial panel (16 floats, 8 doubles) at the end

KINDS = ["lstm", "gru", "bidirectional_lstm", "bidirectional_gru"]
WAYS = ["set_weights", "set_parameters", "train_on_batch", "set_trainable", "load_weights"]


def recurrent(kind, name, **options):
    cell = L.LSTM if kind.endswith("lstm") else L.GRU
    if kind.startswith("bidirectional"):
        return L.Bidirectional(cell(UNITS, **options), name=name)
    return cell(UNITS, name=name, **options)


def network(kind, dtype="float32"):
    """Masking -> the recurrent layer over every step -> a second one's last step -> Dense 3."""
    x = L.Input((STEPS, FEATURES), name="x")
    h = L.Masking(name="mask")(x)
    h = recurrent(kind, "rnn", return_sequences=True)(h)
    h = L.LSTM(UNITS, name="last")(h)
    model = cn.Model(x, L.Dense(3, name="head")(h), dtype=dtype)
    model.compile(cn.optimizers.Adam(1e-2), "softmax_cross_entropy")
    return model


def data(n, seed, dtype=np.float32):
    """Sequences with padded (all-zero) steps at the end of some rows, and labels."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, STEPS, FEATURES)).astype(dtype)
    for row in range(0, n, 2):
        x[row, STEPS - 1 - row % STEPS:] = 0
    return x, rng.integers(0, 3, n).astype(np.int64)


def fresh_prediction(kind, model, x):
    """model's prediction from a new model given its weights: nothing kept from earlier calls."""
    twin = network(kind)
    twin.set_weights(model.get_weights())
    return twin.predict(x)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("way", WAYS)
def test_predict_follows_every_change_of_the_weights(kind, way, tmp_path):
    cn.seed(0)
    model = network(kind)
    x, y = data(4, seed=1)
    model.train_on_batch(x, y)
    path = tmp_path / "w.corenn"
    model.save(str(path))
    before = model.predict(x)  # keeps the panels
    assert np.array_equal(before, model.predict(x))
    assert np.array_equal(before, fresh_prediction(kind, model, x))
    rng = np.random.default_rng(2)
    if way == "set_weights":
        layer = model.get_layer("rnn")
        layer.set_weights([w + rng.standard_normal(w.shape).astype(w.dtype) for w in layer.get_weights()])
    elif way == "set_parameters":
        p = model._engine.get_parameters()
        model._engine.set_parameters(p + rng.standard_normal(p.shape).astype(p.dtype))
    elif way == "train_on_batch":
        model.train_on_batch(x, y)
    elif way == "set_trainable":
        model.get_layer("head").trainable = False  # the recurrent layers still train
        model.train_on_batch(x, y)
    else:
        model.train_on_batch(x, y)
        assert not np.array_equal(model.predict(x), before)
        model.load_weights(str(path))
    after = model.predict(x)
    if way == "load_weights":
        assert np.array_equal(after, before)
    else:
        assert not np.array_equal(after, before)
    assert np.array_equal(after, fresh_prediction(kind, model, x))


def test_a_change_of_the_recurrent_kernel_alone_is_seen():
    """Only W_hh moves (the panels' source): the next predict packs anew."""
    cn.seed(1)
    for kind in KINDS:
        model = network(kind)
        x, _ = data(3, seed=3)
        before = model.predict(x)
        layer = model.get_layer("rnn")
        weights = layer.get_weights()
        per = 3 if kind.endswith("lstm") else 4  # kernel, recurrent_kernel, bias (, recurrent_bias)
        for i in (1, 1 + per) if kind.startswith("bidirectional") else (1,):
            weights[i] = weights[i][::-1].copy()
        layer.set_weights(weights)
        after = model.predict(x)
        assert not np.array_equal(after, before), kind
        assert np.array_equal(after, fresh_prediction(kind, model, x)), kind


def single_layer_model(cell, dtype, **options):
    """x (and the initial states) -> one LSTM or GRU layer, every output of it."""
    x = L.Input((STEPS, FEATURES))
    h = L.Masking()(x)
    layer = (L.LSTM if cell == "lstm" else L.GRU)(UNITS, name="rnn", **options)
    states = [L.Input((UNITS,)) for _ in range(2 if cell == "lstm" else 1)] if options.get("return_state") else []
    outs = layer(h, initial_state=states) if states else layer(h)
    return cn.Model([x, *states], outs if isinstance(outs, list) else [outs], dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("options", [{"return_sequences": True}, {},
                                     {"return_sequences": True, "return_state": True},
                                     {"return_sequences": True, "go_backwards": True}])
def test_kept_panels_give_the_kernels_results_bit_for_bit(cell, options, dtype):
    """predict (kept panels, twice) == cn.ops.*_forward (panels packed in the
    call), with the sequence's mask, initial states and reversal as the layer
    passes them; fusion on or off."""
    cn.seed(2)
    model = single_layer_model(cell, np.dtype(dtype).name, **options)
    x, _ = data(5, seed=4, dtype=dtype)
    rng = np.random.default_rng(5)
    states = [rng.standard_normal((5, UNITS)).astype(dtype) for _ in range(len(model.inputs) - 1)]
    weights = model.get_layer("rnn").get_weights()
    mask = np.any(x != 0, axis=-1)
    xs, ms = (x[:, ::-1].copy(), mask[:, ::-1].copy()) if options.get("go_backwards") else (x, mask)
    if cell == "lstm":
        want = cn.ops.lstm_forward(xs, *weights, *states, mask=ms)[:3]
    else:
        want = cn.ops.gru_forward(xs, *weights, *states, mask=ms)[:2]
    want = [want[0] if options.get("return_sequences") else want[1], *(want[1:] if options.get("return_state") else [])]
    before = cn.get_fusion()
    try:
        for fusion in (True, False, True):
            cn.set_fusion(fusion)
            got = model.predict([x, *states] if states else x)
            got = got if isinstance(got, list) else [got]
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert g.dtype == dtype and np.array_equal(g, w)
    finally:
        cn.set_fusion(before)


@pytest.mark.parametrize("kind", KINDS)
def test_concurrent_predicts_agree(kind):
    """Threads predicting at once, first after a change of weights (they meet
    where the panels are packed anew), all get the serial result."""
    cn.seed(4)
    model = network(kind)
    x, y = data(3, seed=6)
    model.predict(x)
    model.train_on_batch(x, y)
    want = fresh_prediction(kind, model, x)
    results, errors = [None] * 6, []
    start = threading.Barrier(len(results))

    def work(i):
        try:
            start.wait()
            results[i] = [model.predict(x) for _ in range(3)]
        except Exception as e:  # reported below: an assertion in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for runs in results:
        for got in runs:
            assert np.array_equal(got, want)


@pytest.mark.parametrize("kind", KINDS)
def test_training_is_bitwise_unchanged_by_predicts(kind):
    """Predicts between training steps (which keep and repack panels) leave
    the training trajectory as it is without them."""
    x, y = data(4, seed=7)
    trained = []
    for predicting in (False, True):
        cn.seed(5)
        model = network(kind)
        for _ in range(3):
            if predicting:
                model.predict(x)
            model.train_on_batch(x, y)
        trained.append(model.get_weights())
    for a, b in zip(*trained):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", ["lstm", "bidirectional_gru"])
def test_batch_one_predictions_are_deterministic_per_thread_count(kind):
    """Batch 1 splits each step's units over the team: for a given thread
    count repeated predicts (kept panels) equal a fresh model's (packed in its
    first call), on 1 and on 2 threads."""
    cn.seed(6)
    model = network(kind)
    x, y = data(2, seed=8)
    model.train_on_batch(x, y)
    threads = cn.get_num_threads()
    try:
        for n in (1, 2, 1):
            cn.set_num_threads(n)
            first = model.predict(x[:1])
            for _ in range(3):
                assert np.array_equal(model.predict(x[:1]), first)
            assert np.array_equal(first, fresh_prediction(kind, model, x[:1]))
    finally:
        cn.set_num_threads(threads)
