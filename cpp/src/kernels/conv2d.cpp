// 2-D convolution, NCHW, by im2col + GEMM (geometry, im2col and threading:
// conv_geometry.hpp; depthwise convolution: depthwise_conv.cpp).
//
// The convolution of group g is one product per image
//   y_g (C_out/groups, OH·OW) = W_g (C_out/groups, K) · cols_g (K, OH·OW),
// K = C_in/groups · KH · KW, the groups' rows of cols being contiguous.
// Large images are cut into tiles of window rows (see ConvPlan).
//
// The backward takes one of two routes (conv2d_backward below):
// - gathered: with stride 1 and "same" padding the input gradient is itself a
//   correlation, of dy with the flipped kernel (im2col of dy + GEMM), and dW
//   comes from those same columns of dy (conv2d_backward_gathered);
// - otherwise dW is the product of dy with the columns of x and dx, when
//   asked for, is Wᵀ·dy scattered back onto the pixels by col2im, both image
//   by image in one pass (conv2d_backward_col2im).
// dW is accumulated in per-chunk partials (transposed, as each route lays
// them out for its GEMM), added into dW in chunk order.
//
// 3×3 stride-1 float32 convolutions may instead go to Winograd's algorithm
// (winograd.cpp), as the conv algorithm setting selects (winograd.hpp).
#include <algorithm>
#include <type_traits>

#include "backend/gemm.hpp"
#include "backend/parallel.hpp"
#include "corenn/kernels/conv.hpp"
#include "corenn/kernels/winograd.hpp"
#include "kernels/conv_epilogue.hpp"
#include "kernels/conv_geometry.hpp"
#include "kernels/depthwise_conv.hpp"

namespace corenn {

using detail::gemm;
using detail::Trans;
using namespace conv;

namespace {

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

// The epilogue over positions [p0, p1) of every plane of one image's y (C, P),
// in place; residual: that image's (C, P) or nullptr.
template <typename T>
void apply_epilogue(T* y, const ConvEpilogue<T>& e, const T* residual, int64_t C, int64_t P, int64_t p0,
                    int64_t p1) {
  for (int64_t c = 0; c < C; ++c)
    epilogue_span(y + c * P + p0, y + c * P + p0, e.bias ? e.bias[c] : T(0),
                  residual ? residual + c * P + p0 : nullptr, p1 - p0, e.relu);
}

template <typename T>
bool has_epilogue(const ConvEpilogue<T>& e) {
  return e.bias || e.residual || e.relu;
}

// dW: (rows, K) += Σ_c parts[c][at(row, k)], the chunks' partials (n values
// each) added in chunk order; `at` says where a chunk's partial keeps dW's
// (row, k), as each backward route lays its partial out for its own GEMM.
template <typename T, typename At>
void add_partials_through(T* dW, const T* parts, int chunks, int64_t rows, int64_t K, At at) {
  const int64_t n = rows * K;
  detail::parallel_for(0, rows, detail::grain_for(K * chunks), [=](int64_t lo, int64_t hi, int) {
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
  int64_t cols;     // elements per chunk (none when direct: no route builds columns then)
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

}  // namespace

int64_t conv2d_scratch_size(const Conv2dShape& s) {
  if (is_depthwise(s)) return 0;  // the direct kernel needs none
  // Room for either algorithm: the setting may change after the caller sized it.
  const int64_t wino = winograd_applies(s) ? winograd_scratch_size(s) : 0;
  return std::max(conv_plan(s).scratch_size(), wino);
}

// ------------------------------------------------------------------ forward

template <typename T>
void conv2d_forward(T* y, T* scratch, const T* x, const T* W, const T* b, const Conv2dShape& s) {
  // y: (N, C_out, OH, OW); scratch: conv2d_scratch_size(s); x: (N, C_in, H, W);
  // W: (C_out, C_in/groups, KH, KW); b: (C_out,) or nullptr
  ConvEpilogue<T> e;
  e.bias = b;
  conv2d_forward_fused(y, scratch, x, W, e, s);
}

template <typename T>
void conv2d_forward_fused(T* y, T* scratch, const T* x, const T* W, const ConvEpilogue<T>& e,
                          const Conv2dShape& s) {
  // y, e.residual: (N, C_out, OH, OW); scratch: conv2d_scratch_size(s); x: (N, C_in, H, W);
  // W: (C_out, C_in/groups, KH, KW); e.bias: (C_out,) or nullptr
  const int64_t out_img = s.out_channels * s.out_h() * s.out_w();
  if (is_depthwise(s)) {  // its direct kernel adds the bias; the rest in a pass of its own
    depthwise_forward(y, x, W, e.bias, s);
    if (e.residual || e.relu)
      for (int64_t n = 0; n < s.batch; ++n)
        apply_epilogue(y + n * out_img, ConvEpilogue<T>{nullptr, e.residual, e.relu},
                       e.residual ? e.residual + n * out_img : nullptr, s.out_channels, out_img / s.out_channels, 0,
                       out_img / s.out_channels);
    return;
  }
  if constexpr (std::is_same_v<T, float>)
    if (const int m = winograd_tile(s)) return winograd_conv2d_forward(y, scratch, x, W, e, s, m);
  const ConvPlan pl = conv_plan(s);
  const Geometry& g = pl.g;
  const int64_t P = g.positions(), img = s.in_channels * s.height * s.width;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t K = cin_g * g.kh * g.kw;  // columns of W_g, rows of cols_g
  const bool epilogue = has_epilogue(e);
  // Window rows [r_lo, r_hi) of image n, tile by tile, each tile of y passed
  // through the epilogue right after its product; cols: (C_in·KH·KW, tile), the caller's own.
  auto forward_rows = [&](int64_t n, T* cols, int64_t r_lo, int64_t r_hi) {
    const T* xn = x + n * img;
    T* yn = y + n * s.out_channels * P;
    for (int64_t r0 = r_lo; r0 < r_hi; r0 += pl.rows) {
      const int64_t r1 = std::min(r_hi, r0 + pl.rows), tile = (r1 - r0) * g.ow;
      const Columns<T> c = columns(cols, xn, g, pl.direct, r0, r1);
      for (int64_t grp = 0; grp < s.groups; ++grp)
        gemm<T>(Trans::no, Trans::no, cout_g, tile, K, T(1), W + grp * cout_g * K, K, c.data + grp * K * c.ld,
                c.ld, T(0), yn + grp * cout_g * P + r0 * g.ow, P);
      if (epilogue)
        apply_epilogue(yn, e, e.residual ? e.residual + n * out_img : nullptr, s.out_channels, P, r0 * g.ow,
                       r1 * g.ow);
    }
  };
  if (pl.row_chunks > 1) {
    for (int64_t n = 0; n < s.batch; ++n)
      detail::parallel_for(0, g.oh, pl.row_grain, [&](int64_t lo, int64_t hi, int chunk) {
        forward_rows(n, scratch + chunk * pl.cols, lo, hi);
      });
    return;
  }
  for_images(s.batch, pl.chunks, [&](int64_t lo, int64_t hi, int chunk) {
    for (int64_t n = lo; n < hi; ++n) forward_rows(n, scratch + chunk * pl.cols, 0, g.oh);
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

// ------------------------------------------------------------------ backward

namespace {

// The gathered route (pl.gather_dx, dx wanted): over tiles of input rows,
//   dx_g (C_in/g, tile) = Wt_g (C_in/g, Kt) · im2col(dy)_g (Kt, tile),
// Wt the flipped, transposed kernel, and from the same columns
//   dW[o, c, p, q] = Σ_pixels x[c, pixel] · im2col(dy)[(o, KH−1−p, KW−1−q), pixel],
// each input pixel meeting, through the flipped tap, the output position that
// read it through tap (p, q) (zero where none did). Taking dW from dy's
// columns saves the second im2col, of x: a third of this layer's column building.
template <typename T>
void conv2d_backward_gathered(T* dx, T* dW, T* scratch, const T* dy, const T* x, const T* W,
                              const Conv2dShape& s, const ConvPlan& pl) {
  const Geometry& gt = pl.gt;
  const int64_t P = pl.g.positions(), HW = s.height * s.width, img = s.in_channels * HW;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t taps = s.kernel_h * s.kernel_w, Kt = cout_g * taps;  // Wt_g is (C_in/g, Kt)
  T* partials = scratch + pl.partials_offset();  // per chunk (groups, Kt, C_in/g)
  T* Wt = scratch + pl.flipped_offset();         // (C_in, Kt)
  flip_weights(Wt, W, s);
  for_images(s.batch, pl.chunks, [&](int64_t lo, int64_t hi, int chunk) {
    T* cols = scratch + chunk * pl.cols;    // columns of dy
    T* dWt = partials + chunk * pl.w_size;  // this chunk's dW partial
    for (int64_t n = lo; n < hi; ++n) {
      const T* xn = x + n * img;
      const T* dyn = dy + n * s.out_channels * P;  // (C_out, P)
      T* dxn = dx + n * img;
      for (int64_t h0 = 0; h0 < s.height; h0 += pl.rows_dx) {
        const int64_t h1 = std::min(s.height, h0 + pl.rows_dx), tile = (h1 - h0) * s.width;
        const Columns<T> c = columns(cols, dyn, gt, pl.direct, h0, h1);
        const T beta = (n == lo && h0 == 0) ? T(0) : T(1);  // the partial starts at its first product
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
  add_flipped_partials(dW, partials, pl.chunks, s.groups, cout_g, cin_g, taps);
}

// dW from the columns of x: over tiles of window rows,
//   dW_gᵀ (K, C_out/g) += cols_g (K, tile) · dy_gᵀ (tile, C_out/g),
// image by image into the chunk's partial dWt (started by the chunk's first
// image: first). Transposed, because BLAS packs the column matrix faster as
// the left operand: 80 against 72 GFLOP/s for ResNet's (K, C_out, tile) =
// (288, 32, 1024). cols: the chunk's column scratch; xn, dyn: the image's.
template <typename T>
void backward_weight_image(T* dWt, T* cols, const T* dyn, const T* xn, bool first, const Conv2dShape& s,
                           const ConvPlan& pl) {
  const Geometry& g = pl.g;
  const int64_t P = g.positions();
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t K = cin_g * g.kh * g.kw;  // dW_g is (C_out/g, K)
  for (int64_t r0 = 0; r0 < g.oh; r0 += pl.rows) {
    const int64_t r1 = std::min(g.oh, r0 + pl.rows), tile = (r1 - r0) * g.ow;
    const Columns<T> c = columns(cols, xn, g, pl.direct, r0, r1);
    const T beta = (first && r0 == 0) ? T(0) : T(1);  // the partial starts at its first product
    const T* dt = dyn + r0 * g.ow;
    for (int64_t grp = 0; grp < s.groups; ++grp)
      gemm<T>(Trans::no, Trans::yes, K, cout_g, tile, T(1), c.data + grp * K * c.ld, c.ld,
              dt + grp * cout_g * P, P, beta, dWt + grp * K * cout_g, cout_g);
  }
}

// dx of one image by col2im: over tiles of window rows,
// dcols_g (K, tile) = W_gᵀ (K, C_out/g) · dy_g, scatter-added onto dxn's
// pixels. cols: the chunk's column scratch.
template <typename T>
void backward_input_col2im_image(T* dxn, T* cols, const T* dyn, const T* W, const Conv2dShape& s,
                                 const ConvPlan& pl) {
  const Geometry& g = pl.g;
  const int64_t P = g.positions(), img = s.in_channels * s.height * s.width;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t K = cin_g * g.kh * g.kw;
  if (pl.direct) {
    // A pointwise kernel's column matrix is the image plane itself (no
    // scratch for it): dx_g = W_gᵀ·dy_g is written there directly.
    for (int64_t grp = 0; grp < s.groups; ++grp)
      gemm<T>(Trans::yes, Trans::no, K, P, cout_g, T(1), W + grp * cout_g * K, K, dyn + grp * cout_g * P, P,
              T(0), dxn + grp * K * P, P);
    return;
  }
  std::fill(dxn, dxn + img, T(0));
  for (int64_t r0 = 0; r0 < g.oh; r0 += pl.rows) {
    const int64_t r1 = std::min(g.oh, r0 + pl.rows), tile = (r1 - r0) * g.ow;
    const T* dt = dyn + r0 * g.ow;
    for (int64_t grp = 0; grp < s.groups; ++grp)
      gemm<T>(Trans::yes, Trans::no, K, tile, cout_g, T(1), W + grp * cout_g * K, K, dt + grp * cout_g * P, P,
              T(0), cols + grp * K * tile, tile);
    col2im(dxn, cols, tile, g, r0, r1);
  }
}

// The route without the gathered input gradient: per image, dW's product
// (backward_weight_image) and, when dx is wanted, col2im's
// (backward_input_col2im_image), both in ONE pass over the images: one
// fork/join instead of two, and each image's dy read while still in cache.
// The column scratch is reused: dW's product is done with it before col2im's
// fills it. Then the chunks' partials are added into dW.
template <typename T>
void conv2d_backward_col2im(T* dx, T* dW, T* scratch, const T* dy, const T* x, const T* W, const Conv2dShape& s,
                            const ConvPlan& pl) {
  const int64_t P = pl.g.positions(), img = s.in_channels * s.height * s.width;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  T* partials = scratch + pl.partials_offset();  // per chunk (groups, K, C_out/g)
  for_images(s.batch, pl.chunks, [&](int64_t lo, int64_t hi, int chunk) {
    T* cols = scratch + chunk * pl.cols;
    T* dWt = partials + chunk * pl.w_size;  // this chunk's dW partial
    for (int64_t n = lo; n < hi; ++n) {
      const T* dyn = dy + n * s.out_channels * P;  // (C_out, P)
      backward_weight_image(dWt, cols, dyn, x + n * img, n == lo, s, pl);
      if (dx) backward_input_col2im_image(dx + n * img, cols, dyn, W, s, pl);
    }
  });
  add_transposed_partials(dW, partials, pl.chunks, s.groups, cout_g, cin_g * pl.g.kh * pl.g.kw);
}

}  // namespace

template <typename T>
void conv2d_backward(T* dx, T* dW, T* db, T* scratch, const T* dy, const T* x, const T* W,
                     const Conv2dShape& s) {
  // dx: (N, C_in, H, W) written or nullptr; dW: (C_out, C_in/groups, KH, KW) accumulated;
  // db: (C_out,) accumulated or nullptr; scratch: conv2d_scratch_size(s);
  // dy: (N, C_out, OH, OW); x: (N, C_in, H, W); W: like dW
  if (is_depthwise(s)) return depthwise_backward(dx, dW, db, dy, x, W, s);
  if constexpr (std::is_same_v<T, float>)
    if (const int m = winograd_tile(s)) return winograd_conv2d_backward(dx, dW, db, scratch, dy, x, W, s, m);
  const ConvPlan pl = conv_plan(s);
  if (dx && pl.gather_dx) {
    conv2d_backward_gathered(dx, dW, scratch, dy, x, W, s, pl);
  } else {
    conv2d_backward_col2im(dx, dW, scratch, dy, x, W, s, pl);
  }
  if (db) bias_grad(db, dy, s.batch, s.out_channels, pl.g.positions());
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

#define CORENN_INSTANTIATE(T)                                                                    \
  template void conv2d_forward<T>(T*, T*, const T*, const T*, const T*, const Conv2dShape&);    \
  template void conv2d_forward_fused<T>(T*, T*, const T*, const T*, const ConvEpilogue<T>&,      \
                                        const Conv2dShape&);                                     \
  template void conv2d_forward_naive<T>(T*, const T*, const T*, const T*, const Conv2dShape&);  \
  template void conv2d_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*,                 \
                                   const Conv2dShape&);                                          \
  template void conv2d_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*,               \
                                         const Conv2dShape&);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
