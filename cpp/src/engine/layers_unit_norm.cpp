// UnitNormalization: every vector along one axis scaled to length 1
// (kernels/unit_norm.hpp), the L2-normalised embedding of FaceNet and the
// course's face encodings. No weights.
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/unit_norm.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

// axis counts the batch axis, as in Keras: -1 (the default) is the last axis,
// 1 the channel axis of (N, C, H, W). One axis (Keras also takes a list).
template <typename T>
class UnitNormalization : public Layer<T> {
 public:
  explicit UnitNormalization(const LayerSpec& spec)
      : Layer<T>(spec), axis_(spec.get<int64_t>("axis")), epsilon_(spec.get<double>("epsilon")) {
    if (axis_ == 0)
      throw ValueError(layer_label(spec) + ": axis 0 is the batch axis; each example's vectors lie "
                       "along axis 1 or later (-1 is the last), got 0");
    validate_unit_norm(epsilon_, layer_label(spec).c_str());
  }

  Shape build(const Shape& in) override {
    const int64_t rank = static_cast<int64_t>(in.size());
    const int64_t axis = axis_ < 0 ? rank + 1 + axis_ : axis_;
    if (rank == 0 || axis < 1 || axis > rank)
      throw ValueError(layer_label(this->spec_) + ": axis must lie in [1, " + std::to_string(rank) + "] or [" +
                       std::to_string(-rank) + ", -1] for inputs of shape " + shape_string(in) + ", got " +
                       std::to_string(axis_));
    const size_t a = static_cast<size_t>(axis - 1);
    outer_ = inner_ = 1;
    for (size_t d = 0; d < a; ++d) outer_ *= in[d];
    channels_ = in[a];
    for (size_t d = a + 1; d < in.size(); ++d) inner_ *= in[d];
    per_step_ = a >= 1;  // vectors within each step of (T, ...): masks of sequences pass
    this->in_size_ = this->out_size_ = shape_size(in);
    return in;
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    ensure_size(c.out, batch * this->out_size_);
    unit_norm_forward<T>(c.out.data(), x, batch * outer_, channels_, inner_, epsilon_);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T*, int64_t batch, bool need_dx, LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    unit_norm_backward<T>(dx, dy, x, batch * outer_, channels_, inner_, epsilon_);
    return dx;
  }

  bool acts_per_step() const override { return per_step_; }

 private:
  int64_t axis_;
  double epsilon_;
  int64_t outer_ = 1, channels_ = 1, inner_ = 1;  // per example
  bool per_step_ = false;
};

const LayerRegistration unit_normalization_kind(
    layer_kind<UnitNormalization>("unit_normalization", {{"axis", -1}, {"epsilon", 1e-12}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
