// A layer's settings as named attributes (as ONNX attributes): "units" = 128,
// "activation" = "relu", "kernel_size" = [3, 3], and for a layer that wraps
// another (TimeDistributed, Bidirectional) "layer" = the inner layer's whole
// LayerSpec. Each layer kind declares the
// attributes it takes, with their defaults and so their types, in its engine
// file (src/engine/registry.hpp); a LayerSpec carries the values given.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

namespace corenn {

using Ints = std::vector<int64_t>;
using Reals = std::vector<double>;

struct LayerSpec;  // corenn/model.hpp

// A layer held by another as an attribute (the layer a TimeDistributed or a
// Bidirectional wraps): a whole LayerSpec, or none. A value, compared by
// content; the spec is shared, never changed, so copies are cheap. The model
// file stores it as a nested layer object, the Python config as a nested
// config dict (None for none).
class NestedLayer {
 public:
  NestedLayer() = default;  // none
  explicit NestedLayer(const LayerSpec& spec);
  bool empty() const { return !spec_; }
  const LayerSpec& spec() const;  // ValueError when empty
  bool operator==(const NestedLayer& other) const;
  bool operator!=(const NestedLayer& other) const { return !(*this == other); }

 private:
  std::shared_ptr<const LayerSpec> spec_;
};

// One attribute value: an int, a float, a bool, a string, a list of ints, a
// list of floats (the types a Python layer's get_config() emits) or a nested layer.
class AttributeValue {
 public:
  using Variant = std::variant<int64_t, double, bool, std::string, Ints, Reals, NestedLayer>;

  AttributeValue() = default;  // the int 0
  // Any integer type (int, size_t, int64_t) is an int; bool stays a bool.
  template <typename I, std::enable_if_t<std::is_integral_v<I> && !std::is_same_v<I, bool>, int> = 0>
  AttributeValue(I value) : value_(static_cast<int64_t>(value)) {}
  AttributeValue(bool value) : value_(value) {}
  AttributeValue(double value) : value_(value) {}
  // Without it a string literal would convert to bool.
  AttributeValue(const char* value) : value_(std::string(value)) {}
  AttributeValue(std::string value) : value_(std::move(value)) {}
  AttributeValue(Ints values) : value_(std::move(values)) {}
  AttributeValue(Reals values) : value_(std::move(values)) {}
  AttributeValue(NestedLayer layer) : value_(std::move(layer)) {}
  // A LayerSpec given where an attribute is expected is the nested layer:
  // LayerSpec("time_distributed").set("layer", LayerSpec("dense").set("units", 3)).
  AttributeValue(const LayerSpec& layer) : value_(NestedLayer(layer)) {}

  const Variant& value() const { return value_; }
  template <typename T>
  bool is() const { return std::holds_alternative<T>(value_); }
  // The value as T, which it must hold (see is<T>; Attributes::get checks).
  template <typename T>
  const T& as() const { return std::get<T>(value_); }
  // "int", "float", "bool", "str", "list of ints", "list of floats" or "layer".
  const char* type_name() const;
  // As Python would print it: 3, 0.5, true, 'relu', [1, 2]; a layer as
  // <dense 'inner'> (none: None).
  std::string to_string() const;

  bool operator==(const AttributeValue& other) const { return value_ == other.value_; }
  bool operator!=(const AttributeValue& other) const { return value_ != other.value_; }

 private:
  Variant value_;
};

// The name of T's attribute type, as AttributeValue::type_name() gives it.
template <typename T>
constexpr const char* attribute_type_name() {
  if constexpr (std::is_same_v<T, int64_t>) return "int";
  else if constexpr (std::is_same_v<T, double>) return "float";
  else if constexpr (std::is_same_v<T, bool>) return "bool";
  else if constexpr (std::is_same_v<T, std::string>) return "str";
  else if constexpr (std::is_same_v<T, Ints>) return "list of ints";
  else if constexpr (std::is_same_v<T, Reals>) return "list of floats";
  else {
    static_assert(std::is_same_v<T, NestedLayer>, "not an attribute type");
    return "layer";
  }
}

// Named attribute values, kept sorted by name.
class Attributes {
 public:
  using Map = std::map<std::string, AttributeValue>;

  Attributes() = default;
  Attributes(std::initializer_list<Map::value_type> values) : values_(values) {}

  void set(const std::string& name, AttributeValue value) { values_[name] = std::move(value); }
  // The value, or nullptr when it is not set.
  const AttributeValue* find(const std::string& name) const;
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  void erase(const std::string& name) { values_.erase(name); }
  size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  Map::const_iterator begin() const { return values_.begin(); }
  Map::const_iterator end() const { return values_.end(); }

  // The value of a T attribute. ValueError "<owner>: attribute 'units' is
  // not set" or "<owner>: attribute 'units' must be int, got str 'three'".
  template <typename T>
  const T& get(const std::string& name, const std::string& owner) const {
    const AttributeValue* v = find(name);
    if (!v || !v->is<T>()) throw_bad_attribute(name, owner, attribute_type_name<T>(), v);
    return v->as<T>();
  }

  bool operator==(const Attributes& other) const { return values_ == other.values_; }
  bool operator!=(const Attributes& other) const { return values_ != other.values_; }

 private:
  [[noreturn]] static void throw_bad_attribute(const std::string& name, const std::string& owner,
                                               const char* expected, const AttributeValue* got);
  Map values_;
};

}  // namespace corenn
