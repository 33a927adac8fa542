// Augmentation and normalisation kernels: fast vs naive bitwise at several
// thread counts, the draw rules, and the preprocessing layers in the engine.
#include <cmath>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/augment.hpp"
#include "corenn/kernels/normalization.hpp"
#include "corenn/model.hpp"
#include "corenn/random.hpp"
#include "corenn/runtime.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

constexpr int64_t N = 33, C = 3, H = 11, W = 13;
constexpr size_t kSize = N * C * H * W;

template <typename T>
void augment_fast_matches_naive() {
  const int before = get_num_threads();
  const auto x = random_vector<T>(kSize, 7);
  std::vector<T> y0(kSize), dx0(kSize), z0(kSize), dz0(kSize), s0(N * C), c0(kSize);
  std::vector<uint8_t> f0(N);
  std::vector<int64_t> o0(2 * N);
  random_flip_forward_naive(y0.data(), f0.data(), x.data(), FlipMode::horizontal_and_vertical, 9, N, C, H, W);
  random_flip_backward_naive(dx0.data(), x.data(), f0.data(), N, C, H, W);
  random_crop_forward_naive(z0.data(), o0.data(), x.data(), 2, 5, 9, N, C, H, W);
  random_crop_backward_naive(dz0.data(), x.data(), o0.data(), 2, 5, N, C, H, W);
  color_shift_forward_naive(c0.data(), s0.data(), x.data(), T(0.5), 9, N, C, H * W);
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<T> y(kSize), dx(kSize), z(kSize), dz(kSize), s(N * C), c(kSize);
    std::vector<uint8_t> f(N);
    std::vector<int64_t> o(2 * N);
    random_flip_forward(y.data(), f.data(), x.data(), FlipMode::horizontal_and_vertical, 9, N, C, H, W);
    random_flip_backward(dx.data(), x.data(), f.data(), N, C, H, W);
    random_crop_forward(z.data(), o.data(), x.data(), 2, 5, 9, N, C, H, W);
    random_crop_backward(dz.data(), x.data(), o.data(), 2, 5, N, C, H, W);
    color_shift_forward(c.data(), s.data(), x.data(), T(0.5), 9, N, C, H * W);
    CHECK(f == f0 && bitwise_equal(y, y0) && bitwise_equal(dx, dx0));
    CHECK(o == o0 && bitwise_equal(z, z0) && bitwise_equal(dz, dz0));
    CHECK(bitwise_equal(s, s0) && bitwise_equal(c, c0));
  }
  set_num_threads(before);
  // The draw rules of augment.hpp.
  for (int64_t n = 0; n < N; ++n) {
    CHECK(f0[n] == (random_bits(9, static_cast<uint64_t>(n)) & 3));
    CHECK(o0[2 * n] == static_cast<int64_t>(uniform01(9, 2 * n) * 5));
    CHECK(o0[2 * n + 1] == static_cast<int64_t>(uniform01(9, 2 * n + 1) * 11));
    CHECK(o0[2 * n] >= 0 && o0[2 * n] <= 4 && o0[2 * n + 1] >= 0 && o0[2 * n + 1] <= 10);
  }
  for (size_t i = 0; i < s0.size(); ++i) CHECK(std::fabs(static_cast<double>(s0[i])) <= 0.5);
}

template <typename T>
void normalize_fast_matches_naive() {
  const int before = get_num_threads();
  const auto x = random_vector<T>(kSize, 3);
  const std::vector<T> mean{T(0.5), T(-1), T(2)}, var{T(4), T(0), T(0.25)};
  std::vector<T> y0(kSize), dx0(kSize);
  normalize_forward_naive(y0.data(), x.data(), mean.data(), var.data(), N, C, H * W);
  normalize_backward_naive(dx0.data(), x.data(), var.data(), N, C, H * W);
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<T> y(kSize), dx(kSize);
    normalize_forward(y.data(), x.data(), mean.data(), var.data(), N, C, H * W);
    normalize_backward(dx.data(), x.data(), var.data(), N, C, H * W);
    CHECK(bitwise_equal(y, y0) && bitwise_equal(dx, dx0));
  }
  set_num_threads(before);
  // Channel 1 has variance 0: centred only; channel 2: divided by 0.5.
  CHECK(y0[H * W] == x[H * W] + T(1));
  CHECK(y0[2 * H * W] == (x[2 * H * W] - T(2)) / T(0.5));
}

}  // namespace

TEST(augment_fast_matches_naive_for_any_thread_count) {
  augment_fast_matches_naive<float>();
  augment_fast_matches_naive<double>();
}

TEST(normalize_fast_matches_naive_for_any_thread_count) {
  normalize_fast_matches_naive<float>();
  normalize_fast_matches_naive<double>();
}

TEST(flip_mode_names_round_trip) {
  for (FlipMode m : {FlipMode::horizontal, FlipMode::vertical, FlipMode::horizontal_and_vertical})
    CHECK(parse_flip_mode(flip_mode_name(m)) == m);
  CHECK_THROWS(parse_flip_mode("both"), ValueError);
}

TEST(crop_with_zero_padding_is_the_identity) {
  const auto x = random_vector<double>(kSize, 1);
  std::vector<double> y(kSize), dx(kSize);
  std::vector<int64_t> o(2 * N);
  random_crop_forward(y.data(), o.data(), x.data(), 0, 0, 5, N, C, H, W);
  random_crop_backward(dx.data(), x.data(), o.data(), 0, 0, N, C, H, W);
  CHECK(y == x && dx == x);
}

TEST(preprocessing_layers_in_the_engine) {
  seed(1);
  Model m(DType::float64);
  m.add(LayerSpec("normalization").set("mean", {1.0, -2.0}).set("variance", {4.0, 0.0}));
  m.add(LayerSpec("random_flip").set("mode", "horizontal"));
  m.add(LayerSpec("random_crop").set("pads", {1, 1, 2, 2}));
  m.add(LayerSpec("color_shift").set("delta", 0.3));
  m.build({2, 3, 4});
  CHECK(m.count_params() == 0);
  // The statistics are state, returned by get_weights.
  const auto w = m.get_weights(0);
  CHECK(w.size() == 2 && w[0].data_as<double>()[1] == -2.0 && w[1].data_as<double>()[0] == 4.0);
  // At inference the augmentation layers pass x through: predict only normalises.
  Tensor x({2, 2, 3, 4}, DType::float64);
  for (int64_t i = 0; i < x.size(); ++i) x.data_as<double>()[i] = static_cast<double>(i);
  Tensor y = m.predict(x);
  for (int64_t i = 0; i < x.size(); ++i) {
    const int64_t c = (i / 12) % 2;
    const double want = c == 0 ? (static_cast<double>(i) - 1.0) / 2.0 : static_cast<double>(i) + 2.0;
    CHECK(y.data_as<double>()[i] == want);
  }
}

TEST(preprocessing_layer_validation) {
  Model a;
  CHECK_THROWS(a.add(LayerSpec("random_flip").set("mode", "sideways")), ValueError);
  CHECK_THROWS(a.add(LayerSpec("random_crop").set("pads", {1, 2, 1, 1})), ValueError);
  CHECK_THROWS(a.add(LayerSpec("color_shift").set("delta", -1)), ValueError);
  CHECK_THROWS(a.add(LayerSpec("normalization").set("mean", {0.0}).set("variance", {-1.0})), ValueError);
  Model b;
  b.add(LayerSpec("random_flip"));
  CHECK_THROWS(b.build({12}), ShapeError);
}
