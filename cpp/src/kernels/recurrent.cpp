#include "corenn/kernels/recurrent.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "corenn/error.hpp"
#include "backend/gemm.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

using detail::gemm;
using detail::parallel_chunks;
using detail::parallel_for;
using detail::parallel_team;
using detail::Team;
using detail::blas_keep_single_threaded;
using detail::Trans;

namespace {

template <typename T>
T sigmoid(T a) {
  return T(1) / (T(1) + std::exp(-a));
}

// σ and tanh of the fused gate passes. std::exp is a library call that GCC
// vectorises only under -ffast-math, and the gates need 5 of them per unit and
// step (as many as the GEMMs' multiply-adds divided by ~100), so float uses
// Cephes's expf polynomial in plain arithmetic, which the loops over units
// vectorise: e^x = 2^n · p(r), n = round(x·log₂e), r = x − n·ln2 (ln2 in two
// parts), relative error < 1e-7 (1 ulp), measured over [−80, 80]. Inputs are
// clamped to [−87, 88], where 2^n stays a normal float; σ and tanh saturate
// there anyway. double keeps the library functions (the reference precision).
inline float exp_vec(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // Adding 1.5·2²³ rounds x·log₂e to an integer n held in the low mantissa bits.
  const float shifted = x * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  int32_t n_bits;
  std::memcpy(&n_bits, &shifted, sizeof n_bits);
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t scale_bits = (n_bits - 0x4B400000 + 127) << 23;  // 2^n: n + bias in the exponent
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  return p * scale;
}
inline double exp_vec(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid_vec(T a) {
  return T(1) / (T(1) + exp_vec(-a));
}
// tanh a = 1 − 2 / (1 + e^{2a}): absolute error < 2e-7 in float.
inline float tanh_vec(float a) { return 1.0f - 2.0f / (1.0f + exp_vec(2.0f * a)); }
inline double tanh_vec(double a) { return std::tanh(a); }

// h_{t-1} of every example as one (N, T, H) matrix: h0 (or zeros) then y
// shifted by one step, so dW_hh is one GEMM over all N·T rows; with recurrent
// dropout, h_{t-1} ⊙ m, as the recurrent products read it.
template <typename T>
void previous_states(T* h_prev, const T* h0, const T* y, const T* recurrent_mask, int64_t batch, int64_t steps,
                     int64_t hidden) {
  for (int64_t n = 0; n < batch; ++n) {
    T* row = h_prev + n * steps * hidden;
    if (h0)
      std::copy(h0 + n * hidden, h0 + (n + 1) * hidden, row);
    else
      std::fill(row, row + hidden, T(0));
    std::copy(y + n * steps * hidden, y + (n * steps + steps - 1) * hidden, row + hidden);
    if (recurrent_mask)
      for (int64_t k = 0; k < steps * hidden; ++k) row[k] *= recurrent_mask[n * hidden + k % hidden];
  }
}

// How the recurrence is threaded. The steps are sequential; examples are
// independent. With at least kMinRows rows per thread, each thread runs the
// whole recurrence, forward or backward, for its own examples, without any
// barrier. A smaller batch (inference: one sequence) splits each forward
// step's hidden units instead: one team of threads for the whole sequence
// (parallel_team), each member computing the gate columns of its units with
// its part of W_hh kept in its own cache (half of an LSTM(256)'s 1 MiB fits a
// core's L2, all of it does not), then their fused pass, one barrier per
// step; when each member's share of a step is at least kStepWork
// multiply-adds, several times what a barrier costs.
constexpr int64_t kStepWork = int64_t(1) << 17;
constexpr int64_t kMinRows = 16;

// The per-step products h_{t-1} · W_hhᵀ (forward) and dA_t · W_hh (backward)
// are small (at most 32 × 256 by 256 × 1024 per thread in the benchmarks) and
// come T times with the same weights, so they do not go to BLAS, which
// repacked W_hh at every step (12% of the time in the profile): W_hh is packed
// once per call into panels of columns, and a register-blocked kernel in plain
// C++, which GCC vectorises (AVX-512 through CORENN_SIMD_CLONES), multiplies
// kRowBlock rows of the left operand by one panel: 4 × 64 float accumulators,
// 16 vector registers (on one Zen 4 core 112 GFLOP/s, against OpenBLAS's
// 72-81 for these shapes with its packing).
//
// A forward panel holds the columns of kLane units (a cache line: 16 floats,
// 8 doubles) in every gate, so that the units' fused pass follows their
// product at once.
template <typename T>
constexpr int64_t kLane = 64 / static_cast<int64_t>(sizeof(T));
constexpr int64_t kRowBlock = 4;

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// out (R, C) = a (R, K; row stride lda) · panel (K, C), each sum over k in
// order: an element gets the same bits whatever R, row block or thread.
template <int R, int C>
struct PanelProduct {
  template <typename T>
  CORENN_SIMD_CLONES static void run(T* __restrict out, const T* __restrict a, int64_t lda,
                                     const T* __restrict panel, int64_t K) {
    T acc[R][C] = {};
    for (int64_t k = 0; k < K; ++k) {
      const T* __restrict w = panel + k * C;
      for (int r = 0; r < R; ++r) {
        const T ar = a[r * lda + k];
        for (int j = 0; j < C; ++j) acc[r][j] += ar * w[j];
      }
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < C; ++j) out[r * C + j] = acc[r][j];
  }
};

// out (rows, C) = a (rows, K) · panel, rows ≤ kRowBlock.
template <int C, typename T>
void panel_product(T* out, const T* a, int64_t lda, const T* panel, int64_t K, int64_t rows) {
  if (rows == kRowBlock) {
    PanelProduct<kRowBlock, C>::run(out, a, lda, panel, K);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) PanelProduct<1, C>::run(out + r * C, a + r * lda, lda, panel, K);
}

// Forward panels of W_hh (Gates·H, H): panel p, of the units [p·L, p·L + L)
// (L = kLane), is (H, Gates·L) with Wp[p][q][g·L + k] = W_hh[g·H + p·L + k, q],
// zeros past H. forward_panels_size bounds the size for both types.
int64_t forward_panels_size(int64_t gates, int64_t H) { return gates * H * round_up(H, kLane<float>); }

// A transposition, L×L blocks at a time: each block's L source rows (a cache
// line each) are loaded as L vectors, transposed in registers and stored as L
// whole lines of the panel. (The plain loop's scalar stores, 4·L floats apart,
// each to another line, took a fifth of a batch-1 LSTM forward; a tile
// transposed through memory by scalar moves did no better.) The last panel's
// units and the last block's columns can be partial: those go element by
// element, zeros past H.
template <typename T>
struct Line {
  typedef T type __attribute__((vector_size(64)));
};

// Round w of an L×L transposition held in rows r: the off-diagonal w×w blocks
// of every 2w×2w block trade places (a, b: rows i and i + w). After every
// round w = L/2, ..., 1, element (i, j) is at (j, i).
template <int L, int w, typename V, size_t... J>
inline void swap_blocks(V& a, V& b, std::index_sequence<J...>) {
#if defined(__clang__) || __GNUC__ >= 12
  const V top = __builtin_shufflevector(a, b, ((J & w) ? L + J - w : J)...);
  const V bottom = __builtin_shufflevector(a, b, ((J & w) ? L + J : J + w)...);
#else  // GCC before 12 has the older builtin, whose indices are a vector of integers as wide as T
  using Indices = decltype(a < b);
  const V top = __builtin_shuffle(a, b, Indices{((J & w) ? L + J - w : J)...});
  const V bottom = __builtin_shuffle(a, b, Indices{((J & w) ? L + J : J + w)...});
#endif
  a = top;
  b = bottom;
}
template <int L, int w, typename V>
inline void transpose_rounds(V* r) {
  if constexpr (w >= 1) {
    for (int i = 0; i < L; ++i)
      if (!(i & w)) swap_blocks<L, w>(r[i], r[i + w], std::make_index_sequence<L>());
    transpose_rounds<L, w / 2>(r);
  }
}

template <int Gates>
struct PackForwardPanels {
  template <typename T>
  CORENN_SIMD_CLONES static void run(T* __restrict Wp, const T* __restrict W_hh, int64_t H, int64_t p0,
                                     int64_t p1) {
    constexpr int L = static_cast<int>(kLane<T>);
    constexpr int64_t C = Gates * L;
    using V = typename Line<T>::type;
    static_assert(sizeof(V) == L * sizeof(T), "a vector holds one cache line of T");
    for (int64_t p = p0; p < p1; ++p) {
      T* panel = Wp + p * H * C;
      const int64_t units = std::min<int64_t>(L, H - p * L);
      for (int64_t g = 0; g < Gates; ++g) {
        const T* rows = W_hh + (g * H + p * L) * H;
        for (int64_t q0 = 0; q0 < H; q0 += L) {
          const int64_t width = std::min<int64_t>(L, H - q0);
          if (units == L && width == L) {
            V r[L];
            for (int k = 0; k < L; ++k) std::memcpy(&r[k], rows + k * H + q0, sizeof(V));
            transpose_rounds<L, L / 2>(r);
            for (int j = 0; j < L; ++j) std::memcpy(panel + (q0 + j) * C + g * L, &r[j], sizeof(V));
          } else {
            for (int64_t j = 0; j < width; ++j)
              for (int64_t k = 0; k < L; ++k)
                panel[(q0 + j) * C + g * L + k] = k < units ? rows[k * H + q0 + j] : T(0);
          }
        }
      }
    }
  }
};

template <int Gates, typename T>
void pack_forward_panels(T* Wp, const T* W_hh, int64_t H, int64_t p0, int64_t p1) {
  PackForwardPanels<Gates>::run(Wp, W_hh, H, p0, p1);
}

// Backward panels of W_hh (K, H) as stored: panel p is (K, C), its columns
// [p·C, p·C + C) (C = 4·kLane), zeros past H.
template <typename T>
constexpr int64_t kBackwardColumns = 4 * kLane<T>;
int64_t backward_panels_size(int64_t K, int64_t H) { return K * round_up(H, kBackwardColumns<float>); }

template <typename T>
void pack_backward_panels(T* Wb, const T* W_hh, int64_t K, int64_t H, int64_t p0, int64_t p1) {
  constexpr int64_t C = kBackwardColumns<T>;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t c = 0; c < C; ++c)
        Wb[(p * K + k) * C + c] = p * C + c < H ? W_hh[k * H + p * C + c] : T(0);
}

// Recurrent dropout (recurrent.hpp): the factor m of unit i = n·H + j in the
// recurrent products of example n; 1 without a mask.
template <typename T>
inline T kept(const T* recurrent_mask, int64_t i) {
  return recurrent_mask ? recurrent_mask[i] : T(1);
}

// Where step t's recurrent product reads h_{t-1}, example n's row at h + n·ld:
// y's step t-1, h0 at t = 0 (nullptr: zeros, no product), or with recurrent
// dropout `dropped`, which drop_state fills with h_{t-1} ⊙ m before the step.
template <typename T>
struct PreviousState {
  const T* h;
  int64_t ld;
};
template <typename T>
PreviousState<T> previous_state(const T* y, const T* h0, const T* dropped, int64_t t, int64_t S, int64_t H) {
  if (t == 0 && !h0) return {nullptr, H};
  if (dropped) return {dropped, H};
  return t > 0 ? PreviousState<T>{y + (t - 1) * H, S * H} : PreviousState<T>{h0, H};
}
// dropped[n] = h_{t-1}[n] ⊙ m[n] for the examples [lo, hi) (the fast kernels
// pass h_T as `dropped`: they write it only after the last step).
template <typename T>
void drop_state(T* dropped, const T* y, const T* h0, const T* recurrent_mask, int64_t t, int64_t lo, int64_t hi,
                int64_t S, int64_t H) {
  const PreviousState<T> p = previous_state<T>(y, h0, nullptr, t, S, H);
  if (!p.h) return;
  for (int64_t n = lo; n < hi; ++n)
    for (int64_t j = 0; j < H; ++j) dropped[n * H + j] = p.h[n * p.ld + j] * recurrent_mask[n * H + j];
}

// W_hh's forward panels for one call: kept ones (pack_recurrent_panels, made
// once for many calls), or none, and then the call's team packs W_hh into
// `scratch`, each member the panels it multiplies (into its own cache).
template <typename T>
struct ForwardPanels {
  const T* packed;
  T* scratch;
  const T* W_hh;
};

// The recurrent half of a forward pass, once `out` holds what the cell needs
// of the input projections. At step t, for this thread's examples and panels:
// h_{t-1} (y's step t-1, h0, or zeros at the first step without it) times the
// panel, added into (kAdd) or written over out's columns of the panel's units
// (example n, step t at out + n·ld_n + t·ld_t, gate g at column g·H), then
// cell(t, n, u0, u1), the fused pass of those units, while they are in cache.
// With recurrent dropout the products read h_{t-1} ⊙ m, formed in `dropped`
// (N, H) before each step (the callers pass h_T, written after the last step).
template <int Gates, bool kAdd, typename T, typename Cell>
void forward_recurrence(T* out, int64_t ld_n, int64_t ld_t, const ForwardPanels<T>& w, const T* y, const T* h0,
                        const T* recurrent_mask, T* dropped, int64_t N, int64_t S, int64_t H, Cell&& cell) {
  constexpr int64_t L = kLane<T>, C = Gates * L;
  const int64_t panels = (H + L - 1) / L;
  // A double's panels (8 units) fill less than forward_panels_size, which
  // fits a float's (16): the rest is zeroed, as the workspace is returned.
  if (!w.packed) std::fill(w.scratch + panels * H * C, w.scratch + forward_panels_size(Gates, H), T(0));
  const T* Wp = w.packed ? w.packed : w.scratch;
  const int by_rows = parallel_chunks(N, kMinRows);
  const int threads =
      by_rows > 1 ? by_rows : parallel_chunks(panels, std::max<int64_t>(1, kStepWork / std::max<int64_t>(1, N * C * H)));
  parallel_team(threads, [&](const Team& team) {
    // Split by rows: every panel, packed by the whole team first. By units:
    // this member's panels, packed by itself (into its own cache).
    const bool split_rows = by_rows > 1;
    const auto rows = split_rows ? team.share(0, N) : std::pair<int64_t, int64_t>(0, N);
    const auto mine = split_rows ? std::pair<int64_t, int64_t>(0, panels) : team.share(0, panels);
    if (!w.packed) {
      const auto packed = team.share(0, panels);
      pack_forward_panels<Gates>(w.scratch, w.W_hh, H, packed.first, packed.second);
      if (split_rows) team.barrier();
    }
    T acc[kRowBlock * C];
    for (int64_t t = 0; t < S; ++t) {
      PreviousState<T> prev = previous_state<T>(y, h0, nullptr, t, S, H);
      if (recurrent_mask && prev.h) {
        // Split by units, every member reads every row of h_{t-1} ⊙ m: the
        // team forms them by rows, then waits for all of them.
        const auto drop = split_rows ? rows : team.share(0, N);
        drop_state(dropped, y, h0, recurrent_mask, t, drop.first, drop.second, S, H);
        if (!split_rows) team.barrier();
        prev = {dropped, H};
      }
      const T* h_prev = prev.h;
      const int64_t ldh = prev.ld;
      for (int64_t p = mine.first; p < mine.second; ++p) {
        const int64_t u0 = p * L, u1 = std::min(H, u0 + L);
        for (int64_t n0 = rows.first; n0 < rows.second; n0 += kRowBlock) {
          const int64_t nr = std::min(kRowBlock, rows.second - n0);
          if (h_prev)
            panel_product<C>(acc, h_prev + n0 * ldh, ldh, Wp + p * H * C, H, nr);
          else
            std::fill(acc, acc + nr * C, T(0));
          if (h_prev || !kAdd)
            for (int64_t r = 0; r < nr; ++r) {
              T* o = out + (n0 + r) * ld_n + t * ld_t;
              for (int64_t g = 0; g < Gates; ++g)
                for (int64_t u = u0; u < u1; ++u)
                  o[g * H + u] = (kAdd ? o[g * H + u] : T(0)) + acc[r * C + g * L + u - u0];
            }
          for (int64_t n = n0; n < n0 + nr; ++n) cell(t, n, u0, u1);
        }
      }
      if (!split_rows) team.barrier();  // h_t complete before step t + 1 reads it
    }
  });
}

// dh[n] += dA_t[n] · W_hh for the examples [n0, n1), dA_t's row n at
// dA + n·ld_a, Wb the backward panels of W_hh (K, H): the one product the
// recurrence forces per step. With recurrent dropout the forward's product
// read h_{t-1} ⊙ m, so its gradient is (dA_t · W_hh) ⊙ m.
template <typename T>
void add_step_gradient(T* dh, const T* dA, int64_t ld_a, const T* Wb, const T* recurrent_mask, int64_t n0,
                       int64_t n1, int64_t K, int64_t H) {
  constexpr int64_t C = kBackwardColumns<T>;
  T acc[kRowBlock * C];
  for (int64_t p = 0; p * C < H; ++p) {
    const int64_t width = std::min(C, H - p * C);
    for (int64_t b0 = n0; b0 < n1; b0 += kRowBlock) {
      const int64_t nr = std::min(kRowBlock, n1 - b0);
      panel_product<C>(acc, dA + b0 * ld_a, ld_a, Wb + p * K * C, K, nr);
      for (int64_t r = 0; r < nr; ++r)
        for (int64_t c = 0; c < width; ++c) {
          const int64_t i = (b0 + r) * H + p * C + c;
          dh[i] += recurrent_mask ? acc[r * C + c] * recurrent_mask[i] : acc[r * C + c];
        }
    }
  }
}

// The backward recurrence's threads: each its own examples, after the team
// has packed W_hh (K, H); a batch under 2·kMinRows runs on the calling
// thread. body(lo, hi, Wb) runs every step for the examples [lo, hi).
template <typename T, typename Body>
void backward_recurrence(T* Wb, const T* W_hh, int64_t N, int64_t K, int64_t H, Body&& body) {
  const int64_t panels = (H + kBackwardColumns<T> - 1) / kBackwardColumns<T>;
  parallel_team(parallel_chunks(N, kMinRows), [&](const Team& team) {
    const auto packed = team.share(0, panels);
    pack_backward_panels(Wb, W_hh, K, H, packed.first, packed.second);
    team.barrier();
    const auto rows = team.share(0, N);
    body(rows.first, rows.second);
  });
}

// acc[j] += Σ_r m[r, j] over the rows of an (rows, cols) matrix, split by columns
// so every sum runs in the same order whatever the thread count.
template <typename T>
void add_column_sums(T* acc, const T* m, int64_t rows, int64_t cols) {
  parallel_for(0, cols, 256, [&](int64_t lo, int64_t hi, int) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = lo; j < hi; ++j) acc[j] += m[r * cols + j];
  });
}

// Masks: a masked step (mask[r] == 0 for row r = n·T + t) keeps the state.
inline bool masked(const uint8_t* mask, int64_t r) { return mask && !mask[r]; }

// dst[j0, j1) = the previous state's, or zeros where there is none (the first
// step without an initial state).
template <typename T>
void carry_state(T* dst, const T* prev, int64_t j0, int64_t j1) {
  if (prev)
    std::copy(prev + j0, prev + j1, dst + j0);
  else
    std::fill(dst + j0, dst + j1, T(0));
}

// What the backward sums over every step, once the recurrence has produced the
// gate gradients of all N·T rows: dx, dW_ih and db from dA_in, dW_hh from
// dA_rec (the same matrix but for the GRU, whose recurrent products have a gate
// gradient of their own). Three large GEMMs instead of T small ones each.
template <typename T>
void gradients_over_all_steps(T* dx, T* dW_ih, T* dW_hh, T* db, T* h_prev, const T* dA_in,
                              const T* dA_rec, const T* x, const T* W_ih, const T* h0, const T* y,
                              const T* recurrent_mask, int64_t N, int64_t S, int64_t F, int64_t H, int64_t G) {
  previous_states(h_prev, h0, y, recurrent_mask, N, S, H);
  gemm<T>(Trans::no, Trans::no, N * S, F, G, T(1), dA_in, G, W_ih, F, T(0), dx, F);
  gemm<T>(Trans::yes, Trans::no, G, F, N * S, T(1), dA_in, G, x, F, T(1), dW_ih, F);
  gemm<T>(Trans::yes, Trans::no, G, H, N * S, T(1), dA_rec, G, h_prev, H, T(1), dW_hh, H);
  add_column_sums(db, dA_in, N * S, G);
}

// The fused cell passes take the previous state as a pointer, nullptr for
// zeros. A load under a condition keeps GCC from vectorising a loop, so each
// pass is compiled twice, kPrev telling whether the state is there, and
// with_prev picks the copy at run time.
template <template <bool> class Cell, typename... Args>
inline void with_prev(bool prev, Args&&... args) {
  if (prev)
    Cell<true>::run(args...);
  else
    Cell<false>::run(args...);
}

// One fused LSTM cell pass for one example and the units [j0, j1): activates
// the pre-activations a = [a_i, a_f, a_g, a_o] (4H) in place (b added here, not
// in the GEMMs) and writes c_t and h_t.
template <bool kPrev>
struct LstmCellForward {
  template <typename T>
  CORENN_SIMD_CLONES static void run(T* __restrict a, T* __restrict c, T* __restrict h,
                                     const T* __restrict c_prev, const T* __restrict b, int64_t H,
                                     int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const T cp = kPrev ? c_prev[j] : T(0);
      const T i = sigmoid_vec(a[j] + b[j]);
      const T f = sigmoid_vec(a[H + j] + b[H + j]);
      const T g = tanh_vec(a[2 * H + j] + b[2 * H + j]);
      const T o = sigmoid_vec(a[3 * H + j] + b[3 * H + j]);
      a[j] = i, a[H + j] = f, a[2 * H + j] = g, a[3 * H + j] = o;
      c[j] = f * cp + i * g;
      h[j] = o * tanh_vec(c[j]);
    }
  }
};

// The fused backward of one LSTM cell for one example: the total gradient of
// h_t is dh (from step t+1) + dy (this step's output); dc holds that of c_t
// and is overwritten with that of c_{t-1}; dA gets the pre-activation gradients.
// dh is zeroed once read: the caller adds dA · W_hh to it.
template <bool kPrev>
struct LstmCellBackward {
  template <typename T>
  CORENN_SIMD_CLONES static void run(T* __restrict dA, T* __restrict dc, T* __restrict dh, const T* __restrict dy,
                  const T* __restrict a, const T* __restrict c, const T* __restrict c_prev, int64_t H) {
    for (int64_t j = 0; j < H; ++j) {
      const T cp = kPrev ? c_prev[j] : T(0);
      const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
      const T dht = dh[j] + dy[j];
      dh[j] = T(0);
      const T tc = tanh_vec(c[j]);
      const T dct = dc[j] + dht * o * (T(1) - tc * tc);
      dA[j] = dct * g * i * (T(1) - i);
      dA[H + j] = dct * cp * f * (T(1) - f);
      dA[2 * H + j] = dct * i * (T(1) - g * g);
      dA[3 * H + j] = dht * tc * o * (T(1) - o);
      dc[j] = dct * f;
    }
  }
};

// One fused GRU cell pass for one example and the units [j0, j1): from the
// input projection a (3H, without b) and the recurrent one gh (3H, without
// rb), the activated gates [r, z, n] (over a), W_hn h_{t-1} + rb_n and h_t.
template <bool kPrev>
struct GruCellForward {
  template <typename T>
  CORENN_SIMD_CLONES static void run(T* __restrict a, T* __restrict hn, T* __restrict h,
                                     const T* __restrict gh, const T* __restrict hp,
                                     const T* __restrict b, const T* __restrict rb, int64_t H,
                                     int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const T h_prev = kPrev ? hp[j] : T(0);
      const T rg = sigmoid_vec(a[j] + b[j] + gh[j] + rb[j]);
      const T z = sigmoid_vec(a[H + j] + b[H + j] + gh[H + j] + rb[H + j]);
      const T hnj = gh[2 * H + j] + rb[2 * H + j];
      const T nn = tanh_vec(a[2 * H + j] + b[2 * H + j] + rg * hnj);
      a[j] = rg, a[H + j] = z, a[2 * H + j] = nn;
      hn[j] = hnj;
      h[j] = (T(1) - z) * nn + z * h_prev;
    }
  }
};

}  // namespace

// SimpleRNN scratch: pre-activation gradients dA (N, T, H), h_{t-1} (N, T, H), dh (N, H),
// W_hh's backward panels.
int64_t simple_rnn_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return 2 * batch * steps * hidden + batch * hidden + backward_panels_size(hidden, hidden);
}
// LSTM workspace: activated gates [i, f, g, o] (N, T, 4H), cells c_t (N, T, H), W_hh's forward panels.
int64_t lstm_workspace_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 5 * hidden + forward_panels_size(4, hidden);
}
// LSTM scratch: gate gradients dA (N, T, 4H), h_{t-1} (N, T, H), dh and dc (N, H),
// W_hh's backward panels.
int64_t lstm_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 5 * hidden + 2 * batch * hidden + backward_panels_size(4 * hidden, hidden);
}
// GRU workspace: activated gates [r, z, n] (N, T, 3H), W_hn h_{t-1} + rb_n (N, T, H),
// the recurrent projection of one step (N, 3H), W_hh's forward panels.
int64_t gru_workspace_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 4 * hidden + batch * 3 * hidden + forward_panels_size(3, hidden);
}
// GRU scratch: gradients of the input and of the recurrent projections (N, T, 3H)
// each, h_{t-1} (N, T, H), dh (N, H), W_hh's backward panels.
int64_t gru_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 7 * hidden + batch * hidden + backward_panels_size(3 * hidden, hidden);
}

// W_hh's forward panels, as the LSTM and GRU forwards pack them (the panel
// part of their workspaces): forward_panels_size bounds both types.
int64_t recurrent_panels_size(int64_t gates, int64_t hidden) { return forward_panels_size(gates, hidden); }

template <typename T>
void pack_recurrent_panels(T* panels, const T* W_hh, int64_t gates, int64_t hidden) {
  if (gates != 3 && gates != 4)
    throw ValueError("pack_recurrent_panels: gates must be 3 (GRU) or 4 (LSTM), got " + std::to_string(gates));
  const int64_t H = hidden, L = kLane<T>, count = (H + L - 1) / L;
  std::fill(panels + count * H * gates * L, panels + forward_panels_size(gates, H), T(0));
  parallel_for(0, count, 1, [&](int64_t p0, int64_t p1, int) {
    if (gates == 4)
      pack_forward_panels<4>(panels, W_hh, H, p0, p1);
    else
      pack_forward_panels<3>(panels, W_hh, H, p0, p1);
  });
}

// ---------------------------------------------------------------- SimpleRNN

template <typename T>
void simple_rnn_forward(T* y, T* h_T, const T* x, const T* W_ih, const T* W_hh, const T* b,
                        const T* h0, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features, int64_t hidden,
                        const T* recurrent_mask) {
  const int64_t N = batch, S = steps, H = hidden;
  // y first holds the input projections of all steps (one GEMM); step t then
  // adds W_hh h_{t-1} from the finished step t-1 and activates in place.
  gemm<T>(Trans::no, Trans::yes, N * S, H, features, T(1), x, features, W_ih, features, T(0), y, H);
  T* dropped = recurrent_mask ? h_T : nullptr;
  // Threads own batch rows for the whole recurrence, as the LSTM's (there:
  // why); a batch under 2 · kMinRows runs here with each step's GEMM split.
  blas_keep_single_threaded();
  parallel_for(0, N, kMinRows, [&](int64_t lo, int64_t hi, int) {
    for (int64_t t = 0; t < S; ++t) {
      if (dropped) drop_state(dropped, y, h0, recurrent_mask, t, lo, hi, S, H);
      const PreviousState<T> prev = previous_state(y, h0, dropped, t, S, H);
      const T* h_prev = prev.h;
      const int64_t ldh = prev.ld;
      if (h_prev)
        gemm<T>(Trans::no, Trans::yes, hi - lo, H, H, T(1), h_prev + lo * ldh, ldh, W_hh, H, T(1),
                y + lo * S * H + t * H, S * H);
      for (int64_t n = lo; n < hi; ++n) {
        T* h = y + (n * S + t) * H;
        if (masked(mask, n * S + t))
          carry_state(h, t > 0 ? h - H : (h0 ? h0 + n * H : nullptr), 0, H);
        else
          for (int64_t j = 0; j < H; ++j) h[j] = tanh_vec(h[j] + b[j]);
      }
    }
  });
  for (int64_t n = 0; n < N; ++n) std::copy(y + (n * S + S - 1) * H, y + (n * S + S) * H, h_T + n * H);
}

template <typename T>
void simple_rnn_forward_naive(T* y, T* h_T, const T* x, const T* W_ih, const T* W_hh, const T* b,
                              const T* h0, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                              int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden;
  for (int64_t t = 0; t < S; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* h_prev = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      if (masked(mask, r)) {
        carry_state(y + r * H, h_prev, 0, H);
        continue;
      }
      for (int64_t j = 0; j < H; ++j) {
        T acc = b[j];
        for (int64_t q = 0; q < F; ++q) acc += W_ih[j * F + q] * x[r * F + q];
        if (h_prev)
          for (int64_t q = 0; q < H; ++q) acc += W_hh[j * H + q] * (h_prev[q] * kept(recurrent_mask, n * H + q));
        y[r * H + j] = std::tanh(acc);
      }
    }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < H; ++j) h_T[n * H + j] = y[(n * S + S - 1) * H + j];
}

template <typename T>
void simple_rnn_backward(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* scratch, const T* dy,
                         const T* dh_T, const T* x, const T* W_ih, const T* W_hh, const T* h0,
                         const T* y, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                         int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden;
  T* dA = scratch;
  T* h_prev = dA + N * S * H;
  T* dh = h_prev + N * S * H;
  T* panels = dh + N * H;
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  backward_recurrence(panels, W_hh, N, H, H, [&](int64_t lo, int64_t hi) {  // rows [lo, hi), every step
    for (int64_t t = S - 1; t >= 0; --t) {
      for (int64_t n = lo; n < hi; ++n) {
        const int64_t r = n * S + t;
        T* dhn = dh + n * H;
        T* da = dA + r * H;
        if (masked(mask, r)) {  // h_t = h_{t-1}: its whole gradient carries over
          for (int64_t j = 0; j < H; ++j) dhn[j] += dy[r * H + j], da[j] = T(0);
          continue;
        }
        for (int64_t j = 0; j < H; ++j) {
          const T h = y[r * H + j];
          da[j] = (dhn[j] + dy[r * H + j]) * (T(1) - h * h);
          dhn[j] = T(0);
        }
      }
      // dh_{t-1} = dA_t · W_hh, added to dh: zero for a valid row (its gradient
      // went into dA), the carried gradient for a masked one (whose dA is zero).
      add_step_gradient(dh, dA + t * H, S * H, panels, recurrent_mask, lo, hi, H, H);
    }
  });
  std::copy(dh, dh + N * H, dh0);
  gradients_over_all_steps(dx, dW_ih, dW_hh, db, h_prev, dA, dA, x, W_ih, h0, y, recurrent_mask, N, S, F, H, H);
}

template <typename T>
void simple_rnn_backward_naive(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* scratch,
                               const T* dy, const T* dh_T, const T* x, const T* W_ih,
                               const T* W_hh, const T* h0, const T* y, const uint8_t* mask, int64_t batch,
                               int64_t steps, int64_t features, int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden;
  T* dA = scratch;
  T* dh = dA + 2 * N * S * H;
  for (int64_t k = 0; k < N * H; ++k) dh[k] = dh_T ? dh_T[k] : T(0);
  for (int64_t t = S - 1; t >= 0; --t)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* h_prev = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      T* da = dA + r * H;
      if (masked(mask, r)) {
        for (int64_t j = 0; j < H; ++j) dh[n * H + j] += dy[r * H + j], da[j] = T(0);
        std::fill(dx + r * F, dx + (r + 1) * F, T(0));
        continue;
      }
      for (int64_t j = 0; j < H; ++j) da[j] = (dh[n * H + j] + dy[r * H + j]) * (T(1) - y[r * H + j] * y[r * H + j]);
      for (int64_t q = 0; q < H; ++q) {
        T acc = 0;
        for (int64_t j = 0; j < H; ++j) acc += da[j] * W_hh[j * H + q];
        dh[n * H + q] = acc * kept(recurrent_mask, n * H + q);
      }
      for (int64_t q = 0; q < F; ++q) {
        T acc = 0;
        for (int64_t j = 0; j < H; ++j) acc += da[j] * W_ih[j * F + q];
        dx[r * F + q] = acc;
      }
      for (int64_t j = 0; j < H; ++j) {
        db[j] += da[j];
        for (int64_t q = 0; q < F; ++q) dW_ih[j * F + q] += da[j] * x[r * F + q];
        if (h_prev)
          for (int64_t q = 0; q < H; ++q) dW_hh[j * H + q] += da[j] * (h_prev[q] * kept(recurrent_mask, n * H + q));
      }
    }
  for (int64_t k = 0; k < N * H; ++k) dh0[k] = dh[k];
}

// ---------------------------------------------------------------- LSTM

namespace {

// lstm_forward and lstm_forward_packed: W_hh's panels as w says.
template <typename T>
void lstm_forward_with(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih, const ForwardPanels<T>& w,
                       const T* b, const T* h0, const T* c0, const uint8_t* mask, int64_t N, int64_t S, int64_t F,
                       int64_t H, const T* recurrent_mask) {
  const int64_t G = 4 * H;
  T* gates = workspace;
  T* cells = workspace + N * S * G;
  // The input projections of all steps do not depend on the recurrence: one
  // GEMM over the N·T rows instead of T small ones. Each step adds its
  // recurrent product into them, then activates the gates in place.
  gemm<T>(Trans::no, Trans::yes, N * S, G, F, T(1), x, F, W_ih, F, T(0), gates, G);
  forward_recurrence<4, true>(gates, S * G, G, w, y, h0, recurrent_mask, h_T, N, S, H,
                              [&](int64_t t, int64_t n, int64_t u0, int64_t u1) {
    const int64_t r = n * S + t;
    const T* c_prev = t > 0 ? cells + (r - 1) * H : (c0 ? c0 + n * H : nullptr);
    if (masked(mask, r)) {  // the gates computed for this row are left unused
      carry_state(cells + r * H, c_prev, u0, u1);
      carry_state(y + r * H, t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr), u0, u1);
      return;
    }
    with_prev<LstmCellForward>(c_prev, gates + r * G, cells + r * H, y + r * H, c_prev, b, H, u0, u1);
  });
  for (int64_t n = 0; n < N; ++n) {
    std::copy(y + (n * S + S - 1) * H, y + (n * S + S) * H, h_T + n * H);
    std::copy(cells + (n * S + S - 1) * H, cells + (n * S + S) * H, c_T + n * H);
  }
}

}  // namespace

template <typename T>
void lstm_forward(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                  const T* b, const T* h0, const T* c0, const uint8_t* mask, int64_t batch, int64_t steps,
                  int64_t features, int64_t hidden, const T* recurrent_mask) {
  T* panels = workspace + batch * steps * 5 * hidden;
  lstm_forward_with<T>(y, h_T, c_T, workspace, x, W_ih, {nullptr, panels, W_hh}, b, h0, c0, mask, batch, steps,
                       features, hidden, recurrent_mask);
}

template <typename T>
void lstm_forward_packed(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih, const T* panels,
                         const T* b, const T* h0, const T* c0, const uint8_t* mask, int64_t batch, int64_t steps,
                         int64_t features, int64_t hidden, const T* recurrent_mask) {
  lstm_forward_with<T>(y, h_T, c_T, workspace, x, W_ih, {panels, nullptr, nullptr}, b, h0, c0, mask, batch, steps,
                       features, hidden, recurrent_mask);
}

template <typename T>
void lstm_forward_naive(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih,
                        const T* W_hh, const T* b, const T* h0, const T* c0, const uint8_t* mask, int64_t batch,
                        int64_t steps, int64_t features, int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 4 * hidden;
  T* gates = workspace;
  T* cells = workspace + N * S * G;
  for (int64_t t = 0; t < S; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const T* xt = x + (n * S + t) * F;
      const T* h_prev = t > 0 ? y + (n * S + t - 1) * H : (h0 ? h0 + n * H : nullptr);
      const T* c_prev = t > 0 ? cells + (n * S + t - 1) * H : (c0 ? c0 + n * H : nullptr);
      T* a = gates + (n * S + t) * G;
      if (masked(mask, n * S + t)) {
        std::fill(a, a + G, T(0));
        carry_state(cells + (n * S + t) * H, c_prev, 0, H);
        carry_state(y + (n * S + t) * H, h_prev, 0, H);
        continue;
      }
      for (int64_t k = 0; k < G; ++k) {
        T acc = b[k];
        for (int64_t q = 0; q < F; ++q) acc += W_ih[k * F + q] * xt[q];
        if (h_prev)
          for (int64_t q = 0; q < H; ++q) acc += W_hh[k * H + q] * (h_prev[q] * kept(recurrent_mask, n * H + q));
        a[k] = acc;
      }
      for (int64_t j = 0; j < H; ++j) {
        a[j] = sigmoid(a[j]);
        a[H + j] = sigmoid(a[H + j]);
        a[2 * H + j] = std::tanh(a[2 * H + j]);
        a[3 * H + j] = sigmoid(a[3 * H + j]);
        T& c = cells[(n * S + t) * H + j];
        c = a[H + j] * (c_prev ? c_prev[j] : T(0)) + a[j] * a[2 * H + j];
        y[(n * S + t) * H + j] = a[3 * H + j] * std::tanh(c);
      }
    }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < H; ++j) {
      h_T[n * H + j] = y[(n * S + S - 1) * H + j];
      c_T[n * H + j] = cells[(n * S + S - 1) * H + j];
    }
}

// Backward of one LSTM cell for one example: from dh (the total gradient of h_t)
// and dc (of c_t from step t+1), the pre-activation gradients dA and the
// gradient of c_{t-1} (written over dc).
template <typename T>
inline void lstm_cell_backward(T* dA, T* dc, const T* dh, const T* a, const T* c,
                               const T* c_prev, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T i = a[j], f = a[H + j], g = a[2 * H + j], o = a[3 * H + j];
    const T tc = std::tanh(c[j]);
    const T dct = dc[j] + dh[j] * o * (T(1) - tc * tc);
    dA[j] = dct * g * i * (T(1) - i);
    dA[H + j] = dct * (c_prev ? c_prev[j] : T(0)) * f * (T(1) - f);
    dA[2 * H + j] = dct * i * (T(1) - g * g);
    dA[3 * H + j] = dh[j] * tc * o * (T(1) - o);
    dc[j] = dct * f;
  }
}

template <typename T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dW_ih, T* dW_hh, T* db, T* scratch, const T* dy,
                   const T* dh_T, const T* dc_T, const T* x, const T* W_ih, const T* W_hh,
                   const T* h0, const T* c0, const T* y, const T* workspace, const uint8_t* mask, int64_t batch,
                   int64_t steps, int64_t features, int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 4 * hidden;
  const T* gates = workspace;
  const T* cells = workspace + N * S * G;
  T* dA = scratch;
  T* h_prev = dA + N * S * G;
  T* dh = h_prev + N * S * H;
  T* dc = dh + N * H;
  T* panels = dc + N * H;
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  if (dc_T) std::copy(dc_T, dc_T + N * H, dc); else std::fill(dc, dc + N * H, T(0));
  backward_recurrence(panels, W_hh, N, G, H, [&](int64_t lo, int64_t hi) {  // rows [lo, hi), every step
    for (int64_t t = S - 1; t >= 0; --t) {
      for (int64_t n = lo; n < hi; ++n) {
        const int64_t r = n * S + t;
        if (masked(mask, r)) {  // h_t = h_{t-1}, c_t = c_{t-1}: dh and dc carry over
          for (int64_t j = 0; j < H; ++j) dh[n * H + j] += dy[r * H + j];
          std::fill(dA + r * G, dA + (r + 1) * G, T(0));
          continue;
        }
        const T* c_prev = t > 0 ? cells + (r - 1) * H : (c0 ? c0 + n * H : nullptr);
        with_prev<LstmCellBackward>(c_prev, dA + r * G, dc + n * H, dh + n * H, dy + r * H,
                                    gates + r * G, cells + r * H, c_prev, H);
      }
      // dh_{t-1} = dA_t · W_hh, added to dh (zero for a valid row, the
      // carried gradient for a masked one).
      add_step_gradient(dh, dA + t * G, S * G, panels, recurrent_mask, lo, hi, G, H);
    }
  });
  std::copy(dh, dh + N * H, dh0);
  std::copy(dc, dc + N * H, dc0);
  gradients_over_all_steps(dx, dW_ih, dW_hh, db, h_prev, dA, dA, x, W_ih, h0, y, recurrent_mask, N, S, F, H, G);
}

template <typename T>
void lstm_backward_naive(T* dx, T* dh0, T* dc0, T* dW_ih, T* dW_hh, T* db, T* scratch,
                         const T* dy, const T* dh_T, const T* dc_T, const T* x, const T* W_ih,
                         const T* W_hh, const T* h0, const T* c0, const T* y,
                         const T* workspace, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                         int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 4 * hidden;
  const T* gates = workspace;
  const T* cells = workspace + N * S * G;
  T* dA = scratch;
  T* dh = dA + N * S * G + N * S * H;
  T* dc = dh + N * H;
  for (int64_t k = 0; k < N * H; ++k) {
    dh[k] = dh_T ? dh_T[k] : T(0);
    dc[k] = dc_T ? dc_T[k] : T(0);
  }
  for (int64_t t = S - 1; t >= 0; --t) {
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      for (int64_t j = 0; j < H; ++j) dh[n * H + j] += dy[r * H + j];
      if (masked(mask, r)) {
        std::fill(dA + r * G, dA + (r + 1) * G, T(0));
        continue;
      }
      const T* c_prev = t > 0 ? cells + (r - 1) * H : (c0 ? c0 + n * H : nullptr);
      lstm_cell_backward(dA + r * G, dc + n * H, dh + n * H, gates + r * G, cells + r * H, c_prev, H);
    }
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* h_prev = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      if (!masked(mask, r))  // a masked step keeps dh as it is
        for (int64_t q = 0; q < H; ++q) {
          T acc = 0;
          for (int64_t k = 0; k < G; ++k) acc += dA[r * G + k] * W_hh[k * H + q];
          dh[n * H + q] = acc * kept(recurrent_mask, n * H + q);
        }
      for (int64_t q = 0; q < F; ++q) {
        T acc = 0;
        for (int64_t k = 0; k < G; ++k) acc += dA[r * G + k] * W_ih[k * F + q];
        dx[r * F + q] = acc;
      }
      for (int64_t k = 0; k < G; ++k) {
        db[k] += dA[r * G + k];
        for (int64_t q = 0; q < F; ++q) dW_ih[k * F + q] += dA[r * G + k] * x[r * F + q];
        if (h_prev)
          for (int64_t q = 0; q < H; ++q) dW_hh[k * H + q] += dA[r * G + k] * (h_prev[q] * kept(recurrent_mask, n * H + q));
      }
    }
  }
  for (int64_t k = 0; k < N * H; ++k) dh0[k] = dh[k], dc0[k] = dc[k];
}

// ---------------------------------------------------------------- GRU

namespace {

// gru_forward and gru_forward_packed: W_hh's panels as w says.
template <typename T>
void gru_forward_with(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const ForwardPanels<T>& w, const T* b,
                      const T* rb, const T* h0, const uint8_t* mask, int64_t N, int64_t S, int64_t F, int64_t H,
                      const T* recurrent_mask) {
  const int64_t G = 3 * H;
  T* gates = workspace;
  T* hn_all = gates + N * S * G;
  T* gh = hn_all + N * S * H;
  gemm<T>(Trans::no, Trans::yes, N * S, G, F, T(1), x, F, W_ih, F, T(0), gates, G);
  // r multiplies W_hn h + rb_n only, so the recurrent projection cannot be
  // added into the input projection as in the LSTM: it gets its own buffer
  // (one step's, gh row n).
  forward_recurrence<3, false>(gh, G, 0, w, y, h0, recurrent_mask, h_T, N, S, H,
                               [&](int64_t t, int64_t n, int64_t u0, int64_t u1) {
    const int64_t r = n * S + t;
    const T* hp = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
    if (masked(mask, r)) {
      carry_state(y + r * H, hp, u0, u1);
      return;
    }
    with_prev<GruCellForward>(hp, gates + r * G, hn_all + r * H, y + r * H, gh + n * G, hp, b, rb, H, u0, u1);
  });
  for (int64_t n = 0; n < N; ++n) std::copy(y + (n * S + S - 1) * H, y + (n * S + S) * H, h_T + n * H);
}

}  // namespace

template <typename T>
void gru_forward(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                 const T* b, const T* rb, const T* h0, const uint8_t* mask, int64_t batch, int64_t steps,
                 int64_t features, int64_t hidden, const T* recurrent_mask) {
  T* panels = workspace + batch * steps * 4 * hidden + batch * 3 * hidden;
  gru_forward_with<T>(y, h_T, workspace, x, W_ih, {nullptr, panels, W_hh}, b, rb, h0, mask, batch, steps, features,
                      hidden, recurrent_mask);
}

template <typename T>
void gru_forward_packed(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* panels, const T* b,
                        const T* rb, const T* h0, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                        int64_t hidden, const T* recurrent_mask) {
  gru_forward_with<T>(y, h_T, workspace, x, W_ih, {panels, nullptr, nullptr}, b, rb, h0, mask, batch, steps, features,
                      hidden, recurrent_mask);
}

template <typename T>
void gru_forward_naive(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                       const T* b, const T* rb, const T* h0, const uint8_t* mask, int64_t batch, int64_t steps,
                       int64_t features, int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 3 * hidden;
  T* gates = workspace;
  T* hn_all = gates + N * S * G;
  for (int64_t t = 0; t < S; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* hp = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      T* a = gates + r * G;
      if (masked(mask, r)) {
        std::fill(a, a + G, T(0));
        std::fill(hn_all + r * H, hn_all + (r + 1) * H, T(0));
        carry_state(y + r * H, hp, 0, H);
        continue;
      }
      // a[k] = W_ih x + b; hh[k] = W_hh h + rb (the two projections stay apart for n).
      for (int64_t k = 0; k < G; ++k) {
        T acc = b[k];
        for (int64_t q = 0; q < F; ++q) acc += W_ih[k * F + q] * x[r * F + q];
        a[k] = acc;
      }
      for (int64_t j = 0; j < H; ++j) {
        T hh[3];
        for (int64_t s = 0; s < 3; ++s) {
          const int64_t k = s * H + j;
          T acc = rb[k];
          if (hp)
            for (int64_t q = 0; q < H; ++q) acc += W_hh[k * H + q] * (hp[q] * kept(recurrent_mask, n * H + q));
          hh[s] = acc;
        }
        const T rg = sigmoid(a[j] + hh[0]);
        const T z = sigmoid(a[H + j] + hh[1]);
        const T nn = std::tanh(a[2 * H + j] + rg * hh[2]);
        hn_all[r * H + j] = hh[2];
        a[j] = rg, a[H + j] = z, a[2 * H + j] = nn;
        y[r * H + j] = (T(1) - z) * nn + z * (hp ? hp[j] : T(0));
      }
    }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < H; ++j) h_T[n * H + j] = y[(n * S + S - 1) * H + j];
}

// Backward of one GRU cell for one example: from dh (the total gradient of h_t),
// the gradients of the input projection dX = [da_r, da_z, da_n], of the
// recurrent projection dR = [da_r, da_z, r ⊙ da_n], and the direct part z ⊙ dh of
// the gradient of h_{t-1} (written over dh; the caller adds dR · W_hh).
template <bool kPrev>
struct GruCellBackward {
  template <typename T>
  CORENN_SIMD_CLONES static void run(T* __restrict dX, T* __restrict dR, T* __restrict dh, const T* __restrict a,
                  const T* __restrict hn, const T* __restrict hp, int64_t H) {
    for (int64_t j = 0; j < H; ++j) {
      const T h_prev = kPrev ? hp[j] : T(0);
      const T rg = a[j], z = a[H + j], nn = a[2 * H + j];
      const T dan = dh[j] * (T(1) - z) * (T(1) - nn * nn);
      const T daz = dh[j] * (h_prev - nn) * z * (T(1) - z);
      const T dar = dan * hn[j] * rg * (T(1) - rg);
      dX[j] = dar, dX[H + j] = daz, dX[2 * H + j] = dan;
      dR[j] = dar, dR[H + j] = daz, dR[2 * H + j] = dan * rg;
      dh[j] *= z;
    }
  }
};

template <typename T>
void gru_backward(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* drb, T* scratch, const T* dy,
                  const T* dh_T, const T* x, const T* W_ih, const T* W_hh, const T* h0,
                  const T* y, const T* workspace, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                  int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 3 * hidden;
  const T* gates = workspace;
  const T* hn_all = gates + N * S * G;
  T* dX = scratch;
  T* dR = dX + N * S * G;
  T* h_prev = dR + N * S * G;
  T* dh = h_prev + N * S * H;
  T* panels = dh + N * H;
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  backward_recurrence(panels, W_hh, N, G, H, [&](int64_t lo, int64_t hi) {  // rows [lo, hi), every step
    for (int64_t t = S - 1; t >= 0; --t) {
      for (int64_t n = lo; n < hi; ++n) {
        const int64_t r = n * S + t;
        T* dhn = dh + n * H;
        for (int64_t j = 0; j < H; ++j) dhn[j] += dy[r * H + j];
        if (masked(mask, r)) {  // h_t = h_{t-1}: dh carries over
          std::fill(dX + r * G, dX + (r + 1) * G, T(0));
          std::fill(dR + r * G, dR + (r + 1) * G, T(0));
          continue;
        }
        const T* hp = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
        with_prev<GruCellBackward>(hp, dX + r * G, dR + r * G, dhn, gates + r * G, hn_all + r * H, hp, H);
      }
      add_step_gradient(dh, dR + t * G, S * G, panels, recurrent_mask, lo, hi, G, H);
    }
  });
  std::copy(dh, dh + N * H, dh0);
  gradients_over_all_steps(dx, dW_ih, dW_hh, db, h_prev, dX, dR, x, W_ih, h0, y, recurrent_mask, N, S, F, H, G);
  add_column_sums(drb, dR, N * S, G);
}

template <typename T>
void gru_backward_naive(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* drb, T* scratch,
                        const T* dy, const T* dh_T, const T* x, const T* W_ih, const T* W_hh,
                        const T* h0, const T* y, const T* workspace, const uint8_t* mask, int64_t batch,
                        int64_t steps, int64_t features, int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 3 * hidden;
  const T* gates = workspace;
  const T* hn_all = gates + N * S * G;
  T* dX = scratch;
  T* dR = dX + N * S * G;
  T* dh = dR + N * S * G + N * S * H;
  for (int64_t k = 0; k < N * H; ++k) dh[k] = dh_T ? dh_T[k] : T(0);
  for (int64_t t = S - 1; t >= 0; --t)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* hp = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      for (int64_t j = 0; j < H; ++j) dh[n * H + j] += dy[r * H + j];
      if (masked(mask, r)) {
        std::fill(dX + r * G, dX + (r + 1) * G, T(0));
        std::fill(dR + r * G, dR + (r + 1) * G, T(0));
        std::fill(dx + r * F, dx + (r + 1) * F, T(0));
        continue;
      }
      with_prev<GruCellBackward>(hp, dX + r * G, dR + r * G, dh + n * H, gates + r * G, hn_all + r * H, hp, H);
      for (int64_t q = 0; q < H; ++q) {
        T acc = 0;
        for (int64_t k = 0; k < G; ++k) acc += dR[r * G + k] * W_hh[k * H + q];
        dh[n * H + q] += acc * kept(recurrent_mask, n * H + q);
      }
      for (int64_t q = 0; q < F; ++q) {
        T acc = 0;
        for (int64_t k = 0; k < G; ++k) acc += dX[r * G + k] * W_ih[k * F + q];
        dx[r * F + q] = acc;
      }
      for (int64_t k = 0; k < G; ++k) {
        db[k] += dX[r * G + k];
        drb[k] += dR[r * G + k];
        for (int64_t q = 0; q < F; ++q) dW_ih[k * F + q] += dX[r * G + k] * x[r * F + q];
        if (hp)
          for (int64_t q = 0; q < H; ++q) dW_hh[k * H + q] += dR[r * G + k] * (hp[q] * kept(recurrent_mask, n * H + q));
      }
    }
  for (int64_t k = 0; k < N * H; ++k) dh0[k] = dh[k];
}

#define CORENN_INSTANTIATE(T)                                                                       \
  template void pack_recurrent_panels<T>(T*, const T*, int64_t, int64_t);                             \
  template void lstm_forward_packed<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                       const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*); \
  template void gru_forward_packed<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,   \
                                      const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*); \
  template void simple_rnn_forward<T>(T*, T*, const T*, const T*, const T*, const T*, const T*,     \
                                      const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*);                          \
  template void simple_rnn_forward_naive<T>(T*, T*, const T*, const T*, const T*, const T*,         \
                                            const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*);          \
  template void simple_rnn_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,        \
                                       const T*, const T*, const T*, const T*, const uint8_t*, int64_t, int64_t,    \
                                       int64_t, int64_t, const T*);                                           \
  template void simple_rnn_backward_naive<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,  \
                                             const T*, const T*, const T*, const T*, const uint8_t*, int64_t,       \
                                             int64_t, int64_t, int64_t, const T*);                            \
  template void lstm_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*,   \
                                const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*);                      \
  template void lstm_forward_naive<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,       \
                                      const T*, const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*);      \
  template void lstm_backward<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,          \
                                 const T*, const T*, const T*, const T*, const T*, const T*,        \
                                 const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*);                     \
  template void lstm_backward_naive<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                       const T*, const T*, const T*, const T*, const T*, const T*,  \
                                       const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*);               \
  template void gru_forward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,        \
                               const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*);                       \
  template void gru_forward_naive<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,  \
                                     const T*, const uint8_t*, int64_t, int64_t, int64_t, int64_t, const T*);                 \
  template void gru_backward<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*, \
                                const T*, const T*, const T*, const T*, const uint8_t*, int64_t, int64_t, int64_t,  \
                                int64_t, const T*);                                                           \
  template void gru_backward_naive<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,     \
                                      const T*, const T*, const T*, const T*, const T*, const uint8_t*, int64_t,    \
                                      int64_t, int64_t, int64_t, const T*);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
