"""Keras's element-wise merges Multiply, Average, Maximum and Minimum, and the
functional forms of every merge layer (add, subtract, multiply, average,
maximum, minimum, concatenate, dot): forward and gradients against the NumPy
reference (float32 and float64) and PyTorch, float64 finite differences, the
tie rule of Maximum and Minimum (tied inputs share the gradient equally, as
torch.amax), NaN, a summary, and the errors."""

import numpy as np
import pytest

import corenn as cn
from gradcheck import numerical_gradient, projection, relative_difference
from reference import merge as merge_ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

L = cn.layers

LAYERS = {"multiply": L.Multiply, "average": L.Average, "maximum": L.Maximum, "minimum": L.Minimum}
SHAPE = (3, 4)


def reference(kind, xs, dy):
    """(y, [dx_k]) of the NumPy reference, float64."""
    if kind == "multiply":
        return merge_ref.multiply_forward(xs), merge_ref.multiply_backward(dy, xs)
    if kind == "average":
        return merge_ref.average_forward(xs), merge_ref.average_backward(dy, len(xs))
    y = (merge_ref.maximum_forward if kind == "maximum" else merge_ref.minimum_forward)(xs)
    return y, merge_ref.extremum_backward(dy, xs, y)


def merge_model(kind, count, dtype, shape=SHAPE):
    inputs = [L.Input(shape, name=f"x{k}") for k in range(count)]
    return cn.Model(inputs, LAYERS[kind](name="m")(inputs), dtype=dtype)


def coarse_inputs(rng, count, n, dtype, shape=SHAPE):
    """Inputs from a few integers: ties for the maximum and minimum are common."""
    return [np.round(2 * rng.standard_normal((n, *shape))).astype(dtype) for _ in range(count)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_forward_and_vjp_match_numpy(kind, count, dtype):
    rng = np.random.default_rng(count)
    model = merge_model(kind, count, dtype)
    xs = [rng.standard_normal((5, *SHAPE)).astype(dtype) for _ in range(count)]
    xs[1][0] = xs[0][0]  # one example where the first two inputs tie
    y, pullback = model.vjp(xs)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxs = pullback(dy)
    want_y, want_dxs = reference(kind, [x.astype(np.float64) for x in xs], dy.astype(np.float64))
    assert y.dtype == dtype and y.shape == (5, *SHAPE)
    assert_close(y, want_y, what=f"{kind} forward")
    for k, (dx, want) in enumerate(zip(dxs, want_dxs)):
        assert dx.dtype == dtype
        assert_close(dx, want, what=f"{kind} d input {k}")


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_input_gradients_by_finite_differences(kind):
    """d⟨P, f(x)⟩/dx_k by central differences, float64, away from ties."""
    rng = np.random.default_rng(11)
    model = merge_model(kind, 3, "float64")
    xs = [rng.standard_normal((4, *SHAPE)) for _ in range(3)]
    p = projection((4, *SHAPE), seed=12)
    _, pullback = model.vjp(xs)
    analytic = pullback(p)
    for k in range(3):
        numeric = numerical_gradient(lambda: float(np.sum(p * model.predict(xs))), xs[k])
        assert relative_difference(analytic[k], numeric) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gradient_check_through_a_gated_model(kind):
    """Weights reach the loss through the merge of three Dense branches."""
    cn.seed(5)
    x = L.Input((4,), name="x")
    branches = [L.Dense(3, activation="tanh", name=f"b{k}")(x) for k in range(3)]
    model = cn.Model(x, L.Dense(2, name="out")(LAYERS[kind]()(branches)), dtype="float64")
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(6)
    assert cn.gradient_check(model, rng.standard_normal((6, 4)), rng.standard_normal((6, 2))) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_matches_pytorch_ties_included(kind, count, dtype):
    torch = pytest.importorskip("torch", reason="torch is not installed")
    rng = np.random.default_rng(20 + count)
    xs = coarse_inputs(rng, count, 6, dtype)
    model = merge_model(kind, count, dtype)
    y, pullback = model.vjp(xs)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxs = pullback(dy)
    ts = [torch.tensor(x, requires_grad=True) for x in xs]
    stacked = torch.stack(ts)
    if kind == "multiply":
        ty = ts[0]
        for t in ts[1:]:
            ty = ty * t
    elif kind == "average":
        ty = stacked.mean(0)
    elif count == 2:  # torch.maximum / minimum: ties halve the gradient
        ty = (torch.maximum if kind == "maximum" else torch.minimum)(*ts)
    else:  # amax / amin "evenly distribute the gradient between equal values"
        ty = stacked.amax(0) if kind == "maximum" else stacked.amin(0)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty.detach().numpy(), what=f"{kind} forward vs torch")
    for k, t in enumerate(ts):
        assert_close(dxs[k], t.grad.numpy(), what=f"{kind} d input {k} vs torch")
    if kind in ("maximum", "minimum"):
        assert np.any(xs[0] == xs[1]), "the inputs hold ties"


@pytest.mark.parametrize("kind", ["maximum", "minimum"])
def test_tied_inputs_share_the_gradient_equally(kind):
    # The same tensor twice: each use gets half; three inputs with two tied: half each, 0 to the third.
    x = L.Input((3,), name="x")
    model = cn.Model(x, LAYERS[kind]()([x, x]), dtype="float64")
    xs = np.array([[1.0, -2.0, 3.0]])
    y, pullback = model.vjp(xs)
    np.testing.assert_array_equal(y, xs)
    np.testing.assert_array_equal(pullback(np.array([[2.0, 4.0, 6.0]])), [[2.0, 4.0, 6.0]])  # 2 × half
    model = merge_model(kind, 3, "float64", shape=(2,))
    sign = 1.0 if kind == "maximum" else -1.0  # the minimum of the negated inputs
    a, b, c = sign * np.array([[5.0, 1.0]]), sign * np.array([[5.0, 5.0]]), -sign * np.array([[5.0, 5.0]])
    _, pullback = model.vjp([a, b, c])
    da, db, dc = pullback(np.array([[4.0, 4.0]]))
    np.testing.assert_array_equal(da, [[2.0, 0.0]])
    np.testing.assert_array_equal(db, [[2.0, 4.0]])
    np.testing.assert_array_equal(dc, [[0.0, 0.0]])


def test_nan_propagates_and_takes_the_gradient():
    model = merge_model("maximum", 2, "float64", shape=(2,))
    a, b = np.array([[np.nan, 1.0]]), np.array([[7.0, np.nan]])
    y, pullback = model.vjp([a, b])
    assert np.isnan(y).all()
    da, db = pullback(np.array([[3.0, 5.0]]))
    np.testing.assert_array_equal(da, [[3.0, 0.0]])
    np.testing.assert_array_equal(db, [[0.0, 5.0]])


def test_multiply_gradient_is_exact_at_a_zero_factor():
    model = merge_model("multiply", 3, "float64", shape=(2,))
    xs = [np.array([[0.0, 2.0]]), np.array([[3.0, 0.0]]), np.array([[5.0, 7.0]])]
    _, pullback = model.vjp(xs)
    da, db, dc = pullback(np.ones((1, 2)))
    np.testing.assert_array_equal(da, [[15.0, 0.0]])
    np.testing.assert_array_equal(db, [[0.0, 14.0]])
    np.testing.assert_array_equal(dc, [[0.0, 0.0]])


@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_errors_name_the_layer_and_the_shapes(kind):
    cls = LAYERS[kind]
    x = L.Input((4,))
    a, c = L.Dense(4, name=f"{kind}_a")(x), L.Dense(3, name=f"{kind}_c")(x)
    label = cls.__name__
    with pytest.raises(ValueError, match=rf"{label} 'one': takes a list of two or more inputs"):
        cls(name="one")([a])
    with pytest.raises(ValueError, match=rf"{label} 'bare': takes a list of two or more inputs"):
        cls(name="bare")(a)
    with pytest.raises(ValueError, match=rf"layer 'shapes' \({kind}\): all inputs must have one shape or broadcast "
                                         rf"to one .*, got \(batch, 4\) \(input 0\) and \(batch, 3\) \(input 1\): "
                                         rf"axis 1 has sizes 4 and 3 \(from '{kind}_a' \(4,\), '{kind}_c' \(3,\)\)"):
        cls(name="shapes")([a, c])
    with pytest.raises(TypeError, match=rf"{label} 'data': expected the output of Input"):
        cls(name="data")([a, np.zeros((2, 4))])


def test_functional_forms_build_the_layers():
    a, b = L.Input((2, 3), name="fa"), L.Input((2, 3), name="fb")
    forms = {"add": L.Add, "subtract": L.Subtract, "multiply": L.Multiply, "average": L.Average,
             "maximum": L.Maximum, "minimum": L.Minimum, "concatenate": L.Concatenate, "dot": L.Dot}
    for name, cls in forms.items():
        out = getattr(L, name)([a, b], name=f"f_{name}")
        assert type(out.layer) is cls and out.layer.name == f"f_{name}"
        assert name in L.__all__
    assert L.concatenate([a, b]).shape == (None, 4, 3)  # axis=1, as Concatenate's default here
    assert L.concatenate([a, b], axis=-1).shape == (None, 2, 6)
    assert L.dot([a, b]).shape == (None, 2, 2)  # axes=-1 (Keras's default)
    assert L.dot([a, b], axes=1, normalize=True).layer.normalize
    rng = np.random.default_rng(3)
    xa, xb = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 3))
    model = cn.Model([a, b], L.multiply([L.maximum([a, b]), L.average([a, b])]), dtype="float64")
    assert_close(model.predict([xa, xb]), np.maximum(xa, xb) * (xa + xb) / 2)


def test_summary_lists_the_merges_and_their_inputs():
    x = L.Input((4,), name="x")
    h, g = L.Dense(4, name="h")(x), L.Dense(4, activation="sigmoid", name="g")(x)
    hi = L.Maximum(name="hi")([L.Average(name="avg")([h, g]), x])
    out = L.Minimum(name="lo")([hi, L.Multiply(name="gated")([g, h])])
    lines = []
    cn.Model(x, out).summary(print_fn=lines.append)
    text = "\n".join(lines)
    for row in ("gated (Multiply)", "avg (Average)", "hi (Maximum)", "lo (Minimum)"):
        assert row in text
    assert "hi, gated" in text and "avg, x" in text and "g, h" in text


# Broadcasting (Keras 3's merge layers: each axis of equal sizes or of size 1) ----------

ALL_MERGES = {"add": L.Add, "subtract": L.Subtract, **LAYERS}
BROADCAST_SHAPES = {2: [(3, 1, 4), (1, 5, 1)], 3: [(3, 1, 4), (1, 5, 4), (3, 5, 1)]}


def broadcast_reference(kind, xs, dy):
    """(y, [dx_k]) in float64: the reference on the inputs repeated to one
    shape, each gradient summed back over the axes its input was repeated along."""
    full = merge_ref.broadcast_inputs(xs)
    if kind == "add":
        y, dxs = merge_ref.add_forward(full), merge_ref.add_backward(dy, len(xs))
    elif kind == "subtract":
        y, dxs = merge_ref.subtract_forward(*full), merge_ref.subtract_backward(dy)
    else:
        y, dxs = reference(kind, full, dy)
    return y, [merge_ref.unbroadcast(dx, x.shape) for dx, x in zip(dxs, xs)]


def broadcast_cases():
    for kind in sorted(ALL_MERGES):
        for count in (2,) if kind == "subtract" else (2, 3):
            yield kind, count


def broadcast_model(kind, shapes, dtype):
    inputs = [L.Input(s, name=f"x{k}") for k, s in enumerate(shapes)]
    return cn.Model(inputs, ALL_MERGES[kind](name="m")(inputs), dtype=dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("kind, count", list(broadcast_cases()))
def test_broadcasting_matches_numpy(kind, count, dtype):
    rng = np.random.default_rng(40 + count)
    shapes = BROADCAST_SHAPES[count]
    model = broadcast_model(kind, shapes, dtype)
    assert model.output_shape == (None, 3, 5, 4)
    xs = [np.round(2 * rng.standard_normal((4, *s))).astype(dtype) for s in shapes]  # ties for max/min
    y, pullback = model.vjp(xs)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dxs = pullback(dy)
    want_y, want_dxs = broadcast_reference(kind, [x.astype(np.float64) for x in xs], dy.astype(np.float64))
    assert y.dtype == dtype and y.shape == (4, 3, 5, 4)
    assert_close(y, want_y, what=f"{kind} broadcast forward")
    for k, (dx, want) in enumerate(zip(dxs, want_dxs)):
        assert dx.dtype == dtype and dx.shape == xs[k].shape
        assert_close(dx, want, what=f"{kind} broadcast d input {k}")


@pytest.mark.parametrize("kind, count", list(broadcast_cases()))
def test_broadcast_gradients_by_finite_differences(kind, count):
    rng = np.random.default_rng(50 + count)
    shapes = BROADCAST_SHAPES[count]
    model = broadcast_model(kind, shapes, "float64")
    xs = [rng.standard_normal((2, *s)) for s in shapes]
    p = projection((2, 3, 5, 4), seed=51)
    _, pullback = model.vjp(xs)
    analytic = pullback(p)
    for k in range(count):
        numeric = numerical_gradient(lambda: float(np.sum(p * model.predict(xs))), xs[k])
        assert relative_difference(analytic[k], numeric) < GRADCHECK_THRESHOLD


def squeeze_excite_model(dtype="float64"):
    """A squeeze-and-excitation block: the maps (4, 5, 5) scaled per channel by
    a (4, 1, 1) gate (Multiply broadcasts it), a broadcast residual Add and a
    ReLU (the training plan fuses it into the sum)."""
    cn.seed(3)
    x = L.Input((2, 5, 5), name="image")
    maps = L.Conv2D(4, 3, padding="same", name="conv")(x)
    gate = L.Dense(4, activation="sigmoid", name="excite")(L.GlobalAveragePooling2D(name="squeeze")(maps))
    scaled = L.Multiply(name="scale")([maps, L.Reshape((4, 1, 1), name="gate")(gate)])
    bias = L.Reshape((1, 5, 1), name="rows")(L.Dense(5, name="row_bias")(L.Flatten(name="flat")(x)))
    h = L.Activation("relu", name="relu")(L.Add(name="sum")([scaled, bias]))
    out = L.Dense(3, name="out")(L.Flatten(name="flat_h")(h))
    model = cn.Model(x, out, dtype=dtype)
    model.compile(optimizer="sgd", loss="mse")
    return model


def test_broadcasting_merges_train_by_gradient_check():
    rng = np.random.default_rng(7)
    model = squeeze_excite_model()
    assert cn.gradient_check(model, rng.standard_normal((4, 2, 5, 5)), rng.standard_normal((4, 3))) \
        < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_broadcasting_model_saves_loads_and_predicts_the_same(tmp_path, dtype):
    rng = np.random.default_rng(8)
    model = squeeze_excite_model(dtype)
    x = rng.standard_normal((3, 2, 5, 5)).astype(dtype)
    model.fit(x, rng.standard_normal((3, 3)).astype(dtype), epochs=1, verbose=0)
    path = tmp_path / "se.corenn"
    model.save(path)
    loaded = cn.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


@pytest.mark.parametrize("kind", sorted(ALL_MERGES))
def test_shapes_that_do_not_broadcast_name_the_layer_the_shapes_and_the_axis(kind):
    a, b = L.Input((3, 4), name="a"), L.Input((2, 4), name="b")
    with pytest.raises(ValueError, match=rf"layer 'bad' \({kind}\): (all|both) inputs must have one shape or "
                                         rf"broadcast to one \(each axis of equal sizes or of size 1\), got "
                                         rf"\(batch, 3, 4\) \(input 0\) and \(batch, 2, 4\) \(input 1\): "
                                         rf"axis 1 has sizes 3 and 2"):
        ALL_MERGES[kind](name="bad")([a, b])
    with pytest.raises(ValueError, match=rf"layer 'rank' \({kind}\): (all|both) inputs must have one rank"):
        ALL_MERGES[kind](name="rank")([a, L.Input((4,), name="c")])


def test_a_one_step_mask_applies_to_every_step_of_a_broadcast_merge():
    # Keras's rule (a step is valid when it is in every masked input), with an
    # input of one step repeated over the others: its one step decides for all.
    rng = np.random.default_rng(9)
    a, b = L.Input((4, 3), name="a"), L.Input((1, 3), name="b")
    xa, xb = rng.standard_normal((5, 4, 3)), rng.standard_normal((5, 1, 3))
    xa[0, 2], xa[1, 0], xb[3, 0] = 0, 0, 0   # masked steps (Masking's value 0)
    va, vb = np.any(xa != 0, axis=-1), np.any(xb != 0, axis=-1)
    both = cn.Model([a, b], L.Add()([L.Masking()(a), L.Masking()(b)]), dtype="float64")
    (mask,) = both._engine.output_masks([xa, xb])
    assert np.array_equal(mask, (va & vb).astype(np.int64))
    one = cn.Model([a, b], L.Multiply()([a, L.Masking()(b)]), dtype="float64")
    (mask,) = one._engine.output_masks([xa, xb])
    assert np.array_equal(mask, np.repeat(vb, 4, axis=1).astype(np.int64))
