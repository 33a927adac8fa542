// Neural style transfer costs (course 4, week 4; Gatys et al. 2015), on NCHW
// activations a (N, C, H, W) read as N matrices A (C, H·W):
//   gram_matrix     G = A·Aᵀ (C, C) per image, unnormalised
//   backward        dA = (dG + dGᵀ)·A
//   content_cost    J = Σ_n Σ (a_C − a_G)² / (4·C·H·W)          dJ/da_G = (a_G − a_C) / (2·C·H·W)
//   style_cost      J = Σ_n Σ (G_S − G_G)² / (4·C²·(H·W)²)      dJ/da_G = (G_G − G_S)·A_G / (C²·(H·W)²)
//   total_variation J = Σ |x[h+1, w] − x[h, w]| + Σ |x[h, w+1] − x[h, w]|
//                       over every image and channel (tf.image.total_variation's
//                       anisotropic absolute sum, added over the batch);
//                       dJ/dx from sign(difference), sign(0) = 0 (TensorFlow's)
// The course defines the costs for one image; a batch adds the per-image costs.
// Gradients are written when their pointer is not nullptr.
#pragma once

#include <cstdint>

namespace corenn {

// ValueError "op: arg must be finite ..." when a value is NaN or ±inf.
template <typename T>
void validate_finite(const T* a, int64_t n, const char* op, const char* arg);

// g: (n, c, c) written; a: (n, c, hw).
template <typename T>
void gram_matrix(T* g, const T* a, int64_t n, int64_t c, int64_t hw);
template <typename T>
void gram_matrix_naive(T* g, const T* a, int64_t n, int64_t c, int64_t hw);

// da: (n, c, hw) written; dg: (n, c, c); a: (n, c, hw).
template <typename T>
void gram_matrix_backward(T* da, const T* dg, const T* a, int64_t n, int64_t c, int64_t hw);
template <typename T>
void gram_matrix_backward_naive(T* da, const T* dg, const T* a, int64_t n, int64_t c, int64_t hw);

// da_g: (n, c, hw) written or nullptr; a_c, a_g: (n, c, hw).
template <typename T>
T content_cost(T* da_g, const T* a_c, const T* a_g, int64_t n, int64_t c, int64_t hw);
template <typename T>
T content_cost_naive(T* da_g, const T* a_c, const T* a_g, int64_t n, int64_t c, int64_t hw);

// da_g: (n, c, hw) written or nullptr; a_s, a_g: (n, c, hw).
template <typename T>
T style_cost(T* da_g, const T* a_s, const T* a_g, int64_t n, int64_t c, int64_t hw);
template <typename T>
T style_cost_naive(T* da_g, const T* a_s, const T* a_g, int64_t n, int64_t c, int64_t hw);

// dimg: (n, c, h, w) written or nullptr; img: (n, c, h, w).
template <typename T>
T total_variation(T* dimg, const T* img, int64_t n, int64_t c, int64_t h, int64_t w);
template <typename T>
T total_variation_naive(T* dimg, const T* img, int64_t n, int64_t c, int64_t h, int64_t w);

}  // namespace corenn
