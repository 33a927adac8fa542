"""fit(validation_split=s) splits as Keras does: the first ⌊n·(1 − s)⌋ examples
train, the LAST n − ⌊n·(1 − s)⌋ validate (keras/src/trainers/data_adapters/
data_adapter_utils.py, train_validation_split), before any shuffling."""

import math

import numpy as np
import pytest

import corenn as cn

L = cn.layers


def keras_validation_count(n, split):
    return n - int(math.floor(n * (1.0 - split)))


@pytest.mark.parametrize("n,split", [(10, 0.25), (10, 0.1), (10, 0.3), (7, 0.5), (3, 0.3), (6, 0.1),
                                     (100, 0.2), (1000, 0.1), (999, 0.33), (50, 0.01)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_validation_split_follows_keras(n, split, shuffle):
    seen = []

    def record(outputs, y, loss):  # called on the epoch's training data, then on the validation data
        seen.append(np.array(y))
        return 0.0

    cn.seed(0)
    m = cn.Sequential([L.Input((2,)), L.Dense(n)])
    m.compile(optimizer="sgd", loss="softmax_cross_entropy", metrics=[record])
    x = np.random.default_rng(n).standard_normal((n, 2))
    y = np.arange(n)  # every example its own label: the labels show which examples went where
    m.fit(x, y, batch_size=16, epochs=1, validation_split=split, shuffle=shuffle, verbose=0)
    train, val = seen
    count = keras_validation_count(n, split)
    assert len(val) == count
    np.testing.assert_array_equal(val, y[n - count:])
    np.testing.assert_array_equal(np.sort(train), y[:n - count])

