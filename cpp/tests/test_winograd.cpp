// Winograd F(2×2, 3×3) and F(4×4, 3×3) (kernels/winograd.cpp) against the plain-loop direct
// convolution (conv2d_forward_naive / conv2d_backward_naive run in double on
// the same float inputs), forward and both gradients, through the explicit
// entry points and through conv2d_forward's dispatch under each setting.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/conv.hpp"
#include "corenn/kernels/winograd.hpp"

using namespace corenn;
using corenn_test::random_vector;

using corenn_test::relative_error;

namespace {

std::vector<double> widen(const std::vector<float>& v) { return {v.begin(), v.end()}; }

void check_shape(const Conv2dShape& s, int tile, unsigned seed) {
  const int64_t nx = s.batch * s.in_channels * s.height * s.width, nw = s.out_channels * s.in_channels * 9;
  const int64_t ny = s.batch * s.out_channels * s.out_h() * s.out_w();
  const auto x = random_vector<float>(nx, seed), W = random_vector<float>(nw, seed + 1, 0.2);
  const auto b = random_vector<float>(s.out_channels, seed + 2), dy = random_vector<float>(ny, seed + 3);
  std::vector<double> y64(ny), dx64(nx), dW64(nw, 0.0), db64(s.out_channels, 0.0);
  const auto x64 = widen(x), W64 = widen(W), b64 = widen(b), dy64 = widen(dy);
  conv2d_forward_naive<double>(y64.data(), x64.data(), W64.data(), b64.data(), s);
  conv2d_backward_naive<double>(dx64.data(), dW64.data(), db64.data(), dy64.data(), x64.data(), W64.data(), s);

  std::vector<float> scratch(winograd_scratch_size(s)), y(ny), dx(nx), dW(nw, 0.0f), db(s.out_channels, 0.0f);
  winograd_conv2d_forward(y.data(), scratch.data(), x.data(), W.data(), b.data(), s, tile);
  winograd_conv2d_backward(dx.data(), dW.data(), db.data(), scratch.data(), dy.data(), x.data(), W.data(), s,
                           tile);
  const double tol = tile == 2 ? 1e-5 : 1e-4;  // WINOGRAD_F2, WINOGRAD_F4
  CHECK(relative_error(y, y64) < tol);
  CHECK(relative_error(dx, dx64) < tol);
  CHECK(relative_error(dW, dW64) < tol);
  CHECK(relative_error(db, db64) < 1e-4);  // a plain sum of dy, with cancellation
}

Conv2dShape shape(int64_t n, int64_t c, int64_t o, int64_t h, int64_t w, int64_t pt, int64_t pb, int64_t pl,
                  int64_t pr) {
  Conv2dShape s;
  s.batch = n, s.in_channels = c, s.out_channels = o, s.height = h, s.width = w;
  s.kernel_h = s.kernel_w = 3;
  s.pad_top = pt, s.pad_bottom = pb, s.pad_left = pl, s.pad_right = pr;
  return s;
}

}  // namespace

TEST(winograd_matches_naive_direct_convolution) {
  unsigned seed = 10;
  for (int tile : {2, 4})
    for (const auto& s : {shape(1, 1, 1, 3, 3, 0, 0, 0, 0), shape(3, 4, 5, 7, 9, 1, 1, 1, 1),
                          shape(2, 3, 6, 6, 5, 2, 2, 2, 2), shape(3, 17, 3, 9, 8, 0, 2, 1, 0),
                          shape(5, 24, 24, 20, 20, 1, 1, 1, 1), shape(1, 8, 8, 13, 11, 1, 1, 1, 1)})
      check_shape(s, tile, seed += 10);
}

TEST(winograd_rejects_other_tile_sizes) {
  const Conv2dShape s = shape(1, 1, 1, 3, 3, 0, 0, 0, 0);
  std::vector<float> scratch(winograd_scratch_size(s)), x(9, 1.0f), W(9, 1.0f), y(1);
  bool threw = false;
  try {
    winograd_conv2d_forward(y.data(), scratch.data(), x.data(), W.data(), nullptr, s, 3);
  } catch (const ValueError& e) {
    threw = std::string(e.what()).find("winograd_conv2d_forward: tile must be 2 or 4, got 3") == 0;
  }
  CHECK(threw);
}

// The forward in two halves (filters transformed once, kept by the inference
// engine) gives the one-call forward's results bit for bit, batch 1 and more.
TEST(winograd_transformed_filters_give_the_forward_bit_for_bit) {
  for (int64_t n : {1, 3}) {
    const Conv2dShape s = shape(n, 16, 24, 8, 10, 1, 1, 1, 1);
    const int64_t ny = n * 24 * 8 * 10;
    const auto x = random_vector<float>(n * 16 * 80, 5), W = random_vector<float>(24 * 16 * 9, 6, 0.2);
    const auto b = random_vector<float>(24, 7);
    ConvEpilogue<float> ep;
    ep.bias = b.data();
    ep.relu = true;
    std::vector<float> scratch(winograd_scratch_size(s)), direct(ny), y(ny);
    for (int tile : {2, 4}) {
      std::vector<float> U(winograd_filter_size(s, tile));
      CHECK(static_cast<int64_t>(U.size()) == (tile + 2) * (tile + 2) * 24 * 16);
      winograd_transform_filters(U.data(), W.data(), s, tile);
      winograd_conv2d_forward(direct.data(), scratch.data(), x.data(), W.data(), ep, s, tile);
      winograd_conv2d_forward_transformed(y.data(), scratch.data(), x.data(), U.data(), ep, s, tile);
      CHECK(corenn_test::bitwise_equal(y, direct));
    }
  }
}

TEST(winograd_dispatch_follows_the_setting) {
  const Conv2dShape s = shape(4, 16, 16, 8, 8, 1, 1, 1, 1);
  const int64_t ny = s.batch * 16 * 64;
  const auto x = random_vector<float>(s.batch * 16 * 64, 3), W = random_vector<float>(16 * 16 * 9, 4, 0.2);
  std::vector<float> scratch(conv2d_scratch_size(s)), direct(ny), y(ny);
  for (int tile : {2, 4}) {
    const std::string name = "winograd" + std::to_string(tile);
    winograd_conv2d_forward(direct.data(), scratch.data(), x.data(), W.data(), nullptr, s, tile);
    set_conv_algorithm(name);
    CHECK(std::string(get_conv_algorithm()) == name);
    CHECK(winograd_tile(s) == tile);
    conv2d_forward<float>(y.data(), scratch.data(), x.data(), W.data(), nullptr, s);
    CHECK(corenn_test::bitwise_equal(y, direct));
  }
  set_conv_algorithm("winograd");
  CHECK(winograd_tile(s) == 2 || winograd_tile(s) == 4);
  set_conv_algorithm("gemm");
  CHECK(winograd_tile(s) == 0);
  conv2d_forward<float>(y.data(), scratch.data(), x.data(), W.data(), nullptr, s);
  CHECK(!corenn_test::bitwise_equal(y, direct));
  set_conv_algorithm("auto");
  bool threw = false;
  try {
    set_conv_algorithm("fft");
  } catch (const ValueError& e) {
    threw = std::string(e.what()).find("set_conv_algorithm: algorithm must be") == 0;
  }
  CHECK(threw);
  CHECK(std::string(get_conv_algorithm()) == "auto");
}
