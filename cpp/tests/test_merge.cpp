// The merge kernels (Add, Subtract, Concatenate) against their naive siblings and
// against tests/reference/merge.py's definitions written out here (the merge
// kernels have no cn.ops binding; tests/test_graph.py compares the layers built
// on the fast kernels with the NumPy reference itself). Sizes go past the
// parallel grain so the threaded split runs, and both backward modes (write
// and accumulate) are covered. Add sums its terms in the same order in both
// kernels and Concatenate only copies: bit for bit.
#include <cstdint>
#include <vector>

#include "check.hpp"
#include "corenn/kernels/merge.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

namespace {

// Past any grain in backend/parallel.hpp, with a ragged last chunk.
constexpr int64_t kLarge = (int64_t(1) << 17) + 37;

template <typename T>
std::vector<const T*> pointers(const std::vector<std::vector<T>>& xs) {
  std::vector<const T*> p;
  for (const auto& x : xs) p.push_back(x.data());
  return p;
}

template <typename T>
void check_add(int count, int64_t n, unsigned seed) {
  std::vector<std::vector<T>> xs;
  for (int k = 0; k < count; ++k) xs.push_back(random_vector<T>(n, seed + k));
  const auto xp = pointers(xs);
  // add_forward: y = xs[0] + xs[1] + ... (reference: np.sum(np.stack(xs), axis=0), in order).
  std::vector<T> y(n, T(7)), y_naive(n, T(-7)), want(n);
  add_forward(y.data(), xp.data(), count, n);
  add_forward_naive(y_naive.data(), xp.data(), count, n);
  for (int64_t i = 0; i < n; ++i) {
    T sum = xs[0][i];
    for (int k = 1; k < count; ++k) sum += xs[k][i];
    want[i] = sum;
  }
  CHECK(bitwise_equal(y, y_naive));
  CHECK(bitwise_equal(y, want));
  // add_relu_forward: max(sum, 0) as the ReLU writes it, bit for bit add_forward then the ReLU.
  std::vector<T> yr(n, T(7)), yr_naive(n, T(-7)), want_relu = want;
  for (auto& v : want_relu) v = v < T(0) ? T(0) : v;
  add_relu_forward(yr.data(), xp.data(), count, n);
  add_relu_forward_naive(yr_naive.data(), xp.data(), count, n);
  CHECK(bitwise_equal(yr, yr_naive));
  CHECK(bitwise_equal(yr, want_relu));
  // add_backward: every term gets dy (reference: dy.copy() for each), or adds it.
  const auto dy = random_vector<T>(n, seed + 100);
  for (bool accumulate : {false, true}) {
    const auto start = random_vector<T>(n, seed + 200);
    std::vector<T> dx = start, dx_naive = start, expected(n);
    add_backward(dx.data(), dy.data(), n, accumulate);
    add_backward_naive(dx_naive.data(), dy.data(), n, accumulate);
    for (int64_t i = 0; i < n; ++i) expected[i] = accumulate ? start[i] + dy[i] : dy[i];
    CHECK(bitwise_equal(dx, dx_naive));
    CHECK(bitwise_equal(dx, expected));
  }
}

template <typename T>
void check_concat(const std::vector<int64_t>& widths, int64_t outer, unsigned seed) {
  const int count = static_cast<int>(widths.size());
  int64_t total = 0;
  for (int64_t w : widths) total += w;
  std::vector<std::vector<T>> xs;
  for (int k = 0; k < count; ++k) xs.push_back(random_vector<T>(outer * widths[k], seed + k));
  const auto xp = pointers(xs);
  // concat_forward: each row holds the inputs' rows side by side (np.concatenate).
  std::vector<T> y(outer * total, T(7)), y_naive(outer * total, T(-7)), want;
  concat_forward(y.data(), xp.data(), widths.data(), count, outer);
  concat_forward_naive(y_naive.data(), xp.data(), widths.data(), count, outer);
  for (int64_t r = 0; r < outer; ++r)
    for (int k = 0; k < count; ++k)
      for (int64_t j = 0; j < widths[k]; ++j) want.push_back(xs[k][r * widths[k] + j]);
  CHECK(bitwise_equal(y, y_naive));
  CHECK(bitwise_equal(y, want));
  // concat_backward: input k's slice dy[:, offset : offset + width] (np.split), written or added.
  const auto dy = random_vector<T>(outer * total, seed + 100);
  int64_t offset = 0;
  for (int k = 0; k < count; ++k) {
    const int64_t width = widths[k];
    for (bool accumulate : {false, true}) {
      const auto start = random_vector<T>(outer * width, seed + 200 + k);
      std::vector<T> dx = start, dx_naive = start, expected(outer * width);
      concat_backward(dx.data(), dy.data(), outer, offset, width, total, accumulate);
      concat_backward_naive(dx_naive.data(), dy.data(), outer, offset, width, total, accumulate);
      for (int64_t r = 0; r < outer; ++r)
        for (int64_t j = 0; j < width; ++j) {
          const T g = dy[r * total + offset + j];
          expected[r * width + j] = accumulate ? start[r * width + j] + g : g;
        }
      CHECK(bitwise_equal(dx, dx_naive));
      CHECK(bitwise_equal(dx, expected));
    }
    offset += width;
  }
}

}  // namespace

TEST(merge_add_fast_matches_naive_and_reference) {
  unsigned seed = 1;
  for (int count : {1, 2, 3, 5})
    for (int64_t n : {int64_t(1), int64_t(17), kLarge}) {
      check_add<float>(count, n, seed += 10);
      check_add<double>(count, n, seed += 10);
    }
}

TEST(merge_add_hand_values) {
  // 1 + 10 + 100 per entry, and the gradient handed back whole.
  const std::vector<double> a = {1, 2}, b = {10, 20}, c = {100, 200};
  const double* xs[] = {a.data(), b.data(), c.data()};
  std::vector<double> y(2), y_naive(2);
  add_forward(y.data(), xs, 3, 2);
  add_forward_naive(y_naive.data(), xs, 3, 2);
  CHECK(y == (std::vector<double>{111, 222}));
  CHECK(y_naive == y);
  std::vector<double> dx = {1, 1};
  add_backward_naive(dx.data(), a.data(), 2, true);
  CHECK(dx == (std::vector<double>{2, 3}));
}

TEST(merge_concat_fast_matches_naive_and_reference) {
  unsigned seed = 500;
  const std::vector<std::vector<int64_t>> width_sets = {{1}, {3, 5}, {2, 0, 7}, {64, 1, 16, 3}};
  for (const auto& widths : width_sets)
    for (int64_t outer : {int64_t(1), int64_t(9), int64_t(5003)}) {
      check_concat<float>(widths, outer, seed += 10);
      check_concat<double>(widths, outer, seed += 10);
    }
  // One wide input past the grain along the row, the rows few.
  check_concat<float>({kLarge, 3}, 2, seed += 10);
}

TEST(merge_concat_hand_values) {
  // Rows [1 2] and [3] side by side, then the gradient split back.
  const std::vector<double> a = {1, 2, 4, 5}, b = {3, 6};
  const double* xs[] = {a.data(), b.data()};
  const int64_t widths[] = {2, 1};
  std::vector<double> y(6), y_naive(6);
  concat_forward(y.data(), xs, widths, 2, 2);
  concat_forward_naive(y_naive.data(), xs, widths, 2, 2);
  CHECK(y == (std::vector<double>{1, 2, 3, 4, 5, 6}));
  CHECK(y_naive == y);
  std::vector<double> db(2, 0.0);
  concat_backward_naive(db.data(), y.data(), 2, 2, 1, 3, false);
  CHECK(db == (std::vector<double>{3, 6}));
}

TEST(merge_subtract_fast_matches_naive_and_reference) {
  unsigned seed = 900;
  for (int64_t n : {int64_t(1), int64_t(17), kLarge}) {
    const auto a = random_vector<double>(n, seed += 10), b = random_vector<double>(n, seed += 10);
    // subtract_forward: y = a − b (reference: a - b), exact in both kernels.
    std::vector<double> y(n), y_naive(n), want(n);
    subtract_forward(y.data(), a.data(), b.data(), n);
    subtract_forward_naive(y_naive.data(), a.data(), b.data(), n);
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] - b[i];
    CHECK(bitwise_equal(y, y_naive));
    CHECK(bitwise_equal(y, want));
    // subtract_backward: the subtracted input gets −dy, written or added.
    const auto dy = random_vector<double>(n, seed += 10);
    for (bool accumulate : {false, true}) {
      const auto start = random_vector<double>(n, seed += 10);
      std::vector<double> dx = start, dx_naive = start, expected(n);
      subtract_backward(dx.data(), dy.data(), n, accumulate);
      subtract_backward_naive(dx_naive.data(), dy.data(), n, accumulate);
      for (int64_t i = 0; i < n; ++i) expected[i] = accumulate ? start[i] - dy[i] : -dy[i];
      CHECK(bitwise_equal(dx, dx_naive));
      CHECK(bitwise_equal(dx, expected));
    }
  }
  const std::vector<float> a = {5, 1}, b = {2, 3};
  std::vector<float> y(2);
  subtract_forward(y.data(), a.data(), b.data(), 2);
  CHECK(y == (std::vector<float>{3, -2}));
}
