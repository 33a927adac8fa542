#include <algorithm>
#include <string>
#include <vector>

#include "common.hpp"
#include "corenn/kernels/layer_norm.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "layer_norm_forward";
constexpr const char* kBackward = "layer_norm_backward";

// x as (M, D): D its last axis, M the product of the others (1 for a vector).
struct RowDims {
  int64_t rows, dim;
  std::vector<int64_t> stats_shape;  // x.shape[:-1], the shape of mean and invstd
};

RowDims row_dims(const py::array& x, const char* op, const char* arg) {
  const auto s = shape_of(x);
  if (s.empty())
    throw ShapeError(std::string(op) + ": " + arg + " must have at least 1 dimension (..., features), got shape ()");
  for (int64_t d : s)
    if (d < 1)
      throw ShapeError(std::string(op) + ": " + arg + " must have positive dimensions, got shape " +
                       shape_string(s));
  RowDims r{1, s.back(), std::vector<int64_t>(s.begin(), s.end() - 1)};
  for (int64_t d : r.stats_shape) r.rows *= d;
  return r;
}

// An empty placeholder for None, or an array of x's dtype and the given shape.
py::array optional_array(const py::object& obj, const py::array& x, const std::vector<int64_t>& shape,
                         const char* op, const char* arg) {
  if (obj.is_none()) return py::array();
  py::array a = py::array::ensure(obj);
  if (!a)
    throw TypeError(std::string(op) + ": " + arg + " must be an array or None, got " +
                    py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  require_same_dtype(x, a, op, "x", arg);
  require_shape(a, shape, op, arg);
  return a;
}

py::tuple layer_norm_forward_py(const py::array& x, const py::object& gamma, const py::object& beta,
                                double eps, bool naive) {
  const FloatKind kind = float_kind(x, kForward, "x");
  const RowDims d = row_dims(x, kForward, "x");
  validate_layer_norm(eps, kForward);
  const bool has_gamma = !gamma.is_none(), has_beta = !beta.is_none();
  py::array g = optional_array(gamma, x, {d.dim}, kForward, "gamma");
  py::array b = optional_array(beta, x, {d.dim}, kForward, "beta");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    carray<T> gc, bc;
    if (has_gamma) gc = contiguous<T>(g);
    if (has_beta) bc = contiguous<T>(b);
    auto y = new_array<T>(shape_of(x));
    auto mean = new_array<T>(d.stats_shape), invstd = new_array<T>(d.stats_shape);
    T *yp = y.mutable_data(), *mp = mean.mutable_data(), *ip = invstd.mutable_data();
    const T* gp = has_gamma ? gc.data() : nullptr;
    const T* bp = has_beta ? bc.data() : nullptr;
    {
      py::gil_scoped_release nogil;
      (naive ? layer_norm_forward_naive<T> : layer_norm_forward<T>)(yp, mp, ip, xc.data(), gp, bp, eps,
                                                                    d.rows, d.dim);
    }
    return py::make_tuple(y, mean, invstd);
  });
}

py::tuple layer_norm_backward_py(const py::array& dy, const py::array& x, const py::object& gamma,
                                 const py::array& mean, const py::array& invstd, bool naive) {
  const FloatKind kind = float_kind(x, kBackward, "x");
  const RowDims d = row_dims(x, kBackward, "x");
  require_same_dtype(x, dy, kBackward, "x", "dy");
  require_shape(dy, shape_of(x), kBackward, "dy");
  const bool has_gamma = !gamma.is_none();
  py::array g = optional_array(gamma, x, {d.dim}, kBackward, "gamma");
  require_same_dtype(x, mean, kBackward, "x", "mean");
  require_shape(mean, d.stats_shape, kBackward, "mean");
  require_same_dtype(x, invstd, kBackward, "x", "invstd");
  require_shape(invstd, d.stats_shape, kBackward, "invstd");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), xc = contiguous<T>(x), mc = contiguous<T>(mean), sc = contiguous<T>(invstd);
    carray<T> gc;
    if (has_gamma) gc = contiguous<T>(g);
    auto dx = new_array<T>(shape_of(x));
    auto dgamma = new_array<T>({d.dim}), dbeta = new_array<T>({d.dim});
    T *dxp = dx.mutable_data(), *dgp = dgamma.mutable_data(), *dbp = dbeta.mutable_data();
    const T* gp = has_gamma ? gc.data() : nullptr;
    {
      py::gil_scoped_release nogil;
      // The kernels accumulate parameter gradients; fresh outputs start at zero.
      std::fill(dgp, dgp + d.dim, T(0));
      std::fill(dbp, dbp + d.dim, T(0));
      (naive ? layer_norm_backward_naive<T> : layer_norm_backward<T>)(dxp, dgp, dbp, dyc.data(), xc.data(),
                                                                      mc.data(), sc.data(), gp, d.rows, d.dim);
    }
    return py::make_tuple(dx, dgamma, dbeta);
  });
}

}  // namespace

void bind_layer_norm(py::module_& ops) {
  ops.def("layer_norm_forward", &layer_norm_forward_py, py::arg("x"), py::arg("gamma"), py::arg("beta"),
          py::arg("eps") = 1e-5, py::arg("naive") = false,
          "(y, mean, invstd): layer normalisation of x (..., D) over its last axis, PyTorch's "
          "nn.LayerNorm: y = gamma*(x - mean)*invstd + beta, invstd = 1/sqrt(var + eps), var "
          "biased; gamma, beta (D,) of x's dtype or None (1 and 0); mean, invstd of shape "
          "x.shape[:-1]. eps defaults to PyTorch's 1e-5 (Keras's layer uses 1e-3). "
          "ValueError for eps not finite and > 0 or a wrong shape, TypeError for a wrong dtype.");
  ops.def("layer_norm_backward", &layer_norm_backward_py, py::arg("dy"), py::arg("x"), py::arg("gamma"),
          py::arg("mean"), py::arg("invstd"), py::arg("naive") = false,
          "(dx, dgamma, dbeta) of layer_norm_forward from its saved mean and invstd: "
          "dx = invstd*(g - mean(g) - xhat*mean(g*xhat)) with g = gamma*dy, "
          "dgamma = sum over rows of dy*xhat, dbeta = sum over rows of dy.");
}

const OpsRegistration layer_norm_ops("layer_norm", bind_layer_norm);

}  // namespace bind
}  // namespace corenn
