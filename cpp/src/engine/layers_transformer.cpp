// The transformer's element layers (Vaswani et al. 2017; course 5, week 4):
// Softmax over any axis but the batch, LayerNormalization and the sinusoidal
// PositionalEncoding. The attention layers are in layers_attention.cpp.
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/activation.hpp"
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

const LayerRegistration softmax_kind(layer_kind<Softmax>("softmax", {{"axis", int64_t(-1)}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
