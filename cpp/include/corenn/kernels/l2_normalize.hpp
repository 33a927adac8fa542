// L2 normalisation along one axis (torch.nn.functional.normalize, p = 2; the
// Dot layer's normalize=True, which turns a dot product into the cosine
// similarity). x is viewed as (outer, axis, inner) and each of its outer·inner
// fibres along the axis is scaled to unit length:
//   n = max(‖x‖₂, eps),   y = x / n
// Backward: where ‖x‖₂ > eps,  dx = (dy − y (y·dy)) / n;
//           elsewhere n = eps is a constant and dx = dy / eps.
#pragma once

#include <cstdint>

namespace corenn {

// PyTorch's default eps of F.normalize.
inline constexpr double kL2NormalizeEps = 1e-12;

// y: (outer, axis, inner) written; norm: (outer, inner) written, n of each fibre
// (backward reads it); x: (outer, axis, inner).
template <typename T>
void l2_normalize_forward(T* y, T* norm, const T* x, int64_t outer, int64_t axis, int64_t inner);
template <typename T>
void l2_normalize_forward_naive(T* y, T* norm, const T* x, int64_t outer, int64_t axis, int64_t inner);

// dx: (outer, axis, inner) written, or added when accumulate; dy, y: (outer,
// axis, inner); norm: the forward's.
template <typename T>
void l2_normalize_backward(T* dx, const T* dy, const T* y, const T* norm, int64_t outer, int64_t axis,
                           int64_t inner, bool accumulate);
template <typename T>
void l2_normalize_backward_naive(T* dx, const T* dy, const T* y, const T* norm, int64_t outer, int64_t axis,
                                 int64_t inner, bool accumulate);

}  // namespace corenn
