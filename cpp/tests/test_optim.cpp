#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/optim.hpp"
#include "corenn/runtime.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

// Three steps of each optimizer, fast (on `threads` threads) against naive, on
// an arena above the 32k grain so the parallel split is used.
template <typename T>
void fast_matches_naive(int threads) {
  const int before = get_num_threads();
  set_num_threads(threads);
  const size_t n = 100003;
  const auto p0 = random_vector<T>(n, 1);

  SGDHyper sgd;
  sgd.lr = 0.05;
  sgd.momentum = 0.9;
  sgd.nesterov = true;
  sgd.weight_decay = 0.01;
  RMSpropHyper rms;
  rms.lr = 0.01;
  rms.weight_decay = 0.02;
  AdamHyper adam;
  adam.lr = 0.01;
  adam.weight_decay = 0.1;
  for (bool decoupled : {false, true}) {
    adam.decoupled = decoupled;
    auto pf = p0, ps = p0, mf = std::vector<T>(n), ms = mf, vf = mf, vs = mf;
    for (int t = 1; t <= 3; ++t) {
      const auto g = random_vector<T>(n, 10 + t);
      adam_step(pf.data(), mf.data(), vf.data(), g.data(), t, adam, n);
      adam_step_naive(ps.data(), ms.data(), vs.data(), g.data(), t, adam, n);
    }
    CHECK(bitwise_equal(pf, ps) && bitwise_equal(mf, ms) && bitwise_equal(vf, vs));
  }
  {
    auto pf = p0, ps = p0, vf = std::vector<T>(n), vs = vf;
    for (int t = 1; t <= 3; ++t) {
      const auto g = random_vector<T>(n, 20 + t);
      sgd_step(pf.data(), vf.data(), g.data(), sgd, n);
      sgd_step_naive(ps.data(), vs.data(), g.data(), sgd, n);
    }
    CHECK(bitwise_equal(pf, ps) && bitwise_equal(vf, vs));
  }
  {
    auto pf = p0, ps = p0, sf = std::vector<T>(n), ss = sf;
    for (int t = 1; t <= 3; ++t) {
      const auto g = random_vector<T>(n, 30 + t);
      rmsprop_step(pf.data(), sf.data(), g.data(), rms, n);
      rmsprop_step_naive(ps.data(), ss.data(), g.data(), rms, n);
    }
    CHECK(bitwise_equal(pf, ps) && bitwise_equal(sf, ss));
  }
  set_num_threads(before);
}

}  // namespace

TEST(optim_fast_matches_naive_bitwise) {
  for (int threads : {1, 3}) {
    fast_matches_naive<float>(threads);
    fast_matches_naive<double>(threads);
  }
}

TEST(adam_single_step_by_hand) {
  // t = 1, β1 = 0.9, β2 = 0.999: m = 0.1 g, v = 0.001 g², m̂ = g, v̂ = g²,
  // so p = 1 − lr·g/(|g| + eps). With g = 0.5, lr = 0.1, eps = 1e-8:
  // p = 1 − 0.1·0.5/0.50000001 = 0.900000001999999996...
  double p = 1.0, m = 0.0, v = 0.0;
  const double g = 0.5;
  AdamHyper h;
  h.lr = 0.1;
  adam_step(&p, &m, &v, &g, 1, h, 1);
  CHECK_CLOSE(m, 0.05, 1e-15);
  CHECK_CLOSE(v, 0.00025, 1e-15);
  CHECK_CLOSE(p, 0.900000002, 1e-15);
  // A second step with the same gradient: m = 0.095, v = 0.00049975,
  // m̂ = 0.095/0.19 = 0.5, v̂ = 0.00049975/0.001999 = 0.25 → the same step again.
  adam_step(&p, &m, &v, &g, 2, h, 1);
  CHECK_CLOSE(m, 0.095, 1e-15);
  CHECK_CLOSE(v, 0.00049975, 1e-15);
  CHECK_CLOSE(p, 0.800000004, 1e-14);
}

TEST(adamw_shrinks_then_steps) {
  // p = 2·(1 − 0.1·0.5) = 1.9 before the Adam step; zero gradient → no step.
  float p = 2.0f, m = 0.0f, v = 0.0f;
  const float g = 0.0f;
  AdamHyper h;
  h.lr = 0.1;
  h.weight_decay = 0.5;
  h.decoupled = true;
  adam_step(&p, &m, &v, &g, 1, h, 1);
  CHECK(p == 1.9f);
  CHECK(m == 0.0f && v == 0.0f);
}

TEST(sgd_momentum_by_hand) {
  // v = 0.9·0 + 1·2 = 2, p = 1 − 0.1·2 = 0.8; then v = 0.9·2 + 2 = 3.8, p = 0.8 − 0.38.
  double p = 1.0, v = 0.0;
  const double g = 2.0;
  SGDHyper h;
  h.lr = 0.1;
  h.momentum = 0.9;
  sgd_step(&p, &v, &g, h, 1);
  CHECK_CLOSE(v, 2.0, 1e-15);
  CHECK_CLOSE(p, 0.8, 1e-15);
  sgd_step(&p, &v, &g, h, 1);
  CHECK_CLOSE(v, 3.8, 1e-15);
  CHECK_CLOSE(p, 0.42, 1e-15);
  // Plain SGD needs no velocity buffer.
  double q = 1.0;
  SGDHyper plain;
  plain.lr = 0.25;
  sgd_step<double>(&q, nullptr, &g, plain, 1);
  CHECK_CLOSE(q, 0.5, 1e-15);
}

TEST(optim_validate_rejects_bad_hyper_parameters) {
  SGDHyper s;
  s.nesterov = true;  // momentum 0
  CHECK_THROWS(validate(s, "SGD"), ValueError);
  s.momentum = 0.9;
  validate(s, "SGD");  // fine now
  s.lr = std::nan("");
  CHECK_THROWS(validate(s, "SGD"), ValueError);
  RMSpropHyper r;
  r.eps = 0.0;
  CHECK_THROWS(validate(r, "RMSprop"), ValueError);
  AdamHyper a;
  CHECK_THROWS(validate(a, 0, "Adam"), ValueError);
  a.beta2 = 1.0;
  CHECK_THROWS(validate(a, 1, "Adam"), ValueError);
  a.beta2 = 0.999;
  validate(a, 1, "Adam");
}

namespace {

// One bad value anywhere (first, last, either side of a chunk boundary, in a
// large arena split across threads) is found by the fast scan as by the oracle.
template <typename T>
void all_finite_agrees_with_naive(int threads) {
  const int before = get_num_threads();
  set_num_threads(threads);
  const int64_t n = 100003;
  std::vector<T> g = random_vector<T>(static_cast<size_t>(n), 17, 1e3);
  CHECK(all_finite(g.data(), n) && all_finite_naive(g.data(), n));
  const T bad[] = {std::numeric_limits<T>::quiet_NaN(), std::numeric_limits<T>::infinity(),
                   -std::numeric_limits<T>::infinity()};
  for (T v : bad)
    for (int64_t at : {int64_t(0), n / 2 - 1, n / 2, n - 1}) {
      const T keep = g[at];
      g[at] = v;
      CHECK(!all_finite(g.data(), n) && !all_finite_naive(g.data(), n));
      g[at] = keep;
    }
  g[7] = std::numeric_limits<T>::max();  // the largest finite value is finite
  CHECK(all_finite(g.data(), n) && all_finite_naive(g.data(), n));
  CHECK(all_finite<T>(nullptr, 0));
  set_num_threads(before);
}

}  // namespace

TEST(all_finite_finds_any_nan_or_inf) {
  for (int threads : {1, 3}) {
    all_finite_agrees_with_naive<float>(threads);
    all_finite_agrees_with_naive<double>(threads);
  }
}

// Gradient clipping fused into each update: fast against naive (bit for bit,
// the same per-element operations), and the clamp and scale by hand; the norm
// helpers against their definitions.
TEST(optim_clipped_updates_match_naive_and_the_definition) {
  const int before = get_num_threads();
  set_num_threads(2);
  const size_t n = 70001;
  const auto p0 = random_vector<double>(n, 3);
  const auto g = random_vector<double>(n, 4, 3.0);
  GradientTransform clip;
  clip.scale = 0.5;
  clip.value = 0.75;
  SGDHyper sgd;
  sgd.lr = 1.0;
  auto pf = p0, ps = p0;
  sgd_step<double>(pf.data(), nullptr, g.data(), sgd, n, clip);
  sgd_step_naive<double>(ps.data(), nullptr, g.data(), sgd, n, clip);
  CHECK(bitwise_equal(pf, ps));
  for (size_t i = 0; i < n; ++i) CHECK(pf[i] == p0[i] - std::fmin(std::fmax(0.5 * g[i], -0.75), 0.75));
  RMSpropHyper rms;
  AdamHyper adam;
  auto rf = p0, rs = p0, sf = std::vector<double>(n), ss = sf;
  rmsprop_step(rf.data(), sf.data(), g.data(), rms, n, clip);
  rmsprop_step_naive(rs.data(), ss.data(), g.data(), rms, n, clip);
  CHECK(bitwise_equal(rf, rs) && bitwise_equal(sf, ss));
  auto af = p0, as = p0, mf = std::vector<double>(n), ms = mf, vf = mf, vs = mf;
  adam_step(af.data(), mf.data(), vf.data(), g.data(), 1, adam, n, clip);
  adam_step_naive(as.data(), ms.data(), vs.data(), g.data(), 1, adam, n, clip);
  CHECK(bitwise_equal(af, as) && bitwise_equal(mf, ms) && bitwise_equal(vf, vs));
  double want = 0;
  for (double x : g) want += x * x;
  CHECK_CLOSE(sum_of_squares(g.data(), static_cast<int64_t>(n)), want, 1e-12);
  CHECK(sum_of_squares_naive(g.data(), static_cast<int64_t>(n)) == want);
  CHECK(clip_scale(4.0, 2.0) == 0.5 && clip_scale(1.0, 2.0) == 1.0 && clip_scale(9.0, 0.0) == 1.0);
  ClipSettings both;
  both.clipnorm = both.global_clipnorm = 1.0;
  CHECK_THROWS(validate(both, "test"), ValueError);
  ClipSettings negative;
  negative.clipvalue = -1.0;
  CHECK_THROWS(validate(negative, "test"), ValueError);
  set_num_threads(before);
}
