#include "corenn/kernels/merge.hpp"

#include <cstring>
#include <vector>

#include "backend/parallel.hpp"

namespace corenn {

template <typename T>
void add_forward(T* y, const T* const* xs, int count, int64_t n) {
  // y: (n,), xs[k]: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    // Sum in a fixed order, term by term over the chunk: each pass is a
    // vectorised stream and the result does not depend on the split.
    const T* x0 = xs[0];
    for (int64_t i = lo; i < hi; ++i) y[i] = x0[i];
    for (int k = 1; k < count; ++k) {
      const T* xk = xs[k];
      for (int64_t i = lo; i < hi; ++i) y[i] += xk[i];
    }
  });
}

template <typename T>
void add_forward_naive(T* y, const T* const* xs, int count, int64_t n) {
  // y: (n,), xs[k]: (n,)
  for (int64_t i = 0; i < n; ++i) {
    T sum = xs[0][i];
    for (int k = 1; k < count; ++k) sum += xs[k][i];
    y[i] = sum;
  }
}

template <typename T>
void add_relu_forward(T* y, const T* const* xs, int count, int64_t n) {
  // y: (n,), xs[k]: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    // The sum as add_forward adds it, then max(v, 0) as activation.cpp writes
    // it (v < 0 ? 0 : v: NaN and −0 pass), over the chunk while it is in cache.
    const T* x0 = xs[0];
    if (count == 2) {
      const T* x1 = xs[1];
      for (int64_t i = lo; i < hi; ++i) {
        const T v = x0[i] + x1[i];
        y[i] = v < T(0) ? T(0) : v;
      }
      return;
    }
    for (int64_t i = lo; i < hi; ++i) y[i] = x0[i];
    for (int k = 1; k < count; ++k) {
      const T* xk = xs[k];
      for (int64_t i = lo; i < hi; ++i) y[i] += xk[i];
    }
    for (int64_t i = lo; i < hi; ++i) y[i] = y[i] < T(0) ? T(0) : y[i];
  });
}

template <typename T>
void add_relu_forward_naive(T* y, const T* const* xs, int count, int64_t n) {
  // y: (n,), xs[k]: (n,)
  for (int64_t i = 0; i < n; ++i) {
    T sum = xs[0][i];
    for (int k = 1; k < count; ++k) sum += xs[k][i];
    y[i] = sum < T(0) ? T(0) : sum;
  }
}

template <typename T>
void add_backward(T* dx, const T* dy, int64_t n, bool accumulate) {
  // dx: (n,), dy: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    if (accumulate) {
      for (int64_t i = lo; i < hi; ++i) dx[i] += dy[i];
    } else if (dx != dy) {
      std::memcpy(dx + lo, dy + lo, sizeof(T) * static_cast<size_t>(hi - lo));
    }
  });
}

template <typename T>
void add_backward_naive(T* dx, const T* dy, int64_t n, bool accumulate) {
  // dx: (n,), dy: (n,)
  for (int64_t i = 0; i < n; ++i) dx[i] = accumulate ? dx[i] + dy[i] : dy[i];
}

template <typename T>
void subtract_forward(T* y, const T* a, const T* b, int64_t n) {
  // y, a, b: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    for (int64_t i = lo; i < hi; ++i) y[i] = a[i] - b[i];
  });
}

template <typename T>
void subtract_forward_naive(T* y, const T* a, const T* b, int64_t n) {
  // y, a, b: (n,)
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] - b[i];
}

template <typename T>
void subtract_backward(T* dx, const T* dy, int64_t n, bool accumulate) {
  // dx, dy: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    if (accumulate) {
      for (int64_t i = lo; i < hi; ++i) dx[i] -= dy[i];
    } else {
      for (int64_t i = lo; i < hi; ++i) dx[i] = -dy[i];
    }
  });
}

template <typename T>
void subtract_backward_naive(T* dx, const T* dy, int64_t n, bool accumulate) {
  // dx, dy: (n,)
  for (int64_t i = 0; i < n; ++i) dx[i] = accumulate ? dx[i] - dy[i] : -dy[i];
}

template <typename T>
void concat_forward(T* y, const T* const* xs, const int64_t* widths, int count, int64_t outer) {
  // y: (outer, Σ widths), xs[k]: (outer, widths[k])
  int64_t total = 0;
  for (int k = 0; k < count; ++k) total += widths[k];
  detail::parallel_for(0, outer, detail::grain_for(total), [=](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      T* row = y + r * total;
      for (int k = 0; k < count; ++k) {
        // An empty input may come as a null pointer, which memcpy must not see even for 0 bytes.
        if (widths[k] > 0) std::memcpy(row, xs[k] + r * widths[k], sizeof(T) * static_cast<size_t>(widths[k]));
        row += widths[k];
      }
    }
  });
}

template <typename T>
void concat_forward_naive(T* y, const T* const* xs, const int64_t* widths, int count, int64_t outer) {
  // y: (outer, Σ widths), xs[k]: (outer, widths[k])
  int64_t total = 0;
  for (int k = 0; k < count; ++k) total += widths[k];
  for (int64_t r = 0; r < outer; ++r) {
    int64_t offset = 0;
    for (int k = 0; k < count; ++k) {
      for (int64_t j = 0; j < widths[k]; ++j) y[r * total + offset + j] = xs[k][r * widths[k] + j];
      offset += widths[k];
    }
  }
}

template <typename T>
void concat_backward(T* dx, const T* dy, int64_t outer, int64_t offset, int64_t width,
                     int64_t total, bool accumulate) {
  // dx: (outer, width), dy: (outer, total)
  detail::parallel_for(0, outer, detail::grain_for(width), [=](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r) {
      const T* src = dy + r * total + offset;
      T* dst = dx + r * width;
      if (accumulate) {
        for (int64_t j = 0; j < width; ++j) dst[j] += src[j];
      } else if (width > 0) {  // as in concat_forward: no memcpy from a null pointer
        std::memcpy(dst, src, sizeof(T) * static_cast<size_t>(width));
      }
    }
  });
}

template <typename T>
void concat_backward_naive(T* dx, const T* dy, int64_t outer, int64_t offset, int64_t width,
                           int64_t total, bool accumulate) {
  // dx: (outer, width), dy: (outer, total)
  for (int64_t r = 0; r < outer; ++r)
    for (int64_t j = 0; j < width; ++j) {
      const T g = dy[r * total + offset + j];
      dx[r * width + j] = accumulate ? dx[r * width + j] + g : g;
    }
}

template <typename T>
void multiply_forward(T* y, const T* const* xs, int count, int64_t n) {
  // y: (n,), xs[k]: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    // Keras's left-to-right product, one factor per pass over the chunk (as add_forward).
    const T* x0 = xs[0];
    for (int64_t i = lo; i < hi; ++i) y[i] = x0[i];
    for (int k = 1; k < count; ++k) {
      const T* xk = xs[k];
      for (int64_t i = lo; i < hi; ++i) y[i] *= xk[i];
    }
  });
}

template <typename T>
void multiply_forward_naive(T* y, const T* const* xs, int count, int64_t n) {
  // y: (n,), xs[k]: (n,)
  for (int64_t i = 0; i < n; ++i) {
    T product = xs[0][i];
    for (int k = 1; k < count; ++k) product *= xs[k][i];
    y[i] = product;
  }
}

template <typename T>
void multiply_backward(T* dx, const T* dy, const T* const* xs, int count, int k, int64_t n) {
  // dx: (n,), dy: (n,), xs[j]: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    // The product of the other factors, never y / x_k: exact where x_k is 0.
    for (int64_t i = lo; i < hi; ++i) dx[i] = dy[i];
    for (int j = 0; j < count; ++j) {
      if (j == k) continue;
      const T* xj = xs[j];
      for (int64_t i = lo; i < hi; ++i) dx[i] *= xj[i];
    }
  });
}

template <typename T>
void multiply_backward_naive(T* dx, const T* dy, const T* const* xs, int count, int k, int64_t n) {
  // dx: (n,), dy: (n,), xs[j]: (n,)
  for (int64_t i = 0; i < n; ++i) {
    T g = dy[i];
    for (int j = 0; j < count; ++j)
      if (j != k) g *= xs[j][i];
    dx[i] = g;
  }
}

template <typename T>
void average_forward(T* y, const T* const* xs, int count, int64_t n) {
  // y: (n,), xs[k]: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    // Keras's sum, then one division by the count (not a sum of x_k / count).
    const T* x0 = xs[0];
    for (int64_t i = lo; i < hi; ++i) y[i] = x0[i];
    for (int k = 1; k < count; ++k) {
      const T* xk = xs[k];
      for (int64_t i = lo; i < hi; ++i) y[i] += xk[i];
    }
    const T c = static_cast<T>(count);
    for (int64_t i = lo; i < hi; ++i) y[i] /= c;
  });
}

template <typename T>
void average_forward_naive(T* y, const T* const* xs, int count, int64_t n) {
  // y: (n,), xs[k]: (n,)
  for (int64_t i = 0; i < n; ++i) {
    T sum = xs[0][i];
    for (int k = 1; k < count; ++k) sum += xs[k][i];
    y[i] = sum / static_cast<T>(count);
  }
}

template <typename T>
void average_backward(T* dx, const T* dy, int count, int64_t n, bool accumulate) {
  // dx: (n,), dy: (n,)
  const T c = static_cast<T>(count);
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    if (accumulate) {
      for (int64_t i = lo; i < hi; ++i) dx[i] += dy[i] / c;
    } else {
      for (int64_t i = lo; i < hi; ++i) dx[i] = dy[i] / c;
    }
  });
}

template <typename T>
void average_backward_naive(T* dx, const T* dy, int count, int64_t n, bool accumulate) {
  // dx: (n,), dy: (n,)
  for (int64_t i = 0; i < n; ++i) {
    const T g = dy[i] / static_cast<T>(count);
    dx[i] = accumulate ? dx[i] + g : g;
  }
}

namespace {

// The pick of an element-wise maximum (or minimum): v replaces the running
// extremum when it beats it or is NaN, so a NaN in any input gives NaN (as
// torch.maximum and NumPy's maximum).
template <typename T>
inline T pick(T best, T v, bool maximum) {
  const bool beats = maximum ? v > best : v < best;
  return beats || v != v ? v : best;
}

// An input "attains" the output where it equals it, NaN counting as equal to NaN.
template <typename T>
inline bool attains(T x, T y) {
  return x == y || (x != x && y != y);
}

template <typename T>
void extremum_forward(T* y, const T* const* xs, int count, int64_t n, bool maximum) {
  // y: (n,), xs[k]: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    const T* x0 = xs[0];
    for (int64_t i = lo; i < hi; ++i) y[i] = x0[i];
    for (int k = 1; k < count; ++k) {
      const T* xk = xs[k];
      for (int64_t i = lo; i < hi; ++i) y[i] = pick(y[i], xk[i], maximum);
    }
  });
}

template <typename T>
void extremum_forward_naive(T* y, const T* const* xs, int count, int64_t n, bool maximum) {
  // y: (n,), xs[k]: (n,)
  for (int64_t i = 0; i < n; ++i) {
    T best = xs[0][i];
    for (int k = 1; k < count; ++k) best = pick(best, xs[k][i], maximum);
    y[i] = best;
  }
}

}  // namespace

template <typename T>
void maximum_forward(T* y, const T* const* xs, int count, int64_t n) {
  extremum_forward(y, xs, count, n, true);
}

template <typename T>
void maximum_forward_naive(T* y, const T* const* xs, int count, int64_t n) {
  extremum_forward_naive(y, xs, count, n, true);
}

template <typename T>
void minimum_forward(T* y, const T* const* xs, int count, int64_t n) {
  extremum_forward(y, xs, count, n, false);
}

template <typename T>
void minimum_forward_naive(T* y, const T* const* xs, int count, int64_t n) {
  extremum_forward_naive(y, xs, count, n, false);
}

template <typename T>
void extremum_backward(T* dx, const T* dy, const T* y, const T* const* xs, int count, int k, int64_t n) {
  // dx: (n,), dy: (n,), y: (n,), xs[j]: (n,)
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    // dx first counts the inputs that attain y (at least one: y is one of
    // them), then becomes input k's share of dy.
    for (int64_t i = lo; i < hi; ++i) dx[i] = T(0);
    for (int j = 0; j < count; ++j) {
      const T* xj = xs[j];
      for (int64_t i = lo; i < hi; ++i) dx[i] += attains(xj[i], y[i]) ? T(1) : T(0);
    }
    const T* xk = xs[k];
    for (int64_t i = lo; i < hi; ++i) dx[i] = attains(xk[i], y[i]) ? dy[i] / dx[i] : T(0);
  });
}

template <typename T>
void extremum_backward_naive(T* dx, const T* dy, const T* y, const T* const* xs, int count, int k, int64_t n) {
  // dx: (n,), dy: (n,), y: (n,), xs[j]: (n,)
  for (int64_t i = 0; i < n; ++i) {
    int ties = 0;
    for (int j = 0; j < count; ++j) ties += attains(xs[j][i], y[i]) ? 1 : 0;
    dx[i] = attains(xs[k][i], y[i]) ? dy[i] / static_cast<T>(ties) : T(0);
  }
}

// ---------------------------------------------------------------------------
// Broadcasting. An output index walks `out` as an odometer; the input offset
// moves with it by the input's strides, 0 along a repeated axis.

namespace {

// The input's strides in elements, 0 along the axes it is repeated along.
std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& out, const std::vector<int64_t>& in) {
  std::vector<int64_t> strides(in.size(), 0);
  int64_t stride = 1;
  for (size_t d = in.size(); d-- > 0;) {
    strides[d] = in[d] == out[d] ? stride : 0;
    stride *= in[d];
  }
  return strides;
}

int64_t count_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// Calls f(i, j) for every output index i in order with j the input's offset.
template <typename F>
void broadcast_walk(const std::vector<int64_t>& out, const std::vector<int64_t>& in, F&& f) {
  const std::vector<int64_t> strides = broadcast_strides(out, in);
  const int64_t total = count_of(out);
  if (total == 0) return;
  const size_t rank = out.size();
  std::vector<int64_t> at(rank, 0);
  int64_t j = 0;
  for (int64_t i = 0; i < total; ++i) {
    f(i, j);
    for (size_t d = rank; d-- > 0;) {  // the odometer's next digit
      j += strides[d];
      if (++at[d] < out[d]) break;
      j -= strides[d] * out[d];
      at[d] = 0;
    }
  }
}

// The input offset of output index i, from its digits (the naive kernels).
int64_t broadcast_offset(int64_t i, const std::vector<int64_t>& out, const std::vector<int64_t>& in) {
  int64_t j = 0, stride = 1;
  for (size_t d = out.size(); d-- > 0;) {
    const int64_t digit = i % out[d];
    i /= out[d];
    if (in[d] != 1) j += digit * stride;
    stride *= in[d];
  }
  return j;
}

}  // namespace

template <typename T>
void broadcast_forward(T* y, const T* x, const std::vector<int64_t>& out, const std::vector<int64_t>& in) {
  broadcast_walk(out, in, [=](int64_t i, int64_t j) { y[i] = x[j]; });
}

template <typename T>
void broadcast_forward_naive(T* y, const T* x, const std::vector<int64_t>& out, const std::vector<int64_t>& in) {
  const int64_t total = count_of(out);
  for (int64_t i = 0; i < total; ++i) y[i] = x[broadcast_offset(i, out, in)];
}

template <typename T>
void broadcast_backward(T* dx, const T* dy, const std::vector<int64_t>& out, const std::vector<int64_t>& in,
                        double scale, bool accumulate) {
  // Sums in double in dy's order: one pass over dy, whatever the shapes.
  std::vector<double> sums(static_cast<size_t>(count_of(in)), 0.0);
  broadcast_walk(out, in, [&](int64_t i, int64_t j) { sums[j] += dy[i]; });
  for (size_t j = 0; j < sums.size(); ++j)
    dx[j] = static_cast<T>((accumulate ? static_cast<double>(dx[j]) : 0.0) + scale * sums[j]);
}

template <typename T>
void broadcast_backward_naive(T* dx, const T* dy, const std::vector<int64_t>& out, const std::vector<int64_t>& in,
                              double scale, bool accumulate) {
  const int64_t total = count_of(out), size = count_of(in);
  std::vector<double> sums(static_cast<size_t>(size), 0.0);
  for (int64_t i = 0; i < total; ++i) sums[broadcast_offset(i, out, in)] += dy[i];
  for (int64_t j = 0; j < size; ++j)
    dx[j] = static_cast<T>((accumulate ? static_cast<double>(dx[j]) : 0.0) + scale * sums[j]);
}

#define CORENN_INSTANTIATE(T)                                                                     \
  template void add_forward<T>(T*, const T* const*, int, int64_t);                                \
  template void add_forward_naive<T>(T*, const T* const*, int, int64_t);                          \
  template void add_relu_forward<T>(T*, const T* const*, int, int64_t);                           \
  template void add_relu_forward_naive<T>(T*, const T* const*, int, int64_t);                     \
  template void add_backward<T>(T*, const T*, int64_t, bool);                                     \
  template void add_backward_naive<T>(T*, const T*, int64_t, bool);                               \
  template void subtract_forward<T>(T*, const T*, const T*, int64_t);                             \
  template void subtract_forward_naive<T>(T*, const T*, const T*, int64_t);                       \
  template void subtract_backward<T>(T*, const T*, int64_t, bool);                                \
  template void subtract_backward_naive<T>(T*, const T*, int64_t, bool);                          \
  template void concat_forward<T>(T*, const T* const*, const int64_t*, int, int64_t);             \
  template void concat_forward_naive<T>(T*, const T* const*, const int64_t*, int, int64_t);       \
  template void concat_backward<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, bool);       \
  template void concat_backward_naive<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t, bool);  \
  template void multiply_forward<T>(T*, const T* const*, int, int64_t);                           \
  template void multiply_forward_naive<T>(T*, const T* const*, int, int64_t);                     \
  template void multiply_backward<T>(T*, const T*, const T* const*, int, int, int64_t);           \
  template void multiply_backward_naive<T>(T*, const T*, const T* const*, int, int, int64_t);     \
  template void average_forward<T>(T*, const T* const*, int, int64_t);                            \
  template void average_forward_naive<T>(T*, const T* const*, int, int64_t);                      \
  template void average_backward<T>(T*, const T*, int, int64_t, bool);                            \
  template void average_backward_naive<T>(T*, const T*, int, int64_t, bool);                      \
  template void maximum_forward<T>(T*, const T* const*, int, int64_t);                            \
  template void maximum_forward_naive<T>(T*, const T* const*, int, int64_t);                      \
  template void minimum_forward<T>(T*, const T* const*, int, int64_t);                            \
  template void minimum_forward_naive<T>(T*, const T* const*, int, int64_t);                      \
  template void extremum_backward<T>(T*, const T*, const T*, const T* const*, int, int, int64_t); \
  template void extremum_backward_naive<T>(T*, const T*, const T*, const T* const*, int, int, int64_t); \
  template void broadcast_forward<T>(T*, const T*, const std::vector<int64_t>&, const std::vector<int64_t>&); \
  template void broadcast_forward_naive<T>(T*, const T*, const std::vector<int64_t>&,                   \
                                           const std::vector<int64_t>&);                                \
  template void broadcast_backward<T>(T*, const T*, const std::vector<int64_t>&, const std::vector<int64_t>&, \
                                      double, bool);                                                    \
  template void broadcast_backward_naive<T>(T*, const T*, const std::vector<int64_t>&,                  \
                                            const std::vector<int64_t>&, double, bool);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
