"""Neural style transfer costs (course 4, week 4): Gram matrix, content and
style costs and total variation against the NumPy references, fast against
naive, gradients by finite differences, the course's definitions on hand-computed
cases, and bad inputs."""

import numpy as np
import pytest

import corenn as cn
from conftest import FLOAT_DTYPES
from gradcheck import numerical_gradient, projection, relative_difference
from reference import style as ref
from tolerances import GRADCHECK_THRESHOLD, assert_close

SHAPES = [(1, 3, 4, 5), (2, 8, 7, 6), (3, 1, 1, 1), (1, 33, 9, 11)]


def activations(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


# The course's definitions on hand-computed cases ---------------------------------


def test_gram_matrix_hand_computed():
    a = np.array([[[[1, 2]], [[3, 4]]]], float)  # C = 2 channels of H·W = 2 values
    np.testing.assert_array_equal(cn.style.gram_matrix(a), [[[5, 11], [11, 25]]])


def test_content_cost_hand_computed():
    # Σ(1 − 0)² = 2 over C·H·W = 2 values: 2 / (4·2) = 0.25.
    assert cn.style.content_cost(np.ones((1, 1, 1, 2)), np.zeros((1, 1, 1, 2))) == 0.25


def test_style_cost_hand_computed():
    # C = 1, H·W = 2: G_S = 1² + 2² = 5, G_G = 0² + 1² = 1: (5 − 1)² / (4·1·2²) = 1.
    a_S = np.array([[[[1, 2]]]], float)
    a_G = np.array([[[[0, 1]]]], float)
    assert cn.style.style_cost(a_S, a_G) == 1.0


def test_total_variation_hand_computed():
    # Vertical |4 − 1| + |8 − 2| = 9, horizontal |2 − 1| + |8 − 4| = 5.
    img = np.array([[[[1, 2], [4, 8]]]], float)
    tv, grad = cn.style.total_variation(img, return_grad=True)
    assert tv == 14
    # d/dx of |x01 − x00| + |x10 − x00| at x00 = 1 is −2; x11 only ever grows the sum.
    np.testing.assert_array_equal(grad, [[[[-2, 0], [0, 2]]]])


def test_batch_adds_per_image_costs(rng):
    a, b = activations(rng, (3, 4, 5, 5), np.float64), activations(rng, (3, 4, 5, 5), np.float64)
    for fn in (cn.style.content_cost, cn.style.style_cost):
        per_image = sum(fn(a[i:i + 1], b[i:i + 1]) for i in range(3))
        assert_close(fn(a, b), per_image, what=fn.__name__)
    assert_close(cn.style.total_variation(a),
                 sum(cn.style.total_variation(a[i:i + 1]) for i in range(3)), what="tv")


# Parity with the references, fast and naive --------------------------------------


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_gram_matrix_equals_reference(dtype, naive, shape, rng):
    a = activations(rng, shape, dtype)
    g = cn.ops.gram_matrix(a, naive=naive)
    assert g.dtype == dtype
    assert_close(g, ref.gram_matrix(a), op="gram_matrix")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_costs_equal_reference(dtype, naive, shape, rng):
    a, b = activations(rng, shape, dtype), activations(rng, shape, dtype)
    for op in ("content_cost", "style_cost"):
        cost, grad = getattr(cn.ops, op)(a, b, naive=naive)
        assert grad.dtype == dtype and grad.shape == shape
        assert_close(cost, getattr(ref, op)(a, b), dtype, op=op)
    tv, grad = cn.ops.total_variation(a, naive=naive)
    assert grad.dtype == dtype
    assert_close(tv, ref.total_variation(a), dtype, op="total_variation")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_fast_gradients_equal_naive_in_float64(dtype, shape, rng):
    # The naive kernels are the oracle: float64 on the same (rounded) inputs.
    a, b = activations(rng, shape, dtype), activations(rng, shape, dtype)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    for op in ("content_cost", "style_cost"):
        assert_close(getattr(cn.ops, op)(a, b)[1], getattr(cn.ops, op)(a64, b64, naive=True)[1],
                     op=op, what="gradient")
    assert_close(cn.ops.total_variation(a)[1], cn.ops.total_variation(a64, naive=True)[1],
                 op="total_variation", what="gradient")
    dg = rng.standard_normal((shape[0], shape[1], shape[1])).astype(dtype)
    assert_close(cn.ops.gram_matrix_backward(dg, a),
                 cn.ops.gram_matrix_backward(dg.astype(np.float64), a64, naive=True),
                 op="gram_matrix_backward")


# Gradients by finite differences (float64) ---------------------------------------


@pytest.mark.parametrize("naive", [False, True])
def test_gram_matrix_backward_gradcheck(naive, rng):
    a = rng.standard_normal((2, 3, 2, 3))
    p = projection((2, 3, 3), 7)
    analytic = cn.ops.gram_matrix_backward(p, a, naive=naive)
    numeric = numerical_gradient(lambda: np.sum(p * ref.gram_matrix(a)), a)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("op", ["content_cost", "style_cost"])
def test_cost_gradcheck(op, naive, rng):
    target, a_G = rng.standard_normal((2, 3, 3, 2)), rng.standard_normal((2, 3, 3, 2))
    _, analytic = getattr(cn.ops, op)(target, a_G, naive=naive)
    numeric = numerical_gradient(lambda: getattr(ref, op)(target, a_G), a_G)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


@pytest.mark.parametrize("naive", [False, True])
def test_total_variation_gradcheck(naive, rng):
    # Random pixels: no two neighbours within eps of each other, so |d| is smooth there.
    img = rng.standard_normal((2, 2, 4, 5))
    _, analytic = cn.ops.total_variation(img, naive=naive)
    numeric = numerical_gradient(lambda: ref.total_variation(img), img)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD


def test_style_cost_over_layers_is_the_weighted_sum(rng):
    a_S = [rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((1, 5, 2, 2))]
    a_G = [rng.standard_normal((1, 3, 4, 4)), rng.standard_normal((1, 5, 2, 2))]
    cost, grads = cn.style.style_cost(a_S, a_G, weights=[0.3, 0.7], return_grad=True)
    assert_close(cost, 0.3 * ref.style_cost(a_S[0], a_G[0]) + 0.7 * ref.style_cost(a_S[1], a_G[1]),
                 what="weighted style cost")
    for layer in range(2):
        numeric = numerical_gradient(
            lambda: cn.style.style_cost(a_S, a_G, weights=[0.3, 0.7]), a_G[layer])
        assert relative_difference(grads[layer], numeric) < GRADCHECK_THRESHOLD
    # No weights: every layer counts 1/L.
    assert_close(cn.style.style_cost(a_S, a_G),
                 0.5 * ref.style_cost(a_S[0], a_G[0]) + 0.5 * ref.style_cost(a_S[1], a_G[1]),
                 what="equal weights")


def test_style_of_an_image_with_itself_is_zero(rng):
    a = rng.standard_normal((2, 4, 3, 3))
    cost, grad = cn.style.style_cost(a, a.copy(), return_grad=True)
    assert cost == 0 and not grad.any()
    assert cn.style.content_cost(a, a.copy()) == 0


def test_read_only_and_strided_inputs(rng):
    a = rng.standard_normal((2, 3, 4, 8))
    a.flags.writeable = False
    strided = a[:, :, :, ::2]
    assert_close(cn.style.gram_matrix(strided), ref.gram_matrix(strided), what="strided gram")
    assert_close(cn.style.total_variation(a), ref.total_variation(a), what="read-only tv")


# Bad inputs ----------------------------------------------------------------------


@pytest.mark.parametrize("call, match", [
    (lambda a: cn.style.gram_matrix(a[0]), r"gram_matrix: a must be 4-D"),
    (lambda a: cn.style.content_cost(a, a[:, :2]), r"content_cost: a_C must have shape"),
    (lambda a: cn.style.style_cost(a[:, :2], a), r"style_cost: a_S must have shape"),
    (lambda a: cn.style.total_variation(a[:, :, :0]), r"total_variation: img must not be empty"),
    (lambda a: cn.style.style_cost([a, a], [a]), r"style_cost: a_S and a_G must hold the same"),
    (lambda a: cn.style.style_cost([a], [a], weights=[1, 2]), r"style_cost: weights must hold"),
    (lambda a: cn.style.style_cost([a], [a], weights=[np.nan]), r"style_cost: weights\[0\]"),
    (lambda a: cn.ops.gram_matrix_backward(np.zeros((2, 2, 2)), a), r"gram_matrix_backward: dg"),
])
def test_bad_shapes_raise_value_error(call, match, rng):
    with pytest.raises(ValueError, match=match):
        call(rng.standard_normal((2, 3, 4, 4)))


@pytest.mark.parametrize("fn, arg", [
    (lambda x, y: cn.style.gram_matrix(y), "a"),
    (lambda x, y: cn.style.content_cost(y, x), "a_C"),
    (lambda x, y: cn.style.content_cost(x, y), "a_G"),
    (lambda x, y: cn.style.style_cost(y, x), "a_S"),
    (lambda x, y: cn.style.total_variation(y), "img"),
])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_activations_raise_value_error(fn, arg, bad, rng):
    x = rng.standard_normal((1, 2, 3, 3))
    y = x.copy()
    y[0, 1, 2, 0] = bad
    with pytest.raises(ValueError, match=rf": {arg} must be finite"):
        fn(x, y)


def test_mixed_list_and_array_is_a_type_error(rng):
    a = rng.standard_normal((1, 2, 3, 3))
    with pytest.raises(TypeError, match="style_cost: a_S and a_G must both be"):
        cn.style.style_cost([a], a)


# Style transfer: the image's gradient through model.vjp ---------------------------


def tiny_cnn(dtype="float64", seed=0):
    """Three small layers with smooth activations (finite differences need no
    kinks nearby): c1 (4, 6, 6), c2 (5, 3, 3) after average pooling, c3 (6, 3, 3)."""
    cn.seed(seed)
    L = cn.layers
    return cn.Sequential([L.Input((2, 6, 6)), L.Conv2D(4, 3, padding="same", activation="tanh", name="c1"),
                          L.AveragePooling2D(2, name="p1"),
                          L.Conv2D(5, 3, padding="same", activation="tanh", name="c2"),
                          L.Conv2D(6, 1, activation="sigmoid", name="c3")], dtype=dtype)


def layer_activations(model, name, x):
    return cn.Model(model.input, model.get_layer(name).output, dtype=model.dtype.name).predict(x)


def test_transfer_objective_is_the_course_cost(rng):
    # J = α·J_content + β·Σ λ_l·J_style[l] + tv·TV, from each layer's activations on its own.
    model = tiny_cnn()
    content, style, image = (rng.standard_normal((1, 2, 6, 6)) for _ in range(3))
    objective = cn.style.transfer_objective(model, content, style, "c2", ["c1", "c2", "c3"],
                                            style_weights=[0.5, 0.2, 0.3], alpha=3.0, beta=7.0,
                                            tv_weight=0.1)
    costs, grad = objective(image)
    act = {n: (layer_activations(model, n, content), layer_activations(model, n, style),
               layer_activations(model, n, image)) for n in ("c1", "c2", "c3")}
    j_content = ref.content_cost(act["c2"][0], act["c2"][2])
    j_style = sum(w * ref.style_cost(act[n][1], act[n][2]) for n, w in zip(("c1", "c2", "c3"),
                                                                              (0.5, 0.2, 0.3)))
    j_tv = ref.total_variation(image)
    assert_close(costs["content"], j_content, what="content")
    assert_close(costs["style"], j_style, what="style")
    assert_close(costs["tv"], j_tv, what="tv")
    assert_close(costs["total"], 3 * j_content + 7 * j_style + 0.1 * j_tv, what="J")
    assert grad.shape == image.shape and grad.dtype == np.float64


@pytest.mark.parametrize("content_layer, style_layers, tv_weight", [
    ("c2", ["c1", "c2", "c3"], 0.0),   # the content layer also a style layer: gradients summed
    ("c3", ["c1"], 0.05),
])
def test_transfer_image_gradcheck(content_layer, style_layers, tv_weight, rng):
    model = tiny_cnn()
    content, style = rng.standard_normal((1, 2, 6, 6)), rng.standard_normal((1, 2, 6, 6))
    objective = cn.style.transfer_objective(model, content, style, content_layer, style_layers,
                                            alpha=10, beta=40, tv_weight=tv_weight)
    image = rng.standard_normal((2, 6, 6))   # one image without the batch axis works too
    costs, analytic = objective(image)
    assert analytic.shape == image.shape
    numeric = numerical_gradient(lambda: objective(image)[0]["total"], image)
    assert relative_difference(analytic, numeric) < GRADCHECK_THRESHOLD
    assert costs["content"] > 0 and costs["style"] > 0


def test_transfer_gradient_equals_torch_autograd_with_torch_weights(rng):
    # Any feature model: one whose weights come from PyTorch (cn.interop), its
    # image gradient against autograd through the same network and costs.
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
                        nn.Conv2d(4, 5, 3, padding=1), nn.Tanh()).double()
    L = cn.layers
    model = cn.Sequential([L.Input((2, 6, 6)), L.Conv2D(4, 3, padding="same", activation="tanh", name="c1"),
                           L.AveragePooling2D(2), L.Conv2D(5, 3, padding="same", activation="tanh", name="c2")],
                          dtype="float64")
    cn.interop.load_torch_state_dict(model, net.state_dict())
    content, style, image = (rng.standard_normal((1, 2, 6, 6)) for _ in range(3))
    objective = cn.style.transfer_objective(model, content, style, "c2", ["c1", "c2"],
                                            style_weights=[0.4, 0.6], tv_weight=0.01)
    costs, grad = objective(image)

    def acts(x):
        c1 = net[1](net[0](x))
        return c1, net[4](net[3](net[2](c1)))

    def gram(a):
        a = a.reshape(a.shape[0], a.shape[1], -1)
        return a @ a.transpose(1, 2)

    def layer_style(a_s, a_g):
        _, c, h, w = a_g.shape
        return ((gram(a_s) - gram(a_g)) ** 2).sum() / (4 * c ** 2 * (h * w) ** 2)

    g = torch.tensor(image, requires_grad=True)
    with torch.no_grad():
        a_c, a_s = acts(torch.tensor(content))[1], acts(torch.tensor(style))
    a_g = acts(g)
    _, c, h, w = a_g[1].shape
    j_content = ((a_c - a_g[1]) ** 2).sum() / (4 * c * h * w)
    j_style = 0.4 * layer_style(a_s[0], a_g[0]) + 0.6 * layer_style(a_s[1], a_g[1])
    tv = (g[:, :, 1:] - g[:, :, :-1]).abs().sum() + (g[:, :, :, 1:] - g[:, :, :, :-1]).abs().sum()
    j = 10 * j_content + 40 * j_style + 0.01 * tv
    j.backward()
    assert_close(costs["total"], j.item(), what="J against torch")
    assert_close(grad, g.grad.numpy(), what="dJ/dimage against torch autograd")


def test_transfer_lowers_the_cost_and_keeps_the_weights(rng):
    model = tiny_cnn("float32", seed=1)
    weights = model.get_weights()
    content = rng.uniform(0, 1, (2, 6, 6)).astype(np.float32)
    style = rng.uniform(0, 1, (2, 6, 6)).astype(np.float32)
    seen = []
    image, costs = cn.style.transfer(model, content, style, "c3", ["c1", "c2"], steps=60,
                                     learning_rate=0.05, noise=0.1, seed=3, clip=(0, 1),
                                     callback=lambda step, img, cost: seen.append((step, cost)))
    assert image.shape == content.shape and image.dtype == np.float32
    assert image.min() >= 0 and image.max() <= 1
    assert set(costs) == {"total", "content", "style", "tv"} and len(costs["total"]) == 61
    assert costs["total"][-1] < 0.2 * costs["total"][0]   # the style term dominates at the start
    assert costs["style"][-1] < 0.2 * costs["style"][0]
    assert [s for s, _ in seen] == list(range(1, 61))
    np.testing.assert_array_equal([c for _, c in seen], costs["total"][:-1])
    for before, after in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(before, after)


def test_transfer_is_reproducible_and_starts_at_the_noisy_content(rng):
    model = tiny_cnn("float32")
    content = rng.uniform(0, 1, (1, 2, 6, 6)).astype(np.float32)
    style = rng.uniform(0, 1, (1, 2, 6, 6)).astype(np.float32)
    first = cn.style.transfer(model, content, style, "c2", "c1", steps=5, noise=0.2, seed=4)
    again = cn.style.transfer(model, content, style, "c2", "c1", steps=5, noise=0.2, seed=4)
    np.testing.assert_array_equal(first[0], again[0])
    image, costs = cn.style.transfer(model, content, style, "c2", "c1", steps=0)
    np.testing.assert_array_equal(image, content)   # no noise, no step: the content itself
    assert costs["content"][0] == 0 and len(costs["total"]) == 1


@pytest.mark.parametrize("change, error, match", [
    (dict(content=np.zeros((1, 2, 5, 6))), ValueError, r"transfer: content must have the model's input shape"),
    (dict(style=np.zeros((3, 6, 6))), ValueError, r"transfer: style must have the model's input shape"),
    (dict(content=np.full((2, 6, 6), np.nan)), ValueError, r"transfer: content must be finite"),
    (dict(content_layer="conv9"), ValueError, r"transfer: content_layer must name a layer.*'conv9'"),
    (dict(style_layers=["c1", "nope"]), ValueError, r"transfer: style_layers\[1\] must name a layer"),
    (dict(style_layers=[]), ValueError, r"transfer: style_layers must name at least one"),
    (dict(style_layers=["c1", "c2"], style_weights=[1.0]), ValueError, r"transfer: style_weights must hold"),
    (dict(style_weights=[-0.5]), ValueError, r"transfer: style_weights\[0\]"),
    (dict(alpha=-1), ValueError, r"transfer: alpha"),
    (dict(beta=-40), ValueError, r"transfer: beta"),
    (dict(tv_weight=-1e-3), ValueError, r"transfer: tv_weight"),
    (dict(noise=-0.1), ValueError, r"transfer: noise"),
    (dict(steps=-1), ValueError, r"transfer: steps"),
    (dict(learning_rate=0.0), ValueError, r"transfer: learning_rate"),
    (dict(clip=(1, 0)), ValueError, r"transfer: clip"),
    (dict(feature_model="vgg19"), TypeError, r"transfer: feature_model must be a corenn model"),
])
def test_transfer_bad_inputs(change, error, match):
    args = dict(feature_model=tiny_cnn("float32"), content=np.zeros((2, 6, 6)), style=np.ones((2, 6, 6)),
                content_layer="c2", style_layers=["c1"], steps=1)
    args.update(change)
    with pytest.raises(error, match=match):
        cn.style.transfer(**args)


def test_transfer_objective_checks_the_image():
    objective = cn.style.transfer_objective(tiny_cnn(), np.zeros((2, 6, 6)), np.ones((2, 6, 6)), "c2", ["c1"])
    with pytest.raises(ValueError, match=r"transfer: image must have the model's input shape"):
        objective(np.zeros((2, 6, 7)))
