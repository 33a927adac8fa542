#include "corenn/kernels/optim.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

namespace {

// The transform's bounds in T: ±inf when there is no element-wise clip, so
// min(max(·)) leaves every finite gradient as it is.
template <typename T>
struct Clamp {
  T scale, lo, hi;
  explicit Clamp(const GradientTransform& t)
      : scale(static_cast<T>(t.scale)),
        lo(t.value > 0.0 ? static_cast<T>(-t.value) : -std::numeric_limits<T>::infinity()),
        hi(t.value > 0.0 ? static_cast<T>(t.value) : std::numeric_limits<T>::infinity()) {}
  T operator()(T g) const { return std::min(std::max(g * scale, lo), hi); }
};

bool transforms(const GradientTransform& t) { return t.scale != 1.0 || t.value > 0.0; }

}  // namespace

// ---------------------------------------------------------------- clipping

double clip_scale(double norm, double max_norm) {
  return max_norm > 0.0 ? max_norm / std::max(norm, max_norm) : 1.0;
}

template <typename T>
double sum_of_squares(const T* x, int64_t n) {
  // x: (n,)
  const int chunks = detail::parallel_chunks(n, detail::kGrain);
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  detail::parallel_for(0, n, detail::kGrain, [&](int64_t lo, int64_t hi, int chunk) {
    double sum = 0.0;
    for (int64_t i = lo; i < hi; ++i) sum += static_cast<double>(x[i]) * static_cast<double>(x[i]);
    partial[static_cast<size_t>(chunk)] = sum;
  });
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

template <typename T>
double sum_of_squares_naive(const T* x, int64_t n) {
  // x: (n,)
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  return total;
}

// Every kernel below is one fused pass: each element's parameter, gradient and
// state are read once and written once, so an update costs one trip through
// memory. Arithmetic is in T; the scalars (1 − dampening, 1 − β, the bias
// corrections) are formed in double and rounded to T once. The fast and naive
// versions do the same operations in the same order per element (the loops
// differ only in how [0, n) is split), so they agree bit for bit; weight decay
// is skipped when it is 0 because 0·inf would turn an infinite weight into NaN.

// ---------------------------------------------------------------- SGD

// The per-range loops take __restrict pointers and compile-time flags for the
// options that hold over the whole arena: with no aliasing to assume and no
// branch in the body, the compiler vectorises them.

template <typename T, bool Decay, bool Momentum, bool Nesterov, bool Clip>
CORENN_SIMD_CLONES void sgd_range(T* __restrict param, T* __restrict velocity, const T* __restrict grad, int64_t lo,
               int64_t hi, T lr, T wd, T mu, T one_minus_damp, Clamp<T> clip) {
  for (int64_t i = lo; i < hi; ++i) {
    T g = grad[i];
    if constexpr (Clip) g = clip(g);
    if constexpr (Decay) g += wd * param[i];
    if constexpr (Momentum) {
      const T v = mu * velocity[i] + one_minus_damp * g;
      velocity[i] = v;
      // Nesterov steps along the gradient plus the look-ahead μ·v.
      g = Nesterov ? g + mu * v : v;
    }
    param[i] -= lr * g;
  }
}

template <typename T, bool Decay, bool Momentum, bool Nesterov>
void sgd_parallel(T* param, T* velocity, const T* grad, const SGDHyper& h, int64_t n,
                  const GradientTransform& t) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay);
  const T mu = static_cast<T>(h.momentum), one_minus_damp = static_cast<T>(1.0 - h.dampening);
  const Clamp<T> clip(t);
  const bool clipping = transforms(t);
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    if (clipping)
      sgd_range<T, Decay, Momentum, Nesterov, true>(param, velocity, grad, lo, hi, lr, wd, mu, one_minus_damp, clip);
    else
      sgd_range<T, Decay, Momentum, Nesterov, false>(param, velocity, grad, lo, hi, lr, wd, mu, one_minus_damp, clip);
  });
}

template <typename T>
void sgd_step(T* param, T* velocity, const T* grad, const SGDHyper& h, int64_t n, const GradientTransform& t) {
  // param: (n,), velocity: (n,) or nullptr when momentum == 0, grad: (n,)
  const bool decay = h.weight_decay != 0.0;
  if (h.momentum == 0.0) {
    if (decay) sgd_parallel<T, true, false, false>(param, velocity, grad, h, n, t);
    else sgd_parallel<T, false, false, false>(param, velocity, grad, h, n, t);
  } else if (h.nesterov) {
    if (decay) sgd_parallel<T, true, true, true>(param, velocity, grad, h, n, t);
    else sgd_parallel<T, false, true, true>(param, velocity, grad, h, n, t);
  } else {
    if (decay) sgd_parallel<T, true, true, false>(param, velocity, grad, h, n, t);
    else sgd_parallel<T, false, true, false>(param, velocity, grad, h, n, t);
  }
}

template <typename T>
void sgd_step_naive(T* param, T* velocity, const T* grad, const SGDHyper& h, int64_t n,
                    const GradientTransform& t) {
  // param: (n,), velocity: (n,) or nullptr when momentum == 0, grad: (n,)
  const Clamp<T> clip(t);
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (transforms(t)) g = clip(g);
    if (h.weight_decay != 0.0) g += static_cast<T>(h.weight_decay) * param[i];
    T step = g;
    if (h.momentum != 0.0) {
      velocity[i] = static_cast<T>(h.momentum) * velocity[i] +
                    static_cast<T>(1.0 - h.dampening) * g;
      if (h.nesterov)
        step = g + static_cast<T>(h.momentum) * velocity[i];
      else
        step = velocity[i];
    }
    param[i] = param[i] - static_cast<T>(h.lr) * step;
  }
}

// ---------------------------------------------------------------- RMSprop

template <typename T, bool Decay, bool Clip>
CORENN_SIMD_CLONES void rmsprop_range(T* __restrict param, T* __restrict square_avg, const T* __restrict grad,
                   int64_t lo, int64_t hi, T lr, T wd, T alpha, T one_minus_alpha, T eps, Clamp<T> clip) {
  for (int64_t i = lo; i < hi; ++i) {
    T g = grad[i];
    if constexpr (Clip) g = clip(g);
    if constexpr (Decay) g += wd * param[i];
    const T s = alpha * square_avg[i] + one_minus_alpha * (g * g);
    square_avg[i] = s;
    // eps outside the root (course and PyTorch): it bounds the step when s ≈ 0.
    param[i] -= lr * g / (std::sqrt(s) + eps);
  }
}

template <typename T>
void rmsprop_step(T* param, T* square_avg, const T* grad, const RMSpropHyper& h, int64_t n,
                  const GradientTransform& t) {
  // param: (n,), square_avg: (n,), grad: (n,)
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay);
  const T alpha = static_cast<T>(h.alpha), one_minus_alpha = static_cast<T>(1.0 - h.alpha);
  const T eps = static_cast<T>(h.eps);
  const bool decay = h.weight_decay != 0.0, clipping = transforms(t);
  const Clamp<T> c(t);
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    T *p = param, *s = square_avg;
    if (decay && clipping) rmsprop_range<T, true, true>(p, s, grad, lo, hi, lr, wd, alpha, one_minus_alpha, eps, c);
    else if (decay) rmsprop_range<T, true, false>(p, s, grad, lo, hi, lr, wd, alpha, one_minus_alpha, eps, c);
    else if (clipping) rmsprop_range<T, false, true>(p, s, grad, lo, hi, lr, wd, alpha, one_minus_alpha, eps, c);
    else rmsprop_range<T, false, false>(p, s, grad, lo, hi, lr, wd, alpha, one_minus_alpha, eps, c);
  });
}

template <typename T>
void rmsprop_step_naive(T* param, T* square_avg, const T* grad, const RMSpropHyper& h,
                        int64_t n, const GradientTransform& t) {
  // param: (n,), square_avg: (n,), grad: (n,)
  const Clamp<T> clip(t);
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (transforms(t)) g = clip(g);
    if (h.weight_decay != 0.0) g += static_cast<T>(h.weight_decay) * param[i];
    square_avg[i] = static_cast<T>(h.alpha) * square_avg[i] +
                    static_cast<T>(1.0 - h.alpha) * (g * g);
    param[i] = param[i] - static_cast<T>(h.lr) * g /
                              (std::sqrt(square_avg[i]) + static_cast<T>(h.eps));
  }
}

// ---------------------------------------------------------------- Adam / AdamW

struct AdamScalars {
  double lr, wd, beta1, beta2, eps, correction1, correction2, shrink;
};

// ShrinkParam: AdamW's p *= 1 − lr·wd; DecayGrad: Adam's g += wd·p.
template <typename T, bool ShrinkParam, bool DecayGrad, bool Clip>
CORENN_SIMD_CLONES void adam_range(T* __restrict param, T* __restrict m, T* __restrict v, const T* __restrict grad,
                int64_t lo, int64_t hi, const AdamScalars& c, Clamp<T> clip) {
  const T lr = static_cast<T>(c.lr), wd = static_cast<T>(c.wd), eps = static_cast<T>(c.eps);
  const T beta1 = static_cast<T>(c.beta1), one_minus_beta1 = static_cast<T>(1.0 - c.beta1);
  const T beta2 = static_cast<T>(c.beta2), one_minus_beta2 = static_cast<T>(1.0 - c.beta2);
  const T correction1 = static_cast<T>(c.correction1), correction2 = static_cast<T>(c.correction2);
  const T shrink = static_cast<T>(c.shrink);
  for (int64_t i = lo; i < hi; ++i) {
    T g = grad[i];
    if constexpr (Clip) g = clip(g);
    T p = param[i];
    // AdamW shrinks the weight directly, so the decay is not rescaled by √v.
    if constexpr (ShrinkParam) p *= shrink;
    if constexpr (DecayGrad) g += wd * p;
    const T mi = beta1 * m[i] + one_minus_beta1 * g;
    const T vi = beta2 * v[i] + one_minus_beta2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    const T m_hat = mi / correction1, v_hat = vi / correction2;
    param[i] = p - lr * m_hat / (std::sqrt(v_hat) + eps);
  }
}

template <typename T>
void adam_step(T* param, T* m, T* v, const T* grad, int64_t step, const AdamHyper& h,
               int64_t n, const GradientTransform& transform) {
  // param: (n,), m: (n,), v: (n,), grad: (n,)
  // β^t underflows float32 long before double, and 1 − β2^t for β2 = 0.999 at
  // t = 1 loses digits in float: the corrections are formed in double.
  const double t = static_cast<double>(step);
  const AdamScalars c{h.lr, h.weight_decay, h.beta1, h.beta2, h.eps, 1.0 - std::pow(h.beta1, t),
                      1.0 - std::pow(h.beta2, t), 1.0 - h.lr * h.weight_decay};
  const bool decay = h.weight_decay != 0.0, decoupled = h.decoupled;
  const Clamp<T> clip(transform);
  if (transforms(transform))
    detail::parallel_for(0, n, detail::kGrain, [=, &c](int64_t lo, int64_t hi, int) {
      if (!decay) adam_range<T, false, false, true>(param, m, v, grad, lo, hi, c, clip);
      else if (decoupled) adam_range<T, true, false, true>(param, m, v, grad, lo, hi, c, clip);
      else adam_range<T, false, true, true>(param, m, v, grad, lo, hi, c, clip);
    });
  else
    detail::parallel_for(0, n, detail::kGrain, [=, &c](int64_t lo, int64_t hi, int) {
      if (!decay) adam_range<T, false, false, false>(param, m, v, grad, lo, hi, c, clip);
      else if (decoupled) adam_range<T, true, false, false>(param, m, v, grad, lo, hi, c, clip);
      else adam_range<T, false, true, false>(param, m, v, grad, lo, hi, c, clip);
    });
}

template <typename T>
void adam_step_naive(T* param, T* m, T* v, const T* grad, int64_t step, const AdamHyper& h,
                     int64_t n, const GradientTransform& transform) {
  // param: (n,), m: (n,), v: (n,), grad: (n,)
  const double t = static_cast<double>(step);
  const Clamp<T> clip(transform);
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (transforms(transform)) g = clip(g);
    if (h.weight_decay != 0.0) {
      if (h.decoupled)
        param[i] = param[i] * static_cast<T>(1.0 - h.lr * h.weight_decay);
      else
        g = g + static_cast<T>(h.weight_decay) * param[i];
    }
    m[i] = static_cast<T>(h.beta1) * m[i] + static_cast<T>(1.0 - h.beta1) * g;
    v[i] = static_cast<T>(h.beta2) * v[i] + static_cast<T>(1.0 - h.beta2) * (g * g);
    const T m_hat = m[i] / static_cast<T>(1.0 - std::pow(h.beta1, t));
    const T v_hat = v[i] / static_cast<T>(1.0 - std::pow(h.beta2, t));
    param[i] = param[i] - static_cast<T>(h.lr) * m_hat / (std::sqrt(v_hat) + static_cast<T>(h.eps));
  }
}

// ---------------------------------------------------------------- validation

namespace {

[[noreturn]] void bad(const char* op, const char* name, const char* expected, double value) {
  std::ostringstream msg;
  msg << op << ": " << name << " must be " << expected << ", got " << value;
  throw ValueError(msg.str());
}

// Written as "not (inside)" so that NaN, which fails every comparison, is rejected.
void check_lr(double lr, const char* op) {
  if (!(std::isfinite(lr) && lr >= 0.0)) bad(op, "lr", "finite and >= 0", lr);
}
void check_weight_decay(double wd, const char* op) {
  if (!(std::isfinite(wd) && wd >= 0.0)) bad(op, "weight_decay", "finite and >= 0", wd);
}
void check_closed_unit(double x, const char* name, const char* op) {
  if (!(x >= 0.0 && x <= 1.0)) bad(op, name, "in [0, 1]", x);
}
void check_half_open_unit(double x, const char* name, const char* op) {
  if (!(x >= 0.0 && x < 1.0)) bad(op, name, "in [0, 1)", x);
}
void check_eps(double eps, const char* op) {
  if (!(std::isfinite(eps) && eps > 0.0)) bad(op, "eps", "finite and > 0", eps);
}

}  // namespace

void validate(const SGDHyper& h, const char* op) {
  check_lr(h.lr, op);
  check_closed_unit(h.momentum, "momentum", op);
  check_closed_unit(h.dampening, "dampening", op);
  check_weight_decay(h.weight_decay, op);
  if (h.nesterov && !(h.momentum > 0.0 && h.dampening == 0.0)) {
    std::ostringstream msg;
    msg << op << ": nesterov requires momentum > 0 and dampening == 0, got momentum="
        << h.momentum << ", dampening=" << h.dampening;
    throw ValueError(msg.str());
  }
}

void validate(const RMSpropHyper& h, const char* op) {
  check_lr(h.lr, op);
  check_closed_unit(h.alpha, "alpha", op);
  check_eps(h.eps, op);
  check_weight_decay(h.weight_decay, op);
}

void validate(const AdamHyper& h, int64_t step, const char* op) {
  check_lr(h.lr, op);
  check_half_open_unit(h.beta1, "beta1", op);
  check_half_open_unit(h.beta2, "beta2", op);
  check_eps(h.eps, op);
  check_weight_decay(h.weight_decay, op);
  if (step < 1) throw ValueError(std::string(op) + ": step must be >= 1, got " + std::to_string(step));
}

void validate(const ClipSettings& c, const char* op) {
  const std::pair<const char*, double> settings[] = {
      {"clipnorm", c.clipnorm}, {"clipvalue", c.clipvalue}, {"global_clipnorm", c.global_clipnorm}};
  for (const auto& s : settings)
    if (!(std::isfinite(s.second) && s.second >= 0.0)) bad(op, s.first, "finite and > 0 (0: no clipping)", s.second);
  if (c.clipnorm > 0.0 && c.global_clipnorm > 0.0) {
    std::ostringstream msg;
    msg << op << ": only one of clipnorm and global_clipnorm can be set (as Keras), got clipnorm=" << c.clipnorm
        << ", global_clipnorm=" << c.global_clipnorm;
    throw ValueError(msg.str());
  }
}

void validate(const GradientTransform& t, const char* op) {
  if (!(std::isfinite(t.scale) && t.scale > 0.0 && t.scale <= 1.0)) bad(op, "grad_scale", "in (0, 1]", t.scale);
  if (!(std::isfinite(t.value) && t.value >= 0.0)) bad(op, "clipvalue", "finite and >= 0 (0: no clipping)", t.value);
}

// ---------------------------------------------------------------- finiteness

// x − x is 0 for every finite x and NaN for ±inf and NaN, so one compare per
// element decides; OR-ing the verdicts into an integer (rather than leaving
// the loop at the first bad value) keeps the loop branch-free, and it
// vectorises. An OR does not depend on the split, so any thread count agrees.
template <typename T>
bool all_finite(const T* x, int64_t n) {
  std::atomic<bool> bad{false};
  detail::parallel_for(0, n, detail::kGrain, [&](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    unsigned char any = 0;
    for (int64_t i = lo; i < hi; ++i) any |= static_cast<unsigned char>(!(x[i] - x[i] == T(0)));
    if (any) bad.store(true, std::memory_order_relaxed);
  });
  return !bad.load(std::memory_order_relaxed);
}

template <typename T>
bool all_finite_naive(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

#define CORENN_INSTANTIATE(T)                                                                  \
  template double sum_of_squares<T>(const T*, int64_t);                                        \
  template double sum_of_squares_naive<T>(const T*, int64_t);                                  \
  template void sgd_step<T>(T*, T*, const T*, const SGDHyper&, int64_t, const GradientTransform&); \
  template void sgd_step_naive<T>(T*, T*, const T*, const SGDHyper&, int64_t, const GradientTransform&); \
  template void rmsprop_step<T>(T*, T*, const T*, const RMSpropHyper&, int64_t, const GradientTransform&); \
  template void rmsprop_step_naive<T>(T*, T*, const T*, const RMSpropHyper&, int64_t,          \
                                      const GradientTransform&);                               \
  template void adam_step<T>(T*, T*, T*, const T*, int64_t, const AdamHyper&, int64_t,         \
                             const GradientTransform&);                                        \
  template void adam_step_naive<T>(T*, T*, T*, const T*, int64_t, const AdamHyper&, int64_t,   \
                                   const GradientTransform&);                                  \
  template bool all_finite<T>(const T*, int64_t);                                              \
  template bool all_finite_naive<T>(const T*, int64_t);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
