#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "common.hpp"
#include "corenn/kernels/detection.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kIou = "box_iou";
constexpr const char* kNms = "nms";

// The number of boxes of a (N, 4) array, or ValueError naming op and arg.
int64_t box_count(const py::array& boxes, const char* op, const char* arg) {
  if (boxes.ndim() != 2 || boxes.shape(1) != 4)
    throw ShapeError(std::string(op) + ": " + arg +
                     " must have shape (N, 4) (corners x1, y1, x2, y2), got " +
                     shape_string(shape_of(boxes)));
  return boxes.shape(0);
}

// a (N, 4), b (M, 4) -> iou (N, M)
py::array box_iou_py(const py::array& a, const py::array& b, bool naive) {
  const FloatKind kind = float_kind(a, kIou, "a");
  require_same_dtype(a, b, kIou, "a", "b");
  const int64_t n = box_count(a, kIou, "a"), m = box_count(b, kIou, "b");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto ac = contiguous<T>(a), bc = contiguous<T>(b);
    auto iou = new_array<T>({n, m});
    T* out = iou.mutable_data();
    {
      ReleaseGil nogil;
      validate_boxes(ac.data(), n, kIou, "a");
      validate_boxes(bc.data(), m, kIou, "b");
      (naive ? box_iou_naive<T> : box_iou<T>)(out, ac.data(), bc.data(), n, m);
    }
    return iou;
  });
}

// boxes (N, 4), scores (N,) -> kept indices (K,) int64
py::array nms_py(const py::array& boxes, const py::array& scores, double iou_threshold,
                 std::optional<double> score_threshold, std::optional<int64_t> max_output,
                 bool naive) {
  const FloatKind kind = float_kind(boxes, kNms, "boxes");
  require_same_dtype(boxes, scores, kNms, "boxes", "scores");
  const int64_t n = box_count(boxes, kNms, "boxes");
  require_shape(scores, {n}, kNms, "scores");
  NmsOptions o;
  o.iou_threshold = iou_threshold;
  o.has_score_threshold = score_threshold.has_value();
  o.score_threshold = score_threshold.value_or(0.0);
  o.has_max_output = max_output.has_value();
  o.max_output = max_output.value_or(0);
  validate(o, kNms);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto bc = contiguous<T>(boxes), sc = contiguous<T>(scores);
    std::vector<int64_t> keep(static_cast<size_t>(n));
    int64_t count = 0;
    {
      ReleaseGil nogil;
      validate_boxes(bc.data(), n, kNms, "boxes");
      validate_scores(sc.data(), n, kNms, "scores");
      count = (naive ? nms_naive<T> : nms<T>)(keep.data(), bc.data(), sc.data(), n, o);
    }
    auto out = new_array<int64_t>({count});
    std::copy(keep.begin(), keep.begin() + count, out.mutable_data());
    return out;
  });
}

}  // namespace

void bind_detection(py::module_& ops) {
  ops.def("box_iou", &box_iou_py, py::arg("a"), py::arg("b"), py::arg("naive") = false,
          "IoU matrix (N, M) of corner boxes a (N, 4) and b (M, 4); degenerate boxes have "
          "area 0, an empty union gives 0, values lie in [0, 1].");
  ops.def("nms", &nms_py, py::arg("boxes"), py::arg("scores"), py::arg("iou_threshold") = 0.5,
          py::arg("score_threshold") = py::none(), py::arg("max_output") = py::none(),
          py::arg("naive") = false,
          "Greedy non-max suppression: kept indices (int64) by descending score (ties: lower "
          "index first); drops a box whose IoU with a kept box is > iou_threshold, and boxes "
          "with score <= score_threshold.");
}

const OpsRegistration detection_ops("detection", bind_detection);

}  // namespace bind
}  // namespace corenn
