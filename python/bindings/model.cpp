// The model engine as corenn._core.Engine: arrays in and out, the GIL released
// for every pass over the data. The Python model API (python/corenn/models.py)
// casts inputs to the model's dtype before they get here.
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <optional>
#include <type_traits>
#include <variant>

#include "common.hpp"
#include "corenn/io.hpp"
#include "corenn/model.hpp"

namespace corenn {
namespace bind {

namespace {

// A Tensor view over a NumPy array, with the array (or its contiguous copy)
// kept alive alongside. The engine only reads its inputs (const Tensor&, read
// through const pointers), so read-only arrays (np.frombuffer, memory maps)
// are viewed in place too: the const_cast never leads to a write.
struct TensorArg {
  py::array holder;
  Tensor tensor;
};

template <typename T>
TensorArg view_as(const py::array& a) {
  TensorArg arg;
  auto c = contiguous<T>(a);
  arg.tensor = Tensor::view(const_cast<T*>(c.data()), shape_of(c));
  arg.holder = std::move(c);
  return arg;
}

TensorArg tensor_arg(const py::array& a, DType dtype, const char* op, const char* name) {
  const bool ok = (dtype == DType::float32 && a.dtype().equal(py::dtype::of<float>())) ||
                  (dtype == DType::float64 && a.dtype().equal(py::dtype::of<double>())) ||
                  (dtype == DType::int64 && a.dtype().equal(py::dtype::of<int64_t>()));
  if (!ok)
    throw TypeError(std::string(op) + ": " + name + " must be " + dtype_name(dtype) + ", got " +
                    dtype_str(a));
  if (dtype == DType::float32) return view_as<float>(a);
  if (dtype == DType::float64) return view_as<double>(a);
  return view_as<int64_t>(a);
}

// Hands a Tensor's memory to NumPy without a copy: the capsule owns a Tensor
// (sharing the buffer) and frees it with the array.
py::array to_numpy(Tensor t) {
  auto* owner = new Tensor(std::move(t));
  py::capsule free_when_done(owner, [](void* p) { delete static_cast<Tensor*>(p); });
  std::vector<py::ssize_t> shape(owner->shape().begin(), owner->shape().end());
  if (owner->dtype() == DType::float32)
    return py::array_t<float>(shape, owner->data_as<float>(), free_when_done);
  if (owner->dtype() == DType::int64)  // output_masks
    return py::array_t<int64_t>(shape, owner->data_as<int64_t>(), free_when_done);
  return py::array_t<double>(shape, owner->data_as<double>(), free_when_done);
}

// sample_weight: None, or (N,) in the model's dtype (the Python API casts it);
// the engine checks its shape and values.
std::optional<TensorArg> weight_arg(const Model& self, const py::object& sample_weight,
                                    const char* op) {
  if (sample_weight.is_none()) return std::nullopt;
  py::array w = py::array::ensure(sample_weight);
  if (!w) throw TypeError(std::string(op) + ": sample_weight must be an array or None");
  return tensor_arg(w, self.dtype(), op, "sample_weight");
}

DType parse_model_dtype(const std::string& name) {
  if (name == "float32") return DType::float32;
  if (name == "float64") return DType::float64;
  throw ValueError("Model: dtype must be 'float32' or 'float64', got '" + name + "'");
}

LayerSpec layer_spec_from(const py::dict& config);
py::dict layer_config(const LayerSpec& spec);

// A Python attribute value as the engine's: bool, int, float, str, a list
// (tuple) of ints or of numbers, or a nested layer's config dict (None: no
// layer). Which attributes a kind takes, and their types, the engine checks
// (complete_layer_spec).
AttributeValue attribute_from(py::handle value, const std::string& key) {
  if (value.is_none()) return NestedLayer();
  if (py::isinstance<py::dict>(value)) return NestedLayer(layer_spec_from(py::reinterpret_borrow<py::dict>(value)));
  const auto is_int = [](py::handle v) {
    return !py::isinstance<py::bool_>(v) && (py::isinstance<py::int_>(v) || PyIndex_Check(v.ptr()));
  };
  const auto is_number = [&](py::handle v) { return is_int(v) || py::isinstance<py::float_>(v); };
  if (py::isinstance<py::bool_>(value)) return value.cast<bool>();
  // An int past int64 (which the engine's bound refuses anyway) is a ValueError, not a cast error.
  const auto as_int = [&](py::handle v) {
    const auto i = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
    if (!i) throw py::error_already_set();
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
    if (overflow)
      throw ValueError("attribute '" + key + "' must be at most " + std::to_string(kMaxIntHyperParameter) +
                       " in magnitude, got " + std::string(py::repr(value)));
    return static_cast<int64_t>(x);
  };
  if (is_int(value)) return as_int(value);
  if (py::isinstance<py::float_>(value)) return value.cast<double>();
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    const auto items = py::reinterpret_borrow<py::sequence>(value);
    bool ints = true, numbers = true;
    for (py::handle item : items) ints = ints && is_int(item), numbers = numbers && is_number(item);
    if (ints) {
      Ints out;
      for (py::handle item : items) out.push_back(as_int(item));
      return out;
    }
    if (numbers) return items.cast<Reals>();
  }
  throw TypeError("Engine.add: attribute '" + key + "' must be a bool, int, float, str, a list of ints or "
                  "floats, or a layer's config dict, got " + std::string(py::repr(value)));
}

py::object to_python(const NestedLayer& v) { return v.empty() ? py::object(py::none()) : layer_config(v.spec()); }
template <typename V>
py::object to_python(const V& v) { return py::cast(v); }

py::object attribute_to_python(const AttributeValue& value) {
  return std::visit([](const auto& v) -> py::object { return to_python(v); }, value.value());
}

// A layer configuration dict (kind, name, trainable, inputs and attributes,
// as Layer.get_config() gives them) as a LayerSpec.
LayerSpec layer_spec_from(const py::dict& config) {
  LayerSpec s;
  std::vector<std::pair<std::string, py::handle>> attributes;
  for (auto item : config) {
    const std::string key = py::str(item.first);
    if (key == "kind") s.kind = item.second.cast<std::string>();
    else if (key == "name") s.name = item.second.cast<std::string>();
    else if (key == "trainable") s.trainable = item.second.cast<bool>();
    else if (key == "inputs") s.inputs = item.second.cast<std::vector<std::string>>();
    else attributes.emplace_back(key, item.second);
  }
  for (const auto& [key, value] : attributes) {
    try {
      s.attributes.set(key, attribute_from(value, key));
    } catch (const ValueError& e) {  // named like the engine's messages: layer 'fc' (dense): ...
      throw ValueError("layer '" + s.name + "' (" + s.kind + "): " + e.what());
    }
  }
  return s;
}

// kind, name, inputs, trainable and every attribute of the kind (defaults filled in).
py::dict layer_config(const LayerSpec& spec) {
  const LayerSpec complete = complete_layer_spec(spec);
  py::dict config;
  config["kind"] = complete.kind;
  config["name"] = complete.name;
  config["inputs"] = complete.inputs;
  config["trainable"] = complete.trainable;
  for (const auto& a : complete.attributes) config[a.first.c_str()] = attribute_to_python(a.second);
  return config;
}

OptimizerSpec optimizer_spec_from(const py::dict& config) {
  OptimizerSpec o;
  for (auto item : config) {
    const std::string key = py::str(item.first);
    py::handle v = item.second;
    if (key == "kind") o.kind = v.cast<std::string>();
    else if (key == "lr") o.sgd.lr = o.rmsprop.lr = o.adam.lr = v.cast<double>();
    else if (key == "momentum") o.sgd.momentum = v.cast<double>();
    else if (key == "dampening") o.sgd.dampening = v.cast<double>();
    else if (key == "nesterov") o.sgd.nesterov = v.cast<bool>();
    else if (key == "weight_decay") o.sgd.weight_decay = o.rmsprop.weight_decay = o.adam.weight_decay = v.cast<double>();
    else if (key == "alpha") o.rmsprop.alpha = v.cast<double>();
    else if (key == "eps") o.rmsprop.eps = o.adam.eps = v.cast<double>();
    else if (key == "beta1") o.adam.beta1 = v.cast<double>();
    else if (key == "beta2") o.adam.beta2 = v.cast<double>();
    else if (key == "clipnorm") o.clip.clipnorm = v.cast<double>();
    else if (key == "clipvalue") o.clip.clipvalue = v.cast<double>();
    else if (key == "global_clipnorm") o.clip.global_clipnorm = v.cast<double>();
    else throw ValueError("Engine.compile: unknown optimizer setting '" + key + "'");
  }
  return o;
}

py::list weights_to_list(std::vector<Tensor> weights) {
  py::list out;
  for (Tensor& w : weights) out.append(to_numpy(std::move(w)));
  return out;
}

// A model output's loss from Python: a built-in name, None, or a callable
// fn(y_true, y_pred) -> (loss, dloss_dy_pred). The callable is held through a
// shared_ptr whose deleter takes the GIL, so the engine may copy and drop the
// loss without it; the call itself takes the GIL (the engine runs it between
// forward and backward, with the GIL released around the step).
OutputLoss output_loss_from(const py::handle& loss, double weight, DType dtype) {
  OutputLoss out;
  out.weight = weight;
  if (loss.is_none()) return out;
  if (py::isinstance<py::str>(loss)) {
    out.kind = parse_loss(loss.cast<std::string>());
    return out;
  }
  if (!PyCallable_Check(loss.ptr()))
    throw TypeError("compile: each loss must be a name, None or a callable fn(y_true, y_pred) -> (loss, gradient), got " +
                    py::repr(loss).cast<std::string>());
  std::shared_ptr<py::object> fn(new py::object(py::reinterpret_borrow<py::object>(loss)), [](py::object* f) {
    py::gil_scoped_acquire gil;
    delete f;
  });
  out.kind = LossKind::custom;
  out.custom = [fn, dtype](const Tensor& y_true, const Tensor& y_pred, Tensor& dy_pred) -> double {
    py::gil_scoped_acquire gil;
    py::object result = (*fn)(to_numpy(y_true.clone()), to_numpy(y_pred.clone()));
    py::tuple pair;
    if (!py::isinstance<py::tuple>(result) || (pair = result.cast<py::tuple>()).size() != 2)
      throw ValueError("custom loss: must return (loss, gradient), got " + py::repr(result).cast<std::string>());
    double value;
    try {
      value = pair[0].cast<double>();
    } catch (const py::cast_error&) {
      throw ValueError("custom loss: the loss must be a number, got " + py::repr(pair[0]).cast<std::string>());
    }
    py::array grad = py::array::ensure(pair[1]);
    if (!grad || grad.dtype().kind() != 'f')
      throw ValueError("custom loss: the gradient must be a float array, got " + py::repr(pair[1]).cast<std::string>());
    // A copy in the model's dtype that outlives the Python array; the engine checks its shape.
    Tensor copy(shape_of(grad), dtype);
    if (dtype == DType::float32) {
      auto c = contiguous<float>(grad.attr("astype")("float32"));
      std::memcpy(copy.data_as<float>(), c.data(), sizeof(float) * static_cast<size_t>(copy.size()));
    } else {
      auto c = contiguous<double>(grad.attr("astype")("float64"));
      std::memcpy(copy.data_as<double>(), c.data(), sizeof(double) * static_cast<size_t>(copy.size()));
    }
    dy_pred = std::move(copy);
    return value;
  };
  return out;
}

TensorRef tensor_ref_from(const py::handle& h) {
  auto t = h.cast<py::tuple>();
  if (t.size() != 3) throw ValueError("a tensor reference is (layer or input name, node, output)");
  return TensorRef{t[0].cast<std::string>(), t[1].cast<int64_t>(), t[2].cast<int64_t>()};
}

py::tuple tensor_ref_tuple(const TensorRef& r) { return py::make_tuple(r.layer, r.node, r.output); }

std::vector<TensorRef> tensor_refs_from(const py::list& refs) {
  std::vector<TensorRef> out;
  for (auto r : refs) out.push_back(tensor_ref_from(r));
  return out;
}

// The inputs as tensors of the model's dtype (the Python API casts them).
std::vector<TensorArg> input_args(const Model& self, const py::list& xs, const char* op) {
  std::vector<TensorArg> out;
  for (auto x : xs) {
    py::array a = py::array::ensure(x);
    if (!a) throw TypeError(std::string(op) + ": each x must be an array");
    out.push_back(tensor_arg(a, self.dtype(), op, "x"));
  }
  return out;
}

// The targets, one per output: int64 class ids for softmax cross-entropy,
// else the model's dtype; None (an empty tensor) for an output without a loss.
std::vector<TensorArg> target_args(const Model& self, const py::list& ys, const char* op) {
  std::vector<TensorArg> out;
  const auto& losses = self.losses();
  size_t o = 0;
  for (auto y : ys) {
    const LossKind kind = o < losses.size() ? losses[o].kind : LossKind::mse;
    ++o;
    if (y.is_none() || kind == LossKind::none) {
      out.push_back(TensorArg{});
      continue;
    }
    py::array a = py::array::ensure(y);
    if (!a) throw TypeError(std::string(op) + ": each y must be an array or None");
    out.push_back(tensor_arg(a, kind == LossKind::softmax_cross_entropy ? DType::int64 : self.dtype(), op, "y"));
  }
  return out;
}

std::vector<Tensor> tensors_of(const std::vector<TensorArg>& args) {
  std::vector<Tensor> out;
  for (const TensorArg& a : args) out.push_back(a.tensor);
  return out;
}

py::list tensors_to_list(std::vector<Tensor> ts) {
  py::list out;
  for (Tensor& t : ts) out.append(to_numpy(std::move(t)));
  return out;
}

py::list losses_to_list(const std::vector<double>& v) {
  py::list out;
  for (double d : v) out.append(d);
  return out;
}

}  // namespace

void bind_model(py::module_& m) {
  m.def(
      "layer_output_shapes",
      [](const py::dict& config, const std::vector<Shape>& input_shapes) {
        return layer_output_shapes(layer_spec_from(config), input_shapes);
      },
      py::arg("config"), py::arg("input_shapes"),
      "The per-example output shapes of one call of a layer (the check Model.build makes there)");

  m.def(
      "layer_kinds",
      [] {
        py::dict kinds;
        for (const LayerKindInfo& k : layer_kinds()) {
          py::dict attributes;
          for (const auto& a : k.attributes) attributes[a.first.c_str()] = attribute_to_python(a.second);
          kinds[k.kind.c_str()] = attributes;
        }
        return kinds;
      },
      "{kind: {attribute: default}} for every layer kind of the engine (its registry), sorted by kind");

  py::class_<Model>(m, "Engine", "The C++ model engine behind corenn.Model")
      .def(py::init([](const std::string& dtype) { return Model(parse_model_dtype(dtype)); }),
           py::arg("dtype") = "float32")
      .def_property_readonly("dtype", [](const Model& self) { return std::string(dtype_name(self.dtype())); })
      // Building a graph.
      .def("add_input", &Model::add_input, py::arg("name"), py::arg("shape"))
      .def("add", [](Model& self, const py::dict& config) { self.add(layer_spec_from(config)); })
      .def("call", [](Model& self, const std::string& layer, const py::list& inputs) {
        self.call(layer, tensor_refs_from(inputs));
      }, py::arg("layer"), py::arg("inputs"))
      .def("set_outputs", [](Model& self, const py::list& outputs) { self.set_outputs(tensor_refs_from(outputs)); })
      .def("share_layer", &Model::share_layer, py::arg("name"), py::arg("other"), py::arg("other_name"))
      .def_property("input_name", py::overload_cast<>(&Model::input_name, py::const_), &Model::set_input_name)
      .def("build", [](Model& self) { self.build(); })
      .def("build", [](Model& self, const Shape& input_shape) { self.build(input_shape); }, py::arg("input_shape"))
      .def_property_readonly("built", &Model::built)
      .def_property_readonly("compiled", &Model::compiled)
      // The graph.
      .def_property_readonly("input_names", [](const Model& self) {
        std::vector<std::string> names;
        for (size_t i = 0; i < self.num_inputs(); ++i) names.push_back(self.input_name(i));
        return names;
      })
      .def_property_readonly("input_shapes", [](const Model& self) {
        std::vector<Shape> shapes;
        for (size_t i = 0; i < self.num_inputs(); ++i) shapes.push_back(self.input_shape(i));
        return shapes;
      })
      .def_property_readonly("input_shape", py::overload_cast<>(&Model::input_shape, py::const_))
      .def_property_readonly("outputs", [](const Model& self) {
        py::list out;
        for (size_t o = 0; o < self.num_outputs(); ++o) out.append(tensor_ref_tuple(self.output(o)));
        return out;
      })
      .def("output_shapes", [](const Model& self) {
        std::vector<Shape> shapes;
        for (size_t o = 0; o < self.num_outputs(); ++o) shapes.push_back(self.model_output_shape(o));
        return shapes;
      })
      .def("nodes", [](const Model& self) {
        py::list out;
        for (const Model::Node& n : self.nodes()) {
          py::list inputs;
          for (const TensorRef& r : n.inputs) inputs.append(tensor_ref_tuple(r));
          out.append(py::make_tuple(self.layer_spec(n.layer).name, inputs));
        }
        return out;
      })
      .def("node_output_shapes", [](const Model& self, const std::string& layer, size_t node) {
        return self.node_output_shapes(self.layer_index(layer), node);
      }, py::arg("layer"), py::arg("node"))
      .def_property_readonly("num_layers", &Model::num_layers)
      .def("layer_index", &Model::layer_index)
      .def_property_readonly("steps", &Model::steps)
      .def_property("dropout_key", &Model::dropout_key, &Model::set_dropout_key)
      .def("layer_name", [](const Model& self, size_t i) { return self.layer_spec(i).name; })
      .def("layer_config", [](const Model& self, size_t i) { return layer_config(self.layer_spec(i)); })
      .def("weight_names", &Model::weight_names)
      .def("output_shape", py::overload_cast<size_t>(&Model::output_shape, py::const_))
      .def("model_output_shape", py::overload_cast<>(&Model::output_shape, py::const_))
      .def("layer_inputs", &Model::layer_inputs)
      .def_property_readonly("output_layer", &Model::output_layer)
      .def("multiply_adds", &Model::multiply_adds)
      .def("fusion_plan", &Model::fusion_plan)
      .def("count_params", py::overload_cast<>(&Model::count_params, py::const_))
      .def("count_layer_params", py::overload_cast<size_t>(&Model::count_params, py::const_))
      .def("count_layer_state", &Model::count_state)
      .def("get_weights", [](const Model& self, size_t i) { return weights_to_list(self.get_weights(i)); })
      .def("set_weights",
           [](Model& self, size_t i, const py::list& arrays) {
             const DType dt = self.dtype();
             std::vector<TensorArg> args;
             std::vector<Tensor> tensors;
             for (auto a : arrays) {
               args.push_back(tensor_arg(py::array::ensure(a), dt, "set_weights", "each weight"));
               tensors.push_back(args.back().tensor);
             }
             self.set_weights(i, tensors);
           })
      .def("set_trainable", &Model::set_trainable)
      .def("parameter_layout", [](const Model& self) {
        py::list out;
        for (const Model::ParameterSlice& s : self.parameter_layout())
          out.append(py::make_tuple(s.layer, s.name, s.offset, s.shape));
        return out;
      })
      // Training.
      .def("compile",
           [](Model& self, const py::object& losses, const py::object& loss_weights, const py::dict& optimizer) {
             std::vector<OutputLoss> out;
             py::list names = py::isinstance<py::list>(losses) ? losses.cast<py::list>() : py::list();
             if (!py::isinstance<py::list>(losses)) names.append(losses);
             std::vector<double> weights(names.size(), 1.0);
             if (!loss_weights.is_none()) weights = loss_weights.cast<std::vector<double>>();
             if (weights.size() != names.size())
               throw ValueError("compile: loss_weights must hold one weight per loss (" + std::to_string(names.size()) +
                                "), got " + std::to_string(weights.size()));
             for (size_t o = 0; o < names.size(); ++o) out.push_back(output_loss_from(names[o], weights[o], self.dtype()));
             self.compile(out, optimizer_spec_from(optimizer));
           },
           py::arg("losses"), py::arg("loss_weights") = py::none(), py::arg("optimizer"))
      .def("set_learning_rate", &Model::set_learning_rate, py::arg("lr"))
      .def("train_step",
           [](Model& self, const py::list& xs, const py::list& ys, const py::object& sample_weight,
              bool with_outputs) -> py::object {
             auto xa = input_args(self, xs, "train_step");
             auto ya = target_args(self, ys, "train_step");
             auto wa = weight_arg(self, sample_weight, "train_step");
             std::vector<Tensor> outs;
             std::vector<double> per_output;
             double loss;
             {
               ReleaseGil nogil;
               loss = self.train_step(tensors_of(xa), tensors_of(ya), wa ? &wa->tensor : nullptr, &per_output,
                                      with_outputs ? &outs : nullptr);
             }
             if (!with_outputs) return py::make_tuple(loss, losses_to_list(per_output));
             return py::make_tuple(loss, losses_to_list(per_output), tensors_to_list(std::move(outs)));
           },
           py::arg("xs"), py::arg("ys"), py::arg("sample_weight") = py::none(), py::arg("with_outputs") = false)
      .def("loss_and_gradients",
           [](Model& self, const py::list& xs, const py::list& ys, const py::object& sample_weight) {
             auto xa = input_args(self, xs, "loss_and_gradients");
             auto ya = target_args(self, ys, "loss_and_gradients");
             auto wa = weight_arg(self, sample_weight, "loss_and_gradients");
             Tensor grads;
             double loss;
             {
               ReleaseGil nogil;
               loss = self.loss_and_gradients(tensors_of(xa), tensors_of(ya), wa ? &wa->tensor : nullptr, &grads);
             }
             return py::make_tuple(loss, to_numpy(std::move(grads)));
           },
           py::arg("xs"), py::arg("ys"), py::arg("sample_weight") = py::none())
      .def("compute_gradients",
           [](Model& self, const py::list& xs, const py::list& ys, const py::object& sample_weight,
              bool with_outputs) -> py::object {
             auto xa = input_args(self, xs, "compute_gradients");
             auto ya = target_args(self, ys, "compute_gradients");
             auto wa = weight_arg(self, sample_weight, "compute_gradients");
             std::vector<Tensor> outs;
             std::vector<double> per_output;
             double loss;
             {
               ReleaseGil nogil;
               loss = self.compute_gradients(tensors_of(xa), tensors_of(ya), wa ? &wa->tensor : nullptr,
                                             &per_output, with_outputs ? &outs : nullptr);
             }
             if (!with_outputs) return py::make_tuple(loss, losses_to_list(per_output));
             return py::make_tuple(loss, losses_to_list(per_output), tensors_to_list(std::move(outs)));
           },
           py::arg("xs"), py::arg("ys"), py::arg("sample_weight") = py::none(), py::arg("with_outputs") = false,
           "loss, per-output losses[, outputs]; the gradient arena left in summable form")
      .def(
          "gradient_arena",
          [](py::object self_obj) {
            // A view of the engine's memory: the array keeps the engine alive.
            Tensor t = self_obj.cast<Model&>().gradient_arena();
            std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(t.size())};
            if (t.dtype() == DType::float32) return py::array(py::array_t<float>(shape, t.data_as<float>(), self_obj));
            return py::array(py::array_t<double>(shape, t.data_as<double>(), self_obj));
          },
          "the gradient arena (count_params + 2 values) as a writable view, valid until the next build")
      .def("apply_gradient_arena",
           [](Model& self, double scale) {
             ReleaseGil nogil;
             return self.apply_gradients(scale);
           },
           py::arg("scale"), "one optimizer step with scale times the gradient arena")
      .def("apply_gradients",
           [](Model& self, const py::array& flat) {
             TensorArg fa = tensor_arg(flat, self.dtype(), "apply_gradients", "gradients");
             ReleaseGil nogil;
             return self.apply_gradients(fa.tensor);
           })
      .def("evaluate",
           [](const Model& self, const py::list& xs, const py::list& ys, const py::object& sample_weight) {
             auto xa = input_args(self, xs, "evaluate");
             auto ya = target_args(self, ys, "evaluate");
             auto wa = weight_arg(self, sample_weight, "evaluate");
             std::vector<Tensor> outs;
             std::vector<double> per_output;
             double loss;
             {
               ReleaseGil nogil;
               loss = self.evaluate(tensors_of(xa), tensors_of(ya), wa ? &wa->tensor : nullptr, &per_output, &outs);
             }
             return py::make_tuple(loss, losses_to_list(per_output), tensors_to_list(std::move(outs)));
           },
           py::arg("xs"), py::arg("ys"), py::arg("sample_weight") = py::none())
      .def("predict",
           [](const Model& self, const py::list& xs) {
             auto xa = input_args(self, xs, "predict");
             std::vector<Tensor> outs;
             {
               ReleaseGil nogil;
               outs = self.predict(tensors_of(xa));
             }
             return tensors_to_list(std::move(outs));
           })
      .def("output_masks",
           [](const Model& self, const py::list& xs) {
             auto xa = input_args(self, xs, "output_masks");
             std::vector<Tensor> outs;
             {
               ReleaseGil nogil;
               outs = self.output_masks(tensors_of(xa));
             }
             py::list result;  // None for an output without a mask
             for (Tensor& t : outs) result.append(t.ndim() == 0 ? py::object(py::none()) : to_numpy(std::move(t)));
             return result;
           })
      .def("vjp",
           [](Model& self, const py::list& xs, bool training) {
             auto xa = input_args(self, xs, "vjp");
             std::vector<Tensor> outs;
             {
               ReleaseGil nogil;
               outs = self.vjp(tensors_of(xa), training);
             }
             return tensors_to_list(std::move(outs));
           },
           py::arg("xs"), py::arg("training") = false)
      .def_property_readonly("vjp_generation", &Model::vjp_generation)
      .def("pullback",
           [](Model& self, const py::list& dys, int64_t generation) {
             if (generation >= 0 && generation != self.vjp_generation())
               throw ValueError("pullback: the model ran another vjp since this one; call vjp again");
             std::vector<TensorArg> da;
             for (auto d : dys)
               da.push_back(d.is_none() ? TensorArg{}
                                        : tensor_arg(py::array::ensure(d), self.dtype(), "pullback", "dy"));
             std::vector<Tensor> dxs;
             {
               ReleaseGil nogil;
               dxs = self.pullback(tensors_of(da));
             }
             return tensors_to_list(std::move(dxs));
           },
           py::arg("dys"), py::arg("generation") = -1)
      .def("get_optimizer_state",
           [](const Model& self) {
             Model::OptimizerState state = self.get_optimizer_state();
             return py::make_tuple(state.step, weights_to_list(std::move(state.slots)));
           })
      .def("set_optimizer_state",
           [](Model& self, int64_t step, const py::list& arrays) {
             std::vector<TensorArg> args;
             Model::OptimizerState state;
             state.step = step;
             for (auto a : arrays) {
               args.push_back(tensor_arg(py::array::ensure(a), self.dtype(), "set_optimizer_state", "each state array"));
               state.slots.push_back(args.back().tensor);
             }
             self.set_optimizer_state(state);
           })
      .def("get_parameters", [](const Model& self) { return to_numpy(self.get_parameters()); })
      .def("set_parameters", [](Model& self, const py::array& flat) {
        TensorArg fa = tensor_arg(flat, self.dtype(), "set_parameters", "flat");
        self.set_parameters(fa.tensor);
      })
      .def("save",
           [](const Model& self, const std::string& path, bool include_optimizer,
              const std::map<std::string, std::string>& metadata) {
             ReleaseGil nogil;
             self.save(path, include_optimizer, metadata);
           },
           py::arg("path"), py::arg("include_optimizer"), py::arg("metadata"))
      .def("load_weights",
           [](Model& self, const std::string& path) {
             ReleaseGil nogil;
             self.load_weights(path);
           })
      .def("get_state", [](const Model& self) { return to_numpy(self.get_state()); })
      .def("set_state", [](Model& self, const py::array& flat) {
        TensorArg fa = tensor_arg(flat, self.dtype(), "set_state", "flat");
        self.set_state(fa.tensor);
      });

  m.def("load_model",
        [](const std::string& path) {
          std::map<std::string, std::string> metadata;
          Model model = [&] {
            ReleaseGil nogil;
            return load_model(path, &metadata);
          }();
          return py::make_tuple(std::move(model), metadata);
        },
        py::arg("path"), "(Engine, metadata dict) from a model file");
  m.attr("model_file_version") = model_file_version;
}

}  // namespace bind
}  // namespace corenn
