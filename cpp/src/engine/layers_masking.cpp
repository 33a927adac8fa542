// Masking: marks the padded steps of a sequence (N, T, F) so the recurrent
// layers and the loss skip them (kernels/masking.hpp; Layer::output_mask).
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/masking.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

template <typename T>
class Masking : public Layer<T> {
 public:
  explicit Masking(const LayerSpec& spec) : Layer<T>(spec), mask_value_(spec.get<double>("mask_value")) {}

  Shape build(const Shape& in) override {
    if (in.size() != 2)
      throw ShapeError(layer_label(this->spec_) + ": expects a sequence (timesteps, features) per example, i.e. "
                       "batches (batch, timesteps, features), got " + shape_string(in) + " per example");
    steps_ = in[0];
    features_ = in[1];
    this->in_size_ = this->out_size_ = steps_ * features_;
    return in;
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    ensure_size(c.out, batch * this->out_size_);
    ensure_size(c.out_mask, batch * steps_);
    masking_forward<T>(c.out.data(), c.out_mask.data(), x, batch * steps_, features_, static_cast<T>(mask_value_));
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    if (!need_dx) return nullptr;
    masking_backward<T>(dx, dy, c.out_mask.data(), batch * steps_, features_);
    return dx;
  }

  // Its own mask replaces any the input carried (Keras's).
  const uint8_t* output_mask(size_t output, int64_t, LayerCache<T>& c) const override {
    return output == 0 ? c.out_mask.data() : nullptr;
  }

 private:
  double mask_value_;
  int64_t steps_ = 0, features_ = 0;
};

const LayerRegistration masking_kind(layer_kind<Masking>("masking", {{"mask_value", 0.0}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
