// Model files from C++: every layer kind round-trips bit for bit, training
// resumes on the same trajectory, predict runs from several threads at once,
// and damaged, truncated and foreign files throw corenn::Error (never crash:
// the sanitizer build runs this file too).
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "check.hpp"
#include "corenn/corenn.hpp"
#include "corenn/kernels/activation.hpp"
#include "io/json.hpp"

using namespace corenn;

namespace {

// A fresh directory per test, removed with its files at the end.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/corenn_io_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    for (const std::string& name : entries()) ::unlink((path + "/" + name).c_str());
    ::rmdir(path.c_str());
  }
  std::string file(const std::string& name) const { return path + "/" + name; }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::string(e->d_name) != "." && std::string(e->d_name) != "..") out.push_back(e->d_name);
      ::closedir(d);
    }
    return out;
  }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Every layer kind of the engine, each with non-default attributes (checked
// against the registry below): a stack with a residual branch (add) joined
// back by concatenate.
Model every_layer_model(DType dtype) {
  Model m(dtype);
  m.set_input_name("image");
  m.add(LayerSpec("normalization").set("mean", {0.5, -1.0, 0.0}).set("variance", {4.0, 0.25, 1.0}));
  m.add(LayerSpec("random_flip").set("mode", "vertical"));
  m.add(LayerSpec("random_crop").set("pads", {1, 1, 2, 2}));
  m.add(LayerSpec("color_shift").set("delta", 0.2));
  m.add(LayerSpec("zero_padding2d").set("pads", {1, 0, 2, 1}));
  m.add(LayerSpec("conv2d")
            .set("filters", 4).set("kernel_size", {3, 3}).set("padding", "same").set("activation", "relu")
            .set("kernel_initializer", "random_normal").set("initializer_stddev", 0.3)
            .set("bias_initializer", "ones"));
  m.add(LayerSpec("depthwise_conv2d")
            .set("kernel_size", {3, 2}).set("depth_multiplier", 2).set("activation", "leaky_relu")
            .set("alpha", 0.2));
  m.add(LayerSpec("max_pool2d").set("kernel_size", {2, 2}));
  m.add(LayerSpec("separable_conv2d")
            .set("filters", 6).set("kernel_size", {3, 3}).set("padding", "same").set("activation", "tanh")
            .set("l2", 0.01));
  m.add(LayerSpec("conv2d_transpose")
            .set("filters", 3).set("kernel_size", {2, 2}).set("strides", {2, 2}).set("output_padding", {1, 0}));
  m.add(LayerSpec("up_sampling2d").set("size", {2, 1}).set("interpolation", "bilinear"));
  m.add(LayerSpec("avg_pool2d").set("kernel_size", {2, 2}).set("padding", "same"));
  m.add(LayerSpec("conv2d", "grouped")
            .set("filters", 6).set("groups", 3).set("kernel_size", {1, 1}).set("dilation", {1, 1})
            .set("use_bias", false).set("l1", 0.001));
  m.add(LayerSpec("batch_norm", "bn").set("momentum", 0.9).set("epsilon", 0.01));
  LayerSpec sum("add", "sum");
  sum.inputs = {"bn", "grouped"};
  m.add(sum);
  LayerSpec diff("subtract", "diff");
  diff.inputs = {"sum", "bn"};
  m.add(diff);
  // Keras's other element-wise merges: a gate, then the mean, max and min of
  // branches. The gate is a squeeze-and-excitation's per-channel scale: its
  // (6, 1, 1) factor broadcasts over the maps.
  LayerSpec squeeze("global_avg_pool2d", "squeeze");
  squeeze.inputs = {"bn"};
  m.add(squeeze);
  m.add(LayerSpec("reshape", "excite").set("target_shape", {6, 1, 1}));
  LayerSpec gate("multiply", "gate");
  gate.inputs = {"diff", "excite"};
  m.add(gate);
  LayerSpec mean("average", "mean");
  mean.inputs = {"gate", "sum", "bn"};
  m.add(mean);
  LayerSpec upper("maximum", "upper");
  upper.inputs = {"mean", "diff"};
  m.add(upper);
  LayerSpec lower("minimum", "lower");
  lower.inputs = {"upper", "gate", "sum"};
  m.add(lower);
  LayerSpec cat = LayerSpec("concatenate", "cat").set("axis", -3);
  cat.inputs = {"lower", "bn"};
  m.add(cat);
  m.add(LayerSpec("dropout").set("rate", 0.25));
  m.add(LayerSpec("global_avg_pool2d"));
  m.add(LayerSpec("reshape").set("target_shape", {2, -1}));
  m.add(LayerSpec("conv1d", "steps_conv")
            .set("filters", 4).set("kernel_size", {2}).set("dilation", {2}).set("padding", "causal")
            .set("activation", "tanh"));
  m.add(LayerSpec("max_pool1d").set("kernel_size", {2}).set("padding", "same"));
  m.add(LayerSpec("avg_pool1d", "steps_avg").set("kernel_size", {2}).set("strides", {1}).set("padding", "same"));
  m.add(LayerSpec("global_avg_pool1d", "gavg"));
  LayerSpec gmax("global_max_pool1d", "gmax");
  gmax.inputs = {"steps_avg"};
  m.add(gmax);
  LayerSpec pooled = LayerSpec("concatenate", "pooled").set("axis", -1);
  pooled.inputs = {"gavg", "gmax"};
  m.add(pooled);
  m.add(LayerSpec("flatten"));
  m.add(LayerSpec("unit_normalization").set("epsilon", 1e-6));
  m.add(LayerSpec("activation").set("activation", "leaky_relu").set("alpha", 0.3));
  LayerSpec frozen = LayerSpec("dense").set("units", 5).set("activation", "sigmoid");
  frozen.trainable = false;
  m.add(frozen);
  m.add(LayerSpec("dense", "logits").set("units", 3).set("l2", 1e-3));
  // Its 3 outputs read as a sequence of 3 steps of one feature; the LSTM gives the logits.
  m.add(LayerSpec("reshape", "steps").set("target_shape", {3, 1}));
  // Each step's cosine similarity to the others: (3, 3), a sequence of 3 steps of 3 features.
  LayerSpec similarity = LayerSpec("dot", "similarity").set("axes", {2, -1}).set("normalize", true);
  similarity.inputs = {"steps", "steps"};
  m.add(similarity);
  m.add(LayerSpec("simple_rnn").set("units", 2).set("return_sequences", true).set("go_backwards", true));
  m.add(LayerSpec("softmax").set("axis", 1));  // over the 3 steps
  m.add(LayerSpec("layer_norm").set("epsilon", 0.01));
  m.add(LayerSpec("gru").set("units", 3).set("return_sequences", true).set("use_bias", false).set("dropout", 0.2)
            .set("recurrent_dropout", 0.3));
  m.add(LayerSpec("lstm").set("units", 3).set("unit_forget_bias", false));
  // The LSTM's last output repeated over 2 steps, a Dense at each, then a
  // bidirectional GRU over them: the wrappers hold their layers as nested specs.
  m.add(LayerSpec("repeat_vector").set("n", 2));
  m.add(LayerSpec("time_distributed", "per_step")
            .set("layer", LayerSpec("dense", "step").set("units", 4).set("activation", "tanh")));
  m.add(LayerSpec("bidirectional", "both_ways")
            .set("layer", LayerSpec("gru", "gru_in").set("units", 2))
            .set("merge_mode", "concat"));
  m.build({3, 7, 6});
  return m;
}

// The kinds that take token ids, which no layer of every_layer_model outputs:
// ids (8,) -> embedding -> flatten -> dense.
Model token_model(DType dtype) {
  Model m(dtype);
  m.set_input_name("tokens");
  m.add(LayerSpec("embedding").set("input_dim", 9).set("output_dim", 3).set("mask_zero", true)
            .set("embeddings_initializer", "glorot_normal"));
  m.add(LayerSpec("flatten"));
  m.add(LayerSpec("dense", "logits").set("units", 3));
  m.build({8});
  return m;
}

// The attention kinds, which came after version 1 and whose second output (the
// attention weights) no layer takes, so the model names its output: a
// sequence (5, 4) -> positional encoding -> self-attention with a layer-normed
// key -> multi-head attention -> additive attention over the encoded sequence
// -> self-attention with concat scores -> LSTM (dropout rates are stored, and
// inert in predict).
Model attention_model(DType dtype) {
  Model m(dtype);
  m.set_input_name("sequence");
  m.add(LayerSpec("positional_encoding", "pe").set("max_wavelength", 100.0));
  m.add(LayerSpec("layer_norm", "key").set("center", false));
  LayerSpec att = LayerSpec("attention", "att").set("use_scale", true).set("use_causal_mask", true);
  att.inputs = {"pe", "pe", "key"};  // query, value, key
  m.add(att);
  LayerSpec mha = LayerSpec("multi_head_attention", "mha").set("num_heads", 2).set("key_dim", 3)
                      .set("value_dim", 2).set("output_shape", {4}).set("use_causal_mask", true);
  mha.inputs = {"att", "pe", "key"};
  m.add(mha);
  LayerSpec additive = LayerSpec("additive_attention", "additive").set("dropout", 0.25);
  additive.inputs = {"mha", "pe"};  // query, value (= key)
  m.add(additive);
  LayerSpec concat = LayerSpec("attention", "concat").set("score_mode", "concat").set("use_scale", true)
                         .set("dropout", 0.1);
  concat.inputs = {"additive", "additive"};
  m.add(concat);
  m.add(LayerSpec("lstm", "last").set("units", 3));
  m.set_outputs({{"last"}});
  m.build({5, 4});
  return m;
}

// Masks are not stored: they follow from the layers' attributes. Ids (6,)
// with 0 = padding -> embedding(mask_zero) -> dropout (passes the mask) ->
// lstm over the valid steps -> dense; and features (6, 2) -> masking -> gru.
Model masked_token_model(DType dtype) {
  Model m(dtype);
  m.set_input_name("tokens");
  m.add(LayerSpec("embedding").set("input_dim", 9).set("output_dim", 3).set("mask_zero", true));
  m.add(LayerSpec("dropout").set("rate", 0.5));
  m.add(LayerSpec("lstm").set("units", 4));
  m.add(LayerSpec("dense").set("units", 3));
  m.build({6});
  return m;
}

Model masking_model(DType dtype) {
  Model m(dtype);
  m.add(LayerSpec("masking").set("mask_value", -1.0));
  m.add(LayerSpec("gru").set("units", 3).set("return_sequences", true));
  m.add(LayerSpec("simple_rnn").set("units", 2));
  m.build({6, 2});
  return m;
}

// Ids 0..8 for token_model, as the model's floats.
Tensor random_ids(const Model& m, int64_t batch) {
  Tensor x({batch, m.input_shape()[0]}, m.dtype());
  for (int64_t i = 0; i < x.size(); ++i) {
    if (m.dtype() == DType::float32) x.data_as<float>()[i] = static_cast<float>((i * 5 + 2) % 9);
    else x.data_as<double>()[i] = static_cast<double>((i * 5 + 2) % 9);
  }
  return x;
}

Tensor random_input(const Model& m, int64_t batch, unsigned seed) {
  Shape s{batch};
  s.insert(s.end(), m.input_shape().begin(), m.input_shape().end());
  Tensor x(s, m.dtype());
  const auto v = corenn_test::random_vector<double>(static_cast<size_t>(x.size()), seed);
  for (int64_t i = 0; i < x.size(); ++i) {
    if (m.dtype() == DType::float32) x.data_as<float>()[i] = static_cast<float>(v[static_cast<size_t>(i)]);
    else x.data_as<double>()[i] = v[static_cast<size_t>(i)];
  }
  return x;
}

Tensor labels(int64_t batch, int64_t classes) {
  Tensor y({batch}, DType::int64);
  for (int64_t i = 0; i < batch; ++i) y.data_as<int64_t>()[i] = (i * 7 + 3) % classes;
  return y;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  if (a.dtype() == DType::float32)
    return std::memcmp(a.data_as<float>(), b.data_as<float>(), sizeof(float) * static_cast<size_t>(a.size())) == 0;
  if (a.dtype() == DType::float64)
    return std::memcmp(a.data_as<double>(), b.data_as<double>(), sizeof(double) * static_cast<size_t>(a.size())) == 0;
  return std::memcmp(a.data_as<int64_t>(), b.data_as<int64_t>(), sizeof(int64_t) * static_cast<size_t>(a.size())) == 0;
}

// The same layer: kind, name, inputs, trainable and every attribute (defaults filled in).
bool same_spec(const LayerSpec& a, const LayerSpec& b) {
  const LayerSpec x = complete_layer_spec(a), y = complete_layer_spec(b);
  return x.kind == y.kind && x.name == y.name && x.inputs == y.inputs && x.trainable == y.trainable &&
         x.attributes == y.attributes;
}

void check_same_model(const Model& a, const Model& b) {
  CHECK(a.dtype() == b.dtype());
  CHECK(a.input_name() == b.input_name());
  CHECK(a.input_shape() == b.input_shape());
  CHECK(a.num_layers() == b.num_layers());
  // The file keeps the graph as calls: the stack shorthand's LayerSpec::inputs
  // come back empty, and each layer's inputs through layer_inputs.
  auto without_inputs = [](LayerSpec s) {
    s.inputs.clear();
    return s;
  };
  for (size_t i = 0; i < a.num_layers() && i < b.num_layers(); ++i) {
    CHECK(same_spec(without_inputs(a.layer_spec(i)), without_inputs(b.layer_spec(i))));
    CHECK(a.layer_inputs(i) == b.layer_inputs(i));
    const auto wa = a.get_weights(i), wb = b.get_weights(i);
    CHECK(wa.size() == wb.size());
    for (size_t w = 0; w < wa.size() && w < wb.size(); ++w) CHECK(same_bytes(wa[w], wb[w]));
  }
}

// Loads a file that may be damaged: a model or a corenn::Error, nothing else.
// Returns true when it loaded (and then predicted without trouble).
bool load_or_error(const std::string& path, int& other_exceptions) {
  try {
    Model m = load_model(path);
    Tensor x(Shape{2, 3, 7, 6}, m.dtype());
    if (m.input_shape() == Shape{3, 7, 6}) m.predict(x);
    return true;
  } catch (const Error&) {
    return false;
  } catch (...) {
    ++other_exceptions;
    return false;
  }
}

}  // namespace

TEST(io_every_layer_round_trips_bit_for_bit) {
  for (DType dtype : {DType::float32, DType::float64}) {
    seed(21);
    TempDir dir;
    Model m = every_layer_model(dtype);
    m.save(dir.file("every.corenn"));
    Model loaded = load_model(dir.file("every.corenn"));
    check_same_model(m, loaded);
    CHECK(!loaded.compiled());
    const Tensor x = random_input(m, 5, 1);
    CHECK(same_bytes(m.predict(x), loaded.predict(x)));
    CHECK(loaded.weight_names(0) == (std::vector<std::string>{"mean", "variance"}));
    CHECK(loaded.weight_names(5) == (std::vector<std::string>{"kernel", "bias"}));
    CHECK(loaded.weight_names(6) == (std::vector<std::string>{"depthwise_kernel", "bias"}));
    CHECK(loaded.weight_names(8) ==
          (std::vector<std::string>{"depthwise_kernel", "pointwise_kernel", "bias"}));
    CHECK(loaded.weight_names(13) ==
          (std::vector<std::string>{"gamma", "beta", "moving_mean", "moving_variance"}));
    CHECK(loaded.get_weights(loaded.layer_index("steps_conv"))[0].shape() == (Shape{4, 2, 2}));  // PyTorch's Conv1d layout
    const size_t per_step = loaded.layer_index("per_step"), both_ways = loaded.layer_index("both_ways");
    CHECK(loaded.weight_names(per_step) == (std::vector<std::string>{"kernel", "bias"}));
    CHECK(loaded.get_weights(per_step)[0].shape() == (Shape{4, 3}));
    CHECK(loaded.weight_names(both_ways) ==
          (std::vector<std::string>{"forward_kernel", "forward_recurrent_kernel", "forward_bias",
                                    "forward_recurrent_bias", "backward_kernel", "backward_recurrent_kernel",
                                    "backward_bias", "backward_recurrent_bias"}));
    const LayerSpec& inner = loaded.layer_spec(per_step).get<NestedLayer>("layer").spec();
    CHECK(inner.kind == "dense" && inner.name == "step" && inner.get<int64_t>("units") == 4);
    CHECK(loaded.model_output_shape(0) == Shape{4});
    CHECK(dir.entries() == std::vector<std::string>{"every.corenn"});
  }
}

TEST(io_token_model_round_trips_bit_for_bit) {
  for (DType dtype : {DType::float32, DType::float64}) {
    seed(30);
    TempDir dir;
    Model m = token_model(dtype);
    m.save(dir.file("tokens.corenn"));
    Model loaded = load_model(dir.file("tokens.corenn"));
    check_same_model(m, loaded);
    CHECK(loaded.weight_names(0) == std::vector<std::string>{"embeddings"});
    CHECK(loaded.get_weights(0)[0].shape() == (Shape{9, 3}));  // (input_dim, output_dim)
    const Tensor x = random_ids(m, 5);
    CHECK(same_bytes(m.predict(x), loaded.predict(x)));
  }
}

TEST(io_attention_model_round_trips_bit_for_bit) {
  for (DType dtype : {DType::float32, DType::float64}) {
    seed(31);
    TempDir dir;
    Model m = attention_model(dtype);
    m.save(dir.file("attention.corenn"));
    Model loaded = load_model(dir.file("attention.corenn"));
    check_same_model(m, loaded);
    CHECK(loaded.weight_names(3) == (std::vector<std::string>{"query_kernel", "query_bias", "key_kernel", "key_bias",
                                                              "value_kernel", "value_bias", "output_kernel",
                                                              "output_bias"}));
    CHECK(loaded.get_weights(3)[0].shape() == (Shape{6, 4}));  // (num_heads·key_dim, D)
    CHECK(loaded.weight_names(4) == (std::vector<std::string>{"scale"}));
    CHECK(loaded.get_weights(4)[0].shape() == (Shape{4}));  // one weight per feature
    CHECK(loaded.weight_names(5) == (std::vector<std::string>{"scale", "concat_score_weight"}));
    CHECK(loaded.layer_spec(5).get<double>("dropout") == 0.1);
    const Tensor x = random_input(m, 5, 4);
    CHECK(same_bytes(m.predict(x), loaded.predict(x)));
  }
}

// The same valid steps padded on the right and on the left predict the same,
// in the model and in the one loaded from its file.
TEST(io_masked_models_round_trip_and_skip_padding) {
  seed(31);
  TempDir dir;
  Model m = masked_token_model(DType::float64);
  Model f = masking_model(DType::float64);
  m.save(dir.file("masked.corenn"));
  f.save(dir.file("masking.corenn"));
  const Model loaded[] = {load_model(dir.file("masked.corenn")), load_model(dir.file("masking.corenn"))};
  Tensor ids({2, 6}, DType::float64), features({2, 6, 2}, DType::float64);
  const double tokens[] = {3, 5, 2, 0, 0, 0, 0, 0, 0, 3, 5, 2};
  for (int i = 0; i < 12; ++i) {
    ids.data_as<double>()[i] = tokens[i];
    for (int k = 0; k < 2; ++k) features.data_as<double>()[2 * i + k] = tokens[i] == 0 ? -1.0 : tokens[i] * (k + 1);
  }
  const Tensor* inputs[] = {&ids, &features};
  const Model* models[] = {&m, &f};
  for (int k = 0; k < 2; ++k) {
    const Tensor y = models[k]->predict(*inputs[k]);
    CHECK(same_bytes(y, loaded[k].predict(*inputs[k])));
    const int64_t width = y.size() / 2;
    for (int64_t j = 0; j < width; ++j) CHECK_CLOSE(y.data_as<double>()[j], y.data_as<double>()[width + j], 1e-12);
  }
}

// A new layer kind missing from every_layer_model (or token_model, attention_model,
// masking_model) fails here.
TEST(io_every_layer_model_has_every_registered_kind) {
  std::set<std::string> used, registered;
  const Model models[] = {every_layer_model(DType::float32), token_model(DType::float32),
                          attention_model(DType::float32), masking_model(DType::float32)};
  for (const Model& m : models)
    for (size_t i = 0; i < m.num_layers(); ++i) used.insert(m.layer_spec(i).kind);
  for (const LayerKindInfo& k : layer_kinds()) registered.insert(k.kind);
  CHECK(used == registered);
}

// Every name of the activation registry as a model-file field: fused into a
// convolution (softmax over its channels) and a dense layer, and on its own.
TEST(io_every_activation_round_trips) {
  for (const ActivationEntry& e : activation_registry()) {
    seed(22);
    TempDir dir;
    Model m(DType::float64);
    m.add(LayerSpec("conv2d").set("filters", 3).set("kernel_size", {2, 2}).set("activation", e.name));
    m.add(LayerSpec("flatten"));
    m.add(LayerSpec("dense").set("units", 4).set("activation", e.name).set("alpha", e.default_alpha));
    m.add(LayerSpec("activation").set("activation", e.name).set("alpha", 0.3));
    m.build({2, 4, 4});
    m.save(dir.file("act.corenn"));
    Model loaded = load_model(dir.file("act.corenn"));
    check_same_model(m, loaded);
    CHECK(loaded.layer_spec(3).get<std::string>("activation") == e.name);
    const Tensor x = random_input(m, 5, 2);
    CHECK(same_bytes(m.predict(x), loaded.predict(x)));
  }
}

TEST(io_graph_round_trips_with_its_edges) {
  seed(28);
  TempDir dir;
  Model m(DType::float64);
  const auto from = [](LayerSpec spec, std::vector<std::string> inputs) {
    spec.inputs = std::move(inputs);
    return spec;
  };
  m.add(LayerSpec("conv2d", "a").set("filters", 3).set("kernel_size", {3, 3}).set("padding", "same"));
  m.add(from(LayerSpec("conv2d", "b").set("filters", 3), {"input"}));
  m.add(from(LayerSpec("add", "sum"), {"a", "b"}));
  m.add(from(LayerSpec("concatenate", "cat").set("axis", 1), {"sum", "a"}));
  m.add(from(LayerSpec("flatten", "flat"), {"cat"}));
  m.add(from(LayerSpec("dense").set("units", 2), {"flat"}));
  m.build({2, 4, 4});
  m.save(dir.file("graph.corenn"));
  const Model loaded = load_model(dir.file("graph.corenn"));
  check_same_model(m, loaded);
  const Tensor x = random_input(m, 3, 5);
  CHECK(same_bytes(m.predict(x), loaded.predict(x)));
}

// A model file's bytes with every layer of its architecture changed by `change`.
template <typename F>
std::string with_layers(const std::string& file, F&& change) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[static_cast<size_t>(i)]);
  json::Value header = json::parse(file.substr(8, n), "header");
  json::Value meta = *header.find("__metadata__");
  json::Value arch = json::parse(meta.find("model")->as_string("model"), "model");
  json::Value layers = json::Value::array();
  for (const json::Value& layer : arch.find("layers")->as_array("layers")) {
    json::Value changed = layer;
    change(changed);
    layers.push_back(changed);
  }
  arch.set("layers", layers);
  meta.set("model", json::Value(arch.dump()));
  header.set("__metadata__", meta);
  const std::string text = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  return bytes + text + file.substr(8 + n);
}

// A version-2 file of a one-input model rewritten as version 1 wrote it: one
// input (input_name, input_shape) and each layer naming its inputs.
std::string as_version_1(const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(file[static_cast<size_t>(i)]);
  json::Value header = json::parse(file.substr(8, n), "header");
  json::Value meta = *header.find("__metadata__");
  const json::Value arch = json::parse(meta.find("model")->as_string("model"), "model");
  const json::Value& input = arch.find("inputs")->as_array("inputs").at(0);
  json::Value old = json::Value::object();
  old.set("dtype", *arch.find("dtype"));
  old.set("input_name", *input.find("name"));
  old.set("input_shape", *input.find("shape"));
  json::Value layers = json::Value::array();
  for (const json::Value& layer : arch.find("layers")->as_array("layers")) {
    json::Value named = layer;
    json::Value inputs = json::Value::array();
    for (const json::Value& call : arch.find("calls")->as_array("calls"))
      if (call.find("layer")->as_string("layer") == layer.find("name")->as_string("name"))
        for (const json::Value& ref : call.find("inputs")->as_array("inputs")) inputs.push_back(ref.as_array("ref").at(0));
    named.set("inputs", inputs);
    layers.push_back(named);
  }
  old.set("layers", layers);
  meta.set("model", json::Value(old.dump()));
  meta.set("format_version", json::Value("1"));
  header.set("__metadata__", meta);
  const std::string text = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((text.size() >> (8 * i)) & 0xFF);
  return bytes + text + file.substr(8 + n);
}

// Format version 1 files, as corenn wrote them before the layer registry, hold
// every field of the one LayerSpec struct all kinds shared, for every layer
// (with its default where the kind did not use it): they load, each kind
// keeping its own attributes, and predict as before. A name that never was a
// field stays an error.
TEST(io_version_1_files_with_every_old_field_load) {
  seed(29);
  TempDir dir;
  const Model m = every_layer_model(DType::float64);
  m.save(dir.file("new.corenn"));
  const std::vector<std::pair<const char*, json::Value>> old_fields = [] {
    json::Value none = json::Value::array(), one_one = json::Value::array(), two_two = json::Value::array(),
                zeros = json::Value::array();
    for (int i = 0; i < 2; ++i) one_one.push_back(json::Value(1)), two_two.push_back(json::Value(2));
    for (int i = 0; i < 4; ++i) zeros.push_back(json::Value(0));
    return std::vector<std::pair<const char*, json::Value>>{
        {"units", json::Value(0)}, {"use_bias", json::Value(true)},
        {"kernel_initializer", json::Value("glorot_uniform")}, {"bias_initializer", json::Value("zeros")},
        {"initializer_stddev", json::Value(0.01)}, {"l1", json::Value(0.0)}, {"l2", json::Value(0.0)},
        {"activation", json::Value("linear")}, {"alpha", json::Value(0.01)}, {"rate", json::Value(0.0)},
        {"target_shape", none}, {"filters", json::Value(0)}, {"kernel_size", one_one}, {"strides", none},
        {"padding", json::Value("valid")}, {"pads", zeros}, {"dilation", one_one}, {"groups", json::Value(1)},
        {"depth_multiplier", json::Value(1)}, {"output_padding", none}, {"axis", json::Value(1)},
        {"momentum", json::Value(0.99)}, {"epsilon", json::Value(0.001)}, {"center", json::Value(true)},
        {"scale", json::Value(true)}, {"mode", json::Value("horizontal_and_vertical")},
        {"delta", json::Value(0.0)}, {"mean", none}, {"variance", none}, {"size", two_two},
        {"interpolation", json::Value("nearest")}};
  }();
  const std::string file = read_bytes(dir.file("new.corenn"));
  write_bytes(dir.file("v1.corenn"), with_layers(as_version_1(file), [&](json::Value& layer) {
    for (const auto& field : old_fields)
      if (!layer.find(field.first)) layer.set(field.first, field.second);
    // The recurrent, sequence and dot kinds came after version 1, with attributes of their own.
    static const std::set<std::string> later{"simple_rnn", "gru", "lstm", "dot", "repeat_vector",
                                             "time_distributed", "bidirectional"};
    if (!later.count(layer.find("kind")->as_string("kind"))) CHECK(layer.as_object("layer").size() == 35);
  }));
  const Model old = load_model(dir.file("v1.corenn"));
  check_same_model(m, old);
  const Tensor x = random_input(m, 4, 3);
  CHECK(same_bytes(m.predict(x), old.predict(x)));
  // Saved again, each layer holds its kind's attributes only.
  old.save(dir.file("again.corenn"));
  CHECK(read_bytes(dir.file("again.corenn")) == file);

  write_bytes(dir.file("bad.corenn"), with_layers(file, [](json::Value& layer) {
    layer.set("recurrent", json::Value(true));
  }));
  bool named = false;
  try {
    load_model(dir.file("bad.corenn"));
  } catch (const ValueError& e) {
    named = std::string(e.what()).find("unknown attribute 'recurrent'") != std::string::npos;
  }
  CHECK(named);
}

TEST(io_training_resumes_on_the_same_trajectory) {
  for (const char* kind : {"adam", "sgd"}) {
    seed(22);
    TempDir dir;
    Model a = every_layer_model(DType::float32);
    OptimizerSpec opt;
    opt.kind = kind;
    opt.adam.lr = 0.01;
    opt.sgd.lr = 0.05;
    opt.sgd.momentum = 0.9;
    opt.sgd.nesterov = true;
    a.compile(LossKind::softmax_cross_entropy, opt);
    const Tensor x = random_input(a, 8, 2);
    const Tensor y = labels(8, 3);
    for (int s = 0; s < 3; ++s) a.train_step(x, y);
    a.save(dir.file("run.corenn"));
    Model b = load_model(dir.file("run.corenn"));
    CHECK(b.compiled());
    CHECK(b.steps() == 3);
    CHECK(b.optimizer().kind == kind);
    CHECK(b.dropout_key() == a.dropout_key());
    for (int s = 0; s < 4; ++s) CHECK(a.train_step(x, y) == b.train_step(x, y));
    CHECK(same_bytes(a.get_parameters(), b.get_parameters()));
    CHECK(same_bytes(a.get_state(), b.get_state()));
    const auto sa = a.get_optimizer_state(), sb = b.get_optimizer_state();
    CHECK(sa.step == 7 && sb.step == 7 && sa.slots.size() == sb.slots.size());
    for (size_t i = 0; i < sa.slots.size() && i < sb.slots.size(); ++i) CHECK(same_bytes(sa.slots[i], sb.slots[i]));

    // Without the optimizer: weights only, not compiled.
    a.save(dir.file("weights.corenn"), false);
    Model c = load_model(dir.file("weights.corenn"));
    CHECK(!c.compiled());
    CHECK(same_bytes(a.get_parameters(), c.get_parameters()));
  }
}

TEST(io_predict_from_several_threads_at_once) {
  seed(23);
  TempDir dir;
  every_layer_model(DType::float32).save(dir.file("m.corenn"));
  const Model m = load_model(dir.file("m.corenn"));
  std::vector<Tensor> inputs, expected;
  for (unsigned t = 0; t < 4; ++t) {
    inputs.push_back(random_input(m, 3 + t, 100 + t));
    expected.push_back(m.predict(inputs.back()));
  }
  std::vector<int> ok(4, 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) ok[t] += same_bytes(m.predict(inputs[t]), expected[t]);
    });
  for (auto& th : threads) th.join();
  for (int v : ok) CHECK(v == 20);
}

TEST(io_load_weights_checks_everything_before_writing) {
  seed(24);
  TempDir dir;
  Model source = every_layer_model(DType::float64);
  source.save(dir.file("f64.corenn"));
  Model target = every_layer_model(DType::float32);
  target.load_weights(dir.file("f64.corenn"));  // cast from float64
  const size_t last = target.num_layers() - 1;
  const auto w = target.get_weights(last), s = source.get_weights(last);
  CHECK(w[0].dtype() == DType::float32);
  CHECK(w[0].data()[3] == static_cast<float>(s[0].data_as<double>()[3]));

  // Same kinds, one shape differs in the last layer: nothing may change.
  Model other(DType::float32);
  for (size_t i = 0; i + 1 < target.num_layers(); ++i) other.add(target.layer_spec(i));
  other.add(LayerSpec("lstm", target.layer_spec(last).name).set("units", 4));
  other.build({3, 7, 6});
  const Tensor before = other.get_parameters();
  CHECK_THROWS(other.load_weights(dir.file("f64.corenn")), ValueError);
  CHECK(same_bytes(before, other.get_parameters()));
  Model unbuilt;
  CHECK_THROWS(unbuilt.load_weights(dir.file("f64.corenn")), ValueError);
}

TEST(io_save_failures_leave_no_file_behind) {
  seed(25);
  TempDir dir;
  Model m = every_layer_model(DType::float32);
  m.save(dir.file("good.corenn"));
  const std::string good = read_bytes(dir.file("good.corenn"));
  // A directory in the way: the rename fails, the temporary goes away.
  ::mkdir(dir.file("taken").c_str(), 0700);
  CHECK_THROWS(m.save(dir.file("taken")), IOError);
  CHECK_THROWS(m.save(dir.file("missing/dir/m.corenn")), IOError);
  // Content errors come before any file is touched.
  Model unbuilt;
  CHECK_THROWS(unbuilt.save(dir.file("good.corenn")), ValueError);
  CHECK_THROWS(m.save(dir.file("good.corenn"), true, {{"format", "x"}}), ValueError);
  CHECK_THROWS(m.save(dir.file("good.corenn"), true, {{"note", "latin-1 \xe9"}}), ValueError);
  CHECK(read_bytes(dir.file("good.corenn")) == good);
  auto names = dir.entries();
  std::sort(names.begin(), names.end());
  CHECK(names == (std::vector<std::string>{"good.corenn", "taken"}));
  ::rmdir(dir.file("taken").c_str());
  // Saving again over the file gives the same bytes (deterministic writer).
  m.save(dir.file("good.corenn"), true, {});
  CHECK(read_bytes(dir.file("good.corenn")) == good);
}

TEST(io_foreign_and_bad_files_throw_clear_errors) {
  seed(26);
  TempDir dir;
  CHECK_THROWS(load_model(dir.file("absent.corenn")), IOError);
  CHECK_THROWS(load_model(dir.path), IOError);
  write_bytes(dir.file("empty"), "");
  CHECK_THROWS(load_model(dir.file("empty")), ValueError);

  const auto with_header = [&](const std::string& header, const std::string& data = "") {
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    write_bytes(dir.file("h"), bytes + header + data);
    try {
      load_model(dir.file("h"));
    } catch (const ValueError& e) {
      return std::string(e.what());
    }
    return std::string("no ValueError");
  };
  const auto mentions = [](const std::string& text, const char* part) { return text.find(part) != std::string::npos; };
  // A safetensors file from another library.
  CHECK(mentions(with_header(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcd"),
                 "no __metadata__"));
  CHECK(mentions(with_header(R"({"__metadata__":{"format":"pt"}})"), "not a corenn model file"));
  CHECK(mentions(with_header("{\"__metadata__\":{\"format\":\"corenn\",\"format_version\":\"" + std::to_string(model_file_version + 1) + "\"}}"), "newer"));
  CHECK(mentions(with_header(R"({"__metadata__":{"format":"corenn","format_version":"one"}})"), "format_version"));
  CHECK(mentions(with_header("[1, 2]"), "must be an object"));
  CHECK(mentions(with_header(std::string(200, '[')), "nesting deeper"));
  CHECK(mentions(with_header("{\"__metadata__\":{\"format\":\"corenn\",\"format_version\":\"1\",\"model\":"
                             "\"{\\\"dtype\\\":\\\"float32\\\",\\\"input_name\\\":\\\"input\\\",\\\"input_shape\\\":[2],"
                             "\\\"layers\\\":[{\\\"kind\\\":\\\"transformer\\\",\\\"name\\\":\\\"t\\\"}]}\"}}"),
                 "unknown kind 'transformer'"));
  // Huge header length; offsets outside the data; a dtype nobody knows.
  std::string huge(16, '\xff');
  write_bytes(dir.file("huge"), huge);
  CHECK_THROWS(load_model(dir.file("huge")), ValueError);
  const std::string meta = R"("__metadata__":{"format":"corenn","format_version":"1"})";
  CHECK(mentions(with_header("{" + meta + R"(,"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "abcd"),
                 "outside"));
  CHECK(mentions(with_header("{" + meta + R"(,"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", "abcd"),
                 "unsupported dtype"));
  CHECK(mentions(with_header("{" + meta + R"(,"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})",
                             "abcd"),
                 "overflows"));
  CHECK(mentions(with_header("{" + meta + R"(,"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcdefgh"),
                 "after the last tensor"));
}

TEST(io_damaged_files_throw_and_never_crash) {
  seed(27);
  TempDir dir;
  Model m = every_layer_model(DType::float32);
  OptimizerSpec opt;
  opt.kind = "adam";
  m.compile(LossKind::softmax_cross_entropy, opt);
  m.save(dir.file("m.corenn"));
  const std::string good = read_bytes(dir.file("m.corenn"));
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<unsigned char>(good[static_cast<size_t>(i)]);
  int others = 0, loaded = 0;
  const std::string path = dir.file("bad.corenn");
  // Every truncation inside the header and around the data section.
  for (size_t cut = 0; cut < good.size(); cut += (cut < 8 + header + 64 ? 1 : 97)) {
    write_bytes(path, good.substr(0, cut));
    loaded += load_or_error(path, others);
  }
  CHECK(loaded == 0);
  // Seeded single-bit and single-byte mutations all over the file.
  uint64_t state = 12345;
  const auto next = [&] { return state = state * 6364136223846793005ull + 1442695040888963407ull; };
  for (int trial = 0; trial < 1500; ++trial) {
    std::string bad = good;
    const size_t at = static_cast<size_t>((next() >> 33) % (trial % 2 ? bad.size() : 8 + header));
    if (trial % 3 == 0) bad[at] = static_cast<char>(next() >> 56);
    else bad[at] = static_cast<char>(bad[at] ^ (1 << ((next() >> 40) % 8)));
    write_bytes(path, bad);
    load_or_error(path, others);
  }
  // Header lengths around the truth and far beyond it.
  for (uint64_t n : {uint64_t{0}, uint64_t{1}, header - 1, header + 1, uint64_t(good.size()),
                     uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string bad = good;
    for (int i = 0; i < 8; ++i) bad[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xFF);
    write_bytes(path, bad);
    loaded += load_or_error(path, others);
  }
  CHECK(loaded == 0);
  CHECK(others == 0);
}

TEST(io_json_is_strict_and_exact) {
  using json::parse;
  using json::Value;
  // Doubles read back bit for bit.
  const auto v = corenn_test::random_vector<double>(2000, 9, 1e3);
  for (size_t i = 0; i < v.size(); ++i) {
    const double d = v[i] * std::pow(10.0, static_cast<double>(i % 40) - 20.0);
    const double back = parse(Value(d).dump(), "t").as_double("d");
    CHECK(std::memcmp(&d, &back, sizeof d) == 0);
  }
  for (double d : {0.1, 1.0, -0.0, 5e-324, 1.7976931348623157e308, 1e20, 123456789012345678.0}) {
    const double back = parse(Value(d).dump(), "t").as_double("d");
    CHECK(std::memcmp(&d, &back, sizeof d) == 0);
  }
  CHECK(parse("9223372036854775807", "t").as_int("i") == INT64_MAX);
  CHECK(parse("-9223372036854775808", "t").as_int("i") == INT64_MIN);
  CHECK_THROWS(parse("9223372036854775808", "t").as_int("i"), ValueError);
  CHECK_THROWS(parse("1.0", "t").as_int("i"), ValueError);
  // Strings: escapes, \u with surrogate pairs, raw UTF-8, and back.
  const std::string s = parse(R"("a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00€")", "t").as_string("s");
  CHECK(s == "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xe2\x82\xac");
  CHECK(parse(Value(s).dump(), "t").as_string("s") == s);
  const std::string ctrl("\x01\x1f", 2);
  CHECK(parse(Value(ctrl).dump(), "t").as_string("s") == ctrl);
  // Nesting: 64 levels parse, 65 do not.
  CHECK(parse(std::string(64, '[') + std::string(64, ']'), "t").type() == Value::Type::array);
  CHECK_THROWS(parse(std::string(65, '[') + std::string(65, ']'), "t"), ValueError);
  for (const char* bad : {"", "{", "[1,]", "{\"a\":1,}", "{\"a\":1,\"a\":2}", "NaN", "Infinity", "01", "1.",
                          ".5", "1e", "+1", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
                          "\"\x01\"", "\"\xc3\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xff\"", "tru",
                          "nul", "1 2", "{\"a\" 1}", "[1 2]", "1e400", "\"abc", "{1:2}"})
    CHECK_THROWS(parse(bad, "t"), ValueError);
}
