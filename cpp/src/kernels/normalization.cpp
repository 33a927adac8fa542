#include "corenn/kernels/normalization.hpp"

#include <algorithm>
#include <cmath>

#include "backend/parallel.hpp"

namespace corenn {

namespace {

// Written as "<= 0 gives 1" so that a NaN variance (which fails every
// comparison) gives a NaN σ and NaN outputs, as (x − μ)/√variance does, rather
// than passing x through as if the feature were constant.
template <typename T>
inline T scale_of(T variance) {
  return variance <= T(0) ? T(1) : std::sqrt(variance);
}

// Rows are (example, channel) pairs of `spatial` values each ((batch, features)
// inputs have spatial = 1), a subtract and a divide each: a chunk holds about kGrain values.
int64_t row_grain(int64_t spatial) { return detail::grain_for(spatial); }

}  // namespace

template <typename T>
void normalize_forward(T* y, const T* x, const T* mean, const T* variance, int64_t batch,
                       int64_t channels, int64_t spatial) {
  // y: (batch, channels, spatial), x: like y, mean: (channels,), variance: (channels,)
  detail::parallel_for(0, batch * channels, row_grain(spatial), [=](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t c = r % channels;
      const T m = mean[c], s = scale_of(variance[c]);
      const T* src = x + r * spatial;
      T* dst = y + r * spatial;
      for (int64_t k = 0; k < spatial; ++k) dst[k] = (src[k] - m) / s;
    }
  });
}

template <typename T>
void normalize_forward_naive(T* y, const T* x, const T* mean, const T* variance, int64_t batch,
                             int64_t channels, int64_t spatial) {
  // y: (batch, channels, spatial), x: like y, mean: (channels,), variance: (channels,)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < spatial; ++k) {
        const int64_t i = (n * channels + c) * spatial + k;
        y[i] = (x[i] - mean[c]) / (variance[c] <= T(0) ? T(1) : std::sqrt(variance[c]));
      }
}

template <typename T>
void normalize_backward(T* dx, const T* dy, const T* variance, int64_t batch, int64_t channels,
                        int64_t spatial) {
  // dx: (batch, channels, spatial), dy: like dx, variance: (channels,)
  detail::parallel_for(0, batch * channels, row_grain(spatial), [=](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const T s = scale_of(variance[r % channels]);
      const T* src = dy + r * spatial;
      T* dst = dx + r * spatial;
      for (int64_t k = 0; k < spatial; ++k) dst[k] = src[k] / s;
    }
  });
}

template <typename T>
void normalize_backward_naive(T* dx, const T* dy, const T* variance, int64_t batch, int64_t channels,
                              int64_t spatial) {
  // dx: (batch, channels, spatial), dy: like dx, variance: (channels,)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t k = 0; k < spatial; ++k) {
        const int64_t i = (n * channels + c) * spatial + k;
        dx[i] = dy[i] / (variance[c] <= T(0) ? T(1) : std::sqrt(variance[c]));
      }
}

#define CORENN_NORMALIZE_INSTANTIATE(T)                                                           \
  template void normalize_forward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t); \
  template void normalize_forward_naive<T>(T*, const T*, const T*, const T*, int64_t, int64_t,    \
                                           int64_t);                                              \
  template void normalize_backward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);         \
  template void normalize_backward_naive<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);
CORENN_NORMALIZE_INSTANTIATE(float)
CORENN_NORMALIZE_INSTANTIATE(double)
#undef CORENN_NORMALIZE_INSTANTIATE

}  // namespace corenn
