#include "corenn/kernels/init.hpp"

#include <cmath>
#include <sstream>
#include <vector>

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
    {Init::uniform, "uniform"},
    {Init::he_normal, "he_normal"},
    {Init::he_uniform, "he_uniform"},
    {Init::glorot_normal, "glorot_normal"},
    {Init::glorot_uniform, "glorot_uniform"},
    {Init::orthogonal, "orthogonal"},
};

[[noreturn]] void bad_fan(Init kind, const char* expected, int64_t fan_in, int64_t fan_out) {
  std::ostringstream msg;
  msg << "initializer: " << initializer_name(kind) << " needs " << expected
      << ", got fan_in=" << fan_in << ", fan_out=" << fan_out;
  throw ValueError(msg.str());
}

// The orthogonal initialiser: w viewed as an (rows, cols) matrix, rows = n / fan_in,
// drawn normal, then its k = min(rows, cols) short-side vectors (the columns of
// a tall matrix, the rows of a wide one) made orthonormal by modified
// Gram–Schmidt. That is Q of the QR decomposition with R's diagonal positive,
// the sign choice that makes Q uniformly (Haar) distributed. The work runs in
// double (one buffer at initialisation, not in a training loop), so float32
// weights are the rounded float64 ones, as for the other initialisers.
template <typename T>
void orthogonal(T* w, int64_t n, int64_t fan_in, uint64_t key) {
  if (fan_in <= 0 || n % fan_in != 0) {
    std::ostringstream msg;
    msg << "initializer: orthogonal needs fan_in > 0 dividing the " << n << " values, got fan_in=" << fan_in;
    throw ValueError(msg.str());
  }
  const int64_t rows = n / fan_in, cols = fan_in;
  const bool tall = rows >= cols;
  const int64_t k = tall ? cols : rows, m = tall ? rows : cols;
  // a[v * m + e]: element e of vector v.
  std::vector<double> a(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) a[i] = standard_normal(key, static_cast<uint64_t>(i));
  for (int64_t v = 0; v < k; ++v) {
    double* av = a.data() + v * m;
    for (int64_t u = 0; u < v; ++u) {
      const double* au = a.data() + u * m;
      double dot = 0.0;
      for (int64_t e = 0; e < m; ++e) dot += av[e] * au[e];
      for (int64_t e = 0; e < m; ++e) av[e] -= dot * au[e];
    }
    double norm = 0.0;
    for (int64_t e = 0; e < m; ++e) norm += av[e] * av[e];
    norm = std::sqrt(norm);
    for (int64_t e = 0; e < m; ++e) av[e] /= norm;
  }
  for (int64_t v = 0; v < k; ++v)
    for (int64_t e = 0; e < m; ++e) w[tall ? e * cols + v : v * cols + e] = static_cast<T>(a[v * m + e]);
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
    case Init::uniform:  // Keras's "uniform", RandomUniform(-0.05, 0.05): Embedding's default
      normal = false;
      scale = 0.05;
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
    case Init::orthogonal:
      orthogonal(w, n, fan_in, key);
      return;
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
