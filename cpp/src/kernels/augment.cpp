#include "corenn/kernels/augment.hpp"

#include <algorithm>
#include <cmath>

#include "corenn/error.hpp"
#include "corenn/random.hpp"
#include "backend/parallel.hpp"

namespace corenn {

FlipMode parse_flip_mode(const std::string& name) {
  if (name == "horizontal") return FlipMode::horizontal;
  if (name == "vertical") return FlipMode::vertical;
  if (name == "horizontal_and_vertical") return FlipMode::horizontal_and_vertical;
  throw ValueError("random_flip: mode must be 'horizontal', 'vertical' or "
                   "'horizontal_and_vertical', got '" + name + "'");
}

const char* flip_mode_name(FlipMode mode) {
  switch (mode) {
    case FlipMode::horizontal: return "horizontal";
    case FlipMode::vertical: return "vertical";
    case FlipMode::horizontal_and_vertical: return "horizontal_and_vertical";
  }
  return "?";
}

namespace {


inline uint8_t draw_flips(FlipMode mode, uint64_t key, int64_t n) {
  return static_cast<uint8_t>(random_bits(key, static_cast<uint64_t>(n)) & static_cast<uint64_t>(mode));
}

// ⌊u·(2·pad + 1)⌋ in double, so no padding can overflow the integer product.
inline int64_t draw_offset(uint64_t key, uint64_t index, int64_t pad) {
  return static_cast<int64_t>(uniform01(key, index) * (2.0 * static_cast<double>(pad) + 1.0));
}

// out = in with example n flipped as flips[n] says. A flip is an involution,
// so this is both the forward and the backward pass.
template <typename T>
void flip_planes(T* out, const T* in, const uint8_t* flips, int64_t batch, int64_t channels,
                 int64_t height, int64_t width) {
  // out, in: (batch, channels, height, width); flips: (batch,)
  const int64_t plane = height * width;
  detail::parallel_for(0, batch * channels, detail::grain_for(plane), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      const uint8_t f = flips[p / channels];
      const T* src = in + p * plane;
      T* dst = out + p * plane;
      for (int64_t i = 0; i < height; ++i) {
        const T* row = src + ((f & 2) ? height - 1 - i : i) * width;
        T* to = dst + i * width;
        if (f & 1) std::reverse_copy(row, row + width, to);
        else std::copy(row, row + width, to);
      }
    }
  });
}

template <typename T>
void flip_planes_naive(T* out, const T* in, const uint8_t* flips, int64_t batch, int64_t channels,
                       int64_t height, int64_t width) {
  // out, in: (batch, channels, height, width); flips: (batch,)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < height; ++i)
        for (int64_t j = 0; j < width; ++j) {
          const int64_t si = (flips[n] & 2) ? height - 1 - i : i;
          const int64_t sj = (flips[n] & 1) ? width - 1 - j : j;
          out[((n * channels + c) * height + i) * width + j] =
              in[((n * channels + c) * height + si) * width + sj];
        }
}

// out[n, c, i, j] = in[n, c, i + sign·dy_n, j + sign·dx_n] (0 outside in), with
// (dy_n, dx_n) = offsets[n] − (pad_h, pad_w): sign +1 crops (forward), −1 puts
// the window back where it came from (backward).
template <typename T>
void shift_planes(T* out, const T* in, const int64_t* offsets, int64_t pad_h, int64_t pad_w, int sign,
                  int64_t batch, int64_t channels, int64_t height, int64_t width) {
  // out, in: (batch, channels, height, width); offsets: (batch, 2)
  const int64_t plane = height * width;
  detail::parallel_for(0, batch * channels, detail::grain_for(plane), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      const int64_t n = p / channels;
      const int64_t sy = sign * (offsets[2 * n] - pad_h), sx = sign * (offsets[2 * n + 1] - pad_w);
      // Columns j with 0 <= j + sx < width are copied, the rest are zero.
      const int64_t j0 = std::clamp<int64_t>(-sx, 0, width), j1 = std::clamp<int64_t>(width - sx, 0, width);
      const T* src = in + p * plane;
      T* dst = out + p * plane;
      for (int64_t i = 0; i < height; ++i) {
        T* to = dst + i * width;
        const int64_t si = i + sy;
        if (si < 0 || si >= height || j0 >= j1) {
          std::fill(to, to + width, T(0));
          continue;
        }
        std::fill(to, to + j0, T(0));
        std::copy(src + si * width + j0 + sx, src + si * width + j1 + sx, to + j0);
        std::fill(to + j1, to + width, T(0));
      }
    }
  });
}

template <typename T>
void shift_planes_naive(T* out, const T* in, const int64_t* offsets, int64_t pad_h, int64_t pad_w,
                        int sign, int64_t batch, int64_t channels, int64_t height, int64_t width) {
  // out, in: (batch, channels, height, width); offsets: (batch, 2)
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < height; ++i)
        for (int64_t j = 0; j < width; ++j) {
          const int64_t si = i + sign * (offsets[2 * n] - pad_h);
          const int64_t sj = j + sign * (offsets[2 * n + 1] - pad_w);
          const bool inside = si >= 0 && si < height && sj >= 0 && sj < width;
          out[((n * channels + c) * height + i) * width + j] =
              inside ? in[((n * channels + c) * height + si) * width + sj] : T(0);
        }
}

}  // namespace

// ---------------------------------------------------------------- random_flip

template <typename T>
void random_flip_forward(T* y, uint8_t* flips, const T* x, FlipMode mode, uint64_t key,
                         int64_t batch, int64_t channels, int64_t height, int64_t width) {
  // y: (batch, channels, height, width), flips: (batch,), x: like y
  for (int64_t n = 0; n < batch; ++n) flips[n] = draw_flips(mode, key, n);
  flip_planes(y, x, flips, batch, channels, height, width);
}

template <typename T>
void random_flip_forward_naive(T* y, uint8_t* flips, const T* x, FlipMode mode, uint64_t key,
                               int64_t batch, int64_t channels, int64_t height, int64_t width) {
  // y: (batch, channels, height, width), flips: (batch,), x: like y
  for (int64_t n = 0; n < batch; ++n) flips[n] = draw_flips(mode, key, n);
  flip_planes_naive(y, x, flips, batch, channels, height, width);
}

template <typename T>
void random_flip_backward(T* dx, const T* dy, const uint8_t* flips, int64_t batch, int64_t channels,
                          int64_t height, int64_t width) {
  // dx: (batch, channels, height, width), dy: like dx, flips: (batch,)
  flip_planes(dx, dy, flips, batch, channels, height, width);
}

template <typename T>
void random_flip_backward_naive(T* dx, const T* dy, const uint8_t* flips, int64_t batch,
                                int64_t channels, int64_t height, int64_t width) {
  // dx: (batch, channels, height, width), dy: like dx, flips: (batch,)
  flip_planes_naive(dx, dy, flips, batch, channels, height, width);
}

// ---------------------------------------------------------------- random_crop

template <typename T>
void random_crop_forward(T* y, int64_t* offsets, const T* x, int64_t pad_h, int64_t pad_w,
                         uint64_t key, int64_t batch, int64_t channels, int64_t height, int64_t width) {
  // y: (batch, channels, height, width), offsets: (batch, 2), x: like y
  for (int64_t n = 0; n < batch; ++n) {
    offsets[2 * n] = draw_offset(key, 2 * static_cast<uint64_t>(n), pad_h);
    offsets[2 * n + 1] = draw_offset(key, 2 * static_cast<uint64_t>(n) + 1, pad_w);
  }
  shift_planes(y, x, offsets, pad_h, pad_w, +1, batch, channels, height, width);
}

template <typename T>
void random_crop_forward_naive(T* y, int64_t* offsets, const T* x, int64_t pad_h, int64_t pad_w,
                               uint64_t key, int64_t batch, int64_t channels, int64_t height,
                               int64_t width) {
  // y: (batch, channels, height, width), offsets: (batch, 2), x: like y
  for (int64_t n = 0; n < batch; ++n) {
    offsets[2 * n] = draw_offset(key, 2 * static_cast<uint64_t>(n), pad_h);
    offsets[2 * n + 1] = draw_offset(key, 2 * static_cast<uint64_t>(n) + 1, pad_w);
  }
  shift_planes_naive(y, x, offsets, pad_h, pad_w, +1, batch, channels, height, width);
}

template <typename T>
void random_crop_backward(T* dx, const T* dy, const int64_t* offsets, int64_t pad_h, int64_t pad_w,
                          int64_t batch, int64_t channels, int64_t height, int64_t width) {
  // dx: (batch, channels, height, width), dy: like dx, offsets: (batch, 2)
  shift_planes(dx, dy, offsets, pad_h, pad_w, -1, batch, channels, height, width);
}

template <typename T>
void random_crop_backward_naive(T* dx, const T* dy, const int64_t* offsets, int64_t pad_h,
                                int64_t pad_w, int64_t batch, int64_t channels, int64_t height,
                                int64_t width) {
  // dx: (batch, channels, height, width), dy: like dx, offsets: (batch, 2)
  shift_planes_naive(dx, dy, offsets, pad_h, pad_w, -1, batch, channels, height, width);
}

// ---------------------------------------------------------------- color_shift

namespace {
template <typename T>
inline T draw_shift(T delta, uint64_t key, int64_t index) {
  const double u = uniform01(key, static_cast<uint64_t>(index));
  return static_cast<T>(static_cast<double>(delta) * (2.0 * u - 1.0));
}
}  // namespace

template <typename T>
void color_shift_forward(T* y, T* shift, const T* x, T delta, uint64_t key, int64_t batch,
                         int64_t channels, int64_t spatial) {
  // y: (batch, channels, spatial), shift: (batch, channels), x: like y
  for (int64_t p = 0; p < batch * channels; ++p) shift[p] = draw_shift(delta, key, p);
  detail::parallel_for(0, batch * channels, detail::grain_for(spatial), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      const T s = shift[p];
      const T* src = x + p * spatial;
      T* dst = y + p * spatial;
      for (int64_t k = 0; k < spatial; ++k) dst[k] = src[k] + s;
    }
  });
}

template <typename T>
void color_shift_forward_naive(T* y, T* shift, const T* x, T delta, uint64_t key, int64_t batch,
                               int64_t channels, int64_t spatial) {
  // y: (batch, channels, spatial), shift: (batch, channels), x: like y
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      shift[n * channels + c] = draw_shift(delta, key, n * channels + c);
      for (int64_t k = 0; k < spatial; ++k)
        y[(n * channels + c) * spatial + k] = x[(n * channels + c) * spatial + k] + shift[n * channels + c];
    }
}

#define CORENN_AUGMENT_INSTANTIATE(T)                                                             \
  template void random_flip_forward<T>(T*, uint8_t*, const T*, FlipMode, uint64_t, int64_t,       \
                                       int64_t, int64_t, int64_t);                                \
  template void random_flip_forward_naive<T>(T*, uint8_t*, const T*, FlipMode, uint64_t, int64_t, \
                                             int64_t, int64_t, int64_t);                          \
  template void random_flip_backward<T>(T*, const T*, const uint8_t*, int64_t, int64_t, int64_t,  \
                                        int64_t);                                                 \
  template void random_flip_backward_naive<T>(T*, const T*, const uint8_t*, int64_t, int64_t,     \
                                              int64_t, int64_t);                                  \
  template void random_crop_forward<T>(T*, int64_t*, const T*, int64_t, int64_t, uint64_t,        \
                                       int64_t, int64_t, int64_t, int64_t);                       \
  template void random_crop_forward_naive<T>(T*, int64_t*, const T*, int64_t, int64_t, uint64_t,  \
                                             int64_t, int64_t, int64_t, int64_t);                 \
  template void random_crop_backward<T>(T*, const T*, const int64_t*, int64_t, int64_t, int64_t,  \
                                        int64_t, int64_t, int64_t);                               \
  template void random_crop_backward_naive<T>(T*, const T*, const int64_t*, int64_t, int64_t,     \
                                              int64_t, int64_t, int64_t, int64_t);                \
  template void color_shift_forward<T>(T*, T*, const T*, T, uint64_t, int64_t, int64_t, int64_t); \
  template void color_shift_forward_naive<T>(T*, T*, const T*, T, uint64_t, int64_t, int64_t,     \
                                             int64_t);
CORENN_AUGMENT_INSTANTIATE(float)
CORENN_AUGMENT_INSTANTIATE(double)
#undef CORENN_AUGMENT_INSTANTIATE

}  // namespace corenn
