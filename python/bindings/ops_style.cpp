#include <vector>

#include "common.hpp"
#include "corenn/kernels/style.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kGram = "gram_matrix";
constexpr const char* kGramBackward = "gram_matrix_backward";
constexpr const char* kContent = "content_cost";
constexpr const char* kStyle = "style_cost";
constexpr const char* kTv = "total_variation";

// NCHW activations with no empty axis (a cost normalised by C·H·W has no value
// for an empty layer): returns (N, C, H, W).
std::vector<int64_t> activation_shape(const py::array& a, const char* op, const char* arg) {
  require_ndim(a, 4, op, arg, "activations (N, C, H, W)");
  const std::vector<int64_t> s = shape_of(a);
  for (int64_t v : s)
    if (v <= 0)
      throw ShapeError(std::string(op) + ": " + arg + " must not be empty, got shape " +
                       shape_string(s));
  return s;
}

// a (N, C, H, W) -> G (N, C, C)
py::array gram_matrix_py(const py::array& a, bool naive) {
  const FloatKind kind = float_kind(a, kGram, "a");
  const auto s = activation_shape(a, kGram, "a");
  const int64_t n = s[0], c = s[1], hw = s[2] * s[3];
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto ac = contiguous<T>(a);
    auto g = new_array<T>({n, c, c});
    T* gp = g.mutable_data();
    {
      py::gil_scoped_release nogil;
      validate_finite(ac.data(), n * c * hw, kGram, "a");
      (naive ? gram_matrix_naive<T> : gram_matrix<T>)(gp, ac.data(), n, c, hw);
    }
    return g;
  });
}

// dg (N, C, C), a (N, C, H, W) -> da (N, C, H, W)
py::array gram_matrix_backward_py(const py::array& dg, const py::array& a, bool naive) {
  const FloatKind kind = float_kind(a, kGramBackward, "a");
  require_same_dtype(a, dg, kGramBackward, "a", "dg");
  const auto s = activation_shape(a, kGramBackward, "a");
  const int64_t n = s[0], c = s[1], hw = s[2] * s[3];
  require_shape(dg, {n, c, c}, kGramBackward, "dg");
  return dispatch_float(kind, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto ac = contiguous<T>(a), dgc = contiguous<T>(dg);
    auto da = new_array<T>(s);
    T* dap = da.mutable_data();
    {
      py::gil_scoped_release nogil;
      validate_finite(ac.data(), n * c * hw, kGramBackward, "a");
      validate_finite(dgc.data(), n * c * c, kGramBackward, "dg");
      (naive ? gram_matrix_backward_naive<T> : gram_matrix_backward<T>)(dap, dgc.data(),
                                                                          ac.data(), n, c, hw);
    }
    return da;
  });
}

// The two-activation costs share their checks: target (the constant, a_C or
// a_S) and a_G of one NCHW shape -> (cost, dcost/da_G).
template <typename Fast, typename Naive>
py::tuple pair_cost(const py::array& target, const char* target_name, const py::array& a_g,
                    const char* op, bool naive, Fast fast_fn, Naive naive_fn) {
  const FloatKind kind = float_kind(a_g, op, "a_G");
  require_same_dtype(a_g, target, op, "a_G", target_name);
  const auto s = activation_shape(a_g, op, "a_G");
  require_shape(target, s, op, target_name);
  const int64_t n = s[0], c = s[1], hw = s[2] * s[3];
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto tc = contiguous<T>(target), gc = contiguous<T>(a_g);
    auto grad = new_array<T>(s);
    T* gp = grad.mutable_data();
    T cost;
    {
      py::gil_scoped_release nogil;
      validate_finite(tc.data(), n * c * hw, op, target_name);
      validate_finite(gc.data(), n * c * hw, op, "a_G");
      cost = naive ? naive_fn(gp, tc.data(), gc.data(), n, c, hw, tag)
                   : fast_fn(gp, tc.data(), gc.data(), n, c, hw, tag);
    }
    return py::make_tuple(static_cast<double>(cost), grad);
  });
}

// a_C, a_G (N, C, H, W) -> (J_content, dJ/da_G)
py::tuple content_cost_py(const py::array& a_c, const py::array& a_g, bool naive) {
  return pair_cost(
      a_c, "a_C", a_g, kContent, naive,
      [](auto* g, const auto* x, const auto* y, int64_t n, int64_t c, int64_t hw, auto) {
        return content_cost(g, x, y, n, c, hw);
      },
      [](auto* g, const auto* x, const auto* y, int64_t n, int64_t c, int64_t hw, auto) {
        return content_cost_naive(g, x, y, n, c, hw);
      });
}

// a_S, a_G (N, C, H, W) -> (J_style for one layer, dJ/da_G)
py::tuple style_cost_py(const py::array& a_s, const py::array& a_g, bool naive) {
  return pair_cost(
      a_s, "a_S", a_g, kStyle, naive,
      [](auto* g, const auto* x, const auto* y, int64_t n, int64_t c, int64_t hw, auto) {
        return style_cost(g, x, y, n, c, hw);
      },
      [](auto* g, const auto* x, const auto* y, int64_t n, int64_t c, int64_t hw, auto) {
        return style_cost_naive(g, x, y, n, c, hw);
      });
}

// img (N, C, H, W) -> (total variation, d/dimg)
py::tuple total_variation_py(const py::array& img, bool naive) {
  const FloatKind kind = float_kind(img, kTv, "img");
  const auto s = activation_shape(img, kTv, "img");
  const int64_t n = s[0], c = s[1], h = s[2], w = s[3];
  return dispatch_float(kind, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    auto xc = contiguous<T>(img);
    auto grad = new_array<T>(s);
    T* gp = grad.mutable_data();
    T tv;
    {
      py::gil_scoped_release nogil;
      validate_finite(xc.data(), n * c * h * w, kTv, "img");
      tv = (naive ? total_variation_naive<T> : total_variation<T>)(gp, xc.data(), n, c, h, w);
    }
    return py::make_tuple(static_cast<double>(tv), grad);
  });
}

}  // namespace

void bind_style(py::module_& ops) {
  ops.def("gram_matrix", &gram_matrix_py, py::arg("a"), py::arg("naive") = false,
          "G (N, C, C) = A·Aᵀ per image, A = a (N, C, H, W) reshaped (C, H·W); unnormalised "
          "(course 4, week 4).");
  ops.def("gram_matrix_backward", &gram_matrix_backward_py, py::arg("dg"), py::arg("a"),
          py::arg("naive") = false, "da (N, C, H, W) = (dG + dGᵀ)·A per image.");
  ops.def("content_cost", &content_cost_py, py::arg("a_C"), py::arg("a_G"),
          py::arg("naive") = false,
          "(J, dJ/da_G): J = Σ(a_C − a_G)² / (4·C·H·W), summed over the N images; a_C, a_G "
          "(N, C, H, W) finite, one dtype.");
  ops.def("style_cost", &style_cost_py, py::arg("a_S"), py::arg("a_G"), py::arg("naive") = false,
          "(J, dJ/da_G) for one layer: J = Σ(G_S − G_G)² / (4·C²·(H·W)²) with G the "
          "unnormalised Gram matrices, summed over the N images.");
  ops.def("total_variation", &total_variation_py, py::arg("img"), py::arg("naive") = false,
          "(TV, dTV/dimg): Σ|x[h+1,w] − x[h,w]| + Σ|x[h,w+1] − x[h,w]| over every image and "
          "channel of img (N, C, H, W) (tf.image.total_variation, summed over the batch); the "
          "gradient uses sign(0) = 0.");
}

const OpsRegistration style_ops("style", bind_style);

}  // namespace bind
}  // namespace corenn
