// Scaled dot-product attention (Vaswani et al. 2017, "Attention is all you
// need", eq. 1; PyTorch's F.scaled_dot_product_attention; the course's
// Attention(Q, K, V) = softmax(QKᵀ/√d_k)V), batch first:
//   q (B, Tq, d), k (B, Tk, d), v (B, Tk, dv)  ->  o (B, Tq, dv), p (B, Tq, Tk)
//   S = scale · q kᵀ                          (scale defaults to 1/√d)
//   P_ij = exp(S_ij) / Σ_{j' allowed} exp(S_ij')  for allowed j, 0 otherwise
//   O = P v
// Key j is allowed for query i when mask[b or 0, i, j] is true (True = attend,
// as PyTorch's boolean attn_mask and Keras's attention_mask) and, with causal,
// when j <= i (the top-left aligned lower triangle, PyTorch's is_causal). A
// query with no allowed key gets P = 0 and O = 0 (PyTorch gives NaN there) and
// zero gradients.
// Backward (from the saved P; with dropout on P see AttentionDropout below):
//   dV = Pᵀ dO,  dP = dO vᵀ,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
//   dq = scale · dS k,  dk = scale · dSᵀ q
// Masked keys have P = 0, hence dS = 0: the mask needs no second look.
#pragma once

#include <cstdint>
#include <vector>

namespace corenn {

struct AttentionDims {
  int64_t batch = 0, q_len = 0, k_len = 0, depth = 0, v_depth = 0;
};

// The dims of q (B, Tq, d), k (B, Tk, d), v (B, Tk, dv), or ShapeError naming
// `op` and the argument (not 3-D, empty, batch, key/value length or depth
// mismatch).
AttentionDims attention_dims(const std::vector<int64_t>& q, const std::vector<int64_t>& k,
                             const std::vector<int64_t>& v, const char* op);
// The mask's batch (1 = shared by every batch element, or B) for a mask of
// shape (B or 1, Tq, Tk), or ShapeError naming `op` and "mask".
int64_t attention_mask_batch(const AttentionDims& d, const std::vector<int64_t>& mask, const char* op);
// ValueError naming `op` unless scale is finite.
void validate_attention_scale(double scale, const char* op);

// ValueError "op: arg must be in [0, 1), got ..." unless 0 <= rate < 1.
void validate_attention_dropout(double rate, const char* op, const char* arg);

// Dropout on the attention weights (Keras's Attention and MultiHeadAttention
// `dropout`, PyTorch's dropout_p): the weights that multiply v are
//   P̃ = P ⊙ keep / (1 − rate)
// with the mask keep (B, Tq, Tk) given, nonzero = kept (the layers draw it as
// Dropout does, dropout_mask in dropout.hpp), and backward multiplies dP̃ by the
// same keep / (1 − rate) before the softmax's backward:
//   dV = P̃ᵀ dO,  dP = (dO vᵀ) ⊙ keep / (1 − rate),  dS = P ⊙ (dP − rowsum(dP ⊙ P)).
// keep = nullptr: no dropout (P̃ = P).
struct AttentionDropout {
  const uint8_t* keep = nullptr;
  double rate = 0.0;
};

// o: (B, Tq, dv), p: (B, Tq, Tk) written (p the weights before dropout); q, k,
// v as above; mask: (mask_batch, Tq, Tk) or nullptr (mask_batch ignored);
// dropped: (B, Tq, Tk) written with P̃ when drop.keep is set (else unused).
template <typename T>
void attention_forward(T* o, T* p, const T* q, const T* k, const T* v, const bool* mask, int64_t mask_batch,
                       bool causal, double scale, const AttentionDims& d, const AttentionDropout& drop = {},
                       T* dropped = nullptr);
template <typename T>
void attention_forward_naive(T* o, T* p, const T* q, const T* k, const T* v, const bool* mask,
                             int64_t mask_batch, bool causal, double scale, const AttentionDims& d,
                             const AttentionDropout& drop = {}, T* dropped = nullptr);

// dq: (B, Tq, d), dk: (B, Tk, d), dv: (B, Tk, dv) written; dout: (B, Tq, dv);
// q, k, v as the forward's; p: (B, Tq, Tk) from the forward; scale and drop: the forward's.
template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k, const T* v,
                        const T* p, double scale, const AttentionDims& d, const AttentionDropout& drop = {});
template <typename T>
void attention_backward_naive(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                              const T* v, const T* p, double scale, const AttentionDims& d,
                              const AttentionDropout& drop = {});

// The second half of attention alone, from scores made elsewhere (additive
// scores, Keras's concat scores): the masked softmax, dropout and O = P̃ v that
// attention_forward runs after its S = scale·q kᵀ, and their backward down to
// dS. d.depth is not read.
// o: (B, Tq, dv) written; p: (B, Tq, Tk) the scores S in, the weights P out;
// dropped: (B, Tq, Tk) P̃ written when drop.keep is set; v: (B, Tk, dv).
template <typename T>
void attention_weights_forward(T* o, T* p, T* dropped, const T* v, const bool* mask, int64_t mask_batch,
                               bool causal, const AttentionDropout& drop, const AttentionDims& d);
template <typename T>
void attention_weights_forward_naive(T* o, T* p, T* dropped, const T* v, const bool* mask, int64_t mask_batch,
                                     bool causal, const AttentionDropout& drop, const AttentionDims& d);
// dscores: (B, Tq, Tk) and dv: (B, Tk, dv) written; dout: (B, Tq, dv); p: the forward's weights.
template <typename T>
void attention_weights_backward(T* dscores, T* dv, const T* dout, const T* v, const T* p,
                                const AttentionDropout& drop, const AttentionDims& d);
template <typename T>
void attention_weights_backward_naive(T* dscores, T* dv, const T* dout, const T* v, const T* p,
                                      const AttentionDropout& drop, const AttentionDims& d);

// Additive (Bahdanau) attention scores (Bahdanau, Cho & Bengio 2015, eq. 6 and
// appendix A.1.2; Keras's AdditiveAttention with its scale vector as w). The
// projections qp = W₁q, kp = W₂k are dense ops done before:
//   score[b, i, j] = Σ_u w_u · tanh(qp[b, i, u] + kp[b, j, u])
// qp (B, Tq, U), kp (B, Tk, U), w (U,) -> scores (B, Tq, Tk), which a masked
// softmax turns into the weights α⟨t,t'⟩. Backward, with t = tanh(qp_i + kp_j)
// and g = dscore_ij · w ⊙ (1 − t²):
//   dqp_i = Σ_j g,  dkp_j = Σ_i g,  dw = Σ_{b,i,j} dscore_ij · t

// The dims of qp (B, Tq, U), kp (B, Tk, U), w (U,) as AttentionDims (depth = U,
// v_depth = 0), or ShapeError naming `op` and the argument.
AttentionDims additive_scores_dims(const std::vector<int64_t>& qp, const std::vector<int64_t>& kp,
                                   const std::vector<int64_t>& w, const char* op);

// scores: (B, Tq, Tk) written.
template <typename T>
void additive_scores_forward(T* scores, const T* qp, const T* kp, const T* w, const AttentionDims& d);
template <typename T>
void additive_scores_forward_naive(T* scores, const T* qp, const T* kp, const T* w,
                                   const AttentionDims& d);
// dqp: (B, Tq, U), dkp: (B, Tk, U) written; dw: (U,) accumulated (+=; summed per
// thread chunk, partials added in chunk order); dscores: (B, Tq, Tk).
template <typename T>
void additive_scores_backward(T* dqp, T* dkp, T* dw, const T* dscores, const T* qp, const T* kp,
                              const T* w, const AttentionDims& d);
template <typename T>
void additive_scores_backward_naive(T* dqp, T* dkp, T* dw, const T* dscores, const T* qp,
                                    const T* kp, const T* w, const AttentionDims& d);

}  // namespace corenn
