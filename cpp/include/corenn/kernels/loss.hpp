// Losses on logits, fused with their output activation so they stay finite for
// any finite logit. Each returns the loss and writes d(loss)/d(input) (skipped when
// the gradient pointer is nullptr, as in evaluation). NaN and ±inf give what
// PyTorch's losses give: a NaN logit (or prediction) makes the loss NaN and its
// gradient NaN (softmax: its whole row); an infinite one gives a NaN or +inf
// loss, except a −inf softmax logit: a zero probability (finite unless labelled).
//   softmax_cross_entropy  L = (1/N) Σ_i s_i [logsumexp(z_i) - z_i,y_i] dz = s_i (softmax(z) - onehot(y)) / N
//   sigmoid_cross_entropy  L = (1/N) Σ_i s_i Σ_j m_ij [(1-t) z - min(z,0) + log(1 + e^-|z|)]
//                                                                  dz = s_i m (σ(z) - t) / N
//   mse                    L = (1/n) Σ_k s_i(k) (p - t)²           dp = 2 s_i(k) (p - t) / n
//   weight_penalty         L = l1 Σ|w| + l2 Σ w²                   dw += l1 sign(w) + 2 l2 w
// softmax_cross_entropy also runs over the steps of sequences (PyTorch's
// F.cross_entropy with ignore_index=-1, Keras's masked sparse categorical
// cross-entropy): logits (N, T, C), labels (N, T); a step counts unless its
// label is -1 or its mask is 0, and the sum runs over the C counted steps:
//   L = (1/C) Σ_counted s_n [logsumexp(z) - z_y], dz = s_n (softmax(z) - onehot(y)) / C,
// dz = 0 at the other steps; no counted step gives L = 0, dz = 0 (never NaN).
// With T = 1, no mask and no label -1, C = N: the formula above.
// s is the optional per-example weight (Keras's sample_weight with its default
// "sum_over_batch_size" reduction: the weighted sum is divided by the number of
// examples N, not by Σs); nullptr means s_i = 1 and runs the unweighted code.
#pragma once

#include <cstdint>

namespace corenn {

// Throws ValueError unless every label is in [0, classes) (or, with
// allow_ignored, is -1: a step left out of the loss).
void check_labels(const int64_t* labels, int64_t batch, int64_t classes, bool allow_ignored = false);
// Throws ValueError (naming op) unless every weight is finite and >= 0.
template <typename T>
void check_sample_weight(const T* weight, int64_t batch, const char* op);

// dlogits: (batch, steps, classes) written or nullptr; logits: (batch, steps, classes);
// labels: (batch, steps), -1 = ignored; weight: (batch,) or nullptr; mask: (batch, steps),
// 1 = a valid step, or nullptr.
template <typename T>
T softmax_cross_entropy(T* dlogits, const T* logits, const int64_t* labels, int64_t batch,
                        int64_t classes, const T* weight = nullptr, int64_t steps = 1,
                        const uint8_t* mask = nullptr);
template <typename T>
T softmax_cross_entropy_naive(T* dlogits, const T* logits, const int64_t* labels, int64_t batch,
                              int64_t classes, const T* weight = nullptr, int64_t steps = 1,
                              const uint8_t* mask = nullptr);

// dlogits: (batch, outputs) written or nullptr; logits, targets: (batch, outputs);
// mask: (batch, outputs), 1 = label present, or nullptr for all present. Masked entries
// add nothing to the loss and get a zero gradient; the mean is still over the batch.
// weight: (batch,) or nullptr.
template <typename T>
T sigmoid_cross_entropy(T* dlogits, const T* logits, const T* targets, const uint8_t* mask,
                        int64_t batch, int64_t outputs, const T* weight = nullptr);
template <typename T>
T sigmoid_cross_entropy_naive(T* dlogits, const T* logits, const T* targets, const uint8_t* mask,
                              int64_t batch, int64_t outputs, const T* weight = nullptr);

// dpred: (n,) written or nullptr; pred, target: (n,) = (batch, n / batch);
// weight: (batch,) or nullptr (batch must then divide n; unused without weights).
template <typename T>
T mse(T* dpred, const T* pred, const T* target, int64_t n, const T* weight = nullptr,
      int64_t batch = 1);
template <typename T>
T mse_naive(T* dpred, const T* pred, const T* target, int64_t n, const T* weight = nullptr,
            int64_t batch = 1);

// Kernel regularisation. dw: (n,) accumulated or nullptr; w: (n,).
template <typename T>
T weight_penalty(T* dw, const T* w, int64_t n, T l1, T l2);
template <typename T>
T weight_penalty_naive(T* dw, const T* w, int64_t n, T l1, T l2);

}  // namespace corenn
