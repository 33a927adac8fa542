// The fused epilogue of a convolution's output write (ConvEpilogue, conv.hpp),
// one span of one output channel at a time, for the kernels that write y
// tile by tile (conv2d.cpp's GEMM route, winograd.cpp's output transform).
#pragma once

#include <cstdint>

namespace corenn {
namespace conv {

// y[i] = relu?(z[i] + bias + residual[i]) for i < n; z may be y (in place),
// residual may be nullptr. Compiled per ISA (CORENN_SIMD_CLONES).
void epilogue_span(float* y, const float* z, float bias, const float* residual, int64_t n, bool relu);
void epilogue_span(double* y, const double* z, double bias, const double* residual, int64_t n, bool relu);

}  // namespace conv
}  // namespace corenn
