#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/dropout.hpp"
#include "corenn/kernels/init.hpp"
#include "corenn/random.hpp"
#include "corenn/runtime.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

template <typename T>
void dropout_deterministic() {
  const int before = get_num_threads();
  const size_t n = 100003;  // above the grain: the parallel split is used
  const auto x = random_vector<T>(n, 5);
  const T rate = T(0.3);
  std::vector<T> y0(n), dx0(n);
  std::vector<uint8_t> m0(n);
  dropout_forward_naive(y0.data(), m0.data(), x.data(), n, rate, 42);
  dropout_backward_naive(dx0.data(), x.data(), m0.data(), n, rate);
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<T> y(n), dx(n);
    std::vector<uint8_t> m(n);
    dropout_forward(y.data(), m.data(), x.data(), n, rate, 42);
    dropout_backward(dx.data(), x.data(), m.data(), n, rate);
    CHECK(bitwise_equal(m, m0));
    CHECK(bitwise_equal(y, y0));
    CHECK(bitwise_equal(dx, dx0));
  }
  set_num_threads(before);
  // The rule itself: kept iff uniform01(key, i) >= rate, kept units scaled by 1/(1 − rate).
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    const bool keep = uniform01(42, i) >= static_cast<double>(rate);
    CHECK(m0[i] == (keep ? 1 : 0));
    CHECK(y0[i] == (keep ? x[i] / (T(1) - rate) : T(0) * x[i]));
    kept += keep;
  }
  // Binomial: std √(n·0.21) ≈ 145 kept units; 6σ ≈ 870.
  CHECK(std::fabs(static_cast<double>(kept) - 0.7 * n) < 6 * std::sqrt(0.21 * n));
}

}  // namespace

TEST(dropout_fast_matches_naive_for_any_thread_count) {
  dropout_deterministic<float>();
  dropout_deterministic<double>();
}

TEST(dropout_seed_changes_mask) {
  const size_t n = 1000;
  std::vector<double> x(n, 1.0), y(n);
  std::vector<uint8_t> a(n), b(n), c(n);
  dropout_forward(y.data(), a.data(), x.data(), n, 0.5, 1);
  dropout_forward(y.data(), b.data(), x.data(), n, 0.5, 1);
  dropout_forward(y.data(), c.data(), x.data(), n, 0.5, 2);
  CHECK(a == b);
  CHECK(a != c);
}

TEST(initializer_names_round_trip_and_float_is_rounded_double) {
  for (Init k : {Init::zeros, Init::ones, Init::random_normal, Init::he_normal, Init::he_uniform,
                 Init::glorot_normal, Init::glorot_uniform})
    CHECK(parse_initializer(initializer_name(k)) == k);
  CHECK_THROWS(parse_initializer("he"), ValueError);
  const int64_t n = 20000;
  std::vector<float> wf(n);
  std::vector<double> wd(n);
  initialize(wf.data(), n, Init::he_uniform, 50, 10, 0.0, 3);
  initialize(wd.data(), n, Init::he_uniform, 50, 10, 0.0, 3);
  const double a = std::sqrt(6.0 / 50);
  for (int64_t i = 0; i < n; ++i) {
    CHECK(wf[i] == static_cast<float>(wd[i]));
    CHECK(wd[i] >= -a && wd[i] < a);
  }
  CHECK_THROWS(initialize(wd.data(), n, Init::he_normal, 0, 10, 0.0, 3), ValueError);
}

namespace {

// One mask per sequence: the mask dropout_forward draws for (N, F) units,
// applied to every step; fast and naive agree bit for bit at any thread count.
template <typename T>
void sequence_dropout_deterministic() {
  const int before = get_num_threads();
  const int64_t N = 37, S = 9, F = 301;  // N·S·F above the grain
  const auto x = random_vector<T>(static_cast<size_t>(N * S * F), 6);
  const T rate = T(0.4);
  std::vector<T> y0(x.size()), dx0(x.size()), units(static_cast<size_t>(N * F), T(1)), scaled(units.size());
  std::vector<uint8_t> m0(units.size()), unit_mask(units.size());
  sequence_dropout_forward_naive(y0.data(), m0.data(), x.data(), N, S, F, rate, 7);
  sequence_dropout_backward_naive(dx0.data(), x.data(), m0.data(), N, S, F, rate);
  dropout_forward_naive(scaled.data(), unit_mask.data(), units.data(), N * F, rate, 7);
  CHECK(bitwise_equal(m0, unit_mask));
  bool ok = true;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < S; ++t)
      for (int64_t f = 0; f < F; ++f) {
        const size_t i = static_cast<size_t>((n * S + t) * F + f);
        const T m = T(m0[static_cast<size_t>(n * F + f)]);
        ok = ok && y0[i] == x[i] * m / (T(1) - rate) && dx0[i] == x[i] * m / (T(1) - rate);
      }
  CHECK(ok);
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<T> y(x.size()), dx(x.size());
    std::vector<uint8_t> m(units.size());
    sequence_dropout_forward(y.data(), m.data(), x.data(), N, S, F, rate, 7);
    sequence_dropout_backward(dx.data(), x.data(), m.data(), N, S, F, rate);
    CHECK(bitwise_equal(m, m0));
    CHECK(bitwise_equal(y, y0));
    CHECK(bitwise_equal(dx, dx0));
  }
  set_num_threads(before);
}

}  // namespace

TEST(sequence_dropout_one_mask_per_sequence) {
  sequence_dropout_deterministic<float>();
  sequence_dropout_deterministic<double>();
}
