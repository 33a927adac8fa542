// Typed exceptions. The Python bindings map ShapeError and ValueError to
// ValueError, TypeError to TypeError and IOError to OSError; a C++ embedder can
// catch them all as corenn::Error (a std::runtime_error).
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace corenn {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ShapeError : public Error {
 public:
  using Error::Error;
};
class ValueError : public Error {
 public:
  using Error::Error;
};
class TypeError : public Error {
 public:
  using Error::Error;
};
class IOError : public Error {
 public:
  using Error::Error;
};

// The largest magnitude of an integer hyper-parameter (units, filters, a
// stride, a padding, a size): 2^31 - 1. Sizes and counts past it describe no
// model that fits in memory, and the bound keeps every product of two of them
// (gates * units, dilation * kernel) inside int64, so shape arithmetic cannot
// overflow into a small or negative size.
constexpr int64_t kMaxIntHyperParameter = 2147483647;

// "(64, 784)": the notation every shape message uses, so C++ and Python agree.
inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out << ", ";
    out << shape[i];
  }
  if (shape.size() == 1) out << ',';
  out << ')';
  return out.str();
}

}  // namespace corenn
