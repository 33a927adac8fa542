// A minimal test harness for ctest: TEST(name) registers a function, CHECK and
// CHECK_CLOSE record failures with file and line, main runs all and returns
// non-zero on any failure.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace corenn_test {

struct Case {
  const char* name;
  std::function<void()> fn;
};
std::vector<Case>& registry();
extern int failures;

struct Register {
  Register(const char* name, std::function<void()> fn) { registry().push_back({name, fn}); }
};

inline void fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "%s:%d: %s\n", file, line, what.c_str());
  ++failures;
}

// Normal(0, scale²) test data from a fixed seed.
template <typename T>
std::vector<T> random_vector(size_t n, unsigned seed, double scale = 1.0) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist;
  std::vector<T> v(n);
  for (auto& e : v) e = static_cast<T>(scale * dist(gen));
  return v;
}

template <typename T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  // An empty vector's data() may be null, which memcmp must not see even for 0 bytes.
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// max |got − want| / max |want|: a float32 result against a float64 reference
// (tests/tolerances.py's relative measures, e.g. WINOGRAD_F2 / WINOGRAD_F4).
inline double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, std::abs(double(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return err / std::max(scale, 1e-30);
}

}  // namespace corenn_test

#define CORENN_CAT2(a, b) a##b
#define CORENN_CAT(a, b) CORENN_CAT2(a, b)
#define TEST(name)                                                          \
  static void name();                                                       \
  static corenn_test::Register CORENN_CAT(register_, name)(#name, name);    \
  static void name()

#define CHECK(cond) \
  do { if (!(cond)) corenn_test::fail(__FILE__, __LINE__, "CHECK(" #cond ")"); } while (0)

// |a - b| <= tol * max(1, |b|)
#define CHECK_CLOSE(a, b, tol)                                                            \
  do {                                                                                    \
    double a_ = static_cast<double>(a), b_ = static_cast<double>(b);                      \
    if (!(std::fabs(a_ - b_) <= (tol) * std::fmax(1.0, std::fabs(b_))))                   \
      corenn_test::fail(__FILE__, __LINE__, "CHECK_CLOSE(" #a ", " #b "): " +             \
                                                std::to_string(a_) + " vs " + std::to_string(b_)); \
  } while (0)

#define CHECK_THROWS(expr, Exception)                                                     \
  do {                                                                                    \
    bool thrown_ = false;                                                                 \
    try { expr; } catch (const Exception&) { thrown_ = true; }                            \
    if (!thrown_) corenn_test::fail(__FILE__, __LINE__, "expected " #Exception " from " #expr); \
  } while (0)
