// The model engine as corenn._core.Engine: arrays in and out, the GIL released
// for every pass over the data. The Python model API (python/corenn/models.py)
// casts inputs to the model's dtype before they get here.
#include <pybind11/stl.h>

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
  return py::array_t<double>(shape, owner->data_as<double>(), free_when_done);
}

// x in the model's dtype; y as int64 class ids (labels) or in the model's dtype.
std::pair<TensorArg, TensorArg> batch_args(const Model& self, const py::array& x,
                                           const py::array& y, bool labels, const char* op) {
  return {tensor_arg(x, self.dtype(), op, "x"),
          tensor_arg(y, labels ? DType::int64 : self.dtype(), op, "y")};
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

// A Python attribute value as the engine's: bool, int, float, str, or a list
// (tuple) of ints or of numbers. Which attributes a kind takes, and their
// types, the engine checks (complete_layer_spec).
AttributeValue attribute_from(py::handle value, const std::string& key) {
  const auto is_int = [](py::handle v) {
    return !py::isinstance<py::bool_>(v) && (py::isinstance<py::int_>(v) || PyIndex_Check(v.ptr()));
  };
  const auto is_number = [&](py::handle v) { return is_int(v) || py::isinstance<py::float_>(v); };
  if (py::isinstance<py::bool_>(value)) return value.cast<bool>();
  if (is_int(value)) return value.cast<int64_t>();
  if (py::isinstance<py::float_>(value)) return value.cast<double>();
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    const auto items = py::reinterpret_borrow<py::sequence>(value);
    bool ints = true, numbers = true;
    for (py::handle item : items) ints = ints && is_int(item), numbers = numbers && is_number(item);
    if (ints) return items.cast<Ints>();
    if (numbers) return items.cast<Reals>();
  }
  throw TypeError("Engine.add: attribute '" + key + "' must be a bool, int, float, str or a list of ints or "
                  "floats, got " + std::string(py::repr(value)));
}

py::object attribute_to_python(const AttributeValue& value) {
  return std::visit([](const auto& v) -> py::object { return py::cast(v); }, value.value());
}

// A layer configuration dict (kind, name, trainable, inputs and attributes,
// as Layer.get_config() gives them) as a LayerSpec.
LayerSpec layer_spec_from(const py::dict& config) {
  LayerSpec s;
  for (auto item : config) {
    const std::string key = py::str(item.first);
    if (key == "kind") s.kind = item.second.cast<std::string>();
    else if (key == "name") s.name = item.second.cast<std::string>();
    else if (key == "trainable") s.trainable = item.second.cast<bool>();
    else if (key == "inputs") s.inputs = item.second.cast<std::vector<std::string>>();
    else s.attributes.set(key, attribute_from(item.second, key));
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
    else throw ValueError("Engine.compile: unknown optimizer setting '" + key + "'");
  }
  return o;
}

py::list weights_to_list(std::vector<Tensor> weights) {
  py::list out;
  for (Tensor& w : weights) out.append(to_numpy(std::move(w)));
  return out;
}

}  // namespace

void bind_model(py::module_& m) {
  m.def(
      "infer_output_shape",
      [](const py::list& configs, const std::string& input_name, const Shape& input_shape) {
        std::vector<LayerSpec> specs;
        for (auto c : configs) specs.push_back(layer_spec_from(c.cast<py::dict>()));
        return infer_output_shape(specs, input_name, input_shape);
      },
      py::arg("configs"), py::arg("input_name"), py::arg("input_shape"),
      "The per-example output shape of a graph of layer configs (Model.build's checks, no weights)");

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

  py::class_<Model>(m, "Engine", "The C++ model engine behind corenn.Sequential")
      .def(py::init([](const std::string& dtype) { return Model(parse_model_dtype(dtype)); }),
           py::arg("dtype") = "float32")
      .def_property_readonly("dtype", [](const Model& self) { return std::string(dtype_name(self.dtype())); })
      .def("add", [](Model& self, const py::dict& config) { self.add(layer_spec_from(config)); })
      .def_property("input_name", &Model::input_name, &Model::set_input_name)
      .def("build", [](Model& self, const Shape& input_shape) { self.build(input_shape); },
           py::arg("input_shape"))
      .def_property_readonly("built", &Model::built)
      .def_property_readonly("compiled", &Model::compiled)
      .def_property_readonly("num_layers", &Model::num_layers)
      .def_property_readonly("input_shape", &Model::input_shape)
      .def_property_readonly("steps", &Model::steps)
      .def("layer_name", [](const Model& self, size_t i) { return self.layer_spec(i).name; })
      .def("layer_config", [](const Model& self, size_t i) { return layer_config(self.layer_spec(i)); })
      .def("weight_names", &Model::weight_names)
      .def("output_shape", py::overload_cast<size_t>(&Model::output_shape, py::const_))
      .def("model_output_shape", py::overload_cast<>(&Model::output_shape, py::const_))
      .def("layer_inputs", &Model::layer_inputs)
      .def_property_readonly("output_layer", &Model::output_layer)
      .def("multiply_adds", &Model::multiply_adds)
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
      .def("compile",
           [](Model& self, const std::string& loss, const py::dict& optimizer) {
             self.compile(parse_loss(loss), optimizer_spec_from(optimizer));
           })
      .def("set_learning_rate", &Model::set_learning_rate, py::arg("lr"))
      .def("train_step",
           [](Model& self, const py::array& x, const py::array& y, bool labels,
              bool with_outputs, const py::object& sample_weight) -> py::object {
             auto [xa, ya] = batch_args(self, x, y, labels, "train_step");
             auto wa = weight_arg(self, sample_weight, "train_step");
             Tensor out;
             double loss;
             {
               ReleaseGil nogil;
               Tensor* o = with_outputs ? &out : nullptr;
               loss = wa ? self.train_step(xa.tensor, ya.tensor, wa->tensor, o)
                         : self.train_step(xa.tensor, ya.tensor, o);
             }
             if (!with_outputs) return py::float_(loss);
             return py::make_tuple(loss, to_numpy(std::move(out)));
           },
           py::arg("x"), py::arg("y"), py::arg("labels"), py::arg("with_outputs") = false,
           py::arg("sample_weight") = py::none())
      .def("loss_and_gradients",
           [](Model& self, const py::array& x, const py::array& y, bool labels,
              const py::object& sample_weight) {
             auto [xa, ya] = batch_args(self, x, y, labels, "loss_and_gradients");
             auto wa = weight_arg(self, sample_weight, "loss_and_gradients");
             Tensor grads;
             double loss;
             {
               ReleaseGil nogil;
               loss = wa ? self.loss_and_gradients(xa.tensor, ya.tensor, wa->tensor, &grads)
                         : self.loss_and_gradients(xa.tensor, ya.tensor, &grads);
             }
             return py::make_tuple(loss, to_numpy(std::move(grads)));
           },
           py::arg("x"), py::arg("y"), py::arg("labels"), py::arg("sample_weight") = py::none())
      .def("evaluate",
           [](const Model& self, const py::array& x, const py::array& y, bool labels,
              const py::object& sample_weight) {
             auto [xa, ya] = batch_args(self, x, y, labels, "evaluate");
             auto wa = weight_arg(self, sample_weight, "evaluate");
             Tensor out;
             double loss;
             {
               ReleaseGil nogil;
               loss = wa ? self.evaluate(xa.tensor, ya.tensor, wa->tensor, &out)
                         : self.evaluate(xa.tensor, ya.tensor, &out);
             }
             return py::make_tuple(loss, to_numpy(std::move(out)));
           },
           py::arg("x"), py::arg("y"), py::arg("labels"), py::arg("sample_weight") = py::none())
      .def("predict",
           [](const Model& self, const py::array& x) {
             TensorArg xa = tensor_arg(x, self.dtype(), "predict", "x");
             Tensor out;
             {
               ReleaseGil nogil;
               out = self.predict(xa.tensor);
             }
             return to_numpy(std::move(out));
           })
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
               args.push_back(tensor_arg(py::array::ensure(a), self.dtype(), "set_optimizer_state",
                                         "each state array"));
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
