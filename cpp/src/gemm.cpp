#include "gemm.hpp"

#include <climits>
#include <string>

#include "corenn/error.hpp"
#include "parallel.hpp"

#if defined(CORENN_BLAS_SCIPY_OPENBLAS)
// scipy-openblas32 declares prefixed symbols; there is no unprefixed alias.
#include <cblas.h>
#define CORENN_SGEMM scipy_cblas_sgemm
#define CORENN_DGEMM scipy_cblas_dgemm
#define CORENN_BLAS_THREADS scipy_openblas_set_num_threads
#elif defined(CORENN_BLAS_SYSTEM)
#include <cblas.h>
#define CORENN_SGEMM cblas_sgemm
#define CORENN_DGEMM cblas_dgemm
#endif

namespace corenn {
namespace detail {

template <typename T>
void gemm_naive(Trans trans_a, Trans trans_b, int64_t M, int64_t N, int64_t K, T alpha,
                const T* A, int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      T acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        T a = trans_a == Trans::no ? A[i * lda + k] : A[k * lda + i];
        T b = trans_b == Trans::no ? B[k * ldb + j] : B[j * ldb + k];
        acc += a * b;
      }
      // beta == 0 must overwrite (C may hold garbage or NaN), as BLAS does.
      C[i * ldc + j] = beta == T(0) ? alpha * acc : alpha * acc + beta * C[i * ldc + j];
    }
  }
}

#if defined(CORENN_SGEMM)
static int blas_int(int64_t v, const char* what) {
  if (v > INT_MAX)
    throw ValueError(std::string("gemm: ") + what + " = " + std::to_string(v) +
                     " exceeds the 32-bit BLAS index range");
  return static_cast<int>(v);
}

static CBLAS_TRANSPOSE cblas_trans(Trans t) { return t == Trans::no ? CblasNoTrans : CblasTrans; }
#endif

template <>
void gemm<float>(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#if defined(CORENN_SGEMM)
  CORENN_SGEMM(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), blas_int(M, "M"),
               blas_int(N, "N"), blas_int(K, "K"), alpha, A, blas_int(lda, "lda"), B,
               blas_int(ldb, "ldb"), beta, C, blas_int(ldc, "ldc"));
#else
  gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

template <>
void gemm<double>(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha,
                  const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                  double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
#if defined(CORENN_DGEMM)
  CORENN_DGEMM(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), blas_int(M, "M"),
               blas_int(N, "N"), blas_int(K, "K"), alpha, A, blas_int(lda, "lda"), B,
               blas_int(ldb, "ldb"), beta, C, blas_int(ldc, "ldc"));
#else
  gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

template void gemm_naive<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*,
                                int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_naive<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*,
                                 int64_t, const double*, int64_t, double, double*, int64_t);

void blas_set_num_threads(int n) {
#if defined(CORENN_BLAS_THREADS)
  CORENN_BLAS_THREADS(n);
#else
  (void)n;  // a system BLAS keeps its own setting (OPENBLAS_NUM_THREADS, MKL_NUM_THREADS)
#endif
}

const char* blas_backend() {
#if defined(CORENN_BLAS_SCIPY_OPENBLAS)
  return "scipy_openblas";
#elif defined(CORENN_BLAS_SYSTEM)
  return "system";
#else
  return "none";
#endif
}

}  // namespace detail
}  // namespace corenn
