// 2-D convolution and transposed convolution, NCHW.
//
// Fast path: im2col + GEMM. For one image, the column matrix holds, for every
// (input channel c, kernel row p, kernel column q) a row of length OH·OW with
// the input pixel each output position reads through that kernel tap (0 in the
// padding). The convolution of group g is then one product
//   y_g (C_out/groups, OH·OW) = W_g (C_out/groups, K) · cols_g (K, OH·OW),
// K = C_in/groups · KH · KW, and the groups' rows of cols are contiguous.
//
// Threading: with at least as many images as threads, the images are split
// across threads (parallel_for), each chunk owning a slice of the scratch, and
// the GEMMs inside run single-threaded (gemm.hpp does that inside a region).
// With fewer images than threads (batch-1 inference), images run one after
// the other and each GEMM splits itself across the threads.
//
// Determinism of dW: in the split-over-images case every chunk accumulates its
// images into its OWN dW partial (in scratch), and the partials are then added
// into dW in chunk order. The split depends only on (batch, thread count), so
// a given thread count always gives bitwise the same dW.
//
// Depthwise convolution (groups == C_in) has K = KH·KW: its GEMMs would be
// tiny matrix-vector products, so it has a direct loop kernel instead.
#include "corenn/kernels/conv.hpp"

#include <algorithm>
#include <string>

#include "corenn/error.hpp"
#include "gemm.hpp"
#include "parallel.hpp"

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
  void valid_cols(int64_t off, int64_t& j0, int64_t& j1) const {
    j0 = std::max<int64_t>(0, ceil_div(-off, sw));
    j1 = std::min<int64_t>(ow, ceil_div(width - off, sw));
    if (j1 < j0) j1 = j0;
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
          s.pad_h, s.pad_w, 1, 1, s.height, s.width};
}

// cols: (C·KH·KW, OH·OW) written; img: (C, H, W).
template <typename T>
void im2col(T* __restrict cols, const T* __restrict img, const Geometry& g) {
  const int64_t P = g.positions();
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t p = 0; p < g.kh; ++p)
      for (int64_t q = 0; q < g.kw; ++q) {
        T* row = cols + ((c * g.kh + p) * g.kw + q) * P;
        const int64_t off = q * g.dw - g.pl;
        int64_t j0, j1;
        g.valid_cols(off, j0, j1);
        for (int64_t i = 0; i < g.oh; ++i) {
          T* out = row + i * g.ow;
          const int64_t ih = i * g.sh + p * g.dh - g.pt;
          if (ih < 0 || ih >= g.height) {
            std::fill(out, out + g.ow, T(0));
            continue;
          }
          const T* in = img + (c * g.height + ih) * g.width;  // in[j·sw + off] is valid for j in [j0, j1)
          std::fill(out, out + j0, T(0));
          if (g.sw == 1)
            for (int64_t j = j0; j < j1; ++j) out[j] = in[j + off];
          else
            for (int64_t j = j0; j < j1; ++j) out[j] = in[j * g.sw + off];
          std::fill(out + j1, out + g.ow, T(0));
        }
      }
}

// img: (C, H, W) written (zeroed, then every column entry added back to the
// pixel it was read from); cols: (C·KH·KW, OH·OW).
template <typename T>
void col2im(T* __restrict img, const T* __restrict cols, const Geometry& g) {
  std::fill(img, img + g.channels * g.height * g.width, T(0));
  const int64_t P = g.positions();
  for (int64_t c = 0; c < g.channels; ++c)
    for (int64_t p = 0; p < g.kh; ++p)
      for (int64_t q = 0; q < g.kw; ++q) {
        const T* row = cols + ((c * g.kh + p) * g.kw + q) * P;
        const int64_t off = q * g.dw - g.pl;
        int64_t j0, j1;
        g.valid_cols(off, j0, j1);
        for (int64_t i = 0; i < g.oh; ++i) {
          const int64_t ih = i * g.sh + p * g.dh - g.pt;
          if (ih < 0 || ih >= g.height) continue;
          T* out = img + (c * g.height + ih) * g.width;
          const T* in = row + i * g.ow;
          if (g.sw == 1)
            for (int64_t j = j0; j < j1; ++j) out[j + off] += in[j];
          else
            for (int64_t j = j0; j < j1; ++j) out[j * g.sw + off] += in[j];
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

// y: (N, C, P) with every plane set to b[c] (or 0): the GEMMs then add with beta = 1.
template <typename T>
void fill_bias(T* y, const T* b, int64_t N, int64_t C, int64_t P) {
  detail::parallel_for(0, N * C, std::max<int64_t>(1, kGrain / std::max<int64_t>(1, P)),
                       [=](int64_t lo, int64_t hi, int) {
                         for (int64_t nc = lo; nc < hi; ++nc)
                           std::fill(y + nc * P, y + (nc + 1) * P, b ? b[nc % C] : T(0));
                       });
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

bool is_depthwise(const Conv2dShape& s) { return s.groups == s.in_channels && s.groups > 1; }

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
  const Geometry g = conv_geometry(s);
  const int chunks = image_chunks(s.batch);
  const int64_t cols = g.pointwise() ? 0 : g.col_rows() * g.positions();
  // Per chunk: its column matrix; with several chunks also its dW partial.
  const int64_t w_size = s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w;
  return chunks * cols + (chunks > 1 ? chunks * w_size : 0);
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
  const Geometry g = conv_geometry(s);
  const int64_t P = g.positions(), img = s.in_channels * s.height * s.width;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t K = cin_g * g.kh * g.kw;  // columns of W_g, rows of cols_g
  const bool pointwise = g.pointwise();
  const int64_t col_size = pointwise ? 0 : g.col_rows() * P;
  fill_bias(y, b, s.batch, s.out_channels, P);
  const int chunks = image_chunks(s.batch);
  for_images(s.batch, chunks, [&](int64_t lo, int64_t hi, int chunk) {
    T* cols = scratch + chunk * col_size;  // (C_in·KH·KW, OH·OW), this chunk's own
    for (int64_t n = lo; n < hi; ++n) {
      const T* xn = x + n * img;
      if (!pointwise) im2col(cols, xn, g);
      const T* c = pointwise ? xn : cols;
      T* yn = y + n * s.out_channels * P;
      for (int64_t grp = 0; grp < s.groups; ++grp)
        gemm<T>(Trans::no, Trans::no, cout_g, P, K, T(1), W + grp * cout_g * K, K, c + grp * K * P,
                P, T(1), yn + grp * cout_g * P, P);
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
          T acc = 0;
          for (int64_t n = 0; n < s.batch; ++n) {
            const T* dyp = dy + (n * s.out_channels + o) * P;
            const T* xp = x + (n * s.in_channels + c) * HW;
            for (int64_t i = 0; i < g.oh; ++i) {
              const int64_t ih = i * g.sh + p * g.dh - g.pt;
              if (ih < 0 || ih >= g.height) continue;
              const T* xr = xp + ih * g.width;
              const T* dyr = dyp + i * g.ow;
              for (int64_t j = j0; j < j1; ++j) acc += dyr[j] * xr[j * g.sw + off];
            }
          }
          dW[(o * g.kh + p) * g.kw + q] += acc;
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
  const Geometry g = conv_geometry(s);
  const int64_t P = g.positions(), img = s.in_channels * s.height * s.width;
  const int64_t cin_g = s.in_channels / s.groups, cout_g = s.out_channels / s.groups;
  const int64_t K = cin_g * g.kh * g.kw;
  const int64_t w_size = s.out_channels * K;
  const bool pointwise = g.pointwise();
  const int64_t col_size = pointwise ? 0 : g.col_rows() * P;
  const int chunks = image_chunks(s.batch);
  T* partials = scratch + chunks * col_size;  // (chunks, C_out, K) when chunks > 1
  for_images(s.batch, chunks, [&](int64_t lo, int64_t hi, int chunk) {
    T* cols = scratch + chunk * col_size;  // (C_in·KH·KW, OH·OW)
    T* dWc = chunks > 1 ? partials + chunk * w_size : dW;
    for (int64_t n = lo; n < hi; ++n) {
      const T* xn = x + n * img;
      const T* dyn = dy + n * s.out_channels * P;  // (C_out, P)
      // A chunk's partial starts from its first image (beta 0); dW itself accumulates.
      const T beta = (chunks > 1 && n == lo) ? T(0) : T(1);
      // dW_g += dy_g (C_out/g, P) · cols_gᵀ (P, K)
      if (!pointwise) im2col(cols, xn, g);
      const T* c = pointwise ? xn : cols;
      for (int64_t grp = 0; grp < s.groups; ++grp)
        gemm<T>(Trans::no, Trans::yes, cout_g, K, P, T(1), dyn + grp * cout_g * P, P,
                c + grp * K * P, P, beta, dWc + grp * cout_g * K, K);
      if (!dx) continue;
      // dcols_g (K, P) = W_gᵀ (K, C_out/g) · dy_g, then folded back onto dx.
      // Pointwise: dcols is dx itself. Otherwise it reuses cols (x's columns are done).
      T* dxn = dx + n * img;
      T* dc = pointwise ? dxn : cols;
      for (int64_t grp = 0; grp < s.groups; ++grp)
        gemm<T>(Trans::yes, Trans::no, K, P, cout_g, T(1), W + grp * cout_g * K, K,
                dyn + grp * cout_g * P, P, T(0), dc + grp * K * P, P);
      if (!pointwise) col2im(dxn, cols, g);
    }
  });
  if (chunks > 1) add_partials(dW, partials, chunks, w_size);
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
  return (height - 1) * stride_h - 2 * pad_h + kernel_h + output_pad_h;
}
int64_t ConvTranspose2dShape::out_w() const {
  return (width - 1) * stride_w - 2 * pad_w + kernel_w + output_pad_w;
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
  const int64_t min_pad = std::min(s.pad_h, s.pad_w);
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
      if (!pointwise) col2im(yn, cols, g);
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
                const int64_t oh = h * s.stride_h + p - s.pad_h, ow = w * s.stride_w + q - s.pad_w;
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
      if (!pointwise) im2col(cols, dyn, g);
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
                const int64_t oh = h * s.stride_h + p - s.pad_h, ow = w * s.stride_w + q - s.pad_w;
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
