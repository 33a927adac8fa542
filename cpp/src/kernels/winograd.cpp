// Winograd convolution F(2×2, 3×3) (winograd.hpp), NCHW, float32.
//
// The 1-D algorithm F(2, 3) (Lavin & Gray 2016) computes the correlation
// y_i = Σ_k d_{i+k} g_k, i = 0, 1, of a 4-sample input d with a 3-tap
// filter g as y = Aᵀ [(G g) ⊙ (Bᵀ d)] with
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//   G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//   Aᵀ = [1 1 1 0; 0 1 −1 −1]
// and nested in 2-D: Y (2×2) = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A for a 4×4 input tile.
// Over channels, the element-wise product at each of the 16 points ξ becomes
// a matrix product: M[ξ] (C_out, tiles) = U[ξ] (C_out, C_in) · V[ξ] (C_in, tiles)
// with U = G g Gᵀ (per filter, once per call) and V = Bᵀ d B (per tile).
//
// The three passes are all this one mechanism:
// - forward: x's tiles against W;
// - input gradient: with stride 1, dx is the 3×3 correlation of dy, padded by
//   2 − pad (negative: cropped), with the flipped kernel, channels transposed;
// - weight gradient: by the transposition principle, Σ_ij dy_ij (Aᵀ X A)_ij =
//   ⟨A dy Aᵀ, X⟩, so dW[o, c] = Gᵀ [Σ_tiles (A dy_t Aᵀ) ⊙ (Bᵀ d_t B)] G:
//   the same tiles of x (V), dy's 2×2 tiles transformed by A (Z), and the sum
//   over tiles a GEMM whose inner dimension is the tiles,
//   S[ξ] (C_out, C_in) += Z[ξ] (C_out, tiles) · V[ξ]ᵀ (tiles, C_in).
//
// Threading as in conv2d.cpp (conv_geometry.hpp): images split across
// threads, each chunk with its own slice of the scratch and single-threaded
// GEMMs; dW's transform-domain sums S are per-chunk partials added in chunk
// order, so a given thread count always gives the same bits.
#include "corenn/kernels/winograd.hpp"

#include <algorithm>
#include <atomic>
#include <string>

#include "backend/gemm.hpp"
#include "backend/parallel.hpp"
#include "corenn/error.hpp"
#include "kernels/conv_epilogue.hpp"
#include "kernels/conv_geometry.hpp"

namespace corenn {

using detail::gemm;
using detail::Trans;
using namespace conv;

// ------------------------------------------------------------------ the setting

namespace {

enum class Algorithm { automatic, gemm, winograd };
std::atomic<Algorithm> g_algorithm{Algorithm::automatic};

constexpr int kPoints = 16;  // ξ: the 4×4 transform domain

}  // namespace

void set_conv_algorithm(const std::string& algorithm) {
  if (algorithm == "auto") g_algorithm = Algorithm::automatic;
  else if (algorithm == "gemm") g_algorithm = Algorithm::gemm;
  else if (algorithm == "winograd") g_algorithm = Algorithm::winograd;
  else
    throw ValueError("set_conv_algorithm: algorithm must be 'auto', 'gemm' or 'winograd', got '" +
                     algorithm + "'");
}

const char* get_conv_algorithm() {
  switch (g_algorithm.load()) {
    case Algorithm::gemm: return "gemm";
    case Algorithm::winograd: return "winograd";
    default: return "auto";
  }
}

bool winograd_applies(const Conv2dShape& s) {
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 &&
         s.dilation_w == 1 && s.groups == 1;
}

// "auto": Winograd where it measured faster than im2col + GEMM (CPU time
// per call on one thread of a Zen 4 core, batch 16, min of 3; forward and
// forward+backward; speed-ups of Winograd):
//   channels   8×8          16×16        32×32
//   8→8        0.44  0.34   0.47  0.34   0.52  0.54
//   16→16      0.54  0.48   0.54  0.52   1.35  1.16
//   32→32      0.64  0.63   1.07  0.89   1.95  1.35
//   64→64      0.96  0.89   1.38  1.20   1.67  1.33
//   128→128    1.10  1.11   1.41  1.39
//   3→32, 16→32 (32×32): 0.77 0.38, 1.37 1.21; 32→64 (16×16): 1.23 1.12; 256→256 (4×4): 0.76 0.99.
// Its GEMMs have C_in as inner dimension and the transforms cost per channel
// and pixel, so it needs both channels (>= 16) and tiles: 32×32 outputs, or
// 16×16 with >= 32 and >= 64 channels. With fewer images than threads GEMM
// wins (batch 1, 2 threads: 32→32 on 32×32 0.59, 64→64 on 16×16 0.50): its
// im2col splits each image's rows across threads, Winograd only its GEMMs.
// The backward's speed-ups follow the forward's, a little smaller: one rule.
bool winograd_selected(const Conv2dShape& s) {
  if (!winograd_applies(s)) return false;
  const Algorithm a = g_algorithm.load();
  if (a != Algorithm::automatic) return a == Algorithm::winograd;
  const int64_t lo = std::min(s.in_channels, s.out_channels), hi = std::max(s.in_channels, s.out_channels);
  const int64_t P = s.out_h() * s.out_w();
  return s.batch >= detail::omp_max_threads() && lo >= 16 && (P >= 1024 || (lo >= 32 && hi >= 64 && P >= 256));
}

// ------------------------------------------------------------------ tiling

namespace {

// See Tiling::block_rows: 1 MB of float. Against 2^16 and 2^20 elements
// (CPU time, one thread, Zen 4): 64→64 channels on 32×32 images forward+backward
// 58.3 ms at 2^18, 62.5 at 2^16, 61.2 at 2^20; 32→32 channels 40.2, 47.9, 57.3.
constexpr int64_t kBlockElements = int64_t(1) << 18;

// One 3×3 stride-1 correlation of an image (in_c, in_h, in_w) into
// (out_c, out_h, out_w), output row i reading input rows i − pt … i − pt + 2
// (pt, pl may be negative: the input gradient's crop).
struct Tiling {
  int64_t in_c, in_h, in_w, out_c, out_h, out_w, pt, pl;
  int64_t tiles_h() const { return (out_h + 1) / 2; }
  int64_t tiles_w() const { return (out_w + 1) / 2; }
  int64_t row_len() const { return 2 * tiles_w() + 2; }  // an input tile row, padded
  // Tile rows per block, counted across the images of a chunk (small images
  // share a block, so each GEMM has enough columns): the block's V and M
  // (16 points × channels × tiles) stay within kBlockElements, bounding the
  // scratch for large images.
  int64_t block_rows(int64_t batch) const {
    return std::clamp<int64_t>(kBlockElements / (kPoints * (in_c + out_c) * tiles_w()), 1, batch * tiles_h());
  }
  int64_t block_elements(int64_t batch) const { return kPoints * (in_c + out_c) * block_rows(batch) * tiles_w(); }
};

// Runs piece(n, tr0, tr1, col0) over the block [gr0, gr1) of tile rows
// numbered across images (image n's tile row tr is n·tiles_h + tr): image n's
// tile rows [tr0, tr1), whose tiles take the block's columns from col0 on.
template <typename Piece>
void for_pieces(const Tiling& g, int64_t gr0, int64_t gr1, Piece&& piece) {
  const int64_t th = g.tiles_h();
  for (int64_t gr = gr0; gr < gr1;) {
    const int64_t n = gr / th, tr0 = gr % th, tr1 = std::min(th, tr0 + (gr1 - gr));
    piece(n, tr0, tr1, (gr - gr0) * g.tiles_w());
    gr += tr1 - tr0;
  }
}

Tiling forward_tiling(const Conv2dShape& s) {
  return {s.in_channels, s.height, s.width, s.out_channels, s.out_h(), s.out_w(), s.pad_top, s.pad_left};
}

// dx (C_in, H, W) from dy (C_out, OH, OW) padded by 2 − pad.
Tiling input_grad_tiling(const Conv2dShape& s) {
  return {s.out_channels, s.out_h(), s.out_w(), s.in_channels, s.height, s.width, 2 - s.pad_top,
          2 - s.pad_left};
}

// Per-chunk row buffers: padded input rows and their transforms.
constexpr int64_t kRowBuffers = 8;

struct WinogradPlan {
  int chunks;
  int64_t u_size;     // the transformed filters: 16 · C_out · C_in
  int64_t slot;       // per chunk: a block's V and M, and the row buffers
  int64_t slots_offset() const { return u_size; }
  int64_t partials_offset() const { return u_size + chunks * slot; }  // dW: a 16·C_out·C_in sum per chunk
  int64_t scratch_size() const { return partials_offset() + chunks * u_size; }
};

WinogradPlan winograd_plan(const Conv2dShape& s) {
  const Tiling f = forward_tiling(s), b = input_grad_tiling(s);
  WinogradPlan pl;
  pl.chunks = image_chunks(s.batch);
  pl.u_size = kPoints * s.out_channels * s.in_channels;
  pl.slot = std::max(f.block_elements(s.batch), b.block_elements(s.batch)) +
            kRowBuffers * std::max(f.row_len(), b.row_len());
  return pl;
}

// rows[a] (a = 0 … n−1): input row r0 + a of plane (in_h, in_w), laid out
// len wide with input column j − pl at j, zero outside the image.
void padded_rows(float* rows, int n, int64_t len, const float* plane, const Tiling& g, int64_t r0) {
  const int64_t j0 = std::clamp<int64_t>(g.pl, 0, len), j1 = std::clamp<int64_t>(g.pl + g.in_w, j0, len);
  for (int a = 0; a < n; ++a) {
    float* row = rows + a * len;
    const int64_t r = r0 + a;
    if (r < 0 || r >= g.in_h) {
      std::fill(row, row + len, 0.0f);
      continue;
    }
    std::fill(row, row + j0, 0.0f);
    std::copy(plane + r * g.in_w + (j0 - g.pl), plane + r * g.in_w + (j1 - g.pl), row + j0);
    std::fill(row + j1, row + len, 0.0f);
  }
}

// V[ξ·C·T + c·T + t] = (Bᵀ d B)[ξ] of the 4×4 input tile of tile rows
// [tr0, tr1) (t = col0 + (tr − tr0)·tiles_w + tc), for the C = g.in_c channels of img.
// Bᵀ first combines the four rows across the whole row (contiguous,
// vectorised), then B the four columns of each tile.
void input_transform(float* __restrict V, int64_t T, int64_t col0, const float* img, const Tiling& g, int64_t tr0,
                     int64_t tr1, float* buf) {
  const int64_t len = g.row_len(), tw = g.tiles_w(), ld = g.in_c * T;
  float* d = buf;              // 4 padded input rows
  float* bt = buf + 4 * len;   // Bᵀ d: 4 rows
  for (int64_t c = 0; c < g.in_c; ++c) {
    const float* plane = img + c * g.in_h * g.in_w;
    for (int64_t tr = tr0; tr < tr1; ++tr) {
      padded_rows(d, 4, len, plane, g, 2 * tr - g.pt);
      const float *d0 = d, *d1 = d + len, *d2 = d + 2 * len, *d3 = d + 3 * len;
      float *b0 = bt, *b1 = bt + len, *b2 = bt + 2 * len, *b3 = bt + 3 * len;
      for (int64_t j = 0; j < len; ++j) {
        b0[j] = d0[j] - d2[j];
        b1[j] = d1[j] + d2[j];
        b2[j] = d2[j] - d1[j];
        b3[j] = d1[j] - d3[j];
      }
      float* v = V + c * T + col0 + (tr - tr0) * tw;
      for (int k = 0; k < 4; ++k) {
        const float* bk = bt + k * len;
        float* __restrict v0 = v + (4 * k) * ld;
        float* __restrict v1 = v + (4 * k + 1) * ld;
        float* __restrict v2 = v + (4 * k + 2) * ld;
        float* __restrict v3 = v + (4 * k + 3) * ld;
        for (int64_t t = 0; t < tw; ++t) {
          const float e0 = bk[2 * t], e1 = bk[2 * t + 1], e2 = bk[2 * t + 2], e3 = bk[2 * t + 3];
          v0[t] = e0 - e2;
          v1[t] = e1 + e2;
          v2[t] = e2 - e1;
          v3[t] = e1 - e3;
        }
      }
    }
  }
}

// y's rows of tile rows [tr0, tr1), C = g.out_c channels of (out_h, out_w),
// written: Aᵀ m A of M[ξ·C·T + o·T + t], t = col0 + (tr − tr0)·tiles_w + tc,
// through the epilogue e (its residual, when given, is this image's, laid out as y).
void output_transform(float* y, const float* __restrict M, int64_t T, int64_t col0,
                      const ConvEpilogue<float>& e, const Tiling& g, int64_t tr0, int64_t tr1, float* buf) {
  const float* b = e.bias;
  const int64_t tw = g.tiles_w(), ld = g.out_c * T, wide = 2 * tw;
  float* out = buf;  // two output rows, 2·tiles_w wide
  for (int64_t o = 0; o < g.out_c; ++o) {
    const float bias = b ? b[o] : 0.0f;
    for (int64_t tr = tr0; tr < tr1; ++tr) {
      const float* m = M + o * T + col0 + (tr - tr0) * tw;
      for (int64_t t = 0; t < tw; ++t) {
        float s0[4], s1[4];
        for (int l = 0; l < 4; ++l) {
          const float m0 = m[l * ld + t], m1 = m[(4 + l) * ld + t], m2 = m[(8 + l) * ld + t],
                      m3 = m[(12 + l) * ld + t];
          s0[l] = m0 + m1 + m2;
          s1[l] = m1 - m2 - m3;
        }
        out[2 * t] = s0[0] + s0[1] + s0[2] + bias;
        out[2 * t + 1] = s0[1] - s0[2] - s0[3] + bias;
        out[wide + 2 * t] = s1[0] + s1[1] + s1[2] + bias;
        out[wide + 2 * t + 1] = s1[1] - s1[2] - s1[3] + bias;
      }
      for (int a = 0; a < 2 && 2 * tr + a < g.out_h; ++a) {
        const int64_t at = o * g.out_h * g.out_w + (2 * tr + a) * g.out_w;
        epilogue_span(y + at, out + a * wide, 0.0f, e.residual ? e.residual + at : nullptr, g.out_w, e.relu);
      }
    }
  }
}

// Z[ξ·C·T + o·T + t] = (A dy_t Aᵀ)[ξ] of dy's 2×2 tiles (zero beyond the
// output), tile rows [tr0, tr1) at t = col0 + (tr − tr0)·tiles_w + tc, C =
// g.out_c channels of dy (out_h, out_w); A = [1 0; 1 1; 1 −1; 0 −1].
void grad_transform(float* __restrict Z, int64_t T, int64_t col0, const float* dy, const Tiling& g, int64_t tr0,
                    int64_t tr1, float* buf) {
  const int64_t tw = g.tiles_w(), ld = g.out_c * T, wide = 2 * tw;
  float* r = buf;              // two dy rows, 2·tiles_w wide
  float* e = buf + 2 * wide;   // A applied down the rows: 4 rows
  for (int64_t o = 0; o < g.out_c; ++o) {
    const float* plane = dy + o * g.out_h * g.out_w;
    for (int64_t tr = tr0; tr < tr1; ++tr) {
      for (int a = 0; a < 2; ++a) {
        float* row = r + a * wide;
        const int64_t i = 2 * tr + a;
        if (i < g.out_h) {
          std::copy(plane + i * g.out_w, plane + (i + 1) * g.out_w, row);
          std::fill(row + g.out_w, row + wide, 0.0f);
        } else {
          std::fill(row, row + wide, 0.0f);
        }
      }
      for (int64_t j = 0; j < wide; ++j) {
        const float r0 = r[j], r1 = r[wide + j];
        e[j] = r0;
        e[wide + j] = r0 + r1;
        e[2 * wide + j] = r0 - r1;
        e[3 * wide + j] = -r1;
      }
      float* z = Z + o * T + col0 + (tr - tr0) * tw;
      for (int k = 0; k < 4; ++k) {
        const float* ek = e + k * wide;
        float* __restrict z0 = z + (4 * k) * ld;
        float* __restrict z1 = z + (4 * k + 1) * ld;
        float* __restrict z2 = z + (4 * k + 2) * ld;
        float* __restrict z3 = z + (4 * k + 3) * ld;
        for (int64_t t = 0; t < tw; ++t) {
          const float a0 = ek[2 * t], a1 = ek[2 * t + 1];
          z0[t] = a0;
          z1[t] = a0 + a1;
          z2[t] = a0 - a1;
          z3[t] = -a1;
        }
      }
    }
  }
}

// U[ξ·R·C + r·C + c] = (G g Gᵀ)[ξ], R × C filters: the forward's g = W[r, c]
// (R = C_out, C = C_in), or, flip, the input gradient's g = W[c, r] rotated
// by 180° (R = C_in, C = C_out).
void filter_transform(float* U, const float* W, int64_t R, int64_t C, bool flip) {
  detail::parallel_for(0, R, detail::grain_for(C * 64), [=](int64_t lo, int64_t hi, int) {
    for (int64_t r = lo; r < hi; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const float* w = flip ? W + (c * R + r) * 9 : W + (r * C + c) * 9;
        float g[3][3];
        for (int p = 0; p < 3; ++p)
          for (int q = 0; q < 3; ++q) g[p][q] = flip ? w[(2 - p) * 3 + (2 - q)] : w[p * 3 + q];
        float gg[4][3];  // G g
        for (int q = 0; q < 3; ++q) {
          gg[0][q] = g[0][q];
          gg[1][q] = 0.5f * (g[0][q] + g[1][q] + g[2][q]);
          gg[2][q] = 0.5f * (g[0][q] - g[1][q] + g[2][q]);
          gg[3][q] = g[2][q];
        }
        for (int k = 0; k < 4; ++k) {
          const float u[4] = {gg[k][0], 0.5f * (gg[k][0] + gg[k][1] + gg[k][2]),
                              0.5f * (gg[k][0] - gg[k][1] + gg[k][2]), gg[k][2]};
          for (int l = 0; l < 4; ++l) U[(4 * k + l) * R * C + r * C + c] = u[l];
        }
      }
  });
}

// dW[o, c] (3×3) += Gᵀ S[o, c] G, S[ξ·C_out·C_in + o·C_in + c];
// Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].
void filter_grad_transform(float* dW, const float* S, int64_t Cout, int64_t Cin) {
  const int64_t n = Cout * Cin;
  detail::parallel_for(0, n, detail::grain_for(64), [=](int64_t lo, int64_t hi, int) {
    for (int64_t oc = lo; oc < hi; ++oc) {
      float s[4][4];
      for (int xi = 0; xi < kPoints; ++xi) s[xi / 4][xi % 4] = S[xi * n + oc];
      float t[3][4];  // Gᵀ S
      for (int l = 0; l < 4; ++l) {
        t[0][l] = s[0][l] + 0.5f * (s[1][l] + s[2][l]);
        t[1][l] = 0.5f * (s[1][l] - s[2][l]);
        t[2][l] = 0.5f * (s[1][l] + s[2][l]) + s[3][l];
      }
      float* w = dW + oc * 9;
      for (int p = 0; p < 3; ++p) {
        w[p * 3] += t[p][0] + 0.5f * (t[p][1] + t[p][2]);
        w[p * 3 + 1] += 0.5f * (t[p][1] - t[p][2]);
        w[p * 3 + 2] += 0.5f * (t[p][1] + t[p][2]) + t[p][3];
      }
    }
  });
}

// y (N, out_c, out_h, out_w) written: the correlation of x (N, in_c, in_h,
// in_w) with the transformed filters U (16, out_c, in_c), block of tile rows
// by block, through the epilogue e.
void correlate(float* y, float* scratch, const WinogradPlan& pl, const float* x, const float* U,
               const ConvEpilogue<float>& e, const Tiling& g, int64_t batch) {
  const int64_t rows = g.block_rows(batch), th = g.tiles_h(), tw = g.tiles_w();
  const int64_t in_img = g.in_c * g.in_h * g.in_w, out_img = g.out_c * g.out_h * g.out_w;
  for_images(batch, pl.chunks, [&](int64_t lo, int64_t hi, int chunk) {
    float* slot = scratch + pl.slots_offset() + chunk * pl.slot;
    for (int64_t gr0 = lo * th; gr0 < hi * th; gr0 += rows) {
      const int64_t gr1 = std::min(hi * th, gr0 + rows), T = (gr1 - gr0) * tw;
      float* V = slot;
      float* M = V + kPoints * g.in_c * T;
      float* buf = M + kPoints * g.out_c * T;
      for_pieces(g, gr0, gr1, [&](int64_t n, int64_t tr0, int64_t tr1, int64_t col0) {
        input_transform(V, T, col0, x + n * in_img, g, tr0, tr1, buf);
      });
      for (int xi = 0; xi < kPoints; ++xi)
        gemm<float>(Trans::no, Trans::no, g.out_c, T, g.in_c, 1.0f, U + xi * g.out_c * g.in_c, g.in_c,
                    V + xi * g.in_c * T, T, 0.0f, M + xi * g.out_c * T, T);
      for_pieces(g, gr0, gr1, [&](int64_t n, int64_t tr0, int64_t tr1, int64_t col0) {
        ConvEpilogue<float> image = e;
        if (e.residual) image.residual = e.residual + n * out_img;
        output_transform(y + n * out_img, M, T, col0, image, g, tr0, tr1, buf);
      });
    }
  });
}

}  // namespace

int64_t winograd_scratch_size(const Conv2dShape& s) { return winograd_plan(s).scratch_size(); }

// ------------------------------------------------------------------ forward

void winograd_conv2d_forward(float* y, float* scratch, const float* x, const float* W,
                             const ConvEpilogue<float>& e, const Conv2dShape& s) {
  const WinogradPlan pl = winograd_plan(s);
  float* U = scratch;
  filter_transform(U, W, s.out_channels, s.in_channels, false);
  correlate(y, scratch, pl, x, U, e, forward_tiling(s), s.batch);
}

void winograd_conv2d_forward(float* y, float* scratch, const float* x, const float* W, const float* b,
                             const Conv2dShape& s) {
  ConvEpilogue<float> e;
  e.bias = b;
  winograd_conv2d_forward(y, scratch, x, W, e, s);
}

// ------------------------------------------------------------------ backward

void winograd_conv2d_backward(float* dx, float* dW, float* db, float* scratch, const float* dy,
                              const float* x, const float* W, const Conv2dShape& s) {
  const WinogradPlan pl = winograd_plan(s);
  // dW: x's tiles (V, C_in) and dy's (Z, C_out) over the output's tiling.
  const Tiling g = forward_tiling(s);
  const int64_t rows = g.block_rows(s.batch), th = g.tiles_h(), tw = g.tiles_w();
  const int64_t Cin = s.in_channels, Cout = s.out_channels;
  const int64_t in_img = Cin * s.height * s.width, out_img = Cout * g.out_h * g.out_w;
  float* partials = scratch + pl.partials_offset();
  for_images(s.batch, pl.chunks, [&](int64_t lo, int64_t hi, int chunk) {
    float* slot = scratch + pl.slots_offset() + chunk * pl.slot;
    float* S = partials + chunk * pl.u_size;
    for (int64_t gr0 = lo * th; gr0 < hi * th; gr0 += rows) {
      const int64_t gr1 = std::min(hi * th, gr0 + rows), T = (gr1 - gr0) * tw;
      float* V = slot;
      float* Z = V + kPoints * Cin * T;
      float* buf = Z + kPoints * Cout * T;
      for_pieces(g, gr0, gr1, [&](int64_t n, int64_t tr0, int64_t tr1, int64_t col0) {
        input_transform(V, T, col0, x + n * in_img, g, tr0, tr1, buf);
        grad_transform(Z, T, col0, dy + n * out_img, g, tr0, tr1, buf);
      });
      const float beta = gr0 == lo * th ? 0.0f : 1.0f;  // the partial starts at its first product
      for (int xi = 0; xi < kPoints; ++xi)
        gemm<float>(Trans::no, Trans::yes, Cout, Cin, T, 1.0f, Z + xi * Cout * T, T, V + xi * Cin * T, T, beta,
                    S + xi * Cout * Cin, Cin);
    }
  });
  for (int c = 1; c < pl.chunks; ++c) {
    const float* part = partials + c * pl.u_size;
    for (int64_t k = 0; k < pl.u_size; ++k) partials[k] += part[k];
  }
  filter_grad_transform(dW, partials, Cout, Cin);
  if (dx) {
    float* U = scratch;
    filter_transform(U, W, Cin, Cout, true);
    correlate(dx, scratch, pl, dy, U, ConvEpilogue<float>{}, input_grad_tiling(s), s.batch);
  }
  if (db) bias_grad(db, dy, s.batch, Cout, g.out_h * g.out_w);
}

}  // namespace corenn
