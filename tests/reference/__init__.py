"""Plain NumPy implementations of every formula, in float64: the test oracles.

Written from the course's formulas (examples as rows: Z = X·Wᵀ + b), with no
tricks beyond the numerically stable forms the formulas themselves need. Each
backward is verified against finite differences of its own forward (the
*reference_gradient* tests in each op's test file) before it is trusted as
an oracle; optimizer steps and initialisers, which have no gradient, are
checked against hand-computed values.
"""
