// The unit-normalisation kernels against their naive siblings (which follow
// the formulas of corenn/kernels/unit_norm.hpp line by line; tests/test_unit_norm.py
// compares both with the NumPy reference), on hand values, and on vectors
// shorter than eps (the zero vector: finite, no NaN).
#include <cmath>
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/unit_norm.hpp"

using namespace corenn;
using corenn_test::random_vector;

namespace {

template <typename T>
void check_fast_matches_naive(int64_t outer, int64_t channels, int64_t inner, unsigned seed, double tol) {
  const size_t n = static_cast<size_t>(outer * channels * inner);
  const auto x = random_vector<T>(n, seed, 2.0), dy = random_vector<T>(n, seed + 1);
  std::vector<T> y(n), y_naive(n), dx(n), dx_naive(n);
  unit_norm_forward(y.data(), x.data(), outer, channels, inner, 1e-12);
  unit_norm_forward_naive(y_naive.data(), x.data(), outer, channels, inner, 1e-12);
  unit_norm_backward(dx.data(), dy.data(), x.data(), outer, channels, inner, 1e-12);
  unit_norm_backward_naive(dx_naive.data(), dy.data(), x.data(), outer, channels, inner, 1e-12);
  for (size_t i = 0; i < n; ++i) {
    CHECK_CLOSE(y[i], y_naive[i], tol);
    CHECK_CLOSE(dx[i], dx_naive[i], tol);
  }
}

}  // namespace

// (N, D) rows, channels at a stride (inner > 1, with a partial block of 64
// positions), and sizes past the parallel grain.
TEST(unit_norm_fast_matches_naive) {
  struct Dims { int64_t outer, channels, inner; };
  unsigned seed = 1;
  for (Dims d : {Dims{1, 1, 1}, Dims{7, 16, 1}, Dims{3, 5, 130}, Dims{2000, 64, 1}, Dims{9, 32, 200}}) {
    check_fast_matches_naive<float>(d.outer, d.channels, d.inner, seed += 10, 1e-6);
    check_fast_matches_naive<double>(d.outer, d.channels, d.inner, seed += 10, 1e-13);
  }
}

TEST(unit_norm_hand_values) {
  // (3, 4) has length 5; as two channels of two positions, the columns (3, 4) and (0, 0).
  const std::vector<double> x = {3, 4}, dy = {1, 0};
  for (bool naive : {false, true}) {
    std::vector<double> y(2), dx(2);
    (naive ? unit_norm_forward_naive<double> : unit_norm_forward<double>)(y.data(), x.data(), 1, 2, 1, 1e-12);
    CHECK_CLOSE(y[0], 0.6, 1e-15);
    CHECK_CLOSE(y[1], 0.8, 1e-15);
    // dx = (dy − y·(y·dy)) / n = ((1, 0) − (0.6, 0.8)·0.6) / 5 = (0.128, −0.096).
    (naive ? unit_norm_backward_naive<double> : unit_norm_backward<double>)(dx.data(), dy.data(), x.data(), 1, 2,
                                                                            1, 1e-12);
    CHECK_CLOSE(dx[0], 0.128, 1e-15);
    CHECK_CLOSE(dx[1], -0.096, 1e-15);
    const std::vector<double> cols = {3, 0, 4, 0};  // (channels 2, inner 2)
    std::vector<double> yc(4), dxc(4);
    const std::vector<double> ones = {1, 1, 1, 1};
    (naive ? unit_norm_forward_naive<double> : unit_norm_forward<double>)(yc.data(), cols.data(), 1, 2, 2, 1e-12);
    const std::vector<double> want = {0.6, 0.0, 0.8, 0.0};
    for (size_t i = 0; i < 4; ++i) CHECK_CLOSE(yc[i], want[i], 1e-15);
    // The zero column: divided by eps, so its gradient is dy / eps.
    (naive ? unit_norm_backward_naive<double> : unit_norm_backward<double>)(dxc.data(), ones.data(), cols.data(),
                                                                            1, 2, 2, 0.5);
    CHECK(dxc[1] == 2.0 && dxc[3] == 2.0);
  }
}

TEST(unit_norm_zero_vector_stays_finite) {
  const std::vector<float> x(8, 0.0f), dy(8, 1.0f);
  for (bool naive : {false, true}) {
    std::vector<float> y(8, -1.0f), dx(8);
    (naive ? unit_norm_forward_naive<float> : unit_norm_forward<float>)(y.data(), x.data(), 2, 4, 1, 1e-12);
    (naive ? unit_norm_backward_naive<float> : unit_norm_backward<float>)(dx.data(), dy.data(), x.data(), 2, 4, 1,
                                                                          1e-12);
    for (size_t i = 0; i < 8; ++i) {
      CHECK(y[i] == 0.0f);
      CHECK(std::isfinite(dx[i]));
    }
  }
}

TEST(unit_norm_validates_eps) {
  validate_unit_norm(1e-12, "op");
  CHECK_THROWS(validate_unit_norm(0.0, "op"), ValueError);
  CHECK_THROWS(validate_unit_norm(-1.0, "op"), ValueError);
  CHECK_THROWS(validate_unit_norm(std::nan(""), "op"), ValueError);
}
