// Shared glue for the bindings: dtype dispatch, contiguity, argument checks
// with messages that name the op, the argument, what was expected and what was
// given. No kernel logic lives here.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "corenn/runtime.hpp"

namespace corenn {
namespace bind {

namespace py = pybind11;

template <typename T>
using carray = py::array_t<T, py::array::c_style>;

enum class FloatKind { f32, f64 };

inline std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// dtypes are compared by value (equal), never by identity: NumPy makes new
// dtype objects (unpickling, np.dtype(np.float32) under some versions), and
// `is` would reject a float32 array as "float32 or float64, got float32".

// The float dtype of `a`, or TypeError: the functional ops never cast silently.
inline FloatKind float_kind(const py::array& a, const char* op, const char* arg) {
  if (a.dtype().equal(py::dtype::of<float>())) return FloatKind::f32;
  if (a.dtype().equal(py::dtype::of<double>())) return FloatKind::f64;
  throw TypeError(std::string(op) + ": " + arg + " must be float32 or float64, got " +
                  dtype_str(a));
}

// An array whose values are read as numbers (0/1 flags, pixel sizes): bool,
// integer or float. Complex (whose imaginary part a cast drops), str and
// object arrays are a TypeError, not a silent conversion.
inline void require_real(const py::array& a, const char* op, const char* arg) {
  const char kind = a.dtype().kind();
  if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f')
    throw TypeError(std::string(op) + ": " + arg + " must hold bool, integer or float values, got " +
                    dtype_str(a));
}

inline void require_same_dtype(const py::array& a, const py::array& b, const char* op,
                               const char* arg_a, const char* arg_b) {
  if (!a.dtype().equal(b.dtype()))
    throw TypeError(std::string(op) + ": " + arg_b + " must have the dtype of " + arg_a + " (" +
                    dtype_str(a) + "), got " + dtype_str(b));
}

inline void require_ndim(const py::array& a, int ndim, const char* op, const char* arg,
                         const char* meaning) {
  if (a.ndim() != ndim)
    throw ShapeError(std::string(op) + ": " + arg + " must be " + std::to_string(ndim) + "-D " +
                     meaning + ", got shape " + shape_string(shape_of(a)));
}

inline void require_shape(const py::array& a, const std::vector<int64_t>& expected,
                          const char* op, const char* arg) {
  if (shape_of(a) != expected)
    throw ShapeError(std::string(op) + ": " + arg + " must have shape " +
                     shape_string(expected) + ", got " + shape_string(shape_of(a)));
}

// A C-contiguous array of T: `a` itself when it already is one, else one copy.
// Inputs are only read (through .data()), so read-only arrays (np.frombuffer,
// np.load(mmap_mode="r")) are used in place like any other.
template <typename T>
carray<T> contiguous(const py::array& a) {
  auto c = carray<T>::ensure(a);
  if (!c) throw py::error_already_set();
  return c;
}

// An array an op writes into: it must be the caller's own array, C-contiguous
// and writeable, or the update would land in a temporary copy (or fault on a
// read-only mapping). `why` says when it is written, for the message.
inline void require_writeable(const py::array& a, const char* op, const char* arg, const char* why) {
  if (!(a.flags() & py::array::c_style))
    throw ValueError(std::string(op) + ": " + arg + " must be C-contiguous (it is updated in place" +
                     why + "), got a strided view");
  if (!a.writeable())
    throw ValueError(std::string(op) + ": " + arg + " must be writeable (it is updated in place" +
                     why + "), got a read-only array");
}

// The one parser of int-or-tuple hyper-parameters (stride, padding, dilation,
// kernel_size, size, ...): an int, repeated to the first of `lengths`, or a
// tuple/list of ints whose length is one of `lengths`. An int is a Python int
// or a NumPy integer (anything with __index__); a bool is refused although
// Python counts it as an int, because `stride=True` is a slip, not a 1.
// TypeError for anything else (bool, float, str, None, a non-int element);
// ValueError for a sequence of ints of another length, or a value past
// kMaxIntHyperParameter (error.hpp) in magnitude. Range checks belong to
// the kernel's validate(), which knows what each value means.
inline std::vector<int64_t> int_tuple(const py::object& v, std::initializer_list<size_t> lengths,
                                      const char* op, const char* arg, const char* expected) {
  auto is_int = [](const py::handle& h) { return !PyBool_Check(h.ptr()) && PyIndex_Check(h.ptr()); };
  const std::string what = std::string(op) + ": " + arg + " must be " + expected + ", got ";
  auto as_int = [&](const py::handle& h) {
    const auto i = py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr()));
    if (!i) throw py::error_already_set();
    int overflow = 0;
    const long long x = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
    if (overflow || x > kMaxIntHyperParameter || x < -kMaxIntHyperParameter)
      throw ValueError(what + py::repr(v).cast<std::string>() + " (out of range: at most " +
                       std::to_string(kMaxIntHyperParameter) + " in magnitude)");
    return static_cast<int64_t>(x);
  };
  if (is_int(v)) return std::vector<int64_t>(*lengths.begin(), as_int(v));
  if (!py::isinstance<py::tuple>(v) && !py::isinstance<py::list>(v))
    throw TypeError(what + py::repr(v).cast<std::string>());
  const auto seq = py::reinterpret_borrow<py::sequence>(v);
  std::vector<int64_t> out;
  for (const auto& e : seq) {
    if (!is_int(e)) throw TypeError(what + py::repr(v).cast<std::string>());
    out.push_back(as_int(e));
  }
  for (size_t n : lengths)
    if (out.size() == n) return out;
  throw ValueError(what + std::to_string(out.size()) + " values " + py::repr(v).cast<std::string>());
}

template <typename T>
carray<T> new_array(const std::vector<int64_t>& shape) {
  return carray<T>(std::vector<py::ssize_t>(shape.begin(), shape.end()));
}

// A kernel's scratch, kept between calls: a fresh buffer per call cost the
// kernel's first writes a page fault and a cleared page each (17 MB for an
// LSTM(256) backward over 50 steps at batch 64: 5.7% of its time; 38 MB for a
// 64-channel 3x3 Winograd convolution at batch 32: 10%). The kernels write
// every element of scratch before they read it, so what an earlier call left
// there does no harm (tests call the ops in growing and shrinking sizes
// against the naive kernels). One buffer per calling thread and dtype
// (thread_local): the kernels run with the GIL released, so two Python threads
// can be inside them at once, each with its own. It grows to the largest
// call's size and stays for the thread's life.
template <typename T>
T* kept_scratch(int64_t size) {
  thread_local std::unique_ptr<T[]> buffer;
  thread_local int64_t capacity = 0;
  if (size > capacity) {
    buffer.reset();  // the old one goes first: the two are never held at once
    buffer.reset(new T[static_cast<size_t>(size)]);
    capacity = size;
  }
  return buffer.get();
}

// Every binding releases the GIL through this for its pass over the data. In
// a child process forked from one that ran corenn with several threads, the
// work runs on one thread (see corenn/runtime.hpp), and the first such call
// says so with a RuntimeWarning (an exception when warnings are errors).
struct ForkNotice {
  ForkNotice() {
    static std::atomic<bool> warned{false};
    const int before = forked_child_threads();
    if (before <= 1 || warned.exchange(true)) return;
    const std::string msg =
        "corenn runs single-threaded in this process, forked from one that used " +
        std::to_string(before) +
        " threads: OpenMP's threads do not survive fork(), and cn.set_num_threads(n) "
        "accepts only n = 1 here. Start worker processes with the 'spawn' start method "
        "(multiprocessing.get_context(\"spawn\")) to use threads in them.";
    if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) != 0) throw py::error_already_set();
  }
};

// The base runs first: the warning needs the GIL.
class ReleaseGil : ForkNotice {
  py::gil_scoped_release release_;
};

// Calls f(float{}) or f(double{}): one templated body serves both dtypes.
template <typename F>
auto dispatch_float(FloatKind kind, F&& f) {
  if (kind == FloatKind::f32) return f(float{});
  return f(double{});
}

// Each ops_<family>.cpp binds its kernels into corenn._core.ops and registers
// that with a static object, so a new family is one new file, listed nowhere:
//   const OpsRegistration upsample_ops("upsample", bind_upsample);
// The extension module is linked whole: every registration runs when it loads.
using OpsBinder = void (*)(py::module_& ops);
struct OpsRegistration {
  OpsRegistration(const char* family, OpsBinder bind);
};
// The registered families by name; module.cpp binds them in that order.
std::map<std::string, OpsBinder>& ops_families();

void bind_model(py::module_& m);

}  // namespace bind
}  // namespace corenn
