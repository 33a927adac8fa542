// Boxes for object detection (course 4, week 3), corners (x1, y1, x2, y2).
//   area(b)    = max(0, x2 − x1) · max(0, y2 − y1): a degenerate box (x2 < x1 or
//                y2 < y1) has area 0, where torchvision's box_area would go negative
//   inter(a, b) = max(0, min(a.x2, b.x2) − max(a.x1, b.x1)) · (the same along y)
//   iou(a, b)  = inter / (area(a) + area(b) − inter), 0 when that union is 0,
//                and at most 1 (rounding of the union can otherwise give 1 + ulp).
//                So IoU is always in [0, 1]: never NaN, never negative.
//   nms        greedy non-max suppression: candidates in descending score order
//              (equal scores: lower index first); a candidate is dropped when its
//              IoU with an already kept box is > iou_threshold, else kept.
//              Boxes with score <= score_threshold are never candidates, and at
//              most max_output boxes are kept (ONNX NonMaxSuppression's rules).
#pragma once

#include <cstdint>

namespace corenn {

// ValueError "op: arg must be finite ..." when a coordinate is NaN or ±inf
// (an infinite box has an undefined area: inf − inf).
template <typename T>
void validate_boxes(const T* boxes, int64_t n, const char* op, const char* arg);
// ValueError "op: arg must not contain NaN ..." (±inf scores order fine).
template <typename T>
void validate_scores(const T* scores, int64_t n, const char* op, const char* arg);

// iou: (n, m) written; a: (n, 4), b: (m, 4).
template <typename T>
void box_iou(T* iou, const T* a, const T* b, int64_t n, int64_t m);
template <typename T>
void box_iou_naive(T* iou, const T* a, const T* b, int64_t n, int64_t m);

struct NmsOptions {
  double iou_threshold = 0.5;    // >= 0; suppress when IoU > iou_threshold
  bool has_score_threshold = false;
  double score_threshold = 0.0;  // candidates need score > score_threshold
  bool has_max_output = false;
  int64_t max_output = 0;        // >= 0: keep at most this many boxes
};

// ValueError naming the option: NaN or negative iou_threshold, NaN
// score_threshold, negative max_output.
void validate(const NmsOptions& o, const char* op);

// keep: capacity n, gets the kept indices in selection order; returns their
// count. boxes: (n, 4); scores: (n,), no NaN (validated by the caller).
template <typename T>
int64_t nms(int64_t* keep, const T* boxes, const T* scores, int64_t n, const NmsOptions& o);
template <typename T>
int64_t nms_naive(int64_t* keep, const T* boxes, const T* scores, int64_t n, const NmsOptions& o);

}  // namespace corenn
