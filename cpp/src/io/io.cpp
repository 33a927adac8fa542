// The model file (corenn/io.hpp): safetensors layout, a strict reader that
// checks every length, offset and shape against the file before it trusts
// them, and an atomic writer (temporary file, fsync, rename).
#include "corenn/io.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <set>
#include <type_traits>
#include <variant>

#include "corenn/error.hpp"
#include "engine/registry.hpp"
#include "io/json.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the model file stores little-endian tensors; this host is big-endian"
#endif

namespace corenn {

namespace {

constexpr const char* kFormatName = "corenn";
// safetensors' own cap: a larger header is not a model file, whatever it says.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
// Every integer of a layer setting or shape in a file: far beyond any real
// model, and small enough that the engine's shape arithmetic cannot overflow.
constexpr int64_t kMaxSetting = (int64_t{1} << 31) - 1;
constexpr size_t kMaxRank = 8;
// The metadata entries this file owns; extra_metadata may not use them.
const char* const kReserved[] = {"format", "format_version", "model", "training"};

using json::Value;

// ------------------------------------------------------------------ dtypes

const char* dtype_code(DType d) {
  switch (d) {
    case DType::float32: return "F32";
    case DType::float64: return "F64";
    case DType::int64: return "I64";
  }
  return "?";
}

size_t dtype_bytes(DType d) { return d == DType::float32 ? 4 : 8; }

char* bytes_of(Tensor& t) {
  if (t.dtype() == DType::float32) return reinterpret_cast<char*>(t.data_as<float>());
  if (t.dtype() == DType::float64) return reinterpret_cast<char*>(t.data_as<double>());
  return reinterpret_cast<char*>(t.data_as<int64_t>());
}
const char* bytes_of(const Tensor& t) { return bytes_of(const_cast<Tensor&>(t)); }

bool parse_dtype_code(const std::string& code, DType& out) {
  if (code == "F32") out = DType::float32;
  else if (code == "F64") out = DType::float64;
  else if (code == "I64") out = DType::int64;
  else return false;
  return true;
}

// ------------------------------------------------ layer specs <-> JSON

Value to_json(const std::string& v) { return Value(v); }
Value to_json(int64_t v) { return Value(v); }
Value to_json(double v) { return Value(v); }
Value to_json(bool v) { return Value(v); }
Value spec_to_json(const LayerSpec& spec);
Value to_json(const NestedLayer& v) { return v.empty() ? Value() : spec_to_json(v.spec()); }
template <typename E>
Value to_json(const std::vector<E>& v) {
  Value a = Value::array();
  for (const E& e : v) a.push_back(to_json(e));
  return a;
}

int64_t bounded_int(const Value& v, const std::string& what) {
  const int64_t i = v.as_int(what);
  if (i < -kMaxSetting || i > kMaxSetting)
    throw ValueError(what + " = " + std::to_string(i) + " is out of range (|value| <= " +
                     std::to_string(kMaxSetting) + ")");
  return i;
}

void from_json(const Value& v, std::string& out, const std::string& what) { out = v.as_string(what); }
void from_json(const Value& v, int64_t& out, const std::string& what) { out = bounded_int(v, what); }
void from_json(const Value& v, double& out, const std::string& what) { out = v.as_double(what); }
void from_json(const Value& v, bool& out, const std::string& what) { out = v.as_bool(what); }
template <typename E>
void from_json(const Value& v, std::vector<E>& out, const std::string& what) {
  const auto& items = v.as_array(what);
  out.assign(items.size(), E());
  for (size_t i = 0; i < items.size(); ++i) from_json(items[i], out[i], what + "[" + std::to_string(i) + "]");
}

Value attribute_to_json(const AttributeValue& a) {
  return std::visit([](const auto& v) { return to_json(v); }, a.value());
}

// A layer: its kind, name, inputs and trainable flag, then every attribute of
// its kind (defaults filled in), so a file does not depend on today's defaults.
Value spec_to_json(const LayerSpec& spec) {
  const LayerSpec complete = complete_layer_spec(spec);
  Value obj = Value::object();
  obj.set("kind", Value(complete.kind));
  obj.set("name", Value(complete.name));
  obj.set("inputs", to_json(complete.inputs));
  obj.set("trainable", Value(complete.trainable));
  for (const auto& a : complete.attributes) obj.set(a.first, attribute_to_json(a.second));
  return obj;
}

LayerSpec spec_from_json(const Value& v, const std::string& what, int64_t version);

// An attribute by its JSON type: an integer literal is an int, any other
// number a float, an array of integers a list of ints, of numbers a list of
// floats, an object a nested layer (null: none). The engine then checks it
// against the kind (an int where a float is expected is converted, as in Python).
AttributeValue attribute_from_json(const Value& v, const std::string& what, int64_t version) {
  switch (v.type()) {
    case Value::Type::null: return NestedLayer();
    case Value::Type::object: return NestedLayer(spec_from_json(v, what, version));
    case Value::Type::boolean: return v.as_bool(what);
    case Value::Type::string: return v.as_string(what);
    case Value::Type::number:
      if (v.is_int()) return bounded_int(v, what);
      return v.as_double(what);
    case Value::Type::array: {
      const auto& items = v.as_array(what);
      const bool ints = std::all_of(items.begin(), items.end(), [](const Value& e) { return e.is_int(); });
      if (ints) {
        Ints out;
        from_json(v, out, what);
        return out;
      }
      Reals out;
      from_json(v, out, what);
      return out;
    }
    default:
      throw ValueError(what + " must be a bool, a number, a string, an array of numbers or a layer");
  }
}

// Format version 1 (every file written before the layer registry) stores every
// field of the one struct all kinds shared, for every layer: each kind keeps
// the attributes it takes and drops these others. Any other unknown name is an
// error, in every version.
bool version1_field(const std::string& name) {
  static const std::set<std::string> fields{
      "units", "use_bias", "kernel_initializer", "bias_initializer", "initializer_stddev", "l1", "l2",
      "activation", "alpha", "rate", "target_shape", "filters", "kernel_size", "strides", "padding", "pads",
      "dilation", "groups", "depth_multiplier", "output_padding", "axis", "momentum", "epsilon", "center",
      "scale", "mode", "delta", "mean", "variance", "size", "interpolation"};
  return fields.count(name) != 0;
}

LayerSpec spec_from_json(const Value& v, const std::string& what, int64_t version) {
  LayerSpec spec;
  for (const auto& member : v.as_object(what)) {
    const std::string& key = member.first;
    const std::string where = what + "." + key;
    if (key == "kind") from_json(member.second, spec.kind, where);
    else if (key == "name") from_json(member.second, spec.name, where);
    else if (key == "inputs") from_json(member.second, spec.inputs, where);
    else if (key == "trainable") from_json(member.second, spec.trainable, where);
    else spec.attributes.set(key, attribute_from_json(member.second, where, version));
  }
  if (spec.kind.empty() || spec.name.empty())
    throw ValueError(what + ": a layer needs a non-empty 'kind' and 'name'");
  if (version == 1) {
    const Attributes& takes = detail::find_layer_kind(spec).attributes;
    std::vector<std::string> dropped;
    for (const auto& a : spec.attributes)
      if (!takes.has(a.first) && version1_field(a.first)) dropped.push_back(a.first);
    for (const std::string& name : dropped) spec.attributes.erase(name);
  }
  return spec;
}

// --------------------------------------------- optimizer settings <-> JSON

// f(group, name, field) for every setting of an OptimizerSpec but its kind.
template <typename O, typename F>
void for_each_optimizer_field(O& o, F&& f) {
  f("sgd", "lr", o.sgd.lr); f("sgd", "momentum", o.sgd.momentum);
  f("sgd", "dampening", o.sgd.dampening); f("sgd", "weight_decay", o.sgd.weight_decay);
  f("sgd", "nesterov", o.sgd.nesterov);
  f("rmsprop", "lr", o.rmsprop.lr); f("rmsprop", "alpha", o.rmsprop.alpha);
  f("rmsprop", "eps", o.rmsprop.eps); f("rmsprop", "weight_decay", o.rmsprop.weight_decay);
  f("adam", "lr", o.adam.lr); f("adam", "beta1", o.adam.beta1); f("adam", "beta2", o.adam.beta2);
  f("adam", "eps", o.adam.eps); f("adam", "weight_decay", o.adam.weight_decay);
  f("adam", "decoupled", o.adam.decoupled);
}

Value optimizer_to_json(const OptimizerSpec& o) {
  const char* names[3] = {"sgd", "rmsprop", "adam"};
  Value groups[3] = {Value::object(), Value::object(), Value::object()};
  for_each_optimizer_field(o, [&](const char* group, const char* name, const auto& field) {
    for (int g = 0; g < 3; ++g)
      if (std::strcmp(group, names[g]) == 0) groups[g].set(name, to_json(field));
  });
  Value obj = Value::object();
  obj.set("kind", Value(o.kind));
  for (int g = 0; g < 3; ++g) obj.set(names[g], std::move(groups[g]));
  return obj;
}

OptimizerSpec optimizer_from_json(const Value& v, const std::string& what) {
  OptimizerSpec o;
  for (const auto& member : v.as_object(what)) {
    if (member.first == "kind") {
      o.kind = member.second.as_string(what + ".kind");
      continue;
    }
    const std::string group_what = what + "." + member.first;
    if (member.first != "sgd" && member.first != "rmsprop" && member.first != "adam")
      throw ValueError(what + ": unknown optimizer setting '" + member.first + "'");
    for (const auto& setting : member.second.as_object(group_what)) {
      bool found = false;
      for_each_optimizer_field(o, [&](const char* group, const char* name, auto& field) {
        if (found || member.first != group || setting.first != name) return;
        found = true;
        from_json(setting.second, field, group_what + "." + name);
      });
      if (!found) throw ValueError(group_what + ": unknown optimizer setting '" + setting.first + "'");
    }
  }
  return o;
}

// The optimizer's slots, in get_optimizer_state order.
std::vector<std::string> slot_names(const std::string& kind, size_t count) {
  std::vector<std::string> names;
  if (kind == "sgd") names = {"velocity"};
  else if (kind == "rmsprop") names = {"square_avg"};
  else names = {"m", "v"};
  names.resize(count);
  return names;
}

// ------------------------------------------------------------ file access

std::string errno_text() { return std::strerror(errno); }

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void read_exactly(int fd, char* out, uint64_t n, uint64_t offset, const std::string& what) {
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    const ssize_t got = ::pread(fd, out, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw IOError(what + ": read failed: " + errno_text());
    if (got == 0) throw IOError(what + ": the file shrank while it was read");
    out += got;
    n -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
}

void write_all(int fd, const void* data, size_t n, const std::string& what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t put = ::write(fd, p, std::min<size_t>(n, 1u << 30));
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) throw IOError(what + ": write failed: " + errno_text());
    p += put;
    n -= static_cast<size_t>(put);
  }
}

struct Blob {
  std::string name;
  Tensor tensor;
};

// Writes `path` through a temporary file in the same directory (so the rename
// cannot cross file systems): a crash or error at any point leaves either the
// old file or the new one, never a mixture.
void write_atomically(const std::string& path, const std::string& header, const std::vector<Blob>& blobs,
                      const std::string& what) {
  std::string tmp = path + ".tmp-XXXXXX";
  Fd f;
  f.fd = ::mkstemp(&tmp[0]);
  if (f.fd < 0) throw IOError(what + ": cannot create a temporary file beside it: " + errno_text());
  try {
    // mkstemp makes the file private (0600); a model file is as readable as the
    // one it replaces, or 0644.
    struct stat old;
    const mode_t mode = ::stat(path.c_str(), &old) == 0 ? (old.st_mode & 07777) : 0644;
    if (::fchmod(f.fd, mode) != 0) throw IOError(what + ": chmod failed: " + errno_text());
    unsigned char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(static_cast<uint64_t>(header.size()) >> (8 * i));
    write_all(f.fd, length, 8, what);
    write_all(f.fd, header.data(), header.size(), what);
    for (const Blob& b : blobs)
      write_all(f.fd, bytes_of(b.tensor), static_cast<size_t>(b.tensor.size()) * dtype_bytes(b.tensor.dtype()),
                what);
    if (::fsync(f.fd) != 0) throw IOError(what + ": fsync failed: " + errno_text());
    const int fd = f.fd;
    f.fd = -1;
    if (::close(fd) != 0) throw IOError(what + ": close failed: " + errno_text());
    if (::rename(tmp.c_str(), path.c_str()) != 0) throw IOError(what + ": cannot replace the file: " + errno_text());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // The rename is durable once the directory is synced; a failure here cannot
  // undo it, so it is not reported.
  const size_t slash = path.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
  Fd d;
  d.fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.fd >= 0) ::fsync(d.fd);
}

// A tensor's place in the data section, checked against the file.
struct StoredTensor {
  DType dtype = DType::float32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // relative to the first byte after the header
  bool used = false;
};

struct FileContents {
  int64_t version = 0;  // format_version
  std::map<std::string, std::string> metadata;
  std::map<std::string, StoredTensor> tensors;
  std::vector<char> data;
};

StoredTensor parse_tensor_entry(const std::string& name, const Value& entry, uint64_t data_size) {
  const std::string what = "tensor " + json::quote(name);
  StoredTensor t;
  const auto& members = entry.as_object(what);
  if (members.size() != 3 || !entry.find("dtype") || !entry.find("shape") || !entry.find("data_offsets"))
    throw ValueError(what + ": expected exactly the keys dtype, shape and data_offsets");
  const std::string& code = entry.find("dtype")->as_string(what + " dtype");
  if (!parse_dtype_code(code, t.dtype))
    throw ValueError(what + ": unsupported dtype '" + code + "' (expected F32, F64 or I64)");
  const auto& dims = entry.find("shape")->as_array(what + " shape");
  if (dims.size() > kMaxRank) throw ValueError(what + ": rank " + std::to_string(dims.size()) + " exceeds 8");
  uint64_t count = 1;
  for (const Value& d : dims) {
    const int64_t n = d.as_int(what + " shape");
    if (n < 0) throw ValueError(what + ": negative dimension " + std::to_string(n));
    t.shape.push_back(n);
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(n), &count))
      throw ValueError(what + ": shape " + shape_string(t.shape) + " overflows");
  }
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(count, static_cast<uint64_t>(dtype_bytes(t.dtype)), &bytes))
    throw ValueError(what + ": shape " + shape_string(t.shape) + " overflows");
  const auto& offsets = entry.find("data_offsets")->as_array(what + " data_offsets");
  if (offsets.size() != 2) throw ValueError(what + ": data_offsets must be [begin, end]");
  const int64_t begin = offsets[0].as_int(what + " data_offsets"), end = offsets[1].as_int(what + " data_offsets");
  if (begin < 0 || end < begin || static_cast<uint64_t>(end) > data_size)
    throw ValueError(what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                     "] lie outside the " + std::to_string(data_size) + " data bytes (a truncated file?)");
  t.begin = static_cast<uint64_t>(begin);
  t.end = static_cast<uint64_t>(end);
  if (t.end - t.begin != bytes)
    throw ValueError(what + ": " + std::to_string(t.end - t.begin) + " data bytes do not match " + code +
                     " shape " + shape_string(t.shape) + " (" + std::to_string(bytes) + " bytes)");
  return t;
}

// Reads and validates the container: header, metadata, tensor table, data.
FileContents read_file(const std::string& path, const std::string& what) {
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd < 0) throw IOError(what + ": cannot open: " + errno_text());
  struct stat st;
  if (::fstat(f.fd, &st) != 0) throw IOError(what + ": cannot stat: " + errno_text());
  if (S_ISDIR(st.st_mode)) throw IOError(what + ": is a directory, not a model file");
  if (!S_ISREG(st.st_mode)) throw IOError(what + ": not a regular file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size < 8)
    throw ValueError(what + ": " + std::to_string(size) + " bytes is too short for a model file");
  unsigned char length[8];
  read_exactly(f.fd, reinterpret_cast<char*>(length), 8, 0, what);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | length[i];
  if (n > kMaxHeaderBytes)
    throw ValueError(what + ": header length " + std::to_string(n) +
                     " exceeds the 100 MiB limit: not a model file");
  if (n > size - 8)
    throw ValueError(what + ": header length " + std::to_string(n) + " exceeds the file's " +
                     std::to_string(size - 8) + " remaining bytes (a truncated file?)");
  std::string header(static_cast<size_t>(n), '\0');
  read_exactly(f.fd, &header[0], n, 8, what);
  const Value root = json::parse(header, what + ": header");
  const uint64_t data_size = size - 8 - n;

  FileContents out;
  root.as_object(what + ": header");
  const Value* meta = root.find("__metadata__");
  if (!meta)
    throw ValueError(what + ": no __metadata__ in the header: not a corenn model file "
                     "(a safetensors file from another library?)");
  for (const auto& m : meta->as_object(what + ": __metadata__"))
    out.metadata[m.first] = m.second.as_string(what + ": __metadata__ entry '" + m.first + "'");
  const auto format = out.metadata.find("format");
  if (format == out.metadata.end() || format->second != kFormatName)
    throw ValueError(what + ": not a corenn model file (__metadata__ format is " +
                     (format == out.metadata.end() ? std::string("missing") : json::quote(format->second)) +
                     ", expected \"corenn\")");
  const auto version = out.metadata.find("format_version");
  int64_t v = 0;
  const std::string vs = version == out.metadata.end() ? "" : version->second;
  auto r = std::from_chars(vs.data(), vs.data() + vs.size(), v);
  if (vs.empty() || r.ec != std::errc() || r.ptr != vs.data() + vs.size() || v < 1)
    throw ValueError(what + ": bad format_version " + json::quote(vs));
  if (v > model_file_version)
    throw ValueError(what + ": the file has format version " + vs + ", newer than this corenn reads (" +
                     std::to_string(model_file_version) + "); upgrade corenn to load it");
  out.version = v;

  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& m : root.as_object(what + ": header")) {
    if (m.first == "__metadata__") continue;
    StoredTensor t;
    try {
      t = parse_tensor_entry(m.first, m.second, data_size);
    } catch (const ValueError& e) {
      throw ValueError(what + ": " + e.what());
    }
    ranges.emplace_back(t.begin, t.end);
    out.tensors.emplace(m.first, std::move(t));
  }
  // As safetensors: the tensors tile the data section, no gaps, no overlaps.
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& rg : ranges) {
    if (rg.first != at)
      throw ValueError(what + ": tensor data " + (rg.first < at ? "overlaps" : "leaves a gap") + " at byte " +
                       std::to_string(std::min(rg.first, at)));
    at = rg.second;
  }
  if (at != data_size)
    throw ValueError(what + ": " + std::to_string(data_size - at) + " bytes after the last tensor");
  out.data.resize(static_cast<size_t>(data_size));
  if (data_size) read_exactly(f.fd, out.data.data(), data_size, 8 + n, what);
  return out;
}

Tensor take_tensor(FileContents& f, const std::string& name, DType dtype, const Shape& shape,
                   const std::string& why) {
  auto it = f.tensors.find(name);
  if (it == f.tensors.end())
    throw ValueError("the file has no tensor " + json::quote(name) + " (" + why + ")");
  StoredTensor& t = it->second;
  if (t.dtype != dtype || t.shape != shape)
    throw ValueError("tensor " + json::quote(name) + " is " + dtype_code(t.dtype) + " " + shape_string(t.shape) +
                     ", expected " + dtype_code(dtype) + " " + shape_string(shape) + " (" + why + ")");
  t.used = true;
  Tensor out(shape, dtype);
  if (t.end > t.begin) std::memcpy(bytes_of(out), f.data.data() + t.begin, static_cast<size_t>(t.end - t.begin));
  return out;
}

TensorRef tensor_ref_from_json(const Value& v, const std::string& what) {
  const auto& a = v.as_array(what);
  if (a.size() != 3) throw ValueError(what + " must be [layer, node, output]");
  return TensorRef{a[0].as_string(what + "[0]"), bounded_int(a[1], what + "[1]"), bounded_int(a[2], what + "[2]")};
}

Value tensor_ref_to_json(const TensorRef& r) {
  Value v = Value::array();
  v.push_back(Value(r.layer));
  v.push_back(Value(r.node));
  v.push_back(Value(r.output));
  return v;
}

// Version 1 held one input (input_name, input_shape) and each layer's inputs
// by name (the stack shorthand); version 2 holds the graph: inputs, the calls
// of each layer on tensors, and the outputs.
Model architecture_from_json(const Value& arch, int64_t version) {
  const std::string what = "architecture";
  const std::vector<std::string> keys = version == 1
      ? std::vector<std::string>{"dtype", "input_name", "input_shape", "layers"}
      : std::vector<std::string>{"dtype", "inputs", "layers", "calls", "outputs"};
  for (const auto& m : arch.as_object(what))
    if (std::find(keys.begin(), keys.end(), m.first) == keys.end())
      throw ValueError(what + ": unknown entry '" + m.first + "'");
  std::string needed;
  for (const std::string& k : keys) {
    needed += (needed.empty() ? "" : ", ") + k;
    if (!arch.find(k)) throw ValueError(what + ": needs " + needed + "... (missing " + k + ")");
  }
  const std::string& dt = arch.find("dtype")->as_string(what + ".dtype");
  if (dt != "float32" && dt != "float64")
    throw ValueError(what + ".dtype must be \"float32\" or \"float64\", got " + json::quote(dt));
  Model model(dt == "float32" ? DType::float32 : DType::float64);
  if (version == 1) {
    Shape shape;
    from_json(*arch.find("input_shape"), shape, what + ".input_shape");
    model.set_input_name(arch.find("input_name")->as_string(what + ".input_name"));
    model.add_input(model.input_name(), shape);
  } else {
    const auto& inputs = arch.find("inputs")->as_array(what + ".inputs");
    for (size_t i = 0; i < inputs.size(); ++i) {
      const std::string w = what + ".inputs[" + std::to_string(i) + "]";
      const Value* name = inputs[i].find("name");
      const Value* shape = inputs[i].find("shape");
      if (!name || !shape) throw ValueError(w + " needs name and shape");
      Shape s;
      from_json(*shape, s, w + ".shape");
      model.add_input(name->as_string(w + ".name"), s);
    }
  }
  const auto& specs = arch.find("layers")->as_array(what + ".layers");
  for (size_t i = 0; i < specs.size(); ++i)
    model.add(spec_from_json(specs[i], what + ".layers[" + std::to_string(i) + "]", version));
  if (version >= 2) {
    const auto& calls = arch.find("calls")->as_array(what + ".calls");
    for (size_t c = 0; c < calls.size(); ++c) {
      const std::string w = what + ".calls[" + std::to_string(c) + "]";
      const Value* layer = calls[c].find("layer");
      const Value* inputs = calls[c].find("inputs");
      if (!layer || !inputs) throw ValueError(w + " needs layer and inputs");
      std::vector<TensorRef> refs;
      const auto& list = inputs->as_array(w + ".inputs");
      for (size_t k = 0; k < list.size(); ++k)
        refs.push_back(tensor_ref_from_json(list[k], w + ".inputs[" + std::to_string(k) + "]"));
      model.call(layer->as_string(w + ".layer"), refs);
    }
    std::vector<TensorRef> outputs;
    const auto& list = arch.find("outputs")->as_array(what + ".outputs");
    for (size_t k = 0; k < list.size(); ++k)
      outputs.push_back(tensor_ref_from_json(list[k], what + ".outputs[" + std::to_string(k) + "]"));
    model.set_outputs(outputs);
  }
  return model;
}

Model model_from_file(FileContents& f) {
  const auto arch_text = f.metadata.find("model");
  if (arch_text == f.metadata.end()) throw ValueError("no 'model' entry in __metadata__");
  const Value arch = json::parse(arch_text->second, "the architecture ('model' metadata)");
  Model model = architecture_from_json(arch, f.version);
  const DType model_dtype = model.dtype();
  // The layers' weights and state all come from the file, so the file's size
  // bounds them: a forged setting (units = 2^31) fails here, before any allocation.
  int64_t values = 0;
  for (const auto& t : f.tensors)
    values += static_cast<int64_t>((t.second.end - t.second.begin) / dtype_bytes(t.second.dtype));
  model.build_capped(values);

  for (size_t i = 0; i < model.num_layers(); ++i) {
    const LayerSpec& spec = model.layer_spec(i);
    const std::vector<std::string> names = model.weight_names(i);
    std::vector<Tensor> weights = model.get_weights(i);
    for (size_t w = 0; w < weights.size(); ++w)
      weights[w] = take_tensor(f, spec.name + "/" + names[w], model_dtype, weights[w].shape(),
                               "the " + names[w] + " of " + "layer '" + spec.name + "' (" + spec.kind + ")");
    model.set_weights(i, weights);
  }

  const auto training = f.metadata.find("training");
  if (training != f.metadata.end()) {
    const Value t = json::parse(training->second, "the training settings ('training' metadata)");
    const std::string tw = "training";
    for (const auto& m : t.as_object(tw))
      if (m.first != "loss" && m.first != "loss_weights" && m.first != "optimizer" && m.first != "dropout_key")
        throw ValueError(tw + ": unknown entry '" + m.first + "'");
    const Value* loss = t.find("loss");
    const Value* optimizer = t.find("optimizer");
    const Value* key = t.find("dropout_key");
    if (!loss || !optimizer || !key) throw ValueError(tw + ": needs loss, optimizer and dropout_key");
    // Version 1: one loss name; version 2: one per output, with loss_weights.
    std::vector<OutputLoss> losses;
    if (f.version == 1) {
      losses.push_back(OutputLoss{parse_loss(loss->as_string(tw + ".loss")), 1.0, {}});
    } else {
      const auto& names = loss->as_array(tw + ".loss");
      const Value* weights = t.find("loss_weights");
      if (!weights) throw ValueError(tw + ": needs loss_weights");
      const auto& w = weights->as_array(tw + ".loss_weights");
      if (w.size() != names.size()) throw ValueError(tw + ": loss and loss_weights differ in length");
      for (size_t o = 0; o < names.size(); ++o) {
        const std::string& n = names[o].as_string(tw + ".loss[" + std::to_string(o) + "]");
        losses.push_back(OutputLoss{n == "none" ? LossKind::none : parse_loss(n),
                                    w[o].as_double(tw + ".loss_weights[" + std::to_string(o) + "]"), {}});
      }
    }
    model.compile(losses, optimizer_from_json(*optimizer, tw + ".optimizer"));
    const std::string& ks = key->as_string(tw + ".dropout_key");
    uint64_t dropout_key = 0;
    auto r = std::from_chars(ks.data(), ks.data() + ks.size(), dropout_key);
    if (ks.empty() || r.ec != std::errc() || r.ptr != ks.data() + ks.size())
      throw ValueError(tw + ".dropout_key must be a decimal uint64, got " + json::quote(ks));
    Model::OptimizerState state = model.get_optimizer_state();
    const Tensor step = take_tensor(f, "optimizer/step", DType::int64, {}, "the optimizer's update count");
    state.step = step.data_as<int64_t>()[0];
    const auto names = slot_names(model.optimizer().kind, state.slots.size());
    for (size_t s = 0; s < state.slots.size(); ++s)
      state.slots[s] = take_tensor(f, "optimizer/" + names[s], model_dtype, state.slots[s].shape(),
                                   "the optimizer's " + names[s]);
    model.set_optimizer_state(state);
    model.set_dropout_key(dropout_key);
  }
  for (const auto& t : f.tensors)
    if (!t.second.used) throw ValueError("unexpected tensor " + json::quote(t.first) + " in the file");
  return model;
}

}  // namespace

Model load_model(const std::string& path, std::map<std::string, std::string>* metadata) {
  const std::string what = "load_model: '" + path + "'";
  FileContents f = read_file(path, what);
  try {
    Model model = model_from_file(f);
    if (metadata) *metadata = f.metadata;
    return model;
  } catch (const IOError&) {
    throw;
  } catch (const Error& e) {
    // Shape and type mismatches inside a file are content errors too.
    throw ValueError(what + ": " + e.what());
  }
}

Model load_model(const std::string& path) { return load_model(path, nullptr); }

void Model::save(const std::string& path, bool include_optimizer) const { save(path, include_optimizer, {}); }

void Model::save(const std::string& path, bool include_optimizer,
                 const std::map<std::string, std::string>& extra_metadata) const {
  const std::string what = "save: '" + path + "'";
  if (!built()) throw ValueError(what + ": the model is not built");
  Value meta = Value::object();
  meta.set("format", Value(kFormatName));
  meta.set("format_version", Value(std::to_string(model_file_version)));

  Value arch = Value::object();
  arch.set("dtype", Value(dtype_name(dtype())));
  Value inputs = Value::array();
  for (size_t i = 0; i < num_inputs(); ++i) {
    Value in = Value::object();
    in.set("name", Value(input_name(i)));
    in.set("shape", to_json(input_shape(i)));
    inputs.push_back(std::move(in));
  }
  arch.set("inputs", std::move(inputs));
  Value layers = Value::array();
  for (size_t i = 0; i < num_layers(); ++i) {
    LayerSpec spec = layer_spec(i);
    spec.inputs.clear();  // the calls below say what feeds each layer
    layers.push_back(spec_to_json(spec));
  }
  arch.set("layers", std::move(layers));
  Value calls = Value::array();
  for (const Node& n : nodes()) {
    Value call = Value::object();
    call.set("layer", Value(layer_spec(n.layer).name));
    Value refs = Value::array();
    for (const TensorRef& r : n.inputs) refs.push_back(tensor_ref_to_json(r));
    call.set("inputs", std::move(refs));
    calls.push_back(std::move(call));
  }
  arch.set("calls", std::move(calls));
  Value outputs = Value::array();
  for (size_t o = 0; o < num_outputs(); ++o) outputs.push_back(tensor_ref_to_json(output(o)));
  arch.set("outputs", std::move(outputs));
  meta.set("model", Value(arch.dump()));

  std::vector<Blob> blobs;
  for (size_t i = 0; i < num_layers(); ++i) {
    const std::vector<std::string> names = weight_names(i);
    std::vector<Tensor> weights = get_weights(i);
    for (size_t w = 0; w < weights.size(); ++w) blobs.push_back({layer_spec(i).name + "/" + names[w], weights[w]});
  }
  // A custom loss is code, which a file cannot hold: a model compiled with
  // one is saved without its training state, and compiled again after loading.
  bool custom = false;
  for (const OutputLoss& l : losses()) custom = custom || l.kind == LossKind::custom;
  if (include_optimizer && compiled() && !custom) {
    Value training = Value::object();
    Value loss_names = Value::array(), loss_weights = Value::array();
    for (const OutputLoss& l : losses()) {
      loss_names.push_back(Value(loss_name(l.kind)));
      loss_weights.push_back(Value(l.weight));
    }
    training.set("loss", std::move(loss_names));
    training.set("loss_weights", std::move(loss_weights));
    training.set("optimizer", optimizer_to_json(optimizer()));
    training.set("dropout_key", Value(std::to_string(dropout_key())));
    meta.set("training", Value(training.dump()));
    OptimizerState state = get_optimizer_state();
    Tensor step(Shape{}, DType::int64);
    step.data_as<int64_t>()[0] = state.step;
    blobs.push_back({"optimizer/step", step});
    const auto names = slot_names(optimizer().kind, state.slots.size());
    for (size_t s = 0; s < state.slots.size(); ++s) blobs.push_back({"optimizer/" + names[s], state.slots[s]});
  }
  for (const auto& m : extra_metadata) {
    for (const char* reserved : kReserved)
      if (m.first == reserved) throw ValueError(what + ": metadata key '" + m.first + "' is reserved");
    meta.set(m.first, Value(m.second));
  }

  Value header = Value::object();
  header.set("__metadata__", std::move(meta));
  std::set<std::string> seen{"__metadata__"};
  uint64_t offset = 0;
  for (const Blob& b : blobs) {
    if (!seen.insert(b.name).second)
      throw ValueError(what + ": two tensors would be named " + json::quote(b.name) + "; rename a layer");
    const uint64_t bytes = static_cast<uint64_t>(b.tensor.size()) * dtype_bytes(b.tensor.dtype());
    Value entry = Value::object();
    entry.set("dtype", Value(dtype_code(b.tensor.dtype())));
    entry.set("shape", to_json(b.tensor.shape()));
    Value offsets = Value::array();
    offsets.push_back(Value(static_cast<int64_t>(offset)));
    offsets.push_back(Value(static_cast<int64_t>(offset + bytes)));
    entry.set("data_offsets", std::move(offsets));
    header.append(b.name, std::move(entry));
    offset += bytes;
  }
  std::string text = header.dump();
  // What this writer produces, this reader must accept (a layer name of
  // invalid UTF-8, say, is refused now rather than in a file nobody can load).
  json::parse(text, what + ": the header to write");
  // Tensor data starts 8-byte aligned, as other safetensors writers do.
  text.append((8 - text.size() % 8) % 8, ' ');
  write_atomically(path, text, blobs, what);
}

void Model::load_weights(const std::string& path) {
  const std::string what = "load_weights: '" + path + "'";
  if (!built()) throw ValueError(what + ": the model is not built");
  const Model other = load_model(path);
  if (other.num_layers() != num_layers())
    throw ValueError(what + ": the file holds " + std::to_string(other.num_layers()) + " layers, the model has " +
                     std::to_string(num_layers()));
  std::vector<std::vector<Tensor>> all;
  for (size_t i = 0; i < num_layers(); ++i) {
    const LayerSpec &mine = layer_spec(i), &theirs = other.layer_spec(i);
    const std::string who = what + ": layer " + std::to_string(i) + " ('" + mine.name + "', " + mine.kind + ")";
    if (mine.kind != theirs.kind)
      throw ValueError(who + " is '" + theirs.name + "' (" + theirs.kind + ") in the file");
    std::vector<Tensor> expected = get_weights(i), stored = other.get_weights(i);
    if (stored.size() != expected.size())
      throw ValueError(who + " has " + std::to_string(stored.size()) + " weight arrays in the file, expected " +
                       std::to_string(expected.size()));
    for (size_t w = 0; w < stored.size(); ++w) {
      if (stored[w].shape() != expected[w].shape())
        throw ValueError(who + " weight " + std::to_string(w) + " has shape " + shape_string(stored[w].shape()) +
                         " in the file, expected " + shape_string(expected[w].shape()));
      if (stored[w].dtype() == dtype()) continue;
      // Cast (float64 file, float32 model or the reverse).
      Tensor cast(stored[w].shape(), dtype());
      for (int64_t k = 0; k < cast.size(); ++k) {
        if (dtype() == DType::float32) cast.data_as<float>()[k] = static_cast<float>(stored[w].data_as<double>()[k]);
        else cast.data_as<double>()[k] = static_cast<double>(stored[w].data_as<float>()[k]);
      }
      stored[w] = cast;
    }
    all.push_back(std::move(stored));
  }
  for (size_t i = 0; i < num_layers(); ++i) set_weights(i, all[i]);
}

}  // namespace corenn
