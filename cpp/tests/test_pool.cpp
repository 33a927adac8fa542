#include <cmath>
#include <limits>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/pool.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

Pool2dShape make_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, int64_t stride,
                       int64_t pad, bool include_pad = true) {
  Pool2dShape s;
  s.batch = n, s.channels = c, s.height = h, s.width = w;
  s.kernel_h = s.kernel_w = k;
  s.stride_h = s.stride_w = stride;
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = pad;
  s.count_include_pad = include_pad;
  return s;
}

// Fast and naive walk each window in the same row-major order and sum in the
// same order, so they agree bit for bit, not just within a tolerance.
template <typename T>
void check_fast_matches_naive(const Pool2dShape& s, unsigned seed) {
  validate(s, "test");
  const size_t in = s.batch * s.channels * s.height * s.width;
  const size_t out = s.batch * s.channels * s.out_h() * s.out_w();
  auto x = random_vector<T>(in, seed), dy = random_vector<T>(out, seed + 1);
  std::vector<T> y1(out), y2(out), dx1(in, T(7)), dx2(in, T(-7));
  std::vector<int64_t> a1(out), a2(out);
  max_pool2d_forward(y1.data(), a1.data(), x.data(), s);
  max_pool2d_forward_naive(y2.data(), a2.data(), x.data(), s);
  CHECK(bitwise_equal(y1, y2));
  CHECK(a1 == a2);
  max_pool2d_backward(dx1.data(), dy.data(), a1.data(), s);
  max_pool2d_backward_naive(dx2.data(), dy.data(), a2.data(), s);
  CHECK(bitwise_equal(dx1, dx2));
  avg_pool2d_forward(y1.data(), x.data(), s);
  avg_pool2d_forward_naive(y2.data(), x.data(), s);
  CHECK(bitwise_equal(y1, y2));
  avg_pool2d_backward(dx1.data(), dy.data(), s);
  avg_pool2d_backward_naive(dx2.data(), dy.data(), s);
  CHECK(bitwise_equal(dx1, dx2));
}

}  // namespace

TEST(pool_fast_matches_naive) {
  unsigned seed = 10;
  for (int64_t k : {1, 2, 3})
    for (int64_t stride : {1, 2, 3})
      for (int64_t pad : {0, 1})
        for (bool include_pad : {true, false}) {
          if (2 * pad > k) continue;
          check_fast_matches_naive<float>(make_shape(2, 3, 7, 5, k, stride, pad, include_pad), ++seed);
          check_fast_matches_naive<double>(make_shape(1, 2, 9, 11, k, stride, pad, include_pad), ++seed);
        }
  // Rectangular kernel with padding on one axis only.
  Pool2dShape s = make_shape(2, 2, 6, 9, 1, 1, 0);
  s.kernel_h = 3, s.kernel_w = 2, s.stride_h = 2, s.pad_top = s.pad_bottom = 1;
  check_fast_matches_naive<double>(s, 99);
}

TEST(max_pool_2x2_fast_path_matches_naive) {
  // Even and odd planes (the last odd row/column is dropped), many planes so
  // the plane split runs, and a plane with ties and NaN.
  for (int64_t h : {2, 7, 32})
    for (int64_t w : {2, 9, 32}) check_fast_matches_naive<float>(make_shape(4, 33, h, w, 2, 2, 0), 5);
  const auto s = make_shape(1, 1, 2, 4, 2, 2, 0);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  // Window 0: all equal -> first cell. Window 1: NaN at its third cell.
  std::vector<float> x = {3, 3, 1, 2, 3, 3, nan, 0};
  std::vector<float> y1(2), y2(2);
  std::vector<int64_t> a1(2), a2(2);
  max_pool2d_forward(y1.data(), a1.data(), x.data(), s);
  max_pool2d_forward_naive(y2.data(), a2.data(), x.data(), s);
  CHECK(a1[0] == 0 && a2[0] == 0);
  CHECK(a1[1] == 6 && a2[1] == 6);
  CHECK(y1[0] == 3.0f && std::isnan(y1[1]) && std::isnan(y2[1]));
}

TEST(max_pool_backward_accumulates_overlapping_windows) {
  const auto s = make_shape(1, 1, 3, 3, 2, 1, 0);
  std::vector<double> x = {1, 2, 3, 4, 9, 5, 6, 7, 8}, y(4), dy = {1, 2, 3, 4}, dx(9, 5.0);
  std::vector<int64_t> a(4);
  max_pool2d_forward(y.data(), a.data(), x.data(), s);
  max_pool2d_backward(dx.data(), dy.data(), a.data(), s);
  for (int i = 0; i < 9; ++i) CHECK(dx[i] == (i == 4 ? 10.0 : 0.0));
}

TEST(avg_pool_divisor_with_and_without_padding) {
  // 2x2 plane of ones, 3x3 window, padding 1: 4 inside cells out of 9.
  auto s = make_shape(1, 1, 2, 2, 3, 1, 1, true);
  std::vector<double> x(4, 1.0), y(4);
  avg_pool2d_forward(y.data(), x.data(), s);
  CHECK_CLOSE(y[0], 4.0 / 9.0, 1e-15);
  s.count_include_pad = false;
  avg_pool2d_forward(y.data(), x.data(), s);
  CHECK_CLOSE(y[0], 1.0, 1e-15);
}

TEST(global_avg_and_zero_pad) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6}, y(2), dx(6);  // 2 planes of 1x3
  global_avg_pool2d_forward(y.data(), x.data(), 2, 3);
  CHECK_CLOSE(y[0], 2.0, 1e-7);
  CHECK_CLOSE(y[1], 5.0, 1e-7);
  std::vector<float> dy = {3, 6};
  global_avg_pool2d_backward(dx.data(), dy.data(), 2, 3);
  CHECK(dx[0] == 1.0f && dx[5] == 2.0f);
  // Pad the planes (1x3) by top 1, bottom 0, left 2, right 1 -> 2x6, then crop back.
  std::vector<float> p(2 * 2 * 6, -1.0f), back(6);
  zero_pad2d_forward(p.data(), x.data(), 2, 1, 3, 1, 0, 2, 1);
  const std::vector<float> first = {0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0};
  CHECK(std::vector<float>(p.begin(), p.begin() + 12) == first);
  zero_pad2d_backward(back.data(), p.data(), 2, 1, 3, 1, 0, 2, 1);
  CHECK(back == x);
}

TEST(pool_validate_rejects_bad_geometry) {
  CHECK_THROWS(validate(make_shape(1, 1, 4, 4, 3, 1, 2), "op"), ValueError);  // pad > k/2
  CHECK_THROWS(validate(make_shape(1, 1, 4, 4, 2, 0, 0), "op"), ValueError);  // stride 0
  CHECK_THROWS(validate(make_shape(1, 1, 4, 4, 3, 1, -1), "op"), ValueError);
  CHECK_THROWS(validate(make_shape(1, 1, 2, 2, 3, 1, 0), "op"), ValueError);  // window > input
  CHECK_THROWS(validate(make_shape(0, 1, 2, 2, 1, 1, 0), "op"), ValueError);
  validate(make_shape(1, 1, 2, 2, 3, 1, 1), "op");  // 3x3 on a 2x2 padded to 4x4: fine
  try {
    validate(make_shape(1, 1, 4, 4, 3, 1, 2), "max_pool2d_forward");
    CHECK(false);
  } catch (const ValueError& e) {
    CHECK(std::string(e.what()) == "max_pool2d_forward: padding 2 is more than half the kernel 3");
  }
}
