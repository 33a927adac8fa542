// The transformer's element layers (Vaswani et al. 2017; course 5, week 4):
// Softmax over any axis but the batch, LayerNormalization and the sinusoidal
// PositionalEncoding. The attention layers are in layers_attention.cpp.
#include <algorithm>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "corenn/kernels/activation.hpp"
#include "corenn/kernels/layer_norm.hpp"
#include "corenn/kernels/merge.hpp"
#include "corenn/kernels/positional_encoding.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

// The axis of a batch of rank `rank` (batch included) that `axis` names
// (Keras: negative counts from the end, the batch is axis 0), or ValueError
// naming the layer when it is out of range or the batch axis.
int64_t feature_axis(const LayerSpec& spec, int64_t axis, int64_t rank) {
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 1 || a >= rank)
    throw ValueError(layer_label(spec) + ": axis must name a non-batch axis of the input (1.." +
                     std::to_string(rank - 1) + " or -1..-" + std::to_string(rank - 1) +
                     ", counting the batch axis as 0), got " + std::to_string(axis) + " for inputs of rank " +
                     std::to_string(rank));
  return a;
}

// Softmax over one axis (Keras's Softmax(axis=-1); PyTorch's nn.Softmax(dim)):
// the batch (N, d1, ..., dk) read as (outer, channels, inner) with channels the
// chosen axis, on the activation kernel's softmax, which normalises over
// channels at stride inner. The batch axis cannot be normalised over: examples
// stay independent.
template <typename T>
class Softmax : public Layer<T> {
 public:
  explicit Softmax(const LayerSpec& spec) : Layer<T>(spec), axis_(spec.get<int64_t>("axis")) {
    if (axis_ == 0)
      throw ValueError(layer_label(spec) + ": axis 0 is the batch axis; softmax normalises over a feature axis, "
                       "got axis=0");
  }

  Shape build(const Shape& input_shape) override {
    if (input_shape.empty()) throw ShapeError(layer_label(this->spec_) + ": needs an input of rank >= 1 per example");
    const int64_t a = feature_axis(this->spec_, axis_, static_cast<int64_t>(input_shape.size()) + 1) - 1;
    axes_ = ActivationAxes{};
    for (int64_t i = 0; i < static_cast<int64_t>(input_shape.size()); ++i) {
      if (i < a) axes_.outer *= input_shape[i];
      else if (i == a) axes_.channels = input_shape[i];
      else axes_.inner *= input_shape[i];
    }
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    return input_shape;
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    ensure_size(c.out, batch * this->out_size_);
    activation_forward<T>(c.out.data(), x, batch * axes_.outer, axes_.channels, axes_.inner, Activation::softmax,
                          T(0));
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx, LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    activation_backward<T>(dx, dy, x, y, batch * axes_.outer, axes_.channels, axes_.inner, Activation::softmax,
                           T(0));
    return dx;
  }
  // Over the last axis, each step alone: masks pass through (Keras's).
  bool acts_per_step() const override { return axes_.inner == 1; }

 private:
  int64_t axis_;
  ActivationAxes axes_;  // per example
};

// Layer normalisation over the last axis (Ba, Kiros & Hinton 2016; Keras's
// LayerNormalization(axis=-1, epsilon=1e-3), PyTorch's nn.LayerNorm(D, eps)):
// every position's D features normalised by their own mean and (biased)
// variance, then γ ⊙ x̂ + β. Weights gamma (D,) (scale=True, starts 1) and beta
// (D,) (center=True, starts 0). The kernel normalises the last axis; another
// axis is a ValueError.
template <typename T>
class LayerNormalization : public Layer<T> {
 public:
  explicit LayerNormalization(const LayerSpec& spec)
      : Layer<T>(spec),
        axis_(spec.get<int64_t>("axis")),
        epsilon_(spec.get<double>("epsilon")),
        center_(spec.get<bool>("center")),
        scale_(spec.get<bool>("scale")) {
    validate_layer_norm(epsilon_, (layer_label(spec) + ": epsilon").c_str());
    if (axis_ == 0)
      throw ValueError(layer_label(spec) + ": axis 0 is the batch axis; layer normalisation works over the "
                       "features, axis=-1, got axis=0");
  }

  Shape build(const Shape& input_shape) override {
    if (input_shape.empty()) throw ShapeError(layer_label(this->spec_) + ": needs an input of rank >= 1 per example");
    const int64_t rank = static_cast<int64_t>(input_shape.size()) + 1;
    if (feature_axis(this->spec_, axis_, rank) != rank - 1)
      throw ValueError(layer_label(this->spec_) + ": normalises over the last axis only (axis=-1 or " +
                       std::to_string(rank - 1) + " for inputs of rank " + std::to_string(rank) + "), got axis=" +
                       std::to_string(axis_));
    dim_ = input_shape.back();
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    rows_ = dim_ > 0 ? this->in_size_ / dim_ : 0;
    return input_shape;
  }

  std::vector<Shape> parameter_shapes() const override {
    std::vector<Shape> shapes;
    if (scale_) shapes.push_back({dim_});
    if (center_) shapes.push_back({dim_});
    return shapes;
  }
  std::vector<std::string> parameter_names() const override {
    std::vector<std::string> names;
    if (scale_) names.push_back("gamma");
    if (center_) names.push_back("beta");
    return names;
  }

  void initialize(uint64_t) override {
    if (scale_) std::fill(this->params_, this->params_ + dim_, T(1));
    if (center_) std::fill(this->params_ + (scale_ ? dim_ : 0), this->params_ + (scale_ ? 2 : 1) * dim_, T(0));
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    const int64_t rows = batch * rows_;
    ensure_size(c.out, batch * this->out_size_);
    ensure_size(c.mid, 2 * rows);  // μ, then 1/σ of every row
    layer_norm_forward<T>(c.out.data(), c.mid.data(), c.mid.data() + rows, x, gamma(), beta(), epsilon_, rows,
                          dim_);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T*, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    const int64_t rows = batch * rows_;
    T* dgamma = scale_ ? this->grads_ : nullptr;
    T* dbeta = center_ ? this->grads_ + (scale_ ? dim_ : 0) : nullptr;
    layer_norm_backward<T>(need_dx ? dx : nullptr, dgamma, dbeta, dy, x, c.mid.data(), c.mid.data() + rows,
                           gamma(), rows, dim_);
    return need_dx ? dx : nullptr;
  }
  // Each step normalised alone: masks pass through (Keras's supports_masking).
  bool acts_per_step() const override { return true; }

 private:
  const T* gamma() const { return scale_ ? this->params_ : nullptr; }
  const T* beta() const { return center_ ? this->params_ + (scale_ ? dim_ : 0) : nullptr; }

  int64_t axis_;
  double epsilon_;
  bool center_, scale_;
  int64_t dim_ = 0, rows_ = 0;  // rows per example
};

// The sinusoidal positional encoding of Vaswani et al. (2017, section 3.5)
// added to a sequence (N, T, D): y = x + PE, PE (T, D) the table of
// kernels/positional_encoding.cpp, built once per input shape. dx = dy.
template <typename T>
class PositionalEncoding : public Layer<T> {
 public:
  explicit PositionalEncoding(const LayerSpec& spec)
      : Layer<T>(spec), max_wavelength_(spec.get<double>("max_wavelength")) {
    validate_positional_encoding(max_wavelength_, (layer_label(spec) + ": max_wavelength").c_str());
  }

  Shape build(const Shape& input_shape) override {
    if (input_shape.size() != 2)
      throw ShapeError(layer_label(this->spec_) + ": expects a sequence (timesteps, features) per example, got " +
                       shape_string(input_shape));
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    table_.assign(static_cast<size_t>(this->in_size_), T(0));
    positional_encoding<T>(table_.data(), input_shape[0], input_shape[1], max_wavelength_);
    return input_shape;
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    const int64_t n = this->out_size_;
    ensure_size(c.out, batch * n);
    for (int64_t b = 0; b < batch; ++b) {
      const T* terms[2] = {x + b * n, table_.data()};
      add_forward<T>(c.out.data() + b * n, terms, 2, n);
    }
    return c.out.data();
  }

  T* backward(T* dy, T*, const T*, const T*, int64_t, bool need_dx, LayerCache<T>&) override {
    return need_dx ? dy : nullptr;
  }

 private:
  double max_wavelength_;
  std::vector<T> table_;  // PE (T, D) for the built shape
};

const LayerRegistration softmax_kind(layer_kind<Softmax>("softmax", {{"axis", int64_t(-1)}}));
const LayerRegistration layer_norm_kind(layer_kind<LayerNormalization>(
    "layer_norm", {{"axis", int64_t(-1)}, {"epsilon", 1e-3}, {"center", true}, {"scale", true}}));
const LayerRegistration positional_encoding_kind(layer_kind<PositionalEncoding>(
    "positional_encoding", {{"max_wavelength", 10000.0}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
