// Scaled dot-product attention: see corenn/kernels/attention.hpp for the formulas.
//
// The fast kernels do the three products of each batch element through the
// gemm door (S = scale·q kᵀ straight into p, then O = P v; backward four
// products) and the masked softmax in between row by row.
//
// Threading, as the convolutions do it: with at least as many batch elements
// as threads, the elements are split across threads (parallel_for) and the
// GEMMs inside run single-threaded (gemm.hpp does that inside a region); with
// fewer, the elements run one after the other and each GEMM splits itself
// across the threads. Batch elements share nothing (no sums across them), and
// each is computed by the same code whatever the split.
#include "corenn/kernels/attention.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "corenn/error.hpp"
#include "backend/gemm.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {

using detail::gemm;
using detail::Trans;

[[noreturn]] void shape_error(const char* op, const char* arg, const std::string& expected,
                              const std::vector<int64_t>& got) {
  throw ShapeError(std::string(op) + ": " + arg + " must " + expected + ", got shape " + shape_string(got));
}

// One chunk per thread when there are enough batch elements, else 1 (serial
// elements, threaded GEMMs).
template <typename Fn>
void for_batch(int64_t batch, Fn&& fn) {
  if (batch < detail::omp_max_threads()) fn(int64_t(0), batch, 0);
  else detail::parallel_for(0, batch, 1, fn);
}

// Key j allowed for query i (mask_row: the mask's row i, or nullptr).
inline bool allowed(const bool* mask_row, bool causal, int64_t i, int64_t j) {
  return (!mask_row || mask_row[j]) && (!causal || j <= i);
}

// Row i of S (length Tk) becomes row i of P in place: a softmax over the
// allowed keys, 0 at the others, all 0 when none is allowed.
template <typename T>
void masked_softmax_row(T* row, const bool* mask_row, bool causal, int64_t i, int64_t keys) {
  T top = -std::numeric_limits<T>::infinity();
  bool any = false;
  for (int64_t j = 0; j < keys; ++j)
    if (allowed(mask_row, causal, i, j)) {
      any = true;
      top = std::max(top, row[j]);
    }
  if (!any) {
    std::fill(row, row + keys, T(0));
    return;
  }
  double sum = 0.0;
  for (int64_t j = 0; j < keys; ++j) {
    const T e = allowed(mask_row, causal, i, j) ? std::exp(row[j] - top) : T(0);
    row[j] = e;
    sum += e;
  }
  const T inv = static_cast<T>(1.0 / sum);
  for (int64_t j = 0; j < keys; ++j) row[j] *= inv;
}

}  // namespace

AttentionDims attention_dims(const std::vector<int64_t>& q, const std::vector<int64_t>& k,
                             const std::vector<int64_t>& v, const char* op) {
  const std::pair<const char*, const std::vector<int64_t>*> args[] = {{"q", &q}, {"k", &k}, {"v", &v}};
  for (const auto& [name, shape] : args) {
    if (shape->size() != 3) shape_error(op, name, "be 3-D (batch, length, depth)", *shape);
    for (int64_t s : *shape)
      if (s < 1) shape_error(op, name, "have positive dimensions", *shape);
  }
  if (k[0] != q[0] || v[0] != q[0])
    shape_error(op, k[0] != q[0] ? "k" : "v", "have the batch size of q (" + std::to_string(q[0]) + ")",
                k[0] != q[0] ? k : v);
  if (k[2] != q[2])
    shape_error(op, "k", "have the depth of q (last axis " + std::to_string(q[2]) + ")", k);
  if (v[1] != k[1])
    shape_error(op, "v", "have as many steps as k (key and value lengths " + std::to_string(k[1]) + ")", v);
  AttentionDims d;
  d.batch = q[0], d.q_len = q[1], d.k_len = k[1], d.depth = q[2], d.v_depth = v[2];
  return d;
}

int64_t attention_mask_batch(const AttentionDims& d, const std::vector<int64_t>& mask, const char* op) {
  const std::string expected = "have shape (" + std::to_string(d.batch) + " or 1, " +
                               std::to_string(d.q_len) + ", " + std::to_string(d.k_len) +
                               ") (batch, queries, keys)";
  if (mask.size() != 3 || (mask[0] != d.batch && mask[0] != 1) || mask[1] != d.q_len || mask[2] != d.k_len)
    shape_error(op, "mask", expected, mask);
  return mask[0];
}

void validate_attention_scale(double scale, const char* op) {
  if (std::isfinite(scale)) return;
  std::ostringstream msg;
  msg << op << ": scale must be finite, got " << scale;
  throw ValueError(msg.str());
}

// ---------------------------------------------------------------- forward

template <typename T>
void attention_forward(T* o, T* p, const T* q, const T* k, const T* v, const bool* mask,
                       int64_t mask_batch, bool causal, double scale, const AttentionDims& d) {
  // o: (B, Tq, dv); p: (B, Tq, Tk); q: (B, Tq, d); k: (B, Tk, d); v: (B, Tk, dv)
  const int64_t Tq = d.q_len, Tk = d.k_len, D = d.depth, Dv = d.v_depth;
  for_batch(d.batch, [=](int64_t lo, int64_t hi, int) {
    for (int64_t b = lo; b < hi; ++b) {
      T* pb = p + b * Tq * Tk;
      gemm(Trans::no, Trans::yes, Tq, Tk, D, static_cast<T>(scale), q + b * Tq * D, D, k + b * Tk * D, D,
           T(0), pb, Tk);
      const bool* mb = mask ? mask + (mask_batch == 1 ? 0 : b) * Tq * Tk : nullptr;
      for (int64_t i = 0; i < Tq; ++i) masked_softmax_row(pb + i * Tk, mb ? mb + i * Tk : nullptr, causal, i, Tk);
      gemm(Trans::no, Trans::no, Tq, Dv, Tk, T(1), pb, Tk, v + b * Tk * Dv, Dv, T(0), o + b * Tq * Dv, Dv);
    }
  });
}

template <typename T>
void attention_forward_naive(T* o, T* p, const T* q, const T* k, const T* v, const bool* mask,
                             int64_t mask_batch, bool causal, double scale, const AttentionDims& d) {
  // o: (B, Tq, dv); p: (B, Tq, Tk); q: (B, Tq, d); k: (B, Tk, d); v: (B, Tk, dv)
  const int64_t Tq = d.q_len, Tk = d.k_len, D = d.depth, Dv = d.v_depth;
  std::vector<double> s(static_cast<size_t>(Tk));
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t i = 0; i < Tq; ++i) {
      T* prow = p + (b * Tq + i) * Tk;
      const bool* mrow = mask ? mask + ((mask_batch == 1 ? 0 : b) * Tq + i) * Tk : nullptr;
      double top = -std::numeric_limits<double>::infinity();
      bool any = false;
      for (int64_t j = 0; j < Tk; ++j) {
        double dot = 0.0;
        for (int64_t c = 0; c < D; ++c) dot += static_cast<double>(q[(b * Tq + i) * D + c]) * k[(b * Tk + j) * D + c];
        s[j] = scale * dot;
        if (allowed(mrow, causal, i, j)) any = true, top = std::max(top, s[j]);
      }
      double sum = 0.0;
      for (int64_t j = 0; j < Tk; ++j) {
        s[j] = any && allowed(mrow, causal, i, j) ? std::exp(s[j] - top) : 0.0;
        sum += s[j];
      }
      for (int64_t j = 0; j < Tk; ++j) prow[j] = static_cast<T>(any ? s[j] / sum : 0.0);
      for (int64_t c = 0; c < Dv; ++c) {
        double acc = 0.0;
        for (int64_t j = 0; j < Tk; ++j) acc += (any ? s[j] / sum : 0.0) * v[(b * Tk + j) * Dv + c];
        o[(b * Tq + i) * Dv + c] = static_cast<T>(acc);
      }
    }
}

// ---------------------------------------------------------------- backward

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* p, double scale, const AttentionDims& d) {
  // dq, q: (B, Tq, d); dk, k: (B, Tk, d); dv, v: (B, Tk, dv); dout: (B, Tq, dv); p: (B, Tq, Tk)
  const int64_t Tq = d.q_len, Tk = d.k_len, D = d.depth, Dv = d.v_depth;
  const T s = static_cast<T>(scale);
  for_batch(d.batch, [=](int64_t lo, int64_t hi, int) {
    std::vector<T> ds(static_cast<size_t>(Tq * Tk));  // dP, then dS in place
    for (int64_t b = lo; b < hi; ++b) {
      const T* pb = p + b * Tq * Tk;
      const T* dob = dout + b * Tq * Dv;
      gemm(Trans::yes, Trans::no, Tk, Dv, Tq, T(1), pb, Tk, dob, Dv, T(0), dv + b * Tk * Dv, Dv);
      gemm(Trans::no, Trans::yes, Tq, Tk, Dv, T(1), dob, Dv, v + b * Tk * Dv, Dv, T(0), ds.data(), Tk);
      for (int64_t i = 0; i < Tq; ++i) {
        T* row = ds.data() + i * Tk;
        const T* prow = pb + i * Tk;
        double dot = 0.0;
        for (int64_t j = 0; j < Tk; ++j) dot += static_cast<double>(row[j]) * prow[j];
        const T r = static_cast<T>(dot);
        for (int64_t j = 0; j < Tk; ++j) row[j] = prow[j] * (row[j] - r);
      }
      gemm(Trans::no, Trans::no, Tq, D, Tk, s, ds.data(), Tk, k + b * Tk * D, D, T(0), dq + b * Tq * D, D);
      gemm(Trans::yes, Trans::no, Tk, D, Tq, s, ds.data(), Tk, q + b * Tq * D, D, T(0), dk + b * Tk * D, D);
    }
  });
}

template <typename T>
void attention_backward_naive(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                              const T* v, const T* p, double scale, const AttentionDims& d) {
  // dq, q: (B, Tq, d); dk, k: (B, Tk, d); dv, v: (B, Tk, dv); dout: (B, Tq, dv); p: (B, Tq, Tk)
  const int64_t Tq = d.q_len, Tk = d.k_len, D = d.depth, Dv = d.v_depth;
  std::vector<double> ds(static_cast<size_t>(Tq * Tk));
  for (int64_t b = 0; b < d.batch; ++b) {
    const T* pb = p + b * Tq * Tk;
    for (int64_t i = 0; i < Tq; ++i) {
      double r = 0.0;
      for (int64_t j = 0; j < Tk; ++j) {
        double dp = 0.0;
        for (int64_t c = 0; c < Dv; ++c) dp += static_cast<double>(dout[(b * Tq + i) * Dv + c]) * v[(b * Tk + j) * Dv + c];
        ds[i * Tk + j] = dp;
        r += dp * pb[i * Tk + j];
      }
      for (int64_t j = 0; j < Tk; ++j) ds[i * Tk + j] = pb[i * Tk + j] * (ds[i * Tk + j] - r);
    }
    for (int64_t j = 0; j < Tk; ++j)
      for (int64_t c = 0; c < Dv; ++c) {
        double acc = 0.0;
        for (int64_t i = 0; i < Tq; ++i) acc += static_cast<double>(pb[i * Tk + j]) * dout[(b * Tq + i) * Dv + c];
        dv[(b * Tk + j) * Dv + c] = static_cast<T>(acc);
      }
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t c = 0; c < D; ++c) {
        double acc = 0.0;
        for (int64_t j = 0; j < Tk; ++j) acc += ds[i * Tk + j] * k[(b * Tk + j) * D + c];
        dq[(b * Tq + i) * D + c] = static_cast<T>(scale * acc);
      }
    for (int64_t j = 0; j < Tk; ++j)
      for (int64_t c = 0; c < D; ++c) {
        double acc = 0.0;
        for (int64_t i = 0; i < Tq; ++i) acc += ds[i * Tk + j] * q[(b * Tq + i) * D + c];
        dk[(b * Tk + j) * D + c] = static_cast<T>(scale * acc);
      }
  }
}

// ---------------------------------------------------------------- additive scores

AttentionDims additive_scores_dims(const std::vector<int64_t>& qp, const std::vector<int64_t>& kp,
                                   const std::vector<int64_t>& w, const char* op) {
  const std::pair<const char*, const std::vector<int64_t>*> args[] = {{"qp", &qp}, {"kp", &kp}};
  for (const auto& [name, shape] : args) {
    if (shape->size() != 3) shape_error(op, name, "be 3-D (batch, length, units)", *shape);
    for (int64_t s : *shape)
      if (s < 1) shape_error(op, name, "have positive dimensions", *shape);
  }
  if (kp[0] != qp[0]) shape_error(op, "kp", "have the batch size of qp (" + std::to_string(qp[0]) + ")", kp);
  if (kp[2] != qp[2]) shape_error(op, "kp", "have the units of qp (last axis " + std::to_string(qp[2]) + ")", kp);
  if (w.size() != 1 || w[0] != qp[2]) shape_error(op, "w", "have shape (" + std::to_string(qp[2]) + ",)", w);
  AttentionDims d;
  d.batch = qp[0], d.q_len = qp[1], d.k_len = kp[1], d.depth = qp[2], d.v_depth = 0;
  return d;
}

// Threads split the batch; a batch element is computed by the same serial loops
// whatever the split. dw sums over the batch: one double partial per chunk.

template <typename T>
void additive_scores_forward(T* scores, const T* qp, const T* kp, const T* w, const AttentionDims& d) {
  // scores: (B, Tq, Tk); qp: (B, Tq, U); kp: (B, Tk, U); w: (U,)
  const int64_t Tq = d.q_len, Tk = d.k_len, U = d.depth;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, Tq * Tk * U));
  detail::parallel_for(0, d.batch, grain, [=](int64_t lo, int64_t hi, int) {
    for (int64_t b = lo; b < hi; ++b)
      for (int64_t i = 0; i < Tq; ++i) {
        const T* qi = qp + (b * Tq + i) * U;
        for (int64_t j = 0; j < Tk; ++j) {
          const T* kj = kp + (b * Tk + j) * U;
          double acc = 0.0;
          for (int64_t u = 0; u < U; ++u) acc += static_cast<double>(w[u]) * std::tanh(qi[u] + kj[u]);
          scores[(b * Tq + i) * Tk + j] = static_cast<T>(acc);
        }
      }
  });
}

template <typename T>
void additive_scores_forward_naive(T* scores, const T* qp, const T* kp, const T* w,
                                   const AttentionDims& d) {
  // scores: (B, Tq, Tk); qp: (B, Tq, U); kp: (B, Tk, U); w: (U,)
  const int64_t Tq = d.q_len, Tk = d.k_len, U = d.depth;
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = 0; j < Tk; ++j) {
        double acc = 0.0;
        for (int64_t u = 0; u < U; ++u)
          acc += static_cast<double>(w[u]) *
                 std::tanh(static_cast<double>(qp[(b * Tq + i) * U + u]) + kp[(b * Tk + j) * U + u]);
        scores[(b * Tq + i) * Tk + j] = static_cast<T>(acc);
      }
}

template <typename T>
void additive_scores_backward(T* dqp, T* dkp, T* dw, const T* dscores, const T* qp, const T* kp,
                              const T* w, const AttentionDims& d) {
  // dqp, qp: (B, Tq, U); dkp, kp: (B, Tk, U); dw, w: (U,); dscores: (B, Tq, Tk)
  const int64_t Tq = d.q_len, Tk = d.k_len, U = d.depth;
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, Tq * Tk * U));
  const int chunks = detail::parallel_chunks(d.batch, grain);
  std::vector<double> partial(static_cast<size_t>(chunks * U), 0.0);
  double* parts = partial.data();
  detail::parallel_for(0, d.batch, grain, [=](int64_t lo, int64_t hi, int chunk) {
    double* pw = parts + static_cast<int64_t>(chunk) * U;
    std::vector<double> dq(static_cast<size_t>(U));
    for (int64_t b = lo; b < hi; ++b) {
      T* dkb = dkp + b * Tk * U;
      std::fill(dkb, dkb + Tk * U, T(0));
      for (int64_t i = 0; i < Tq; ++i) {
        const T* qi = qp + (b * Tq + i) * U;
        std::fill(dq.begin(), dq.end(), 0.0);
        for (int64_t j = 0; j < Tk; ++j) {
          const T* kj = kp + (b * Tk + j) * U;
          const double ds = dscores[(b * Tq + i) * Tk + j];
          T* dkj = dkb + j * U;
          for (int64_t u = 0; u < U; ++u) {
            const double t = std::tanh(static_cast<double>(qi[u] + kj[u]));
            const double g = ds * w[u] * (1.0 - t * t);
            dq[u] += g;
            dkj[u] += static_cast<T>(g);
            pw[u] += ds * t;
          }
        }
        T* dqi = dqp + (b * Tq + i) * U;
        for (int64_t u = 0; u < U; ++u) dqi[u] = static_cast<T>(dq[u]);
      }
    }
  });
  for (int64_t u = 0; u < U; ++u) {
    double sum = 0.0;
    for (int c = 0; c < chunks; ++c) sum += parts[static_cast<int64_t>(c) * U + u];
    dw[u] += static_cast<T>(sum);
  }
}

template <typename T>
void additive_scores_backward_naive(T* dqp, T* dkp, T* dw, const T* dscores, const T* qp,
                                    const T* kp, const T* w, const AttentionDims& d) {
  // dqp, qp: (B, Tq, U); dkp, kp: (B, Tk, U); dw, w: (U,); dscores: (B, Tq, Tk)
  const int64_t Tq = d.q_len, Tk = d.k_len, U = d.depth;
  std::vector<double> sum_w(static_cast<size_t>(U), 0.0);
  auto t_of = [=](int64_t b, int64_t i, int64_t j, int64_t u) {
    return std::tanh(static_cast<double>(qp[(b * Tq + i) * U + u]) + kp[(b * Tk + j) * U + u]);
  };
  for (int64_t b = 0; b < d.batch; ++b) {
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t u = 0; u < U; ++u) {
        double acc = 0.0;
        for (int64_t j = 0; j < Tk; ++j) {
          const double t = t_of(b, i, j, u);
          acc += dscores[(b * Tq + i) * Tk + j] * w[u] * (1.0 - t * t);
        }
        dqp[(b * Tq + i) * U + u] = static_cast<T>(acc);
      }
    for (int64_t j = 0; j < Tk; ++j)
      for (int64_t u = 0; u < U; ++u) {
        double acc = 0.0;
        for (int64_t i = 0; i < Tq; ++i) {
          const double t = t_of(b, i, j, u);
          acc += dscores[(b * Tq + i) * Tk + j] * w[u] * (1.0 - t * t);
          sum_w[u] += dscores[(b * Tq + i) * Tk + j] * t;
        }
        dkp[(b * Tk + j) * U + u] = static_cast<T>(acc);
      }
  }
  for (int64_t u = 0; u < U; ++u) dw[u] += static_cast<T>(sum_w[u]);
}

// ---------------------------------------------------------------- instantiations

#define CORENN_ATTENTION_INSTANTIATE(T)                                                            \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const bool*, int64_t,   \
                                     bool, double, const AttentionDims&);                          \
  template void attention_forward_naive<T>(T*, T*, const T*, const T*, const T*, const bool*,      \
                                           int64_t, bool, double, const AttentionDims&);           \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,          \
                                      const T*, double, const AttentionDims&);                     \
  template void attention_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*, const T*,    \
                                            const T*, double, const AttentionDims&);         \
  template void additive_scores_forward<T>(T*, const T*, const T*, const T*, const AttentionDims&);        \
  template void additive_scores_forward_naive<T>(T*, const T*, const T*, const T*,                      \
                                                 const AttentionDims&);                                 \
  template void additive_scores_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,         \
                                            const AttentionDims&);                                      \
  template void additive_scores_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*, const T*,   \
                                                  const AttentionDims&);

CORENN_ATTENTION_INSTANTIATE(float)
CORENN_ATTENTION_INSTANTIATE(double)

#undef CORENN_ATTENTION_INSTANTIATE

}  // namespace corenn
