// The layer registry. Each layer kind registers itself in its engine file:
// its name, the attributes it takes with their defaults (a default's type is
// the attribute's type) and the class that implements it:
//
//   const LayerRegistration dense_kind(layer_kind<Dense>("dense", {{"units", 0}, ...}));
//
// make_layer, layer_kinds() (and through it the bindings, from_config and the
// "every layer kind" tests) and the model file read the registry; nothing else
// lists the kinds. The registrations are static objects, constructed when
// libcorenn loads: a shared library is linked whole, so none is dropped (a
// static archive could leave out a file that nothing references).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "corenn/model.hpp"
#include "engine/layers.hpp"

namespace corenn {
namespace detail {

struct LayerKind {
  std::string kind;
  Attributes attributes;  // every attribute the kind takes, with its default
  std::unique_ptr<Layer<float>> (*make_float)(const LayerSpec&);
  std::unique_ptr<Layer<double>> (*make_double)(const LayerSpec&);
};

// The kind implemented by L<float> and L<double>, each constructed from a
// completed spec (every attribute of the kind set, with its type): the
// constructor reads the attributes into typed members and validates them.
template <template <typename> class L>
LayerKind layer_kind(std::string kind, Attributes attributes) {
  return {std::move(kind), std::move(attributes),
          [](const LayerSpec& spec) -> std::unique_ptr<Layer<float>> { return std::make_unique<L<float>>(spec); },
          [](const LayerSpec& spec) -> std::unique_ptr<Layer<double>> { return std::make_unique<L<double>>(spec); }};
}

// Adds a kind to the registry (a second kind of the same name is a bug: the
// library fails to load, naming it).
struct LayerRegistration {
  explicit LayerRegistration(LayerKind kind);
};

// a's attributes and b's (kinds built from shared groups, e.g. KernelSettings).
Attributes joined(Attributes a, const Attributes& b);

// The registered kind spec.kind names; ValueError naming the layer, listing
// the kinds and suggesting the closest name otherwise.
const LayerKind& find_layer_kind(const LayerSpec& spec);

// The candidate nearest to word (fewest single-character edits), or "" when
// none is near enough to be a likely misspelling.
std::string closest_name(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace detail
}  // namespace corenn
