#include "corenn/kernels/init.hpp"

#include <cmath>
#include <sstream>

#include "corenn/error.hpp"
#include "corenn/random.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {

struct Named {
  Init kind;
  const char* name;
};
// One table serves parsing, naming and the error message, so they cannot drift.
constexpr Named kInitializers[] = {
    {Init::zeros, "zeros"},
    {Init::ones, "ones"},
    {Init::random_normal, "random_normal"},
    {Init::he_normal, "he_normal"},
    {Init::he_uniform, "he_uniform"},
    {Init::glorot_normal, "glorot_normal"},
    {Init::glorot_uniform, "glorot_uniform"},
};

[[noreturn]] void bad_fan(Init kind, const char* expected, int64_t fan_in, int64_t fan_out) {
  std::ostringstream msg;
  msg << "initializer: " << initializer_name(kind) << " needs " << expected
      << ", got fan_in=" << fan_in << ", fan_out=" << fan_out;
  throw ValueError(msg.str());
}

}  // namespace

Init parse_initializer(const std::string& name) {
  for (const auto& entry : kInitializers)
    if (name == entry.name) return entry.kind;
  std::ostringstream msg;
  msg << "initializer: unknown '" << name << "'; expected one of ";
  bool first = true;
  for (const auto& entry : kInitializers) {
    msg << (first ? "" : ", ") << entry.name;
    first = false;
  }
  throw ValueError(msg.str());
}

const char* initializer_name(Init kind) {
  for (const auto& entry : kInitializers)
    if (entry.kind == kind) return entry.name;
  return "unknown";
}

template <typename T>
void initialize(T* w, int64_t n, Init kind, int64_t fan_in, int64_t fan_out, double stddev,
                uint64_t key) {
  // w: (n,)
  // Parameters are checked before anything is written, so a bad call leaves w as it was.
  double scale = 0.0;  // stddev of a normal, half-width of a uniform
  bool normal = true;
  switch (kind) {
    case Init::zeros:
    case Init::ones: {
      const T value = kind == Init::ones ? T(1) : T(0);
      for (int64_t i = 0; i < n; ++i) w[i] = value;
      return;
    }
    case Init::random_normal:
      if (!(std::isfinite(stddev) && stddev >= 0.0)) {
        std::ostringstream msg;
        msg << "initializer: random_normal needs a finite stddev >= 0, got " << stddev;
        throw ValueError(msg.str());
      }
      scale = stddev;
      break;
    // He keeps the forward variance of a ReLU layer at 1 (Var = 2 / fan_in);
    // Glorot balances forward and backward (Var = 2 / (fan_in + fan_out)). A
    // uniform on ±a has variance a²/3, hence the 6 under the root.
    case Init::he_normal:
    case Init::he_uniform:
      if (fan_in <= 0) bad_fan(kind, "fan_in > 0", fan_in, fan_out);
      normal = kind == Init::he_normal;
      scale = std::sqrt((normal ? 2.0 : 6.0) / static_cast<double>(fan_in));
      break;
    case Init::glorot_normal:
    case Init::glorot_uniform:
      if (fan_in < 0 || fan_out < 0 || fan_in + fan_out <= 0)
        bad_fan(kind, "fan_in, fan_out >= 0 and fan_in + fan_out > 0", fan_in, fan_out);
      normal = kind == Init::glorot_normal;
      scale = std::sqrt((normal ? 2.0 : 6.0) / static_cast<double>(fan_in + fan_out));
      break;
  }
  // Each value is drawn in double from (key, i) and rounded to T once, so the
  // float32 weights are exactly the rounded float64 ones, whatever the threads.
  detail::parallel_for(0, n, detail::grain_for(detail::kTranscendentalWork), [=](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; ++i) {
      const uint64_t index = static_cast<uint64_t>(i);
      const double value = normal ? scale * standard_normal(key, index)
                                  : scale * (2.0 * uniform01(key, index) - 1.0);
      w[i] = static_cast<T>(value);
    }
  });
}

template void initialize<float>(float*, int64_t, Init, int64_t, int64_t, double, uint64_t);
template void initialize<double>(double*, int64_t, Init, int64_t, int64_t, double, uint64_t);

}  // namespace corenn
