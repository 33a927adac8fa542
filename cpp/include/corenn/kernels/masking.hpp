// Masking (Keras's layer): marks the padded steps of a sequence x (N, T, F).
// A step is masked when every one of its F features equals mask_value:
//   mask[n, t] = 0 if x[n, t, f] == mask_value for all f, else 1
//   y[n, t, :] = x[n, t, :] · mask[n, t]          (masked steps zeroed, as Keras)
//   dx[n, t, :] = dy[n, t, :] · mask[n, t]
// rows = N·T; the mask then reaches the recurrent layers and the loss.
#pragma once

#include <cstdint>

namespace corenn {

// y: (rows, features) and mask: (rows,) written; x: (rows, features).
template <typename T>
void masking_forward(T* y, uint8_t* mask, const T* x, int64_t rows, int64_t features, T mask_value);
// dx: (rows, features) written; dy: (rows, features); mask: from masking_forward.
template <typename T>
void masking_backward(T* dx, const T* dy, const uint8_t* mask, int64_t rows, int64_t features);

}  // namespace corenn
