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

// The steps of a merge's inputs (N, T, ...), whose masks are (N, T): the
// first per-example axis (0 for inputs without one, which carry no mask).
int64_t steps_of(const Shape& shape) { return shape.empty() ? 0 : shape[0]; }

// The element-wise merges' inputs broadcast, as Keras's merge layers
// (base_merge.py's _compute_elemwise_op_output_shape) and NumPy do: along
// each axis the inputs' sizes are equal or 1, and the output takes the
// largest. The inputs must have one rank (Keras would also pad a shorter
// shape with 1s after the batch axis). An input whose shape is not the
// output's is repeated into scratch before the element-wise kernel, and its
// gradient is the output's summed over the repeated axes (broadcast_backward);
// inputs of the output's shape take the kernels' direct path unchanged.
class Broadcast {
 public:
  // The output shape ("all inputs", "both inputs" in the message).
  Shape build(const LayerSpec& spec, const std::vector<Shape>& shapes, const char* inputs) {
    Shape out = shapes[0];
    std::vector<size_t> from(out.size(), 0);  // per axis: the input whose size the output took
    for (size_t k = 1; k < shapes.size(); ++k) {
      const Shape& s = shapes[k];
      if (s.size() != out.size())
        throw ShapeError(layer_label(spec) + ": " + inputs + " must have one rank (per example), got " +
                         shapes_string(shapes) + "; add the missing axes of size 1 with Reshape");
      for (size_t d = 0; d < s.size(); ++d) {
        if (s[d] == out[d] || s[d] == 1) continue;
        if (out[d] == 1) {
          out[d] = s[d], from[d] = k;
          continue;
        }
        throw ShapeError(layer_label(spec) + ": " + inputs + " must have one shape or broadcast to one " +
                         "(each axis of equal sizes or of size 1), got " + batched_shape(shapes[from[d]]) +
                         " (input " + std::to_string(from[d]) + ") and " + batched_shape(s) + " (input " +
                         std::to_string(k) + "): axis " + std::to_string(d + 1) + " has sizes " +
                         std::to_string(out[d]) + " and " + std::to_string(s[d]));
      }
    }
    out_ = out;
    in_ = shapes;
    steps_.clear();
    for (const Shape& s : shapes) steps_.push_back(steps_of(s));
    return out;
  }

  bool any() const {
    for (const Shape& s : in_)
      if (s != out_) return true;
    return false;
  }
  bool repeats(size_t k) const { return in_[k] != out_; }

  // The inputs as arrays of the output's shape: xs itself, or with the
  // repeated inputs expanded into scratch.
  template <typename T>
  const std::vector<const T*>& expand(const std::vector<const T*>& xs, int64_t batch, std::vector<T>& scratch,
                                      std::vector<const T*>& expanded) const {
    if (!any()) return xs;
    const int64_t n = batch * shape_size(out_);
    size_t count = 0;
    for (size_t k = 0; k < xs.size(); ++k) count += repeats(k);
    ensure_size(scratch, static_cast<int64_t>(count) * n);
    expanded = xs;
    T* next = scratch.data();
    for (size_t k = 0; k < xs.size(); ++k)
      if (repeats(k)) {
        broadcast_forward<T>(next, xs[k], batched(out_, batch), batched(in_[k], batch));
        expanded[k] = next;
        next += n;
      }
    return expanded;
  }

  // dx (input k's shape) = scale · d (the output's shape) summed over the
  // axes input k is repeated along; added when accumulate.
  template <typename T>
  void reduce(T* dx, const T* d, size_t k, int64_t batch, double scale, bool accumulate) const {
    broadcast_backward<T>(dx, d, batched(out_, batch), batched(in_[k], batch), scale, accumulate);
  }

  int64_t size_of(size_t k) const { return shape_size(in_[k]); }

  // Keras's mask of an element-wise merge (Merge.compute_mask): a step is
  // valid when it is valid in every input that carries a mask (an unmasked
  // input adds no condition; one of a single step holds for every step); no
  // mask when no input carries one.
  template <typename T>
  const uint8_t* all_of_masks(LayerCache<T>& c, int64_t batch) const {
    const int64_t steps = steps_of(out_);
    const uint8_t* only = nullptr;
    int masked = 0;
    bool same = true;
    for (size_t k = 0; k < c.input_masks.size(); ++k)
      if (c.input_masks[k]) only = c.input_masks[k], ++masked, same = same && steps_[k] == steps;
    if (masked == 0 || (masked == 1 && same)) return only;
    c.out_mask.assign(static_cast<size_t>(batch * steps), 1);
    for (size_t k = 0; k < c.input_masks.size(); ++k)
      if (const uint8_t* m = c.input_masks[k])
        for (int64_t n = 0; n < batch; ++n)
          for (int64_t t = 0; t < steps; ++t) {
            uint8_t& out = c.out_mask[n * steps + t];
            out = out && m[n * steps_[k] + (steps_[k] == steps ? t : 0)];
          }
    return c.out_mask.data();
  }

 private:
  static std::vector<int64_t> batched(const Shape& shape, int64_t batch) {
    std::vector<int64_t> out{batch};
    out.insert(out.end(), shape.begin(), shape.end());
    return out;
  }

  Shape out_;
  std::vector<Shape> in_;
  std::vector<int64_t> steps_;  // per input: its first axis (the steps of its mask)
};

// The element-wise merges whose backward needs dy alone (Add, Subtract,
// Average): inputs broadcast to the output's shape, masks joined by
// all_of_masks. Input k's gradient is scale(k)·dy, summed over the axes it
// is repeated along.
template <typename T>
class ElementwiseMerge : public MergeLayer<T> {
 public:
  using MergeLayer<T>::MergeLayer;

  Shape build_inputs(const std::vector<Shape>& shapes) override {
    const Shape shape = broadcast_.build(this->spec_, shapes, require_inputs(shapes));
    this->in_size_ = this->out_size_ = shape_size(shape);
    count_ = static_cast<int>(shapes.size());
    return shape;
  }

  const uint8_t* output_mask(size_t, int64_t batch, LayerCache<T>& c) const override {
    return broadcast_.all_of_masks(c, batch);
  }

  const T* forward_inputs(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const final {
    ensure_size(c.out, batch * this->out_size_);
    std::vector<const T*> expanded;
    forward_same_shape(broadcast_.expand(xs, batch, c.mid, expanded), batch, c);
    return c.out.data();
  }

  void backward_inputs(const T* dy, const std::vector<T*>& dx, const std::vector<uint8_t>& accumulate,
                       int64_t batch) const final {
    const int64_t n = batch * this->out_size_;
    for (size_t k = 0; k < dx.size(); ++k) {
      if (!dx[k]) continue;
      if (broadcast_.repeats(k)) broadcast_.reduce(dx[k], dy, k, batch, scale(k), accumulate[k] != 0);
      else backward_same_shape(dx[k], dy, k, n, accumulate[k] != 0);
    }
  }

 protected:
  // Checks the number of inputs (two or more); returns what to call them.
  virtual const char* require_inputs(const std::vector<Shape>& shapes) const {
    require_several(this->spec_, shapes);
    return "all inputs";
  }
  // The forward pass over inputs of the output's shape, into c.out.
  virtual void forward_same_shape(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const = 0;
  // Input k's gradient dx = scale(k)·dy, n values (written or added).
  virtual void backward_same_shape(T* dx, const T* dy, size_t k, int64_t n, bool accumulate) const = 0;
  virtual double scale(size_t k) const = 0;

  Broadcast broadcast_;
  int count_ = 0;
};

template <typename T>
class Add : public ElementwiseMerge<T> {
 public:
  using ElementwiseMerge<T>::ElementwiseMerge;

  // The training plan's relu(a + b) of a residual block, written in the sum's pass.
  bool fuses_relu(bool training) const override { return training; }

  // Unless an input is repeated: its gradient is a sum of dy's values.
  bool passes_gradient_through() const override { return !this->broadcast_.any(); }

 protected:
  void forward_same_shape(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const override {
    const int64_t n = batch * this->out_size_;
    if (c.fused_relu) add_relu_forward<T>(c.out.data(), xs.data(), static_cast<int>(xs.size()), n);
    else add_forward<T>(c.out.data(), xs.data(), static_cast<int>(xs.size()), n);
  }

  void backward_same_shape(T* dx, const T* dy, size_t, int64_t n, bool accumulate) const override {
    add_backward<T>(dx, dy, n, accumulate);
  }
  double scale(size_t) const override { return 1.0; }
};

// Keras's Subtract: exactly two inputs, y = a − b.
template <typename T>
class Subtract : public ElementwiseMerge<T> {
 public:
  using ElementwiseMerge<T>::ElementwiseMerge;

 protected:
  void forward_same_shape(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const override {
    subtract_forward<T>(c.out.data(), xs[0], xs[1], batch * this->out_size_);
  }

  void backward_same_shape(T* dx, const T* dy, size_t k, int64_t n, bool accumulate) const override {
    if (k == 0) add_backward<T>(dx, dy, n, accumulate);
    else subtract_backward<T>(dx, dy, n, accumulate);
  }
  double scale(size_t k) const override { return k == 0 ? 1.0 : -1.0; }

  const char* require_inputs(const std::vector<Shape>& shapes) const override {
    if (shapes.size() != 2)
      throw ValueError(layer_label(this->spec_) + ": needs exactly two inputs (a − b), got " +
                       std::to_string(shapes.size()));
    return "both inputs";
  }
};

// Keras's Average: the mean of two or more inputs (an ensemble's averaged
// outputs); every input receives dy / count.
template <typename T>
class Average : public ElementwiseMerge<T> {
 public:
  using ElementwiseMerge<T>::ElementwiseMerge;

 protected:
  void forward_same_shape(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const override {
    average_forward<T>(c.out.data(), xs.data(), this->count_, batch * this->out_size_);
  }

  void backward_same_shape(T* dx, const T* dy, size_t, int64_t n, bool accumulate) const override {
    average_backward<T>(dx, dy, this->count_, n, accumulate);
  }
  double scale(size_t) const override { return 1.0 / this->count_; }
};

// The element-wise merges whose backward reads the inputs (Multiply) or the
// output (Maximum, Minimum), which only a CallLayer is handed: two or more
// inputs broadcast to the output's shape, masks joined as Add's. A repeated
// input's gradient is computed at the output's shape (c.grad_mid), then
// summed over the axes it is repeated along.
template <typename T>
class ElementwiseCall : public CallLayer<T> {
 public:
  using CallLayer<T>::CallLayer;

  std::vector<Shape> build_call(const std::vector<Shape>& shapes) override {
    require_several(this->spec_, shapes);
    const Shape shape = broadcast_.build(this->spec_, shapes, "all inputs");
    this->in_size_ = this->out_size_ = shape_size(shape);
    return {shape};
  }

  const uint8_t* output_mask(size_t, int64_t batch, LayerCache<T>& c) const override {
    return broadcast_.all_of_masks(c, batch);
  }

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool, uint64_t,
                    LayerCache<T>& c) const final {
    ensure_size(c.out, batch * this->out_size_);
    std::vector<const T*> expanded;
    forward_same_shape(broadcast_.expand(xs, batch, c.mid, expanded), batch * this->out_size_, c.out.data());
    ys[0] = c.out.data();
  }

  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>& ys, int64_t batch, LayerCache<T>& c) final {
    const int64_t n = batch * this->out_size_;
    if (!dys[0]) {  // no gradient reached the output: every input's is zero
      for (size_t k = 0; k < dxs.size(); ++k)
        if (dxs[k]) std::fill(dxs[k], dxs[k] + batch * broadcast_.size_of(k), T(0));
      return;
    }
    std::vector<const T*> expanded;
    const std::vector<const T*>& full = broadcast_.expand(xs, batch, c.mid, expanded);
    for (size_t k = 0; k < dxs.size(); ++k) {
      if (!dxs[k]) continue;
      if (!broadcast_.repeats(k)) {
        backward_same_shape(dxs[k], dys[0], ys[0], full, k, n);
        continue;
      }
      ensure_size(c.grad_mid, n);
      backward_same_shape(c.grad_mid.data(), dys[0], ys[0], full, k, n);
      broadcast_.reduce(dxs[k], c.grad_mid.data(), k, batch, 1.0, false);
    }
  }

 protected:
  // y (n values) from inputs of the output's shape.
  virtual void forward_same_shape(const std::vector<const T*>& xs, int64_t n, T* y) const = 0;
  // Input k's gradient dx (n values, written) from inputs of the output's shape.
  virtual void backward_same_shape(T* dx, const T* dy, const T* y, const std::vector<const T*>& xs, size_t k,
                                   int64_t n) const = 0;

 private:
  Broadcast broadcast_;
};

// Keras's Multiply: the element-wise product of the inputs (a gate's σ(a) ⊙ h).
template <typename T>
class Multiply : public ElementwiseCall<T> {
 public:
  using ElementwiseCall<T>::ElementwiseCall;

 protected:
  void forward_same_shape(const std::vector<const T*>& xs, int64_t n, T* y) const override {
    multiply_forward<T>(y, xs.data(), static_cast<int>(xs.size()), n);
  }

  void backward_same_shape(T* dx, const T* dy, const T*, const std::vector<const T*>& xs, size_t k,
                           int64_t n) const override {
    multiply_backward<T>(dx, dy, xs.data(), static_cast<int>(xs.size()), static_cast<int>(k), n);
  }
};

// Keras's Maximum and Minimum (one class: the kind chooses). Where inputs tie
// for the extremum they share its gradient equally (extremum_backward).
template <typename T>
class Extremum : public ElementwiseCall<T> {
 public:
  explicit Extremum(const LayerSpec& spec) : ElementwiseCall<T>(spec), maximum_(spec.kind == "maximum") {}

 protected:
  void forward_same_shape(const std::vector<const T*>& xs, int64_t n, T* y) const override {
    if (maximum_) maximum_forward<T>(y, xs.data(), static_cast<int>(xs.size()), n);
    else minimum_forward<T>(y, xs.data(), static_cast<int>(xs.size()), n);
  }

  void backward_same_shape(T* dx, const T* dy, const T* y, const std::vector<const T*>& xs, size_t k,
                           int64_t n) const override {
    extremum_backward<T>(dx, dy, y, xs.data(), static_cast<int>(xs.size()), static_cast<int>(k), n);
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
