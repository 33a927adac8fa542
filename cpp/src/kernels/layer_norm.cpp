// Layer normalisation: see corenn/kernels/layer_norm.hpp for the formulas.
//
// Threading: rows are independent, so the fast kernels split them across
// threads (parallel_for); a row is always computed by the same serial loops,
// so y and dx do not depend on the thread count. dγ and dβ sum over rows:
// each chunk sums its rows into its own double partial, and the partials are
// added in chunk order afterwards (deterministic for a given thread count).
//
// Sums run in double, split over kLanes independent accumulators combined
// pairwise at the end: one running sum cannot be reordered under IEEE rules,
// kLanes separate ones are element-wise adds and vectorise.
#include "corenn/kernels/layer_norm.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

namespace {

constexpr int kLanes = 8;

// Σ term(i) for i < n.
template <typename F>
double lane_sum(int64_t n, F term) {
  double lane[kLanes] = {};
  double tail = 0.0;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) lane[j] += term(i + j);
  for (; i < n; ++i) tail += term(i);
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) lane[j] += lane[j + width];
  return lane[0] + tail;
}

}  // namespace

void validate_layer_norm(double eps, const char* op) {
  // Written as "not (inside)" so that NaN, which fails every comparison, is rejected.
  if (eps > 0.0 && std::isfinite(eps)) return;
  std::ostringstream msg;
  msg << op << ": eps must be finite and > 0, got " << eps;
  throw ValueError(msg.str());
}

// ---------------------------------------------------------------- forward

template <typename T>
void layer_norm_forward(T* y, T* mean, T* invstd, const T* x, const T* gamma, const T* beta,
                        double eps, int64_t rows, int64_t dim) {
  // y, x: (M, D); mean, invstd: (M,); gamma, beta: (D,) or nullptr
  const double inv_dim = 1.0 / static_cast<double>(dim);
  detail::parallel_for(0, rows, detail::grain_for(dim), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * dim;
      T* yr = y + r * dim;
      const double mu = lane_sum(dim, [=](int64_t i) { return static_cast<double>(xr[i]); }) * inv_dim;
      const double var = lane_sum(dim, [=](int64_t i) {
                           const double d = static_cast<double>(xr[i]) - mu;
                           return d * d;
                         }) * inv_dim;
      const double s = 1.0 / std::sqrt(var + eps);
      mean[r] = static_cast<T>(mu);
      invstd[r] = static_cast<T>(s);
      // x − μ in double: μ rounded to float would shift a row with |μ| ≫ σ by
      // up to half an ulp of μ (5e-4 at μ = 1e4), far more than σ's precision.
      for (int64_t i = 0; i < dim; ++i) {
        const double g = gamma ? static_cast<double>(gamma[i]) : 1.0;
        const double b = beta ? static_cast<double>(beta[i]) : 0.0;
        yr[i] = static_cast<T>((static_cast<double>(xr[i]) - mu) * s * g + b);
      }
    }
  });
}

template <typename T>
void layer_norm_forward_naive(T* y, T* mean, T* invstd, const T* x, const T* gamma,
                              const T* beta, double eps, int64_t rows, int64_t dim) {
  // y, x: (M, D); mean, invstd: (M,); gamma, beta: (D,) or nullptr
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * dim;
    double mu = 0.0, var = 0.0;
    for (int64_t i = 0; i < dim; ++i) mu += xr[i];
    mu /= static_cast<double>(dim);
    for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mu) * (xr[i] - mu);
    var /= static_cast<double>(dim);
    mean[r] = static_cast<T>(mu);
    invstd[r] = static_cast<T>(1.0 / std::sqrt(var + eps));
    for (int64_t i = 0; i < dim; ++i) {
      const double g = gamma ? gamma[i] : 1.0, b = beta ? beta[i] : 0.0;
      y[r * dim + i] = static_cast<T>(g * (xr[i] - mu) / std::sqrt(var + eps) + b);
    }
  }
}

// ---------------------------------------------------------------- backward

template <typename T>
void layer_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* mean,
                         const T* invstd, const T* gamma, int64_t rows, int64_t dim) {
  // dx, dy, x: (M, D); mean, invstd: (M,); dgamma, dbeta, gamma: (D,) or nullptr
  const bool sums = dgamma || dbeta;
  const int64_t grain = detail::grain_for(dim);
  const int chunks = detail::parallel_chunks(rows, grain);
  // Per chunk: Σ dy ⊙ x̂ (D values), then Σ dy (D values).
  std::vector<double> partial(sums ? static_cast<size_t>(chunks) * 2 * dim : 0, 0.0);
  double* parts = partial.data();
  const double inv_dim = 1.0 / static_cast<double>(dim);
  detail::parallel_for(0, rows, grain, [=](int64_t lo, int64_t hi, int chunk) CORENN_SIMD_CLONES {
    double* pg = sums ? parts + static_cast<int64_t>(chunk) * 2 * dim : nullptr;
    double* pb = sums ? pg + dim : nullptr;
    for (int64_t r = lo; r < hi; ++r) {
      const T* xr = x + r * dim;
      const T* dyr = dy + r * dim;
      const double mu = mean[r], s = invstd[r];
      auto xhat = [=](int64_t i) { return (static_cast<double>(xr[i]) - mu) * s; };
      auto g = [=](int64_t i) { return static_cast<double>(dyr[i]) * (gamma ? static_cast<double>(gamma[i]) : 1.0); };
      if (sums)
        for (int64_t i = 0; i < dim; ++i) {
          pg[i] += static_cast<double>(dyr[i]) * xhat(i);
          pb[i] += static_cast<double>(dyr[i]);
        }
      if (!dx) continue;
      const double mean_g = lane_sum(dim, g) * inv_dim;
      const double mean_gx = lane_sum(dim, [=](int64_t i) { return g(i) * xhat(i); }) * inv_dim;
      T* dxr = dx + r * dim;
      for (int64_t i = 0; i < dim; ++i) dxr[i] = static_cast<T>(s * (g(i) - mean_g - xhat(i) * mean_gx));
    }
  });
  if (!sums) return;
  for (int64_t i = 0; i < dim; ++i) {
    double sg = 0.0, sb = 0.0;
    for (int c = 0; c < chunks; ++c) {
      sg += parts[static_cast<int64_t>(c) * 2 * dim + i];
      sb += parts[static_cast<int64_t>(c) * 2 * dim + dim + i];
    }
    if (dgamma) dgamma[i] += static_cast<T>(sg);
    if (dbeta) dbeta[i] += static_cast<T>(sb);
  }
}

template <typename T>
void layer_norm_backward_naive(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x,
                               const T* mean, const T* invstd, const T* gamma, int64_t rows,
                               int64_t dim) {
  // dx, dy, x: (M, D); mean, invstd: (M,); dgamma, dbeta, gamma: (D,) or nullptr
  std::vector<double> sum_g(static_cast<size_t>(dim), 0.0), sum_b(static_cast<size_t>(dim), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double a = 0.0, b = 0.0;
    for (int64_t i = 0; i < dim; ++i) {
      const int64_t k = r * dim + i;
      const double xhat = (x[k] - static_cast<double>(mean[r])) * invstd[r];
      const double g = dy[k] * (gamma ? gamma[i] : 1.0);
      a += g;
      b += g * xhat;
      sum_g[i] += dy[k] * xhat;
      sum_b[i] += dy[k];
    }
    if (!dx) continue;
    for (int64_t i = 0; i < dim; ++i) {
      const int64_t k = r * dim + i;
      const double xhat = (x[k] - static_cast<double>(mean[r])) * invstd[r];
      const double g = dy[k] * (gamma ? gamma[i] : 1.0);
      dx[k] = static_cast<T>(invstd[r] * (g - a / dim - xhat * b / dim));
    }
  }
  for (int64_t i = 0; i < dim; ++i) {
    if (dgamma) dgamma[i] += static_cast<T>(sum_g[i]);
    if (dbeta) dbeta[i] += static_cast<T>(sum_b[i]);
  }
}

// ---------------------------------------------------------------- instantiations

#define CORENN_LAYER_NORM_INSTANTIATE(T)                                                           \
  template void layer_norm_forward<T>(T*, T*, T*, const T*, const T*, const T*, double, int64_t,   \
                                      int64_t);                                                    \
  template void layer_norm_forward_naive<T>(T*, T*, T*, const T*, const T*, const T*, double,      \
                                            int64_t, int64_t);                                     \
  template void layer_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,         \
                                       const T*, int64_t, int64_t);                                \
  template void layer_norm_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*, const T*,   \
                                             const T*, int64_t, int64_t);

CORENN_LAYER_NORM_INSTANTIATE(float)
CORENN_LAYER_NORM_INSTANTIATE(double)

#undef CORENN_LAYER_NORM_INSTANTIATE

}  // namespace corenn
