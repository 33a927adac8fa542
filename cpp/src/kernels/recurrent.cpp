#include "corenn/kernels/recurrent.hpp"

#include <algorithm>
#include <cmath>

#include "backend/gemm.hpp"
#include "backend/parallel.hpp"

namespace corenn {

using detail::gemm;
using detail::parallel_for;
using detail::Trans;

namespace {

template <typename T>
T sigmoid(T a) {
  return T(1) / (T(1) + std::exp(-a));
}

// Rows of the batch per thread chunk: the element-wise passes take a sigmoid
// or tanh per value.
int64_t row_grain(int64_t row_width) { return detail::grain_for(detail::kTranscendentalWork * row_width); }

// h_{t-1} of every example as one (N, T, H) matrix: h0 (or zeros) then y
// shifted by one step, so dW_hh is one GEMM over all N·T rows.
template <typename T>
void previous_states(T* h_prev, const T* h0, const T* y, int64_t batch, int64_t steps, int64_t hidden) {
  for (int64_t n = 0; n < batch; ++n) {
    T* row = h_prev + n * steps * hidden;
    if (h0)
      std::copy(h0 + n * hidden, h0 + (n + 1) * hidden, row);
    else
      std::fill(row, row + hidden, T(0));
    std::copy(y + n * steps * hidden, y + (n * steps + steps - 1) * hidden, row + hidden);
  }
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

// What the backward sums over every step, once the recurrence has produced the
// gate gradients of all N·T rows: dx, dW_ih and db from dA_in, dW_hh from
// dA_rec (the same matrix but for the GRU, whose recurrent products have a gate
// gradient of their own). Three large GEMMs instead of T small ones each.
template <typename T>
void gradients_over_all_steps(T* dx, T* dW_ih, T* dW_hh, T* db, T* h_prev, const T* dA_in,
                              const T* dA_rec, const T* x, const T* W_ih, const T* h0, const T* y,
                              int64_t N, int64_t S, int64_t F, int64_t H, int64_t G) {
  previous_states(h_prev, h0, y, N, S, H);
  gemm<T>(Trans::no, Trans::no, N * S, F, G, T(1), dA_in, G, W_ih, F, T(0), dx, F);
  gemm<T>(Trans::yes, Trans::no, G, F, N * S, T(1), dA_in, G, x, F, T(1), dW_ih, F);
  gemm<T>(Trans::yes, Trans::no, G, H, N * S, T(1), dA_rec, G, h_prev, H, T(1), dW_hh, H);
  add_column_sums(db, dA_in, N * S, G);
}

}  // namespace

// SimpleRNN scratch: pre-activation gradients dA (N, T, H), h_{t-1} (N, T, H), dh (N, H).
int64_t simple_rnn_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return 2 * batch * steps * hidden + batch * hidden;
}
// LSTM workspace: activated gates [i, f, g, o] (N, T, 4H), then cells c_t (N, T, H).
int64_t lstm_workspace_size(int64_t batch, int64_t steps, int64_t hidden) { return batch * steps * 5 * hidden; }
// LSTM scratch: gate gradients dA (N, T, 4H), h_{t-1} (N, T, H), dh and dc (N, H).
int64_t lstm_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 5 * hidden + 2 * batch * hidden;
}
// GRU workspace: activated gates [r, z, n] (N, T, 3H), W_hn h_{t-1} + rb_n (N, T, H),
// the recurrent projection of one step (N, 3H).
int64_t gru_workspace_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 4 * hidden + batch * 3 * hidden;
}
// GRU scratch: gradients of the input and of the recurrent projections (N, T, 3H)
// each, h_{t-1} (N, T, H), dh (N, H).
int64_t gru_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden) {
  return batch * steps * 7 * hidden + batch * hidden;
}

// ---------------------------------------------------------------- SimpleRNN

template <typename T>
void simple_rnn_forward(T* y, T* h_T, const T* x, const T* W_ih, const T* W_hh, const T* b,
                        const T* h0, int64_t batch, int64_t steps, int64_t features, int64_t hidden) {
  const int64_t N = batch, S = steps, H = hidden;
  // y first holds the input projections of all steps (one GEMM); step t then
  // adds W_hh h_{t-1} from the finished step t-1 and activates in place.
  gemm<T>(Trans::no, Trans::yes, N * S, H, features, T(1), x, features, W_ih, features, T(0), y, H);
  for (int64_t t = 0; t < S; ++t) {
    const T* h_prev = t > 0 ? y + (t - 1) * H : h0;
    const int64_t ldh = t > 0 ? S * H : H;
    if (h_prev) gemm<T>(Trans::no, Trans::yes, N, H, H, T(1), h_prev, ldh, W_hh, H, T(1), y + t * H, S * H);
    parallel_for(0, N, row_grain(H), [&](int64_t lo, int64_t hi, int) {
      for (int64_t n = lo; n < hi; ++n) {
        T* h = y + (n * S + t) * H;
        for (int64_t j = 0; j < H; ++j) h[j] = std::tanh(h[j] + b[j]);
      }
    });
  }
  for (int64_t n = 0; n < N; ++n) std::copy(y + (n * S + S - 1) * H, y + (n * S + S) * H, h_T + n * H);
}

template <typename T>
void simple_rnn_forward_naive(T* y, T* h_T, const T* x, const T* W_ih, const T* W_hh, const T* b,
                              const T* h0, int64_t batch, int64_t steps, int64_t features,
                              int64_t hidden) {
  const int64_t N = batch, S = steps, F = features, H = hidden;
  for (int64_t t = 0; t < S; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* h_prev = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      for (int64_t j = 0; j < H; ++j) {
        T acc = b[j];
        for (int64_t q = 0; q < F; ++q) acc += W_ih[j * F + q] * x[r * F + q];
        if (h_prev)
          for (int64_t q = 0; q < H; ++q) acc += W_hh[j * H + q] * h_prev[q];
        y[r * H + j] = std::tanh(acc);
      }
    }
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < H; ++j) h_T[n * H + j] = y[(n * S + S - 1) * H + j];
}

template <typename T>
void simple_rnn_backward(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* scratch, const T* dy,
                         const T* dh_T, const T* x, const T* W_ih, const T* W_hh, const T* h0,
                         const T* y, int64_t batch, int64_t steps, int64_t features,
                         int64_t hidden) {
  const int64_t N = batch, S = steps, F = features, H = hidden;
  T* dA = scratch;
  T* h_prev = dA + N * S * H;
  T* dh = h_prev + N * S * H;
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  for (int64_t t = S - 1; t >= 0; --t) {
    parallel_for(0, N, row_grain(H), [&](int64_t lo, int64_t hi, int) {
      for (int64_t n = lo; n < hi; ++n) {
        const int64_t r = n * S + t;
        for (int64_t j = 0; j < H; ++j) {
          const T h = y[r * H + j];
          dA[r * H + j] = (dh[n * H + j] + dy[r * H + j]) * (T(1) - h * h);
        }
      }
    });
    gemm<T>(Trans::no, Trans::no, N, H, H, T(1), dA + t * H, S * H, W_hh, H, T(0), dh, H);
  }
  std::copy(dh, dh + N * H, dh0);
  gradients_over_all_steps(dx, dW_ih, dW_hh, db, h_prev, dA, dA, x, W_ih, h0, y, N, S, F, H, H);
}

template <typename T>
void simple_rnn_backward_naive(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* scratch,
                               const T* dy, const T* dh_T, const T* x, const T* W_ih,
                               const T* W_hh, const T* h0, const T* y, int64_t batch,
                               int64_t steps, int64_t features, int64_t hidden) {
  const int64_t N = batch, S = steps, F = features, H = hidden;
  T* dA = scratch;
  T* dh = dA + 2 * N * S * H;
  for (int64_t k = 0; k < N * H; ++k) dh[k] = dh_T ? dh_T[k] : T(0);
  for (int64_t t = S - 1; t >= 0; --t)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* h_prev = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      T* da = dA + r * H;
      for (int64_t j = 0; j < H; ++j) da[j] = (dh[n * H + j] + dy[r * H + j]) * (T(1) - y[r * H + j] * y[r * H + j]);
      for (int64_t q = 0; q < H; ++q) {
        T acc = 0;
        for (int64_t j = 0; j < H; ++j) acc += da[j] * W_hh[j * H + q];
        dh[n * H + q] = acc;
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
          for (int64_t q = 0; q < H; ++q) dW_hh[j * H + q] += da[j] * h_prev[q];
      }
    }
  for (int64_t k = 0; k < N * H; ++k) dh0[k] = dh[k];
}

// ---------------------------------------------------------------- LSTM

template <typename T>
void lstm_forward(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                  const T* b, const T* h0, const T* c0, int64_t batch, int64_t steps,
                  int64_t features, int64_t hidden) {
  const int64_t N = batch, S = steps, H = hidden, G = 4 * hidden;
  T* gates = workspace;
  T* cells = workspace + N * S * G;
  // The input projections of all steps do not depend on the recurrence: one
  // GEMM over the N·T rows instead of T small ones.
  gemm<T>(Trans::no, Trans::yes, N * S, G, features, T(1), x, features, W_ih, features, T(0), gates, G);
  for (int64_t t = 0; t < S; ++t) {
    T* a = gates + t * G;  // step t of every example: rows N, leading dimension S·G
    const T* h_prev = t > 0 ? y + (t - 1) * H : h0;
    const int64_t ldh = t > 0 ? S * H : H;
    if (h_prev) gemm<T>(Trans::no, Trans::yes, N, G, H, T(1), h_prev, ldh, W_hh, H, T(1), a, S * G);
    parallel_for(0, N, row_grain(G), [&](int64_t lo, int64_t hi, int) {
      for (int64_t n = lo; n < hi; ++n) {
        T* an = a + n * S * G;
        const T* c_prev = t > 0 ? cells + (n * S + t - 1) * H : (c0 ? c0 + n * H : nullptr);
        T* c = cells + (n * S + t) * H;
        T* h = y + (n * S + t) * H;
        for (int64_t j = 0; j < H; ++j) {
          const T i = sigmoid(an[j] + b[j]);
          const T f = sigmoid(an[H + j] + b[H + j]);
          const T g = std::tanh(an[2 * H + j] + b[2 * H + j]);
          const T o = sigmoid(an[3 * H + j] + b[3 * H + j]);
          an[j] = i, an[H + j] = f, an[2 * H + j] = g, an[3 * H + j] = o;
          c[j] = f * (c_prev ? c_prev[j] : T(0)) + i * g;
          h[j] = o * std::tanh(c[j]);
        }
      }
    });
  }
  for (int64_t n = 0; n < N; ++n) {
    std::copy(y + (n * S + S - 1) * H, y + (n * S + S) * H, h_T + n * H);
    std::copy(cells + (n * S + S - 1) * H, cells + (n * S + S) * H, c_T + n * H);
  }
}

template <typename T>
void lstm_forward_naive(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih,
                        const T* W_hh, const T* b, const T* h0, const T* c0, int64_t batch,
                        int64_t steps, int64_t features, int64_t hidden) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 4 * hidden;
  T* gates = workspace;
  T* cells = workspace + N * S * G;
  for (int64_t t = 0; t < S; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const T* xt = x + (n * S + t) * F;
      const T* h_prev = t > 0 ? y + (n * S + t - 1) * H : (h0 ? h0 + n * H : nullptr);
      const T* c_prev = t > 0 ? cells + (n * S + t - 1) * H : (c0 ? c0 + n * H : nullptr);
      T* a = gates + (n * S + t) * G;
      for (int64_t k = 0; k < G; ++k) {
        T acc = b[k];
        for (int64_t q = 0; q < F; ++q) acc += W_ih[k * F + q] * xt[q];
        if (h_prev)
          for (int64_t q = 0; q < H; ++q) acc += W_hh[k * H + q] * h_prev[q];
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
                   const T* h0, const T* c0, const T* y, const T* workspace, int64_t batch,
                   int64_t steps, int64_t features, int64_t hidden) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 4 * hidden;
  const T* gates = workspace;
  const T* cells = workspace + N * S * G;
  T* dA = scratch;
  T* h_prev = dA + N * S * G;
  T* dh = h_prev + N * S * H;
  T* dc = dh + N * H;
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  if (dc_T) std::copy(dc_T, dc_T + N * H, dc); else std::fill(dc, dc + N * H, T(0));
  for (int64_t t = S - 1; t >= 0; --t) {
    parallel_for(0, N, row_grain(G), [&](int64_t lo, int64_t hi, int) {
      for (int64_t n = lo; n < hi; ++n) {
        const int64_t r = n * S + t;
        T* dhn = dh + n * H;
        for (int64_t j = 0; j < H; ++j) dhn[j] += dy[r * H + j];
        const T* c_prev = t > 0 ? cells + (r - 1) * H : (c0 ? c0 + n * H : nullptr);
        lstm_cell_backward(dA + r * G, dc + n * H, dhn, gates + r * G, cells + r * H, c_prev, H);
      }
    });
    // dh_{t-1} = dA_t · W_hh: the only GEMM the recurrence forces per step.
    gemm<T>(Trans::no, Trans::no, N, H, G, T(1), dA + t * G, S * G, W_hh, H, T(0), dh, H);
  }
  std::copy(dh, dh + N * H, dh0);
  std::copy(dc, dc + N * H, dc0);
  gradients_over_all_steps(dx, dW_ih, dW_hh, db, h_prev, dA, dA, x, W_ih, h0, y, N, S, F, H, G);
}

template <typename T>
void lstm_backward_naive(T* dx, T* dh0, T* dc0, T* dW_ih, T* dW_hh, T* db, T* scratch,
                         const T* dy, const T* dh_T, const T* dc_T, const T* x, const T* W_ih,
                         const T* W_hh, const T* h0, const T* c0, const T* y,
                         const T* workspace, int64_t batch, int64_t steps, int64_t features,
                         int64_t hidden) {
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
      const T* c_prev = t > 0 ? cells + (r - 1) * H : (c0 ? c0 + n * H : nullptr);
      lstm_cell_backward(dA + r * G, dc + n * H, dh + n * H, gates + r * G, cells + r * H, c_prev, H);
    }
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* h_prev = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      for (int64_t q = 0; q < H; ++q) {
        T acc = 0;
        for (int64_t k = 0; k < G; ++k) acc += dA[r * G + k] * W_hh[k * H + q];
        dh[n * H + q] = acc;
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
          for (int64_t q = 0; q < H; ++q) dW_hh[k * H + q] += dA[r * G + k] * h_prev[q];
      }
    }
  }
  for (int64_t k = 0; k < N * H; ++k) dh0[k] = dh[k], dc0[k] = dc[k];
}

// ---------------------------------------------------------------- GRU

template <typename T>
void gru_forward(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                 const T* b, const T* rb, const T* h0, int64_t batch, int64_t steps,
                 int64_t features, int64_t hidden) {
  const int64_t N = batch, S = steps, H = hidden, G = 3 * hidden;
  T* gates = workspace;
  T* hn_all = gates + N * S * G;
  T* gh = hn_all + N * S * H;
  gemm<T>(Trans::no, Trans::yes, N * S, G, features, T(1), x, features, W_ih, features, T(0), gates, G);
  for (int64_t t = 0; t < S; ++t) {
    const T* h_prev = t > 0 ? y + (t - 1) * H : h0;
    const int64_t ldh = t > 0 ? S * H : H;
    // r multiplies W_hn h + rb_n only, so the recurrent projection cannot be
    // added into the input projection as in the LSTM: it gets its own buffer.
    if (h_prev)
      gemm<T>(Trans::no, Trans::yes, N, G, H, T(1), h_prev, ldh, W_hh, H, T(0), gh, G);
    else
      std::fill(gh, gh + N * G, T(0));
    parallel_for(0, N, row_grain(G), [&](int64_t lo, int64_t hi, int) {
      for (int64_t n = lo; n < hi; ++n) {
        const int64_t r = n * S + t;
        T* a = gates + r * G;
        const T* ghn = gh + n * G;
        const T* hp = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
        for (int64_t j = 0; j < H; ++j) {
          const T rg = sigmoid(a[j] + b[j] + ghn[j] + rb[j]);
          const T z = sigmoid(a[H + j] + b[H + j] + ghn[H + j] + rb[H + j]);
          const T hn = ghn[2 * H + j] + rb[2 * H + j];
          const T nn = std::tanh(a[2 * H + j] + b[2 * H + j] + rg * hn);
          a[j] = rg, a[H + j] = z, a[2 * H + j] = nn;
          hn_all[r * H + j] = hn;
          y[r * H + j] = (T(1) - z) * nn + z * (hp ? hp[j] : T(0));
        }
      }
    });
  }
  for (int64_t n = 0; n < N; ++n) std::copy(y + (n * S + S - 1) * H, y + (n * S + S) * H, h_T + n * H);
}

template <typename T>
void gru_forward_naive(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                       const T* b, const T* rb, const T* h0, int64_t batch, int64_t steps,
                       int64_t features, int64_t hidden) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 3 * hidden;
  T* gates = workspace;
  T* hn_all = gates + N * S * G;
  for (int64_t t = 0; t < S; ++t)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t r = n * S + t;
      const T* hp = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
      T* a = gates + r * G;
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
            for (int64_t q = 0; q < H; ++q) acc += W_hh[k * H + q] * hp[q];
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
template <typename T>
inline void gru_cell_backward(T* dX, T* dR, T* dh, const T* a, const T* hn, const T* hp, int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T rg = a[j], z = a[H + j], nn = a[2 * H + j];
    const T dan = dh[j] * (T(1) - z) * (T(1) - nn * nn);
    const T daz = dh[j] * ((hp ? hp[j] : T(0)) - nn) * z * (T(1) - z);
    const T dar = dan * hn[j] * rg * (T(1) - rg);
    dX[j] = dar, dX[H + j] = daz, dX[2 * H + j] = dan;
    dR[j] = dar, dR[H + j] = daz, dR[2 * H + j] = dan * rg;
    dh[j] *= z;
  }
}

template <typename T>
void gru_backward(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* drb, T* scratch, const T* dy,
                  const T* dh_T, const T* x, const T* W_ih, const T* W_hh, const T* h0,
                  const T* y, const T* workspace, int64_t batch, int64_t steps, int64_t features,
                  int64_t hidden) {
  const int64_t N = batch, S = steps, F = features, H = hidden, G = 3 * hidden;
  const T* gates = workspace;
  const T* hn_all = gates + N * S * G;
  T* dX = scratch;
  T* dR = dX + N * S * G;
  T* h_prev = dR + N * S * G;
  T* dh = h_prev + N * S * H;
  if (dh_T) std::copy(dh_T, dh_T + N * H, dh); else std::fill(dh, dh + N * H, T(0));
  for (int64_t t = S - 1; t >= 0; --t) {
    parallel_for(0, N, row_grain(G), [&](int64_t lo, int64_t hi, int) {
      for (int64_t n = lo; n < hi; ++n) {
        const int64_t r = n * S + t;
        T* dhn = dh + n * H;
        for (int64_t j = 0; j < H; ++j) dhn[j] += dy[r * H + j];
        const T* hp = t > 0 ? y + (r - 1) * H : (h0 ? h0 + n * H : nullptr);
        gru_cell_backward(dX + r * G, dR + r * G, dhn, gates + r * G, hn_all + r * H, hp, H);
      }
    });
    gemm<T>(Trans::no, Trans::no, N, H, G, T(1), dR + t * G, S * G, W_hh, H, T(1), dh, H);
  }
  std::copy(dh, dh + N * H, dh0);
  gradients_over_all_steps(dx, dW_ih, dW_hh, db, h_prev, dX, dR, x, W_ih, h0, y, N, S, F, H, G);
  add_column_sums(drb, dR, N * S, G);
}

template <typename T>
void gru_backward_naive(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* drb, T* scratch,
                        const T* dy, const T* dh_T, const T* x, const T* W_ih, const T* W_hh,
                        const T* h0, const T* y, const T* workspace, int64_t batch,
                        int64_t steps, int64_t features, int64_t hidden) {
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
      gru_cell_backward(dX + r * G, dR + r * G, dh + n * H, gates + r * G, hn_all + r * H, hp, H);
      for (int64_t q = 0; q < H; ++q)
        for (int64_t k = 0; k < G; ++k) dh[n * H + q] += dR[r * G + k] * W_hh[k * H + q];
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
          for (int64_t q = 0; q < H; ++q) dW_hh[k * H + q] += dR[r * G + k] * hp[q];
      }
    }
  for (int64_t k = 0; k < N * H; ++k) dh0[k] = dh[k];
}

#define CORENN_INSTANTIATE(T)                                                                       \
  template void simple_rnn_forward<T>(T*, T*, const T*, const T*, const T*, const T*, const T*,     \
                                      int64_t, int64_t, int64_t, int64_t);                          \
  template void simple_rnn_forward_naive<T>(T*, T*, const T*, const T*, const T*, const T*,         \
                                            const T*, int64_t, int64_t, int64_t, int64_t);          \
  template void simple_rnn_backward<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,        \
                                       const T*, const T*, const T*, const T*, int64_t, int64_t,    \
                                       int64_t, int64_t);                                           \
  template void simple_rnn_backward_naive<T>(T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,  \
                                             const T*, const T*, const T*, const T*, int64_t,       \
                                             int64_t, int64_t, int64_t);                            \
  template void lstm_forward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*, const T*,   \
                                const T*, int64_t, int64_t, int64_t, int64_t);                      \
  template void lstm_forward_naive<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,       \
                                      const T*, const T*, int64_t, int64_t, int64_t, int64_t);      \
  template void lstm_backward<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,          \
                                 const T*, const T*, const T*, const T*, const T*, const T*,        \
                                 const T*, int64_t, int64_t, int64_t, int64_t);                     \
  template void lstm_backward_naive<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                       const T*, const T*, const T*, const T*, const T*, const T*,  \
                                       const T*, int64_t, int64_t, int64_t, int64_t);               \
  template void gru_forward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,        \
                               const T*, int64_t, int64_t, int64_t, int64_t);                       \
  template void gru_forward_naive<T>(T*, T*, T*, const T*, const T*, const T*, const T*, const T*,  \
                                     const T*, int64_t, int64_t, int64_t, int64_t);                 \
  template void gru_backward<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*, const T*, \
                                const T*, const T*, const T*, const T*, int64_t, int64_t, int64_t,  \
                                int64_t);                                                           \
  template void gru_backward_naive<T>(T*, T*, T*, T*, T*, T*, T*, const T*, const T*, const T*,     \
                                      const T*, const T*, const T*, const T*, const T*, int64_t,    \
                                      int64_t, int64_t, int64_t);
CORENN_INSTANTIATE(float)
CORENN_INSTANTIATE(double)
#undef CORENN_INSTANTIATE

}  // namespace corenn
