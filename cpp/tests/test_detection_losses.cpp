#include <cmath>
#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/detection_losses.hpp"

using namespace corenn;
using corenn_test::random_vector;

TEST(yolo_loss_hand_computed) {
  // One 8 × 8 anchor, C = 2, a 2 × 2 grid on 64 pixels, outputs 0. The object at
  // cell (0, 1), t = (0.5, 0.25, log 2, 0), class 1: 5·(0.0625 + log²2) + 2·log 2;
  // three empty cells far from it: 0.5·log 2 each.
  const double anchor[2] = {8, 8};
  YoloLossOptions o;
  o.anchors = 1;
  o.classes = 2;
  o.grid = 2;
  o.anchor_wh = anchor;
  o.image_h = o.image_w = 64;
  std::vector<double> target(7 * 4, 0.0), pred(7 * 4, 0.0), g1(28), g2(28);
  const double cell[7] = {1, 0.5, 0.25, std::log(2.0), 0, 0, 1};
  for (int k = 0; k < 7; ++k) target[k * 4 + 1] = cell[k];
  const double ln2 = std::log(2.0);
  const double expected = 5 * (0.0625 + ln2 * ln2) + 2 * ln2 + 1.5 * ln2;
  CHECK_CLOSE(yolo_loss(g1.data(), pred.data(), target.data(), 1, o), expected, 1e-15);
  CHECK_CLOSE(yolo_loss_naive(g2.data(), pred.data(), target.data(), 1, o), expected, 1e-15);
  CHECK_CLOSE(g1[1], -0.5, 1e-15);   // σ(0) − 1 at the object
  CHECK_CLOSE(g1[0], 0.25, 1e-15);   // λnoobj·σ(0) at an empty cell
  for (size_t k = 0; k < g1.size(); ++k) CHECK_CLOSE(g1[k], g2[k], 1e-15);
  validate_yolo_target(target.data(), 1, o, "yolo_loss", "y_true");
  target[0] = 0.5;
  CHECK_THROWS(validate_yolo_target(target.data(), 1, o, "yolo_loss", "y_true"), ValueError);
  o.ignore_threshold = 2;
  CHECK_THROWS(validate(o, "yolo_loss"), ValueError);
}

TEST(yolo_loss_fast_equals_naive) {
  // Random outputs against a target with an object in every third anchor-cell.
  const double anchors[4] = {10, 12, 25, 8};
  YoloLossOptions o;
  o.anchors = 2;
  o.classes = 3;
  o.grid = 4;
  o.anchor_wh = anchors;
  o.image_h = 40;
  o.image_w = 48;
  o.ignore_threshold = 0.3;
  const int64_t n = 3, per = 2 * 8 * 16;
  const auto pred = random_vector<double>(n * per, 5);
  std::vector<double> target(n * per, 0.0);
  for (int64_t img = 0; img < n; ++img)
    for (int64_t a = 0; a < 2; ++a)
      for (int64_t cell = (img + a) % 3; cell < 16; cell += 3) {
        double* t = target.data() + img * per + a * 8 * 16 + cell;
        t[0] = 1;
        t[16] = 0.3;
        t[32] = 0.6;
        t[48] = 0.2;
        t[64] = -0.1;
        t[(5 + cell % 3) * 16] = 1;
      }
  std::vector<double> g1(n * per), g2(n * per);
  const double f = yolo_loss(g1.data(), pred.data(), target.data(), n, o);
  const double r = yolo_loss_naive(g2.data(), pred.data(), target.data(), n, o);
  CHECK_CLOSE(f, r, 1e-12);
  for (size_t k = 0; k < g1.size(); ++k) CHECK_CLOSE(g1[k], g2[k], 1e-12);
}

TEST(localization_and_masked_mse_hand_computed) {
  // Course loss: with an object all 6 entries count, without only p_c.
  const double target[12] = {1, 0.5, 0.5, 0.2, 0.2, 1, 0, NAN, NAN, NAN, NAN, NAN};
  const double pred[12] = {0.5, 0.5, 0.5, 0.2, 0.2, 1, 0.5, 7, 7, 7, 7, 7};
  double g[12];
  CHECK_CLOSE(localization_loss(g, pred, target, 2, 6, false), (0.25 + 0.25) / 2, 1e-15);
  CHECK_CLOSE(localization_loss_naive<double>(nullptr, pred, target, 2, 6, false), 0.25, 1e-15);
  CHECK(g[7] == 0 && g[6] == 0.5);
  // Without an object the NaN entries are "don't care"; with one they are an error.
  validate_localization_target(target, 2, 6, "localization_loss", "y_true");
  const double bad[6] = {1, NAN, 0, 0, 0, 1};
  CHECK_THROWS(validate_localization_target(bad, 1, 6, "localization_loss", "y_true"), ValueError);
}

TEST(masked_mse_skips_nan_targets) {
  const double target[4] = {1, NAN, 3, NAN}, pred[4] = {2, 9, 1, 9};
  double g[4], gn[4];
  CHECK_CLOSE(masked_mse(g, pred, target, 4), (1 + 4) / 2.0, 1e-15);
  CHECK_CLOSE(masked_mse_naive(gn, pred, target, 4), 2.5, 1e-15);
  CHECK(g[1] == 0 && g[3] == 0 && g[0] == 1 && g[2] == -2);
  for (int k = 0; k < 4; ++k) CHECK(g[k] == gn[k]);
  const double none[2] = {NAN, NAN};
  CHECK(masked_mse(g, pred, none, 2) == 0 && g[0] == 0);
}
