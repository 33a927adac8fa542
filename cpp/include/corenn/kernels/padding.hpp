// Keras's padding="same", the one rule every "same" layer derives from
// (convolution, depthwise, separable, transposed, pooling). It is
// TensorFlow's: along one axis of `in` cells, a kernel of `kernel` taps
// `dilation` apart moved by `stride`,
//   out    = ⌈in / stride⌉ windows,
//   total  = max((out − 1)·stride + (kernel − 1)·dilation + 1 − in, 0) padded cells,
//   before = ⌊total / 2⌋ (top/left), after = total − before (bottom/right):
// an odd total puts the extra cell at the bottom/right.
#pragma once

#include <algorithm>
#include <cstdint>

namespace corenn {

struct SamePadding {
  int64_t out;     // windows, ⌈in / stride⌉
  int64_t before;  // top / left
  int64_t after;   // bottom / right (the odd cell)
};

// in, kernel, stride, dilation >= 1 (the geometry's validate() reports others).
inline SamePadding same_padding(int64_t in, int64_t kernel, int64_t stride, int64_t dilation = 1) {
  stride = std::max<int64_t>(stride, 1);
  const int64_t out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>((out - 1) * stride + (kernel - 1) * dilation + 1 - in, 0);
  return {out, total / 2, total - total / 2};
}

// The transposed convolution's "same" (Keras's Conv2DTranspose, TensorFlow's
// conv2d_transpose) is the adjoint of the forward "same" convolution over an
// image of `out` cells (Keras: in·stride): that convolution's padding is
// cropped from the transposed output (`before` from the top/left, `after`
// from the bottom/right), and the output_padding cells (< stride) are those
// the forward windows never reach. The adjoint exists only when that forward
// convolution has `in` windows (⌈out / stride⌉ == in).
struct SameTransposePadding {
  int64_t before, after, output_padding;
  bool adjoint;  // ⌈out / stride⌉ == in
};

inline SameTransposePadding same_transpose_padding(int64_t in, int64_t out, int64_t kernel, int64_t stride,
                                                   int64_t dilation = 1) {
  const SamePadding p = same_padding(out, kernel, stride, dilation);
  // The uncropped transposed output has (in − 1)·stride + (kernel − 1)·dilation + 1 cells.
  const int64_t reached = (in - 1) * stride + (kernel - 1) * dilation + 1 - p.before - p.after;
  return {p.before, p.after, out - reached, p.out == in};
}

}  // namespace corenn
