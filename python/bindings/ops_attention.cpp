#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "common.hpp"
#include "corenn/kernels/attention.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "attention_forward";
constexpr const char* kBackward = "attention_backward";

// The given scale, or 1/√d.
double scale_or_default(const std::optional<double>& scale, const AttentionDims& d, const char* op) {
  const double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(d.depth)));
  validate_attention_scale(s, op);
  return s;
}

// A bool array argument (the mask, the dropout's keep mask) or TypeError.
py::array bool_array(const py::object& x, const char* op, const char* arg, const char* meaning) {
  py::array a = py::array::ensure(x);
  if (!a || !a.dtype().equal(py::dtype::of<bool>()))
    throw TypeError(std::string(op) + ": " + arg + " must be a bool array (" + meaning + "), got " +
                    (a ? dtype_str(a) : py::str(py::type::of(x).attr("__name__")).cast<std::string>()));
  return a;
}

// The masks of one call: the attention mask (mask_batch, Tq, Tk) and the
// dropout's keep mask (B, Tq, Tk), as contiguous bools (empty when not given).
struct CallMasks {
  carray<bool> mask, keep;
  bool has_mask = false;
  int64_t mask_batch = 0;
  AttentionDropout drop;
};
CallMasks call_masks(const AttentionDims& d, const py::object& mask, const py::object& keep, double rate,
                     const char* op) {
  CallMasks m;
  if (!mask.is_none()) {
    py::array a = bool_array(mask, op, "mask", "True = attend");
    m.mask_batch = attention_mask_batch(d, shape_of(a), op);
    m.mask = contiguous<bool>(a);
    m.has_mask = true;
  }
  validate_attention_dropout(rate, op, "rate");
  if (!keep.is_none()) {
    py::array a = bool_array(keep, op, "keep", "True = kept by the dropout");
    require_shape(a, {d.batch, d.q_len, d.k_len}, op, "keep");
    m.keep = contiguous<bool>(a);
    m.drop = {reinterpret_cast<const uint8_t*>(m.keep.data()), rate};
  }
  return m;
}

py::tuple attention_forward_py(const py::array& q, const py::array& k, const py::array& v,
                               const py::object& mask, bool causal, std::optional<double> scale,
                               const py::object& keep, double rate, bool naive) {
  const FloatKind kind = float_kind(q, kForward, "q");
  require_same_dtype(q, k, kForward, "q", "k");
  require_same_dtype(q, v, kForward, "q", "v");
  const AttentionDims d = attention_dims(shape_of(q), shape_of(k), shape_of(v), kForward);
  const double s = scale_or_default(scale, d, kForward);
  const CallMasks m = call_masks(d, mask, keep, rate, kForward);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto qc = contiguous<T>(q), kc = contiguous<T>(k), vc = contiguous<T>(v);
    auto o = new_array<T>({d.batch, d.q_len, d.v_depth});
    auto p = new_array<T>({d.batch, d.q_len, d.k_len});
    std::vector<T> dropped(m.drop.keep ? static_cast<size_t>(d.batch * d.q_len * d.k_len) : 0);
    T *op = o.mutable_data(), *pp = p.mutable_data();
    const bool* mp = m.has_mask ? m.mask.data() : nullptr;
    {
      py::gil_scoped_release nogil;
      (naive ? attention_forward_naive<T> : attention_forward<T>)(op, pp, qc.data(), kc.data(), vc.data(), mp,
                                                                  m.mask_batch, causal, s, d, m.drop, dropped.data());
    }
    return py::make_tuple(o, p);
  });
}

py::tuple attention_backward_py(const py::array& dout, const py::array& q, const py::array& k,
                                const py::array& v, const py::array& p, std::optional<double> scale,
                                const py::object& keep, double rate, bool naive) {
  const FloatKind kind = float_kind(q, kBackward, "q");
  require_same_dtype(q, k, kBackward, "q", "k");
  require_same_dtype(q, v, kBackward, "q", "v");
  require_same_dtype(q, dout, kBackward, "q", "dout");
  require_same_dtype(q, p, kBackward, "q", "p");
  const AttentionDims d = attention_dims(shape_of(q), shape_of(k), shape_of(v), kBackward);
  require_shape(dout, {d.batch, d.q_len, d.v_depth}, kBackward, "dout");
  require_shape(p, {d.batch, d.q_len, d.k_len}, kBackward, "p");
  const double s = scale_or_default(scale, d, kBackward);
  const CallMasks m = call_masks(d, py::none(), keep, rate, kBackward);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto qc = contiguous<T>(q), kc = contiguous<T>(k), vc = contiguous<T>(v);
    auto dc = contiguous<T>(dout), pc = contiguous<T>(p);
    auto dq = new_array<T>(shape_of(q)), dk = new_array<T>(shape_of(k)), dv = new_array<T>(shape_of(v));
    T *dqp = dq.mutable_data(), *dkp = dk.mutable_data(), *dvp = dv.mutable_data();
    {
      py::gil_scoped_release nogil;
      (naive ? attention_backward_naive<T> : attention_backward<T>)(dqp, dkp, dvp, dc.data(), qc.data(),
                                                                    kc.data(), vc.data(), pc.data(), s, d, m.drop);
    }
    return py::make_tuple(dq, dk, dv);
  });
}

constexpr const char* kWeights = "attention_weights_forward";
constexpr const char* kWeightsBackward = "attention_weights_backward";

// The (B, Tq, Tk) scores and (B, Tk, dv) values as AttentionDims, or ShapeError.
AttentionDims weights_dims(const py::array& scores, const py::array& v, const char* op) {
  require_ndim(scores, 3, op, "scores", "(batch, queries, keys)");
  const std::vector<int64_t> s = shape_of(scores), vs = shape_of(v);
  // attention_dims checks q (B, Tq, 1), k (B, Tk, 1) and v: the scores' shape as q and k.
  AttentionDims d = attention_dims({s[0], s[1], 1}, {s[0], s[2], 1}, vs, op);
  d.depth = 0;
  return d;
}

py::tuple attention_weights_forward_py(const py::array& scores, const py::array& v, const py::object& mask,
                                       bool causal, const py::object& keep, double rate, bool naive) {
  const FloatKind kind = float_kind(scores, kWeights, "scores");
  require_same_dtype(scores, v, kWeights, "scores", "v");
  const AttentionDims d = weights_dims(scores, v, kWeights);
  const CallMasks m = call_masks(d, mask, keep, rate, kWeights);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto vc = contiguous<T>(v), sc = contiguous<T>(scores);
    auto o = new_array<T>({d.batch, d.q_len, d.v_depth});
    auto p = new_array<T>({d.batch, d.q_len, d.k_len});  // the scores, turned into the weights in place
    std::copy_n(sc.data(), d.batch * d.q_len * d.k_len, p.mutable_data());
    std::vector<T> dropped(m.drop.keep ? static_cast<size_t>(d.batch * d.q_len * d.k_len) : 0);
    T *op = o.mutable_data(), *pp = p.mutable_data();
    const bool* mp = m.has_mask ? m.mask.data() : nullptr;
    {
      py::gil_scoped_release nogil;
      (naive ? attention_weights_forward_naive<T> : attention_weights_forward<T>)(op, pp, dropped.data(), vc.data(),
                                                                                  mp, m.mask_batch, causal, m.drop, d);
    }
    return py::make_tuple(o, p);
  });
}

py::tuple attention_weights_backward_py(const py::array& dout, const py::array& v, const py::array& p,
                                        const py::object& keep, double rate, bool naive) {
  const FloatKind kind = float_kind(p, kWeightsBackward, "p");
  require_same_dtype(p, v, kWeightsBackward, "p", "v");
  require_same_dtype(p, dout, kWeightsBackward, "p", "dout");
  const AttentionDims d = weights_dims(p, v, kWeightsBackward);
  require_shape(dout, {d.batch, d.q_len, d.v_depth}, kWeightsBackward, "dout");
  const CallMasks m = call_masks(d, py::none(), keep, rate, kWeightsBackward);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto dc = contiguous<T>(dout), vc = contiguous<T>(v), pc = contiguous<T>(p);
    auto ds = new_array<T>({d.batch, d.q_len, d.k_len});
    auto dv = new_array<T>(shape_of(v));
    T *dsp = ds.mutable_data(), *dvp = dv.mutable_data();
    {
      py::gil_scoped_release nogil;
      (naive ? attention_weights_backward_naive<T> : attention_weights_backward<T>)(dsp, dvp, dc.data(), vc.data(),
                                                                                    pc.data(), m.drop, d);
    }
    return py::make_tuple(ds, dv);
  });
}

constexpr const char* kAdditive = "additive_scores_forward";
constexpr const char* kAdditiveBackward = "additive_scores_backward";

py::array additive_scores_forward_py(const py::array& qp, const py::array& kp, const py::array& w, bool naive) {
  const FloatKind kind = float_kind(qp, kAdditive, "qp");
  require_same_dtype(qp, kp, kAdditive, "qp", "kp");
  require_same_dtype(qp, w, kAdditive, "qp", "w");
  const AttentionDims d = additive_scores_dims(shape_of(qp), shape_of(kp), shape_of(w), kAdditive);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto qc = contiguous<T>(qp), kc = contiguous<T>(kp), wc = contiguous<T>(w);
    auto scores = new_array<T>({d.batch, d.q_len, d.k_len});
    T* sp = scores.mutable_data();
    {
      py::gil_scoped_release nogil;
      (naive ? additive_scores_forward_naive<T> : additive_scores_forward<T>)(sp, qc.data(), kc.data(), wc.data(), d);
    }
    return scores;
  });
}

py::tuple additive_scores_backward_py(const py::array& dscores, const py::array& qp, const py::array& kp,
                                      const py::array& w, bool naive) {
  const FloatKind kind = float_kind(qp, kAdditiveBackward, "qp");
  require_same_dtype(qp, kp, kAdditiveBackward, "qp", "kp");
  require_same_dtype(qp, w, kAdditiveBackward, "qp", "w");
  require_same_dtype(qp, dscores, kAdditiveBackward, "qp", "dscores");
  const AttentionDims d = additive_scores_dims(shape_of(qp), shape_of(kp), shape_of(w), kAdditiveBackward);
  require_shape(dscores, {d.batch, d.q_len, d.k_len}, kAdditiveBackward, "dscores");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto dc = contiguous<T>(dscores), qc = contiguous<T>(qp), kc = contiguous<T>(kp), wc = contiguous<T>(w);
    auto dq = new_array<T>(shape_of(qp)), dk = new_array<T>(shape_of(kp)), dw = new_array<T>({d.depth});
    T *dqp = dq.mutable_data(), *dkp = dk.mutable_data(), *dwp = dw.mutable_data();
    {
      py::gil_scoped_release nogil;
      std::fill(dwp, dwp + d.depth, T(0));  // the kernels accumulate dw
      (naive ? additive_scores_backward_naive<T> : additive_scores_backward<T>)(dqp, dkp, dwp, dc.data(), qc.data(),
                                                                                kc.data(), wc.data(), d);
    }
    return py::make_tuple(dq, dk, dw);
  });
}

}  // namespace

void bind_attention(py::module_& ops) {
  ops.def("attention_forward", &attention_forward_py, py::arg("q"), py::arg("k"), py::arg("v"),
          py::arg("mask") = py::none(), py::arg("causal") = false, py::arg("scale") = py::none(),
          py::arg("keep") = py::none(), py::arg("rate") = 0.0, py::arg("naive") = false,
          "(o, p): scaled dot-product attention, o = softmax(scale*q@k^T)@v, of q (B, Tq, d), "
          "k (B, Tk, d), v (B, Tk, dv) -> o (B, Tq, dv) and the attention weights p (B, Tq, Tk). "
          "mask: bool (B or 1, Tq, Tk), True = attend (PyTorch's boolean attn_mask); causal: "
          "key j only for query i >= j; scale defaults to 1/sqrt(d). A query with no key to "
          "attend gets zeros (not NaN). Vaswani et al. 2017, eq. 1. ValueError for shapes that "
          "do not fit, TypeError for dtypes. keep: bool (B, Tq, Tk), dropout on the weights: "
          "o = (p*keep/(1 - rate))@v (p itself is returned before dropout); rate in [0, 1).");
  ops.def("attention_backward", &attention_backward_py, py::arg("dout"), py::arg("q"), py::arg("k"),
          py::arg("v"), py::arg("p"), py::arg("scale") = py::none(), py::arg("keep") = py::none(),
          py::arg("rate") = 0.0, py::arg("naive") = false,
          "(dq, dk, dv) of attention_forward from its weights p: dv = p^T@dout, dS = p*(dP - "
          "rowsum(dP*p)) with dP = dout@v^T, dq = scale*dS@k, dk = scale*dS^T@q. scale must be "
          "the forward's (default 1/sqrt(d)), keep and rate too (then dP = dout@v^T*keep/(1 - rate) "
          "and dv = (p*keep/(1 - rate))^T@dout).");
  ops.def("attention_weights_forward", &attention_weights_forward_py, py::arg("scores"), py::arg("v"),
          py::arg("mask") = py::none(), py::arg("causal") = false, py::arg("keep") = py::none(),
          py::arg("rate") = 0.0, py::arg("naive") = false,
          "(o, p): the second half of attention_forward from scores (B, Tq, Tk) computed elsewhere "
          "(additive_scores_forward): p = the masked softmax of the scores over the keys, o = "
          "(p*keep/(1 - rate))@v with v (B, Tk, dv) (no keep: p@v). mask, causal, keep, rate as "
          "attention_forward's.");
  ops.def("attention_weights_backward", &attention_weights_backward_py, py::arg("dout"), py::arg("v"),
          py::arg("p"), py::arg("keep") = py::none(), py::arg("rate") = 0.0, py::arg("naive") = false,
          "(dscores, dv) of attention_weights_forward from its weights p: dv = p~^T@dout with "
          "p~ = p*keep/(1 - rate) (p without keep), dP = dout@v^T*keep/(1 - rate), dscores = "
          "p*(dP - rowsum(dP*p)).");
  ops.def("additive_scores_forward", &additive_scores_forward_py, py::arg("qp"), py::arg("kp"), py::arg("w"),
          py::arg("naive") = false,
          "scores (B, Tq, Tk): additive (Bahdanau) attention scores, scores[b, i, j] = "
          "sum_u w[u]*tanh(qp[b, i, u] + kp[b, j, u]), of the projected queries qp (B, Tq, U) "
          "and keys kp (B, Tk, U) (W1 q and W2 k, dense ops) and w (U,). Bahdanau et al. 2015, "
          "eq. 6; Keras's AdditiveAttention with scale w.");
  ops.def("additive_scores_backward", &additive_scores_backward_py, py::arg("dscores"), py::arg("qp"),
          py::arg("kp"), py::arg("w"), py::arg("naive") = false,
          "(dqp, dkp, dw) of additive_scores_forward: with t = tanh(qp_i + kp_j) and "
          "g = dscores_ij*w*(1 - t^2), dqp_i = sum_j g, dkp_j = sum_i g, dw = sum dscores_ij*t.");
}

const OpsRegistration attention_ops("attention", bind_attention);

}  // namespace bind
}  // namespace corenn
