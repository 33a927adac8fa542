// Layer norm and scaled dot-product attention kernels: fast vs naive (with a
// mask, causal, a fully masked query), parameter-gradient accumulation, hand
// values, and validation.
#include <cmath>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/attention.hpp"
#include "corenn/kernels/layer_norm.hpp"

using namespace corenn;
using corenn_test::random_vector;

namespace {

void check_all_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  CHECK(a.size() == b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) CHECK_CLOSE(a[i], b[i], tol);
}

}  // namespace

TEST(layer_norm_fast_matches_naive_and_accumulates) {
  const int64_t M = 1500, D = 40;  // enough rows for several thread chunks
  auto x = random_vector<double>(M * D, 1, 3.0), dy = random_vector<double>(M * D, 2);
  auto gamma = random_vector<double>(D, 3), beta = random_vector<double>(D, 4);
  std::vector<double> y[2], mean[2], invstd[2], dx[2], dg[2], db[2];
  for (int naive = 0; naive < 2; ++naive) {
    y[naive].assign(M * D, 0), mean[naive].assign(M, 0), invstd[naive].assign(M, 0), dx[naive].assign(M * D, 0);
    dg[naive].assign(D, 0.5), db[naive].assign(D, -0.25);  // the kernels add to these
    (naive ? layer_norm_forward_naive<double> : layer_norm_forward<double>)(
        y[naive].data(), mean[naive].data(), invstd[naive].data(), x.data(), gamma.data(), beta.data(), 1e-5, M, D);
    (naive ? layer_norm_backward_naive<double> : layer_norm_backward<double>)(
        dx[naive].data(), dg[naive].data(), db[naive].data(), dy.data(), x.data(), mean[naive].data(),
        invstd[naive].data(), gamma.data(), M, D);
  }
  check_all_close(y[0], y[1], 1e-12);
  check_all_close(mean[0], mean[1], 1e-12);
  check_all_close(invstd[0], invstd[1], 1e-12);
  check_all_close(dx[0], dx[1], 1e-12);
  check_all_close(dg[0], dg[1], 1e-12);
  check_all_close(db[0], db[1], 1e-12);
  double sum_dy = 0.0;
  for (int64_t r = 0; r < M; ++r) sum_dy += dy[r * D];
  CHECK_CLOSE(db[0][0], sum_dy - 0.25, 1e-12);
}

TEST(layer_norm_hand_values) {
  const double x[2] = {1.0, 3.0}, eps = 1e-5;
  double y[2], mean, invstd;
  layer_norm_forward<double>(y, &mean, &invstd, x, nullptr, nullptr, eps, 1, 2);
  CHECK_CLOSE(mean, 2.0, 1e-15);
  CHECK_CLOSE(invstd, 1.0 / std::sqrt(1.0 + eps), 1e-15);
  CHECK_CLOSE(y[0], -1.0 / std::sqrt(1.0 + eps), 1e-15);
  CHECK_THROWS(validate_layer_norm(0.0, "op"), ValueError);
  CHECK_THROWS(validate_layer_norm(std::nan(""), "op"), ValueError);
}

TEST(attention_fast_matches_naive) {
  AttentionDims d;
  d.batch = 3, d.q_len = 7, d.k_len = 5, d.depth = 4, d.v_depth = 6;
  const int64_t B = d.batch, Tq = d.q_len, Tk = d.k_len;
  auto q = random_vector<double>(B * Tq * 4, 1), k = random_vector<double>(B * Tk * 4, 2);
  auto v = random_vector<double>(B * Tk * 6, 3), dout = random_vector<double>(B * Tq * 6, 4);
  auto noise = random_vector<double>(B * Tq * Tk, 5);
  bool mask[3 * 7 * 5];
  for (int64_t i = 0; i < B * Tq * Tk; ++i) mask[i] = noise[i] > -0.5;
  for (int64_t j = 0; j < Tk; ++j) mask[(1 * Tq + 2) * Tk + j] = false;  // a query with no key
  std::vector<uint8_t> keep(B * Tq * Tk);  // dropout on the weights: about a third dropped
  for (int64_t i = 0; i < B * Tq * Tk; ++i) keep[i] = noise[(i * 7) % (B * Tq * Tk)] > -0.4;
  for (int variant = 0; variant < 4; ++variant) {
    const bool causal = variant & 1;
    const AttentionDropout drop = variant & 2 ? AttentionDropout{keep.data(), 0.3} : AttentionDropout{};
    std::vector<double> o[2], p[2], dq[2], dk[2], dv[2], dropped(B * Tq * Tk);
    for (int naive = 0; naive < 2; ++naive) {
      o[naive].assign(B * Tq * 6, 0), p[naive].assign(B * Tq * Tk, 0);
      dq[naive].assign(q.size(), 0), dk[naive].assign(k.size(), 0), dv[naive].assign(v.size(), 0);
      (naive ? attention_forward_naive<double> : attention_forward<double>)(
          o[naive].data(), p[naive].data(), q.data(), k.data(), v.data(), mask, B, causal, 0.5, d, drop,
          dropped.data());
      (naive ? attention_backward_naive<double> : attention_backward<double>)(
          dq[naive].data(), dk[naive].data(), dv[naive].data(), dout.data(), q.data(), k.data(), v.data(),
          p[naive].data(), 0.5, d, drop);
    }
    check_all_close(o[0], o[1], 1e-12);
    check_all_close(p[0], p[1], 1e-12);
    check_all_close(dq[0], dq[1], 1e-12);
    check_all_close(dk[0], dk[1], 1e-12);
    check_all_close(dv[0], dv[1], 1e-12);
    for (int64_t c = 0; c < 6; ++c) CHECK(o[0][(1 * Tq + 2) * 6 + c] == 0.0);
    for (int64_t c = 0; c < 4; ++c) CHECK(dq[0][(1 * Tq + 2) * 4 + c] == 0.0);
  }
}

TEST(attention_validation) {
  validate_attention_dropout(0.0, "op", "rate");
  validate_attention_dropout(0.99, "op", "rate");
  CHECK_THROWS(validate_attention_dropout(1.0, "op", "rate"), ValueError);
  CHECK_THROWS(validate_attention_dropout(-0.1, "op", "rate"), ValueError);
  CHECK_THROWS(validate_attention_dropout(std::nan(""), "op", "rate"), ValueError);
  CHECK_THROWS(attention_dims({2, 3, 4}, {2, 5, 4}, {2, 6, 4}, "op"), ShapeError);  // key/value lengths
  CHECK_THROWS(attention_dims({2, 3, 4}, {2, 5, 3}, {2, 5, 4}, "op"), ShapeError);  // depths
  CHECK_THROWS(attention_dims({2, 3}, {2, 5, 4}, {2, 5, 4}, "op"), ShapeError);     // not 3-D
  const AttentionDims d = attention_dims({2, 3, 4}, {2, 5, 4}, {2, 5, 7}, "op");
  CHECK(d.batch == 2 && d.q_len == 3 && d.k_len == 5 && d.depth == 4 && d.v_depth == 7);
  CHECK(attention_mask_batch(d, {1, 3, 5}, "op") == 1);
  CHECK_THROWS(attention_mask_batch(d, {3, 3, 5}, "op"), ShapeError);
  CHECK_THROWS(validate_attention_scale(INFINITY, "op"), ValueError);
}

TEST(additive_scores_fast_matches_naive_and_accumulates) {
  const AttentionDims d = additive_scores_dims({40, 3, 5}, {40, 6, 5}, {5}, "op");
  const int64_t B = 40, Tq = 3, Tk = 6, U = 5;  // enough batch elements for several chunks
  auto qp = random_vector<double>(B * Tq * U, 1), kp = random_vector<double>(B * Tk * U, 2);
  auto w = random_vector<double>(U, 3), ds = random_vector<double>(B * Tq * Tk, 4);
  std::vector<double> s[2], dq[2], dk[2], dw[2];
  for (int naive = 0; naive < 2; ++naive) {
    s[naive].assign(B * Tq * Tk, 0), dq[naive].assign(qp.size(), 0), dk[naive].assign(kp.size(), 0);
    dw[naive].assign(U, 0.5);  // the kernels add to dw
    (naive ? additive_scores_forward_naive<double> : additive_scores_forward<double>)(
        s[naive].data(), qp.data(), kp.data(), w.data(), d);
    (naive ? additive_scores_backward_naive<double> : additive_scores_backward<double>)(
        dq[naive].data(), dk[naive].data(), dw[naive].data(), ds.data(), qp.data(), kp.data(), w.data(), d);
  }
  check_all_close(s[0], s[1], 1e-12);
  check_all_close(dq[0], dq[1], 1e-12);
  check_all_close(dk[0], dk[1], 1e-12);
  check_all_close(dw[0], dw[1], 1e-12);
  double first = 0.0;
  for (int64_t u = 0; u < U; ++u) first += w[u] * std::tanh(qp[u] + kp[u]);
  CHECK_CLOSE(s[0][0], first, 1e-14);
  CHECK_THROWS(additive_scores_dims({40, 3, 5}, {40, 6, 4}, {5}, "op"), ShapeError);
  CHECK_THROWS(additive_scores_dims({40, 3, 5}, {40, 6, 5}, {4}, "op"), ShapeError);
}
