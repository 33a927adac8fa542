"""Keras behaviours of frozen wrapped layers, masks through merges and masked
losses: freezing a Bidirectional or TimeDistributed, or the layer inside one,
stops the updates of every weight in it (before and after build, through a
model file); the merges (Add, Multiply, ..., Concatenate) pass their inputs' masks on
(Keras's compute_mask); binary cross-entropy and mse on a masked sequence
average over the valid steps only (Keras's masked reduction)."""

import numpy as np
import pytest

import corenn as cn
from tolerances import assert_close

L = cn.layers
T, F = 5, 3


def sequences(rng, n=6):
    """(x, valid): float sequences (n, T, F) zero-padded at the end, and the
    valid steps (n, T); the last sequence is all padding."""
    lengths = rng.integers(1, T + 1, n)
    lengths[-1] = 0
    valid = np.arange(T)[None, :] < lengths[:, None]
    x = rng.standard_normal((n, T, F)) * valid[..., None]
    return x, valid


def train_step(model, x, y):
    model.compile(optimizer=cn.optimizers.AdamW(1e-2, weight_decay=0.1), loss="mse")
    model.train_on_batch(x, y)


def same_weights(a, b):
    return len(a) == len(b) and all(np.array_equal(u, v) for u, v in zip(a, b))


# ------------------------------------------------------- frozen wrapped layers

def bidirectional_model(**lstm_args):
    cn.seed(3)
    bi = L.Bidirectional(L.LSTM(4, **lstm_args), name="bi")
    model = cn.Sequential([L.Input((T, F)), bi, L.Dense(2, name="head")], dtype="float64")
    model.build()
    return model, bi


def test_a_frozen_layer_freezes_both_directions_of_its_bidirectional(rng):
    x, y = rng.standard_normal((4, T, F)), rng.standard_normal((4, 2))
    model, bi = bidirectional_model(trainable=False)
    before, head = bi.get_weights(), model.get_layer("head").get_weights()
    assert model.trainable_weights[0].shape == head[0].shape and len(model.trainable_weights) == 2
    train_step(model, x, y)
    assert same_weights(bi.get_weights(), before)
    assert not same_weights(model.get_layer("head").get_weights(), head)


@pytest.mark.parametrize("what", ["wrapper", "inner"])
def test_freezing_a_built_bidirectional_or_its_layer_stops_both_directions(what, rng, tmp_path):
    x, y = rng.standard_normal((4, T, F)), rng.standard_normal((4, 2))
    model, bi = bidirectional_model()
    (bi if what == "wrapper" else bi.layer).trainable = False
    before = bi.get_weights()
    train_step(model, x, y)
    assert same_weights(bi.get_weights(), before)
    # Through a model file: still frozen.
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn")
    train_step(loaded, x, y)
    assert same_weights(loaded.get_layer("bi").get_weights(), before)
    # Unfrozen (Keras's setter reaches the wrapped layers): both directions train.
    loaded.get_layer("bi").trainable = True
    train_step(loaded, x, y)
    after = loaded.get_layer("bi").get_weights()
    half = len(after) // 2
    assert not same_weights(after[:half], before[:half]) and not same_weights(after[half:], before[half:])


def time_distributed_bn_model(frozen_before_build):
    cn.seed(5)
    bn = L.BatchNormalization(axis=-1, trainable=not frozen_before_build)
    td = L.TimeDistributed(bn, name="td")
    model = cn.Sequential([L.Input((T, F)), L.Dense(F, name="pre"), td, L.Dense(2, name="head")],
                          dtype="float64")
    model.build()
    return model, td


@pytest.mark.parametrize("frozen_before_build", [True, False])
def test_a_frozen_batch_norm_inside_a_trainable_time_distributed_keeps_its_weights(frozen_before_build, rng,
                                                                                   tmp_path):
    x, y = rng.standard_normal((8, T, F)), rng.standard_normal((8, T, 2))
    model, td = time_distributed_bn_model(frozen_before_build)
    td.set_weights([rng.uniform(0.5, 1.5, F), rng.standard_normal(F), rng.standard_normal(F),
                    rng.uniform(0.5, 1.5, F)])
    if not frozen_before_build:
        td.layer.trainable = False
    assert td.trainable and not td.layer.trainable
    before, pre = td.get_weights(), model.get_layer("pre").get_weights()
    train_step(model, x, y)
    # gamma, beta and the moving statistics, bit for bit; the layer below still trains.
    assert same_weights(td.get_weights(), before)
    assert not same_weights(model.get_layer("pre").get_weights(), pre)
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn")
    train_step(loaded, x, y)
    assert same_weights(loaded.get_layer("td").get_weights(), before)


def test_summary_counts_a_frozen_wrapped_layer_as_non_trainable():
    model, bi = bidirectional_model()
    bi.layer.trainable = False
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    head = sum(w.size for w in model.get_layer("head").get_weights())
    assert f"Trainable params: {head:,}" in text


# ------------------------------------------------------------ merge masks

def masked_pair(merge):
    """Two masked branches (Masking with different padding values) merged."""
    a, b = L.Input((T, F), name="a"), L.Input((T, F), name="b")
    ma, mb = L.Masking(mask_value=0.0)(a), L.Masking(mask_value=9.0)(b)
    model = cn.Model([a, b], merge([ma, mb]), dtype="float64")
    model.build()
    return model


def padded_pair(rng):
    x, valid_a = sequences(rng)
    z = rng.standard_normal((len(x), T, F))
    valid_b = rng.random((len(x), T)) < 0.6
    z[~valid_b] = 9.0
    return x, z, valid_a, valid_b


@pytest.mark.parametrize("merge", [L.Add, L.Subtract, L.Multiply, L.Average, L.Maximum, L.Minimum])
def test_element_wise_merges_carry_the_and_of_their_inputs_masks(merge, rng):
    x, z, va, vb = padded_pair(rng)
    (mask,) = masked_pair(merge())._engine.output_masks([x, z])
    assert np.array_equal(mask, (va & vb).astype(np.int64))


def test_an_unmasked_input_adds_no_condition_to_an_element_wise_merge(rng):
    x, valid = sequences(rng)
    a, b = L.Input((T, F)), L.Input((T, F))
    model = cn.Model([a, b], L.Add()([L.Masking()(a), L.Dense(F)(b)]), dtype="float64")
    model.build()
    (mask,) = model._engine.output_masks([x, rng.standard_normal(x.shape)])
    assert np.array_equal(mask, valid.astype(np.int64))


def test_concatenate_features_carries_the_or_joined_steps_the_joined_masks(rng):
    x, z, va, vb = padded_pair(rng)
    (mask,) = masked_pair(L.Concatenate(axis=-1))._engine.output_masks([x, z])
    assert np.array_equal(mask, (va | vb).astype(np.int64))
    (mask,) = masked_pair(L.Concatenate(axis=1))._engine.output_masks([x, z])
    assert np.array_equal(mask, np.concatenate([va, vb], axis=1).astype(np.int64))
    # Joined along the features with an unmasked input: every step is valid.
    a, b = L.Input((T, F)), L.Input((T, F))
    model = cn.Model([a, b], L.Concatenate(axis=-1)([L.Masking()(a), b]), dtype="float64")
    model.build()
    assert model._engine.output_masks([x, z]) == [None]
    # Along the steps, an unmasked input's steps are valid.
    model = cn.Model([a, b], L.Concatenate(axis=1)([L.Masking()(a), b]), dtype="float64")
    model.build()
    (mask,) = model._engine.output_masks([x, z])
    assert np.array_equal(mask, np.concatenate([va, np.ones_like(va)], axis=1).astype(np.int64))


def test_a_residual_add_passes_the_mask_to_the_recurrent_layer(rng):
    """Padding after x + Dense(x) does not change the LSTM's final state."""
    x, valid = sequences(rng)
    x = x[:-1]  # every sequence has a step

    def model(steps):
        cn.seed(7)
        i = L.Input((steps, F))
        m = L.Masking()(i)
        return cn.Model(i, L.LSTM(4)(L.Add()([m, L.Dense(F)(m)])), dtype="float64")

    lengths = valid[:-1].sum(axis=1)
    got = model(T).predict(x)
    alone = np.concatenate([model(int(n)).predict(x[k:k + 1, :n]) for k, n in enumerate(lengths)])
    assert_close(got, alone, dtype=np.float64)


def test_transformer_encoder_output_keeps_the_embedding_mask():
    tokens = np.array([[3, 5, 2, 0, 0], [1, 4, 0, 0, 0], [6, 2, 7, 8, 9]], dtype=np.float64)
    i = L.Input((5,))
    e = L.Embedding(10, 8, mask_zero=True)(i)
    model = cn.Model(i, cn.applications.transformer_encoder(e, num_heads=2, ff_dim=16), dtype="float64")
    model.build()
    (mask,) = model._engine.output_masks([tokens])
    assert np.array_equal(mask, (tokens != 0).astype(np.int64))


# ----------------------------------------------------------- masked losses

def per_step_model(loss, units):
    cn.seed(11)
    model = cn.Sequential([L.Input((T, F)), L.Masking(), L.Dense(units, name="out")], dtype="float64")
    model.compile(optimizer="sgd", loss=loss)
    return model


def masked_loss_reference(loss, z, y, valid, weight):
    """Keras's masked reduction over corenn's unmasked formula: each step's
    loss weighted by mask·(N·T)/Σmask and the example's weight."""
    N = len(z)
    if loss == "mse":
        per_step = ((z - y) ** 2).mean(axis=-1)  # (N, T)
        scale = N * T / valid.sum()
        return (weight[:, None] * valid * scale * per_step).sum() / (N * T)
    bce = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    per_step = bce.sum(axis=-1)
    scale = N * T / valid.sum()
    return (weight[:, None] * valid * scale * per_step).sum() / N


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy"])
@pytest.mark.parametrize("weighted", [False, True])
def test_masked_sequence_losses_average_over_the_valid_steps(loss, weighted, rng):
    x, valid = sequences(rng)
    model = per_step_model(loss, 2)
    z = model.predict(x)
    y = rng.random((len(x), T, 2)) if loss == "mse" else (rng.random((len(x), T, 2)) < 0.5).astype(np.float64)
    w = rng.uniform(0.5, 2.0, len(x)) if weighted else np.ones(len(x))
    got = model.evaluate(x, y, sample_weight=w if weighted else None)["loss"]
    assert_close(np.float64(got), masked_loss_reference(loss, z, y, valid, w), dtype=np.float64)
    # Targets at masked steps change neither the loss nor the gradients.
    y2 = y.copy()
    y2[~valid] = 1.0 - y2[~valid] + 3.0 * (loss == "mse")
    l1, g1 = model.compute_gradients(x, y)
    l2, g2 = model.compute_gradients(x, y2)
    assert l1 == l2 and all(np.array_equal(a, b) for a, b in zip(g1, g2))


@pytest.mark.parametrize("loss", ["mse", "binary_cross_entropy"])
def test_a_mask_of_valid_steps_only_changes_nothing(loss, rng):
    x = rng.standard_normal((4, T, F)) + 5.0  # no step is all zeros
    y = (rng.random((4, T, 2)) < 0.5).astype(np.float64)
    masked = per_step_model(loss, 2)
    cn.seed(11)
    plain = cn.Sequential([L.Input((T, F)), L.Dense(2, name="out")], dtype="float64")
    plain.compile(optimizer="sgd", loss=loss)
    plain.get_layer("out").set_weights(masked.get_layer("out").get_weights())
    assert_close(np.float64(masked.evaluate(x, y)["loss"]), np.float64(plain.evaluate(x, y)["loss"]),
                 dtype=np.float64)


def test_an_all_masked_batch_gives_zero_loss_not_nan(rng):
    x = np.zeros((3, T, F))
    for loss in ("mse", "binary_cross_entropy"):
        model = per_step_model(loss, 2)
        lv, grads = model.compute_gradients(x, np.ones((3, T, 2)))
        assert lv == 0.0 and all(not g.any() for g in grads)
