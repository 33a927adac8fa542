// Optimizer updates, in place, one fused pass over a flat parameter arena
// (PyTorch's formulas; g is the gradient after weight decay where coupled):
//   SGD      g += wd p;  v = μ v + (1 - dampening) g  (v starts at 0);
//            p -= lr (g + μ v) if nesterov else lr v
//   RMSprop  g += wd p;  s = α s + (1 - α) g²;  p -= lr g / (√s + eps)
//   Adam     g += wd p (or p *= 1 - lr wd when decoupled, AdamW);
//            m = β1 m + (1 - β1) g;  v = β2 v + (1 - β2) g²;
//            p -= lr (m / (1 - β1^t)) / (√(v / (1 - β2^t)) + eps)      t = step ≥ 1
// Every kernel first transforms the raw gradient, before weight decay, by the
// GradientTransform it is given (gradient clipping; identity by default).
#pragma once

#include <cstdint>

namespace corenn {

struct SGDHyper {
  double lr = 0.01, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
};
struct RMSpropHyper {
  double lr = 0.001, alpha = 0.99, eps = 1e-8, weight_decay = 0.0;
};
struct AdamHyper {
  double lr = 0.001, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled = false;  // true = AdamW
};

// Gradient clipping (Keras's optimizer arguments, the course's `clip`), 0 = off:
//   clipnorm         each parameter tensor's gradient  g ← g · c / max(‖g‖₂, c)
//                    (tf.clip_by_norm, Keras's clipnorm)
//   global_clipnorm  all gradients together            g ← g · c / max(‖G‖₂, c), ‖G‖₂² = Σ over every
//                    trainable tensor of ‖g‖₂² (tf.clip_by_global_norm; PyTorch's clip_grad_norm_
//                    divides by ‖G‖₂ + 1e-6 instead)
//   clipvalue        each element                      g ← min(max(g, −c), c) (clip_grad_value_)
// Norm clipping comes first, then the element-wise one (tf.keras's order);
// clipnorm and global_clipnorm exclude each other (Keras raises).
struct ClipSettings {
  double clipnorm = 0.0, clipvalue = 0.0, global_clipnorm = 0.0;
};

// What an update kernel does to each gradient element before anything else:
// g ← min(max(scale·g, −value), value), or g ← scale·g when value == 0.
struct GradientTransform {
  double scale = 1.0, value = 0.0;
};

// The factor c / max(norm, c) that clips a gradient of L2 norm `norm` to c
// (1 when c == 0, clipping off).
double clip_scale(double norm, double max_norm);

// Σ x², accumulated in double (the norms of clipnorm and global_clipnorm).
// The fast version sums per thread chunk and adds the partials in chunk order.
template <typename T>
double sum_of_squares(const T* x, int64_t n);
template <typename T>
double sum_of_squares_naive(const T* x, int64_t n);

// param, velocity, grad: (n,). velocity is unused (may be nullptr) when momentum == 0.
template <typename T>
void sgd_step(T* param, T* velocity, const T* grad, const SGDHyper& h, int64_t n,
              const GradientTransform& clip = {});
template <typename T>
void sgd_step_naive(T* param, T* velocity, const T* grad, const SGDHyper& h, int64_t n,
                    const GradientTransform& clip = {});

// param, square_avg, grad: (n,).
template <typename T>
void rmsprop_step(T* param, T* square_avg, const T* grad, const RMSpropHyper& h, int64_t n,
                  const GradientTransform& clip = {});
template <typename T>
void rmsprop_step_naive(T* param, T* square_avg, const T* grad, const RMSpropHyper& h, int64_t n,
                        const GradientTransform& clip = {});

// param, m, v, grad: (n,); step: the 1-based count of this update (bias correction).
template <typename T>
void adam_step(T* param, T* m, T* v, const T* grad, int64_t step, const AdamHyper& h, int64_t n,
               const GradientTransform& clip = {});
template <typename T>
void adam_step_naive(T* param, T* m, T* v, const T* grad, int64_t step, const AdamHyper& h,
                     int64_t n, const GradientTransform& clip = {});

// True when every x[i] is finite (no NaN, no ±inf): the model's train step
// reads its gradient arena once with this before it updates, and skips the
// update when it is false. x: (n,).
template <typename T>
bool all_finite(const T* x, int64_t n);
template <typename T>
bool all_finite_naive(const T* x, int64_t n);

// Throw ValueError naming `op`, the hyper-parameter and its value unless:
// lr finite and >= 0; momentum, dampening, alpha in [0, 1]; beta1, beta2 in
// [0, 1); eps finite and > 0; weight_decay finite and >= 0; step >= 1; nesterov
// only with momentum > 0 and dampening == 0 (as PyTorch). The kernels above do
// not check (they run every step); callers validate once, before updating.
void validate(const SGDHyper& h, const char* op);
void validate(const RMSpropHyper& h, const char* op);
void validate(const AdamHyper& h, int64_t step, const char* op);
// ValueError naming `op` and the setting unless each is finite and >= 0 (0 =
// off) and clipnorm and global_clipnorm are not both set; and for a transform,
// unless scale is finite and in (0, 1] and value finite and >= 0.
void validate(const ClipSettings& c, const char* op);
void validate(const GradientTransform& t, const char* op);

}  // namespace corenn
