"""Plain NumPy implementations of every formula, in float64: the test oracles.

Written from the course's formulas (examples as rows: Z = X·Wᵀ + b), with no
tricks beyond the numerically stable forms the formulas themselves need. Each
is verified against finite differences in tests/test_reference.py before it is
trusted as an oracle.
"""
