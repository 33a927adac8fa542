#include "common.hpp"
#include "corenn/kernels/dense.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "dense_forward";
constexpr const char* kBackward = "dense_backward";

// x (N, in), W (out, in), b (out,) -> y (N, out)
py::array dense_forward_py(const py::array& x, const py::array& W, const py::object& b,
                           bool naive) {
  const FloatKind kind = float_kind(x, kForward, "x");
  require_same_dtype(x, W, kForward, "x", "W");
  require_ndim(x, 2, kForward, "x", "(batch, in_features)");
  require_ndim(W, 2, kForward, "W", "(out_features, in_features)");
  const int64_t batch = x.shape(0), in = x.shape(1), out = W.shape(0);
  require_shape(W, {out, in}, kForward, "W");
  // A default py::array is an empty array, not a null handle: track presence apart.
  const bool has_b = !b.is_none();
  py::array b_arr;
  if (has_b) {
    b_arr = py::array::ensure(b);
    if (!b_arr) throw TypeError(std::string(kForward) + ": b must be an array or None");
    require_same_dtype(x, b_arr, kForward, "x", "b");
    require_shape(b_arr, {out}, kForward, "b");
  }
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wc = contiguous<T>(W);
    carray<T> bc;
    if (has_b) bc = contiguous<T>(b_arr);
    auto y = new_array<T>({batch, out});
    const T* bp = has_b ? bc.data() : nullptr;
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? dense_forward_naive<T> : dense_forward<T>)(yp, xc.data(), Wc.data(), bp, batch,
                                                          in, out);
    }
    return y;
  });
}

// dy (N, out), x (N, in), W (out, in) -> (dx, dW, db)
py::tuple dense_backward_py(const py::array& dy, const py::array& x, const py::array& W,
                            bool with_bias, bool naive) {
  const FloatKind kind = float_kind(x, kBackward, "x");
  require_same_dtype(x, dy, kBackward, "x", "dy");
  require_same_dtype(x, W, kBackward, "x", "W");
  require_ndim(x, 2, kBackward, "x", "(batch, in_features)");
  require_ndim(W, 2, kBackward, "W", "(out_features, in_features)");
  const int64_t batch = x.shape(0), in = x.shape(1), out = W.shape(0);
  require_shape(W, {out, in}, kBackward, "W");
  require_shape(dy, {batch, out}, kBackward, "dy");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), xc = contiguous<T>(x), Wc = contiguous<T>(W);
    auto dx = new_array<T>({batch, in});
    auto dW = new_array<T>({out, in});
    auto db = new_array<T>({out});
    T *dxp = dx.mutable_data(), *dWp = dW.mutable_data(), *dbp = db.mutable_data();
    {
      ReleaseGil nogil;
      // The kernel accumulates parameter gradients; fresh outputs start at zero.
      std::fill(dWp, dWp + out * in, T(0));
      std::fill(dbp, dbp + out, T(0));
      (naive ? dense_backward_naive<T> : dense_backward<T>)(
          dxp, dWp, with_bias ? dbp : nullptr, dyc.data(), xc.data(), Wc.data(), batch, in, out);
    }
    if (!with_bias) return py::make_tuple(dx, dW, py::none());
    return py::make_tuple(dx, dW, db);
  });
}

}  // namespace

void bind_dense(py::module_& ops) {
  ops.def("dense_forward", &dense_forward_py, py::arg("x"), py::arg("W"),
          py::arg("b") = py::none(), py::arg("naive") = false,
          "y = x · Wᵀ + b. x (batch, in), W (out, in), b (out,) or None.");
  ops.def("dense_backward", &dense_backward_py, py::arg("dy"), py::arg("x"), py::arg("W"),
          py::arg("with_bias") = true, py::arg("naive") = false,
          "(dx, dW, db) = (dy · W, dyᵀ · x, Σ_rows dy); db is None without bias.");
}

const OpsRegistration dense_ops("dense", bind_dense);

}  // namespace bind
}  // namespace corenn
