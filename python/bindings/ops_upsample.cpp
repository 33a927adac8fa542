#include "common.hpp"
#include "corenn/kernels/upsample.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "upsample2d_forward";
constexpr const char* kBackward = "upsample2d_backward";
constexpr const char* kNCHW = "(batch, channels, height, width)";

// size: an int (both axes) or (sh, sw).
std::pair<int64_t, int64_t> size_arg(const py::object& v, const char* op) {
  const auto s = int_tuple(v, {2}, op, "size", "an int or a pair (sh, sw)");
  return {s[0], s[1]};
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
  const auto xs = int_tuple(x_shape, {4}, kBackward, "x_shape", "4 ints (batch, channels, height, width)");
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
