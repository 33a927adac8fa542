#include "corenn/kernels/style.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "backend/gemm.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {

using detail::Trans;

template <typename T>
inline T sign(T v) {
  return v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0));
}

// 1 / (4·C²·(H·W)²), the course's style normalisation, in double: for a real
// layer (C = 512, H·W = 196) the denominator is about 4e10.
inline double style_scale(int64_t c, int64_t hw) {
  const double chw = static_cast<double>(c) * static_cast<double>(hw);
  return 1.0 / (4.0 * chw * chw);
}

}  // namespace

template <typename T>
void validate_finite(const T* a, int64_t n, const char* op, const char* arg) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(a[i]))
      throw ValueError(std::string(op) + ": " + arg + " must be finite (no NaN or inf), got " +
                       std::to_string(a[i]) + " at flat index " + std::to_string(i));
}

// ---------------------------------------------------------------------------
// Gram matrix: one C×C×HW product per image through the BLAS door.

template <typename T>
void gram_matrix(T* g, const T* a, int64_t n, int64_t c, int64_t hw) {
  for (int64_t i = 0; i < n; ++i)
    detail::gemm(Trans::no, Trans::yes, c, c, hw, T(1), a + i * c * hw, hw, a + i * c * hw, hw,
                 T(0), g + i * c * c, c);
}

template <typename T>
void gram_matrix_naive(T* g, const T* a, int64_t n, int64_t c, int64_t hw) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < c; ++p)
      for (int64_t q = 0; q < c; ++q) {
        double s = 0;
        for (int64_t k = 0; k < hw; ++k)
          s += static_cast<double>(a[(i * c + p) * hw + k]) * a[(i * c + q) * hw + k];
        g[(i * c + p) * c + q] = static_cast<T>(s);
      }
}

// G_pq = Σ_k A_pk A_qk, so dA_pk = Σ_q dG_pq A_qk + Σ_q dG_qp A_qk: dG·A + dGᵀ·A,
// two products accumulated into dA without forming dG + dGᵀ.
template <typename T>
void gram_matrix_backward(T* da, const T* dg, const T* a, int64_t n, int64_t c, int64_t hw) {
  for (int64_t i = 0; i < n; ++i) {
    const T* ai = a + i * c * hw;
    const T* dgi = dg + i * c * c;
    T* dai = da + i * c * hw;
    detail::gemm(Trans::no, Trans::no, c, hw, c, T(1), dgi, c, ai, hw, T(0), dai, hw);
    detail::gemm(Trans::yes, Trans::no, c, hw, c, T(1), dgi, c, ai, hw, T(1), dai, hw);
  }
}

template <typename T>
void gram_matrix_backward_naive(T* da, const T* dg, const T* a, int64_t n, int64_t c,
                                int64_t hw) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < c; ++p)
      for (int64_t k = 0; k < hw; ++k) {
        double s = 0;
        for (int64_t q = 0; q < c; ++q)
          s += (static_cast<double>(dg[(i * c + p) * c + q]) + dg[(i * c + q) * c + p]) *
               a[(i * c + q) * hw + k];
        da[(i * c + p) * hw + k] = static_cast<T>(s);
      }
}

// ---------------------------------------------------------------------------
// Content cost: a squared distance, elementwise, so a parallel sum.

template <typename T>
T content_cost(T* da_g, const T* a_c, const T* a_g, int64_t n, int64_t c, int64_t hw) {
  const int64_t total = n * c * hw;
  const double scale = 1.0 / (4.0 * static_cast<double>(c) * static_cast<double>(hw));
  const T gscale = static_cast<T>(2.0 * scale);
  const double sum = detail::parallel_sum(total, detail::kGrain, [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t k = lo; k < hi; ++k) {
      const T d = a_g[k] - a_c[k];
      acc += static_cast<double>(d) * d;
      if (da_g) da_g[k] = gscale * d;
    }
    return acc;
  });
  return static_cast<T>(sum * scale);
}

template <typename T>
T content_cost_naive(T* da_g, const T* a_c, const T* a_g, int64_t n, int64_t c, int64_t hw) {
  const double denom = 4.0 * static_cast<double>(c) * static_cast<double>(hw);
  double sum = 0;
  for (int64_t k = 0; k < n * c * hw; ++k) {
    const double d = static_cast<double>(a_g[k]) - a_c[k];
    sum += d * d;
    if (da_g) da_g[k] = static_cast<T>(2.0 * d / denom);
  }
  return static_cast<T>(sum / denom);
}

// ---------------------------------------------------------------------------
// Style cost: J = k·Σ(G_G − G_S)², k = 1/(4C²(HW)²). With D = G_G − G_S,
// dJ/dG_G = 2k·D, and the Gram backward gives (2kD + 2kDᵀ)·A_G = 4k·D·A_G
// (D is symmetric): one product per image.

template <typename T>
T style_cost(T* da_g, const T* a_s, const T* a_g, int64_t n, int64_t c, int64_t hw) {
  const double k = style_scale(c, hw);
  std::vector<T> gs(static_cast<size_t>(c * c)), diff(static_cast<size_t>(c * c));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* agi = a_g + i * c * hw;
    gram_matrix(gs.data(), a_s + i * c * hw, 1, c, hw);
    gram_matrix(diff.data(), agi, 1, c, hw);
    for (int64_t j = 0; j < c * c; ++j) {
      diff[j] -= gs[j];
      sum += static_cast<double>(diff[j]) * diff[j];
    }
    if (da_g)
      detail::gemm(Trans::no, Trans::no, c, hw, c, static_cast<T>(4.0 * k), diff.data(), c, agi,
                   hw, T(0), da_g + i * c * hw, hw);
  }
  return static_cast<T>(sum * k);
}

template <typename T>
T style_cost_naive(T* da_g, const T* a_s, const T* a_g, int64_t n, int64_t c, int64_t hw) {
  const double k = style_scale(c, hw);
  std::vector<T> gs(static_cast<size_t>(c * c)), gg(static_cast<size_t>(c * c));
  std::vector<double> diff(static_cast<size_t>(c * c));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* agi = a_g + i * c * hw;
    gram_matrix_naive(gs.data(), a_s + i * c * hw, 1, c, hw);
    gram_matrix_naive(gg.data(), agi, 1, c, hw);
    for (int64_t j = 0; j < c * c; ++j) {
      diff[j] = static_cast<double>(gg[j]) - gs[j];
      sum += diff[j] * diff[j];
    }
    if (da_g)
      for (int64_t p = 0; p < c; ++p)
        for (int64_t x = 0; x < hw; ++x) {
          double s = 0;
          for (int64_t q = 0; q < c; ++q) s += diff[p * c + q] * agi[q * hw + x];
          da_g[i * c * hw + p * hw + x] = static_cast<T>(4.0 * k * s);
        }
  }
  return static_cast<T>(sum * k);
}

// ---------------------------------------------------------------------------
// Total variation. Each (image, channel) plane is independent: the parallel
// split is over planes, so each thread writes only its planes' gradient.

template <typename T>
T total_variation(T* dimg, const T* img, int64_t n, int64_t c, int64_t h, int64_t w) {
  const int64_t plane = h * w;
  const double sum = detail::parallel_sum(
      n * c, detail::grain_for(plane), [&](int64_t lo, int64_t hi) {
        double acc = 0;
        for (int64_t pi = lo; pi < hi; ++pi) {
          const T* x = img + pi * plane;
          T* dx = dimg ? dimg + pi * plane : nullptr;
          if (dx)
            for (int64_t k = 0; k < plane; ++k) dx[k] = T(0);
          for (int64_t y = 0; y < h; ++y)
            for (int64_t z = 0; z < w; ++z) {
              const T v = x[y * w + z];
              if (y + 1 < h) {
                const T d = x[(y + 1) * w + z] - v;
                acc += std::fabs(static_cast<double>(d));
                if (dx) {
                  dx[(y + 1) * w + z] += sign(d);
                  dx[y * w + z] -= sign(d);
                }
              }
              if (z + 1 < w) {
                const T d = x[y * w + z + 1] - v;
                acc += std::fabs(static_cast<double>(d));
                if (dx) {
                  dx[y * w + z + 1] += sign(d);
                  dx[y * w + z] -= sign(d);
                }
              }
            }
        }
        return acc;
      });
  return static_cast<T>(sum);
}

template <typename T>
T total_variation_naive(T* dimg, const T* img, int64_t n, int64_t c, int64_t h, int64_t w) {
  if (dimg)
    for (int64_t k = 0; k < n * c * h * w; ++k) dimg[k] = T(0);
  double sum = 0;
  for (int64_t pi = 0; pi < n * c; ++pi) {
    const int64_t o = pi * h * w;
    // Vertical differences, then horizontal ones, as tf.image.total_variation.
    for (int64_t y = 0; y + 1 < h; ++y)
      for (int64_t z = 0; z < w; ++z) {
        const T d = img[o + (y + 1) * w + z] - img[o + y * w + z];
        sum += std::fabs(static_cast<double>(d));
        if (dimg) {
          dimg[o + (y + 1) * w + z] += sign(d);
          dimg[o + y * w + z] -= sign(d);
        }
      }
    for (int64_t y = 0; y < h; ++y)
      for (int64_t z = 0; z + 1 < w; ++z) {
        const T d = img[o + y * w + z + 1] - img[o + y * w + z];
        sum += std::fabs(static_cast<double>(d));
        if (dimg) {
          dimg[o + y * w + z + 1] += sign(d);
          dimg[o + y * w + z] -= sign(d);
        }
      }
  }
  return static_cast<T>(sum);
}

#define CORENN_STYLE_INSTANTIATE(T)                                                            \
  template void validate_finite<T>(const T*, int64_t, const char*, const char*);              \
  template void gram_matrix<T>(T*, const T*, int64_t, int64_t, int64_t);                      \
  template void gram_matrix_naive<T>(T*, const T*, int64_t, int64_t, int64_t);                \
  template void gram_matrix_backward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);   \
  template void gram_matrix_backward_naive<T>(T*, const T*, const T*, int64_t, int64_t,       \
                                              int64_t);                                       \
  template T content_cost<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);              \
  template T content_cost_naive<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);        \
  template T style_cost<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);                \
  template T style_cost_naive<T>(T*, const T*, const T*, int64_t, int64_t, int64_t);          \
  template T total_variation<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t);            \
  template T total_variation_naive<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t);

CORENN_STYLE_INSTANTIATE(float)
CORENN_STYLE_INSTANTIATE(double)

#undef CORENN_STYLE_INSTANTIATE

}  // namespace corenn
