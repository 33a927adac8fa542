#include "corenn/kernels/pool.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

// Every kernel here treats the batch·channels planes independently, so the fast
// versions split the planes across threads. A plane belongs to one thread, which
// makes the scatter-adds of the backward passes race-free and the results
// independent of the thread count (each plane is computed by the same serial
// loop whatever the split).
//
// Max pooling semantics (the tests rely on both):
//   ties  — the FIRST maximum in row-major window order wins (strict >), so
//           argmax is deterministic and matches the naive oracle bit for bit;
//   NaN   — propagates: a window holding a NaN gives NaN (np.max and PyTorch's
//           max_pool2d alike), so pooling never hides one, and the argmax is
//           its position, so its gradient reaches it. With several NaNs the
//           first wins, as in np.argmax (PyTorch's CPU kernel keeps the last).

namespace {

// True when v should replace the current best: a strictly larger value (so the
// first of equal maxima stays), or the first NaN (nothing replaces a NaN, as
// every comparison with it is false).
template <typename T>
inline bool beats(T v, T best) {
  return (v > best) | ((v != v) & (best == best));  // non-short-circuit: no branches
}

// best, at = v, v_at when beats(v, best), without a branch: on real data the
// winner of a comparison is a coin toss, and a mispredicted branch per
// comparison made the 2×2 pooling pass take 50 cycles per output (13% of a
// LeNet training step). beats() uses non-short-circuit operators and the
// results are blended through bit masks, which compile to compare, and, or.
template <typename T>
inline void select_if_beats(T v, int64_t v_at, T& best, int64_t& at) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  const bool take = beats(v, best);
  const Bits mask = Bits(0) - static_cast<Bits>(take);
  Bits vb, bb;
  std::memcpy(&vb, &v, sizeof(T));
  std::memcpy(&bb, &best, sizeof(T));
  bb = (vb & mask) | (bb & ~mask);
  std::memcpy(&best, &bb, sizeof(T));
  const int64_t at_mask = -static_cast<int64_t>(take);
  at = (v_at & at_mask) | (at & ~at_mask);
}

// [lo, hi) ∩ [0, n) for a window starting at `start` of length k.
inline void clip(int64_t start, int64_t k, int64_t n, int64_t& lo, int64_t& hi) {
  lo = std::max<int64_t>(start, 0);
  hi = std::min<int64_t>(start + k, n);
}

void check_at_least_one(int64_t v, const char* op, const char* name) {
  if (v < 1)
    throw ValueError(std::string(op) + ": " + name + " must be at least 1, got " +
                     std::to_string(v));
}

void check_padding(int64_t pad, int64_t kernel, const char* op) {
  if (pad < 0)
    throw ValueError(std::string(op) + ": padding must be non-negative, got " +
                     std::to_string(pad));
  // Padding beyond half the kernel would allow windows with no input cell in
  // them: an empty max and an average over nothing.
  if (2 * pad > kernel)
    throw ValueError(std::string(op) + ": padding " + std::to_string(pad) +
                     " is more than half the kernel " + std::to_string(kernel));
}

void check_window_fits(int64_t kernel, int64_t size, int64_t pad_a, int64_t pad_b,
                       const char* op, const char* dim) {
  const int64_t padded = size + pad_a + pad_b;
  if (kernel > padded)
    throw ValueError(std::string(op) + ": kernel " + dim + " " + std::to_string(kernel) +
                     " is larger than the padded input " + dim + " " + std::to_string(padded));
}

}  // namespace

int64_t Pool2dShape::out_h() const {
  return (height + pad_top + pad_bottom - kernel_h) / stride_h + 1;
}

int64_t Pool2dShape::out_w() const {
  return (width + pad_left + pad_right - kernel_w) / stride_w + 1;
}

void validate(const Pool2dShape& s, const char* op) {
  check_at_least_one(s.batch, op, "batch");
  check_at_least_one(s.channels, op, "channels");
  check_at_least_one(s.height, op, "height");
  check_at_least_one(s.width, op, "width");
  check_at_least_one(s.kernel_h, op, "kernel_size");
  check_at_least_one(s.kernel_w, op, "kernel_size");
  check_at_least_one(s.stride_h, op, "stride");
  check_at_least_one(s.stride_w, op, "stride");
  check_padding(s.pad_top, s.kernel_h, op);
  check_padding(s.pad_bottom, s.kernel_h, op);
  check_padding(s.pad_left, s.kernel_w, op);
  check_padding(s.pad_right, s.kernel_w, op);
  check_window_fits(s.kernel_h, s.height, s.pad_top, s.pad_bottom, op, "height");
  check_window_fits(s.kernel_w, s.width, s.pad_left, s.pad_right, op, "width");
}

// ---------------------------------------------------------------- max pool

namespace {

// One plane, any geometry. The window is clipped to the input once per output
// cell, so padded cells (−∞) are simply never visited; validate() guarantees
// every clipped window holds at least one cell.
template <typename T>
void max_pool_plane(T* y, int64_t* argmax, const T* x, const Pool2dShape& s) {
  // y, argmax: (out_h, out_w); x: (height, width)
  const int64_t H = s.height, W = s.width, OH = s.out_h(), OW = s.out_w();
  for (int64_t oh = 0; oh < OH; ++oh) {
    int64_t h0, h1;
    clip(oh * s.stride_h - s.pad_top, s.kernel_h, H, h0, h1);
    for (int64_t ow = 0; ow < OW; ++ow) {
      int64_t w0, w1;
      clip(ow * s.stride_w - s.pad_left, s.kernel_w, W, w0, w1);
      int64_t best_at = h0 * W + w0;
      T best = x[best_at];
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) select_if_beats(x[h * W + w], h * W + w, best, best_at);
      y[oh * OW + ow] = best;
      argmax[oh * OW + ow] = best_at;
    }
  }
}

// One plane, 2×2 windows with stride 2 and no padding (the classic
// downsampling layer): no clipping, four loads per output, compared in the
// same row-major order as the general loop so ties and NaN resolve alike.
template <typename T>
void max_pool_plane_2x2(T* y, int64_t* argmax, const T* x, int64_t H, int64_t W) {
  // y, argmax: (H/2, W/2); x: (H, W)
  const int64_t OH = H / 2, OW = W / 2;
  for (int64_t oh = 0; oh < OH; ++oh) {
    const T* top = x + 2 * oh * W;
    const T* bottom = top + W;
    const int64_t row = 2 * oh * W;
    for (int64_t ow = 0; ow < OW; ++ow) {
      const int64_t w = 2 * ow;
      T best = top[w];
      int64_t at = w;
      select_if_beats(top[w + 1], w + 1, best, at);
      select_if_beats(bottom[w], W + w, best, at);
      select_if_beats(bottom[w + 1], W + w + 1, best, at);
      y[oh * OW + ow] = best;
      argmax[oh * OW + ow] = row + at;
    }
  }
}

// The 2×2 planes [lo, hi) through the loop above, widened (backend/simd.hpp).
// Wide vectors pay from 16 outputs per row on (maxpool2_fwdbwd's 32 → 16:
// 2.30 → 1.88 ms with the AVX-512 copy); on shorter rows (LeNet's 14 and 5) the
// vector set-up made the pass twice as slow as the plain loop: those go
// through fixed blocks of lanes below instead.
constexpr int64_t kWideRow = 16;

template <typename T>
CORENN_SIMD_CLONES void max_pool_planes_2x2_wide(T* y, int64_t* argmax, const T* x, int64_t H, int64_t W,
                                                 int64_t lo, int64_t hi) {
  const int64_t in_size = H * W, out_size = (H / 2) * (W / 2);
  for (int64_t p = lo; p < hi; ++p)
    max_pool_plane_2x2(y + p * out_size, argmax + p * out_size, x + p * in_size, H, W);
}

// Short rows (4 to 15 outputs: LeNet's 14 and 5) in blocks of L outputs as
// vectors of L lanes, the last block overlapping the one before when L does
// not divide the row (its outputs are written twice, alike): per lane the
// comparisons of max_pool_plane_2x2, in its order, so the same maxima and
// positions bit for bit. top, bottom: the window rows; row: top's offset in
// the plane; w0: the block's first output column. LeNet's two poolings, 64
// images: 0.21 → 0.06 ms and 0.087 → 0.044 ms (1 thread).
template <int L, typename T>
inline void max_pool_2x2_block(T* y, int64_t* argmax, const T* top, const T* bottom, int64_t W, int64_t row,
                               int64_t w0) {
  using V = typename detail::Vector<T, L>::type;
  using M = typename detail::Vector<std::conditional_t<sizeof(T) == 4, int32_t, int64_t>, L>::type;  // V's masks
  using I = typename detail::Vector<int64_t, L>::type;
  // Lane k of the block reads input columns 2·(w0 + k) and 2·(w0 + k) + 1.
  const auto load_pairs = [&](const T* in, V& even, V& odd) {
    V lo, hi;
    std::memcpy(&lo, in + 2 * w0, sizeof(V));
    std::memcpy(&hi, in + 2 * w0 + L, sizeof(V));
    M evens, odds;
    for (int k = 0; k < L; ++k) evens[k] = 2 * k, odds[k] = 2 * k + 1;
    even = __builtin_shuffle(lo, hi, evens);
    odd = __builtin_shuffle(lo, hi, odds);
  };
  V a, b, c, d;
  load_pairs(top, a, b);
  load_pairs(bottom, c, d);
  V best = a;
  I at = {};  // the winner's offset from its window's top-left cell
  const auto take = [&](V v, int64_t offset) {
    const M beats_mask = (v > best) | ((v != v) & (best == best));  // beats(), lane by lane
    best = beats_mask ? v : best;
    const I m = __builtin_convertvector(beats_mask, I);
    at = (m & offset) | (at & ~m);
  };
  take(b, 1);
  take(c, W);
  take(d, W + 1);
  I lanes;
  for (int k = 0; k < L; ++k) lanes[k] = 2 * k;
  at += row + 2 * w0 + lanes;
  std::memcpy(y + w0, &best, sizeof(V));
  std::memcpy(argmax + w0, &at, sizeof(I));
}

template <int L, typename T>
void max_pool_plane_2x2_short(T* y, int64_t* argmax, const T* x, int64_t H, int64_t W) {
  const int64_t OH = H / 2, OW = W / 2;
  for (int64_t oh = 0; oh < OH; ++oh) {
    const T* top = x + 2 * oh * W;
    T* yr = y + oh * OW;
    int64_t* ar = argmax + oh * OW;
    for (int64_t w0 = 0; w0 + L <= OW; w0 += L) max_pool_2x2_block<L>(yr, ar, top, top + W, W, 2 * oh * W, w0);
    if (OW % L) max_pool_2x2_block<L>(yr, ar, top, top + W, W, 2 * oh * W, OW - L);
  }
}

template <typename T>
CORENN_SIMD_CLONES void max_pool_planes_2x2_short(T* y, int64_t* argmax, const T* x, int64_t H, int64_t W,
                                                  int64_t lo, int64_t hi) {
  const int64_t in_size = H * W, out_size = (H / 2) * (W / 2);
  for (int64_t p = lo; p < hi; ++p) {
    if (W / 2 >= 8) max_pool_plane_2x2_short<8>(y + p * out_size, argmax + p * out_size, x + p * in_size, H, W);
    else max_pool_plane_2x2_short<4>(y + p * out_size, argmax + p * out_size, x + p * in_size, H, W);
  }
}

bool is_plain_2x2(const Pool2dShape& s) {
  return s.kernel_h == 2 && s.kernel_w == 2 && s.stride_h == 2 && s.stride_w == 2 &&
         s.pad_top == 0 && s.pad_bottom == 0 && s.pad_left == 0 && s.pad_right == 0;
}

}  // namespace

template <typename T>
void max_pool2d_forward(T* y, int64_t* argmax, const T* x, const Pool2dShape& s) {
  // y, argmax: (batch, channels, out_h, out_w); x: (batch, channels, height, width)
  const int64_t planes = s.batch * s.channels, in_size = s.height * s.width;
  const int64_t out_size = s.out_h() * s.out_w();
  const bool fast_2x2 = is_plain_2x2(s);
  const int64_t grain = detail::grain_for(out_size * s.kernel_h * s.kernel_w);
  detail::parallel_for(0, planes, grain, [=](int64_t lo, int64_t hi, int) {
    if (fast_2x2 && s.out_w() >= kWideRow)
      return max_pool_planes_2x2_wide(y, argmax, x, s.height, s.width, lo, hi);
    if (fast_2x2 && s.out_w() >= 4)
      return max_pool_planes_2x2_short(y, argmax, x, s.height, s.width, lo, hi);
    for (int64_t p = lo; p < hi; ++p) {
      if (fast_2x2)
        max_pool_plane_2x2(y + p * out_size, argmax + p * out_size, x + p * in_size, s.height,
                           s.width);
      else
        max_pool_plane(y + p * out_size, argmax + p * out_size, x + p * in_size, s);
    }
  });
}

// The oracle: the formula y = max over the padded window, read literally — the
// full KH×KW window is walked and padded cells count as −∞.
template <typename T>
void max_pool2d_forward_naive(T* y, int64_t* argmax, const T* x, const Pool2dShape& s) {
  // y, argmax: (batch, channels, out_h, out_w); x: (batch, channels, height, width)
  const int64_t H = s.height, W = s.width, OH = s.out_h(), OW = s.out_w();
  const T minus_inf = -std::numeric_limits<T>::infinity();
  for (int64_t p = 0; p < s.batch * s.channels; ++p)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        T best = minus_inf;
        int64_t best_at = -1;
        for (int64_t kh = 0; kh < s.kernel_h; ++kh)
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const int64_t h = oh * s.stride_h - s.pad_top + kh;
            const int64_t w = ow * s.stride_w - s.pad_left + kw;
            const bool inside = h >= 0 && h < H && w >= 0 && w < W;
            if (!inside) continue;  // a padded cell: −∞ never wins
            const T v = x[p * H * W + h * W + w];
            // The first input cell is taken even if it is −∞ itself, so argmax
            // always names a real cell.
            if (best_at < 0 || beats(v, best)) {
              best = v;
              best_at = h * W + w;
            }
          }
        y[(p * OH + oh) * OW + ow] = best;
        argmax[(p * OH + oh) * OW + ow] = best_at;
      }
}

template <typename T>
void max_pool2d_backward(T* dx, const T* dy, const int64_t* argmax, const Pool2dShape& s) {
  // dx: (batch, channels, height, width); dy, argmax: (batch, channels, out_h, out_w)
  const int64_t planes = s.batch * s.channels, in_size = s.height * s.width;
  const int64_t out_size = s.out_h() * s.out_w();
  const int64_t grain = detail::grain_for(in_size + out_size);
  detail::parallel_for(0, planes, grain, [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      T* dxp = dx + p * in_size;
      const T* dyp = dy + p * out_size;
      const int64_t* ap = argmax + p * out_size;
      std::fill(dxp, dxp + in_size, T(0));
      // += because overlapping windows may pick the same cell.
      for (int64_t o = 0; o < out_size; ++o) dxp[ap[o]] += dyp[o];
    }
  });
}

template <typename T>
void max_pool2d_backward_naive(T* dx, const T* dy, const int64_t* argmax, const Pool2dShape& s) {
  // dx: (batch, channels, height, width); dy, argmax: (batch, channels, out_h, out_w)
  const int64_t planes = s.batch * s.channels, in_size = s.height * s.width;
  const int64_t out_size = s.out_h() * s.out_w();
  for (int64_t i = 0; i < planes * in_size; ++i) dx[i] = T(0);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o = 0; o < out_size; ++o) dx[p * in_size + argmax[p * out_size + o]] += dy[p * out_size + o];
}

// ---------------------------------------------------------------- average pool

namespace {

// The divisor of one window: its full area when padded cells count as zeros,
// else the number of cells [h0, h1) × [w0, w1) inside the input.
inline int64_t window_count(const Pool2dShape& s, int64_t h0, int64_t h1, int64_t w0,
                            int64_t w1) {
  return s.count_include_pad ? s.kernel_h * s.kernel_w : (h1 - h0) * (w1 - w0);
}

template <typename T>
void avg_pool_plane(T* y, const T* x, const Pool2dShape& s) {
  // y: (out_h, out_w); x: (height, width)
  const int64_t H = s.height, W = s.width, OH = s.out_h(), OW = s.out_w();
  for (int64_t oh = 0; oh < OH; ++oh) {
    int64_t h0, h1;
    clip(oh * s.stride_h - s.pad_top, s.kernel_h, H, h0, h1);
    for (int64_t ow = 0; ow < OW; ++ow) {
      int64_t w0, w1;
      clip(ow * s.stride_w - s.pad_left, s.kernel_w, W, w0, w1);
      // Padded cells are zeros: they add nothing to the sum, only to the count.
      T sum = T(0);
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) sum += x[h * W + w];
      y[oh * OW + ow] = sum / static_cast<T>(window_count(s, h0, h1, w0, w1));
    }
  }
}

template <typename T>
void avg_pool_plane_backward(T* dx, const T* dy, const Pool2dShape& s) {
  // dx: (height, width); dy: (out_h, out_w)
  const int64_t H = s.height, W = s.width, OH = s.out_h(), OW = s.out_w();
  std::fill(dx, dx + H * W, T(0));
  for (int64_t oh = 0; oh < OH; ++oh) {
    int64_t h0, h1;
    clip(oh * s.stride_h - s.pad_top, s.kernel_h, H, h0, h1);
    for (int64_t ow = 0; ow < OW; ++ow) {
      int64_t w0, w1;
      clip(ow * s.stride_w - s.pad_left, s.kernel_w, W, w0, w1);
      // Each cell of the window received 1/count of the output.
      const T g = dy[oh * OW + ow] / static_cast<T>(window_count(s, h0, h1, w0, w1));
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) dx[h * W + w] += g;
    }
  }
}

}  // namespace

template <typename T>
void avg_pool2d_forward(T* y, const T* x, const Pool2dShape& s) {
  // y: (batch, channels, out_h, out_w); x: (batch, channels, height, width)
  const int64_t planes = s.batch * s.channels, in_size = s.height * s.width;
  const int64_t out_size = s.out_h() * s.out_w();
  const int64_t grain = detail::grain_for(out_size * s.kernel_h * s.kernel_w);
  detail::parallel_for(0, planes, grain, [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) avg_pool_plane(y + p * out_size, x + p * in_size, s);
  });
}

// The oracle walks the full padded window; a padded cell is a zero, which
// counts toward the divisor only with count_include_pad.
template <typename T>
void avg_pool2d_forward_naive(T* y, const T* x, const Pool2dShape& s) {
  // y: (batch, channels, out_h, out_w); x: (batch, channels, height, width)
  const int64_t H = s.height, W = s.width, OH = s.out_h(), OW = s.out_w();
  for (int64_t p = 0; p < s.batch * s.channels; ++p)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        T sum = T(0);
        int64_t inside_count = 0;
        for (int64_t kh = 0; kh < s.kernel_h; ++kh)
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const int64_t h = oh * s.stride_h - s.pad_top + kh;
            const int64_t w = ow * s.stride_w - s.pad_left + kw;
            if (h < 0 || h >= H || w < 0 || w >= W) continue;
            sum += x[p * H * W + h * W + w];
            ++inside_count;
          }
        const int64_t count = s.count_include_pad ? s.kernel_h * s.kernel_w : inside_count;
        y[(p * OH + oh) * OW + ow] = sum / static_cast<T>(count);
      }
}

template <typename T>
void avg_pool2d_backward(T* dx, const T* dy, const Pool2dShape& s) {
  // dx: (batch, channels, height, width); dy: (batch, channels, out_h, out_w)
  const int64_t planes = s.batch * s.channels, in_size = s.height * s.width;
  const int64_t out_size = s.out_h() * s.out_w();
  const int64_t grain = detail::grain_for(in_size + out_size * s.kernel_h * s.kernel_w);
  detail::parallel_for(0, planes, grain, [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p)
      avg_pool_plane_backward(dx + p * in_size, dy + p * out_size, s);
  });
}

template <typename T>
void avg_pool2d_backward_naive(T* dx, const T* dy, const Pool2dShape& s) {
  // dx: (batch, channels, height, width); dy: (batch, channels, out_h, out_w)
  const int64_t H = s.height, W = s.width, OH = s.out_h(), OW = s.out_w();
  for (int64_t i = 0; i < s.batch * s.channels * H * W; ++i) dx[i] = T(0);
  for (int64_t p = 0; p < s.batch * s.channels; ++p)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        // First the divisor of this window, then spread dy/count over its inside cells.
        int64_t inside_count = 0;
        for (int64_t kh = 0; kh < s.kernel_h; ++kh)
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const int64_t h = oh * s.stride_h - s.pad_top + kh;
            const int64_t w = ow * s.stride_w - s.pad_left + kw;
            if (h >= 0 && h < H && w >= 0 && w < W) ++inside_count;
          }
        const int64_t count = s.count_include_pad ? s.kernel_h * s.kernel_w : inside_count;
        const T g = dy[(p * OH + oh) * OW + ow] / static_cast<T>(count);
        for (int64_t kh = 0; kh < s.kernel_h; ++kh)
          for (int64_t kw = 0; kw < s.kernel_w; ++kw) {
            const int64_t h = oh * s.stride_h - s.pad_top + kh;
            const int64_t w = ow * s.stride_w - s.pad_left + kw;
            if (h >= 0 && h < H && w >= 0 && w < W) dx[p * H * W + h * W + w] += g;
          }
      }
}

// ---------------------------------------------------------------- global average pool

template <typename T>
void global_avg_pool2d_forward(T* y, const T* x, int64_t planes, int64_t plane_size) {
  // y: (planes,); x: (planes, plane_size)
  detail::parallel_for(0, planes, detail::grain_for(plane_size), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      const T* xp = x + p * plane_size;
      T sum = T(0);
      for (int64_t i = 0; i < plane_size; ++i) sum += xp[i];
      y[p] = sum / static_cast<T>(plane_size);
    }
  });
}

template <typename T>
void global_avg_pool2d_backward(T* dx, const T* dy, int64_t planes, int64_t plane_size) {
  // dx: (planes, plane_size); dy: (planes,)
  detail::parallel_for(0, planes, detail::grain_for(plane_size), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      // Every cell contributed 1/plane_size of the mean.
      const T g = dy[p] / static_cast<T>(plane_size);
      T* dxp = dx + p * plane_size;
      for (int64_t i = 0; i < plane_size; ++i) dxp[i] = g;
    }
  });
}

// ---------------------------------------------------------------- zero padding

template <typename T>
void zero_pad2d_forward(T* y, const T* x, int64_t planes, int64_t height, int64_t width,
                        int64_t top, int64_t bottom, int64_t left, int64_t right) {
  // y: (planes, height + top + bottom, width + left + right); x: (planes, height, width)
  const int64_t OH = height + top + bottom, OW = width + left + right;
  detail::parallel_for(0, planes, detail::grain_for(OH * OW), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      T* yp = y + p * OH * OW;
      const T* xp = x + p * height * width;
      // Top and bottom bands are whole zero rows; each middle row is
      // left zeros, the input row, right zeros.
      std::fill(yp, yp + top * OW, T(0));
      for (int64_t h = 0; h < height; ++h) {
        T* row = yp + (top + h) * OW;
        std::fill(row, row + left, T(0));
        std::copy(xp + h * width, xp + (h + 1) * width, row + left);
        std::fill(row + left + width, row + OW, T(0));
      }
      std::fill(yp + (top + height) * OW, yp + OH * OW, T(0));
    }
  });
}

template <typename T>
void zero_pad2d_backward(T* dx, const T* dy, int64_t planes, int64_t height, int64_t width,
                         int64_t top, int64_t bottom, int64_t left, int64_t right) {
  // dx: (planes, height, width); dy: (planes, height + top + bottom, width + left + right)
  const int64_t OH = height + top + bottom, OW = width + left + right;
  detail::parallel_for(0, planes, detail::grain_for(height * width), [=](int64_t lo, int64_t hi, int) {
    for (int64_t p = lo; p < hi; ++p) {
      const T* dyp = dy + p * OH * OW;
      T* dxp = dx + p * height * width;
      // The padding received no input, so its gradient is dropped: a crop.
      for (int64_t h = 0; h < height; ++h) {
        const T* row = dyp + (top + h) * OW + left;
        std::copy(row, row + width, dxp + h * width);
      }
    }
  });
}

// ---------------------------------------------------------------- instantiations

#define CORENN_POOL_INSTANTIATE(T)                                                            \
  template void max_pool2d_forward<T>(T*, int64_t*, const T*, const Pool2dShape&);            \
  template void max_pool2d_forward_naive<T>(T*, int64_t*, const T*, const Pool2dShape&);      \
  template void max_pool2d_backward<T>(T*, const T*, const int64_t*, const Pool2dShape&);     \
  template void max_pool2d_backward_naive<T>(T*, const T*, const int64_t*, const Pool2dShape&); \
  template void avg_pool2d_forward<T>(T*, const T*, const Pool2dShape&);                      \
  template void avg_pool2d_forward_naive<T>(T*, const T*, const Pool2dShape&);                \
  template void avg_pool2d_backward<T>(T*, const T*, const Pool2dShape&);                     \
  template void avg_pool2d_backward_naive<T>(T*, const T*, const Pool2dShape&);               \
  template void global_avg_pool2d_forward<T>(T*, const T*, int64_t, int64_t);                 \
  template void global_avg_pool2d_backward<T>(T*, const T*, int64_t, int64_t);                \
  template void zero_pad2d_forward<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t,       \
                                      int64_t, int64_t, int64_t);                             \
  template void zero_pad2d_backward<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t,      \
                                       int64_t, int64_t, int64_t);

CORENN_POOL_INSTANTIATE(float)
CORENN_POOL_INSTANTIATE(double)

#undef CORENN_POOL_INSTANTIATE

}  // namespace corenn
