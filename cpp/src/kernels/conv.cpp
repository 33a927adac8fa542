// 2-D convolution and transposed convolution, NCHW.
//
// Fast path: im2col + GEMM. For one image, the column matrix holds, for every
// (input channel c, kernel row p, kernel column q) a row of length OH·OW with
// the input pixel each output position reads through that kernel tap (0 in the
// padding). The convolution of group g is then one product
//   y_g (C_out/groups, OH·OW) = W_g (C_out/groups, K) · cols_g (K, OH·OW),
// K = C_in/groups · KH · KW, and the groups' rows of cols are contiguous.
// Large images are cut into tiles of window rows (see ConvPlan). The input
// gradient is, with stride 1 and "same" padding, a correlation of dy with the
// flipped kernel (the same im2col + GEMM, on dy), else Wᵀ·dy scattered back
// by col2im. The weight gradient is the product of dy with colsᵀ, or, where
// dy's columns are built anyway, of those columns with xᵀ (no second im2col).
//
// Threading: with at least as many images as threads, the images are split
// across threads (parallel_for), each chunk owning a slice of the scratch, and
// the GEMMs inside run single-threaded (gemm.hpp does that inside a region).
// With fewer images than threads (batch-1 inference), images run one after
// the other: the forward splits each image's window rows across the threads,
// the backward lets each GEMM split itself across them.
//
// Determinism of dW: every chunk accumulates its images into its OWN dW
// partial (in scratch; conv2d's transposed, and also with one chunk; the
// transposed convolution's only with several), and the partials are then
// added into dW in chunk order. The split depends only on (batch, thread
// count), so a given thread count always gives bitwise the same dW.
//
// Depthwise convolution (groups == C_in) has K = KH·KW: its GEMMs would be
// tiny matrix-vector products, so it has a direct loop kernel instead.
#include "corenn/kernels/conv.hpp"

#include <algorithm>
#include <string>

#include "corenn/error.hpp"
#include "backend/gemm.hpp"
#include "backend/parallel.hpp"

namespace corenn {

using detail::gemm;
using detail::Trans;

namespace {

// Element-wise passes below this many elements run on one thread.
constexpr int64_t kGrain = 32768;

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

Geometry conv_geometry(const Conv2dShape& s) {
  return {s.in_channels, s.height, s.width, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w,
          s.pad_top, s.pad_left, s.dilation_h, s.dilation_w, s.out_h(), s.out_w()};
}

// The transposed convolution of x (C_in, H, W) into y (C_out, OH, OW) is the
// input-gradient pass of a conv2d that reads y-sized images with C_out
// channels and produces H×W positions: this is that conv2d's geometry.
Geometry transpose_geometry(const ConvTranspose2dShape& s) {
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

// cols: C·KH·KW rows, ld apart, each holding window rows [r0, r1) as
// (r1 − r0)·OW entries, written; img: (C, H, W).
template <typename T>
void im2col(T* __restrict cols, int64_t ld, const T* __restrict img, const Geometry& g, int64_t r0,
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
              for (int64_t j = j0; j < j1; ++j) out[j] = in[j + off];
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

// The column matrix of window rows [r0, r1), (r1 − r0)·OW columns wide, ld
// apart: built by im2col into cols, or, for a pointwise geometry (direct), the
// image plane itself from row r0 on (ld = OH·OW).
template <typename T>
struct Columns {
  const T* data;
  int64_t ld;
};

template <typename T>
Columns<T> columns(T* cols, const T* img, const Geometry& g, bool direct, int64_t r0, int64_t r1) {
  if (direct) return {img + r0 * g.ow, g.positions()};
  const int64_t tile = (r1 - r0) * g.ow;
  im2col(cols, tile, img, g, r0, r1);
  return {cols, tile};
}

// img: (C, H, W) accumulated: every column entry of window rows [r0, r1) is
// added back to the pixel it was read from; cols: as im2col writes them.
template <typename T>
void col2im(T* __restrict img, const T* __restrict cols, int64_t ld, const Geometry& g, int64_t r0,
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
            for (int64_t j = j0; j < j1; ++j) out[j + off] += in[j];
          else
            for (int64_t j = j0; j < j1; ++j) out[j * g.sw + off] += in[j];
        }
      }
    }
  }
}

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

// db: (C,) accumulated; dy: (N, C, P). Parallel over channels, each summing
// its images in order: the same result for any thread count.
template <typename T>
void bias_grad(T* db, const T* dy, int64_t N, int64_t C, int64_t P) {
  detail::parallel_for(0, C, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, N * P)),
                       [=](int64_t lo, int64_t hi, int) {
                         for (int64_t o = lo; o < hi; ++o) {
                           T acc = 0;
                           for (int64_t n = 0; n < N; ++n) {
                             const T* plane = dy + (n * C + o) * P;
                             for (int64_t k = 0; k < P; ++k) acc += plane[k];
                           }
                           db[o] += acc;
                         }
                       });
}

// y: (C, P) += b[c] on every plane c.
template <typename T>
void add_bias(T* y, const T* b, int64_t C, int64_t P) {
  for (int64_t c = 0; c < C; ++c) {
    T* __restrict plane = y + c * P;
    const T bias = b[c];
    for (int64_t k = 0; k < P; ++k) plane[k] += bias;
  }
}

// How many chunks the image loop is split into: one per thread when there
// are enough images, else 1 (serial images, threaded GEMMs).
int image_chunks(int64_t batch) {
  if (batch < detail::omp_max_threads()) return 1;
  return detail::parallel_chunks(batch, 1);
}

// Runs fn(n_begin, n_end, chunk) over the images as described at the top.
template <typename Fn>
void for_images(int64_t batch, int chunks, Fn&& fn) {
  if (chunks == 1) fn(int64_t(0), batch, 0);
  else detail::parallel_for(0, batch, 1, fn);
}

// dst: (n,) += Σ_c parts[c]: (n,) for c in [0, chunks), added in chunk order.
template <typename T>
void add_partials(T* dst, const T* parts, int chunks, int64_t n) {
  detail::parallel_for(0, n, kGrain, [=](int64_t lo, int64_t hi, int) {
    for (int c = 0; c < chunks; ++c) {
      const T* __restrict part = parts + c * n;
      T* __restrict d = dst;
      for (int64_t k = lo; k < hi; ++k) d[k] += part[k];
    }
  });
}

// dW: (rows, K) += Σ_c parts[c][at(row, k)], the chunks' partials (n values
// each) added in chunk order; `at` says where a chunk's partial keeps dW's
// (row, k), as each backward route lays its partial out for its own GEMM.
template <typename T, typename At>
void add_partials_through(T* dW, const T* parts, int chunks, int64_t rows, int64_t K, At at) {
  const int64_t n = rows * K;
  detail::parallel_for(0, rows, std::max<int64_t>(1, kGrain / (K * chunks)), [=](int64_t lo, int64_t hi, int) {
    for (int64_t row = lo; row < hi; ++row) {
      T* __restrict d = dW + row * K;
      for (int c = 0; c < chunks; ++c) {
        const T* __restrict part = parts + c * n;
        for (int64_t k = 0; k < K; ++k) d[k] += part[at(row, k)];
      }
    }
  });
}

// dW: (groups·cout_g, K) += Σ_c parts[c]ᵀ; parts[c]: per group a (K, cout_g) block.
template <typename T>
void add_transposed_partials(T* dW, const T* parts, int chunks, int64_t groups, int64_t cout_g,
                             int64_t K) {
  add_partials_through(dW, parts, chunks, groups * cout_g, K, [=](int64_t row, int64_t k) {
    return (row / cout_g) * K * cout_g + k * cout_g + row % cout_g;
  });
}

// dW: (groups·cout_g, cin_g, taps) += Σ_c parts[c] read through the kernel
// flip; parts[c]: per group a (cout_g·taps, cin_g) block whose row
// (o, taps − 1 − t) holds tap t.
template <typename T>
void add_flipped_partials(T* dW, const T* parts, int chunks, int64_t groups, int64_t cout_g,
                          int64_t cin_g, int64_t taps) {
  add_partials_through(dW, parts, chunks, groups * cout_g, cin_g * taps, [=](int64_t row, int64_t k) {
    return (row * taps + taps - 1 - k % taps) * cin_g + k / taps;
  });
}

bool is_depthwise(const Conv2dShape& s) { return s.groups == s.in_channels && s.groups > 1; }

// A large image's column matrix is cut into tiles of whole window rows of at
// most kTileElements (4 MB of float), the products reading and writing the
// image in place with its leading dimension. This bounds the scratch (a
// 224×224 image with 64 channels would need 115 MB per thread); it does not
// change the speed: the columns stream through L3 at full rate (ResNet's 32
// channels on 32×32 took the same time in tiles of 128 columns as whole, and
// batching several small images into one product gained nothing either,
// measured down to 4×4 images).
constexpr int64_t kTileElements = int64_t(1) << 20;
constexpr int64_t kRowSplitWork = int64_t(1) << 18;

// How conv2d splits its batch and lays out its scratch. Forward and backward
// share the layout, so one conv2d_scratch_size serves both: per chunk, a column
// matrix; then one transposed dW partial per chunk; then, for the gathered
// input gradient, the flipped weights.
struct ConvPlan {
  Geometry g;       // im2col of x (forward, dW)
  Geometry gt;      // im2col of dy (input gradient, when gather_dx)
  bool gather_dx;
  bool direct;      // pointwise: the image plane is its own column matrix
  int chunks;       // image chunks (one per thread when the batch allows)
  int row_chunks;   // forward with fewer images than threads: parts of each image's window rows
  int64_t row_grain;  // the parallel_for grain that makes row_chunks parts
  int64_t rows;     // window rows per tile
  int64_t rows_dx;  // input rows per tile of the gathered input gradient
  int64_t cols;     // elements per chunk
  int64_t w_size;
  int64_t partials_offset() const { return std::max(chunks, row_chunks) * cols; }
  int64_t flipped_offset() const { return partials_offset() + chunks * w_size; }
  int64_t scratch_size() const { return flipped_offset() + (gather_dx ? w_size : 0); }
};

ConvPlan conv_plan(const Conv2dShape& s) {
  ConvPlan pl;
  pl.g = conv_geometry(s);
  const int64_t P = pl.g.positions(), HW = s.height * s.width;
  // With stride 1 the input gradient is itself a correlation: of dy, padded by
  // d·(k−1) − pad, with the flipped, transposed kernel. Its GEMM (C_in/g rows,
  // inner dimension C_out/g·KH·KW) has the forward's shape, against W_gᵀ·dy's
  // inner dimension of only C_out/g, and it gathers (im2col) instead of
  // scatter-adding (col2im). It computes one product per input pixel, so it is
  // used only when the output has at least as many positions ("same" padding);
  // a "valid" convolution would multiply by zeros in the border. Its column
  // matrix has C_out·KH·KW rows against col2im's C_in·KH·KW, so it is also
  // left to layers that do not widen the channels more than 2× (LeNet's
  // 1 → 6 first layer: 1.5 ms by col2im, 2.3 ms gathered; ResNet's 32 → 32:
  // 5.2 ms by col2im, 4.7 ms gathered, for 8 images on one thread).
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  pl.gather_dx = s.stride_h == 1 && s.stride_w == 1 && HW <= P && cout_g <= 2 * cin_g;
  pl.gt = {s.out_channels, s.out_h(), s.out_w(), s.kernel_h, s.kernel_w, 1, 1,
           s.dilation_h * (s.kernel_h - 1) - s.pad_top, s.dilation_w * (s.kernel_w - 1) - s.pad_left,
           s.dilation_h, s.dilation_w, s.height, s.width};
  pl.direct = pl.g.pointwise();
  pl.chunks = image_chunks(s.batch);
  pl.rows = pl.direct ? pl.g.oh : std::clamp<int64_t>(kTileElements / (pl.g.col_rows() * pl.g.ow), 1, pl.g.oh);
  pl.rows_dx = pl.direct ? s.height
                         : std::clamp<int64_t>(kTileElements / (pl.gt.col_rows() * s.width), 1, s.height);
  pl.cols = pl.direct ? 0 : pl.g.col_rows() * pl.rows * pl.g.ow;
  if (pl.gather_dx && !pl.direct) pl.cols = std::max(pl.cols, pl.gt.col_rows() * pl.rows_dx * s.width);
  pl.w_size = s.out_channels * cin_g * s.kernel_h * s.kernel_w;
  // With fewer images than threads (batch-1 inference) the forward splits each
  // image's window rows across the threads, each building its own part of the
  // column matrix and multiplying it single-threaded; splitting only the GEMM
  // would leave im2col serial (ResNet batch 1: 1.26x faster on 2 threads than
  // on 1 that way). A part gets at least kRowSplitWork multiply-adds.
  pl.row_chunks = 1;
  pl.row_grain = pl.g.oh;
  if (pl.chunks == 1) {
    const int64_t row_work = std::max<int64_t>(1, s.out_channels * cin_g * s.kernel_h * s.kernel_w * pl.g.ow);
    pl.row_grain = std::max<int64_t>(1, ceil_div(kRowSplitWork, row_work));
    pl.row_chunks = detail::parallel_chunks(pl.g.oh, pl.row_grain);
  }
  return pl;
}

// Wt: (C_in, C_out/groups · KH·KW) written, group by group: Wt[c, (o, KH−1−p, KW−1−q)] = W[o, c, p, q]
// for c and o in the same group; W: (C_out, C_in/groups, KH, KW).
template <typename T>
void flip_weights(T* Wt, const T* W, const Conv2dShape& s) {
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t taps = s.kernel_h * s.kernel_w, Kt = cout_g * taps;
  for (int64_t grp = 0; grp < s.groups; ++grp)
    for (int64_t o = 0; o < cout_g; ++o)
      for (int64_t c = 0; c < cin_g; ++c) {
        const T* w = W + ((grp * cout_g + o) * cin_g + c) * taps;
        T* wt = Wt + (grp * cin_g + c) * Kt + o * taps;
        for (int64_t t = 0; t < taps; ++t) wt[taps - 1 - t] = w[t];
      }
}

std::string prefix(const char* op) { return std::string(op) + ": "; }

void require_positive(int64_t v, const char* op, const char* what) {
  if (v < 1) throw ValueError(prefix(op) + what + " must be >= 1, got " + std::to_string(v));
}

}  // namespace

// ------------------------------------------------------------------ geometry

int64_t Conv2dShape::out_h() const {
  return (height + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
}
int64_t Conv2dShape::out_w() const {
  return (width + pad_left + pad_right - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
}

void validate(const Conv2dShape& s, const char* op) {
  require_positive(s.batch, op, "batch");
  require_positive(s.in_channels, op, "in_channels");
  require_positive(s.height, op, "height");
  require_positive(s.width, op, "width");
  require_positive(s.out_channels, op, "out_channels");
  require_positive(s.kernel_h, op, "kernel_h");
  require_positive(s.kernel_w, op, "kernel_w");
  require_positive(std::min(s.stride_h, s.stride_w), op, "stride");
  require_positive(std::min(s.dilation_h, s.dilation_w), op, "dilation");
  const int64_t min_pad = std::min({s.pad_top, s.pad_bottom, s.pad_left, s.pad_right});
  if (min_pad < 0)
    throw ValueError(prefix(op) + "padding must be >= 0, got " + std::to_string(min_pad));
  require_positive(s.groups, op, "groups");
  if (s.in_channels % s.groups != 0)
    throw ValueError(prefix(op) + "groups=" + std::to_string(s.groups) +
                     " must divide in_channels=" + std::to_string(s.in_channels));
  if (s.out_channels % s.groups != 0)
    throw ValueError(prefix(op) + "groups=" + std::to_string(s.groups) +
                     " must divide out_channels=" + std::to_string(s.out_channels));
  const int64_t ekh = s.dilation_h * (s.kernel_h - 1) + 1, ekw = s.dilation_w * (s.kernel_w - 1) + 1;
  const int64_t ph = s.height + s.pad_top + s.pad_bottom, pw = s.width + s.pad_left + s.pad_right;
  if (ekh > ph || ekw > pw)
    throw ValueError(prefix(op) + "kernel " + std::to_string(ekh) + "x" + std::to_string(ekw) +
                     " (dilated) is larger than the padded input " + std::to_string(ph) + "x" +
                     std::to_string(pw));
}

int64_t conv2d_scratch_size(const Conv2dShape& s) {
  if (is_depthwise(s)) return 0;  // the direct kernel needs none
  return conv_plan(s).scratch_size();
}

// ------------------------------------------------------------------ conv2d forward

namespace {

// Depthwise: output channel o reads input channel o / multiplier only.
// y: (N, C_out, OH, OW) written; x: (N, C_in, H, W); W: (C_out, 1, KH, KW); b: (C_out,) or null.
template <typename T>
void depthwise_forward(T* y, const T* x, const T* W, const T* b, const Conv2dShape& s) {
  const Geometry g = conv_geometry(s);
  const int64_t mult = s.out_channels / s.in_channels, P = g.positions();
  const int64_t planes = s.batch * s.out_channels;
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, P * g.kh * g.kw));
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

}  // namespace

template <typename T>
void conv2d_forward(T* y, T* scratch, const T* x, const T* W, const T* b, const Conv2dShape& s) {
  // y: (N, C_out, OH, OW); scratch: conv2d_scratch_size(s); x: (N, C_in, H, W);
  // W: (C_out, C_in/groups, KH, KW); b: (C_out,) or nullptr
  if (is_depthwise(s)) return depthwise_forward(y, x, W, b, s);
  const ConvPlan pl = conv_plan(s);
  const Geometry& g = pl.g;
  const int64_t P = g.positions(), img = s.in_channels * s.height * s.width;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t K = cin_g * g.kh * g.kw;  // columns of W_g, rows of cols_g
  // Window rows [r_lo, r_hi) of image n, tile by tile; cols: (C_in·KH·KW, tile), the caller's own.
  auto forward_rows = [&](int64_t n, T* cols, int64_t r_lo, int64_t r_hi) {
    const T* xn = x + n * img;
    T* yn = y + n * s.out_channels * P;
    for (int64_t r0 = r_lo; r0 < r_hi; r0 += pl.rows) {
      const int64_t r1 = std::min(r_hi, r0 + pl.rows), tile = (r1 - r0) * g.ow;
      const Columns<T> c = columns(cols, xn, g, pl.direct, r0, r1);
      for (int64_t grp = 0; grp < s.groups; ++grp)
        gemm<T>(Trans::no, Trans::no, cout_g, tile, K, T(1), W + grp * cout_g * K, K, c.data + grp * K * c.ld,
                c.ld, T(0), yn + grp * cout_g * P + r0 * g.ow, P);
    }
  };
  if (pl.row_chunks > 1) {
    for (int64_t n = 0; n < s.batch; ++n) {
      detail::parallel_for(0, g.oh, pl.row_grain, [&](int64_t lo, int64_t hi, int chunk) {
        forward_rows(n, scratch + chunk * pl.cols, lo, hi);
      });
      if (b) add_bias(y + n * s.out_channels * P, b, s.out_channels, P);
    }
    return;
  }
  for_images(s.batch, pl.chunks, [&](int64_t lo, int64_t hi, int chunk) {
    for (int64_t n = lo; n < hi; ++n) {
      forward_rows(n, scratch + chunk * pl.cols, 0, g.oh);
      if (b) add_bias(y + n * s.out_channels * P, b, s.out_channels, P);
    }
  });
}

template <typename T>
void conv2d_forward_naive(T* y, const T* x, const T* W, const T* b, const Conv2dShape& s) {
  // y: (N, C_out, OH, OW); x: (N, C_in, H, W); W: (C_out, C_in/groups, KH, KW); b: (C_out,) or nullptr
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t o = 0; o < s.out_channels; ++o) {
      const int64_t c0 = (o / cout_g) * cin_g;  // first input channel of o's group
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          T acc = b ? b[o] : T(0);
          for (int64_t c = 0; c < cin_g; ++c)
            for (int64_t p = 0; p < s.kernel_h; ++p)
              for (int64_t q = 0; q < s.kernel_w; ++q) {
                const int64_t ih = i * s.stride_h + p * s.dilation_h - s.pad_top;
                const int64_t iw = j * s.stride_w + q * s.dilation_w - s.pad_left;
                if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) continue;
                acc += W[((o * cin_g + c) * s.kernel_h + p) * s.kernel_w + q] *
                       x[((n * s.in_channels + c0 + c) * s.height + ih) * s.width + iw];
              }
          y[((n * s.out_channels + o) * OH + i) * OW + j] = acc;
        }
    }
}

// ------------------------------------------------------------------ conv2d backward

namespace {

// dx: like x, written, or null; dW: (C_out, 1, KH, KW) accumulated; db: (C_out,) accumulated or null;
// dy: (N, C_out, OH, OW); x: (N, C_in, H, W); W: (C_out, 1, KH, KW).
template <typename T>
void depthwise_backward(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                        const Conv2dShape& s) {
  const Geometry g = conv_geometry(s);
  const int64_t mult = s.out_channels / s.in_channels, P = g.positions();
  const int64_t HW = g.height * g.width;
  const int64_t work = P * g.kh * g.kw;
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work));
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

}  // namespace

template <typename T>
void conv2d_backward(T* dx, T* dW, T* db, T* scratch, const T* dy, const T* x, const T* W,
                     const Conv2dShape& s) {
  // dx: (N, C_in, H, W) written or nullptr; dW: (C_out, C_in/groups, KH, KW) accumulated;
  // db: (C_out,) accumulated or nullptr; scratch: conv2d_scratch_size(s);
  // dy: (N, C_out, OH, OW); x: (N, C_in, H, W); W: like dW
  if (is_depthwise(s)) return depthwise_backward(dx, dW, db, dy, x, W, s);
  const ConvPlan pl = conv_plan(s);
  const Geometry &g = pl.g, &gt = pl.gt;
  const int64_t P = g.positions(), HW = s.height * s.width, img = s.in_channels * HW;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t K = cin_g * g.kh * g.kw;    // dW_g is (C_out/g, K)
  const int64_t Kt = cout_g * g.kh * g.kw;  // the flipped Wt_g is (C_in/g, Kt)
  // With the gathered input gradient, dW comes from the same columns of dy:
  //   dW[o, c, p, q] = Σ_pixels x[c, pixel] · im2col(dy)[(o, KH−1−p, KW−1−q), pixel],
  // each input pixel meeting, through the flipped tap, the output position
  // that read it through tap (p, q) (zero where none did). That saves the
  // second im2col of x, a third of this layer's column building.
  const bool dw_from_dy = dx && pl.gather_dx;
  // Per chunk a partial: (groups, K, C_out/g), or with dw_from_dy (groups, Kt, C_in/g).
  T* partials = scratch + pl.partials_offset();
  T* Wt = scratch + pl.flipped_offset();  // (C_in, Kt) when gather_dx
  if (dx && pl.gather_dx) flip_weights(Wt, W, s);
  for_images(s.batch, pl.chunks, [&](int64_t lo, int64_t hi, int chunk) {
    T* cols = scratch + chunk * pl.cols;  // columns of x, then of dy or dcols
    T* dWt = partials + chunk * pl.w_size;  // this chunk's dW partial
    for (int64_t n = lo; n < hi; ++n) {
      const T* xn = x + n * img;
      const T* dyn = dy + n * s.out_channels * P;  // (C_out, P)
      T* dxn = dx ? dx + n * img : nullptr;
      if (dx && !pl.gather_dx) std::fill(dxn, dxn + img, T(0));
      for (int64_t r0 = 0; r0 < g.oh && !dw_from_dy; r0 += pl.rows) {
        const int64_t r1 = std::min(g.oh, r0 + pl.rows), tile = (r1 - r0) * g.ow;
        const Columns<T> c = columns(cols, xn, g, pl.direct, r0, r1);
        // dW_gᵀ (K, C_out/g) += cols_g (K, tile) · dy_gᵀ (tile, C_out/g), the
        // chunk's partial starting from its first product (beta 0). Transposed,
        // because BLAS packs the column matrix faster as the left operand:
        // 80 against 72 GFLOP/s for ResNet's (K, C_out, tile) = (288, 32, 1024).
        const T beta = (n == lo && r0 == 0) ? T(0) : T(1);
        const T* dt = dyn + r0 * g.ow;
        for (int64_t grp = 0; grp < s.groups; ++grp)
          gemm<T>(Trans::no, Trans::yes, K, cout_g, tile, T(1), c.data + grp * K * c.ld, c.ld,
                  dt + grp * cout_g * P, P, beta, dWt + grp * K * cout_g, cout_g);
        if (!dx || pl.gather_dx) continue;
        // dcols_g (K, tile) = W_gᵀ (K, C_out/g) · dy_g, scatter-added onto dx by
        // col2im (x's columns are consumed: cols is free).
        for (int64_t grp = 0; grp < s.groups; ++grp)
          gemm<T>(Trans::yes, Trans::no, K, tile, cout_g, T(1), W + grp * cout_g * K, K,
                  dt + grp * cout_g * P, P, T(0), cols + grp * K * tile, tile);
        col2im(dxn, cols, tile, g, r0, r1);
      }
      if (!dw_from_dy) continue;
      // Over tiles of input rows: dx_g (C_in/g, tile) = Wt_g · im2col(dy)_g and
      // the chunk's dW partial (Kt, C_in/g) += im2col(dy)_g · x_gᵀ.
      for (int64_t h0 = 0; h0 < s.height; h0 += pl.rows_dx) {
        const int64_t h1 = std::min(s.height, h0 + pl.rows_dx), tile = (h1 - h0) * s.width;
        const Columns<T> c = columns(cols, dyn, gt, pl.direct, h0, h1);
        const T beta = (n == lo && h0 == 0) ? T(0) : T(1);
        for (int64_t grp = 0; grp < s.groups; ++grp) {
          const T* cg = c.data + grp * Kt * c.ld;
          gemm<T>(Trans::no, Trans::no, cin_g, tile, Kt, T(1), Wt + grp * cin_g * Kt, Kt, cg, c.ld, T(0),
                  dxn + grp * cin_g * HW + h0 * s.width, HW);
          gemm<T>(Trans::no, Trans::yes, Kt, cin_g, tile, T(1), cg, c.ld, xn + grp * cin_g * HW + h0 * s.width,
                  HW, beta, dWt + grp * Kt * cin_g, cin_g);
        }
      }
    }
  });
  if (dw_from_dy) add_flipped_partials(dW, partials, pl.chunks, s.groups, cout_g, cin_g, g.kh * g.kw);
  else add_transposed_partials(dW, partials, pl.chunks, s.groups, cout_g, K);
  if (db) bias_grad(db, dy, s.batch, s.out_channels, P);
}

template <typename T>
void conv2d_backward_naive(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                           const Conv2dShape& s) {
  // dx: (N, C_in, H, W) written or nullptr; dW: (C_out, C_in/groups, KH, KW) accumulated;
  // db: (C_out,) accumulated or nullptr; dy: (N, C_out, OH, OW); x, W: as in forward
  const int64_t OH = s.out_h(), OW = s.out_w();
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  if (dx) std::fill(dx, dx + s.batch * s.in_channels * s.height * s.width, T(0));
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t o = 0; o < s.out_channels; ++o) {
      const int64_t c0 = (o / cout_g) * cin_g;
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          const T g = dy[((n * s.out_channels + o) * OH + i) * OW + j];
          if (db) db[o] += g;
          for (int64_t c = 0; c < cin_g; ++c)
            for (int64_t p = 0; p < s.kernel_h; ++p)
              for (int64_t q = 0; q < s.kernel_w; ++q) {
                const int64_t ih = i * s.stride_h + p * s.dilation_h - s.pad_top;
                const int64_t iw = j * s.stride_w + q * s.dilation_w - s.pad_left;
                if (ih < 0 || ih >= s.height || iw < 0 || iw >= s.width) continue;
                const int64_t xi = ((n * s.in_channels + c0 + c) * s.height + ih) * s.width + iw;
                const int64_t wi = ((o * cin_g + c) * s.kernel_h + p) * s.kernel_w + q;
                dW[wi] += g * x[xi];
                if (dx) dx[xi] += g * W[wi];
              }
        }
    }
}

// ------------------------------------------------------------------ transposed geometry

int64_t ConvTranspose2dShape::out_h() const {
  return (height - 1) * stride_h - pad_top - pad_bottom + dilation_h * (kernel_h - 1) + 1 + output_pad_h;
}
int64_t ConvTranspose2dShape::out_w() const {
  return (width - 1) * stride_w - pad_left - pad_right + dilation_w * (kernel_w - 1) + 1 + output_pad_w;
}

void validate(const ConvTranspose2dShape& s, const char* op) {
  require_positive(s.batch, op, "batch");
  require_positive(s.in_channels, op, "in_channels");
  require_positive(s.height, op, "height");
  require_positive(s.width, op, "width");
  require_positive(s.out_channels, op, "out_channels");
  require_positive(s.kernel_h, op, "kernel_h");
  require_positive(s.kernel_w, op, "kernel_w");
  require_positive(std::min(s.stride_h, s.stride_w), op, "stride");
  require_positive(std::min(s.dilation_h, s.dilation_w), op, "dilation");
  const int64_t min_pad = std::min({s.pad_top, s.pad_bottom, s.pad_left, s.pad_right});
  if (min_pad < 0)
    throw ValueError(prefix(op) + "padding must be >= 0, got " + std::to_string(min_pad));
  if (std::min(s.output_pad_h, s.output_pad_w) < 0)
    throw ValueError(prefix(op) + "output_padding must be >= 0, got " +
                     std::to_string(std::min(s.output_pad_h, s.output_pad_w)));
  // An output_padding of a whole stride would add a row no input pixel reaches.
  if (s.output_pad_h >= s.stride_h || s.output_pad_w >= s.stride_w)
    throw ValueError(prefix(op) + "output_padding (" + std::to_string(s.output_pad_h) + ", " +
                     std::to_string(s.output_pad_w) + ") must be smaller than stride (" +
                     std::to_string(s.stride_h) + ", " + std::to_string(s.stride_w) + ")");
  if (s.out_h() < 1 || s.out_w() < 1)
    throw ValueError(prefix(op) + "output size " + std::to_string(s.out_h()) + "x" +
                     std::to_string(s.out_w()) + " must be >= 1 (padding too large)");
}

int64_t conv_transpose2d_scratch_size(const ConvTranspose2dShape& s) {
  const Geometry g = transpose_geometry(s);
  const int chunks = image_chunks(s.batch);
  const int64_t cols = g.pointwise() ? 0 : g.col_rows() * g.positions();
  const int64_t w_size = s.in_channels * s.out_channels * s.kernel_h * s.kernel_w;
  return chunks * cols + (chunks > 1 ? chunks * w_size : 0);
}

// ------------------------------------------------------------------ transposed forward

template <typename T>
void conv_transpose2d_forward(T* y, T* scratch, const T* x, const T* W, const T* b,
                              const ConvTranspose2dShape& s) {
  // y: (N, C_out, OH, OW) written; scratch: conv_transpose2d_scratch_size(s);
  // x: (N, C_in, H, W); W: (C_in, C_out, KH, KW); b: (C_out,) or nullptr
  const Geometry g = transpose_geometry(s);  // reads y-sized images, H×W positions
  const int64_t P = g.positions(), Kc = g.col_rows();  // Kc = C_out·KH·KW
  const int64_t y_img = s.out_channels * g.height * g.width;
  const bool pointwise = g.pointwise();
  const int64_t col_size = pointwise ? 0 : Kc * P;
  const int chunks = image_chunks(s.batch);
  for_images(s.batch, chunks, [&](int64_t lo, int64_t hi, int chunk) {
    T* cols = scratch + chunk * col_size;  // (C_out·KH·KW, H·W)
    for (int64_t n = lo; n < hi; ++n) {
      T* yn = y + n * y_img;
      // cols (Kc, P) = Wᵀ (Kc, C_in) · x_n (C_in, P): each input pixel's contribution
      // to every tap; col2im scatters them into the output.
      T* c = pointwise ? yn : cols;
      gemm<T>(Trans::yes, Trans::no, Kc, P, s.in_channels, T(1), W, Kc,
              x + n * s.in_channels * P, P, T(0), c, P);
      if (!pointwise) {
        std::fill(yn, yn + y_img, T(0));
        col2im(yn, cols, P, g, 0, g.oh);
      }
    }
  });
  if (b) {
    const int64_t plane = g.height * g.width;
    detail::parallel_for(0, s.batch * s.out_channels,
                         std::max<int64_t>(1, kGrain / std::max<int64_t>(1, plane)),
                         [=](int64_t lo, int64_t hi, int) {
                           for (int64_t nc = lo; nc < hi; ++nc) {
                             T* __restrict yp = y + nc * plane;
                             const T bias = b[nc % s.out_channels];
                             for (int64_t k = 0; k < plane; ++k) yp[k] += bias;
                           }
                         });
  }
}

template <typename T>
void conv_transpose2d_forward_naive(T* y, const T* x, const T* W, const T* b,
                                    const ConvTranspose2dShape& s) {
  // y: (N, C_out, OH, OW); x: (N, C_in, H, W); W: (C_in, C_out, KH, KW); b: (C_out,) or nullptr
  const int64_t OH = s.out_h(), OW = s.out_w();
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t o = 0; o < s.out_channels; ++o)
      for (int64_t k = 0; k < OH * OW; ++k)
        y[(n * s.out_channels + o) * OH * OW + k] = b ? b[o] : T(0);
  // Every input pixel scatters its kernel-weighted copy into the output.
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int64_t h = 0; h < s.height; ++h)
        for (int64_t w = 0; w < s.width; ++w) {
          const T v = x[((n * s.in_channels + c) * s.height + h) * s.width + w];
          for (int64_t o = 0; o < s.out_channels; ++o)
            for (int64_t p = 0; p < s.kernel_h; ++p)
              for (int64_t q = 0; q < s.kernel_w; ++q) {
                const int64_t oh = h * s.stride_h + p * s.dilation_h - s.pad_top,
                              ow = w * s.stride_w + q * s.dilation_w - s.pad_left;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                y[((n * s.out_channels + o) * OH + oh) * OW + ow] +=
                    v * W[((c * s.out_channels + o) * s.kernel_h + p) * s.kernel_w + q];
              }
        }
}

// ------------------------------------------------------------------ transposed backward

template <typename T>
void conv_transpose2d_backward(T* dx, T* dW, T* db, T* scratch, const T* dy, const T* x,
                               const T* W, const ConvTranspose2dShape& s) {
  // dx: (N, C_in, H, W) written or nullptr; dW: (C_in, C_out, KH, KW) accumulated;
  // db: (C_out,) accumulated or nullptr; scratch: conv_transpose2d_scratch_size(s);
  // dy: (N, C_out, OH, OW); x: (N, C_in, H, W); W: like dW
  const Geometry g = transpose_geometry(s);
  const int64_t P = g.positions(), Kc = g.col_rows();
  const int64_t y_img = s.out_channels * g.height * g.width;
  const int64_t w_size = s.in_channels * Kc;
  const bool pointwise = g.pointwise();
  const int64_t col_size = pointwise ? 0 : Kc * P;
  const int chunks = image_chunks(s.batch);
  T* partials = scratch + chunks * col_size;  // (chunks, C_in, Kc) when chunks > 1
  for_images(s.batch, chunks, [&](int64_t lo, int64_t hi, int chunk) {
    T* cols = scratch + chunk * col_size;  // (Kc, H·W)
    T* dWc = chunks > 1 ? partials + chunk * w_size : dW;
    for (int64_t n = lo; n < hi; ++n) {
      const T* dyn = dy + n * y_img;
      const T* xn = x + n * s.in_channels * P;  // (C_in, P)
      if (!pointwise) im2col(cols, P, dyn, g, 0, g.oh);
      const T* c = pointwise ? dyn : cols;
      // dx_n (C_in, P) = W (C_in, Kc) · cols (Kc, P): a plain conv2d of dy.
      if (dx)
        gemm<T>(Trans::no, Trans::no, s.in_channels, P, Kc, T(1), W, Kc, c, P, T(0),
                dx + n * s.in_channels * P, P);
      // dW (C_in, Kc) += x_n (C_in, P) · colsᵀ (P, Kc)
      const T beta = (chunks > 1 && n == lo) ? T(0) : T(1);
      gemm<T>(Trans::no, Trans::yes, s.in_channels, Kc, P, T(1), xn, P, c, P, beta, dWc, Kc);
    }
  });
  if (chunks > 1) add_partials(dW, partials, chunks, w_size);
  if (db) bias_grad(db, dy, s.batch, s.out_channels, g.height * g.width);
}

template <typename T>
void conv_transpose2d_backward_naive(T* dx, T* dW, T* db, const T* dy, const T* x, const T* W,
                                     const ConvTranspose2dShape& s) {
  // dx: (N, C_in, H, W) written or nullptr; dW: (C_in, C_out, KH, KW) accumulated;
  // db: (C_out,) accumulated or nullptr; dy: (N, C_out, OH, OW)
  const int64_t OH = s.out_h(), OW = s.out_w();
  for (int64_t n = 0; n < s.batch; ++n)
    for (int64_t c = 0; c < s.in_channels; ++c)
      for (int64_t h = 0; h < s.height; ++h)
        for (int64_t w = 0; w < s.width; ++w) {
          const int64_t xi = ((n * s.in_channels + c) * s.height + h) * s.width + w;
          T acc = 0;
          for (int64_t o = 0; o < s.out_channels; ++o)
            for (int64_t p = 0; p < s.kernel_h; ++p)
              for (int64_t q = 0; q < s.kernel_w; ++q) {
                const int64_t oh = h * s.stride_h + p * s.dilation_h - s.pad_top,
                              ow = w * s.stride_w + q * s.dilation_w - s.pad_left;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                const T g = dy[((n * s.out_channels + o) * OH + oh) * OW + ow];
                const int64_t wi = ((c * s.out_channels + o) * s.kernel_h + p) * s.kernel_w + q;
                acc += g * W[wi];
                dW[wi] += g * x[xi];
              }
          if (dx) dx[xi] = acc;
        }
  if (db)
    for (int64_t n = 0; n < s.batch; ++n)
      for (int64_t o = 0; o < s.out_channels; ++o)
        for (int64_t k = 0; k < OH * OW; ++k) db[o] += dy[(n * s.out_channels + o) * OH * OW + k];
}

#define CORENN_INSTANTIATE(T)                                                                    \
  template void conv2d_forward<T>(T*, T*, const T*, const T*, const T*, const Conv2dShape&);    \
  template void conv2d_forward_naive<T>(T*, const T*, const T*, const T*, const Conv2dShape&);  \
  template void conv2d_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*,                 \
                                   const Conv2dShape&);                                          \
  template void conv2d_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*,               \
                                         const Conv2dShape&);                                    \
  template void conv_transpose2d_forward<T>(T*, T*, const T*, const T*, const T*,                \
                                            const ConvTranspose2dShape&);                        \
  template void conv_transpose2d_forward_naive<T>(T*, const T*, const T*, const T*,              \
                                                  const ConvTranspose2dShape&);                  \
  template void conv_transpose2d_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*,       \
                                             const ConvTranspose2dShape&);                       \
  template void conv_transpose2d_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*,     \
                                                   const ConvTranspose2dShape&);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
