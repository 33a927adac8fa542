import os
import sys

import numpy as np
import pytest

# tests/ on the path so test modules import tolerances, gradcheck and reference.
sys.path.insert(0, os.path.dirname(__file__))

FLOAT_DTYPES = [np.float32, np.float64]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _fresh_layer_names():
    """Automatic layer names restart in every test (dense, dense_1, ...), so the
    names a test expects do not depend on the tests that ran before it."""
    import corenn

    corenn.clear_session()
