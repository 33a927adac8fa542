// A small, strict JSON reader and writer for the model file's header: RFC 8259
// and nothing more (no comments, no trailing commas, no NaN, no duplicate
// keys, valid UTF-8), nesting bounded so hostile input cannot exhaust the
// stack, and every failure a corenn::ValueError. Numbers keep their exact
// int64 value when written without a fraction or exponent; doubles are
// written with max_digits10 significant digits, so they read back bit for bit.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace corenn {
namespace json {

constexpr int max_depth = 64;

class Value {
 public:
  enum class Type { null, boolean, number, string, array, object };
  using Object = std::vector<std::pair<std::string, Value>>;  // insertion order kept

  Value() = default;
  Value(bool b) : type_(Type::boolean), bool_(b) {}
  Value(int64_t i) : type_(Type::number), int_(i), num_(static_cast<double>(i)), is_int_(true) {}
  Value(int i) : Value(static_cast<int64_t>(i)) {}
  Value(double d) : type_(Type::number), num_(d) {}
  Value(std::string s) : type_(Type::string), str_(std::move(s)) {}
  Value(const char* s) : Value(std::string(s)) {}
  static Value array() { Value v; v.type_ = Type::array; return v; }
  static Value object() { Value v; v.type_ = Type::object; return v; }

  Type type() const { return type_; }
  bool is_object() const { return type_ == Type::object; }
  // A number written as an integer literal within int64 (as_int accepts it).
  bool is_int() const { return type_ == Type::number && is_int_; }

  // Typed access: ValueError "<what> must be ..., got ..." otherwise.
  bool as_bool(const std::string& what) const;
  double as_double(const std::string& what) const;  // finite
  int64_t as_int(const std::string& what) const;    // written as an integer literal
  const std::string& as_string(const std::string& what) const;
  const std::vector<Value>& as_array(const std::string& what) const;
  const Object& as_object(const std::string& what) const;

  // Building.
  void push_back(Value v);                     // arrays
  void set(const std::string& key, Value v);   // objects; replaces an existing key
  void append(std::string key, Value v);       // objects; the caller ensures the key is new
  // Objects: the member or nullptr.
  const Value* find(const std::string& key) const;

  std::string dump() const;

 private:
  void dump_to(std::string& out) const;

  Type type_ = Type::null;
  bool bool_ = false;
  int64_t int_ = 0;
  double num_ = 0.0;
  bool is_int_ = false;
  std::string str_;
  std::vector<Value> items_;
  Object members_;
};

// Parses a whole document (surrounding whitespace allowed). `what` prefixes
// every error message ("model file header: ...").
Value parse(const std::string& text, const std::string& what);

// A JSON string literal, quotes included.
std::string quote(const std::string& s);

}  // namespace json
}  // namespace corenn
