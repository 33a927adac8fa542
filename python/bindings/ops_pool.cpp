#include "common.hpp"
#include "corenn/kernels/pool.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kMaxForward = "max_pool2d_forward";
constexpr const char* kMaxBackward = "max_pool2d_backward";
constexpr const char* kAvgForward = "avg_pool2d_forward";
constexpr const char* kAvgBackward = "avg_pool2d_backward";
constexpr const char* kGlobalForward = "global_avg_pool2d_forward";
constexpr const char* kGlobalBackward = "global_avg_pool2d_backward";
constexpr const char* kPadForward = "zero_pad2d_forward";
constexpr const char* kPadBackward = "zero_pad2d_backward";

constexpr const char* kNCHW = "(batch, channels, height, width)";

std::vector<int64_t> pair_arg(const py::object& v, const char* op, const char* arg) {
  return int_tuple(v, {2}, op, arg, "an int or a pair (h, w)");
}

// x_shape as given to a backward: four ints.
std::vector<int64_t> x_shape_arg(const py::object& v, const char* op) {
  return int_tuple(v, {4}, op, "x_shape", "4 ints (batch, channels, height, width)");
}

// The pooling geometry of an NCHW shape; validate() names the op and argument.
Pool2dShape pool_shape(const std::vector<int64_t>& xs, const py::object& kernel_size,
                       const py::object& stride, const py::object& padding,
                       bool count_include_pad, const char* op) {
  const auto k = pair_arg(kernel_size, op, "kernel_size");
  // stride=None means non-overlapping windows, as in PyTorch and Keras.
  const auto st = stride.is_none() ? k : pair_arg(stride, op, "stride");
  // padding: int, (h, w) or (top, bottom, left, right) (Keras's "same" is asymmetric).
  auto pad = int_tuple(padding, {4, 2}, op, "padding",
                       "an int, (h, w) or (top, bottom, left, right)");
  if (pad.size() == 2) pad = {pad[0], pad[0], pad[1], pad[1]};
  Pool2dShape s;
  s.batch = xs[0], s.channels = xs[1], s.height = xs[2], s.width = xs[3];
  s.kernel_h = k[0], s.kernel_w = k[1];
  s.stride_h = st[0], s.stride_w = st[1];
  s.pad_top = pad[0], s.pad_bottom = pad[1], s.pad_left = pad[2], s.pad_right = pad[3];
  s.count_include_pad = count_include_pad;
  validate(s, op);
  return s;
}

py::tuple max_pool2d_forward_py(const py::array& x, const py::object& kernel_size,
                                const py::object& stride, const py::object& padding, bool naive) {
  const FloatKind kind = float_kind(x, kMaxForward, "x");
  require_ndim(x, 4, kMaxForward, "x", kNCHW);
  const Pool2dShape s = pool_shape(shape_of(x), kernel_size, stride, padding, true, kMaxForward);
  const std::vector<int64_t> ys = {s.batch, s.channels, s.out_h(), s.out_w()};
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>(ys);
    auto argmax = new_array<int64_t>(ys);
    T* yp = y.mutable_data();
    int64_t* ap = argmax.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? max_pool2d_forward_naive<T> : max_pool2d_forward<T>)(yp, ap, xc.data(), s);
    }
    return py::make_tuple(y, argmax);
  });
}

// The backward reads only the plane sizes (H·W in, out_h·out_w out), so any
// geometry that yields dy's plane from x's serves: stride 1 with kernel
// H − out_h + 1, or kernel 1 with bottom padding out_h − H when dy is taller.
void fit_geometry(int64_t in, int64_t out, int64_t& kernel, int64_t& pad_after) {
  kernel = out <= in ? in - out + 1 : 1;
  pad_after = out <= in ? 0 : out - in;
}

py::array max_pool2d_backward_py(const py::array& dy, const py::array& argmax,
                                 const py::object& x_shape, bool naive) {
  const FloatKind kind = float_kind(dy, kMaxBackward, "dy");
  require_ndim(dy, 4, kMaxBackward, "dy", kNCHW);
  const auto xs = x_shape_arg(x_shape, kMaxBackward);
  for (int64_t d : xs)
    if (d < 1)
      throw ValueError(std::string(kMaxBackward) + ": x_shape must be positive, got " +
                       shape_string(xs));
  if (!argmax.dtype().equal(py::dtype::of<int64_t>()))
    throw TypeError(std::string(kMaxBackward) + ": argmax must be int64, got " +
                    dtype_str(argmax));
  require_shape(argmax, shape_of(dy), kMaxBackward, "argmax");
  if (dy.shape(0) != xs[0] || dy.shape(1) != xs[1])
    throw ShapeError(std::string(kMaxBackward) + ": dy must have batch and channels " +
                     shape_string({xs[0], xs[1]}) + " of x_shape, got shape " +
                     shape_string(shape_of(dy)));
  Pool2dShape s;
  s.batch = xs[0], s.channels = xs[1], s.height = xs[2], s.width = xs[3];
  fit_geometry(xs[2], dy.shape(2), s.kernel_h, s.pad_bottom);
  fit_geometry(xs[3], dy.shape(3), s.kernel_w, s.pad_right);
  auto ac = contiguous<int64_t>(argmax);
  // An index outside its plane would write outside dx: checked before the kernel.
  const int64_t plane = xs[2] * xs[3];
  const int64_t* a = ac.data();
  for (py::ssize_t i = 0; i < ac.size(); ++i)
    if (a[i] < 0 || a[i] >= plane)
      throw ValueError(std::string(kMaxBackward) + ": argmax values must lie in [0, " +
                       std::to_string(plane) + ") (the height·width plane), got " +
                       std::to_string(a[i]));
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy);
    auto dx = new_array<T>(xs);
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? max_pool2d_backward_naive<T> : max_pool2d_backward<T>)(dxp, dyc.data(), a, s);
    }
    return dx;
  });
}

py::array avg_pool2d_forward_py(const py::array& x, const py::object& kernel_size,
                                const py::object& stride, const py::object& padding,
                                bool count_include_pad, bool naive) {
  const FloatKind kind = float_kind(x, kAvgForward, "x");
  require_ndim(x, 4, kAvgForward, "x", kNCHW);
  const Pool2dShape s =
      pool_shape(shape_of(x), kernel_size, stride, padding, count_include_pad, kAvgForward);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>({s.batch, s.channels, s.out_h(), s.out_w()});
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? avg_pool2d_forward_naive<T> : avg_pool2d_forward<T>)(yp, xc.data(), s);
    }
    return y;
  });
}

py::array avg_pool2d_backward_py(const py::array& dy, const py::object& x_shape,
                                 const py::object& kernel_size, const py::object& stride,
                                 const py::object& padding, bool count_include_pad, bool naive) {
  const FloatKind kind = float_kind(dy, kAvgBackward, "dy");
  require_ndim(dy, 4, kAvgBackward, "dy", kNCHW);
  const auto xs = x_shape_arg(x_shape, kAvgBackward);
  const Pool2dShape s =
      pool_shape(xs, kernel_size, stride, padding, count_include_pad, kAvgBackward);
  require_shape(dy, {s.batch, s.channels, s.out_h(), s.out_w()}, kAvgBackward, "dy");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy);
    auto dx = new_array<T>(xs);
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? avg_pool2d_backward_naive<T> : avg_pool2d_backward<T>)(dxp, dyc.data(), s);
    }
    return dx;
  });
}

py::array global_avg_pool2d_forward_py(const py::array& x) {
  const FloatKind kind = float_kind(x, kGlobalForward, "x");
  require_ndim(x, 4, kGlobalForward, "x", kNCHW);
  const auto xs = shape_of(x);
  if (xs[2] < 1 || xs[3] < 1)
    throw ValueError(std::string(kGlobalForward) + ": x must have a non-empty plane, got shape " +
                     shape_string(xs));
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>({xs[0], xs[1]});
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      global_avg_pool2d_forward<T>(yp, xc.data(), xs[0] * xs[1], xs[2] * xs[3]);
    }
    return y;
  });
}

py::array global_avg_pool2d_backward_py(const py::array& dy, const py::object& x_shape) {
  const FloatKind kind = float_kind(dy, kGlobalBackward, "dy");
  const auto xs = x_shape_arg(x_shape, kGlobalBackward);
  for (int64_t d : xs)
    if (d < 1)
      throw ValueError(std::string(kGlobalBackward) + ": x_shape must be positive, got " +
                       shape_string(xs));
  require_shape(dy, {xs[0], xs[1]}, kGlobalBackward, "dy");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy);
    auto dx = new_array<T>(xs);
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      global_avg_pool2d_backward<T>(dxp, dyc.data(), xs[0] * xs[1], xs[2] * xs[3]);
    }
    return dx;
  });
}

// padding: int (all sides), (h, w) (top = bottom, left = right) or
// (top, bottom, left, right) — Keras's ZeroPadding2D forms, flattened.
std::vector<int64_t> pad_arg(const py::object& padding, const char* op) {
  auto p = int_tuple(padding, {4, 2}, op, "padding",
                     "an int, (h, w) or (top, bottom, left, right)");
  if (p.size() == 2) p = {p[0], p[0], p[1], p[1]};
  for (int64_t v : p)
    if (v < 0)
      throw ValueError(std::string(op) + ": padding must be non-negative, got " +
                       std::to_string(v));
  return p;
}

py::array zero_pad2d_forward_py(const py::array& x, const py::object& padding) {
  const FloatKind kind = float_kind(x, kPadForward, "x");
  require_ndim(x, 4, kPadForward, "x", kNCHW);
  const auto p = pad_arg(padding, kPadForward);
  const auto xs = shape_of(x);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>({xs[0], xs[1], xs[2] + p[0] + p[1], xs[3] + p[2] + p[3]});
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      zero_pad2d_forward<T>(yp, xc.data(), xs[0] * xs[1], xs[2], xs[3], p[0], p[1], p[2], p[3]);
    }
    return y;
  });
}

py::array zero_pad2d_backward_py(const py::array& dy, const py::object& x_shape,
                                 const py::object& padding) {
  const FloatKind kind = float_kind(dy, kPadBackward, "dy");
  const auto xs = x_shape_arg(x_shape, kPadBackward);
  for (int64_t d : xs)
    if (d < 0)
      throw ValueError(std::string(kPadBackward) + ": x_shape must be non-negative, got " +
                       shape_string(xs));
  const auto p = pad_arg(padding, kPadBackward);
  require_shape(dy, {xs[0], xs[1], xs[2] + p[0] + p[1], xs[3] + p[2] + p[3]}, kPadBackward, "dy");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy);
    auto dx = new_array<T>(xs);
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      zero_pad2d_backward<T>(dxp, dyc.data(), xs[0] * xs[1], xs[2], xs[3], p[0], p[1], p[2],
                             p[3]);
    }
    return dx;
  });
}

}  // namespace

void bind_pool(py::module_& ops) {
  ops.def("max_pool2d_forward", &max_pool2d_forward_py, py::arg("x"), py::arg("kernel_size"),
          py::arg("stride") = py::none(), py::arg("padding") = 0, py::arg("naive") = false,
          "(y, argmax): max over each window of x (N, C, H, W); padding int, (h, w) or (top, "
          "bottom, left, right) of cells that never win; argmax (int64, like y) is the "
          "winner's h·W + w in its plane. Ties: the first maximum in row-major order; NaN "
          "propagates (the first NaN wins).");
  ops.def("max_pool2d_backward", &max_pool2d_backward_py, py::arg("dy"), py::arg("argmax"),
          py::arg("x_shape"), py::arg("naive") = false,
          "dx: zeros with dy added at argmax (overlapping windows accumulate).");
  ops.def("avg_pool2d_forward", &avg_pool2d_forward_py, py::arg("x"), py::arg("kernel_size"),
          py::arg("stride") = py::none(), py::arg("padding") = 0,
          py::arg("count_include_pad") = true, py::arg("naive") = false,
          "Mean over each window; padded cells are zeros counted in the divisor when "
          "count_include_pad, else left out of it.");
  ops.def("avg_pool2d_backward", &avg_pool2d_backward_py, py::arg("dy"), py::arg("x_shape"),
          py::arg("kernel_size"), py::arg("stride") = py::none(), py::arg("padding") = 0,
          py::arg("count_include_pad") = true, py::arg("naive") = false,
          "dx: each window's dy / count spread over its cells inside the input.");
  ops.def("global_avg_pool2d_forward", &global_avg_pool2d_forward_py, py::arg("x"),
          "y (N, C): the mean of each (H, W) plane of x (N, C, H, W).");
  ops.def("global_avg_pool2d_backward", &global_avg_pool2d_backward_py, py::arg("dy"),
          py::arg("x_shape"), "dx (N, C, H, W) = dy[n, c] / (H·W) everywhere in the plane.");
  ops.def("zero_pad2d_forward", &zero_pad2d_forward_py, py::arg("x"), py::arg("padding"),
          "Zeros around each plane; padding int, (h, w) or (top, bottom, left, right).");
  ops.def("zero_pad2d_backward", &zero_pad2d_backward_py, py::arg("dy"), py::arg("x_shape"),
          py::arg("padding"), "dx: the crop of dy to the input plane.");
}

const OpsRegistration pool_ops("pool", bind_pool);

}  // namespace bind
}  // namespace corenn
