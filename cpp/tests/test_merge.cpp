// The merge kernels (Add, Subtract, Concatenate, Multiply, Average, Maximum,
// Minimum) against their naive siblings and
// against tests/reference/merge.py's definitions written out here (the merge
// kernels have no cn.ops binding; tests/test_graph.py compares the layers built
// on the fast kernels with the NumPy reference itself). Sizes go past the
// parallel grain so the threaded split runs, and both backward modes (write
// and accumulate) are covered. Add sums its terms in the same order in both
// kernels and Concatenate only copies: bit for bit.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
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

namespace {

// Inputs drawn from a few integers, so that ties for the maximum and minimum are common.
template <typename T>
std::vector<T> coarse_vector(int64_t n, unsigned seed) {
  auto v = random_vector<T>(n, seed, 2.0);
  for (auto& e : v) e = std::round(e);
  return v;
}

// Multiply, Average, Maximum and Minimum: the fast kernels against the naive
// ones, bit for bit (each sums, multiplies or picks in the same order), and
// against the formulas of tests/reference/merge.py written out here.
template <typename T>
void check_elementwise(int count, int64_t n, unsigned seed) {
  std::vector<std::vector<T>> xs;
  for (int k = 0; k < count; ++k) xs.push_back(coarse_vector<T>(n, seed + k));
  const auto xp = pointers(xs);
  const auto dy = random_vector<T>(n, seed + 100);
  std::vector<T> y(n, T(7)), y_naive(n, T(-7)), want(n);
  std::vector<T> dx(n, T(7)), dx_naive(n, T(-7)), dx_want(n);

  // multiply: y = x0·x1·…, dx_k = dy · Π_{j≠k} x_j.
  multiply_forward(y.data(), xp.data(), count, n);
  multiply_forward_naive(y_naive.data(), xp.data(), count, n);
  for (int64_t i = 0; i < n; ++i) {
    want[i] = xs[0][i];
    for (int k = 1; k < count; ++k) want[i] *= xs[k][i];
  }
  CHECK(bitwise_equal(y, y_naive));
  CHECK(bitwise_equal(y, want));
  for (int k = 0; k < count; ++k) {
    multiply_backward(dx.data(), dy.data(), xp.data(), count, k, n);
    multiply_backward_naive(dx_naive.data(), dy.data(), xp.data(), count, k, n);
    for (int64_t i = 0; i < n; ++i) {
      dx_want[i] = dy[i];
      for (int j = 0; j < count; ++j)
        if (j != k) dx_want[i] *= xs[j][i];
    }
    CHECK(bitwise_equal(dx, dx_naive));
    CHECK(bitwise_equal(dx, dx_want));
  }

  // average: y = (x0 + x1 + …) / count, dx = dy / count (written or added).
  average_forward(y.data(), xp.data(), count, n);
  average_forward_naive(y_naive.data(), xp.data(), count, n);
  for (int64_t i = 0; i < n; ++i) {
    T sum = xs[0][i];
    for (int k = 1; k < count; ++k) sum += xs[k][i];
    want[i] = sum / static_cast<T>(count);
  }
  CHECK(bitwise_equal(y, y_naive));
  CHECK(bitwise_equal(y, want));
  for (bool accumulate : {false, true}) {
    const auto start = random_vector<T>(n, seed + 200);
    std::vector<T> d = start, d_naive = start, expected(n);
    average_backward(d.data(), dy.data(), count, n, accumulate);
    average_backward_naive(d_naive.data(), dy.data(), count, n, accumulate);
    for (int64_t i = 0; i < n; ++i) {
      const T g = dy[i] / static_cast<T>(count);
      expected[i] = accumulate ? start[i] + g : g;
    }
    CHECK(bitwise_equal(d, d_naive));
    CHECK(bitwise_equal(d, expected));
  }

  // maximum / minimum: the extremum, and dy shared equally by the inputs that attain it.
  for (bool is_max : {true, false}) {
    if (is_max) {
      maximum_forward(y.data(), xp.data(), count, n);
      maximum_forward_naive(y_naive.data(), xp.data(), count, n);
    } else {
      minimum_forward(y.data(), xp.data(), count, n);
      minimum_forward_naive(y_naive.data(), xp.data(), count, n);
    }
    for (int64_t i = 0; i < n; ++i) {
      want[i] = xs[0][i];
      for (int k = 1; k < count; ++k) want[i] = is_max ? std::max(want[i], xs[k][i]) : std::min(want[i], xs[k][i]);
    }
    CHECK(bitwise_equal(y, y_naive));
    CHECK(bitwise_equal(y, want));
    std::vector<T> total(n, T(0));
    for (int k = 0; k < count; ++k) {
      extremum_backward(dx.data(), dy.data(), y.data(), xp.data(), count, k, n);
      extremum_backward_naive(dx_naive.data(), dy.data(), y.data(), xp.data(), count, k, n);
      for (int64_t i = 0; i < n; ++i) {
        int ties = 0;
        for (int j = 0; j < count; ++j) ties += xs[j][i] == y[i];
        dx_want[i] = xs[k][i] == y[i] ? dy[i] / static_cast<T>(ties) : T(0);
        total[i] += dx[i];
      }
      CHECK(bitwise_equal(dx, dx_naive));
      CHECK(bitwise_equal(dx, dx_want));
    }
    // The shares add up to dy (up to rounding of the thirds, fifths…).
    for (int64_t i = 0; i < n; ++i) CHECK(std::abs(total[i] - dy[i]) <= 4 * std::numeric_limits<T>::epsilon() * std::abs(dy[i]));
  }
}

}  // namespace

TEST(merge_elementwise_fast_matches_naive_and_reference) {
  unsigned seed = 1300;
  for (int count : {2, 3, 5})
    for (int64_t n : {int64_t(1), int64_t(17), kLarge}) {
      check_elementwise<float>(count, n, seed += 10);
      check_elementwise<double>(count, n, seed += 10);
    }
}

TEST(merge_elementwise_hand_values) {
  // max(1, 3, 3) = 3: the two tied inputs get dy / 2 each, the first none;
  // a NaN in any input gives NaN, and its gradient goes to the NaN inputs.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> a = {1, 2, nan}, b = {3, nan, 0}, c = {3, 5, nan};
  const double* xs[] = {a.data(), b.data(), c.data()};
  std::vector<double> y(3), y_min(3);
  maximum_forward(y.data(), xs, 3, 3);
  minimum_forward(y_min.data(), xs, 3, 3);
  CHECK(y[0] == 3 && std::isnan(y[1]) && std::isnan(y[2]));
  CHECK(y_min[0] == 1 && std::isnan(y_min[1]) && std::isnan(y_min[2]));
  const std::vector<double> dy = {4, 8, 6};
  std::vector<double> da(3), db(3), dc(3);
  extremum_backward(da.data(), dy.data(), y.data(), xs, 3, 0, 3);
  extremum_backward(db.data(), dy.data(), y.data(), xs, 3, 1, 3);
  extremum_backward(dc.data(), dy.data(), y.data(), xs, 3, 2, 3);
  CHECK(da == (std::vector<double>{0, 0, 3}));
  CHECK(db == (std::vector<double>{2, 8, 0}));
  CHECK(dc == (std::vector<double>{2, 0, 3}));
  // The product's gradient never divides: exact where a factor is 0.
  const std::vector<double> p = {0, 2}, q = {5, 0};
  const double* pq[] = {p.data(), q.data()};
  std::vector<double> dp(2);
  multiply_backward(dp.data(), dy.data(), pq, 2, 0, 2);
  CHECK(dp == (std::vector<double>{20, 0}));
}

// Broadcasting: the odometer walk against the digit-by-digit naive kernel,
// bit for bit (both sum dy in its order, in double), and hand values.
TEST(merge_broadcast_fast_matches_naive) {
  const std::vector<std::vector<int64_t>> outs{{3, 5, 4}, {2, 3, 5, 4}, {7, 1, 9}};
  const std::vector<std::vector<int64_t>> ins{{3, 1, 4}, {1, 3, 1, 4}, {1, 1, 9}};
  for (size_t c = 0; c < outs.size(); ++c) {
    int64_t n = 1, m = 1;
    for (int64_t s : outs[c]) n *= s;
    for (int64_t s : ins[c]) m *= s;
    const auto x = random_vector<double>(static_cast<size_t>(m), 3);
    std::vector<double> y(n), y_naive(n);
    broadcast_forward(y.data(), x.data(), outs[c], ins[c]);
    broadcast_forward_naive(y_naive.data(), x.data(), outs[c], ins[c]);
    CHECK(bitwise_equal(y, y_naive));
    const auto dy = random_vector<float>(static_cast<size_t>(n), 4);
    for (bool accumulate : {false, true}) {
      auto dx = random_vector<float>(static_cast<size_t>(m), 5), dx_naive = dx;
      broadcast_backward(dx.data(), dy.data(), outs[c], ins[c], 0.5, accumulate);
      broadcast_backward_naive(dx_naive.data(), dy.data(), outs[c], ins[c], 0.5, accumulate);
      CHECK(bitwise_equal(dx, dx_naive));
    }
  }
}

TEST(merge_broadcast_hand_values) {
  // (2, 1) repeated to (2, 3); its gradient sums each row of dy.
  const std::vector<double> x{1, 2};
  std::vector<double> y(6);
  broadcast_forward(y.data(), x.data(), {2, 3}, {2, 1});
  CHECK(y == (std::vector<double>{1, 1, 1, 2, 2, 2}));
  const std::vector<double> dy{1, 2, 3, 4, 5, 6};
  std::vector<double> dx{10, 20};
  broadcast_backward(dx.data(), dy.data(), {2, 3}, {2, 1}, -1.0, true);
  CHECK(dx == (std::vector<double>{4, 5}));  // 10 − 6, 20 − 15
  std::vector<double> columns(3, -1.0);
  broadcast_backward(columns.data(), dy.data(), {2, 3}, {1, 3}, 1.0, false);
  CHECK(columns == (std::vector<double>{5, 7, 9}));
}
