#include "corenn/kernels/bidirectional.hpp"

#include <algorithm>

#include "backend/parallel.hpp"

namespace corenn {

template <typename T>
void reverse_steps(T* out, const T* x, int64_t batch, int64_t steps, int64_t width) {
  // x, out: (batch, steps, width)
  detail::parallel_for(0, batch * steps, detail::grain_for(width), [=](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const int64_t n = r / steps, t = r % steps;
      std::copy(x + r * width, x + (r + 1) * width, out + (n * steps + steps - 1 - t) * width);
    }
  });
}

template <typename T>
void merge_directions_forward(T* y, const T* a, const T* b, int64_t rows, int64_t wa, int64_t wb,
                              DirectionMerge mode) {
  // y: (rows, wa + wb) or (rows, wa); a: (rows, wa); b: (rows, wb)
  const int64_t wy = mode == DirectionMerge::concat ? wa + wb : wa;
  detail::parallel_for(0, rows, detail::grain_for(wy), [=](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* ar = a + r * wa;
      const T* br = b + r * wb;
      T* yr = y + r * wy;
      switch (mode) {
        case DirectionMerge::concat:
          std::copy(ar, ar + wa, yr);
          std::copy(br, br + wb, yr + wa);
          break;
        case DirectionMerge::sum:
          for (int64_t j = 0; j < wa; ++j) yr[j] = ar[j] + br[j];
          break;
        case DirectionMerge::mul:
          for (int64_t j = 0; j < wa; ++j) yr[j] = ar[j] * br[j];
          break;
        case DirectionMerge::ave:
          for (int64_t j = 0; j < wa; ++j) yr[j] = (ar[j] + br[j]) * T(0.5);
          break;
      }
    }
  });
}

template <typename T>
void merge_directions_backward(T* da, T* db, const T* dy, const T* a, const T* b, int64_t rows, int64_t wa,
                               int64_t wb, DirectionMerge mode) {
  // da: (rows, wa); db: (rows, wb); dy: (rows, wa + wb) or (rows, wa)
  const int64_t wy = mode == DirectionMerge::concat ? wa + wb : wa;
  detail::parallel_for(0, rows, detail::grain_for(wy), [=](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* dyr = dy + r * wy;
      T* dar = da + r * wa;
      T* dbr = db + r * wb;
      switch (mode) {
        case DirectionMerge::concat:
          std::copy(dyr, dyr + wa, dar);
          std::copy(dyr + wa, dyr + wa + wb, dbr);
          break;
        case DirectionMerge::sum:
          std::copy(dyr, dyr + wa, dar);
          std::copy(dyr, dyr + wa, dbr);
          break;
        case DirectionMerge::mul:
          for (int64_t j = 0; j < wa; ++j) dar[j] = dyr[j] * b[r * wb + j], dbr[j] = dyr[j] * a[r * wa + j];
          break;
        case DirectionMerge::ave:
          for (int64_t j = 0; j < wa; ++j) dar[j] = dbr[j] = dyr[j] * T(0.5);
          break;
      }
    }
  });
}

#define CORENN_INSTANTIATE(T)                                                                              \
  template void reverse_steps<T>(T*, const T*, int64_t, int64_t, int64_t);                               \
  template void merge_directions_forward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t,           \
                                            DirectionMerge);                                             \
  template void merge_directions_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t,     \
                                             int64_t, DirectionMerge);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE
// The step masks (one byte per step) reverse with their sequence.
template void reverse_steps<uint8_t>(uint8_t*, const uint8_t*, int64_t, int64_t, int64_t);

}  // namespace corenn
