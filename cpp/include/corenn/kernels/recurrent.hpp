// Recurrent cells run over a whole sequence (course 5, week 1), in PyTorch's
// layouts and gate order so weights move between the two without transposes.
// Sequences are batch first: x (N, T, F), outputs y (N, T, H) = every hidden
// state; σ is the logistic sigmoid, ⊙ the element-wise product.
//
// SimpleRNN, W_ih (H, F), W_hh (H, H), b (H,) = PyTorch's bias_ih + bias_hh:
//   h_t = tanh(W_ih x_t + W_hh h_{t-1} + b)
// LSTM, gates stacked i, f, g, o in W_ih (4H, F), W_hh (4H, H), b (4H,)
// (b = PyTorch's bias_ih + bias_hh):
//   [a_i, a_f, a_g, a_o] = W_ih x_t + W_hh h_{t-1} + b
//   i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
//   c_t = f ⊙ c_{t-1} + i ⊙ g,  h_t = o ⊙ tanh(c_t)
// GRU, gates stacked r, z, n in W_ih (3H, F), W_hh (3H, H), b (3H,) = PyTorch's
// bias_ih and rb (3H,) = bias_hh (Keras's reset_after=True):
//   r = σ(W_ir x_t + b_r + W_hr h_{t-1} + rb_r),  z = σ(W_iz x_t + b_z + W_hz h_{t-1} + rb_z)
//   n = tanh(W_in x_t + b_n + r ⊙ (W_hn h_{t-1} + rb_n))
//   h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}
//
// The forward fills a caller-provided workspace (the kernels never allocate)
// with what the backward needs (and a transposed copy of W_hh for its own
// per-step products); the backward reads it unchanged and uses a second
// scratch buffer of its own.
//
// The fast kernels do what the fastest CPU implementations do: the input
// projection of all steps is one GEMM over the N·T rows before the loop; each
// step is one GEMM h_{t-1} · W_hhᵀ added into that step's gate slice, then one
// fused, vectorised pass over the gates; backward, each step is one fused pass
// and one GEMM for dh_{t-1}, and the weight and input gradients are a few GEMMs
// over all N·T rows after the loop. Threads own batch rows for the whole
// recurrence (no join per step), or split each step's hidden units for batches
// under 32; BLAS runs single-threaded inside them (backend/gemm.cpp). Backward through time takes dy (N, T, H)
// (the gradient of every output step; all zero but the last when only h_T is
// used) and the gradients of the final states, writes dx, dh0 (and dc0) and
// ACCUMULATES (+=) the weight and bias gradients.
//
// Masks (Keras's semantics): mask (N, T), 1 = a valid step, 0 = a padded one,
// or nullptr (every step valid). At a masked step the states carry over
// unchanged (h_t = h_{t-1}, c_t = c_{t-1}; zeros before the first step without
// initial states) and the output y_t is that carried h; backward, the gradient
// of h_t (and c_t) passes to step t-1 unchanged, dx_t is zero and the weight
// gradients get nothing from the step. The fast path keeps its GEMMs over all
// rows and steps; a masked row is a per-row select in the fused pass.
//
// Recurrent dropout (Keras's recurrent_dropout, Gal & Ghahramani 2016):
// recurrent_mask (N, H), or nullptr, holds m = 0 or 1/(1 − rate) per example
// and unit, the same at every step. The recurrent products then read
// h_{t-1} ⊙ m instead of h_{t-1} (one mask shared by all gates; W_hh (h ⊙ m)
// in each equation above), while everything else reads h_{t-1} itself (the
// GRU's z ⊙ h_{t-1}, a masked step's carried state). Backward: dW_hh sums
// dA ⊗ (h_{t-1} ⊙ m) and dh_{t-1} gets (dA · W_hh) ⊙ m. The fast forward
// keeps the dropped state in h_T, which it writes only after the last step.
// Not yet: go_backwards (the caller reverses x and the mask), other activations.
#pragma once

#include <cstdint>

namespace corenn {

// Elements of T each buffer must hold (the SimpleRNN forward needs none: y is its state).
int64_t simple_rnn_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden);
int64_t lstm_workspace_size(int64_t batch, int64_t steps, int64_t hidden);
int64_t lstm_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden);
int64_t gru_workspace_size(int64_t batch, int64_t steps, int64_t hidden);
int64_t gru_backward_scratch_size(int64_t batch, int64_t steps, int64_t hidden);

// The LSTM and GRU forwards multiply h_{t-1} by W_hh (G·H, H) packed into
// panels of columns (recurrent.cpp), which they pack at every call. A caller
// running the same weights many times packs them once: panels
// (recurrent_panels_size(G, H) elements, either type) from W_hh, G = 4 (LSTM)
// or 3 (GRU), else ValueError; then the *_forward_packed kernels below.
int64_t recurrent_panels_size(int64_t gates, int64_t hidden);
template <typename T>
void pack_recurrent_panels(T* panels, const T* W_hh, int64_t gates, int64_t hidden);

// y: (N, T, H), h_T: (N, H) written; x: (N, T, F); W_ih: (H, F); W_hh: (H, H); b: (H,);
// h0: (N, H) or nullptr (zeros); mask: (N, T) or nullptr (all valid).
template <typename T>
void simple_rnn_forward(T* y, T* h_T, const T* x, const T* W_ih, const T* W_hh, const T* b,
                        const T* h0, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features, int64_t hidden,
                        const T* recurrent_mask = nullptr);
template <typename T>
void simple_rnn_forward_naive(T* y, T* h_T, const T* x, const T* W_ih, const T* W_hh, const T* b,
                              const T* h0, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                              int64_t hidden, const T* recurrent_mask = nullptr);
// dx: (N, T, F), dh0: (N, H) written; dW_ih, dW_hh, db accumulated;
// scratch: simple_rnn_backward_scratch_size; dy: (N, T, H); dh_T: (N, H) or nullptr (zeros);
// y: from simple_rnn_forward; mask: as given to it.
template <typename T>
void simple_rnn_backward(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* scratch, const T* dy,
                         const T* dh_T, const T* x, const T* W_ih, const T* W_hh, const T* h0,
                         const T* y, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                         int64_t hidden, const T* recurrent_mask = nullptr);
template <typename T>
void simple_rnn_backward_naive(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* scratch,
                               const T* dy, const T* dh_T, const T* x, const T* W_ih,
                               const T* W_hh, const T* h0, const T* y, const uint8_t* mask, int64_t batch,
                               int64_t steps, int64_t features, int64_t hidden, const T* recurrent_mask = nullptr);

// y: (N, T, H), h_T, c_T: (N, H) written; workspace: lstm_workspace_size written;
// x: (N, T, F); W_ih: (4H, F); W_hh: (4H, H); b: (4H,); h0, c0: (N, H) or nullptr (zeros);
// mask: (N, T) or nullptr (all valid).
template <typename T>
void lstm_forward(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                  const T* b, const T* h0, const T* c0, const uint8_t* mask, int64_t batch, int64_t steps,
                  int64_t features, int64_t hidden, const T* recurrent_mask = nullptr);
// lstm_forward with W_hh's panels packed beforehand by pack_recurrent_panels
// (gates 4), for many calls with the same weights (inference: the layers keep
// them, engine/derived_weights.hpp); the results are lstm_forward's bit for
// bit. workspace: lstm_workspace_size, its panel part (the last
// recurrent_panels_size(4, H) elements) left as it is.
template <typename T>
void lstm_forward_packed(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih, const T* panels,
                         const T* b, const T* h0, const T* c0, const uint8_t* mask, int64_t batch, int64_t steps,
                         int64_t features, int64_t hidden, const T* recurrent_mask = nullptr);
template <typename T>
void lstm_forward_naive(T* y, T* h_T, T* c_T, T* workspace, const T* x, const T* W_ih,
                        const T* W_hh, const T* b, const T* h0, const T* c0, const uint8_t* mask, int64_t batch,
                        int64_t steps, int64_t features, int64_t hidden, const T* recurrent_mask = nullptr);
// dx: (N, T, F), dh0, dc0: (N, H) written; dW_ih, dW_hh, db accumulated;
// scratch: lstm_backward_scratch_size; dy: (N, T, H); dh_T, dc_T: (N, H) or nullptr (zeros);
// y, workspace: from lstm_forward on the same x, W_ih, W_hh, h0, c0, mask.
template <typename T>
void lstm_backward(T* dx, T* dh0, T* dc0, T* dW_ih, T* dW_hh, T* db, T* scratch, const T* dy,
                   const T* dh_T, const T* dc_T, const T* x, const T* W_ih, const T* W_hh,
                   const T* h0, const T* c0, const T* y, const T* workspace, const uint8_t* mask, int64_t batch,
                   int64_t steps, int64_t features, int64_t hidden,
                   const T* recurrent_mask = nullptr);
template <typename T>
void lstm_backward_naive(T* dx, T* dh0, T* dc0, T* dW_ih, T* dW_hh, T* db, T* scratch,
                         const T* dy, const T* dh_T, const T* dc_T, const T* x, const T* W_ih,
                         const T* W_hh, const T* h0, const T* c0, const T* y,
                         const T* workspace, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                         int64_t hidden, const T* recurrent_mask = nullptr);

// y: (N, T, H), h_T: (N, H) written; workspace: gru_workspace_size written;
// x: (N, T, F); W_ih: (3H, F); W_hh: (3H, H); b, rb: (3H,); h0: (N, H) or nullptr (zeros);
// mask: (N, T) or nullptr (all valid).
template <typename T>
void gru_forward(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                 const T* b, const T* rb, const T* h0, const uint8_t* mask, int64_t batch, int64_t steps,
                 int64_t features, int64_t hidden, const T* recurrent_mask = nullptr);
// gru_forward with W_hh's panels packed beforehand (pack_recurrent_panels,
// gates 3): gru_forward's results bit for bit. workspace: gru_workspace_size,
// its panel part (the last recurrent_panels_size(3, H) elements) left as it is.
template <typename T>
void gru_forward_packed(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* panels, const T* b,
                        const T* rb, const T* h0, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                        int64_t hidden, const T* recurrent_mask = nullptr);
template <typename T>
void gru_forward_naive(T* y, T* h_T, T* workspace, const T* x, const T* W_ih, const T* W_hh,
                       const T* b, const T* rb, const T* h0, const uint8_t* mask, int64_t batch, int64_t steps,
                       int64_t features, int64_t hidden, const T* recurrent_mask = nullptr);
// dx: (N, T, F), dh0: (N, H) written; dW_ih, dW_hh, db, drb accumulated;
// scratch: gru_backward_scratch_size; dy: (N, T, H); dh_T: (N, H) or nullptr (zeros);
// y, workspace, mask: from gru_forward.
template <typename T>
void gru_backward(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* drb, T* scratch, const T* dy,
                  const T* dh_T, const T* x, const T* W_ih, const T* W_hh, const T* h0,
                  const T* y, const T* workspace, const uint8_t* mask, int64_t batch, int64_t steps, int64_t features,
                  int64_t hidden, const T* recurrent_mask = nullptr);
template <typename T>
void gru_backward_naive(T* dx, T* dh0, T* dW_ih, T* dW_hh, T* db, T* drb, T* scratch,
                        const T* dy, const T* dh_T, const T* x, const T* W_ih, const T* W_hh,
                        const T* h0, const T* y, const T* workspace, const uint8_t* mask, int64_t batch,
                        int64_t steps, int64_t features, int64_t hidden, const T* recurrent_mask = nullptr);

}  // namespace corenn
