#include <string>
#include <vector>

#include "common.hpp"
#include "corenn/kernels/init.hpp"
#include "corenn/tensor.hpp"

namespace corenn {
namespace bind {

namespace {

constexpr const char* kInit = "initialize";

// An int or a sequence of ints, each >= 0.
std::vector<int64_t> shape_argument(const py::object& shape) {
  std::vector<int64_t> dims;
  if (py::isinstance<py::int_>(shape)) {
    dims = int_tuple(shape, {1}, kInit, "shape", "an int or a sequence of ints");
  } else if (py::isinstance<py::sequence>(shape) && !py::isinstance<py::str>(shape)) {
    for (const auto& d : shape.cast<py::sequence>()) {
      if (!py::isinstance<py::int_>(d))
        throw TypeError(std::string(kInit) + ": shape must hold ints, got " +
                        py::str(py::type::of(d).attr("__name__")).cast<std::string>());
      dims.push_back(int_tuple(py::reinterpret_borrow<py::object>(d), {1}, kInit, "shape",
                               "an int or a sequence of ints")[0]);
    }
  } else {
    throw TypeError(std::string(kInit) + ": shape must be an int or a sequence of ints, got " +
                    py::str(py::type::of(shape).attr("__name__")).cast<std::string>());
  }
  for (int64_t d : dims)
    if (d < 0)
      throw ValueError(std::string(kInit) + ": shape must not have negative sizes, got " +
                       shape_string(dims));
  try {
    shape_size(dims);
  } catch (const ShapeError&) {
    throw ValueError(std::string(kInit) + ": shape " + shape_string(dims) + " has more elements than int64 holds");
  }
  return dims;
}

// shape, kind, fans -> a new float32/float64 array of that shape
py::array initialize_py(const py::object& shape, const std::string& kind, int64_t fan_in,
                        int64_t fan_out, double stddev, uint64_t key, const py::object& dtype) {
  const std::vector<int64_t> dims = shape_argument(shape);
  const Init which = parse_initializer(kind);
  const py::dtype dt = py::dtype::from_args(dtype);
  FloatKind fk;
  if (dt.equal(py::dtype::of<float>()))
    fk = FloatKind::f32;
  else if (dt.equal(py::dtype::of<double>()))
    fk = FloatKind::f64;
  else
    throw TypeError(std::string(kInit) + ": dtype must be float32 or float64, got " +
                    py::str(dt).cast<std::string>());
  return dispatch_float(fk, [&](auto tag) -> py::array {
    using T = decltype(tag);
    auto w = new_array<T>(dims);
    T* wp = w.mutable_data();
    const int64_t n = static_cast<int64_t>(w.size());
    {
      ReleaseGil nogil;
      initialize<T>(wp, n, which, fan_in, fan_out, stddev, key);
    }
    return w;
  });
}

}  // namespace

void bind_init(py::module_& ops) {
  ops.def("initialize", &initialize_py, py::arg("shape"), py::arg("kind"), py::arg("fan_in"),
          py::arg("fan_out"), py::arg("stddev") = 0.01, py::arg("key") = 0,
          py::arg("dtype") = "float32",
          "A new array of `shape` drawn by the initializer `kind` (zeros, ones, random_normal, "
          "he_normal, he_uniform, glorot_normal, glorot_uniform); each value is a pure function "
          "of (key, flat index).");
}

const OpsRegistration init_ops("init", bind_init);

}  // namespace bind
}  // namespace corenn
