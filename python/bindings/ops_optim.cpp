#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "corenn/kernels/optim.hpp"

namespace corenn {
namespace bind {

namespace {

std::string type_name(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
}

// An array the op writes into. It must be the caller's own NumPy array, of
// param's dtype and shape, C-contiguous and writeable: converting or copying it
// would update a temporary and silently leave the caller's state unchanged.
py::array inplace_array(const py::object& obj, const py::array* param, const char* op,
                        const char* arg) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(std::string(op) + ": " + arg +
                    " must be a numpy array (it is updated in place), got " + type_name(obj));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (param) {
    require_same_dtype(*param, a, op, "param", arg);
    require_shape(a, shape_of(*param), op, arg);
  } else {
    float_kind(a, op, arg);
  }
  require_writeable(a, op, arg, "");
  return a;
}

// The gradient is only read: any array of param's dtype and shape, copied once
// if it is not C-contiguous.
template <typename T>
carray<T> gradient_array(const py::array& grad, const py::array& param, const char* op) {
  require_same_dtype(param, grad, op, "param", "grad");
  require_shape(grad, shape_of(param), op, "grad");
  return contiguous<T>(grad);
}

// The kernels update element i from element i of every buffer; a buffer that
// overlaps another would be read after it was written.
void require_disjoint(const std::vector<std::pair<const char*, std::pair<const void*, size_t>>>& bufs,
                      const char* op) {
  for (size_t a = 0; a < bufs.size(); ++a)
    for (size_t b = a + 1; b < bufs.size(); ++b) {
      const auto* pa = static_cast<const char*>(bufs[a].second.first);
      const auto* pb = static_cast<const char*>(bufs[b].second.first);
      const size_t na = bufs[a].second.second, nb = bufs[b].second.second;
      if (na == 0 || nb == 0) continue;
      if (pa < pb + nb && pb < pa + na)
        throw ValueError(std::string(op) + ": " + bufs[b].first + " must not share memory with " +
                         bufs[a].first);
    }
}

template <typename T>
std::pair<const void*, size_t> span_of(const carray<T>& a) {
  return {a.data(), static_cast<size_t>(a.nbytes())};
}
inline std::pair<const void*, size_t> span_of(const py::array& a) {
  return {a.data(), static_cast<size_t>(a.nbytes())};
}

// The gradient clipping the kernels fuse in: g ← clamp(grad_scale·g, ±clipvalue).
GradientTransform transform_of(double grad_scale, double clipvalue, const char* op) {
  GradientTransform t;
  t.scale = grad_scale;
  t.value = clipvalue;
  validate(t, op);
  return t;
}

constexpr const char* kSgd = "sgd_step";
constexpr const char* kRmsprop = "rmsprop_step";
constexpr const char* kAdam = "adam_step";

void sgd_step_py(const py::object& param, const py::array& grad, const py::object& velocity,
                 double lr, double momentum, double dampening, bool nesterov,
                 double weight_decay, double grad_scale, double clipvalue, bool naive) {
  const GradientTransform clip = transform_of(grad_scale, clipvalue, kSgd);
  SGDHyper h;
  h.lr = lr;
  h.momentum = momentum;
  h.dampening = dampening;
  h.nesterov = nesterov;
  h.weight_decay = weight_decay;
  validate(h, kSgd);
  py::array p = inplace_array(param, nullptr, kSgd, "param");
  // Plain SGD keeps no state, so velocity may be None then.
  const bool has_velocity = !velocity.is_none();
  if (!has_velocity && momentum != 0.0)
    throw ValueError(std::string(kSgd) + ": velocity must be an array when momentum > 0, got None");
  py::array vel;
  if (has_velocity) vel = inplace_array(velocity, &p, kSgd, "velocity");
  dispatch_float(float_kind(p, kSgd, "param"), [&](auto tag) {
    using T = decltype(tag);
    auto g = gradient_array<T>(grad, p, kSgd);
    std::vector<std::pair<const char*, std::pair<const void*, size_t>>> bufs = {
        {"param", span_of(p)}, {"grad", span_of(g)}};
    if (has_velocity) bufs.push_back({"velocity", span_of(vel)});
    require_disjoint(bufs, kSgd);
    T* pp = static_cast<T*>(p.mutable_data());
    T* vp = has_velocity ? static_cast<T*>(vel.mutable_data()) : nullptr;
    const T* gp = g.data();
    const int64_t n = static_cast<int64_t>(p.size());
    ReleaseGil nogil;
    (naive ? sgd_step_naive<T> : sgd_step<T>)(pp, vp, gp, h, n, clip);
    return 0;
  });
}

void rmsprop_step_py(const py::object& param, const py::array& grad, const py::object& square_avg,
                     double lr, double alpha, double eps, double weight_decay, double grad_scale,
                     double clipvalue, bool naive) {
  const GradientTransform clip = transform_of(grad_scale, clipvalue, kRmsprop);
  RMSpropHyper h;
  h.lr = lr;
  h.alpha = alpha;
  h.eps = eps;
  h.weight_decay = weight_decay;
  validate(h, kRmsprop);
  py::array p = inplace_array(param, nullptr, kRmsprop, "param");
  py::array s = inplace_array(square_avg, &p, kRmsprop, "square_avg");
  dispatch_float(float_kind(p, kRmsprop, "param"), [&](auto tag) {
    using T = decltype(tag);
    auto g = gradient_array<T>(grad, p, kRmsprop);
    require_disjoint({{"param", span_of(p)}, {"grad", span_of(g)}, {"square_avg", span_of(s)}},
                     kRmsprop);
    T* pp = static_cast<T*>(p.mutable_data());
    T* sp = static_cast<T*>(s.mutable_data());
    const T* gp = g.data();
    const int64_t n = static_cast<int64_t>(p.size());
    ReleaseGil nogil;
    (naive ? rmsprop_step_naive<T> : rmsprop_step<T>)(pp, sp, gp, h, n, clip);
    return 0;
  });
}

void adam_step_py(const py::object& param, const py::array& grad, const py::object& m,
                  const py::object& v, int64_t step, double lr, double beta1, double beta2,
                  double eps, double weight_decay, bool decoupled, double grad_scale, double clipvalue,
                  bool naive) {
  const GradientTransform clip = transform_of(grad_scale, clipvalue, kAdam);
  AdamHyper h;
  h.lr = lr;
  h.beta1 = beta1;
  h.beta2 = beta2;
  h.eps = eps;
  h.weight_decay = weight_decay;
  h.decoupled = decoupled;
  validate(h, step, kAdam);
  py::array p = inplace_array(param, nullptr, kAdam, "param");
  py::array ma = inplace_array(m, &p, kAdam, "m");
  py::array va = inplace_array(v, &p, kAdam, "v");
  dispatch_float(float_kind(p, kAdam, "param"), [&](auto tag) {
    using T = decltype(tag);
    auto g = gradient_array<T>(grad, p, kAdam);
    require_disjoint(
        {{"param", span_of(p)}, {"grad", span_of(g)}, {"m", span_of(ma)}, {"v", span_of(va)}},
        kAdam);
    T* pp = static_cast<T*>(p.mutable_data());
    T* mp = static_cast<T*>(ma.mutable_data());
    T* vp = static_cast<T*>(va.mutable_data());
    const T* gp = g.data();
    const int64_t n = static_cast<int64_t>(p.size());
    ReleaseGil nogil;
    (naive ? adam_step_naive<T> : adam_step<T>)(pp, mp, vp, gp, step, h, n, clip);
    return 0;
  });
}

}  // namespace

void bind_optim(py::module_& ops) {
  ops.def("sgd_step", &sgd_step_py, py::arg("param"), py::arg("grad"), py::arg("velocity"),
          py::arg("lr"), py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
          py::arg("nesterov") = false, py::arg("weight_decay") = 0.0, py::arg("grad_scale") = 1.0,
          py::arg("clipvalue") = 0.0, py::arg("naive") = false,
          "In place: g = clamp(grad_scale·g, −clipvalue, clipvalue) (no clamp when clipvalue == 0); g += wd·p; v = μ·v + (1 − dampening)·g (v starts at 0); "
          "p -= lr·(g + μ·v) if nesterov else lr·v (lr·g when momentum == 0; velocity may "
          "then be None).");
  ops.def("rmsprop_step", &rmsprop_step_py, py::arg("param"), py::arg("grad"),
          py::arg("square_avg"), py::arg("lr"), py::arg("alpha") = 0.99, py::arg("eps") = 1e-8,
          py::arg("weight_decay") = 0.0, py::arg("grad_scale") = 1.0, py::arg("clipvalue") = 0.0,
          py::arg("naive") = false,
          "In place: g = clamp(grad_scale·g, ±clipvalue); g += wd·p; s = α·s + (1 − α)·g²; p -= lr·g / (√s + eps).");
  ops.def("adam_step", &adam_step_py, py::arg("param"), py::arg("grad"), py::arg("m"),
          py::arg("v"), py::arg("step"), py::arg("lr"), py::arg("beta1") = 0.9,
          py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0,
          py::arg("decoupled") = false, py::arg("grad_scale") = 1.0, py::arg("clipvalue") = 0.0,
          py::arg("naive") = false,
          "In place Adam (AdamW when decoupled): g = clamp(grad_scale·g, ±clipvalue); m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²; "
          "p -= lr·m̂ / (√v̂ + eps), bias-corrected with the 1-based step.");
}

const OpsRegistration optim_ops("optim", bind_optim);

}  // namespace bind
}  // namespace corenn
