"""Models crossing between C++ and Python (run by .ci/run; any mismatch exits non-zero).

    python cpp/examples/interop.py inputs DIR
        writes DIR/mlp_x.f32 (inputs for the model train.cpp saved as DIR/mlp.corenn)
        and DIR/py.corenn, a Python-trained model with every layer kind, with DIR/py_x.f32
    (then: predict DIR/mlp.corenn DIR/mlp_x.f32 DIR/mlp_y.f32 4, and the same for py)
    python cpp/examples/interop.py check DIR
        loads both files in Python and compares its predictions with predict.cpp's
"""

import os
import sys

import numpy as np

import corenn as cn

TOLERANCE = 1e-5
L = cn.layers


def every_layer_model():
    """Every layer kind of the engine (tests/test_saving.py checks it against
    the registry, corenn._core.layer_kinds())."""
    x = L.Input((27,))  # token ids (as float32), embedded and laid out as a 3×9×8 image
    h = L.Reshape((3, 9, 8))(L.Embedding(10, 8, mask_zero=True)(x))
    h = L.Normalization([0.5, -1.0, 0.0], [4.0, 0.25, 1.0])(h)
    h = L.RandomFlip("horizontal")(h)
    h = L.RandomCrop(1)(h)
    h = L.ColorShift(0.1)(h)
    h = L.ZeroPadding2D(((1, 0), (0, 1)))(h)
    h = L.Conv2D(4, 3, padding="same", activation="relu")(h)
    h = L.DepthwiseConv2D(3, depth_multiplier=2, activation="leaky_relu")(h)
    h = L.MaxPool2D(2)(h)
    h = L.UpSampling2D((1, 2), interpolation="bilinear")(h)
    h = L.SeparableConv2D(6, 3, padding="same", activation="tanh")(h)
    h = L.Conv2DTranspose(3, 2, strides=2, activation="gelu")(h)
    h = L.AvgPool2D(2, padding="same")(h)
    h = L.Conv2D(6, 1, groups=3, use_bias=False, activation="softmax")(h)  # over the channels
    b = L.BatchNormalization(momentum=0.9)(h)
    # A gate (per channel, broadcast over the maps: squeeze-and-excitation),
    # then the mean, maximum and minimum of the branches.
    g = L.Multiply()([b, L.Reshape((6, 1, 1))(L.GlobalAvgPool2D()(h))])
    h = L.Minimum()([L.Maximum()([L.Average()([g, h, b]), h]), g])
    h = L.Concatenate()([L.Subtract()([L.Add()([b, h]), b]), b])
    h = L.Dropout(0.25)(h)
    h = L.GlobalAvgPool2D()(h)
    h = L.Reshape((2, 6))(h)
    h = L.Conv1D(4, 2, padding="causal", dilation_rate=2, activation="tanh")(h)
    h = L.MaxPool1D(2, padding="same")(h)
    h = L.AvgPool1D(2, strides=1, padding="same")(h)
    h = L.Concatenate()([L.GlobalAvgPool1D()(h), L.GlobalMaxPool1D()(h)])
    h = L.UnitNormalization(axis=1)(L.Flatten()(h))
    h = L.Activation("sigmoid")(h)
    h = L.Dense(5, activation="selu")(h)
    # The 5 features read as 5 steps of one; the LSTM's final states start the others.
    seq, state_h, state_c = L.LSTM(3, return_sequences=True, return_state=True)(L.Reshape((5, 1))(h))
    seq = L.Dot(axes=2, normalize=True)([seq, seq])  # (5, 5): each step's cosine similarity to the others
    seq = L.GRU(3, return_sequences=True, go_backwards=True, dropout=0.1, recurrent_dropout=0.2)(
        seq, initial_state=state_h)
    seq = L.Softmax(axis=1)(seq)  # over the steps
    seq = L.LayerNormalization()(L.PositionalEncoding()(seq))
    seq = L.Attention(use_scale=True)([seq, seq], use_causal_mask=True)
    seq = L.AdditiveAttention(dropout=0.2)([seq, L.Attention(score_mode="concat")([seq, seq])])
    seq = L.MultiHeadAttention(2, 2, output_shape=3)(seq, seq, use_causal_mask=True)
    h = L.SimpleRNN(3)(seq, initial_state=[state_c])
    # Repeated over 4 steps, a Dense at each (through TimeDistributed and on
    # the last axis), read both ways.
    h = L.TimeDistributed(L.Dense(4, activation="tanh"))(L.RepeatVector(4)(h))
    h = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="sum")(L.Dense(5)(h))
    h = L.Bidirectional(L.GRU(2), backward_layer=L.GRU(3, go_backwards=True))(h)
    # Masks (not stored in the file: they follow from mask_zero and Masking):
    # the ids' zeros are padding that reaches the Bidirectional LSTM through
    # Dropout, AdditiveAttention and TimeDistributed; Masking marks the steps equal to 0 of its
    # sequence (none in practice, but the kind is covered).
    t = L.Dropout(0.1)(L.Embedding(10, 2, mask_zero=True)(x))
    t = L.AdditiveAttention()([t, t])  # padding left out of the keys, its query rows zeros
    t = L.Bidirectional(L.LSTM(2, return_sequences=True))(L.TimeDistributed(L.Dense(3))(t))
    t = L.GRU(2)(L.Masking(0.0)(t))
    return cn.Model(x, L.Dense(3)(L.Concatenate()([h, t])))


def write_inputs(folder):
    rng = np.random.default_rng(0)
    # train.cpp's spirals fill the unit disc.
    rng.uniform(-1, 1, (257, 2)).astype(np.float32).tofile(os.path.join(folder, "mlp_x.f32"))
    cn.seed(0)
    model = every_layer_model()
    model.compile(optimizer=cn.optimizers.Adam(1e-2), loss="softmax_cross_entropy")
    x = rng.integers(0, 10, (64, 27)).astype(np.float32)
    model.fit(x, rng.integers(0, 3, 64), batch_size=16, epochs=2, verbose=0)
    model.save(os.path.join(folder, "py.corenn"))
    x[:37].tofile(os.path.join(folder, "py_x.f32"))


def compare(folder, name):
    model = cn.load_model(os.path.join(folder, f"{name}.corenn"))
    x = np.fromfile(os.path.join(folder, f"{name}_x.f32"), dtype=np.float32)
    x = x.reshape(-1, *model.input_shape[1:])
    want = model.predict(x)
    got = np.fromfile(os.path.join(folder, f"{name}_y.f32"), dtype=np.float32)
    if got.size != want.size:
        raise SystemExit(f"{name}: predict.cpp wrote {got.size} values, Python predicts {want.size}")
    diff = float(np.max(np.abs(got.reshape(want.shape) - want)))
    print(f"{name}: {len(x)} examples, max |C++ - Python| = {diff:.3g}")
    if not diff <= TOLERANCE:
        raise SystemExit(f"{name}: C++ and Python predictions differ by {diff} > {TOLERANCE}")
    return model


def check(folder):
    mlp = compare(folder, "mlp")
    # train.cpp compiled it with Adam: it comes back compiled, with its step count.
    if not (mlp._loss == "softmax_cross_entropy" and isinstance(mlp._optimizer, cn.optimizers.Adam)
            and mlp._engine.steps > 0):
        raise SystemExit("mlp: the C++ model's loss, optimizer or step count did not survive the file")
    compare(folder, "py")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("inputs", "check"):
        raise SystemExit(__doc__)
    (write_inputs if sys.argv[1] == "inputs" else check)(sys.argv[2])
