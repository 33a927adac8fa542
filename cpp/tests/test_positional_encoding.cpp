// Sinusoidal positional encoding: fast vs naive (odd depth, enough positions
// for several thread chunks), hand values and validation.
#include <cmath>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/positional_encoding.hpp"

using namespace corenn;

TEST(positional_encoding_fast_matches_naive) {
  for (int64_t depth : {1, 6, 33}) {
    const int64_t T = 3000;
    std::vector<double> fast(T * depth), naive(T * depth);
    positional_encoding<double>(fast.data(), T, depth, 10000.0);
    positional_encoding_naive<double>(naive.data(), T, depth, 10000.0);
    // Angles up to 3000 rad: the two forms of ω differ by a few ulp, times t.
    for (size_t i = 0; i < fast.size(); ++i) CHECK_CLOSE(fast[i], naive[i], 1e-11);
    std::vector<float> single(T * depth);
    positional_encoding<float>(single.data(), T, depth, 10000.0);
    for (size_t i = 0; i < fast.size(); ++i) CHECK_CLOSE(single[i], naive[i], 1e-6);
  }
}

TEST(positional_encoding_hand_values) {
  double pe[2 * 4];
  positional_encoding<double>(pe, 2, 4, 100.0);
  const double expected[8] = {0, 1, 0, 1, std::sin(1.0), std::cos(1.0), std::sin(0.1), std::cos(0.1)};
  for (int i = 0; i < 8; ++i) CHECK_CLOSE(pe[i], expected[i], 1e-15);
}

TEST(positional_encoding_validation) {
  CHECK_THROWS(validate_positional_encoding(0.0, "op"), ValueError);
  CHECK_THROWS(validate_positional_encoding(std::nan(""), "op"), ValueError);
  CHECK_THROWS(validate_positional_encoding(INFINITY, "op"), ValueError);
  validate_positional_encoding(10000.0, "op");
}
