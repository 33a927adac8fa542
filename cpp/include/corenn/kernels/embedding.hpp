// Embedding lookup (Keras's Embedding, PyTorch's nn.Embedding): a table
// W (input_dim, output_dim) whose row w is the vector of token w.
//   forward   y[i, :] = W[ids[i], :]                 a gather, i over the n ids
//   backward  dW[ids[i], :] += dy[i, :]              a scatter-add (dW accumulated)
// In the course's notation W's row w is e_w = E·o_w, E = Wᵀ (output_dim, input_dim)
// and o_w the one-hot vector of w: the gather is that product without the zeros.
// The ids are not differentiable: there is no input gradient.
#pragma once

#include <cstdint>

namespace corenn {

// ids (n,) written from x (n,): each x[i] must be a whole number in
// [0, input_dim) (the engine hands token ids over as the model's float
// values); ValueError naming `op`, "ids", the first bad value and its index
// otherwise (NaN included). I: float, double or int64_t.
template <typename I>
void embedding_ids(int64_t* ids, const I* x, int64_t n, int64_t input_dim, const char* op);

// y: (n, output_dim) written; ids: (n,) in [0, input_dim); W: (input_dim, output_dim).
template <typename T>
void embedding_forward(T* y, const int64_t* ids, const T* W, int64_t n, int64_t output_dim);
template <typename T>
void embedding_forward_naive(T* y, const int64_t* ids, const T* W, int64_t n, int64_t output_dim);

// dW: (input_dim, output_dim), accumulated (+=); dy: (n, output_dim); ids as above.
template <typename T>
void embedding_backward(T* dW, const T* dy, const int64_t* ids, int64_t n, int64_t output_dim);
template <typename T>
void embedding_backward_naive(T* dW, const T* dy, const int64_t* ids, int64_t n, int64_t output_dim);

}  // namespace corenn
