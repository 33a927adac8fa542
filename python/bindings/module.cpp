// corenn._core: the extension module. Ops live in the submodule `ops`; the
// model engine and runtime settings at the top.
#include <pybind11/pybind11.h>

#include "common.hpp"
#include "corenn/error.hpp"
#include "corenn/random.hpp"
#include "corenn/runtime.hpp"
#include "corenn/kernels/winograd.hpp"

namespace py = pybind11;

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
  m.def("set_conv_algorithm", &corenn::set_conv_algorithm, py::arg("algorithm"));
  m.def("get_conv_algorithm", &corenn::get_conv_algorithm);
  m.def("seed", [](uint64_t s) { corenn::seed(s); }, py::arg("s"));
  m.def("next_key", &corenn::next_key);

  py::module_ ops = m.def_submodule("ops", "Functional kernels: NumPy in, NumPy out");
  corenn::bind::bind_dense(ops);
  corenn::bind::bind_activation(ops);
  corenn::bind::bind_loss(ops);
  corenn::bind::bind_dropout(ops);
  corenn::bind::bind_optim(ops);
  corenn::bind::bind_init(ops);
  corenn::bind::bind_conv(ops);
  corenn::bind::bind_pool(ops);
  corenn::bind::bind_upsample(ops);
  corenn::bind::bind_norm(ops);
  corenn::bind::bind_augment(ops);
  corenn::bind::bind_normalize(ops);
  corenn::bind::bind_detection(ops);
  corenn::bind::bind_detection_losses(ops);
  corenn::bind::bind_recurrent(ops);
  corenn::bind::bind_style(ops);
  corenn::bind::bind_metric_losses(ops);
  corenn::bind::bind_layer_norm(ops);
  corenn::bind::bind_attention(ops);
  corenn::bind::bind_model(m);
}
