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
