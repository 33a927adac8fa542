"""The embedding lookup: the reference against hand values and finite
differences, fast and naive kernels against it in float32 and float64, the
scatter-add's independence of the thread count, the layer in a model (its
gradient check, PyTorch's nn.Embedding on the same table), bad ids refused
with the model left as it was."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import embedding as ref
from tolerances import GRADCHECK_EPS, GRADCHECK_THRESHOLD, assert_close

ops = cn.ops
L = cn.layers
ID_SHAPES = [(1,), (7,), (3, 5), (2, 3, 4)]


# ---------------------------------------------------------------- reference self-checks


def test_reference_hand_values():
    W = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    ids = np.array([[2, 0], [2, 2]])
    np.testing.assert_array_equal(ref.embedding_forward(ids, W),
                                  [[[4, 5], [0, 1]], [[4, 5], [4, 5]]])
    dy = np.array([[[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]])
    # Row 2 was used three times: its gradient is the sum; row 1 never: zero.
    np.testing.assert_array_equal(ref.embedding_backward(dy, ids, 3), [[3, 4], [0, 0], [13, 16]])


def test_reference_gradient(rng):
    W = rng.standard_normal((6, 3))
    ids = rng.integers(0, 6, (4, 5))
    P = projection((4, 5, 3), 1)
    loss = lambda: float(np.sum(P * ref.embedding_forward(ids, W)))  # noqa: E731
    assert relative_difference(ref.embedding_backward(P, ids, 6),
                               numerical_gradient(loss, W)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------- parity


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("id_dtype", [np.int64, np.int32, np.uint8, "weights"])
@pytest.mark.parametrize("shape", ID_SHAPES, ids=str)
def test_forward_and_backward_match_reference(shape, id_dtype, dtype, naive, rng):
    W = rng.standard_normal((9, 4)).astype(dtype)
    ids = rng.integers(0, 9, shape)
    ids_in = ids.astype(dtype if id_dtype == "weights" else id_dtype)
    y = ops.embedding_forward(ids_in, W, naive=naive)
    assert y.dtype == dtype and y.shape == (*shape, 4)
    assert_close(y, ref.embedding_forward(ids, W.astype(np.float64)), op="embedding_forward")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dW = ops.embedding_backward(dy, ids_in, 9, naive=naive)
    assert dW.dtype == dtype and dW.shape == W.shape
    assert_close(dW, ref.embedding_backward(dy.astype(np.float64), ids, 9), op="embedding_backward")


def test_fast_kernels_are_the_naive_ones_bit_for_bit_whatever_the_threads(rng):
    # Many repeats of few rows (the scatter-add's hard case), enough work to split.
    ids = rng.integers(0, 5, (64, 300))
    W = rng.standard_normal((5, 96))
    dy = rng.standard_normal((64, 300, 96))
    want = ops.embedding_forward(ids, W, naive=True), ops.embedding_backward(dy, ids, 5, naive=True)
    before = cn.get_num_threads()
    try:
        for n in (1, 2, 3):
            cn.set_num_threads(n)
            got = ops.embedding_forward(ids, W), ops.embedding_backward(dy, ids, 5)
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)
    finally:
        cn.set_num_threads(before)


def test_kernel_gradient_check(rng):
    W = rng.standard_normal((5, 3))
    ids = rng.integers(0, 5, (3, 4))
    P = projection((3, 4, 3), 2)
    loss = lambda: float(np.sum(P * ops.embedding_forward(ids, W)))  # noqa: E731
    assert relative_difference(ops.embedding_backward(P, ids, 5),
                               numerical_gradient(loss, W)) < GRADCHECK_THRESHOLD


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, exc, match", [
    (lambda W: ops.embedding_forward(np.array([0.0, 1.5]), W), ValueError,
     r"^embedding_forward: ids must be whole numbers in \[0, 4\) \(input_dim 4\), got 1\.5 at index 1$"),
    (lambda W: ops.embedding_forward(np.array([[0, 1], [4, 2]]), W), ValueError,
     r"embedding_forward: ids must be whole numbers in \[0, 4\) .*got 4 at index 2$"),
    (lambda W: ops.embedding_forward(np.array([-1, 0]), W), ValueError, r"got -1 at index 0$"),
    (lambda W: ops.embedding_forward(np.array([0.0, np.nan]), W), ValueError, r"got nan at index 1$"),
    (lambda W: ops.embedding_forward(np.array([np.inf]), W), ValueError, r"got inf at index 0$"),
    (lambda W: ops.embedding_forward(np.array([True, False]), W), TypeError,
     r"embedding_forward: ids must be integers \(or float32/float64 whole numbers\), got bool"),
    (lambda W: ops.embedding_forward(np.array([0]), W[0]), ValueError,
     r"embedding_forward: weights must be 2-D \(input_dim, output_dim\), got shape \(3,\)"),
    (lambda W: ops.embedding_forward(np.array([0]), W[None]), ValueError,
     r"embedding_forward: weights must be 2-D"),
    (lambda W: ops.embedding_forward(np.array([0]), W[:, :0]), ValueError,
     r"embedding_forward: weights must have input_dim, output_dim >= 1, got shape \(4, 0\)"),
    (lambda W: ops.embedding_forward(np.array([0]), W.astype(np.int64)), TypeError,
     r"embedding_forward: weights must be float32 or float64, got int64"),
    (lambda W: ops.embedding_backward(np.ones((2, 3)), np.array([0, 1, 2]), 4), ValueError,
     r"^embedding_backward: dy must have shape \(3, 3\), got \(2, 3\)$"),
    (lambda W: ops.embedding_backward(np.ones(3), np.array([0, 1, 2]), 4), ValueError,
     r"^embedding_backward: dy must have shape ids.shape \+ \(output_dim,\) = \(3,\) \+ \(output_dim,\), "
     r"got \(3,\)$"),
    (lambda W: ops.embedding_backward(np.ones((3, 2)), np.array([0, 1, 9]), 4), ValueError,
     r"embedding_backward: ids must be whole numbers in \[0, 4\) .*got 9 at index 2"),
    (lambda W: ops.embedding_backward(np.ones((3, 2)), np.array([0, 1, 2]), 0), ValueError,
     r"embedding_backward: input_dim must be in \[1, 2147483647\], got 0"),
])
def test_bad_input_is_reported(call, exc, match, rng):
    with pytest.raises(exc, match=match):
        call(rng.standard_normal((4, 3)))


def test_empty_ids_and_read_only_inputs(rng):
    W = rng.standard_normal((4, 3))
    assert ops.embedding_forward(np.zeros((0, 5), np.int64), W).shape == (0, 5, 3)
    np.testing.assert_array_equal(ops.embedding_backward(np.zeros((0, 3)), np.zeros(0, np.int64), 4),
                                  np.zeros((4, 3)))
    ids = np.array([[3, 0, 3]])
    ids_ro, W_ro = ids.copy(), W.copy()
    ids_ro.setflags(write=False)
    W_ro.setflags(write=False)
    np.testing.assert_array_equal(ops.embedding_forward(ids_ro, W_ro), ref.embedding_forward(ids, W))


# ---------------------------------------------------------------- the layer


def sequence_model(dtype="float64", T=6, V=11, D=4):
    cn.seed(5)
    m = cn.Sequential([L.Input((T,)), L.Embedding(V, D, name="emb"), L.Flatten(), L.Dense(3)], dtype=dtype)
    m.compile(optimizer=cn.optimizers.Adam(1e-2), loss="softmax_cross_entropy")
    return m


def test_layer_shapes_weights_and_config():
    layer = L.Embedding(50, 8, mask_zero=True)
    m = cn.Sequential([L.Input((2, 3)), layer])
    assert m.output_shape == (None, 2, 3, 8)  # any rank of ids: (…) -> (…, output_dim)
    (E,) = layer.get_weights()
    assert E.shape == (50, 8) and m._engine.weight_names(0) == ["embeddings"]
    # "uniform": Keras's U(-0.05, 0.05).
    assert np.all(np.abs(E) < 0.05) and np.max(np.abs(E)) > 0.04
    assert layer.mask_zero is True
    assert layer.get_config() == {"name": layer.name, "trainable": True, "input_dim": 50, "output_dim": 8,
                                  "mask_zero": True, "embeddings_initializer": "uniform",
                                  "initializer_stddev": 0.01}
    again = L.Embedding.from_config(layer.get_config())
    assert again.get_config() == layer.get_config()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_predictions_and_gradients_match_the_reference(dtype, rng):
    m = sequence_model(dtype)
    E, K, b = m.get_weights()
    ids = rng.integers(0, 11, (5, 6))
    h = ref.embedding_forward(ids, E.astype(np.float64)).reshape(5, -1)
    assert_close(m.predict(ids), h @ K.T.astype(np.float64) + b, op="embedding_forward")
    # dL/dE through the model: the scatter of dL/dh (softmax cross-entropy, mean over the batch).
    y = rng.integers(0, 3, 5)
    _, grads = m.compute_gradients(ids, y)
    z = h @ K.T.astype(np.float64) + b
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = (p - np.eye(3)[y]) / 5
    dh = (dz @ K.astype(np.float64)).reshape(5, 6, 4)
    assert_close(grads[0], ref.embedding_backward(dh, ids, 11), op="embedding_backward")


def test_gradient_check_through_flatten_and_dense(rng):
    m = sequence_model("float64")
    ids = rng.integers(0, 11, (4, 6))
    y = rng.integers(0, 3, 4)
    assert cn.gradient_check(m, ids, y, epsilon=GRADCHECK_EPS, max_params=None) < GRADCHECK_THRESHOLD


def test_training_learns_a_token_rule(rng):
    # Class = which of three marker tokens the sequence holds: linear in the
    # embeddings, learnt to 100% in a few epochs.
    n, T = 300, 6
    y = rng.integers(0, 3, n)
    ids = rng.integers(3, 11, (n, T))
    ids[np.arange(n), rng.integers(0, T, n)] = y
    m = sequence_model("float32")
    m.fit(ids, y, epochs=40, batch_size=32, verbose=0)
    assert np.mean(np.argmax(m.predict(ids), 1) == y) == 1.0


@pytest.mark.parametrize("bad, shown", [(1.5, "1.5"), (11.0, "11"), (-1.0, "-1")])
def test_bad_ids_raise_naming_the_layer_and_leave_the_model_unchanged(bad, shown, rng):
    m = sequence_model("float64")
    ids = rng.integers(0, 11, (4, 6)).astype(np.float64)
    y = rng.integers(0, 3, 4)
    m.train_on_batch(ids, y)  # optimizer state is non-zero from here on
    weights, (step, slots) = m.get_weights(), m._engine.get_optimizer_state()
    ids[2, 3] = bad
    match = (r"layer 'emb' \(embedding\): ids must be whole numbers in \[0, 11\) \(input_dim 11\), "
             rf"got {shown} at index 15")
    for call in (lambda: m.train_on_batch(ids, y), lambda: m.predict(ids), lambda: m.evaluate(ids, y, verbose=0),
                 lambda: m.compute_gradients(ids, y)):
        with pytest.raises(ValueError, match=match):
            call()
    for a, b in zip(m.get_weights(), weights):
        np.testing.assert_array_equal(a, b)
    step_after, slots_after = m._engine.get_optimizer_state()
    assert step_after == step
    for a, b in zip(slots_after, slots):
        np.testing.assert_array_equal(a, b)


def test_nan_ids_in_predict_name_the_layer(rng):
    m = sequence_model("float32")
    ids = rng.integers(0, 11, (2, 6)).astype(np.float32)
    ids[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"layer 'emb' \(embedding\): ids must be .*got nan at index 6"):
        m.predict(ids)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(input_dim=0, output_dim=3), ValueError, r"Embedding: input_dim must be"),
    (dict(input_dim=5, output_dim=0), ValueError, r"Embedding: output_dim must be"),
    (dict(input_dim=5.0, output_dim=3), TypeError, r"Embedding: input_dim must be"),
    (dict(input_dim=5, output_dim=3, embeddings_initializer="identity"), ValueError,
     r"Embedding: initializer must be one of"),
])
def test_bad_hyper_parameters(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        L.Embedding(**kwargs)


def test_engine_validates_dimensions_too():
    with pytest.raises(ValueError, match=r"layer 'e' \(embedding\): input_dim must be >= 1, got 0"):
        cn._core.layer_output_shapes({"kind": "embedding", "name": "e", "trainable": True,
                                      "input_dim": 0, "output_dim": 2}, [[3]])


def test_torch_state_dict_loads_into_the_table(rng):
    # nn.Sequential(nn.Embedding(11, 4), nn.Flatten(), nn.Linear(24, 3)).state_dict(), as arrays.
    m = sequence_model("float64")
    state = {"0.weight": rng.standard_normal((11, 4)), "2.weight": rng.standard_normal((3, 24)),
             "2.bias": rng.standard_normal(3)}
    cn.interop.load_torch_state_dict(m, state)
    for got, want in zip(m.get_weights(), state.values()):
        np.testing.assert_array_equal(got, want)


def test_matches_torch_nn_embedding(rng):
    torch = pytest.importorskip("torch")
    W = rng.standard_normal((12, 5))
    ids = rng.integers(0, 12, (3, 7))
    dy = rng.standard_normal((3, 7, 5))
    module = torch.nn.Embedding(12, 5).double()
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(W))
    out = module(torch.from_numpy(ids))
    out.backward(torch.from_numpy(dy))
    assert_close(ops.embedding_forward(ids, W), out.detach().numpy(), op="embedding_forward")
    assert_close(ops.embedding_backward(dy, ids, 12), module.weight.grad.numpy(), op="embedding_backward")
