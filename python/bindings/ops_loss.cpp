#include <algorithm>
#include <cmath>

#include "common.hpp"
#include "corenn/kernels/loss.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kSoftmaxCE = "softmax_cross_entropy";
constexpr const char* kSigmoidCE = "sigmoid_cross_entropy";
constexpr const char* kMse = "mse";
constexpr const char* kPenalty = "weight_penalty";

using int_array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

bool is_integer_dtype(const py::array& a) {
  const char k = a.dtype().kind();
  return k == 'i' || k == 'u';
}

// A mean over zero examples has no value; say so rather than return 0 or NaN.
void require_nonempty(int64_t n, const char* op, const char* arg, const py::array& a) {
  if (n <= 0)
    throw ShapeError(std::string(op) + ": " + arg + " must not be empty, got shape " +
                     shape_string(shape_of(a)));
}

// sample_weight: None, or an array of the dtype of `like` (named like_name) and
// shape (batch,); returned contiguous (or None) once check_sample_weight has
// passed, before any kernel runs.
py::object sample_weight_arg(const py::object& sample_weight, const py::array& like,
                             const char* like_name, int64_t batch, const char* op) {
  if (sample_weight.is_none()) return py::none();
  py::array w = py::array::ensure(sample_weight);
  if (!w) throw TypeError(std::string(op) + ": sample_weight must be an array or None");
  require_same_dtype(like, w, op, like_name, "sample_weight");
  require_shape(w, {batch}, op, "sample_weight");
  return dispatch_float(float_kind(like, op, like_name), [&](auto tag) -> py::object {
    using T = decltype(tag);
    auto wc = contiguous<T>(w);
    check_sample_weight(wc.data(), batch, op);
    return std::move(wc);
  });
}

template <typename T>
const T* weight_ptr(const py::object& w) {
  return w.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(w).data());
}

// logits (N, C), labels (N,) integer, or logits (N, T, C), labels (N, T) (-1 = ignored) and
// mask (N, T) or None; sample_weight (N,) or None -> (loss, dlogits shaped like logits)
py::tuple softmax_cross_entropy_py(const py::array& logits, const py::array& labels,
                                   const py::object& sample_weight, const py::object& mask, bool naive) {
  const FloatKind fk = float_kind(logits, kSoftmaxCE, "logits");
  const bool sequence = logits.ndim() == 3;
  if (!sequence) require_ndim(logits, 2, kSoftmaxCE, "logits", "(batch, classes) or 3-D (batch, steps, classes)");
  const int64_t batch = logits.shape(0), steps = sequence ? logits.shape(1) : 1;
  const int64_t classes = logits.shape(logits.ndim() - 1);
  require_nonempty(batch, kSoftmaxCE, "logits", logits);
  // Float labels are refused, not truncated: 2.7 is a bug, not class 2.
  if (!is_integer_dtype(labels))
    throw TypeError(std::string(kSoftmaxCE) + ": labels must be an integer array, got " +
                    dtype_str(labels));
  if (sequence)
    require_shape(labels, {batch, steps}, kSoftmaxCE, "labels");
  else
    require_shape(labels, {batch}, kSoftmaxCE, "labels");
  int_array lab = int_array::ensure(labels);
  if (!lab) throw py::error_already_set();
  // Validated here, before any parallel region, where throwing is safe.
  check_labels(lab.data(), batch * steps, classes, sequence);
  std::vector<uint8_t> step_mask;
  if (!mask.is_none()) {
    if (!sequence)
      throw ValueError(std::string(kSoftmaxCE) + ": mask needs sequence logits (batch, steps, classes), got " +
                       shape_string(shape_of(logits)));
    py::array m = py::array::ensure(mask);
    if (!m || (m.dtype().kind() != 'b' && !is_integer_dtype(m)))
      throw TypeError(std::string(kSoftmaxCE) + ": mask must be a bool or integer array (1 = a valid step)");
    require_shape(m, {batch, steps}, kSoftmaxCE, "mask");
    const auto values = contiguous<int64_t>(m.attr("astype")("int64"));
    for (int64_t i = 0; i < batch * steps; ++i) step_mask.push_back(values.data()[i] != 0);
  }
  const py::object weight = sample_weight_arg(sample_weight, logits, "logits", batch, kSoftmaxCE);
  return dispatch_float(fk, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto zc = contiguous<T>(logits);
    auto dz = new_array<T>(shape_of(logits));
    const T* zp = zc.data();
    const int64_t* lp = lab.data();
    const T* wp = weight_ptr<T>(weight);
    const uint8_t* mp = step_mask.empty() ? nullptr : step_mask.data();
    T* dzp = dz.mutable_data();
    T loss;
    {
      ReleaseGil nogil;
      loss = (naive ? softmax_cross_entropy_naive<T> : softmax_cross_entropy<T>)(
          dzp, zp, lp, batch, classes, wp, steps, mp);
    }
    return py::make_tuple(static_cast<double>(loss), dz);
  });
}

// logits, targets (N, K), mask (N, K) or None, sample_weight (N,) or None
// -> (loss, dlogits (N, K))
py::tuple sigmoid_cross_entropy_py(const py::array& logits, const py::array& targets,
                                   const py::object& mask, const py::object& sample_weight,
                                   bool naive) {
  const FloatKind fk = float_kind(logits, kSigmoidCE, "logits");
  require_same_dtype(logits, targets, kSigmoidCE, "logits", "targets");
  require_ndim(logits, 2, kSigmoidCE, "logits", "(batch, outputs)");
  const int64_t batch = logits.shape(0), outputs = logits.shape(1);
  require_nonempty(batch, kSigmoidCE, "logits", logits);
  require_shape(targets, {batch, outputs}, kSigmoidCE, "targets");
  const bool has_mask = !mask.is_none();
  py::array_t<uint8_t> mask01;
  if (has_mask) {
    py::array m = py::array::ensure(mask);
    if (!m) throw TypeError(std::string(kSigmoidCE) + ": mask must be an array or None");
    if (!is_integer_dtype(m) && m.dtype().kind() != 'b' && m.dtype().kind() != 'f')
      throw TypeError(std::string(kSigmoidCE) + ": mask must be bool, integer or float (0 or 1), got " +
                      dtype_str(m));
    require_shape(m, {batch, outputs}, kSigmoidCE, "mask");
    // The kernel reads one byte per entry: 1 = present, 0 = skipped. Any other
    // value (0.5, 2, NaN) would be a weight the loss does not apply: refused.
    using real_array = py::array_t<double, py::array::c_style | py::array::forcecast>;
    real_array mr = real_array::ensure(m);
    if (!mr) throw py::error_already_set();
    mask01 = new_array<uint8_t>({batch, outputs});
    const double* src = mr.data();
    uint8_t* dst = mask01.mutable_data();
    for (int64_t k = 0; k < batch * outputs; ++k) {
      if (src[k] != 0.0 && src[k] != 1.0)
        throw ValueError(std::string(kSigmoidCE) + ": mask must hold only 0 and 1 (False and True), got " +
                         py::str(py::float_(src[k])).cast<std::string>() + " at row " +
                         std::to_string(k / outputs) + ", column " + std::to_string(k % outputs));
      dst[k] = src[k] == 1.0 ? 1 : 0;
    }
  }
  const py::object weight = sample_weight_arg(sample_weight, logits, "logits", batch, kSigmoidCE);
  return dispatch_float(fk, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto zc = contiguous<T>(logits), tc = contiguous<T>(targets);
    auto dz = new_array<T>({batch, outputs});
    const T *zp = zc.data(), *tp = tc.data();
    const uint8_t* mp = has_mask ? mask01.data() : nullptr;
    const T* wp = weight_ptr<T>(weight);
    T* dzp = dz.mutable_data();
    T loss;
    {
      ReleaseGil nogil;
      loss = (naive ? sigmoid_cross_entropy_naive<T> : sigmoid_cross_entropy<T>)(
          dzp, zp, tp, mp, batch, outputs, wp);
    }
    return py::make_tuple(static_cast<double>(loss), dz);
  });
}

// pred, target (any shape; examples along axis 0), sample_weight (N,) or None -> (loss, dpred)
py::tuple mse_py(const py::array& pred, const py::array& target, const py::object& sample_weight,
                 bool naive) {
  const FloatKind fk = float_kind(pred, kMse, "pred");
  require_same_dtype(pred, target, kMse, "pred", "target");
  require_shape(target, shape_of(pred), kMse, "target");
  const int64_t n = static_cast<int64_t>(pred.size());
  require_nonempty(n, kMse, "pred", pred);
  if (!sample_weight.is_none() && pred.ndim() == 0)
    throw ShapeError(std::string(kMse) + ": sample_weight needs pred of shape (batch, ...), got "
                     "a scalar");
  const int64_t batch = pred.ndim() > 0 ? pred.shape(0) : 1;
  const py::object weight = sample_weight_arg(sample_weight, pred, "pred", batch, kMse);
  return dispatch_float(fk, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto pc = contiguous<T>(pred), tc = contiguous<T>(target);
    auto dp = new_array<T>(shape_of(pred));
    const T *pp = pc.data(), *tp = tc.data();
    const T* wp = weight_ptr<T>(weight);
    T* dpp = dp.mutable_data();
    T loss;
    {
      ReleaseGil nogil;
      loss = (naive ? mse_naive<T> : mse<T>)(dpp, pp, tp, n, wp, batch);
    }
    return py::make_tuple(static_cast<double>(loss), dp);
  });
}

void require_coefficient(double v, const char* name) {
  if (!std::isfinite(v) || v < 0)
    throw ValueError(std::string(kPenalty) + ": " + name + " must be finite and >= 0, got " +
                     py::str(py::float_(v)).cast<std::string>());
}

// w (any shape) -> (loss, dw): dw starts at zero, then the kernel accumulates into it.
py::tuple weight_penalty_py(const py::array& w, double l1, double l2, bool naive) {
  const FloatKind fk = float_kind(w, kPenalty, "w");
  require_coefficient(l1, "l1");
  require_coefficient(l2, "l2");
  const int64_t n = static_cast<int64_t>(w.size());
  return dispatch_float(fk, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto wc = contiguous<T>(w);
    auto dw = new_array<T>(shape_of(w));
    const T* wp = wc.data();
    T* dwp = dw.mutable_data();
    T loss;
    {
      ReleaseGil nogil;
      std::fill(dwp, dwp + n, T(0));
      loss = (naive ? weight_penalty_naive<T> : weight_penalty<T>)(dwp, wp, n, static_cast<T>(l1),
                                                                   static_cast<T>(l2));
    }
    return py::make_tuple(static_cast<double>(loss), dw);
  });
}

}  // namespace

void bind_loss(py::module_& ops) {
  ops.def("softmax_cross_entropy", &softmax_cross_entropy_py, py::arg("logits"),
          py::arg("labels"), py::arg("sample_weight") = py::none(), py::arg("mask") = py::none(),
          py::arg("naive") = false,
          "(loss, dlogits): (1/N) Σ_i s_i·(logsumexp(z_i) - z_i[y_i]). logits (N, C) float, "
          "labels (N,) integer class ids in [0, C), sample_weight s (N,) of the logits' dtype, "
          "finite and >= 0, or None (s = 1). The weighted sum is divided by N, not by Σs "
          "(Keras's sum_over_batch_size). Sequences: logits (N, T, C), labels (N, T) where -1 "
          "is ignored (PyTorch's ignore_index), mask (N, T) (0 = a padded step) or None; the "
          "sum runs over the counted steps and is divided by their number (0 steps: loss 0, "
          "gradient 0).");
  ops.def("sigmoid_cross_entropy", &sigmoid_cross_entropy_py, py::arg("logits"),
          py::arg("targets"), py::arg("mask") = py::none(), py::arg("sample_weight") = py::none(),
          py::arg("naive") = false,
          "(loss, dlogits): (1/N) Σ_i s_i Σ_j mask·[(1-t)·z - min(z,0) + log(1+e^-|z|)]. logits, "
          "targets (N, K); mask (N, K) of 0/1 (bool, int or float; 1 = present, 0 = skipped) or None; sample_weight s "
          "(N,) of the logits' dtype, finite and >= 0, or None (s = 1).");
  ops.def("mse", &mse_py, py::arg("pred"), py::arg("target"),
          py::arg("sample_weight") = py::none(), py::arg("naive") = false,
          "(loss, dpred): (1/n) Σ_k s_i(k)·(pred - target)² over all n elements, s_i(k) the "
          "weight of the example (row along axis 0) holding element k: Keras's per-example "
          "mean over the last axis, weighted, divided by N. sample_weight (N,) or None.");
  ops.def("weight_penalty", &weight_penalty_py, py::arg("w"), py::arg("l1") = 0.0,
          py::arg("l2") = 0.0, py::arg("naive") = false,
          "(loss, dw): l1·Σ|w| + l2·Σw² and its gradient l1·sign(w) + 2·l2·w.");
}

const OpsRegistration loss_ops("loss", bind_loss);

}  // namespace bind
}  // namespace corenn
