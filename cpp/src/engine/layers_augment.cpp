// Preprocessing layers. Normalization standardises its input with fixed
// statistics held as state (saved with the weights, never trained). The
// augmentation layers act only in training, drawing from the per-(step, layer)
// key as Dropout does, and return x itself at inference (as Flatten does).
#include <cmath>

#include "corenn/error.hpp"
#include "corenn/kernels/augment.hpp"
#include "corenn/kernels/normalization.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

void require_image(const LayerSpec& spec, const Shape& in) {
  if (in.size() != 3)
    throw ShapeError(layer_label(spec) + ": expects images (channels, height, width) per example, got " +
                     shape_string(in));
}

// The per-example image shape (C, H, W).
struct Planes {
  int64_t channels = 1, height = 1, width = 1;
};

// An augmentation layer: each example an image (C, H, W), and the output the
// input's shape.
template <typename T>
class ImageAugmentation : public Layer<T> {
 public:
  using Layer<T>::Layer;

  Shape build(const Shape& input_shape) override {
    require_image(this->spec_, input_shape);
    p_ = {input_shape[0], input_shape[1], input_shape[2]};
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    return input_shape;
  }

 protected:
  Planes p_;
};

template <typename T>
class RandomFlip : public ImageAugmentation<T> {
 public:
  explicit RandomFlip(const LayerSpec& spec) : ImageAugmentation<T>(spec) {
    const std::string& mode = spec.get<std::string>("mode");
    try {
      mode_ = parse_flip_mode(mode);
    } catch (const ValueError&) {
      throw ValueError(layer_label(spec) + ": mode must be 'horizontal', 'vertical' or "
                       "'horizontal_and_vertical', got '" + mode + "'");
    }
  }

  const T* forward(const T* x, int64_t batch, bool training, uint64_t key,
                   LayerCache<T>& c) const override {
    if (!training) return x;
    ensure_size(c.out, batch * this->out_size_);
    ensure_size(c.mask, batch);
    const Planes& p = this->p_;
    random_flip_forward<T>(c.out.data(), c.mask.data(), x, mode_, key, batch, p.channels, p.height, p.width);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    if (!need_dx) return nullptr;
    if (!c.training) return dy;  // the identity at inference
    const Planes& p = this->p_;
    random_flip_backward<T>(dx, dy, c.mask.data(), batch, p.channels, p.height, p.width);
    return dx;
  }

 private:
  FlipMode mode_ = FlipMode::horizontal_and_vertical;
};

template <typename T>
class RandomCrop : public ImageAugmentation<T> {
 public:
  explicit RandomCrop(const LayerSpec& spec) : ImageAugmentation<T>(spec), pads_(spec.get<Ints>("pads")) {
    const Ints& p = pads_;
    if (p.size() != 4 || p[0] != p[1] || p[2] != p[3] || p[0] < 0 || p[2] < 0)
      throw ValueError(layer_label(spec) + ": padding must be the same on both sides of each axis "
                       "and >= 0, as (top, bottom, left, right), got " + shape_string(p));
  }

  const T* forward(const T* x, int64_t batch, bool training, uint64_t key,
                   LayerCache<T>& c) const override {
    if (!training || identity()) return x;
    ensure_size(c.out, batch * this->out_size_);
    ensure_size(c.index, 2 * batch);
    const Planes& p = this->p_;
    random_crop_forward<T>(c.out.data(), c.index.data(), x, pad_h(), pad_w(), key, batch, p.channels,
                           p.height, p.width);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    if (!need_dx) return nullptr;
    if (!c.training || identity()) return dy;
    const Planes& p = this->p_;
    random_crop_backward<T>(dx, dy, c.index.data(), pad_h(), pad_w(), batch, p.channels, p.height,
                            p.width);
    return dx;
  }

 private:
  int64_t pad_h() const { return pads_[0]; }
  int64_t pad_w() const { return pads_[2]; }
  bool identity() const { return pad_h() == 0 && pad_w() == 0; }

  Ints pads_;  // (top, bottom, left, right)
};

template <typename T>
class ColorShift : public ImageAugmentation<T> {
 public:
  explicit ColorShift(const LayerSpec& spec) : ImageAugmentation<T>(spec), delta_(spec.get<double>("delta")) {
    if (!(delta_ >= 0.0 && std::isfinite(delta_)))
      throw ValueError(layer_label(spec) + ": delta must be finite and >= 0, got " + std::to_string(delta_));
  }

  const T* forward(const T* x, int64_t batch, bool training, uint64_t key,
                   LayerCache<T>& c) const override {
    if (!training || delta_ == 0.0) return x;
    ensure_size(c.out, batch * this->out_size_);
    const Planes& p = this->p_;
    ensure_size(c.scratch, batch * p.channels);
    color_shift_forward<T>(c.out.data(), c.scratch.data(), x, static_cast<T>(delta_), key,
                           batch, p.channels, p.height * p.width);
    return c.out.data();
  }

  // y = x + shift: the gradient passes through unchanged.
  T* backward(T* dy, T*, const T*, const T*, int64_t, bool need_dx, LayerCache<T>&) override {
    return need_dx ? dy : nullptr;
  }

 private:
  double delta_;
};

// Statistics per entry of the first per-example axis: features of a (F,)
// input, channels of a (C, H, W) one.
template <typename T>
class Normalization : public Layer<T> {
 public:
  explicit Normalization(const LayerSpec& spec)
      : Layer<T>(spec), mean_(spec.get<Reals>("mean")), variance_(spec.get<Reals>("variance")) {
    if (mean_.size() != variance_.size())
      throw ValueError(layer_label(spec) + ": mean and variance must have the same length, got " +
                       std::to_string(mean_.size()) + " and " + std::to_string(variance_.size()));
    for (size_t i = 0; i < mean_.size(); ++i)
      if (!std::isfinite(mean_[i]) || !(variance_[i] >= 0.0 && std::isfinite(variance_[i])))
        throw ValueError(layer_label(spec) + ": mean must be finite and variance finite and >= 0, "
                         "got mean " + std::to_string(mean_[i]) + " and variance " +
                         std::to_string(variance_[i]) + " at index " + std::to_string(i));
  }

  Shape build(const Shape& input_shape) override {
    if (input_shape.empty())
      throw ShapeError(layer_label(this->spec_) + ": needs an input of rank >= 1");
    channels_ = input_shape[0];
    if (!mean_.empty() && static_cast<int64_t>(mean_.size()) != channels_)
      throw ShapeError(layer_label(this->spec_) + ": has statistics for " +
                       std::to_string(mean_.size()) + " features/channels, the input " +
                       shape_string(input_shape) + " has " + std::to_string(channels_));
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    return input_shape;
  }

  std::vector<Shape> state_shapes() const override { return {{channels_}, {channels_}}; }
  std::vector<std::string> state_names() const override { return {"mean", "variance"}; }

  void initialize(uint64_t) override {
    for (int64_t c = 0; c < channels_; ++c) {
      this->state_[c] = mean_.empty() ? T(0) : static_cast<T>(mean_[c]);
      this->state_[channels_ + c] = variance_.empty() ? T(1) : static_cast<T>(variance_[c]);
    }
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    ensure_size(c.out, batch * this->out_size_);
    normalize_forward<T>(c.out.data(), x, this->state_, this->state_ + channels_, batch, channels_,
                         this->out_size_ / channels_);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    normalize_backward<T>(dx, dy, this->state_ + channels_, batch, channels_, this->out_size_ / channels_);
    return dx;
  }

 private:
  // The initial statistics per feature/channel; empty: 0 and 1.
  Reals mean_, variance_;
  int64_t channels_ = 1;
};

const LayerRegistration normalization_kind(layer_kind<Normalization>(
    "normalization", {{"mean", Reals{}}, {"variance", Reals{}}}));
const LayerRegistration random_flip_kind(layer_kind<RandomFlip>("random_flip",
                                                                {{"mode", "horizontal_and_vertical"}}));
const LayerRegistration random_crop_kind(layer_kind<RandomCrop>("random_crop", {{"pads", Ints{0, 0, 0, 0}}}));
const LayerRegistration color_shift_kind(layer_kind<ColorShift>("color_shift", {{"delta", 0.0}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
