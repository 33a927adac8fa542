// Matrix multiply, the one door to BLAS (gemm.cpp is the only file that
// includes a CBLAS header). Row-major:
//   C(M, N) = alpha * op(A)(M, K) * op(B)(K, N) + beta * C
#pragma once

#include <cstdint>

namespace corenn {
namespace detail {

enum class Trans { no, yes };

template <typename T>
void gemm(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

// Plain triple loop: the oracle for gemm and the CORENN_BLAS=none fallback.
template <typename T>
void gemm_naive(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

void blas_set_num_threads(int n);
// Puts OpenBLAS back to one thread if another library raised it (see gemm.cpp).
void blas_keep_single_threaded();
// Which BLAS was compiled in: "scipy_openblas", "system" or "none".
const char* blas_backend();

}  // namespace detail
}  // namespace corenn
