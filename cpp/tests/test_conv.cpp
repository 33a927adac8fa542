// conv2d / conv_transpose2d: fast kernels against their naive oracles (plain,
// grouped, depthwise, 1×1, batch above and below the thread count), parameter
// gradient accumulation, and geometry validation.
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/conv.hpp"
#include "parallel.hpp"

using namespace corenn;
using corenn_test::random_vector;

namespace {

template <typename T>
void check_conv_fast_vs_naive(const Conv2dShape& s, double tol) {
  validate(s, "test");
  const int64_t x_n = s.batch * s.in_channels * s.height * s.width;
  const int64_t w_n = s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
  const int64_t y_n = s.batch * s.out_channels * s.out_h() * s.out_w();
  auto x = random_vector<T>(x_n, 1), W = random_vector<T>(w_n, 2);
  auto b = random_vector<T>(s.out_channels, 3), dy = random_vector<T>(y_n, 4);
  std::vector<T> scratch(conv2d_scratch_size(s));
  std::vector<T> y1(y_n), y2(y_n);
  conv2d_forward(y1.data(), scratch.data(), x.data(), W.data(), b.data(), s);
  conv2d_forward_naive(y2.data(), x.data(), W.data(), b.data(), s);
  for (int64_t i = 0; i < y_n; ++i) CHECK_CLOSE(y1[i], y2[i], tol);
  // Parameter gradients start from a non-zero value: the kernels must add to it.
  std::vector<T> dx1(x_n), dx2(x_n), dW1(w_n, T(0.5)), dW2(w_n, T(0.5));
  std::vector<T> db1(s.out_channels, T(-1)), db2(s.out_channels, T(-1));
  conv2d_backward(dx1.data(), dW1.data(), db1.data(), scratch.data(), dy.data(), x.data(),
                  W.data(), s);
  conv2d_backward_naive(dx2.data(), dW2.data(), db2.data(), dy.data(), x.data(), W.data(), s);
  for (int64_t i = 0; i < x_n; ++i) CHECK_CLOSE(dx1[i], dx2[i], tol);
  for (int64_t i = 0; i < w_n; ++i) CHECK_CLOSE(dW1[i], dW2[i], tol);
  for (int64_t i = 0; i < s.out_channels; ++i) CHECK_CLOSE(db1[i], db2[i], tol);
}

Conv2dShape conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t k, int64_t stride,
                 int64_t pad, int64_t dil, int64_t groups) {
  Conv2dShape s;
  s.batch = n; s.in_channels = c; s.height = h; s.width = w; s.out_channels = o;
  s.kernel_h = k; s.kernel_w = k; s.stride_h = s.stride_w = stride;
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = pad;
  s.dilation_h = s.dilation_w = dil; s.groups = groups;
  return s;
}

}  // namespace

TEST(conv2d_fast_matches_naive) {
  for (int64_t n : {1, 5}) {
    check_conv_fast_vs_naive<double>(conv(n, 3, 9, 7, 4, 3, 1, 1, 1, 1), 1e-12);
    check_conv_fast_vs_naive<double>(conv(n, 4, 9, 7, 6, 3, 2, 2, 2, 2), 1e-12);  // grouped, dilated
    check_conv_fast_vs_naive<float>(conv(n, 3, 11, 8, 5, 5, 3, 0, 1, 1), 1e-4);
    auto asym = conv(n, 2, 6, 9, 3, 2, 1, 0, 1, 1);
    asym.pad_top = 2; asym.pad_right = 1; asym.kernel_w = 3;
    check_conv_fast_vs_naive<double>(asym, 1e-12);
  }
}

// Batches that split unevenly over the threads; column matrices of more than
// 2^20 elements in tiles of window rows ("same": the gathered input gradient;
// strided, dilated, asymmetric padding: col2im; widening 1 -> 6: col2im).
TEST(conv2d_larger_batches_and_row_tiles_match_naive) {
  check_conv_fast_vs_naive<double>(conv(19, 3, 9, 7, 4, 3, 1, 1, 1, 1), 1e-12);
  check_conv_fast_vs_naive<double>(conv(35, 4, 5, 6, 6, 3, 2, 1, 1, 2), 1e-12);
  check_conv_fast_vs_naive<float>(conv(19, 1, 8, 8, 6, 5, 1, 2, 1, 1), 1e-4);
  check_conv_fast_vs_naive<double>(conv(1, 4, 75, 80, 5, 7, 1, 3, 1, 1), 1e-12);
  auto asym = conv(1, 6, 160, 150, 4, 7, 2, 3, 1, 1);
  asym.pad_bottom = 2; asym.pad_right = 1; asym.kernel_w = 5; asym.dilation_w = 2;
  check_conv_fast_vs_naive<double>(asym, 1e-12);
}

TEST(conv2d_depthwise_fast_matches_naive) {
  for (int64_t n : {1, 4}) {
    check_conv_fast_vs_naive<double>(conv(n, 4, 8, 9, 4, 3, 1, 1, 1, 4), 1e-12);
    check_conv_fast_vs_naive<double>(conv(n, 3, 9, 7, 6, 3, 2, 1, 2, 3), 1e-12);  // multiplier 2
    check_conv_fast_vs_naive<float>(conv(n, 5, 7, 7, 5, 5, 3, 2, 1, 5), 1e-4);
    check_conv_fast_vs_naive<double>(conv(n, 3, 21, 30, 3, 3, 2, 1, 1, 3), 1e-12);  // rows > the sum lanes
  }
}

TEST(conv2d_pointwise_fast_matches_naive) {
  for (int64_t n : {1, 6}) {
    check_conv_fast_vs_naive<double>(conv(n, 6, 5, 7, 4, 1, 1, 0, 1, 1), 1e-12);
    check_conv_fast_vs_naive<double>(conv(n, 6, 5, 7, 4, 1, 1, 0, 1, 2), 1e-12);
    check_conv_fast_vs_naive<double>(conv(n, 6, 5, 7, 4, 1, 2, 1, 1, 1), 1e-12);  // strided 1×1
  }
}

TEST(conv2d_backward_accumulates_parameter_gradients) {
  for (int64_t groups : {1, 3}) {  // GEMM path and depthwise path
    const auto s = conv(5, 3, 6, 6, 3, 3, 1, 1, 1, groups);
    const int64_t x_n = 5 * 3 * 36, w_n = 3 * (3 / groups) * 9, y_n = 5 * 3 * 36;
    auto x = random_vector<double>(x_n, 5), W = random_vector<double>(w_n, 6);
    auto dy = random_vector<double>(y_n, 7);
    std::vector<double> scratch(conv2d_scratch_size(s)), dx(x_n), dW(w_n), db(3);
    conv2d_backward(dx.data(), dW.data(), db.data(), scratch.data(), dy.data(), x.data(), W.data(), s);
    auto dW_once = dW, db_once = db, dx_once = dx;
    conv2d_backward(dx.data(), dW.data(), db.data(), scratch.data(), dy.data(), x.data(), W.data(), s);
    for (int64_t i = 0; i < w_n; ++i) CHECK_CLOSE(dW[i], 2 * dW_once[i], 1e-12);
    for (int i = 0; i < 3; ++i) CHECK_CLOSE(db[i], 2 * db_once[i], 1e-12);
    for (int64_t i = 0; i < x_n; ++i) CHECK_CLOSE(dx[i], dx_once[i], 1e-12);  // written, not added
  }
}

TEST(conv_transpose2d_fast_matches_naive_and_accumulates) {
  for (int64_t n : {1, 5})
    for (int64_t stride : {1, 2, 3})
      for (int64_t k : {1, 3}) {
        ConvTranspose2dShape s;
        s.batch = n; s.in_channels = 3; s.height = 4; s.width = 5; s.out_channels = 2;
        s.kernel_h = k; s.kernel_w = k; s.stride_h = s.stride_w = stride;
        s.pad_h = k == 3 ? 1 : 0; s.pad_w = 0; s.output_pad_h = stride - 1; s.output_pad_w = 0;
        validate(s, "test");
        const int64_t x_n = n * 3 * 20, w_n = 3 * 2 * k * k, y_n = n * 2 * s.out_h() * s.out_w();
        auto x = random_vector<double>(x_n, 8), W = random_vector<double>(w_n, 9);
        auto b = random_vector<double>(2, 10), dy = random_vector<double>(y_n, 11);
        std::vector<double> scratch(conv_transpose2d_scratch_size(s)), y1(y_n), y2(y_n);
        conv_transpose2d_forward(y1.data(), scratch.data(), x.data(), W.data(), b.data(), s);
        conv_transpose2d_forward_naive(y2.data(), x.data(), W.data(), b.data(), s);
        for (int64_t i = 0; i < y_n; ++i) CHECK_CLOSE(y1[i], y2[i], 1e-12);
        std::vector<double> dx1(x_n), dx2(x_n), dW1(w_n, 0.25), dW2(w_n, 0.25), db1(2, 1.0), db2(2, 1.0);
        conv_transpose2d_backward(dx1.data(), dW1.data(), db1.data(), scratch.data(), dy.data(),
                                  x.data(), W.data(), s);
        conv_transpose2d_backward_naive(dx2.data(), dW2.data(), db2.data(), dy.data(), x.data(),
                                        W.data(), s);
        for (int64_t i = 0; i < x_n; ++i) CHECK_CLOSE(dx1[i], dx2[i], 1e-12);
        for (int64_t i = 0; i < w_n; ++i) CHECK_CLOSE(dW1[i], dW2[i], 1e-12);
        for (int i = 0; i < 2; ++i) CHECK_CLOSE(db1[i], db2[i], 1e-12);
      }
}

TEST(conv2d_forward_is_bitwise_independent_of_thread_count) {
  const auto s = conv(6, 4, 10, 9, 8, 3, 1, 1, 1, 1);
  const int64_t x_n = 6 * 4 * 90, w_n = 8 * 4 * 9, y_n = 6 * 8 * 90;
  auto x = random_vector<float>(x_n, 12), W = random_vector<float>(w_n, 13);
  std::vector<std::vector<float>> ys;
  const int before = detail::omp_max_threads();
  for (int threads : {1, 2}) {
    detail::omp_set_threads(threads);
    std::vector<float> scratch(conv2d_scratch_size(s)), y(y_n);
    conv2d_forward(y.data(), scratch.data(), x.data(), W.data(), static_cast<const float*>(nullptr), s);
    ys.push_back(y);
  }
  detail::omp_set_threads(before);
  CHECK(corenn_test::bitwise_equal(ys[0], ys[1]));
}

TEST(conv_validate_rejects_bad_geometry) {
  auto s = conv(1, 4, 3, 3, 2, 5, 1, 0, 1, 1);
  CHECK_THROWS(validate(s, "t"), ValueError);  // kernel larger than the input
  s = conv(1, 4, 3, 3, 2, 3, 0, 0, 1, 1);
  CHECK_THROWS(validate(s, "t"), ValueError);  // stride 0
  s = conv(1, 4, 3, 3, 3, 1, 1, 0, 1, 3);
  CHECK_THROWS(validate(s, "t"), ValueError);  // groups do not divide
  s = conv(1, 4, 3, 3, 2, 1, 1, -1, 1, 1);
  CHECK_THROWS(validate(s, "t"), ValueError);  // negative padding
  ConvTranspose2dShape t;
  t.stride_h = t.stride_w = 2; t.output_pad_h = 2;
  CHECK_THROWS(validate(t, "t"), ValueError);
}
