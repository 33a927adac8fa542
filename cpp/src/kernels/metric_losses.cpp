#include "corenn/kernels/metric_losses.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {


}  // namespace

void validate_margin(double margin, const char* op, const char* arg) {
  if (!std::isfinite(margin) || margin < 0)
    throw ValueError(std::string(op) + ": " + arg + " must be finite and >= 0, got " +
                     std::to_string(margin));
}

template <typename T>
void validate_same(const T* same, int64_t n, const char* op, const char* arg) {
  for (int64_t i = 0; i < n; ++i)
    if (!(same[i] == T(0) || same[i] == T(1)))
      throw ValueError(std::string(op) + ": " + arg + " must hold only 0 or 1, got " +
                       std::to_string(same[i]) + " at index " + std::to_string(i));
}

// ---------------------------------------------------------------------------
// Triplet loss. Rows are independent: a parallel sum over rows, each row
// writing only its own gradient.

template <typename T>
T triplet_loss(T* demb, const T* emb, int64_t n, int64_t d, T margin, bool squared, bool mean,
               T eps) {
  const T scale = mean ? static_cast<T>(1.0 / static_cast<double>(std::max<int64_t>(n, 1))) : T(1);
  const double sum = detail::parallel_sum(n, detail::grain_for(3 * d), [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t i = lo; i < hi; ++i) {
      const T* a = emb + i * 3 * d;
      const T *p = a + d, *ng = a + 2 * d;
      // The offset eps enters only the Euclidean distance (pairwise_distance's).
      const T off = squared ? T(0) : eps;
      double dp = 0, dn = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double up = static_cast<double>(a[k]) - p[k] + off;
        const double un = static_cast<double>(a[k]) - ng[k] + off;
        dp += up * up;
        dn += un * un;
      }
      if (!squared) {
        dp = std::sqrt(dp);
        dn = std::sqrt(dn);
      }
      const double l = dp - dn + margin;
      if (l > 0) acc += l;
      if (!demb) continue;
      T* ga = demb + i * 3 * d;
      T *gp = ga + d, *gn = ga + 2 * d;
      if (!(l > 0)) {
        std::fill(ga, ga + 3 * d, T(0));
        continue;
      }
      // ∂‖u‖²/∂u = 2u; ∂‖u‖/∂u = u/‖u‖ (‖u‖ > 0 whenever eps > 0).
      const T cp = squared ? T(2) * scale : static_cast<T>(scale / dp);
      const T cn = squared ? T(2) * scale : static_cast<T>(scale / dn);
      for (int64_t k = 0; k < d; ++k) {
        const T up = a[k] - p[k] + off, un = a[k] - ng[k] + off;
        gp[k] = -cp * up;
        gn[k] = cn * un;
        ga[k] = cp * up - cn * un;
      }
    }
    return acc;
  });
  return static_cast<T>(mean ? sum / static_cast<double>(std::max<int64_t>(n, 1)) : sum);
}

template <typename T>
T triplet_loss_naive(T* demb, const T* emb, int64_t n, int64_t d, T margin, bool squared,
                     bool mean, T eps) {
  const double off = squared ? 0.0 : static_cast<double>(eps);
  const double scale = mean && n > 0 ? 1.0 / static_cast<double>(n) : 1.0;
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    double dp = 0, dn = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double a = emb[(i * 3 + 0) * d + k], p = emb[(i * 3 + 1) * d + k],
                   ng = emb[(i * 3 + 2) * d + k];
      dp += (a - p + off) * (a - p + off);
      dn += (a - ng + off) * (a - ng + off);
    }
    if (!squared) {
      dp = std::sqrt(dp);
      dn = std::sqrt(dn);
    }
    const double l = std::max(dp - dn + static_cast<double>(margin), 0.0);
    sum += l;
    if (!demb) continue;
    for (int64_t k = 0; k < d; ++k) {
      const double a = emb[(i * 3 + 0) * d + k], p = emb[(i * 3 + 1) * d + k],
                   ng = emb[(i * 3 + 2) * d + k];
      double gp = 0, gn = 0;
      if (l > 0) {
        gp = squared ? -2 * (a - p) : -(a - p + off) / dp;
        gn = squared ? 2 * (a - ng) : (a - ng + off) / dn;
      }
      demb[(i * 3 + 0) * d + k] = static_cast<T>(scale * (-gp - gn));
      demb[(i * 3 + 1) * d + k] = static_cast<T>(scale * gp);
      demb[(i * 3 + 2) * d + k] = static_cast<T>(scale * gn);
    }
  }
  return static_cast<T>(sum * scale);
}

// ---------------------------------------------------------------------------
// Contrastive loss. With u = e1 − e2 and d = ‖u‖:
//   similar:    d² = ‖u‖²            ∂/∂e1 = 2u
//   dissimilar: max(m − d, 0)²       ∂/∂e1 = −2·max(m − d, 0)·u/d
// and ∂/∂e2 = −∂/∂e1.

template <typename T>
T contrastive_loss(T* de1, T* de2, const T* e1, const T* e2, const T* same, int64_t n, int64_t d,
                   T margin) {
  const double inv_n = n > 0 ? 1.0 / static_cast<double>(n) : 0.0;
  const double sum = detail::parallel_sum(n, detail::grain_for(2 * d), [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t i = lo; i < hi; ++i) {
      const T *x = e1 + i * d, *y = e2 + i * d;
      double sq = 0;
      for (int64_t k = 0; k < d; ++k) {
        const double u = static_cast<double>(x[k]) - y[k];
        sq += u * u;
      }
      const double dist = std::sqrt(sq);
      const double hinge = std::max(static_cast<double>(margin) - dist, 0.0);
      const bool similar = same[i] != T(0);
      acc += similar ? sq : hinge * hinge;
      if (!de1 && !de2) continue;
      const double c = similar ? 2.0 : (dist > 0 ? -2.0 * hinge / dist : 0.0);
      const T coef = static_cast<T>(c * inv_n);
      for (int64_t k = 0; k < d; ++k) {
        const T g = coef * (x[k] - y[k]);
        if (de1) de1[i * d + k] = g;
        if (de2) de2[i * d + k] = -g;
      }
    }
    return acc;
  });
  return static_cast<T>(sum * inv_n);
}

template <typename T>
T contrastive_loss_naive(T* de1, T* de2, const T* e1, const T* e2, const T* same, int64_t n,
                         int64_t d, T margin) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    double sq = 0;
    for (int64_t k = 0; k < d; ++k)
      sq += (static_cast<double>(e1[i * d + k]) - e2[i * d + k]) *
            (static_cast<double>(e1[i * d + k]) - e2[i * d + k]);
    const double dist = std::sqrt(sq);
    const double s = same[i];
    const double hinge = std::max(static_cast<double>(margin) - dist, 0.0);
    sum += s * sq + (1 - s) * hinge * hinge;
    for (int64_t k = 0; k < d; ++k) {
      const double u = static_cast<double>(e1[i * d + k]) - e2[i * d + k];
      const double g =
          (s * 2 * u - (1 - s) * (dist > 0 ? 2 * hinge * u / dist : 0.0)) / static_cast<double>(n);
      if (de1) de1[i * d + k] = static_cast<T>(g);
      if (de2) de2[i * d + k] = static_cast<T>(-g);
    }
  }
  return static_cast<T>(n > 0 ? sum / static_cast<double>(n) : 0.0);
}

#define CORENN_METRIC_LOSSES_INSTANTIATE(T)                                                    \
  template void validate_same<T>(const T*, int64_t, const char*, const char*);                 \
  template T triplet_loss<T>(T*, const T*, int64_t, int64_t, T, bool, bool, T);                \
  template T triplet_loss_naive<T>(T*, const T*, int64_t, int64_t, T, bool, bool, T);          \
  template T contrastive_loss<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, T);   \
  template T contrastive_loss_naive<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, \
                                       T);

CORENN_METRIC_LOSSES_INSTANTIATE(float)
CORENN_METRIC_LOSSES_INSTANTIATE(double)

#undef CORENN_METRIC_LOSSES_INSTANTIATE

}  // namespace corenn
