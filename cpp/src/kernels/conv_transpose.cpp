// Transposed convolution, NCHW: the adjoint of conv2d's input gradient.
// The forward multiplies Wᵀ by each image (every input pixel's contribution
// to every tap) and scatters the product into the output by col2im; the
// backward is a plain conv2d of dy (im2col + GEMM) for dx, and the product of
// x with those same columns for dW. Geometry and threading: conv_geometry.hpp.
// dW is accumulated directly with one image chunk, in per-chunk partials
// added in chunk order with several.
#include <algorithm>

#include "backend/gemm.hpp"
#include "backend/parallel.hpp"
#include "corenn/kernels/conv.hpp"
#include "kernels/conv_geometry.hpp"

namespace corenn {

using detail::gemm;
using detail::Trans;
using namespace conv;

namespace {

// dst: (n,) += Σ_c parts[c]: (n,) for c in [0, chunks), added in chunk order.
template <typename T>
void add_partials(T* dst, const T* parts, int chunks, int64_t n) {
  detail::parallel_for(0, n, detail::kGrain, [=](int64_t lo, int64_t hi, int) {
    for (int c = 0; c < chunks; ++c) {
      const T* __restrict part = parts + c * n;
      T* __restrict d = dst;
      for (int64_t k = lo; k < hi; ++k) d[k] += part[k];
    }
  });
}

}  // namespace

// ------------------------------------------------------------------ forward

int64_t conv_transpose2d_scratch_size(const ConvTranspose2dShape& s) {
  const Geometry g = transpose_geometry(s);
  const int chunks = image_chunks(s.batch);
  const int64_t cols = g.pointwise() ? 0 : g.col_rows() * g.positions();
  const int64_t w_size = s.in_channels * s.out_channels * s.kernel_h * s.kernel_w;
  return chunks * cols + (chunks > 1 ? chunks * w_size : 0);
}

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
                         detail::grain_for(plane),
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

// ------------------------------------------------------------------ backward

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
