#include "corenn/model.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "corenn/error.hpp"
#include "corenn/kernels/loss.hpp"
#include "corenn/kernels/merge.hpp"
#include "corenn/kernels/optim.hpp"
#include "corenn/random.hpp"
#include "backend/gemm.hpp"
#include "engine/layers.hpp"

namespace corenn {

LossKind parse_loss(const std::string& name) {
  if (name == "softmax_cross_entropy") return LossKind::softmax_cross_entropy;
  if (name == "binary_cross_entropy") return LossKind::binary_cross_entropy;
  if (name == "mse") return LossKind::mse;
  throw ValueError("loss: unknown '" + name +
                   "'; expected one of softmax_cross_entropy, binary_cross_entropy, mse");
}

const char* loss_name(LossKind kind) {
  switch (kind) {
    case LossKind::softmax_cross_entropy: return "softmax_cross_entropy";
    case LossKind::binary_cross_entropy: return "binary_cross_entropy";
    case LossKind::mse: return "mse";
  }
  return "?";
}

// The layers feeding each layer (kInput = the model input), an execution order
// in which every layer follows its inputs, and the one layer no other
// consumes: the model's output.
struct Graph {
  static constexpr int kInput = -1;
  std::vector<std::vector<int>> inputs_of;
  std::vector<int> order;
  int output = 0;
};

// The dtype-independent face of Engine<T>, so Model is not a template.
class EngineBase {
 public:
  virtual ~EngineBase() = default;
  std::vector<LayerSpec> specs;
  std::string input_name = "input";
  int64_t max_values = -1;  // Model::build's cap on parameters + state
  Shape input_shape;
  std::vector<Shape> shapes;  // shapes[i] = output of layer i (per example)
  Graph graph;
  bool built = false, compiled = false;
  LossKind loss = LossKind::softmax_cross_entropy;
  OptimizerSpec optimizer;
  int64_t step = 0;
  uint64_t dropout_key = 0;

  virtual DType dtype() const = 0;
  virtual void build() = 0;
  virtual int64_t multiply_adds(size_t layer) const = 0;
  virtual void set_trainable(size_t layer, bool trainable) = 0;
  virtual int64_t count_params(size_t layer) const = 0;
  virtual int64_t count_params() const = 0;
  virtual int64_t count_state(size_t layer) const = 0;
  virtual std::vector<Tensor> get_weights(size_t layer) const = 0;
  virtual std::vector<std::string> weight_names(size_t layer) const = 0;
  virtual void set_weights(size_t layer, const std::vector<Tensor>& weights) = 0;
  virtual void compile() = 0;
  // weight: the per-example sample weights, or nullptr for none.
  virtual double train_step(const Tensor& x, const Tensor& y, const Tensor* weight, bool update,
                            Tensor* gradients, Tensor* outputs) = 0;
  virtual double evaluate(const Tensor& x, const Tensor& y, const Tensor* weight,
                          Tensor* outputs) const = 0;
  virtual Tensor predict(const Tensor& x) const = 0;
  virtual Model::OptimizerState get_optimizer_state() const = 0;
  virtual void set_optimizer_state(const Model::OptimizerState& state) = 0;
  virtual Tensor get_parameters() const = 0;
  virtual void set_parameters(const Tensor& flat) = 0;
  virtual Tensor get_state() const = 0;
  virtual void set_state(const Tensor& flat) = 0;
};

namespace {

using detail::ensure_size;

std::string names_of(const std::vector<LayerSpec>& specs, const std::vector<int>& layers) {
  std::string out;
  for (size_t k = 0; k < layers.size(); ++k) out += (k ? ", '" : "'") + specs[layers[k]].name + "'";
  return out;
}

// Resolves LayerSpec::inputs into layer indices and orders the layers so that
// each follows its inputs (Kahn's algorithm, ties broken by the order the
// layers were added, so a Sequential stack runs as written). ValueError names
// the layers of a cycle, an unknown input, or the layers left dangling.
Graph resolve_graph(const std::vector<LayerSpec>& specs, const std::string& input_name) {
  const int n = static_cast<int>(specs.size());
  if (n == 0) throw ValueError("build: the model has no layers");
  for (const LayerSpec& spec : specs)
    if (spec.name == input_name)
      throw ValueError("build: " + detail::layer_label(spec) + " has the name of the model input");
  std::vector<std::vector<int>> inputs_of(n), consumers(n);
  for (int i = 0; i < n; ++i) {
    const LayerSpec& spec = specs[i];
    if (spec.inputs.empty()) inputs_of[i] = {i == 0 ? Graph::kInput : i - 1};
    for (const std::string& name : spec.inputs) {
      int found = name == input_name ? Graph::kInput : -2;
      for (int j = 0; j < n && found == -2; ++j)
        if (specs[j].name == name) found = j;
      if (found == -2)
        throw ValueError("build: " + detail::layer_label(spec) + " takes input '" + name +
                         "', which is neither a layer of the model nor its input '" + input_name + "'");
      inputs_of[i].push_back(found);
    }
    for (int j : inputs_of[i])
      if (j != Graph::kInput) consumers[j].push_back(i);
  }
  std::vector<int> waiting(n, 0), order;
  for (int i = 0; i < n; ++i)
    for (int j : inputs_of[i]) waiting[i] += j != Graph::kInput;
  std::vector<uint8_t> done(n, 0);
  while (static_cast<int>(order.size()) < n) {
    int next = -1;
    for (int i = 0; i < n && next < 0; ++i)
      if (!done[i] && waiting[i] == 0) next = i;
    if (next < 0) {
      std::vector<int> stuck;
      for (int i = 0; i < n; ++i)
        if (!done[i]) stuck.push_back(i);
      throw ValueError("build: the layers " + names_of(specs, stuck) +
                       " depend on each other in a cycle (or on a layer of one)");
    }
    done[next] = 1;
    order.push_back(next);
    for (int c : consumers[next]) --waiting[c];
  }
  std::vector<int> sinks;
  for (int i = 0; i < n; ++i)
    if (consumers[i].empty()) sinks.push_back(i);
  if (sinks.size() != 1)
    throw ValueError("build: a model has one output, but the layers " + names_of(specs, sinks) +
                     " all feed no other layer; connect them or leave them out");
  return Graph{std::move(inputs_of), std::move(order), sinks[0]};
}

// The layers of a graph, each built against its input shapes in execution
// order: everything a model needs before it allocates its arenas.
template <typename T>
struct Plan {
  Graph graph;
  std::vector<std::unique_ptr<detail::Layer<T>>> layers;
  std::vector<Shape> shapes;  // per layer, per example
};

template <typename T>
Plan<T> plan_graph(const std::vector<LayerSpec>& specs, const std::string& input_name,
                   const Shape& input_shape) {
  Plan<T> plan;
  plan.graph = resolve_graph(specs, input_name);
  const Graph& g = plan.graph;
  for (const LayerSpec& spec : specs) plan.layers.push_back(detail::make_layer<T>(spec));
  plan.shapes.resize(specs.size());
  for (int i : g.order) {
    std::vector<Shape> in;
    for (int j : g.inputs_of[i]) in.push_back(j == Graph::kInput ? input_shape : plan.shapes[j]);
    if (detail::MergeLayer<T>* merge = plan.layers[i]->as_merge()) {
      try {
        plan.shapes[i] = merge->build_inputs(in);
      } catch (const ShapeError& e) {
        std::string inputs;
        for (size_t k = 0; k < in.size(); ++k) {
          const int j = g.inputs_of[i][k];
          inputs += (k ? ", '" : "'") + (j == Graph::kInput ? input_name : specs[j].name) + "' " +
                    shape_string(in[k]);
        }
        throw ShapeError(std::string(e.what()) + " (from " + inputs + ")");
      }
    } else if (in.size() != 1) {
      throw ValueError("build: " + detail::layer_label(specs[i]) + " takes one input, got " +
                       std::to_string(in.size()));
    } else {
      plan.shapes[i] = plan.layers[i]->build(in[0]);
    }
  }
  return plan;
}
using detail::Layer;
using detail::LayerCache;

template <typename T>
class Engine : public EngineBase {
 public:
  DType dtype() const override { return dtype_of<T>(); }

  void build() override {
    // Planned aside, so a failed build changes nothing.
    Plan<T> plan = plan_graph<T>(specs, input_name, input_shape);
    Graph& g = plan.graph;
    std::vector<std::unique_ptr<Layer<T>>>& layers = plan.layers;
    std::vector<Shape>& out_shapes = plan.shapes;
    std::vector<int64_t> offsets, state_offsets;
    int64_t total = 0, state_total = 0;
    for (const auto& layer : layers) {
      offsets.push_back(total);
      total += layer->parameter_count();
      state_offsets.push_back(state_total);
      state_total += layer->state_count();
    }
    if (max_values >= 0 && (total > max_values || state_total > max_values - total))
      throw ValueError("build: the layers need " + std::to_string(total + state_total) +
                       " parameter and state values, more than the " + std::to_string(max_values) +
                       " allowed");
    // Everything above may throw; only now is the model changed.
    layers_ = std::move(layers);
    merges_.clear();
    for (const auto& layer : layers_) merges_.push_back(layer->as_merge());
    graph = std::move(g);
    shapes = std::move(out_shapes);
    offsets_ = std::move(offsets);
    params_.assign(static_cast<size_t>(total), T(0));
    grads_.assign(static_cast<size_t>(total), T(0));
    state_.assign(static_cast<size_t>(state_total), T(0));
    for (size_t i = 0; i < layers_.size(); ++i) {
      layers_[i]->bind(params_.data() + offsets_[i], grads_.data() + offsets_[i],
                       state_.data() + state_offsets[i]);
      layers_[i]->initialize(next_key());
    }
    dropout_key = next_key();
    caches_.assign(layers_.size(), LayerCache<T>());
    {
      std::lock_guard<std::mutex> lock(idle_mutex_);
      idle_contexts_.clear();  // sized for the old layers
    }
    step = 0;
    built = true;
    if (compiled) compile();
  }

  int64_t count_params(size_t layer) const override { return layers_.at(layer)->parameter_count(); }
  int64_t multiply_adds(size_t layer) const override { return layers_.at(layer)->multiply_adds(); }

  // The optimizer reads the flag from specs at every step; a layer reads its
  // own copy (a frozen BatchNormalization runs in inference mode).
  void set_trainable(size_t layer, bool trainable) override {
    specs.at(layer).trainable = trainable;
    if (built) layers_.at(layer)->spec().trainable = trainable;
  }
  int64_t count_params() const override { return static_cast<int64_t>(params_.size()); }
  int64_t count_state(size_t layer) const override { return layers_.at(layer)->state_count(); }

  std::vector<Tensor> get_weights(size_t layer) const override {
    std::vector<Tensor> out;
    const Layer<T>& l = *layers_.at(layer);
    const T* p = l.parameters();
    for (const Shape& s : l.parameter_shapes()) {
      Tensor t(s, dtype_of<T>());
      std::memcpy(t.data_as<T>(), p, sizeof(T) * static_cast<size_t>(t.size()));
      p += t.size();
      out.push_back(std::move(t));
    }
    p = l.state();
    for (const Shape& s : l.state_shapes()) {
      Tensor t(s, dtype_of<T>());
      std::memcpy(t.data_as<T>(), p, sizeof(T) * static_cast<size_t>(t.size()));
      p += t.size();
      out.push_back(std::move(t));
    }
    return out;
  }

  std::vector<std::string> weight_names(size_t layer) const override {
    const Layer<T>& l = *layers_.at(layer);
    std::vector<std::string> names = l.parameter_names();
    for (const std::string& n : l.state_names()) names.push_back(n);
    return names;
  }

  void set_weights(size_t layer, const std::vector<Tensor>& weights) override {
    Layer<T>& l = *layers_.at(layer);
    auto shapes_expected = l.parameter_shapes();
    const size_t n_params = shapes_expected.size();
    for (const Shape& s : l.state_shapes()) shapes_expected.push_back(s);
    const std::string who = "set_weights: layer '" + l.spec().name + "'";
    if (weights.size() != shapes_expected.size())
      throw ValueError(who + " expects " + std::to_string(shapes_expected.size()) +
                       " arrays, got " + std::to_string(weights.size()));
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i].shape() != shapes_expected[i])
        throw ShapeError(who + " weight " + std::to_string(i) + " must have shape " +
                         shape_string(shapes_expected[i]) + ", got " + shape_string(weights[i].shape()));
      if (weights[i].dtype() != dtype_of<T>())
        throw TypeError(who + " weight " + std::to_string(i) + " must be " +
                        dtype_name(dtype_of<T>()) + ", got " + dtype_name(weights[i].dtype()));
    }
    T* p = l.parameters();
    for (size_t i = 0; i < weights.size(); ++i) {
      if (i == n_params) p = l.state();
      std::memcpy(p, weights[i].data_as<T>(), sizeof(T) * static_cast<size_t>(weights[i].size()));
      p += weights[i].size();
    }
  }

  void compile() override {
    const size_t n = params_.size();
    // Optimizer state starts at zero (SGD velocity, RMSprop's square average, Adam's moments).
    const bool two = optimizer.kind == "adam" || optimizer.kind == "adamw";
    const bool one = two || optimizer.kind == "rmsprop" || optimizer.sgd.momentum != 0.0;
    state1_.assign(one ? n : 0, T(0));
    state2_.assign(two ? n : 0, T(0));
    step = 0;
    compiled = true;
  }

  double train_step(const Tensor& x, const Tensor& y, const Tensor* weight, bool update,
                    Tensor* gradients, Tensor* outputs) override {
    const int64_t batch = check_batch("train_step", x, y, weight);
    // From here on nothing throws: the step runs to the end or not at all.
    // The forward pass moves batch norm's statistics; a skipped update puts
    // them back (the state arena is small: two values per normalised channel).
    if (update) state_before_.assign(state_.begin(), state_.end());
    acts_.resize(layers_.size());
    input_ = x.data_as<T>();
    const T* out = forward(input_, batch, true, step, caches_, acts_, merge_inputs_);
    const int64_t width = batch * max_width();
    for (auto& buffer : grad_pool_) ensure_size(buffer, width);
    free_grads_.clear();
    for (size_t b = 0; b < grad_pool_.size(); ++b) free_grads_.push_back(static_cast<int>(b));
    grad_of_.assign(layers_.size(), -1);
    grad_of_[graph.output] = acquire_grad(width);
    double loss_value = compute_loss(out, y, weight, batch, shape_size(shapes[graph.output]),
                                     grad_pool_[grad_of_[graph.output]].data(), mask_, clean_targets_);
    if (outputs) *outputs = copy_output(out, batch);

    std::fill(grads_.begin(), grads_.end(), T(0));
    // Only the gradients an update uses are computed: none for frozen layers
    // or for what lies below them alone. A plain gradient request (gradient
    // checking) gets every parameter's.
    mark_wanted(!update);
    backward(batch, width);
    for (auto& l : layers_) loss_value += l->penalty(true);

    if (gradients) *gradients = flat_copy(grads_);
    if (update) {
      // A NaN or infinite loss or gradient (an overflow, a diverging learning
      // rate, NaN in x) would write NaN into the weights and the optimizer's
      // moments for good: the update is skipped instead, the model is left as
      // it was, and the step reports NaN (TerminateOnNaN stops on it).
      if (!std::isfinite(loss_value) || !all_finite(grads_.data(), static_cast<int64_t>(grads_.size()))) {
        std::copy(state_before_.begin(), state_before_.end(), state_.begin());
        return std::numeric_limits<double>::quiet_NaN();
      }
      ++step;
      apply_optimizer();
    }
    return loss_value;
  }

  double evaluate(const Tensor& x, const Tensor& y, const Tensor* weight,
                  Tensor* outputs) const override {
    const int64_t batch = check_batch("evaluate", x, y, weight);
    InferenceLease c(*this);
    const T* out = forward(x.data_as<T>(), batch, false, 0, c->caches, c->acts, c->merge_inputs);
    double loss_value = compute_loss(out, y, weight, batch, shape_size(shapes[graph.output]),
                                     nullptr, c->mask, c->clean_targets);
    for (auto& l : layers_) loss_value += l->penalty(false);
    if (outputs) *outputs = copy_output(out, batch);
    return loss_value;
  }

  Tensor predict(const Tensor& x) const override {
    const int64_t batch = check_input("predict", x);
    InferenceLease c(*this);
    return copy_output(forward(x.data_as<T>(), batch, false, 0, c->caches, c->acts, c->merge_inputs), batch);
  }

  Model::OptimizerState get_optimizer_state() const override {
    Model::OptimizerState state;
    state.step = step;
    for (const std::vector<T>* slot : {&state1_, &state2_}) {
      if (slot->empty()) continue;
      Tensor t({static_cast<int64_t>(slot->size())}, dtype_of<T>());
      std::memcpy(t.data_as<T>(), slot->data(), sizeof(T) * slot->size());
      state.slots.push_back(std::move(t));
    }
    return state;
  }

  void set_optimizer_state(const Model::OptimizerState& state) override {
    std::vector<std::vector<T>*> slots;
    for (std::vector<T>* slot : {&state1_, &state2_})
      if (!slot->empty()) slots.push_back(slot);
    if (state.step < 0)
      throw ValueError("set_optimizer_state: step must be >= 0, got " + std::to_string(state.step));
    if (state.slots.size() != slots.size())
      throw ValueError("set_optimizer_state: the " + optimizer.kind + " optimizer has " +
                       std::to_string(slots.size()) + " state arrays, got " +
                       std::to_string(state.slots.size()));
    for (size_t i = 0; i < slots.size(); ++i)
      if (state.slots[i].dtype() != dtype_of<T>() ||
          state.slots[i].size() != static_cast<int64_t>(slots[i]->size()))
        throw ShapeError("set_optimizer_state: state array " + std::to_string(i) + " must hold " +
                         std::to_string(slots[i]->size()) + " " + dtype_name(dtype_of<T>()) +
                         " values, got " + std::to_string(state.slots[i].size()) + " " +
                         dtype_name(state.slots[i].dtype()));
    for (size_t i = 0; i < slots.size(); ++i)
      std::memcpy(slots[i]->data(), state.slots[i].data_as<T>(), sizeof(T) * slots[i]->size());
    step = state.step;
  }

  Tensor get_parameters() const override { return flat_copy(params_); }
  void set_parameters(const Tensor& flat) override { flat_assign("set_parameters", params_, flat); }
  Tensor get_state() const override { return flat_copy(state_); }
  void set_state(const Tensor& flat) override { flat_assign("set_state", state_, flat); }

 private:
  static Tensor flat_copy(const std::vector<T>& arena) {
    Tensor t({static_cast<int64_t>(arena.size())}, dtype_of<T>());
    std::memcpy(t.data_as<T>(), arena.data(), sizeof(T) * arena.size());
    return t;
  }

  static void flat_assign(const char* op, std::vector<T>& arena, const Tensor& flat) {
    if (flat.dtype() != dtype_of<T>() || flat.size() != static_cast<int64_t>(arena.size()))
      throw ShapeError(std::string(op) + ": expected " + std::to_string(arena.size()) + " " +
                       dtype_name(dtype_of<T>()) + " values, got " + std::to_string(flat.size()) +
                       " " + dtype_name(flat.dtype()));
    std::memcpy(arena.data(), flat.data_as<T>(), sizeof(T) * arena.size());
  }

  int64_t max_width() const {
    int64_t w = shape_size(input_shape);
    for (const Shape& s : shapes) w = std::max(w, shape_size(s));
    return w;
  }

  // acts[i] is the input of layer i, acts[L] the model's output.
  // acts[i] is the output of layer i; returns the model's output.
  const T* forward(const T* x, int64_t batch, bool training, int64_t at_step,
                   std::vector<LayerCache<T>>& caches, std::vector<const T*>& acts,
                   std::vector<const T*>& merge_inputs) const {
    for (int i : graph.order) {
      const std::vector<int>& in = graph.inputs_of[i];
      if (merges_[i]) {
        merge_inputs.clear();
        for (int j : in) merge_inputs.push_back(j == Graph::kInput ? x : acts[j]);
        acts[i] = merges_[i]->forward_inputs(merge_inputs, batch, caches[i]);
        continue;
      }
      // A distinct dropout key per (step, layer): masks repeat within a step
      // (gradient checking) and never across steps or layers.
      const uint64_t key = random_bits(dropout_key, static_cast<uint64_t>(at_step) * layers_.size() + i);
      acts[i] = layers_[i]->forward(in[0] == Graph::kInput ? x : acts[in[0]], batch, training, key, caches[i]);
    }
    return acts[graph.output];
  }

  // wanted_[i]: layer i's output needs a gradient, because it or a layer
  // below it has parameters to train (all of them when all_parameters).
  void mark_wanted(bool all_parameters) {
    wanted_.assign(layers_.size(), 0);
    for (int i : graph.order) {
      bool want = layers_[i]->parameter_count() > 0 && (all_parameters || specs[i].trainable);
      for (int j : graph.inputs_of[i]) want = want || (j != Graph::kInput && wanted_[j]);
      wanted_[i] = want;
    }
  }

  // Gradient buffers come from a pool and go back once consumed, so a chain
  // of layers ping-pongs between two and a graph holds only those still
  // waiting for a consumer. grad_of_[i] is the buffer holding dL/d(output of
  // layer i). Where a tensor feeds several layers, their gradients are summed.
  void backward(int64_t batch, int64_t width) {
    for (auto it = graph.order.rbegin(); it != graph.order.rend(); ++it) {
      const int i = *it;
      if (grad_of_[i] < 0) continue;  // nothing below wants a gradient
      T* dy = grad_pool_[grad_of_[i]].data();
      const std::vector<int>& in = graph.inputs_of[i];
      if (merges_[i]) {
        // Where an input's gradient is dy itself (Add), one input that has
        // no gradient yet takes dy's buffer instead of a copy, after the
        // others have read it.
        int take = -1;
        for (size_t k = 0; k < in.size() && take < 0 && merges_[i]->passes_gradient_through(); ++k) {
          const int j = in[k];
          if (j != Graph::kInput && wanted_[j] && grad_of_[j] < 0 && std::count(in.begin(), in.end(), j) == 1)
            take = static_cast<int>(k);
        }
        merge_dx_.clear();
        merge_accumulate_.clear();
        for (size_t k = 0; k < in.size(); ++k) {
          const int j = in[k];
          const bool want = j != Graph::kInput && wanted_[j] && static_cast<int>(k) != take;
          merge_accumulate_.push_back(want && grad_of_[j] >= 0);
          if (want && grad_of_[j] < 0) grad_of_[j] = acquire_grad(width);
          merge_dx_.push_back(want ? grad_pool_[grad_of_[j]].data() : nullptr);
        }
        merges_[i]->backward_inputs(dy, merge_dx_, merge_accumulate_, batch);
        if (take >= 0) {
          grad_of_[in[take]] = grad_of_[i];
          grad_of_[i] = -1;
        }
      } else {
        const int j = in[0];
        const T* x = j == Graph::kInput ? input_ : acts_[j];
        if (j == Graph::kInput || !wanted_[j]) {
          layers_[i]->backward(dy, nullptr, x, acts_[i], batch, false, caches_[i]);
        } else {
          const int b = acquire_grad(width);
          T* dx = layers_[i]->backward(dy, grad_pool_[b].data(), x, acts_[i], batch, true, caches_[i]);
          if (grad_of_[j] >= 0) {
            add_backward<T>(grad_pool_[grad_of_[j]].data(), dx, batch * layers_[j]->output_size(), true);
            free_grads_.push_back(b);
          } else if (dx == dy) {  // passed through unchanged (Flatten): the buffer moves down
            grad_of_[j] = grad_of_[i];
            grad_of_[i] = -1;
            free_grads_.push_back(b);
          } else {
            grad_of_[j] = b;
          }
        }
      }
      if (grad_of_[i] >= 0) free_grads_.push_back(grad_of_[i]);
      grad_of_[i] = -1;
    }
  }

  int acquire_grad(int64_t width) {
    if (free_grads_.empty()) {
      grad_pool_.emplace_back(static_cast<size_t>(width));
      return static_cast<int>(grad_pool_.size()) - 1;
    }
    const int b = free_grads_.back();
    free_grads_.pop_back();
    return b;
  }

  // mask and clean_targets are scratch for binary cross-entropy with missing labels.
  double compute_loss(const T* out, const Tensor& y, const Tensor* weight, int64_t batch,
                      int64_t out_size, T* dout, std::vector<uint8_t>& mask,
                      std::vector<T>& clean_targets) const {
    const T* w = weight ? weight->data_as<T>() : nullptr;
    switch (loss) {
      case LossKind::softmax_cross_entropy:
        return static_cast<double>(
            softmax_cross_entropy<T>(dout, out, y.data_as<int64_t>(), batch, out_size, w));
      case LossKind::binary_cross_entropy: {
        // NaN targets are missing labels (multi-task learning): masked out.
        const T* t = y.data_as<T>();
        const int64_t n = batch * out_size;
        bool any_missing = false;
        for (int64_t i = 0; i < n && !any_missing; ++i) any_missing = std::isnan(t[i]);
        if (!any_missing)
          return static_cast<double>(
              sigmoid_cross_entropy<T>(dout, out, t, nullptr, batch, out_size, w));
        ensure_size(mask, n);
        // Masked targets must not reach the kernel as NaN (0·NaN is NaN).
        ensure_size(clean_targets, n);
        T* clean = clean_targets.data();
        for (int64_t i = 0; i < n; ++i) {
          mask[i] = std::isnan(t[i]) ? 0 : 1;
          clean[i] = std::isnan(t[i]) ? T(0) : t[i];
        }
        return static_cast<double>(
            sigmoid_cross_entropy<T>(dout, out, clean, mask.data(), batch, out_size, w));
      }
      case LossKind::mse:
        return static_cast<double>(mse<T>(dout, out, y.data_as<T>(), batch * out_size, w, batch));
    }
    return 0.0;
  }

  Tensor copy_output(const T* out, int64_t batch) const {
    Shape s{batch};
    s.insert(s.end(), shapes[graph.output].begin(), shapes[graph.output].end());
    Tensor t(s, dtype_of<T>());
    std::memcpy(t.data_as<T>(), out, sizeof(T) * static_cast<size_t>(t.size()));
    return t;
  }

  int64_t check_input(const char* op, const Tensor& x) const {
    if (!built) throw ValueError(std::string(op) + ": the model is not built");
    if (x.dtype() != dtype_of<T>())
      throw TypeError(std::string(op) + ": x must be " + dtype_name(dtype_of<T>()) + ", got " +
                      dtype_name(x.dtype()));
    Shape expected{x.ndim() > 0 ? x.dim(0) : -1};
    expected.insert(expected.end(), input_shape.begin(), input_shape.end());
    if (x.shape() != expected) {
      std::string want = "(batch";
      for (int64_t d : input_shape) want += ", " + std::to_string(d);
      throw ShapeError(std::string(op) + ": x must have shape " + want + "), got " +
                       shape_string(x.shape()));
    }
    return x.dim(0);
  }

  int64_t check_batch(const char* op, const Tensor& x, const Tensor& y,
                      const Tensor* weight) const {
    if (!compiled) throw ValueError(std::string(op) + ": the model is not compiled");
    const int64_t batch = check_input(op, x);
    if (batch < 1) throw ShapeError(std::string(op) + ": the batch is empty");
    const Shape& out = shapes[graph.output];
    if (loss == LossKind::softmax_cross_entropy) {
      if (y.dtype() != DType::int64)
        throw TypeError(std::string(op) + ": softmax_cross_entropy needs integer class ids, got " +
                        dtype_name(y.dtype()));
      if (y.shape() != Shape{batch})
        throw ShapeError(std::string(op) + ": y must have shape (" + std::to_string(batch) +
                         ",) (one class id per example), got " + shape_string(y.shape()));
      check_labels(y.data_as<int64_t>(), batch, shape_size(out));
    } else {
      Shape expected{batch};
      expected.insert(expected.end(), out.begin(), out.end());
      if (y.dtype() != dtype_of<T>())
        throw TypeError(std::string(op) + ": y must be " + dtype_name(dtype_of<T>()) + ", got " +
                        dtype_name(y.dtype()));
      if (y.shape() != expected)
        throw ShapeError(std::string(op) + ": y must have shape " + shape_string(expected) +
                         " to match the model's output, got " + shape_string(y.shape()));
    }
    if (weight) {
      if (weight->dtype() != dtype_of<T>())
        throw TypeError(std::string(op) + ": sample_weight must be " + dtype_name(dtype_of<T>()) +
                        ", got " + dtype_name(weight->dtype()));
      if (weight->shape() != Shape{batch})
        throw ShapeError(std::string(op) + ": sample_weight must have shape (" +
                         std::to_string(batch) + ",) (one weight per example), got " +
                         shape_string(weight->shape()));
      check_sample_weight(weight->data_as<T>(), batch, op);
    }
    return batch;
  }

  // One fused optimizer pass per run of consecutive trainable layers: frozen
  // layers keep their weights bit for bit.
  void apply_optimizer() {
    size_t i = 0;
    while (i < layers_.size()) {
      if (!specs[i].trainable) { ++i; continue; }
      size_t j = i;
      while (j < layers_.size() && specs[j].trainable) ++j;
      const int64_t begin = offsets_[i];
      const int64_t end = j < layers_.size() ? offsets_[j] : static_cast<int64_t>(params_.size());
      if (end > begin) update_range(begin, end - begin);
      i = j;
    }
  }

  void update_range(int64_t off, int64_t n) {
    T* p = params_.data() + off;
    const T* g = grads_.data() + off;
    T* s1 = state1_.empty() ? nullptr : state1_.data() + off;
    T* s2 = state2_.empty() ? nullptr : state2_.data() + off;
    if (optimizer.kind == "sgd") {
      sgd_step<T>(p, s1, g, optimizer.sgd, n);
    } else if (optimizer.kind == "rmsprop") {
      rmsprop_step<T>(p, s1, g, optimizer.rmsprop, n);
    } else {
      AdamHyper h = optimizer.adam;
      h.decoupled = optimizer.kind == "adamw";
      adam_step<T>(p, s1, s2, g, step, h, n);
    }
  }

  std::vector<std::unique_ptr<Layer<T>>> layers_;
  std::vector<detail::MergeLayer<T>*> merges_;  // per layer: itself if it merges inputs, else null
  std::vector<int64_t> offsets_;
  std::vector<T> params_, grads_, state_;
  std::vector<T> state_before_;  // state_ as it was before the current train step
  std::vector<T> state1_, state2_;  // the optimizer's slots
  // The training context: reused across steps, grown only when the batch grows.
  std::vector<LayerCache<T>> caches_;
  const T* input_ = nullptr;
  std::vector<const T*> acts_, merge_inputs_;
  std::vector<std::vector<T>> grad_pool_;
  std::vector<int> free_grads_, grad_of_;
  std::vector<uint8_t> wanted_, merge_accumulate_;
  std::vector<T*> merge_dx_;
  std::vector<uint8_t> mask_;
  std::vector<T> clean_targets_;

  // An inference context: every layer's output and scratch for one predict or
  // evaluate call. Contexts are kept after the call and handed to the next
  // one, so steady-state inference allocates nothing (a fresh context for a
  // batch-1 ResNet is megabytes of im2col columns and outputs, and
  // page-faulting them in tripled the call's time); concurrent callers each
  // lease their own, so inference stays const and re-entrant.
  struct InferenceContext {
    std::vector<LayerCache<T>> caches;
    std::vector<const T*> acts, merge_inputs;
    std::vector<uint8_t> mask;
    std::vector<T> clean_targets;
  };

  class InferenceLease {
   public:
    explicit InferenceLease(const Engine& engine) : engine_(engine) {
      {
        std::lock_guard<std::mutex> lock(engine_.idle_mutex_);
        if (!engine_.idle_contexts_.empty()) {
          context_ = std::move(engine_.idle_contexts_.back());
          engine_.idle_contexts_.pop_back();
        }
      }
      if (!context_) context_ = std::make_unique<InferenceContext>();
      context_->caches.resize(engine_.layers_.size());
      context_->acts.resize(engine_.layers_.size());
    }
    ~InferenceLease() {
      std::lock_guard<std::mutex> lock(engine_.idle_mutex_);
      engine_.idle_contexts_.push_back(std::move(context_));
    }
    InferenceLease(const InferenceLease&) = delete;
    InferenceLease& operator=(const InferenceLease&) = delete;
    InferenceContext* operator->() const { return context_.get(); }

   private:
    const Engine& engine_;
    std::unique_ptr<InferenceContext> context_;
  };

  mutable std::mutex idle_mutex_;
  mutable std::vector<std::unique_ptr<InferenceContext>> idle_contexts_;
};

}  // namespace

Shape infer_output_shape(const std::vector<LayerSpec>& layers, const std::string& input_name,
                         const Shape& input_shape) {
  Plan<float> plan = plan_graph<float>(layers, input_name, input_shape);
  return plan.shapes[plan.graph.output];
}

Model::Model(DType dtype) {
  if (dtype == DType::float32) impl_ = std::make_unique<Engine<float>>();
  else if (dtype == DType::float64) impl_ = std::make_unique<Engine<double>>();
  else throw TypeError(std::string("Model: dtype must be float32 or float64, got ") + dtype_name(dtype));
}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

DType Model::dtype() const { return impl_->dtype(); }

void Model::add(const LayerSpec& spec) {
  if (impl_->built) throw ValueError("add: the model is already built");
  LayerSpec s = spec;
  if (s.name.empty()) s.name = s.kind + "_" + std::to_string(impl_->specs.size());
  for (const LayerSpec& other : impl_->specs)
    if (other.name == s.name) throw ValueError("add: a layer named '" + s.name + "' already exists");
  detail::make_layer<float>(s);  // validates the configuration now, not at build time
  impl_->specs.push_back(std::move(s));
}

void Model::build(const Shape& input_shape, int64_t max_values) {
  for (int64_t d : input_shape)
    if (d < 1) throw ShapeError("build: input shape " + shape_string(input_shape) + " must have positive dimensions");
  const Shape previous = impl_->input_shape;
  impl_->input_shape = input_shape;
  impl_->max_values = max_values;
  try {
    impl_->build();
  } catch (...) {
    impl_->input_shape = previous;
    impl_->max_values = -1;
    throw;
  }
  impl_->max_values = -1;
}

void Model::set_input_name(const std::string& name) {
  if (impl_->built) throw ValueError("set_input_name: the model is already built");
  if (name.empty()) throw ValueError("set_input_name: the name must not be empty");
  impl_->input_name = name;
}
const std::string& Model::input_name() const { return impl_->input_name; }

bool Model::built() const { return impl_->built; }
const Shape& Model::input_shape() const { return impl_->input_shape; }
size_t Model::num_layers() const { return impl_->specs.size(); }
const LayerSpec& Model::layer_spec(size_t layer) const { return impl_->specs.at(layer); }
Shape Model::output_shape(size_t layer) const { return impl_->shapes.at(layer); }
Shape Model::output_shape() const {
  if (impl_->shapes.empty()) return impl_->input_shape;
  return impl_->shapes[impl_->graph.output];
}
int64_t Model::count_params() const { return impl_->count_params(); }
int64_t Model::count_params(size_t layer) const { return impl_->count_params(layer); }
int64_t Model::count_state(size_t layer) const { return impl_->count_state(layer); }
int64_t Model::multiply_adds(size_t layer) const { return impl_->multiply_adds(layer); }

std::vector<std::string> Model::layer_inputs(size_t layer) const {
  if (!impl_->built) throw ValueError("layer_inputs: the model is not built");
  std::vector<std::string> names;
  for (int j : impl_->graph.inputs_of.at(layer))
    names.push_back(j == Graph::kInput ? impl_->input_name : impl_->specs[j].name);
  return names;
}

size_t Model::output_layer() const {
  if (!impl_->built) throw ValueError("output_layer: the model is not built");
  return static_cast<size_t>(impl_->graph.output);
}
std::vector<Tensor> Model::get_weights(size_t layer) const { return impl_->get_weights(layer); }
void Model::set_weights(size_t layer, const std::vector<Tensor>& w) { impl_->set_weights(layer, w); }

void Model::set_trainable(size_t layer, bool trainable) {
  impl_->set_trainable(layer, trainable);
}

void Model::compile(LossKind loss, const OptimizerSpec& optimizer) {
  const std::string& k = optimizer.kind;
  if (k != "sgd" && k != "rmsprop" && k != "adam" && k != "adamw")
    throw ValueError("compile: unknown optimizer '" + k + "'; expected one of sgd, rmsprop, adam, adamw");
  if (k == "sgd") validate(optimizer.sgd, "compile");
  else if (k == "rmsprop") validate(optimizer.rmsprop, "compile");
  else validate(optimizer.adam, 1, "compile");
  impl_->loss = loss;
  impl_->optimizer = optimizer;
  if (impl_->built) impl_->compile();
  impl_->compiled = true;
}

bool Model::compiled() const { return impl_->compiled; }

void Model::set_learning_rate(double lr) {
  if (!(lr >= 0.0 && std::isfinite(lr)))
    throw ValueError("set_learning_rate: lr must be finite and >= 0, got " + std::to_string(lr));
  impl_->optimizer.sgd.lr = impl_->optimizer.rmsprop.lr = impl_->optimizer.adam.lr = lr;
}

// Each entry point first undoes any raise of BLAS's thread count by another
// library (gemm.cpp): convolutions call BLAS inside their own parallel regions.
double Model::train_step(const Tensor& x, const Tensor& y, Tensor* outputs) {
  detail::blas_keep_single_threaded();
  return impl_->train_step(x, y, nullptr, true, nullptr, outputs);
}
double Model::loss_and_gradients(const Tensor& x, const Tensor& y, Tensor* gradients) {
  detail::blas_keep_single_threaded();
  return impl_->train_step(x, y, nullptr, false, gradients, nullptr);
}
double Model::evaluate(const Tensor& x, const Tensor& y, Tensor* outputs) const {
  detail::blas_keep_single_threaded();
  return impl_->evaluate(x, y, nullptr, outputs);
}
double Model::train_step(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                         Tensor* outputs) {
  detail::blas_keep_single_threaded();
  return impl_->train_step(x, y, &sample_weight, true, nullptr, outputs);
}
double Model::loss_and_gradients(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                                 Tensor* gradients) {
  detail::blas_keep_single_threaded();
  return impl_->train_step(x, y, &sample_weight, false, gradients, nullptr);
}
double Model::evaluate(const Tensor& x, const Tensor& y, const Tensor& sample_weight,
                       Tensor* outputs) const {
  detail::blas_keep_single_threaded();
  return impl_->evaluate(x, y, &sample_weight, outputs);
}
int64_t Model::steps() const { return impl_->step; }
Tensor Model::predict(const Tensor& x) const {
  detail::blas_keep_single_threaded();
  return impl_->predict(x);
}
Model::OptimizerState Model::get_optimizer_state() const {
  if (!impl_->built || !impl_->compiled)
    throw ValueError("get_optimizer_state: the model is not built and compiled");
  return impl_->get_optimizer_state();
}
void Model::set_optimizer_state(const OptimizerState& state) {
  if (!impl_->built || !impl_->compiled)
    throw ValueError("set_optimizer_state: the model is not built and compiled");
  impl_->set_optimizer_state(state);
}
std::vector<std::string> Model::weight_names(size_t layer) const { return impl_->weight_names(layer); }
LossKind Model::loss() const { return impl_->loss; }
const OptimizerSpec& Model::optimizer() const { return impl_->optimizer; }
uint64_t Model::dropout_key() const { return impl_->dropout_key; }
void Model::set_dropout_key(uint64_t key) { impl_->dropout_key = key; }
Tensor Model::get_parameters() const { return impl_->get_parameters(); }
void Model::set_parameters(const Tensor& flat) { impl_->set_parameters(flat); }
Tensor Model::get_state() const { return impl_->get_state(); }
void Model::set_state(const Tensor& flat) { impl_->set_state(flat); }

}  // namespace corenn
