// The convolution epilogue (conv_epilogue.hpp): one pass over a span of the
// output while it is still in cache, instead of one pass per operation
// (bias, residual add, ReLU) over the whole tensor.
#include "kernels/conv_epilogue.hpp"

#include "backend/simd.hpp"

namespace corenn {
namespace conv {

namespace {

// The relu and residual branches are hoisted out of the loop so that each
// variant vectorises to one add (two with a residual) and one max per lane.
// The ReLU is activation.hpp's, v < 0 ? 0 : v: a NaN passes through (a NaN
// input must give a NaN prediction, not a ReLU-washed 0).
template <typename T>
inline void span(T* y, const T* z, T bias, const T* residual, int64_t n, bool relu) {
  if (residual) {
    if (relu)
      for (int64_t i = 0; i < n; ++i) {
        const T v = z[i] + bias + residual[i];
        y[i] = v < T(0) ? T(0) : v;
      }
    else
      for (int64_t i = 0; i < n; ++i) y[i] = z[i] + bias + residual[i];
  } else if (relu) {
    for (int64_t i = 0; i < n; ++i) {
      const T v = z[i] + bias;
      y[i] = v < T(0) ? T(0) : v;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = z[i] + bias;
  }
}

}  // namespace

CORENN_SIMD_CLONES
void epilogue_span(float* y, const float* z, float bias, const float* residual, int64_t n, bool relu) {
  span(y, z, bias, residual, n, relu);
}

CORENN_SIMD_CLONES
void epilogue_span(double* y, const double* z, double bias, const double* residual, int64_t n, bool relu) {
  span(y, z, bias, residual, n, relu);
}

}  // namespace conv
}  // namespace corenn
