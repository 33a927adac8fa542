#include <pybind11/stl.h>

#include <string>
#include <utility>

#include "common.hpp"
#include "corenn/kernels/detection_losses.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kYolo = "yolo_loss";
constexpr const char* kLocalization = "localization_loss";
constexpr const char* kMaskedMse = "masked_mse";

using f64_array = py::array_t<double, py::array::c_style | py::array::forcecast>;

// y_true, y_pred (N, A·(5+C), S, S), anchors (A, 2) pixels, image_size (H, W) ->
// (loss, dy_pred)
py::tuple yolo_loss_py(const py::array& y_true, const py::array& y_pred, const py::array& anchors,
                       std::pair<double, double> image_size, double lambda_coord,
                       double lambda_noobj, double ignore_threshold, bool naive) {
  const FloatKind kind = float_kind(y_pred, kYolo, "y_pred");
  require_same_dtype(y_pred, y_true, kYolo, "y_pred", "y_true");
  require_real(anchors, kYolo, "anchors");
  f64_array anchor_wh = f64_array::ensure(anchors);
  if (!anchor_wh) throw py::error_already_set();
  if (anchor_wh.ndim() != 2 || anchor_wh.shape(1) != 2 || anchor_wh.shape(0) < 1)
    throw ShapeError(std::string(kYolo) + ": anchors must have shape (A, 2) with A >= 1 (width, "
                     "height), got " + shape_string(shape_of(anchors)));
  const int64_t a = anchor_wh.shape(0);
  if (y_pred.ndim() != 4 || y_pred.shape(2) != y_pred.shape(3) || y_pred.shape(1) % a != 0 ||
      y_pred.shape(1) / a < 6)
    throw ShapeError(std::string(kYolo) + ": y_pred must have shape (N, A*(5+C), S, S) with A = " +
                     std::to_string(a) + " anchors and C >= 1, got " +
                     shape_string(shape_of(y_pred)));
  require_shape(y_true, shape_of(y_pred), kYolo, "y_true");
  const int64_t n = y_pred.shape(0);
  if (n == 0)
    throw ShapeError(std::string(kYolo) + ": y_pred must not be empty (a mean over 0 images), "
                     "got shape " + shape_string(shape_of(y_pred)));
  YoloLossOptions o;
  o.anchors = a;
  o.classes = y_pred.shape(1) / a - 5;
  o.grid = y_pred.shape(2);
  o.anchor_wh = anchor_wh.data();
  o.image_h = image_size.first;
  o.image_w = image_size.second;
  o.lambda_coord = lambda_coord;
  o.lambda_noobj = lambda_noobj;
  o.ignore_threshold = ignore_threshold;
  validate(o, kYolo);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto tc = contiguous<T>(y_true), pc = contiguous<T>(y_pred);
    auto g = new_array<T>(shape_of(y_pred));
    T* gp = g.mutable_data();
    T loss;
    {
      ReleaseGil nogil;
      validate_yolo_target(tc.data(), n, o, kYolo, "y_true");
      loss = (naive ? yolo_loss_naive<T> : yolo_loss<T>)(gp, pc.data(), tc.data(), n, o);
    }
    return py::make_tuple(static_cast<double>(loss), g);
  });
}

// y_true, y_pred (N, 5 + K) -> (loss, dy_pred)
py::tuple localization_loss_py(const py::array& y_true, const py::array& y_pred,
                               const std::string& class_loss, bool naive) {
  const FloatKind kind = float_kind(y_pred, kLocalization, "y_pred");
  require_same_dtype(y_pred, y_true, kLocalization, "y_pred", "y_true");
  if (y_pred.ndim() != 2 || y_pred.shape(1) < 6 || y_pred.shape(0) == 0)
    throw ShapeError(std::string(kLocalization) +
                     ": y_pred must have shape (N, 5 + K) with N >= 1 and K >= 1 classes "
                     "(p_c, b_x, b_y, b_h, b_w, c_1 ... c_K), got " + shape_string(shape_of(y_pred)));
  require_shape(y_true, shape_of(y_pred), kLocalization, "y_true");
  if (class_loss != "squared" && class_loss != "cross_entropy")
    throw ValueError(std::string(kLocalization) +
                     ": class_loss must be one of 'squared', 'cross_entropy', got '" + class_loss + "'");
  const bool ce = class_loss == "cross_entropy";
  const int64_t n = y_pred.shape(0), cols = y_pred.shape(1);
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto tc = contiguous<T>(y_true), pc = contiguous<T>(y_pred);
    auto g = new_array<T>({n, cols});
    T* gp = g.mutable_data();
    T loss;
    {
      ReleaseGil nogil;
      validate_localization_target(tc.data(), n, cols, kLocalization, "y_true");
      loss = (naive ? localization_loss_naive<T> : localization_loss<T>)(gp, pc.data(), tc.data(),
                                                                          n, cols, ce);
    }
    return py::make_tuple(static_cast<double>(loss), g);
  });
}

// y_true, y_pred any equal shape, NaN targets missing -> (loss, dy_pred)
py::tuple masked_mse_py(const py::array& y_true, const py::array& y_pred, bool naive) {
  const FloatKind kind = float_kind(y_pred, kMaskedMse, "y_pred");
  require_same_dtype(y_pred, y_true, kMaskedMse, "y_pred", "y_true");
  require_shape(y_true, shape_of(y_pred), kMaskedMse, "y_true");
  const int64_t n = y_pred.size();
  if (n == 0)
    throw ShapeError(std::string(kMaskedMse) + ": y_pred must not be empty, got shape " +
                     shape_string(shape_of(y_pred)));
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto tc = contiguous<T>(y_true), pc = contiguous<T>(y_pred);
    auto g = new_array<T>(shape_of(y_pred));
    T* gp = g.mutable_data();
    T loss;
    {
      ReleaseGil nogil;
      loss = (naive ? masked_mse_naive<T> : masked_mse<T>)(gp, pc.data(), tc.data(), n);
    }
    return py::make_tuple(static_cast<double>(loss), g);
  });
}

}  // namespace

void bind_detection_losses(py::module_& ops) {
  ops.def("yolo_loss", &yolo_loss_py, py::arg("y_true"), py::arg("y_pred"), py::arg("anchors"),
          py::arg("image_size"), py::arg("lambda_coord") = 5.0, py::arg("lambda_noobj") = 0.5,
          py::arg("ignore_threshold") = 0.6, py::arg("naive") = false,
          "(loss, dy_pred): the YOLO loss of raw head outputs y_pred (N, A*(5+C), S, S) against "
          "yolo_encode targets y_true (same shape, dtype): (1/N) Σ over anchors and cells of "
          "obj·(λcoord·[(σ(z1)−t_x)² + (σ(z2)−t_y)² + (z3−t_w)² + (z4−t_h)²] + BCE(z0, 1) + "
          "softmax cross-entropy of the classes) + (1−obj)·(1−ignore)·λnoobj·BCE(z0, 0); "
          "ignore: the predicted box has IoU > ignore_threshold with a true box of its image "
          "(YOLOv2). anchors (A, 2) width, height and image_size (height, width) in pixels.");
  ops.def("localization_loss", &localization_loss_py, py::arg("y_true"), py::arg("y_pred"),
          py::arg("class_loss") = "squared", py::arg("naive") = false,
          "(loss, dy_pred): classification with localization (course 4, week 3) on rows "
          "(p_c, b_x, b_y, b_h, b_w, c_1..c_K), (N, 5+K). 'squared': Σ(ŷ−y)² over the row when "
          "y p_c = 1, (ŷ_pc − y_pc)² otherwise; 'cross_entropy': BCE on the p_c logit, squared "
          "error on the box and softmax cross-entropy on the class logits when p_c = 1. Mean "
          "over rows.");
  ops.def("masked_mse", &masked_mse_py, py::arg("y_true"), py::arg("y_pred"),
          py::arg("naive") = false,
          "(loss, dy_pred): Σ(ŷ − y)² / count over the entries whose target is not NaN "
          "(missing landmarks); 0 when every target is missing.");
}

const OpsRegistration detection_losses_ops("detection_losses", bind_detection_losses);

}  // namespace bind
}  // namespace corenn
