#include <cmath>
#include <sstream>

#include "common.hpp"
#include "corenn/kernels/augment.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kFlipForward = "random_flip_forward";
constexpr const char* kFlipBackward = "random_flip_backward";
constexpr const char* kCropForward = "random_crop_forward";
constexpr const char* kCropBackward = "random_crop_backward";
constexpr const char* kShiftForward = "color_shift_forward";
constexpr const char* kNCHW = "(batch, channels, height, width)";

struct Dims {
  int64_t n, c, h, w;
};

Dims nchw(const py::array& x, const char* op, const char* arg) {
  require_ndim(x, 4, op, arg, kNCHW);
  return {x.shape(0), x.shape(1), x.shape(2), x.shape(3)};
}

// padding: an int or (pad_h, pad_w), each >= 0.
std::pair<int64_t, int64_t> padding_arg(const py::object& v, const char* op) {
  const auto p = int_tuple(v, {2}, op, "padding", "an int or a pair (pad_h, pad_w)");
  if (p[0] < 0 || p[1] < 0)
    throw ValueError(std::string(op) + ": padding must be >= 0, got (" + std::to_string(p[0]) + ", " +
                     std::to_string(p[1]) + ")");
  return {p[0], p[1]};
}

// x (N, C, H, W) -> (y, flips): flips uint8 (N,), bit 0 horizontal, bit 1 vertical.
py::tuple random_flip_forward_py(const py::array& x, const std::string& mode, uint64_t seed,
                                 bool naive) {
  const FloatKind kind = float_kind(x, kFlipForward, "x");
  const Dims d = nchw(x, kFlipForward, "x");
  const FlipMode m = parse_flip_mode(mode);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>(shape_of(x));
    auto flips = new_array<uint8_t>({d.n});
    T* yp = y.mutable_data();
    uint8_t* fp = flips.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? random_flip_forward_naive<T> : random_flip_forward<T>)(yp, fp, xc.data(), m, seed, d.n,
                                                                      d.c, d.h, d.w);
    }
    return py::make_tuple(y, flips);
  });
}

// dy (N, C, H, W), flips (N,) -> dx
py::array random_flip_backward_py(const py::array& dy, const py::array& flips, bool naive) {
  const FloatKind kind = float_kind(dy, kFlipBackward, "dy");
  const Dims d = nchw(dy, kFlipBackward, "dy");
  if (!flips.dtype().equal(py::dtype::of<uint8_t>()))
    throw TypeError(std::string(kFlipBackward) + ": flips must be uint8 (from random_flip_forward), got " +
                    dtype_str(flips));
  require_shape(flips, {d.n}, kFlipBackward, "flips");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy);
    auto fc = contiguous<uint8_t>(flips);
    // Only bits 0 and 1 mean anything: other bits would index nothing, so they are an error.
    for (int64_t n = 0; n < d.n; ++n)
      if (fc.data()[n] > 3)
        throw ValueError(std::string(kFlipBackward) + ": flips must be 0..3, got " +
                         std::to_string(fc.data()[n]) + " at index " + std::to_string(n));
    auto dx = new_array<T>(shape_of(dy));
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? random_flip_backward_naive<T> : random_flip_backward<T>)(dxp, dyc.data(), fc.data(), d.n,
                                                                        d.c, d.h, d.w);
    }
    return dx;
  });
}

// x (N, C, H, W) -> (y, offsets): offsets int64 (N, 2), (oy, ox) in [0, 2·pad].
py::tuple random_crop_forward_py(const py::array& x, const py::object& padding, uint64_t seed,
                                 bool naive) {
  const FloatKind kind = float_kind(x, kCropForward, "x");
  const Dims d = nchw(x, kCropForward, "x");
  const auto [ph, pw] = padding_arg(padding, kCropForward);
  return dispatch_float(kind, [&, ph = ph, pw = pw](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>(shape_of(x));
    auto offsets = new_array<int64_t>({d.n, 2});
    T* yp = y.mutable_data();
    int64_t* op = offsets.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? random_crop_forward_naive<T> : random_crop_forward<T>)(yp, op, xc.data(), ph, pw, seed,
                                                                      d.n, d.c, d.h, d.w);
    }
    return py::make_tuple(y, offsets);
  });
}

// dy (N, C, H, W), offsets (N, 2) -> dx
py::array random_crop_backward_py(const py::array& dy, const py::array& offsets,
                                  const py::object& padding, bool naive) {
  const FloatKind kind = float_kind(dy, kCropBackward, "dy");
  const Dims d = nchw(dy, kCropBackward, "dy");
  const auto [ph, pw] = padding_arg(padding, kCropBackward);
  if (!offsets.dtype().equal(py::dtype::of<int64_t>()))
    throw TypeError(std::string(kCropBackward) + ": offsets must be int64 (from random_crop_forward), got " +
                    dtype_str(offsets));
  require_shape(offsets, {d.n, 2}, kCropBackward, "offsets");
  auto oc = contiguous<int64_t>(offsets);
  for (int64_t n = 0; n < d.n; ++n) {
    const int64_t oy = oc.data()[2 * n], ox = oc.data()[2 * n + 1];
    if (oy < 0 || oy > 2 * ph || ox < 0 || ox > 2 * pw) {
      std::ostringstream msg;
      msg << kCropBackward << ": offsets must lie in [0, " << 2 * ph << "] x [0, " << 2 * pw
          << "] for padding (" << ph << ", " << pw << "), got (" << oy << ", " << ox << ") at index " << n;
      throw ValueError(msg.str());
    }
  }
  return dispatch_float(kind, [&, ph = ph, pw = pw](auto tag) -> py::array {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy);
    auto dx = new_array<T>(shape_of(dy));
    T* dxp = dx.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? random_crop_backward_naive<T> : random_crop_backward<T>)(dxp, dyc.data(), oc.data(), ph,
                                                                        pw, d.n, d.c, d.h, d.w);
    }
    return dx;
  });
}

// x (N, C, H, W) -> (y, shifts): shifts (N, C) in x's dtype.
py::tuple color_shift_forward_py(const py::array& x, double delta, uint64_t seed, bool naive) {
  const FloatKind kind = float_kind(x, kShiftForward, "x");
  const Dims d = nchw(x, kShiftForward, "x");
  if (!(delta >= 0.0 && std::isfinite(delta))) {
    std::ostringstream msg;
    msg << kShiftForward << ": delta must be finite and >= 0, got " << delta;
    throw ValueError(msg.str());
  }
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    auto y = new_array<T>(shape_of(x));
    auto shifts = new_array<T>({d.n, d.c});
    T *yp = y.mutable_data(), *sp = shifts.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? color_shift_forward_naive<T> : color_shift_forward<T>)(
          yp, sp, xc.data(), static_cast<T>(delta), seed, d.n, d.c, d.h * d.w);
    }
    return py::make_tuple(y, shifts);
  });
}

}  // namespace

void bind_augment(py::module_& ops) {
  ops.def("random_flip_forward", &random_flip_forward_py, py::arg("x"), py::arg("mode"),
          py::arg("seed"), py::arg("naive") = false,
          "Random flips of NCHW images: (y, flips). mode 'horizontal', 'vertical' or "
          "'horizontal_and_vertical'; example n is flipped left-right when bit 0 of "
          "random_bits(seed, n) is set (and the mode allows it), upside down for bit 1; "
          "flips[n] holds those bits.");
  ops.def("random_flip_backward", &random_flip_backward_py, py::arg("dy"), py::arg("flips"),
          py::arg("naive") = false, "dx = dy flipped back as flips says.");
  ops.def("random_crop_forward", &random_crop_forward_py, py::arg("x"), py::arg("padding"),
          py::arg("seed"), py::arg("naive") = false,
          "Zero-pad NCHW images by padding (int or (pad_h, pad_w)) on every side and crop back "
          "to H x W at a random offset: (y, offsets), offsets (N, 2) = (oy, ox) in "
          "[0, 2 pad_h] x [0, 2 pad_w], y[n, c, i, j] = x[n, c, i + oy - pad_h, j + ox - pad_w].");
  ops.def("random_crop_backward", &random_crop_backward_py, py::arg("dy"), py::arg("offsets"),
          py::arg("padding"), py::arg("naive") = false,
          "dx: dy moved back through the crop's shift (0 where x was cut off).");
  ops.def("color_shift_forward", &color_shift_forward_py, py::arg("x"), py::arg("delta"),
          py::arg("seed"), py::arg("naive") = false,
          "Per-example, per-channel colour shift of NCHW images: (y, shifts), y = x + shifts[n, c], "
          "shifts = delta (2 uniform01(seed, n C + c) - 1). The gradient is dx = dy.");
}

const OpsRegistration augment_ops("augment", bind_augment);

}  // namespace bind
}  // namespace corenn
