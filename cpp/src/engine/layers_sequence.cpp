// Layers that reshape sequences: RepeatVector (a vector fed to every step of a
// decoder: one-to-many RNNs, sequence-to-sequence models).
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "corenn/kernels/merge.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

// RepeatVector(n): x (N, F) -> y (N, n, F), y[:, t] = x for every step t
// (Keras's). That is the concatenation of n copies of x along a new axis, so
// it runs on the concatenation kernels; backward sums the gradients of the n
// copies, dx = Σ_t dy[:, t].
template <typename T>
class RepeatVector : public Layer<T> {
 public:
  explicit RepeatVector(const LayerSpec& spec) : Layer<T>(spec), n_(spec.get<int64_t>("n")) {
    if (n_ < 1) throw ValueError(layer_label(spec) + ": n must be >= 1, got " + std::to_string(n_));
  }

  Shape build(const Shape& input_shape) override {
    if (input_shape.size() != 1)
      throw ShapeError(layer_label(this->spec_) + ": expects a vector (features,) per example, i.e. batches "
                       "(batch, features), got " + shape_string(input_shape) + " per example");
    this->in_size_ = input_shape[0];
    this->out_size_ = n_ * input_shape[0];
    widths_.assign(static_cast<size_t>(n_), input_shape[0]);
    return {n_, input_shape[0]};
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    ensure_size(c.out, batch * this->out_size_);
    const std::vector<const T*> copies(static_cast<size_t>(n_), x);
    concat_forward<T>(c.out.data(), copies.data(), widths_.data(), static_cast<int>(n_), batch);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    const int64_t F = this->in_size_;
    for (int64_t t = 0; t < n_; ++t) concat_backward<T>(dx, dy, batch, t * F, F, n_ * F, t > 0);
    return dx;
  }

 private:
  int64_t n_;
  std::vector<int64_t> widths_;  // n copies of F: the concatenation's widths
};

const LayerRegistration repeat_vector_kind(layer_kind<RepeatVector>("repeat_vector", {{"n", 1}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
