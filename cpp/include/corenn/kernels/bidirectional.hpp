// The plumbing of a bidirectional RNN (course 5, week 1): the backward
// direction reads the sequence reversed in time, and the two directions'
// outputs are merged (Keras's Bidirectional merge modes). Plain loops over
// memory-bound copies, parallel over rows.
#pragma once

#include <cstdint>

namespace corenn {

// out[n, S-1-t, :] = x[n, t, :]; x, out: (batch, steps, width), distinct.
// Its own inverse, so it is also its own backward. T: float, double, or uint8_t
// for the per-step masks (batch, steps, 1) that reverse with their sequence.
template <typename T>
void reverse_steps(T* out, const T* x, int64_t batch, int64_t steps, int64_t width);

// How the forward (a) and backward (b) outputs are joined, per row:
// concat y = [a, b] (wa + wb values), sum y = a + b, mul y = a ⊙ b, ave y = (a + b) / 2.
enum class DirectionMerge { concat, sum, mul, ave };

// y: (rows, wa + wb) for concat, else (rows, wa) with wa == wb; a: (rows, wa), b: (rows, wb).
template <typename T>
void merge_directions_forward(T* y, const T* a, const T* b, int64_t rows, int64_t wa, int64_t wb,
                              DirectionMerge mode);

// da: (rows, wa), db: (rows, wb), both written, from dy shaped like y; mul
// reads a and b (da = dy ⊙ b, db = dy ⊙ a), the others do not.
template <typename T>
void merge_directions_backward(T* da, T* db, const T* dy, const T* a, const T* b, int64_t rows, int64_t wa,
                               int64_t wb, DirectionMerge mode);

}  // namespace corenn
