// Activations. All are element-wise except softmax, which normalises each row.
//   sigmoid σ(x) = 1/(1+e^-x)          σ' = y(1-y)
//   tanh                               tanh' = 1 - y²
//   relu max(0, x)                     relu' = [x > 0]
//   leaky_relu x if x > 0 else αx      leaky' = 1 if x > 0 else α
//   softmax y_j = e^{x_j - max} / Σ_k e^{x_k - max}     dx = y ⊙ (dy - Σ_j dy_j y_j)
//   linear  y = x                      linear' = 1
#pragma once

#include <cstdint>
#include <string>

namespace corenn {

enum class Activation { linear, sigmoid, tanh, relu, leaky_relu, softmax };

// Parses "linear", "sigmoid", "tanh", "relu", "leaky_relu", "softmax" (None/"" is linear
// at the Python level); throws ValueError naming the valid kinds otherwise.
Activation parse_activation(const std::string& name);
const char* activation_name(Activation kind);

// y: (rows, cols) written; x: (rows, cols). y may alias x (in place).
template <typename T>
void activation_forward(T* y, const T* x, int64_t rows, int64_t cols, Activation kind, T alpha);
template <typename T>
void activation_forward_naive(T* y, const T* x, int64_t rows, int64_t cols, Activation kind,
                              T alpha);

// dx: (rows, cols) written (may alias dy); dy, x, y: (rows, cols) — the forward's input and
// output, whichever the derivative needs.
template <typename T>
void activation_backward(T* dx, const T* dy, const T* x, const T* y, int64_t rows, int64_t cols,
                         Activation kind, T alpha);
template <typename T>
void activation_backward_naive(T* dx, const T* dy, const T* x, const T* y, int64_t rows,
                               int64_t cols, Activation kind, T alpha);

}  // namespace corenn
