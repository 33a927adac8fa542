#include <random>
#include <vector>

#include "check.hpp"
#include "corenn/kernels/dense.hpp"
#include "backend/gemm.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

TEST(gemm_matches_naive_for_every_transpose) {
  using detail::Trans;
  const int64_t M = 7, N = 5, K = 9;
  auto A = random_vector<double>(M * K, 1), B = random_vector<double>(K * N, 2);
  for (Trans ta : {Trans::no, Trans::yes})
    for (Trans tb : {Trans::no, Trans::yes}) {
      const int64_t lda = ta == Trans::no ? K : M, ldb = tb == Trans::no ? N : K;
      std::vector<double> fast(M * N, 1.0), slow(M * N, 1.0);
      detail::gemm<double>(ta, tb, M, N, K, 2.0, A.data(), lda, B.data(), ldb, 0.5, fast.data(), N);
      detail::gemm_naive<double>(ta, tb, M, N, K, 2.0, A.data(), lda, B.data(), ldb, 0.5, slow.data(), N);
      for (int64_t i = 0; i < M * N; ++i) CHECK_CLOSE(fast[i], slow[i], 1e-12);
    }
}

TEST(dense_fast_matches_naive) {
  const int64_t n = 6, in = 11, out = 4;
  auto x = random_vector<float>(n * in, 3), W = random_vector<float>(out * in, 4);
  auto b = random_vector<float>(out, 5), dy = random_vector<float>(n * out, 6);
  std::vector<float> y1(n * out), y2(n * out);
  dense_forward(y1.data(), x.data(), W.data(), b.data(), n, in, out);
  dense_forward_naive(y2.data(), x.data(), W.data(), b.data(), n, in, out);
  for (size_t i = 0; i < y1.size(); ++i) CHECK_CLOSE(y1[i], y2[i], 1e-5);
  std::vector<float> dx1(n * in), dx2(n * in), dW1(out * in), dW2(out * in), db1(out), db2(out);
  dense_backward(dx1.data(), dW1.data(), db1.data(), dy.data(), x.data(), W.data(), n, in, out);
  dense_backward_naive(dx2.data(), dW2.data(), db2.data(), dy.data(), x.data(), W.data(), n, in, out);
  for (size_t i = 0; i < dx1.size(); ++i) CHECK_CLOSE(dx1[i], dx2[i], 1e-5);
  for (size_t i = 0; i < dW1.size(); ++i) CHECK_CLOSE(dW1[i], dW2[i], 1e-5);
  for (size_t i = 0; i < db1.size(); ++i) CHECK_CLOSE(db1[i], db2[i], 1e-5);
}

TEST(dense_backward_accumulates_parameter_gradients) {
  const int64_t n = 3, in = 4, out = 2;
  auto x = random_vector<double>(n * in, 7), W = random_vector<double>(out * in, 8);
  auto dy = random_vector<double>(n * out, 9);
  std::vector<double> dx(n * in), dW(out * in), db(out);
  dense_backward(dx.data(), dW.data(), db.data(), dy.data(), x.data(), W.data(), n, in, out);
  auto dW_once = dW, db_once = db;
  dense_backward(dx.data(), dW.data(), db.data(), dy.data(), x.data(), W.data(), n, in, out);
  for (size_t i = 0; i < dW.size(); ++i) CHECK_CLOSE(dW[i], 2 * dW_once[i], 1e-12);
  for (size_t i = 0; i < db.size(); ++i) CHECK_CLOSE(db[i], 2 * db_once[i], 1e-12);
}
