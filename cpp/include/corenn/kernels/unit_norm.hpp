// Unit normalisation (Keras 3's UnitNormalization, PyTorch's F.normalize with
// p = 2): every vector along one axis scaled to Euclidean length 1, the
// FaceNet embedding's ‖f(x)‖₂ = 1. x is viewed as (outer, channels, inner): the
// vectors run along `channels` at stride `inner`, one per (outer, inner) position.
//   n = ‖x‖₂ = √(Σ_c x_c²),   y = x / max(n, eps)
// A vector shorter than eps (the zero vector above all) is divided by eps: it
// stays near 0 and never becomes NaN. Backward (dy the gradient of y):
//   n > eps:  dx = (dy − y·Σ_c(y_c·dy_c)) / n   (the projection of dy off y, over n)
//   n ≤ eps:  dx = dy / eps                     (a constant divisor)
// Sums run in double whatever T is. Sources: keras.layers.UnitNormalization
// (keras.ops.normalize, epsilon 1e-12), torch.nn.functional.normalize (eps 1e-12).
#pragma once

#include <cstdint>

namespace corenn {

// y: (outer, channels, inner) written; x: (outer, channels, inner). eps > 0
// (validate_unit_norm). The fast kernel computes each vector with the same
// serial loops whatever the thread count: results do not depend on it.
template <typename T>
void unit_norm_forward(T* y, const T* x, int64_t outer, int64_t channels, int64_t inner, double eps);
template <typename T>
void unit_norm_forward_naive(T* y, const T* x, int64_t outer, int64_t channels, int64_t inner, double eps);

// dx: (outer, channels, inner) written; dy, x: (outer, channels, inner) (the
// norms are recomputed from x: no state is kept between the passes).
template <typename T>
void unit_norm_backward(T* dx, const T* dy, const T* x, int64_t outer, int64_t channels, int64_t inner,
                        double eps);
template <typename T>
void unit_norm_backward_naive(T* dx, const T* dy, const T* x, int64_t outer, int64_t channels,
                              int64_t inner, double eps);

// ValueError "<context>: epsilon must be finite and > 0, got <eps>" otherwise.
void validate_unit_norm(double eps, const char* context);

}  // namespace corenn
