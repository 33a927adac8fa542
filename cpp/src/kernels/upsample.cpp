#include "corenn/kernels/upsample.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

namespace corenn {

// The fast kernels split the batch·channels planes across threads. A plane
// belongs to one thread, so the backward scatter-adds are race-free and every
// plane is computed by the same serial loop whatever the split (results do not
// depend on the thread count). The naive kernels are plain loops over every
// output cell, in the order of the formula, kept as the oracle.

Interpolation parse_interpolation(const std::string& name, const char* op) {
  if (name == "nearest") return Interpolation::nearest;
  if (name == "bilinear") return Interpolation::bilinear;
  throw ValueError(std::string(op) + ": interpolation must be 'nearest' or 'bilinear', got '" +
                   name + "'");
}

void validate(const Upsample2dShape& s, const char* op) {
  const std::pair<int64_t, const char*> checks[] = {
      {s.batch, "batch"},      {s.channels, "channels"}, {s.height, "height"},
      {s.width, "width"},      {s.scale_h, "size"},      {s.scale_w, "size"}};
  for (const auto& [v, name] : checks)
    if (v < 1)
      throw ValueError(std::string(op) + ": " + name + " must be at least 1, got " + std::to_string(v));
}

namespace {


// Where output index i of an axis scaled by `scale` reads from, with half-pixel
// centres: the neighbours lo, hi and the weight of hi. The source point is
// clamped at 0 (the first half pixel repeats the edge); hi is clamped at the
// last index (so is the last half pixel).
template <typename T>
struct Source {
  int64_t lo, hi;
  T weight;
};

template <typename T>
Source<T> source(int64_t i, int64_t scale, int64_t size) {
  const double u = std::max((static_cast<double>(i) + 0.5) / static_cast<double>(scale) - 0.5, 0.0);
  const int64_t lo = static_cast<int64_t>(u);  // u >= 0: truncation is the floor
  return {lo, std::min(lo + 1, size - 1), static_cast<T>(u - static_cast<double>(lo))};
}

// ------------------------------------------------------------------ nearest

template <typename T>
void nearest_forward_plane(T* y, const T* x, const Upsample2dShape& s) {
  // y: (out_h, out_w); x: (height, width)
  const int64_t W = s.width, OW = s.out_w();
  for (int64_t h = 0; h < s.height; ++h) {
    // Build the first of the sh equal output rows, then copy it.
    T* row = y + h * s.scale_h * OW;
    for (int64_t w = 0; w < W; ++w) std::fill(row + w * s.scale_w, row + (w + 1) * s.scale_w, x[h * W + w]);
    for (int64_t p = 1; p < s.scale_h; ++p) std::copy(row, row + OW, row + p * OW);
  }
}

template <typename T>
void nearest_backward_plane(T* dx, const T* dy, const Upsample2dShape& s) {
  // dx: (height, width); dy: (out_h, out_w). Each x cell was copied to an
  // sh × sw block: its gradient is the block's sum (a gather, no zeroing).
  const int64_t W = s.width, OW = s.out_w();
  for (int64_t h = 0; h < s.height; ++h) {
    T* out = dx + h * W;
    std::fill(out, out + W, T(0));
    for (int64_t p = 0; p < s.scale_h; ++p) {
      const T* row = dy + (h * s.scale_h + p) * OW;
      for (int64_t w = 0; w < W; ++w)
        for (int64_t q = 0; q < s.scale_w; ++q) out[w] += row[w * s.scale_w + q];
    }
  }
}

// ----------------------------------------------------------------- bilinear

template <typename T>
void bilinear_forward_plane(T* y, const T* x, const Upsample2dShape& s) {
  // y: (out_h, out_w); x: (height, width)
  const int64_t W = s.width, OW = s.out_w();
  for (int64_t i = 0; i < s.out_h(); ++i) {
    const Source<T> r = source<T>(i, s.scale_h, s.height);  // once per output row
    const T* x0 = x + r.lo * W;
    const T* x1 = x + r.hi * W;
    T* out = y + i * OW;
    for (int64_t j = 0; j < OW; ++j) {
      const Source<T> c = source<T>(j, s.scale_w, W);
      const T top = x0[c.lo] + c.weight * (x0[c.hi] - x0[c.lo]);
      const T bottom = x1[c.lo] + c.weight * (x1[c.hi] - x1[c.lo]);
      out[j] = top + r.weight * (bottom - top);
    }
  }
}

template <typename T>
void bilinear_backward_plane(T* dx, const T* dy, const Upsample2dShape& s) {
  // dx: (height, width), zeroed then accumulated; dy: (out_h, out_w)
  const int64_t W = s.width, OW = s.out_w();
  std::fill(dx, dx + s.height * W, T(0));
  for (int64_t i = 0; i < s.out_h(); ++i) {
    const Source<T> r = source<T>(i, s.scale_h, s.height);
    T* d0 = dx + r.lo * W;
    T* d1 = dx + r.hi * W;
    const T* g = dy + i * OW;
    for (int64_t j = 0; j < OW; ++j) {
      const Source<T> c = source<T>(j, s.scale_w, W);
      const T top = (T(1) - r.weight) * g[j], bottom = r.weight * g[j];
      d0[c.lo] += (T(1) - c.weight) * top;
      d0[c.hi] += c.weight * top;
      d1[c.lo] += (T(1) - c.weight) * bottom;
      d1[c.hi] += c.weight * bottom;
    }
  }
}

}  // namespace

// ------------------------------------------------------------------ forward

template <typename T>
void upsample2d_forward(T* y, const T* x, const Upsample2dShape& s) {
  // y: (batch, channels, out_h, out_w); x: (batch, channels, height, width)
  const int64_t in_plane = s.height * s.width, out_plane = s.out_h() * s.out_w();
  const bool nearest = s.interpolation == Interpolation::nearest;
  detail::parallel_for(0, s.batch * s.channels, detail::grain_for(out_plane), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      if (nearest) nearest_forward_plane(y + p * out_plane, x + p * in_plane, s);
      else bilinear_forward_plane(y + p * out_plane, x + p * in_plane, s);
    }
  });
}

template <typename T>
void upsample2d_forward_naive(T* y, const T* x, const Upsample2dShape& s) {
  const int64_t H = s.height, W = s.width, OH = s.out_h(), OW = s.out_w();
  for (int64_t p = 0; p < s.batch * s.channels; ++p)
    for (int64_t i = 0; i < OH; ++i)
      for (int64_t j = 0; j < OW; ++j) {
        const T* xp = x + p * H * W;
        T& out = y[(p * OH + i) * OW + j];
        if (s.interpolation == Interpolation::nearest) {
          out = xp[(i / s.scale_h) * W + j / s.scale_w];
          continue;
        }
        const Source<T> r = source<T>(i, s.scale_h, H), c = source<T>(j, s.scale_w, W);
        const T a = r.weight, b = c.weight;
        out = (1 - a) * (1 - b) * xp[r.lo * W + c.lo] + (1 - a) * b * xp[r.lo * W + c.hi] +
              a * (1 - b) * xp[r.hi * W + c.lo] + a * b * xp[r.hi * W + c.hi];
      }
}

// ----------------------------------------------------------------- backward

template <typename T>
void upsample2d_backward(T* dx, const T* dy, const Upsample2dShape& s) {
  // dx: (batch, channels, height, width); dy: (batch, channels, out_h, out_w)
  const int64_t in_plane = s.height * s.width, out_plane = s.out_h() * s.out_w();
  const bool nearest = s.interpolation == Interpolation::nearest;
  detail::parallel_for(0, s.batch * s.channels, detail::grain_for(out_plane), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      if (nearest) nearest_backward_plane(dx + p * in_plane, dy + p * out_plane, s);
      else bilinear_backward_plane(dx + p * in_plane, dy + p * out_plane, s);
    }
  });
}

template <typename T>
void upsample2d_backward_naive(T* dx, const T* dy, const Upsample2dShape& s) {
  const int64_t H = s.height, W = s.width, OH = s.out_h(), OW = s.out_w();
  std::fill(dx, dx + s.batch * s.channels * H * W, T(0));
  for (int64_t p = 0; p < s.batch * s.channels; ++p)
    for (int64_t i = 0; i < OH; ++i)
      for (int64_t j = 0; j < OW; ++j) {
        T* dxp = dx + p * H * W;
        const T g = dy[(p * OH + i) * OW + j];
        if (s.interpolation == Interpolation::nearest) {
          dxp[(i / s.scale_h) * W + j / s.scale_w] += g;
          continue;
        }
        const Source<T> r = source<T>(i, s.scale_h, H), c = source<T>(j, s.scale_w, W);
        const T a = r.weight, b = c.weight;
        dxp[r.lo * W + c.lo] += (1 - a) * (1 - b) * g;
        dxp[r.lo * W + c.hi] += (1 - a) * b * g;
        dxp[r.hi * W + c.lo] += a * (1 - b) * g;
        dxp[r.hi * W + c.hi] += a * b * g;
      }
}

// ---------------------------------------------------------------- instantiations

#define CORENN_UPSAMPLE_INSTANTIATE(T)                                         \
  template void upsample2d_forward<T>(T*, const T*, const Upsample2dShape&);       \
  template void upsample2d_forward_naive<T>(T*, const T*, const Upsample2dShape&); \
  template void upsample2d_backward<T>(T*, const T*, const Upsample2dShape&);      \
  template void upsample2d_backward_naive<T>(T*, const T*, const Upsample2dShape&);

CORENN_UPSAMPLE_INSTANTIATE(float)
CORENN_UPSAMPLE_INSTANTIATE(double)

#undef CORENN_UPSAMPLE_INSTANTIATE

}  // namespace corenn
