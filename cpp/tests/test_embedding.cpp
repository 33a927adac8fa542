#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/embedding.hpp"
#include "corenn/runtime.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

// The gather copies and the column-split scatter-add sums each dW element in
// the order of the ids, as the naive loops do: bit for bit, at any thread count.
template <typename T>
void check_fast_matches_naive(int64_t n, int64_t V, int64_t D, unsigned seed) {
  std::vector<int64_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = (i * 7 + seed) % V;  // repeats when n > V
  const auto W = random_vector<T>(static_cast<size_t>(V * D), seed);
  const auto dy = random_vector<T>(static_cast<size_t>(n * D), seed + 1);
  std::vector<T> y0(static_cast<size_t>(n * D), T(7)), dW0(static_cast<size_t>(V * D), T(0.5));
  embedding_forward_naive(y0.data(), ids.data(), W.data(), n, D);
  embedding_backward_naive(dW0.data(), dy.data(), ids.data(), n, D);
  const int before = get_num_threads();
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    std::vector<T> y(y0.size(), T(-7)), dW(dW0.size(), T(0.5));  // dW accumulates onto 0.5
    embedding_forward(y.data(), ids.data(), W.data(), n, D);
    embedding_backward(dW.data(), dy.data(), ids.data(), n, D);
    CHECK(bitwise_equal(y, y0));
    CHECK(bitwise_equal(dW, dW0));
  }
  set_num_threads(before);
}

}  // namespace

TEST(embedding_fast_matches_naive) {
  check_fast_matches_naive<float>(1, 1, 1, 1);
  check_fast_matches_naive<float>(40, 9, 5, 2);
  check_fast_matches_naive<double>(20000, 13, 70, 3);  // enough work to split the columns
  check_fast_matches_naive<float>(3, 1000, 256, 4);
}

TEST(embedding_hand_values) {
  const std::vector<double> W{0, 1, 2, 3, 4, 5};  // (3, 2)
  const std::vector<int64_t> ids{2, 0, 2};
  std::vector<double> y(6), dW(6, 0.0);
  embedding_forward(y.data(), ids.data(), W.data(), 3, 2);
  CHECK((y == std::vector<double>{4, 5, 0, 1, 4, 5}));
  const std::vector<double> dy{1, 2, 3, 4, 5, 6};
  embedding_backward(dW.data(), dy.data(), ids.data(), 3, 2);
  CHECK((dW == std::vector<double>{3, 4, 0, 0, 6, 8}));  // row 2: two positions summed
}

TEST(embedding_ids_are_whole_numbers_in_range) {
  std::vector<int64_t> ids(3);
  const std::vector<double> good{0, 4, 2};
  embedding_ids(ids.data(), good.data(), 3, 5, "t");
  CHECK((ids == std::vector<int64_t>{0, 4, 2}));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double bad : {0.5, 5.0, -1.0, nan, std::numeric_limits<double>::infinity()}) {
    const std::vector<double> x{1, bad, 2};
    CHECK_THROWS(embedding_ids(ids.data(), x.data(), 3, 5, "t"), ValueError);
  }
  const std::vector<float> f{1.0f, 2.5f};
  std::string message;
  try {
    embedding_ids(ids.data(), f.data(), 2, 5, "layer 'e' (embedding)");
  } catch (const ValueError& e) {
    message = e.what();
  }
  CHECK(message == "layer 'e' (embedding): ids must be whole numbers in [0, 5) (input_dim 5), got 2.5 at index 1");
  const std::vector<int64_t> i64{3, -2};
  CHECK_THROWS(embedding_ids(ids.data(), i64.data(), 2, 5, "t"), ValueError);
}
