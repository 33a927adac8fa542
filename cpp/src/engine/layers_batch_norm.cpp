// BatchNormalization over the channel axis: per example (C,) or (C, H, W) — any
// (C, ...) — each channel normalised over the batch and the trailing axes.
// Keras's settings mapped onto the PyTorch-semantics kernels: Keras's momentum
// is the weight the moving averages KEEP, the kernels take the weight of the
// new batch statistic, 1 − momentum.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/batch_norm.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

// Parameters gamma (if scale), beta (if center), each (C,); state moving_mean,
// moving_variance, each (C,). The cache's `mid` holds the batch's μ and invstd
// (2·C values) between forward and backward.
template <typename T>
class BatchNorm : public Layer<T> {
 public:
  explicit BatchNorm(const LayerSpec& spec)
      : Layer<T>(spec),
        axis_(spec.get<int64_t>("axis")),
        momentum_(spec.get<double>("momentum")),
        epsilon_(spec.get<double>("epsilon")),
        center_(spec.get<bool>("center")),
        scale_(spec.get<bool>("scale")) {
    std::ostringstream msg;
    if (!(momentum_ >= 0.0 && momentum_ <= 1.0))
      msg << layer_label(spec) << ": momentum must be in [0, 1], got " << momentum_;
    else if (!(epsilon_ > 0.0 && std::isfinite(epsilon_)))
      msg << layer_label(spec) << ": epsilon must be finite and > 0, got " << epsilon_;
    if (!msg.str().empty()) throw ValueError(msg.str());
  }

  Shape build(const Shape& in) override {
    if (in.empty())
      throw ShapeError(layer_label(this->spec_) + ": needs an input of rank >= 1 per example, got " +
                       shape_string(in));
    // Keras counts the batch axis: 1 is the channels of NCHW and the features of (N, C).
    const int64_t rank = static_cast<int64_t>(in.size()) + 1;
    const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
    if (axis != 1)
      throw ValueError(layer_label(this->spec_) + ": axis must be 1 (the channels: corenn is channels-first" +
                       (rank == 2 ? std::string(", or -1") : std::string()) + "), got " +
                       std::to_string(axis_) + " for inputs of shape " + shape_string(in));
    channels_ = in[0];
    this->in_size_ = this->out_size_ = shape_size(in);
    spatial_ = this->in_size_ / channels_;
    return in;
  }

  std::vector<Shape> parameter_shapes() const override {
    std::vector<Shape> shapes;
    if (scale_) shapes.push_back({channels_});
    if (center_) shapes.push_back({channels_});
    return shapes;
  }

  std::vector<Shape> state_shapes() const override { return {{channels_}, {channels_}}; }

  std::vector<std::string> parameter_names() const override {
    std::vector<std::string> names;
    if (scale_) names.push_back("gamma");
    if (center_) names.push_back("beta");
    return names;
  }
  std::vector<std::string> state_names() const override { return {"moving_mean", "moving_variance"}; }

  void initialize(uint64_t) override {
    T* p = this->params_;
    if (scale_) p = std::fill_n(p, channels_, T(1));
    if (center_) std::fill_n(p, channels_, T(0));
    std::fill_n(moving_mean(), channels_, T(0));
    std::fill_n(moving_variance(), channels_, T(1));
  }

  const T* forward(const T* x, int64_t batch, bool training, uint64_t, LayerCache<T>& c) const override {
    ensure_size(c.out, batch * this->out_size_);
    ensure_size(c.mid, 2 * channels_);
    T* mean = c.mid.data();
    T* invstd = mean + channels_;
    if (batch_statistics(training) && c.fused_relu)
      batch_norm_relu_forward<T>(c.out.data(), mean, invstd, moving_mean(), moving_variance(), x, gamma(), beta(),
                                 1.0 - momentum_, epsilon_, batch, channels_, spatial_);
    else if (batch_statistics(training))
      batch_norm_forward<T>(c.out.data(), mean, invstd, moving_mean(), moving_variance(), x, gamma(), beta(),
                            1.0 - momentum_, epsilon_, batch, channels_, spatial_);
    else
      batch_norm_inference_forward<T>(c.out.data(), mean, invstd, x, moving_mean(), moving_variance(),
                                      gamma(), beta(), epsilon_, batch, channels_, spatial_);
    return c.out.data();
  }

  // The inference map is per channel (s = γ/√(var + ε), t = β − mean·s) over (C, ...) data.
  int64_t affine_channels() const override { return channels_; }
  void fold_into(T* kernel_out, T* bias_out, const FusionWeights<T>& w) const override {
    batch_norm_fold<T>(kernel_out, bias_out, w.kernel, w.bias, w.per_channel, moving_mean(), moving_variance(),
                       gamma(), beta(), epsilon_, channels_);
  }

  bool fuses_relu(bool training) const override { return batch_statistics(training); }

  // With cache.fused_relu, y is the ReLU's output and dy its gradient (dy may be overwritten).
  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    const T* mean = c.mid.data();
    const T* invstd = mean + channels_;
    T* dgamma = scale_ ? this->grads_ : nullptr;
    T* dbeta = center_ ? this->grads_ + (scale_ ? channels_ : 0) : nullptr;
    if (c.fused_relu)  // the ReLU's gradient first, in place: its mask y > 0 is v > 0 for y = relu(v)
      activation_backward<T>(dy, dy, y, y, 1, 1, batch * this->in_size_, Activation::relu, T(0));
    if (batch_statistics(c.training))
      batch_norm_backward<T>(need_dx ? dx : nullptr, dgamma, dbeta, dy, x, mean, invstd, gamma(), batch,
                             channels_, spatial_);
    else
      batch_norm_inference_backward<T>(need_dx ? dx : nullptr, dgamma, dbeta, dy, x, mean, invstd, gamma(),
                                       batch, channels_, spatial_);
    return need_dx ? dx : nullptr;
  }
  bool keeps_dy(const LayerCache<T>& c) const override { return !c.fused_relu; }

 private:
  // Keras's rule: a frozen layer (trainable = False) normalises with its moving
  // statistics even while the model trains, and leaves them unchanged.
  bool batch_statistics(bool training) const { return training && this->spec_.trainable; }

  const T* gamma() const { return scale_ ? this->params_ : nullptr; }
  const T* beta() const { return center_ ? this->params_ + (scale_ ? channels_ : 0) : nullptr; }
  // The state arena is written by a training forward, which is const: the
  // moving averages are not part of the layer's configuration.
  T* moving_mean() const { return this->state_; }
  T* moving_variance() const { return this->state_ + channels_; }

  int64_t axis_;  // counting the batch axis, as Keras
  double momentum_, epsilon_;
  bool center_, scale_;
  int64_t channels_ = 1, spatial_ = 1;
};

const LayerRegistration batch_norm_kind(layer_kind<BatchNorm>(
    "batch_norm", {{"axis", 1}, {"momentum", 0.99}, {"epsilon", 1e-3}, {"center", true}, {"scale", true}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
