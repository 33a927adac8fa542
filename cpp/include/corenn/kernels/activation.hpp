// Activations. All are element-wise except softmax, which normalises over one axis.
//   linear       y = x                                  y' = 1
//   sigmoid      σ(x) = 1/(1+e^-x)                      σ' = y(1-y)
//   tanh                                                tanh' = 1 - y²
//   relu         max(0, x)                              relu' = [x > 0]
//   leaky_relu   x if x > 0 else αx                     1 if x > 0 else α
//   softmax      y_c = e^{x_c - max} / Σ_k e^{x_k - max}    dx = y ⊙ (dy - Σ_c dy_c y_c)
//   elu          x if x > 0 else α(e^x - 1)             1 if x > 0 else α·e^x
//   selu         λ·elu_α(x), λ ≈ 1.0507, α ≈ 1.67326    λ if x > 0 else λα·e^x
//   gelu         x·Φ(x), Φ(x) = ½ erfc(-x/√2)           Φ(x) + x·φ(x), φ(x) = e^{-x²/2}/√(2π)
//   gelu_tanh    ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³)
//                                  ½(1 + tanh u) + ½x(1 - tanh²u)·√(2/π)(1 + 3·0.044715x²)
//   silu/swish   x·σ(x)                                 σ(x)(1 + x(1 - σ(x)))
//   softplus     log1p(e^{-|x|}) + max(x, 0)            σ(x)
//   relu6        min(max(x, 0), 6)                      [0 < x < 6]
//   hard_sigmoid relu6(x + 3)/6                         [-3 < x < 3]/6
//   abs          |x|                                    sign(x) (0 at 0)
// Sources: PyTorch's ELU, SELU, GELU(approximate='none'|'tanh'), SiLU, Softplus,
// ReLU6, Hardsigmoid; abs is torch.abs (its gradient sign(x), 0 at 0), for the
// course's verification head on |f(x1) − f(x2)|; Keras 3's activations of the same names (hard_sigmoid is
// Keras 3's relu6(x + 3)/6, not Keras 2's 0.2x + 0.5).
//
// Special values: every kind maps NaN to NaN (relu(NaN) = NaN, as NumPy and
// PyTorch), forward and backward: dx = dy · f'(x) is an IEEE product and
// f'(NaN) = NaN (linear, the identity, passes dy through). ±inf give the function's limit (sigmoid(±inf) = 1/0,
// silu(-inf) = gelu(-inf) = 0, and their derivatives' limits) rather than the
// NaN of inf·0. A softmax row holding a NaN or +inf is all NaN (as PyTorch:
// +inf - +inf is NaN); -inf entries get probability 0.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace corenn {

enum class Activation {
  linear, sigmoid, tanh, relu, leaky_relu, softmax, elu, selu, gelu, gelu_tanh, silu, softplus,
  relu6, hard_sigmoid, abs
};

// The one list of activation names: the layers, the model file, the bindings
// and the Python API all read it. Aliases are extra rows (swish = silu).
struct ActivationEntry {
  const char* name;
  Activation kind;
  // alpha when the caller gives none: leaky_relu's slope 0.01 (PyTorch), elu's
  // α = 1.0 (Keras, PyTorch); the other kinds ignore alpha and carry 0.01, the
  // LayerSpec default.
  double default_alpha;
};
const std::vector<ActivationEntry>& activation_registry();

// The registry row named `name`; otherwise ValueError
// "<context> must be one of 'linear', 'sigmoid', ..., got '<name>'" (the one
// place activation names are validated). None/"" mean linear only at the Python level.
const ActivationEntry& find_activation(const std::string& name,
                                       const std::string& context = "activation");
inline Activation parse_activation(const std::string& name,
                                   const std::string& context = "activation") {
  return find_activation(name, context).kind;
}
// The first registry name of `kind` (silu for silu/swish).
const char* activation_name(Activation kind);

// How a tensor splits for an activation: (outer, channels, inner) with softmax
// normalising over `channels` at stride `inner`. The feature axis is the channel
// axis 1 of 4-D and larger tensors (NCHW images), the last axis otherwise
// ((N, F), (N, T, F), a 1-D vector). Element-wise kinds see outer·channels·inner values.
struct ActivationAxes {
  int64_t outer = 1, channels = 1, inner = 1;
};
ActivationAxes activation_axes(const std::vector<int64_t>& shape);

// y: (outer, channels, inner) written; x: (outer, channels, inner). y may alias x (in place).
template <typename T>
void activation_forward(T* y, const T* x, int64_t outer, int64_t channels, int64_t inner,
                        Activation kind, T alpha);
template <typename T>
void activation_forward_naive(T* y, const T* x, int64_t outer, int64_t channels, int64_t inner,
                              Activation kind, T alpha);

// dx: (outer, channels, inner) written (may alias dy); dy, x, y: (outer, channels, inner) —
// the forward's input and output, whichever the derivative needs.
template <typename T>
void activation_backward(T* dx, const T* dy, const T* x, const T* y, int64_t outer,
                         int64_t channels, int64_t inner, Activation kind, T alpha);
template <typename T>
void activation_backward_naive(T* dx, const T* dy, const T* x, const T* y, int64_t outer,
                               int64_t channels, int64_t inner, Activation kind, T alpha);

}  // namespace corenn
