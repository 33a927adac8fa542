// conv2d / conv_transpose2d: fast kernels against their naive oracles (plain,
// grouped, depthwise, 1×1, batch above and below the thread count), parameter
// gradient accumulation, and geometry validation.
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/conv.hpp"
#include "corenn/kernels/padding.hpp"
#include "backend/parallel.hpp"

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

// Stride-1 depthwise layers on zero-padded planes: rows wider than a block of
// 16 output columns and not a multiple of it, output channels in register
// blocks of 6 plus a rest (multiplier 8), dilation, padding 0 and 2.
TEST(conv2d_depthwise_stride1_matches_naive) {
  for (int64_t n : {1, 5}) {
    check_conv_fast_vs_naive<double>(conv(n, 4, 28, 28, 32, 5, 1, 2, 1, 4), 1e-12);  // multiplier 8
    check_conv_fast_vs_naive<double>(conv(n, 3, 13, 37, 9, 3, 1, 0, 2, 3), 1e-12);
    check_conv_fast_vs_naive<double>(conv(n, 2, 9, 20, 12, 3, 1, 1, 1, 2), 1e-12);  // multiplier 6
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
        s.pad_top = k == 3 ? 1 : 0; s.pad_bottom = k == 3 ? 2 : 0;  // asymmetric crop
        s.pad_left = 0; s.pad_right = k == 3 ? 1 : 0;
        s.output_pad_h = stride - 1; s.output_pad_w = 0;
        s.dilation_h = stride % 2 + 1; s.dilation_w = k == 3 ? 2 : 1;
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

// Keras/TensorFlow's "same": ⌈in / stride⌉ windows, the odd padded cell at the
// bottom/right, checked against worked cases and, over a grid, against its
// defining properties.
TEST(same_padding_is_tensorflow_rule) {
  const SamePadding a = same_padding(11, 4, 2);  // 6 windows over 1 + 11 + 2 cells
  CHECK(a.out == 6 && a.before == 1 && a.after == 2);
  const SamePadding b = same_padding(5, 2, 1);  // kernel 2, stride 1: one cell below
  CHECK(b.out == 5 && b.before == 0 && b.after == 1);
  const SamePadding c = same_padding(8, 1, 3);  // kernel under the stride: no padding
  CHECK(c.out == 3 && c.before == 0 && c.after == 0);
  const SamePadding d = same_padding(6, 3, 1, 2);  // dilation 2: a 5-cell span
  CHECK(d.out == 6 && d.before == 2 && d.after == 2);
  for (int64_t in = 1; in <= 9; ++in)
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t s = 1; s <= 3; ++s)
        for (int64_t dil = 1; dil <= 2; ++dil) {
          const SamePadding p = same_padding(in, k, s, dil);
          const int64_t span = (k - 1) * dil + 1;
          CHECK(p.out == (in + s - 1) / s);
          CHECK(p.after - p.before == 0 || p.after - p.before == 1);
          // The conv2d output formula over the padded axis gives exactly out windows,
          // and no padding is wasted: the last window ends at the last padded cell
          // whenever there is padding.
          CHECK((in + p.before + p.after - span) / s + 1 == p.out);
          if (p.before + p.after > 0) CHECK((p.out - 1) * s + span == in + p.before + p.after);
        }
}

// Conv2DTranspose "same" with out = in·stride: sizes, the crop and that the
// transposed geometry is the adjoint of the forward "same" conv2d of that size
// (checked numerically: <conv(u), v> = <u, conv_transpose(v)>).
TEST(same_transpose_padding_is_the_adjoint_of_same_conv2d) {
  const SameTransposePadding t = same_transpose_padding(4, 8, 3, 2);  // issue 12's example
  CHECK(t.adjoint && t.before == 0 && t.after == 1 && t.output_padding == 0);
  const SameTransposePadding e = same_transpose_padding(5, 5, 2, 1);  // kernel 2, stride 1
  CHECK(e.adjoint && e.before == 0 && e.after == 1 && e.output_padding == 0);
  CHECK(!same_transpose_padding(3, 4, 2, 2).adjoint);  // ⌈4 / 2⌉ = 2 windows, not 3
  for (int64_t in = 1; in <= 6; ++in)
    for (int64_t k = 1; k <= 5; ++k)
      for (int64_t st = 1; st <= 3; ++st)
        for (int64_t dil = 1; dil <= 2; ++dil) {
          const int64_t out = in * st;
          const SameTransposePadding p = same_transpose_padding(in, out, k, st, dil);
          CHECK(p.adjoint && p.output_padding >= 0 && p.output_padding < st);
          ConvTranspose2dShape t2;
          t2.in_channels = 2, t2.height = in, t2.width = 3, t2.out_channels = 1;
          t2.kernel_h = k, t2.kernel_w = 1, t2.stride_h = st, t2.dilation_h = dil;
          t2.pad_top = p.before, t2.pad_bottom = p.after, t2.output_pad_h = p.output_padding;
          validate(t2, "test");
          CHECK(t2.out_h() == out);
          Conv2dShape c = conv(1, 1, out, 3, 2, 1, 1, 0, 1, 1);
          c.kernel_h = k, c.stride_h = st, c.dilation_h = dil;
          const SamePadding f = same_padding(out, k, st, dil);
          c.pad_top = f.before, c.pad_bottom = f.after;
          validate(c, "test");
          CHECK(c.out_h() == in);
          auto u = random_vector<double>(out * 3, 30), v = random_vector<double>(2 * in * 3, 31);
          auto W = random_vector<double>(2 * k, 32);  // conv (2, 1, k, 1) = transposed (2, 1, k, 1)
          std::vector<double> cu(2 * in * 3), tv(out * 3);
          conv2d_forward_naive(cu.data(), u.data(), W.data(), static_cast<const double*>(nullptr), c);
          conv_transpose2d_forward_naive(tv.data(), v.data(), W.data(), static_cast<const double*>(nullptr), t2);
          double lhs = 0, rhs = 0;
          for (size_t i = 0; i < cu.size(); ++i) lhs += cu[i] * v[i];
          for (size_t i = 0; i < tv.size(); ++i) rhs += u[i] * tv[i];
          CHECK_CLOSE(lhs, rhs, 1e-12);
        }
}
