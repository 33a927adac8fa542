// Batch normalisation over x of shape (N, C, S): S = H·W for images (N, C, H, W),
// S = 1 for features (N, C). Each channel c is normalised over its M = N·S values
// (PyTorch's semantics):
//   training   μ = mean, σ² = biased variance (÷ M) of the batch;
//              invstd = 1 / √(σ² + eps);  y = γ·(x − μ)·invstd + β;
//              running_mean = (1 − momentum)·running_mean + momentum·μ,
//              running_var  = (1 − momentum)·running_var  + momentum·σ²·M/(M − 1)
//              (momentum weighs the NEW statistic; the running variance is the
//              unbiased one). With M = 1 there is no unbiased variance: running_var
//              is left as it is (running_mean still moves).
//   inference  the same y with μ = running_mean, invstd = 1 / √(running_var + eps).
// Backward (x̂ = (x − μ)·invstd, sums over the channel's M values):
//   training   dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ·invstd/M · (M·dy − dβ − x̂·dγ)
//   inference  dβ = Σ dy,  dγ = Σ dy·x̂,  dx = γ·invstd·dy   (μ, invstd are constants)
// gamma and beta may be nullptr (Keras's scale/center off): γ = 1, β = 0.
// Per-channel statistics are formed in double whatever T is.
#pragma once

#include <cstdint>

namespace corenn {

// Training forward.
// y: (N, C, S) written; save_mean, save_invstd: (C,) written (μ and invstd, for backward);
// running_mean, running_var: (C,) updated in place, or both nullptr (not tracked);
// x: (N, C, S); gamma, beta: (C,) or nullptr. momentum in [0, 1], eps > 0.
template <typename T>
void batch_norm_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                        const T* x, const T* gamma, const T* beta, double momentum, double eps,
                        int64_t batch, int64_t channels, int64_t spatial);
template <typename T>
void batch_norm_forward_naive(T* y, T* save_mean, T* save_invstd, T* running_mean,
                              T* running_var, const T* x, const T* gamma, const T* beta,
                              double momentum, double eps, int64_t batch, int64_t channels,
                              int64_t spatial);
// Training backward.
// dx: (N, C, S) written, or nullptr; dgamma, dbeta: (C,) accumulated (+=), or nullptr;
// dy, x: (N, C, S); save_mean, save_invstd: (C,) from the forward; gamma: (C,) or nullptr.
template <typename T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* save_mean,
                         const T* save_invstd, const T* gamma, int64_t batch, int64_t channels,
                         int64_t spatial);
template <typename T>
void batch_norm_backward_naive(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x,
                               const T* save_mean, const T* save_invstd, const T* gamma,
                               int64_t batch, int64_t channels, int64_t spatial);

// Training batch norm with a ReLU after it (the engine's training plan,
// model.cpp): y = max(BN(x), 0) written where batch_norm_forward writes
// BN(x), instead of a ReLU layer's pass of its own over the whole tensor; bit
// for bit batch_norm_forward followed by activation.hpp's ReLU. Arguments as
// batch_norm_forward. (The backward keeps two steps: the ReLU's gradient in
// place over dy, then batch_norm_backward; masking dy inside the backward's
// passes measured 2-3× slower than the separate, vectorised ReLU pass.)
template <typename T>
void batch_norm_relu_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, double momentum, double eps,
                             int64_t batch, int64_t channels, int64_t spatial);

// Inference forward.
// y: (N, C, S) written; save_mean, save_invstd: (C,) written (running_mean and
// 1/√(running_var + eps): what the inference backward reads); x: (N, C, S);
// running_mean, running_var: (C,); gamma, beta: (C,) or nullptr. eps > 0.
template <typename T>
void batch_norm_inference_forward(T* y, T* save_mean, T* save_invstd, const T* x,
                                  const T* running_mean, const T* running_var, const T* gamma,
                                  const T* beta, double eps, int64_t batch, int64_t channels,
                                  int64_t spatial);
template <typename T>
void batch_norm_inference_forward_naive(T* y, T* save_mean, T* save_invstd, const T* x,
                                        const T* running_mean, const T* running_var,
                                        const T* gamma, const T* beta, double eps, int64_t batch,
                                        int64_t channels, int64_t spatial);
// Inference backward (a frozen layer): arguments as batch_norm_backward, with
// save_mean, save_invstd from batch_norm_inference_forward.
template <typename T>
void batch_norm_inference_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x,
                                   const T* save_mean, const T* save_invstd, const T* gamma,
                                   int64_t batch, int64_t channels, int64_t spatial);
template <typename T>
void batch_norm_inference_backward_naive(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x,
                                         const T* save_mean, const T* save_invstd,
                                         const T* gamma, int64_t batch, int64_t channels,
                                         int64_t spatial);

// Inference batch norm folded into the layer before it (the engine's inference
// plan): with s = γ / √(running_var + eps) and t = β − running_mean·s per
// channel, BN(W∗x + b) = (s·W)∗x + (s·b + t) for any producer linear in its
// weights whose output channel c has its own kernel rows. Writes
//   kernel_out[c, k] = s[c]·kernel[c, k],   bias_out[c] = s[c]·bias[c] + t[c]
// (bias nullptr: 0); kernel, kernel_out: (channels, K); s and t are computed in
// double, then each product rounded once. kernel_out may not alias kernel.
template <typename T>
void batch_norm_fold(T* kernel_out, T* bias_out, const T* kernel, const T* bias, int64_t K,
                     const T* running_mean, const T* running_var, const T* gamma, const T* beta,
                     double eps, int64_t channels);

// ValueError naming `op` unless momentum is in [0, 1] and eps is finite and > 0.
// The kernels do not check (they run every step); callers validate once.
void validate_batch_norm(double momentum, double eps, const char* op);

}  // namespace corenn
