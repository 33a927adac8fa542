#include "engine/layers.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "corenn/error.hpp"
#include "corenn/kernels/activation.hpp"
#include "corenn/kernels/dense.hpp"
#include "corenn/kernels/dropout.hpp"
#include "corenn/kernels/init.hpp"
#include "corenn/kernels/loss.hpp"
#include "corenn/random.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

template <typename T>
int64_t Layer<T>::parameter_count() const {
  int64_t n = 0;
  for (const Shape& s : parameter_shapes()) n += shape_size(s);
  return n;
}

template <typename T>
int64_t Layer<T>::state_count() const {
  int64_t n = 0;
  for (const Shape& s : state_shapes()) n += shape_size(s);
  return n;
}

template <typename T>
std::vector<std::string> Layer<T>::parameter_names() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < parameter_shapes().size(); ++i) names.push_back("weight_" + std::to_string(i));
  return names;
}

template <typename T>
std::vector<std::string> Layer<T>::state_names() const {
  std::vector<std::string> names;
  for (size_t i = 0; i < state_shapes().size(); ++i) names.push_back("state_" + std::to_string(i));
  return names;
}

template <typename T>
double Layer<T>::kernel_penalty(int64_t offset, int64_t n, const KernelSettings& k, bool with_gradient) {
  if (k.l1 == 0.0 && k.l2 == 0.0) return 0.0;
  return static_cast<double>(weight_penalty<T>(with_gradient ? grads_ + offset : nullptr, params_ + offset, n,
                                               static_cast<T>(k.l1), static_cast<T>(k.l2)));
}

std::string layer_label(const LayerSpec& spec) { return "layer '" + spec.name + "' (" + spec.kind + ")"; }

KernelSettings::KernelSettings(const LayerSpec& spec)
    : activation(parse_activation(spec.get<std::string>("activation"), layer_label(spec) + ": activation")),
      alpha(spec.get<double>("alpha")),
      use_bias(spec.get<bool>("use_bias")),
      kernel_init(parse_initializer(spec.get<std::string>("kernel_initializer"))),
      bias_init(parse_initializer(spec.get<std::string>("bias_initializer"))),
      initializer_stddev(spec.get<double>("initializer_stddev")),
      l1(spec.get<double>("l1")),
      l2(spec.get<double>("l2")) {}

// alpha: leaky_relu's slope; elu's α is 1.0 in Keras and PyTorch (set it).
Attributes KernelSettings::attributes() {
  return {{"activation", "linear"}, {"alpha", 0.01}, {"use_bias", true},
          {"kernel_initializer", "glorot_uniform"}, {"bias_initializer", "zeros"},
          {"initializer_stddev", 0.01}, {"l1", 0.0}, {"l2", 0.0}};
}

namespace {

// Dense: Z = X·Wᵀ + b, then an optional activation A = g(Z) fused into the
// layer (Keras's Dense(activation=...)). As in Keras, it acts on the last
// axis: an input (..., F) per example gives (..., units), each position
// (a sequence's time step) through the same W. The leading axes fold into the
// batch, so the whole batch is one GEMM of batch · positions rows.
template <typename T>
class Dense : public Layer<T> {
 public:
  explicit Dense(const LayerSpec& spec) : Layer<T>(spec), k_(spec), units_(spec.get<int64_t>("units")) {
    if (units_ < 1) throw ValueError(layer_label(spec) + ": units must be >= 1, got " + std::to_string(units_));
  }

  Shape build(const Shape& input_shape) override {
    if (input_shape.empty())
      throw ShapeError(layer_label(this->spec_) + ": expects an input of rank >= 1 per example "
                       "(..., features), got a scalar");
    features_ = input_shape.back();
    positions_ = shape_size(input_shape) / std::max<int64_t>(features_, 1);
    Shape out = input_shape;
    out.back() = units_;
    this->in_size_ = shape_size(input_shape);
    this->out_size_ = shape_size(out);
    return out;
  }

  std::vector<Shape> parameter_shapes() const override {
    if (k_.use_bias) return {{units_, features_}, {units_}};
    return {{units_, features_}};
  }
  std::vector<std::string> parameter_names() const override {
    if (k_.use_bias) return {"kernel", "bias"};
    return {"kernel"};
  }

  void initialize(uint64_t key) override {
    const int64_t in = features_, out = units_;
    corenn::initialize<T>(this->params_, out * in, k_.kernel_init, in, out, k_.initializer_stddev, key);
    if (k_.use_bias)
      corenn::initialize<T>(bias(), out, k_.bias_init, in, out, k_.initializer_stddev, random_bits(key, 1));
  }

  // Softmax (a fused activation) normalises over the units of each position.
  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    const int64_t rows = batch * positions_, out = units_;
    T* z = preactivation_output(c, k_.activation, rows * out);
    dense_forward<T>(z, x, this->params_, bias(), rows, features_, out);
    apply_activation(c, k_.activation, alpha(), {rows, out, 1});
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx,
              LayerCache<T>& c) override {
    const int64_t rows = batch * positions_, in = features_, out = units_;
    activation_gradient_in_place(dy, c, y, k_.activation, alpha(), {rows, out, 1});
    dense_backward<T>(need_dx ? dx : nullptr, this->grads_, k_.use_bias ? this->grads_ + out * in : nullptr, dy,
                      x, this->params_, rows, in, out);
    return need_dx ? dx : nullptr;
  }

  double penalty(bool with_gradient) override {
    return this->kernel_penalty(0, units_ * features_, k_, with_gradient);
  }

  int64_t multiply_adds() const override { return positions_ * units_ * features_; }
  bool acts_per_step() const override { return true; }

 private:
  T alpha() const { return static_cast<T>(k_.alpha); }
  const T* bias() const { return k_.use_bias ? this->params_ + units_ * features_ : nullptr; }
  T* bias() { return k_.use_bias ? this->params_ + units_ * features_ : nullptr; }

  KernelSettings k_;
  int64_t units_;
  int64_t features_ = 0, positions_ = 1;  // per example: the last axis, the product of the others
};

// Activation as its own layer; softmax normalises over the features: the
// channels of an image (axis 1 of (N, C, H, W)), the last axis otherwise.
template <typename T>
class ActivationLayer : public Layer<T> {
 public:
  explicit ActivationLayer(const LayerSpec& spec)
      : Layer<T>(spec),
        activation_(parse_activation(spec.get<std::string>("activation"), layer_label(spec) + ": activation")),
        alpha_(spec.get<double>("alpha")) {}

  Shape build(const Shape& input_shape) override {
    if (input_shape.empty())
      throw ShapeError(layer_label(this->spec_) + ": needs an input of rank >= 1");
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    Shape one{1};  // a batch of one; the batch only scales the outer count
    one.insert(one.end(), input_shape.begin(), input_shape.end());
    axes_ = activation_axes(one);
    return input_shape;
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    const ActivationAxes a = at_batch(batch);
    ensure_size(c.out, batch * this->out_size_);
    activation_forward<T>(c.out.data(), x, a.outer, a.channels, a.inner, activation_, static_cast<T>(alpha_));
    return c.out.data();
  }

  bool is_relu() const override { return activation_ == Activation::relu; }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx,
              LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    const ActivationAxes a = at_batch(batch);
    activation_backward<T>(dx, dy, x, y, a.outer, a.channels, a.inner, activation_, static_cast<T>(alpha_));
    return dx;
  }
  bool keeps_dy(const LayerCache<T>&) const override { return true; }
  bool acts_per_step() const override { return true; }

 private:
  ActivationAxes at_batch(int64_t batch) const {
    ActivationAxes a = axes_;
    a.outer *= batch;
    return a;
  }

  Activation activation_;
  double alpha_;
  ActivationAxes axes_;
};

// Inverted dropout in training; the identity (no copy) at inference.
template <typename T>
class Dropout : public Layer<T> {
 public:
  explicit Dropout(const LayerSpec& spec) : Layer<T>(spec), rate_(spec.get<double>("rate")) {
    if (!(rate_ >= 0.0 && rate_ < 1.0))
      throw ValueError(layer_label(spec) + ": rate must be in [0, 1), got " + std::to_string(rate_));
  }

  Shape build(const Shape& input_shape) override {
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    return input_shape;
  }

  const T* forward(const T* x, int64_t batch, bool training, uint64_t key,
                   LayerCache<T>& c) const override {
    if (!training || rate_ == 0.0) return x;
    const int64_t n = batch * this->out_size_;
    ensure_size(c.out, n);
    ensure_size(c.mask, n);
    dropout_forward<T>(c.out.data(), c.mask.data(), x, n, static_cast<T>(rate_), key);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    if (!need_dx) return nullptr;
    if (!c.training || rate_ == 0.0) return dy;
    dropout_backward<T>(dx, dy, c.mask.data(), batch * this->out_size_, static_cast<T>(rate_));
    return dx;
  }
  bool acts_per_step() const override { return true; }

 private:
  double rate_;  // the DROP probability (1 - keep_prob)
};

// Flatten and Reshape only relabel the per-example shape: data pass through untouched.
template <typename T>
class Reshape : public Layer<T> {
 public:
  // Flatten is Reshape to one axis.
  explicit Reshape(const LayerSpec& spec)
      : Layer<T>(spec),
        flatten_(spec.kind == "flatten"),
        target_shape_(flatten_ ? Shape{} : spec.get<Ints>("target_shape")) {}

  Shape build(const Shape& input_shape) override {
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    if (flatten_) return {this->in_size_};
    Shape target = target_shape_;
    int64_t known = 1, unknown = -1;
    for (size_t i = 0; i < target.size(); ++i) {
      if (target[i] == -1) {
        if (unknown >= 0)
          throw ValueError(layer_label(this->spec_) + ": target_shape " + shape_string(target) +
                           " may contain at most one -1");
        unknown = static_cast<int64_t>(i);
      } else if (target[i] < 1) {
        throw ValueError(layer_label(this->spec_) + ": target_shape " + shape_string(target) +
                         " must have positive dimensions (or one -1)");
      } else {
        known *= target[i];
      }
    }
    if (unknown >= 0 && known > 0 && this->in_size_ % known == 0) target[unknown] = this->in_size_ / known;
    // An unresolved -1 must not reach shape_size (it throws its own, nameless error).
    const bool resolved = unknown < 0 || target[unknown] >= 1;
    if (!resolved || shape_size(target) != this->in_size_)
      throw ShapeError(layer_label(this->spec_) + ": cannot reshape an input of shape " +
                       shape_string(input_shape) + " (" + std::to_string(this->in_size_) +
                       " values) to " + shape_string(target_shape_));
    return target;
  }

  const T* forward(const T* x, int64_t, bool, uint64_t, LayerCache<T>&) const override { return x; }
  T* backward(T* dy, T*, const T*, const T*, int64_t, bool need_dx, LayerCache<T>&) override {
    return need_dx ? dy : nullptr;
  }

 private:
  bool flatten_;
  Shape target_shape_;  // per example; one entry may be -1
};

const LayerRegistration dense_kind(layer_kind<Dense>("dense", joined(KernelSettings::attributes(), {{"units", 0}})));
const LayerRegistration activation_kind(layer_kind<ActivationLayer>("activation", {{"activation", "linear"},
                                                                                   {"alpha", 0.01}}));
const LayerRegistration dropout_kind(layer_kind<Dropout>("dropout", {{"rate", 0.0}}));
const LayerRegistration flatten_kind(layer_kind<Reshape>("flatten", {}));
const LayerRegistration reshape_kind(layer_kind<Reshape>("reshape", {{"target_shape", Ints{}}}));

}  // namespace

template class Layer<float>;
template class Layer<double>;

}  // namespace detail
}  // namespace corenn
