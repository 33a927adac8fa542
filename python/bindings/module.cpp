// corenn._core: the extension module. Ops live in the submodule `ops`; the
// model engine and runtime settings at the top.
#include <pybind11/pybind11.h>

#include "common.hpp"
#include "corenn/error.hpp"
#include "corenn/random.hpp"
#include "corenn/runtime.hpp"
#include "corenn/kernels/winograd.hpp"
#include "corenn/model.hpp"

namespace py = pybind11;

namespace corenn {
namespace bind {

// Constructed on first use: the registrations run during static
// initialisation, in an order nobody controls.
std::map<std::string, OpsBinder>& ops_families() {
  static std::map<std::string, OpsBinder> families;
  return families;
}

OpsRegistration::OpsRegistration(const char* family, OpsBinder bind) { ops_families().emplace(family, bind); }

}  // namespace bind
}  // namespace corenn

PYBIND11_MODULE(_core, m) {
  m.doc() = "corenn compiled core";

  // C++ exceptions become the Python exceptions users catch: shape and value
  // problems are ValueError, dtype problems TypeError, file problems OSError.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const corenn::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const corenn::IOError& e) {
      PyErr_SetString(PyExc_OSError, e.what());
    } catch (const corenn::Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("set_num_threads", &corenn::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &corenn::get_num_threads);
  m.def("blas_backend", &corenn::blas_backend);
  m.def("simd_isa", &corenn::simd_isa);
  m.def("simd_dispatch", &corenn::simd_dispatch);
  m.def("set_conv_algorithm", &corenn::set_conv_algorithm, py::arg("algorithm"));
  m.def("get_conv_algorithm", &corenn::get_conv_algorithm);
  m.def("set_fusion", &corenn::set_fusion, py::arg("enabled"));
  m.def("get_fusion", &corenn::get_fusion);
  m.def("seed", [](uint64_t s) { corenn::seed(s); }, py::arg("s"));
  m.def("next_key", &corenn::next_key);

  py::module_ ops = m.def_submodule("ops", "Functional kernels: NumPy in, NumPy out");
  for (const auto& family : corenn::bind::ops_families()) family.second(ops);
  corenn::bind::bind_model(m);
}
