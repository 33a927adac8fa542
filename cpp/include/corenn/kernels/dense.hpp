// Fully connected layer, course notation with examples as rows:
//   Z = X · Wᵀ + b        dX = dZ · W      dW += dZᵀ · X      db += Σ_rows dZ
#pragma once

#include <cstdint>

namespace corenn {

// y: (batch, out_features) written; x: (batch, in_features);
// W: (out_features, in_features); b: (out_features,) or nullptr.
template <typename T>
void dense_forward(T* y, const T* x, const T* W, const T* b, int64_t batch, int64_t in_features,
                   int64_t out_features);
template <typename T>
void dense_forward_naive(T* y, const T* x, const T* W, const T* b, int64_t batch,
                         int64_t in_features, int64_t out_features);

// dx: (batch, in_features) written, or nullptr when no input gradient is needed;
// dW: (out_features, in_features) accumulated; db: (out_features,) accumulated or nullptr;
// dy: (batch, out_features); x: (batch, in_features); W: (out_features, in_features).
template <typename T>
void dense_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W, int64_t batch,
                    int64_t in_features, int64_t out_features);
template <typename T>
void dense_backward_naive(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                          int64_t batch, int64_t in_features, int64_t out_features);

}  // namespace corenn
