// Layers that join the branches of a graph: Add (residual connections),
// Subtract (siamese networks' f(x1) − f(x2)) and Concatenate (Inception
// modules, U-Net skips).
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/merge.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

std::string shapes_string(const std::vector<Shape>& shapes) {
  std::string out;
  for (size_t i = 0; i < shapes.size(); ++i) out += (i ? ", " : "") + shape_string(shapes[i]);
  return out;
}

void require_several(const LayerSpec& spec, const std::vector<Shape>& shapes) {
  if (shapes.size() < 2)
    throw ValueError(layer_label(spec) + ": needs two or more inputs, got " + std::to_string(shapes.size()));
}

template <typename T>
class Add : public MergeLayer<T> {
 public:
  using MergeLayer<T>::MergeLayer;

  Shape build_inputs(const std::vector<Shape>& shapes) override {
    require_several(this->spec_, shapes);
    for (const Shape& s : shapes)
      if (s != shapes[0])
        throw ShapeError(layer_label(this->spec_) + ": all inputs must have the same shape, got " +
                         shapes_string(shapes));
    this->in_size_ = this->out_size_ = shape_size(shapes[0]);
    return shapes[0];
  }

  const T* forward_inputs(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const override {
    const int64_t n = batch * this->out_size_;
    ensure_size(c.out, n);
    add_forward<T>(c.out.data(), xs.data(), static_cast<int>(xs.size()), n);
    return c.out.data();
  }

  void backward_inputs(const T* dy, const std::vector<T*>& dx, const std::vector<uint8_t>& accumulate,
                       int64_t batch) const override {
    for (size_t k = 0; k < dx.size(); ++k)
      if (dx[k]) add_backward<T>(dx[k], dy, batch * this->out_size_, accumulate[k] != 0);
  }

  bool passes_gradient_through() const override { return true; }
};

// Keras's Subtract: exactly two inputs of one shape, y = a − b.
template <typename T>
class Subtract : public MergeLayer<T> {
 public:
  using MergeLayer<T>::MergeLayer;

  Shape build_inputs(const std::vector<Shape>& shapes) override {
    if (shapes.size() != 2)
      throw ValueError(layer_label(this->spec_) + ": needs exactly two inputs (a − b), got " +
                       std::to_string(shapes.size()));
    if (shapes[0] != shapes[1])
      throw ShapeError(layer_label(this->spec_) + ": both inputs must have the same shape, got " +
                       shapes_string(shapes));
    this->in_size_ = this->out_size_ = shape_size(shapes[0]);
    return shapes[0];
  }

  const T* forward_inputs(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const override {
    const int64_t n = batch * this->out_size_;
    ensure_size(c.out, n);
    subtract_forward<T>(c.out.data(), xs[0], xs[1], n);
    return c.out.data();
  }

  void backward_inputs(const T* dy, const std::vector<T*>& dx, const std::vector<uint8_t>& accumulate,
                       int64_t batch) const override {
    const int64_t n = batch * this->out_size_;
    if (dx[0]) add_backward<T>(dx[0], dy, n, accumulate[0] != 0);
    if (dx[1]) subtract_backward<T>(dx[1], dy, n, accumulate[1] != 0);
  }
};

// axis counts the batch axis, as in Keras: 1 is the channel axis of (N, C, H, W).
template <typename T>
class Concatenate : public MergeLayer<T> {
 public:
  explicit Concatenate(const LayerSpec& spec) : MergeLayer<T>(spec), axis_(spec.get<int64_t>("axis")) {}

  Shape build_inputs(const std::vector<Shape>& shapes) override {
    const LayerSpec& spec = this->spec_;
    require_several(spec, shapes);
    const int64_t rank = static_cast<int64_t>(shapes[0].size());
    const int64_t axis = axis_ < 0 ? rank + 1 + axis_ : axis_;
    if (axis < 1 || axis > rank)
      throw ValueError(layer_label(spec) + ": axis must lie in [1, " + std::to_string(rank) + "] or [" +
                       std::to_string(-rank) + ", -1] for inputs of shape " + shape_string(shapes[0]) +
                       " (the batch axis 0 cannot be joined), got " + std::to_string(axis_));
    const size_t a = static_cast<size_t>(axis - 1);
    Shape out = shapes[0];
    out[a] = 0;
    for (const Shape& s : shapes) {
      bool fits = static_cast<int64_t>(s.size()) == rank;
      for (size_t d = 0; fits && d < s.size(); ++d) fits = d == a || s[d] == shapes[0][d];
      if (!fits)
        throw ShapeError(layer_label(spec) + ": inputs must match in every axis but axis " +
                         std::to_string(axis) + ", got " + shapes_string(shapes));
      out[a] += s[a];
    }
    rows_ = 1;
    for (size_t d = 0; d < a; ++d) rows_ *= out[d];
    widths_.clear();
    for (const Shape& s : shapes) widths_.push_back(shape_size(s) / rows_);
    this->in_size_ = this->out_size_ = shape_size(out);
    return out;
  }

  const T* forward_inputs(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const override {
    ensure_size(c.out, batch * this->out_size_);
    concat_forward<T>(c.out.data(), xs.data(), widths_.data(), static_cast<int>(xs.size()), batch * rows_);
    return c.out.data();
  }

  void backward_inputs(const T* dy, const std::vector<T*>& dx, const std::vector<uint8_t>& accumulate,
                       int64_t batch) const override {
    const int64_t total = this->out_size_ / rows_;
    int64_t offset = 0;
    for (size_t k = 0; k < dx.size(); ++k) {
      if (dx[k]) concat_backward<T>(dx[k], dy, batch * rows_, offset, widths_[k], total, accumulate[k] != 0);
      offset += widths_[k];
    }
  }

 private:
  int64_t axis_;
  int64_t rows_ = 1;             // per example: the product of the axes before the joined one
  std::vector<int64_t> widths_;  // per input: values per row
};

const LayerRegistration add_kind(layer_kind<Add>("add", {}));
const LayerRegistration subtract_kind(layer_kind<Subtract>("subtract", {}));
const LayerRegistration concatenate_kind(layer_kind<Concatenate>("concatenate", {{"axis", 1}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
