// The Dot layer's kernels against their naive siblings: batched matmul in
// every transpose combination (forward, and backward written and
// accumulated), L2 normalisation along a leading, middle and last axis with a
// zero fibre (clamped norm). Batches go past the parallel grain so the
// threaded split runs. The GEMM sums in BLAS's blocked order, the naive loop
// in order: float64 agrees to ~K·u; the normalisation sums in the same order
// in both: bit for bit.
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "corenn/kernels/batched_matmul.hpp"
#include "corenn/kernels/l2_normalize.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

void check_all_close(const std::vector<double>& a, const std::vector<double>& b) {
  CHECK(a.size() == b.size());
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) CHECK_CLOSE(a[i], b[i], 1e-12);
}

void check_matmul(int64_t batch, int64_t m, int64_t n, int64_t k, bool trans_a, bool trans_b) {
  BatchedMatmulDims d;
  d.batch = batch, d.m = m, d.n = n, d.k = k, d.trans_a = trans_a, d.trans_b = trans_b;
  const auto a = random_vector<double>(batch * m * k, 1);
  const auto b = random_vector<double>(batch * k * n, 2);
  std::vector<double> c(batch * m * n, 7.0), c_naive(batch * m * n, -7.0);
  batched_matmul_forward(c.data(), a.data(), b.data(), d);
  batched_matmul_forward_naive(c_naive.data(), a.data(), b.data(), d);
  check_all_close(c, c_naive);
  // One entry by hand: C[last, 0, n-1] = Σ_p op(A)[0, p] op(B)[p, n-1].
  if (batch && m && n) {
    const int64_t e = batch - 1;
    double want = 0;
    for (int64_t p = 0; p < k; ++p)
      want += a[e * m * k + (trans_a ? p * m : p)] * b[e * k * n + (trans_b ? (n - 1) * k + p : p * n + n - 1)];
    CHECK_CLOSE(c[e * m * n + n - 1], want, 1e-12);
  }
  const auto dc = random_vector<double>(batch * m * n, 3);
  for (bool accumulate : {false, true}) {
    const auto start_a = random_vector<double>(a.size(), 4), start_b = random_vector<double>(b.size(), 5);
    std::vector<double> da = start_a, db = start_b, da_naive = start_a, db_naive = start_b;
    batched_matmul_backward(da.data(), db.data(), dc.data(), a.data(), b.data(), d, accumulate, accumulate);
    batched_matmul_backward_naive(da_naive.data(), db_naive.data(), dc.data(), a.data(), b.data(), d, accumulate,
                                  accumulate);
    check_all_close(da, da_naive);
    check_all_close(db, db_naive);
    // nullptr skips an operand.
    std::vector<double> only_b = start_b;
    batched_matmul_backward<double>(nullptr, only_b.data(), dc.data(), a.data(), b.data(), d, false, accumulate);
    CHECK(bitwise_equal(only_b, db));
  }
}

template <typename T>
void check_normalize(int64_t outer, int64_t axis, int64_t inner) {
  auto x = random_vector<T>(outer * axis * inner, 6);
  for (int64_t a = 0; a < axis; ++a) x[a * inner] = T(0);  // fibre (0, 0) is zero
  std::vector<T> y(x.size()), y_naive(x.size()), norm(outer * inner), norm_naive(outer * inner);
  l2_normalize_forward(y.data(), norm.data(), x.data(), outer, axis, inner);
  l2_normalize_forward_naive(y_naive.data(), norm_naive.data(), x.data(), outer, axis, inner);
  CHECK(bitwise_equal(y, y_naive));
  CHECK(bitwise_equal(norm, norm_naive));
  CHECK(norm[0] == static_cast<T>(kL2NormalizeEps));
  const auto dy = random_vector<T>(x.size(), 7);
  for (bool accumulate : {false, true}) {
    const auto start = random_vector<T>(x.size(), 8);
    std::vector<T> dx = start, dx_naive = start;
    l2_normalize_backward(dx.data(), dy.data(), y.data(), norm.data(), outer, axis, inner, accumulate);
    l2_normalize_backward_naive(dx_naive.data(), dy.data(), y.data(), norm.data(), outer, axis, inner, accumulate);
    CHECK(bitwise_equal(dx, dx_naive));
  }
}

}  // namespace

TEST(batched_matmul_matches_naive_in_every_transpose) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check_matmul(3, 4, 5, 6, ta, tb);
      check_matmul(1, 1, 1, 7, ta, tb);       // a dot product (skip-gram)
      check_matmul(5000, 1, 1, 9, ta, tb);    // many small ones: the threaded split
      check_matmul(2, 3, 1, 1, ta, tb);       // K = 1
    }
}

TEST(l2_normalize_matches_naive) {
  check_normalize<float>(3, 5, 1);
  check_normalize<double>(2, 4, 3);
  check_normalize<double>(1, 7, 1);
  check_normalize<float>(9000, 8, 1);  // past the grain
}
