#include <cmath>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/upsample.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

Upsample2dShape make_shape(int64_t n, int64_t c, int64_t h, int64_t w, int64_t sh, int64_t sw,
                           Interpolation interpolation) {
  Upsample2dShape s;
  s.batch = n, s.channels = c, s.height = h, s.width = w;
  s.scale_h = sh, s.scale_w = sw;
  s.interpolation = interpolation;
  return s;
}

// Nearest copies and sums in the same order in both kernels: bit for bit.
// Bilinear's fast forward blends rows as lerps (one multiply each), the naive
// one sums the formula's four products: equal within float rounding.
template <typename T>
void check_fast_matches_naive(const Upsample2dShape& s, unsigned seed) {
  validate(s, "test");
  const size_t in = s.batch * s.channels * s.height * s.width;
  const size_t out = s.batch * s.channels * s.out_h() * s.out_w();
  auto x = random_vector<T>(in, seed), dy = random_vector<T>(out, seed + 1);
  std::vector<T> y1(out, T(7)), y2(out, T(-7)), dx1(in, T(7)), dx2(in, T(-7));
  upsample2d_forward(y1.data(), x.data(), s);
  upsample2d_forward_naive(y2.data(), x.data(), s);
  upsample2d_backward(dx1.data(), dy.data(), s);
  upsample2d_backward_naive(dx2.data(), dy.data(), s);
  if (s.interpolation == Interpolation::nearest) {
    CHECK(bitwise_equal(y1, y2));
    CHECK(bitwise_equal(dx1, dx2));
    return;
  }
  const double tol = sizeof(T) == 4 ? 1e-5 : 1e-13;
  for (size_t i = 0; i < out; ++i) CHECK_CLOSE(y1[i], y2[i], tol);
  for (size_t i = 0; i < in; ++i) CHECK_CLOSE(dx1[i], dx2[i], tol);
}

}  // namespace

TEST(upsample_fast_matches_naive) {
  unsigned seed = 40;
  for (Interpolation mode : {Interpolation::nearest, Interpolation::bilinear})
    for (int64_t sh : {1, 2, 3})
      for (int64_t sw : {1, 2, 4}) {
        check_fast_matches_naive<float>(make_shape(2, 3, 5, 4, sh, sw, mode), ++seed);
        check_fast_matches_naive<double>(make_shape(1, 2, 1, 3, sh, sw, mode), ++seed);
      }
}

TEST(upsample_hand_values) {
  // PyTorch: F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).
  const std::vector<double> x{1, 2, 3, 4};
  const std::vector<double> want{1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5,
                                 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0};
  std::vector<double> y(16);
  upsample2d_forward(y.data(), x.data(), make_shape(1, 1, 2, 2, 2, 2, Interpolation::bilinear));
  for (size_t i = 0; i < 16; ++i) CHECK_CLOSE(y[i], want[i], 1e-15);
  // Nearest with (1, 2): each pixel twice along the row.
  std::vector<double> z(8), dx(4);
  const Upsample2dShape s = make_shape(1, 1, 2, 2, 1, 2, Interpolation::nearest);
  upsample2d_forward(z.data(), x.data(), s);
  CHECK((z == std::vector<double>{1, 1, 2, 2, 3, 3, 4, 4}));
  // Its adjoint sums the copies.
  upsample2d_backward(dx.data(), z.data(), s);
  CHECK((dx == std::vector<double>{2, 4, 6, 8}));
}

TEST(upsample_rejects_bad_geometry) {
  CHECK_THROWS(validate(make_shape(1, 1, 2, 2, 0, 2, Interpolation::nearest), "t"), ValueError);
  CHECK_THROWS(validate(make_shape(1, 0, 2, 2, 2, 2, Interpolation::nearest), "t"), ValueError);
  CHECK_THROWS(parse_interpolation("bicubic", "t"), ValueError);
  CHECK(parse_interpolation("bilinear", "t") == Interpolation::bilinear);
}
