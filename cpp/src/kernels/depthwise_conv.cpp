// Depthwise convolution by direct loops (see depthwise_conv.hpp for why).
// Forward and input gradient are parallel over planes, the weight gradient
// over output channels, each summing its images in order: no partials, and
// the same result for any thread count.
//
// With stride 1 (MobileNet's depthwise layers) the forward and the weight
// gradient read each input plane from a zero-padded copy: every tap then
// reads whole blocks of output columns with no bounds to check, and the
// forward keeps a block's sums for several output channels (and two rows) in
// registers across all taps. Against the general loops, on one thread
// (docs/performance-notes.md): forward 1.7-4.2× faster, backward 1.2-1.9×.
#include "kernels/depthwise_conv.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#include "backend/parallel.hpp"
#include "backend/simd.hpp"
#include "kernels/conv_geometry.hpp"

namespace corenn {
namespace conv {

namespace {

// y[j] += w · x[j·stride] for j in [0, n): the inner loop of the direct
// kernels; with stride 1 and no aliasing it vectorises.
template <typename T>
inline void axpy_row(T* __restrict y, const T* __restrict x, T w, int64_t n, int64_t stride) {
  if (stride == 1)
    for (int64_t j = 0; j < n; ++j) y[j] += w * x[j];
  else
    for (int64_t j = 0; j < n; ++j) y[j] += w * x[j * stride];
}

// y[j·stride] += w · x[j] (the scatter of axpy_row, for input gradients).
template <typename T>
inline void axpy_row_scatter(T* __restrict y, const T* __restrict x, T w, int64_t n,
                             int64_t stride) {
  if (stride == 1)
    for (int64_t j = 0; j < n; ++j) y[j] += w * x[j];
  else
    for (int64_t j = 0; j < n; ++j) y[j * stride] += w * x[j];
}

// acc[l] += Σ a[j]·b[j·stride] over j in [0, n) with j ≡ l (mod kLanes). A
// single running sum must add in strict order and cannot vectorise; kLanes
// independent ones can. Which lane gets which product depends on n alone, so
// the result stays the same for any thread count.
constexpr int kLanes = 8;  // sum_lanes below adds exactly 8

template <typename T>
inline void dot_lanes(T* __restrict acc, const T* __restrict a, const T* __restrict b, int64_t n,
                      int64_t stride) {
  int64_t j = 0;
  if (stride == 1)
    for (; j + kLanes <= n; j += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += a[j + l] * b[j + l];
  else
    for (; j + kLanes <= n; j += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += a[j + l] * b[(j + l) * stride];
  for (int l = 0; j < n; ++j, ++l) acc[l] += a[j] * b[j * stride];
}

// The lanes of dot_lanes added pairwise, in a fixed order.
template <typename T>
inline T sum_lanes(const T* acc) {
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// ---------------------------------------------------------- stride 1, padded planes

// Output columns per block. A block is one GCC vector (vector_size) of
// kBlock values: one zmm register of float in the x86-64-v4 clone, two ymm in
// the v3 one, four xmm at baseline. Plain arrays of 16 sums were vectorised
// across the channels instead, with shuffles and spills (10× slower). Every
// operation on a block is element-wise, so each lane rounds alike in every clone.
constexpr int64_t kBlock = 16;
static_assert(kBlock == 2 * kLanes, "the weight gradient's lanes are summed as two sum_lanes");
// Output channels per register block of the forward (two rows of 6 channels:
// 12 of AVX-512's 32 registers), kernel columns per register block of the
// weight gradient (5×5 kernels: 5).
constexpr int64_t kMaxChannels = 6;
constexpr int64_t kMaxTaps = 5;

template <typename T>
struct BlockOf {
  typedef T type __attribute__((vector_size(kBlock * sizeof(T))));
};
template <typename T>
using Block = typename BlockOf<T>::type;

// v = the kBlock values from p (unaligned). Through a reference: a function
// returning a vector would change its ABI between the clones.
template <typename T>
inline void load_block(Block<T>& v, const T* p) {
  std::memcpy(&v, p, sizeof v);
}

// y[0, n) = the first n lanes of v, n <= kBlock. In pieces of constant size,
// each one store: a memcpy of n values became `rep movsq`, a quarter of the
// forward's time.
template <typename T>
inline void store_lanes(T* y, const Block<T>& v, int64_t n) {
  if (n == kBlock) {
    std::memcpy(y, &v, sizeof v);
    return;
  }
  T lanes[kBlock];
  std::memcpy(lanes, &v, sizeof v);
  static_assert(kBlock == 16, "n < kBlock is split in pieces of 8, 4, 2 and 1");
  int64_t l = 0;
  if (n & 8) std::memcpy(y + l, lanes + l, 8 * sizeof(T)), l += 8;
  if (n & 4) std::memcpy(y + l, lanes + l, 4 * sizeof(T)), l += 4;
  if (n & 2) std::memcpy(y + l, lanes + l, 2 * sizeof(T)), l += 2;
  if (n & 1) y[l] = lanes[l];
}

// The zero-padded copy of one input plane for a stride-1 geometry: hp rows of
// wp, pixel (ih, iw) at (ih + pt)·wp + iw + pl. Rows are wide enough that the
// last block of kBlock output columns reads inside its row (its lanes past OW
// are computed and dropped, or masked).
struct PaddedPlane {
  int64_t hp, wp, owp;  // owp: OW rounded up to whole blocks
  explicit PaddedPlane(const Geometry& g)
      : hp(g.oh + g.dh * (g.kh - 1)), wp(ceil_div(g.ow, kBlock) * kBlock + g.dw * (g.kw - 1)),
        owp(ceil_div(g.ow, kBlock) * kBlock) {}
  int64_t size() const { return hp * wp; }
};

// buf: a PaddedPlane whose padding is zero, its interior overwritten by x (H, W).
template <typename T>
void pad_plane(T* buf, const T* x, const Geometry& g, const PaddedPlane& pp) {
  for (int64_t ih = 0; ih < g.height; ++ih)
    std::copy(x + ih * g.width, x + (ih + 1) * g.width, buf + (ih + g.pt) * pp.wp + g.pl);
}

// y[r·OW + m·P + l] = bias[m] + Σ_(p,q) w[m, p, q] · src[(r + p·dh)·wp + q·dw + l]
// for the R rows r, the M channels m and the first n of kBlock columns l: the
// taps in order, as the general loop adds them (a tap in the padding adds
// w·0). src: the padded plane at the block's first window; w: (M, KH, KW).
// R·M independent sums hide the adds' latency, and each load of the input
// serves M channels, each weight R rows.
template <int R, int M, typename T>
inline void forward_block(T* y, int64_t P, const T* src, int64_t wp, const T* w, const T* bias,
                          const Geometry& g, int64_t n) {
  Block<T> acc[R][M];
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < M; ++m) acc[r][m] = Block<T>{} + (bias ? bias[m] : T(0));
  for (int64_t p = 0; p < g.kh; ++p)
    for (int64_t q = 0; q < g.kw; ++q) {
      Block<T> s[R];
      for (int r = 0; r < R; ++r) load_block(s[r], src + (r + p * g.dh) * wp + q * g.dw);
      for (int m = 0; m < M; ++m) {
        const T wm = w[(m * g.kh + p) * g.kw + q];
        for (int r = 0; r < R; ++r) acc[r][m] += wm * s[r];
      }
    }
  for (int r = 0; r < R; ++r)
    for (int m = 0; m < M; ++m) store_lanes(y + r * g.ow + m * P, acc[r][m], n);
}

template <int R, typename T>
inline void forward_blocks(T* y, int64_t P, const T* src, int64_t wp, const T* w, const T* bias,
                           const Geometry& g, int64_t n, int64_t M) {
  switch (M) {
    case 6: return forward_block<R, 6>(y, P, src, wp, w, bias, g, n);
    case 5: return forward_block<R, 5>(y, P, src, wp, w, bias, g, n);
    case 4: return forward_block<R, 4>(y, P, src, wp, w, bias, g, n);
    case 3: return forward_block<R, 3>(y, P, src, wp, w, bias, g, n);
    case 2: return forward_block<R, 2>(y, P, src, wp, w, bias, g, n);
    default: return forward_block<R, 1>(y, P, src, wp, w, bias, g, n);
  }
}

// The mult output planes y (mult, OH, OW) of one padded input plane buf;
// W: their filters (mult, KH, KW); b: their biases or nullptr. Pairs of rows.
template <typename T>
CORENN_SIMD_CLONES void forward_plane_stride1(T* y, const T* buf, const T* W, const T* b, int64_t mult,
                                              const Geometry& g, const PaddedPlane& pp) {
  const int64_t P = g.positions(), taps = g.kh * g.kw;
  for (int64_t m0 = 0; m0 < mult; m0 += kMaxChannels) {
    const int64_t M = std::min(kMaxChannels, mult - m0);
    const T* w = W + m0 * taps;
    const T* bias = b ? b + m0 : nullptr;
    for (int64_t i = 0; i < g.oh; i += 2)
      for (int64_t j0 = 0; j0 < g.ow; j0 += kBlock) {
        T* yb = y + m0 * P + i * g.ow + j0;
        const T* src = buf + i * pp.wp + j0;
        const int64_t n = std::min(kBlock, g.ow - j0);
        if (i + 1 < g.oh) forward_blocks<2>(yb, P, src, pp.wp, w, bias, g, n, M);
        else forward_blocks<1>(yb, P, src, pp.wp, w, bias, g, n, M);
      }
  }
}

// acc (KH·KW, kBlock): acc[t][l] += Σ dy[i, j] · x[i + p·dh, j + q·dw] over
// the rows i and the columns j ≡ l (mod kBlock), for the Q taps t = (p, q),
// q in [q0, q0 + Q), of one image's output plane and padded input plane buf.
// dyp: that output plane with rows of owp, zero past OW; the last block's
// lanes past OW are masked out (x there is a real pixel, maybe not finite).
// As in dot_lanes, which lane gets which product depends on OW alone. Q
// independent sums hide the adds' latency, and share each load of dy.
template <int Q, typename T, typename Mask>
inline void weight_grad_taps(T* acc, const T* dyp, const T* buf, const Geometry& g, const PaddedPlane& pp,
                             int64_t p, int64_t q0, const Mask& tail) {
  const int64_t full = g.ow / kBlock * kBlock;  // columns in whole blocks
  Block<T> a[Q], d, s;
  for (int k = 0; k < Q; ++k) load_block(a[k], acc + (p * g.kw + q0 + k) * kBlock);
  const T* src = buf + p * g.dh * pp.wp + q0 * g.dw;
  for (int64_t i = 0; i < g.oh; ++i) {
    const T* drow = dyp + i * pp.owp;
    const T* srow = src + i * pp.wp;
    for (int64_t j = 0; j < full; j += kBlock) {
      load_block(d, drow + j);
      for (int k = 0; k < Q; ++k) {
        load_block(s, srow + j + k * g.dw);
        a[k] += d * s;
      }
    }
    if (full < g.ow) {
      load_block(d, drow + full);
      for (int k = 0; k < Q; ++k) {
        load_block(s, srow + full + k * g.dw);
        a[k] += tail ? d * s : Block<T>{};
      }
    }
  }
  for (int k = 0; k < Q; ++k) std::memcpy(acc + (p * g.kw + q0 + k) * kBlock, &a[k], sizeof a[k]);
}

template <typename T>
CORENN_SIMD_CLONES void weight_grad_plane_stride1(T* acc, const T* dyp, const T* buf, const Geometry& g,
                                                  const PaddedPlane& pp) {
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> Int;  // a lane mask's element, T's size
  typedef Int Lanes __attribute__((vector_size(kBlock * sizeof(Int))));
  Lanes lane;
  for (int64_t l = 0; l < kBlock; ++l) lane[l] = l;
  const auto tail = lane < static_cast<Int>(g.ow % kBlock);  // the last block's lanes inside the row
  for (int64_t p = 0; p < g.kh; ++p)
    for (int64_t q0 = 0; q0 < g.kw; q0 += kMaxTaps) {
      switch (std::min(kMaxTaps, g.kw - q0)) {
        case 5: weight_grad_taps<5>(acc, dyp, buf, g, pp, p, q0, tail); break;
        case 4: weight_grad_taps<4>(acc, dyp, buf, g, pp, p, q0, tail); break;
        case 3: weight_grad_taps<3>(acc, dyp, buf, g, pp, p, q0, tail); break;
        case 2: weight_grad_taps<2>(acc, dyp, buf, g, pp, p, q0, tail); break;
        default: weight_grad_taps<1>(acc, dyp, buf, g, pp, p, q0, tail); break;
      }
    }
}

}  // namespace

template <typename T>
void depthwise_forward(T* y, const T* x, const T* W, const T* b, const Conv2dShape& s) {
  const Geometry g = conv_geometry(s);
  const int64_t mult = s.out_channels / s.in_channels, P = g.positions();
  if (g.sh == 1 && g.sw == 1) {  // parallel over input planes, each padded once for its mult outputs
    const PaddedPlane pp(g);
    detail::parallel_for(0, s.batch * s.in_channels, detail::grain_for(mult * P * g.kh * g.kw),
                         [&](int64_t lo, int64_t hi, int) {
      std::vector<T> buf(pp.size(), T(0));
      for (int64_t plane = lo; plane < hi; ++plane) {
        const int64_t c = plane % s.in_channels;
        pad_plane(buf.data(), x + plane * g.height * g.width, g, pp);
        forward_plane_stride1(y + plane * mult * P, buf.data(), W + c * mult * g.kh * g.kw,
                              b ? b + c * mult : nullptr, mult, g, pp);
      }
    });
    return;
  }
  const int64_t planes = s.batch * s.out_channels;
  const int64_t grain = detail::grain_for(P * g.kh * g.kw);
  detail::parallel_for(0, planes, grain, [=](int64_t lo, int64_t hi, int) {
    for (int64_t plane = lo; plane < hi; ++plane) {
      const int64_t n = plane / s.out_channels, o = plane % s.out_channels;
      const T* xp = x + (n * s.in_channels + o / mult) * g.height * g.width;  // (H, W)
      T* yp = y + plane * P;                                                   // (OH, OW)
      std::fill(yp, yp + P, b ? b[o] : T(0));
      for (int64_t p = 0; p < g.kh; ++p)
        for (int64_t q = 0; q < g.kw; ++q) {
          const T w = W[(o * g.kh + p) * g.kw + q];
          const int64_t off = q * g.dw - g.pl;
          int64_t j0, j1;
          g.valid_cols(off, j0, j1);
          if (j1 == j0) continue;
          for (int64_t i = 0; i < g.oh; ++i) {
            const int64_t ih = i * g.sh + p * g.dh - g.pt;
            if (ih < 0 || ih >= g.height) continue;
            axpy_row(yp + i * g.ow + j0, xp + ih * g.width + j0 * g.sw + off, w, j1 - j0, g.sw);
          }
        }
    }
  });
}

template <typename T>
void depthwise_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                        const Conv2dShape& s) {
  const Geometry g = conv_geometry(s);
  const int64_t mult = s.out_channels / s.in_channels, P = g.positions();
  const int64_t HW = g.height * g.width;
  const int64_t work = P * g.kh * g.kw;
  const int64_t grain = detail::grain_for(work);
  // dx, parallel over (image, input channel) planes: each plane gathers from
  // the `mult` output channels that read it and is written by one thread only.
  if (dx)
    detail::parallel_for(0, s.batch * s.in_channels, grain, [=](int64_t lo, int64_t hi, int) {
      for (int64_t plane = lo; plane < hi; ++plane) {
        const int64_t n = plane / s.in_channels, c = plane % s.in_channels;
        T* dxp = dx + plane * HW;  // (H, W)
        std::fill(dxp, dxp + HW, T(0));
        for (int64_t m = 0; m < mult; ++m) {
          const int64_t o = c * mult + m;
          const T* dyp = dy + (n * s.out_channels + o) * P;  // (OH, OW)
          for (int64_t p = 0; p < g.kh; ++p)
            for (int64_t q = 0; q < g.kw; ++q) {
              const T w = W[(o * g.kh + p) * g.kw + q];
              const int64_t off = q * g.dw - g.pl;
              int64_t j0, j1;
              g.valid_cols(off, j0, j1);
              if (j1 == j0) continue;
              for (int64_t i = 0; i < g.oh; ++i) {
                const int64_t ih = i * g.sh + p * g.dh - g.pt;
                if (ih < 0 || ih >= g.height) continue;
                axpy_row_scatter(dxp + ih * g.width + j0 * g.sw + off, dyp + i * g.ow + j0, w,
                                 j1 - j0, g.sw);
              }
            }
        }
      }
    });
  // dW (and db), parallel over output channels: each channel sums its images
  // in order, so the result does not depend on the thread count.
  if (g.sh == 1 && g.sw == 1) {
    const PaddedPlane pp(g);
    const int64_t taps = g.kh * g.kw;
    detail::parallel_for(0, s.out_channels, std::max<int64_t>(1, grain / s.batch),
                         [&](int64_t lo, int64_t hi, int) {
      std::vector<T> buf(pp.size(), T(0)), dyp(g.oh * pp.owp, T(0)), acc(taps * kBlock);
      for (int64_t o = lo; o < hi; ++o) {
        const int64_t c = o / mult;
        std::fill(acc.begin(), acc.end(), T(0));
        for (int64_t n = 0; n < s.batch; ++n) {
          pad_plane(buf.data(), x + (n * s.in_channels + c) * HW, g, pp);
          const T* dyn = dy + (n * s.out_channels + o) * P;
          for (int64_t i = 0; i < g.oh; ++i)
            std::copy(dyn + i * g.ow, dyn + (i + 1) * g.ow, dyp.data() + i * pp.owp);
          weight_grad_plane_stride1(acc.data(), dyp.data(), buf.data(), g, pp);
        }
        for (int64_t t = 0; t < taps; ++t)
          dW[o * taps + t] += sum_lanes(&acc[t * kBlock]) + sum_lanes(&acc[t * kBlock + kLanes]);
      }
    });
    if (db) bias_grad(db, dy, s.batch, s.out_channels, P);
    return;
  }
  detail::parallel_for(0, s.out_channels, std::max<int64_t>(1, grain / s.batch),
                       [&](int64_t lo, int64_t hi, int) {
    for (int64_t o = lo; o < hi; ++o) {
      const int64_t c = o / mult;
      for (int64_t p = 0; p < g.kh; ++p)
        for (int64_t q = 0; q < g.kw; ++q) {
          const int64_t off = q * g.dw - g.pl;
          int64_t j0, j1;
          g.valid_cols(off, j0, j1);
          T acc[kLanes] = {};
          for (int64_t n = 0; n < s.batch; ++n) {
            const T* dyp = dy + (n * s.out_channels + o) * P;
            const T* xp = x + (n * s.in_channels + c) * HW;
            for (int64_t i = 0; i < g.oh; ++i) {
              const int64_t ih = i * g.sh + p * g.dh - g.pt;
              if (ih < 0 || ih >= g.height || j1 == j0) continue;
              dot_lanes(acc, dyp + i * g.ow + j0, xp + ih * g.width + j0 * g.sw + off, j1 - j0, g.sw);
            }
          }
          dW[(o * g.kh + p) * g.kw + q] += sum_lanes(acc);
        }
    }
  });
  if (db) bias_grad(db, dy, s.batch, s.out_channels, P);
}

template void depthwise_forward<float>(float*, const float*, const float*, const float*,
                                      const Conv2dShape&);
template void depthwise_forward<double>(double*, const double*, const double*, const double*,
                                       const Conv2dShape&);
template void depthwise_backward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, const Conv2dShape&);
template void depthwise_backward<double>(double*, double*, double*, const double*, const double*,
                                        const double*, const Conv2dShape&);

}  // namespace conv
}  // namespace corenn
