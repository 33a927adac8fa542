"""Bad input to the model API: each raises ValueError or TypeError with a message
naming the callee, the argument, what was expected and what was given; and a
failed fit leaves the weights exactly as they were."""

import numpy as np
import pytest

import corenn as cn

L = cn.layers
O = cn.optimizers

X = np.random.default_rng(0).standard_normal((6, 4))
Y = np.array([0, 1, 2, 0, 1, 2])


def model(loss="softmax_cross_entropy", outputs=3, compiled=True):
    m = cn.Sequential([L.Input((4,)), L.Dense(5, activation="tanh", name="hidden"),
                       L.Dense(outputs, name="logits")])
    if compiled:
        m.compile(optimizer=O.SGD(0.1), loss=loss, metrics=["accuracy"])
    return m


def compiled_with(optimizer):
    m = model(compiled=False)
    m.compile(optimizer=optimizer, loss="softmax_cross_entropy")
    return m


def fit(x=X, y=Y, m=None, **kw):
    return (m or model()).fit(x, y, verbose=0, **kw)


CASES = [
    # ---- x
    ("x wrong feature count", lambda: fit(x=np.ones((6, 5))), ValueError,
     r"^fit: x must have shape \(batch, 4\), got \(6, 5\)$"),
    ("x 1-D", lambda: fit(x=np.ones(6)), ValueError,
     r"^fit: x must have shape \(batch, 4\), got \(6,\)$"),
    ("x extra axis predict", lambda: model().predict(np.ones((6, 4, 1))), ValueError,
     r"^predict: x must have shape \(batch, 4\), got \(6, 4, 1\)$"),
    ("x string dtype", lambda: fit(x=X.astype(str)), TypeError,
     r"^fit: x must be numeric, got dtype <U\d+$"),
    ("x object dtype", lambda: model().predict(np.array([[1, 2, 3, None]], dtype=object)),
     TypeError, r"^predict: x must be numeric, got dtype object$"),
    ("x complex dtype", lambda: model().evaluate(X.astype(complex), Y), TypeError,
     r"^evaluate: x must be numeric, got dtype complex128$"),
    ("x empty", lambda: fit(x=np.ones((0, 4)), y=np.zeros(0, dtype=int)), ValueError,
     r"^fit: x holds no examples$"),
    # NaN/inf: refused before any work (predict lets them propagate instead)
    ("x NaN", lambda: fit(x=np.where(np.arange(24).reshape(6, 4) == 13, np.nan, X)), ValueError,
     r"^fit: x contains NaN or inf \(first at example 3\)$"),
    ("x inf", lambda: model().train_on_batch(np.where(np.arange(24).reshape(6, 4) == 20, -np.inf, X), Y),
     ValueError, r"^train_on_batch: x contains NaN or inf \(first at example 5\)$"),
    ("x overflows float32", lambda: model().evaluate(np.where(np.arange(24).reshape(6, 4) == 1, 1e39, X), Y),
     ValueError, r"^evaluate: x contains NaN or inf \(first at example 0\)$"),
    ("validation x NaN", lambda: fit(validation_data=(np.where(np.arange(24).reshape(6, 4) == 4, np.nan, X), Y)),
     ValueError, r"^fit \(validation_data\): x contains NaN or inf \(first at example 1\)$"),
    ("mse y NaN", lambda: fit(m=model("mse"), y=np.where(np.arange(18).reshape(6, 3) == 7, np.nan, 0.5)),
     ValueError, r"^fit: y contains NaN or inf \(first at example 2\)$"),
    ("bce y inf", lambda: fit(m=model("binary_cross_entropy"), y=np.where(np.arange(18).reshape(6, 3) == 14, np.inf, 1.0)),
     ValueError, r"^fit: y contains inf \(first at example 4\)$"),
    # ---- y
    ("y wrong length", lambda: fit(y=Y[:5]), ValueError,
     r"^fit: x and y must hold the same number of examples, got 6 and 5$"),
    ("label out of range", lambda: fit(y=Y + 1), ValueError,
     r"^fit: class id 3 in y is outside \[0, 3\) for a model with 3 outputs$"),
    ("label negative", lambda: fit(y=Y - 1), ValueError,
     r"^fit: class id -1 in y is outside \[0, 3\) for a model with 3 outputs$"),
    ("label non-integer float", lambda: fit(y=Y + 0.5), ValueError,
     r"^fit: class ids in y must be whole numbers$"),
    ("label NaN", lambda: model().evaluate(X, np.array([0, 1, np.nan, 0, 1, 2])), ValueError,
     r"^evaluate: y contains NaN or inf \(first at example 2\)$"),
    ("label one-hot", lambda: model().train_on_batch(X, np.eye(3)[Y]), ValueError,
     r"^train_on_batch: softmax_cross_entropy needs y of shape \(6,\) \(integer class ids\), "
     r"got \(6, 3\)$"),
    ("label strings", lambda: fit(y=Y.astype(str)), TypeError,
     r"^fit: y must hold integer class ids, got dtype <U\d+$"),
    ("bce target shape", lambda: fit(m=model("binary_cross_entropy"), y=np.ones((6, 2))),
     ValueError, r"^fit: y must have shape \(6, 3\) to match the model's output, got \(6, 2\)$"),
    ("mse target dtype", lambda: fit(m=model("mse"), y=np.full((6, 3), "a")), TypeError,
     r"^fit: y must be numeric, got dtype <U1$"),
    # ---- layer hyper-parameters
    ("Dense(0)", lambda: L.Dense(0), ValueError, r"^Dense: units must be >= 1, got 0$"),
    ("Dense('a')", lambda: L.Dense(units="a"), TypeError,
     r"^Dense: units must be an int, got str 'a'$"),
    ("Dense(2.5)", lambda: L.Dense(2.5), TypeError, r"^Dense: units must be an int, got float 2.5$"),
    ("Dropout(1.0)", lambda: L.Dropout(1.0), ValueError,
     r"^Dropout: rate must be finite and in \[0.0, 1.0\), got 1.0$"),
    ("Dropout(-0.1)", lambda: L.Dropout(-0.1), ValueError,
     r"^Dropout: rate must be finite and in \[0.0, 1.0\), got -0.1$"),
    ("unknown activation", lambda: L.Dense(3, activation="maxout"), ValueError,
     r"^Dense: activation must be one of 'linear', .*'hard_sigmoid', 'abs', got 'maxout'$"),
    ("unknown Activation", lambda: L.Activation("rleu"), ValueError,
     r"^Activation: activation must be one of .*, got 'rleu'; did you mean 'relu'\?$"),
    ("unknown initializer", lambda: L.Dense(3, kernel_initializer="identity"), ValueError,
     r"^Dense: initializer must be one of 'zeros', .*'orthogonal', got 'identity'$"),
    ("unknown regularizer", lambda: L.Dense(3, kernel_regularizer="l3"), TypeError,
     r"^Dense: kernel_regularizer must be None, 'l1', 'l2' or a Regularizer, got 'l3'$"),
    ("negative L2", lambda: cn.regularizers.L2(-1.0), ValueError,
     r"^L2: l2 must be finite and in \[0.0, inf\), got -1.0$"),
    ("Input((0, 3))", lambda: L.Input((0, 3)), ValueError,
     r"^Input: shape must be a tuple of positive ints, got \(0, 3\)$"),
    ("Reshape((0, 2))", lambda: L.Reshape((0, 2)), ValueError,
     r"^Reshape: target_shape must hold positive ints and at most one -1, got \(0, 2\)$"),
    # ---- compile
    ("unknown loss", lambda: model(compiled=False).compile("sgd", "hinge"), ValueError,
     r"^compile: loss must be one of 'softmax_cross_entropy', 'binary_cross_entropy', 'mse', "
     r"got 'hinge'$"),
    ("unknown optimizer", lambda: model(compiled=False).compile("adagrad", "mse"), ValueError,
     r"^compile: optimizer must be an Optimizer or one of 'sgd', 'rmsprop', 'adam', 'adamw', "
     r"got 'adagrad'$"),
    ("unknown metric", lambda: model(compiled=False).compile("sgd", "mse", ["auc"]), ValueError,
     r"^compile: unknown metric 'auc'"),
    ("fit before compile", lambda: fit(m=model(compiled=False)), ValueError,
     r"^fit: call compile\(optimizer, loss\) first$"),
    ("evaluate before compile", lambda: model(compiled=False).evaluate(X, Y), ValueError,
     r"^evaluate: call compile\(optimizer, loss\) first$"),
    ("train_on_batch before compile", lambda: model(compiled=False).train_on_batch(X, Y),
     ValueError, r"^train_on_batch: call compile\(optimizer, loss\) first$"),
    # ---- optimizers
    ("nesterov without momentum", lambda: O.SGD(0.1, nesterov=True), ValueError,
     r"^SGD: nesterov needs momentum > 0 and dampening == 0, got momentum=0.0, dampening=0.0$"),
    ("nesterov with dampening", lambda: O.SGD(0.1, momentum=0.9, dampening=0.9, nesterov=True),
     ValueError, r"^SGD: nesterov needs momentum > 0 and dampening == 0"),
    ("negative learning rate", lambda: O.SGD(-0.1), ValueError,
     r"^SGD: learning_rate must be finite and in \[0.0, inf\), got -0.1$"),
    ("NaN learning rate", lambda: O.Adam(float("nan")), ValueError,
     r"^Adam: learning_rate must be finite and in \[0.0, inf\), got nan$"),
    ("string learning rate", lambda: O.RMSprop("0.1"), TypeError,
     r"^RMSprop: learning_rate must be a number, got str '0.1'$"),
    ("momentum > 1", lambda: O.SGD(0.1, momentum=1.5), ValueError,
     r"^SGD: momentum must be finite and in \[0.0, 1.0\], got 1.5$"),
    ("beta_1 = 1", lambda: O.Adam(beta_1=1.0), ValueError,
     r"^Adam: beta_1 must be finite and in \[0.0, 1.0\), got 1.0$"),
    # ---- architecture (checked at build, the message names the layer)
    ("Reshape incompatible",
     lambda: cn.Sequential([L.Input((6,)), L.Reshape((4, 2), name="rs")]).build(), ValueError,
     r"^layer 'rs' \(reshape\): cannot reshape an input of shape \(6,\) \(6 values\) to \(4, 2\)$"),
    ("Reshape -1 incompatible",
     lambda: cn.Sequential([L.Input((6,)), L.Reshape((4, -1), name="rs")]).build(), ValueError,
     r"^layer 'rs' \(reshape\): cannot reshape an input of shape \(6,\) \(6 values\) to \(4, -1\)$"),
    ("RepeatVector after 3-D input",
     lambda: cn.Sequential([L.Input((2, 3, 4)), L.RepeatVector(2, name="rv")]).build(), ValueError,
     r"^layer 'rv' \(repeat_vector\): expects a vector \(features,\) per example, i.e. batches "
     r"\(batch, features\), got \(2, 3, 4\) per example$"),
    ("RepeatVector after 3-D input on first predict",
     lambda: cn.Sequential([L.Input((2, 3, 4)), L.RepeatVector(2, name="rv")]).predict(np.ones((1, 2, 3, 4))),
     ValueError, r"^layer 'rv' \(repeat_vector\): expects a vector \(features,\) per example"),
    ("duplicate layer names",
     lambda: cn.Sequential([L.Input((4,)), L.Dense(2, name="a"), L.Dense(2, name="a")]),
     ValueError, r"^Sequential\.add: a layer named 'a' is already in the model$"),
    ("Input not first", lambda: cn.Sequential([L.Input((4,)), L.Dense(2), L.Input((3,))]),
     ValueError, r"^Sequential\.add: Input must come first$"),
    ("not a layer", lambda: cn.Sequential([L.Input((4,)), "dense"]), TypeError,
     r"^Sequential\.add: expected a corenn layer, got 'dense'$"),
    ("unsupported dtype", lambda: cn.Sequential(dtype="float16"), ValueError,
     r"^Sequential: dtype must be one of 'float32', 'float64', got 'float16'; did you mean "
     r"'float64'\?$"),
    # ---- fit arguments
    ("batch_size=0", lambda: fit(batch_size=0), ValueError, r"^fit: batch_size must be >= 1, got 0$"),
    ("batch_size float", lambda: fit(batch_size=2.0), TypeError,
     r"^fit: batch_size must be an int, got float 2.0$"),
    ("predict batch_size=0", lambda: model().predict(X, batch_size=0), ValueError,
     r"^predict: batch_size must be >= 1, got 0$"),
    ("epochs=-1", lambda: fit(epochs=-1), ValueError, r"^fit: epochs must be >= 0, got -1$"),
    ("validation_split=1.0", lambda: fit(validation_split=1.0), ValueError,
     r"^fit: validation_split must be finite and in \[0.0, 1.0\), got 1.0$"),
    ("validation_split leaves nothing", lambda: fit(validation_split=0.9), ValueError,
     r"^fit: validation_split=0.9 leaves no examples for training or validation out of 6$"),
    ("validation_data not a pair", lambda: fit(validation_data=(X,)), ValueError,
     r"^fit: validation_data must be a tuple \(x_val, y_val\) or \(x_val, y_val, sample_weight_val\)$"),
    ("validation_data bad labels", lambda: fit(validation_data=(X, Y + 5)), ValueError,
     r"^fit \(validation_data\): class id 5 in y is outside \[0, 3\)"),
    ("callback not a Callback", lambda: fit(callbacks=[object()]), TypeError,
     r"^fit: callbacks must be Callback instances, got <object object"),
    ("schedule returns a negative lr", lambda: fit(m=compiled_with(O.SGD(lambda step: -1.0))),
     ValueError, r"^SGD schedule: learning rate must be finite and in \[0.0, inf\), got -1.0$"),
    ("gradient_check epsilon=0", lambda: cn.gradient_check(model(), X, Y, epsilon=0), ValueError,
     r"^gradient_check: epsilon must be finite and in \(0.0, inf\), got 0.0$"),
    # ---- runtime
    ("set_num_threads(0)", lambda: cn.set_num_threads(0), ValueError,
     r"^set_num_threads: n must be >= 1, got 0$"),
    ("set_num_threads('2')", lambda: cn.set_num_threads("2"), TypeError,
     r"^set_num_threads: n must be an int, got str$"),
    ("seed(-1)", lambda: cn.seed(-1), ValueError, r"^seed: s must be in \[0, 2\*\*64\), got -1$"),
    ("seed(2**64)", lambda: cn.seed(2**64), ValueError, r"^seed: s must be in \[0, 2\*\*64\)"),
    ("seed(1.5)", lambda: cn.seed(1.5), TypeError, r"^seed: s must be an int, got float$"),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input(call, exc, match):
    threads = cn.get_num_threads()
    try:
        with pytest.raises(exc, match=match):
            call()
    finally:
        assert cn.get_num_threads() == threads  # a rejected setting changes nothing


def test_ids_are_unique():
    assert len({c[0] for c in CASES}) == len(CASES)


# ------------------------------------------- a failed fit changes no weight
def trained_model(seed=0):
    cn.seed(seed)
    m = cn.Sequential([L.Input((4,)), L.Dense(5, activation="tanh"), L.Dropout(0.2), L.Dense(3)])
    m.compile(optimizer=O.Adam(0.01), loss="softmax_cross_entropy")
    m.fit(X, Y, batch_size=2, epochs=1, verbose=0)  # non-trivial optimizer state too
    return m


def assert_weights_equal(before, after):
    assert len(before) == len(after)
    for b, a in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad_y, exc", [(Y[:5], ValueError), (Y + 7, ValueError),
                                        (Y + 0.5, ValueError), (Y.astype(str), TypeError)])
def test_fit_with_bad_y_leaves_weights_untouched(bad_y, exc):
    m = trained_model()
    before, steps = m.get_weights(), m._engine.steps
    with pytest.raises(exc):
        m.fit(X, bad_y, batch_size=2, epochs=2, verbose=0)
    assert_weights_equal(before, m.get_weights())
    assert m._engine.steps == steps


class RaiseAfter(cn.callbacks.Callback):
    def __init__(self, batches):
        super().__init__()
        self.batches, self.seen = batches, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.batches:
            self.weights_at_failure = self.model.get_weights()
            raise RuntimeError("callback failed mid-epoch")


@pytest.mark.parametrize("batches", [1, 2, 5])  # first batch, mid-epoch, second epoch
def test_callback_raising_mid_epoch_restores_weights(batches):
    m = trained_model()
    before = m.get_weights()
    step_before, slots_before = m._engine.get_optimizer_state()
    cb = RaiseAfter(batches)
    with pytest.raises(RuntimeError, match="callback failed mid-epoch"):
        m.fit(X, Y, batch_size=2, epochs=3, callbacks=[cb], verbose=0)
    assert cb.seen == batches
    # The updates really happened before the failure (so restoring is not a no-op)...
    assert any(np.any(a != b) for a, b in zip(cb.weights_at_failure, before))
    # ...and were undone, Adam's moments and step count included.
    assert_weights_equal(before, m.get_weights())
    step_after, slots_after = m._engine.get_optimizer_state()
    assert step_after == step_before and len(slots_before) == 2
    assert_weights_equal(slots_before, slots_after)


def test_failed_fit_then_training_matches_a_model_that_never_failed():
    a, b = trained_model(), trained_model()
    with pytest.raises(RuntimeError):
        a.fit(X, Y, batch_size=2, epochs=3, callbacks=[RaiseAfter(2)], verbose=0)
    cn.seed(5)
    a.fit(X, Y, batch_size=2, epochs=1, verbose=0)
    cn.seed(5)
    b.fit(X, Y, batch_size=2, epochs=1, verbose=0)
    assert_weights_equal(a.get_weights(), b.get_weights())


def test_schedule_failing_mid_fit_restores_weights():
    def schedule(step):
        return 0.1 if step < 4 else float("nan")
    m = trained_model()
    m.compile(optimizer=O.SGD(schedule), loss="softmax_cross_entropy")
    before = m.get_weights()
    with pytest.raises(ValueError, match=r"SGD schedule: learning rate must be finite.*got nan"):
        m.fit(X, Y, batch_size=2, epochs=3, verbose=0)
    assert_weights_equal(before, m.get_weights())


def test_set_optimizer_state_checks_before_writing():
    m = trained_model()
    step, slots = m._engine.get_optimizer_state()
    with pytest.raises(ValueError, match=r"set_optimizer_state: the adam optimizer has 2 state arrays, got 1"):
        m._engine.set_optimizer_state(step, slots[:1])
    with pytest.raises(ValueError, match=r"set_optimizer_state: state array 1 must hold \d+ float32 values, got 3"):
        m._engine.set_optimizer_state(step, [slots[0], np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match=r"set_optimizer_state: step must be >= 0, got -1"):
        m._engine.set_optimizer_state(-1, slots)
    after_step, after = m._engine.get_optimizer_state()
    assert after_step == step
    assert_weights_equal(slots, after)


def test_dtypes_are_compared_by_value_not_identity():
    # An unpickled dtype is a new object equal to np.float32's: every op and
    # the model must take it (it was once refused as "float32 or float64, got
    # float32"); a byte-swapped float32 is a different dtype and is refused.
    import pickle
    same = {name: pickle.loads(pickle.dumps(np.dtype(name))) for name in ("float32", "int64", "uint8")}
    assert same["float32"] == np.float32 and same["float32"] is not np.dtype(np.float32)
    x = np.ones((2, 3), dtype=same["float32"])
    W, b = np.ones((4, 3), dtype=same["float32"]), np.zeros(4, dtype=same["float32"])
    np.testing.assert_array_equal(cn.ops.dense_forward(x, W, b), np.full((2, 4), 3.0, np.float32))
    y_max = cn.ops.max_pool2d_forward(np.ones((1, 1, 2, 2), dtype=same["float32"]), 2)
    argmax = y_max[1].astype(same["int64"])
    cn.ops.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), argmax, (1, 1, 2, 2))
    cn.ops.dropout_backward(np.ones((2, 3), np.float32), np.ones((2, 3), dtype=same["uint8"]), 0.5)
    m = cn.Sequential([cn.layers.Input((3,)), cn.layers.Dense(2)])
    m.compile(cn.optimizers.SGD(0.1), "softmax_cross_entropy")
    m.train_on_batch(x, np.array([0, 1], dtype=same["int64"]))
    assert m.predict(x).shape == (2, 2)
    with pytest.raises(TypeError, match=r"^dense_forward: x must be float32 or float64, got >f4$"):
        cn.ops.dense_forward(x.astype(">f4"), W, b)


@pytest.mark.parametrize("layers, name", [
    (lambda L: [L.Input((2**62,)), L.Dense(3, name="huge_dense")], "huge_dense"),
    (lambda L: [L.Input((4, 4, 4)), L.UpSampling2D(2**31 - 1, name="huge_up")], "huge_up"),
])
def test_a_size_past_int64_names_the_layer(layers, name):
    # Weights or outputs too large to address: a ValueError naming the layer, not only the shape.
    with pytest.raises(ValueError, match=f"build: layer '{name}'.*overflows int64"):
        cn.Sequential(layers(cn.layers)).build()
