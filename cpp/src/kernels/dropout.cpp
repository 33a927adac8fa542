#include "corenn/kernels/dropout.hpp"

#include "corenn/random.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

namespace {
// One element costs a 64-bit hash and a divide: a few simple operations.
constexpr int64_t kHashWork = 2;
}  // namespace

// The kept unit is divided by keep = 1 - rate rather than multiplied by a
// precomputed 1/keep: that is the formula x·mask/(1 − rate) rounded once, so
// the NumPy reference reproduces it bit for bit. Multiplying by the mask
// (rather than selecting 0) keeps IEEE semantics: a NaN input stays NaN.

template <typename T>
void dropout_forward(T* y, uint8_t* mask, const T* x, int64_t n, T rate, uint64_t key) {
  // y: (n,), mask: (n,), x: (n,)
  const T keep = T(1) - rate;
  const double threshold = static_cast<double>(rate);
  detail::parallel_for(0, n, detail::grain_for(kHashWork), [=](int64_t lo, int64_t hi, int) {
    // The mask bit is a pure function of (key, i), so any split of [0, n)
    // draws the same bits as the serial loop.
    for (int64_t i = lo; i < hi; ++i) {
      const uint8_t kept = uniform01(key, static_cast<uint64_t>(i)) >= threshold;
      mask[i] = kept;
      y[i] = x[i] * T(kept) / keep;
    }
  });
}

template <typename T>
void dropout_forward_naive(T* y, uint8_t* mask, const T* x, int64_t n, T rate, uint64_t key) {
  // y: (n,), mask: (n,), x: (n,)
  for (int64_t i = 0; i < n; ++i) {
    mask[i] = uniform01(key, static_cast<uint64_t>(i)) >= static_cast<double>(rate) ? 1 : 0;
    y[i] = x[i] * T(mask[i]) / (T(1) - rate);
  }
}

void dropout_mask(uint8_t* mask, int64_t n, double rate, uint64_t key) {
  // mask: (n,)
  detail::parallel_for(0, n, detail::grain_for(kHashWork), [=](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; ++i) mask[i] = uniform01(key, static_cast<uint64_t>(i)) >= rate;
  });
}

// dx = dy · mask / (1 − rate): the forward is linear in x with that slope.
// Any non-zero mask byte counts as kept, so a mask from elsewhere cannot scale.

template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* mask, int64_t n, T rate) {
  // dx: (n,), dy: (n,), mask: (n,)
  const T keep = T(1) - rate;
  detail::parallel_for(0, n, detail::grain_for(kHashWork), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t i = lo; i < hi; ++i) dx[i] = dy[i] * T(mask[i] != 0) / keep;
  });
}

template <typename T>
void dropout_backward_naive(T* dx, const T* dy, const uint8_t* mask, int64_t n, T rate) {
  // dx: (n,), dy: (n,), mask: (n,)
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (mask[i] ? T(1) : T(0)) / (T(1) - rate);
}

// One mask per sequence: drawn for the (N, F) units, then each step of a
// sequence is scaled by its row (a thread owns whole sequences).

template <typename T>
void sequence_dropout_forward(T* y, uint8_t* mask, const T* x, int64_t batch, int64_t steps, int64_t features,
                              T rate, uint64_t key) {
  // y: (N, T, F), mask: (N, F), x: (N, T, F)
  const T keep = T(1) - rate;
  const double threshold = static_cast<double>(rate);
  const int64_t F = features, S = steps;
  detail::parallel_for(0, batch, detail::grain_for(S * F * kHashWork), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t n = lo; n < hi; ++n) {
      uint8_t* m = mask + n * F;
      for (int64_t f = 0; f < F; ++f) m[f] = uniform01(key, static_cast<uint64_t>(n * F + f)) >= threshold;
      for (int64_t t = 0; t < S; ++t) {
        const T* xt = x + (n * S + t) * F;
        T* yt = y + (n * S + t) * F;
        for (int64_t f = 0; f < F; ++f) yt[f] = xt[f] * T(m[f]) / keep;
      }
    }
  });
}

template <typename T>
void sequence_dropout_forward_naive(T* y, uint8_t* mask, const T* x, int64_t batch, int64_t steps,
                                    int64_t features, T rate, uint64_t key) {
  // y: (N, T, F), mask: (N, F), x: (N, T, F)
  for (int64_t i = 0; i < batch * features; ++i)
    mask[i] = uniform01(key, static_cast<uint64_t>(i)) >= static_cast<double>(rate) ? 1 : 0;
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t f = 0; f < features; ++f)
        y[(n * steps + t) * features + f] =
            x[(n * steps + t) * features + f] * T(mask[n * features + f]) / (T(1) - rate);
}

template <typename T>
void sequence_dropout_backward(T* dx, const T* dy, const uint8_t* mask, int64_t batch, int64_t steps,
                               int64_t features, T rate) {
  // dx: (N, T, F), dy: (N, T, F), mask: (N, F)
  const T keep = T(1) - rate;
  const int64_t F = features, S = steps;
  detail::parallel_for(0, batch, detail::grain_for(S * F), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t n = lo; n < hi; ++n)
      for (int64_t t = 0; t < S; ++t)
        for (int64_t f = 0; f < F; ++f)
          dx[(n * S + t) * F + f] = dy[(n * S + t) * F + f] * T(mask[n * F + f] != 0) / keep;
  });
}

template <typename T>
void sequence_dropout_backward_naive(T* dx, const T* dy, const uint8_t* mask, int64_t batch, int64_t steps,
                                     int64_t features, T rate) {
  // dx: (N, T, F), dy: (N, T, F), mask: (N, F)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t f = 0; f < features; ++f)
        dx[(n * steps + t) * features + f] =
            dy[(n * steps + t) * features + f] * (mask[n * features + f] ? T(1) : T(0)) / (T(1) - rate);
}

#define CORENN_INSTANTIATE(T)                                                                 \
  template void sequence_dropout_forward<T>(T*, uint8_t*, const T*, int64_t, int64_t, int64_t, T, uint64_t); \
  template void sequence_dropout_forward_naive<T>(T*, uint8_t*, const T*, int64_t, int64_t, int64_t, T,      \
                                                  uint64_t);                                                 \
  template void sequence_dropout_backward<T>(T*, const T*, const uint8_t*, int64_t, int64_t, int64_t, T);    \
  template void sequence_dropout_backward_naive<T>(T*, const T*, const uint8_t*, int64_t, int64_t, int64_t,  \
                                                   T);                                                       \
  template void dropout_forward<T>(T*, uint8_t*, const T*, int64_t, T, uint64_t);             \
  template void dropout_forward_naive<T>(T*, uint8_t*, const T*, int64_t, T, uint64_t);       \
  template void dropout_backward<T>(T*, const T*, const uint8_t*, int64_t, T);                \
  template void dropout_backward_naive<T>(T*, const T*, const uint8_t*, int64_t, T);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
