#include "corenn/kernels/recurrent.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/gemm.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

using detail::gemm;
using detail::parallel_for;
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

// The weights operand of the per-step product h_{t-1} · W_hhᵀ (N, G).
template <typename T>
struct StepWeights {
  const T* W;
  Trans trans;
  int64_t ld;
  // The operand for columns c0.. of the product (rows c0.. of W_hh).
  const T* columns(int64_t c0) const { return trans == Trans::no ? W + c0 : W + c0 * ld; }
};

// W_hh (G, H) transposed into W_t (H, G), once per forward call: the per-step
// product then reads its weights row-major (GEMM "nn"), which OpenBLAS packs
// and runs faster than the transposed operand: 81 against 69 GFLOP/s per core
// for the (64, 512, 256) panels of the benchmark's LSTM. A batch of one is a
// matrix-vector product (gemv), which reads W_hh as stored at full speed, so
// it is used as it is.
template <typename T>
StepWeights<T> step_weights(T* W_t, const T* W_hh, int64_t batch, int64_t G, int64_t H) {
  if (batch == 1) return {W_hh, Trans::yes, H};
  constexpr int64_t kTile = 32;
  parallel_for(0, H, kTile * 4, [&](int64_t lo, int64_t hi, int) {
    for (int64_t k0 = 0; k0 < G; k0 += kTile)
      for (int64_t q = lo; q < hi; ++q)
        for (int64_t k = k0; k < std::min(G, k0 + kTile); ++k) W_t[q * G + k] = W_hh[k * H + q];
  });
  return {W_t, Trans::no, G};
}

// How the recurrence is threaded. The steps are sequential, so a step shared
// by several threads ends in a join, and on a busy machine each join waits for
// a descheduled thread (two threads with one join per step ran 3-8x slower
// than one thread there). Examples are independent, though: with at least
// kMinRows rows per thread (fewer run BLAS far below its peak), each thread
// runs the whole recurrence, forward or backward, for its own examples (its
// rows of each step's GEMM, then its rows' fused pass) without any join. A
// smaller batch runs on the calling thread; its forward steps split the hidden
// units instead (a thread computes its units' gate columns, then their fused
// pass: one join per step) when each thread's share of a step's product is at
// least kStepWork multiply-adds (about a fork/join's cost), and its backward
// steps' GEMMs split over the threads themselves.
constexpr int64_t kStepWork = int64_t(1) << 17;
constexpr int64_t kMinRows = 16;

int64_t unit_grain(int64_t batch, int64_t gates, int64_t hidden) {
  return std::max<int64_t>(8, kStepWork / std::max<int64_t>(1, batch * gates * hidden));
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

// dh_{t-1} += dA_t · W_hh for the examples [lo, hi) (dA_t: their rows of step
// t's G gate gradients, leading dimension ld). With recurrent dropout the
// product read h_{t-1} ⊙ m, so the gradient is (dA_t · W_hh) ⊙ m, formed in
// `product` (N, H) first.
template <typename T>
void add_state_gradient(T* dh, T* product, const T* dA_t, int64_t ld, const T* W_hh, const T* recurrent_mask,
                        int64_t lo, int64_t hi, int64_t H, int64_t G) {
  if (!recurrent_mask) {
    gemm<T>(Trans::no, Trans::no, hi - lo, H, G, T(1), dA_t, ld, W_hh, H, T(1), dh + lo * H, H);
    return;
  }
  gemm<T>(Trans::no, Trans::no, hi - lo, H, G, T(1), dA_t, ld, W_hh, H, T(0), product + lo * H, H);
  for (int64_t i = lo * H; i < hi * H; ++i) dh[i] += product[i] * recurrent_mask[i];
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

// SimpleRNN scratch: pre-activation gradients dA (N, T, H), h_{t-1} (N, T, H), dh (N, H).
int64_t simple_rnn_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return 2 * batch * steps * hidden + batch * hidden;
}
// LSTM workspace: activated gates [i, f, g, o] (N, T, 4H), cells c_t (N, T, H), W_hhᵀ (H, 4H).
int64_t lstm_workspace_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 5 * hidden + 4 * hidden * hidden;
}
// LSTM scratch: gate gradients dA (N, T, 4H), h_{t-1} (N, T, H), dh and dc (N, H).
int64_t lstm_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 5 * hidden + 2 * batch * hidden;
}
// GRU workspace: activated gates [r, z, n] (N, T, 3H), W_hn h_{t-1} + rb_n (N, T, H),
// the recurrent projection of one step (N, 3H), W_hhᵀ (H, 3H).
int64_t gru_workspace_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 4 * hidden + batch * 3 * hidden + 3 * hidden * hidden;
}
// GRU scratch: gradients of the input and of the recurrent projections (N, T, 3H)
// each, h_{t-1} (N, T, H), dh (N, H).
int64_t gru_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 7 * hidden + batch * hidden;
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
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  blas_keep_single_threaded();
  parallel_for(0, N, kMinRows, [&](int64_t lo, int64_t hi, int) {  // rows [lo, hi), every step
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
      // h_prev is free until after the loop.
      add_state_gradient(dh, h_prev, dA + (lo * S + t) * H, S * H, W_hh, recurrent_mask, lo, hi, H, H);
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

template <typename T>
void lstm_forward(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                  const T* b, const T* h0, const T* c0, const uint8_t* mask, int64_t batch, int64_t steps,
                  int64_t features, int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, H = hidden, G = 4 * hidden;
  T* gates = workspace;
  T* cells = workspace + N * S * G;
  T* W_hh_t = cells + N * S * H;
  // The input projections of all steps do not depend on the recurrence: one
  // GEMM over the N·T rows instead of T small ones.
  gemm<T>(Trans::no, Trans::yes, N * S, G, features, T(1), x, features, W_ih, features, T(0), gates, G);
  const StepWeights<T> Wr = step_weights(W_hh_t, W_hh, N, G, H);
  T* dropped = recurrent_mask ? h_T : nullptr;
  // Step t for the examples [lo, hi) and the units [u0, u1): the recurrent
  // products of the four gate column blocks (one GEMM when all units are
  // there: the blocks are adjacent), then the fused pass.
  auto step = [&](int64_t t, int64_t lo, int64_t hi, int64_t u0, int64_t u1) {
    const PreviousState<T> prev = previous_state(y, h0, dropped, t, S, H);
    const T* h_prev = prev.h;
    const int64_t ldh = prev.ld;
    const bool all_units = u1 - u0 == H;
    T* a = gates + (lo * S + t) * G;  // leading dimension S·G
    if (h_prev)
      for (int64_t g = 0; g < (all_units ? 1 : 4); ++g)
        gemm<T>(Trans::no, Wr.trans, hi - lo, all_units ? G : u1 - u0, H, T(1), h_prev + lo * ldh, ldh,
                Wr.columns(g * H + u0), Wr.ld, T(1), a + g * H + u0, S * G);
    for (int64_t n = lo; n < hi; ++n) {
      const int64_t r = n * S + t;
      const T* c_prev = t > 0 ? cells + (r - 1) * H : (c0 ? c0 + n * H : nullptr);
      if (masked(mask, r)) {  // the gates computed for this row are left unused
        carry_state(cells + r * H, c_prev, u0, u1);
        carry_state(y + r * H, t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr), u0, u1);
        continue;
      }
      with_prev<LstmCellForward>(c_prev, gates + r * G, cells + r * H, y + r * H, c_prev, b, H, u0, u1);
    }
  };
  blas_keep_single_threaded();
  parallel_for(0, N, kMinRows, [&](int64_t lo, int64_t hi, int) {
    for (int64_t t = 0; t < S; ++t) {
      if (dropped) drop_state(dropped, y, h0, recurrent_mask, t, lo, hi, S, H);
      if (hi - lo < N)
        step(t, lo, hi, 0, H);
      else
        parallel_for(0, H, unit_grain(N, 4, H), [&](int64_t u0, int64_t u1, int) { step(t, 0, N, u0, u1); });
    }
  });
  for (int64_t n = 0; n < N; ++n) {
    std::copy(y + (n * S + S - 1) * H, y + (n * S + S) * H, h_T + n * H);
    std::copy(cells + (n * S + S - 1) * H, cells + (n * S + S) * H, c_T + n * H);
  }
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
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  if (dc_T) std::copy(dc_T, dc_T + N * H, dc); else std::fill(dc, dc + N * H, T(0));
  blas_keep_single_threaded();
  parallel_for(0, N, kMinRows, [&](int64_t lo, int64_t hi, int) {  // rows [lo, hi), every step
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
      // dh_{t-1} = dA_t · W_hh: the only GEMM the recurrence forces per step,
      // added to dh (zero for a valid row, the carried gradient for a masked
      // one). h_prev is free until after the loop.
      add_state_gradient(dh, h_prev, dA + (lo * S + t) * G, S * G, W_hh, recurrent_mask, lo, hi, H, G);
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

template <typename T>
void gru_forward(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                 const T* b, const T* rb, const T* h0, const uint8_t* mask, int64_t batch, int64_t steps,
                 int64_t features, int64_t hidden, const T* recurrent_mask) {
  const int64_t N = batch, S = steps, H = hidden, G = 3 * hidden;
  T* gates = workspace;
  T* hn_all = gates + N * S * G;
  T* gh = hn_all + N * S * H;
  T* W_hh_t = gh + N * G;
  gemm<T>(Trans::no, Trans::yes, N * S, G, features, T(1), x, features, W_ih, features, T(0), gates, G);
  const StepWeights<T> Wr = step_weights(W_hh_t, W_hh, N, G, H);
  T* dropped = recurrent_mask ? h_T : nullptr;
  // Step t for the examples [lo, hi) and the units [u0, u1), as the LSTM's.
  // r multiplies W_hn h + rb_n only, so the recurrent projection cannot be
  // added into the input projection as in the LSTM: it gets its own buffer.
  auto step = [&](int64_t t, int64_t lo, int64_t hi, int64_t u0, int64_t u1) {
    const PreviousState<T> prev = previous_state(y, h0, dropped, t, S, H);
    const T* h_prev = prev.h;
    const int64_t ldh = prev.ld;
    const bool all_units = u1 - u0 == H;
    const int64_t width = all_units ? G : u1 - u0;
    for (int64_t g = 0; g < (all_units ? 1 : 3); ++g) {
      if (h_prev)
        gemm<T>(Trans::no, Wr.trans, hi - lo, width, H, T(1), h_prev + lo * ldh, ldh,
                Wr.columns(g * H + u0), Wr.ld, T(0), gh + lo * G + g * H + u0, G);
      else
        for (int64_t n = lo; n < hi; ++n) std::fill_n(gh + n * G + g * H + u0, width, T(0));
    }
    for (int64_t n = lo; n < hi; ++n) {
      const int64_t r = n * S + t;
      const T* hp = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      if (masked(mask, r)) {
        carry_state(y + r * H, hp, u0, u1);
        continue;
      }
      with_prev<GruCellForward>(hp, gates + r * G, hn_all + r * H, y + r * H, gh + n * G, hp, b, rb, H,
                                u0, u1);
    }
  };
  blas_keep_single_threaded();
  parallel_for(0, N, kMinRows, [&](int64_t lo, int64_t hi, int) {
    for (int64_t t = 0; t < S; ++t) {
      if (dropped) drop_state(dropped, y, h0, recurrent_mask, t, lo, hi, S, H);
      if (hi - lo < N)
        step(t, lo, hi, 0, H);
      else
        parallel_for(0, H, unit_grain(N, 3, H), [&](int64_t u0, int64_t u1, int) { step(t, 0, N, u0, u1); });
    }
  });
  for (int64_t n = 0; n < N; ++n) std::copy(y + (n * S + S - 1) * H, y + (n * S + S) * H, h_T + n * H);
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
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  blas_keep_single_threaded();
  parallel_for(0, N, kMinRows, [&](int64_t lo, int64_t hi, int) {  // rows [lo, hi), every step
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
      // h_prev is free until after the loop.
      add_state_gradient(dh, h_prev, dR + (lo * S + t) * G, S * G, W_hh, recurrent_mask, lo, hi, H, G);
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
