// Pooling and padding on NCHW images, each channel of each image on its own.
//   max_pool2d   y = max over the window; padded cells are −∞ (never chosen);
//                argmax keeps the winner's index h·W + w in its input plane, and
//                backward adds dy there (overlapping windows accumulate).
//                Ties: the first maximum in row-major window order wins.
//                NaN propagates: the first NaN in a window is y and its argmax.
//   avg_pool2d   y = Σ window / count, count = KH·KW with padded cells as zeros
//                (count_include_pad, PyTorch's default) or only the cells inside
//                the input (Keras's "same")
//   global_avg_pool2d  y[n, c] = mean over the H·W plane
//   zero_pad2d   zeros around each plane; backward crops
#pragma once

#include <cstdint>

namespace corenn {

struct Pool2dShape {
  int64_t batch = 1, channels = 1, height = 1, width = 1;  // x: (batch, channels, height, width)
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  bool count_include_pad = true;  // avg_pool2d only
  int64_t out_h() const;          // ⌊(H + pad_top + pad_bottom − KH) / sh⌋ + 1
  int64_t out_w() const;
};

// ValueError naming the argument: sizes < 1, stride < 1, negative padding,
// padding over half the kernel on any side, a window larger than the padded input.
void validate(const Pool2dShape& s, const char* op);

// y, argmax: (batch, channels, out_h, out_w) written; x: (batch, channels, height, width).
template <typename T>
void max_pool2d_forward(T* y, int64_t* argmax, const T* x, const Pool2dShape& s);
template <typename T>
void max_pool2d_forward_naive(T* y, int64_t* argmax, const T* x, const Pool2dShape& s);
// dx: like x, written; dy, argmax: like y.
template <typename T>
void max_pool2d_backward(T* dx, const T* dy, const int64_t* argmax, const Pool2dShape& s);
template <typename T>
void max_pool2d_backward_naive(T* dx, const T* dy, const int64_t* argmax, const Pool2dShape& s);

// y: (batch, channels, out_h, out_w) written; x: (batch, channels, height, width).
template <typename T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dShape& s);
template <typename T>
void avg_pool2d_forward_naive(T* y, const T* x, const Pool2dShape& s);
// dx: like x, written; dy: like y.
template <typename T>
void avg_pool2d_backward(T* dx, const T* dy, const Pool2dShape& s);
template <typename T>
void avg_pool2d_backward_naive(T* dx, const T* dy, const Pool2dShape& s);

// y: (planes,) written, planes = batch·channels; x: (planes, plane_size).
template <typename T>
void global_avg_pool2d_forward(T* y, const T* x, int64_t planes, int64_t plane_size);
// dx: (planes, plane_size) written; dy: (planes,).
template <typename T>
void global_avg_pool2d_backward(T* dx, const T* dy, int64_t planes, int64_t plane_size);

// y: (planes, height + top + bottom, width + left + right) written; x: (planes, height, width).
template <typename T>
void zero_pad2d_forward(T* y, const T* x, int64_t planes, int64_t height, int64_t width,
                        int64_t top, int64_t bottom, int64_t left, int64_t right);
// dx: (planes, height, width) written (the crop of dy); dy: the padded planes.
template <typename T>
void zero_pad2d_backward(T* dx, const T* dy, int64_t planes, int64_t height, int64_t width,
                         int64_t top, int64_t bottom, int64_t left, int64_t right);

}  // namespace corenn
