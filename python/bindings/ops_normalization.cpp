#include "common.hpp"
#include "corenn/kernels/normalization.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "normalize_forward";
constexpr const char* kBackward = "normalize_backward";
constexpr const char* kLayout = "(batch, channels, ...) or (batch, features)";

// (batch, channels, spatial) of an array of rank >= 2.
struct Dims {
  int64_t batch, channels, spatial;
};

Dims dims_of(const py::array& x, const char* op, const char* arg) {
  if (x.ndim() < 2)
    throw ShapeError(std::string(op) + ": " + arg + " must be " + kLayout + ", got shape " +
                     shape_string(shape_of(x)));
  int64_t spatial = 1;
  for (py::ssize_t i = 2; i < x.ndim(); ++i) spatial *= x.shape(i);
  return {x.shape(0), x.shape(1), spatial};
}

// x (N, C, ...), mean (C,), variance (C,) -> y
py::array normalize_forward_py(const py::array& x, const py::array& mean, const py::array& variance,
                               bool naive) {
  const FloatKind kind = float_kind(x, kForward, "x");
  require_same_dtype(x, mean, kForward, "x", "mean");
  require_same_dtype(x, variance, kForward, "x", "variance");
  const Dims d = dims_of(x, kForward, "x");
  require_shape(mean, {d.channels}, kForward, "mean");
  require_shape(variance, {d.channels}, kForward, "variance");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), mc = contiguous<T>(mean), vc = contiguous<T>(variance);
    auto y = new_array<T>(shape_of(x));
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? normalize_forward_naive<T> : normalize_forward<T>)(yp, xc.data(), mc.data(), vc.data(),
                                                                  d.batch, d.channels, d.spatial);
    }
    return y;
  });
}

// dy (N, C, ...), variance (C,) -> dx
py::array normalize_backward_py(const py::array& dy, const py::array& variance, bool naive) {
  const FloatKind kind = float_kind(dy, kBackward, "dy");
  require_same_dtype(dy, variance, kBackward, "dy", "variance");
  const Dims d = dims_of(dy, kBackward, "dy");
  require_shape(variance, {d.channels}, kBackward, "variance");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), vc = contiguous<T>(variance);
    auto dx = new_array<T>(shape_of(dy));
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? normalize_backward_naive<T> : normalize_backward<T>)(dxp, dyc.data(), vc.data(), d.batch,
                                                                    d.channels, d.spatial);
    }
    return dx;
  });
}

}  // namespace

void bind_normalize(py::module_& ops) {
  ops.def("normalize_forward", &normalize_forward_py, py::arg("x"), py::arg("mean"),
          py::arg("variance"), py::arg("naive") = false,
          "y = (x - mean[c]) / sqrt(variance[c]) per entry c of axis 1 (a variance <= 0 "
          "counts as 1: the entry is only centred). x (batch, channels, ...) or (batch, features).");
  ops.def("normalize_backward", &normalize_backward_py, py::arg("dy"), py::arg("variance"),
          py::arg("naive") = false, "dx = dy / sqrt(variance[c]) (the statistics are not trained).");
}

const OpsRegistration normalization_ops("normalization", bind_normalize);

}  // namespace bind
}  // namespace corenn
