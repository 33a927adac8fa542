// The Dot layer's kernel as functional ops: one matrix product per example
// (Keras's batch_dot, torch.bmm with operands that may be stored transposed).
#include "common.hpp"
#include "corenn/kernels/batched_matmul.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kForward = "batched_matmul_forward";
constexpr const char* kBackward = "batched_matmul_backward";

// The product's sizes from the stored operands: a (batch, M, K), or (batch, K, M)
// when trans_a; b (batch, K, N), or (batch, N, K) when trans_b.
BatchedMatmulDims dims_of(const py::array& a, const py::array& b, bool trans_a, bool trans_b, const char* op) {
  require_ndim(a, 3, op, "a", trans_a ? "(batch, K, M)" : "(batch, M, K)");
  require_ndim(b, 3, op, "b", trans_b ? "(batch, N, K)" : "(batch, K, N)");
  BatchedMatmulDims d;
  d.batch = a.shape(0);
  d.m = a.shape(trans_a ? 2 : 1);
  d.k = a.shape(trans_a ? 1 : 2);
  d.n = b.shape(trans_b ? 1 : 2);
  d.trans_a = trans_a;
  d.trans_b = trans_b;
  const int64_t b_batch = b.shape(0), b_k = b.shape(trans_b ? 2 : 1);
  if (b_batch != d.batch || b_k != d.k)
    throw ShapeError(std::string(op) + ": b must have a's batch (" + std::to_string(d.batch) +
                     ") and contracted size K (" + std::to_string(d.k) + "), got b of shape " +
                     shape_string(shape_of(b)) + " for a of shape " + shape_string(shape_of(a)) +
                     " (trans_a=" + (trans_a ? "True" : "False") + ", trans_b=" + (trans_b ? "True" : "False") +
                     ")");
  return d;
}

// a, b -> c (batch, M, N) = op(a) · op(b)
py::array batched_matmul_forward_py(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                                    bool naive) {
  const FloatKind kind = float_kind(a, kForward, "a");
  require_same_dtype(a, b, kForward, "a", "b");
  const BatchedMatmulDims d = dims_of(a, b, trans_a, trans_b, kForward);
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto ac = contiguous<T>(a), bc = contiguous<T>(b);
    auto c = new_array<T>({d.batch, d.m, d.n});
    T* cp = c.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? batched_matmul_forward_naive<T> : batched_matmul_forward<T>)(cp, ac.data(), bc.data(), d);
    }
    return c;
  });
}

// dc (batch, M, N), a, b -> (da, db), each stored as its operand is
py::tuple batched_matmul_backward_py(const py::array& dc, const py::array& a, const py::array& b, bool trans_a,
                                     bool trans_b, bool naive) {
  const FloatKind kind = float_kind(a, kBackward, "a");
  require_same_dtype(a, b, kBackward, "a", "b");
  require_same_dtype(a, dc, kBackward, "a", "dc");
  const BatchedMatmulDims d = dims_of(a, b, trans_a, trans_b, kBackward);
  require_shape(dc, {d.batch, d.m, d.n}, kBackward, "dc");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto dcc = contiguous<T>(dc), ac = contiguous<T>(a), bc = contiguous<T>(b);
    auto da = new_array<T>(shape_of(a)), db = new_array<T>(shape_of(b));
    T *dap = da.mutable_data(), *dbp = db.mutable_data();
    {
      ReleaseGil nogil;
      (naive ? batched_matmul_backward_naive<T> : batched_matmul_backward<T>)(dap, dbp, dcc.data(), ac.data(),
                                                                              bc.data(), d, false, false);
    }
    return py::make_tuple(da, db);
  });
}

}  // namespace

void bind_batched_matmul(py::module_& ops) {
  ops.def("batched_matmul_forward", &batched_matmul_forward_py, py::arg("a"), py::arg("b"),
          py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("naive") = false,
          "c[e] = op(a[e]) · op(b[e]) (the Dot layer's kernel, Keras's batch_dot). a (batch, M, K), or\n"
          "(batch, K, M) stored transposed when trans_a; b (batch, K, N), or (batch, N, K) when trans_b;\n"
          "c (batch, M, N). ValueError for operands that are not 3-D or disagree on batch or K.");
  ops.def("batched_matmul_backward", &batched_matmul_backward_py, py::arg("dc"), py::arg("a"), py::arg("b"),
          py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("naive") = false,
          "(da, db): d op(a) = dc · op(b)ᵀ, d op(b) = op(a)ᵀ · dc, each stored as its operand is.\n"
          "dc (batch, M, N); a, b as batched_matmul_forward's.");
}

const OpsRegistration batched_matmul_ops("batched_matmul", bind_batched_matmul);

}  // namespace bind
}  // namespace corenn
