// 2-D convolution (cross-correlation, as in the course and every framework),
// NCHW, weights (C_out, C_in/groups, KH, KW) like PyTorch:
//   y[n, o, i, j] = b[o] + Σ_{c in group(o), p, q} W[o, c, p, q] ·
//                   x[n, c, i·sh + p·dh − pad_top, j·sw + q·dw − pad_left]
// with out-of-range x read as 0; out = ⌊(H + pad_top + pad_bottom − dh·(KH − 1) − 1) / sh⌋ + 1.
// groups = C_in is depthwise convolution (MobileNet).
//
// The transposed convolution (U-Net's up-sampling) is the adjoint of conv2d's
// input gradient: each input pixel scatters W into the output; weights
// (C_in, C_out, KH, KW) like PyTorch, out = (H − 1)·s − pad_top − pad_bottom +
// dh·(KH − 1) + 1 + output_padding (PyTorch's padding p is pad_top = pad_bottom
// = p; Keras's "same" crops asymmetrically, see padding.hpp).
#pragma once

#include <cstdint>

namespace corenn {

struct Conv2dShape {
  int64_t batch = 1, in_channels = 1, height = 1, width = 1;  // x: (batch, in_channels, height, width)
  int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;       // W: (out_channels, in_channels/groups, kernel_h, kernel_w)
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // asymmetric for Keras's "same"
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;
  int64_t out_h() const;
  int64_t out_w() const;
};

// Throws ValueError naming the argument: non-positive sizes, stride or dilation < 1,
// negative padding, groups not dividing both channel counts, a (dilated) kernel larger
// than the padded input.
void validate(const Conv2dShape& s, const char* op);

// Elements of scratch the fast kernels need (im2col columns for each thread that
// may run at once, with the thread count in force now); the caller allocates it.
int64_t conv2d_scratch_size(const Conv2dShape& s);

// y: (batch, out_channels, out_h, out_w) written; scratch: conv2d_scratch_size(s);
// x: (batch, in_channels, height, width); W: (out_channels, in_channels/groups, kernel_h, kernel_w);
// b: (out_channels,) or nullptr.
template <typename T>
void conv2d_forward(T* y, T* scratch, const T* x, const T* W, const T* b, const Conv2dShape& s);
template <typename T>
void conv2d_forward_naive(T* y, const T* x, const T* W, const T* b, const Conv2dShape& s);

// What a fused convolution applies where it writes its output (the inference
// plan's epilogue, model.cpp): per output element (n, o, pixel)
//   y = relu?(conv(x, W) + bias[o] + residual[n, o, pixel])
// bias: (out_channels,) or nullptr; residual: like y or nullptr.
template <typename T>
struct ConvEpilogue {
  const T* bias = nullptr;
  const T* residual = nullptr;
  bool relu = false;
};

// conv2d_forward with the epilogue applied in the pass that writes y (the GEMM
// route: on each tile of y right after its product, while it is in cache;
// Winograd: in the output transform). conv2d_forward(.., b, ..) is {b} here.
template <typename T>
void conv2d_forward_fused(T* y, T* scratch, const T* x, const T* W, const ConvEpilogue<T>& e,
                          const Conv2dShape& s);

// dx: like x, written, or nullptr; dW: like W, accumulated; db: (out_channels,)
// accumulated or nullptr; scratch: conv2d_scratch_size(s); dy: like y.
template <typename T>
void conv2d_backward(T* dx, T* dW, T* db, T* scratch, const T* dy, const T* x, const T* W,
                     const Conv2dShape& s);
template <typename T>
void conv2d_backward_naive(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                           const Conv2dShape& s);

struct ConvTranspose2dShape {
  int64_t batch = 1, in_channels = 1, height = 1, width = 1;  // x: (batch, in_channels, height, width)
  int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;       // W: (in_channels, out_channels, kernel_h, kernel_w)
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;  // cropped from the output's sides
  int64_t output_pad_h = 0, output_pad_w = 0;                 // added at the bottom/right, < stride
  int64_t dilation_h = 1, dilation_w = 1;                     // kernel taps land dilation apart
  int64_t out_h() const;
  int64_t out_w() const;
};

// ValueError naming the argument: sizes, stride or dilation < 1, negative padding, output_padding
// >= stride, an output of size < 1.
void validate(const ConvTranspose2dShape& s, const char* op);
int64_t conv_transpose2d_scratch_size(const ConvTranspose2dShape& s);

// y: (batch, out_channels, out_h, out_w) written; x: (batch, in_channels, height, width);
// W: (in_channels, out_channels, kernel_h, kernel_w); b: (out_channels,) or nullptr.
template <typename T>
void conv_transpose2d_forward(T* y, T* scratch, const T* x, const T* W, const T* b,
                              const ConvTranspose2dShape& s);
template <typename T>
void conv_transpose2d_forward_naive(T* y, const T* x, const T* W, const T* b,
                                    const ConvTranspose2dShape& s);

// dx: like x, written, or nullptr; dW: like W, accumulated; db accumulated or nullptr.
template <typename T>
void conv_transpose2d_backward(T* dx, T* dW, T* db, T* scratch, const T* dy, const T* x,
                               const T* W, const ConvTranspose2dShape& s);
template <typename T>
void conv_transpose2d_backward_naive(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                                     const ConvTranspose2dShape& s);

}  // namespace corenn
