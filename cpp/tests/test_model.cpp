// The engine from C++ alone: build, train, predict, freeze, validate, batch norm.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "check.hpp"
#include "corenn/model.hpp"
#include "corenn/random.hpp"

using namespace corenn;

static LayerSpec dense(int64_t units, const char* activation = "linear") {
  return LayerSpec("dense").set("units", units).set("activation", activation).set("kernel_initializer", "he_normal");
}

// Two interleaved classes on a circle: not linearly separable, easy for an MLP.
static void make_rings(Tensor& x, Tensor& y) {
  const int64_t n = x.dim(0);
  for (int64_t i = 0; i < n; ++i) {
    const double angle = 6.283185307179586 * uniform01(11, static_cast<uint64_t>(i));
    const double radius = (i % 2 == 0) ? 0.5 : 1.5;
    x.data()[2 * i] = static_cast<float>(radius * std::cos(angle));
    x.data()[2 * i + 1] = static_cast<float>(radius * std::sin(angle));
    y.data_as<int64_t>()[i] = i % 2;
  }
}

static Model make_mlp() {
  Model m;
  m.add(dense(16, "tanh"));
  m.add(dense(2));
  m.build({2});
  OptimizerSpec opt;
  opt.kind = "adam";
  opt.adam.lr = 0.05;
  m.compile(LossKind::softmax_cross_entropy, opt);
  return m;
}

TEST(model_trains_from_cpp_and_predicts) {
  seed(3);
  Model m = make_mlp();
  Tensor x({200, 2});
  Tensor y({200}, DType::int64);
  make_rings(x, y);
  const double first = m.train_step(x, y);
  double last = first;
  for (int step = 0; step < 200; ++step) last = m.train_step(x, y);
  CHECK(last < 0.1 * first);
  Tensor p = m.predict(x);
  CHECK(p.shape() == (Shape{200, 2}));
  int64_t right = 0;
  for (int64_t i = 0; i < 200; ++i)
    right += (p.data()[2 * i + 1] > p.data()[2 * i]) == (y.data_as<int64_t>()[i] == 1);
  CHECK(right >= 195);
  CHECK(m.steps() == 201);
}

TEST(frozen_layer_keeps_its_weights_bit_for_bit) {
  seed(4);
  Model m = make_mlp();
  m.set_trainable(0, false);
  Tensor x({64, 2});
  Tensor y({64}, DType::int64);
  make_rings(x, y);
  const auto frozen = m.get_weights(0);
  const auto head = m.get_weights(1);
  for (int step = 0; step < 5; ++step) m.train_step(x, y);
  const auto frozen_after = m.get_weights(0);
  for (size_t t = 0; t < frozen.size(); ++t)
    for (int64_t i = 0; i < frozen[t].size(); ++i) CHECK(frozen[t].data()[i] == frozen_after[t].data()[i]);
  CHECK(head[0].data()[0] != m.get_weights(1)[0].data()[0]);
}

// Keras's rule for wrapped layers: a frozen layer inside a trainable wrapper
// (a BatchNormalization in TimeDistributed, the LSTM of a Bidirectional, both
// directions) keeps every weight of the wrapper, whatever the optimizer;
// unfreezing the wrapper unfreezes the layers in it.
TEST(a_frozen_layer_inside_a_wrapper_keeps_the_wrappers_weights) {
  seed(6);
  LayerSpec bn = LayerSpec("batch_norm").set("axis", -1);
  bn.trainable = false;
  LayerSpec lstm = LayerSpec("lstm", "inner").set("units", 3).set("return_sequences", true);
  lstm.trainable = false;
  Model m(DType::float64);
  m.add(LayerSpec("time_distributed", "td").set("layer", bn));
  m.add(LayerSpec("bidirectional", "bi").set("layer", lstm));
  m.add(LayerSpec("dense", "head").set("units", 2));
  m.build({4, 3});
  OptimizerSpec opt;
  opt.kind = "adamw";
  opt.adam.lr = 0.05;
  opt.adam.weight_decay = 0.1;
  m.compile(LossKind::mse, opt);
  Tensor x({5, 4, 3}, DType::float64), y({5, 4, 2}, DType::float64);
  for (int64_t i = 0; i < x.size(); ++i) x.data_as<double>()[i] = uniform01(7, static_cast<uint64_t>(i)) - 0.5;
  for (int64_t i = 0; i < y.size(); ++i) y.data_as<double>()[i] = uniform01(8, static_cast<uint64_t>(i));
  const auto same = [](const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
    bool ok = a.size() == b.size();
    for (size_t t = 0; ok && t < a.size(); ++t)
      ok = std::memcmp(a[t].data_as<double>(), b[t].data_as<double>(), sizeof(double) * a[t].size()) == 0;
    return ok;
  };
  const auto td = m.get_weights(0), bi = m.get_weights(1), head = m.get_weights(2);
  for (int step = 0; step < 3; ++step) m.train_step(x, y);
  CHECK(same(m.get_weights(0), td));
  CHECK(same(m.get_weights(1), bi));
  CHECK(!same(m.get_weights(2), head));
  m.set_trainable(1, true);  // the wrapper's flag is its layers' too
  m.train_step(x, y);
  CHECK(!same(m.get_weights(1), bi));
  CHECK(same(m.get_weights(0), td));
}

TEST(bad_input_throws_before_any_update) {
  seed(5);
  Model m = make_mlp();
  const Tensor before = m.get_parameters();
  Tensor x({4, 3});  // the model expects 2 features
  Tensor y({4}, DType::int64);
  CHECK_THROWS(m.train_step(x, y), ShapeError);
  Tensor x2({4, 2});
  y.data_as<int64_t>()[2] = 7;  // only 2 classes
  CHECK_THROWS(m.train_step(x2, y), ValueError);
  const Tensor after = m.get_parameters();
  for (int64_t i = 0; i < before.size(); ++i) CHECK(before.data()[i] == after.data()[i]);
  CHECK(m.steps() == 0);
  CHECK_THROWS(m.set_weights(0, {Tensor({3, 3})}), ValueError);
}

// Sample weights through the engine: all ones train bit for bit as no weights;
// weight 2 on an example = the example twice, with the batch mean's N changed
// (SGD's step scaled by 4/3 to match); bad weights throw before any update.
TEST(sample_weights_train_as_keras_weights) {
  Tensor x({3, 2}), y({3}, DType::int64), x4({4, 2}), y4({4}, DType::int64);
  const float xs[3][2] = {{0.5f, -1.f}, {1.5f, 0.25f}, {-0.75f, 2.f}};
  for (int64_t i = 0; i < 3; ++i) {
    std::memcpy(x.data() + 2 * i, xs[i], sizeof xs[i]);
    y.data_as<int64_t>()[i] = i % 2;
  }
  std::memcpy(x4.data(), xs[0], sizeof xs[0]);  // row 0 twice
  std::memcpy(x4.data() + 2, x.data(), sizeof(float) * 6);
  const int64_t y4s[4] = {0, 0, 1, 0};
  std::memcpy(y4.data_as<int64_t>(), y4s, sizeof y4s);
  auto sgd_model = [](double lr) {
    seed(9);
    Model m;
    m.add(dense(3, "tanh"));
    m.add(dense(2));
    m.build({2});
    OptimizerSpec opt;
    opt.sgd.lr = lr;
    m.compile(LossKind::softmax_cross_entropy, opt);
    return m;
  };
  Tensor ones({3}), two({3});
  for (int64_t i = 0; i < 3; ++i) ones.data()[i] = 1.f, two.data()[i] = i == 0 ? 2.f : 1.f;

  Model plain = sgd_model(0.1), weighted = sgd_model(0.1);
  CHECK(plain.train_step(x, y) == weighted.train_step(x, y, ones));
  const Tensor a = plain.get_parameters(), b = weighted.get_parameters();
  CHECK(std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0);

  Model twice = sgd_model(0.1), doubled = sgd_model(0.1 * 4.0 / 3.0);
  Tensor out;
  const double lw = twice.train_step(x, y, two, &out);
  const double ld = doubled.train_step(x4, y4);
  CHECK_CLOSE(lw * 3, ld * 4, 1e-6);
  CHECK(out.shape() == (Shape{3, 2}));
  const Tensor pw = twice.get_parameters(), pd = doubled.get_parameters();
  for (int64_t i = 0; i < pw.size(); ++i) CHECK_CLOSE(pw.data()[i], pd.data()[i], 1e-6);
  // evaluate and loss_and_gradients take the same weights.
  Tensor grads;
  CHECK_CLOSE(twice.evaluate(x, y, two, nullptr) * 3, doubled.evaluate(x4, y4, nullptr) * 4, 1e-6);
  CHECK_CLOSE(twice.loss_and_gradients(x, y, two, &grads) * 3,
              doubled.loss_and_gradients(x4, y4, &grads) * 4, 1e-6);

  const Tensor before = twice.get_parameters();
  Tensor bad({3}), wrong_shape({2}), wrong_dtype({3}, DType::float64);
  bad.data()[1] = -1.f;
  CHECK_THROWS(twice.train_step(x, y, bad), ValueError);
  bad.data()[1] = NAN;
  CHECK_THROWS(twice.train_step(x, y, bad), ValueError);
  CHECK_THROWS(twice.train_step(x, y, wrong_shape), ShapeError);
  CHECK_THROWS(twice.evaluate(x, y, wrong_dtype, nullptr), TypeError);
  const Tensor after = twice.get_parameters();
  CHECK(std::memcmp(before.data(), after.data(), sizeof(float) * before.size()) == 0);
  CHECK(twice.steps() == 1);
}

TEST(compile_rejects_bad_hyper_parameters) {
  Model m;
  m.add(dense(2));
  m.build({2});
  OptimizerSpec opt;
  opt.kind = "adam";
  opt.adam.beta1 = 1.5;
  CHECK_THROWS(m.compile(LossKind::softmax_cross_entropy, opt), ValueError);
  opt.kind = "sgd";
  opt.sgd.lr = -1.0;
  CHECK_THROWS(m.compile(LossKind::mse, opt), ValueError);
  opt.kind = "lbfgs";
  CHECK_THROWS(m.compile(LossKind::mse, opt), ValueError);
  CHECK(!m.compiled());
}

// A residual graph described by names, as an embedder (or a model file) does.
TEST(graph_with_a_residual_connection_trains_from_cpp) {
  seed(8);
  Model m;
  m.set_input_name("xy");
  LayerSpec a = dense(16, "tanh");
  a.name = "a";
  a.inputs = {"xy"};
  LayerSpec b = dense(16, "tanh");
  b.name = "b";
  b.inputs = {"a"};
  LayerSpec sum("add", "sum");
  sum.inputs = {"b", "a"};  // a feeds b and sum: its gradients are summed
  LayerSpec head = dense(2);
  head.name = "head";
  head.inputs = {"sum"};
  for (const LayerSpec& s : {head, sum, b, a}) m.add(s);  // any order: the engine sorts
  m.build({2});
  CHECK(m.output_layer() == 0);
  CHECK(m.layer_inputs(1) == (std::vector<std::string>{"b", "a"}));
  OptimizerSpec opt;
  opt.kind = "adam";
  opt.adam.lr = 0.05;
  m.compile(LossKind::softmax_cross_entropy, opt);
  Tensor x({200, 2});
  Tensor y({200}, DType::int64);
  make_rings(x, y);
  const double first = m.train_step(x, y);
  double last = first;
  for (int step = 0; step < 200; ++step) last = m.train_step(x, y);
  CHECK(last < 0.1 * first);
}

TEST(graph_errors_are_value_errors) {
  Model cycle;
  LayerSpec a = dense(2), b = dense(2), c = dense(2);
  a.name = "a", b.name = "b", c.name = "c";
  a.inputs = {"b"}, b.inputs = {"a"}, c.inputs = {"input"};
  cycle.add(a), cycle.add(b), cycle.add(c);
  CHECK_THROWS(cycle.build({2}), ValueError);
  CHECK(!cycle.built());
  Model two_outputs;
  b.inputs = {"input"}, c.inputs = {"input"};
  two_outputs.add(b), two_outputs.add(c);
  CHECK_THROWS(two_outputs.build({2}), ValueError);
  Model mismatch;
  LayerSpec sum("add");
  sum.inputs = {"input", "b"};
  b.set("units", 3);
  mismatch.add(b), mismatch.add(sum);
  CHECK_THROWS(mismatch.build({2}), ShapeError);
}

TEST(batch_norm_layer_trains_from_cpp_and_freezes) {
  seed(4);
  Model m;
  m.add(dense(16));
  m.add(LayerSpec("batch_norm").set("momentum", 0.9));
  m.add(LayerSpec("activation").set("activation", "tanh"));
  m.add(dense(2));
  m.build({2});
  OptimizerSpec opt;
  opt.kind = "adam";
  opt.adam.lr = 0.05;
  m.compile(LossKind::softmax_cross_entropy, opt);
  // gamma, beta, moving_mean, moving_variance; only gamma and beta are parameters.
  CHECK(m.get_weights(1).size() == 4);
  CHECK(m.count_params(1) == 32);
  Tensor x({200, 2});
  Tensor y({200}, DType::int64);
  make_rings(x, y);
  const double first = m.train_step(x, y);
  double last = first;
  for (int step = 0; step < 100; ++step) last = m.train_step(x, y);
  CHECK(last < 0.2 * first);
  const std::vector<Tensor> trained = m.get_weights(1);
  CHECK(trained[2].data()[0] != 0.0f && trained[3].data()[0] != 1.0f);  // the averages moved
  // Frozen: inference mode in training, nothing of the layer changes.
  m.set_trainable(1, false);
  for (int step = 0; step < 5; ++step) m.train_step(x, y);
  const std::vector<Tensor> after = m.get_weights(1);
  for (size_t i = 0; i < after.size(); ++i)
    CHECK(std::memcmp(after[i].data(), trained[i].data(), sizeof(float) * after[i].size()) == 0);
}

// A NaN in x turns the loss and every gradient NaN: the step changes nothing
// (parameters, batch norm averages, optimizer slots, step count) and returns
// NaN; the next finite step trains as if the bad one had never been.
TEST(non_finite_step_is_skipped_and_leaves_the_model_untouched) {
  seed(6);
  Model m;
  m.add(dense(8));
  m.add(LayerSpec("batch_norm"));
  m.add(dense(2));
  m.build({2});
  OptimizerSpec opt;
  opt.kind = "adam";
  opt.adam.lr = 0.01;
  m.compile(LossKind::softmax_cross_entropy, opt);
  Tensor x({32, 2});
  Tensor y({32}, DType::int64);
  make_rings(x, y);
  CHECK(std::isfinite(m.train_step(x, y)));
  const Tensor params = m.get_parameters(), state = m.get_state();
  const Model::OptimizerState slots = m.get_optimizer_state();
  Tensor bad({32, 2});
  std::memcpy(bad.data(), x.data(), sizeof(float) * 64);
  bad.data()[5] = std::numeric_limits<float>::quiet_NaN();
  CHECK(std::isnan(m.train_step(bad, y)));
  bad.data()[5] = std::numeric_limits<float>::infinity();
  CHECK(std::isnan(m.train_step(bad, y)));
  CHECK(m.steps() == 1);
  auto same = [](const Tensor& a, const Tensor& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), sizeof(float) * a.size()) == 0;
  };
  CHECK(same(m.get_parameters(), params));
  CHECK(same(m.get_state(), state));  // the forward pass had moved the averages to NaN
  const Model::OptimizerState slots_after = m.get_optimizer_state();
  CHECK(slots_after.step == slots.step && slots_after.slots.size() == 2);
  for (size_t i = 0; i < slots.slots.size(); ++i) CHECK(same(slots_after.slots[i], slots.slots[i]));
  // An uninterrupted twin takes the same second step.
  seed(6);
  Model twin;
  twin.add(dense(8));
  twin.add(LayerSpec("batch_norm"));
  twin.add(dense(2));
  twin.build({2});
  twin.compile(LossKind::softmax_cross_entropy, opt);
  twin.train_step(x, y);
  CHECK(m.train_step(x, y) == twin.train_step(x, y));
  CHECK(same(m.get_parameters(), twin.get_parameters()) && m.steps() == 2);
}
