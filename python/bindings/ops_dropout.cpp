#include <cmath>
#include <sstream>

#include "common.hpp"
#include "corenn/kernels/dropout.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "dropout_forward";
constexpr const char* kBackward = "dropout_backward";

void check_rate(double rate, const char* op) {
  // "not (inside)" also rejects NaN.
  if (!(rate >= 0.0 && rate < 1.0)) {
    std::ostringstream msg;
    msg << op << ": rate must be in [0, 1), got " << rate;
    throw ValueError(msg.str());
  }
}

// x (any shape) -> (y, mask): mask uint8 of x's shape, 1 = kept.
py::tuple dropout_forward_py(const py::array& x, double rate, uint64_t seed, bool naive) {
  const FloatKind kind = float_kind(x, kForward, "x");
  check_rate(rate, kForward);
  const std::vector<int64_t> shape = shape_of(x);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>(shape);
    auto mask = new_array<uint8_t>(shape);
    const int64_t n = static_cast<int64_t>(xc.size());
    T* yp = y.mutable_data();
    uint8_t* mp = mask.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? dropout_forward_naive<T> : dropout_forward<T>)(yp, mp, xc.data(), n,
                                                              static_cast<T>(rate), seed);
    }
    return py::make_tuple(y, mask);
  });
}

// dy, mask (same shape) -> dx
py::array dropout_backward_py(const py::array& dy, const py::array& mask, double rate,
                              bool naive) {
  const FloatKind kind = float_kind(dy, kBackward, "dy");
  if (!mask.dtype().equal(py::dtype::of<uint8_t>()))
    throw TypeError(std::string(kBackward) + ": mask must be uint8 (from dropout_forward), got " +
                    dtype_str(mask));
  require_shape(mask, shape_of(dy), kBackward, "mask");
  check_rate(rate, kBackward);
  const std::vector<int64_t> shape = shape_of(dy);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy);
    auto mc = contiguous<uint8_t>(mask);
    auto dx = new_array<T>(shape);
    const int64_t n = static_cast<int64_t>(dyc.size());
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? dropout_backward_naive<T> : dropout_backward<T>)(dxp, dyc.data(), mc.data(), n,
                                                                static_cast<T>(rate));
    }
    return dx;
  });
}

}  // namespace

void bind_dropout(py::module_& ops) {
  ops.def("dropout_forward", &dropout_forward_py, py::arg("x"), py::arg("rate"), py::arg("seed"),
          py::arg("naive") = false,
          "Inverted dropout: (y, mask), unit i kept iff uniform01(seed, i) >= rate, "
          "y = x·mask/(1 − rate). rate in [0, 1); seed is a uint64 key used directly.");
  ops.def("dropout_backward", &dropout_backward_py, py::arg("dy"), py::arg("mask"),
          py::arg("rate"), py::arg("naive") = false, "dx = dy·mask/(1 − rate).");
}

const OpsRegistration dropout_ops("dropout", bind_dropout);

}  // namespace bind
}  // namespace corenn
