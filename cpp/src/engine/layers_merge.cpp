// Layers that join the branches of a graph: Add (residual connections),
// Subtract (siamese networks' f(x1) − f(x2)), Concatenate (Inception
// modules, U-Net skips), Dot (a per-example dot product: skip-gram's
// word·context score, attention scores), and Keras's other element-wise
// merges: Multiply (a gate's g ⊙ h), Average (an ensemble's mean), Maximum
// and Minimum.
#include <algorithm>
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/batched_matmul.hpp"
#include "corenn/kernels/unit_norm.hpp"
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

// "(batch, 4, 5)": an input's shape with Keras's axis 0 written out.
std::string batched_shape(const Shape& shape) {
  std::string out = "(batch";
  for (int64_t s : shape) out += ", " + std::to_string(s);
  return out + ")";
}

void require_several(const LayerSpec& spec, const std::vector<Shape>& shapes) {
  if (shapes.size() < 2)
    throw ValueError(layer_label(spec) + ": needs two or more inputs, got " + std::to_string(shapes.size()));
}

// The shape of element-wise merges (Add, Subtract), whose inputs ("all
// inputs", "both inputs") must share it.
Shape common_shape(const LayerSpec& spec, const std::vector<Shape>& shapes, const char* inputs) {
  for (const Shape& s : shapes)
    if (s != shapes[0])
      throw ShapeError(layer_label(spec) + ": " + inputs + " must have the same shape, got " + shapes_string(shapes));
  return shapes[0];
}

// The steps of a merge's inputs (N, T, ...), whose masks are (N, T): the
// first per-example axis (0 for inputs without one, which carry no mask).
int64_t steps_of(const Shape& shape) { return shape.empty() ? 0 : shape[0]; }

// Keras's mask of an element-wise merge (Merge.compute_mask): a step is valid
// when it is valid in every input that carries a mask (an unmasked input
// adds no condition); no mask when no input carries one.
template <typename T>
const uint8_t* all_of_masks(LayerCache<T>& c, int64_t n) {
  const uint8_t* only = nullptr;
  int masked = 0;
  for (const uint8_t* m : c.input_masks)
    if (m) only = m, ++masked;
  if (masked <= 1) return only;
  c.out_mask.assign(static_cast<size_t>(n), 1);
  for (const uint8_t* m : c.input_masks)
    if (m)
      for (int64_t i = 0; i < n; ++i) c.out_mask[i] = c.out_mask[i] && m[i];
  return c.out_mask.data();
}

// The element-wise merges whose backward needs dy alone (Add, Subtract,
// Average): inputs of one shape, the output of that shape, masks joined by
// all_of_masks.
template <typename T>
class ElementwiseMerge : public MergeLayer<T> {
 public:
  using MergeLayer<T>::MergeLayer;

  Shape build_inputs(const std::vector<Shape>& shapes) override {
    const Shape shape = common_shape(this->spec_, shapes, require_inputs(shapes));
    this->in_size_ = this->out_size_ = shape_size(shape);
    steps_ = steps_of(shape);
    count_ = static_cast<int>(shapes.size());
    return shape;
  }

  const uint8_t* output_mask(size_t, int64_t batch, LayerCache<T>& c) const override {
    return all_of_masks(c, batch * steps_);
  }

 protected:
  // Checks the number of inputs (two or more); returns what to call them.
  virtual const char* require_inputs(const std::vector<Shape>& shapes) const {
    require_several(this->spec_, shapes);
    return "all inputs";
  }

  int count_ = 0;

 private:
  int64_t steps_ = 0;
};

template <typename T>
class Add : public ElementwiseMerge<T> {
 public:
  using ElementwiseMerge<T>::ElementwiseMerge;

  const T* forward_inputs(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const override {
    const int64_t n = batch * this->out_size_;
    ensure_size(c.out, n);
    if (c.fused_relu) add_relu_forward<T>(c.out.data(), xs.data(), static_cast<int>(xs.size()), n);
    else add_forward<T>(c.out.data(), xs.data(), static_cast<int>(xs.size()), n);
    return c.out.data();
  }

  // The training plan's relu(a + b) of a residual block, written in the sum's pass.
  bool fuses_relu(bool training) const override { return training; }

  void backward_inputs(const T* dy, const std::vector<T*>& dx, const std::vector<uint8_t>& accumulate,
                       int64_t batch) const override {
    for (size_t k = 0; k < dx.size(); ++k)
      if (dx[k]) add_backward<T>(dx[k], dy, batch * this->out_size_, accumulate[k] != 0);
  }

  bool passes_gradient_through() const override { return true; }
};

// Keras's Subtract: exactly two inputs of one shape, y = a − b.
template <typename T>
class Subtract : public ElementwiseMerge<T> {
 public:
  using ElementwiseMerge<T>::ElementwiseMerge;

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

 protected:
  const char* require_inputs(const std::vector<Shape>& shapes) const override {
    if (shapes.size() != 2)
      throw ValueError(layer_label(this->spec_) + ": needs exactly two inputs (a − b), got " +
                       std::to_string(shapes.size()));
    return "both inputs";
  }
};

// Keras's Average: the mean of two or more inputs of one shape (an ensemble's
// averaged outputs); every input receives dy / count.
template <typename T>
class Average : public ElementwiseMerge<T> {
 public:
  using ElementwiseMerge<T>::ElementwiseMerge;

  const T* forward_inputs(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const override {
    const int64_t n = batch * this->out_size_;
    ensure_size(c.out, n);
    average_forward<T>(c.out.data(), xs.data(), this->count_, n);
    return c.out.data();
  }

  void backward_inputs(const T* dy, const std::vector<T*>& dx, const std::vector<uint8_t>& accumulate,
                       int64_t batch) const override {
    for (size_t k = 0; k < dx.size(); ++k)
      if (dx[k]) average_backward<T>(dx[k], dy, this->count_, batch * this->out_size_, accumulate[k] != 0);
  }
};

// The element-wise merges whose backward reads the inputs (Multiply) or the
// output (Maximum, Minimum), which only a CallLayer is handed: two or more
// inputs of one shape, the output of that shape, masks joined as Add's.
template <typename T>
class ElementwiseCall : public CallLayer<T> {
 public:
  using CallLayer<T>::CallLayer;

  std::vector<Shape> build_call(const std::vector<Shape>& shapes) override {
    require_several(this->spec_, shapes);
    const Shape shape = common_shape(this->spec_, shapes, "all inputs");
    this->in_size_ = this->out_size_ = shape_size(shape);
    steps_ = steps_of(shape);
    return {shape};
  }

  const uint8_t* output_mask(size_t, int64_t batch, LayerCache<T>& c) const override {
    return all_of_masks(c, batch * steps_);
  }

 protected:
  // No gradient reached the output: every input's is zero.
  bool zero_gradients(const std::vector<T*>& dys, const std::vector<T*>& dxs, int64_t n) const {
    if (dys[0]) return false;
    for (T* dx : dxs)
      if (dx) std::fill(dx, dx + n, T(0));
    return true;
  }

 private:
  int64_t steps_ = 0;
};

// Keras's Multiply: the element-wise product of the inputs (a gate's σ(a) ⊙ h).
template <typename T>
class Multiply : public ElementwiseCall<T> {
 public:
  using ElementwiseCall<T>::ElementwiseCall;

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool, uint64_t,
                    LayerCache<T>& c) const override {
    const int64_t n = batch * this->out_size_;
    ensure_size(c.out, n);
    multiply_forward<T>(c.out.data(), xs.data(), static_cast<int>(xs.size()), n);
    ys[0] = c.out.data();
  }

  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>&, int64_t batch, LayerCache<T>&) override {
    const int64_t n = batch * this->out_size_;
    if (this->zero_gradients(dys, dxs, n)) return;
    for (size_t k = 0; k < dxs.size(); ++k)
      if (dxs[k]) multiply_backward<T>(dxs[k], dys[0], xs.data(), static_cast<int>(xs.size()), static_cast<int>(k), n);
  }
};

// Keras's Maximum and Minimum (one class: the kind chooses). Where inputs tie
// for the extremum they share its gradient equally (extremum_backward).
template <typename T>
class Extremum : public ElementwiseCall<T> {
 public:
  explicit Extremum(const LayerSpec& spec) : ElementwiseCall<T>(spec), maximum_(spec.kind == "maximum") {}

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool, uint64_t,
                    LayerCache<T>& c) const override {
    const int64_t n = batch * this->out_size_;
    ensure_size(c.out, n);
    if (maximum_) maximum_forward<T>(c.out.data(), xs.data(), static_cast<int>(xs.size()), n);
    else minimum_forward<T>(c.out.data(), xs.data(), static_cast<int>(xs.size()), n);
    ys[0] = c.out.data();
  }

  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>& ys, int64_t batch, LayerCache<T>&) override {
    const int64_t n = batch * this->out_size_;
    if (this->zero_gradients(dys, dxs, n)) return;
    for (size_t k = 0; k < dxs.size(); ++k)
      if (dxs[k])
        extremum_backward<T>(dxs[k], dys[0], ys[0], xs.data(), static_cast<int>(xs.size()), static_cast<int>(k), n);
  }

 private:
  bool maximum_;
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
    steps_.clear();
    for (const Shape& s : shapes) widths_.push_back(shape_size(s) / rows_), steps_.push_back(steps_of(s));
    joins_steps_ = a == 0;
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

  // Keras's rule (Concatenate.compute_mask): each input's mask spread over its
  // values (all valid for an input without one), joined as the inputs are,
  // then a step is valid when any of its values is. Joined along the steps
  // (axis 1), the output's mask is the inputs' step masks one after another;
  // along another axis a step is valid when it is in some input, so every
  // step is when an input carries no mask. No mask when no input carries one.
  const uint8_t* output_mask(size_t, int64_t batch, LayerCache<T>& c) const override {
    bool any = false, all = true;
    for (const uint8_t* m : c.input_masks) any = any || m, all = all && m;
    if (!any || (!joins_steps_ && !all)) return nullptr;
    int64_t steps = 0;
    for (int64_t s : steps_) steps += s;
    const int64_t out_steps = joins_steps_ ? steps : steps_[0];
    c.out_mask.assign(static_cast<size_t>(batch * out_steps), joins_steps_ ? 1 : 0);
    for (int64_t n = 0; n < batch; ++n) {
      uint8_t* out = c.out_mask.data() + n * out_steps;
      for (size_t k = 0; k < c.input_masks.size(); ++k) {
        const uint8_t* m = c.input_masks[k];
        const int64_t t = steps_[k];
        if (m && joins_steps_) std::copy(m + n * t, m + (n + 1) * t, out);
        else if (m) for (int64_t i = 0; i < t; ++i) out[i] = out[i] || m[n * t + i];
        if (joins_steps_) out += t;
      }
    }
    return c.out_mask.data();
  }

 private:
  int64_t axis_;
  int64_t rows_ = 1;             // per example: the product of the axes before the joined one
  std::vector<int64_t> widths_;  // per input: values per row
  std::vector<int64_t> steps_;   // per input: its first axis (the steps of its mask)
  bool joins_steps_ = false;     // joined along the first per-example axis
};


// Keras's Dot: the dot product of two inputs over one axis of each, per
// example (batch_dot). axes count the batch axis, as Keras's (negative ones
// from the end); the output holds the first input's other axes, then the
// second's: (N, T, D)·(N, S, D) over axes (2, 2) is (N, T, S), and two
// vectors (N, D) give (N, 1). With normalize, each input is first scaled to
// unit L2 norm along its axis (F.normalize), so the output is the cosine
// similarity. The contracted axis must be the first or the last per-example
// axis of its input (every axis of a vector or a matrix; Keras also allows a
// middle axis of a rank-3 example, which would need a transpose).
// normalize divides by max(‖x‖₂, ε) with F.normalize's and Keras's ε.
inline constexpr double kNormalizeEpsilon = 1e-12;

template <typename T>
class Dot : public CallLayer<T> {
 public:
  explicit Dot(const LayerSpec& spec)
      : CallLayer<T>(spec), axes_(spec.get<Ints>("axes")), normalize_(spec.get<bool>("normalize")) {
    if (axes_.size() != 2)
      throw ValueError(layer_label(spec) + ": axes must hold one axis per input (2), got " +
                       AttributeValue(axes_).to_string());
    for (int64_t a : axes_)
      if (a == 0)
        throw ValueError(layer_label(spec) + ": axes must not name the batch axis 0, got " +
                         AttributeValue(axes_).to_string());
  }

  std::vector<Shape> build_call(const std::vector<Shape>& in) override {
    const LayerSpec& spec = this->spec_;
    if (in.size() != 2)
      throw ValueError(layer_label(spec) + ": takes exactly two inputs, got " + std::to_string(in.size()));
    int64_t axis[2], size[2];
    for (size_t k = 0; k < 2; ++k) {
      // Keras counts the batch axis: an input of rank r (batch included) has axes 1 .. r-1.
      const int64_t rank = static_cast<int64_t>(in[k].size()) + 1;
      const int64_t a = axes_[k] < 0 ? axes_[k] + rank : axes_[k];
      const std::string which = "axes[" + std::to_string(k) + "] = " + std::to_string(axes_[k]);
      if (a < 1 || a >= rank)
        throw ValueError(layer_label(spec) + ": " + which + " is out of range for input " + std::to_string(k) +
                         " of shape " + batched_shape(in[k]) + ": expected an axis in [1, " +
                         std::to_string(rank - 1) + "] or [" + std::to_string(1 - rank) + ", -1]");
      axis[k] = a - 1;
      if (axis[k] != 0 && axis[k] != rank - 2)
        throw ValueError(layer_label(spec) + ": " + which + " names a middle axis of input " + std::to_string(k) +
                         " of shape " + batched_shape(in[k]) +
                         "; Dot contracts the first or the last axis of each example");
      size[k] = in[k][static_cast<size_t>(axis[k])];
    }
    if (size[0] != size[1])
      throw ShapeError(layer_label(spec) + ": the dot product's axes must have one size, got " +
                       std::to_string(size[0]) + " (input 0, shape " + shape_string(in[0]) + " per example) and " +
                       std::to_string(size[1]) + " (input 1, shape " + shape_string(in[1]) + " per example)");
    // Input 0 as op(A) (M, K): stored (M, K) when contracting its last axis, else (K, M).
    // Input 1 as op(B) (K, N): stored (K, N) when contracting its first axis, else (N, K).
    const int64_t last0 = static_cast<int64_t>(in[0].size()) - 1;
    d_.k = size[0];
    d_.m = d_.k ? shape_size(in[0]) / d_.k : 0;
    d_.n = d_.k ? shape_size(in[1]) / d_.k : 0;
    d_.trans_a = axis[0] != last0;
    d_.trans_b = axis[1] != 0;
    in_sizes_[0] = shape_size(in[0]);
    in_sizes_[1] = shape_size(in[1]);
    Shape out;
    for (size_t d = 0; d < in[0].size(); ++d)
      if (static_cast<int64_t>(d) != axis[0]) out.push_back(in[0][d]);
    for (size_t d = 0; d < in[1].size(); ++d)
      if (static_cast<int64_t>(d) != axis[1]) out.push_back(in[1][d]);
    if (out.empty()) out.push_back(1);
    this->in_size_ = in_sizes_[0];
    this->out_size_ = shape_size(out);
    return {out};
  }

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool, uint64_t,
                    LayerCache<T>& c) const override {
    BatchedMatmulDims d = d_;
    d.batch = batch;
    ensure_size(c.out, batch * this->out_size_);
    const T* a = xs[0];
    const T* b = xs[1];
    if (normalize_) {  // c.mid: the unit-norm inputs (the product's operands, which backward reads)
      ensure_size(c.mid, batch * (in_sizes_[0] + in_sizes_[1]));
      T* a_unit = c.mid.data();
      T* b_unit = a_unit + batch * in_sizes_[0];
      const Fibres fa = fibres(0, batch), fb = fibres(1, batch);
      unit_norm_forward<T>(a_unit, a, fa.outer, d.k, fa.inner, kNormalizeEpsilon);
      unit_norm_forward<T>(b_unit, b, fb.outer, d.k, fb.inner, kNormalizeEpsilon);
      a = a_unit;
      b = b_unit;
    }
    batched_matmul_forward<T>(c.out.data(), a, b, d);
    ys[0] = c.out.data();
  }

  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>&, int64_t batch, LayerCache<T>& c) override {
    BatchedMatmulDims d = d_;
    d.batch = batch;
    if (!dys[0]) {  // no gradient reached the output
      for (size_t k = 0; k < 2; ++k)
        if (dxs[k]) std::fill(dxs[k], dxs[k] + batch * in_sizes_[k], T(0));
      return;
    }
    if (!normalize_) {
      batched_matmul_backward<T>(dxs[0], dxs[1], dys[0], xs[0], xs[1], d, false, false);
      return;
    }
    // Through the product to the unit-norm inputs, then through the normalisation.
    ensure_size(c.grad_mid, batch * (in_sizes_[0] + in_sizes_[1]));
    const T* a_unit = c.mid.data();
    const T* b_unit = a_unit + batch * in_sizes_[0];
    T* da_unit = dxs[0] ? c.grad_mid.data() : nullptr;
    T* db_unit = dxs[1] ? c.grad_mid.data() + batch * in_sizes_[0] : nullptr;
    batched_matmul_backward<T>(da_unit, db_unit, dys[0], a_unit, b_unit, d, false, false);
    const Fibres fa = fibres(0, batch), fb = fibres(1, batch);
    if (dxs[0]) unit_norm_backward<T>(dxs[0], da_unit, xs[0], fa.outer, d.k, fa.inner, kNormalizeEpsilon);
    if (dxs[1]) unit_norm_backward<T>(dxs[1], db_unit, xs[1], fb.outer, d.k, fb.inner, kNormalizeEpsilon);
  }

 private:
  // An input seen as (outer, K, inner) fibres along its contracted axis.
  struct Fibres {
    int64_t outer, inner;
  };
  Fibres fibres(int k, int64_t batch) const {
    const bool axis_first = k == 0 ? d_.trans_a : !d_.trans_b;
    const int64_t others = k == 0 ? d_.m : d_.n;
    return axis_first ? Fibres{batch, others} : Fibres{batch * others, 1};
  }

  Ints axes_;
  bool normalize_;
  BatchedMatmulDims d_;      // per example (batch set per call)
  int64_t in_sizes_[2] = {0, 0};
};

const LayerRegistration add_kind(layer_kind<Add>("add", {}));
const LayerRegistration subtract_kind(layer_kind<Subtract>("subtract", {}));
const LayerRegistration concatenate_kind(layer_kind<Concatenate>("concatenate", {{"axis", 1}}));
const LayerRegistration dot_kind(layer_kind<Dot>("dot", {{"axes", Ints{-1, -1}}, {"normalize", false}}));
const LayerRegistration multiply_kind(layer_kind<Multiply>("multiply", {}));
const LayerRegistration average_kind(layer_kind<Average>("average", {}));
const LayerRegistration maximum_kind(layer_kind<Extremum>("maximum", {}));
const LayerRegistration minimum_kind(layer_kind<Extremum>("minimum", {}));

}  // namespace

}  // namespace detail
}  // namespace corenn
