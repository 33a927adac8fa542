#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "corenn/kernels/batch_norm.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "batch_norm_forward";
constexpr const char* kBackward = "batch_norm_backward";

std::string type_name(const py::handle& obj) {
  return py::str(py::type::of(obj).attr("__name__")).cast<std::string>();
}

// x as (N, C, S): 2-D (N, C) has S = 1, 4-D (N, C, H, W) has S = H·W.
struct NormDims {
  int64_t batch, channels, spatial;
};

NormDims norm_dims(const py::array& x, const char* op, const char* arg) {
  if (x.ndim() != 2 && x.ndim() != 4)
    throw ShapeError(std::string(op) + ": " + arg +
                     " must be 2-D (batch, channels) or 4-D (batch, channels, height, width), got shape " +
                     shape_string(shape_of(x)));
  const auto s = shape_of(x);
  for (int64_t d : s)
    if (d < 1)
      throw ShapeError(std::string(op) + ": " + arg + " must have positive dimensions, got shape " +
                       shape_string(s));
  return {s[0], s[1], x.ndim() == 4 ? s[2] * s[3] : 1};
}

// A per-channel array that is only read: None (when allowed) or an array of
// x's dtype and shape (channels,).
py::array channel_array(const py::object& obj, const py::array& x, int64_t channels, const char* op,
                        const char* arg) {
  // ensure() would turn None into an object array and report a dtype.
  py::array a = obj.is_none() ? py::array() : py::array::ensure(obj);
  if (obj.is_none() || !a)
    throw TypeError(std::string(op) + ": " + arg + " must be an array, got " + type_name(obj));
  require_same_dtype(x, a, op, "x", arg);
  require_shape(a, {channels}, op, arg);
  return a;
}

// A running statistic updated in place: it must be the caller's own array, of
// x's dtype and shape (channels,), C-contiguous and writeable, or the update
// would land in a temporary copy and silently be lost.
py::array running_array(const py::object& obj, const py::array& x, int64_t channels, const char* op,
                        const char* arg) {
  if (!py::isinstance<py::array>(obj))
    throw TypeError(std::string(op) + ": " + arg +
                    " must be a numpy array (it is updated in place when training), got " + type_name(obj));
  py::array a = py::reinterpret_borrow<py::array>(obj);
  require_same_dtype(x, a, op, "x", arg);
  require_shape(a, {channels}, op, arg);
  require_writeable(a, op, arg, " when training");
  return a;
}

bool overlap(const py::array& a, const py::array& b) {
  const auto* pa = static_cast<const char*>(a.data());
  const auto* pb = static_cast<const char*>(b.data());
  return pa < pb + b.nbytes() && pb < pa + a.nbytes();
}

py::tuple batch_norm_forward_py(const py::array& x, const py::object& gamma, const py::object& beta,
                                const py::object& running_mean, const py::object& running_var,
                                bool training, double momentum, double eps, bool naive) {
  const FloatKind kind = float_kind(x, kForward, "x");
  const NormDims d = norm_dims(x, kForward, "x");
  validate_batch_norm(momentum, eps, kForward);
  if (training && d.batch * d.spatial < 2)
    throw ValueError(std::string(kForward) +
                     ": training needs more than one value per channel (batch·height·width >= 2), "
                     "got x of shape " + shape_string(shape_of(x)));
  const bool has_gamma = !gamma.is_none(), has_beta = !beta.is_none();
  py::array g, b;
  if (has_gamma) g = channel_array(gamma, x, d.channels, kForward, "gamma");
  if (has_beta) b = channel_array(beta, x, d.channels, kForward, "beta");
  // Running statistics: None for both means "not tracked", allowed only when
  // training (inference has nothing else to normalise with).
  const bool has_mean = !running_mean.is_none(), has_var = !running_var.is_none();
  if (has_mean != has_var)
    throw ValueError(std::string(kForward) +
                     ": running_mean and running_var must both be arrays or both be None");
  if (!training && !has_mean)
    throw ValueError(std::string(kForward) +
                     ": inference (training=False) needs running_mean and running_var, got None");
  py::array rm, rv;
  if (has_mean && training) {
    rm = running_array(running_mean, x, d.channels, kForward, "running_mean");
    rv = running_array(running_var, x, d.channels, kForward, "running_var");
    // The kernel writes a statistic before it reads gamma and beta of the same channel.
    auto require_apart = [&](const py::array& stat, const char* name, const py::array* other,
                             const char* other_name) {
      if (other && overlap(stat, *other))
        throw ValueError(std::string(kForward) + ": " + name + " must not share memory with " + other_name);
    };
    for (auto [stat, name] : {std::make_pair(&rm, "running_mean"), std::make_pair(&rv, "running_var")}) {
      require_apart(*stat, name, &x, "x");
      require_apart(*stat, name, has_gamma ? &g : nullptr, "gamma");
      require_apart(*stat, name, has_beta ? &b : nullptr, "beta");
    }
    require_apart(rv, "running_var", &rm, "running_mean");
  } else if (has_mean) {
    rm = channel_array(running_mean, x, d.channels, kForward, "running_mean");
    rv = channel_array(running_var, x, d.channels, kForward, "running_var");
  }
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x);
    carray<T> gc, bc, rmc, rvc;
    if (has_gamma) gc = contiguous<T>(g);
    if (has_beta) bc = contiguous<T>(b);
    // Training writes the caller's arrays (checked above: contiguous, writeable,
    // of x's dtype); inference only reads, from a copy when they are strided.
    T* rm_out = nullptr;
    T* rv_out = nullptr;
    const T* rm_in = nullptr;
    const T* rv_in = nullptr;
    if (has_mean && training) {
      rm_out = static_cast<T*>(rm.mutable_data());
      rv_out = static_cast<T*>(rv.mutable_data());
    } else if (has_mean) {
      rmc = contiguous<T>(rm), rvc = contiguous<T>(rv);
      rm_in = rmc.data(), rv_in = rvc.data();
    }
    auto y = new_array<T>(shape_of(x));
    auto save_mean = new_array<T>({d.channels});
    auto save_invstd = new_array<T>({d.channels});
    T *yp = y.mutable_data(), *mp = save_mean.mutable_data(), *ip = save_invstd.mutable_data();
    const T* gp = has_gamma ? gc.data() : nullptr;
    const T* bp = has_beta ? bc.data() : nullptr;
    {
      ReleaseGil nogil;
      if (training)
        (naive ? batch_norm_forward_naive<T> : batch_norm_forward<T>)(
            yp, mp, ip, rm_out, rv_out, xc.data(), gp, bp, momentum, eps, d.batch, d.channels, d.spatial);
      else
        (naive ? batch_norm_inference_forward_naive<T> : batch_norm_inference_forward<T>)(
            yp, mp, ip, xc.data(), rm_in, rv_in, gp, bp, eps, d.batch, d.channels, d.spatial);
    }
    return py::make_tuple(y, save_mean, save_invstd);
  });
}

py::tuple batch_norm_backward_py(const py::array& dy, const py::array& x, const py::object& gamma,
                                 const py::object& save_mean, const py::object& save_invstd,
                                 bool training, bool naive) {
  const FloatKind kind = float_kind(x, kBackward, "x");
  const NormDims d = norm_dims(x, kBackward, "x");
  require_same_dtype(x, dy, kBackward, "x", "dy");
  require_shape(dy, shape_of(x), kBackward, "dy");
  const bool has_gamma = !gamma.is_none();
  py::array g;
  if (has_gamma) g = channel_array(gamma, x, d.channels, kBackward, "gamma");
  py::array m = channel_array(save_mean, x, d.channels, kBackward, "save_mean");
  py::array s = channel_array(save_invstd, x, d.channels, kBackward, "save_invstd");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto dyc = contiguous<T>(dy), xc = contiguous<T>(x), mc = contiguous<T>(m), sc = contiguous<T>(s);
    carray<T> gc;
    if (has_gamma) gc = contiguous<T>(g);
    auto dx = new_array<T>(shape_of(x));
    auto dgamma = new_array<T>({d.channels});
    auto dbeta = new_array<T>({d.channels});
    T *dxp = dx.mutable_data(), *dgp = dgamma.mutable_data(), *dbp = dbeta.mutable_data();
    const T* gp = has_gamma ? gc.data() : nullptr;
    {
      ReleaseGil nogil;
      // The kernels accumulate parameter gradients; fresh outputs start at zero.
      std::fill(dgp, dgp + d.channels, T(0));
      std::fill(dbp, dbp + d.channels, T(0));
      if (training)
        (naive ? batch_norm_backward_naive<T> : batch_norm_backward<T>)(
            dxp, dgp, dbp, dyc.data(), xc.data(), mc.data(), sc.data(), gp, d.batch, d.channels, d.spatial);
      else
        (naive ? batch_norm_inference_backward_naive<T> : batch_norm_inference_backward<T>)(
            dxp, dgp, dbp, dyc.data(), xc.data(), mc.data(), sc.data(), gp, d.batch, d.channels, d.spatial);
    }
    return py::make_tuple(dx, dgamma, dbeta);
  });
}

}  // namespace

void bind_norm(py::module_& ops) {
  ops.def("batch_norm_forward", &batch_norm_forward_py, py::arg("x"), py::arg("gamma"), py::arg("beta"),
          py::arg("running_mean"), py::arg("running_var"), py::arg("training"), py::arg("momentum") = 0.1,
          py::arg("eps") = 1e-5, py::arg("naive") = false,
          "(y, save_mean, save_invstd): batch normalisation of x (N, C) or (N, C, H, W) per channel, "
          "PyTorch's semantics. training: batch statistics, and running_mean/running_var (float "
          "arrays of x's dtype, updated in place; both None to track nothing) move by "
          "momentum·(new − old), the variance unbiased; inference: the running statistics. "
          "invstd = 1/sqrt(var + eps); gamma/beta None mean 1/0. In inference save_mean and "
          "save_invstd are the running mean and 1/sqrt(running_var + eps).");
  ops.def("batch_norm_backward", &batch_norm_backward_py, py::arg("dy"), py::arg("x"), py::arg("gamma"),
          py::arg("save_mean"), py::arg("save_invstd"), py::arg("training") = true,
          py::arg("naive") = false,
          "(dx, dgamma, dbeta) from batch_norm_forward's saved statistics; training=False is the "
          "backward of inference mode (the statistics are constants: dx = dy·gamma·invstd).");
}

const OpsRegistration batch_norm_ops("batch_norm", bind_norm);

}  // namespace bind
}  // namespace corenn
