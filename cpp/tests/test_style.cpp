#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/metric_losses.hpp"
#include "corenn/kernels/style.hpp"

using namespace corenn;
using corenn_test::random_vector;

TEST(style_course_hand_computed) {
  // C = 2, H·W = 2: A = [[1, 2], [3, 4]] gives G = [[5, 11], [11, 25]].
  const double a[4] = {1, 2, 3, 4};
  double g[4], gn[4];
  gram_matrix(g, a, 1, 2, 2);
  gram_matrix_naive(gn, a, 1, 2, 2);
  const double expected[4] = {5, 11, 11, 25};
  for (int k = 0; k < 4; ++k) CHECK(g[k] == expected[k] && gn[k] == expected[k]);
  // C = 1, H·W = 2: G_S = 5, G_G = 1, (5 − 1)² / (4·1·2²) = 1.
  const double s[2] = {1, 2}, x[2] = {0, 1};
  CHECK_CLOSE(style_cost<double>(nullptr, s, x, 1, 1, 2), 1.0, 1e-15);
  CHECK_CLOSE(style_cost_naive<double>(nullptr, s, x, 1, 1, 2), 1.0, 1e-15);
  // Σ(1 − 0)² / (4·1·2) = 0.25.
  const double ones[2] = {1, 1}, zeros[2] = {0, 0};
  CHECK_CLOSE(content_cost<double>(nullptr, ones, zeros, 1, 1, 2), 0.25, 1e-15);
  // |4 − 1| + |8 − 2| + |2 − 1| + |8 − 4| = 14.
  const double img[4] = {1, 2, 4, 8};
  CHECK_CLOSE(total_variation<double>(nullptr, img, 1, 1, 2, 2), 14.0, 1e-15);
}

TEST(style_fast_equals_naive) {
  const int64_t n = 2, c = 9, hw = 35;
  const auto as = random_vector<double>(n * c * hw, 1), ag = random_vector<double>(n * c * hw, 2);
  std::vector<double> g1(n * c * hw), g2(n * c * hw);
  const double f = style_cost(g1.data(), as.data(), ag.data(), n, c, hw);
  const double r = style_cost_naive(g2.data(), as.data(), ag.data(), n, c, hw);
  CHECK_CLOSE(f, r, 1e-12);
  for (size_t k = 0; k < g1.size(); ++k) CHECK_CLOSE(g1[k], g2[k], 1e-12);
  const double tf = total_variation(g1.data(), ag.data(), n, c, 5, 7);
  const double tr = total_variation_naive(g2.data(), ag.data(), n, c, 5, 7);
  CHECK_CLOSE(tf, tr, 1e-12);
  for (size_t k = 0; k < g1.size(); ++k) CHECK(g1[k] == g2[k]);
}

TEST(metric_losses_hand_computed) {
  // Course triplet loss: max(4 − 1 + 0.2, 0) = 3.2 for a = 0, p = (2, 0), n = (1, 0).
  const double emb[6] = {0, 0, 2, 0, 1, 0};
  CHECK_CLOSE(triplet_loss<double>(nullptr, emb, 1, 2, 0.2, true, false, 0), 3.2, 1e-15);
  CHECK_CLOSE(triplet_loss_naive<double>(nullptr, emb, 1, 2, 0.2, true, false, 0), 3.2, 1e-15);
  // Contrastive: a matching pair at d = 5 costs 25.
  const double e1[2] = {0, 0}, e2[2] = {3, 4}, same[1] = {1};
  CHECK_CLOSE(contrastive_loss<double>(nullptr, nullptr, e1, e2, same, 1, 2, 1.0), 25.0, 1e-15);
  CHECK_THROWS(validate_margin(-1.0, "triplet_loss", "margin"), ValueError);
  const double bad[1] = {0.5};
  CHECK_THROWS(validate_same(bad, 1, "contrastive_loss", "same"), ValueError);
}
