#include "corenn/kernels/masking.hpp"

#include <algorithm>

#include "backend/parallel.hpp"

namespace corenn {

// One pass over memory: the kernels are bound by reading x, so rows split
// over the threads with a grain of a few thousand values.
namespace {
int64_t row_grain(int64_t features) { return std::max<int64_t>(1, 4096 / std::max<int64_t>(1, features)); }
}  // namespace

template <typename T>
void masking_forward(T* y, uint8_t* mask, const T* x, int64_t rows, int64_t features, T mask_value) {
  detail::parallel_for(0, rows, row_grain(features), [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * features;
      bool valid = false;
      for (int64_t f = 0; f < features; ++f) valid = valid || xr[f] != mask_value;
      mask[r] = valid;
      if (valid)
        std::copy(xr, xr + features, y + r * features);
      else
        std::fill(y + r * features, y + (r + 1) * features, T(0));
    }
  });
}

template <typename T>
void masking_backward(T* dx, const T* dy, const uint8_t* mask, int64_t rows, int64_t features) {
  detail::parallel_for(0, rows, row_grain(features), [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r)
      if (mask[r])
        std::copy(dy + r * features, dy + (r + 1) * features, dx + r * features);
      else
        std::fill(dx + r * features, dx + (r + 1) * features, T(0));
  });
}

#define CORENN_INSTANTIATE(T)                                                           \
  template void masking_forward<T>(T*, uint8_t*, const T*, int64_t, int64_t, T);       \
  template void masking_backward<T>(T*, const T*, const uint8_t*, int64_t, int64_t);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
