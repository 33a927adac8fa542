// Inverted dropout: keep each unit with probability 1 - rate and scale the kept
// ones by 1/(1 - rate), so inference needs no rescaling. Unit i is kept when
// uniform01(key, i) >= rate: the mask depends on the key alone, not the threads.
#pragma once

#include <cstdint>

namespace corenn {

// y: (n,) written; mask: (n,) written, 1 = kept; x: (n,). rate in [0, 1).
template <typename T>
void dropout_forward(T* y, uint8_t* mask, const T* x, int64_t n, T rate, uint64_t key);
template <typename T>
void dropout_forward_naive(T* y, uint8_t* mask, const T* x, int64_t n, T rate, uint64_t key);

// The mask alone, as dropout_forward draws it: mask[i] = uniform01(key, i) >= rate
// (layers that drop something a kernel computes, the attention weights).
void dropout_mask(uint8_t* mask, int64_t n, double rate, uint64_t key);

// dx: (n,) written; dy: (n,); mask: (n,).
template <typename T>
void dropout_backward(T* dx, const T* dy, const uint8_t* mask, int64_t n, T rate);
template <typename T>
void dropout_backward_naive(T* dx, const T* dy, const uint8_t* mask, int64_t n, T rate);

// Dropout with one mask per sequence (the recurrent layers' `dropout`, Keras's
// and Gal & Ghahramani's 2016 variational dropout): unit (n, f) is kept when
// uniform01(key, n·F + f) >= rate (the mask dropout_forward draws for an
// (N, F) array) and the same mask scales every step t.
// y: (N, T, F) written; mask: (N, F) written; x: (N, T, F).
template <typename T>
void sequence_dropout_forward(T* y, uint8_t* mask, const T* x, int64_t batch, int64_t steps, int64_t features,
                              T rate, uint64_t key);
template <typename T>
void sequence_dropout_forward_naive(T* y, uint8_t* mask, const T* x, int64_t batch, int64_t steps,
                                    int64_t features, T rate, uint64_t key);

// dx: (N, T, F) written; dy: (N, T, F); mask: (N, F).
template <typename T>
void sequence_dropout_backward(T* dx, const T* dy, const uint8_t* mask, int64_t batch, int64_t steps,
                               int64_t features, T rate);
template <typename T>
void sequence_dropout_backward_naive(T* dx, const T* dy, const uint8_t* mask, int64_t batch, int64_t steps,
                                     int64_t features, T rate);

}  // namespace corenn
