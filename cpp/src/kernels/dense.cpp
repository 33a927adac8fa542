#include "corenn/kernels/dense.hpp"

#include "backend/gemm.hpp"

namespace corenn {

using detail::gemm;
using detail::Trans;

template <typename T>
void dense_forward(T* y, const T* x, const T* W, const T* b, int64_t batch, int64_t in_features,
                   int64_t out_features) {
  // Writing b into every row first lets the GEMM add X·Wᵀ with beta = 1: one
  // pass over y instead of a GEMM pass and a separate bias pass.
  if (b) {
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t j = 0; j < out_features; ++j) y[i * out_features + j] = b[j];
  }
  gemm<T>(Trans::no, Trans::yes, batch, out_features, in_features, T(1), x, in_features, W,
          in_features, b ? T(1) : T(0), y, out_features);
}

template <typename T>
void dense_forward_naive(T* y, const T* x, const T* W, const T* b, int64_t batch,
                         int64_t in_features, int64_t out_features) {
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t j = 0; j < out_features; ++j) {
      T acc = b ? b[j] : T(0);
      for (int64_t k = 0; k < in_features; ++k) acc += x[i * in_features + k] * W[j * in_features + k];
      y[i * out_features + j] = acc;
    }
}

template <typename T>
void dense_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int64_t batch,
                    int64_t in_features, int64_t out_features) {
  if (dx)
    gemm<T>(Trans::no, Trans::no, batch, in_features, out_features, T(1), dy, out_features, W,
            in_features, T(0), dx, in_features);
  gemm<T>(Trans::yes, Trans::no, out_features, in_features, batch, T(1), dy, out_features, x,
          in_features, T(1), dW, in_features);
  if (db) {
    // Row by row so the inner loop runs along contiguous memory and vectorises.
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t j = 0; j < out_features; ++j) db[j] += dy[i * out_features + j];
  }
}

template <typename T>
void dense_backward_naive(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                          int64_t batch, int64_t in_features, int64_t out_features) {
  if (dx)
    for (int64_t i = 0; i < batch; ++i)
      for (int64_t k = 0; k < in_features; ++k) {
        T acc = 0;
        for (int64_t j = 0; j < out_features; ++j)
          acc += dy[i * out_features + j] * W[j * in_features + k];
        dx[i * in_features + k] = acc;
      }
  for (int64_t j = 0; j < out_features; ++j)
    for (int64_t k = 0; k < in_features; ++k) {
      T acc = 0;
      for (int64_t i = 0; i < batch; ++i) acc += dy[i * out_features + j] * x[i * in_features + k];
      dW[j * in_features + k] += acc;
    }
  if (db)
    for (int64_t j = 0; j < out_features; ++j) {
      T acc = 0;
      for (int64_t i = 0; i < batch; ++i) acc += dy[i * out_features + j];
      db[j] += acc;
    }
}

#define CORENN_INSTANTIATE(T)                                                                    \
  template void dense_forward<T>(T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);   \
  template void dense_forward_naive<T>(T*, const T*, const T*, const T*, int64_t, int64_t,       \
                                       int64_t);                                                 \
  template void dense_backward<T>(T*, T*, T*, const T*, const T*, const T*, int64_t, int64_t,    \
                                  int64_t);                                                      \
  template void dense_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*, int64_t,       \
                                        int64_t, int64_t);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
