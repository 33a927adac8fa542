"""ModelCheckpoint: saving through model.save / model.save_weights with Keras's
filepath formatting, every epoch or only on improvement. Needs the model files
of issue 5 (model.save, cn.load_model, save_weights/load_weights)."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

import corenn as cn
from corenn import callbacks as C

L = cn.layers


@pytest.fixture(scope="module")
def data():
    d = load_digits()
    X, y = (d.data / 16.0).astype(np.float32), d.target
    return (X[:400], y[:400]), (X[400:600], y[400:600])


def mlp():
    cn.seed(0)
    m = cn.Sequential([L.Input((64,)), L.Dense(32, activation="relu"), L.Dense(10)])
    m.compile(cn.optimizers.SGD(0.05), "softmax_cross_entropy", metrics=["accuracy"])
    return m


class Recorder(C.Callback):
    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def assert_same_weights(a, b):
    assert len(a) == len(b)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


def test_saves_every_epoch_with_formatted_names(data, tmp_path):
    (X, y), val = data
    model, rec = mlp(), Recorder()
    pattern = str(tmp_path / "ckpt-{epoch:02d}-{val_loss:.3f}.corenn")
    hist = model.fit(X, y, epochs=3, batch_size=32, validation_data=val, verbose=0,
                     callbacks=[rec, C.ModelCheckpoint(pattern)])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"ckpt-{e + 1:02d}-{v:.3f}.corenn" for e, v in enumerate(hist.history["val_loss"])]
    for e, name in enumerate(names):
        assert_same_weights(cn.load_model(tmp_path / name).get_weights(), rec.weights[e])
    np.testing.assert_array_equal(cn.load_model(tmp_path / names[-1]).predict(val[0]), model.predict(val[0]))


def test_save_best_only_keeps_the_best_epoch(data, tmp_path):
    (X, y), val = data
    model, rec = mlp(), Recorder()
    path = tmp_path / "best.corenn"
    saved, save = [], model.save

    def recording_save(filepath, *args, **kwargs):
        saved.append(len(rec.weights) - 1)  # the epoch just recorded
        return save(filepath, *args, **kwargs)

    model.save = recording_save
    # Monitor the validation accuracy (mode auto: higher is better).
    hist = model.fit(X, y, epochs=6, batch_size=32, validation_data=val, verbose=0,
                     callbacks=[rec, C.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)])
    acc = hist.history["val_accuracy"]
    best = int(np.argmax(acc))  # the first of equal maxima: later ties do not improve
    improving = [e for e in range(len(acc)) if acc[e] > max(acc[:e], default=-1)]
    assert saved == improving
    assert_same_weights(cn.load_model(path).get_weights(), rec.weights[best])


def test_save_weights_only(data, tmp_path):
    (X, y), val = data
    model, rec = mlp(), Recorder()
    path = tmp_path / "w-{epoch}.weights"
    model.fit(X, y, epochs=2, batch_size=32, validation_data=val, verbose=0,
              callbacks=[rec, C.ModelCheckpoint(str(path), save_weights_only=True)])
    fresh = mlp()
    fresh.build()
    fresh.load_weights(tmp_path / "w-1.weights")
    assert_same_weights(fresh.get_weights(), rec.weights[0])


def test_unknown_name_in_the_filepath_is_reported(data, tmp_path):
    (X, y), val = data
    model = mlp()
    with pytest.raises(ValueError, match=r"ModelCheckpoint: cannot format filepath .*\{val_f1\}"):
        model.fit(X, y, epochs=1, verbose=0, validation_data=val,
                  callbacks=[C.ModelCheckpoint(str(tmp_path / "m-{val_f1}.corenn"))])
