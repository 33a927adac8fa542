#include "corenn/kernels/detection.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {


// Kept boxes compared per block in the fast NMS: the block's loop has no early
// exit, so it vectorises; the exit test runs once per block.
constexpr int64_t kNmsBlock = 64;

template <typename T>
inline T side(T lo, T hi) {
  const T d = hi - lo;
  return d > T(0) ? d : T(0);
}

template <typename T>
inline T area_of(const T* box) {
  return side(box[0], box[2]) * side(box[1], box[3]);
}

// IoU of two boxes given their corners and areas. The union is never negative
// (inter <= min(area_a, area_b) holds after rounding, as min/max and the
// subtraction round monotonically), so only a zero union needs a guard; the
// cap at 1 removes the ulp that rounding of area_a + area_b can take off the union.
template <typename T>
inline T iou_of(T ax1, T ay1, T ax2, T ay2, T a_area, T bx1, T by1, T bx2, T by2, T b_area) {
  const T w = side(std::max(ax1, bx1), std::min(ax2, bx2));
  const T h = side(std::max(ay1, by1), std::min(ay2, by2));
  const T inter = w * h;
  const T uni = a_area + b_area - inter;
  const T r = inter / (uni > T(0) ? uni : T(1));
  return r < T(1) ? r : T(1);
}

// Boxes as five columns (structure of arrays): the inner loops read each
// column with unit stride, which is what lets them vectorise.
template <typename T>
struct BoxColumns {
  std::vector<T> x1, y1, x2, y2, area;
  void reserve(int64_t n) {
    for (auto* c : {&x1, &y1, &x2, &y2, &area}) c->reserve(static_cast<size_t>(n));
  }
  void push(const T* box) {
    x1.push_back(box[0]);
    y1.push_back(box[1]);
    x2.push_back(box[2]);
    y2.push_back(box[3]);
    area.push_back(area_of(box));
  }
};

void check_threshold(double v, const char* op, const char* name, bool non_negative) {
  if (std::isnan(v) || (non_negative && v < 0))
    throw ValueError(std::string(op) + ": " + name + " must be " +
                     (non_negative ? "a number >= 0" : "a number (not NaN)") + ", got " +
                     std::to_string(v));
}

}  // namespace

template <typename T>
void validate_boxes(const T* boxes, int64_t n, const char* op, const char* arg) {
  for (int64_t i = 0; i < 4 * n; ++i)
    if (!std::isfinite(boxes[i]))
      throw ValueError(std::string(op) + ": " + arg + " must be finite (no NaN or inf), got " +
                       std::to_string(boxes[i]) + " in box " + std::to_string(i / 4));
}

template <typename T>
void validate_scores(const T* scores, int64_t n, const char* op, const char* arg) {
  for (int64_t i = 0; i < n; ++i)
    if (std::isnan(scores[i]))
      throw ValueError(std::string(op) + ": " + arg + " must not contain NaN, got NaN at index " +
                       std::to_string(i));
}

void validate(const NmsOptions& o, const char* op) {
  check_threshold(o.iou_threshold, op, "iou_threshold", true);
  if (o.has_score_threshold) check_threshold(o.score_threshold, op, "score_threshold", false);
  if (o.has_max_output && o.max_output < 0)
    throw ValueError(std::string(op) + ": max_output must be >= 0 (or None for no limit), got " +
                     std::to_string(o.max_output));
}

template <typename T>
void box_iou(T* iou, const T* a, const T* b, int64_t n, int64_t m) {
  // iou: (n, m), a: (n, 4), b: (m, 4)
  BoxColumns<T> bc;
  bc.reserve(m);
  for (int64_t j = 0; j < m; ++j) bc.push(b + 4 * j);
  const int64_t grain = detail::grain_for(m);  // an IoU pair: a few min/max, a product and a divide
  detail::parallel_for(0, n, grain, [&](int64_t lo, int64_t hi, int) {
    const T *bx1 = bc.x1.data(), *by1 = bc.y1.data(), *bx2 = bc.x2.data(), *by2 = bc.y2.data();
    const T* bar = bc.area.data();
    for (int64_t i = lo; i < hi; ++i) {
      const T* box = a + 4 * i;
      const T ax1 = box[0], ay1 = box[1], ax2 = box[2], ay2 = box[3], aa = area_of(box);
      T* row = iou + i * m;
      for (int64_t j = 0; j < m; ++j)
        row[j] = iou_of(ax1, ay1, ax2, ay2, aa, bx1[j], by1[j], bx2[j], by2[j], bar[j]);
    }
  });
}

template <typename T>
void box_iou_naive(T* iou, const T* a, const T* b, int64_t n, int64_t m) {
  // iou: (n, m), a: (n, 4), b: (m, 4)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j) {
      const T* p = a + 4 * i;
      const T* q = b + 4 * j;
      iou[i * m + j] = iou_of(p[0], p[1], p[2], p[3], area_of(p), q[0], q[1], q[2], q[3], area_of(q));
    }
}

template <typename T>
int64_t nms(int64_t* keep, const T* boxes, const T* scores, int64_t n, const NmsOptions& o) {
  // keep: (<= n,), boxes: (n, 4), scores: (n,)
  const int64_t limit = o.has_max_output ? std::min(n, o.max_output) : n;
  std::vector<int64_t> order;
  order.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    if (!o.has_score_threshold || scores[i] > T(o.score_threshold)) order.push_back(i);
  // Stable: equal scores keep ascending index order, so the lower index goes first.
  std::stable_sort(order.begin(), order.end(),
                   [scores](int64_t i, int64_t j) { return scores[i] > scores[j]; });
  const T threshold = T(o.iou_threshold);
  BoxColumns<T> kept;
  kept.reserve(limit);
  int64_t count = 0;
  for (int64_t idx : order) {
    if (count == limit) break;
    const T* box = boxes + 4 * idx;
    const T bx1 = box[0], by1 = box[1], bx2 = box[2], by2 = box[3], ba = area_of(box);
    const T *kx1 = kept.x1.data(), *ky1 = kept.y1.data(), *kx2 = kept.x2.data(),
            *ky2 = kept.y2.data(), *ka = kept.area.data();
    bool suppressed = false;
    for (int64_t k0 = 0; k0 < count && !suppressed; k0 += kNmsBlock) {
      const int64_t k1 = std::min(count, k0 + kNmsBlock);
      int hit = 0;
      for (int64_t k = k0; k < k1; ++k)
        hit |= iou_of(kx1[k], ky1[k], kx2[k], ky2[k], ka[k], bx1, by1, bx2, by2, ba) > threshold;
      suppressed = hit != 0;
    }
    if (suppressed) continue;
    keep[count++] = idx;
    kept.push(box);
  }
  return count;
}

template <typename T>
int64_t nms_naive(int64_t* keep, const T* boxes, const T* scores, int64_t n, const NmsOptions& o) {
  // keep: (<= n,), boxes: (n, 4), scores: (n,)
  // Selection by repeated arg-max (strict >, so the lowest index wins a tie),
  // each candidate compared with every kept box: no sort, no columns, no blocks.
  const int64_t limit = o.has_max_output ? std::min(n, o.max_output) : n;
  std::vector<bool> seen(static_cast<size_t>(n), false);
  int64_t count = 0;
  while (count < limit) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; ++i) {
      if (seen[i] || (o.has_score_threshold && !(scores[i] > T(o.score_threshold)))) continue;
      if (best < 0 || scores[i] > scores[best]) best = i;
    }
    if (best < 0) break;
    seen[best] = true;
    const T* q = boxes + 4 * best;
    bool suppressed = false;
    for (int64_t k = 0; k < count; ++k) {
      const T* p = boxes + 4 * keep[k];
      if (iou_of(p[0], p[1], p[2], p[3], area_of(p), q[0], q[1], q[2], q[3], area_of(q)) >
          T(o.iou_threshold))
        suppressed = true;
    }
    if (!suppressed) keep[count++] = best;
  }
  return count;
}

#define CORENN_DETECTION_INSTANTIATE(T)                                                   \
  template void validate_boxes<T>(const T*, int64_t, const char*, const char*);          \
  template void validate_scores<T>(const T*, int64_t, const char*, const char*);         \
  template void box_iou<T>(T*, const T*, const T*, int64_t, int64_t);                    \
  template void box_iou_naive<T>(T*, const T*, const T*, int64_t, int64_t);              \
  template int64_t nms<T>(int64_t*, const T*, const T*, int64_t, const NmsOptions&);     \
  template int64_t nms_naive<T>(int64_t*, const T*, const T*, int64_t, const NmsOptions&);
CORENN_DETECTION_INSTANTIATE(float)
CORENN_DETECTION_INSTANTIATE(double)
#undef CORENN_DETECTION_INSTANTIATE

}  // namespace corenn
