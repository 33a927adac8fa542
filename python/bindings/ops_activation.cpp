#include <cmath>

#include "common.hpp"
#include "corenn/kernels/activation.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "activation_forward";
constexpr const char* kBackward = "activation_backward";

// None and "" mean linear, as a layer's activation=None does in Keras.
Activation kind_of(const py::object& kind, const char* op) {
  if (kind.is_none()) return Activation::linear;
  if (!py::isinstance<py::str>(kind))
    throw TypeError(std::string(op) + ": kind must be a string or None, got " +
                    py::str(py::type::of(kind).attr("__name__")).cast<std::string>());
  const std::string name = kind.cast<std::string>();
  return name.empty() ? Activation::linear : parse_activation(name);
}

void require_finite_alpha(double alpha, const char* op) {
  if (!std::isfinite(alpha))
    throw ValueError(std::string(op) + ": alpha must be finite, got " +
                     py::str(py::float_(alpha)).cast<std::string>());
}

// Softmax normalises over the last axis: rows = product of the leading axes.
// Element-wise kinds do not care how the elements are grouped.
void rows_cols(const py::array& x, int64_t& rows, int64_t& cols) {
  cols = x.shape(x.ndim() - 1);
  rows = 1;
  for (py::ssize_t d = 0; d + 1 < x.ndim(); ++d) rows *= x.shape(d);
}

void require_at_least_1d(const py::array& a, const char* op, const char* arg) {
  if (a.ndim() < 1)
    throw ShapeError(std::string(op) + ": " + arg + " must be at least 1-D, got shape " +
                     shape_string(shape_of(a)));
}

// x (..., C) -> y (..., C)
py::array activation_forward_py(const py::array& x, const py::object& kind_obj, double alpha,
                                bool naive) {
  const FloatKind fk = float_kind(x, kForward, "x");
  require_at_least_1d(x, kForward, "x");
  const Activation kind = kind_of(kind_obj, kForward);
  require_finite_alpha(alpha, kForward);
  int64_t rows, cols;
  rows_cols(x, rows, cols);
  return dispatch_float(fk, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>(shape_of(x));
    const T* xp = xc.data();
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? activation_forward_naive<T> : activation_forward<T>)(yp, xp, rows, cols, kind,
                                                                    static_cast<T>(alpha));
    }
    return y;
  });
}

// dy, x, y (..., C) -> dx (..., C)
py::array activation_backward_py(const py::array& dy, const py::array& x, const py::array& y,
                                 const py::object& kind_obj, double alpha, bool naive) {
  const FloatKind fk = float_kind(x, kBackward, "x");
  require_same_dtype(x, dy, kBackward, "x", "dy");
  require_same_dtype(x, y, kBackward, "x", "y");
  require_at_least_1d(x, kBackward, "x");
  require_shape(dy, shape_of(x), kBackward, "dy");
  require_shape(y, shape_of(x), kBackward, "y");
  const Activation kind = kind_of(kind_obj, kBackward);
  require_finite_alpha(alpha, kBackward);
  int64_t rows, cols;
  rows_cols(x, rows, cols);
  return dispatch_float(fk, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), xc = contiguous<T>(x), yc = contiguous<T>(y);
    auto dx = new_array<T>(shape_of(x));
    const T *dyp = dyc.data(), *xp = xc.data(), *yp = yc.data();
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? activation_backward_naive<T> : activation_backward<T>)(
          dxp, dyp, xp, yp, rows, cols, kind, static_cast<T>(alpha));
    }
    return dx;
  });
}

}  // namespace

void bind_activation(py::module_& ops) {
  ops.def("activation_forward", &activation_forward_py, py::arg("x"), py::arg("kind"),
          py::arg("alpha") = 0.01, py::arg("naive") = false,
          "y = f(x) for kind in linear, sigmoid, tanh, relu, leaky_relu (slope alpha), softmax "
          "(over the last axis). x has any shape with at least one axis.");
  ops.def("activation_backward", &activation_backward_py, py::arg("dy"), py::arg("x"),
          py::arg("y"), py::arg("kind"), py::arg("alpha") = 0.01, py::arg("naive") = false,
          "dx = dy · f'(x), given the forward's input x and output y (same shapes).");
}

}  // namespace bind
}  // namespace corenn
