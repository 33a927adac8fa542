// Embedding (metric-learning) losses, course 4, week 4 (face verification).
//   triplet_loss      emb (N, 3, D) holds (anchor a, positive p, negative n) per row:
//                     l_i = max(d(a, p) − d(a, n) + margin, 0)
//                     squared: d(x, y) = ‖x − y‖² (the course, FaceNet: Schroff et al. 2015)
//                     else:    d(x, y) = ‖x − y + eps‖₂ (torch.nn.functional.pairwise_distance,
//                              so mean + not squared + eps = 1e-6 is PyTorch's TripletMarginLoss)
//                     L = Σ_i l_i (the course) or (1/N) Σ_i l_i (mean)
//   contrastive_loss  e1, e2 (N, D), same (N,) in {0, 1}, d = ‖e1 − e2‖₂:
//                     L = (1/N) Σ_i same·d² + (1 − same)·max(margin − d, 0)²
//                     (Hadsell, Chopra, LeCun 2006). A dissimilar pair at d = 0 inside
//                     the margin has no direction to move along: its gradient is 0.
// The gradient of max(·, 0) is 1 where the argument is > 0 and 0 elsewhere (ReLU's).
// Gradients are written when their pointers are not nullptr.
#pragma once

#include <cstdint>

namespace corenn {

// ValueError naming op and argument: margin (and eps) must be finite and >= 0.
void validate_margin(double margin, const char* op, const char* arg);
// ValueError unless every entry of same is 0 or 1.
template <typename T>
void validate_same(const T* same, int64_t n, const char* op, const char* arg);

// demb: (n, 3, d) written or nullptr; emb: (n, 3, d).
template <typename T>
T triplet_loss(T* demb, const T* emb, int64_t n, int64_t d, T margin, bool squared, bool mean,
               T eps);
template <typename T>
T triplet_loss_naive(T* demb, const T* emb, int64_t n, int64_t d, T margin, bool squared,
                     bool mean, T eps);

// de1, de2: (n, d) written or nullptr; e1, e2: (n, d); same: (n,).
template <typename T>
T contrastive_loss(T* de1, T* de2, const T* e1, const T* e2, const T* same, int64_t n, int64_t d,
                   T margin);
template <typename T>
T contrastive_loss_naive(T* de1, T* de2, const T* e1, const T* e2, const T* same, int64_t n,
                         int64_t d, T margin);

}  // namespace corenn
