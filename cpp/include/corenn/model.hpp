// The model engine: a graph of layer calls (Keras's functional graphs; a stack
// is the simplest) with any number of inputs and outputs, trained one
// mini-batch per call (forward, losses, backward, regularisation and the
// optimizer update in C++). A layer owns its weights; a node is one call of a
// layer, so a layer called twice shares its weights and sums the gradients of
// both calls. Layers may also be shared between models (share_layer).
#pragma once

#include <cstdint>
#include <functional>
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

enum class LossKind { softmax_cross_entropy, binary_cross_entropy, mse, none, custom };
// "softmax_cross_entropy", "binary_cross_entropy", "mse"; ValueError otherwise.
LossKind parse_loss(const std::string& name);
const char* loss_name(LossKind kind);

// A loss the engine does not ship: given the targets (as the caller passed
// them) and the output, returns the loss and writes its gradient with respect
// to the output into dy_pred (shaped like y_pred, zero on entry). It runs once
// per step, between forward and backward; an exception from it leaves the
// model unchanged.
using CustomLoss = std::function<double(const Tensor& y_true, const Tensor& y_pred, Tensor& dy_pred)>;

// The loss of one model output: a built-in kind (fused in C++), a custom
// function, or none (an output that is only predicted). The total loss is
// Σ weight · loss over the outputs, plus regularisation.
struct OutputLoss {
  LossKind kind = LossKind::none;
  double weight = 1.0;
  CustomLoss custom;  // kind == custom
};

// One tensor of a graph: output `output` of call `node` of the layer named
// `layer` (calls of a layer are numbered in the order they were declared), or
// the model input of that name (node 0, output 0). Keras's inbound-node triple.
struct TensorRef {
  std::string layer;
  int64_t node = 0;
  int64_t output = 0;
  bool operator==(const TensorRef& o) const {
    return layer == o.layer && node == o.node && output == o.output;
  }
};
std::string tensor_ref_string(const TensorRef& ref);  // "layer[node][output]", for messages

struct OptimizerSpec {
  std::string kind = "sgd";  // "sgd", "rmsprop", "adam", "adamw"
  SGDHyper sgd;
  RMSpropHyper rmsprop;
  AdamHyper adam;  // also AdamW (decoupled is set from kind)
  ClipSettings clip;  // gradient clipping, for every kind
};

// The per-example output shapes of one call of a layer on inputs of the given
// per-example shapes: the check Model::build makes at that call (ShapeError or
// ValueError naming the layer), with nothing allocated or initialised.
std::vector<Shape> layer_output_shapes(const LayerSpec& layer, const std::vector<Shape>& input_shapes);

// Fusion, process-wide (on by default). Inference (predict, evaluate) runs a
// plan in which each convolution (Conv2D, DepthwiseConv2D, Conv1D) with a
// linear or ReLU activation takes the BatchNormalization right after it folded
// into its weights (s·W, s·b + t) and writes its output through one epilogue:
// + bias, + a residual (an Add of it with another tensor), ReLU (an
// Activation("relu") after it). A link is taken only where the tensor before
// it has no other reader and is not a model output. The folded weights are a
// runtime copy, refolded after anything writes weights or statistics; model
// files never hold them. Training runs a BatchNormalization followed by
// Activation("relu") as one layer, the ReLU applied in the batch norm's
// output pass (bit for bit the two layers).
// Off: every layer runs as written (the reference the plans are tested
// against; inference differs from it by float rounding).
void set_fusion(bool enabled);
bool get_fusion();

class EngineBase;

class Model {
 public:
  explicit Model(DType dtype = DType::float32);
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  DType dtype() const;

  // Building a graph: declare the inputs, add the layers, call them on tensors,
  // name the outputs, then build. build() checks every call against its input
  // shapes (ShapeError naming the layer), allocates and initialises the weights
  // from the global generator (corenn::seed); nothing changes if it throws.
  //   m.add_input("a", {4}); m.add_input("b", {4});
  //   m.add(dense_spec);                      // the layer "enc"
  //   m.call("enc", {{"a"}}); m.call("enc", {{"b"}});   // two calls, shared weights
  //   m.add(concat_spec); m.call("cat", {{"enc", 0}, {"enc", 1}});
  //   m.set_outputs({{"cat"}, {"enc", 1}}); m.build();
  void add_input(const std::string& name, const Shape& shape);
  void add(const LayerSpec& spec);
  // One call of a layer added before, on tensors named by TensorRef; its
  // outputs are {layer, k, 0..}, k counting the layer's calls from 0. Every
  // call of a layer must see the same input shapes.
  void call(const std::string& layer, const std::vector<TensorRef>& inputs);
  // The model's outputs, in order; by default the one tensor no call consumes.
  void set_outputs(const std::vector<TensorRef>& outputs);
  // The layer `name` of this model is `other`'s built layer `other_name`: the
  // same object, so weights are shared and training either model trains both.
  // Same dtype and kind; the calls here must match the shapes it was built for.
  void share_layer(const std::string& name, const Model& other, const std::string& other_name);
  // The stack shorthand (C++ Sequential models and version-1 model files): when
  // call() is never used, each layer is called once on LayerSpec::inputs (names
  // of layers or of the input; empty = the layer added just before it, the
  // input for the first), and build(shape) declares one input of that shape
  // named input_name() ("input" by default) if none was declared.
  void set_input_name(const std::string& name);
  const std::string& input_name() const;
  void build();
  void build(const Shape& input_shape);
  // build() capping the parameters plus state the layers it creates may need:
  // a ValueError before anything is allocated (load_model passes what the file holds).
  void build_capped(int64_t max_values);
  bool built() const;

  // The graph, once built. Inputs and outputs in order; nodes in execution
  // order, each a layer index and its input tensors.
  struct Node {
    size_t layer;
    std::vector<TensorRef> inputs;
  };
  size_t num_inputs() const;
  const std::string& input_name(size_t input) const;
  const Shape& input_shape(size_t input) const;
  const Shape& input_shape() const;  // of the first input
  size_t num_outputs() const;
  const TensorRef& output(size_t output) const;
  Shape model_output_shape(size_t output) const;  // per example
  const std::vector<Node>& nodes() const;
  std::vector<Shape> node_output_shapes(size_t layer, size_t node) const;  // per example
  size_t num_layers() const;
  size_t layer_index(const std::string& name) const;  // ValueError for an unknown name
  const LayerSpec& layer_spec(size_t layer) const;
  Shape output_shape(size_t layer) const;  // per example, of the layer's first call
  Shape output_shape() const;              // of the first model output
  // The names feeding a layer's first call (input names among them), and the
  // layer producing the first model output.
  std::vector<std::string> layer_inputs(size_t layer) const;
  size_t output_layer() const;

  int64_t count_params() const;
  int64_t count_params(size_t layer) const;
  // Values of a layer's state (batch norm's moving averages): weights no optimizer changes.
  int64_t count_state(size_t layer) const;
  // Multiplications per example in a layer's forward pass (weights × positions).
  int64_t multiply_adds(size_t layer) const;
  // The inference plan (set_fusion): per fused group, the names of
  // its layers in order (the convolution, then any of its batch norm, Add and
  // ReLU activation); layers outside every group run as written.
  std::vector<std::vector<std::string>> fusion_plan() const;
  // A layer's weights in Keras order (Dense: kernel (units, in), bias;
  // BatchNormalization: gamma, beta, moving_mean, moving_variance), as copies:
  // its parameters, then its state (what training updates without gradients).
  std::vector<Tensor> get_weights(size_t layer) const;
  void set_weights(size_t layer, const std::vector<Tensor>& weights);
  void set_trainable(size_t layer, bool trainable);

  // Training. One loss per model output (kind none for outputs without one);
  // the one-loss form gives every output that loss.
  void compile(const std::vector<OutputLoss>& losses, const OptimizerSpec& optimizer);
  void compile(LossKind loss, const OptimizerSpec& optimizer);
  bool compiled() const;
  void set_learning_rate(double lr);
  // One mini-batch: x, one tensor (N, *input_shape) per model input; y, one per
  // output: (N,) int64 class ids for softmax cross-entropy, else (N, *output_shape)
  // of the model's dtype (NaN targets are skipped by binary cross-entropy), as
  // the caller wants for a custom loss (N first), an empty Tensor for an output
  // without a loss. sample_weight, when given, is (N,) of the model's dtype,
  // finite and >= 0 (Keras's: each example's loss is multiplied by its weight
  // and the sum divided by N). Returns the total loss Σ weight·loss plus
  // regularisation; output_losses receives each output's unweighted loss (NaN
  // for outputs without one), outputs the forward pass's outputs (for
  // training metrics). All validation happens before any weight changes. A
  // step whose loss or any parameter gradient is NaN or infinite, or whose
  // custom loss throws, changes nothing (weights, batch norm statistics,
  // optimizer state and steps() stay as they were): it returns NaN, or rethrows.
  double train_step(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                    const Tensor* sample_weight = nullptr, std::vector<double>* output_losses = nullptr,
                    std::vector<Tensor>* outputs = nullptr);
  // Loss and parameter gradients (flat, arena order: parameter_layout) with no
  // update: the same forward pass as train_step (training mode, the current
  // dropout masks; batch norm statistics move as in a training step).
  double loss_and_gradients(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                            const Tensor* sample_weight, Tensor* gradients,
                            std::vector<double>* output_losses = nullptr);
  // One optimizer step with the given flat gradients (loss_and_gradients's
  // layout): train_step is loss_and_gradients then this. Returns false, with
  // nothing changed, when a gradient is NaN or infinite.
  bool apply_gradients(const Tensor& gradients);
  // Data parallelism (docs/distributed.md). train_step is these three steps:
  // compute_gradients runs forward and backward of the batch into the
  // gradient arena, in the form replicas add up: each gradient times the
  // batch size, followed by kReductionSlots values, batch·loss and batch.
  // A reduction sums the arenas of all replicas in place (MPI_Allreduce with
  // MPI_SUM and MPI_IN_PLACE); apply_gradients(scale) with scale = 1 / (the
  // summed batch, arena[count_params() + 1]) then makes one optimizer step
  // with the exact mean gradient over every replica's examples, whatever the
  // batch of each. It returns false, with nothing changed (batch norm
  // statistics put back), when a gradient is NaN or infinite. compute_gradients
  // returns this batch's loss; the global one is arena[count_params()] · scale.
  double compute_gradients(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                           const Tensor* sample_weight = nullptr, std::vector<double>* output_losses = nullptr,
                           std::vector<Tensor>* outputs = nullptr);
  static constexpr int64_t kReductionSlots = 2;
  // A view (no copy) of the gradient arena: count_params() + kReductionSlots
  // values of the model's dtype, valid while the model lives and is not rebuilt.
  Tensor gradient_arena();
  bool apply_gradients(double scale);
  // A reducer makes train_step and loss_and_gradients data-parallel without
  // corenn linking MPI: it is called once per step, between backward and the
  // update, with the summable arena (as compute_gradients leaves it) and must
  // replace it by its sum over the replicas. The step then uses the mean
  // gradient and returns the mean loss over all replicas' examples (the
  // per-output losses and outputs stay this replica's). An empty function
  // (the default) turns it off; the single-process step makes no extra pass.
  //   m.set_gradient_reducer([comm](corenn::Tensor& arena) {
  //     MPI_Allreduce(MPI_IN_PLACE, arena.data(), arena.size(), MPI_FLOAT, MPI_SUM, comm);
  //   });
  using GradientReducer = std::function<void(Tensor& arena)>;
  void set_gradient_reducer(GradientReducer reducer);
  // Loss in inference mode (no dropout), including regularisation, plus outputs.
  double evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                  const Tensor* sample_weight = nullptr, std::vector<double>* output_losses = nullptr,
                  std::vector<Tensor>* outputs = nullptr) const;
  int64_t steps() const;
  // The one-input, one-output forms of the three above.
  double train_step(const Tensor& x, const Tensor& y, Tensor* outputs = nullptr);
  double train_step(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                    Tensor* outputs = nullptr);
  double loss_and_gradients(const Tensor& x, const Tensor& y, Tensor* gradients);
  double loss_and_gradients(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                            Tensor* gradients);
  double evaluate(const Tensor& x, const Tensor& y, Tensor* outputs) const;
  double evaluate(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                  Tensor* outputs) const;

  // Inference: const and safe from several threads; each concurrent call
  // leases its own buffers, which are kept for the next call. One tensor per
  // model input in, one per model output out.
  std::vector<Tensor> predict(const std::vector<Tensor>& x) const;
  Tensor predict(const Tensor& x) const;  // one input, one output
  // The mask each output carries (Keras's masks of sequences: Embedding with
  // mask_zero, Masking; 1 = a valid step), as int64 0/1 of shape
  // (N, *output_shape[:-1]), or an empty Tensor for an output without one.
  std::vector<Tensor> output_masks(const std::vector<Tensor>& x) const;

  // Vector-Jacobian products (saliency maps, style transfer, custom training
  // loops): vjp runs the forward pass (training or inference mode) and keeps
  // what backward needs; pullback(dy), dy one tensor per output shaped like
  // the outputs (an empty Tensor counts as zeros), returns dL/dx for every
  // input, where L = Σ⟨dy, y⟩. The model is not changed (batch norm
  // statistics stay). pullback may be called several times; any other
  // training call since the vjp makes it a ValueError.
  std::vector<Tensor> vjp(const std::vector<Tensor>& x, bool training);
  std::vector<Tensor> pullback(const std::vector<Tensor>& dy);
  // Counts vjp calls: a caller holding a pullback checks it is still current.
  int64_t vjp_generation() const;

  // Where each layer's parameters sit in the flat gradient (and parameter) arena.
  struct ParameterSlice {
    size_t layer;
    std::string name;  // "kernel", "bias", ...
    int64_t offset;
    Shape shape;
  };
  std::vector<ParameterSlice> parameter_layout() const;

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
  LossKind loss() const;  // of the first output
  const std::vector<OutputLoss>& losses() const;
  const OptimizerSpec& optimizer() const;
  // Dropout masks derive from this key and the step count; a saved key makes
  // resumed training draw the masks an uninterrupted run would have drawn.
  uint64_t dropout_key() const;
  void set_dropout_key(uint64_t key);

 private:
  std::unique_ptr<EngineBase> impl_;
};

}  // namespace corenn
