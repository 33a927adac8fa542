#include "corenn/kernels/loss.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {

// Runs body(lo, hi) -> double over a static split of [0, n) and adds the
// per-chunk results in chunk order, so a given thread count always gives the
// same bits. The partials vector has one slot per chunk (at most one per
// thread): the only allocation, made before the parallel region.
template <typename Body>
double deterministic_sum(int64_t n, int64_t grain, Body&& body) {
  std::vector<double> partial(static_cast<size_t>(detail::parallel_chunks(n, grain)), 0.0);
  detail::parallel_for(0, n, grain,
                       [&](int64_t lo, int64_t hi, int c) { partial[c] = body(lo, hi); });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

// log(1 + e^{-|z|}) and σ(z) share e^{-|z|} ∈ (0, 1]: neither can overflow.
template <typename T>
inline T sigmoid_from(T z, T e) {
  return z >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
}

}  // namespace

void check_labels(const int64_t* labels, int64_t batch, int64_t classes, bool allow_ignored) {
  for (int64_t i = 0; i < batch; ++i)
    if (labels[i] < (allow_ignored ? -1 : 0) || labels[i] >= classes)
      throw ValueError("softmax_cross_entropy: label " + std::to_string(labels[i]) + " at row " +
                       std::to_string(i) + " is outside [0, " + std::to_string(classes) + ")" +
                       (allow_ignored ? " and is not -1 (ignored)" : ""));
}

template <typename T>
void check_sample_weight(const T* weight, int64_t batch, const char* op) {
  for (int64_t i = 0; i < batch; ++i)
    if (!(std::isfinite(weight[i]) && weight[i] >= T(0)))
      throw ValueError(std::string(op) + ": sample_weight must be finite and >= 0, got " +
                       std::to_string(static_cast<double>(weight[i])) + " at example " +
                       std::to_string(i));
}

// ---------------------------------------------------------------------------
// softmax cross-entropy. Labels must have passed check_labels: nothing may
// throw inside the parallel region.

namespace {

// The rows (steps) the mean runs over: label not -1, mask 1.
bool counted(const int64_t* labels, const uint8_t* mask, int64_t r) {
  return labels[r] >= 0 && (!mask || mask[r]);
}

int64_t counted_rows(const int64_t* labels, const uint8_t* mask, int64_t rows) {
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) count += counted(labels, mask, r);
  return count;
}

}  // namespace

template <typename T>
T softmax_cross_entropy(T* dlogits, const T* logits, const int64_t* labels, int64_t batch,
                        int64_t classes, const T* weight, int64_t steps, const uint8_t* mask) {
  const int64_t rows = batch * steps;
  const int64_t count = counted_rows(labels, mask, rows);
  if (count == 0) {  // nothing to learn from: no loss, no gradient
    if (dlogits) std::fill(dlogits, dlogits + rows * classes, T(0));
    return T(0);
  }
  const T inv_n = static_cast<T>(1.0 / static_cast<double>(count));
  const int64_t grain = detail::grain_for(detail::kTranscendentalWork * classes);  // an exp per logit
  const double total = deterministic_sum(rows, grain, [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t i = lo; i < hi; ++i) {
      if (!counted(labels, mask, i)) {
        if (dlogits) std::fill(dlogits + i * classes, dlogits + (i + 1) * classes, T(0));
        continue;
      }
      // Unweighted, s_i/N is inv_n and s_i is 1.0: the same bits as before weights existed.
      const T scale_i = weight ? inv_n * weight[i / steps] : inv_n;
      const double w = weight ? static_cast<double>(weight[i / steps]) : 1.0;
      const T* z = logits + i * classes;
      T m = z[0];
      for (int64_t j = 1; j < classes; ++j) m = std::max(m, z[j]);
      // Σ e^{z_j - m} >= 1 (the max term is 1): its log is finite for any logits.
      double sum = 0;
      if (dlogits) {
        // Park e^{z_j - m} in the gradient row so the second pass needs no exp.
        T* g = dlogits + i * classes;
        for (int64_t j = 0; j < classes; ++j) {
          g[j] = std::exp(z[j] - m);
          sum += g[j];
        }
        const T scale = static_cast<T>(1.0 / sum) * scale_i;
        for (int64_t j = 0; j < classes; ++j) g[j] *= scale;
        g[labels[i]] -= scale_i;
      } else {
        for (int64_t j = 0; j < classes; ++j) sum += std::exp(z[j] - m);
      }
      // logsumexp(z) - z_y = log Σ - (z_y - m); the float difference is exact in double.
      acc += w * (std::log(sum) - (static_cast<double>(z[labels[i]]) - m));
    }
    return acc;
  });
  return static_cast<T>(total / static_cast<double>(count));
}

template <typename T>
T softmax_cross_entropy_naive(T* dlogits, const T* logits, const int64_t* labels, int64_t batch,
                              int64_t classes, const T* weight, int64_t steps, const uint8_t* mask) {
  const int64_t rows = batch * steps;
  const int64_t count = counted_rows(labels, mask, rows);
  double total = 0;
  for (int64_t i = 0; i < rows; ++i) {
    if (!counted(labels, mask, i)) {
      if (dlogits)
        for (int64_t j = 0; j < classes; ++j) dlogits[i * classes + j] = T(0);
      continue;
    }
    const double w = weight ? static_cast<double>(weight[i / steps]) : 1.0;
    double m = logits[i * classes];
    for (int64_t j = 1; j < classes; ++j)
      m = std::max(m, static_cast<double>(logits[i * classes + j]));
    double sum = 0;
    for (int64_t j = 0; j < classes; ++j) sum += std::exp(logits[i * classes + j] - m);
    const double lse = m + std::log(sum);
    total += w * (lse - logits[i * classes + labels[i]]);
    if (dlogits)
      for (int64_t j = 0; j < classes; ++j) {
        const double p = std::exp(logits[i * classes + j] - lse);
        const double onehot = j == labels[i] ? 1.0 : 0.0;
        dlogits[i * classes + j] = static_cast<T>(w * (p - onehot) / count);
      }
  }
  return count == 0 ? T(0) : static_cast<T>(total / count);
}

// ---------------------------------------------------------------------------
// sigmoid cross-entropy on logits: (1 - t) z - min(z, 0) + log(1 + e^{-|z|})
// equals -t log σ(z) - (1-t) log(1-σ(z)) but never takes the log of 0 or exp of
// a large positive number. It is PyTorch's arrangement ((1 - t) z - log σ(z)),
// so infinite logits give PyTorch's losses too: +inf with t = 0 costs +inf,
// and the three other infinite cases are NaN (0·inf), never a finite value.

template <typename T>
T sigmoid_cross_entropy(T* dlogits, const T* logits, const T* targets, const uint8_t* mask,
                        int64_t batch, int64_t outputs, const T* weight) {
  if (batch <= 0) return T(0);
  const int64_t n = batch * outputs;
  const T inv_n = static_cast<T>(1.0 / static_cast<double>(batch));
  const int64_t grain = detail::grain_for(detail::kTranscendentalWork);  // an exp and a log per logit
  const double total = deterministic_sum(n, grain, [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t k = lo; k < hi; ++k) {
      const T z = logits[k], t = targets[k];
      const bool present = !mask || mask[k] != 0;
      // Unweighted, s_i/N is inv_n and s_i is 1.0: the same bits as before weights existed.
      const T scale = weight ? inv_n * weight[k / outputs] : inv_n;
      const double w = weight ? static_cast<double>(weight[k / outputs]) : 1.0;
      const T e = std::exp(-std::fabs(z));
      // The loss term in double: for |z| ~ 100 the float product z·t alone
      // would carry an absolute error near 1e-5.
      const double zd = z, td = t;
      if (present) acc += w * ((1.0 - td) * zd - std::min(zd, 0.0) + std::log1p(static_cast<double>(e)));
      if (dlogits) dlogits[k] = present ? (sigmoid_from(z, e) - t) * scale : T(0);
    }
    return acc;
  });
  return static_cast<T>(total / static_cast<double>(batch));
}

template <typename T>
T sigmoid_cross_entropy_naive(T* dlogits, const T* logits, const T* targets, const uint8_t* mask,
                              int64_t batch, int64_t outputs, const T* weight) {
  if (batch <= 0) return T(0);
  double total = 0;
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t j = 0; j < outputs; ++j) {
      const double w = weight ? static_cast<double>(weight[i]) : 1.0;
      const int64_t k = i * outputs + j;
      const double m = (mask == nullptr || mask[k] != 0) ? 1.0 : 0.0;
      const double z = logits[k], t = targets[k];
      const double loss = (1.0 - t) * z - std::min(z, 0.0) + std::log(1.0 + std::exp(-std::fabs(z)));
      const double sigma = z >= 0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
      // Skipped, not multiplied by m: 0 · NaN is NaN, and a missing label may be
      // stored as a NaN target.
      if (m != 0.0) total += w * loss;
      if (dlogits) dlogits[k] = m != 0.0 ? static_cast<T>(w * (sigma - t) / batch) : T(0);
    }
  return static_cast<T>(total / batch);
}

// ---------------------------------------------------------------------------
// mean squared error over all n elements. Weighted, element k belongs to
// example k / row: Keras's per-example mean over the last axis, weighted and
// divided by the batch, is the same (1/n) Σ s_i(k) (p - t)².

template <typename T>
T mse(T* dpred, const T* pred, const T* target, int64_t n, const T* weight, int64_t batch) {
  if (n <= 0) return T(0);
  const T two_over_n = static_cast<T>(2.0 / static_cast<double>(n));
  const int64_t row = weight ? n / batch : n;
  const double total = deterministic_sum(n, detail::kGrain, [&](int64_t lo, int64_t hi) {
    double acc = 0;
    if (weight) {
      for (int64_t k = lo; k < hi; ++k) {
        const double d = static_cast<double>(pred[k]) - target[k];
        acc += static_cast<double>(weight[k / row]) * (d * d);
      }
      if (dpred)
        for (int64_t k = lo; k < hi; ++k)
          dpred[k] = two_over_n * weight[k / row] * (pred[k] - target[k]);
      return acc;
    }
    for (int64_t k = lo; k < hi; ++k) {
      const double d = static_cast<double>(pred[k]) - target[k];
      acc += d * d;
    }
    // A separate pass: this one has no reduction, so it vectorises.
    if (dpred)
      for (int64_t k = lo; k < hi; ++k) dpred[k] = two_over_n * (pred[k] - target[k]);
    return acc;
  });
  return static_cast<T>(total / static_cast<double>(n));
}

template <typename T>
T mse_naive(T* dpred, const T* pred, const T* target, int64_t n, const T* weight,
            int64_t batch) {
  if (n <= 0) return T(0);
  double total = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double w = weight ? static_cast<double>(weight[k / (n / batch)]) : 1.0;
    const double d = static_cast<double>(pred[k]) - target[k];
    total += w * d * d;
    if (dpred) dpred[k] = static_cast<T>(2.0 * w * d / n);
  }
  return static_cast<T>(total / n);
}

// ---------------------------------------------------------------------------
// L1/L2 kernel penalty. dw accumulates: the penalty's gradient is added on top
// of the data-loss gradient already in the buffer.

template <typename T>
T weight_penalty(T* dw, const T* w, int64_t n, T l1, T l2) {
  if (n <= 0) return T(0);
  // One partial per chunk holding l1·Σ|w| + l2·Σw² for that chunk: the weights
  // are applied per chunk so a single deterministic_sum suffices.
  const double a = l1, b = l2;
  const double total = deterministic_sum(n, detail::kGrain, [&](int64_t lo, int64_t hi) {
    double abs_sum = 0, sq_sum = 0;
    for (int64_t k = lo; k < hi; ++k) {
      abs_sum += std::fabs(static_cast<double>(w[k]));
      sq_sum += static_cast<double>(w[k]) * w[k];
    }
    if (dw) {
      const T two_l2 = T(2) * l2;
      for (int64_t k = lo; k < hi; ++k) {
        const T sign = static_cast<T>((w[k] > T(0)) - (w[k] < T(0)));
        dw[k] += l1 * sign + two_l2 * w[k];
      }
    }
    return a * abs_sum + b * sq_sum;
  });
  return static_cast<T>(total);
}

template <typename T>
T weight_penalty_naive(T* dw, const T* w, int64_t n, T l1, T l2) {
  double abs_sum = 0, sq_sum = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double v = w[k];
    abs_sum += std::fabs(v);
    sq_sum += v * v;
    if (dw) {
      const double sign = v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0);
      dw[k] = static_cast<T>(dw[k] + l1 * sign + 2.0 * l2 * v);
    }
  }
  return static_cast<T>(static_cast<double>(l1) * abs_sum + static_cast<double>(l2) * sq_sum);
}

#define CORENN_INSTANTIATE(T)                                                                  \
  template void check_sample_weight<T>(const T*, int64_t, const char*);                        \
  template T softmax_cross_entropy<T>(T*, const T*, const int64_t*, int64_t, int64_t,          \
                                      const T*, int64_t, const uint8_t*);                      \
  template T softmax_cross_entropy_naive<T>(T*, const T*, const int64_t*, int64_t, int64_t,    \
                                            const T*, int64_t, const uint8_t*);                \
  template T sigmoid_cross_entropy<T>(T*, const T*, const T*, const uint8_t*, int64_t,         \
                                      int64_t, const T*);                                      \
  template T sigmoid_cross_entropy_naive<T>(T*, const T*, const T*, const uint8_t*, int64_t,   \
                                            int64_t, const T*);                                \
  template T mse<T>(T*, const T*, const T*, int64_t, const T*, int64_t);                       \
  template T mse_naive<T>(T*, const T*, const T*, int64_t, const T*, int64_t);                 \
  template T weight_penalty<T>(T*, const T*, int64_t, T, T);                                   \
  template T weight_penalty_naive<T>(T*, const T*, int64_t, T, T);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
