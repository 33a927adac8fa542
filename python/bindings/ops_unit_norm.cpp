#include <string>

#include "common.hpp"
#include "corenn/kernels/unit_norm.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "unit_norm_forward";
constexpr const char* kBackward = "unit_norm_backward";

// x viewed as (outer, channels, inner) around `axis` (NumPy's count: the batch
// axis, if any, is axis 0 here; -1 is the last).
struct Dims {
  int64_t outer = 1, channels = 1, inner = 1;
};

Dims dims_of(const py::array& x, int64_t axis, const char* op) {
  const auto s = shape_of(x);
  const int64_t rank = static_cast<int64_t>(s.size());
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (rank == 0 || a < 0 || a >= rank)
    throw ValueError(std::string(op) + ": axis must lie in [" + std::to_string(-rank) + ", " +
                     std::to_string(rank - 1) + "] for x of shape " + shape_string(s) + ", got " +
                     std::to_string(axis));
  Dims d;
  for (int64_t k = 0; k < a; ++k) d.outer *= s[static_cast<size_t>(k)];
  d.channels = s[static_cast<size_t>(a)];
  for (int64_t k = a + 1; k < rank; ++k) d.inner *= s[static_cast<size_t>(k)];
  return d;
}

py::array unit_norm_forward_py(const py::array& x, int64_t axis, double epsilon, bool naive) {
  const FloatKind kind = float_kind(x, kForward, "x");
  const Dims d = dims_of(x, axis, kForward);
  validate_unit_norm(epsilon, kForward);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>(shape_of(x));
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? unit_norm_forward_naive<T> : unit_norm_forward<T>)(yp, xc.data(), d.outer, d.channels, d.inner,
                                                                  epsilon);
    }
    return y;
  });
}

py::array unit_norm_backward_py(const py::array& dy, const py::array& x, int64_t axis, double epsilon,
                                bool naive) {
  const FloatKind kind = float_kind(x, kBackward, "x");
  require_same_dtype(x, dy, kBackward, "x", "dy");
  require_shape(dy, shape_of(x), kBackward, "dy");
  const Dims d = dims_of(x, axis, kBackward);
  validate_unit_norm(epsilon, kBackward);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), xc = contiguous<T>(x);
    auto dx = new_array<T>(shape_of(x));
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? unit_norm_backward_naive<T> : unit_norm_backward<T>)(dxp, dyc.data(), xc.data(), d.outer,
                                                                    d.channels, d.inner, epsilon);
    }
    return dx;
  });
}

}  // namespace

void bind_unit_norm(py::module_& ops) {
  ops.def("unit_norm_forward", &unit_norm_forward_py, py::arg("x"), py::arg("axis") = -1,
          py::arg("epsilon") = 1e-12, py::arg("naive") = false,
          "y = x / max(||x||_2, epsilon) along `axis` (NumPy's count; -1 the last): every vector "
          "along it scaled to length 1 (keras.layers.UnitNormalization, "
          "torch.nn.functional.normalize). The zero vector stays 0. x float32/float64, any "
          "shape; y has x's shape and dtype. ValueError for an axis outside x or epsilon not "
          "finite and > 0, TypeError for another dtype.");
  ops.def("unit_norm_backward", &unit_norm_backward_py, py::arg("dy"), py::arg("x"), py::arg("axis") = -1,
          py::arg("epsilon") = 1e-12, py::arg("naive") = false,
          "dx of unit_norm_forward, the norms recomputed from x: (dy - y*sum(y*dy)) / ||x|| "
          "along axis where ||x|| > epsilon, dy / epsilon elsewhere.");
}

const OpsRegistration unit_norm_ops("unit_norm", bind_unit_norm);

}  // namespace bind
}  // namespace corenn
