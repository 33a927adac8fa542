#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/activation.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

TEST(activation_registry_names_round_trip) {
  for (const ActivationEntry& e : activation_registry()) {
    CHECK(parse_activation(e.name) == e.kind);
    CHECK(parse_activation(activation_name(e.kind)) == e.kind);
  }
  CHECK(parse_activation("swish") == Activation::silu);
  CHECK(std::string(activation_name(Activation::silu)) == "silu");
  CHECK(find_activation("elu").default_alpha == 1.0);
  CHECK(find_activation("leaky_relu").default_alpha == 0.01);
  CHECK_THROWS(parse_activation("relux"), ValueError);
  CHECK_THROWS(parse_activation(""), ValueError);  // "" means linear only at the Python level
  try {
    parse_activation("relux", "layer 'd' (dense): activation");
    CHECK(false);
  } catch (const ValueError& e) {
    const std::string what = e.what();
    CHECK(what.rfind("layer 'd' (dense): activation must be one of 'linear', 'sigmoid'", 0) == 0);
    CHECK(what.find("'hard_sigmoid', 'abs', got 'relux'") != std::string::npos);
  }
}

TEST(activation_axes_pick_the_feature_axis) {
  auto same = [](ActivationAxes a, int64_t o, int64_t c, int64_t i) {
    return a.outer == o && a.channels == c && a.inner == i;
  };
  CHECK(same(activation_axes({7}), 1, 7, 1));
  CHECK(same(activation_axes({4, 7}), 4, 7, 1));
  CHECK(same(activation_axes({2, 3, 7}), 6, 7, 1));           // (N, T, F): the last axis
  CHECK(same(activation_axes({2, 5, 3, 4}), 2, 5, 12));       // (N, C, H, W): the channels
  CHECK(same(activation_axes({2, 5, 3, 4, 6}), 2, 5, 72));
}

// 300 x 257 = 77k elements and (4, 33, 20, 30): above the grain, so the fast
// path may split; inner = 600 is 9 full blocks of positions and a partial one.
TEST(activation_fast_matches_naive) {
  struct Dims { int64_t outer, channels, inner; };
  for (Dims d : {Dims{300, 257, 1}, Dims{4, 33, 600}, Dims{3, 5, 7}}) {
    const int64_t n = d.outer * d.channels * d.inner;
    auto x = random_vector<float>(static_cast<size_t>(n), 1, 3.0), dy = random_vector<float>(static_cast<size_t>(n), 2);
    for (const ActivationEntry& e : activation_registry()) {
      std::vector<float> y1(x.size()), y2(x.size()), dx1(x.size()), dx2(x.size());
      activation_forward(y1.data(), x.data(), d.outer, d.channels, d.inner, e.kind, 0.1f);
      activation_forward_naive(y2.data(), x.data(), d.outer, d.channels, d.inner, e.kind, 0.1f);
      for (size_t i = 0; i < y1.size(); ++i) CHECK_CLOSE(y1[i], y2[i], 1e-6);
      activation_backward(dx1.data(), dy.data(), x.data(), y1.data(), d.outer, d.channels, d.inner, e.kind, 0.1f);
      activation_backward_naive(dx2.data(), dy.data(), x.data(), y1.data(), d.outer, d.channels, d.inner, e.kind,
                                0.1f);
      for (size_t i = 0; i < dx1.size(); ++i) CHECK_CLOSE(dx1[i], dx2[i], 1e-5);
    }
  }
}

TEST(activation_forward_and_backward_in_place) {
  const int64_t outer = 2, channels = 5, inner = 13;
  const size_t n = outer * channels * inner;
  auto x = random_vector<double>(n, 3, 3.0), dy = random_vector<double>(n, 4);
  for (const ActivationEntry& e : activation_registry()) {
    for (bool naive : {false, true}) {
      auto fwd = naive ? activation_forward_naive<double> : activation_forward<double>;
      auto bwd = naive ? activation_backward_naive<double> : activation_backward<double>;
      std::vector<double> y(x.size()), dx(x.size());
      fwd(y.data(), x.data(), outer, channels, inner, e.kind, 0.2);
      bwd(dx.data(), dy.data(), x.data(), y.data(), outer, channels, inner, e.kind, 0.2);
      // y == x: the buffer holds x on entry and y on exit.
      std::vector<double> inplace = x;
      fwd(inplace.data(), inplace.data(), outer, channels, inner, e.kind, 0.2);
      CHECK(bitwise_equal(inplace, y));
      // dx == dy
      std::vector<double> g = dy;
      bwd(g.data(), g.data(), x.data(), y.data(), outer, channels, inner, e.kind, 0.2);
      CHECK(bitwise_equal(g, dx));
    }
  }
}

TEST(softmax_normalises_over_the_strided_channels) {
  const int64_t outer = 2, channels = 4, inner = 70;  // one full block and a partial one
  auto x = random_vector<double>(static_cast<size_t>(outer * channels * inner), 5, 2.0);
  std::vector<double> y(x.size());
  activation_forward(y.data(), x.data(), outer, channels, inner, Activation::softmax, 0.0);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      double sum = 0;
      for (int64_t c = 0; c < channels; ++c) sum += y[(o * channels + c) * inner + i];
      CHECK_CLOSE(sum, 1.0, 1e-14);
    }
  }
}

TEST(sigmoid_and_softmax_saturate_without_overflow) {
  const float x[4] = {-1000.f, -88.f, 88.f, 1000.f};
  float y[4];
  activation_forward(y, x, 1, 4, 1, Activation::sigmoid, 0.f);
  CHECK(y[0] == 0.f && y[3] == 1.f);
  for (float v : y) CHECK(std::isfinite(v) && v >= 0.f && v <= 1.f);
  activation_forward(y, x, 1, 4, 1, Activation::softmax, 0.f);
  CHECK(y[3] == 1.f && y[0] == 0.f);
  for (float v : y) CHECK(std::isfinite(v));
}

// NaN in, NaN out, for every kind and both paths; infinities give the limits.
TEST(activation_nan_propagates_and_infinities_give_limits) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const double x[3] = {nan, inf, -inf};
  const double ones[3] = {1, 1, 1};
  for (const ActivationEntry& e : activation_registry()) {
    if (e.kind == Activation::softmax) continue;
    for (bool naive : {false, true}) {
      double y[3], dx[3];
      (naive ? activation_forward_naive<double> : activation_forward<double>)(y, x, 1, 3, 1, e.kind, 0.5);
      (naive ? activation_backward_naive<double> : activation_backward<double>)(dx, ones, x, y, 1, 3, 1, e.kind,
                                                                              0.5);
      CHECK(std::isnan(y[0]));
      CHECK(!std::isnan(y[1]) && !std::isnan(y[2]));
      CHECK(!std::isnan(dx[1]) && !std::isnan(dx[2]));
      if (e.kind != Activation::linear) CHECK(std::isnan(dx[0]));
    }
  }
  const double row[6] = {nan, 1.0, inf, 1.0, -inf, 1.0};  // three rows of two
  for (bool naive : {false, true}) {
    double y[6];
    (naive ? activation_forward_naive<double> : activation_forward<double>)(y, row, 3, 2, 1, Activation::softmax,
                                                                          0.0);
    CHECK(std::isnan(y[0]) && std::isnan(y[1]) && std::isnan(y[2]) && std::isnan(y[3]));
    CHECK(y[4] == 0.0 && y[5] == 1.0);
  }
}
