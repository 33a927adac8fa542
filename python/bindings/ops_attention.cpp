#include <pybind11/stl.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

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

py::tuple attention_forward_py(const py::array& q, const py::array& k, const py::array& v,
                               const py::object& mask, bool causal, std::optional<double> scale,
                               bool naive) {
  const FloatKind kind = float_kind(q, kForward, "q");
  require_same_dtype(q, k, kForward, "q", "k");
  require_same_dtype(q, v, kForward, "q", "v");
  const AttentionDims d = attention_dims(shape_of(q), shape_of(k), shape_of(v), kForward);
  const double s = scale_or_default(scale, d, kForward);
  const bool has_mask = !mask.is_none();
  carray<bool> m;
  int64_t mask_batch = 0;
  if (has_mask) {
    py::array a = py::array::ensure(mask);
    if (!a || !a.dtype().equal(py::dtype::of<bool>()))
      throw TypeError(std::string(kForward) + ": mask must be a bool array (True = attend), got " +
                      (a ? dtype_str(a) : py::str(py::type::of(mask).attr("__name__")).cast<std::string>()));
    mask_batch = attention_mask_batch(d, shape_of(a), kForward);
    m = contiguous<bool>(a);
  }
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto qc = contiguous<T>(q), kc = contiguous<T>(k), vc = contiguous<T>(v);
    auto o = new_array<T>({d.batch, d.q_len, d.v_depth});
    auto p = new_array<T>({d.batch, d.q_len, d.k_len});
    T *op = o.mutable_data(), *pp = p.mutable_data();
    const bool* mp = has_mask ? m.data() : nullptr;
    {
      py::gil_scoped_release nogil;
      (naive ? attention_forward_naive<T> : attention_forward<T>)(op, pp, qc.data(), kc.data(), vc.data(), mp,
                                                                  mask_batch, causal, s, d);
    }
    return py::make_tuple(o, p);
  });
}

py::tuple attention_backward_py(const py::array& dout, const py::array& q, const py::array& k,
                                const py::array& v, const py::array& p, std::optional<double> scale,
                                bool naive) {
  const FloatKind kind = float_kind(q, kBackward, "q");
  require_same_dtype(q, k, kBackward, "q", "k");
  require_same_dtype(q, v, kBackward, "q", "v");
  require_same_dtype(q, dout, kBackward, "q", "dout");
  require_same_dtype(q, p, kBackward, "q", "p");
  const AttentionDims d = attention_dims(shape_of(q), shape_of(k), shape_of(v), kBackward);
  require_shape(dout, {d.batch, d.q_len, d.v_depth}, kBackward, "dout");
  require_shape(p, {d.batch, d.q_len, d.k_len}, kBackward, "p");
  const double s = scale_or_default(scale, d, kBackward);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto qc = contiguous<T>(q), kc = contiguous<T>(k), vc = contiguous<T>(v);
    auto dc = contiguous<T>(dout), pc = contiguous<T>(p);
    auto dq = new_array<T>(shape_of(q)), dk = new_array<T>(shape_of(k)), dv = new_array<T>(shape_of(v));
    T *dqp = dq.mutable_data(), *dkp = dk.mutable_data(), *dvp = dv.mutable_data();
    {
      py::gil_scoped_release nogil;
      (naive ? attention_backward_naive<T> : attention_backward<T>)(dqp, dkp, dvp, dc.data(), qc.data(),
                                                                    kc.data(), vc.data(), pc.data(), s, d);
    }
    return py::make_tuple(dq, dk, dv);
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
          py::arg("naive") = false,
          "(o, p): scaled dot-product attention, o = softmax(scale*q@k^T)@v, of q (B, Tq, d), "
          "k (B, Tk, d), v (B, Tk, dv) -> o (B, Tq, dv) and the attention weights p (B, Tq, Tk). "
          "mask: bool (B or 1, Tq, Tk), True = attend (PyTorch's boolean attn_mask); causal: "
          "key j only for query i >= j; scale defaults to 1/sqrt(d). A query with no key to "
          "attend gets zeros (not NaN). Vaswani et al. 2017, eq. 1. ValueError for shapes that "
          "do not fit, TypeError for dtypes.");
  ops.def("attention_backward", &attention_backward_py, py::arg("dout"), py::arg("q"), py::arg("k"),
          py::arg("v"), py::arg("p"), py::arg("scale") = py::none(), py::arg("naive") = false,
          "(dq, dk, dv) of attention_forward from its weights p: dv = p^T@dout, dS = p*(dP - "
          "rowsum(dP*p)) with dP = dout@v^T, dq = scale*dS@k, dk = scale*dS^T@q. scale must be "
          "the forward's (default 1/sqrt(d)).");
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
