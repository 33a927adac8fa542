// The layer registry and named attributes: defaults filled in, ints accepted
// where floats are expected, and every mistake (an unknown kind or attribute,
// a wrong type) a ValueError that names the layer and suggests the closest name.
#include <set>
#include <string>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/model.hpp"

using namespace corenn;

namespace {

// The message of the ValueError that f throws ("" when it throws none).
template <typename F>
std::string value_error(F&& f) {
  try {
    f();
  } catch (const ValueError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(registry_lists_every_kind_with_its_defaults) {
  const std::vector<LayerKindInfo> kinds = layer_kinds();
  std::set<std::string> names;
  for (const LayerKindInfo& k : kinds) names.insert(k.kind);
  CHECK(names.size() == kinds.size());
  CHECK(kinds.front().kind == *names.begin());  // sorted
  for (const char* kind : {"dense", "conv2d", "batch_norm", "add", "normalization", "up_sampling2d"})
    CHECK(names.count(kind) == 1);
  for (const LayerKindInfo& k : kinds) {
    if (k.kind != "dense") continue;
    CHECK(k.attributes.size() == 9);
    CHECK(k.attributes.get<int64_t>("units", "dense") == 0);
    CHECK(k.attributes.get<std::string>("activation", "dense") == "linear");
    CHECK(k.attributes.get<double>("l2", "dense") == 0.0);
    CHECK(k.attributes.get<bool>("use_bias", "dense"));
  }
}

TEST(attribute_values_keep_their_types) {
  CHECK(AttributeValue("relu").is<std::string>());  // not the bool a pointer converts to
  CHECK(AttributeValue(3).is<int64_t>() && AttributeValue(size_t{3}).is<int64_t>());
  CHECK(AttributeValue(0.5).is<double>() && AttributeValue(0.5f).is<double>());
  CHECK(AttributeValue(false).is<bool>());
  const LayerSpec s = LayerSpec("conv2d").set("kernel_size", {3, 3}).set("mean", {0.5, 1.0});
  CHECK(s.get<Ints>("kernel_size") == (Ints{3, 3}));
  CHECK(s.get<Reals>("mean") == (Reals{0.5, 1.0}));
  CHECK(AttributeValue(Ints{1, 2}).to_string() == "[1, 2]");
  CHECK(AttributeValue("same").to_string() == "'same'");
}

TEST(complete_spec_fills_defaults_and_converts_ints_to_floats) {
  const LayerSpec dense = complete_layer_spec(LayerSpec("dense", "fc").set("units", 3).set("l2", 1));
  CHECK(dense.attributes.size() == 9);
  CHECK(dense.get<int64_t>("units") == 3);
  CHECK(dense.get<double>("l2") == 1.0);
  CHECK(dense.get<std::string>("kernel_initializer") == "glorot_uniform");
  const LayerSpec norm = complete_layer_spec(LayerSpec("normalization").set("mean", {1, 2}).set("variance", Ints{}));
  CHECK(norm.get<Reals>("mean") == (Reals{1.0, 2.0}));
  CHECK(norm.get<Reals>("variance").empty());
  // The engine builds from them, and the defaults hold (stride 1, "valid").
  Model m;
  m.add(LayerSpec("conv2d").set("filters", 2).set("kernel_size", {3, 3}));
  m.add(LayerSpec("max_pool2d"));
  m.build({1, 8, 8});
  CHECK(m.output_shape(0) == (Shape{2, 6, 6}));
  CHECK(m.output_shape(1) == (Shape{2, 3, 3}));  // Keras's default pool size 2
}

TEST(registry_errors_name_the_layer_and_suggest) {
  Model m;
  std::string e = value_error([&] { m.add(LayerSpec("dense", "fc").set("unit", 3)); });
  CHECK(contains(e, "layer 'fc' (dense): unknown attribute 'unit'; did you mean 'units'?"));
  CHECK(contains(e, "dense takes activation, alpha, bias_initializer"));
  e = value_error([&] { m.add(LayerSpec("dense", "fc").set("units", "three")); });
  CHECK(contains(e, "layer 'fc' (dense): attribute 'units' must be int, got str 'three'"));
  e = value_error([&] { m.add(LayerSpec("dense", "fc").set("units", 3.0)); });
  CHECK(contains(e, "attribute 'units' must be int, got float 3"));
  e = value_error([&] { m.add(LayerSpec("conv2d", "c").set("filters", 2).set("kernel_size", {0.5, 1.0})); });
  CHECK(contains(e, "attribute 'kernel_size' must be list of ints, got list of floats [0.5, 1]"));
  // Integer hyper-parameters are bounded, so shape arithmetic on them cannot
  // overflow (LSTM units 2^62: 4 gates * units wrapped to 0-size weights).
  e = value_error([&] { m.add(LayerSpec("lstm", "r").set("units", int64_t{1} << 62)); });
  CHECK(contains(e, "layer 'r' (lstm): attribute 'units' must be at most 2147483647 in magnitude, got "
                    "4611686018427387904"));
  e = value_error([&] { m.add(LayerSpec("conv2d", "c").set("filters", 2).set("kernel_size", Ints{3, -(int64_t{1} << 40)})); });
  CHECK(contains(e, "layer 'c' (conv2d): attribute 'kernel_size' must be at most 2147483647 in magnitude"));
  e = value_error([&] { m.add(LayerSpec("flatten", "f").set("units", 3)); });
  CHECK(contains(e, "layer 'f' (flatten): unknown attribute 'units' (flatten takes none)"));
  e = value_error([&] { m.add(LayerSpec("dens", "x")); });
  CHECK(contains(e, "layer 'x': unknown kind 'dens'; did you mean 'dense'?"));
  CHECK(contains(e, "conv2d_transpose") && contains(e, "up_sampling2d"));
  e = value_error([&] { m.add(LayerSpec("transformer", "t")); });
  CHECK(contains(e, "unknown kind 'transformer' (the kinds: activation, add,"));
  CHECK(m.num_layers() == 0);
  // Hyper-parameters are checked by the layer itself.
  e = value_error([&] { m.add(LayerSpec("dense", "fc")); });
  CHECK(contains(e, "layer 'fc' (dense): units must be >= 1, got 0"));
  // Typed reads of a spec.
  const LayerSpec s = LayerSpec("dense", "fc").set("units", 3);
  e = value_error([&] { s.get<double>("units"); });
  CHECK(contains(e, "layer 'fc' (dense): attribute 'units' must be float, got int 3"));
  e = value_error([&] { s.get<std::string>("activation"); });
  CHECK(contains(e, "layer 'fc' (dense): attribute 'activation' (str) is not set"));
}
