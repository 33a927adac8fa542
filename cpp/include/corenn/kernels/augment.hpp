// Data augmentation on NCHW batches. Each op is random per example and seeded:
// example n's draws are a pure function of (key, n) (random.hpp), so a batch
// comes out the same for any thread count, and the draws are saved for backward.
//
//   random_flip   flips[n]: bit 0 = mirror left-right (a horizontal flip), bit 1 =
//                 upside down (vertical). Each flip the mode allows happens with
//                 probability 1/2: bit 0 of random_bits(key, n) for horizontal,
//                 bit 1 for vertical. A flip is its own inverse, so backward
//                 flips dy the same way.
//   random_crop   pad each image with pad_h rows / pad_w columns of zeros on every
//                 side, then cut an H×W window back out at offset
//                 offsets[n] = (oy, ox), oy = ⌊uniform01(key, 2n)·(2·pad_h + 1)⌋,
//                 ox = ⌊uniform01(key, 2n+1)·(2·pad_w + 1)⌋:
//                 y[n, c, i, j] = x[n, c, i + oy − pad_h, j + ox − pad_w] (0 outside x).
//                 Backward scatters dy back through the same shift (cells of x
//                 that fell outside the window get 0).
//   color_shift   y[n, c] = x[n, c] + shift[n, c], one offset per example and
//                 channel, shift = delta·(2u − 1) with u = uniform01(key, n·C + c)
//                 (uniform on [−delta, delta], computed in double, then rounded
//                 to T). Its gradient is the identity (dx = dy): no backward kernel.
#pragma once

#include <cstdint>
#include <string>

namespace corenn {

enum class FlipMode : uint8_t { horizontal = 1, vertical = 2, horizontal_and_vertical = 3 };
// "horizontal", "vertical", "horizontal_and_vertical"; ValueError otherwise.
FlipMode parse_flip_mode(const std::string& name);
const char* flip_mode_name(FlipMode mode);

// y: (batch, channels, height, width) written; flips: (batch,) written; x: like y.
template <typename T>
void random_flip_forward(T* y, uint8_t* flips, const T* x, FlipMode mode, uint64_t key,
                         int64_t batch, int64_t channels, int64_t height, int64_t width);
template <typename T>
void random_flip_forward_naive(T* y, uint8_t* flips, const T* x, FlipMode mode, uint64_t key,
                               int64_t batch, int64_t channels, int64_t height, int64_t width);
// dx: (batch, channels, height, width) written; dy: like dx; flips: (batch,).
template <typename T>
void random_flip_backward(T* dx, const T* dy, const uint8_t* flips, int64_t batch, int64_t channels,
                          int64_t height, int64_t width);
template <typename T>
void random_flip_backward_naive(T* dx, const T* dy, const uint8_t* flips, int64_t batch,
                                int64_t channels, int64_t height, int64_t width);

// y: (batch, channels, height, width) written; offsets: (batch, 2) written, (oy, ox);
// x: like y. pad_h, pad_w >= 0.
template <typename T>
void random_crop_forward(T* y, int64_t* offsets, const T* x, int64_t pad_h, int64_t pad_w,
                         uint64_t key, int64_t batch, int64_t channels, int64_t height, int64_t width);
template <typename T>
void random_crop_forward_naive(T* y, int64_t* offsets, const T* x, int64_t pad_h, int64_t pad_w,
                               uint64_t key, int64_t batch, int64_t channels, int64_t height,
                               int64_t width);
// dx: (batch, channels, height, width) written; dy: like dx; offsets: (batch, 2).
template <typename T>
void random_crop_backward(T* dx, const T* dy, const int64_t* offsets, int64_t pad_h, int64_t pad_w,
                          int64_t batch, int64_t channels, int64_t height, int64_t width);
template <typename T>
void random_crop_backward_naive(T* dx, const T* dy, const int64_t* offsets, int64_t pad_h,
                                int64_t pad_w, int64_t batch, int64_t channels, int64_t height,
                                int64_t width);

// y: (batch, channels, spatial) written; shift: (batch, channels) written; x: like y.
// delta >= 0; spatial = height·width for images.
template <typename T>
void color_shift_forward(T* y, T* shift, const T* x, T delta, uint64_t key, int64_t batch,
                         int64_t channels, int64_t spatial);
template <typename T>
void color_shift_forward_naive(T* y, T* shift, const T* x, T delta, uint64_t key, int64_t batch,
                               int64_t channels, int64_t spatial);

}  // namespace corenn
