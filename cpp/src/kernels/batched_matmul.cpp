// Batched matrix product (corenn/kernels/batched_matmul.hpp). The fast path
// runs one GEMM per example through the BLAS door, examples split across
// threads (the GEMMs inside a parallel region run single-threaded); the naive
// sibling is the plain triple loop of the definition.
#include "corenn/kernels/batched_matmul.hpp"

#include "backend/gemm.hpp"
#include "backend/parallel.hpp"

namespace corenn {

using detail::gemm;
using detail::Trans;

namespace {

Trans trans(bool t) { return t ? Trans::yes : Trans::no; }

// Leading dimensions of the stored operands.
int64_t lda_of(const BatchedMatmulDims& d) { return d.trans_a ? d.m : d.k; }
int64_t ldb_of(const BatchedMatmulDims& d) { return d.trans_b ? d.k : d.n; }

// Examples per thread chunk: enough multiply-adds to pay for a thread.
int64_t batch_grain(const BatchedMatmulDims& d) { return detail::grain_for(d.m * d.n * d.k); }

}  // namespace

template <typename T>
void batched_matmul_forward(T* c, const T* a, const T* b, const BatchedMatmulDims& d) {
  // c: (batch, M, N); a: (batch, M, K) or (batch, K, M); b: (batch, K, N) or (batch, N, K)
  const int64_t M = d.m, N = d.n, K = d.k, lda = lda_of(d), ldb = ldb_of(d);
  detail::parallel_for(0, d.batch, batch_grain(d), [=](int64_t lo, int64_t hi, int) {
    for (int64_t e = lo; e < hi; ++e)
      gemm(trans(d.trans_a), trans(d.trans_b), M, N, K, T(1), a + e * M * K, lda, b + e * K * N, ldb, T(0),
           c + e * M * N, N);
  });
}

template <typename T>
void batched_matmul_forward_naive(T* c, const T* a, const T* b, const BatchedMatmulDims& d) {
  // c: (batch, M, N); a: (batch, M, K) or (batch, K, M); b: (batch, K, N) or (batch, N, K)
  const int64_t M = d.m, N = d.n, K = d.k;
  for (int64_t e = 0; e < d.batch; ++e) {
    const T* ae = a + e * M * K;
    const T* be = b + e * K * N;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        T sum = 0;
        for (int64_t p = 0; p < K; ++p)
          sum += (d.trans_a ? ae[p * M + i] : ae[i * K + p]) * (d.trans_b ? be[j * K + p] : be[p * N + j]);
        c[(e * M + i) * N + j] = sum;
      }
  }
}

template <typename T>
void batched_matmul_backward(T* da, T* db, const T* dc, const T* a, const T* b, const BatchedMatmulDims& d,
                             bool accumulate_a, bool accumulate_b) {
  // da, a: (batch, M, K) or (batch, K, M); db, b: (batch, K, N) or (batch, N, K); dc: (batch, M, N)
  const int64_t M = d.m, N = d.n, K = d.k, lda = lda_of(d), ldb = ldb_of(d);
  const T beta_a = accumulate_a ? T(1) : T(0), beta_b = accumulate_b ? T(1) : T(0);
  detail::parallel_for(0, d.batch, batch_grain(d), [=](int64_t lo, int64_t hi, int) {
    for (int64_t e = lo; e < hi; ++e) {
      const T* ae = a + e * M * K;
      const T* be = b + e * K * N;
      const T* dce = dc + e * M * N;
      if (da && !d.trans_a)  // dA (M, K) = dC · op(B)ᵀ
        gemm(Trans::no, trans(!d.trans_b), M, K, N, T(1), dce, N, be, ldb, beta_a, da + e * M * K, K);
      else if (da)  // dAᵀ (K, M) = op(B) · dCᵀ
        gemm(trans(d.trans_b), Trans::yes, K, M, N, T(1), be, ldb, dce, N, beta_a, da + e * M * K, M);
      if (db && !d.trans_b)  // dB (K, N) = op(A)ᵀ · dC
        gemm(trans(!d.trans_a), Trans::no, K, N, M, T(1), ae, lda, dce, N, beta_b, db + e * K * N, N);
      else if (db)  // dBᵀ (N, K) = dCᵀ · op(A)
        gemm(Trans::yes, trans(d.trans_a), N, K, M, T(1), dce, N, ae, lda, beta_b, db + e * K * N, K);
    }
  });
}

template <typename T>
void batched_matmul_backward_naive(T* da, T* db, const T* dc, const T* a, const T* b,
                                   const BatchedMatmulDims& d, bool accumulate_a, bool accumulate_b) {
  // da, a: (batch, M, K) or (batch, K, M); db, b: (batch, K, N) or (batch, N, K); dc: (batch, M, N)
  const int64_t M = d.m, N = d.n, K = d.k;
  for (int64_t e = 0; e < d.batch; ++e) {
    const T* ae = a + e * M * K;
    const T* be = b + e * K * N;
    const T* dce = dc + e * M * N;
    for (int64_t i = 0; i < M && da; ++i)
      for (int64_t p = 0; p < K; ++p) {  // d op(A)[i, p] = Σ_j dC[i, j] op(B)[p, j]
        T sum = 0;
        for (int64_t j = 0; j < N; ++j) sum += dce[i * N + j] * (d.trans_b ? be[j * K + p] : be[p * N + j]);
        T& out = da[e * M * K + (d.trans_a ? p * M + i : i * K + p)];
        out = accumulate_a ? out + sum : sum;
      }
    for (int64_t p = 0; p < K && db; ++p)
      for (int64_t j = 0; j < N; ++j) {  // d op(B)[p, j] = Σ_i op(A)[i, p] dC[i, j]
        T sum = 0;
        for (int64_t i = 0; i < M; ++i) sum += (d.trans_a ? ae[p * M + i] : ae[i * K + p]) * dce[i * N + j];
        T& out = db[e * K * N + (d.trans_b ? j * K + p : p * N + j)];
        out = accumulate_b ? out + sum : sum;
      }
  }
}

#define CORENN_INSTANTIATE(T)                                                                              \
  template void batched_matmul_forward<T>(T*, const T*, const T*, const BatchedMatmulDims&);               \
  template void batched_matmul_forward_naive<T>(T*, const T*, const T*, const BatchedMatmulDims&);         \
  template void batched_matmul_backward<T>(T*, T*, const T*, const T*, const T*, const BatchedMatmulDims&, \
                                           bool, bool);                                                    \
  template void batched_matmul_backward_naive<T>(T*, T*, const T*, const T*, const T*,                     \
                                                 const BatchedMatmulDims&, bool, bool);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
