#include "corenn/attributes.hpp"

#include <sstream>

#include "corenn/error.hpp"
#include "corenn/model.hpp"

namespace corenn {

NestedLayer::NestedLayer(const LayerSpec& spec) : spec_(std::make_shared<const LayerSpec>(spec)) {}

const LayerSpec& NestedLayer::spec() const {
  if (!spec_) throw ValueError("no nested layer is set");
  return *spec_;
}

bool NestedLayer::operator==(const NestedLayer& other) const {
  if (empty() || other.empty()) return empty() == other.empty();
  const LayerSpec &a = *spec_, &b = *other.spec_;
  return a.kind == b.kind && a.name == b.name && a.inputs == b.inputs && a.trainable == b.trainable &&
         a.attributes == b.attributes;
}

const char* AttributeValue::type_name() const {
  return std::visit([](const auto& v) { return attribute_type_name<std::decay_t<decltype(v)>>(); }, value_);
}

namespace {

void print(std::ostringstream& out, int64_t v) { out << v; }
void print(std::ostringstream& out, double v) { out << v; }
void print(std::ostringstream& out, bool v) { out << (v ? "true" : "false"); }
void print(std::ostringstream& out, const std::string& v) { out << '\'' << v << '\''; }
void print(std::ostringstream& out, const NestedLayer& v) {
  if (v.empty()) out << "None";
  else out << '<' << v.spec().kind << " '" << v.spec().name << "'>";
}
template <typename E>
void print(std::ostringstream& out, const std::vector<E>& v) {
  out << '[';
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out << ", ";
    print(out, v[i]);
  }
  out << ']';
}

}  // namespace

std::string AttributeValue::to_string() const {
  std::ostringstream out;
  std::visit([&](const auto& v) { print(out, v); }, value_);
  return out.str();
}

const AttributeValue* Attributes::find(const std::string& name) const {
  const auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

void Attributes::throw_bad_attribute(const std::string& name, const std::string& owner, const char* expected,
                                     const AttributeValue* got) {
  if (!got) throw ValueError(owner + ": attribute '" + name + "' (" + expected + ") is not set");
  throw ValueError(owner + ": attribute '" + name + "' must be " + expected + ", got " + got->type_name() + " " +
                   got->to_string());
}

}  // namespace corenn
