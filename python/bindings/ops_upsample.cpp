#include "common.hpp"
#include "corenn/kernels/upsample.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "upsample2d_forward";
constexpr const char* kBackward = "upsample2d_backward";
constexpr const char* kNCHW = "(batch, channels, height, width)";

// size: an int (both axes) or (sh, sw); TypeError for anything else.
std::pair<int64_t, int64_t> size_arg(const py::object& v, const char* op) {
  try {
    if (py::isinstance<py::sequence>(v) && !py::isinstance<py::str>(v)) {
      const auto seq = py::reinterpret_borrow<py::sequence>(v);
      if (seq.size() != 2)
        throw ValueError(std::string(op) + ": size must be an int or a pair (sh, sw), got " +
                         std::to_string(seq.size()) + " values");
      return {seq[0].cast<int64_t>(), seq[1].cast<int64_t>()};
    }
    const int64_t s = v.cast<int64_t>();
    return {s, s};
  } catch (const py::cast_error&) {
    throw TypeError(std::string(op) + ": size must be an int or a pair (sh, sw), got " +
                    py::repr(v).cast<std::string>());
  }
}

// The geometry of an NCHW shape; validate() names the op and argument.
Upsample2dShape upsample_shape(const std::vector<int64_t>& xs, const py::object& size,
                               const std::string& interpolation, const char* op) {
  const auto [sh, sw] = size_arg(size, op);
  Upsample2dShape s;
  s.batch = xs[0], s.channels = xs[1], s.height = xs[2], s.width = xs[3];
  s.scale_h = sh, s.scale_w = sw;
  s.interpolation = parse_interpolation(interpolation, op);
  validate(s, op);
  return s;
}

py::array upsample2d_forward_py(const py::array& x, const py::object& size,
                                const std::string& interpolation, bool naive) {
  const FloatKind kind = float_kind(x, kForward, "x");
  require_ndim(x, 4, kForward, "x", kNCHW);
  const Upsample2dShape s = upsample_shape(shape_of(x), size, interpolation, kForward);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>({s.batch, s.channels, s.out_h(), s.out_w()});
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? upsample2d_forward_naive<T> : upsample2d_forward<T>)(yp, xc.data(), s);
    }
    return y;
  });
}

py::array upsample2d_backward_py(const py::array& dy, const py::object& x_shape,
                                 const py::object& size, const std::string& interpolation,
                                 bool naive) {
  const FloatKind kind = float_kind(dy, kBackward, "dy");
  require_ndim(dy, 4, kBackward, "dy", kNCHW);
  // Element by element: casting to std::vector here would instantiate
  // pybind11's caster without <pybind11/stl.h>, a different definition from
  // the one model.cpp uses (an ODR clash that broke list arguments there).
  std::vector<int64_t> xs;
  try {
    if (!py::isinstance<py::sequence>(x_shape) || py::isinstance<py::str>(x_shape))
      throw py::cast_error();
    for (const auto& e : py::reinterpret_borrow<py::sequence>(x_shape)) xs.push_back(e.cast<int64_t>());
  } catch (const py::cast_error&) {
    throw TypeError(std::string(kBackward) + ": x_shape must be 4 ints " + kNCHW + ", got " +
                    py::repr(x_shape).cast<std::string>());
  }
  if (xs.size() != 4)
    throw ValueError(std::string(kBackward) + ": x_shape must be 4 ints " + kNCHW + ", got " +
                     shape_string(xs));
  const Upsample2dShape s = upsample_shape(xs, size, interpolation, kBackward);
  require_shape(dy, {s.batch, s.channels, s.out_h(), s.out_w()}, kBackward, "dy");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy);
    auto dx = new_array<T>(xs);
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? upsample2d_backward_naive<T> : upsample2d_backward<T>)(dxp, dyc.data(), s);
    }
    return dx;
  });
}

}  // namespace

void bind_upsample(py::module_& ops) {
  ops.def("upsample2d_forward", &upsample2d_forward_py, py::arg("x"), py::arg("size") = 2,
          py::arg("interpolation") = "nearest", py::arg("naive") = false,
          "y (N, C, H·sh, W·sw): x (N, C, H, W) up-sampled by the integer factors size = sh or "
          "(sh, sw); interpolation 'nearest' repeats pixels, 'bilinear' uses half-pixel centres "
          "(PyTorch's interpolate(mode='bilinear', align_corners=False), Keras 3's resize).");
  ops.def("upsample2d_backward", &upsample2d_backward_py, py::arg("dy"), py::arg("x_shape"),
          py::arg("size") = 2, py::arg("interpolation") = "nearest", py::arg("naive") = false,
          "dx (x_shape): each dy cell added back to the x cells it was interpolated from, with "
          "the same weights.");
}

const OpsRegistration upsample_ops("upsample", bind_upsample);

}  // namespace bind
}  // namespace corenn
