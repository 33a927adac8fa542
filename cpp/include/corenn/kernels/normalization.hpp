// Input normalisation with fixed statistics (Keras's Normalization layer, the
// course's x' = (x − μ)/σ with μ and σ from the training set):
//   y[n, c, s] = (x[n, c, s] − mean[c]) / σ[c],  σ = √variance, or 1 where variance <= 0
// (a constant feature is only centred, as scikit-learn's StandardScaler does;
// a NaN variance stays NaN: y is NaN, as NumPy's formula gives).
// Division rather than a precomputed 1/σ: each value is rounded as the formula
// reads, so a float64 result equals NumPy's (x − μ)/σ bit for bit.
// The statistics are state, not parameters: backward gives dx = dy / σ only.
#pragma once

#include <cstdint>

namespace corenn {

// y: (batch, channels, spatial) written; x: like y; mean, variance: (channels,).
template <typename T>
void normalize_forward(T* y, const T* x, const T* mean, const T* variance, int64_t batch,
                       int64_t channels, int64_t spatial);
template <typename T>
void normalize_forward_naive(T* y, const T* x, const T* mean, const T* variance, int64_t batch,
                             int64_t channels, int64_t spatial);
// dx: (batch, channels, spatial) written; dy: like dx; variance: (channels,).
template <typename T>
void normalize_backward(T* dx, const T* dy, const T* variance, int64_t batch, int64_t channels,
                        int64_t spatial);
template <typename T>
void normalize_backward_naive(T* dx, const T* dy, const T* variance, int64_t batch, int64_t channels,
                              int64_t spatial);

}  // namespace corenn
