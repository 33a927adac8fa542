// Up-sampling of NCHW images by integer factors (Keras's UpSampling2D), each
// channel of each image on its own; out = (H·sh, W·sw).
//   nearest   y[n, c, i, j] = x[n, c, ⌊i / sh⌋, ⌊j / sw⌋]: each pixel repeated
//             sh × sw times (PyTorch's and Keras's "nearest").
//   bilinear  half-pixel centres (PyTorch's interpolate(mode="bilinear",
//             align_corners=False), Keras 3's resize): output row i reads the
//             source row u = (i + ½) / sh − ½, clamped at 0, between rows
//             u0 = ⌊u⌋ and u1 = min(u0 + 1, H − 1) with weight a = u − u0 on u1;
//             columns likewise (v, v0, v1, b), and
//             y = (1−a)(1−b)·x[u0, v0] + (1−a)b·x[u0, v1] + a(1−b)·x[u1, v0] + ab·x[u1, v1].
// Backward is the adjoint: each dy cell goes back to the x cells it was made
// from, with the same weights (dx written).
#pragma once

#include <cstdint>
#include <string>

namespace corenn {

enum class Interpolation { nearest, bilinear };

// "nearest" or "bilinear"; ValueError naming `op` otherwise.
Interpolation parse_interpolation(const std::string& name, const char* op);

struct Upsample2dShape {
  int64_t batch = 1, channels = 1, height = 1, width = 1;  // x: (batch, channels, height, width)
  int64_t scale_h = 2, scale_w = 2;                        // Keras's size
  Interpolation interpolation = Interpolation::nearest;
  int64_t out_h() const { return height * scale_h; }
  int64_t out_w() const { return width * scale_w; }
};

// ValueError naming the argument: sizes or scale factors < 1.
void validate(const Upsample2dShape& s, const char* op);

// y: (batch, channels, out_h, out_w) written; x: (batch, channels, height, width).
template <typename T>
void upsample2d_forward(T* y, const T* x, const Upsample2dShape& s);
template <typename T>
void upsample2d_forward_naive(T* y, const T* x, const Upsample2dShape& s);

// dx: like x, written; dy: like y.
template <typename T>
void upsample2d_backward(T* dx, const T* dy, const Upsample2dShape& s);
template <typename T>
void upsample2d_backward_naive(T* dx, const T* dy, const Upsample2dShape& s);

}  // namespace corenn
