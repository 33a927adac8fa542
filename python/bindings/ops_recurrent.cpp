#include <algorithm>
#include <string>

#include "common.hpp"
#include "corenn/kernels/recurrent.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kRnnForward = "simple_rnn_forward";
constexpr const char* kRnnBackward = "simple_rnn_backward";
constexpr const char* kLstmForward = "lstm_forward";
constexpr const char* kLstmBackward = "lstm_backward";
constexpr const char* kGruForward = "gru_forward";
constexpr const char* kGruBackward = "gru_backward";

struct RnnDims {
  int64_t batch, steps, features, hidden;
};

// x (N, T, F), W_ih (G·H, F), W_hh (G·H, H) for a cell of `gates` gates; H is
// read from W_hh's second axis.
RnnDims rnn_dims(const py::array& x, const py::array& W_ih, const py::array& W_hh, int gates,
                 const char* op) {
  require_ndim(x, 3, op, "x", "(batch, steps, features)");
  for (int64_t d : shape_of(x))
    if (d < 1)
      throw ShapeError(std::string(op) + ": x must have positive dimensions, got shape " +
                       shape_string(shape_of(x)));
  require_same_dtype(x, W_ih, op, "x", "W_ih");
  require_same_dtype(x, W_hh, op, "x", "W_hh");
  const std::string stacked = "(" + std::to_string(gates) + "·units, ";
  require_ndim(W_hh, 2, op, "W_hh", (stacked + "units)").c_str());
  const int64_t H = W_hh.shape(1);
  if (H < 1)
    throw ShapeError(std::string(op) + ": W_hh must have at least one unit, got shape " +
                     shape_string(shape_of(W_hh)));
  const RnnDims d{x.shape(0), x.shape(1), x.shape(2), H};
  require_shape(W_hh, {gates * H, H}, op, "W_hh");
  require_shape(W_ih, {gates * H, d.features}, op, "W_ih");
  return d;
}

// An array that is only read, of x's dtype and the given shape.
py::array input_array(const py::object& obj, const py::array& x, const std::vector<int64_t>& shape,
                      const char* op, const char* arg) {
  py::array a = obj.is_none() ? py::array() : py::array::ensure(obj);
  if (obj.is_none() || !a)
    throw TypeError(std::string(op) + ": " + arg + " must be an array, got " +
                    py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  require_same_dtype(x, a, op, "x", arg);
  require_shape(a, shape, op, arg);
  return a;
}

// None (zeros) or an input array; `present` records which.
struct Optional {
  py::array array;
  bool present;
};

Optional optional_array(const py::object& obj, const py::array& x, const std::vector<int64_t>& shape,
                        const char* op, const char* arg) {
  if (obj.is_none()) return {py::array(), false};
  return {input_array(obj, x, shape, op, arg), true};
}

template <typename T>
const T* data_or_null(const Optional& o, carray<T>& keep) {
  if (!o.present) return nullptr;
  keep = contiguous<T>(o.array);
  return keep.data();
}

// The optional step mask: None (every step valid) or a (N, T) array of bools
// or integers 0/1, 1 = a valid step. Returned as bytes (empty for None).
std::vector<uint8_t> step_mask(const py::object& obj, const RnnDims& d, const char* op) {
  if (obj.is_none()) return {};
  py::array a = py::array::ensure(obj);
  if (!a)
    throw TypeError(std::string(op) + ": mask must be None or an array, got " +
                    py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  const char k = a.dtype().kind();
  if (k != 'b' && k != 'i' && k != 'u')
    throw TypeError(std::string(op) + ": mask must be bool or integer (1 = a valid step), got " + dtype_str(a));
  require_shape(a, {d.batch, d.steps}, op, "mask");
  const auto values = contiguous<int64_t>(a.attr("astype")("int64"));
  std::vector<uint8_t> mask(static_cast<size_t>(d.batch * d.steps));
  for (size_t i = 0; i < mask.size(); ++i) {
    const int64_t v = values.data()[i];
    if (v != 0 && v != 1)
      throw ValueError(std::string(op) + ": mask must hold 0 or 1, got " + std::to_string(v) + " at flat index " +
                       std::to_string(i));
    mask[i] = static_cast<uint8_t>(v);
  }
  return mask;
}

const uint8_t* mask_data(const std::vector<uint8_t>& mask) { return mask.empty() ? nullptr : mask.data(); }

// The cache handed from forward to backward: the kernel's workspace (none for
// SimpleRNN) followed by y (the backward reads h_{t-1} from it).
int64_t cache_size(int64_t workspace, const RnnDims& d) { return workspace + d.batch * d.steps * d.hidden; }

py::tuple simple_rnn_forward_py(const py::array& x, const py::array& W_ih, const py::array& W_hh,
                                const py::object& b, const py::object& h0, const py::object& mask,
                                const py::object& recurrent_mask, bool naive) {
  const FloatKind kind = float_kind(x, kRnnForward, "x");
  const RnnDims d = rnn_dims(x, W_ih, W_hh, 1, kRnnForward);
  const std::vector<uint8_t> step_mask_bytes = step_mask(mask, d, kRnnForward);
  const uint8_t* mp = mask_data(step_mask_bytes);
  const int64_t N = d.batch, S = d.steps, H = d.hidden;
  py::array b_arr = input_array(b, x, {H}, kRnnForward, "b");
  const Optional h0o = optional_array(h0, x, {N, H}, kRnnForward, "h0");
  const Optional rmo = optional_array(recurrent_mask, x, {N, H}, kRnnForward, "recurrent_mask");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wic = contiguous<T>(W_ih), Whc = contiguous<T>(W_hh), bc = contiguous<T>(b_arr);
    carray<T> h0c, rmc;
    const T* h0p = data_or_null<T>(h0o, h0c);
    const T* rmp = data_or_null<T>(rmo, rmc);
    auto y = new_array<T>({N, S, H});
    auto h_T = new_array<T>({N, H});
    auto cache = new_array<T>({cache_size(0, d)});
    T *yp = y.mutable_data(), *hp = h_T.mutable_data(), *wp = cache.mutable_data();
    {
      py::gil_scoped_release nogil;
      (naive ? simple_rnn_forward_naive<T> : simple_rnn_forward<T>)(yp, hp, xc.data(), Wic.data(), Whc.data(),
                                                                    bc.data(), h0p, mp, N, S, d.features, H, rmp);
      std::copy(yp, yp + N * S * H, wp);
    }
    return py::make_tuple(y, h_T, cache);
  });
}

py::tuple simple_rnn_backward_py(const py::array& dy, const py::object& dh_T, const py::array& x,
                                 const py::array& W_ih, const py::array& W_hh, const py::object& b,
                                 const py::object& h0, const py::object& cache, const py::object& mask,
                                const py::object& recurrent_mask, bool naive) {
  const FloatKind kind = float_kind(x, kRnnBackward, "x");
  const RnnDims d = rnn_dims(x, W_ih, W_hh, 1, kRnnBackward);
  const std::vector<uint8_t> step_mask_bytes = step_mask(mask, d, kRnnBackward);
  const uint8_t* mp = mask_data(step_mask_bytes);
  const int64_t N = d.batch, S = d.steps, F = d.features, H = d.hidden;
  input_array(b, x, {H}, kRnnBackward, "b");
  py::array dy_arr = input_array(dy, x, {N, S, H}, kRnnBackward, "dy");
  const Optional dhT = optional_array(dh_T, x, {N, H}, kRnnBackward, "dh_T");
  const Optional h0o = optional_array(h0, x, {N, H}, kRnnBackward, "h0");
  const Optional rmo = optional_array(recurrent_mask, x, {N, H}, kRnnBackward, "recurrent_mask");
  py::array cache_arr = input_array(cache, x, {cache_size(0, d)}, kRnnBackward, "cache");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wic = contiguous<T>(W_ih), Whc = contiguous<T>(W_hh);
    auto dyc = contiguous<T>(dy_arr), cc = contiguous<T>(cache_arr);
    carray<T> dhc, h0c, rmc;
    const T* dhp = data_or_null<T>(dhT, dhc);
    const T* h0p = data_or_null<T>(h0o, h0c);
    const T* rmp = data_or_null<T>(rmo, rmc);
    auto dx = new_array<T>({N, S, F});
    auto dW_ih = new_array<T>({H, F});
    auto dW_hh = new_array<T>({H, H});
    auto db = new_array<T>({H});
    auto dh0 = new_array<T>({N, H});
    T *dxp = dx.mutable_data(), *dWip = dW_ih.mutable_data(), *dWhp = dW_hh.mutable_data(),
      *dbp = db.mutable_data(), *dh0p = dh0.mutable_data();
    T* sp = kept_scratch<T>(simple_rnn_backward_scratch_size(N, S, H));
    {
      py::gil_scoped_release nogil;
      std::fill(dWip, dWip + H * F, T(0));
      std::fill(dWhp, dWhp + H * H, T(0));
      std::fill(dbp, dbp + H, T(0));
      (naive ? simple_rnn_backward_naive<T> : simple_rnn_backward<T>)(
          dxp, dh0p, dWip, dWhp, dbp, sp, dyc.data(), dhp, xc.data(), Wic.data(), Whc.data(), h0p, cc.data(),
          mp, N, S, F, H, rmp);
    }
    return py::make_tuple(dx, dW_ih, dW_hh, db, dh0);
  });
}

py::tuple lstm_forward_py(const py::array& x, const py::array& W_ih, const py::array& W_hh,
                          const py::object& b, const py::object& h0, const py::object& c0, const py::object& mask,
                          const py::object& recurrent_mask, bool naive) {
  const FloatKind kind = float_kind(x, kLstmForward, "x");
  const RnnDims d = rnn_dims(x, W_ih, W_hh, 4, kLstmForward);
  const std::vector<uint8_t> step_mask_bytes = step_mask(mask, d, kLstmForward);
  const uint8_t* mp = mask_data(step_mask_bytes);
  const int64_t N = d.batch, S = d.steps, H = d.hidden;
  py::array b_arr = input_array(b, x, {4 * H}, kLstmForward, "b");
  const Optional h0o = optional_array(h0, x, {N, H}, kLstmForward, "h0");
  const Optional rmo = optional_array(recurrent_mask, x, {N, H}, kLstmForward, "recurrent_mask");
  const Optional c0o = optional_array(c0, x, {N, H}, kLstmForward, "c0");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wic = contiguous<T>(W_ih), Whc = contiguous<T>(W_hh), bc = contiguous<T>(b_arr);
    carray<T> h0c, c0c, rmc;
    const T* rmp = data_or_null<T>(rmo, rmc);
    const T* h0p = data_or_null<T>(h0o, h0c);
    const T* c0p = data_or_null<T>(c0o, c0c);
    const int64_t ws = lstm_workspace_size(N, S, H);
    auto y = new_array<T>({N, S, H});
    auto h_T = new_array<T>({N, H});
    auto c_T = new_array<T>({N, H});
    auto cache = new_array<T>({cache_size(ws, d)});
    T *yp = y.mutable_data(), *hp = h_T.mutable_data(), *cp = c_T.mutable_data(), *wp = cache.mutable_data();
    {
      py::gil_scoped_release nogil;
      (naive ? lstm_forward_naive<T> : lstm_forward<T>)(yp, hp, cp, wp, xc.data(), Wic.data(), Whc.data(),
                                                        bc.data(), h0p, c0p, mp, N, S, d.features, H, rmp);
      std::copy(yp, yp + N * S * H, wp + ws);
    }
    return py::make_tuple(y, h_T, c_T, cache);
  });
}

py::tuple lstm_backward_py(const py::array& dy, const py::object& dh_T, const py::object& dc_T,
                           const py::array& x, const py::array& W_ih, const py::array& W_hh,
                           const py::object& b, const py::object& h0, const py::object& c0,
                           const py::object& cache, const py::object& mask,
                                const py::object& recurrent_mask, bool naive) {
  const FloatKind kind = float_kind(x, kLstmBackward, "x");
  const RnnDims d = rnn_dims(x, W_ih, W_hh, 4, kLstmBackward);
  const std::vector<uint8_t> step_mask_bytes = step_mask(mask, d, kLstmBackward);
  const uint8_t* mp = mask_data(step_mask_bytes);
  const int64_t N = d.batch, S = d.steps, F = d.features, H = d.hidden;
  input_array(b, x, {4 * H}, kLstmBackward, "b");
  py::array dy_arr = input_array(dy, x, {N, S, H}, kLstmBackward, "dy");
  const Optional dhT = optional_array(dh_T, x, {N, H}, kLstmBackward, "dh_T");
  const Optional dcT = optional_array(dc_T, x, {N, H}, kLstmBackward, "dc_T");
  const Optional h0o = optional_array(h0, x, {N, H}, kLstmBackward, "h0");
  const Optional rmo = optional_array(recurrent_mask, x, {N, H}, kLstmBackward, "recurrent_mask");
  const Optional c0o = optional_array(c0, x, {N, H}, kLstmBackward, "c0");
  const int64_t ws = lstm_workspace_size(N, S, H);
  py::array cache_arr = input_array(cache, x, {cache_size(ws, d)}, kLstmBackward, "cache");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wic = contiguous<T>(W_ih), Whc = contiguous<T>(W_hh);
    auto dyc = contiguous<T>(dy_arr), cc = contiguous<T>(cache_arr);
    carray<T> dhc, dcc, h0c, c0c, rmc;
    const T* rmp = data_or_null<T>(rmo, rmc);
    const T* dhp = data_or_null<T>(dhT, dhc);
    const T* dcp = data_or_null<T>(dcT, dcc);
    const T* h0p = data_or_null<T>(h0o, h0c);
    const T* c0p = data_or_null<T>(c0o, c0c);
    auto dx = new_array<T>({N, S, F});
    auto dW_ih = new_array<T>({4 * H, F});
    auto dW_hh = new_array<T>({4 * H, H});
    auto db = new_array<T>({4 * H});
    auto dh0 = new_array<T>({N, H});
    auto dc0 = new_array<T>({N, H});
    T *dxp = dx.mutable_data(), *dWip = dW_ih.mutable_data(), *dWhp = dW_hh.mutable_data(),
      *dbp = db.mutable_data(), *dh0p = dh0.mutable_data(), *dc0p = dc0.mutable_data();
    T* sp = kept_scratch<T>(lstm_backward_scratch_size(N, S, H));
    {
      py::gil_scoped_release nogil;
      // The kernels accumulate parameter gradients; fresh outputs start at zero.
      std::fill(dWip, dWip + 4 * H * F, T(0));
      std::fill(dWhp, dWhp + 4 * H * H, T(0));
      std::fill(dbp, dbp + 4 * H, T(0));
      const T* wp = cc.data();
      (naive ? lstm_backward_naive<T> : lstm_backward<T>)(
          dxp, dh0p, dc0p, dWip, dWhp, dbp, sp, dyc.data(), dhp, dcp, xc.data(), Wic.data(), Whc.data(),
          h0p, c0p, wp + ws, wp, mp, N, S, F, H, rmp);
    }
    return py::make_tuple(dx, dW_ih, dW_hh, db, dh0, dc0);
  });
}

py::tuple gru_forward_py(const py::array& x, const py::array& W_ih, const py::array& W_hh,
                         const py::object& b, const py::object& rb, const py::object& h0, const py::object& mask,
                         const py::object& recurrent_mask, bool naive) {
  const FloatKind kind = float_kind(x, kGruForward, "x");
  const RnnDims d = rnn_dims(x, W_ih, W_hh, 3, kGruForward);
  const std::vector<uint8_t> step_mask_bytes = step_mask(mask, d, kGruForward);
  const uint8_t* mp = mask_data(step_mask_bytes);
  const int64_t N = d.batch, S = d.steps, H = d.hidden;
  py::array b_arr = input_array(b, x, {3 * H}, kGruForward, "b");
  py::array rb_arr = input_array(rb, x, {3 * H}, kGruForward, "recurrent_bias");
  const Optional h0o = optional_array(h0, x, {N, H}, kGruForward, "h0");
  const Optional rmo = optional_array(recurrent_mask, x, {N, H}, kGruForward, "recurrent_mask");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wic = contiguous<T>(W_ih), Whc = contiguous<T>(W_hh);
    auto bc = contiguous<T>(b_arr), rbc = contiguous<T>(rb_arr);
    carray<T> h0c, rmc;
    const T* h0p = data_or_null<T>(h0o, h0c);
    const T* rmp = data_or_null<T>(rmo, rmc);
    const int64_t ws = gru_workspace_size(N, S, H);
    auto y = new_array<T>({N, S, H});
    auto h_T = new_array<T>({N, H});
    auto cache = new_array<T>({cache_size(ws, d)});
    T *yp = y.mutable_data(), *hp = h_T.mutable_data(), *wp = cache.mutable_data();
    {
      py::gil_scoped_release nogil;
      (naive ? gru_forward_naive<T> : gru_forward<T>)(yp, hp, wp, xc.data(), Wic.data(), Whc.data(), bc.data(),
                                                      rbc.data(), h0p, mp, N, S, d.features, H, rmp);
      std::copy(yp, yp + N * S * H, wp + ws);
    }
    return py::make_tuple(y, h_T, cache);
  });
}

py::tuple gru_backward_py(const py::array& dy, const py::object& dh_T, const py::array& x,
                          const py::array& W_ih, const py::array& W_hh, const py::object& b,
                          const py::object& rb, const py::object& h0, const py::object& cache,
                          const py::object& mask,
                                const py::object& recurrent_mask, bool naive) {
  const FloatKind kind = float_kind(x, kGruBackward, "x");
  const RnnDims d = rnn_dims(x, W_ih, W_hh, 3, kGruBackward);
  const std::vector<uint8_t> step_mask_bytes = step_mask(mask, d, kGruBackward);
  const uint8_t* mp = mask_data(step_mask_bytes);
  const int64_t N = d.batch, S = d.steps, F = d.features, H = d.hidden;
  input_array(b, x, {3 * H}, kGruBackward, "b");
  input_array(rb, x, {3 * H}, kGruBackward, "recurrent_bias");
  py::array dy_arr = input_array(dy, x, {N, S, H}, kGruBackward, "dy");
  const Optional dhT = optional_array(dh_T, x, {N, H}, kGruBackward, "dh_T");
  const Optional h0o = optional_array(h0, x, {N, H}, kGruBackward, "h0");
  const Optional rmo = optional_array(recurrent_mask, x, {N, H}, kGruBackward, "recurrent_mask");
  const int64_t ws = gru_workspace_size(N, S, H);
  py::array cache_arr = input_array(cache, x, {cache_size(ws, d)}, kGruBackward, "cache");
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(x), Wic = contiguous<T>(W_ih), Whc = contiguous<T>(W_hh);
    auto dyc = contiguous<T>(dy_arr), cc = contiguous<T>(cache_arr);
    carray<T> dhc, h0c, rmc;
    const T* dhp = data_or_null<T>(dhT, dhc);
    const T* h0p = data_or_null<T>(h0o, h0c);
    const T* rmp = data_or_null<T>(rmo, rmc);
    auto dx = new_array<T>({N, S, F});
    auto dW_ih = new_array<T>({3 * H, F});
    auto dW_hh = new_array<T>({3 * H, H});
    auto db = new_array<T>({3 * H});
    auto drb = new_array<T>({3 * H});
    auto dh0 = new_array<T>({N, H});
    T *dxp = dx.mutable_data(), *dWip = dW_ih.mutable_data(), *dWhp = dW_hh.mutable_data(),
      *dbp = db.mutable_data(), *drbp = drb.mutable_data(), *dh0p = dh0.mutable_data();
    T* sp = kept_scratch<T>(gru_backward_scratch_size(N, S, H));
    {
      py::gil_scoped_release nogil;
      std::fill(dWip, dWip + 3 * H * F, T(0));
      std::fill(dWhp, dWhp + 3 * H * H, T(0));
      std::fill(dbp, dbp + 3 * H, T(0));
      std::fill(drbp, drbp + 3 * H, T(0));
      const T* wp = cc.data();
      (naive ? gru_backward_naive<T> : gru_backward<T>)(dxp, dh0p, dWip, dWhp, dbp, drbp, sp, dyc.data(), dhp,
                                                        xc.data(), Wic.data(), Whc.data(), h0p, wp + ws, wp,
                                                        mp, N, S, F, H, rmp);
    }
    return py::make_tuple(dx, dW_ih, dW_hh, db, drb, dh0);
  });
}

}  // namespace

void bind_recurrent(py::module_& ops) {
  ops.def("simple_rnn_forward", &simple_rnn_forward_py, py::arg("x"), py::arg("W_ih"), py::arg("W_hh"),
          py::arg("b"), py::arg("h0") = py::none(), py::arg("mask") = py::none(), py::arg("recurrent_mask") = py::none(),
          py::arg("naive") = false,
          "(y, h_T, cache): h_t = tanh(W_ih x_t + W_hh h_{t-1} + b) over x (N, T, F), batch first. "
          "W_ih (H, F), W_hh (H, H), b (H,) = PyTorch's bias_ih + bias_hh; h0 (N, H) or None (zeros). "
          "cache is what simple_rnn_backward reads. mask (N, T) of bools or 0/1, or None: at a step with "
          "mask 0 the state carries over and y_t is that carried h (Keras's masks); every recurrent op "
          "takes it, and backward must get the forward's. recurrent_mask (N, H) of x's dtype, or None: "
          "recurrent dropout, the recurrent products of every step read h_{t-1} * recurrent_mask (the "
          "caller's mask, 0 or 1/(1 - rate) per example and unit; every recurrent op takes it, and "
          "backward must get the forward's).");
  ops.def("simple_rnn_backward", &simple_rnn_backward_py, py::arg("dy"), py::arg("dh_T"), py::arg("x"),
          py::arg("W_ih"), py::arg("W_hh"), py::arg("b"), py::arg("h0"), py::arg("cache"), py::arg("mask") = py::none(),
          py::arg("recurrent_mask") = py::none(),
          py::arg("naive") = false,
          "(dx, dW_ih, dW_hh, db, dh0): backward through time of simple_rnn_forward; dy (N, T, H), "
          "dh_T (N, H) or None (zeros).");
  ops.def("lstm_forward", &lstm_forward_py, py::arg("x"), py::arg("W_ih"), py::arg("W_hh"), py::arg("b"),
          py::arg("h0") = py::none(), py::arg("c0") = py::none(), py::arg("mask") = py::none(),
          py::arg("recurrent_mask") = py::none(),
          py::arg("naive") = false,
          "(y, h_T, c_T, cache): an LSTM over x (N, T, F), batch first, PyTorch's gate order i, f, g, o. "
          "W_ih (4H, F), W_hh (4H, H), b (4H,) = PyTorch's bias_ih + bias_hh; h0, c0 (N, H) or None "
          "(zeros). y (N, T, H) holds every h_t; cache (1-D, x's dtype) is what lstm_backward reads. "
          "c_t = f*c_{t-1} + i*g, h_t = o*tanh(c_t) (course 5, week 1). ValueError on wrong shapes, "
          "TypeError on mixed or non-float dtypes.");
  ops.def("lstm_backward", &lstm_backward_py, py::arg("dy"), py::arg("dh_T"), py::arg("dc_T"), py::arg("x"),
          py::arg("W_ih"), py::arg("W_hh"), py::arg("b"), py::arg("h0"), py::arg("c0"), py::arg("cache"),
          py::arg("mask") = py::none(), py::arg("recurrent_mask") = py::none(),
          py::arg("naive") = false,
          "(dx, dW_ih, dW_hh, db, dh0, dc0): backward through time of lstm_forward. dy (N, T, H) is the "
          "gradient of every output step; dh_T, dc_T (N, H) of the final states, or None (zeros); x, "
          "weights, h0, c0 and cache as given to and returned by lstm_forward.");
  ops.def("gru_forward", &gru_forward_py, py::arg("x"), py::arg("W_ih"), py::arg("W_hh"), py::arg("b"),
          py::arg("recurrent_bias"), py::arg("h0") = py::none(), py::arg("mask") = py::none(),
          py::arg("recurrent_mask") = py::none(),
          py::arg("naive") = false,
          "(y, h_T, cache): a GRU over x (N, T, F), batch first, PyTorch's gate order r, z, n and "
          "formula n = tanh(W_in x + b_n + r*(W_hn h + rb_n)), h_t = (1-z)*n + z*h_{t-1} (Keras's "
          "reset_after=True). W_ih (3H, F), W_hh (3H, H), b = bias_ih (3H,), recurrent_bias = "
          "bias_hh (3H,); h0 (N, H) or None (zeros).");
  ops.def("gru_backward", &gru_backward_py, py::arg("dy"), py::arg("dh_T"), py::arg("x"), py::arg("W_ih"),
          py::arg("W_hh"), py::arg("b"), py::arg("recurrent_bias"), py::arg("h0"), py::arg("cache"),
          py::arg("mask") = py::none(), py::arg("recurrent_mask") = py::none(),
          py::arg("naive") = false,
          "(dx, dW_ih, dW_hh, db, drecurrent_bias, dh0): backward through time of gru_forward; dy "
          "(N, T, H), dh_T (N, H) or None (zeros).");
}

const OpsRegistration recurrent_ops("recurrent", bind_recurrent);

}  // namespace bind
}  // namespace corenn
