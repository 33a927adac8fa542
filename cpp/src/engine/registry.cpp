#include "engine/registry.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "corenn/error.hpp"

namespace corenn {
namespace detail {

namespace {

// Constructed on first use: the registrations in other files run during
// static initialisation, in an order nobody controls.
std::map<std::string, LayerKind>& registry() {
  static std::map<std::string, LayerKind> kinds;
  return kinds;
}

std::vector<std::string> names_of(const std::map<std::string, LayerKind>& kinds) {
  std::vector<std::string> names;
  for (const auto& k : kinds) names.push_back(k.first);
  return names;
}

std::vector<std::string> names_of(const Attributes& attributes) {
  std::vector<std::string> names;
  for (const auto& a : attributes) names.push_back(a.first);
  return names;
}

std::string joined_names(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string suggestion(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string near = closest_name(word, candidates);
  return near.empty() ? "" : "; did you mean '" + near + "'?";
}

// Levenshtein distance.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The value of an attribute given as `value` where the kind's default is
// `want`: the same type, or an int (list of ints) where a float (list of
// floats) is expected, converted; ValueError otherwise.
AttributeValue converted(const AttributeValue& value, const AttributeValue& want, const std::string& name,
                         const std::string& owner) {
  if (value.value().index() == want.value().index()) return value;
  if (want.is<double>() && value.is<int64_t>()) return static_cast<double>(value.as<int64_t>());
  if (want.is<Reals>() && value.is<Ints>()) return Reals(value.as<Ints>().begin(), value.as<Ints>().end());
  throw ValueError(owner + ": attribute '" + name + "' must be " + want.type_name() + ", got " +
                   value.type_name() + " " + value.to_string());
}

}  // namespace

LayerRegistration::LayerRegistration(LayerKind kind) {
  const std::string name = kind.kind;
  if (!registry().emplace(name, std::move(kind)).second)
    throw std::logic_error("corenn: layer kind '" + name + "' is registered twice");
}

Attributes joined(Attributes a, const Attributes& b) {
  for (const auto& entry : b) a.set(entry.first, entry.second);
  return a;
}

std::string closest_name(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, word.size() / 3) + 1;  // farther is no misspelling
  for (const std::string& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  return best;
}

const LayerKind& find_layer_kind(const LayerSpec& spec) {
  const auto& kinds = registry();
  const auto it = kinds.find(spec.kind);
  if (it == kinds.end())
    throw ValueError("layer '" + spec.name + "': unknown kind '" + spec.kind + "'" +
                     suggestion(spec.kind, names_of(kinds)) + " (the kinds: " + joined_names(names_of(kinds)) +
                     ")");
  return it->second;
}

template <typename T>
std::unique_ptr<Layer<T>> make_layer(const LayerSpec& spec) {
  const LayerKind& kind = find_layer_kind(spec);
  const LayerSpec complete = complete_layer_spec(spec);
  if constexpr (std::is_same_v<T, float>) return kind.make_float(complete);
  else return kind.make_double(complete);
}

template std::unique_ptr<Layer<float>> make_layer<float>(const LayerSpec&);
template std::unique_ptr<Layer<double>> make_layer<double>(const LayerSpec&);

}  // namespace detail

std::vector<LayerKindInfo> layer_kinds() {
  std::vector<LayerKindInfo> out;
  for (const auto& k : detail::registry()) out.push_back({k.first, k.second.attributes});
  return out;
}

LayerSpec complete_layer_spec(const LayerSpec& spec) {
  const detail::LayerKind& kind = detail::find_layer_kind(spec);
  const std::string owner = detail::layer_label(spec);
  LayerSpec out = spec;
  out.attributes = kind.attributes;
  for (const auto& given : spec.attributes) {
    const AttributeValue* want = kind.attributes.find(given.first);
    if (!want) {
      const std::vector<std::string> names = detail::names_of(kind.attributes);
      throw ValueError(owner + ": unknown attribute '" + given.first + "'" + detail::suggestion(given.first, names) +
                       " (" + spec.kind + " takes " + (names.empty() ? "none" : detail::joined_names(names)) + ")");
    }
    AttributeValue value = detail::converted(given.second, *want, given.first, owner);
    // Integer hyper-parameters are sizes and counts: bounded, so the shape
    // arithmetic on them stays in int64 (a file or a config may hold any int).
    const Ints ints = value.is<int64_t>() ? Ints{value.as<int64_t>()} : value.is<Ints>() ? value.as<Ints>() : Ints{};
    for (int64_t v : ints)
      if (v > kMaxIntHyperParameter || v < -kMaxIntHyperParameter)
        throw ValueError(owner + ": attribute '" + given.first + "' must be at most " +
                         std::to_string(kMaxIntHyperParameter) + " in magnitude, got " + value.to_string());
    // A nested layer is completed too (and so checked): the model file and
    // layer_config hold every attribute of the inner layer as well.
    if (value.is<NestedLayer>() && !value.as<NestedLayer>().empty())
      value = NestedLayer(complete_layer_spec(value.as<NestedLayer>().spec()));
    out.attributes.set(given.first, std::move(value));
  }
  return out;
}

}  // namespace corenn
