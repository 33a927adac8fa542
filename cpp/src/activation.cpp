#include "corenn/kernels/activation.hpp"

#include <algorithm>
#include <cmath>

#include "corenn/error.hpp"
#include "parallel.hpp"

namespace corenn {

namespace {

// Below this many elements a fork/join costs more than the work it splits.
constexpr int64_t kGrain = 16384;

// Rows per chunk so that a softmax chunk holds about kGrain elements.
inline int64_t row_grain(int64_t cols) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1));
}

// σ(x) without overflow: e^{-|x|} lies in (0, 1] for every x, so neither branch
// can produce inf; the x < 0 branch is σ(x) = e^x / (1 + e^x) rewritten.
template <typename T>
inline T stable_sigmoid(T x) {
  const T e = std::exp(-std::fabs(x));
  return x >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

// One row of softmax. y may alias x: each y[j] is written after x[j] is read.
// y: (cols,); x: (cols,)
template <typename T>
void softmax_row(T* y, const T* x, int64_t cols) {
  if (cols <= 0) return;
  // Subtracting the row max keeps every exponent <= 0, so e^{...} <= 1 never
  // overflows and the largest term is exactly 1 (the sum is >= 1, never 0).
  T m = x[0];
  for (int64_t j = 1; j < cols; ++j) m = std::max(m, x[j]);
  double sum = 0;  // double: a float sum over thousands of classes loses digits
  for (int64_t j = 0; j < cols; ++j) {
    const T e = std::exp(x[j] - m);
    y[j] = e;
    sum += e;
  }
  const T inv = static_cast<T>(1.0 / sum);
  for (int64_t j = 0; j < cols; ++j) y[j] *= inv;
}

}  // namespace

Activation parse_activation(const std::string& name) {
  if (name == "linear") return Activation::linear;
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "relu") return Activation::relu;
  if (name == "leaky_relu") return Activation::leaky_relu;
  if (name == "softmax") return Activation::softmax;
  throw ValueError("activation: unknown kind '" + name +
                   "'; expected one of linear, sigmoid, tanh, relu, leaky_relu, softmax");
}

const char* activation_name(Activation kind) {
  switch (kind) {
    case Activation::linear: return "linear";
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::relu: return "relu";
    case Activation::leaky_relu: return "leaky_relu";
    case Activation::softmax: return "softmax";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// Fast kernels: element-wise kinds treat (rows, cols) as one flat run of
// rows·cols elements split across threads; softmax splits whole rows.

template <typename T>
void activation_forward(T* y, const T* x, int64_t rows, int64_t cols, Activation kind, T alpha) {
  const int64_t n = rows * cols;
  if (kind == Activation::softmax) {
    detail::parallel_for(0, rows, row_grain(cols), [=](int64_t lo, int64_t hi, int) {
      for (int64_t i = lo; i < hi; ++i) softmax_row(y + i * cols, x + i * cols, cols);
    });
    return;
  }
  // The switch sits outside the loops so each inner loop is one branch-free
  // body the compiler can vectorise (the selects become blends).
  detail::parallel_for(0, n, kGrain, [=](int64_t lo, int64_t hi, int) {
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
          y[i] = v > T(0) ? v : T(0);
        }
        break;
      case Activation::leaky_relu:
        for (int64_t i = lo; i < hi; ++i) {
          const T v = x[i], scaled = alpha * v;
          y[i] = v > T(0) ? v : scaled;
        }
        break;
      case Activation::softmax:
        break;  // handled above
    }
  });
}

template <typename T>
void activation_backward(T* dx, const T* dy, const T* x, const T* y, int64_t rows, int64_t cols,
                         Activation kind, T alpha) {
  const int64_t n = rows * cols;
  if (kind == Activation::softmax) {
    // The Jacobian of a softmax row is diag(y) - y yᵀ, so dx = y ⊙ (dy - <dy, y>):
    // one dot product per row instead of a cols×cols matrix.
    detail::parallel_for(0, rows, row_grain(cols), [=](int64_t lo, int64_t hi, int) {
      for (int64_t i = lo; i < hi; ++i) {
        const T* dyr = dy + i * cols;
        const T* yr = y + i * cols;
        T* dxr = dx + i * cols;
        double dot = 0;
        for (int64_t j = 0; j < cols; ++j) dot += static_cast<double>(dyr[j]) * yr[j];
        const T d = static_cast<T>(dot);
        for (int64_t j = 0; j < cols; ++j) dxr[j] = yr[j] * (dyr[j] - d);
      }
    });
    return;
  }
  // Sigmoid and tanh use the saved output (y(1-y), 1-y²): no exp recomputed.
  // relu and leaky_relu use the input, whose sign is the derivative's switch.
  detail::parallel_for(0, n, kGrain, [=](int64_t lo, int64_t hi, int) {
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
          // Both operands loaded before the select: a branch-free loop vectorises.
          const T d = dy[i];
          dx[i] = x[i] > T(0) ? d : T(0);
        }
        break;
      case Activation::leaky_relu:
        for (int64_t i = lo; i < hi; ++i) {
          const T d = dy[i], scaled = alpha * d;
          dx[i] = x[i] > T(0) ? d : scaled;
        }
        break;
      case Activation::softmax:
        break;  // handled above
    }
  });
}

// ---------------------------------------------------------------------------
// Naive kernels: one serial loop per formula, the oracle for the fast ones.

template <typename T>
void activation_forward_naive(T* y, const T* x, int64_t rows, int64_t cols, Activation kind,
                              T alpha) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* xr = x + i * cols;
    T* yr = y + i * cols;
    if (kind == Activation::softmax) {
      if (cols == 0) continue;
      T m = xr[0];
      for (int64_t j = 1; j < cols; ++j)
        if (xr[j] > m) m = xr[j];
      double sum = 0;
      for (int64_t j = 0; j < cols; ++j) sum += std::exp(static_cast<double>(xr[j]) - m);
      for (int64_t j = 0; j < cols; ++j)
        yr[j] = static_cast<T>(std::exp(static_cast<double>(xr[j]) - m) / sum);
      continue;
    }
    for (int64_t j = 0; j < cols; ++j) {
      const T v = xr[j];
      switch (kind) {
        case Activation::linear: yr[j] = v; break;
        // exp(-v) may overflow to inf for very negative v, and 1/(1+inf) = 0 is
        // still the right limit, so the plain formula is safe here.
        case Activation::sigmoid: yr[j] = T(1) / (T(1) + std::exp(-v)); break;
        case Activation::tanh: yr[j] = std::tanh(v); break;
        case Activation::relu: yr[j] = v > T(0) ? v : T(0); break;
        case Activation::leaky_relu: yr[j] = v > T(0) ? v : alpha * v; break;
        case Activation::softmax: break;
      }
    }
  }
}

template <typename T>
void activation_backward_naive(T* dx, const T* dy, const T* x, const T* y, int64_t rows,
                               int64_t cols, Activation kind, T alpha) {
  for (int64_t i = 0; i < rows; ++i) {
    const int64_t r = i * cols;
    if (kind == Activation::softmax) {
      double dot = 0;
      for (int64_t j = 0; j < cols; ++j) dot += static_cast<double>(dy[r + j]) * y[r + j];
      for (int64_t j = 0; j < cols; ++j)
        dx[r + j] = static_cast<T>(y[r + j] * (dy[r + j] - dot));
      continue;
    }
    for (int64_t j = 0; j < cols; ++j) {
      const int64_t k = r + j;
      T d = T(1);
      switch (kind) {
        case Activation::linear: d = T(1); break;
        case Activation::sigmoid: d = y[k] * (T(1) - y[k]); break;
        case Activation::tanh: d = T(1) - y[k] * y[k]; break;
        case Activation::relu: d = x[k] > T(0) ? T(1) : T(0); break;
        case Activation::leaky_relu: d = x[k] > T(0) ? T(1) : alpha; break;
        case Activation::softmax: break;
      }
      dx[k] = dy[k] * d;
    }
  }
}

#define CORENN_INSTANTIATE(T)                                                                 \
  template void activation_forward<T>(T*, const T*, int64_t, int64_t, Activation, T);         \
  template void activation_forward_naive<T>(T*, const T*, int64_t, int64_t, Activation, T);   \
  template void activation_backward<T>(T*, const T*, const T*, const T*, int64_t, int64_t,    \
                                       Activation, T);                                        \
  template void activation_backward_naive<T>(T*, const T*, const T*, const T*, int64_t,       \
                                             int64_t, Activation, T);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
