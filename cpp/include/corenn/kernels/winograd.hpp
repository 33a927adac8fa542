// Winograd convolution F(2×2, 3×3) and F(4×4, 3×3) (Lavin & Gray, "Fast
// Algorithms for Convolutional Neural Networks", CVPR 2016) for the 3×3,
// stride-1, dilation-1, groups-1 float32 convolutions of conv.hpp: forward,
// input gradient and weight gradient, each m×m output tile from an
// (m+2)×(m+2) input tile by
//   Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A
// with (m+2)² element-wise products per tile against the direct method's
// 9·m² (F2: 16 against 36, 2.25× fewer; F4: 36 against 144, 4× fewer), the
// products over channels done as (m+2)² GEMMs (a thread's few tiles of one
// image: by winograd.cpp's own register-blocked product). F2 is the more accurate
// (tests/tolerances.py: WINOGRAD_F2, WINOGRAD_F4).
//
// conv2d_forward / conv2d_backward (conv.hpp) dispatch here by themselves
// when the shape qualifies and the process-wide algorithm setting allows:
//   "gemm"     im2col + GEMM always (the results of corenn before Winograd, bit for bit);
//   "winograd" Winograd wherever the shape qualifies (float32 only), the tile
//              size that measured faster for the shape (winograd.cpp);
//   "winograd2", "winograd4"  Winograd with that tile size wherever the shape qualifies;
//   "auto"     (the default) Winograd where it measured faster than GEMM, with
//              the faster tile size (winograd.cpp).
// float64 always takes the GEMM path.
#pragma once

#include <cstdint>
#include <string>

#include "corenn/kernels/conv.hpp"

namespace corenn {

// Throws ValueError naming the argument unless algorithm is one of the five names above.
void set_conv_algorithm(const std::string& algorithm);
const char* get_conv_algorithm();

// 3×3 kernel, stride 1, dilation 1, groups 1 (any padding): Winograd can compute it.
bool winograd_applies(const Conv2dShape& s);
// The setting and the measured rule (winograd.cpp): the tile size m (2 or 4)
// the float32 forward and backward of s run on, 0 for im2col + GEMM.
// filters_kept: for a forward whose caller keeps the transformed filters
// across calls (winograd_transform_filters), which moves the rule at batch 1.
int winograd_tile(const Conv2dShape& s, bool filters_kept = false);

// Elements of float scratch the Winograd kernels need for s (thread count in force now).
int64_t winograd_scratch_size(const Conv2dShape& s);

// As conv2d_forward / conv2d_backward (conv.hpp) for a shape with
// winograd_applies(s), by F(tile×tile, 3×3); ValueError unless tile is 2 or 4.
void winograd_conv2d_forward(float* y, float* scratch, const float* x, const float* W, const float* b,
                             const Conv2dShape& s, int tile);
// With an epilogue (conv.hpp), applied in the output transform's write.
void winograd_conv2d_forward(float* y, float* scratch, const float* x, const float* W,
                             const ConvEpilogue<float>& ep, const Conv2dShape& s, int tile);
// The forward in two halves, for a caller that runs one W many times (the
// inference engine keeps U while the weights stay put): U = G g Gᵀ of every
// filter, winograd_filter_size(s, tile) floats, (α², C_out, C_in) with α = tile + 2;
// then winograd_conv2d_forward_transformed is winograd_conv2d_forward given U
// (the same results, bit for bit). ValueError unless tile is 2 or 4.
int64_t winograd_filter_size(const Conv2dShape& s, int tile);
void winograd_transform_filters(float* U, const float* W, const Conv2dShape& s, int tile);
void winograd_conv2d_forward_transformed(float* y, float* scratch, const float* x, const float* U,
                                         const ConvEpilogue<float>& ep, const Conv2dShape& s, int tile);
void winograd_conv2d_backward(float* dx, float* dW, float* db, float* scratch, const float* dy,
                              const float* x, const float* W, const Conv2dShape& s, int tile);

}  // namespace corenn
