// The sliding-window geometry shared by conv2d (conv2d.cpp), depthwise
// convolution (depthwise_conv.cpp) and transposed convolution
// (conv_transpose.cpp): which window positions read which pixels, the column
// matrix (im2col) and its adjoint (col2im), and how the batch is split across
// threads.
//
// im2col: for one image, the column matrix holds, for every (input channel c,
// kernel row p, kernel column q) a row of length OH·OW with the input pixel
// each output position reads through that kernel tap (0 in the padding), so a
// convolution becomes one GEMM per group (conv2d.cpp). col2im adds such a
// matrix back onto the pixels it was read from.
//
// Threading: with at least as many images as threads, the images are split
// across threads (for_images), each chunk owning a slice of the scratch, and
// the GEMMs inside run single-threaded (gemm.hpp does that inside a region).
// With fewer images than threads (batch-1 inference), images run one after
// the other and the work inside each image is split instead.
//
// Determinism of dW: every chunk accumulates its images into its OWN dW
// partial (in scratch), and the partials are then added into dW in chunk
// order. The split depends only on (batch, thread count), so a given thread
// count always gives bitwise the same dW.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "corenn/kernels/conv.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {
namespace conv {

// Private to each kernel file that includes them, as when the convolutions
// were one file.
namespace {

// ⌈a / b⌉ for b > 0 and any sign of a (C++ division truncates towards 0).
inline int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// The geometry of one correlation pass, shared by conv2d and (with the roles
// of input and output swapped) transposed convolution.
struct Geometry {
  int64_t channels, height, width;  // the image that is read (im2col) or written (col2im)
  int64_t kh, kw, sh, sw, pt, pl, dh, dw;
  int64_t oh, ow;  // positions of the sliding window
  int64_t col_rows() const { return channels * kh * kw; }
  int64_t positions() const { return oh * ow; }
  // A 1×1 kernel with stride 1 and no padding reads each pixel exactly once
  // in place: the image plane (C, H·W) already is the column matrix.
  bool pointwise() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == height &&
           ow == width;
  }
  // Output columns j whose input column j·sw + off lies inside [0, width).
  // (A tap can lie wholly in the padding: then j0 == j1, both within [0, ow].)
  void valid_cols(int64_t off, int64_t& j0, int64_t& j1) const {
    j0 = std::clamp<int64_t>(ceil_div(-off, sw), 0, ow);
    j1 = std::clamp<int64_t>(ceil_div(width - off, sw), j0, ow);
  }
};

inline Geometry conv_geometry(const Conv2dShape& s) {
  return {s.in_channels, s.height, s.width, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w,
          s.pad_top, s.pad_left, s.dilation_h, s.dilation_w, s.out_h(), s.out_w()};
}

// The transposed convolution of x (C_in, H, W) into y (C_out, OH, OW) is the
// input-gradient pass of a conv2d that reads y-sized images with C_out
// channels and produces H×W positions: this is that conv2d's geometry.
inline Geometry transpose_geometry(const ConvTranspose2dShape& s) {
  return {s.out_channels, s.out_h(), s.out_w(), s.kernel_h, s.kernel_w, s.stride_h, s.stride_w,
          s.pad_top, s.pad_left, s.dilation_h, s.dilation_w, s.height, s.width};
}

// Output rows i whose input row i·sh + p·dh − pt lies inside [0, height), for
// kernel row p, clipped to [r0, r1).
inline void valid_rows(const Geometry& g, int64_t p, int64_t r0, int64_t r1, int64_t& i0, int64_t& i1) {
  const int64_t off = p * g.dh - g.pt;
  i0 = std::clamp<int64_t>(ceil_div(-off, g.sh), r0, r1);
  i1 = std::clamp<int64_t>(ceil_div(g.height - off, g.sh), i0, r1);
}

// rows[i·ld + j] = 0 for i in [i0, i1), j in [j0, j1): the few columns of a
// tap that fall into the left/right padding. Strided inner loop on purpose:
// as row-wise fills they would be many memset calls of one or two elements.
template <typename T>
inline void zero_columns(T* rows, int64_t ld, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j)
    for (int64_t i = i0; i < i1; ++i) rows[i * ld + j] = T(0);
}

// dst[0, n) = src[0, n), the buffers apart. Window rows are short (LeNet's
// second layer: 10 floats), and GCC turns a plain copy loop into a memcpy
// call, which costs more than such a copy; a row of 16 to 128 bytes is two
// fixed-size moves instead (inline vector moves), overlapping in the middle.
template <typename T>
inline void copy_row(T* __restrict dst, const T* __restrict src, int64_t n) {
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  // Both blocks are loaded before either is stored, into vector registers
  // (as two plain memcpy calls, GCC bounced the first block through the stack).
  auto two_moves = [&](auto size) {
    constexpr int k = static_cast<int>(decltype(size)::value / sizeof(T));
    using V = typename detail::Vector<T, k>::type;
    V a, b;
    std::memcpy(&a, src, sizeof(V));
    std::memcpy(&b, src + n - k, sizeof(V));
    std::memcpy(dst, &a, sizeof(V));
    std::memcpy(dst + n - k, &b, sizeof(V));
  };
  if (bytes < 16 || bytes > 128) std::copy(src, src + n, dst);
  else if (bytes <= 32) two_moves(std::integral_constant<size_t, 16>{});
  else if (bytes <= 64) two_moves(std::integral_constant<size_t, 32>{});
  else two_moves(std::integral_constant<size_t, 64>{});
}

// dst[0, n) += src[0, n), the buffers apart, for the same short rows: a row
// of 16 to 128 bytes is two fixed-size blocks from its two ends, both loaded
// and summed before either is stored, so the elements they share get the same
// sum twice and every element its one addition, as in the plain loop.
template <typename T>
inline void add_row(T* __restrict dst, const T* __restrict src, int64_t n) {
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  auto two_blocks = [&](auto size) {
    constexpr int k = static_cast<int>(decltype(size)::value / sizeof(T));
    using V = typename detail::Vector<T, k>::type;
    V a, b, sa, sb;
    std::memcpy(&a, dst, sizeof(V));
    std::memcpy(&b, dst + n - k, sizeof(V));
    std::memcpy(&sa, src, sizeof(V));
    std::memcpy(&sb, src + n - k, sizeof(V));
    a += sa;
    b += sb;
    std::memcpy(dst, &a, sizeof(V));
    std::memcpy(dst + n - k, &b, sizeof(V));
  };
  if (bytes < 16 || bytes > 128)
    for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
  else if (bytes <= 32) two_blocks(std::integral_constant<size_t, 16>{});
  else if (bytes <= 64) two_blocks(std::integral_constant<size_t, 32>{});
  else two_blocks(std::integral_constant<size_t, 64>{});
}

// cols: C·KH·KW rows, ld apart, each holding window rows [r0, r1) as
// (r1 − r0)·OW entries, written; img: (C, H, W). Kept out of line, as is
// col2im: inlined into conv2d.cpp's single caller, its strided copies ran
// 20% slower (stride-2 forward, 0.79 against 0.65 ms). Both take the geometry
// by value: through a reference, every row's copy (memcpy may write anything)
// made GCC reload its fields from memory, row after row.
template <typename T>
[[gnu::noinline]] CORENN_SIMD_CLONES void im2col(T* __restrict cols, int64_t ld, const T* __restrict img, const Geometry g, int64_t r0,
            int64_t r1) {
  const int64_t width = (r1 - r0) * g.ow;
  // With stride 1 and OW == W, window row i and image row i + shift are both
  // W wide, so a whole tap is ONE shifted copy of the image rows (a long
  // vectorised copy instead of OH short ones), after which the columns that
  // fell into the horizontal padding (wrapped-around neighbours) are zeroed.
  const bool flat = g.sh == 1 && g.sw == 1 && g.ow == g.width;
  for (int64_t c = 0; c < g.channels; ++c) {
    const T* plane = img + c * g.height * g.width;
    for (int64_t p = 0; p < g.kh; ++p) {
      int64_t i0, i1;
      valid_rows(g, p, r0, r1, i0, i1);
      for (int64_t q = 0; q < g.kw; ++q) {
        T* row = cols + ((c * g.kh + p) * g.kw + q) * ld;  // window row i at row + (i − r0)·OW
        const int64_t off = q * g.dw - g.pl;
        int64_t j0, j1;
        g.valid_cols(off, j0, j1);
        T* valid = row + (i0 - r0) * g.ow;  // window rows [i0, i1), n of them
        const int64_t n = i1 - i0;
        std::fill(row, valid, T(0));
        std::fill(valid + n * g.ow, row + width, T(0));
        if (n == 0) continue;
        if (flat && j1 > j0) {
          // Also copies the entries between j1 of one row and j0 of the next
          // (neighbouring pixels): zeroed below with the padding columns.
          const T* src = plane + (i0 + p * g.dh - g.pt) * g.width + j0 + off;
          std::copy(src, src + (n - 1) * g.ow + j1 - j0, valid + j0);
        } else {
          for (int64_t i = i0; i < i1; ++i) {
            T* out = valid + (i - i0) * g.ow;
            const T* in = plane + (i * g.sh + p * g.dh - g.pt) * g.width;  // in[j·sw + off] is valid for j in [j0, j1)
            if (g.sw == 1)
              copy_row(out + j0, in + j0 + off, j1 - j0);
            else
              for (int64_t j = j0; j < j1; ++j) out[j] = in[j * g.sw + off];
          }
        }
        zero_columns(valid, g.ow, 0, n, int64_t(0), j0);
        zero_columns(valid, g.ow, 0, n, j1, g.ow);
      }
    }
  }
}

// img: (C, H, W) accumulated: every column entry of window rows [r0, r1) is
// added back to the pixel it was read from; cols: as im2col writes them.
template <typename T>
[[gnu::noinline]] CORENN_SIMD_CLONES void col2im(T* __restrict img, const T* __restrict cols, int64_t ld, const Geometry g, int64_t r0,
            int64_t r1) {
  for (int64_t c = 0; c < g.channels; ++c) {
    T* plane = img + c * g.height * g.width;
    for (int64_t p = 0; p < g.kh; ++p) {
      int64_t i0, i1;
      valid_rows(g, p, r0, r1, i0, i1);
      for (int64_t q = 0; q < g.kw; ++q) {
        const T* row = cols + ((c * g.kh + p) * g.kw + q) * ld;  // window row i at row + (i − r0)·OW
        const int64_t off = q * g.dw - g.pl;
        int64_t j0, j1;
        g.valid_cols(off, j0, j1);
        for (int64_t i = i0; i < i1; ++i) {
          T* out = plane + (i * g.sh + p * g.dh - g.pt) * g.width;
          const T* in = row + (i - r0) * g.ow;
          if (g.sw == 1)
            add_row(out + j0 + off, in + j0, j1 - j0);
          else
            for (int64_t j = j0; j < j1; ++j) out[j * g.sw + off] += in[j];
        }
      }
    }
  }
}

// acc[j] += Σ over images n, then positions k, of dy[n][o0 + j][k], for the
// W channels from o0: each channel's one running sum, in that order, but W of
// them interleaved. A lone float sum waits out the add's latency (4 cycles) at
// every value; W independent ones overlap, with no change to any sum's order.
template <int W, typename T>
void channel_sums(T* acc, const T* dy, int64_t N, int64_t C, int64_t P, int64_t o0) {
  T a[W] = {};
  for (int64_t n = 0; n < N; ++n) {
    const T* block = dy + (n * C + o0) * P;  // W planes, P apart
    for (int64_t k = 0; k < P; ++k)
      for (int j = 0; j < W; ++j) a[j] += block[j * P + k];
  }
  for (int j = 0; j < W; ++j) acc[j] += a[j];
}

// db: (C,) accumulated; dy: (N, C, P). Parallel over groups of kSumChains
// channels, each channel summing its images in order: the same result for any
// thread count, and the same as summing one channel at a time (LeNet's first
// layer has 6 channels of 64·784 values each: one chain each was slow).
template <typename T>
void bias_grad(T* db, const T* dy, int64_t N, int64_t C, int64_t P) {
  constexpr int64_t kSumChains = 4;
  const int64_t groups = (C + kSumChains - 1) / kSumChains;
  detail::parallel_for(0, groups, detail::grain_for(kSumChains * N * P), [=](int64_t lo, int64_t hi, int) {
    for (int64_t g = lo; g < hi; ++g) {
      const int64_t o0 = g * kSumChains;
      switch (std::min(kSumChains, C - o0)) {
        case 4: channel_sums<4>(db + o0, dy, N, C, P, o0); break;
        case 3: channel_sums<3>(db + o0, dy, N, C, P, o0); break;
        case 2: channel_sums<2>(db + o0, dy, N, C, P, o0); break;
        default: channel_sums<1>(db + o0, dy, N, C, P, o0); break;
      }
    }
  });
}

// How many chunks the image loop is split into: one per thread when there
// are enough images, else 1 (serial images, threaded GEMMs).
inline int image_chunks(int64_t batch) {
  if (batch < detail::omp_max_threads()) return 1;
  return detail::parallel_chunks(batch, 1);
}

// Runs fn(n_begin, n_end, chunk) over the images as described at the top.
template <typename Fn>
void for_images(int64_t batch, int chunks, Fn&& fn) {
  if (chunks == 1) fn(int64_t(0), batch, 0);
  else detail::parallel_for(0, batch, 1, fn);
}

}  // namespace
}  // namespace conv
}  // namespace corenn
