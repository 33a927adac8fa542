// Winograd convolution F(2×2, 3×3) (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", CVPR 2016) for the 3×3, stride-1,
// dilation-1, groups-1 float32 convolutions of conv.hpp: forward, input
// gradient and weight gradient, each 2×2 output tile from a 4×4 input tile by
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
// with 16 element-wise products per tile against the direct method's 36
// (2.25× fewer multiplications), the products over channels done as 16 GEMMs.
//
// conv2d_forward / conv2d_backward (conv.hpp) dispatch here by themselves
// when the shape qualifies and the process-wide algorithm setting allows:
//   "gemm"     im2col + GEMM always (the results of corenn before Winograd, bit for bit);
//   "winograd" Winograd wherever the shape qualifies (float32 only);
//   "auto"     (the default) Winograd where it measured faster (winograd.cpp).
// float64 always takes the GEMM path.
#pragma once

#include <cstdint>
#include <string>

#include "corenn/kernels/conv.hpp"

namespace corenn {

// Throws ValueError naming the argument unless algorithm is "auto", "gemm" or "winograd".
void set_conv_algorithm(const std::string& algorithm);
const char* get_conv_algorithm();

// 3×3 kernel, stride 1, dilation 1, groups 1 (any padding): Winograd can compute it.
bool winograd_applies(const Conv2dShape& s);
// The setting and, under "auto", the measured rule (winograd.cpp): the
// float32 forward and backward of s run on Winograd.
bool winograd_selected(const Conv2dShape& s);

// Elements of float scratch the Winograd kernels need for s (thread count in force now).
int64_t winograd_scratch_size(const Conv2dShape& s);

// As conv2d_forward / conv2d_backward (conv.hpp) for a shape with winograd_applies(s).
void winograd_conv2d_forward(float* y, float* scratch, const float* x, const float* W, const float* b,
                             const Conv2dShape& s);
// With an epilogue (conv.hpp), applied in the output transform's write.
void winograd_conv2d_forward(float* y, float* scratch, const float* x, const float* W,
                             const ConvEpilogue<float>& e, const Conv2dShape& s);
void winograd_conv2d_backward(float* dx, float* dW, float* db, float* scratch, const float* dy,
                              const float* x, const float* W, const Conv2dShape& s);

}  // namespace corenn
