#include <algorithm>
#include <array>
#include <vector>

#include "common.hpp"
#include "corenn/kernels/conv.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kConvForward = "conv2d_forward";
constexpr const char* kConvBackward = "conv2d_backward";
constexpr const char* kTransForward = "conv_transpose2d_forward";
constexpr const char* kTransBackward = "conv_transpose2d_backward";

// padding: int, (h, w) or (top, bottom, left, right) -> {top, bottom, left, right}
std::array<int64_t, 4> conv_padding(const py::object& obj, const char* op) {
  const auto p = int_tuple(obj, {2, 4}, op, "padding", "an int, (h, w) or (top, bottom, left, right)");
  if (p.size() == 2) return {p[0], p[0], p[1], p[1]};
  return {p[0], p[1], p[2], p[3]};
}

// The optional bias: None, or an array of x's dtype and shape (C_out,).
py::array optional_bias(const py::object& b, const py::array& x, int64_t out_channels,
                        const char* op) {
  py::array b_arr = py::array::ensure(b);
  if (!b_arr) throw TypeError(std::string(op) + ": b must be an array or None");
  require_same_dtype(x, b_arr, op, "x", "b");
  require_shape(b_arr, {out_channels}, op, "b");
  return b_arr;
}

// Images given channels-last (N, H, W, C), the layout of Keras and of most
// NumPy image code, are a classic mistake: when W's `channels` sit on x's last
// axis instead of axis 1, and that axis is shorter than the two before it (an
// image has more rows and columns than channels), say so and show the fix
// instead of a bare mismatch with W's shape.
void reject_channels_last(const py::array& x, const py::array& W, int64_t channels,
                          const char* op) {
  if (x.shape(1) != channels && x.shape(3) == channels && channels < x.shape(1) &&
      channels < x.shape(2))
    throw ShapeError(std::string(op) + ": x must be (N, C, H, W) with C = " +
                     std::to_string(channels) + " channels for W of shape " +
                     shape_string(shape_of(W)) + ", got " + shape_string(shape_of(x)) +
                     ", which looks channels-last (N, H, W, C); corenn expects (N, C, H, W): "
                     "pass x.transpose(0, 3, 1, 2)");
}

// Shape of a conv2d from x (N, C_in, H, W), W (C_out, C_in/groups, KH, KW) and
// the hyper-parameters; checks ranks, W's shape and the geometry.
Conv2dShape conv_shape(const py::array& x, const py::array& W, const py::object& stride,
                       const py::object& padding, const py::object& dilation, int64_t groups,
                       const char* op) {
  require_ndim(x, 4, op, "x", "(batch, in_channels, height, width)");
  require_ndim(W, 4, op, "W", "(out_channels, in_channels/groups, kernel_h, kernel_w)");
  Conv2dShape s;
  s.batch = x.shape(0);
  s.in_channels = x.shape(1);
  s.height = x.shape(2);
  s.width = x.shape(3);
  s.out_channels = W.shape(0);
  s.kernel_h = W.shape(2);
  s.kernel_w = W.shape(3);
  const auto st = int_tuple(stride, {2}, op, "stride", "an int or an (h, w) pair");
  const auto dl = int_tuple(dilation, {2}, op, "dilation", "an int or an (h, w) pair");
  const auto pd = conv_padding(padding, op);
  s.stride_h = st[0];
  s.stride_w = st[1];
  s.dilation_h = dl[0];
  s.dilation_w = dl[1];
  s.pad_top = pd[0];
  s.pad_bottom = pd[1];
  s.pad_left = pd[2];
  s.pad_right = pd[3];
  s.groups = groups;
  if (groups >= 1) reject_channels_last(x, W, W.shape(1) * groups, op);
  if (groups >= 1 && s.in_channels % groups == 0)
    require_shape(W, {s.out_channels, s.in_channels / groups, s.kernel_h, s.kernel_w}, op, "W");
  validate(s, op);
  return s;
}

// Shape of a transposed conv from x (N, C_in, H, W) and W (C_in, C_out, KH, KW).
ConvTranspose2dShape transpose_shape(const py::array& x, const py::array& W,
                                     const py::object& stride, const py::object& padding,
                                     const py::object& output_padding, const py::object& dilation,
                                     const char* op) {
  require_ndim(x, 4, op, "x", "(batch, in_channels, height, width)");
  require_ndim(W, 4, op, "W", "(in_channels, out_channels, kernel_h, kernel_w)");
  ConvTranspose2dShape s;
  s.batch = x.shape(0);
  s.in_channels = x.shape(1);
  s.height = x.shape(2);
  s.width = x.shape(3);
  s.out_channels = W.shape(1);
  s.kernel_h = W.shape(2);
  s.kernel_w = W.shape(3);
  reject_channels_last(x, W, W.shape(0), op);
  require_shape(W, {s.in_channels, s.out_channels, s.kernel_h, s.kernel_w}, op, "W");
  const auto st = int_tuple(stride, {2}, op, "stride", "an int or an (h, w) pair");
  const auto pd = conv_padding(padding, op);
  const auto op_ = int_tuple(output_padding, {2}, op, "output_padding", "an int or an (h, w) pair");
  const auto dl = int_tuple(dilation, {2}, op, "dilation", "an int or an (h, w) pair");
  s.dilation_h = dl[0];
  s.dilation_w = dl[1];
  s.stride_h = st[0];
  s.stride_w = st[1];
  s.pad_top = pd[0];
  s.pad_bottom = pd[1];
  s.pad_left = pd[2];
  s.pad_right = pd[3];
  s.output_pad_h = op_[0];
  s.output_pad_w = op_[1];
  validate(s, op);
  return s;
}

// x (N, C_in, H, W), W (C_out, C_in/groups, KH, KW), b (C_out,) -> y (N, C_out, OH, OW)
py::array conv2d_forward_py(const py::array& x, const py::array& W, const py::object& b,
                            const py::object& stride, const py::object& padding,
                            const py::object& dilation, int64_t groups, bool naive) {
  const char* op = kConvForward;
  const FloatKind kind = float_kind(x, op, "x");
  require_same_dtype(x, W, op, "x", "W");
  const Conv2dShape s = conv_shape(x, W, stride, padding, dilation, groups, op);
  const bool has_b = !b.is_none();
  py::array b_arr;
  if (has_b) b_arr = optional_bias(b, x, s.out_channels, op);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wc = contiguous<T>(W);
    carray<T> bc;
    if (has_b) bc = contiguous<T>(b_arr);
    auto y = new_array<T>({s.batch, s.out_channels, s.out_h(), s.out_w()});
    T* scratch = naive ? nullptr : kept_scratch<T>(conv2d_scratch_size(s));
    const T* bp = has_b ? bc.data() : nullptr;
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      if (naive) conv2d_forward_naive<T>(yp, xc.data(), Wc.data(), bp, s);
      else conv2d_forward<T>(yp, scratch, xc.data(), Wc.data(), bp, s);
    }
    return y;
  });
}

// dy (N, C_out, OH, OW), x, W -> (dx, dW, db)
py::tuple conv2d_backward_py(const py::array& dy, const py::array& x, const py::array& W,
                             const py::object& stride, const py::object& padding,
                             const py::object& dilation, int64_t groups, bool with_bias,
                             bool naive) {
  const char* op = kConvBackward;
  const FloatKind kind = float_kind(x, op, "x");
  require_same_dtype(x, dy, op, "x", "dy");
  require_same_dtype(x, W, op, "x", "W");
  const Conv2dShape s = conv_shape(x, W, stride, padding, dilation, groups, op);
  require_shape(dy, {s.batch, s.out_channels, s.out_h(), s.out_w()}, op, "dy");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), xc = contiguous<T>(x), Wc = contiguous<T>(W);
    auto dx = new_array<T>(shape_of(x));
    auto dW = new_array<T>(shape_of(W));
    auto db = new_array<T>({s.out_channels});
    T* scratch = naive ? nullptr : kept_scratch<T>(conv2d_scratch_size(s));
    T *dxp = dx.mutable_data(), *dWp = dW.mutable_data(), *dbp = db.mutable_data();
    const int64_t w_size = static_cast<int64_t>(dW.size());
    {
      ReleaseGil nogil;
      // The kernel accumulates parameter gradients; fresh outputs start at zero.
      std::fill(dWp, dWp + w_size, T(0));
      std::fill(dbp, dbp + s.out_channels, T(0));
      T* dbk = with_bias ? dbp : nullptr;
      if (naive) conv2d_backward_naive<T>(dxp, dWp, dbk, dyc.data(), xc.data(), Wc.data(), s);
      else conv2d_backward<T>(dxp, dWp, dbk, scratch, dyc.data(), xc.data(), Wc.data(), s);
    }
    if (!with_bias) return py::make_tuple(dx, dW, py::none());
    return py::make_tuple(dx, dW, db);
  });
}

// x (N, C_in, H, W), W (C_in, C_out, KH, KW), b (C_out,) -> y (N, C_out, OH, OW)
py::array conv_transpose2d_forward_py(const py::array& x, const py::array& W, const py::object& b,
                                      const py::object& stride, const py::object& padding,
                                      const py::object& output_padding, const py::object& dilation,
                                      bool naive) {
  const char* op = kTransForward;
  const FloatKind kind = float_kind(x, op, "x");
  require_same_dtype(x, W, op, "x", "W");
  const ConvTranspose2dShape s = transpose_shape(x, W, stride, padding, output_padding, dilation, op);
  const bool has_b = !b.is_none();
  py::array b_arr;
  if (has_b) b_arr = optional_bias(b, x, s.out_channels, op);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wc = contiguous<T>(W);
    carray<T> bc;
    if (has_b) bc = contiguous<T>(b_arr);
    auto y = new_array<T>({s.batch, s.out_channels, s.out_h(), s.out_w()});
    T* scratch = naive ? nullptr : kept_scratch<T>(conv_transpose2d_scratch_size(s));
    const T* bp = has_b ? bc.data() : nullptr;
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      if (naive) conv_transpose2d_forward_naive<T>(yp, xc.data(), Wc.data(), bp, s);
      else conv_transpose2d_forward<T>(yp, scratch, xc.data(), Wc.data(), bp, s);
    }
    return y;
  });
}

py::tuple conv_transpose2d_backward_py(const py::array& dy, const py::array& x, const py::array& W,
                                       const py::object& stride, const py::object& padding,
                                       const py::object& output_padding, const py::object& dilation,
                                       bool with_bias, bool naive) {
  const char* op = kTransBackward;
  const FloatKind kind = float_kind(x, op, "x");
  require_same_dtype(x, dy, op, "x", "dy");
  require_same_dtype(x, W, op, "x", "W");
  const ConvTranspose2dShape s = transpose_shape(x, W, stride, padding, output_padding, dilation, op);
  require_shape(dy, {s.batch, s.out_channels, s.out_h(), s.out_w()}, op, "dy");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), xc = contiguous<T>(x), Wc = contiguous<T>(W);
    auto dx = new_array<T>(shape_of(x));
    auto dW = new_array<T>(shape_of(W));
    auto db = new_array<T>({s.out_channels});
    T* scratch = naive ? nullptr : kept_scratch<T>(conv_transpose2d_scratch_size(s));
    T *dxp = dx.mutable_data(), *dWp = dW.mutable_data(), *dbp = db.mutable_data();
    const int64_t w_size = static_cast<int64_t>(dW.size());
    {
      ReleaseGil nogil;
      std::fill(dWp, dWp + w_size, T(0));
      std::fill(dbp, dbp + s.out_channels, T(0));
      T* dbk = with_bias ? dbp : nullptr;
      if (naive)
        conv_transpose2d_backward_naive<T>(dxp, dWp, dbk, dyc.data(), xc.data(), Wc.data(), s);
      else
        conv_transpose2d_backward<T>(dxp, dWp, dbk, scratch, dyc.data(), xc.data(),
                                     Wc.data(), s);
    }
    if (!with_bias) return py::make_tuple(dx, dW, py::none());
    return py::make_tuple(dx, dW, db);
  });
}

}  // namespace

void bind_conv(py::module_& ops) {
  ops.def("conv2d_forward", &conv2d_forward_py, py::arg("x"), py::arg("W"),
          py::arg("b") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
          py::arg("dilation") = 1, py::arg("groups") = 1, py::arg("naive") = false,
          "2-D cross-correlation, NCHW. x (N, C_in, H, W), W (C_out, C_in/groups, KH, KW), "
          "b (C_out,) or None. stride/dilation: int or (h, w); padding: int, (h, w) or "
          "(top, bottom, left, right).");
  ops.def("conv2d_backward", &conv2d_backward_py, py::arg("dy"), py::arg("x"), py::arg("W"),
          py::arg("stride") = 1, py::arg("padding") = 0, py::arg("dilation") = 1,
          py::arg("groups") = 1, py::arg("with_bias") = true, py::arg("naive") = false,
          "(dx, dW, db) of conv2d_forward; db is None without bias.");
  ops.def("conv_transpose2d_forward", &conv_transpose2d_forward_py, py::arg("x"), py::arg("W"),
          py::arg("b") = py::none(), py::arg("stride") = 1, py::arg("padding") = 0,
          py::arg("output_padding") = 0, py::arg("dilation") = 1, py::arg("naive") = false,
          "Transposed convolution. x (N, C_in, H, W), W (C_in, C_out, KH, KW), b (C_out,) or "
          "None; padding: int, (h, w) or (top, bottom, left, right), cropped from the output; "
          "out = (H - 1)·stride - top - bottom + dilation·(KH - 1) + 1 + output_padding.");
  ops.def("conv_transpose2d_backward", &conv_transpose2d_backward_py, py::arg("dy"),
          py::arg("x"), py::arg("W"), py::arg("stride") = 1, py::arg("padding") = 0,
          py::arg("output_padding") = 0, py::arg("dilation") = 1, py::arg("with_bias") = true,
          py::arg("naive") = false,
          "(dx, dW, db) of conv_transpose2d_forward; db is None without bias.");
}

const OpsRegistration conv_ops("conv", bind_conv);

}  // namespace bind
}  // namespace corenn
