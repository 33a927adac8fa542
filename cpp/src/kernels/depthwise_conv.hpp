// Depthwise convolution (groups == C_in, MobileNet): output channel o reads
// input channel o / multiplier only. Its im2col GEMMs would have an inner
// dimension of K = KH·KW, tiny matrix-vector products, so it has direct loop
// kernels instead; conv2d_forward and conv2d_backward dispatch to them.
#pragma once

#include "corenn/kernels/conv.hpp"

namespace corenn {
namespace conv {

inline bool is_depthwise(const Conv2dShape& s) { return s.groups == s.in_channels && s.groups > 1; }

// y: (N, C_out, OH, OW) written; x: (N, C_in, H, W); W: (C_out, 1, KH, KW); b: (C_out,) or null.
template <typename T>
void depthwise_forward(T* y, const T* x, const T* W, const T* b, const Conv2dShape& s);

// dx: like x, written, or null; dW: (C_out, 1, KH, KW) accumulated; db: (C_out,) accumulated or null;
// dy: (N, C_out, OH, OW); x: (N, C_in, H, W); W: (C_out, 1, KH, KW).
template <typename T>
void depthwise_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                        const Conv2dShape& s);

}  // namespace conv
}  // namespace corenn
