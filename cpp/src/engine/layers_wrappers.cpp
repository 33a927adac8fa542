// Layers that wrap another layer: TimeDistributed (a layer applied at every
// time step) and Bidirectional (a recurrent layer run both ways).
//
// The wrapped layer is an attribute: "layer" holds its whole LayerSpec (a
// NestedLayer, corenn/attributes.hpp), which the model file stores as a
// nested layer object and the Python config as a nested config dict. The
// wrapper builds the inner layer(s) from it with make_layer, owns their
// weights (its parameters are theirs, back to back, under their Keras names)
// and points them at their slices whenever its own move (bind_inner). Each
// inner layer keeps its own LayerCache in the wrapper's cache.inner.
//
// Masks (Layer::output_mask): a wrapper hands the mask its input carries to
// the inner layer(s) through their caches' input_mask before their forward
// (their backward finds it there), and answers output_mask from theirs.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "corenn/kernels/bidirectional.hpp"
#include "corenn/kernels/merge.hpp"
#include "corenn/random.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

// The inner layer's spec; ValueError naming the wrapper when none is given.
const LayerSpec& nested(const LayerSpec& spec, const char* attribute, const char* what) {
  const NestedLayer& layer = spec.get<NestedLayer>(attribute);
  if (layer.empty())
    throw ValueError(layer_label(spec) + ": attribute '" + attribute + "' must be set to " + what);
  return layer.spec();
}

// TimeDistributed(layer): (N, T, ...) -> (N, T, ...'), the inner layer applied
// to each step with the same weights. The steps fold into the batch: the
// inner layer sees a batch of N·T examples of shape (...), so a Dense runs as
// one GEMM over every step, a Conv2D as one convolution over N·T images.
template <typename T>
class TimeDistributed : public Layer<T> {
 public:
  explicit TimeDistributed(const LayerSpec& spec)
      : Layer<T>(spec), inner_(make_layer<T>(nested(spec, "layer", "the layer to apply at every time step"))) {
    if (inner_->as_merge() || inner_->as_call())
      throw ValueError(layer_label(spec) + ": attribute 'layer' must be a layer with one input and one output, "
                       "got " + layer_label(inner_->spec()));
    if (!spec.trainable) inner_->set_trainable(false);
  }

  Shape build(const Shape& input_shape) override {
    if (input_shape.size() < 2)
      throw ShapeError(layer_label(this->spec_) + ": expects a sequence (timesteps, ...) per example, i.e. "
                       "batches (batch, timesteps, ...) of rank >= 3, got " + shape_string(input_shape) +
                       " per example");
    steps_ = input_shape[0];
    Shape out = inner_->build(Shape(input_shape.begin() + 1, input_shape.end()));
    one_axis_per_step_ = input_shape.size() == 2 && out.size() == 1;
    out.insert(out.begin(), steps_);
    this->in_size_ = shape_size(input_shape);
    this->out_size_ = shape_size(out);
    return out;
  }

  std::vector<Shape> parameter_shapes() const override { return inner_->parameter_shapes(); }
  std::vector<Shape> state_shapes() const override { return inner_->state_shapes(); }
  std::vector<std::string> parameter_names() const override { return inner_->parameter_names(); }
  std::vector<std::string> state_names() const override { return inner_->state_names(); }
  void initialize(uint64_t key) override { inner_->initialize(key); }
  void set_trainable(bool trainable) override {
    Layer<T>::set_trainable(trainable);
    inner_->set_trainable(trainable);
  }
  bool trains() const override { return this->spec_.trainable && inner_->trains(); }

  const T* forward(const T* x, int64_t batch, bool training, uint64_t key, LayerCache<T>& c) const override {
    c.inner.resize(1);
    c.inner[0].training = c.training;
    c.inner[0].inference = c.inference;  // the inner layer's weights are this layer's
    c.inner[0].weights_version = c.weights_version;
    // A mask over the input's leading axes (N, T, ...) is, in memory, the mask
    // of the inner layer's N·T examples: handed over as it is.
    c.inner[0].input_mask = c.input_mask;
    return inner_->forward(x, batch * steps_, training, key, c.inner[0]);
  }

  // The inner layer's output mask (its N·T examples' are the (N, T, ...) one);
  // when it gives none, a mask of the steps alone still fits an output of one
  // vector per step, as the inner layer acts on each step alone.
  const uint8_t* output_mask(size_t output, int64_t batch, LayerCache<T>& c) const override {
    if (output != 0) return nullptr;
    if (const uint8_t* m = inner_->output_mask(0, batch * steps_, c.inner[0])) return m;
    return one_axis_per_step_ ? c.input_mask : nullptr;
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    return inner_->backward(dy, dx, x, y, batch * steps_, need_dx, c.inner[0]);
  }

  double penalty(bool with_gradient) override { return inner_->penalty(with_gradient); }
  int64_t multiply_adds() const override { return steps_ * inner_->multiply_adds(); }

 protected:
  void bind_inner() override {
    inner_->bind(this->arena_, this->params_, this->state_);
    inner_->set_gradients(this->grads_);
  }

 private:
  std::unique_ptr<Layer<T>> inner_;
  int64_t steps_ = 0;
  bool one_axis_per_step_ = false;  // input (T, F), output (T, F')
};

// Keras's merge modes; "none" (Python's None) returns both outputs.
DirectionMerge parse_merge_mode(const LayerSpec& spec) {
  const std::string& mode = spec.get<std::string>("merge_mode");
  if (mode == "concat" || mode == "none") return DirectionMerge::concat;
  if (mode == "sum") return DirectionMerge::sum;
  if (mode == "mul") return DirectionMerge::mul;
  if (mode == "ave") return DirectionMerge::ave;
  const std::string near = closest_name(mode, {"concat", "sum", "mul", "ave", "none"});
  throw ValueError(layer_label(spec) + ": merge_mode must be one of 'concat', 'sum', 'mul', 'ave', 'none', got '" +
                   mode + "'" + (near.empty() ? "" : "; did you mean '" + near + "'?"));
}

bool is_recurrent(const std::string& kind) { return kind == "simple_rnn" || kind == "lstm" || kind == "gru"; }

// The backward direction: the given backward_layer, or the forward layer's
// copy reading the other way (Keras's).
LayerSpec backward_spec(const LayerSpec& spec, const LayerSpec& forward) {
  const NestedLayer& given = spec.get<NestedLayer>("backward_layer");
  if (given.empty()) {
    LayerSpec b = forward;
    b.name = "backward_" + forward.name;
    b.set("go_backwards", !forward.get<bool>("go_backwards"));
    return b;
  }
  const LayerSpec& b = given.spec();
  const std::string who = layer_label(spec) + ": backward_layer ";
  if (b.kind != forward.kind)
    throw ValueError(who + "must be of the layer's kind (" + forward.kind + "), got " + b.kind);
  for (const char* a : {"return_sequences", "return_state"})
    if (b.get<bool>(a) != forward.get<bool>(a))
      throw ValueError(who + "must have the layer's " + a + " (" + (forward.get<bool>(a) ? "true" : "false") +
                       "), got " + (b.get<bool>(a) ? "true" : "false"));
  if (b.get<bool>("go_backwards") == forward.get<bool>("go_backwards"))
    throw ValueError(who + "must read the other way: go_backwards must differ from the layer's");
  return b;
}

// Bidirectional(layer, merge_mode, backward_layer) over a SimpleRNN, LSTM or
// GRU: a forward copy and a go_backwards copy read the same sequence; with
// return_sequences the backward outputs are reversed back into time order,
// then the two outputs merge (concat, sum, mul, ave; "none" returns both).
// Outputs, as Keras's: the merged output (or the two), then with return_state
// the forward layer's final states, then the backward layer's. The optional
// initial_state is split the same way: forward's states, then backward's.
// Weights: the forward layer's, then the backward layer's.
template <typename T>
class Bidirectional : public CallLayer<T> {
 public:
  explicit Bidirectional(const LayerSpec& spec)
      : CallLayer<T>(spec),
        mode_(parse_merge_mode(spec)),
        two_outputs_(spec.get<std::string>("merge_mode") == "none") {
    LayerSpec f = nested(spec, "layer", "the recurrent layer to run both ways (SimpleRNN, LSTM or GRU)");
    if (!is_recurrent(f.kind))
      throw ValueError(layer_label(spec) + ": attribute 'layer' must be a recurrent layer (simple_rnn, lstm or "
                       "gru), got " + layer_label(f));
    const LayerSpec b = backward_spec(spec, f);
    f.name = "forward_" + f.name;
    forward_ = make_layer<T>(f);
    backward_ = make_layer<T>(b);
    if (!spec.trainable) set_trainable(false);
    return_sequences_ = f.get<bool>("return_sequences");
    return_state_ = f.get<bool>("return_state");
    states_ = f.kind == "lstm" ? 2 : 1;
  }

  std::vector<Shape> build_call(const std::vector<Shape>& in) override {
    const LayerSpec& spec = this->spec_;
    const size_t s = static_cast<size_t>(states_);
    if (in.size() != 1 && in.size() != 1 + 2 * s)
      throw ValueError(layer_label(spec) + ": takes a sequence and optionally its initial_state, the forward "
                       "layer's " + (s == 2 ? "[h, c]" : "[h]") + " then the backward layer's (" +
                       std::to_string(2 * s) + " tensors), got " + std::to_string(in.size()) + " inputs");
    const std::vector<Shape> fo = fwd().build_call(direction_inputs(in, 0));
    const std::vector<Shape> bo = bwd().build_call(direction_inputs(in, 1));
    const Shape &a = fo[0], &b = bo[0];
    Shape merged = a;
    if (two_outputs_ || mode_ == DirectionMerge::concat) {
      merged.back() += b.back();
    } else if (a != b) {
      throw ShapeError(layer_label(spec) + ": merge_mode '" + spec.get<std::string>("merge_mode") +
                       "' needs both directions' outputs of one shape, got " + shape_string(a) + " and " +
                       shape_string(b));
    }
    wa_ = a.back();
    wb_ = b.back();
    rows_ = shape_size(a) / wa_;
    given_states_ = in.size() > 1;
    this->in_size_ = shape_size(in[0]);
    this->out_size_ = shape_size(merged);
    std::vector<Shape> out = two_outputs_ ? std::vector<Shape>{a, b} : std::vector<Shape>{merged};
    out.insert(out.end(), fo.begin() + 1, fo.end());
    out.insert(out.end(), bo.begin() + 1, bo.end());
    return out;
  }

  // Keras's setter: the flag is both directions' too. The two train together:
  // a frozen direction (a frozen `layer` freezes its backward copy as well)
  // stops the updates of both.
  void set_trainable(bool trainable) override {
    Layer<T>::set_trainable(trainable);
    forward_->set_trainable(trainable);
    backward_->set_trainable(trainable);
  }
  bool trains() const override { return this->spec_.trainable && forward_->trains() && backward_->trains(); }

  std::vector<Shape> parameter_shapes() const override { return both(&Layer<T>::parameter_shapes); }
  std::vector<Shape> state_shapes() const override { return both(&Layer<T>::state_shapes); }
  std::vector<std::string> parameter_names() const override { return prefixed(&Layer<T>::parameter_names); }
  std::vector<std::string> state_names() const override { return prefixed(&Layer<T>::state_names); }

  void initialize(uint64_t key) override {
    forward_->initialize(key);
    backward_->initialize(random_bits(key, 1));
  }

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool training,
                    uint64_t key, LayerCache<T>& c) const override {
    c.inner.resize(2);
    for (int d = 0; d < 2; ++d) {
      LayerCache<T>& ic = c.inner[static_cast<size_t>(d)];
      ic.training = c.training;
      ic.inference = c.inference;  // the directions' weights are slices of this layer's
      ic.weights_version = c.weights_version;
      ic.input_mask = c.input_mask;  // each direction reverses it as it reverses the sequence
      ic.ys.assign(static_cast<size_t>(1 + (return_state_ ? states_ : 0)), nullptr);
      (d == 0 ? fwd() : bwd())
          .forward_call(direction_inputs(xs, d), ic.ys, batch, training, d == 0 ? key : random_bits(key, 1), ic);
    }
    // The merge's inputs, in time order: a (N, R, wa) then b (N, R, wb).
    const int64_t R = rows_, na = batch * R * wa_, nb = batch * R * wb_;
    ensure_size(c.mid, na + nb);
    T* a = c.mid.data();
    T* b = a + na;
    std::copy(c.inner[0].ys[0], c.inner[0].ys[0] + na, a);
    if (return_sequences_) reverse_steps<T>(b, c.inner[1].ys[0], batch, R, wb_);
    else std::copy(c.inner[1].ys[0], c.inner[1].ys[0] + nb, b);
    size_t k = 0;
    if (two_outputs_) {
      ys[k++] = a;
      ys[k++] = b;
    } else {
      ensure_size(c.out, batch * this->out_size_);
      merge_directions_forward<T>(c.out.data(), a, b, batch * R, wa_, wb_, mode_);
      ys[k++] = c.out.data();
    }
    for (size_t d = 0; d < 2; ++d)
      for (size_t j = 1; j < c.inner[d].ys.size(); ++j) ys[k++] = c.inner[d].ys[j];
  }

  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>&, int64_t batch, LayerCache<T>& c) override {
    const int64_t R = rows_, na = batch * R * wa_, nb = batch * R * wb_;
    ensure_size(c.grad_mid, na + 2 * nb + batch * this->in_size_);
    T* da = c.grad_mid.data();
    T* db = da + na;             // time order
    T* db_steps = db + nb;       // the backward layer's processing order
    T* dx_backward = db_steps + nb;
    const T* a = c.mid.data();
    const T* b = a + na;
    size_t k = 0;
    T* grad_a = nullptr;
    T* grad_b = nullptr;
    if (two_outputs_) {
      grad_a = dys[k++];
      grad_b = dys[k++];
    } else if (T* dy = dys[k++]) {
      merge_directions_backward<T>(da, db, dy, a, b, batch * R, wa_, wb_, mode_);
      grad_a = da;
      grad_b = db;
    }
    if (grad_b && return_sequences_) {
      reverse_steps<T>(db_steps, grad_b, batch, R, wb_);
      grad_b = db_steps;
    }
    const size_t s = return_state_ ? static_cast<size_t>(states_) : 0;
    std::vector<T*> fdys{grad_a}, bdys{grad_b};
    for (size_t j = 0; j < s; ++j) fdys.push_back(dys[k + j]), bdys.push_back(dys[k + s + j]);
    std::vector<T*> fdxs{dxs[0]}, bdxs{dxs[0] ? dx_backward : nullptr};
    for (size_t j = 0; given_states_ && j < static_cast<size_t>(states_); ++j)
      fdxs.push_back(dxs[1 + j]), bdxs.push_back(dxs[1 + states_ + j]);
    fwd().backward_call(fdys, fdxs, direction_inputs(xs, 0), c.inner[0].ys, batch, c.inner[0]);
    bwd().backward_call(bdys, bdxs, direction_inputs(xs, 1), c.inner[1].ys, batch, c.inner[1]);
    if (dxs[0]) add_backward<T>(dxs[0], dx_backward, batch * this->in_size_, true);  // both read x
  }

  double penalty(bool with_gradient) override {
    return forward_->penalty(with_gradient) + backward_->penalty(with_gradient);
  }
  int64_t multiply_adds() const override { return forward_->multiply_adds() + backward_->multiply_adds(); }

  // Both outputs of merge_mode=None, or the merged sequence, are in time order:
  // they keep the sequence's mask; the last outputs and the states carry none.
  const uint8_t* output_mask(size_t output, int64_t, LayerCache<T>& c) const override {
    return return_sequences_ && output < (two_outputs_ ? 2u : 1u) ? c.input_mask : nullptr;
  }

 protected:
  void bind_inner() override {
    const int64_t np = forward_->parameter_count(), ns = forward_->state_count();
    T* p = this->params_;
    T* st = this->state_;
    T* g = this->grads_;
    forward_->bind(this->arena_, p, st);
    backward_->bind(this->arena_, p ? p + np : nullptr, st ? st + ns : nullptr);
    forward_->set_gradients(g);
    backward_->set_gradients(g ? g + np : nullptr);
  }

 private:
  CallLayer<T>& fwd() const { return *forward_->as_call(); }
  CallLayer<T>& bwd() const { return *backward_->as_call(); }

  // The sequence and direction d's initial states (forward's, then backward's).
  template <typename V>
  std::vector<V> direction_inputs(const std::vector<V>& in, int d) const {
    std::vector<V> out{in[0]};
    if (in.size() > 1)
      for (int64_t j = 0; j < states_; ++j) out.push_back(in[static_cast<size_t>(1 + d * states_ + j)]);
    return out;
  }

  template <typename V>
  std::vector<V> both(std::vector<V> (Layer<T>::*list)() const) const {
    std::vector<V> out = ((*forward_).*list)();
    const std::vector<V> more = ((*backward_).*list)();
    out.insert(out.end(), more.begin(), more.end());
    return out;
  }

  std::vector<std::string> prefixed(std::vector<std::string> (Layer<T>::*list)() const) const {
    std::vector<std::string> out;
    for (const std::string& n : ((*forward_).*list)()) out.push_back("forward_" + n);
    for (const std::string& n : ((*backward_).*list)()) out.push_back("backward_" + n);
    return out;
  }

  DirectionMerge mode_;
  bool two_outputs_;  // merge_mode "none"
  std::unique_ptr<Layer<T>> forward_, backward_;
  bool return_sequences_ = false, return_state_ = false, given_states_ = false;
  int64_t states_ = 1;  // per direction: [h], or the LSTM's [h, c]
  int64_t wa_ = 0, wb_ = 0, rows_ = 1;  // the two outputs' widths; rows per example (T or 1)
};

const LayerRegistration time_distributed_kind(layer_kind<TimeDistributed>("time_distributed",
                                                                          {{"layer", NestedLayer()}}));
const LayerRegistration bidirectional_kind(layer_kind<Bidirectional>(
    "bidirectional", {{"layer", NestedLayer()}, {"merge_mode", "concat"}, {"backward_layer", NestedLayer()}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
