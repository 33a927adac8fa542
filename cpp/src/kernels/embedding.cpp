#include "corenn/kernels/embedding.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <type_traits>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {

// The shortest text that reads back as v (3.5, 1e+30, nan), for the message.
template <typename I>
std::string value_text(I v) {
  if constexpr (std::is_integral_v<I>) {
    return std::to_string(v);
  } else {
    if (std::isnan(v)) return "nan";
    char buffer[64];
    const auto end = std::to_chars(buffer, buffer + sizeof buffer, v).ptr;
    return std::string(buffer, end);
  }
}

}  // namespace

// A plain serial loop: an exception cannot leave an OpenMP region, and the
// first bad id (lowest index) is the one reported whatever the thread count.
// The conversion is one compare per id, cheap next to the row copies.
template <typename I>
void embedding_ids(int64_t* ids, const I* x, int64_t n, int64_t input_dim, const char* op) {
  for (int64_t i = 0; i < n; ++i) {
    const I v = x[i];
    bool ok;
    if constexpr (std::is_integral_v<I>) ok = v >= 0 && v < input_dim;
    else ok = v >= 0 && v < static_cast<I>(input_dim) && std::floor(v) == v;  // false for NaN
    if (!ok)
      throw ValueError(std::string(op) + ": ids must be whole numbers in [0, " + std::to_string(input_dim) +
                       ") (input_dim " + std::to_string(input_dim) + "), got " + value_text(v) +
                       " at index " + std::to_string(i));
    ids[i] = static_cast<int64_t>(v);
  }
}

// ------------------------------------------------------------------ forward

// Rows are independent copies: threads split the n output rows.
template <typename T>
void embedding_forward(T* y, const int64_t* ids, const T* W, int64_t n, int64_t output_dim) {
  // y: (n, output_dim); W: (input_dim, output_dim)
  const int64_t D = output_dim;
  detail::parallel_for(0, n, detail::grain_for(D), [=](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; ++i) std::copy(W + ids[i] * D, W + (ids[i] + 1) * D, y + i * D);
  });
}

template <typename T>
void embedding_forward_naive(T* y, const int64_t* ids, const T* W, int64_t n, int64_t output_dim) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < output_dim; ++d) y[i * output_dim + d] = W[ids[i] * output_dim + d];
}

// ----------------------------------------------------------------- backward

// Several ids may name the same row, so rows of dW are not owned by one
// example: threads split the output_dim COLUMNS instead, and each thread
// walks all n ids in order over its columns. Every dW element is then summed
// by one thread, in the order of i, whatever the thread count: the result is
// bitwise the naive loop's. (Splitting the ids would race on repeated rows,
// and per-thread copies of dW would cost input_dim·output_dim each.)
template <typename T>
void embedding_backward(T* dW, const T* dy, const int64_t* ids, int64_t n, int64_t output_dim) {
  // dW: (input_dim, output_dim); dy: (n, output_dim)
  const int64_t D = output_dim;
  detail::parallel_for(0, D, detail::grain_for(n), [=](int64_t lo, int64_t hi, int) {
    for (int64_t i = 0; i < n; ++i) {
      T* row = dW + ids[i] * D;
      const T* g = dy + i * D;
      for (int64_t d = lo; d < hi; ++d) row[d] += g[d];
    }
  });
}

template <typename T>
void embedding_backward_naive(T* dW, const T* dy, const int64_t* ids, int64_t n, int64_t output_dim) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t d = 0; d < output_dim; ++d) dW[ids[i] * output_dim + d] += dy[i * output_dim + d];
}

// ---------------------------------------------------------------- instantiations

template void embedding_ids<float>(int64_t*, const float*, int64_t, int64_t, const char*);
template void embedding_ids<double>(int64_t*, const double*, int64_t, int64_t, const char*);
template void embedding_ids<int64_t>(int64_t*, const int64_t*, int64_t, int64_t, const char*);

#define CORENN_EMBEDDING_INSTANTIATE(T)                                                   \
  template void embedding_forward<T>(T*, const int64_t*, const T*, int64_t, int64_t);       \
  template void embedding_forward_naive<T>(T*, const int64_t*, const T*, int64_t, int64_t); \
  template void embedding_backward<T>(T*, const T*, const int64_t*, int64_t, int64_t);      \
  template void embedding_backward_naive<T>(T*, const T*, const int64_t*, int64_t, int64_t);

CORENN_EMBEDDING_INSTANTIATE(float)
CORENN_EMBEDDING_INSTANTIATE(double)

#undef CORENN_EMBEDDING_INSTANTIATE

}  // namespace corenn
