#include <algorithm>
#include <string>
#include <vector>

#include "common.hpp"
#include "corenn/kernels/embedding.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "embedding_forward";
constexpr const char* kBackward = "embedding_backward";

// The ids as int64 (n,), checked by the kernel's embedding_ids: an integer
// array (any width), or a float32/float64 one holding whole numbers (what
// the engine hands a layer). Anything else (bool, complex, object) is a TypeError.
std::vector<int64_t> ids_of(const py::array& ids, int64_t input_dim, const char* op) {
  std::vector<int64_t> out(static_cast<size_t>(ids.size()));
  const int64_t n = static_cast<int64_t>(ids.size());
  const char kind = ids.dtype().kind();
  if (kind == 'i' || kind == 'u') {
    auto c = contiguous<int64_t>(ids);
    ReleaseGil nogil;
    embedding_ids<int64_t>(out.data(), c.data(), n, input_dim, op);
  } else if (kind == 'f') {
    dispatch_float(float_kind(ids, op, "ids"), [&](auto tag) {
      using T = decltype(tag);
      auto c = contiguous<T>(ids);
      ReleaseGil nogil;
      embedding_ids<T>(out.data(), c.data(), n, input_dim, op);
    });
  } else {
    throw TypeError(std::string(op) + ": ids must be integers (or float32/float64 whole numbers), got " +
                    dtype_str(ids));
  }
  return out;
}

py::array embedding_forward_py(const py::array& ids, const py::array& weights, bool naive) {
  const FloatKind kind = float_kind(weights, kForward, "weights");
  require_ndim(weights, 2, kForward, "weights", "(input_dim, output_dim)");
  const int64_t input_dim = weights.shape(0), output_dim = weights.shape(1);
  if (input_dim < 1 || output_dim < 1)
    throw ValueError(std::string(kForward) + ": weights must have input_dim, output_dim >= 1, got shape " +
                     shape_string(shape_of(weights)));
  const std::vector<int64_t> index = ids_of(ids, input_dim, kForward);
  std::vector<int64_t> y_shape = shape_of(ids);
  y_shape.push_back(output_dim);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto w = contiguous<T>(weights);
    auto y = new_array<T>(y_shape);
    T* yp = y.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? embedding_forward_naive<T> : embedding_forward<T>)(yp, index.data(), w.data(),
                                                                  static_cast<int64_t>(index.size()), output_dim);
    }
    return y;
  });
}

py::array embedding_backward_py(const py::array& dy, const py::array& ids, int64_t input_dim, bool naive) {
  const FloatKind kind = float_kind(dy, kBackward, "dy");
  if (input_dim < 1 || input_dim > kMaxIntHyperParameter)
    throw ValueError(std::string(kBackward) + ": input_dim must be in [1, " + std::to_string(kMaxIntHyperParameter) +
                     "], got " + std::to_string(input_dim));
  if (dy.ndim() != ids.ndim() + 1 || dy.shape(dy.ndim() - 1) < 1)
    throw ShapeError(std::string(kBackward) + ": dy must have shape ids.shape + (output_dim,) = " +
                     shape_string(shape_of(ids)) + " + (output_dim,), got " + shape_string(shape_of(dy)));
  const int64_t output_dim = dy.shape(dy.ndim() - 1);
  std::vector<int64_t> want = shape_of(ids);
  want.push_back(output_dim);
  require_shape(dy, want, kBackward, "dy");
  const std::vector<int64_t> index = ids_of(ids, input_dim, kBackward);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto g = contiguous<T>(dy);
    auto dW = new_array<T>({input_dim, output_dim});
    T* dWp = dW.mutable_data();
    {
      ReleaseGil nogil;
      std::fill(dWp, dWp + input_dim * output_dim, T(0));
      (naive ? embedding_backward_naive<T> : embedding_backward<T>)(dWp, g.data(), index.data(),
                                                                    static_cast<int64_t>(index.size()), output_dim);
    }
    return dW;
  });
}

}  // namespace

void bind_embedding(py::module_& ops) {
  ops.def("embedding_forward", &embedding_forward_py, py::arg("ids"), py::arg("weights"), py::arg("naive") = false,
          "y (*ids.shape, output_dim): y[..., :] = weights[ids[...], :], the rows of the table weights "
          "(input_dim, output_dim) (Keras's Embedding, PyTorch's nn.Embedding). ids: integers, or "
          "float32/float64 whole numbers, in [0, input_dim); ValueError naming the first bad one.");
  ops.def("embedding_backward", &embedding_backward_py, py::arg("dy"), py::arg("ids"), py::arg("input_dim"),
          py::arg("naive") = false,
          "dW (input_dim, output_dim): dW[w] = Σ dy[i] over the positions i with ids[i] == w (a "
          "scatter-add, summed in the order of the ids whatever the thread count). The ids get no gradient.");
}

const OpsRegistration embedding_ops("embedding", bind_embedding);

}  // namespace bind
}  // namespace corenn
