"""Classic mistakes get messages that say what went wrong and how to fix it:
channels-last images, misspelt arguments and names, an output activation that
the loss applies again, and automatic layer names."""

import inspect
import pydoc
import re
import warnings

import numpy as np
import pytest

import corenn as cn

L = cn.layers

TRANSPOSE = "pass x.transpose(0, 3, 1, 2)"


def all_layer_classes():
    found, todo = [], [L.Layer]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        found.append(cls)
    return found


# ------------------------------------------------------------ channels-last

def small_cnn(input_layer):
    return cn.Sequential([input_layer, L.Conv2D(4, 3, padding="same"), L.Flatten(), L.Dense(2)])


def test_channels_last_batch_into_a_channels_first_model_shows_the_transpose(rng):
    model = small_cnn(L.Input((1, 8, 8)))
    x = rng.standard_normal((5, 8, 8, 1)).astype(np.float32)
    message = ("predict: x must have shape (batch, 1, 8, 8), got (5, 8, 8, 1); corenn expects "
               "images as (N, C, H, W) and x looks channels-last (N, H, W, C): " + TRANSPOSE)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.predict(x)
    assert model.predict(x.transpose(0, 3, 1, 2)).shape == (5, 2)  # the fix it shows works


def test_channels_last_rgb_in_fit_and_validation_data(rng):
    model = small_cnn(L.Input((3, 32, 32)))
    model.compile("sgd", "softmax_cross_entropy")
    x = rng.standard_normal((4, 32, 32, 3))
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=re.escape(
            "fit: x must have shape (batch, 3, 32, 32), got (4, 32, 32, 3); corenn expects images "
            "as (N, C, H, W) and x looks channels-last (N, H, W, C): " + TRANSPOSE)):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=re.escape(
            "fit (validation_data): x must have shape (batch, 3, 32, 32), got (4, 32, 32, 3); "
            "corenn expects")):
        model.fit(x.transpose(0, 3, 1, 2), y, validation_data=(x, y), verbose=0)


def test_channels_last_hint_from_a_layers_input_shape(rng):
    model = cn.Sequential([L.Conv2D(4, 3, input_shape=(1, 8, 8)), L.Flatten(), L.Dense(2)])
    with pytest.raises(ValueError, match=re.escape("got (2, 8, 8, 1); corenn expects images as "
                                                   "(N, C, H, W) and x looks channels-last")):
        model.predict(np.zeros((2, 8, 8, 1)))


def test_other_shape_mismatches_get_no_channels_last_hint():
    model = small_cnn(L.Input((1, 8, 8)))
    with pytest.raises(ValueError, match=r"^predict: x must have shape \(batch, 1, 8, 8\), "
                                         r"got \(2, 1, 8, 9\)$"):
        model.predict(np.zeros((2, 1, 8, 9)))


def test_shape_taken_from_a_channels_last_batch_says_so_and_is_not_kept(rng):
    # No Input: the first batch fixes the shape, (8, 8, 1) here: 8 channels of
    # 8 x 1 images, too narrow for a 3 x 3 kernel.
    model = cn.Sequential([L.Conv2D(4, 3), L.Flatten(), L.Dense(2)])
    x = rng.standard_normal((2, 8, 8, 1))
    with pytest.raises(ValueError, match=re.escape(
            "(the input shape (8, 8, 1) was taken from x); if x holds images channels-last "
            "(N, H, W, C), pass x.transpose(0, 3, 1, 2): corenn expects (N, C, H, W)")):
        model.predict(x)
    assert model.predict(x.transpose(0, 3, 1, 2)).shape == (2, 2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_ops_name_channels_last_input(dtype):
    x = np.zeros((2, 8, 8, 3), dtype)
    W = np.zeros((4, 3, 3, 3), dtype)
    message = ("conv2d_forward: x must be (N, C, H, W) with C = 3 channels for W of shape "
               "(4, 3, 3, 3), got (2, 8, 8, 3), which looks channels-last (N, H, W, C); corenn "
               "expects (N, C, H, W): " + TRANSPOSE)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        cn.ops.conv2d_forward(x, W)
    with pytest.raises(ValueError, match=re.escape("conv2d_backward: x must be (N, C, H, W)")):
        cn.ops.conv2d_backward(np.zeros((2, 4, 6, 6), dtype), x, W)
    with pytest.raises(ValueError, match=re.escape("(N, C, H, W) with C = 3 channels")):
        cn.ops.conv2d_forward(x, np.zeros((3, 1, 3, 3), dtype), groups=3)  # depthwise
    with pytest.raises(ValueError, match=re.escape(
            "conv_transpose2d_forward: x must be (N, C, H, W) with C = 3 channels for W of shape "
            "(3, 4, 3, 3), got (2, 8, 8, 3), which looks channels-last")):
        cn.ops.conv_transpose2d_forward(x, np.zeros((3, 4, 3, 3), dtype))
    # The fix works; a channel mismatch that is not channels-last keeps the plain message.
    assert cn.ops.conv2d_forward(x.transpose(0, 3, 1, 2), W).shape == (2, 4, 6, 6)
    with pytest.raises(ValueError, match=r"^conv2d_forward: W must have shape \(4, 2, 3, 3\), "
                                         r"got \(4, 3, 3, 3\)$"):
        cn.ops.conv2d_forward(np.zeros((2, 2, 8, 8), dtype), W)


# ------------------------------------------------------- misspelt arguments

@pytest.mark.parametrize("make, message", [
    (lambda: L.Conv2D(8, 3, stride=2),
     "Conv2D got an unexpected keyword argument 'stride'; did you mean 'strides'?"),
    (lambda: L.Dense(4, activaton="relu"),
     "Dense got an unexpected keyword argument 'activaton'; did you mean 'activation'?"),
    (lambda: L.MaxPool2D(2, stride=1),
     "MaxPooling2D got an unexpected keyword argument 'stride'; did you mean 'strides'?"),
    (lambda: L.Dropout(0.5, nme="d"),
     "Dropout got an unexpected keyword argument 'nme'; did you mean 'name'?"),
    (lambda: L.Input((3,), nme="x"),
     "Input got an unexpected keyword argument 'nme'; did you mean 'name'?"),
    (lambda: L.Flatten(colour=1),
     "Flatten got an unexpected keyword argument 'colour'; it takes name, trainable, input_shape"),
    (lambda: cn.optimizers.Adam(lr=1e-3),
     "Adam got an unexpected keyword argument 'lr'; did you mean 'learning_rate'?"),
    (lambda: cn.optimizers.AdamW(beta1=0.8),
     "AdamW got an unexpected keyword argument 'beta1'; did you mean 'beta_1'?"),
    (lambda: cn.optimizers.SGD(0.1, momentun=0.9),
     "SGD got an unexpected keyword argument 'momentun'; did you mean 'momentum'?"),
])
def test_misspelt_keyword_names_the_class_and_the_closest_argument(make, message):
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        make()


def test_misspelt_keyword_in_compile_and_fit():
    model = cn.Sequential([L.Input((3,)), L.Dense(2)])
    with pytest.raises(TypeError, match=re.escape(
            "compile() got an unexpected keyword argument 'los'; did you mean 'loss'?")):
        model.compile(optimizer="sgd", los="mse")
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match=re.escape(
            "fit() got an unexpected keyword argument 'epoch'; did you mean 'epochs'?")):
        model.fit(np.zeros((4, 3)), np.zeros((4, 2)), epoch=3)
    with pytest.raises(TypeError, match=re.escape(
            "fit() got an unexpected keyword argument 'bs'; did you mean 'batch_size'?")):
        model.fit(np.zeros((4, 3)), np.zeros((4, 2)), bs=3)


def test_a_rejected_layer_uses_no_name():
    with pytest.raises(TypeError):
        L.Dense(4, activaton="relu")
    assert L.Dense(4).name == "dense"


@pytest.mark.parametrize("cls", all_layer_classes(), ids=lambda c: c.__name__)
def test_every_layer_signature_lists_its_arguments(cls):
    params = inspect.signature(cls).parameters
    assert not any(p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL) for p in params.values())
    for klass in cls.__mro__:  # each __init__ in the chain contributes its own arguments
        if "__init__" in vars(klass) and issubclass(klass, L.Layer):
            code = vars(klass)["__init__"].__code__
            own = code.co_varnames[1:code.co_argcount + code.co_kwonlyargcount]
            assert set(own) <= set(params), (klass, own)
            if not code.co_flags & inspect.CO_VARKEYWORDS:
                break
    if cls is not L.Input:
        assert {"name", "trainable", "input_shape"} <= set(params)


def test_help_shows_the_real_arguments():
    text = pydoc.render_doc(L.Conv2D, renderer=pydoc.plaintext)
    assert "Conv2D(filters, kernel_size, groups=1, *, strides=1, padding='valid'" in text
    assert "__init__(self, filters, kernel_size, groups=1, *, strides=1" in text  # not **kwargs
    assert str(inspect.signature(cn.optimizers.AdamW)) == (
        "(learning_rate=0.001, weight_decay=0.01, *, beta_1=0.9, beta_2=0.999, epsilon=1e-08, clipnorm=None, "
        "clipvalue=None, global_clipnorm=None)")
    # A layer instance is callable on tensors: its own signature is __call__'s.
    assert list(inspect.signature(L.Dense(3)).parameters) == ["inputs"]


@pytest.mark.parametrize("make, message", [
    (lambda: L.Dense(4, activation="rleu"),
     "Dense: activation must be one of " + ", ".join(map(repr, L.ACTIVATIONS))
     + ", got 'rleu'; did you mean 'relu'?"),
    (lambda: L.Conv2D(4, 3, padding="smae"),
     "Conv2D: padding must be one of 'valid', 'same', got 'smae'; did you mean 'same'?"),
    (lambda: L.Dense(4, kernel_initializer="he_norml"),
     "did you mean 'he_normal'?"),
    (lambda: cn.Sequential([L.Input((2,)), L.Dense(2)]).compile(loss="softmax_crossentropy"),
     "compile: loss must be one of 'softmax_cross_entropy', 'binary_cross_entropy', 'mse', got "
     "'softmax_crossentropy'; did you mean 'softmax_cross_entropy'?"),
    (lambda: cn.Sequential([L.Input((2,)), L.Dense(2)]).compile(optimizer="adma"),
     "compile: optimizer must be an Optimizer or one of 'sgd', 'rmsprop', 'adam', 'adamw', got "
     "'adma'; did you mean 'adam'?"),
    (lambda: cn.Sequential([L.Input((2,)), L.Dense(2)]).compile(metrics=["acuracy"]),
     "; did you mean 'accuracy'?"),
])
def test_unknown_choice_suggests_the_closest(make, message):
    with pytest.raises(ValueError, match=f"{re.escape(message)}$"):
        make()


def test_no_suggestion_when_nothing_is_close():
    with pytest.raises(ValueError, match=r"got 'qqq'$"):
        L.Dense(4, activation="qqq")


# ------------------------------------- an activation the loss applies again

@pytest.mark.parametrize("last, loss, name, applied", [
    (L.Dense(3, activation="softmax", name="probs"), "softmax_cross_entropy",
     "softmax_cross_entropy", "softmax"),
    (L.Activation("softmax", name="probs"), "sparse_categorical_crossentropy",
     "softmax_cross_entropy", "softmax"),
    (L.Dense(3, activation="sigmoid", name="probs"), "binary_crossentropy",
     "binary_cross_entropy", "sigmoid"),
])
def test_output_activation_that_the_loss_applies_warns_at_compile(last, loss, name, applied):
    model = cn.Sequential([L.Input((4,)), L.Dense(3), last])
    message = (f"compile: the output layer 'probs' applies {applied} and the loss '{name}' "
               f"applies it again: {name} expects logits, so use activation=None (linear) on "
               f"'probs' and apply {applied} to predict()'s outputs when you need probabilities")
    with pytest.warns(UserWarning, match=f"^{re.escape(message)}$") as record:
        model.compile("sgd", loss)
    assert len(record) == 1 and record[0].filename == __file__  # points at the user's line


def test_the_warning_comes_once_from_the_users_compile(rng):
    model = cn.Sequential([L.Input((4,)), L.Dense(3, activation="softmax")])  # float32: cloned
    with pytest.warns(UserWarning, match="applies softmax"):
        model.compile("sgd", "softmax_cross_entropy")
    with warnings.catch_warnings():  # gradient_check's float64 clone compiles again, silently
        warnings.simplefilter("error")
        cn.gradient_check(model, rng.standard_normal((3, 4)), np.array([0, 1, 2]))


def test_functional_model_ending_in_softmax_warns():
    x = L.Input((4,))
    y = L.Dense(3, activation="softmax", name="head")(L.Dense(5)(x))
    with pytest.warns(UserWarning, match="output layer 'head' applies softmax"):
        cn.Model(x, y).compile("sgd", "softmax_cross_entropy")


@pytest.mark.parametrize("activation, loss", [
    (None, "softmax_cross_entropy"), ("softmax", "mse"), ("sigmoid", "softmax_cross_entropy"),
    ("relu", "binary_cross_entropy")])
def test_no_warning_otherwise(activation, loss):
    model = cn.Sequential([L.Input((4,)), L.Dense(3, activation=activation)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile("sgd", loss)


# ------------------------------------------------------------- layer names

def test_automatic_names_count_per_kind_as_keras():
    names = [L.Dense(2).name, L.Dense(2).name, L.Conv2D(2, 3).name, L.Dense(2).name,
             L.MaxPool2D().name, L.BatchNormalization().name, L.GlobalAveragePooling2D().name,
             L.Conv2DTranspose(2, 3).name, L.DepthwiseConv2D(3).name, L.Input((2,)).name]
    assert names == ["dense", "dense_1", "conv2d", "dense_2", "max_pooling2d",
                     "batch_normalization", "global_average_pooling2d", "conv2d_transpose",
                     "depthwise_conv2d", "input"]


def test_clear_session_restarts_the_names():
    assert [L.Dense(2).name, L.Dense(2).name] == ["dense", "dense_1"]
    cn.clear_session()
    assert L.Dense(2).name == "dense"


def test_automatic_names_skip_names_already_taken():
    L.Dense(2, name="dense_1")
    assert [L.Dense(2).name, L.Dense(2).name] == ["dense", "dense_2"]


def test_new_head_on_a_loaded_model_gets_a_free_name(tmp_path, rng):
    base = cn.Sequential([L.Input((3,)), L.Dense(4), L.Dense(2)])
    assert [l.name for l in base.layers] == ["dense", "dense_1"]
    base.save(tmp_path / "base.corenn")
    cn.clear_session()
    loaded = cn.load_model(tmp_path / "base.corenn")
    assert [l.name for l in loaded.layers] == ["dense", "dense_1"]  # kept as stored
    head = L.Dense(1)
    assert head.name == "dense_2"
    model = cn.Model(loaded.input, head(loaded.layers[-1].output))
    x = rng.standard_normal((2, 3)).astype(np.float32)
    assert model.predict(x).shape == (2, 1)
    assert [l.name for l in model.layers] == ["dense", "dense_1", "dense_2"]


def test_unnamed_application_blocks_count_per_kind():
    from corenn import applications

    x = L.Input((4, 8, 8))
    h = applications.residual_block(x, 4)
    h = applications.residual_block(h, 4)
    names = [l.name for l in cn.Model(x, h).layers]
    assert "res_a_conv" in names and "res_1_a_conv" in names
