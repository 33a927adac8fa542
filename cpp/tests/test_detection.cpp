#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/detection.hpp"
#include "corenn/runtime.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;

namespace {

// n corner boxes in [0, 20)², 0.5–6 a side, with a degenerate one (x2 < x1) first.
template <typename T>
std::vector<T> random_boxes(int64_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> pos(0, 16), size(0.5, 6);
  std::vector<T> b(static_cast<size_t>(4 * n));
  for (int64_t i = 0; i < n; ++i) {
    const double x = pos(gen), y = pos(gen);
    b[4 * i] = T(x), b[4 * i + 1] = T(y), b[4 * i + 2] = T(x + size(gen)), b[4 * i + 3] = T(y + size(gen));
  }
  if (n > 0) std::swap(b[0], b[2]);
  return b;
}

template <typename T>
void iou_fast_equals_naive() {
  const int before = get_num_threads();
  const int64_t n = 301, m = 257;
  const auto a = random_boxes<T>(n, 1), b = random_boxes<T>(m, 2);
  std::vector<T> ref(static_cast<size_t>(n * m));
  box_iou_naive(ref.data(), a.data(), b.data(), n, m);
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<T> got(ref.size());
    box_iou(got.data(), a.data(), b.data(), n, m);
    CHECK(bitwise_equal(got, ref));
  }
  set_num_threads(before);
  for (T v : ref) CHECK(v >= T(0) && v <= T(1));
  CHECK(ref[0] == T(0));  // the degenerate box overlaps nothing
}

template <typename T>
void nms_fast_equals_naive() {
  const int64_t n = 500;
  const auto boxes = random_boxes<T>(n, 3);
  std::mt19937 gen(4);
  std::vector<T> scores(static_cast<size_t>(n));
  for (auto& s : scores) s = T(gen() % 7) / T(7);  // many ties
  for (double threshold : {0.0, 0.3, 0.7}) {
    NmsOptions o;
    o.iou_threshold = threshold;
    std::vector<int64_t> fast(static_cast<size_t>(n)), naive(static_cast<size_t>(n));
    const int64_t kf = nms(fast.data(), boxes.data(), scores.data(), n, o);
    const int64_t kn = nms_naive(naive.data(), boxes.data(), scores.data(), n, o);
    CHECK(kf == kn && kf > 1);
    fast.resize(kf), naive.resize(kn);
    CHECK(fast == naive);
  }
}

}  // namespace

TEST(detection_course_iou) {
  // Course 4, week 3: iou((2,1,4,3), (1,2,3,4)) = 1/7.
  const double a[4] = {2, 1, 4, 3}, b[4] = {1, 2, 3, 4};
  double out = -1;
  box_iou(&out, a, b, 1, 1);
  CHECK_CLOSE(out, 1.0 / 7.0, 1e-15);
  const double p[8] = {1, 1, 1, 1, 1, 1, 1, 1};  // two points: empty union, IoU 0
  double pp[4];
  box_iou_naive(pp, p, p, 2, 2);
  for (double v : pp) CHECK(v == 0);
}

TEST(detection_iou_fast_equals_naive_f32) { iou_fast_equals_naive<float>(); }
TEST(detection_iou_fast_equals_naive_f64) { iou_fast_equals_naive<double>(); }
TEST(detection_nms_fast_equals_naive_f32) { nms_fast_equals_naive<float>(); }
TEST(detection_nms_fast_equals_naive_f64) { nms_fast_equals_naive<double>(); }

TEST(detection_nms_ties_and_limits) {
  // Boxes 0 and 2 identical with equal scores: the lower index is kept.
  const double boxes[12] = {0, 0, 2, 2, 5, 5, 6, 6, 0, 0, 2, 2};
  const double scores[3] = {0.5, 0.5, 0.5};
  int64_t keep[3];
  NmsOptions o;
  CHECK(nms(keep, boxes, scores, 3, o) == 2 && keep[0] == 0 && keep[1] == 1);
  o.has_max_output = true, o.max_output = 1;
  CHECK(nms(keep, boxes, scores, 3, o) == 1 && keep[0] == 0);
  o.has_max_output = false, o.has_score_threshold = true, o.score_threshold = 0.5;
  CHECK(nms(keep, boxes, scores, 3, o) == 0);  // score must exceed the threshold
}

TEST(detection_validation) {
  NmsOptions o;
  o.iou_threshold = -0.1;
  CHECK_THROWS(validate(o, "nms"), ValueError);
  o.iou_threshold = std::nan("");
  CHECK_THROWS(validate(o, "nms"), ValueError);
  o.iou_threshold = 0.5, o.has_max_output = true, o.max_output = -1;
  CHECK_THROWS(validate(o, "nms"), ValueError);
  const float bad[4] = {0, 0, std::numeric_limits<float>::infinity(), 1};
  CHECK_THROWS(validate_boxes(bad, 1, "box_iou", "a"), ValueError);
  const float nan_score = std::nanf("");
  CHECK_THROWS(validate_scores(&nan_score, 1, "nms", "scores"), ValueError);
}
