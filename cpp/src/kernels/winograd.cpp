// Winograd convolution F(m×m, 3×3), m = 2 or 4 (winograd.hpp), NCHW, float32.
//
// The 1-D algorithm F(m, 3) (Lavin & Gray 2016) computes the correlation
// y_i = Σ_k d_{i+k} g_k, i = 0 … m−1, of an α = m + 2 sample input d with a
// 3-tap filter g as y = Aᵀ [(G g) ⊙ (Bᵀ d)], and nested in 2-D
//   Y (m×m) = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A    for an α×α input tile d,
// α² multiplications where the direct method takes 9·m². The matrices are the
// paper's, from the interpolation points 0, ±1, ∞ (F2) and 0, ±1, ±2, ∞ (F4):
// struct F2 and F4 below write each as its 1-D map.
// Over channels, the element-wise product at each of the α² points ξ becomes
// a matrix product: M[ξ] (C_out, tiles) = U[ξ] (C_out, C_in) · V[ξ] (C_in, tiles)
// with U = G g Gᵀ (per filter, once per call) and V = Bᵀ d B (per tile).
//
// The three passes are all this one mechanism:
// - forward: x's tiles against W;
// - input gradient: with stride 1, dx is the 3×3 correlation of dy, padded by
//   2 − pad (negative: cropped), with the flipped kernel, channels transposed;
// - weight gradient: by the transposition principle, Σ_ij dy_ij (Aᵀ X A)_ij =
//   ⟨A dy Aᵀ, X⟩, so dW[o, c] = Gᵀ [Σ_tiles (A dy_t Aᵀ) ⊙ (Bᵀ d_t B)] G:
//   the same tiles of x (V), dy's m×m tiles transformed by A (Z), and the sum
//   over tiles a GEMM whose inner dimension is the tiles,
//   S[ξ] (C_out, C_in) += Z[ξ] (C_out, tiles) · V[ξ]ᵀ (tiles, C_in).
//
// Each transform is applied first down the α rows, then across each tile's
// α columns, both vectorised over a chunk of up to kChunkTiles tiles, several
// tile rows of an image at once (map_columns below).
//
// Threading (parallel.hpp's fixed splits, so a given thread count always
// gives the same bits), two ways:
// - at least one image per thread: the tile rows of all images, numbered
//   image after image, are split into one contiguous range per thread; each
//   range owns a slice of the scratch and runs its GEMMs single-threaded, and
//   dW's transform-domain sums S are per-range partials added in range order;
// - fewer images than threads (batch-1 inference), a correlation (forward,
//   input gradient) whose threads get at least kOwnTiles tiles each: the
//   same per-thread ranges, each thread transforming, multiplying and
//   transforming back its own tile rows in one fork/join, the products by
//   own_product (a register-blocked kernel: BLAS calls a few tiles wide
//   once ran F4 on 64→64 channels, 16×16, 3× slower than GEMM);
// - fewer images than threads otherwise (the weight gradient, tiny images):
//   block by block, the transforms split the block's tile rows across the
//   threads and the α² GEMMs are shared out by point ξ, each with all the
//   block's tiles as columns (three fork/joins a block).
#include "corenn/kernels/winograd.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "backend/gemm.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"
#include "corenn/error.hpp"
#include "kernels/conv_epilogue.hpp"
#include "kernels/conv_geometry.hpp"

namespace corenn {

using detail::gemm;
using detail::Trans;
using namespace conv;

// ------------------------------------------------------------------ the two tile sizes

namespace {

// F(2×2, 3×3): points 0, 1, −1, ∞.
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//   G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//   Aᵀ = [1 1 1 0; 0 1 −1 −1]
struct F2 {
  static constexpr int m = 2, alpha = 4;
  static void bt(const float* d, float* r) {  // r = Bᵀ d
    r[0] = d[0] - d[2];
    r[1] = d[1] + d[2];
    r[2] = d[2] - d[1];
    r[3] = d[1] - d[3];
  }
  static void g(const float* w, float* u) {  // u = G w
    u[0] = w[0];
    u[1] = 0.5f * (w[0] + w[1] + w[2]);
    u[2] = 0.5f * (w[0] - w[1] + w[2]);
    u[3] = w[2];
  }
  static void at(const float* s, float* y) {  // y = Aᵀ s
    y[0] = s[0] + s[1] + s[2];
    y[1] = s[1] - s[2] - s[3];
  }
  static void a(const float* e, float* z) {  // z = A e
    z[0] = e[0];
    z[1] = e[0] + e[1];
    z[2] = e[0] - e[1];
    z[3] = -e[1];
  }
  static void gt(const float* s, float* w) {  // w = Gᵀ s
    w[0] = s[0] + 0.5f * (s[1] + s[2]);
    w[1] = 0.5f * (s[1] - s[2]);
    w[2] = 0.5f * (s[1] + s[2]) + s[3];
  }
};

// F(4×4, 3×3): points 0, 1, −1, 2, −2, ∞.
//   Bᵀ = [4 0 −5 0 1 0; 0 −4 −4 1 1 0; 0 4 −4 −1 1 0;
//         0 −2 −1 2 1 0; 0 2 −1 −2 1 0; 0 4 0 −5 0 1]
//   G  = [¼ 0 0; −⅙ −⅙ −⅙; −⅙ ⅙ −⅙; 1/24 1/12 ⅙; 1/24 −1/12 ⅙; 0 0 1]
//   Aᵀ = [1 1 1 1 1 0; 0 1 −1 2 −2 0; 0 1 1 4 4 0; 0 1 −1 8 −8 1]
// The rows pair up as p(x) ± p(−x): each pair shares its even and odd parts.
struct F4 {
  static constexpr int m = 4, alpha = 6;
  static void bt(const float* d, float* r) {
    const float e1 = d[4] - 4.0f * d[2], o1 = d[3] - 4.0f * d[1];  // points ±1
    const float e2 = d[4] - d[2], o2 = 2.0f * (d[3] - d[1]);        // points ±2
    r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    r[1] = e1 + o1;
    r[2] = e1 - o1;
    r[3] = e2 + o2;
    r[4] = e2 - o2;
    r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
  }
  static void g(const float* w, float* u) {
    const float e1 = w[0] + w[2], e2 = w[0] + 4.0f * w[2];
    u[0] = 0.25f * w[0];
    u[1] = (-1.0f / 6) * (e1 + w[1]);
    u[2] = (-1.0f / 6) * (e1 - w[1]);
    u[3] = (1.0f / 24) * e2 + (1.0f / 12) * w[1];
    u[4] = (1.0f / 24) * e2 - (1.0f / 12) * w[1];
    u[5] = w[2];
  }
  static void at(const float* s, float* y) {
    const float e1 = s[1] + s[2], o1 = s[1] - s[2], e2 = s[3] + s[4], o2 = s[3] - s[4];
    y[0] = s[0] + e1 + e2;
    y[1] = o1 + 2.0f * o2;
    y[2] = e1 + 4.0f * e2;
    y[3] = o1 + 8.0f * o2 + s[5];
  }
  static void a(const float* e, float* z) {
    const float e1 = e[0] + e[2], o1 = e[1] + e[3];
    const float e2 = e[0] + 4.0f * e[2], o2 = 2.0f * (e[1] + 4.0f * e[3]);
    z[0] = e[0];
    z[1] = e1 + o1;
    z[2] = e1 - o1;
    z[3] = e2 + o2;
    z[4] = e2 - o2;
    z[5] = e[3];
  }
  static void gt(const float* s, float* w) {
    const float e1 = s[1] + s[2], o1 = s[1] - s[2], e2 = s[3] + s[4], o2 = s[3] - s[4];
    w[0] = 0.25f * s[0] - (1.0f / 6) * e1 + (1.0f / 24) * e2;
    w[1] = (-1.0f / 6) * o1 + (1.0f / 12) * o2;
    w[2] = (-1.0f / 6) * e1 + (1.0f / 6) * e2 + s[5];
  }
};

template <class F>
constexpr int kPoints = F::alpha * F::alpha;  // ξ: the α×α transform domain

// The α² planes of V, M and Z (one per point ξ, C × T) lie one cache line
// more than C·T apart: the transforms write all α² planes at once, and when
// C·T is a multiple of 1024 (64 channels × 16 tiles) planes 4 KB apart all
// map to the same L1 set (F4 on 64→64 channels, 16×16, batch 1: 2× slower).
constexpr int64_t kPlanePad = 16;
inline int64_t plane(int64_t C, int64_t T) { return C * T + kPlanePad; }

// Filters transformed kRun at a time, so that U's α² planes (C_out·C_in
// apart: the same L1 set again for powers of two) are written in runs of a
// few cache lines rather than one float each (4× faster).
constexpr int64_t kRun = 16;

// ------------------------------------------------------------------ the setting

enum class Algorithm { automatic, gemm, winograd, winograd2, winograd4 };
std::atomic<Algorithm> g_algorithm{Algorithm::automatic};

}  // namespace

void set_conv_algorithm(const std::string& algorithm) {
  if (algorithm == "auto") g_algorithm = Algorithm::automatic;
  else if (algorithm == "gemm") g_algorithm = Algorithm::gemm;
  else if (algorithm == "winograd") g_algorithm = Algorithm::winograd;
  else if (algorithm == "winograd2") g_algorithm = Algorithm::winograd2;
  else if (algorithm == "winograd4") g_algorithm = Algorithm::winograd4;
  else
    throw ValueError(
        "set_conv_algorithm: algorithm must be 'auto', 'gemm', 'winograd', 'winograd2' or 'winograd4', got '" +
        algorithm + "'");
}

const char* get_conv_algorithm() {
  switch (g_algorithm.load()) {
    case Algorithm::gemm: return "gemm";
    case Algorithm::winograd: return "winograd";
    case Algorithm::winograd2: return "winograd2";
    case Algorithm::winograd4: return "winograd4";
    default: return "auto";
  }
}

bool winograd_applies(const Conv2dShape& s) {
  return s.kernel_h == 3 && s.kernel_w == 3 && s.stride_h == 1 && s.stride_w == 1 && s.dilation_h == 1 &&
         s.dilation_w == 1 && s.groups == 1;
}

namespace {

// Fewer images than threads: the threading of the blocks (the top of the file,
// Tiling::shares_blocks) and the rule below change.
bool fewer_images_than_threads(int64_t batch) { return batch < detail::omp_max_threads(); }

// The measured rule: {the faster tile size, whether it beats im2col + GEMM}.
// Speed-ups over GEMM (CPU time per call, Zen 4; docs/performance-notes.md has
// the grids), F2 / F4:
//   batch 64, 1 thread, fwd + bwd  4×4          8×8          16×16        32×32
//   8→8                                                                   0.81 / 1.00
//   16→16                                                    1.15 / 1.15  1.63 / 2.04
//   32→32                                       1.06 / 0.90               1.80 / 2.34
//   64→64                                       1.42 / 1.43  1.68 / 2.02  1.89 / 2.58
//   128→128                        1.32 / 1.46
//   16→32                                       0.86 / 0.74  1.44 / 1.48*
//   32→64                                                    1.54 / 1.82
//   (* at 2 threads.) batch 1, 2 threads, forward (before the transforms ran
//   over several tile rows at once)
//   16→32                  0.16 / 0.16  0.23 / 0.17  0.64 / 0.57  1.07 / 1.06
//   32→32                  0.18 / 0.18  0.45 / 0.38  0.85 / 0.78  1.23 / 1.31
//   64→64                  0.43 / 0.30  0.72 / 0.49  1.06 / 0.96  1.53 / 1.62
//   128→128                0.59 / 0.32  0.74 / 0.46  1.16 / 1.04
// Its GEMMs have C_in as inner dimension and the transforms cost per channel
// and pixel, so it needs channels and pixels both; F4 wins from 16×16 outputs
// on (from 32×32 at batch 1, where a call's fixed costs, the filter transform
// and the fork/joins, weigh more), F2 below (an 8×8 image has 4 tiles of
// 4×4: the transforms' maps run too few tiles at once); under 3→32 channels
// (an RGB input layer) neither pays. The backward's speed-ups follow the forward's.
// An inference caller that keeps the transformed filters (filters_kept) pays
// no filter transform per call; at batch 1 on 2 threads F4 then wins from
// 8×8 on (forward, CPU time per call, GEMM / F4, the filters kept):
//   16→16 32×32 1.17, 16→32 32×32 1.28, 16→32 16×16 0.73, 32→32 16×16 1.23,
//   32→64 16×16 1.35, 64→64 16×16 1.96, 64→64 8×8 1.21, 128→128 4×4 2.03.
struct Choice {
  int tile;
  bool faster;
};
Choice measured_choice(const Conv2dShape& s, bool filters_kept) {
  const int64_t lo = std::min(s.in_channels, s.out_channels), hi = std::max(s.in_channels, s.out_channels);
  const int64_t side = std::min(s.out_h(), s.out_w());
  if (fewer_images_than_threads(s.batch) && filters_kept)
    return {4, (side >= 32 && lo >= 16 && hi >= 32) || (side >= 8 && lo >= 32) || (side >= 4 && lo >= 128)};
  if (fewer_images_than_threads(s.batch))
    return {side >= 32 ? 4 : 2, (side >= 32 && lo >= 16 && hi >= 32) || (side >= 16 && lo >= 64)};
  return {side >= 16 ? 4 : 2, (side >= 16 && lo >= 16) || (side >= 8 && lo >= 32) || (side >= 4 && lo >= 128)};
}

}  // namespace

int winograd_tile(const Conv2dShape& s, bool filters_kept) {
  if (!winograd_applies(s)) return 0;
  switch (g_algorithm.load()) {
    case Algorithm::gemm: return 0;
    case Algorithm::winograd2: return 2;
    case Algorithm::winograd4: return 4;
    case Algorithm::winograd: return measured_choice(s, filters_kept).tile;
    default: {
      const Choice c = measured_choice(s, filters_kept);
      return c.faster ? c.tile : 0;
    }
  }
}

// ------------------------------------------------------------------ tiling

namespace {

// See Tiling::block_rows: 1 MB of float. Against 2^16 and 2^20 elements
// (CPU time, one thread, Zen 4, F2): 64→64 channels on 32×32 images forward+backward
// 58.3 ms at 2^18, 62.5 at 2^16, 61.2 at 2^20; 32→32 channels 40.2, 47.9, 57.3.
constexpr int64_t kBlockElements = int64_t(1) << 18;

// Tiles a transform handles at once: a few AVX-512 vectors per map (see map_columns).
constexpr int64_t kChunkTiles = 64;

// The fewest tiles per thread for which a correlation's products are own_product's.
constexpr int64_t kOwnTiles = 8;

// The two kinds of pass over the tile rows: a correlation's products are
// independent per tile, the weight gradient's sum over the tiles.
enum class Pass { correlation, weight_grad };

// One 3×3 stride-1 correlation of an image (in_c, in_h, in_w) into
// (out_c, out_h, out_w) by m×m tiles, output row i reading input rows
// i − pt … i − pt + 2 (pt, pl may be negative: the input gradient's crop).
template <class F>
struct Tiling {
  int64_t in_c, in_h, in_w, out_c, out_h, out_w, pt, pl;
  int64_t tiles_h() const { return (out_h + F::m - 1) / F::m; }
  int64_t tiles_w() const { return (out_w + F::m - 1) / F::m; }
  // The transforms take a piece's tile rows kChunkTiles tiles at a time (at
  // least one tile row), so that their buffer stays in L1.
  int64_t chunk_rows() const { return std::max<int64_t>(1, kChunkTiles / tiles_w()); }
  // A transform's buffer: two α²-point sets of a chunk's tiles.
  int64_t buffer() const { return 2 * kPoints<F> * (chunk_rows() + 1) * tiles_w(); }
  // Channels output_transform maps at once for tile rows [tr0, tr1) at
  // column col0 of T: a chunk of a few tiles (a thread's share of a small
  // image: 8 tiles of a 16×16 image at batch 1) leaves the maps' vectors
  // mostly empty, so when the chunk is all of the T columns, whose channels
  // then lie one after the other in each plane, a group of channels is taken
  // at once, up to kChunkTiles columns (CPU time of the output transform in
  // resnet_small's batch-1 predict at 2 threads: 18% less).
  int64_t channel_group(int64_t T, int64_t col0, int64_t tr0, int64_t tr1) const {
    const bool whole = col0 == 0 && (tr1 - tr0) * tiles_w() == T && tr1 - tr0 <= chunk_rows();
    return whole ? std::max<int64_t>(1, kChunkTiles / T) : 1;
  }
  // Tile rows per block, counted across images (small images share a block,
  // so each GEMM has enough columns): the block's V and M (α² points ×
  // channels × tiles) stay within kBlockElements, bounding the scratch for large images.
  int64_t block_rows(int64_t batch) const {
    return std::clamp<int64_t>(kBlockElements / (kPoints<F> * (in_c + out_c) * tiles_w()), 1,
                               batch * tiles_h());
  }
  int64_t block_elements(int64_t batch) const {
    return kPoints<F> * ((in_c + out_c) * block_rows(batch) * tiles_w() + 2 * kPlanePad);
  }
  // Per-thread ranges of tile rows, or shared blocks (the top of the file).
  // A range must hold a few tens of µs of GEMM work to pay for its thread.
  int64_t grain() const { return detail::grain_for(kPoints<F> * in_c * out_c * tiles_w()); }
  int ranges(int64_t batch) const { return detail::parallel_chunks(batch * tiles_h(), grain()); }
  // A correlation (forward, input gradient) with fewer images than threads
  // runs in per-thread ranges after all when its products are own_product's
  // (below): at least kOwnTiles tiles a range, and more than one range.
  bool own_products(int64_t batch) const {
    const int r = ranges(batch);
    return fewer_images_than_threads(batch) && r > 1 && batch * tiles_h() * tiles_w() >= kOwnTiles * r;
  }
  bool shares_blocks(int64_t batch, Pass pass) const {
    return fewer_images_than_threads(batch) && (pass == Pass::weight_grad || !own_products(batch));
  }
  int chunks(int64_t batch, Pass pass) const { return shares_blocks(batch, pass) ? 1 : ranges(batch); }
};

// Runs piece(n, tr0, tr1, col0) over the tile rows [a, b) of the block
// starting at gr0, numbered across images (image n's tile row tr is
// n·tiles_h + tr): image n's tile rows [tr0, tr1), whose tiles take the
// block's columns from col0 on.
template <class F, typename Piece>
void for_pieces(const Tiling<F>& g, int64_t gr0, int64_t a, int64_t b, Piece&& piece) {
  const int64_t th = g.tiles_h();
  for (int64_t gr = a; gr < b;) {
    const int64_t n = gr / th, tr0 = gr % th, tr1 = std::min(th, tr0 + (b - gr));
    piece(n, tr0, tr1, (gr - gr0) * g.tiles_w());
    gr += tr1 - tr0;
  }
}

template <class F>
Tiling<F> forward_tiling(const Conv2dShape& s) {
  return {s.in_channels, s.height, s.width, s.out_channels, s.out_h(), s.out_w(), s.pad_top, s.pad_left};
}

// dx (C_in, H, W) from dy (C_out, OH, OW) padded by 2 − pad.
template <class F>
Tiling<F> input_grad_tiling(const Conv2dShape& s) {
  return {s.out_channels, s.out_h(), s.out_w(), s.in_channels, s.height, s.width, 2 - s.pad_top,
          2 - s.pad_left};
}

template <class F>
struct WinogradPlan {
  int chunks;         // ranges of tile rows, the most any pass uses
  int workers;        // threads that transform at once: a buffer each
  int64_t u_size;     // the transformed filters: α² · C_out · C_in
  int64_t slot;       // per range: a block's V and M
  int64_t buffer;     // per worker: Tiling::buffer
  int64_t slots_offset() const { return u_size; }
  int64_t buffers_offset() const { return slots_offset() + chunks * slot; }
  // dW: an α²·C_out·C_in sum per range
  int64_t partials_offset() const { return buffers_offset() + workers * buffer; }
  int64_t scratch_size() const { return partials_offset() + chunks * u_size; }
};

template <class F>
WinogradPlan<F> winograd_plan(const Conv2dShape& s) {
  const Tiling<F> f = forward_tiling<F>(s), b = input_grad_tiling<F>(s);
  WinogradPlan<F> pl;
  pl.chunks = std::max({f.chunks(s.batch, Pass::correlation), f.chunks(s.batch, Pass::weight_grad),
                        b.chunks(s.batch, Pass::correlation)});
  pl.workers = std::max(pl.chunks, detail::in_parallel_region() ? 1 : detail::omp_max_threads());
  pl.u_size = kPoints<F> * s.out_channels * s.in_channels;
  pl.slot = std::max(f.block_elements(s.batch), b.block_elements(s.batch));
  pl.buffer = std::max(f.buffer(), b.buffer());
  return pl;
}

// One pass over the tile rows [0, batch·tiles_h), block by block, threaded
// as the top of the file says. For a block [gr0, gr1) of T tiles in slot:
//   pre(slot, T, gr0, a, b, buf)   transforms its tile rows [a, b) into its columns,
//   products(slot, T, xi0, xi1, chunk, first)   the GEMMs of points [xi0, xi1)
//                                   (first: the range's first block),
//   post(slot, T, gr0, a, b, buf)  transforms the products of tile rows [a, b) back.
template <class F, typename Pre, typename Products, typename Post>
void for_blocks(const Tiling<F>& g, int64_t batch, Pass pass, const WinogradPlan<F>& pl, float* scratch, Pre&& pre,
                Products&& products, Post&& post) {
  const int64_t rows = g.block_rows(batch), total = batch * g.tiles_h(), tw = g.tiles_w();
  float* slots = scratch + pl.slots_offset();
  float* buffers = scratch + pl.buffers_offset();
  if (!g.shares_blocks(batch, pass)) {
    detail::parallel_for(0, total, g.grain(), [&](int64_t lo, int64_t hi, int chunk) {
      float* slot = slots + chunk * pl.slot;
      float* buf = buffers + chunk * pl.buffer;
      for (int64_t gr0 = lo; gr0 < hi; gr0 += rows) {
        const int64_t gr1 = std::min(hi, gr0 + rows), T = (gr1 - gr0) * tw;
        pre(slot, T, gr0, gr0, gr1, buf);
        products(slot, T, 0, kPoints<F>, chunk, gr0 == lo);
        post(slot, T, gr0, gr0, gr1, buf);
      }
    });
    return;
  }
  for (int64_t gr0 = 0; gr0 < total; gr0 += rows) {
    const int64_t gr1 = std::min(total, gr0 + rows), T = (gr1 - gr0) * tw;
    detail::parallel_for(gr0, gr1, 1, [&](int64_t a, int64_t b, int c) {
      pre(slots, T, gr0, a, b, buffers + c * pl.buffer);
    });
    detail::parallel_for(0, kPoints<F>, 1, [&](int64_t xi0, int64_t xi1, int) {
      products(slots, T, int(xi0), int(xi1), 0, gr0 == 0);
    });
    detail::parallel_for(gr0, gr1, 1, [&](int64_t a, int64_t b, int c) {
      post(slots, T, gr0, a, b, buffers + c * pl.buffer);
    });
  }
}

// The transforms below lay a chunk of tile rows out so that every 1-D map runs
// over all the chunk's tiles at once, n = tile rows × tiles_w consecutive
// values (full vectors even when a tile row has 4 or 8 tiles), reading and
// writing contiguous streams. Column i of every tile of a row (the tile's
// input column m·t + i) is first split out into its own run of tiles_w
// values; the rows are stored by phase (row m·s + q at slot s of phase q),
// so that row i of tile row s, for every s, is one run: phase i (or, for the
// rows the next tile row shares, i − m one slot on). The maps are applied in
// the same order, on the same values, as Bᵀ d B etc. written tile by tile.

// Over n consecutive columns: dst[k·dld + j] = Map(src[off[0] + j], …, src[off[IN−1] + j])[k].
// The IN + OUT streams never overlap (ivdep: GCC would otherwise check every
// pair at run time, and gives up past 10 pairs).
template <int IN, int OUT, typename Map>
inline void map_columns(float* dst, int64_t dld, const float* src, const int64_t (&off)[IN], int64_t n, Map map) {
  const float* in[IN];
  float* out[OUT];
  for (int i = 0; i < IN; ++i) in[i] = src + off[i];
  for (int k = 0; k < OUT; ++k) out[k] = dst + k * dld;
#pragma GCC ivdep
  for (int64_t j = 0; j < n; ++j) {
    float e[IN], r[OUT];
    for (int i = 0; i < IN; ++i) e[i] = in[i][j];
    map(e, r);
    for (int k = 0; k < OUT; ++k) out[k][j] = r[k];
  }
}

// F(4×4)'s split (split_row below) four tiles at a time, for rows of a few
// tiles (4 and 8 at 16×16 and 32×32), too short for a vector of tiles:
// tiles t … t + 3 read p[4t … 4t + 17], four vectors q_k = p[4(t + k) …] and
// two values; columns 0–3 are the 4×4 transpose of q_0 … q_3, columns 4
// and 5 the first two lanes of q_1 … q_4 (the scalar loop was a quarter of
// the input transform). Returns the first tile left for the scalar loop.
inline int64_t split_fours(float* E, int64_t ld, const float* p, int64_t a, int64_t b) {
  typedef float F4v __attribute__((vector_size(4 * sizeof(float))));
  typedef int I4v __attribute__((vector_size(4 * sizeof(int))));
  const I4v lo = {0, 4, 1, 5}, hi = {2, 6, 3, 7}, first = {0, 1, 4, 5}, second = {2, 3, 6, 7};
  for (; a + 4 <= b; a += 4) {
    F4v q[5];
    for (int k = 0; k < 4; ++k) std::memcpy(&q[k], p + 4 * (a + k), sizeof(F4v));
    q[4] = F4v{p[4 * a + 16], p[4 * a + 17], 0.0f, 0.0f};  // reads end at 4t + 17
    const F4v t0 = __builtin_shuffle(q[0], q[1], lo), t1 = __builtin_shuffle(q[2], q[3], lo);
    const F4v t2 = __builtin_shuffle(q[0], q[1], hi), t3 = __builtin_shuffle(q[2], q[3], hi);
    const F4v u0 = __builtin_shuffle(q[1], q[2], lo), u1 = __builtin_shuffle(q[3], q[4], lo);
    const F4v col[6] = {__builtin_shuffle(t0, t1, first), __builtin_shuffle(t0, t1, second),
                        __builtin_shuffle(t2, t3, first), __builtin_shuffle(t2, t3, second),
                        __builtin_shuffle(u0, u1, first), __builtin_shuffle(u0, u1, second)};
    for (int i = 0; i < 6; ++i) std::memcpy(E + i * ld + a, &col[i], sizeof(F4v));
  }
  return a;
}

// The IN columns each tile of row r of an h × w plane reads, padded by pl
// on the left and zeros all around, split: E[i·ld + t] = p[M·t + i], t <
// tiles, where p[j] = plane[r, j − pl] inside the plane and 0 elsewhere. Read
// in place: copying each row into a padded buffer first (memmove and memset
// calls, row by row) cost as much as the maps. When every read the tiles make
// falls inside the plane, all tiles are split at once (full vectors), those
// that reach past the row's ends being redone.
template <int IN, int M>
inline void split_row(float* E, int64_t ld, const float* plane, int64_t h, int64_t w, int64_t r, int64_t pl,
                      int64_t tiles) {
  const float* src = r >= 0 && r < h ? plane + r * w : nullptr;
  int64_t t0 = tiles, t1 = tiles;  // tiles [t0, t1) read inside the row: 0 ≤ M·t − pl, M·t + IN − 1 − pl < w
  if (src) {
    t0 = std::min(tiles, pl > 0 ? (pl + M - 1) / M : 0);
    t1 = w + pl - IN >= 0 ? std::clamp<int64_t>((w + pl - IN) / M + 1, t0, tiles) : t0;
  }
  const auto split = [&](const float* p, int64_t a, int64_t b) {
    if constexpr (IN == 6 && M == 4) a = split_fours(E, ld, p, a, b);
#pragma GCC ivdep
    for (int64_t t = a; t < b; ++t)
      for (int i = 0; i < IN; ++i) E[i * ld + t] = p[M * t + i];
  };
  const auto edge = [&](int64_t t) {
    for (int i = 0; i < IN; ++i) {
      const int64_t j = M * t + i - pl;
      E[i * ld + t] = src && j >= 0 && j < w ? src[j] : 0.0f;
    }
  };
  const int64_t first = r * w - pl, last = first + M * (tiles - 1) + IN - 1;
  if (src && t1 > t0 && first >= 0 && last < h * w) {
    split(plane + first, 0, tiles);
  } else if (t1 > t0) {
    split(src - pl, t0, t1);
  } else {
    t0 = t1 = tiles;
  }
  for (int64_t t = 0; t < t0; ++t) edge(t);
  for (int64_t t = t1; t < tiles; ++t) edge(t);
}

// V[ξ·plane(C, T) + c·T + t] = (Bᵀ d B)[ξ] of the α×α input tile of tile rows
// [tr0, tr1) (t = col0 + (tr − tr0)·tiles_w + tc), for the C = g.in_c channels of img.
template <class F>
CORENN_SIMD_CLONES void input_transform(float* V, int64_t T, int64_t col0, const float* img, const Tiling<F>& g,
                                        int64_t tr0, int64_t tr1, float* buf) {
  constexpr int al = F::alpha, m = F::m;
  const int64_t tw = g.tiles_w(), ld = plane(g.in_c, T), K = g.chunk_rows();
  const auto Bt = [](const float* in, float* out) { F::bt(in, out); };
  float* E = buf;
  for (int64_t c = 0; c < g.in_c; ++c) {
    const float* plane = img + c * g.in_h * g.in_w;
    for (int64_t s0 = tr0; s0 < tr1; s0 += K) {
      const int64_t nt = std::min(K, tr1 - s0), n = nt * tw, S = (nt + 1) * tw, bs = m * S;
      // E[i·bs + q·S + s·tw + t]: input row m·s + q of the chunk, column m·t + i (m·nt + 2 rows)
      for (int64_t r = 0; r < m * nt + 2; ++r) {
        split_row<al, m>(E + (r % m) * S + (r / m) * tw, bs, plane, g.in_h, g.in_w, m * s0 - g.pt + r, g.pl, tw);
      }
      // Bᵀ d down the rows: W[(k·α + i)·n + j], column i of row k of tile j
      float* W = E + al * bs;
      int64_t down[al];
      for (int i = 0; i < al; ++i) down[i] = i < m ? i * S : (i - m) * S + tw;
      for (int i = 0; i < al; ++i) map_columns<al, al>(W + i * n, al * n, E + i * bs, down, n, Bt);
      // · B across each tile's columns, into the planes ξ = α·k + l
      int64_t across[al];
      for (int i = 0; i < al; ++i) across[i] = i * n;
      float* v = V + c * T + col0 + (s0 - tr0) * tw;
      for (int k = 0; k < al; ++k) map_columns<al, al>(v + al * k * ld, ld, W + al * k * n, across, n, Bt);
    }
  }
}

// y's rows of tile rows [tr0, tr1), C = g.out_c channels of (out_h, out_w),
// written: Aᵀ s A of M[ξ·plane(C, T) + o·T + t], t = col0 + (tr − tr0)·tiles_w + tc,
// through the epilogue e (its residual, when given, is this image's, laid out as y).
// The maps run over a group of channels at once where Tiling::channel_group allows.
template <class F>
CORENN_SIMD_CLONES void output_transform(float* y, const float* M, int64_t T, int64_t col0,
                                         const ConvEpilogue<float>& ep, const Tiling<F>& g, int64_t tr0,
                                         int64_t tr1, float* buf) {
  constexpr int al = F::alpha, m = F::m;
  const int64_t tw = g.tiles_w(), ld = plane(g.out_c, T), K = g.chunk_rows(), wide = m * tw;
  const int64_t group = g.channel_group(T, col0, tr0, tr1);
  const auto At = [](const float* in, float* out) { F::at(in, out); };
  int64_t down[al];  // the α points of a column, ld apart
  for (int k = 0; k < al; ++k) down[k] = al * k * ld;
  for (int64_t o0 = 0; o0 < g.out_c; o0 += group) {
    const int64_t G = std::min(group, g.out_c - o0);
    for (int64_t s0 = tr0; s0 < tr1; s0 += K) {
      const int64_t nt = std::min(K, tr1 - s0), n = nt * tw, N = G * n;
      const float* s = M + o0 * T + col0 + (s0 - tr0) * tw;
      float* cols = buf;             // Aᵀ s down the rows: cols[(i·α + l)·N + j], row i, column l of tile j
      float* out = buf + m * al * N;  // output row i of tile row s of channel o0 + gi at out + i·m·N + gi·m·n + s·wide
      for (int l = 0; l < al; ++l) map_columns<al, m>(cols + l * N, al * N, s + l * ld, down, N, At);
      for (int i = 0; i < m; ++i) {  // · A: each tile's α columns to its m outputs
        const float* __restrict ci = cols + i * al * N;
        float* __restrict oi = out + i * m * N;
        for (int64_t j = 0; j < N; ++j) {
          float e[al], r[m];
          for (int l = 0; l < al; ++l) e[l] = ci[l * N + j];
          F::at(e, r);
          for (int jj = 0; jj < m; ++jj) oi[m * j + jj] = r[jj];
        }
      }
      for (int64_t gi = 0; gi < G; ++gi) {
        const int64_t o = o0 + gi;
        const float bias = ep.bias ? ep.bias[o] : 0.0f;
        for (int64_t tr = s0; tr < s0 + nt; ++tr)
          for (int i = 0; i < m && m * tr + i < g.out_h; ++i) {
            const int64_t at = o * g.out_h * g.out_w + (m * tr + i) * g.out_w;
            conv::epilogue_span(y + at, out + i * m * N + gi * m * n + (tr - s0) * wide, bias,
                                ep.residual ? ep.residual + at : nullptr, g.out_w, ep.relu);
          }
      }
    }
  }
}

// Z[ξ·plane(C, T) + o·T + t] = (A dy_t Aᵀ)[ξ] of dy's m×m tiles (zero beyond the
// output), tile rows [tr0, tr1) at t = col0 + (tr − tr0)·tiles_w + tc, C =
// g.out_c channels of dy (out_h, out_w).
template <class F>
CORENN_SIMD_CLONES void grad_transform(float* Z, int64_t T, int64_t col0, const float* dy, const Tiling<F>& g,
                                       int64_t tr0, int64_t tr1, float* buf) {
  constexpr int al = F::alpha, m = F::m;
  const int64_t tw = g.tiles_w(), ld = plane(g.out_c, T), K = g.chunk_rows();
  const auto A = [](const float* in, float* out) { F::a(in, out); };
  float* E = buf;
  for (int64_t o = 0; o < g.out_c; ++o) {
    const float* plane = dy + o * g.out_h * g.out_w;
    for (int64_t s0 = tr0; s0 < tr1; s0 += K) {
      const int64_t nt = std::min(K, tr1 - s0), n = nt * tw, bs = m * n;
      // E[i·bs + q·n + s·tw + t]: dy row m·s + q of the chunk, column m·t + i
      for (int64_t r = 0; r < m * nt; ++r) {
        split_row<m, m>(E + (r % m) * n + (r / m) * tw, bs, plane, g.out_h, g.out_w, m * s0 + r, 0, tw);
      }
      // A e down the rows: W[(k·m + i)·n + j], column i of row k of tile j
      float* W = E + m * bs;
      int64_t down[m], across[m];
      for (int i = 0; i < m; ++i) down[i] = across[i] = i * n;
      for (int i = 0; i < m; ++i) map_columns<m, al>(W + i * n, m * n, E + i * bs, down, n, A);
      // · Aᵀ across each tile's columns, into the planes ξ = α·k + l
      float* z = Z + o * T + col0 + (s0 - tr0) * tw;
      for (int k = 0; k < al; ++k) map_columns<m, al>(z + al * k * ld, ld, W + m * k * n, across, n, A);
    }
  }
}

// U[ξ·R·C + r·C + c] = (G g Gᵀ)[ξ], R × C filters: the forward's g = W[r, c]
// (R = C_out, C = C_in), or, flip, the input gradient's g = W[c, r] rotated
// by 180° (R = C_in, C = C_out).
template <class F>
void filter_transform(float* U, const float* W, int64_t R, int64_t C, bool flip) {
  constexpr int al = F::alpha;
  detail::parallel_for(0, R, detail::grain_for(C * 4 * kPoints<F>), [=](int64_t lo, int64_t hi, int) {
    float u[kPoints<F>][kRun];  // a run of filters, point by point
    for (int64_t r = lo; r < hi; ++r)
      for (int64_t c0 = 0; c0 < C; c0 += kRun) {
        const int64_t n = std::min(kRun, C - c0);
        for (int64_t j = 0; j < n; ++j) {
          const int64_t c = c0 + j;
          const float* w = flip ? W + (c * R + r) * 9 : W + (r * C + c) * 9;
          float gq[3][3];  // column q of g, down the rows p
          for (int p = 0; p < 3; ++p)
            for (int q = 0; q < 3; ++q) gq[q][p] = flip ? w[(2 - p) * 3 + (2 - q)] : w[p * 3 + q];
          float gg[3][al];  // G g, by columns
          for (int q = 0; q < 3; ++q) F::g(gq[q], gg[q]);
          for (int k = 0; k < al; ++k) {
            const float row[3] = {gg[0][k], gg[1][k], gg[2][k]};
            float uk[al];
            F::g(row, uk);
            for (int l = 0; l < al; ++l) u[al * k + l][j] = uk[l];
          }
        }
        for (int xi = 0; xi < kPoints<F>; ++xi) std::copy(u[xi], u[xi] + n, U + xi * R * C + r * C + c0);
      }
  });
}

// dW[o, c] (3×3) += Gᵀ S[o, c] G, S[ξ·C_out·C_in + o·C_in + c].
template <class F>
void filter_grad_transform(float* dW, const float* S, int64_t Cout, int64_t Cin) {
  constexpr int al = F::alpha;
  const int64_t n = Cout * Cin;
  detail::parallel_for(0, n, detail::grain_for(4 * kPoints<F>), [=](int64_t lo, int64_t hi, int) {
    float run[kPoints<F>][kRun];  // S of a run of filters, point by point
    for (int64_t oc0 = lo; oc0 < hi; oc0 += kRun) {
      const int64_t len = std::min(kRun, hi - oc0);
      for (int xi = 0; xi < kPoints<F>; ++xi) std::copy(S + xi * n + oc0, S + xi * n + oc0 + len, run[xi]);
      for (int64_t j = 0; j < len; ++j) {
        float sl[al][al];  // column l of S, down the rows k
        for (int xi = 0; xi < kPoints<F>; ++xi) sl[xi % al][xi / al] = run[xi][j];
        float t[al][3];  // Gᵀ S, by columns
        for (int l = 0; l < al; ++l) F::gt(sl[l], t[l]);
        float* w = dW + (oc0 + j) * 9;
        for (int p = 0; p < 3; ++p) {
          float row[al], q[3];
          for (int l = 0; l < al; ++l) row[l] = t[l][p];
          F::gt(row, q);
          for (int i = 0; i < 3; ++i) w[p * 3 + i] += q[i];
        }
      }
    }
  });
}

// A correlation's product at one point ξ, M (R, T) = U (R, C) · V (C, T),
// all row-major, for blocks of few tiles (a thread's share of one image),
// where BLAS calls once cost more than their arithmetic (at 1 thread, on
// OpenBLAS's small-matrix kernel, both now run at about the same speed:
// docs/performance-notes.md). Register blocks of kProductRows output channels × one or two vectors of
// tiles (16, then 8, 4, 1 lanes for the last tiles) keep their sums in
// registers across the whole of C, each sum taken over c = 0, 1, … in order,
// one multiplication and one addition per term: the same bits on every
// clone, for every thread count and blocking.
constexpr int kProductRows = 8;

template <int L>
struct LanesOf {
  typedef float type __attribute__((vector_size(L * sizeof(float))));
};
template <>
struct LanesOf<1> {
  typedef float type;
};

template <int L, int RB, int NB>
inline void product_block(float* M, const float* U, const float* V, int64_t C, int64_t T, int64_t o0,
                          int64_t t0) {
  using Vec = typename LanesOf<L>::type;
  Vec acc[RB][NB];
  for (int r = 0; r < RB; ++r)
    for (int b = 0; b < NB; ++b) acc[r][b] = Vec{};
  const float* u = U + o0 * C;
  for (int64_t c = 0; c < C; ++c) {
    Vec v[NB];  // through memcpy: unaligned loads
    for (int b = 0; b < NB; ++b) std::memcpy(&v[b], V + c * T + t0 + b * L, sizeof(Vec));
    for (int r = 0; r < RB; ++r) {
      const float w = u[r * C + c];
      for (int b = 0; b < NB; ++b) acc[r][b] += w * v[b];
    }
  }
  for (int r = 0; r < RB; ++r)
    for (int b = 0; b < NB; ++b) std::memcpy(M + (o0 + r) * T + t0 + b * L, &acc[r][b], sizeof(Vec));
}

template <int RB>
inline void product_rows(float* M, const float* U, const float* V, int64_t C, int64_t T, int64_t o0) {
  int64_t t = 0;
  for (; t + 32 <= T; t += 32) product_block<16, RB, 2>(M, U, V, C, T, o0, t);
  if (t + 16 <= T) product_block<16, RB, 1>(M, U, V, C, T, o0, t), t += 16;
  if (t + 8 <= T) product_block<8, RB, 1>(M, U, V, C, T, o0, t), t += 8;
  if (t + 4 <= T) product_block<4, RB, 1>(M, U, V, C, T, o0, t), t += 4;
  for (; t < T; ++t) product_block<1, RB, 1>(M, U, V, C, T, o0, t);
}

CORENN_SIMD_CLONES void own_product(float* M, const float* U, const float* V, int64_t R, int64_t C, int64_t T) {
  int64_t o = 0;
  for (; o + kProductRows <= R; o += kProductRows) product_rows<kProductRows>(M, U, V, C, T, o);
  for (; o < R; ++o) product_rows<1>(M, U, V, C, T, o);
}

// y (N, out_c, out_h, out_w) written: the correlation of x (N, in_c, in_h,
// in_w) with the transformed filters U (α², out_c, in_c), block of tile rows
// by block, through the epilogue ep.
template <class F>
void correlate(float* y, float* scratch, const WinogradPlan<F>& pl, const float* x, const float* U,
               const ConvEpilogue<float>& ep, const Tiling<F>& g, int64_t batch) {
  const int64_t in_img = g.in_c * g.in_h * g.in_w, out_img = g.out_c * g.out_h * g.out_w;
  // slot: V (α² planes of in_c × T), then M (α² planes of out_c × T)
  const auto M_of = [&](float* slot, int64_t T) { return slot + kPoints<F> * plane(g.in_c, T); };
  const bool own = g.own_products(batch);
  for_blocks(
      g, batch, Pass::correlation, pl, scratch,
      [&](float* slot, int64_t T, int64_t gr0, int64_t a, int64_t e, float* buf) {
        for_pieces(g, gr0, a, e, [&](int64_t n, int64_t tr0, int64_t tr1, int64_t col0) {
          input_transform(slot, T, col0, x + n * in_img, g, tr0, tr1, buf);
        });
      },
      [&](float* slot, int64_t T, int xi0, int xi1, int, bool) {
        for (int xi = xi0; xi < xi1; ++xi) {
          if (own)
            own_product(M_of(slot, T) + xi * plane(g.out_c, T), U + xi * g.out_c * g.in_c,
                        slot + xi * plane(g.in_c, T), g.out_c, g.in_c, T);
          else
            gemm<float>(Trans::no, Trans::no, g.out_c, T, g.in_c, 1.0f, U + xi * g.out_c * g.in_c, g.in_c,
                        slot + xi * plane(g.in_c, T), T, 0.0f, M_of(slot, T) + xi * plane(g.out_c, T), T);
        }
      },
      [&](float* slot, int64_t T, int64_t gr0, int64_t a, int64_t e, float* buf) {
        for_pieces(g, gr0, a, e, [&](int64_t n, int64_t tr0, int64_t tr1, int64_t col0) {
          ConvEpilogue<float> image = ep;
          if (ep.residual) image.residual = ep.residual + n * out_img;
          output_transform(y + n * out_img, M_of(slot, T), T, col0, image, g, tr0, tr1, buf);
        });
      });
}

// The forward in its two halves: W into U, then the correlation with U (which
// an inference caller may keep across calls: winograd_transform_filters).
template <class F>
void forward_transformed(float* y, float* scratch, const float* x, const float* U, const ConvEpilogue<float>& ep,
                         const Conv2dShape& s) {
  correlate(y, scratch, winograd_plan<F>(s), x, U, ep, forward_tiling<F>(s), s.batch);
}

template <class F>
void forward(float* y, float* scratch, const float* x, const float* W, const ConvEpilogue<float>& ep,
             const Conv2dShape& s) {
  float* U = scratch;
  filter_transform<F>(U, W, s.out_channels, s.in_channels, false);
  forward_transformed<F>(y, scratch, x, U, ep, s);
}

template <class F>
void backward(float* dx, float* dW, float* db, float* scratch, const float* dy, const float* x, const float* W,
              const Conv2dShape& s) {
  const WinogradPlan<F> pl = winograd_plan<F>(s);
  // dW: x's tiles (V, C_in) and dy's (Z, C_out) over the output's tiling.
  const Tiling<F> g = forward_tiling<F>(s);
  const int64_t Cin = s.in_channels, Cout = s.out_channels;
  const int64_t in_img = Cin * s.height * s.width, out_img = Cout * g.out_h * g.out_w;
  float* partials = scratch + pl.partials_offset();
  // slot: V (α² planes of C_in × T), then Z (α² planes of C_out × T)
  for_blocks(
      g, s.batch, Pass::weight_grad, pl, scratch,
      [&](float* slot, int64_t T, int64_t gr0, int64_t a, int64_t e, float* buf) {
        for_pieces(g, gr0, a, e, [&](int64_t n, int64_t tr0, int64_t tr1, int64_t col0) {
          input_transform(slot, T, col0, x + n * in_img, g, tr0, tr1, buf);
          grad_transform(slot + kPoints<F> * plane(Cin, T), T, col0, dy + n * out_img, g, tr0, tr1, buf);
        });
      },
      [&](float* slot, int64_t T, int xi0, int xi1, int chunk, bool first) {
        const float *V = slot, *Z = slot + kPoints<F> * plane(Cin, T);
        float* S = partials + chunk * pl.u_size;
        const float beta = first ? 0.0f : 1.0f;  // the partial starts at its range's first product
        for (int xi = xi0; xi < xi1; ++xi)
          gemm<float>(Trans::no, Trans::yes, Cout, Cin, T, 1.0f, Z + xi * plane(Cout, T), T, V + xi * plane(Cin, T),
                      T, beta, S + xi * Cout * Cin, Cin);
      },
      [](float*, int64_t, int64_t, int64_t, int64_t, float*) {});
  for (int c = 1; c < g.chunks(s.batch, Pass::weight_grad); ++c) {
    const float* part = partials + c * pl.u_size;
    for (int64_t k = 0; k < pl.u_size; ++k) partials[k] += part[k];
  }
  filter_grad_transform<F>(dW, partials, Cout, Cin);
  if (dx) {
    float* U = scratch;
    filter_transform<F>(U, W, Cin, Cout, true);
    correlate(dx, scratch, pl, dy, U, ConvEpilogue<float>{}, input_grad_tiling<F>(s), s.batch);
  }
  if (db) bias_grad(db, dy, s.batch, Cout, g.out_h * g.out_w);
}

void check_tile(const char* fn, int tile) {
  if (tile != 2 && tile != 4)
    throw ValueError(std::string(fn) + ": tile must be 2 or 4, got " + std::to_string(tile));
}

}  // namespace

int64_t winograd_scratch_size(const Conv2dShape& s) {
  // Either tile size may run (the setting can change between sizing and the call).
  return std::max(winograd_plan<F2>(s).scratch_size(), winograd_plan<F4>(s).scratch_size());
}

// ------------------------------------------------------------------ forward

void winograd_conv2d_forward(float* y, float* scratch, const float* x, const float* W,
                             const ConvEpilogue<float>& ep, const Conv2dShape& s, int tile) {
  check_tile("winograd_conv2d_forward", tile);
  if (tile == 2) forward<F2>(y, scratch, x, W, ep, s);
  else forward<F4>(y, scratch, x, W, ep, s);
}

void winograd_conv2d_forward(float* y, float* scratch, const float* x, const float* W, const float* b,
                             const Conv2dShape& s, int tile) {
  ConvEpilogue<float> ep;
  ep.bias = b;
  winograd_conv2d_forward(y, scratch, x, W, ep, s, tile);
}

int64_t winograd_filter_size(const Conv2dShape& s, int tile) {
  check_tile("winograd_filter_size", tile);
  return (tile + 2) * (tile + 2) * s.out_channels * s.in_channels;
}

void winograd_transform_filters(float* U, const float* W, const Conv2dShape& s, int tile) {
  check_tile("winograd_transform_filters", tile);
  if (tile == 2) filter_transform<F2>(U, W, s.out_channels, s.in_channels, false);
  else filter_transform<F4>(U, W, s.out_channels, s.in_channels, false);
}

void winograd_conv2d_forward_transformed(float* y, float* scratch, const float* x, const float* U,
                                         const ConvEpilogue<float>& ep, const Conv2dShape& s, int tile) {
  check_tile("winograd_conv2d_forward_transformed", tile);
  if (tile == 2) forward_transformed<F2>(y, scratch, x, U, ep, s);
  else forward_transformed<F4>(y, scratch, x, U, ep, s);
}

// ------------------------------------------------------------------ backward

void winograd_conv2d_backward(float* dx, float* dW, float* db, float* scratch, const float* dy,
                              const float* x, const float* W, const Conv2dShape& s, int tile) {
  check_tile("winograd_conv2d_backward", tile);
  if (tile == 2) backward<F2>(dx, dW, db, scratch, dy, x, W, s);
  else backward<F4>(dx, dW, db, scratch, dy, x, W, s);
}

}  // namespace corenn
