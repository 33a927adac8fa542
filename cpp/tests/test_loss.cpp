#include <cmath>
#include <random>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/loss.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

}  // namespace

TEST(check_labels_rejects_out_of_range) {
  const int64_t ok[3] = {0, 9, 4}, high[3] = {0, 10, 4}, neg[3] = {0, 1, -1};
  check_labels(ok, 3, 10);
  CHECK_THROWS(check_labels(high, 3, 10), ValueError);
  CHECK_THROWS(check_labels(neg, 3, 10), ValueError);
}

// 300 x 257: above the grain, so the fast path may split across threads.
TEST(losses_fast_match_naive) {
  const int64_t n = 300, c = 257;
  auto z = random_vector<double>(n * c, 1, 20.0), t = random_vector<double>(n * c, 2);
  std::vector<int64_t> labels(n);
  std::vector<uint8_t> mask(n * c);
  for (int64_t i = 0; i < n; ++i) labels[i] = (i * 37) % c;
  for (int64_t k = 0; k < n * c; ++k) mask[k] = (k % 3) != 0;
  std::vector<double> g1(n * c), g2(n * c);

  double a = softmax_cross_entropy(g1.data(), z.data(), labels.data(), n, c);
  double b = softmax_cross_entropy_naive(g2.data(), z.data(), labels.data(), n, c);
  CHECK_CLOSE(a, b, 1e-12);
  for (size_t k = 0; k < g1.size(); ++k) CHECK_CLOSE(g1[k], g2[k], 1e-12);
  // Evaluation mode: no gradient, same loss.
  CHECK(softmax_cross_entropy<double>(nullptr, z.data(), labels.data(), n, c) == a);

  const uint8_t* masks[2] = {nullptr, mask.data()};
  for (const uint8_t* m : masks) {
    a = sigmoid_cross_entropy(g1.data(), z.data(), t.data(), m, n, c);
    b = sigmoid_cross_entropy_naive(g2.data(), z.data(), t.data(), m, n, c);
    CHECK_CLOSE(a, b, 1e-12);
    for (size_t k = 0; k < g1.size(); ++k) CHECK_CLOSE(g1[k], g2[k], 1e-12);
    CHECK(sigmoid_cross_entropy<double>(nullptr, z.data(), t.data(), m, n, c) == a);
  }

  a = mse(g1.data(), z.data(), t.data(), n * c);
  b = mse_naive(g2.data(), z.data(), t.data(), n * c);
  CHECK_CLOSE(a, b, 1e-12);
  for (size_t k = 0; k < g1.size(); ++k) CHECK_CLOSE(g1[k], g2[k], 1e-12);
  CHECK(mse<double>(nullptr, z.data(), t.data(), n * c) == a);
}

// Per-example weights (Keras's sample_weight). On the threaded shape: the fast
// kernels match the naive ones; all-ones weights give the unweighted bits; and
// the loss is Σ s_i ℓ_i / N, so a weight of 2 counts an example twice while N
// stays the batch size.
TEST(weighted_losses_match_naive_and_reduce_to_unweighted) {
  const int64_t n = 300, c = 257;
  auto z = random_vector<double>(n * c, 1, 20.0), t = random_vector<double>(n * c, 2);
  std::vector<int64_t> labels(n);
  std::vector<double> w(n), ones(n, 1.0);
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = (i * 37) % c;
    w[i] = i % 7 == 0 ? 0.0 : 0.25 * static_cast<double>(i % 5);
  }
  std::vector<double> g1(n * c), g2(n * c), g3(n * c);
  auto check_all = [&](auto&& fast, auto&& naive, auto&& unweighted) {
    const double a = fast(g1.data(), w.data()), b = naive(g2.data(), w.data());
    CHECK_CLOSE(a, b, 1e-12);
    for (size_t k = 0; k < g1.size(); ++k) CHECK_CLOSE(g1[k], g2[k], 1e-12);
    CHECK(fast(nullptr, w.data()) == a);
    CHECK(fast(g1.data(), ones.data()) == unweighted(g3.data()));
    CHECK(corenn_test::bitwise_equal(g1, g3));
    CHECK(naive(g1.data(), ones.data()) == naive(g3.data(), nullptr));
    CHECK(corenn_test::bitwise_equal(g1, g3));
  };
  check_all(
      [&](double* g, const double* s) {
        return softmax_cross_entropy(g, z.data(), labels.data(), n, c, s);
      },
      [&](double* g, const double* s) {
        return softmax_cross_entropy_naive(g, z.data(), labels.data(), n, c, s);
      },
      [&](double* g) { return softmax_cross_entropy(g, z.data(), labels.data(), n, c); });
  check_all(
      [&](double* g, const double* s) {
        return sigmoid_cross_entropy(g, z.data(), t.data(), nullptr, n, c, s);
      },
      [&](double* g, const double* s) {
        return sigmoid_cross_entropy_naive(g, z.data(), t.data(), nullptr, n, c, s);
      },
      [&](double* g) { return sigmoid_cross_entropy(g, z.data(), t.data(), nullptr, n, c); });
  check_all(
      [&](double* g, const double* s) { return mse(g, z.data(), t.data(), n * c, s, n); },
      [&](double* g, const double* s) { return mse_naive(g, z.data(), t.data(), n * c, s, n); },
      [&](double* g) { return mse(g, z.data(), t.data(), n * c); });

  // Weight 2 on row 0 of a 3-row batch = row 0 twice in a 4-row batch, times 4/3.
  const int64_t k = 5;
  auto z3 = random_vector<double>(3 * k, 4);
  std::vector<double> z4(z3.begin(), z3.begin() + k);
  z4.insert(z4.end(), z3.begin(), z3.end());
  const int64_t lab3[3] = {1, 4, 0}, lab4[4] = {1, 1, 4, 0};
  const double two[3] = {2.0, 1.0, 1.0};
  const double weighted = softmax_cross_entropy<double>(nullptr, z3.data(), lab3, 3, k, two);
  const double duplicated = softmax_cross_entropy<double>(nullptr, z4.data(), lab4, 4, k);
  CHECK_CLOSE(weighted * 3, duplicated * 4, 1e-14);
}

TEST(check_sample_weight_rejects_negative_and_non_finite) {
  const float ok[3] = {0.f, 1.f, 2.5f};
  check_sample_weight(ok, 3, "loss");
  const float neg[2] = {1.f, -0.5f}, nan[2] = {NAN, 1.f}, inf[2] = {1.f, INFINITY};
  CHECK_THROWS(check_sample_weight(neg, 2, "loss"), ValueError);
  CHECK_THROWS(check_sample_weight(nan, 2, "loss"), ValueError);
  CHECK_THROWS(check_sample_weight(inf, 2, "loss"), ValueError);
}

TEST(weight_penalty_accumulates_into_dw) {
  const int64_t n = 40000;  // above the grain
  auto w = random_vector<float>(n, 3);
  w[0] = 0.f;
  auto start = random_vector<float>(n, 4);  // a data-loss gradient already in the buffer
  for (bool naive : {false, true}) {
    auto fn = naive ? weight_penalty_naive<float> : weight_penalty<float>;
    std::vector<float> dw = start;
    const float l1 = 0.01f, l2 = 0.5f;
    const float loss = fn(dw.data(), w.data(), n, l1, l2);
    double abs_sum = 0, sq_sum = 0;
    for (float v : w) abs_sum += std::fabs(v), sq_sum += double(v) * v;
    CHECK_CLOSE(loss, l1 * abs_sum + l2 * sq_sum, 1e-6);
    for (int64_t k = 0; k < n; ++k) {
      const float sign = w[k] > 0 ? 1.f : (w[k] < 0 ? -1.f : 0.f);
      CHECK_CLOSE(dw[k], start[k] + l1 * sign + 2 * l2 * w[k], 1e-6);
    }
    CHECK(dw[0] == start[0]);  // sign(0) = 0 and 2·l2·0 = 0: an exact zero gets no push
    // A second call adds the same gradient again.
    std::vector<float> twice = dw;
    fn(twice.data(), w.data(), n, l1, l2);
    for (int64_t k = 0; k < n; ++k) CHECK_CLOSE(twice[k] - dw[k], dw[k] - start[k], 1e-5);
    // nullptr: loss only.
    CHECK(fn(nullptr, w.data(), n, l1, l2) == loss);
  }
}

TEST(masked_sigmoid_entries_contribute_nothing) {
  const double z[4] = {1.0, -2.0, 1e4, -1e4}, t[4] = {1.0, 0.0, -5.0, 7.0};
  const uint8_t mask[4] = {1, 1, 0, 0};
  double g[4];
  const double with_junk = sigmoid_cross_entropy(g, z, t, mask, 2, 2);
  const double only_present = sigmoid_cross_entropy<double>(nullptr, z, t, nullptr, 1, 2) / 2;
  CHECK_CLOSE(with_junk, only_present, 1e-15);
  CHECK(g[2] == 0.0 && g[3] == 0.0);
}
