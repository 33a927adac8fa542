#include <string>

#include "common.hpp"
#include "corenn/kernels/metric_losses.hpp"
#include "corenn/kernels/style.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kTriplet = "triplet_loss";
constexpr const char* kContrastive = "contrastive_loss";

// emb (N, 3, D) -> (loss, demb (N, 3, D))
py::tuple triplet_loss_py(const py::array& emb, double margin, bool squared,
                          const std::string& reduction, double eps, bool naive) {
  const FloatKind kind = float_kind(emb, kTriplet, "emb");
  if (emb.ndim() != 3 || emb.shape(1) != 3)
    throw ShapeError(std::string(kTriplet) +
                     ": emb must have shape (N, 3, D) (anchor, positive, negative), got " +
                     shape_string(shape_of(emb)));
  validate_margin(margin, kTriplet, "margin");
  validate_margin(eps, kTriplet, "eps");
  if (reduction != "sum" && reduction != "mean")
    throw ValueError(std::string(kTriplet) + ": reduction must be one of 'sum', 'mean', got '" +
                     reduction + "'");
  const bool mean = reduction == "mean";
  const int64_t n = emb.shape(0), d = emb.shape(2);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto ec = contiguous<T>(emb);
    auto g = new_array<T>(shape_of(emb));
    T* gp = g.mutable_data();
    T loss;
    {
      py::gil_scoped_release nogil;
      validate_finite(ec.data(), n * 3 * d, kTriplet, "emb");
      loss = (naive ? triplet_loss_naive<T> : triplet_loss<T>)(
          gp, ec.data(), n, d, static_cast<T>(margin), squared, mean, static_cast<T>(eps));
    }
    return py::make_tuple(static_cast<double>(loss), g);
  });
}

// e1, e2 (N, D), same (N,) -> (loss, de1, de2)
py::tuple contrastive_loss_py(const py::array& e1, const py::array& e2, const py::array& same,
                              double margin, bool naive) {
  const FloatKind kind = float_kind(e1, kContrastive, "e1");
  require_same_dtype(e1, e2, kContrastive, "e1", "e2");
  require_ndim(e1, 2, kContrastive, "e1", "embeddings (N, D)");
  const int64_t n = e1.shape(0), d = e1.shape(1);
  require_shape(e2, {n, d}, kContrastive, "e2");
  require_shape(same, {n}, kContrastive, "same");
  require_real(same, kContrastive, "same");
  if (n == 0)
    throw ShapeError(std::string(kContrastive) + ": e1 must not be empty (a mean over 0 pairs), "
                     "got shape " + shape_string(shape_of(e1)));
  validate_margin(margin, kContrastive, "margin");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto ac = contiguous<T>(e1), bc = contiguous<T>(e2);
    // same may be bool, integer or float: its values are checked, not its dtype.
    auto sc = py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(same);
    if (!sc) throw py::error_already_set();
    auto g1 = new_array<T>({n, d}), g2 = new_array<T>({n, d});
    T *g1p = g1.mutable_data(), *g2p = g2.mutable_data();
    T loss;
    {
      py::gil_scoped_release nogil;
      validate_finite(ac.data(), n * d, kContrastive, "e1");
      validate_finite(bc.data(), n * d, kContrastive, "e2");
      validate_same(sc.data(), n, kContrastive, "same");
      loss = (naive ? contrastive_loss_naive<T> : contrastive_loss<T>)(
          g1p, g2p, ac.data(), bc.data(), sc.data(), n, d, static_cast<T>(margin));
    }
    return py::make_tuple(static_cast<double>(loss), g1, g2);
  });
}

}  // namespace

void bind_metric_losses(py::module_& ops) {
  ops.def("triplet_loss", &triplet_loss_py, py::arg("emb"), py::arg("margin") = 0.2,
          py::arg("squared") = true, py::arg("reduction") = "sum", py::arg("eps") = 1e-6,
          py::arg("naive") = false,
          "(loss, demb): Σ_i max(d(a,p) − d(a,n) + margin, 0) over emb (N, 3, D) rows "
          "(anchor, positive, negative). squared=True: d = ‖x − y‖² (the course, FaceNet); "
          "squared=False: d = ‖x − y + eps‖₂ (PyTorch's pairwise_distance). reduction 'sum' "
          "(the course) or 'mean' (PyTorch's TripletMarginLoss with squared=False).");
  ops.def("contrastive_loss", &contrastive_loss_py, py::arg("e1"), py::arg("e2"),
          py::arg("same"), py::arg("margin") = 1.0, py::arg("naive") = false,
          "(loss, de1, de2): (1/N) Σ same·d² + (1 − same)·max(margin − d, 0)², d = ‖e1 − e2‖₂ "
          "(Hadsell et al. 2006); e1, e2 (N, D), same (N,) of 0/1.");
}

const OpsRegistration metric_losses_ops("metric_losses", bind_metric_losses);

}  // namespace bind
}  // namespace corenn
