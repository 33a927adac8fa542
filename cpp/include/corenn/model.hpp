// The model engine: a graph of layers (a stack is the simplest) over one flat
// parameter arena, trained one mini-batch per call (forward, loss, backward,
// regularisation and the optimizer update in C++, with no Python in between).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "corenn/attributes.hpp"
#include "corenn/kernels/optim.hpp"
#include "corenn/tensor.hpp"

namespace corenn {

// A layer's configuration: its kind ("dense", "conv2d", ...; layer_kinds()
// lists them), its name, where its input comes from, and its attributes, named
// exactly as the Python layer's get_config() names them:
//   model.add(LayerSpec("dense", "fc1").set("units", 128).set("activation", "relu"));
// An attribute left out takes its kind's default (layer_kinds()); an unknown
// one, or one of the wrong type, is a ValueError naming the layer.
struct LayerSpec {
  std::string kind;
  std::string name;
  // The layers feeding this one, by name (the model input is named by
  // Model::input_name()). Empty: the layer added just before (the model input
  // for the first), which is how a Sequential stack is described.
  std::vector<std::string> inputs;
  // A frozen layer keeps its weights (and batch norm its statistics, running in
  // inference mode) through training.
  bool trainable = true;
  Attributes attributes;

  LayerSpec() = default;
  explicit LayerSpec(std::string kind, std::string name = {}) : kind(std::move(kind)), name(std::move(name)) {}

  // Sets an attribute and returns the spec, so settings chain:
  // .set("units", 10).set("use_bias", false).set("kernel_size", {3, 3}).
  LayerSpec& set(const std::string& attribute, AttributeValue value) {
    attributes.set(attribute, std::move(value));
    return *this;
  }
  // A braced list: of ints, a list of ints; of floats, a list of floats.
  template <typename E>
  LayerSpec& set(const std::string& attribute, std::initializer_list<E> values) {
    static_assert(std::is_arithmetic_v<E> && !std::is_same_v<E, bool>, "a list of ints or of floats");
    if constexpr (std::is_integral_v<E>) return set(attribute, Ints(values.begin(), values.end()));
    else return set(attribute, Reals(values.begin(), values.end()));
  }
  // An attribute as T (int64_t, double, bool, std::string, Ints or Reals);
  // ValueError naming the layer when it is not set or holds another type.
  template <typename T>
  const T& get(const std::string& attribute) const {
    return attributes.get<T>(attribute, "layer '" + name + "' (" + kind + ")");
  }
};

// A registered layer kind: its name and every attribute it takes, with its
// default (whose type is the attribute's type).
struct LayerKindInfo {
  std::string kind;
  Attributes attributes;
};
// Every layer kind of the engine, sorted by name: each engine file registers
// its own (src/engine/registry.hpp), nothing else lists them.
std::vector<LayerKindInfo> layer_kinds();
// The spec with every attribute of its kind: defaults filled in, an int given
// for a float (or a list of ints for a list of floats) converted. ValueError
// for an unknown kind or attribute (with the closest name suggested) or an
// attribute of the wrong type.
LayerSpec complete_layer_spec(const LayerSpec& spec);

enum class LossKind { softmax_cross_entropy, binary_cross_entropy, mse };
// "softmax_cross_entropy", "binary_cross_entropy", "mse"; ValueError otherwise.
LossKind parse_loss(const std::string& name);
const char* loss_name(LossKind kind);

struct OptimizerSpec {
  std::string kind = "sgd";  // "sgd", "rmsprop", "adam", "adamw"
  SGDHyper sgd;
  RMSpropHyper rmsprop;
  AdamHyper adam;  // also AdamW (decoupled is set from kind)
};

// The per-example output shape of a graph of layers (the checks of
// Model::build, without allocating or initialising anything).
Shape infer_output_shape(const std::vector<LayerSpec>& layers, const std::string& input_name,
                         const Shape& input_shape);

class EngineBase;

class Model {
 public:
  explicit Model(DType dtype = DType::float32);
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  DType dtype() const;

  // Building: add layers, then fix the per-example input shape (e.g. {1, 28, 28}).
  // build() checks every layer against its input shape (ShapeError naming the layer)
  // and initialises the weights from the global generator (corenn::seed).
  void add(const LayerSpec& spec);
  // The name layers use in LayerSpec::inputs for the model input ("input" by default).
  void set_input_name(const std::string& name);
  const std::string& input_name() const;
  // max_values >= 0 caps the parameters plus state the layers may need: a
  // ValueError before anything is allocated (load_model passes what the file holds).
  void build(const Shape& input_shape, int64_t max_values = -1);
  bool built() const;
  const Shape& input_shape() const;
  size_t num_layers() const;
  const LayerSpec& layer_spec(size_t layer) const;
  Shape output_shape(size_t layer) const;  // per example
  Shape output_shape() const;              // of the model's output layer
  // The graph, once built: the names feeding a layer (the model input's among
  // them), and the output layer (the one no other layer consumes).
  std::vector<std::string> layer_inputs(size_t layer) const;
  size_t output_layer() const;

  int64_t count_params() const;
  int64_t count_params(size_t layer) const;
  // Values of a layer's state (batch norm's moving averages): weights no optimizer changes.
  int64_t count_state(size_t layer) const;
  // Multiplications per example in a layer's forward pass (weights × positions).
  int64_t multiply_adds(size_t layer) const;
  // A layer's weights in Keras order (Dense: kernel (units, in), bias;
  // BatchNormalization: gamma, beta, moving_mean, moving_variance), as copies:
  // its parameters, then its state (what training updates without gradients).
  std::vector<Tensor> get_weights(size_t layer) const;
  void set_weights(size_t layer, const std::vector<Tensor>& weights);
  void set_trainable(size_t layer, bool trainable);

  // Training.
  void compile(LossKind loss, const OptimizerSpec& optimizer);
  bool compiled() const;
  void set_learning_rate(double lr);
  // One mini-batch: x (N, *input_shape); y (N,) int64 class ids for softmax
  // cross-entropy, else (N, *output_shape) of the model's dtype (NaN targets are
  // skipped by binary cross-entropy). Returns the loss including regularisation.
  // All validation happens before any weight changes. outputs, when given,
  // receives the forward pass's output (for training metrics). A step whose
  // loss or any parameter gradient is NaN or infinite changes nothing (weights,
  // batch norm statistics, optimizer state and steps() stay as they were) and
  // returns NaN.
  double train_step(const Tensor& x, const Tensor& y, Tensor* outputs = nullptr);
  // Loss and parameter gradients (flat, arena order) without an update: the
  // same forward pass as train_step (training mode, the current dropout masks).
  double loss_and_gradients(const Tensor& x, const Tensor& y, Tensor* gradients);
  // Loss in inference mode (no dropout), including regularisation, plus outputs.
  double evaluate(const Tensor& x, const Tensor& y, Tensor* outputs) const;
  // The same three with per-example weights, sample_weight (N,) of the model's
  // dtype, finite and >= 0 (Keras's sample_weight: each example's loss is
  // multiplied by its weight and the sum divided by N, not by the weights' sum).
  double train_step(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                    Tensor* outputs = nullptr);
  double loss_and_gradients(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                            Tensor* gradients);
  double evaluate(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                  Tensor* outputs) const;
  int64_t steps() const;

  // Inference: const and safe from several threads; each concurrent call
  // leases its own buffers, which are kept for the next call.
  Tensor predict(const Tensor& x) const;

  // The optimizer's state: the update count and its per-parameter slots in
  // arena order (SGD with momentum: velocity; RMSprop: square average; Adam:
  // m, v), as copies / overwritten (shapes checked first).
  struct OptimizerState {
    int64_t step = 0;
    std::vector<Tensor> slots;
  };
  OptimizerState get_optimizer_state() const;
  void set_optimizer_state(const OptimizerState& state);

  // The flat parameter arena (all layers, in order), as a copy / overwritten.
  Tensor get_parameters() const;
  void set_parameters(const Tensor& flat);
  // The flat state arena (batch norm's moving averages, all layers in order).
  Tensor get_state() const;
  void set_state(const Tensor& flat);

  // Saving (src/io/io.cpp). The model file (safetensors layout) holds the
  // architecture, the weights and batch norm state, and with include_optimizer
  // the loss, optimizer and its state, so training resumes where it stopped.
  // The file is written to a temporary beside `path`, then renamed over it: a
  // failed save leaves no partial file. extra_metadata adds string entries to
  // the file's __metadata__ (the Python API keeps its own settings there).
  // IOError for file-system failures, ValueError for an unbuilt model.
  void save(const std::string& path, bool include_optimizer = true) const;
  void save(const std::string& path, bool include_optimizer,
            const std::map<std::string, std::string>& extra_metadata) const;
  // The weights (and state) of a model file written from the same architecture:
  // layers matched by position; kind, count and shapes are all checked before
  // anything is written, values cast to this model's dtype.
  void load_weights(const std::string& path);
  // Names of a layer's weights, in get_weights order ("kernel", "bias", ...).
  std::vector<std::string> weight_names(size_t layer) const;
  LossKind loss() const;
  const OptimizerSpec& optimizer() const;
  // Dropout masks derive from this key and the step count; a saved key makes
  // resumed training draw the masks an uninterrupted run would have drawn.
  uint64_t dropout_key() const;
  void set_dropout_key(uint64_t key);

 private:
  std::unique_ptr<EngineBase> impl_;
};

}  // namespace corenn
