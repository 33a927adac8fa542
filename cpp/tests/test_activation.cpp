#include <cmath>
#include <random>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/activation.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

const Activation kAll[] = {Activation::linear, Activation::sigmoid,    Activation::tanh,
                           Activation::relu,   Activation::leaky_relu, Activation::softmax};

}  // namespace

TEST(activation_names_round_trip) {
  for (Activation k : kAll) CHECK(parse_activation(activation_name(k)) == k);
  CHECK_THROWS(parse_activation("relux"), ValueError);
  CHECK_THROWS(parse_activation(""), ValueError);  // "" means linear only at the Python level
}

// 300 x 257 = 77k elements: above the grain, so the fast path may split.
TEST(activation_fast_matches_naive) {
  const int64_t rows = 300, cols = 257;
  auto x = random_vector<float>(rows * cols, 1, 3.0), dy = random_vector<float>(rows * cols, 2);
  for (Activation k : kAll) {
    std::vector<float> y1(x.size()), y2(x.size()), dx1(x.size()), dx2(x.size());
    activation_forward(y1.data(), x.data(), rows, cols, k, 0.1f);
    activation_forward_naive(y2.data(), x.data(), rows, cols, k, 0.1f);
    for (size_t i = 0; i < y1.size(); ++i) CHECK_CLOSE(y1[i], y2[i], 1e-6);
    activation_backward(dx1.data(), dy.data(), x.data(), y1.data(), rows, cols, k, 0.1f);
    activation_backward_naive(dx2.data(), dy.data(), x.data(), y1.data(), rows, cols, k, 0.1f);
    for (size_t i = 0; i < dx1.size(); ++i) CHECK_CLOSE(dx1[i], dx2[i], 1e-5);
  }
}

TEST(activation_forward_and_backward_in_place) {
  const int64_t rows = 5, cols = 13;
  auto x = random_vector<double>(rows * cols, 3), dy = random_vector<double>(rows * cols, 4);
  for (Activation k : kAll) {
    for (bool naive : {false, true}) {
      auto fwd = naive ? activation_forward_naive<double> : activation_forward<double>;
      auto bwd = naive ? activation_backward_naive<double> : activation_backward<double>;
      std::vector<double> y(x.size()), dx(x.size());
      fwd(y.data(), x.data(), rows, cols, k, 0.2);
      bwd(dx.data(), dy.data(), x.data(), y.data(), rows, cols, k, 0.2);
      // y == x: the buffer holds x on entry and y on exit.
      std::vector<double> inplace = x;
      fwd(inplace.data(), inplace.data(), rows, cols, k, 0.2);
      for (size_t i = 0; i < y.size(); ++i) CHECK(inplace[i] == y[i]);
      // dx == dy
      std::vector<double> g = dy;
      bwd(g.data(), g.data(), x.data(), y.data(), rows, cols, k, 0.2);
      for (size_t i = 0; i < dx.size(); ++i) CHECK(g[i] == dx[i]);
    }
  }
}

TEST(sigmoid_and_softmax_saturate_without_overflow) {
  const float x[4] = {-1000.f, -88.f, 88.f, 1000.f};
  float y[4];
  activation_forward(y, x, 1, 4, Activation::sigmoid, 0.f);
  CHECK(y[0] == 0.f && y[3] == 1.f);
  for (float v : y) CHECK(std::isfinite(v) && v >= 0.f && v <= 1.f);
  activation_forward(y, x, 1, 4, Activation::softmax, 0.f);
  CHECK(y[3] == 1.f && y[0] == 0.f);
  for (float v : y) CHECK(std::isfinite(v));
}
