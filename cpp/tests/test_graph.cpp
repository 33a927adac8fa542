// General graphs from C++: several inputs and outputs, a layer called twice,
// layers shared between models, per-output and custom losses, input
// gradients (vjp), apply_gradients. Gradients are checked against central
// finite differences in float64.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "check.hpp"
#include "corenn/io.hpp"
#include "corenn/model.hpp"
#include "corenn/random.hpp"

using namespace corenn;

namespace {

LayerSpec layer(const char* kind, const char* name) { return LayerSpec(kind, name); }

LayerSpec dense(const char* name, int64_t units, const char* activation = "linear") {
  return LayerSpec("dense", name).set("units", units).set("activation", activation);
}

OptimizerSpec sgd(double lr) {
  OptimizerSpec o;
  o.kind = "sgd";
  o.sgd.lr = lr;
  return o;
}

Tensor random_tensor(Shape shape, DType dtype, unsigned seed) {
  Tensor t(std::move(shape), dtype);
  const auto v = corenn_test::random_vector<double>(static_cast<size_t>(t.size()), seed);
  for (int64_t i = 0; i < t.size(); ++i) {
    if (dtype == DType::float64) t.data_as<double>()[i] = v[i];
    else t.data_as<float>()[i] = static_cast<float>(v[i]);
  }
  return t;
}

// Inputs a and b (4 features each) through ONE Dense "enc" (tanh), then
// Concatenate and a Dense head "same" (1 unit); the outputs are the head
// and enc's call on b.
Model siamese(DType dtype) {
  Model m(dtype);
  m.add_input("a", {4});
  m.add_input("b", {4});
  m.add(dense("enc", 3, "tanh"));
  LayerSpec cat = layer("concatenate", "cat");
  m.add(cat);
  m.add(dense("same", 1));
  m.call("enc", {{"a"}});
  m.call("enc", {{"b"}});
  m.call("cat", {{"enc", 0, 0}, {"enc", 1, 0}});
  m.call("same", {{"cat"}});
  m.set_outputs({{"same"}, {"enc", 1, 0}});
  m.build();
  return m;
}

double total_loss(Model& m, const std::vector<Tensor>& x, const std::vector<Tensor>& y) {
  return m.evaluate(x, y);
}

}  // namespace

TEST(graph_two_inputs_two_outputs_shared_layer) {
  seed(5);
  Model m = siamese(DType::float32);
  CHECK(m.num_inputs() == 2 && m.num_outputs() == 2);
  CHECK(m.model_output_shape(0) == (Shape{1}));
  CHECK(m.model_output_shape(1) == (Shape{3}));
  CHECK(m.nodes().size() == 4);
  CHECK(m.count_params() == 4 * 3 + 3 + 6 + 1);  // enc once, not twice
  const Tensor a = random_tensor({5, 4}, DType::float32, 1), b = random_tensor({5, 4}, DType::float32, 2);
  const std::vector<Tensor> out = m.predict(std::vector<Tensor>{a, b});
  CHECK(out.size() == 2 && out[0].shape() == (Shape{5, 1}) && out[1].shape() == (Shape{5, 3}));
  // Output 1 is enc(b): the same as a model of enc alone on b.
  Model alone;
  alone.add(dense("enc", 3, "tanh"));
  alone.build({4});
  alone.set_weights(0, m.get_weights(0));
  const Tensor direct = alone.predict(b);
  CHECK(std::memcmp(direct.data(), out[1].data(), sizeof(float) * 15) == 0);
}

TEST(graph_gradients_of_shared_layer_and_two_losses_match_finite_differences) {
  seed(6);
  Model m = siamese(DType::float64);
  OutputLoss bce{LossKind::binary_cross_entropy, 1.0, {}}, mse{LossKind::mse, 0.25, {}};
  m.compile({bce, mse}, sgd(0.1));
  const std::vector<Tensor> x{random_tensor({6, 4}, DType::float64, 3), random_tensor({6, 4}, DType::float64, 4)};
  Tensor same({6, 1}, DType::float64);
  for (int i = 0; i < 6; ++i) same.data_as<double>()[i] = i % 2;
  const std::vector<Tensor> y{same, random_tensor({6, 3}, DType::float64, 5)};
  std::vector<double> per_output;
  Tensor grads;
  const double loss = m.loss_and_gradients(x, y, nullptr, &grads, &per_output);
  CHECK_CLOSE(loss, per_output[0] + 0.25 * per_output[1], 1e-12);
  Tensor theta = m.get_parameters();
  double worst = 0.0;
  for (int64_t i = 0; i < theta.size(); ++i) {
    const double keep = theta.data_as<double>()[i], h = 1e-6;
    theta.data_as<double>()[i] = keep + h;
    m.set_parameters(theta);
    const double plus = total_loss(m, x, y);
    theta.data_as<double>()[i] = keep - h;
    m.set_parameters(theta);
    const double minus = total_loss(m, x, y);
    theta.data_as<double>()[i] = keep;
    const double numeric = (plus - minus) / (2 * h), analytic = grads.data_as<double>()[i];
    worst = std::max(worst, std::fabs(numeric - analytic) / std::max(1e-3, std::fabs(numeric) + std::fabs(analytic)));
  }
  m.set_parameters(theta);
  CHECK(worst < 1e-6);
}

TEST(graph_vjp_input_gradients_match_finite_differences) {
  seed(7);
  Model m = siamese(DType::float64);
  const std::vector<Tensor> x{random_tensor({3, 4}, DType::float64, 8), random_tensor({3, 4}, DType::float64, 9)};
  const std::vector<Tensor> dy{random_tensor({3, 1}, DType::float64, 10), random_tensor({3, 3}, DType::float64, 11)};
  const std::vector<Tensor> y = m.vjp(x, false);
  CHECK(y.size() == 2);
  const std::vector<Tensor> dx = m.pullback(dy);
  CHECK(dx.size() == 2 && dx[0].shape() == (Shape{3, 4}));
  // L(x) = Σ⟨dy, f(x)⟩, differentiated numerically.
  auto objective = [&](const std::vector<Tensor>& xs) {
    const std::vector<Tensor> out = m.predict(xs);
    double s = 0.0;
    for (size_t o = 0; o < out.size(); ++o)
      for (int64_t i = 0; i < out[o].size(); ++i) s += out[o].data_as<double>()[i] * dy[o].data_as<double>()[i];
    return s;
  };
  double worst = 0.0;
  for (size_t k = 0; k < 2; ++k)
    for (int64_t i = 0; i < x[k].size(); ++i) {
      std::vector<Tensor> xp{x[0].clone(), x[1].clone()}, xm{x[0].clone(), x[1].clone()};
      xp[k].data_as<double>()[i] += 1e-6;
      xm[k].data_as<double>()[i] -= 1e-6;
      const double numeric = (objective(xp) - objective(xm)) / 2e-6;
      worst = std::max(worst, std::fabs(numeric - dx[k].data_as<double>()[i]) /
                                  std::max(1e-3, std::fabs(numeric) + std::fabs(dx[k].data_as<double>()[i])));
    }
  CHECK(worst < 1e-7);
  // A wrongly shaped dy is refused; a training call makes the pullback stale.
  CHECK_THROWS(m.pullback({random_tensor({3, 2}, DType::float64, 1), Tensor()}), ShapeError);
  m.compile(LossKind::mse, sgd(0.1));
  m.train_step(x, {random_tensor({3, 1}, DType::float64, 2), random_tensor({3, 3}, DType::float64, 3)});
  CHECK_THROWS(m.pullback(dy), ValueError);
}

TEST(graph_custom_loss_equals_the_built_in_one) {
  seed(8);
  Model fused = siamese(DType::float64);
  seed(8);
  Model custom = siamese(DType::float64);
  OutputLoss mse{LossKind::mse, 1.0, {}};
  OutputLoss mine{LossKind::custom, 1.0, [](const Tensor& y_true, const Tensor& y_pred, Tensor& dy) {
                    double s = 0.0;
                    const int64_t n = y_pred.size();
                    for (int64_t i = 0; i < n; ++i) {
                      const double d = y_pred.data_as<double>()[i] - y_true.data_as<double>()[i];
                      s += d * d;
                      dy.data_as<double>()[i] = 2 * d / static_cast<double>(n);
                    }
                    return s / static_cast<double>(n);
                  }};
  OutputLoss none{LossKind::none, 1.0, {}};
  fused.compile({mse, none}, sgd(0.05));
  custom.compile({mine, none}, sgd(0.05));
  const std::vector<Tensor> x{random_tensor({4, 4}, DType::float64, 12), random_tensor({4, 4}, DType::float64, 13)};
  const std::vector<Tensor> y{random_tensor({4, 1}, DType::float64, 14), Tensor()};
  for (int step = 0; step < 3; ++step) CHECK_CLOSE(custom.train_step(x, y), fused.train_step(x, y), 1e-12);
  const Tensor p = fused.get_parameters(), q = custom.get_parameters();
  for (int64_t i = 0; i < p.size(); ++i) CHECK_CLOSE(q.data_as<double>()[i], p.data_as<double>()[i], 1e-12);
  // A wrongly shaped gradient is refused and the model left as it was.
  OutputLoss bad{LossKind::custom, 1.0, [](const Tensor&, const Tensor&, Tensor& dy) {
                   dy = Tensor({1, 1}, DType::float64);
                   return 0.0;
                 }};
  custom.compile({bad, none}, sgd(0.05));
  const Tensor before = custom.get_parameters();
  CHECK_THROWS(custom.train_step(x, y), ValueError);
  const Tensor after = custom.get_parameters();
  CHECK(std::memcmp(before.data_as<double>(), after.data_as<double>(), sizeof(double) * before.size()) == 0);
}

TEST(graph_apply_gradients_is_the_second_half_of_train_step) {
  seed(9);
  Model a = siamese(DType::float32);
  seed(9);
  Model b = siamese(DType::float32);
  OutputLoss bce{LossKind::binary_cross_entropy, 1.0, {}}, none{LossKind::none, 1.0, {}};
  OptimizerSpec adam;
  adam.kind = "adam";
  a.compile({bce, none}, adam);
  b.compile({bce, none}, adam);
  const std::vector<Tensor> x{random_tensor({8, 4}, DType::float32, 15), random_tensor({8, 4}, DType::float32, 16)};
  Tensor t({8, 1});
  for (int i = 0; i < 8; ++i) t.data()[i] = static_cast<float>(i % 3 == 0);
  const std::vector<Tensor> y{t, Tensor()};
  for (int step = 0; step < 3; ++step) {
    a.train_step(x, y);
    Tensor g;
    b.loss_and_gradients(x, y, nullptr, &g);
    CHECK(b.apply_gradients(g));
  }
  const Tensor p = a.get_parameters(), q = b.get_parameters();
  CHECK(std::memcmp(p.data(), q.data(), sizeof(float) * p.size()) == 0);
  CHECK(a.steps() == 3 && b.steps() == 3);
  Tensor nan_grads({p.size()});
  nan_grads.data()[0] = std::nanf("");
  CHECK(!b.apply_gradients(nan_grads));
  CHECK(b.steps() == 3);
}

TEST(graph_layers_shared_between_models_train_together) {
  seed(10);
  Model base = siamese(DType::float32);
  // A feature extractor: enc alone, sharing base's layer.
  Model features;
  features.add_input("x", {4});
  features.add(dense("enc", 3, "tanh"));
  features.call("enc", {{"x"}});
  features.share_layer("enc", base, "enc");
  features.build();
  const Tensor x = random_tensor({2, 4}, DType::float32, 17);
  const Tensor before = features.predict(x);
  std::vector<Tensor> w = base.get_weights(base.layer_index("enc"));
  for (Tensor& t : w)
    for (int64_t i = 0; i < t.size(); ++i) t.data()[i] *= 2.0f;
  base.set_weights(base.layer_index("enc"), w);
  const Tensor after = features.predict(x);
  CHECK(std::memcmp(before.data(), after.data(), sizeof(float) * 6) != 0);
  CHECK(std::memcmp(features.get_weights(0)[0].data(), w[0].data(), sizeof(float) * 12) == 0);
  // Another dtype, or a call on another shape, cannot share it.
  Model other(DType::float64);
  other.add(dense("enc", 3, "tanh"));
  CHECK_THROWS(other.share_layer("enc", base, "enc"), TypeError);
  Model wide;
  wide.add_input("x", {5});
  wide.add(dense("enc", 3, "tanh"));
  wide.call("enc", {{"x"}});
  wide.share_layer("enc", base, "enc");
  CHECK_THROWS(wide.build(), ShapeError);
}

TEST(graph_bad_graphs_are_refused_when_built) {
  Model twice;
  twice.add_input("a", {4});
  twice.add_input("b", {5});
  twice.add(dense("enc", 3));
  twice.call("enc", {{"a"}});
  twice.call("enc", {{"b"}});
  twice.set_outputs({{"enc", 0, 0}, {"enc", 1, 0}});
  CHECK_THROWS(twice.build(), ShapeError);  // one layer, two input shapes
  Model unused;
  unused.add_input("a", {4});
  unused.add_input("b", {4});
  unused.add(dense("d", 2));
  unused.call("d", {{"a"}});
  CHECK_THROWS(unused.build(), ValueError);  // input b feeds nothing
  Model missing;
  missing.add_input("a", {4});
  missing.add(dense("d", 2));
  missing.call("d", {{"a"}});
  missing.set_outputs({{"d", 1, 0}});
  CHECK_THROWS(missing.build(), ValueError);  // d has one call
  Model fine = siamese(DType::float32);
  fine.compile(LossKind::mse, sgd(0.1));
  const Tensor a = random_tensor({2, 4}, DType::float32, 1);
  CHECK_THROWS(fine.predict(std::vector<Tensor>{a}), ValueError);  // two inputs needed
  CHECK_THROWS(fine.predict(a), ValueError);                       // the one-tensor form
}

TEST(graph_file_round_trip_keeps_the_calls) {
  seed(11);
  Model m = siamese(DType::float32);
  m.compile({OutputLoss{LossKind::binary_cross_entropy, 1.0, {}}, OutputLoss{LossKind::mse, 0.5, {}}}, sgd(0.1));
  const std::string path = "graph_round_trip.corenn";
  m.save(path);
  Model back = load_model(path);
  std::remove(path.c_str());
  const std::vector<Tensor> x{random_tensor({3, 4}, DType::float32, 18), random_tensor({3, 4}, DType::float32, 19)};
  const std::vector<Tensor> p = m.predict(x), q = back.predict(x);
  CHECK(back.num_inputs() == 2 && back.num_outputs() == 2 && back.nodes().size() == 4);
  for (size_t o = 0; o < 2; ++o) CHECK(std::memcmp(p[o].data(), q[o].data(), sizeof(float) * p[o].size()) == 0);
  CHECK(back.losses().size() == 2 && back.losses()[1].kind == LossKind::mse && back.losses()[1].weight == 0.5);
}
