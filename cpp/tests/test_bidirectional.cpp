// The bidirectional plumbing (kernels/bidirectional.cpp) against the
// definitions written out element by element (tests/reference/
// sequence_wrappers.py's merge_forward / merge_backward): reversal in time and
// the four merges with their gradients, on sizes past the parallel grain.
// Copies, sums and products of the same two values: bit for bit.
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "corenn/kernels/bidirectional.hpp"

using namespace corenn;
using corenn_test::random_vector;

namespace {

template <typename T>
void check_reverse() {
  const int64_t N = 3, S = 5, W = 4000;  // 15 rows of 4000: several chunks
  const auto x = random_vector<T>(N * S * W, 1);
  std::vector<T> y(N * S * W), back(N * S * W);
  reverse_steps(y.data(), x.data(), N, S, W);
  bool ok = true;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t t = 0; t < S; ++t)
      for (int64_t j = 0; j < W; ++j) ok = ok && y[(n * S + S - 1 - t) * W + j] == x[(n * S + t) * W + j];
  CHECK(ok);
  reverse_steps(back.data(), y.data(), N, S, W);  // its own inverse
  CHECK(back == x);
}

template <typename T>
void check_merge(DirectionMerge mode) {
  const int64_t rows = 9000, wa = 5, wb = mode == DirectionMerge::concat ? 3 : 5;
  const int64_t wy = mode == DirectionMerge::concat ? wa + wb : wa;
  const auto a = random_vector<T>(rows * wa, 2), b = random_vector<T>(rows * wb, 3);
  const auto dy = random_vector<T>(rows * wy, 4);
  std::vector<T> y(rows * wy), da(rows * wa), db(rows * wb);
  merge_directions_forward(y.data(), a.data(), b.data(), rows, wa, wb, mode);
  merge_directions_backward(da.data(), db.data(), dy.data(), a.data(), b.data(), rows, wa, wb, mode);
  bool ok = true;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < wy; ++j) {
      T want;
      if (mode == DirectionMerge::concat) want = j < wa ? a[r * wa + j] : b[r * wb + j - wa];
      else if (mode == DirectionMerge::sum) want = a[r * wa + j] + b[r * wb + j];
      else if (mode == DirectionMerge::mul) want = a[r * wa + j] * b[r * wb + j];
      else want = (a[r * wa + j] + b[r * wb + j]) * T(0.5);
      ok = ok && y[r * wy + j] == want;
    }
    for (int64_t j = 0; j < wa; ++j) {
      const T g = dy[r * wy + j];
      const T want_a = mode == DirectionMerge::mul ? g * b[r * wb + j] : mode == DirectionMerge::ave ? g * T(0.5) : g;
      ok = ok && da[r * wa + j] == want_a;
    }
    for (int64_t j = 0; j < wb; ++j) {
      const T want_b = mode == DirectionMerge::concat ? dy[r * wy + wa + j]
                       : mode == DirectionMerge::mul ? dy[r * wy + j] * a[r * wa + j]
                       : mode == DirectionMerge::ave ? dy[r * wy + j] * T(0.5)
                                                     : dy[r * wy + j];
      ok = ok && db[r * wb + j] == want_b;
    }
  }
  CHECK(ok);
}

}  // namespace

TEST(bidirectional_reverse_steps) {
  check_reverse<float>();
  check_reverse<double>();
}

TEST(bidirectional_reverse_steps_of_a_step_mask) {
  // The recurrent layers reverse their (batch, steps) mask with go_backwards.
  const std::vector<uint8_t> mask = {1, 1, 0, 0, 1, 1, 1, 0};  // 2 sequences of 4 steps
  std::vector<uint8_t> reversed(mask.size());
  reverse_steps(reversed.data(), mask.data(), 2, 4, 1);
  CHECK(reversed == std::vector<uint8_t>({0, 0, 1, 1, 0, 1, 1, 1}));
}

TEST(bidirectional_merges_and_their_gradients) {
  for (DirectionMerge mode : {DirectionMerge::concat, DirectionMerge::sum, DirectionMerge::mul, DirectionMerge::ave}) {
    check_merge<float>(mode);
    check_merge<double>(mode);
  }
}
