// The layers of the engine. A layer knows its shapes and parameters and calls
// kernels; it owns no per-batch memory: what a forward pass keeps for backward
// lives in a LayerCache that belongs to the caller (the model's training
// context, or a predict call's own), so inference stays const and re-entrant.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "corenn/kernels/activation.hpp"
#include "corenn/kernels/conv.hpp"
#include "corenn/kernels/init.hpp"
#include "corenn/model.hpp"
#include "engine/derived_weights.hpp"

namespace corenn {
namespace detail {

template <typename T>
struct LayerCache {
  std::vector<T> out;           // the layer's output, unless it aliases its input
  std::vector<T> pre;           // Dense with an activation: Z before the activation
  std::vector<uint8_t> mask;    // Dropout: kept units
  std::vector<T> mid;           // SeparableConv2D: the depthwise output; batch norm: μ, invstd per channel
  std::vector<T> grad_mid;      // SeparableConv2D: its gradient
  std::vector<T> scratch;       // convolution im2col columns
  std::vector<int64_t> index;   // max pooling: argmax
  std::vector<std::vector<T>> outs;  // layers with several outputs: one buffer each
  std::vector<LayerCache> inner;      // layers wrapping layers: one cache per inner layer
  std::vector<const T*> ys;           // a wrapped CallLayer: where its outputs are, for its backward
  // Masks of sequences (Layer::output_mask): the mask (N, T) the layer's first
  // input carries, or nullptr, set by the engine (or a wrapper, for its inner
  // layer) before forward; and a mask the layer makes (Embedding, Masking).
  const uint8_t* input_mask = nullptr;
  std::vector<uint8_t> out_mask;
  // The masks of every input, input_mask first, set by the engine for layers
  // with several inputs (Attention's value mask rides on its second input).
  std::vector<const uint8_t*> input_masks;
  // The mode of the forward pass this cache holds, set by the engine: backward
  // follows it (a vjp differentiates an inference pass: no dropout mask, batch
  // norm's moving statistics).
  bool training = false;
  // Set by the engine's training plan before forward: the layer applies a
  // ReLU to its output in its own pass (Layer::fuses_relu), and its backward
  // receives the gradient of that ReLU's output.
  bool fused_relu = false;
  // Set by the engine for an inference call (predict, evaluate): the layer may
  // run with weights it derived from its own in an earlier call
  // (DerivedWeights), which training, whose weights move every step, never keeps.
  bool inference = false;
  // With inference: the version of the weights the layer runs with (its
  // Layer::weights_version); a wrapper passes its own to its inner layers,
  // whose own the engine never bumps.
  uint64_t weights_version = 0;
};

// Grows a buffer to at least n elements; never shrinks, so a steady batch size
// allocates once.
template <typename V>
void ensure_size(V& buffer, int64_t n) {
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(static_cast<size_t>(n));
}

// Layers with a fused activation (Dense, convolutions) write Z = pre-activation
// into cache.pre and A = g(Z) into cache.out, or Z straight into cache.out when
// g is linear; most derivatives read Z (relu' its sign, gelu' its value), so Z is kept.
template <typename T>
T* preactivation_output(LayerCache<T>& c, Activation g, int64_t n) {
  ensure_size(c.out, n);
  if (g == Activation::linear) return c.out.data();
  ensure_size(c.pre, n);
  return c.pre.data();
}

// A = g(Z) over Z viewed as (outer, channels, inner): softmax normalises over
// the channels (Dense: (batch, units, 1); convolutions: (batch, C, H·W)).
template <typename T>
void apply_activation(LayerCache<T>& c, Activation g, T alpha, const ActivationAxes& a) {
  if (g != Activation::linear)
    activation_forward<T>(c.out.data(), c.pre.data(), a.outer, a.channels, a.inner, g, alpha);
}

// dZ = dA ⊙ g'(Z), in place over dA (not needed afterwards).
template <typename T>
void activation_gradient_in_place(T* dy, LayerCache<T>& c, const T* y, Activation g, T alpha,
                                  const ActivationAxes& a) {
  if (g != Activation::linear)
    activation_backward<T>(dy, dy, c.pre.data(), y, a.outer, a.channels, a.inner, g, alpha);
}

std::string layer_label(const LayerSpec& spec);

// What Dense and the convolutions share, read from their attributes: a fused
// activation (with alpha), a bias or none, kernel and bias initialisers
// (random_normal's stddev) and L1/L2 regularisation of the kernel (Keras's
// kernel_regularizer).
struct KernelSettings {
  explicit KernelSettings(const LayerSpec& spec);
  // The attributes above, with their defaults.
  static Attributes attributes();

  Activation activation;
  double alpha;
  bool use_bias;
  Init kernel_init, bias_init;
  double initializer_stddev, l1, l2;
};

// What a layer that can head an inference fusion (model.cpp's fusion pass)
// computes with: a kernel whose output channel c owns the rows
// kernel[c, 0 .. per_channel), an optional bias, and its own activation (a
// ReLU or none). channels == 0: the layer cannot head one.
template <typename T>
struct FusionWeights {
  const T* kernel = nullptr;
  const T* bias = nullptr;
  int64_t channels = 0, per_channel = 0;
  bool relu = false;
};

template <typename T>
class MergeLayer;
template <typename T>
class CallLayer;

// The memory a model allocates for the weights of the layers it creates: one
// contiguous block of parameters and one of state. Layers keep it alive, so a
// layer shared with another model (Model::share_layer) outlives its first owner.
template <typename T>
struct WeightArena {
  std::vector<T> parameters, state;
};

template <typename T>
class Layer {
 public:
  explicit Layer(LayerSpec spec) : spec_(std::move(spec)) {}
  virtual ~Layer() = default;

  const LayerSpec& spec() const { return spec_; }
  LayerSpec& spec() { return spec_; }

  // Fixes the per-example input shape and returns the output shape; ShapeError
  // names the layer when the input does not fit.
  virtual Shape build(const Shape& input_shape) = 0;
  // Parameter tensors in Keras order (Dense: kernel, bias), stored back to back.
  virtual std::vector<Shape> parameter_shapes() const { return {}; }
  int64_t parameter_count() const;
  // State that training updates without gradients (batch norm's moving
  // averages), in Keras order after the parameters. It lives in the model's
  // state arena, which no optimizer touches.
  virtual std::vector<Shape> state_shapes() const { return {}; }
  int64_t state_count() const;
  // Names of the parameter and state tensors (Keras's: kernel, bias, gamma,
  // moving_mean, ...), as the model file stores them; unique within the layer.
  // The default numbers them: weight_0, ..., state_0, ...
  virtual std::vector<std::string> parameter_names() const;
  virtual std::vector<std::string> state_names() const;
  // Points the layer at its slices of a weight arena (kept alive by the layer).
  void bind(std::shared_ptr<WeightArena<T>> arena, T* parameters, T* state) {
    arena_ = std::move(arena);
    params_ = parameters;
    state_ = state;
    bind_inner();
  }
  // Where backward accumulates parameter gradients: the calling model's
  // gradient arena (a shared layer is pointed at each model's in turn).
  void set_gradients(T* gradients) {
    grads_ = gradients;
    bind_inner();
  }
  // Initial parameters (drawn from key) and state.
  virtual void initialize(uint64_t key) { (void)key; }
  // Keras's `trainable`: the optimizer skips a frozen layer, and a frozen
  // BatchNormalization normalises with its moving statistics and leaves them
  // be. A wrapper passes the flag on to the layer it wraps, as Keras's setter
  // sets every sublayer's.
  virtual void set_trainable(bool trainable) { spec_.trainable = trainable; }
  // True when the optimizer updates the layer's parameters. A wrapper's
  // parameters are its inner layers': they train only while the wrapper and
  // every layer it wraps are trainable (Keras: a frozen sublayer's weights are
  // no trainable weights of the layer holding it).
  virtual bool trains() const { return spec_.trainable; }

  // Returns the output: cache.out, or x itself for layers that only relabel shapes.
  virtual const T* forward(const T* x, int64_t batch, bool training, uint64_t key,
                           LayerCache<T>& cache) const = 0;
  // dy may be overwritten. Writes dx into dx_buffer (or returns dy when the
  // gradient passes through unchanged); returns nullptr when !need_dx.
  // Parameter gradients accumulate into the gradient arena.
  virtual T* backward(T* dy, T* dx_buffer, const T* x, const T* y, int64_t batch, bool need_dx,
                      LayerCache<T>& cache) = 0;
  // True when backward, after the forward that filled this cache, only reads
  // dy: the engine may then hand it a gradient buffer another consumer still
  // reads (an Add passes one buffer to all its inputs) instead of a copy.
  virtual bool keeps_dy(const LayerCache<T>& cache) const { (void)cache; return false; }
  // Masks (Keras's): a tensor of a sequence (N, T, ...) may carry a mask (N, T),
  // 1 = a valid step. After forward, the engine asks each layer for the mask of
  // each output, given the one its first input carried (cache.input_mask):
  // nullptr (none), cache.input_mask (passed through) or a mask the layer made
  // (cache.out_mask: Embedding with mask_zero, Masking). Consumers read
  // cache.input_mask in forward and backward (the recurrent layers skip masked
  // steps; the loss reads the mask of its model output). The default passes the
  // mask through output 0 of layers that act on each step alone and drops it
  // everywhere else (Flatten, pooling, convolutions, merges, ...).
  virtual const uint8_t* output_mask(size_t output, int64_t batch, LayerCache<T>& cache) const {
    (void)batch;
    return output == 0 && acts_per_step() ? cache.input_mask : nullptr;
  }
  // True for layers that treat each time step of an (N, T, ...) input alone and
  // keep the step axis (Dense, Activation, Dropout): masks pass through them.
  virtual bool acts_per_step() const { return false; }
  // Regularisation loss; with_gradient adds its gradient to the gradient arena.
  virtual double penalty(bool with_gradient) { (void)with_gradient; return 0.0; }
  // Multiplications per example in forward (the course's cost arithmetic:
  // weights times the positions they are applied at); 0 for layers without weights.
  virtual int64_t multiply_adds() const { return 0; }
  // Inference fusion (model.cpp's fusion pass). A convolution heads a fused
  // group: fusion_weights() tells what it computes with, forward_fused runs its
  // inference forward with another kernel (the folded one) and the epilogue
  // (bias, residual, ReLU) applied where the output is written. kernel_key
  // names the kernel's contents (DerivedWeights: the versions of the weights
  // it comes from, its address), so that the layer may keep what it derives
  // from it; its last entry is 0, left for the layer's own use.
  virtual FusionWeights<T> fusion_weights() const { return {}; }
  virtual const T* forward_fused(const T* x, int64_t batch, const T* kernel,
                                 const typename DerivedWeights<T>::Key& kernel_key, const ConvEpilogue<T>& e,
                                 LayerCache<T>& cache) const {
    (void)x, (void)batch, (void)kernel, (void)kernel_key, (void)e, (void)cache;
    return nullptr;
  }
  // A layer that is, at inference, a per-channel affine map y = s[c]·x + t[c]
  // of channels-first data (batch norm) gives its channel count, and folds
  // itself into the weights w of the layer before it (kernel_out: channels ·
  // w.per_channel values, bias_out: channels values).
  virtual int64_t affine_channels() const { return 0; }
  virtual void fold_into(T* kernel_out, T* bias_out, const FusionWeights<T>& w) const {
    (void)kernel_out, (void)bias_out, (void)w;
  }
  // An element-wise max(x, 0) (Activation("relu")).
  virtual bool is_relu() const { return false; }
  // The training plan (model.cpp): a layer whose forward in this mode can
  // apply the ReLU that follows it where it writes its output, and take that
  // ReLU's gradient in its backward, when cache.fused_relu is set (batch norm
  // with batch statistics).
  virtual bool fuses_relu(bool training) const { (void)training; return false; }
  // Bumped by the engine whenever it writes the layer's parameters or state
  // (set_weights, a training step, a load, ...): an inference plan folded from
  // them is stale once the version moves. It lives in the layer, so a layer
  // shared with another model invalidates both models' plans.
  uint64_t weights_version = 0;

  // Layers with several inputs (Add, Concatenate) are MergeLayers, layers
  // with several outputs (or inputs and outputs) CallLayers; the engine calls
  // their interface instead of build/forward/backward.
  virtual MergeLayer<T>* as_merge() { return nullptr; }
  virtual CallLayer<T>* as_call() { return nullptr; }
  // The L1/L2 penalty on parameters [offset, offset + n) of the layer.
  double kernel_penalty(int64_t offset, int64_t n, const KernelSettings& k, bool with_gradient);

  // The per-example shapes of the layer's calls, fixed when its first call is
  // built; every later call (in this model or one sharing the layer) must match.
  std::vector<Shape> built_inputs, built_outputs;

  int64_t input_size() const { return in_size_; }
  int64_t output_size() const { return out_size_; }
  const T* parameters() const { return params_; }
  T* parameters() { return params_; }
  const T* state() const { return state_; }
  T* state() { return state_; }

 protected:
  // A layer wrapping others (TimeDistributed, Bidirectional) points them at
  // their slices of its parameters, state and gradients, whenever those move.
  virtual void bind_inner() {}

  std::shared_ptr<WeightArena<T>> arena_;
  LayerSpec spec_;
  int64_t in_size_ = 0, out_size_ = 0;  // per example
  T* params_ = nullptr;
  T* grads_ = nullptr;
  // Written by forward in training mode (batch norm), hence not const-bound.
  T* state_ = nullptr;
};

// A layer over two or more inputs. Its output always lives in cache.out.
template <typename T>
class MergeLayer : public Layer<T> {
 public:
  using Layer<T>::Layer;
  MergeLayer<T>* as_merge() override { return this; }

  // Checks the inputs against each other (ShapeError naming the layer).
  virtual Shape build_inputs(const std::vector<Shape>& input_shapes) = 0;
  virtual const T* forward_inputs(const std::vector<const T*>& xs, int64_t batch,
                                  LayerCache<T>& cache) const = 0;
  // Gradient of input k into dx[k], written or, when accumulate[k], added
  // (a tensor feeding several layers sums their gradients); dx[k] == nullptr
  // skips an input that needs none. Inputs are handled in order, so the same
  // tensor may appear twice.
  virtual void backward_inputs(const T* dy, const std::vector<T*>& dx,
                               const std::vector<uint8_t>& accumulate, int64_t batch) const = 0;
  // True when every input's gradient is dy unchanged (Add): the engine may
  // then hand dy's buffer to one input rather than copy it.
  virtual bool passes_gradient_through() const { return false; }

  Shape build(const Shape&) final { throw ValueError(layer_label(this->spec_) + " needs two or more inputs"); }
  const T* forward(const T*, int64_t, bool, uint64_t, LayerCache<T>&) const final { return nullptr; }
  T* backward(T*, T*, const T*, const T*, int64_t, bool, LayerCache<T>&) final { return nullptr; }
};

// The general call: several inputs, several outputs (a recurrent layer's
// output and states, a layer taking an initial state).
template <typename T>
class CallLayer : public Layer<T> {
 public:
  using Layer<T>::Layer;
  CallLayer<T>* as_call() override { return this; }

  // Output shapes from the input shapes (ShapeError naming the layer).
  virtual std::vector<Shape> build_call(const std::vector<Shape>& input_shapes) = 0;
  // ys[k] points at output k (the layer's own buffers, e.g. cache.outs[k]).
  virtual void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys,
                            int64_t batch, bool training, uint64_t key,
                            LayerCache<T>& cache) const = 0;
  // dys[k] is dL/d(output k), or nullptr where no gradient reaches output k
  // (read as zeros); dys may be overwritten. dxs[k] receives dL/d(input k),
  // written (never accumulated), or is nullptr where none is needed.
  // Parameter gradients accumulate.
  virtual void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs,
                             const std::vector<const T*>& xs, const std::vector<const T*>& ys,
                             int64_t batch, LayerCache<T>& cache) = 0;

  Shape build(const Shape&) final { throw ValueError(layer_label(this->spec_) + " is called through build_call"); }
  const T* forward(const T*, int64_t, bool, uint64_t, LayerCache<T>&) const final { return nullptr; }
  T* backward(T*, T*, const T*, const T*, int64_t, bool, LayerCache<T>&) final { return nullptr; }
};

// The layer spec.kind names, built from the spec with every attribute of its
// kind (src/engine/registry.cpp).
template <typename T>
std::unique_ptr<Layer<T>> make_layer(const LayerSpec& spec);

}  // namespace detail
}  // namespace corenn
