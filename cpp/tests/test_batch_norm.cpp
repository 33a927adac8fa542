// Batch norm kernels: fast vs naive on both routes ((N, C) rows and (N, C, S)
// planes, with and without gamma/beta, with and without tracked running
// statistics), parameter-gradient accumulation, null outputs, the M = 1 rule,
// bitwise independence of the thread count, and validation.
#include <cmath>
#include <string>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/batch_norm.hpp"
#include "backend/parallel.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

// Everything a forward and backward in one mode produce, for comparisons.
template <typename T>
struct Outputs {
  std::vector<T> y, mean, invstd, running_mean, running_var, dx, dgamma, dbeta;
};

template <typename T>
Outputs<T> run(bool fast, bool training, bool affine, bool track, int64_t N, int64_t C, int64_t S,
               unsigned seed) {
  const size_t n = static_cast<size_t>(N * C * S), c = static_cast<size_t>(C);
  auto x = random_vector<T>(n, seed, 3.0), dy = random_vector<T>(n, seed + 1);
  for (auto& v : x) v += T(2);
  auto gamma = random_vector<T>(c, seed + 2), beta = random_vector<T>(c, seed + 3);
  Outputs<T> o;
  o.y.assign(n, T(0)), o.mean.assign(c, T(0)), o.invstd.assign(c, T(0)), o.dx.assign(n, T(0));
  o.running_mean = random_vector<T>(c, seed + 4);
  o.running_var.assign(c, T(1.5));
  // Non-zero starting gradients: the kernels must add to them.
  o.dgamma.assign(c, T(0.5)), o.dbeta.assign(c, T(-0.25));
  const T* g = affine ? gamma.data() : nullptr;
  const T* b = affine ? beta.data() : nullptr;
  T* rm = track ? o.running_mean.data() : nullptr;
  T* rv = track ? o.running_var.data() : nullptr;
  if (training) {
    (fast ? batch_norm_forward<T> : batch_norm_forward_naive<T>)(o.y.data(), o.mean.data(), o.invstd.data(), rm, rv,
                                                                 x.data(), g, b, 0.3, 1e-3, N, C, S);
    (fast ? batch_norm_backward<T> : batch_norm_backward_naive<T>)(o.dx.data(), o.dgamma.data(), o.dbeta.data(),
                                                                   dy.data(), x.data(), o.mean.data(),
                                                                   o.invstd.data(), g, N, C, S);
  } else {
    (fast ? batch_norm_inference_forward<T> : batch_norm_inference_forward_naive<T>)(
        o.y.data(), o.mean.data(), o.invstd.data(), x.data(), o.running_mean.data(), o.running_var.data(), g, b,
        1e-3, N, C, S);
    (fast ? batch_norm_inference_backward<T> : batch_norm_inference_backward_naive<T>)(
        o.dx.data(), o.dgamma.data(), o.dbeta.data(), dy.data(), x.data(), o.mean.data(), o.invstd.data(), g, N,
        C, S);
  }
  return o;
}

template <typename T>
void check_close(const std::vector<T>& a, const std::vector<T>& b, double tol) {
  CHECK(a.size() == b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) CHECK_CLOSE(a[i], b[i], tol);
}

template <typename T>
void check_fast_matches_naive(int64_t N, int64_t C, int64_t S, double tol, unsigned seed) {
  for (bool training : {true, false})
    for (bool affine : {true, false})
      for (bool track : {true, false}) {
        if (!training && !track) continue;  // inference always reads running statistics
        const auto fast = run<T>(true, training, affine, track, N, C, S, seed);
        const auto naive = run<T>(false, training, affine, track, N, C, S, seed);
        check_close(fast.y, naive.y, tol);
        check_close(fast.mean, naive.mean, tol);
        check_close(fast.invstd, naive.invstd, tol);
        check_close(fast.running_mean, naive.running_mean, tol);
        check_close(fast.running_var, naive.running_var, tol);
        check_close(fast.dx, naive.dx, tol);
        check_close(fast.dgamma, naive.dgamma, tol);
        check_close(fast.dbeta, naive.dbeta, tol);
      }
}

}  // namespace

TEST(batch_norm_fast_matches_naive) {
  // Rows route (S = 1) with one, two and a partial 64-channel block; planes
  // shorter and longer than the 8-lane sums, with tails.
  const int64_t shapes[][3] = {{5, 3, 1}, {9, 64, 1}, {4, 130, 1}, {3, 4, 2}, {2, 3, 8}, {4, 5, 21}, {1, 2, 100}};
  unsigned seed = 20;
  for (const auto& s : shapes) {
    check_fast_matches_naive<double>(s[0], s[1], s[2], 1e-12, ++seed);
    check_fast_matches_naive<float>(s[0], s[1], s[2], 2e-5, ++seed);
  }
}

TEST(batch_norm_hand_values) {
  // One channel, values 1 and 3: μ = 2, σ² = 1, unbiased 2; γ = 2, β = 0.5.
  const std::vector<double> x = {1.0, 3.0};
  const double gamma = 2.0, beta = 0.5, eps = 1e-3;
  double y[2], mean, invstd, rm = 0.0, rv = 1.0;
  batch_norm_forward(y, &mean, &invstd, &rm, &rv, x.data(), &gamma, &beta, 0.1, eps, 2, 1, 1);
  CHECK_CLOSE(mean, 2.0, 1e-15);
  CHECK_CLOSE(invstd, 1.0 / std::sqrt(1.0 + eps), 1e-15);
  CHECK_CLOSE(y[0], 0.5 - 2.0 / std::sqrt(1.0 + eps), 1e-15);
  CHECK_CLOSE(y[1], 0.5 + 2.0 / std::sqrt(1.0 + eps), 1e-15);
  CHECK_CLOSE(rm, 0.2, 1e-15);  // 0.9·0 + 0.1·2
  CHECK_CLOSE(rv, 1.1, 1e-15);  // 0.9·1 + 0.1·2
  // The same two values as one image of two pixels take the planes route.
  double y2[2], rm2 = 0.0, rv2 = 1.0;
  batch_norm_forward(y2, &mean, &invstd, &rm2, &rv2, x.data(), &gamma, &beta, 0.1, eps, 1, 1, 2);
  CHECK(y2[0] == y[0] && y2[1] == y[1] && rm2 == rm && rv2 == rv);
}

TEST(batch_norm_single_value_keeps_running_variance) {
  // M = 1: the mean moves, the variance (no unbiased estimate) stays.
  for (bool fast : {true, false}) {
    const float x[3] = {4.0f, -2.0f, 1.0f};
    float y[3], mean[3], invstd[3], rm[3] = {0, 0, 0}, rv[3] = {2, 2, 2};
    (fast ? batch_norm_forward<float> : batch_norm_forward_naive<float>)(y, mean, invstd, rm, rv, x, nullptr,
                                                                         nullptr, 0.5, 1e-5, 1, 3, 1);
    for (int c = 0; c < 3; ++c) {
      CHECK(rm[c] == 0.5f * x[c]);
      CHECK(rv[c] == 2.0f);
      CHECK(y[c] == 0.0f);  // x − μ = 0
    }
  }
}

TEST(batch_norm_backward_null_outputs) {
  // dx only, or parameter gradients only: each matches the full call.
  for (int64_t S : {1, 12}) {
    const int64_t N = 3, C = 5, n = N * C * S;
    auto x = random_vector<float>(n, 40), dy = random_vector<float>(n, 41), gamma = random_vector<float>(C, 42);
    std::vector<float> y(n), mean(C), invstd(C), dx(n), dg(C, 0.0f), db(C, 0.0f), dx2(n, 9.0f), dg2(C, 0.0f),
        db2(C, 0.0f);
    batch_norm_forward<float>(y.data(), mean.data(), invstd.data(), nullptr, nullptr, x.data(), gamma.data(),
                              nullptr, 0.1, 1e-5, N, C, S);
    for (bool training : {true, false}) {
      auto backward = training ? batch_norm_backward<float> : batch_norm_inference_backward<float>;
      std::fill(dg.begin(), dg.end(), 0.0f), std::fill(db.begin(), db.end(), 0.0f);
      std::fill(dg2.begin(), dg2.end(), 0.0f), std::fill(db2.begin(), db2.end(), 0.0f);
      backward(dx.data(), dg.data(), db.data(), dy.data(), x.data(), mean.data(), invstd.data(), gamma.data(), N,
               C, S);
      backward(dx2.data(), nullptr, nullptr, dy.data(), x.data(), mean.data(), invstd.data(), gamma.data(), N, C,
               S);
      CHECK(bitwise_equal(dx, dx2));
      backward(nullptr, dg2.data(), db2.data(), dy.data(), x.data(), mean.data(), invstd.data(), gamma.data(), N,
               C, S);
      CHECK(bitwise_equal(dg, dg2) && bitwise_equal(db, db2));
    }
  }
}

TEST(batch_norm_is_bitwise_independent_of_thread_count) {
  const int before = detail::omp_max_threads();
  for (const auto& shape : {std::vector<int64_t>{8, 64, 1024}, std::vector<int64_t>{512, 300, 1}}) {
    std::vector<Outputs<float>> runs;
    for (int threads : {1, 2}) {
      detail::omp_set_threads(threads);
      for (bool training : {true, false}) runs.push_back(run<float>(true, training, true, true, shape[0], shape[1], shape[2], 50));
    }
    for (int mode = 0; mode < 2; ++mode) {
      const auto& a = runs[mode];
      const auto& b = runs[mode + 2];
      CHECK(bitwise_equal(a.y, b.y) && bitwise_equal(a.mean, b.mean) && bitwise_equal(a.invstd, b.invstd));
      CHECK(bitwise_equal(a.running_mean, b.running_mean) && bitwise_equal(a.running_var, b.running_var));
      CHECK(bitwise_equal(a.dx, b.dx) && bitwise_equal(a.dgamma, b.dgamma) && bitwise_equal(a.dbeta, b.dbeta));
    }
  }
  detail::omp_set_threads(before);
}

TEST(batch_norm_validate) {
  validate_batch_norm(0.0, 1e-5, "op");
  validate_batch_norm(1.0, 1e-3, "op");
  CHECK_THROWS(validate_batch_norm(-0.1, 1e-5, "op"), ValueError);
  CHECK_THROWS(validate_batch_norm(1.1, 1e-5, "op"), ValueError);
  CHECK_THROWS(validate_batch_norm(std::nan(""), 1e-5, "op"), ValueError);
  CHECK_THROWS(validate_batch_norm(0.1, 0.0, "op"), ValueError);
  CHECK_THROWS(validate_batch_norm(0.1, INFINITY, "op"), ValueError);
  try {
    validate_batch_norm(0.1, -1.0, "batch_norm_forward");
    CHECK(false);
  } catch (const ValueError& e) {
    CHECK(std::string(e.what()) == "batch_norm_forward: eps must be finite and > 0, got -1");
  }
}
