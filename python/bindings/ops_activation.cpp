#include <pybind11/stl.h>

#include <cmath>
#include <optional>

#include "common.hpp"
#include "corenn/kernels/activation.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "activation_forward";
constexpr const char* kBackward = "activation_backward";

// None and "" mean linear, as a layer's activation=None does in Keras.
const ActivationEntry& entry_of(const py::object& kind, const char* op) {
  if (kind.is_none()) return find_activation("linear");
  if (!py::isinstance<py::str>(kind))
    throw TypeError(std::string(op) + ": kind must be a string or None, got " +
                    py::str(py::type::of(kind).attr("__name__")).cast<std::string>());
  const std::string name = kind.cast<std::string>();
  return find_activation(name.empty() ? "linear" : name, std::string(op) + ": kind");
}

// alpha=None means the kind's default (leaky_relu 0.01, elu 1.0).
double alpha_of(const std::optional<double>& alpha, const ActivationEntry& entry, const char* op) {
  const double a = alpha ? *alpha : entry.default_alpha;
  if (!std::isfinite(a))
    throw ValueError(std::string(op) + ": alpha must be finite, got " +
                     py::str(py::float_(a)).cast<std::string>());
  return a;
}

void require_at_least_1d(const py::array& a, const char* op, const char* arg) {
  if (a.ndim() < 1)
    throw ShapeError(std::string(op) + ": " + arg + " must be at least 1-D, got shape " +
                     shape_string(shape_of(a)));
}

// x (..., C) or (N, C, H, W) -> y of the same shape
py::array activation_forward_py(const py::array& x, const py::object& kind_obj,
                                std::optional<double> alpha_obj, bool naive) {
  const FloatKind fk = float_kind(x, kForward, "x");
  require_at_least_1d(x, kForward, "x");
  const ActivationEntry& entry = entry_of(kind_obj, kForward);
  const double alpha = alpha_of(alpha_obj, entry, kForward);
  const ActivationAxes a = activation_axes(shape_of(x));
  return dispatch_float(fk, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>(shape_of(x));
    const T* xp = xc.data();
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? activation_forward_naive<T> : activation_forward<T>)(
          yp, xp, a.outer, a.channels, a.inner, entry.kind, static_cast<T>(alpha));
    }
    return y;
  });
}

// dy, x, y (shape of x) -> dx (shape of x)
py::array activation_backward_py(const py::array& dy, const py::array& x, const py::array& y,
                                 const py::object& kind_obj, std::optional<double> alpha_obj,
                                 bool naive) {
  const FloatKind fk = float_kind(x, kBackward, "x");
  require_same_dtype(x, dy, kBackward, "x", "dy");
  require_same_dtype(x, y, kBackward, "x", "y");
  require_at_least_1d(x, kBackward, "x");
  require_shape(dy, shape_of(x), kBackward, "dy");
  require_shape(y, shape_of(x), kBackward, "y");
  const ActivationEntry& entry = entry_of(kind_obj, kBackward);
  const double alpha = alpha_of(alpha_obj, entry, kBackward);
  const ActivationAxes a = activation_axes(shape_of(x));
  return dispatch_float(fk, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), xc = contiguous<T>(x), yc = contiguous<T>(y);
    auto dx = new_array<T>(shape_of(x));
    const T *dyp = dyc.data(), *xp = xc.data(), *yp = yc.data();
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? activation_backward_naive<T> : activation_backward<T>)(
          dxp, dyp, xp, yp, a.outer, a.channels, a.inner, entry.kind, static_cast<T>(alpha));
    }
    return dx;
  });
}

}  // namespace

void bind_activation(py::module_& ops) {
  ops.def("activation_forward", &activation_forward_py, py::arg("x"), py::arg("kind"),
          py::arg("alpha") = py::none(), py::arg("naive") = false,
          "y = f(x), same shape and dtype as x (float32 or float64, at least 1-D).\n\n"
          "kind: linear, sigmoid, tanh, relu, leaky_relu (slope alpha), softmax, elu (alpha),\n"
          "selu, gelu (exact, erf), gelu_tanh (tanh approximation), silu = swish, softplus,\n"
          "relu6, hard_sigmoid (relu6(x + 3)/6), abs (|x|); None or '' is linear. alpha=None is the kind's\n"
          "default: 0.01 for leaky_relu (PyTorch), 1.0 for elu (Keras, PyTorch).\n"
          "softmax normalises over the features: axis 1 of a 4-D (N, C, H, W) or larger input\n"
          "(the channels), the last axis of a 1-, 2- or 3-D input. NaN propagates through every\n"
          "kind; a softmax row holding NaN or +inf is all NaN (PyTorch).\n"
          "Errors: TypeError for a non-float x or a non-string kind; ValueError for an\n"
          "unknown kind, a 0-D x or a non-finite alpha.");
  ops.def("activation_backward", &activation_backward_py, py::arg("dy"), py::arg("x"),
          py::arg("y"), py::arg("kind"), py::arg("alpha") = py::none(), py::arg("naive") = false,
          "dx = dy · f'(x), given the forward's input x and output y (all of one shape and\n"
          "dtype); softmax over the axis activation_forward uses. f'(NaN) = NaN.");
  // The registry, for the Python layers: (name, default alpha) per accepted name.
  ops.def("_activation_registry", [] {
    std::vector<std::pair<std::string, double>> out;
    for (const ActivationEntry& e : activation_registry()) out.emplace_back(e.name, e.default_alpha);
    return out;
  });
  // The default alpha of `name`, or ValueError "<context> must be one of ..., got ...".
  ops.def("_find_activation",
          [](const std::string& name, const std::string& context) {
            return find_activation(name, context).default_alpha;
          },
          py::arg("name"), py::arg("context"));
}

const OpsRegistration activation_ops("activation", bind_activation);

}  // namespace bind
}  // namespace corenn
