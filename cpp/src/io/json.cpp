#include "io/json.hpp"

#include <charconv>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "corenn/error.hpp"

namespace corenn {
namespace json {

namespace {

const char* type_name(Value::Type t) {
  switch (t) {
    case Value::Type::null: return "null";
    case Value::Type::boolean: return "a boolean";
    case Value::Type::number: return "a number";
    case Value::Type::string: return "a string";
    case Value::Type::array: return "an array";
    case Value::Type::object: return "an object";
  }
  return "?";
}

[[noreturn]] void wrong_type(const std::string& what, const char* expected, Value::Type got) {
  throw ValueError(what + " must be " + expected + ", got " + type_name(got));
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Parser {
 public:
  Parser(const std::string& text, const std::string& what) : s_(text), what_(what) {}

  Value document() {
    Value v = value(0);
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw ValueError(what_ + ": invalid JSON at byte " + std::to_string(pos_) + ": " + why);
  }

  void skip_space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r'))
      ++pos_;
  }

  bool literal(const char* word) {
    size_t n = std::char_traits<char>::length(word);
    if (s_.compare(pos_, n, word) != 0) return false;
    pos_ += n;
    return true;
  }

  Value value(int depth) {
    skip_space();
    if (pos_ >= s_.size()) fail("unexpected end of input");
    const char c = s_[pos_];
    if (c == '{' || c == '[') {
      if (depth >= max_depth) fail("nesting deeper than " + std::to_string(max_depth) + " levels");
      return c == '{' ? object(depth + 1) : array(depth + 1);
    }
    if (c == '"') return Value(string());
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    if (literal("true")) return Value(true);
    if (literal("false")) return Value(false);
    if (literal("null")) return Value();
    fail(std::string("unexpected character '") + c + "'");
  }

  Value object(int depth) {
    ++pos_;  // '{'
    Value v = Value::object();
    std::unordered_set<std::string> keys;  // a header may hold thousands of tensors
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return v;
    }
    while (true) {
      skip_space();
      if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a string key");
      std::string key = string();
      if (!keys.insert(key).second) fail("duplicate key " + quote(key));
      skip_space();
      if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':'");
      ++pos_;
      v.append(std::move(key), value(depth));
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < s_.size() && s_[pos_] == '}') { ++pos_; return v; }
      fail("expected ',' or '}'");
    }
  }

  Value array(int depth) {
    ++pos_;  // '['
    Value v = Value::array();
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return v;
    }
    while (true) {
      v.push_back(value(depth));
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < s_.size() && s_[pos_] == ']') { ++pos_; return v; }
      fail("expected ',' or ']'");
    }
  }

  uint32_t hex4() {
    if (s_.size() - pos_ < 4) fail("truncated \\u escape");
    uint32_t cp = 0;
    for (int i = 0; i < 4; ++i) {
      const char h = s_[pos_++];
      cp <<= 4;
      if (h >= '0' && h <= '9') cp |= static_cast<uint32_t>(h - '0');
      else if (h >= 'a' && h <= 'f') cp |= static_cast<uint32_t>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') cp |= static_cast<uint32_t>(h - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return cp;
  }

  // One UTF-8 sequence copied through, validated (no overlongs, no surrogates).
  void utf8_sequence(std::string& out) {
    const auto byte = [&](size_t i) { return static_cast<unsigned char>(s_[i]); };
    const unsigned char b0 = byte(pos_);
    int len;
    uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; cp = b0 & 0x1F; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; cp = b0 & 0x0F; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; cp = b0 & 0x07; }
    else fail("invalid UTF-8");
    if (s_.size() - pos_ < static_cast<size_t>(len)) fail("truncated UTF-8");
    for (int i = 1; i < len; ++i) {
      const unsigned char b = byte(pos_ + static_cast<size_t>(i));
      if ((b & 0xC0) != 0x80) fail("invalid UTF-8");
      cp = (cp << 6) | (b & 0x3F);
    }
    const uint32_t min_cp = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) fail("invalid UTF-8");
    out.append(s_, pos_, static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
  }

  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') { ++pos_; return out; }
      if (c < 0x20) fail("control character in a string");
      if (c >= 0x80) { utf8_sequence(out); continue; }
      ++pos_;
      if (c != '\\') { out += static_cast<char>(c); continue; }
      if (pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("unpaired low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (!(s_.size() - pos_ >= 2 && s_[pos_] == '\\' && s_[pos_ + 1] == 'u'))
              fail("unpaired high surrogate in \\u escape");
            pos_ += 2;
            const uint32_t low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) fail("unpaired high surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: fail(std::string("unknown escape '\\") + e + "'");
      }
    }
  }

  Value number() {
    const size_t start = pos_;
    const auto digits = [&]() {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (digits() == 0) {
      fail("bad number");
    }
    bool integral = true;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      integral = false;
      if (digits() == 0) fail("bad number: digits expected after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      integral = false;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) fail("bad number: digits expected in the exponent");
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (integral) {
      int64_t i = 0;
      auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) return Value(i);
      // Out of int64 range: kept as a double (as_int will refuse it).
    }
    double d = 0.0;
    auto r = std::from_chars(first, last, d);
    if (r.ec != std::errc() || r.ptr != last || !std::isfinite(d)) fail("number out of range");
    return Value(d);
  }

  const std::string& s_;
  const std::string& what_;
  size_t pos_ = 0;
};

}  // namespace

bool Value::as_bool(const std::string& what) const {
  if (type_ != Type::boolean) wrong_type(what, "a boolean", type_);
  return bool_;
}

double Value::as_double(const std::string& what) const {
  if (type_ != Type::number) wrong_type(what, "a number", type_);
  return num_;
}

int64_t Value::as_int(const std::string& what) const {
  if (type_ != Type::number) wrong_type(what, "an integer", type_);
  if (!is_int_) throw ValueError(what + " must be an integer in the int64 range, got " + dump());
  return int_;
}

const std::string& Value::as_string(const std::string& what) const {
  if (type_ != Type::string) wrong_type(what, "a string", type_);
  return str_;
}

const std::vector<Value>& Value::as_array(const std::string& what) const {
  if (type_ != Type::array) wrong_type(what, "an array", type_);
  return items_;
}

const Value::Object& Value::as_object(const std::string& what) const {
  if (type_ != Type::object) wrong_type(what, "an object", type_);
  return members_;
}

void Value::push_back(Value v) {
  if (type_ != Type::array) throw ValueError("json: push_back on a non-array");
  items_.push_back(std::move(v));
}

void Value::set(const std::string& key, Value v) {
  if (type_ != Type::object) throw ValueError("json: set on a non-object");
  for (auto& m : members_)
    if (m.first == key) {
      m.second = std::move(v);
      return;
    }
  members_.emplace_back(key, std::move(v));
}

void Value::append(std::string key, Value v) {
  if (type_ != Type::object) throw ValueError("json: append on a non-object");
  members_.emplace_back(std::move(key), std::move(v));
}

const Value* Value::find(const std::string& key) const {
  for (const auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

std::string quote(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xF];
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

void Value::dump_to(std::string& out) const {
  switch (type_) {
    case Type::null: out += "null"; break;
    case Type::boolean: out += bool_ ? "true" : "false"; break;
    case Type::number: {
      char buf[64];
      std::to_chars_result r;
      if (is_int_) {
        r = std::to_chars(buf, buf + sizeof buf, int_);
      } else {
        if (!std::isfinite(num_)) throw ValueError("json: cannot write a non-finite number");
        r = std::to_chars(buf, buf + sizeof buf, num_, std::chars_format::general,
                          std::numeric_limits<double>::max_digits10);
      }
      std::string text(buf, r.ptr);
      // A double that prints like an integer ("1e+20", "3") must read back as
      // a double: give it a fraction or keep its exponent.
      if (!is_int_ && text.find_first_of(".eEn") == std::string::npos) text += ".0";
      out += text;
      break;
    }
    case Type::string: out += quote(str_); break;
    case Type::array:
      out += '[';
      for (size_t i = 0; i < items_.size(); ++i) {
        if (i) out += ',';
        items_[i].dump_to(out);
      }
      out += ']';
      break;
    case Type::object:
      out += '{';
      for (size_t i = 0; i < members_.size(); ++i) {
        if (i) out += ',';
        out += quote(members_[i].first);
        out += ':';
        members_[i].second.dump_to(out);
      }
      out += '}';
      break;
  }
}

std::string Value::dump() const {
  std::string out;
  dump_to(out);
  return out;
}

Value parse(const std::string& text, const std::string& what) { return Parser(text, what).document(); }

}  // namespace json
}  // namespace corenn
