// Preprocessing layers. Normalization standardises its input with fixed
// statistics held as state (saved with the weights, never trained). The
// augmentation layers act only in training, drawing from the per-(step, layer)
// key as Dropout does, and return x itself at inference (as Flatten does).
#include <cmath>

#include "corenn/error.hpp"
#include "corenn/kernels/augment.hpp"
#include "corenn/kernels/normalization.hpp"
#include "engine/layers.hpp"

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
    try {
      mode_ = parse_flip_mode(spec.mode);
    } catch (const ValueError&) {
      throw ValueError(layer_label(spec) + ": mode must be 'horizontal', 'vertical' or "
                       "'horizontal_and_vertical', got '" + spec.mode + "'");
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
  explicit RandomCrop(const LayerSpec& spec) : ImageAugmentation<T>(spec) {
    const auto& p = spec.pads;
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
    if (identity()) return dy;
    const Planes& p = this->p_;
    random_crop_backward<T>(dx, dy, c.index.data(), pad_h(), pad_w(), batch, p.channels, p.height,
                            p.width);
    return dx;
  }

 private:
  int64_t pad_h() const { return this->spec_.pads[0]; }
  int64_t pad_w() const { return this->spec_.pads[2]; }
  bool identity() const { return pad_h() == 0 && pad_w() == 0; }
};

template <typename T>
class ColorShift : public ImageAugmentation<T> {
 public:
  explicit ColorShift(const LayerSpec& spec) : ImageAugmentation<T>(spec) {
    if (!(spec.delta >= 0.0 && std::isfinite(spec.delta)))
      throw ValueError(layer_label(spec) + ": delta must be finite and >= 0, got " +
                       std::to_string(spec.delta));
  }

  const T* forward(const T* x, int64_t batch, bool training, uint64_t key,
                   LayerCache<T>& c) const override {
    if (!training || this->spec_.delta == 0.0) return x;
    ensure_size(c.out, batch * this->out_size_);
    const Planes& p = this->p_;
    ensure_size(c.scratch, batch * p.channels);
    color_shift_forward<T>(c.out.data(), c.scratch.data(), x, static_cast<T>(this->spec_.delta), key,
                           batch, p.channels, p.height * p.width);
    return c.out.data();
  }

  // y = x + shift: the gradient passes through unchanged.
  T* backward(T* dy, T*, const T*, const T*, int64_t, bool need_dx, LayerCache<T>&) override {
    return need_dx ? dy : nullptr;
  }
};

// Statistics per entry of the first per-example axis: features of a (F,)
// input, channels of a (C, H, W) one.
template <typename T>
class Normalization : public Layer<T> {
 public:
  explicit Normalization(const LayerSpec& spec) : Layer<T>(spec) {
    if (spec.mean.size() != spec.variance.size())
      throw ValueError(layer_label(spec) + ": mean and variance must have the same length, got " +
                       std::to_string(spec.mean.size()) + " and " + std::to_string(spec.variance.size()));
    for (size_t i = 0; i < spec.mean.size(); ++i)
      if (!std::isfinite(spec.mean[i]) || !(spec.variance[i] >= 0.0 && std::isfinite(spec.variance[i])))
        throw ValueError(layer_label(spec) + ": mean must be finite and variance finite and >= 0, "
                         "got mean " + std::to_string(spec.mean[i]) + " and variance " +
                         std::to_string(spec.variance[i]) + " at index " + std::to_string(i));
  }

  Shape build(const Shape& input_shape) override {
    if (input_shape.empty())
      throw ShapeError(layer_label(this->spec_) + ": needs an input of rank >= 1");
    channels_ = input_shape[0];
    if (!this->spec_.mean.empty() && static_cast<int64_t>(this->spec_.mean.size()) != channels_)
      throw ShapeError(layer_label(this->spec_) + ": has statistics for " +
                       std::to_string(this->spec_.mean.size()) + " features/channels, the input " +
                       shape_string(input_shape) + " has " + std::to_string(channels_));
    this->in_size_ = this->out_size_ = shape_size(input_shape);
    return input_shape;
  }

  std::vector<Shape> state_shapes() const override { return {{channels_}, {channels_}}; }
  std::vector<std::string> state_names() const override { return {"mean", "variance"}; }

  void initialize(uint64_t) override {
    const auto& s = this->spec_;
    for (int64_t c = 0; c < channels_; ++c) {
      this->state_[c] = s.mean.empty() ? T(0) : static_cast<T>(s.mean[c]);
      this->state_[channels_ + c] = s.variance.empty() ? T(1) : static_cast<T>(s.variance[c]);
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
  int64_t channels_ = 1;
};

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> make_preprocessing_layer(const LayerSpec& spec) {
  const std::string& k = spec.kind;
  if (k == "normalization") return std::make_unique<Normalization<T>>(spec);
  if (k == "random_flip") return std::make_unique<RandomFlip<T>>(spec);
  if (k == "random_crop") return std::make_unique<RandomCrop<T>>(spec);
  if (k == "color_shift") return std::make_unique<ColorShift<T>>(spec);
  return nullptr;
}

template std::unique_ptr<Layer<float>> make_preprocessing_layer<float>(const LayerSpec&);
template std::unique_ptr<Layer<double>> make_preprocessing_layer<double>(const LayerSpec&);

}  // namespace detail
}  // namespace corenn
