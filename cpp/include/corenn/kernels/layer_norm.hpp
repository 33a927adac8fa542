// Layer normalisation (Ba, Kiros & Hinton 2016; PyTorch's nn.LayerNorm, Keras's
// LayerNormalization) over the last axis of x viewed as (M, D): M rows (every
// leading axis flattened), each normalised over its own D values.
//   μ = Σ x / D,  σ² = Σ (x − μ)² / D (biased),  invstd = 1 / √(σ² + eps),
//   x̂ = (x − μ)·invstd,  y = γ ⊙ x̂ + β     (γ, β of shape (D,), shared by rows)
// Backward (g = γ ⊙ dy, sums over a row's D values):
//   dx = invstd · (g − Σg / D − x̂ · Σ(g ⊙ x̂) / D)
//   dγ = Σ_rows dy ⊙ x̂,  dβ = Σ_rows dy
// gamma and beta may be nullptr (Keras's scale/center off): γ = 1, β = 0.
// Row statistics are formed in double whatever T is, the variance by two passes
// (never E[x²] − μ², which cancels when |μ| ≫ σ).
#pragma once

#include <cstdint>

namespace corenn {

// y: (M, D) written; mean, invstd: (M,) written (for backward); x: (M, D);
// gamma, beta: (D,) or nullptr. eps > 0 (validate_layer_norm).
template <typename T>
void layer_norm_forward(T* y, T* mean, T* invstd, const T* x, const T* gamma, const T* beta,
                        double eps, int64_t rows, int64_t dim);
template <typename T>
void layer_norm_forward_naive(T* y, T* mean, T* invstd, const T* x, const T* gamma,
                              const T* beta, double eps, int64_t rows, int64_t dim);

// dx: (M, D) written, or nullptr; dgamma, dbeta: (D,) accumulated (+=), or nullptr;
// dy, x: (M, D); mean, invstd: (M,) from the forward; gamma: (D,) or nullptr.
// The parameter gradients are summed per thread chunk and the partials added in
// chunk order: the same thread count gives bitwise the same result.
template <typename T>
void layer_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                         const T* invstd, const T* gamma, int64_t rows, int64_t dim);
template <typename T>
void layer_norm_backward_naive(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x,
                               const T* mean, const T* invstd, const T* gamma, int64_t rows,
                               int64_t dim);

// ValueError naming `op` unless eps is finite and > 0.
void validate_layer_norm(double eps, const char* op);

}  // namespace corenn
