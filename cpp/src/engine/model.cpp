#include "corenn/model.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "backend/gemm.hpp"
#include "backend/parallel.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/loss.hpp"
#include "corenn/kernels/merge.hpp"
#include "corenn/kernels/optim.hpp"
#include "corenn/random.hpp"
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
    case LossKind::none: return "none";
    case LossKind::custom: return "custom";
  }
  return "?";
}

namespace {
std::atomic<bool> g_fusion{true};
}  // namespace

void set_fusion(bool enabled) { g_fusion.store(enabled); }
bool get_fusion() { return g_fusion.load(); }

std::string tensor_ref_string(const TensorRef& ref) {
  if (ref.node == 0 && ref.output == 0) return "'" + ref.layer + "'";
  return "'" + ref.layer + "'[" + std::to_string(ref.node) + "][" + std::to_string(ref.output) + "]";
}

// The graph once resolved. Tensors are numbered: the model inputs first, then
// the outputs of each node in execution order. A node is one call of a layer.
struct Graph {
  struct NodeInfo {
    int layer = 0;
    int declared = 0;      // position among the declared calls (dropout keys use it)
    std::vector<int> in;   // tensor ids
    std::vector<int> out;  // tensor ids
  };
  size_t num_inputs = 0;
  std::vector<NodeInfo> nodes;                 // execution order
  std::vector<Shape> tensor_shapes;            // per example
  std::vector<int> producer;                   // tensor -> node position, -1 for inputs
  std::vector<int> outputs;                    // the model's output tensors
  std::vector<std::vector<int>> calls_of;      // layer -> node positions, by call number
  std::vector<Model::Node> public_nodes;       // execution order, as TensorRefs
  std::vector<TensorRef> output_refs;
  int64_t max_width = 0;                       // the widest tensor, per example
};

struct InputDecl {
  std::string name;
  Shape shape;
};

struct CallDecl {
  std::string layer;
  std::vector<TensorRef> inputs;
};

// The dtype-independent face of Engine<T>, so Model is not a template.
class EngineBase {
 public:
  virtual ~EngineBase() = default;
  // What the user declared.
  std::vector<LayerSpec> specs;
  std::vector<InputDecl> inputs;
  std::vector<CallDecl> calls;  // empty: the stack shorthand (LayerSpec::inputs)
  std::vector<TensorRef> declared_outputs;
  std::string input_name = "input";
  int64_t max_values = -1;  // Model::build's cap on parameters + state
  // What build resolved.
  Graph graph;
  bool built = false, compiled = false;
  std::vector<OutputLoss> losses;
  OptimizerSpec optimizer;
  int64_t step = 0;
  uint64_t dropout_key = 0;
  int64_t vjp_generation = 0;

  virtual DType dtype() const = 0;
  virtual void adopt(const std::string& name, const EngineBase& other, size_t other_layer) = 0;
  virtual bool has_adopted(const std::string& name) const = 0;
  virtual void build() = 0;
  virtual int64_t multiply_adds(size_t layer) const = 0;
  virtual std::vector<std::vector<std::string>> fusion_plan() const = 0;
  virtual void set_trainable(size_t layer, bool trainable) = 0;
  virtual int64_t count_params(size_t layer) const = 0;
  virtual int64_t count_params() const = 0;
  virtual int64_t count_state(size_t layer) const = 0;
  virtual std::vector<Tensor> get_weights(size_t layer) const = 0;
  virtual std::vector<std::string> weight_names(size_t layer) const = 0;
  virtual void set_weights(size_t layer, const std::vector<Tensor>& weights) = 0;
  virtual void compile() = 0;
  virtual double train_step(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                            const Tensor* weight, bool update, Tensor* gradients,
                            std::vector<double>* output_losses, std::vector<Tensor>* outputs) = 0;
  virtual bool apply_gradients(const Tensor& gradients) = 0;
  virtual double compute_gradients(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                   const Tensor* weight, std::vector<double>* output_losses,
                                   std::vector<Tensor>* outputs) = 0;
  virtual Tensor gradient_arena() = 0;
  virtual bool apply_gradients(double scale) = 0;
  Model::GradientReducer reducer;
  virtual double evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                          const Tensor* weight, std::vector<double>* output_losses,
                          std::vector<Tensor>* outputs) const = 0;
  virtual std::vector<Tensor> predict(const std::vector<Tensor>& x) const = 0;
  virtual std::vector<Tensor> output_masks(const std::vector<Tensor>& x) const = 0;
  virtual std::vector<Tensor> vjp(const std::vector<Tensor>& x, bool training) = 0;
  virtual std::vector<Tensor> pullback(const std::vector<Tensor>& dy) = 0;
  virtual Model::OptimizerState get_optimizer_state() const = 0;
  virtual void set_optimizer_state(const Model::OptimizerState& state) = 0;
  virtual Tensor get_parameters() const = 0;
  virtual void set_parameters(const Tensor& flat) = 0;
  virtual Tensor get_state() const = 0;
  virtual void set_state(const Tensor& flat) = 0;
  virtual std::vector<Model::ParameterSlice> parameter_layout() const = 0;

  int find_layer(const std::string& name) const {
    for (size_t i = 0; i < specs.size(); ++i)
      if (specs[i].name == name) return static_cast<int>(i);
    return -1;
  }
  int find_input(const std::string& name) const {
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].name == name) return static_cast<int>(i);
    return -1;
  }
};

namespace {

using detail::DerivedWeights;
using detail::ensure_size;
using detail::FusionWeights;
using detail::Layer;
using detail::LayerCache;

// The calls a graph makes: the declared ones, or, for the stack shorthand,
// one per layer on LayerSpec::inputs (empty: the layer before, or the input).
std::vector<CallDecl> effective_calls(const EngineBase& e) {
  if (!e.calls.empty()) {
    for (const LayerSpec& s : e.specs)
      if (!s.inputs.empty())
        throw ValueError("build: " + detail::layer_label(s) +
                         " lists inputs, the stack shorthand; with Model::call leave them empty");
    return e.calls;
  }
  std::vector<CallDecl> calls;
  for (size_t i = 0; i < e.specs.size(); ++i) {
    CallDecl c{e.specs[i].name, {}};
    for (const std::string& name : e.specs[i].inputs) c.inputs.push_back(TensorRef{name, 0, 0});
    if (c.inputs.empty())
      c.inputs.push_back(TensorRef{i == 0 ? (e.inputs.empty() ? e.input_name : e.inputs[0].name)
                                          : e.specs[i - 1].name,
                                   0, 0});
    calls.push_back(std::move(c));
  }
  return calls;
}

std::string shapes_string(const std::vector<Shape>& shapes) {
  std::string out;
  for (size_t k = 0; k < shapes.size(); ++k) out += (k ? ", " : "") + shape_string(shapes[k]);
  return out;
}

// Builds a fresh layer against the input shapes of its first call.
template <typename T>
std::vector<Shape> build_layer_shapes(Layer<T>& layer, const std::vector<Shape>& in) {
  if (detail::CallLayer<T>* call = layer.as_call()) return call->build_call(in);
  if (detail::MergeLayer<T>* merge = layer.as_merge()) {
    if (in.size() < 2)
      throw ValueError("build: " + detail::layer_label(layer.spec()) + " takes two or more inputs, got " +
                       std::to_string(in.size()));
    return {merge->build_inputs(in)};
  }
  if (in.size() != 1)
    throw ValueError("build: " + detail::layer_label(layer.spec()) + " takes one input, got " +
                     std::to_string(in.size()));
  return {layer.build(in[0])};
}

// build_layer_shapes, with the layer named in every shape error: its own
// messages name it; one from below (a weight or output tensor too large to
// address) gets the name put in front.
template <typename T>
std::vector<Shape> build_layer(Layer<T>& layer, const std::vector<Shape>& in) {
  try {
    std::vector<Shape> out = build_layer_shapes(layer, in);
    // Sizes that overflow int64 (outputs, weights, state) throw here, where the layer is known.
    for (const Shape& shape : out) shape_size(shape);
    layer.parameter_count();
    layer.state_count();
    return out;
  } catch (const ShapeError& err) {
    const std::string label = detail::layer_label(layer.spec());
    if (std::string(err.what()).find(label) == std::string::npos)
      throw ShapeError("build: " + label + ": " + err.what());
    throw;
  }
}

// The layers and resolved graph of a model: everything it needs before it
// allocates its arenas, planned aside so a failed build changes nothing.
template <typename T>
struct Plan {
  Graph graph;
  std::vector<std::shared_ptr<Layer<T>>> layers;
  std::vector<uint8_t> fresh;  // created here (initialised and placed in this model's arena)
};

template <typename T>
Plan<T> plan_graph(const EngineBase& e,
                   const std::vector<std::pair<std::string, std::shared_ptr<Layer<T>>>>& adopted) {
  if (e.specs.empty()) throw ValueError("build: the model has no layers");
  if (e.inputs.empty()) throw ValueError("build: the model has no inputs; declare them with add_input");
  Plan<T> plan;
  const int n_layers = static_cast<int>(e.specs.size());
  for (const LayerSpec& spec : e.specs) {
    if (e.find_input(spec.name) >= 0)
      throw ValueError("build: " + detail::layer_label(spec) + " has the name of the model input '" + spec.name + "'");
    std::shared_ptr<Layer<T>> layer;
    for (const auto& a : adopted)
      if (a.first == spec.name) layer = a.second;
    plan.fresh.push_back(!layer);
    plan.layers.push_back(layer ? layer : std::shared_ptr<Layer<T>>(detail::make_layer<T>(spec)));
  }

  // Resolve each call's inputs to (call, output) or a model input.
  const std::vector<CallDecl> calls = effective_calls(e);
  const int n_calls = static_cast<int>(calls.size());
  std::vector<int> layer_of(n_calls), number_of(n_calls);
  std::vector<std::vector<int>> calls_of(n_layers);
  for (int c = 0; c < n_calls; ++c) {
    const int l = e.find_layer(calls[c].layer);
    if (l < 0) throw ValueError("build: a call names layer '" + calls[c].layer + "', which the model does not have");
    layer_of[c] = l;
    number_of[c] = static_cast<int>(calls_of[l].size());
    calls_of[l].push_back(c);
  }
  for (int l = 0; l < n_layers; ++l)
    if (calls_of[l].empty())
      throw ValueError("build: " + detail::layer_label(e.specs[l]) + " is never called");
  struct Source {
    int call;  // -1: model input `index`
    int index;
    int64_t output;
  };
  auto resolve = [&](const TensorRef& ref, const std::string& who) -> Source {
    const int input = e.find_input(ref.layer);
    if (input >= 0) {
      if (ref.node != 0 || ref.output != 0)
        throw ValueError(who + ": input " + tensor_ref_string(ref) + " names model input '" + ref.layer +
                         "', which has one tensor: node 0, output 0");
      return {-1, input, 0};
    }
    const int l = e.find_layer(ref.layer);
    if (l < 0)
      throw ValueError(who + " takes input " + tensor_ref_string(ref) + ", which is neither a layer of the model nor one of its inputs");
    if (ref.node < 0 || ref.node >= static_cast<int64_t>(calls_of[l].size()))
      throw ValueError(who + ": input " + tensor_ref_string(ref) + " asks for call " + std::to_string(ref.node) +
                       " of layer '" + ref.layer + "', which is called " + std::to_string(calls_of[l].size()) + " time(s)");
    return {calls_of[l][ref.node], -1, ref.output};
  };
  std::vector<std::vector<Source>> sources(n_calls);
  std::vector<std::vector<int>> consumers(n_calls);
  std::vector<int> waiting(n_calls, 0);
  for (int c = 0; c < n_calls; ++c) {
    const std::string who = "build: call " + std::to_string(number_of[c]) + " of " +
                            detail::layer_label(e.specs[layer_of[c]]);
    if (calls[c].inputs.empty()) throw ValueError(who + " has no inputs");
    for (const TensorRef& ref : calls[c].inputs) {
      Source s = resolve(ref, who);
      if (s.call >= 0) {
        consumers[s.call].push_back(c);
        ++waiting[c];
      }
      sources[c].push_back(s);
    }
  }

  // Execution order: Kahn's algorithm, ties broken by declaration order, so
  // a stack runs as written.
  std::vector<int> order;
  std::vector<uint8_t> done(n_calls, 0);
  while (static_cast<int>(order.size()) < n_calls) {
    int next = -1;
    for (int c = 0; c < n_calls && next < 0; ++c)
      if (!done[c] && waiting[c] == 0) next = c;
    if (next < 0) {
      std::string stuck;
      for (int c = 0; c < n_calls; ++c)
        if (!done[c]) stuck += (stuck.empty() ? "'" : ", '") + e.specs[layer_of[c]].name + "'";
      throw ValueError("build: the layers " + stuck + " depend on each other in a cycle (or on a layer of one)");
    }
    done[next] = 1;
    order.push_back(next);
    for (int c : consumers[next]) --waiting[c];
  }

  // Shapes, call by call: a layer is built at its first call; later calls
  // (and a layer shared from another model) must match what it was built for.
  Graph& g = plan.graph;
  g.num_inputs = e.inputs.size();
  for (const InputDecl& in : e.inputs) {
    g.tensor_shapes.push_back(in.shape);
    g.producer.push_back(-1);
  }
  std::vector<int> position(n_calls, -1);
  std::vector<uint8_t> built(n_layers, 0);
  g.calls_of.assign(n_layers, {});
  for (int c : order) {
    const int l = layer_of[c];
    Layer<T>& layer = *plan.layers[l];
    Graph::NodeInfo node;
    node.layer = l;
    node.declared = c;
    std::vector<Shape> in;
    for (const Source& s : sources[c]) {
      int tensor;
      if (s.call < 0) {
        tensor = s.index;
      } else {
        const Graph::NodeInfo& from = g.nodes[position[s.call]];
        if (s.output < 0 || s.output >= static_cast<int64_t>(from.out.size()))
          throw ValueError("build: call " + std::to_string(number_of[c]) + " of " + detail::layer_label(e.specs[l]) +
                           " takes output " + std::to_string(s.output) + " of layer '" + e.specs[from.layer].name +
                           "', which has " + std::to_string(from.out.size()) + " output(s)");
        tensor = from.out[s.output];
      }
      node.in.push_back(tensor);
      in.push_back(g.tensor_shapes[tensor]);
    }
    std::vector<Shape> out;
    if (plan.fresh[l] && !built[l]) {
      try {
        out = build_layer(layer, in);
      } catch (const ShapeError& err) {
        if (in.size() == 1) throw;  // the layer's message says it all
        std::string from;
        for (size_t k = 0; k < calls[c].inputs.size(); ++k)
          from += (k ? ", " : "") + tensor_ref_string(calls[c].inputs[k]) + " " + shape_string(in[k]);
        throw ShapeError(std::string(err.what()) + " (from " + from + ")");
      }
      layer.built_inputs = in;
      layer.built_outputs = out;
      built[l] = 1;
    } else {
      if (in != layer.built_inputs)
        throw ShapeError("build: " + detail::layer_label(e.specs[l]) + " was built for inputs " +
                         shapes_string(layer.built_inputs) + " and is called again on " + shapes_string(in) +
                         "; every call of a shared layer takes the same shapes");
      out = layer.built_outputs;
    }
    for (const Shape& s : out) {
      node.out.push_back(static_cast<int>(g.tensor_shapes.size()));
      g.tensor_shapes.push_back(s);
      g.producer.push_back(static_cast<int>(g.nodes.size()));
    }
    position[c] = static_cast<int>(g.nodes.size());
    g.nodes.push_back(std::move(node));
  }
  for (int l = 0; l < n_layers; ++l)
    for (int c : calls_of[l]) g.calls_of[l].push_back(position[c]);

  // The model's outputs: declared, or the one tensor no call consumes.
  std::vector<int> uses(g.tensor_shapes.size(), 0);
  for (const Graph::NodeInfo& node : g.nodes)
    for (int t : node.in) ++uses[t];
  if (!e.declared_outputs.empty()) {
    for (const TensorRef& ref : e.declared_outputs) {
      const Source s = resolve(ref, "build: output " + tensor_ref_string(ref));
      if (s.call < 0)
        throw ValueError("build: output " + tensor_ref_string(ref) + " is a model input; add at least one layer");
      const Graph::NodeInfo& from = g.nodes[position[s.call]];
      if (s.output < 0 || s.output >= static_cast<int64_t>(from.out.size()))
        throw ValueError("build: output " + tensor_ref_string(ref) + ": layer '" + ref.layer + "' has " +
                         std::to_string(from.out.size()) + " output(s)");
      g.outputs.push_back(from.out[s.output]);
      g.output_refs.push_back(ref);
    }
  } else {
    std::vector<int> sinks;
    std::string names;
    for (const Graph::NodeInfo& node : g.nodes)
      for (int t : node.out)
        if (uses[t] == 0) {
          sinks.push_back(t);
          names += (names.empty() ? "'" : ", '") + e.specs[node.layer].name + "'";
        }
    if (sinks.size() != 1)
      throw ValueError("build: a model has one output unless set_outputs names several, but the layers " + names +
                       " all feed no other layer; connect them, leave them out, or name the outputs");
    g.outputs = sinks;
    const Graph::NodeInfo& from = g.nodes[g.producer[sinks[0]]];
    const int number = static_cast<int>(std::find(g.calls_of[from.layer].begin(), g.calls_of[from.layer].end(),
                                                  g.producer[sinks[0]]) - g.calls_of[from.layer].begin());
    g.output_refs.push_back(TensorRef{e.specs[from.layer].name, number, 0});
  }

  // Every input and every call must lead to an output: a dangling call would
  // run for nothing (and an unused input would be silently ignored).
  std::vector<uint8_t> needed(g.tensor_shapes.size(), 0);
  for (int t : g.outputs) needed[t] = 1;
  for (auto it = g.nodes.rbegin(); it != g.nodes.rend(); ++it) {
    bool any = false;
    for (int t : it->out) any = any || needed[t];
    if (!any && !e.declared_outputs.empty())
      throw ValueError("build: a call of " + detail::layer_label(e.specs[it->layer]) +
                       " feeds none of the model's outputs; leave it out");
    for (int t : it->in) needed[t] = needed[t] || any;
  }
  for (size_t i = 0; i < g.num_inputs; ++i)
    if (!needed[i])
      throw ValueError("build: the model input '" + e.inputs[i].name + "' feeds none of the outputs");

  // The public description, as TensorRefs.
  std::vector<TensorRef> ref_of(g.tensor_shapes.size());
  for (size_t i = 0; i < g.num_inputs; ++i) ref_of[i] = TensorRef{e.inputs[i].name, 0, 0};
  for (size_t p = 0; p < g.nodes.size(); ++p) {
    const Graph::NodeInfo& node = g.nodes[p];
    const int number = static_cast<int>(std::find(g.calls_of[node.layer].begin(), g.calls_of[node.layer].end(),
                                                  static_cast<int>(p)) - g.calls_of[node.layer].begin());
    for (size_t k = 0; k < node.out.size(); ++k)
      ref_of[node.out[k]] = TensorRef{e.specs[node.layer].name, number, static_cast<int64_t>(k)};
  }
  for (const Graph::NodeInfo& node : g.nodes) {
    Model::Node pn{static_cast<size_t>(node.layer), {}};
    for (int t : node.in) pn.inputs.push_back(ref_of[t]);
    g.public_nodes.push_back(std::move(pn));
  }
  for (const Shape& s : g.tensor_shapes) g.max_width = std::max(g.max_width, shape_size(s));
  return plan;
}

// Sets a layer's trainable flag and that of every layer nested in it
// (TimeDistributed's and Bidirectional's "layer", "backward_layer").
void set_trainable_nested(LayerSpec& spec, bool trainable) {
  spec.trainable = trainable;
  std::vector<std::pair<std::string, LayerSpec>> nested;
  for (const auto& attribute : spec.attributes)
    if (attribute.second.is<NestedLayer>() && !attribute.second.as<NestedLayer>().empty())
      nested.emplace_back(attribute.first, attribute.second.as<NestedLayer>().spec());
  for (auto& [name, inner] : nested) {
    set_trainable_nested(inner, trainable);
    spec.set(name, NestedLayer(inner));
  }
}

template <typename T>
class Engine : public EngineBase {
 public:
  DType dtype() const override { return dtype_of<T>(); }

  void adopt(const std::string& name, const EngineBase& other, size_t other_layer) override {
    const auto* source = dynamic_cast<const Engine<T>*>(&other);
    if (!source)
      throw TypeError("share_layer: the other model is " + std::string(dtype_name(other.dtype())) + ", this one " +
                      dtype_name(dtype_of<T>()) + "; shared layers need one dtype");
    if (!other.built) throw ValueError("share_layer: the other model is not built");
    for (auto& a : adopted_)
      if (a.first == name) {
        a.second = source->layers_.at(other_layer);
        return;
      }
    adopted_.emplace_back(name, source->layers_.at(other_layer));
  }

  bool has_adopted(const std::string& name) const override {
    for (const auto& a : adopted_)
      if (a.first == name) return true;
    return false;
  }

  void build() override {
    Plan<T> plan = plan_graph<T>(*this, adopted_);
    std::vector<int64_t> offsets, own_offsets, own_state_offsets;
    int64_t total = 0, own_total = 0, own_state_total = 0;
    for (size_t i = 0; i < plan.layers.size(); ++i) {
      const Layer<T>& layer = *plan.layers[i];
      offsets.push_back(total);
      total += layer.parameter_count();
      own_offsets.push_back(own_total);
      own_state_offsets.push_back(own_state_total);
      if (plan.fresh[i]) {
        own_total += layer.parameter_count();
        own_state_total += layer.state_count();
      }
    }
    if (max_values >= 0 && (own_total > max_values || own_state_total > max_values - own_total))
      throw ValueError("build: the layers need " + std::to_string(own_total + own_state_total) +
                       " parameter and state values, more than the " + std::to_string(max_values) + " allowed");
    for (size_t i = 0; i < plan.layers.size(); ++i)
      if (!plan.fresh[i] && plan.layers[i]->spec().kind != specs[i].kind)
        throw ValueError("share_layer: layer '" + specs[i].name + "' is a " + specs[i].kind +
                         ", the shared layer a " + plan.layers[i]->spec().kind);
    // Everything above may throw; only now is the model changed.
    auto arena = std::make_shared<detail::WeightArena<T>>();
    arena->parameters.assign(static_cast<size_t>(own_total), T(0));
    arena->state.assign(static_cast<size_t>(own_state_total), T(0));
    layers_ = std::move(plan.layers);
    graph = std::move(plan.graph);
    offsets_ = std::move(offsets);
    n_grads_ = static_cast<size_t>(total);
    grads_.assign(n_grads_ + Model::kReductionSlots, T(0));
    pending_ = false;
    for (size_t i = 0; i < layers_.size(); ++i) {
      if (plan.fresh[i]) {
        layers_[i]->bind(arena, arena->parameters.data() + own_offsets[i],
                         arena->state.data() + own_state_offsets[i]);
        layers_[i]->initialize(next_key());
      } else {  // the shared layer's settings (and trainable flag) rule; the name stays
        LayerSpec shared = layers_[i]->spec();
        shared.name = specs[i].name;
        specs[i] = std::move(shared);
      }
    }
    dropout_key = next_key();
    caches_.assign(graph.nodes.size(), LayerCache<T>());
    {
      std::lock_guard<std::mutex> lock(idle_mutex_);
      idle_contexts_.clear();  // sized for the old graph
    }
    step = 0;
    vjp_valid_ = false;
    built = true;
    plan_fusion();
    if (compiled) compile();
  }

  int64_t count_params(size_t layer) const override { return layers_.at(layer)->parameter_count(); }
  int64_t multiply_adds(size_t layer) const override { return layers_.at(layer)->multiply_adds(); }

  std::vector<std::vector<std::string>> fusion_plan() const override {
    std::vector<std::vector<std::string>> plan;
    for (const FusedConv& g : fused_) {
      std::vector<std::string> names;
      for (int p : g.members) names.push_back(specs[graph.nodes[p].layer].name);
      plan.push_back(std::move(names));
    }
    return plan;
  }

  // A layer reads its own flag (a frozen BatchNormalization runs in inference
  // mode) and so does the optimizer; a shared layer is frozen in every model.
  // As Keras's setter, the flag is also every wrapped layer's (their specs
  // nest in the wrapper's, which the model file stores).
  void set_trainable(size_t layer, bool trainable) override {
    set_trainable_nested(specs.at(layer), trainable);
    if (built) {
      layers_.at(layer)->set_trainable(trainable);
      ++layers_.at(layer)->weights_version;
    }
  }
  int64_t count_params() const override { return static_cast<int64_t>(n_grads_); }
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
      throw ValueError(who + " expects " + std::to_string(shapes_expected.size()) + " arrays, got " +
                       std::to_string(weights.size()));
    for (size_t i = 0; i < weights.size(); ++i) {
      if (weights[i].shape() != shapes_expected[i])
        throw ShapeError(who + " weight " + std::to_string(i) + " must have shape " +
                         shape_string(shapes_expected[i]) + ", got " + shape_string(weights[i].shape()));
      if (weights[i].dtype() != dtype_of<T>())
        throw TypeError(who + " weight " + std::to_string(i) + " must be " + dtype_name(dtype_of<T>()) + ", got " +
                        dtype_name(weights[i].dtype()));
    }
    T* p = l.parameters();
    for (size_t i = 0; i < weights.size(); ++i) {
      if (i == n_params) p = l.state();
      std::memcpy(p, weights[i].data_as<T>(), sizeof(T) * static_cast<size_t>(weights[i].size()));
      p += weights[i].size();
    }
    ++l.weights_version;
  }

  void compile() override {
    const size_t n = n_grads_;
    // Optimizer state starts at zero (SGD velocity, RMSprop's square average, Adam's moments).
    const bool two = optimizer.kind == "adam" || optimizer.kind == "adamw";
    const bool one = two || optimizer.kind == "rmsprop" || optimizer.sgd.momentum != 0.0;
    state1_.assign(one ? n : 0, T(0));
    state2_.assign(two ? n : 0, T(0));
    if (losses.size() == 1 && graph.outputs.size() > 1) losses.assign(graph.outputs.size(), losses[0]);
    if (losses.size() != graph.outputs.size())
      throw ValueError("compile: the model has " + std::to_string(graph.outputs.size()) + " outputs, got " +
                       std::to_string(losses.size()) + " losses");
    step = 0;
    compiled = true;
  }

  double train_step(const std::vector<Tensor>& x, const std::vector<Tensor>& y, const Tensor* weight,
                    bool update, Tensor* gradients, std::vector<double>* output_losses,
                    std::vector<Tensor>* outputs) override {
    int64_t batch = 0;
    double loss_value = forward_backward(update ? "train_step" : "loss_and_gradients", x, y, weight, update,
                                         output_losses, outputs, batch);
    if (reducer) {  // data parallelism: the exact mean over every replica's examples
      to_summable(batch, loss_value);
      try {
        loss_value = reduce();
      } catch (...) {
        restore_state();
        pending_ = false;
        throw;
      }
      if (!update) scale_gradients(T(1) / grads_[n_grads_ + 1]);
    }
    if (gradients) *gradients = flat_copy(grads_, n_grads_);
    if (!update) {
      pending_ = false;
      return loss_value;
    }
    // A NaN or infinite loss or gradient (an overflow, a diverging learning
    // rate, NaN in x) would write NaN into the weights and the optimizer's
    // moments for good: the update is skipped instead, the model is left as
    // it was, and the step reports NaN (TerminateOnNaN stops on it).
    if (!std::isfinite(loss_value) || !all_finite(grads_.data(), static_cast<int64_t>(n_grads_))) {
      restore_state();
      pending_ = false;
      return std::numeric_limits<double>::quiet_NaN();
    }
    pending_ = false;
    ++step;
    if (reducer) scale_gradients(T(1) / grads_[n_grads_ + 1]);
    apply_optimizer();
    return loss_value;
  }

  bool apply_gradients(const Tensor& gradients) override {
    if (!built || !compiled) throw ValueError("apply_gradients: the model is not built and compiled");
    if (gradients.dtype() != dtype_of<T>() || gradients.size() != static_cast<int64_t>(n_grads_))
      throw ShapeError("apply_gradients: expected " + std::to_string(n_grads_) + " " + dtype_name(dtype_of<T>()) +
                       " values, got " + std::to_string(gradients.size()) + " " + dtype_name(gradients.dtype()));
    std::memcpy(grads_.data(), gradients.data_as<T>(), sizeof(T) * n_grads_);
    pending_ = false;  // gradients from elsewhere: the batch norm statistics stay as they are
    return apply_gradients(1.0);
  }

  // The split of a data-parallel step: compute_gradients leaves the arena in
  // the form replicas add up (each gradient times the batch, then the slots
  // batch·loss and batch); a reduction sums the arenas; apply_gradients(scale)
  // with scale = 1 / (summed batch) makes that the mean over all examples.
  double compute_gradients(const std::vector<Tensor>& x, const std::vector<Tensor>& y, const Tensor* weight,
                           std::vector<double>* output_losses, std::vector<Tensor>* outputs) override {
    int64_t batch = 0;
    const double loss_value =
        forward_backward("compute_gradients", x, y, weight, true, output_losses, outputs, batch);
    to_summable(batch, loss_value);
    return loss_value;
  }

  Tensor gradient_arena() override {
    if (!built) throw ValueError("gradient_arena: the model is not built");
    return Tensor::view(grads_.data(), {static_cast<int64_t>(grads_.size())});
  }

  bool apply_gradients(double scale) override {
    if (!built || !compiled) throw ValueError("apply_gradients: the model is not built and compiled");
    if (!(scale >= 0.0 && std::isfinite(scale)))
      throw ValueError("apply_gradients: scale must be finite and >= 0, got " + std::to_string(scale));
    vjp_valid_ = false;
    const bool pending = pending_;
    pending_ = false;
    if (!all_finite(grads_.data(), static_cast<int64_t>(n_grads_))) {
      if (pending) restore_state();  // the batch norm statistics of the skipped step
      return false;
    }
    ++step;
    if (scale != 1.0) scale_gradients(static_cast<T>(scale));
    apply_optimizer();
    return true;
  }

  double evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y, const Tensor* weight,
                  std::vector<double>* output_losses, std::vector<Tensor>* outputs) const override {
    const int64_t batch = check_batch("evaluate", x, y, weight);
    InferenceLease c(*this);
    forward(inputs_of(x), batch, false, 0, c->caches, c->acts, c->masks, c->scratch, true);
    double total = 0.0;
    std::vector<double> per_output(graph.outputs.size(), std::numeric_limits<double>::quiet_NaN());
    for (size_t o = 0; o < graph.outputs.size(); ++o) {
      if (losses[o].kind == LossKind::none) continue;
      const int t = graph.outputs[o];
      T* dout = nullptr;
      if (losses[o].kind == LossKind::custom) {  // a custom loss always computes its gradient
        ensure_size(c->custom_grad, batch * shape_size(graph.tensor_shapes[t]));
        dout = c->custom_grad.data();
      }
      per_output[o] = compute_loss(o, c->acts[t], c->masks[t], y[o], weight, batch, dout, c->mask, c->clean_targets);
      total += losses[o].weight * per_output[o];
    }
    for (auto& l : layers_) total += l->penalty(false);
    if (outputs) *outputs = copy_outputs(c->acts, batch);
    if (output_losses) *output_losses = per_output;
    return total;
  }

  std::vector<Tensor> predict(const std::vector<Tensor>& x) const override {
    const int64_t batch = check_inputs("predict", x);
    InferenceLease c(*this);
    forward(inputs_of(x), batch, false, 0, c->caches, c->acts, c->masks, c->scratch, true);
    return copy_outputs(c->acts, batch);
  }

  // The mask each output carries (Layer::output_mask), as int64 0/1 of shape
  // (N, *output_shape[:-1]), or an empty Tensor.
  std::vector<Tensor> output_masks(const std::vector<Tensor>& x) const override {
    const int64_t batch = check_inputs("output_masks", x);
    InferenceLease c(*this);
    forward(inputs_of(x), batch, false, 0, c->caches, c->acts, c->masks, c->scratch, true);
    std::vector<Tensor> out;
    for (int t : graph.outputs) {
      const Shape& s = graph.tensor_shapes[t];
      if (!c->masks[t] || s.empty()) {
        out.emplace_back();
        continue;
      }
      Shape shape{batch};
      shape.insert(shape.end(), s.begin(), s.end() - 1);
      Tensor m(shape, DType::int64);
      int64_t* p = m.data_as<int64_t>();
      for (int64_t i = 0; i < m.size(); ++i) p[i] = c->masks[t][i];
      out.push_back(std::move(m));
    }
    return out;
  }

  std::vector<Tensor> vjp(const std::vector<Tensor>& x, bool training) override {
    const int64_t batch = check_inputs("vjp", x);
    if (batch < 1) throw ShapeError("vjp: the batch is empty");
    // The inputs are copied: backward reads them after the caller's arrays
    // may be gone.
    vjp_inputs_.clear();
    for (const Tensor& t : x) vjp_inputs_.push_back(t.clone());
    save_state();
    try {
      forward_training(vjp_inputs_, batch, training, step);
    } catch (...) {
      restore_state();
      throw;
    }
    restore_state();
    vjp_batch_ = batch;
    vjp_valid_ = true;
    ++vjp_generation;
    return copy_outputs(acts_, batch);
  }

  std::vector<Tensor> pullback(const std::vector<Tensor>& dy) override {
    if (!vjp_valid_)
      throw ValueError("pullback: the model ran another training call since its vjp (or had none); call vjp again");
    const int64_t batch = vjp_batch_;
    if (dy.size() != graph.outputs.size())
      throw ValueError("pullback: dy must hold one array per model output (" + std::to_string(graph.outputs.size()) +
                       "), got " + std::to_string(dy.size()));
    for (size_t o = 0; o < dy.size(); ++o) {
      if (dy[o].empty()) continue;
      Shape expected{batch};
      const Shape& s = graph.tensor_shapes[graph.outputs[o]];
      expected.insert(expected.end(), s.begin(), s.end());
      if (dy[o].dtype() != dtype_of<T>())
        throw TypeError("pullback: dy[" + std::to_string(o) + "] must be " + dtype_name(dtype_of<T>()) + ", got " +
                        dtype_name(dy[o].dtype()));
      if (dy[o].shape() != expected)
        throw ShapeError("pullback: dy[" + std::to_string(o) + "] must have shape " + shape_string(expected) +
                         " (the output's), got " + shape_string(dy[o].shape()));
    }
    const int64_t width = batch * graph.max_width;
    start_backward(width);
    for (size_t o = 0; o < dy.size(); ++o) {
      if (dy[o].empty()) continue;
      T* g = gradient_of_output(graph.outputs[o], width);
      const T* d = dy[o].data_as<T>();
      const int64_t n = dy[o].size();
      if (seeded_) add_backward<T>(g, d, n, true);
      else std::copy(d, d + n, g);
      seeded_ = false;
    }
    mark_wanted(false, true);
    backward(batch, width);
    std::vector<Tensor> dx;
    for (size_t i = 0; i < graph.num_inputs; ++i) {
      Shape s{batch};
      s.insert(s.end(), graph.tensor_shapes[i].begin(), graph.tensor_shapes[i].end());
      Tensor t(s, dtype_of<T>());
      if (grad_of_[i] >= 0)
        std::memcpy(t.data_as<T>(), grad_pool_[grad_of_[i]].data(), sizeof(T) * static_cast<size_t>(t.size()));
      dx.push_back(std::move(t));
    }
    return dx;
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
    if (state.step < 0) throw ValueError("set_optimizer_state: step must be >= 0, got " + std::to_string(state.step));
    if (state.slots.size() != slots.size())
      throw ValueError("set_optimizer_state: the " + optimizer.kind + " optimizer has " + std::to_string(slots.size()) +
                       " state arrays, got " + std::to_string(state.slots.size()));
    for (size_t i = 0; i < slots.size(); ++i)
      if (state.slots[i].dtype() != dtype_of<T>() || state.slots[i].size() != static_cast<int64_t>(slots[i]->size()))
        throw ShapeError("set_optimizer_state: state array " + std::to_string(i) + " must hold " +
                         std::to_string(slots[i]->size()) + " " + dtype_name(dtype_of<T>()) + " values, got " +
                         std::to_string(state.slots[i].size()) + " " + dtype_name(state.slots[i].dtype()));
    for (size_t i = 0; i < slots.size(); ++i)
      std::memcpy(slots[i]->data(), state.slots[i].data_as<T>(), sizeof(T) * slots[i]->size());
    step = state.step;
  }

  // The parameters and state of every layer, in layer order (shared layers
  // included): the same layout as the gradient arena.
  Tensor get_parameters() const override { return gather(false); }
  void set_parameters(const Tensor& flat) override { scatter("set_parameters", false, flat); }
  Tensor get_state() const override { return gather(true); }
  void set_state(const Tensor& flat) override { scatter("set_state", true, flat); }

  std::vector<Model::ParameterSlice> parameter_layout() const override {
    std::vector<Model::ParameterSlice> out;
    for (size_t i = 0; i < layers_.size(); ++i) {
      int64_t off = offsets_[i];
      const std::vector<std::string> names = layers_[i]->parameter_names();
      const std::vector<Shape> shapes = layers_[i]->parameter_shapes();
      for (size_t k = 0; k < shapes.size(); ++k) {
        out.push_back({i, names[k], off, shapes[k]});
        off += shape_size(shapes[k]);
      }
    }
    return out;
  }

 private:
  static Tensor flat_copy(const std::vector<T>& arena) { return flat_copy(arena, arena.size()); }
  static Tensor flat_copy(const std::vector<T>& arena, size_t n) {
    Tensor t({static_cast<int64_t>(n)}, dtype_of<T>());
    std::memcpy(t.data_as<T>(), arena.data(), sizeof(T) * n);
    return t;
  }

  static void flat_assign(const char* op, std::vector<T>& arena, const Tensor& flat) {
    if (flat.dtype() != dtype_of<T>() || flat.size() != static_cast<int64_t>(arena.size()))
      throw ShapeError(std::string(op) + ": expected " + std::to_string(arena.size()) + " " +
                       dtype_name(dtype_of<T>()) + " values, got " + std::to_string(flat.size()) + " " +
                       dtype_name(flat.dtype()));
    std::memcpy(arena.data(), flat.data_as<T>(), sizeof(T) * arena.size());
  }

  int64_t slice_count(size_t i, bool state) const {
    return state ? layers_[i]->state_count() : layers_[i]->parameter_count();
  }
  const T* slice_data(size_t i, bool state) const { return state ? layers_[i]->state() : layers_[i]->parameters(); }
  T* slice_data(size_t i, bool state) { return state ? layers_[i]->state() : layers_[i]->parameters(); }

  Tensor gather(bool state) const {
    int64_t n = 0;
    for (size_t i = 0; i < layers_.size(); ++i) n += slice_count(i, state);
    Tensor t({n}, dtype_of<T>());
    T* out = t.data_as<T>();
    for (size_t i = 0; i < layers_.size(); ++i) {
      const int64_t k = slice_count(i, state);
      if (k) std::memcpy(out, slice_data(i, state), sizeof(T) * static_cast<size_t>(k));
      out += k;
    }
    return t;
  }

  void scatter(const char* op, bool state, const Tensor& flat) {
    int64_t n = 0;
    for (size_t i = 0; i < layers_.size(); ++i) n += slice_count(i, state);
    if (flat.dtype() != dtype_of<T>() || flat.size() != n)
      throw ShapeError(std::string(op) + ": expected " + std::to_string(n) + " " + dtype_name(dtype_of<T>()) +
                       " values, got " + std::to_string(flat.size()) + " " + dtype_name(flat.dtype()));
    const T* in = flat.data_as<T>();
    for (size_t i = 0; i < layers_.size(); ++i) {
      const int64_t k = slice_count(i, state);
      if (k) std::memcpy(slice_data(i, state), in, sizeof(T) * static_cast<size_t>(k));
      in += k;
    }
    weights_changed();
  }

  // Forward, losses and backward of one batch into the gradient arena; the
  // batch norm statistics move and are kept in state_before_ (pending_) until
  // an update takes them or a skipped one puts them back. `for_update`:
  // gradients only where an update uses them, else every parameter's.
  double forward_backward(const char* op, const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                          const Tensor* weight, bool for_update, std::vector<double>* output_losses,
                          std::vector<Tensor>* outputs, int64_t& batch) {
    batch = check_batch(op, x, y, weight);
    // The step runs to the end or changes nothing. The forward pass moves
    // batch norm's statistics (in a gradient request too, as a training step
    // would); a skipped or failed step puts them back (the state arena is small).
    vjp_valid_ = false;
    save_state();
    const int64_t width = batch * graph.max_width;
    std::vector<double> per_output;
    double loss_value;
    // A layer refusing its input (a token id out of range) or a custom loss
    // throwing ends the step with nothing changed.
    try {
      forward_training(x, batch, true, step);
      start_backward(width);
      loss_value = seed_loss_gradients(y, weight, batch, width, per_output);
    } catch (...) {
      restore_state();
      throw;
    }
    if (outputs) *outputs = copy_outputs(acts_, batch);
    if (output_losses) *output_losses = per_output;

    // Only the gradients an update uses are computed: none for frozen layers
    // or for what lies below them alone. A plain gradient request (gradient
    // checking) gets every parameter's.
    mark_wanted(!for_update, false);
    backward(batch, width);
    for (auto& l : layers_) loss_value += l->penalty(true);
    pending_ = true;
    return loss_value;
  }

  // The arena as replicas add it up: every gradient times the batch, then
  // the reduction slots batch·loss and batch. Weighting by the batch makes
  // the sum over replicas, divided by the summed batch, the exact mean over
  // all their examples even when the batches differ in size.
  void to_summable(int64_t batch, double loss_value) {
    scale_gradients(static_cast<T>(batch));
    grads_[n_grads_] = static_cast<T>(loss_value * static_cast<double>(batch));
    grads_[n_grads_ + 1] = static_cast<T>(batch);
  }

  // Hands the summable arena to the reducer (Model::set_gradient_reducer),
  // which sums it over the replicas in place; returns the mean loss.
  double reduce() {
    Tensor arena = gradient_arena();
    reducer(arena);
    const double examples = static_cast<double>(grads_[n_grads_ + 1]);
    if (!(examples > 0.0))
      throw ValueError("gradient reducer: the reduced example count must be > 0, got " +
                       std::to_string(examples));
    return static_cast<double>(grads_[n_grads_]) / examples;
  }

  void scale_gradients(T factor) {
    T* g = grads_.data();
    detail::parallel_for(0, static_cast<int64_t>(n_grads_), detail::kGrain, [&](int64_t lo, int64_t hi, int) {
      for (int64_t i = lo; i < hi; ++i) g[i] *= factor;
    });
  }

  // Batch norm statistics before a step, restored when the step is skipped
  // or only computes gradients.
  void save_state() {
    state_before_.clear();
    for (size_t i = 0; i < layers_.size(); ++i)
      state_before_.insert(state_before_.end(), layers_[i]->state(), layers_[i]->state() + layers_[i]->state_count());
  }
  void restore_state() {
    const T* in = state_before_.data();
    for (size_t i = 0; i < layers_.size(); ++i) {
      const int64_t k = layers_[i]->state_count();
      std::copy(in, in + k, layers_[i]->state());
      in += k;
    }
    weights_changed();
  }

  std::vector<const T*> inputs_of(const std::vector<Tensor>& x) const {
    std::vector<const T*> out;
    for (const Tensor& t : x) out.push_back(t.data_as<T>());
    return out;
  }

  std::vector<Tensor> copy_outputs(const std::vector<const T*>& acts, int64_t batch) const {
    std::vector<Tensor> out;
    for (int t : graph.outputs) {
      Shape s{batch};
      s.insert(s.end(), graph.tensor_shapes[t].begin(), graph.tensor_shapes[t].end());
      Tensor copy(s, dtype_of<T>());
      std::memcpy(copy.data_as<T>(), acts[t], sizeof(T) * static_cast<size_t>(copy.size()));
      out.push_back(std::move(copy));
    }
    return out;
  }

  int64_t check_inputs(const char* op, const std::vector<Tensor>& x) const {
    if (!built) throw ValueError(std::string(op) + ": the model is not built");
    if (x.size() != graph.num_inputs)
      throw ValueError(std::string(op) + ": x must hold one array per model input (" +
                       std::to_string(graph.num_inputs) + "), got " + std::to_string(x.size()));
    const int64_t batch = x[0].ndim() > 0 ? x[0].dim(0) : -1;
    for (size_t i = 0; i < x.size(); ++i) {
      const std::string which = x.size() == 1 ? "x" : "x[" + std::to_string(i) + "] ('" + inputs[i].name + "')";
      if (x[i].dtype() != dtype_of<T>())
        throw TypeError(std::string(op) + ": " + which + " must be " + dtype_name(dtype_of<T>()) + ", got " +
                        dtype_name(x[i].dtype()));
      Shape expected{batch};
      expected.insert(expected.end(), graph.tensor_shapes[i].begin(), graph.tensor_shapes[i].end());
      if (x[i].shape() != expected) {
        std::string want = "(batch";
        for (int64_t d : graph.tensor_shapes[i]) want += ", " + std::to_string(d);
        throw ShapeError(std::string(op) + ": " + which + " must have shape " + want + ")" +
                         (i ? " with the batch of x[0] (" + std::to_string(batch) + ")" : "") + ", got " +
                         shape_string(x[i].shape()));
      }
    }
    return batch;
  }

  int64_t check_batch(const char* op, const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                      const Tensor* weight) const {
    if (!compiled) throw ValueError(std::string(op) + ": the model is not compiled");
    const int64_t batch = check_inputs(op, x);
    if (batch < 1) throw ShapeError(std::string(op) + ": the batch is empty");
    if (y.size() != graph.outputs.size())
      throw ValueError(std::string(op) + ": y must hold one array per model output (" +
                       std::to_string(graph.outputs.size()) + "), got " + std::to_string(y.size()));
    for (size_t o = 0; o < y.size(); ++o) check_targets(op, o, y[o], batch);
    if (weight) {
      if (weight->dtype() != dtype_of<T>())
        throw TypeError(std::string(op) + ": sample_weight must be " + dtype_name(dtype_of<T>()) + ", got " +
                        dtype_name(weight->dtype()));
      if (weight->shape() != Shape{batch})
        throw ShapeError(std::string(op) + ": sample_weight must have shape (" + std::to_string(batch) +
                         ",) (one weight per example), got " + shape_string(weight->shape()));
      for (const OutputLoss& l : losses)
        if (l.kind == LossKind::custom)
          throw ValueError(std::string(op) + ": sample_weight is not supported with a custom loss; weight the "
                           "examples inside the loss function");
      check_sample_weight(weight->data_as<T>(), batch, op);
    }
    return batch;
  }

  void check_targets(const char* op, size_t o, const Tensor& y, int64_t batch) const {
    const std::string which = graph.outputs.size() == 1 ? "y" : "y[" + std::to_string(o) + "]";
    const Shape& out = graph.tensor_shapes[graph.outputs[o]];
    switch (losses[o].kind) {
      case LossKind::none:
        return;  // an output without a loss ignores its targets
      case LossKind::custom:
        if (y.ndim() < 1 || y.dim(0) != batch)
          throw ShapeError(std::string(op) + ": " + which + " must have the batch (" + std::to_string(batch) +
                           ") as its first axis, got " + shape_string(y.shape()));
        return;
      case LossKind::softmax_cross_entropy:
        if (y.dtype() != DType::int64)
          throw TypeError(std::string(op) + ": softmax_cross_entropy needs integer class ids in " + which + ", got " +
                          dtype_name(y.dtype()));
        if (out.size() == 2) {  // a sequence (T, K): one class id per step, -1 = ignored
          if (y.shape() != Shape{batch, out[0]})
            throw ShapeError(std::string(op) + ": " + which + " must have shape (" + std::to_string(batch) + ", " +
                             std::to_string(out[0]) + ") (one class id per step, -1 = ignored) for the output " +
                             "of shape " + shape_string(Shape{batch, out[0], out[1]}) + ", got " +
                             shape_string(y.shape()));
          check_labels(y.data_as<int64_t>(), batch * out[0], out[1], true);
          return;
        }
        if (y.shape() != Shape{batch})
          throw ShapeError(std::string(op) + ": " + which + " must have shape (" + std::to_string(batch) +
                           ",) (one class id per example), got " + shape_string(y.shape()));
        check_labels(y.data_as<int64_t>(), batch, shape_size(out));
        return;
      default: {
        Shape expected{batch};
        expected.insert(expected.end(), out.begin(), out.end());
        if (y.dtype() != dtype_of<T>())
          throw TypeError(std::string(op) + ": " + which + " must be " + dtype_name(dtype_of<T>()) + ", got " +
                          dtype_name(y.dtype()));
        if (y.shape() != expected)
          throw ShapeError(std::string(op) + ": " + which + " must have shape " + shape_string(expected) +
                           " to match the model's output, got " + shape_string(y.shape()));
      }
    }
  }

  // Runs every node in execution order; acts[t] is tensor t (the model's
  // inputs, then each node's outputs) and masks[t] its mask (N, T) or nullptr
  // (Layer::output_mask: a node's layer gets the masks of its inputs and
  // tells that of each output; model inputs carry none). A distinct dropout
  // key per (step, call): masks repeat within a step (gradient checking) and
  // never across steps or calls.
  //
  // inference (predict, evaluate; never training): with fusion on, the nodes
  // of each fused group (plan_fusion) run as one convolution with its
  // epilogue, at the group's last node; and layers may keep weights derived
  // from theirs across calls (LayerCache::inference).
  void forward(const std::vector<const T*>& x, int64_t batch, bool training, int64_t at_step,
               std::vector<LayerCache<T>>& caches, std::vector<const T*>& acts,
               std::vector<const uint8_t*>& masks, std::vector<const T*>& scratch, bool inference = false) const {
    acts.resize(graph.tensor_shapes.size());
    masks.assign(graph.tensor_shapes.size(), nullptr);
    for (size_t i = 0; i < graph.num_inputs; ++i) acts[i] = x[i];
    const uint64_t calls = graph.nodes.size();
    const bool fused = inference && !training && g_fusion.load();
    for (size_t p = 0; p < graph.nodes.size(); ++p) {
      if (fused && fused_at_[p] != kUnfused) {
        if (fused_at_[p] >= 0) run_fused(fused_[fused_at_[p]], batch, caches, acts, masks);
        continue;
      }
      const Graph::NodeInfo& node = graph.nodes[p];
      Layer<T>& layer = *layers_[node.layer];
      caches[p].training = training;
      caches[p].inference = inference && !training;
      caches[p].weights_version = layer.weights_version;
      caches[p].input_mask = masks[node.in[0]];
      caches[p].input_masks.clear();
      for (int t : node.in) caches[p].input_masks.push_back(masks[t]);
      const int source = relu_source_[p];
      if (source >= 0 && caches[source].fused_relu) {  // this ReLU ran inside the layer before it
        acts[node.out[0]] = acts[node.in[0]];
        masks[node.out[0]] = layer.output_mask(0, batch, caches[p]);
        continue;
      }
      caches[p].fused_relu = training && relu_after_[p] >= 0 && g_fusion.load() && layer.fuses_relu(training);
      const uint64_t key = random_bits(dropout_key, static_cast<uint64_t>(at_step) * calls + node.declared);
      if (detail::MergeLayer<T>* merge = layer.as_merge()) {
        scratch.clear();
        for (int t : node.in) scratch.push_back(acts[t]);
        acts[node.out[0]] = merge->forward_inputs(scratch, batch, caches[p]);
      } else if (detail::CallLayer<T>* call = layer.as_call()) {
        scratch.clear();
        for (int t : node.in) scratch.push_back(acts[t]);
        std::vector<const T*> ys(node.out.size(), nullptr);
        call->forward_call(scratch, ys, batch, training, key, caches[p]);
        for (size_t k = 0; k < ys.size(); ++k) acts[node.out[k]] = ys[k];
      } else {
        acts[node.out[0]] = layer.forward(acts[node.in[0]], batch, training, key, caches[p]);
      }
      for (size_t k = 0; k < node.out.size(); ++k) masks[node.out[k]] = layer.output_mask(k, batch, caches[p]);
    }
  }

  void forward_training(const std::vector<Tensor>& x, int64_t batch, bool training, int64_t at_step) {
    weights_changed();  // a training forward moves the batch norm statistics
    forward(inputs_of(x), batch, training, at_step, caches_, acts_, masks_, scratch_);
  }

  // ---------------------------------------------------------------- inference fusion
  //
  // One pattern over the graph, found when it is built: a convolution
  // (Layer::fusion_weights) followed by, each optional, in this order,
  //   BatchNormalization (folded into its weights) → Add(·, residual) → Activation("relu")
  // (or a convolution with its own ReLU, alone). Each link is taken only when
  // the tensor it consumes has no other reader and is not a model output, so
  // the tensors inside a group are never needed by anyone else. The group
  // runs at its last node: by then the residual exists (the Add came after its
  // producer), and the convolution's input did before.

  static constexpr int kUnfused = -1, kInsideGroup = -2;

  struct FusedConv {
    int head = -1, last = -1;  // node positions: the convolution, the node whose output the group writes
    int bn = -1;               // node position of the folded batch norm, or -1
    int residual = -1;         // the tensor the Add brings in, or -1
    bool relu = false;
    std::vector<int> members;  // node positions, in order
    // With bn: the folded kernel, then the folded bias, kept for the
    // versions of the two layers' weights (Layer::weights_version).
    DerivedWeights<T> folded;
  };

  // The training plan has one pattern: a layer that can apply a ReLU in its
  // own output pass (Layer::fuses_relu: batch norm with batch statistics, Add)
  // followed by Activation("relu") as the only reader of its output (not a
  // model output). The ReLU node then passes the layer's output on
  // (relu_after_, relu_source_), and, after a single-input layer, its gradient
  // straight down (batch norm applies the ReLU's gradient in its own passes);
  // after a merge the ReLU's backward runs as its own node, on the fused
  // output. Results are bit for bit those of the layers as written.
  void plan_fusion() {
    const size_t tensors = graph.tensor_shapes.size();
    std::vector<int> uses(tensors, 0), reader(tensors, -1);
    for (size_t p = 0; p < graph.nodes.size(); ++p)
      for (int t : graph.nodes[p].in) ++uses[t], reader[t] = static_cast<int>(p);
    for (int t : graph.outputs) ++uses[t];
    // The one node reading t, if it is t's only use and a single-input, single-output call.
    auto only_reader = [&](int t) {
      if (uses[t] != 1 || reader[t] < 0) return -1;
      const Graph::NodeInfo& q = graph.nodes[reader[t]];
      return q.out.size() == 1 ? reader[t] : -1;
    };
    auto layer_at = [&](int p) -> Layer<T>& { return *layers_[graph.nodes[p].layer]; };
    auto single = [&](int p) {
      Layer<T>& l = layer_at(p);
      return !l.as_merge() && !l.as_call() && graph.nodes[p].in.size() == 1;
    };
    relu_after_.assign(graph.nodes.size(), -1);
    relu_source_.assign(graph.nodes.size(), -1);
    for (int p = 0; p < static_cast<int>(graph.nodes.size()); ++p) {
      if (!(single(p) || layer_at(p).as_merge()) || graph.nodes[p].out.size() != 1) continue;
      const int q = only_reader(graph.nodes[p].out[0]);
      if (q >= 0 && single(q) && layer_at(q).is_relu()) relu_after_[p] = q, relu_source_[q] = p;
    }
    fused_.clear();
    fused_at_.assign(graph.nodes.size(), kUnfused);
    for (int p = 0; p < static_cast<int>(graph.nodes.size()); ++p) {
      const FusionWeights<T> w = layer_at(p).fusion_weights();
      if (w.channels == 0 || !single(p)) continue;
      FusedConv g;
      g.head = g.last = p;
      g.relu = w.relu;
      std::vector<int> members{p};
      int t = graph.nodes[p].out[0];
      if (!w.relu) {  // after a ReLU nothing linear folds or adds in
        int q = only_reader(t);
        if (q >= 0 && single(q) && layer_at(q).affine_channels() == w.channels) {
          g.bn = g.last = q;
          members.push_back(q);
          t = graph.nodes[q].out[0];
          q = only_reader(t);
        }
        // An Add of two convolutions' outputs joins the group of the first only
        // (not one that broadcasts: the epilogue adds a residual of its shape).
        if (q >= 0 && layer_at(q).spec().kind == "add" && graph.nodes[q].in.size() == 2 &&
            graph.nodes[q].in[0] != graph.nodes[q].in[1] && fused_at_[q] == kUnfused &&
            graph.tensor_shapes[graph.nodes[q].in[0]] == graph.tensor_shapes[graph.nodes[q].in[1]]) {
          g.residual = graph.nodes[q].in[graph.nodes[q].in[0] == t ? 1 : 0];
          g.last = q;
          members.push_back(q);
          t = graph.nodes[q].out[0];
          q = only_reader(t);
        }
        if (q >= 0 && single(q) && layer_at(q).is_relu()) {
          g.relu = true;
          g.last = q;
          members.push_back(q);
        }
      }
      if (g.last == p && !g.relu) continue;  // nothing to fuse
      for (int member : members) fused_at_[member] = kInsideGroup;
      g.members = std::move(members);
      fused_at_[g.last] = static_cast<int>(fused_.size());
      fused_.push_back(std::move(g));
    }
  }

  // Runs group g, folding first when its layers' weights moved since the
  // last fold (DerivedWeights: concurrent predict calls share the fold).
  void run_fused(FusedConv& g, int64_t batch, std::vector<LayerCache<T>>& caches, std::vector<const T*>& acts,
                 std::vector<const uint8_t*>& masks) const {
    const Graph::NodeInfo& head = graph.nodes[g.head];
    const Layer<T>& conv = *layers_[head.layer];
    const FusionWeights<T> w = conv.fusion_weights();
    ConvEpilogue<T> e;
    const T* kernel = w.kernel;
    e.bias = w.bias;
    typename DerivedWeights<T>::Key key{conv.weights_version, ~uint64_t(0), reinterpret_cast<uintptr_t>(kernel), 0};
    typename DerivedWeights<T>::Data folded;  // held for the call
    if (g.bn >= 0) {
      const Layer<T>& bn = *layers_[graph.nodes[g.bn].layer];
      folded = g.folded.get({conv.weights_version, bn.weights_version, 0, 0}, [&](std::vector<T>& f) {
        f.resize(static_cast<size_t>(w.channels * (w.per_channel + 1)));
        bn.fold_into(f.data(), f.data() + w.channels * w.per_channel, w);
      });
      kernel = folded->data();
      e.bias = kernel + w.channels * w.per_channel;
      key = {conv.weights_version, bn.weights_version, reinterpret_cast<uintptr_t>(kernel), 0};
    }
    e.residual = g.residual >= 0 ? acts[g.residual] : nullptr;
    e.relu = g.relu;
    LayerCache<T>& c = caches[g.head];
    c.training = false;
    c.inference = true;
    c.input_mask = masks[head.in[0]];
    const int out = graph.nodes[g.last].out[0];
    acts[out] = conv.forward_fused(acts[head.in[0]], batch, kernel, key, e, c);
    masks[out] = nullptr;  // a convolution drops masks, and its group adds none
  }

  // Marks every layer's weights as written (an inference plan refolds).
  void weights_changed() {
    for (auto& l : layers_) ++l->weights_version;
  }


  void start_backward(int64_t width) {
    for (size_t i = 0; i < layers_.size(); ++i) layers_[i]->set_gradients(grads_.data() + offsets_[i]);
    std::fill(grads_.begin(), grads_.end(), T(0));
    for (auto& buffer : grad_pool_) ensure_size(buffer, width);
    free_grads_.clear();
    for (size_t b = 0; b < grad_pool_.size(); ++b) free_grads_.push_back(static_cast<int>(b));
    grad_refs_.assign(grad_pool_.size(), 0);
    grad_of_.assign(graph.tensor_shapes.size(), -1);
    seeded_ = false;
  }

  // The buffer holding dL/d(tensor t) at a model output; seeded_ tells
  // whether it already held a gradient (t is two outputs at once), which
  // the caller then adds to.
  T* gradient_of_output(int t, int64_t width) {
    seeded_ = grad_of_[t] >= 0;
    if (!seeded_) grad_of_[t] = acquire_grad(width);
    return grad_pool_[grad_of_[t]].data();
  }

  // Each output's loss and its gradient, weighted, into the gradient buffers
  // of the output tensors. Returns Σ weight·loss.
  double seed_loss_gradients(const std::vector<Tensor>& y, const Tensor* weight, int64_t batch, int64_t width,
                             std::vector<double>& per_output) {
    per_output.assign(graph.outputs.size(), std::numeric_limits<double>::quiet_NaN());
    double total = 0.0;
    for (size_t o = 0; o < graph.outputs.size(); ++o) {
      const OutputLoss& l = losses[o];
      if (l.kind == LossKind::none) continue;
      const int t = graph.outputs[o];
      const int64_t n = batch * shape_size(graph.tensor_shapes[t]);
      T* g = gradient_of_output(t, width);
      const bool add = seeded_;
      if (add || l.weight != 1.0) {
        ensure_size(loss_scratch_, n);
        per_output[o] = compute_loss(o, acts_[t], masks_[t], y[o], weight, batch, loss_scratch_.data(), mask_,
                                     clean_targets_);
        const T w = static_cast<T>(l.weight);
        for (int64_t i = 0; i < n; ++i) g[i] = (add ? g[i] : T(0)) + w * loss_scratch_[i];
      } else {
        per_output[o] = compute_loss(o, acts_[t], masks_[t], y[o], weight, batch, g, mask_, clean_targets_);
      }
      seeded_ = false;
      total += l.weight * per_output[o];
    }
    return total;
  }

  // wanted_[t]: tensor t needs a gradient, because a layer below it has
  // parameters to train (all of them when all_parameters) or, for input
  // gradients, because a model input lies below it.
  void mark_wanted(bool all_parameters, bool inputs) {
    wanted_.assign(graph.tensor_shapes.size(), 0);
    for (size_t i = 0; i < graph.num_inputs; ++i) wanted_[i] = inputs;
    for (const Graph::NodeInfo& node : graph.nodes) {
      const Layer<T>& layer = *layers_[node.layer];
      bool want = layer.parameter_count() > 0 && (all_parameters || layer.trains());
      for (int t : node.in) want = want || wanted_[t];
      for (int t : node.out) wanted_[t] = want;
    }
  }

  // Gradient buffers come from a pool and go back once consumed, so a chain
  // of layers ping-pongs between two and a graph holds only those still
  // waiting for a consumer. grad_of_[t] is the buffer holding dL/d(tensor t).
  // Where a tensor feeds several calls, their gradients are summed.
  //
  // Buffers are shared, counted (grad_refs_): an Add hands its gradient
  // buffer to every input rather than a copy to each. A shared buffer is
  // read-only: a sum into it goes into a fresh buffer instead (add_into), and
  // a layer whose backward may write over dy (Layer::keeps_dy) gets a copy.
  void backward(int64_t batch, int64_t width) {
    for (int p = static_cast<int>(graph.nodes.size()) - 1; p >= 0; --p) {
      const Graph::NodeInfo& node = graph.nodes[p];
      Layer<T>& layer = *layers_[node.layer];
      bool any = false;
      for (int t : node.out) any = any || grad_of_[t] >= 0;
      if (!any) continue;  // nothing below wants a gradient
      const int source = relu_source_[p];
      if (source >= 0 && caches_[source].fused_relu && !layers_[graph.nodes[source].layer]->as_merge()) {
        // the layer before takes this ReLU's gradient
        grad_of_[graph.nodes[source].out[0]] = grad_of_[node.out[0]];
        grad_of_[node.out[0]] = -1;
        continue;
      }
      if (detail::MergeLayer<T>* merge = layer.as_merge()) backward_merge(*merge, node, batch, width);
      else if (detail::CallLayer<T>* call = layer.as_call()) backward_call(*call, node, p, batch, width);
      else backward_single(layer, node, p, batch, width);
      for (int t : node.out) {
        if (grad_of_[t] >= 0) release_grad(grad_of_[t]);
        grad_of_[t] = -1;
      }
    }
  }

  // dL/d(tensor j) += the gradient in buffer b (a fresh one, which this call
  // consumes): in place when j's buffer is j's alone, else into b, which
  // becomes j's (a + b = b + a: the same bits either way).
  void add_into(int j, int b, int64_t batch) {
    const int64_t n = batch * shape_size(graph.tensor_shapes[j]);
    const int g = grad_of_[j];
    if (grad_refs_[g] == 1) {
      add_backward<T>(grad_pool_[g].data(), grad_pool_[b].data(), n, true);
      release_grad(b);
      return;
    }
    add_backward<T>(grad_pool_[b].data(), grad_pool_[g].data(), n, true);
    release_grad(g);
    grad_of_[j] = b;
  }

  // dL/d(tensor j) += d: in place when j's buffer is j's alone, else into a copy.
  void accumulate(int j, const T* d, int64_t batch, int64_t width) {
    int g = grad_of_[j];
    if (grad_refs_[g] > 1) {
      const int b = copy_of(g, j, batch, width);
      release_grad(g);
      grad_of_[j] = g = b;
    }
    add_backward<T>(grad_pool_[g].data(), d, batch * shape_size(graph.tensor_shapes[j]), true);
  }

  // The buffer of dL/d(output t) for a layer's backward, copied first when
  // shared and the layer may write over it.
  T* private_gradient(int t, const Layer<T>& layer, const LayerCache<T>& cache, int64_t batch, int64_t width) {
    const int g = grad_of_[t];
    if (grad_refs_[g] > 1 && !layer.keeps_dy(cache)) {
      const int b = acquire_grad(width);
      add_backward<T>(grad_pool_[b].data(), grad_pool_[g].data(), batch * shape_size(graph.tensor_shapes[t]), false);
      release_grad(g);
      grad_of_[t] = b;
    }
    return grad_pool_[grad_of_[t]].data();
  }

  void backward_single(Layer<T>& layer, const Graph::NodeInfo& node, int p, int64_t batch, int64_t width) {
    const int t = node.out[0], j = node.in[0];
    T* dy = private_gradient(t, layer, caches_[p], batch, width);
    if (!wanted_[j]) {
      layer.backward(dy, nullptr, acts_[j], acts_[t], batch, false, caches_[p]);
      return;
    }
    const int b = acquire_grad(width);
    T* dx = layer.backward(dy, grad_pool_[b].data(), acts_[j], acts_[t], batch, true, caches_[p]);
    if (dx == dy) {  // passed through unchanged (Flatten): dy's buffer is the gradient
      release_grad(b);
      if (grad_of_[j] >= 0) {
        accumulate(j, dy, batch, width);
      } else {
        grad_of_[j] = grad_of_[t];
        grad_of_[t] = -1;
      }
    } else if (grad_of_[j] >= 0) {
      add_into(j, b, batch);
    } else {
      grad_of_[j] = b;
    }
  }

  void backward_merge(detail::MergeLayer<T>& merge, const Graph::NodeInfo& node, int64_t batch, int64_t width) {
    const int t = node.out[0];
    const std::vector<int>& in = node.in;
    if (merge.passes_gradient_through()) {  // every input's gradient is dy (Add): its buffer, shared
      for (int j : in) {
        if (!wanted_[j]) continue;
        if (grad_of_[j] < 0) grad_of_[j] = share_grad(grad_of_[t]);
        else accumulate(j, grad_pool_[grad_of_[t]].data(), batch, width);
      }
      return;
    }
    T* dy = grad_pool_[grad_of_[t]].data();
    merge_dx_.clear();
    merge_accumulate_.clear();
    for (size_t k = 0; k < in.size(); ++k) {
      const int j = in[k];
      const bool want = wanted_[j];
      if (want && grad_of_[j] >= 0 && grad_refs_[grad_of_[j]] > 1) {  // summed into: a copy first
        const int g = grad_of_[j];
        grad_of_[j] = copy_of(g, j, batch, width);
        release_grad(g);
      }
      merge_accumulate_.push_back(want && grad_of_[j] >= 0);
      if (want && grad_of_[j] < 0) grad_of_[j] = acquire_grad(width);
      merge_dx_.push_back(want ? grad_pool_[grad_of_[j]].data() : nullptr);
    }
    merge.backward_inputs(dy, merge_dx_, merge_accumulate_, batch);
  }

  // A fresh buffer holding buffer g's gradient of tensor j.
  int copy_of(int g, int j, int64_t batch, int64_t width) {
    const int b = acquire_grad(width);
    add_backward<T>(grad_pool_[b].data(), grad_pool_[g].data(), batch * shape_size(graph.tensor_shapes[j]), false);
    return b;
  }

  // The general call: outputs without a gradient read as zeros; each input's
  // gradient is written into a fresh buffer, then summed into what its other
  // consumers left (or kept, when it is the first).
  void backward_call(detail::CallLayer<T>& call, const Graph::NodeInfo& node, int p, int64_t batch, int64_t width) {
    std::vector<T*> dys, dxs;
    std::vector<int> fresh(node.in.size(), -1);
    for (int t : node.out) dys.push_back(grad_of_[t] >= 0 ? private_gradient(t, call, caches_[p], batch, width) : nullptr);
    for (size_t k = 0; k < node.in.size(); ++k) {
      if (!wanted_[node.in[k]]) {
        dxs.push_back(nullptr);
        continue;
      }
      fresh[k] = acquire_grad(width);
      dxs.push_back(grad_pool_[fresh[k]].data());
    }
    std::vector<const T*> xs, ys;
    for (int t : node.in) xs.push_back(acts_[t]);
    for (int t : node.out) ys.push_back(acts_[t]);
    call.backward_call(dys, dxs, xs, ys, batch, caches_[p]);
    for (size_t k = 0; k < node.in.size(); ++k) {
      if (fresh[k] < 0) continue;
      const int j = node.in[k];
      if (grad_of_[j] >= 0) add_into(j, fresh[k], batch);
      else grad_of_[j] = fresh[k];
    }
  }

  int acquire_grad(int64_t width) {
    if (free_grads_.empty()) {
      grad_pool_.emplace_back(static_cast<size_t>(width));
      grad_refs_.push_back(1);
      return static_cast<int>(grad_pool_.size()) - 1;
    }
    const int b = free_grads_.back();
    free_grads_.pop_back();
    grad_refs_[b] = 1;
    return b;
  }
  int share_grad(int b) {
    ++grad_refs_[b];
    return b;
  }
  void release_grad(int b) {
    if (--grad_refs_[b] == 0) free_grads_.push_back(b);
  }

  // The unweighted loss of output o and, with dout, its gradient. step_mask is
  // the output's mask (N, T) or nullptr: softmax cross-entropy over a
  // sequence (T, K) leaves masked steps out. mask and clean_targets are
  // scratch for binary cross-entropy with missing labels.
  double compute_loss(size_t o, const T* out, const uint8_t* step_mask, const Tensor& y, const Tensor* weight,
                      int64_t batch, T* dout, std::vector<uint8_t>& mask, std::vector<T>& clean_targets) const {
    const T* w = weight ? weight->data_as<T>() : nullptr;
    const Shape& out_shape = graph.tensor_shapes[graph.outputs[o]];
    const int64_t out_size = shape_size(out_shape);
    // A sequence output (N, T, ...) with a mask (N, T): binary cross-entropy
    // and mse run over N·T examples (the steps), each weighted as Keras's
    // masked reduction weights it (losses/loss.py, apply_mask): its
    // example's weight times m·(N·T)/Σm, 0 for every step when Σm = 0. The
    // mean thus runs over the valid steps only, and a mask of ones changes
    // nothing. Binary cross-entropy, summed over an example's label columns
    // (the steps among them), takes T times that weight.
    const bool stepped = step_mask && out_shape.size() >= 2 && losses[o].kind != LossKind::softmax_cross_entropy &&
                         losses[o].kind != LossKind::custom;
    const int64_t step_count = stepped ? out_shape[0] : 1;
    std::vector<T> step_weights;
    if (stepped) {
      const int64_t n = batch * step_count;
      int64_t valid = 0;
      for (int64_t i = 0; i < n; ++i) valid += step_mask[i] ? 1 : 0;
      const double scale = valid == 0 ? 0.0
                           : static_cast<double>(n) / static_cast<double>(valid) *
                                 (losses[o].kind == LossKind::binary_cross_entropy ? static_cast<double>(step_count) : 1.0);
      step_weights.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        step_weights[i] = step_mask[i] ? static_cast<T>(scale * (w ? static_cast<double>(w[i / step_count]) : 1.0)) : T(0);
      w = step_weights.data();
    }
    const int64_t examples = batch * step_count, example_size = out_size / step_count;
    switch (losses[o].kind) {
      case LossKind::softmax_cross_entropy: {
        const bool sequence = out_shape.size() == 2;
        const int64_t steps = sequence ? out_shape[0] : 1;
        return static_cast<double>(softmax_cross_entropy<T>(dout, out, y.data_as<int64_t>(), batch,
                                                            out_size / steps, w, steps,
                                                            sequence ? step_mask : nullptr));
      }
      case LossKind::binary_cross_entropy: {
        // NaN targets are missing labels (multi-task learning): masked out.
        const T* t = y.data_as<T>();
        const int64_t n = batch * out_size;
        bool any_missing = false;
        for (int64_t i = 0; i < n && !any_missing; ++i) any_missing = std::isnan(t[i]);
        if (!any_missing)
          return static_cast<double>(sigmoid_cross_entropy<T>(dout, out, t, nullptr, examples, example_size, w));
        ensure_size(mask, n);
        // Masked targets must not reach the kernel as NaN (0·NaN is NaN).
        ensure_size(clean_targets, n);
        T* clean = clean_targets.data();
        for (int64_t i = 0; i < n; ++i) {
          mask[i] = std::isnan(t[i]) ? 0 : 1;
          clean[i] = std::isnan(t[i]) ? T(0) : t[i];
        }
        return static_cast<double>(sigmoid_cross_entropy<T>(dout, out, clean, mask.data(), examples, example_size, w));
      }
      case LossKind::mse:
        return static_cast<double>(mse<T>(dout, out, y.data_as<T>(), batch * out_size, w, examples));
      case LossKind::custom:
        return custom_loss(o, out, y, batch, dout);
      case LossKind::none:
        break;
    }
    return 0.0;
  }

  // A loss written by the user: it sees the output as a tensor and leaves its
  // gradient in dy_pred (the engine's buffer, or a tensor it returns, whose
  // shape is checked here).
  double custom_loss(size_t o, const T* out, const Tensor& y, int64_t batch, T* dout) const {
    Shape s{batch};
    const Shape& per = graph.tensor_shapes[graph.outputs[o]];
    s.insert(s.end(), per.begin(), per.end());
    const Tensor y_pred = Tensor::view(const_cast<T*>(out), s);
    std::fill(dout, dout + shape_size(s), T(0));
    Tensor grad = Tensor::view(dout, s);
    const double value = losses[o].custom(y, y_pred, grad);
    const std::string who = "custom loss of output " + std::to_string(o) + " ('" + graph.output_refs[o].layer + "')";
    if (grad.shape() != s)
      throw ValueError(who + ": the gradient must have the output's shape " + shape_string(s) + ", got " +
                       shape_string(grad.shape()));
    if (grad.dtype() != dtype_of<T>())
      throw TypeError(who + ": the gradient must be " + std::string(dtype_name(dtype_of<T>())) + ", got " +
                      dtype_name(grad.dtype()));
    if (grad.data_as<T>() != dout) std::memcpy(dout, grad.data_as<T>(), sizeof(T) * static_cast<size_t>(grad.size()));
    return value;
  }

  // One fused optimizer pass per run of trainable layers whose parameters
  // and gradients are both contiguous (every layer of a model without shared
  // layers): frozen layers keep their weights bit for bit. Clipping by norm
  // (optim.hpp) measures the gradients first: with global_clipnorm all the
  // runs together, with clipnorm each parameter tensor, which then gets a pass
  // of its own with its own scale.
  void apply_optimizer() {
    weights_changed();
    struct Run {
      T* p;
      int64_t offset, n;
      size_t first, last;  // layers [first, last)
    };
    std::vector<Run> runs;
    size_t i = 0;
    while (i < layers_.size()) {
      if (!layers_[i]->trains() || layers_[i]->parameter_count() == 0) {
        ++i;
        continue;
      }
      T* p = layers_[i]->parameters();
      int64_t n = layers_[i]->parameter_count();
      size_t j = i + 1;
      for (; j < layers_.size(); ++j) {
        const int64_t k = layers_[j]->parameter_count();
        if (k == 0) continue;
        if (!layers_[j]->trains() || layers_[j]->parameters() != p + n || offsets_[j] != offsets_[i] + n) break;
        n += k;
      }
      runs.push_back({p, offsets_[i], n, i, j});
      i = j;
    }
    const ClipSettings& c = optimizer.clip;
    GradientTransform clip;
    clip.value = c.clipvalue;
    if (c.global_clipnorm > 0.0) {
      double squares = 0.0;
      for (const Run& r : runs) squares += sum_of_squares<T>(grads_.data() + r.offset, r.n);
      clip.scale = clip_scale(std::sqrt(squares), c.global_clipnorm);
    }
    for (const Run& r : runs) {
      if (c.clipnorm <= 0.0) {
        update_range(r.p, r.offset, r.n, clip);
        continue;
      }
      int64_t at = 0;  // each tensor of the run's layers, in order
      for (size_t l = r.first; l < r.last; ++l)
        for (const Shape& shape : layers_[l]->parameter_shapes()) {
          const int64_t n = shape_size(shape);
          clip.scale = clip_scale(std::sqrt(sum_of_squares<T>(grads_.data() + r.offset + at, n)), c.clipnorm);
          update_range(r.p + at, r.offset + at, n, clip);
          at += n;
        }
    }
  }

  void update_range(T* p, int64_t off, int64_t n, const GradientTransform& clip) {
    const T* g = grads_.data() + off;
    T* s1 = state1_.empty() ? nullptr : state1_.data() + off;
    T* s2 = state2_.empty() ? nullptr : state2_.data() + off;
    if (optimizer.kind == "sgd") {
      sgd_step<T>(p, s1, g, optimizer.sgd, n, clip);
    } else if (optimizer.kind == "rmsprop") {
      rmsprop_step<T>(p, s1, g, optimizer.rmsprop, n, clip);
    } else {
      AdamHyper h = optimizer.adam;
      h.decoupled = optimizer.kind == "adamw";
      adam_step<T>(p, s1, s2, g, step, h, n, clip);
    }
  }

  std::vector<std::pair<std::string, std::shared_ptr<Layer<T>>>> adopted_;
  std::vector<std::shared_ptr<Layer<T>>> layers_;
  std::vector<int64_t> offsets_;  // per layer: its slice of the gradient arena
  // The gradient arena: n_grads_ parameter gradients (offsets_), then
  // Model::kReductionSlots values a data-parallel reduction carries along.
  std::vector<T> grads_;
  size_t n_grads_ = 0;
  bool pending_ = false;  // gradients computed, batch norm state not yet committed or restored
  std::vector<T> state_before_;     // batch norm state as it was before the current step
  std::vector<T> state1_, state2_;  // the optimizer's slots
  // The training context: reused across steps, grown only when the batch grows.
  std::vector<LayerCache<T>> caches_;
  std::vector<const T*> acts_, scratch_;
  std::vector<const uint8_t*> masks_;
  std::vector<std::vector<T>> grad_pool_;
  std::vector<int> free_grads_, grad_of_, grad_refs_;  // grad_refs_: tensors holding each buffer
  std::vector<uint8_t> wanted_, merge_accumulate_;
  std::vector<T*> merge_dx_;
  std::vector<uint8_t> mask_;
  std::vector<T> clean_targets_, loss_scratch_;
  bool seeded_ = false;
  // vjp: its own copy of the inputs and whether the training context still
  // holds its forward pass.
  std::vector<Tensor> vjp_inputs_;
  int64_t vjp_batch_ = 0;
  bool vjp_valid_ = false;

  // An inference context: every node's outputs and scratch for one predict
  // or evaluate call. Contexts are kept after the call and handed to the next
  // one, so steady-state inference allocates nothing (a fresh context for a
  // batch-1 ResNet is megabytes of im2col columns and outputs, and
  // page-faulting them in tripled the call's time); concurrent callers each
  // lease their own, so inference stays const and re-entrant.
  struct InferenceContext {
    std::vector<LayerCache<T>> caches;
    std::vector<const T*> acts, scratch;
    std::vector<const uint8_t*> masks;
    std::vector<uint8_t> mask;
    std::vector<T> clean_targets, custom_grad;
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
      context_->caches.resize(engine_.graph.nodes.size());
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

  // The inference plan (plan_fusion): the fused groups, and per node its
  // part: kUnfused, kInsideGroup, or the group it runs (at the group's last node).
  mutable std::vector<FusedConv> fused_;
  std::vector<int> fused_at_;
  // The training plan: per node, the ReLU node after it it may take in
  // (relu_after_), and per ReLU node the node that may take it (relu_source_); -1: none.
  std::vector<int> relu_after_, relu_source_;
};

}  // namespace

std::vector<Shape> layer_output_shapes(const LayerSpec& spec, const std::vector<Shape>& input_shapes) {
  for (const Shape& s : input_shapes)
    for (int64_t d : s)
      if (d < 1)
        throw ShapeError(detail::layer_label(spec) + ": input shape " + shape_string(s) + " must have positive dimensions");
  std::unique_ptr<Layer<float>> layer = detail::make_layer<float>(spec);
  return build_layer(*layer, input_shapes);
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

namespace {
void require_unbuilt(const EngineBase& e, const char* op) {
  if (e.built) throw ValueError(std::string(op) + ": the model is already built");
}
void check_new_name(const EngineBase& e, const char* op, const std::string& name) {
  if (name.empty()) throw ValueError(std::string(op) + ": the name must not be empty");
  if (e.find_layer(name) >= 0 || e.find_input(name) >= 0)
    throw ValueError(std::string(op) + ": the name '" + name + "' is already taken in this model");
}
}  // namespace

void Model::add_input(const std::string& name, const Shape& shape) {
  require_unbuilt(*impl_, "add_input");
  check_new_name(*impl_, "add_input", name);
  for (int64_t d : shape)
    if (d < 1) throw ShapeError("add_input: input '" + name + "' shape " + shape_string(shape) + " must have positive dimensions");
  impl_->inputs.push_back(InputDecl{name, shape});
}

void Model::add(const LayerSpec& spec) {
  require_unbuilt(*impl_, "add");
  LayerSpec s = spec;
  if (s.name.empty()) s.name = s.kind + "_" + std::to_string(impl_->specs.size());
  check_new_name(*impl_, "add", s.name);
  detail::make_layer<float>(s);  // validates the configuration now, not at build time
  impl_->specs.push_back(std::move(s));
}

void Model::call(const std::string& layer, const std::vector<TensorRef>& inputs) {
  require_unbuilt(*impl_, "call");
  if (impl_->find_layer(layer) < 0) throw ValueError("call: the model has no layer named '" + layer + "'; add it first");
  if (inputs.empty()) throw ValueError("call: layer '" + layer + "' needs at least one input");
  impl_->calls.push_back(CallDecl{layer, inputs});
}

void Model::set_outputs(const std::vector<TensorRef>& outputs) {
  require_unbuilt(*impl_, "set_outputs");
  if (outputs.empty()) throw ValueError("set_outputs: a model needs at least one output");
  impl_->declared_outputs = outputs;
}

void Model::share_layer(const std::string& name, const Model& other, const std::string& other_name) {
  require_unbuilt(*impl_, "share_layer");
  if (impl_->find_layer(name) < 0) throw ValueError("share_layer: the model has no layer named '" + name + "'; add it first");
  if (!other.impl_->built) throw ValueError("share_layer: the other model is not built");
  const int j = other.impl_->find_layer(other_name);
  if (j < 0) throw ValueError("share_layer: the other model has no layer named '" + other_name + "'");
  impl_->adopt(name, *other.impl_, static_cast<size_t>(j));
}

void Model::build() { build_capped(-1); }

void Model::build_capped(int64_t max_values) {
  impl_->max_values = max_values;
  try {
    impl_->build();
  } catch (...) {
    impl_->max_values = -1;
    throw;
  }
  impl_->max_values = -1;
}

void Model::build(const Shape& input_shape) {
  for (int64_t d : input_shape)
    if (d < 1) throw ShapeError("build: input shape " + shape_string(input_shape) + " must have positive dimensions");
  const std::vector<InputDecl> previous = impl_->inputs;
  if (impl_->inputs.empty()) impl_->inputs.push_back(InputDecl{impl_->input_name, input_shape});
  else if (impl_->inputs.size() == 1) impl_->inputs[0].shape = input_shape;
  else throw ValueError("build: the model has " + std::to_string(impl_->inputs.size()) +
                        " inputs; their shapes come from add_input, so call build()");
  try {
    build();
  } catch (...) {
    impl_->inputs = previous;
    throw;
  }
}

void Model::set_input_name(const std::string& name) {
  require_unbuilt(*impl_, "set_input_name");
  if (name.empty()) throw ValueError("set_input_name: the name must not be empty");
  impl_->input_name = name;
  if (impl_->inputs.size() == 1) impl_->inputs[0].name = name;
}
const std::string& Model::input_name() const {
  return impl_->inputs.empty() ? impl_->input_name : impl_->inputs[0].name;
}

bool Model::built() const { return impl_->built; }

namespace {
void require_built(const EngineBase& e, const char* op) {
  if (!e.built) throw ValueError(std::string(op) + ": the model is not built");
}
}  // namespace

size_t Model::num_inputs() const { return impl_->inputs.size(); }
const std::string& Model::input_name(size_t input) const { return impl_->inputs.at(input).name; }
const Shape& Model::input_shape(size_t input) const { return impl_->inputs.at(input).shape; }
const Shape& Model::input_shape() const {
  static const Shape none;
  return impl_->inputs.empty() ? none : impl_->inputs[0].shape;
}
size_t Model::num_outputs() const { return impl_->graph.outputs.size(); }
const TensorRef& Model::output(size_t output) const {
  require_built(*impl_, "output");
  return impl_->graph.output_refs.at(output);
}
Shape Model::model_output_shape(size_t output) const {
  require_built(*impl_, "model_output_shape");
  return impl_->graph.tensor_shapes[impl_->graph.outputs.at(output)];
}
const std::vector<Model::Node>& Model::nodes() const {
  require_built(*impl_, "nodes");
  return impl_->graph.public_nodes;
}
std::vector<Shape> Model::node_output_shapes(size_t layer, size_t node) const {
  require_built(*impl_, "node_output_shapes");
  const Graph& g = impl_->graph;
  if (layer >= g.calls_of.size() || node >= g.calls_of[layer].size())
    throw ValueError("node_output_shapes: layer " + std::to_string(layer) + " has no call " + std::to_string(node));
  std::vector<Shape> out;
  for (int t : g.nodes[g.calls_of[layer][node]].out) out.push_back(g.tensor_shapes[t]);
  return out;
}
size_t Model::num_layers() const { return impl_->specs.size(); }
size_t Model::layer_index(const std::string& name) const {
  const int i = impl_->find_layer(name);
  if (i < 0) throw ValueError("layer_index: the model has no layer named '" + name + "'");
  return static_cast<size_t>(i);
}
const LayerSpec& Model::layer_spec(size_t layer) const { return impl_->specs.at(layer); }
Shape Model::output_shape(size_t layer) const {
  require_built(*impl_, "output_shape");
  const Graph& g = impl_->graph;
  return g.tensor_shapes[g.nodes[g.calls_of.at(layer).at(0)].out.at(0)];
}
Shape Model::output_shape() const {
  if (!impl_->built) return input_shape();
  return impl_->graph.tensor_shapes[impl_->graph.outputs.at(0)];
}
int64_t Model::count_params() const { return impl_->count_params(); }
int64_t Model::count_params(size_t layer) const { return impl_->count_params(layer); }
int64_t Model::count_state(size_t layer) const { return impl_->count_state(layer); }
int64_t Model::multiply_adds(size_t layer) const { return impl_->multiply_adds(layer); }
std::vector<std::vector<std::string>> Model::fusion_plan() const { return impl_->fusion_plan(); }

std::vector<std::string> Model::layer_inputs(size_t layer) const {
  require_built(*impl_, "layer_inputs");
  const Graph& g = impl_->graph;
  std::vector<std::string> names;
  for (const TensorRef& ref : g.public_nodes[g.calls_of.at(layer).at(0)].inputs) names.push_back(ref.layer);
  return names;
}

size_t Model::output_layer() const {
  require_built(*impl_, "output_layer");
  const Graph& g = impl_->graph;
  return static_cast<size_t>(g.nodes[g.producer[g.outputs[0]]].layer);
}
std::vector<Tensor> Model::get_weights(size_t layer) const { return impl_->get_weights(layer); }
void Model::set_weights(size_t layer, const std::vector<Tensor>& w) { impl_->set_weights(layer, w); }
void Model::set_trainable(size_t layer, bool trainable) { impl_->set_trainable(layer, trainable); }

void Model::compile(const std::vector<OutputLoss>& losses, const OptimizerSpec& optimizer) {
  const std::string& k = optimizer.kind;
  if (k != "sgd" && k != "rmsprop" && k != "adam" && k != "adamw")
    throw ValueError("compile: unknown optimizer '" + k + "'; expected one of sgd, rmsprop, adam, adamw");
  if (k == "sgd") validate(optimizer.sgd, "compile");
  else if (k == "rmsprop") validate(optimizer.rmsprop, "compile");
  else validate(optimizer.adam, 1, "compile");
  validate(optimizer.clip, "compile");
  if (losses.empty()) throw ValueError("compile: give one loss per model output (or one for all)");
  for (size_t o = 0; o < losses.size(); ++o) {
    if (losses[o].kind == LossKind::custom && !losses[o].custom)
      throw ValueError("compile: loss " + std::to_string(o) + " is custom but has no function");
    if (!(losses[o].weight >= 0.0 && std::isfinite(losses[o].weight)))
      throw ValueError("compile: loss weight " + std::to_string(o) + " must be finite and >= 0, got " +
                       std::to_string(losses[o].weight));
  }
  bool any = false;
  for (const OutputLoss& l : losses) any = any || l.kind != LossKind::none;
  if (!any) throw ValueError("compile: every output has no loss; give at least one");
  if (impl_->built && losses.size() != 1 && losses.size() != impl_->graph.outputs.size())
    throw ValueError("compile: the model has " + std::to_string(impl_->graph.outputs.size()) + " outputs, got " +
                     std::to_string(losses.size()) + " losses");
  impl_->losses = losses;
  impl_->optimizer = optimizer;
  if (impl_->built) impl_->compile();
  impl_->compiled = true;
}

void Model::compile(LossKind loss, const OptimizerSpec& optimizer) {
  if (loss == LossKind::none || loss == LossKind::custom)
    throw ValueError("compile: the one-loss form takes a built-in loss");
  compile(std::vector<OutputLoss>{OutputLoss{loss, 1.0, {}}}, optimizer);
}

bool Model::compiled() const { return impl_->compiled; }

void Model::set_learning_rate(double lr) {
  if (!(lr >= 0.0 && std::isfinite(lr)))
    throw ValueError("set_learning_rate: lr must be finite and >= 0, got " + std::to_string(lr));
  impl_->optimizer.sgd.lr = impl_->optimizer.rmsprop.lr = impl_->optimizer.adam.lr = lr;
}

// Each entry point first undoes any raise of BLAS's thread count by another
// library (gemm.cpp): convolutions call BLAS inside their own parallel regions.
double Model::train_step(const std::vector<Tensor>& x, const std::vector<Tensor>& y, const Tensor* sample_weight,
                         std::vector<double>* output_losses, std::vector<Tensor>* outputs) {
  detail::blas_keep_single_threaded();
  return impl_->train_step(x, y, sample_weight, true, nullptr, output_losses, outputs);
}
double Model::loss_and_gradients(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                 const Tensor* sample_weight, Tensor* gradients,
                                 std::vector<double>* output_losses) {
  detail::blas_keep_single_threaded();
  return impl_->train_step(x, y, sample_weight, false, gradients, output_losses, nullptr);
}
bool Model::apply_gradients(const Tensor& gradients) { return impl_->apply_gradients(gradients); }
double Model::compute_gradients(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                                const Tensor* sample_weight, std::vector<double>* output_losses,
                                std::vector<Tensor>* outputs) {
  detail::blas_keep_single_threaded();
  return impl_->compute_gradients(x, y, sample_weight, output_losses, outputs);
}
Tensor Model::gradient_arena() { return impl_->gradient_arena(); }
bool Model::apply_gradients(double scale) { return impl_->apply_gradients(scale); }
void Model::set_gradient_reducer(GradientReducer reducer) { impl_->reducer = std::move(reducer); }
double Model::evaluate(const std::vector<Tensor>& x, const std::vector<Tensor>& y, const Tensor* sample_weight,
                       std::vector<double>* output_losses, std::vector<Tensor>* outputs) const {
  detail::blas_keep_single_threaded();
  return impl_->evaluate(x, y, sample_weight, output_losses, outputs);
}

namespace {
// The one-output forms hand back the one output.
void take_first(std::vector<Tensor>& all, Tensor* out) {
  if (out) *out = std::move(all.at(0));
}
}  // namespace

double Model::train_step(const Tensor& x, const Tensor& y, Tensor* outputs) {
  std::vector<Tensor> all;
  const double loss = train_step({x}, {y}, nullptr, nullptr, outputs ? &all : nullptr);
  if (outputs) take_first(all, outputs);
  return loss;
}
double Model::train_step(const Tensor& x, const Tensor& y, const Tensor& sample_weight, Tensor* outputs) {
  std::vector<Tensor> all;
  const double loss = train_step({x}, {y}, &sample_weight, nullptr, outputs ? &all : nullptr);
  if (outputs) take_first(all, outputs);
  return loss;
}
double Model::loss_and_gradients(const Tensor& x, const Tensor& y, Tensor* gradients) {
  return loss_and_gradients({x}, {y}, nullptr, gradients);
}
double Model::loss_and_gradients(const Tensor& x, const Tensor& y, const Tensor& sample_weight, Tensor* gradients) {
  return loss_and_gradients({x}, {y}, &sample_weight, gradients);
}
double Model::evaluate(const Tensor& x, const Tensor& y, Tensor* outputs) const {
  std::vector<Tensor> all;
  const double loss = evaluate({x}, {y}, nullptr, nullptr, outputs ? &all : nullptr);
  if (outputs) take_first(all, outputs);
  return loss;
}
double Model::evaluate(const Tensor& x, const Tensor& y, const Tensor& sample_weight, Tensor* outputs) const {
  std::vector<Tensor> all;
  const double loss = evaluate({x}, {y}, &sample_weight, nullptr, outputs ? &all : nullptr);
  if (outputs) take_first(all, outputs);
  return loss;
}
int64_t Model::steps() const { return impl_->step; }

std::vector<Tensor> Model::predict(const std::vector<Tensor>& x) const {
  detail::blas_keep_single_threaded();
  return impl_->predict(x);
}
std::vector<Tensor> Model::output_masks(const std::vector<Tensor>& x) const {
  require_built(*impl_, "output_masks");
  detail::blas_keep_single_threaded();
  return impl_->output_masks(x);
}
Tensor Model::predict(const Tensor& x) const {
  if (impl_->built && impl_->graph.outputs.size() != 1)
    throw ValueError("predict: the model has " + std::to_string(impl_->graph.outputs.size()) +
                     " outputs; use the form taking and returning a vector");
  return std::move(predict(std::vector<Tensor>{x}).at(0));
}

std::vector<Tensor> Model::vjp(const std::vector<Tensor>& x, bool training) {
  detail::blas_keep_single_threaded();
  return impl_->vjp(x, training);
}
std::vector<Tensor> Model::pullback(const std::vector<Tensor>& dy) {
  detail::blas_keep_single_threaded();
  return impl_->pullback(dy);
}
int64_t Model::vjp_generation() const { return impl_->vjp_generation; }
std::vector<Model::ParameterSlice> Model::parameter_layout() const {
  require_built(*impl_, "parameter_layout");
  return impl_->parameter_layout();
}

Model::OptimizerState Model::get_optimizer_state() const {
  if (!impl_->built || !impl_->compiled) throw ValueError("get_optimizer_state: the model is not built and compiled");
  return impl_->get_optimizer_state();
}
void Model::set_optimizer_state(const OptimizerState& state) {
  if (!impl_->built || !impl_->compiled) throw ValueError("set_optimizer_state: the model is not built and compiled");
  impl_->set_optimizer_state(state);
}
std::vector<std::string> Model::weight_names(size_t layer) const { return impl_->weight_names(layer); }
LossKind Model::loss() const { return impl_->losses.empty() ? LossKind::none : impl_->losses[0].kind; }
const std::vector<OutputLoss>& Model::losses() const { return impl_->losses; }
const OptimizerSpec& Model::optimizer() const { return impl_->optimizer; }
uint64_t Model::dropout_key() const { return impl_->dropout_key; }
void Model::set_dropout_key(uint64_t key) { impl_->dropout_key = key; }
Tensor Model::get_parameters() const { return impl_->get_parameters(); }
void Model::set_parameters(const Tensor& flat) { impl_->set_parameters(flat); }
Tensor Model::get_state() const { return impl_->get_state(); }
void Model::set_state(const Tensor& flat) { impl_->set_state(flat); }

}  // namespace corenn
