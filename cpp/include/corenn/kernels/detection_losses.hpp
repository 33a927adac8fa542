// Losses for object detection and landmarks (course 4, week 3). Each returns the
// loss and writes d(loss)/d(pred) (skipped when the gradient pointer is nullptr).
// Targets are validated (ValueError naming op and argument); predictions are
// not: a NaN prediction gives a NaN loss, as the built-in losses (loss.hpp).
//
// yolo_loss: pred and target (N, A·(5+C), S, S), NCHW; channel a·(5+C) + k of
// cell (row i, column j) is field k of anchor a, laid out as
// cn.detection.yolo_encode's target: k = 0 p_c, 1–2 t_x, t_y (the centre's
// offset in the cell), 3–4 t_w = log(w / anchor_w), t_h, 5… the class one-hot.
// pred is the raw head output z, activated as YOLOv2 (and yolo_decode with
// from_logits=True): σ(z_0) the objectness, σ(z_1), σ(z_2) the offsets,
// z_3, z_4 the log sizes, softmax(z_5…) the class probabilities. With
// obj = target p_c (0 or 1), σ the sigmoid, BCE(z, t) = −t·log σ(z) −
// (1 − t)·log(1 − σ(z)) on the logit:
//   L = (1/N) Σ_{n, a, i, j} [ obj · ( λcoord·((σ(z_1) − t_x)² + (σ(z_2) − t_y)²
//                                             + (z_3 − t_w)² + (z_4 − t_h)²)
//                                      + BCE(z_0, 1)
//                                      − Σ_c t_c·log softmax(z_5…)_c )
//                               + (1 − obj)·(1 − ignore)·λnoobj·BCE(z_0, 0) ]
// ignore = 1 ("don't care", YOLOv2/v3) when the box predicted there (centre
// ((j + σ(z_1))·W/S, (i + σ(z_2))·H/S), size anchor·exp(z_3, z_4), in pixels)
// has IoU > ignore_threshold with one of the image's true boxes (those of the
// cells and anchors with p_c = 1). ignore is a step function of z: it gets no
// gradient (as in YOLOv2).
//
// localization_loss: pred and target (N, 5 + K) = (p_c, b_x, b_y, b_h, b_w,
// c_1 … c_K) per row, the course's classification-with-localization output.
// When target p_c = 0 only p_c is scored: the other target entries are "don't
// care" and may hold anything (NaN included). L = (1/N) Σ_i l_i, with
//   squared (the course's):  l = Σ_k (ŷ_k − y_k)²  if y_1 = 1,  (ŷ_1 − y_1)²  if y_1 = 0
//   cross_entropy:           l = BCE(ŷ_1, y_1) + y_1·( Σ_{k=2..5} (ŷ_k − y_k)²
//                                − Σ_c y_c·log softmax(ŷ_6…)_c )     (ŷ_1, ŷ_6… logits)
//
// masked_mse: pred and target (n,); NaN targets are missing (landmarks not
// annotated) and skipped. L = Σ_present (p − t)² / (number present), the mean
// squared error over the entries that exist; 0 (and a zero gradient) when
// none does.
#pragma once

#include <cstdint>

namespace corenn {

struct YoloLossOptions {
  int64_t anchors = 1;          // A
  int64_t classes = 1;          // C >= 1
  int64_t grid = 1;             // S
  const double* anchor_wh = nullptr;  // (A, 2) width, height in pixels, > 0
  double image_h = 1, image_w = 1;    // pixels, > 0
  double lambda_coord = 5.0;    // >= 0
  double lambda_noobj = 0.5;    // >= 0
  double ignore_threshold = 0.6;  // in [0, 1]; 1 ignores nothing
};

// ValueError naming the option: non-positive or non-finite anchors or image
// size, negative or non-finite lambdas, ignore_threshold outside [0, 1].
void validate(const YoloLossOptions& o, const char* op);
// ValueError naming op and arg unless the target is finite and every p_c is 0 or 1.
template <typename T>
void validate_yolo_target(const T* target, int64_t n, const YoloLossOptions& o, const char* op,
                          const char* arg);

// dpred: like pred, written or nullptr; pred, target: (n, A·(5+C), S, S).
template <typename T>
T yolo_loss(T* dpred, const T* pred, const T* target, int64_t n, const YoloLossOptions& o);
template <typename T>
T yolo_loss_naive(T* dpred, const T* pred, const T* target, int64_t n, const YoloLossOptions& o);

// ValueError naming op and arg unless every p_c is 0 or 1 and the rows with
// p_c = 1 are finite.
template <typename T>
void validate_localization_target(const T* target, int64_t n, int64_t cols, const char* op,
                                  const char* arg);
// dpred: (n, cols) written or nullptr; pred, target: (n, cols), cols = 5 + K, K >= 1.
template <typename T>
T localization_loss(T* dpred, const T* pred, const T* target, int64_t n, int64_t cols,
                    bool cross_entropy);
template <typename T>
T localization_loss_naive(T* dpred, const T* pred, const T* target, int64_t n, int64_t cols,
                          bool cross_entropy);

// dpred: (n,) written or nullptr; pred, target: (n,).
template <typename T>
T masked_mse(T* dpred, const T* pred, const T* target, int64_t n);
template <typename T>
T masked_mse_naive(T* dpred, const T* pred, const T* target, int64_t n);

}  // namespace corenn
