#include "corenn/kernels/activation.hpp"

#include <algorithm>
#include <cmath>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

// ---------------------------------------------------------------------------
// The registry: the only place activation names are listed.

const std::vector<ActivationEntry>& activation_registry() {
  static const std::vector<ActivationEntry> entries = {
      {"linear", Activation::linear, 0.01},
      {"sigmoid", Activation::sigmoid, 0.01},
      {"tanh", Activation::tanh, 0.01},
      {"relu", Activation::relu, 0.01},
      {"leaky_relu", Activation::leaky_relu, 0.01},
      {"softmax", Activation::softmax, 0.01},
      {"elu", Activation::elu, 1.0},
      {"selu", Activation::selu, 0.01},
      {"gelu", Activation::gelu, 0.01},
      {"gelu_tanh", Activation::gelu_tanh, 0.01},
      {"silu", Activation::silu, 0.01},
      {"swish", Activation::silu, 0.01},
      {"softplus", Activation::softplus, 0.01},
      {"relu6", Activation::relu6, 0.01},
      {"hard_sigmoid", Activation::hard_sigmoid, 0.01},
      {"abs", Activation::abs, 0.01},
  };
  return entries;
}

const ActivationEntry& find_activation(const std::string& name, const std::string& context) {
  const auto& entries = activation_registry();
  for (const ActivationEntry& e : entries)
    if (name == e.name) return e;
  std::string valid;
  for (const ActivationEntry& e : entries) valid += std::string(valid.empty() ? "'" : ", '") + e.name + "'";
  throw ValueError(context + " must be one of " + valid + ", got '" + name + "'");
}

const char* activation_name(Activation kind) {
  for (const ActivationEntry& e : activation_registry())
    if (e.kind == kind) return e.name;
  return "unknown";
}

ActivationAxes activation_axes(const std::vector<int64_t>& shape) {
  ActivationAxes a;
  if (shape.empty()) return a;
  // NCHW (and larger): the channels, axis 1, are the features; the rest are positions.
  const size_t axis = shape.size() >= 4 ? 1 : shape.size() - 1;
  for (size_t d = 0; d < axis; ++d) a.outer *= shape[d];
  a.channels = shape[axis];
  for (size_t d = axis + 1; d < shape.size(); ++d) a.inner *= shape[d];
  return a;
}

namespace {

// Softmax positions (along `inner`) handled together: their running max and
// sum live in registers/stack while the channels stream past at stride inner.
constexpr int64_t kBlock = 64;

// PyTorch's SELU constants (Klambauer et al. 2017).
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluLambda = 1.0507009873554804934193349852946;
constexpr double kSqrt1_2 = 0.70710678118654752440;      // 1/√2
constexpr double kInvSqrt2Pi = 0.39894228040143267794;   // 1/√(2π)
constexpr double kSqrt2_Pi = 0.79788456080286535588;     // √(2/π)
constexpr double kGeluCubic = 0.044715;

// σ(x) without overflow: e^{-|x|} lies in (0, 1] for every x, so neither branch
// can produce inf; the x < 0 branch is σ(x) = e^x / (1 + e^x) rewritten.
template <typename T>
inline T stable_sigmoid(T x) {
  const T e = std::exp(-std::fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// a·b where b → 0 wins over a → ±inf: x·σ(x) at x = -inf is the limit 0, not
// inf·0 = NaN. A NaN in b (from a NaN x) still propagates.
template <typename T>
inline T times(T a, T b) {
  return b == T(0) ? T(0) : a * b;
}

// Derivatives made of comparisons ([x > 0]) are 0 or 1 at NaN; f'(NaN) is NaN.
template <typename T>
inline T keep_nan(T x, T d) {
  return x == x ? d : x;
}

// Φ(x), the standard normal CDF: erfc keeps its digits in the left tail, where
// 1 + erf(x/√2) cancels.
template <typename T>
inline T normal_cdf(T x) {
  return T(0.5) * std::erfc(-x * T(kSqrt1_2));
}

template <typename T>
inline T gelu_tanh_u(T x) {
  return T(kSqrt2_Pi) * (x + T(kGeluCubic) * x * x * x);
}

// Softmax over `channels` at stride `inner` for `len` <= kBlock neighbouring
// positions. y may alias x: each y is written after the x at its index is read.
// y, x: (channels, inner) views starting at the first position of the block.
// kRow (inner = len = 1, a contiguous row) makes both 1 at compile time, so the
// position loops vanish and the channel loops vectorise.
template <bool kRow, typename T>
CORENN_SIMD_CLONES void softmax_block(T* y, const T* x, int64_t channels, int64_t inner_, int64_t len_) {
  const int64_t inner = kRow ? 1 : inner_, len = kRow ? 1 : len_;
  // Subtracting the max keeps every exponent <= 0, so e^{...} <= 1 never
  // overflows and the largest term is exactly 1 (the sum is >= 1, never 0).
  T m[kBlock];
  double sum[kBlock];  // double: a float sum over thousands of classes loses digits
  for (int64_t i = 0; i < len; ++i) m[i] = x[i];
  for (int64_t c = 1; c < channels; ++c)
    for (int64_t i = 0; i < len; ++i) m[i] = std::max(m[i], x[c * inner + i]);
  for (int64_t i = 0; i < len; ++i) sum[i] = 0;
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < len; ++i) {
      // A NaN (or +inf - +inf) makes e, hence the sum and the whole column, NaN.
      const T e = std::exp(x[c * inner + i] - m[i]);
      y[c * inner + i] = e;
      sum[i] += e;
    }
  }
  for (int64_t i = 0; i < len; ++i) m[i] = static_cast<T>(1.0 / sum[i]);
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < len; ++i) y[c * inner + i] *= m[i];
}

// The softmax Jacobian is diag(y) - y yᵀ, so dx = y ⊙ (dy - <dy, y>): one dot
// product per position instead of a channels×channels matrix. dx may alias dy.
template <bool kRow, typename T>
CORENN_SIMD_CLONES void softmax_backward_block(T* dx, const T* dy, const T* y, int64_t channels, int64_t inner_,
                            int64_t len_) {
  const int64_t inner = kRow ? 1 : inner_, len = kRow ? 1 : len_;
  double dot[kBlock];
  for (int64_t i = 0; i < len; ++i) dot[i] = 0;
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t i = 0; i < len; ++i) dot[i] += static_cast<double>(dy[c * inner + i]) * y[c * inner + i];
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t i = 0; i < len; ++i) {
      const int64_t k = c * inner + i;
      dx[k] = y[k] * (dy[k] - static_cast<T>(dot[i]));
    }
  }
}

// Runs block(offset, len) over every (outer, block of inner positions), split
// across threads so that a chunk holds about kGrain of work (an exp each). With inner = 1
// (rows of (N, F) or (N, T, F)) a block is one contiguous row.
template <typename F>
void for_each_softmax_block(int64_t outer, int64_t channels, int64_t inner, F&& block) {
  const int64_t blocks = (inner + kBlock - 1) / kBlock;
  const int64_t per_task = std::max<int64_t>(channels * std::min(inner, kBlock), 1);
  detail::parallel_for(0, outer * blocks, detail::grain_for(detail::kTranscendentalWork * per_task),
                       [&](int64_t lo, int64_t hi, int) {
                         for (int64_t t = lo; t < hi; ++t) {
                           const int64_t o = t / blocks, i0 = (t % blocks) * kBlock;
                           block(o * channels * inner + i0, std::min(kBlock, inner - i0));
                         }
                       });
}

}  // namespace

// ---------------------------------------------------------------------------
// Fast kernels: element-wise kinds treat the tensor as one flat run of
// outer·channels·inner elements split across threads; softmax splits blocks of
// positions.

template <typename T>
void activation_forward(T* y, const T* x, int64_t outer, int64_t channels, int64_t inner,
                        Activation kind, T alpha) {
  if (kind == Activation::softmax) {
    if (channels <= 0) return;
    for_each_softmax_block(outer, channels, inner, [=](int64_t at, int64_t len) {
      if (inner == 1) softmax_block<true>(y + at, x + at, channels, inner, len);
      else softmax_block<false>(y + at, x + at, channels, inner, len);
    });
    return;
  }
  const int64_t n = outer * channels * inner;
  // The switch sits outside the loops so each inner loop is one branch-free
  // body the compiler can vectorise (the selects become blends). Comparisons
  // are written so that a NaN falls through to the branch that returns it.
  detail::parallel_for(0, n, detail::grain_for(detail::kTranscendentalWork), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    switch (kind) {
      case Activation::linear:
        if (y != x) std::copy(x + lo, x + hi, y + lo);
        break;
      case Activation::sigmoid:
        for (int64_t i = lo; i < hi; ++i) y[i] = stable_sigmoid(x[i]);
        break;
      case Activation::tanh:
        for (int64_t i = lo; i < hi; ++i) y[i] = std::tanh(x[i]);
        break;
      case Activation::relu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          y[i] = v < T(0) ? T(0) : v;
        }
        break;
      case Activation::leaky_relu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i], scaled = alpha * v;
          y[i] = v > T(0) ? v : scaled;
        }
        break;
      case Activation::elu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          y[i] = v > T(0) ? v : alpha * std::expm1(v);  // expm1: exact near 0
        }
        break;
      case Activation::selu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          y[i] = T(kSeluLambda) * (v > T(0) ? v : T(kSeluAlpha) * std::expm1(v));
        }
        break;
      case Activation::gelu:
        for (int64_t i = lo; i < hi; ++i) y[i] = times(x[i], normal_cdf(x[i]));
        break;
      case Activation::gelu_tanh:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          y[i] = times(v, T(0.5) * (T(1) + std::tanh(gelu_tanh_u(v))));
        }
        break;
      case Activation::silu:
        for (int64_t i = lo; i < hi; ++i) y[i] = times(x[i], stable_sigmoid(x[i]));
        break;
      case Activation::softplus:
        // log(1 + e^x) = log1p(e^{-|x|}) + max(x, 0): the exponent is <= 0, no overflow.
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          y[i] = std::log1p(std::exp(-std::fabs(v))) + (v > T(0) ? v : T(0));
        }
        break;
      case Activation::relu6:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          y[i] = v < T(0) ? T(0) : (v > T(6) ? T(6) : v);
        }
        break;
      case Activation::hard_sigmoid:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i] + T(3);
          y[i] = (v < T(0) ? T(0) : (v > T(6) ? T(6) : v)) / T(6);
        }
        break;
      case Activation::abs:
        for (int64_t i = lo; i < hi; ++i) y[i] = std::fabs(x[i]);
        break;
      case Activation::softmax:
        break;  // handled above
    }
  });
}

template <typename T>
void activation_backward(T* dx, const T* dy, const T* x, const T* y, int64_t outer,
                         int64_t channels, int64_t inner, Activation kind, T alpha) {
  if (kind == Activation::softmax) {
    if (channels <= 0) return;
    for_each_softmax_block(outer, channels, inner, [=](int64_t at, int64_t len) {
      if (inner == 1) softmax_backward_block<true>(dx + at, dy + at, y + at, channels, inner, len);
      else softmax_backward_block<false>(dx + at, dy + at, y + at, channels, inner, len);
    });
    return;
  }
  const int64_t n = outer * channels * inner;
  // dx = dy · f'(x), a product (a NaN in dy propagates even where f' = 0).
  // Sigmoid and tanh use the saved output (y(1-y), 1-y²): no exp recomputed;
  // the others read the input, whose value or sign the derivative needs.
  detail::parallel_for(0, n, detail::grain_for(detail::kTranscendentalWork), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    switch (kind) {
      case Activation::linear:
        if (dx != dy) std::copy(dy + lo, dy + hi, dx + lo);
        break;
      case Activation::sigmoid:
        for (int64_t i = lo; i < hi; ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
        break;
      case Activation::tanh:
        for (int64_t i = lo; i < hi; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
        break;
      case Activation::relu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          dx[i] = dy[i] * keep_nan(v, v > T(0) ? T(1) : T(0));
        }
        break;
      case Activation::leaky_relu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          dx[i] = dy[i] * keep_nan(v, v > T(0) ? T(1) : alpha);
        }
        break;
      case Activation::elu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          dx[i] = dy[i] * (v > T(0) ? T(1) : alpha * std::exp(v));
        }
        break;
      case Activation::selu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          dx[i] = dy[i] * T(kSeluLambda) * (v > T(0) ? T(1) : T(kSeluAlpha) * std::exp(v));
        }
        break;
      case Activation::gelu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          const T pdf = T(kInvSqrt2Pi) * std::exp(T(-0.5) * v * v);
          dx[i] = dy[i] * (normal_cdf(v) + times(v, pdf));
        }
        break;
      case Activation::gelu_tanh:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i], t = std::tanh(gelu_tanh_u(v));
          const T du = T(kSqrt2_Pi) * v * (T(1) + T(3 * kGeluCubic) * v * v);  // x·du/dx
          dx[i] = dy[i] * (T(0.5) * (T(1) + t) + times(du, T(0.5) * (T(1) - t * t)));
        }
        break;
      case Activation::silu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i], s = stable_sigmoid(v);
          dx[i] = dy[i] * (s + times(v, s * (T(1) - s)));
        }
        break;
      case Activation::softplus:
        for (int64_t i = lo; i < hi; ++i) dx[i] = dy[i] * stable_sigmoid(x[i]);
        break;
      case Activation::relu6:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          dx[i] = dy[i] * keep_nan(v, v > T(0) && v < T(6) ? T(1) : T(0));
        }
        break;
      case Activation::hard_sigmoid:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          dx[i] = dy[i] * keep_nan(v, v > T(-3) && v < T(3) ? T(1) / T(6) : T(0));
        }
        break;
      case Activation::abs:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i];
          dx[i] = dy[i] * keep_nan(v, v > T(0) ? T(1) : (v < T(0) ? T(-1) : T(0)));
        }
        break;
      case Activation::softmax:
        break;  // handled above
    }
  });
}

// ---------------------------------------------------------------------------
// Naive kernels: one serial loop per formula, evaluated in double, the oracle
// for the fast ones.

namespace {

double naive_value(Activation kind, double v, double alpha) {
  switch (kind) {
    case Activation::linear: return v;
    // exp(-v) may overflow to inf for very negative v, and 1/(1+inf) = 0 is
    // still the right limit, so the plain formula is safe here.
    case Activation::sigmoid: return 1.0 / (1.0 + std::exp(-v));
    case Activation::tanh: return std::tanh(v);
    case Activation::relu: return std::isnan(v) ? v : std::max(v, 0.0);
    case Activation::leaky_relu: return v > 0 ? v : alpha * v;
    case Activation::elu: return v > 0 ? v : alpha * (std::exp(v) - 1.0);
    case Activation::selu: return kSeluLambda * (v > 0 ? v : kSeluAlpha * (std::exp(v) - 1.0));
    case Activation::gelu: return times(v, 0.5 * std::erfc(-v * kSqrt1_2));
    case Activation::gelu_tanh: return times(v, 0.5 * (1.0 + std::tanh(gelu_tanh_u(v))));
    case Activation::silu: return times(v, 1.0 / (1.0 + std::exp(-v)));
    case Activation::softplus: return std::log1p(std::exp(-std::fabs(v))) + (v > 0 ? v : 0.0);
    case Activation::relu6: return std::isnan(v) ? v : std::min(std::max(v, 0.0), 6.0);
    case Activation::hard_sigmoid: return std::isnan(v) ? v : std::min(std::max(v + 3.0, 0.0), 6.0) / 6.0;
    case Activation::abs: return std::fabs(v);
    case Activation::softmax: break;
  }
  return v;
}

// f'(v) given the input v and the output u = f(v).
double naive_derivative(Activation kind, double v, double u, double alpha) {
  if (kind == Activation::linear) return 1.0;  // the identity passes dy through, NaN or not
  if (std::isnan(v)) return v;
  switch (kind) {
    case Activation::linear: break;
    case Activation::sigmoid: return u * (1.0 - u);
    case Activation::tanh: return 1.0 - u * u;
    case Activation::relu: return v > 0 ? 1.0 : 0.0;
    case Activation::leaky_relu: return v > 0 ? 1.0 : alpha;
    case Activation::elu: return v > 0 ? 1.0 : alpha * std::exp(v);
    case Activation::selu: return kSeluLambda * (v > 0 ? 1.0 : kSeluAlpha * std::exp(v));
    case Activation::gelu:
      return 0.5 * std::erfc(-v * kSqrt1_2) + times(v, kInvSqrt2Pi * std::exp(-0.5 * v * v));
    case Activation::gelu_tanh: {
      const double t = std::tanh(gelu_tanh_u(v));
      return 0.5 * (1.0 + t) +
             times(kSqrt2_Pi * v * (1.0 + 3 * kGeluCubic * v * v), 0.5 * (1.0 - t * t));
    }
    case Activation::silu: {
      const double s = 1.0 / (1.0 + std::exp(-v));
      return s + times(v, s * (1.0 - s));
    }
    case Activation::softplus: return 1.0 / (1.0 + std::exp(-v));
    case Activation::relu6: return v > 0 && v < 6 ? 1.0 : 0.0;
    case Activation::hard_sigmoid: return v > -3 && v < 3 ? 1.0 / 6.0 : 0.0;
    case Activation::abs: return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0);
    case Activation::softmax: break;
  }
  return 1.0;
}

}  // namespace

template <typename T>
void activation_forward_naive(T* y, const T* x, int64_t outer, int64_t channels, int64_t inner,
                              Activation kind, T alpha) {
  if (kind != Activation::softmax) {
    for (int64_t k = 0; k < outer * channels * inner; ++k)
      y[k] = static_cast<T>(naive_value(kind, x[k], alpha));
    return;
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const T* xr = x + o * channels * inner + i;  // channel c at xr[c * inner]
      T* yr = y + o * channels * inner + i;
      if (channels == 0) continue;
      double m = xr[0];
      for (int64_t c = 1; c < channels; ++c)
        if (xr[c * inner] > m) m = xr[c * inner];  // a NaN never wins here, but makes the sum NaN
      double sum = 0;
      for (int64_t c = 0; c < channels; ++c) sum += std::exp(xr[c * inner] - m);
      for (int64_t c = 0; c < channels; ++c) yr[c * inner] = static_cast<T>(std::exp(xr[c * inner] - m) / sum);
    }
  }
}

template <typename T>
void activation_backward_naive(T* dx, const T* dy, const T* x, const T* y, int64_t outer,
                               int64_t channels, int64_t inner, Activation kind, T alpha) {
  if (kind != Activation::softmax) {
    for (int64_t k = 0; k < outer * channels * inner; ++k)
      dx[k] = static_cast<T>(dy[k] * naive_derivative(kind, x[k], y[k], alpha));
    return;
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      const int64_t r = o * channels * inner + i;  // channel c at r + c * inner
      double dot = 0;
      for (int64_t c = 0; c < channels; ++c) dot += static_cast<double>(dy[r + c * inner]) * y[r + c * inner];
      for (int64_t c = 0; c < channels; ++c)
        dx[r + c * inner] = static_cast<T>(y[r + c * inner] * (dy[r + c * inner] - dot));
    }
  }
}

#define CORENN_INSTANTIATE(T)                                                                      \
  template void activation_forward<T>(T*, const T*, int64_t, int64_t, int64_t, Activation, T);     \
  template void activation_forward_naive<T>(T*, const T*, int64_t, int64_t, int64_t, Activation,   \
                                            T);                                                    \
  template void activation_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t,         \
                                       int64_t, Activation, T);                                    \
  template void activation_backward_naive<T>(T*, const T*, const T*, const T*, int64_t, int64_t,   \
                                             int64_t, Activation, T);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
