#include "backend/gemm.hpp"

#include <algorithm>
#include <climits>
#include <string>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

#if defined(CORENN_BLAS_SCIPY_OPENBLAS)
// scipy-openblas32 declares prefixed symbols; there is no unprefixed alias.
#include <cblas.h>
#define CORENN_SGEMM scipy_cblas_sgemm
#define CORENN_DGEMM scipy_cblas_dgemm
#define CORENN_SGEMV scipy_cblas_sgemv
#define CORENN_DGEMV scipy_cblas_dgemv
#define CORENN_BLAS_THREADS scipy_openblas_set_num_threads
#define CORENN_BLAS_GET_THREADS scipy_openblas_get_num_threads
#elif defined(CORENN_BLAS_SYSTEM)
#include <cblas.h>
#define CORENN_SGEMM cblas_sgemm
#define CORENN_DGEMM cblas_dgemm
#define CORENN_SGEMV cblas_sgemv
#define CORENN_DGEMV cblas_dgemv
// OpenBLAS's cblas.h (through openblas_config.h) names its version; other
// CBLAS libraries (MKL, BLIS) keep their own thread settings: see docs/cpp.md.
#if defined(OPENBLAS_VERSION)
#define CORENN_BLAS_THREADS openblas_set_num_threads
#define CORENN_BLAS_GET_THREADS openblas_get_num_threads
#endif
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

#if defined(CORENN_SGEMM)
// A product with one row or one column of C is a matrix-vector product.
// OpenBLAS's gemm would still pack the whole matrix operand for it (5x slower
// than gemv for a batch-1 dense layer), so such calls go to gemv:
//   M == 1:  C(1, N) = a · op(B)  is  op(B)ᵀ · a   with a = row 0 of op(A)
//   N == 1:  C(M, 1) = op(A) · b                   with b = column 0 of op(B)
template <typename T, typename Gemv>
static bool forward_to_gemv(Gemv gemv, Trans ta, Trans tb, int64_t M, int64_t N, int64_t K,
                            T alpha, const T* A, int64_t lda, const T* B, int64_t ldb, T beta,
                            T* C, int64_t ldc) {
  if (M == 1) {
    const int inc_a = ta == Trans::no ? 1 : blas_int(lda, "lda");
    // op(B)ᵀ as stored: tb == yes means B is (N, K), so op(B)ᵀ = B, no transpose.
    gemv(CblasRowMajor, tb == Trans::yes ? CblasNoTrans : CblasTrans,
         blas_int(tb == Trans::yes ? N : K, "N"), blas_int(tb == Trans::yes ? K : N, "K"), alpha,
         B, blas_int(ldb, "ldb"), A, inc_a, beta, C, 1);
    return true;
  }
  if (N == 1) {
    const int inc_b = tb == Trans::no ? blas_int(ldb, "ldb") : 1;
    gemv(CblasRowMajor, cblas_trans(ta), blas_int(ta == Trans::no ? M : K, "M"),
         blas_int(ta == Trans::no ? K : M, "K"), alpha, A, blas_int(lda, "lda"), B, inc_b, beta,
         C, blas_int(ldc, "ldc"));
    return true;
  }
  return false;
}
#endif

// One BLAS call on a block of C, in the calling thread.
static void blas_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, float alpha,
                      const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                      int64_t ldc) {
#if defined(CORENN_SGEMM)
  if (K > 0 && forward_to_gemv<float>(CORENN_SGEMV, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
    return;
  CORENN_SGEMM(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), blas_int(M, "M"),
               blas_int(N, "N"), blas_int(K, "K"), alpha, A, blas_int(lda, "lda"), B,
               blas_int(ldb, "ldb"), beta, C, blas_int(ldc, "ldc"));
#else
  gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

static void blas_gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, double alpha,
                      const double* A, int64_t lda, const double* B, int64_t ldb, double beta,
                      double* C, int64_t ldc) {
#if defined(CORENN_DGEMM)
  if (K > 0 && forward_to_gemv<double>(CORENN_DGEMV, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc))
    return;
  CORENN_DGEMM(CblasRowMajor, cblas_trans(ta), cblas_trans(tb), blas_int(M, "M"),
               blas_int(N, "N"), blas_int(K, "K"), alpha, A, blas_int(lda, "lda"), B,
               blas_int(ldb, "ldb"), beta, C, blas_int(ldc, "ldc"));
#else
  gemm_naive(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

// corenn has one thread pool, OpenMP's. BLAS runs single-threaded (set once in
// runtime.cpp) on panels of C split across the OpenMP threads: OpenBLAS's own
// pthread pool would otherwise spin against libgomp's idle workers for the
// same cores, which on a 2-core machine made a training step 25x slower.
// The larger of M and N is split, so each thread gets a wide panel; below
// ~2^20 multiply-adds (tens of microseconds on one core) a fork/join costs
// more than it saves, and far more when other processes hold the cores.
constexpr int64_t kSerialGemmWork = int64_t(1) << 20;
constexpr int64_t kMinPanel = 16;

template <typename T>
void gemm(Trans ta, Trans tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (!in_parallel_region()) blas_keep_single_threaded();
  // A one-row or one-column product (gemv) is bound by reading the matrix, not
  // by arithmetic: two threads pull from memory faster than one from far
  // smaller sizes on.
  const int64_t serial_below = (M == 1 || N == 1) ? kSerialGemmWork / 8 : kSerialGemmWork;
  if (M * N * std::max<int64_t>(K, 1) < serial_below) {
    blas_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M >= N) {
    parallel_for(0, M, kMinPanel, [&](int64_t i0, int64_t i1, int) {
      const T* A_rows = ta == Trans::no ? A + i0 * lda : A + i0;
      blas_gemm(ta, tb, i1 - i0, N, K, alpha, A_rows, lda, B, ldb, beta, C + i0 * ldc, ldc);
    });
  } else {
    parallel_for(0, N, kMinPanel, [&](int64_t j0, int64_t j1, int) {
      const T* B_cols = tb == Trans::no ? B + j0 : B + j0 * ldb;
      blas_gemm(ta, tb, M, j1 - j0, K, alpha, A, lda, B_cols, ldb, beta, C + j0, ldc);
    });
  }
}

template void gemm<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);
template void gemm<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*,
                           int64_t, const double*, int64_t, double, double*, int64_t);

template void gemm_naive<float>(Trans, Trans, int64_t, int64_t, int64_t, float, const float*,
                                int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_naive<double>(Trans, Trans, int64_t, int64_t, int64_t, double, const double*,
                                 int64_t, const double*, int64_t, double, double*, int64_t);

void blas_set_num_threads(int n) {
#if defined(CORENN_BLAS_THREADS)
  CORENN_BLAS_THREADS(n);
#else
  (void)n;  // a non-OpenBLAS system BLAS keeps its own setting (MKL_NUM_THREADS, BLIS_NUM_THREADS)
#endif
}

// The OpenBLAS corenn calls is a shared library that other code in the
// process can see: threadpoolctl's threadpool_limits(k, user_api="blas") (used
// by scikit-learn) finds it as an OpenBLAS and sets k threads, which would
// start OpenBLAS's pthread pool under corenn's OpenMP panels (oversubscription).
// Reading the count is one load, so corenn checks before its BLAS work (each
// model step, each gemm outside a parallel region) and restores one thread.
void blas_keep_single_threaded() {
#if defined(CORENN_BLAS_GET_THREADS)
  if (CORENN_BLAS_GET_THREADS() != 1) CORENN_BLAS_THREADS(1);
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
