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

void validate_attention_dropout(double rate, const char* op, const char* arg) {
  if (rate >= 0.0 && rate < 1.0) return;
  std::ostringstream msg;
  msg << op << ": " << arg << " must be in [0, 1), got " << rate;
  throw ValueError(msg.str());
}

// ---------------------------------------------------------------- weights and values
//
// The part every score shares (dot products, Bahdanau's additive ones, Keras's
// concat): the rows of scores become weights (masked softmax), dropout, then
// the weighted sum of the values. One batch element at a time, so the
// dot-product kernels run it between their GEMMs while the element is in cache.

namespace {

// pb: (Tq, Tk) scores in, weights out; pdb: P̃ (Tq, Tk) written with dropout;
// ob: (Tq, Dv) = P̃ vb (P̃ = P without dropout).
template <typename T>
void weights_and_values(T* ob, T* pb, T* pdb, const T* vb, const bool* mb, const uint8_t* keepb, double rate,
                        bool causal, int64_t Tq, int64_t Tk, int64_t Dv) {
  for (int64_t i = 0; i < Tq; ++i) masked_softmax_row(pb + i * Tk, mb ? mb + i * Tk : nullptr, causal, i, Tk);
  const T* weights = pb;
  if (keepb) {
    const T keep = T(1) - static_cast<T>(rate);
    for (int64_t i = 0; i < Tq * Tk; ++i) pdb[i] = pb[i] * T(keepb[i] != 0) / keep;
    weights = pdb;
  }
  gemm(Trans::no, Trans::no, Tq, Dv, Tk, T(1), weights, Tk, vb, Dv, T(0), ob, Dv);
}

// dsb: (Tq, Tk) dscores written; dvb: (Tk, Dv) written; pdb: (Tq, Tk) scratch
// for P̃ (with dropout); dob: (Tq, Dv); vb: (Tk, Dv); pb: (Tq, Tk) weights.
template <typename T>
void weights_and_values_backward(T* dsb, T* dvb, T* pdb, const T* dob, const T* vb, const T* pb,
                                 const uint8_t* keepb, double rate, int64_t Tq, int64_t Tk, int64_t Dv) {
  const T keep = T(1) - static_cast<T>(rate);
  const T* weights = pb;
  if (keepb) {
    for (int64_t i = 0; i < Tq * Tk; ++i) pdb[i] = pb[i] * T(keepb[i] != 0) / keep;
    weights = pdb;
  }
  gemm(Trans::yes, Trans::no, Tk, Dv, Tq, T(1), weights, Tk, dob, Dv, T(0), dvb, Dv);
  gemm(Trans::no, Trans::yes, Tq, Tk, Dv, T(1), dob, Dv, vb, Dv, T(0), dsb, Tk);  // dP̃
  if (keepb)
    for (int64_t i = 0; i < Tq * Tk; ++i) dsb[i] = dsb[i] * T(keepb[i] != 0) / keep;  // dP
  for (int64_t i = 0; i < Tq; ++i) {
    T* row = dsb + i * Tk;
    const T* prow = pb + i * Tk;
    double dot = 0.0;
    for (int64_t j = 0; j < Tk; ++j) dot += static_cast<double>(row[j]) * prow[j];
    const T r = static_cast<T>(dot);
    for (int64_t j = 0; j < Tk; ++j) row[j] = prow[j] * (row[j] - r);
  }
}

// The mask rows of batch element b, or nullptr.
inline const bool* mask_of(const bool* mask, int64_t mask_batch, int64_t b, int64_t size) {
  return mask ? mask + (mask_batch == 1 ? 0 : b) * size : nullptr;
}

}  // namespace

template <typename T>
void attention_weights_forward(T* o, T* p, T* dropped, const T* v, const bool* mask, int64_t mask_batch,
                               bool causal, const AttentionDropout& drop, const AttentionDims& d) {
  // o: (B, Tq, dv); p: (B, Tq, Tk) scores in, weights out; dropped: (B, Tq, Tk) P̃; v: (B, Tk, dv)
  const int64_t Tq = d.q_len, Tk = d.k_len, Dv = d.v_depth;
  for_batch(d.batch, [=](int64_t lo, int64_t hi, int) {
    for (int64_t b = lo; b < hi; ++b)
      weights_and_values(o + b * Tq * Dv, p + b * Tq * Tk, drop.keep ? dropped + b * Tq * Tk : nullptr,
                         v + b * Tk * Dv, mask_of(mask, mask_batch, b, Tq * Tk),
                         drop.keep ? drop.keep + b * Tq * Tk : nullptr, drop.rate, causal, Tq, Tk, Dv);
  });
}

template <typename T>
void attention_weights_forward_naive(T* o, T* p, T* dropped, const T* v, const bool* mask, int64_t mask_batch,
                                     bool causal, const AttentionDropout& drop, const AttentionDims& d) {
  // o: (B, Tq, dv); p: (B, Tq, Tk) scores in, weights out; dropped: (B, Tq, Tk) P̃; v: (B, Tk, dv)
  const int64_t Tq = d.q_len, Tk = d.k_len, Dv = d.v_depth;
  std::vector<double> e(static_cast<size_t>(Tk));
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t i = 0; i < Tq; ++i) {
      T* prow = p + (b * Tq + i) * Tk;
      const bool* mrow = mask ? mask + ((mask_batch == 1 ? 0 : b) * Tq + i) * Tk : nullptr;
      double top = -std::numeric_limits<double>::infinity();
      bool any = false;
      for (int64_t j = 0; j < Tk; ++j)
        if (allowed(mrow, causal, i, j)) any = true, top = std::max(top, static_cast<double>(prow[j]));
      double sum = 0.0;
      for (int64_t j = 0; j < Tk; ++j) {
        e[j] = any && allowed(mrow, causal, i, j) ? std::exp(prow[j] - top) : 0.0;
        sum += e[j];
      }
      for (int64_t j = 0; j < Tk; ++j) prow[j] = static_cast<T>(any ? e[j] / sum : 0.0);
      const T* wrow = prow;
      if (drop.keep) {
        T* drow = dropped + (b * Tq + i) * Tk;
        const uint8_t* krow = drop.keep + (b * Tq + i) * Tk;
        for (int64_t j = 0; j < Tk; ++j) drow[j] = prow[j] * (krow[j] ? T(1) : T(0)) / (T(1) - static_cast<T>(drop.rate));
        wrow = drow;
      }
      for (int64_t c = 0; c < Dv; ++c) {
        double acc = 0.0;
        for (int64_t j = 0; j < Tk; ++j) acc += static_cast<double>(wrow[j]) * v[(b * Tk + j) * Dv + c];
        o[(b * Tq + i) * Dv + c] = static_cast<T>(acc);
      }
    }
}

template <typename T>
void attention_weights_backward(T* dscores, T* dv, const T* dout, const T* v, const T* p,
                                const AttentionDropout& drop, const AttentionDims& d) {
  // dscores, p: (B, Tq, Tk); dv, v: (B, Tk, dv); dout: (B, Tq, dv)
  const int64_t Tq = d.q_len, Tk = d.k_len, Dv = d.v_depth;
  for_batch(d.batch, [=](int64_t lo, int64_t hi, int) {
    std::vector<T> dropped(drop.keep ? static_cast<size_t>(Tq * Tk) : 0);
    for (int64_t b = lo; b < hi; ++b)
      weights_and_values_backward(dscores + b * Tq * Tk, dv + b * Tk * Dv, dropped.data(), dout + b * Tq * Dv,
                                  v + b * Tk * Dv, p + b * Tq * Tk, drop.keep ? drop.keep + b * Tq * Tk : nullptr,
                                  drop.rate, Tq, Tk, Dv);
  });
}

template <typename T>
void attention_weights_backward_naive(T* dscores, T* dv, const T* dout, const T* v, const T* p,
                                      const AttentionDropout& drop, const AttentionDims& d) {
  // dscores, p: (B, Tq, Tk); dv, v: (B, Tk, dv); dout: (B, Tq, dv)
  const int64_t Tq = d.q_len, Tk = d.k_len, Dv = d.v_depth;
  // P̃ and dP = dP̃ ⊙ keep/(1 − rate), the dropout's slope (1 without dropout).
  auto slope = [&](int64_t at) {
    return drop.keep ? (drop.keep[at] ? 1.0 : 0.0) / static_cast<double>(T(1) - static_cast<T>(drop.rate)) : 1.0;
  };
  std::vector<double> dp(static_cast<size_t>(Tk));
  for (int64_t b = 0; b < d.batch; ++b) {
    for (int64_t j = 0; j < Tk; ++j)
      for (int64_t c = 0; c < Dv; ++c) {
        double acc = 0.0;
        for (int64_t i = 0; i < Tq; ++i) {
          const int64_t at = (b * Tq + i) * Tk + j;
          acc += static_cast<double>(p[at]) * slope(at) * dout[(b * Tq + i) * Dv + c];
        }
        dv[(b * Tk + j) * Dv + c] = static_cast<T>(acc);
      }
    for (int64_t i = 0; i < Tq; ++i) {
      double r = 0.0;
      for (int64_t j = 0; j < Tk; ++j) {
        double acc = 0.0;
        for (int64_t c = 0; c < Dv; ++c) acc += static_cast<double>(dout[(b * Tq + i) * Dv + c]) * v[(b * Tk + j) * Dv + c];
        dp[j] = acc * slope((b * Tq + i) * Tk + j);
        r += dp[j] * p[(b * Tq + i) * Tk + j];
      }
      for (int64_t j = 0; j < Tk; ++j) dscores[(b * Tq + i) * Tk + j] = static_cast<T>(p[(b * Tq + i) * Tk + j] * (dp[j] - r));
    }
  }
}

// ---------------------------------------------------------------- forward

template <typename T>
void attention_forward(T* o, T* p, const T* q, const T* k, const T* v, const bool* mask, int64_t mask_batch,
                       bool causal, double scale, const AttentionDims& d, const AttentionDropout& drop,
                       T* dropped) {
  // o: (B, Tq, dv); p, dropped: (B, Tq, Tk); q: (B, Tq, d); k: (B, Tk, d); v: (B, Tk, dv)
  const int64_t Tq = d.q_len, Tk = d.k_len, D = d.depth, Dv = d.v_depth;
  for_batch(d.batch, [=](int64_t lo, int64_t hi, int) {
    for (int64_t b = lo; b < hi; ++b) {
      T* pb = p + b * Tq * Tk;
      gemm(Trans::no, Trans::yes, Tq, Tk, D, static_cast<T>(scale), q + b * Tq * D, D, k + b * Tk * D, D,
           T(0), pb, Tk);
      weights_and_values(o + b * Tq * Dv, pb, drop.keep ? dropped + b * Tq * Tk : nullptr, v + b * Tk * Dv,
                         mask_of(mask, mask_batch, b, Tq * Tk), drop.keep ? drop.keep + b * Tq * Tk : nullptr,
                         drop.rate, causal, Tq, Tk, Dv);
    }
  });
}

template <typename T>
void attention_forward_naive(T* o, T* p, const T* q, const T* k, const T* v, const bool* mask,
                             int64_t mask_batch, bool causal, double scale, const AttentionDims& d,
                             const AttentionDropout& drop, T* dropped) {
  // o: (B, Tq, dv); p, dropped: (B, Tq, Tk); q: (B, Tq, d); k: (B, Tk, d); v: (B, Tk, dv)
  const int64_t Tq = d.q_len, Tk = d.k_len, D = d.depth;
  for (int64_t b = 0; b < d.batch; ++b)
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t j = 0; j < Tk; ++j) {
        double dot = 0.0;
        for (int64_t c = 0; c < D; ++c) dot += static_cast<double>(q[(b * Tq + i) * D + c]) * k[(b * Tk + j) * D + c];
        p[(b * Tq + i) * Tk + j] = static_cast<T>(scale * dot);
      }
  attention_weights_forward_naive(o, p, dropped, v, mask, mask_batch, causal, drop, d);
}

// ---------------------------------------------------------------- backward

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* p, double scale, const AttentionDims& d, const AttentionDropout& drop) {
  // dq, q: (B, Tq, d); dk, k: (B, Tk, d); dv, v: (B, Tk, dv); dout: (B, Tq, dv); p: (B, Tq, Tk)
  const int64_t Tq = d.q_len, Tk = d.k_len, D = d.depth, Dv = d.v_depth;
  const T s = static_cast<T>(scale);
  for_batch(d.batch, [=](int64_t lo, int64_t hi, int) {
    std::vector<T> ds(static_cast<size_t>(Tq * Tk));  // dS
    std::vector<T> dropped(drop.keep ? static_cast<size_t>(Tq * Tk) : 0);
    for (int64_t b = lo; b < hi; ++b) {
      weights_and_values_backward(ds.data(), dv + b * Tk * Dv, dropped.data(), dout + b * Tq * Dv, v + b * Tk * Dv,
                                  p + b * Tq * Tk, drop.keep ? drop.keep + b * Tq * Tk : nullptr, drop.rate, Tq,
                                  Tk, Dv);
      gemm(Trans::no, Trans::no, Tq, D, Tk, s, ds.data(), Tk, k + b * Tk * D, D, T(0), dq + b * Tq * D, D);
      gemm(Trans::yes, Trans::no, Tk, D, Tq, s, ds.data(), Tk, q + b * Tq * D, D, T(0), dk + b * Tk * D, D);
    }
  });
}

template <typename T>
void attention_backward_naive(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                              const T* p, double scale, const AttentionDims& d, const AttentionDropout& drop) {
  // dq, q: (B, Tq, d); dk, k: (B, Tk, d); dv, v: (B, Tk, dv); dout: (B, Tq, dv); p: (B, Tq, Tk)
  const int64_t Tq = d.q_len, Tk = d.k_len, D = d.depth;
  std::vector<T> ds(static_cast<size_t>(d.batch * Tq * Tk));
  attention_weights_backward_naive(ds.data(), dv, dout, v, p, drop, d);
  for (int64_t b = 0; b < d.batch; ++b) {
    const T* dsb = ds.data() + b * Tq * Tk;
    for (int64_t i = 0; i < Tq; ++i)
      for (int64_t c = 0; c < D; ++c) {
        double acc = 0.0;
        for (int64_t j = 0; j < Tk; ++j) acc += static_cast<double>(dsb[i * Tk + j]) * k[(b * Tk + j) * D + c];
        dq[(b * Tq + i) * D + c] = static_cast<T>(scale * acc);
      }
    for (int64_t j = 0; j < Tk; ++j)
      for (int64_t c = 0; c < D; ++c) {
        double acc = 0.0;
        for (int64_t i = 0; i < Tq; ++i) acc += static_cast<double>(dsb[i * Tk + j]) * q[(b * Tq + i) * D + c];
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

#define CORENN_ATTENTION_INSTANTIATE(T)                                                                   \
  template void attention_weights_forward<T>(T*, T*, T*, const T*, const bool*, int64_t, bool,                \
                                             const AttentionDropout&, const AttentionDims&);                  \
  template void attention_weights_forward_naive<T>(T*, T*, T*, const T*, const bool*, int64_t, bool,          \
                                                   const AttentionDropout&, const AttentionDims&);            \
  template void attention_weights_backward<T>(T*, T*, const T*, const T*, const T*, const AttentionDropout&,  \
                                              const AttentionDims&);                                          \
  template void attention_weights_backward_naive<T>(T*, T*, const T*, const T*, const T*,                     \
                                                    const AttentionDropout&, const AttentionDims&);           \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const bool*, int64_t, bool,        \
                                     double, const AttentionDims&, const AttentionDropout&, T*);              \
  template void attention_forward_naive<T>(T*, T*, const T*, const T*, const T*, const bool*, int64_t, bool,  \
                                           double, const AttentionDims&, const AttentionDropout&, T*);        \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*, double,   \
                                      const AttentionDims&, const AttentionDropout&);                         \
  template void attention_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,     \
                                            double, const AttentionDims&, const AttentionDropout&);           \
  template void additive_scores_forward<T>(T*, const T*, const T*, const T*, const AttentionDims&);           \
  template void additive_scores_forward_naive<T>(T*, const T*, const T*, const T*, const AttentionDims&);     \
  template void additive_scores_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,               \
                                            const AttentionDims&);                                            \
  template void additive_scores_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*, const T*,         \
                                                  const AttentionDims&);

CORENN_ATTENTION_INSTANTIATE(float)
CORENN_ATTENTION_INSTANTIATE(double)

#undef CORENN_ATTENTION_INSTANTIATE

}  // namespace corenn
