// Unit normalisation: see corenn/kernels/unit_norm.hpp for the formulas.
//
// Threading: the outer slices are independent, so parallel_for splits them;
// within a slice, the vectors of kBlock neighbouring positions (along inner)
// are handled together, their sums of squares in a small array while the
// channels stream past at stride inner (each pass a vectorisable loop over
// the block). A vector's sums always run in the same order: the results do
// not depend on the thread count.
#include "corenn/kernels/unit_norm.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {

constexpr int64_t kBlock = 64;

// 1 / max(√sum, eps): the divisor of the forward pass, as a factor.
inline double inverse_norm(double sum_of_squares, double eps) {
  return 1.0 / std::max(std::sqrt(sum_of_squares), eps);
}

}  // namespace

void validate_unit_norm(double eps, const char* context) {
  // "Not (inside)" so that NaN, which fails every comparison, is rejected.
  if (eps > 0.0 && std::isfinite(eps)) return;
  std::ostringstream msg;
  msg << context << ": epsilon must be finite and > 0, got " << eps;
  throw ValueError(msg.str());
}

// ---------------------------------------------------------------- forward

template <typename T>
void unit_norm_forward(T* y, const T* x, int64_t outer, int64_t channels, int64_t inner, double eps) {
  // y, x: (outer, channels, inner)
  const int64_t slice = channels * inner;
  detail::parallel_for(0, outer, detail::grain_for(2 * slice), [=](int64_t lo, int64_t hi, int) {
    double sum[kBlock], scale[kBlock];
    for (int64_t o = lo; o < hi; ++o) {
      const T* xo = x + o * slice;
      T* yo = y + o * slice;
      for (int64_t at = 0; at < inner; at += kBlock) {
        const int64_t len = std::min(kBlock, inner - at);
        std::fill(sum, sum + len, 0.0);
        for (int64_t c = 0; c < channels; ++c) {
          const T* xc = xo + c * inner + at;
          for (int64_t j = 0; j < len; ++j) sum[j] += static_cast<double>(xc[j]) * xc[j];
        }
        for (int64_t j = 0; j < len; ++j) scale[j] = inverse_norm(sum[j], eps);
        for (int64_t c = 0; c < channels; ++c) {
          const T* xc = xo + c * inner + at;
          T* yc = yo + c * inner + at;
          for (int64_t j = 0; j < len; ++j) yc[j] = static_cast<T>(xc[j] * scale[j]);
        }
      }
    }
  });
}

template <typename T>
void unit_norm_forward_naive(T* y, const T* x, int64_t outer, int64_t channels, int64_t inner, double eps) {
  // y, x: (outer, channels, inner)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t first = o * channels * inner + i;  // channel c at first + c·inner
      double sum = 0.0;
      for (int64_t c = 0; c < channels; ++c) sum += static_cast<double>(x[first + c * inner]) * x[first + c * inner];
      const double norm = std::max(std::sqrt(sum), eps);
      for (int64_t c = 0; c < channels; ++c) y[first + c * inner] = static_cast<T>(x[first + c * inner] / norm);
    }
}

// ---------------------------------------------------------------- backward

template <typename T>
void unit_norm_backward(T* dx, const T* dy, const T* x, int64_t outer, int64_t channels, int64_t inner,
                        double eps) {
  // dx, dy, x: (outer, channels, inner)
  const int64_t slice = channels * inner;
  detail::parallel_for(0, outer, detail::grain_for(4 * slice), [=](int64_t lo, int64_t hi, int) {
    // Per position: r = 1 / max(n, eps) and the factor c of x in dx = r·dy − c·x,
    // c = r³·Σ x·dy when n > eps (then y = r·x), 0 otherwise.
    double sum[kBlock], dot[kBlock], scale[kBlock], along[kBlock];
    for (int64_t o = lo; o < hi; ++o) {
      const int64_t base = o * slice;
      for (int64_t at = 0; at < inner; at += kBlock) {
        const int64_t len = std::min(kBlock, inner - at);
        std::fill(sum, sum + len, 0.0);
        std::fill(dot, dot + len, 0.0);
        for (int64_t c = 0; c < channels; ++c) {
          const T* xc = x + base + c * inner + at;
          const T* dyc = dy + base + c * inner + at;
          for (int64_t j = 0; j < len; ++j) {
            sum[j] += static_cast<double>(xc[j]) * xc[j];
            dot[j] += static_cast<double>(xc[j]) * dyc[j];
          }
        }
        for (int64_t j = 0; j < len; ++j) {
          const double n = std::sqrt(sum[j]);
          scale[j] = inverse_norm(sum[j], eps);
          along[j] = n > eps ? dot[j] * scale[j] * scale[j] * scale[j] : 0.0;
        }
        for (int64_t c = 0; c < channels; ++c) {
          const T* xc = x + base + c * inner + at;
          const T* dyc = dy + base + c * inner + at;
          T* dxc = dx + base + c * inner + at;
          for (int64_t j = 0; j < len; ++j) dxc[j] = static_cast<T>(dyc[j] * scale[j] - along[j] * xc[j]);
        }
      }
    }
  });
}

template <typename T>
void unit_norm_backward_naive(T* dx, const T* dy, const T* x, int64_t outer, int64_t channels,
                              int64_t inner, double eps) {
  // dx, dy, x: (outer, channels, inner)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t first = o * channels * inner + i;  // channel c at first + c·inner
      double sum = 0.0;
      for (int64_t c = 0; c < channels; ++c) sum += static_cast<double>(x[first + c * inner]) * x[first + c * inner];
      const double n = std::sqrt(sum);
      if (!(n > eps)) {
        for (int64_t c = 0; c < channels; ++c) dx[first + c * inner] = static_cast<T>(dy[first + c * inner] / eps);
        continue;
      }
      // dx = (dy − y·Σ y·dy) / n with y = x / n.
      double y_dot_dy = 0.0;
      for (int64_t c = 0; c < channels; ++c) y_dot_dy += x[first + c * inner] / n * dy[first + c * inner];
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t k = first + c * inner;
        dx[k] = static_cast<T>((dy[k] - x[k] / n * y_dot_dy) / n);
      }
    }
}

#define CORENN_INSTANTIATE(T)                                                                         \
  template void unit_norm_forward<T>(T*, const T*, int64_t, int64_t, int64_t, double);                \
  template void unit_norm_forward_naive<T>(T*, const T*, int64_t, int64_t, int64_t, double);          \
  template void unit_norm_backward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, double);     \
  template void unit_norm_backward_naive<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, double);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
