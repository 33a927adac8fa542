// Depthwise convolution by direct loops (see depthwise_conv.hpp for why).
// Forward and input gradient are parallel over planes, the weight gradient
// over output channels, each summing its images in order: no partials, and
// the same result for any thread count.
#include "kernels/depthwise_conv.hpp"

#include <algorithm>

#include "backend/parallel.hpp"
#include "kernels/conv_geometry.hpp"

namespace corenn {
namespace conv {

namespace {

// y[j] += w · x[j·stride] for j in [0, n): the inner loop of the direct
// kernels; with stride 1 and no aliasing it vectorises.
template <typename T>
inline void axpy_row(T* __restrict y, const T* __restrict x, T w, int64_t n, int64_t stride) {
  if (stride == 1)
    for (int64_t j = 0; j < n; ++j) y[j] += w * x[j];
  else
    for (int64_t j = 0; j < n; ++j) y[j] += w * x[j * stride];
}

// y[j·stride] += w · x[j] (the scatter of axpy_row, for input gradients).
template <typename T>
inline void axpy_row_scatter(T* __restrict y, const T* __restrict x, T w, int64_t n,
                             int64_t stride) {
  if (stride == 1)
    for (int64_t j = 0; j < n; ++j) y[j] += w * x[j];
  else
    for (int64_t j = 0; j < n; ++j) y[j * stride] += w * x[j];
}

// acc[l] += Σ a[j]·b[j·stride] over j in [0, n) with j ≡ l (mod kLanes). A
// single running sum must add in strict order and cannot vectorise; kLanes
// independent ones can. Which lane gets which product depends on n alone, so
// the result stays the same for any thread count.
constexpr int kLanes = 8;  // sum_lanes below adds exactly 8

template <typename T>
inline void dot_lanes(T* __restrict acc, const T* __restrict a, const T* __restrict b, int64_t n,
                      int64_t stride) {
  int64_t j = 0;
  if (stride == 1)
    for (; j + kLanes <= n; j += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += a[j + l] * b[j + l];
  else
    for (; j + kLanes <= n; j += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += a[j + l] * b[(j + l) * stride];
  for (int l = 0; j < n; ++j, ++l) acc[l] += a[j] * b[j * stride];
}

// The lanes of dot_lanes added pairwise, in a fixed order.
template <typename T>
inline T sum_lanes(const T* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

template <typename T>
void depthwise_forward(T* y, const T* x, const T* W, const T* b, const Conv2dShape& s) {
  const Geometry g = conv_geometry(s);
  const int64_t mult = s.out_channels / s.in_channels, P = g.positions();
  const int64_t planes = s.batch * s.out_channels;
  const int64_t grain = detail::grain_for(P * g.kh * g.kw);
  detail::parallel_for(0, planes, grain, [=](int64_t lo, int64_t hi, int) {
    for (int64_t plane = lo; plane < hi; ++plane) {
      const int64_t n = plane / s.out_channels, o = plane % s.out_channels;
      const T* xp = x + (n * s.in_channels + o / mult) * g.height * g.width;  // (H, W)
      T* yp = y + plane * P;                                                   // (OH, OW)
      std::fill(yp, yp + P, b ? b[o] : T(0));
      for (int64_t p = 0; p < g.kh; ++p)
        for (int64_t q = 0; q < g.kw; ++q) {
          const T w = W[(o * g.kh + p) * g.kw + q];
          const int64_t off = q * g.dw - g.pl;
          int64_t j0, j1;
          g.valid_cols(off, j0, j1);
          if (j1 == j0) continue;
          for (int64_t i = 0; i < g.oh; ++i) {
            const int64_t ih = i * g.sh + p * g.dh - g.pt;
            if (ih < 0 || ih >= g.height) continue;
            axpy_row(yp + i * g.ow + j0, xp + ih * g.width + j0 * g.sw + off, w, j1 - j0, g.sw);
          }
        }
    }
  });
}

template <typename T>
void depthwise_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                        const Conv2dShape& s) {
  const Geometry g = conv_geometry(s);
  const int64_t mult = s.out_channels / s.in_channels, P = g.positions();
  const int64_t HW = g.height * g.width;
  const int64_t work = P * g.kh * g.kw;
  const int64_t grain = detail::grain_for(work);
  // dx, parallel over (image, input channel) planes: each plane gathers from
  // the `mult` output channels that read it and is written by one thread only.
  if (dx)
    detail::parallel_for(0, s.batch * s.in_channels, grain, [=](int64_t lo, int64_t hi, int) {
      for (int64_t plane = lo; plane < hi; ++plane) {
        const int64_t n = plane / s.in_channels, c = plane % s.in_channels;
        T* dxp = dx + plane * HW;  // (H, W)
        std::fill(dxp, dxp + HW, T(0));
        for (int64_t m = 0; m < mult; ++m) {
          const int64_t o = c * mult + m;
          const T* dyp = dy + (n * s.out_channels + o) * P;  // (OH, OW)
          for (int64_t p = 0; p < g.kh; ++p)
            for (int64_t q = 0; q < g.kw; ++q) {
              const T w = W[(o * g.kh + p) * g.kw + q];
              const int64_t off = q * g.dw - g.pl;
              int64_t j0, j1;
              g.valid_cols(off, j0, j1);
              if (j1 == j0) continue;
              for (int64_t i = 0; i < g.oh; ++i) {
                const int64_t ih = i * g.sh + p * g.dh - g.pt;
                if (ih < 0 || ih >= g.height) continue;
                axpy_row_scatter(dxp + ih * g.width + j0 * g.sw + off, dyp + i * g.ow + j0, w,
                                 j1 - j0, g.sw);
              }
            }
        }
      }
    });
  // dW (and db), parallel over output channels: each channel sums its images
  // in order, so the result does not depend on the thread count.
  detail::parallel_for(0, s.out_channels, std::max<int64_t>(1, grain / s.batch),
                       [&](int64_t lo, int64_t hi, int) {
    for (int64_t o = lo; o < hi; ++o) {
      const int64_t c = o / mult;
      for (int64_t p = 0; p < g.kh; ++p)
        for (int64_t q = 0; q < g.kw; ++q) {
          const int64_t off = q * g.dw - g.pl;
          int64_t j0, j1;
          g.valid_cols(off, j0, j1);
          T acc[kLanes] = {};
          for (int64_t n = 0; n < s.batch; ++n) {
            const T* dyp = dy + (n * s.out_channels + o) * P;
            const T* xp = x + (n * s.in_channels + c) * HW;
            for (int64_t i = 0; i < g.oh; ++i) {
              const int64_t ih = i * g.sh + p * g.dh - g.pt;
              if (ih < 0 || ih >= g.height || j1 == j0) continue;
              dot_lanes(acc, dyp + i * g.ow + j0, xp + ih * g.width + j0 * g.sw + off, j1 - j0, g.sw);
            }
          }
          dW[(o * g.kh + p) * g.kw + q] += sum_lanes(acc);
        }
    }
  });
  if (db) bias_grad(db, dy, s.batch, s.out_channels, P);
}

template void depthwise_forward<float>(float*, const float*, const float*, const float*,
                                      const Conv2dShape&);
template void depthwise_forward<double>(double*, const double*, const double*, const double*,
                                       const Conv2dShape&);
template void depthwise_backward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, const Conv2dShape&);
template void depthwise_backward<double>(double*, double*, double*, const double*, const double*,
                                        const double*, const Conv2dShape&);

}  // namespace conv
}  // namespace corenn
