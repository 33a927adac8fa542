// L2 normalisation along one axis (corenn/kernels/l2_normalize.hpp). The fast
// path splits the outer rows across threads and sums each fibre in the same
// order as the naive loop, so both give the same bits.
#include "corenn/kernels/l2_normalize.hpp"

#include <algorithm>
#include <cmath>

#include "backend/parallel.hpp"

namespace corenn {

template <typename T>
void l2_normalize_forward(T* y, T* norm, const T* x, int64_t outer, int64_t axis, int64_t inner) {
  // y, x: (outer, axis, inner); norm: (outer, inner)
  const T eps = static_cast<T>(kL2NormalizeEps);
  detail::parallel_for(0, outer, detail::grain_for(2 * axis * inner), [=](int64_t lo, int64_t hi, int) {
    for (int64_t o = lo; o < hi; ++o) {
      const T* xo = x + o * axis * inner;
      T* yo = y + o * axis * inner;
      T* no = norm + o * inner;
      // Squares summed over the axis, the inner positions side by side (a vectorised stream).
      std::fill(no, no + inner, T(0));
      for (int64_t a = 0; a < axis; ++a)
        for (int64_t i = 0; i < inner; ++i) no[i] += xo[a * inner + i] * xo[a * inner + i];
      for (int64_t i = 0; i < inner; ++i) no[i] = std::max(std::sqrt(no[i]), eps);
      for (int64_t a = 0; a < axis; ++a)
        for (int64_t i = 0; i < inner; ++i) yo[a * inner + i] = xo[a * inner + i] / no[i];
    }
  });
}

template <typename T>
void l2_normalize_forward_naive(T* y, T* norm, const T* x, int64_t outer, int64_t axis, int64_t inner) {
  // y, x: (outer, axis, inner); norm: (outer, inner)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      T sum = 0;
      for (int64_t a = 0; a < axis; ++a) sum += x[(o * axis + a) * inner + i] * x[(o * axis + a) * inner + i];
      const T n = std::max(std::sqrt(sum), static_cast<T>(kL2NormalizeEps));
      norm[o * inner + i] = n;
      for (int64_t a = 0; a < axis; ++a) y[(o * axis + a) * inner + i] = x[(o * axis + a) * inner + i] / n;
    }
}

template <typename T>
void l2_normalize_backward(T* dx, const T* dy, const T* y, const T* norm, int64_t outer, int64_t axis,
                           int64_t inner, bool accumulate) {
  // dx, dy, y: (outer, axis, inner); norm: (outer, inner)
  const T eps = static_cast<T>(kL2NormalizeEps);
  detail::parallel_for(0, outer, detail::grain_for(3 * axis * inner), [=](int64_t lo, int64_t hi, int) {
    for (int64_t o = lo; o < hi; ++o) {
      const int64_t base = o * axis * inner;
      for (int64_t i = 0; i < inner; ++i) {
        const T n = norm[o * inner + i];
        // At n = eps the norm was clamped: a constant, so the projection term drops.
        T ydy = 0;
        if (n > eps)
          for (int64_t a = 0; a < axis; ++a) ydy += y[base + a * inner + i] * dy[base + a * inner + i];
        for (int64_t a = 0; a < axis; ++a) {
          const int64_t at = base + a * inner + i;
          const T g = (dy[at] - y[at] * ydy) / n;
          dx[at] = accumulate ? dx[at] + g : g;
        }
      }
    }
  });
}

template <typename T>
void l2_normalize_backward_naive(T* dx, const T* dy, const T* y, const T* norm, int64_t outer, int64_t axis,
                                 int64_t inner, bool accumulate) {
  // dx, dy, y: (outer, axis, inner); norm: (outer, inner)
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const T n = norm[o * inner + i];
      T ydy = 0;
      if (n > static_cast<T>(kL2NormalizeEps))
        for (int64_t a = 0; a < axis; ++a) ydy += y[(o * axis + a) * inner + i] * dy[(o * axis + a) * inner + i];
      for (int64_t a = 0; a < axis; ++a) {
        const int64_t at = (o * axis + a) * inner + i;
        const T g = (dy[at] - y[at] * ydy) / n;
        dx[at] = accumulate ? dx[at] + g : g;
      }
    }
}

#define CORENN_INSTANTIATE(T)                                                                            \
  template void l2_normalize_forward<T>(T*, T*, const T*, int64_t, int64_t, int64_t);                    \
  template void l2_normalize_forward_naive<T>(T*, T*, const T*, int64_t, int64_t, int64_t);              \
  template void l2_normalize_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t,    \
                                         bool);                                                          \
  template void l2_normalize_backward_naive<T>(T*, const T*, const T*, const T*, int64_t, int64_t,       \
                                               int64_t, bool);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
