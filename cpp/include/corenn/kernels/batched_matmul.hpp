// Batched matrix product: one product per example, the Dot layer's kernel
// (Keras's batch_dot; torch.bmm with transposed operands allowed):
//   C[b] = op(A[b]) · op(B[b]),   op(X) = X, or Xᵀ when the operand is stored transposed
// A[b] is (M, K), stored (K, M) when trans_a; B[b] is (K, N), stored (N, K)
// when trans_b; C[b] is (M, N). Backward, from dC:
//   d op(A) = dC · op(B)ᵀ,   d op(B) = op(A)ᵀ · dC
// each stored the way its operand is (transposed when it is).
#pragma once

#include <cstdint>

namespace corenn {

struct BatchedMatmulDims {
  int64_t batch = 0, m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
};

// c: (batch, M, N) written; a: (batch, M, K) or (batch, K, M); b: (batch, K, N) or (batch, N, K).
template <typename T>
void batched_matmul_forward(T* c, const T* a, const T* b, const BatchedMatmulDims& d);
template <typename T>
void batched_matmul_forward_naive(T* c, const T* a, const T* b, const BatchedMatmulDims& d);

// da (shaped as a), db (shaped as b): written, or added when accumulate_a /
// accumulate_b; nullptr skips one. dc: (batch, M, N); a, b: the forward's.
template <typename T>
void batched_matmul_backward(T* da, T* db, const T* dc, const T* a, const T* b, const BatchedMatmulDims& d,
                             bool accumulate_a, bool accumulate_b);
template <typename T>
void batched_matmul_backward_naive(T* da, T* db, const T* dc, const T* a, const T* b,
                                   const BatchedMatmulDims& d, bool accumulate_a, bool accumulate_b);

}  // namespace corenn
