// Merging tensors in a graph: Add (a residual connection's x + F(x)),
// Subtract (a siamese network's f(x1) − f(x2)), Concatenate (an Inception
// module's branches side by side), and Keras's Multiply (a gate g ⊙ h),
// Average (an ensemble's mean), Maximum and Minimum. Backward passes with an
// `accumulate` flag add into dx rather than write it, which is how the engine
// sums the gradients of a tensor that feeds several layers; the others write.
#pragma once

#include <cstdint>
#include <vector>

namespace corenn {

// y: (n,) written = xs[0] + xs[1] + ...; xs: count pointers to (n,), count >= 1.
template <typename T>
void add_forward(T* y, const T* const* xs, int count, int64_t n);
template <typename T>
void add_forward_naive(T* y, const T* const* xs, int count, int64_t n);
// y = max(xs[0] + xs[1] + ..., 0), the ReLU applied where the sum is written
// (a residual block's output; the engine's training plan, model.cpp): bit for
// bit add_forward followed by activation.hpp's ReLU. Arguments as add_forward.
template <typename T>
void add_relu_forward(T* y, const T* const* xs, int count, int64_t n);
template <typename T>
void add_relu_forward_naive(T* y, const T* const* xs, int count, int64_t n);

// Every term of a sum receives the sum's gradient unchanged.
// dx: (n,) written (or added when accumulate); dy: (n,).
template <typename T>
void add_backward(T* dx, const T* dy, int64_t n, bool accumulate);
template <typename T>
void add_backward_naive(T* dx, const T* dy, int64_t n, bool accumulate);

// y: (n,) written = a − b; a, b: (n,). Backward: a receives dy (add_backward),
// b receives −dy (subtract_backward).
template <typename T>
void subtract_forward(T* y, const T* a, const T* b, int64_t n);
template <typename T>
void subtract_forward_naive(T* y, const T* a, const T* b, int64_t n);

// The subtracted term's gradient: dx: (n,) written = −dy (or dx −= dy when accumulate); dy: (n,).
template <typename T>
void subtract_backward(T* dx, const T* dy, int64_t n, bool accumulate);
template <typename T>
void subtract_backward_naive(T* dx, const T* dy, int64_t n, bool accumulate);

// Concatenation along one axis, seen as rows: everything before the axis is
// `outer` rows, and input k contributes widths[k] consecutive values per row.
// y: (outer, Σ widths) written; xs[k]: (outer, widths[k]).
template <typename T>
void concat_forward(T* y, const T* const* xs, const int64_t* widths, int count, int64_t outer);
template <typename T>
void concat_forward_naive(T* y, const T* const* xs, const int64_t* widths, int count, int64_t outer);

// dx: (outer, width) written (or added when accumulate) = dy[:, offset : offset + width];
// dy: (outer, total).
template <typename T>
void concat_backward(T* dx, const T* dy, int64_t outer, int64_t offset, int64_t width,
                     int64_t total, bool accumulate);
template <typename T>
void concat_backward_naive(T* dx, const T* dy, int64_t outer, int64_t offset, int64_t width,
                           int64_t total, bool accumulate);

// Keras's Multiply: y: (n,) written = xs[0] · xs[1] · ..., left to right; xs: count pointers to (n,).
template <typename T>
void multiply_forward(T* y, const T* const* xs, int count, int64_t n);
template <typename T>
void multiply_forward_naive(T* y, const T* const* xs, int count, int64_t n);

// Input k's gradient: dx: (n,) written = dy · Π_{j≠k} xs[j] (the other factors
// in order, no division, so a zero factor is exact); dy: (n,).
template <typename T>
void multiply_backward(T* dx, const T* dy, const T* const* xs, int count, int k, int64_t n);
template <typename T>
void multiply_backward_naive(T* dx, const T* dy, const T* const* xs, int count, int k, int64_t n);

// Keras's Average: y: (n,) written = (xs[0] + xs[1] + ...) / count, the sum in
// add_forward's order then one division.
template <typename T>
void average_forward(T* y, const T* const* xs, int count, int64_t n);
template <typename T>
void average_forward_naive(T* y, const T* const* xs, int count, int64_t n);

// Every input's gradient: dx: (n,) written (or added when accumulate) = dy / count.
template <typename T>
void average_backward(T* dx, const T* dy, int count, int64_t n, bool accumulate);
template <typename T>
void average_backward_naive(T* dx, const T* dy, int count, int64_t n, bool accumulate);

// Keras's Maximum and Minimum: y: (n,) written = the element-wise max (min) of
// xs[0], xs[1], ...; a NaN in any input gives NaN (torch.maximum, np.maximum).
template <typename T>
void maximum_forward(T* y, const T* const* xs, int count, int64_t n);
template <typename T>
void maximum_forward_naive(T* y, const T* const* xs, int count, int64_t n);
template <typename T>
void minimum_forward(T* y, const T* const* xs, int count, int64_t n);
template <typename T>
void minimum_forward_naive(T* y, const T* const* xs, int count, int64_t n);

// Maximum's and Minimum's backward, from their output y: (n,). Input k's
// gradient dx: (n,) written = dy / m where xs[k] equals y and m inputs do
// (NaN counting as equal to NaN), 0 elsewhere: ties share dy equally, as
// torch.amax over the stacked inputs and, for two inputs, torch.maximum.
template <typename T>
void extremum_backward(T* dx, const T* dy, const T* y, const T* const* xs, int count, int k, int64_t n);
template <typename T>
void extremum_backward_naive(T* dx, const T* dy, const T* y, const T* const* xs, int count, int k, int64_t n);

// Broadcasting (Keras's merge layers, NumPy's rule for shapes of one rank):
// x of shape `in` stands for an array of shape `out`, with each axis where
// in[d] = 1 < out[d] repeated; every other axis has in[d] = out[d]. Shapes
// count every axis (the batch included), in[d] ∈ {1, out[d]}.
// y: out written = x repeated; x: in.
template <typename T>
void broadcast_forward(T* y, const T* x, const std::vector<int64_t>& out, const std::vector<int64_t>& in);
template <typename T>
void broadcast_forward_naive(T* y, const T* x, const std::vector<int64_t>& out, const std::vector<int64_t>& in);

// Its backward: dx: in written (or added when accumulate) = scale · dy summed
// over the repeated axes, each value a sum in dy's order (then one product
// with scale, so scale = ±1 is exact); dy: out.
template <typename T>
void broadcast_backward(T* dx, const T* dy, const std::vector<int64_t>& out, const std::vector<int64_t>& in,
                        double scale, bool accumulate);
template <typename T>
void broadcast_backward_naive(T* dx, const T* dy, const std::vector<int64_t>& out, const std::vector<int64_t>& in,
                              double scale, bool accumulate);

}  // namespace corenn
