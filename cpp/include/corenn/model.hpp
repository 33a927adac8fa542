// The model engine: a graph of layers (a stack is the simplest) over one flat
// parameter arena, trained one mini-batch per call (forward, loss, backward,
// regularisation and the optimizer update in C++, with no Python in between).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "corenn/kernels/optim.hpp"
#include "corenn/tensor.hpp"

namespace corenn {

// A layer's configuration: the same fields the Python layers carry.
struct LayerSpec {
  // "dense", "activation", "dropout", "flatten", "reshape", "conv2d", "depthwise_conv2d",
  // "separable_conv2d", "conv2d_transpose", "max_pool2d", "avg_pool2d",
  // "global_avg_pool2d", "zero_padding2d", "batch_norm", "add", "concatenate",
  // "normalization", "random_flip", "random_crop" (pads as (t, b, l, r) with t = b, l = r),
  // "color_shift", "conv1d", "max_pool1d", "global_avg_pool1d" (sequences (C, L) per
  // example; kernel_size, strides and dilation hold one length, or (1, length)),
  // "up_sampling2d"
  std::string kind;
  std::string name;
  // The layers feeding this one, by name (the model input is named by
  // Model::input_name()). Empty: the layer added just before (the model input
  // for the first), which is how a Sequential stack is described.
  std::vector<std::string> inputs;
  // dense
  int64_t units = 0;
  bool use_bias = true;
  std::string kernel_initializer = "glorot_uniform";
  std::string bias_initializer = "zeros";
  double initializer_stddev = 0.01;  // random_normal only
  double l1 = 0.0, l2 = 0.0;         // kernel regularisation (Keras semantics)
  // dense and activation
  std::string activation = "linear";
  double alpha = 0.01;  // leaky_relu slope; elu's α (1.0 in Keras and PyTorch: set it)
  // dropout: the DROP probability (1 - keep_prob)
  double rate = 0.0;
  // reshape: per-example target shape
  Shape target_shape;
  // convolution and pooling (pairs are (height, width))
  int64_t filters = 0;
  std::vector<int64_t> kernel_size{1, 1};  // pool_size for pooling
  std::vector<int64_t> strides;            // empty: (1, 1) for convolutions, the pool size for pooling
  std::string padding = "valid";           // "valid", "same" (Keras) or "explicit" (then pads);
                                           // conv1d also "causal" (left padding (k − 1)·dilation)
  std::vector<int64_t> pads{0, 0, 0, 0};   // (top, bottom, left, right): explicit padding, ZeroPadding2D
  std::vector<int64_t> dilation{1, 1};
  int64_t groups = 1;
  int64_t depth_multiplier = 1;
  std::vector<int64_t> output_padding;  // conv2d_transpose; empty = derived from padding
  // batch_norm (Keras's semantics: momentum is the weight KEPT by the moving
  // averages) and concatenate; axis counts the batch axis, as Keras (1 = channels)
  int64_t axis = 1;
  double momentum = 0.99;
  double epsilon = 1e-3;
  bool center = true, scale = true;
  // A frozen layer keeps its weights (and batch norm its statistics, running in
  // inference mode) through training.
  bool trainable = true;
  // random_flip: "horizontal", "vertical" or "horizontal_and_vertical"
  std::string mode = "horizontal_and_vertical";
  // color_shift: per-channel offsets drawn from [-delta, delta]
  double delta = 0.0;
  // normalization: initial mean and variance per entry of axis 1 (features or
  // channels); empty = 0 and 1. The layer keeps them as state (never trained).
  std::vector<double> mean, variance;
  // up_sampling2d: integer factors (height, width) and "nearest" or "bilinear"
  std::vector<int64_t> size{2, 2};
  std::string interpolation = "nearest";
};

// Calls f(name, field) for every field of a LayerSpec (const or not), in
// declaration order: the one list through which the model file and the Python
// bindings read and write specs. A new field must be added here too.
template <typename Spec, typename F>
void for_each_field(Spec& s, F&& f) {
  f("kind", s.kind); f("name", s.name); f("inputs", s.inputs);
  f("units", s.units); f("use_bias", s.use_bias);
  f("kernel_initializer", s.kernel_initializer); f("bias_initializer", s.bias_initializer);
  f("initializer_stddev", s.initializer_stddev); f("l1", s.l1); f("l2", s.l2);
  f("activation", s.activation); f("alpha", s.alpha); f("rate", s.rate);
  f("target_shape", s.target_shape); f("filters", s.filters); f("kernel_size", s.kernel_size);
  f("strides", s.strides); f("padding", s.padding); f("pads", s.pads); f("dilation", s.dilation);
  f("groups", s.groups); f("depth_multiplier", s.depth_multiplier);
  f("output_padding", s.output_padding); f("axis", s.axis); f("momentum", s.momentum);
  f("epsilon", s.epsilon); f("center", s.center); f("scale", s.scale);
  f("mode", s.mode); f("delta", s.delta); f("mean", s.mean); f("variance", s.variance);
  f("size", s.size); f("interpolation", s.interpolation);
  f("trainable", s.trainable);
}

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
