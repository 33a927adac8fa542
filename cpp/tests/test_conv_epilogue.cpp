// conv2d_forward_fused (conv.hpp): the epilogue y = relu?(conv + bias +
// residual) applied in the output write, on each route (im2col + GEMM by
// images and by rows of one image, a pointwise 1×1, Winograd, depthwise),
// against the plain-loop convolution followed by the epilogue in double; and
// batch_norm_fold against batch norm applied after the convolution.
#include <algorithm>
#include <cmath>
#include <vector>

#include "check.hpp"
#include "corenn/kernels/batch_norm.hpp"
#include "corenn/kernels/conv.hpp"
#include "corenn/kernels/winograd.hpp"

using namespace corenn;
using corenn_test::random_vector;
using corenn_test::relative_error;

namespace {

// The naive convolution (no bias), then + bias + residual and ReLU, in double.
std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& W, const float* bias,
                              const float* residual, bool relu, const Conv2dShape& s) {
  const int64_t P = s.out_h() * s.out_w(), ny = s.batch * s.out_channels * P;
  std::vector<double> x64(x.begin(), x.end()), W64(W.begin(), W.end()), y(ny);
  conv2d_forward_naive<double>(y.data(), x64.data(), W64.data(), nullptr, s);
  for (int64_t i = 0; i < ny; ++i) {
    double v = y[i] + (bias ? bias[(i / P) % s.out_channels] : 0.0) + (residual ? residual[i] : 0.0);
    y[i] = relu ? std::max(v, 0.0) : v;
  }
  return y;
}

void check_epilogue(const Conv2dShape& s, unsigned seed) {
  const int64_t cin_g = s.in_channels / s.groups;
  const int64_t nx = s.batch * s.in_channels * s.height * s.width;
  const int64_t nw = s.out_channels * cin_g * s.kernel_h * s.kernel_w;
  const int64_t ny = s.batch * s.out_channels * s.out_h() * s.out_w();
  const auto x = random_vector<float>(nx, seed), W = random_vector<float>(nw, seed + 1, 0.3);
  const auto b = random_vector<float>(s.out_channels, seed + 2), r = random_vector<float>(ny, seed + 3);
  std::vector<float> scratch(conv2d_scratch_size(s)), y(ny);
  for (const char* algorithm : {"gemm", "winograd"}) {
    set_conv_algorithm(algorithm);
    for (int variant = 0; variant < 4; ++variant) {
      ConvEpilogue<float> e;
      e.bias = variant & 1 ? b.data() : nullptr;
      e.residual = variant & 2 ? r.data() : nullptr;
      e.relu = variant != 1;
      conv2d_forward_fused<float>(y.data(), scratch.data(), x.data(), W.data(), e, s);
      CHECK(relative_error(y, reference(x, W, e.bias, e.residual, e.relu, s)) < 1e-5);
    }
  }
  set_conv_algorithm("auto");
}

Conv2dShape shape(int64_t n, int64_t c, int64_t o, int64_t h, int64_t w, int64_t k, int64_t pad, int64_t groups) {
  Conv2dShape s;
  s.batch = n, s.in_channels = c, s.out_channels = o, s.height = h, s.width = w;
  s.kernel_h = s.kernel_w = k;
  s.pad_top = s.pad_bottom = s.pad_left = s.pad_right = pad;
  s.groups = groups;
  return s;
}

}  // namespace

TEST(conv_epilogue_matches_the_unfused_operations) {
  unsigned seed = 100;
  for (const auto& s : {shape(3, 4, 6, 7, 9, 3, 1, 1),      // GEMM by images / Winograd
                        shape(1, 8, 16, 40, 40, 3, 1, 1),   // one image: its rows split across threads
                        shape(2, 6, 5, 5, 5, 1, 0, 1),      // pointwise: the image is its own column matrix
                        shape(2, 6, 6, 6, 6, 3, 1, 6),      // depthwise
                        shape(2, 4, 6, 6, 6, 3, 0, 2)})     // groups
    check_epilogue(s, seed += 10);
}

TEST(conv_epilogue_relu_passes_nan) {
  // A NaN input must come out NaN (activation.hpp's ReLU), not washed to 0.
  const Conv2dShape s = shape(1, 1, 1, 3, 3, 1, 0, 1);  // 1×1: y = −x
  std::vector<float> x(9, 1.0f), W(1, -1.0f), y(9), scratch(conv2d_scratch_size(s));
  x[4] = std::nanf("");
  ConvEpilogue<float> e;
  e.relu = true;
  conv2d_forward_fused<float>(y.data(), scratch.data(), x.data(), W.data(), e, s);
  CHECK(std::isnan(y[4]));
  CHECK(y[0] == 0.0f);
}

TEST(batch_norm_fold_equals_batch_norm_after_the_convolution) {
  const Conv2dShape s = shape(2, 3, 5, 6, 6, 3, 1, 1);
  const int64_t C = s.out_channels, K = 27, P = 36, ny = 2 * C * P;
  const auto x = random_vector<double>(2 * 3 * 36, 1), W = random_vector<double>(C * K, 2, 0.3);
  const auto b = random_vector<double>(C, 3), mean = random_vector<double>(C, 4);
  auto var = random_vector<double>(C, 5);
  for (double& v : var) v = 0.2 + v * v;
  const auto gamma = random_vector<double>(C, 6), beta = random_vector<double>(C, 7);
  std::vector<double> z(ny), want(ny), saved(2 * C), Wf(C * K), bf(C), got(ny), scratch(conv2d_scratch_size(s));
  conv2d_forward_naive<double>(z.data(), x.data(), W.data(), b.data(), s);
  batch_norm_inference_forward_naive<double>(want.data(), saved.data(), saved.data() + C, z.data(), mean.data(),
                                             var.data(), gamma.data(), beta.data(), 1e-3, 2, C, P);
  batch_norm_fold<double>(Wf.data(), bf.data(), W.data(), b.data(), K, mean.data(), var.data(), gamma.data(),
                          beta.data(), 1e-3, C);
  conv2d_forward<double>(got.data(), scratch.data(), x.data(), Wf.data(), bf.data(), s);
  double err = 0, scale = 0;
  for (int64_t i = 0; i < ny; ++i) {
    err = std::max(err, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  CHECK(err <= 1e-12 * scale);
  // Without γ, β or a bias: γ = 1, β = 0, b = 0.
  batch_norm_fold<double>(Wf.data(), bf.data(), W.data(), nullptr, K, mean.data(), var.data(), nullptr, nullptr,
                          1e-3, C);
  for (int64_t c = 0; c < C; ++c) {
    const double sc = 1.0 / std::sqrt(var[c] + 1e-3);
    CHECK(std::abs(Wf[c * K] - sc * W[c * K]) <= 1e-15 * std::abs(sc * W[c * K]));
    CHECK(std::abs(bf[c] + mean[c] * sc) <= 1e-14 * std::max(1.0, std::abs(mean[c] * sc)));
  }
}
