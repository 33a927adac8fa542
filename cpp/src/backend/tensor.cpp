#include "corenn/tensor.hpp"

#include <cstdlib>
#include <cstring>

namespace corenn {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::int64: return "int64";
  }
  return "?";
}

static size_t dtype_bytes(DType dtype) { return dtype == DType::float32 ? 4 : 8; }

int64_t shape_size(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ShapeError("Tensor: negative dimension in shape " + shape_string(shape));
    // Shapes come from files and user input too: an overflow is an error, not UB.
    if (__builtin_mul_overflow(n, d, &n))
      throw ShapeError("Tensor: the size of shape " + shape_string(shape) + " overflows int64");
  }
  return n;
}

Tensor::Tensor(Shape shape, DType dtype) : shape_(std::move(shape)), dtype_(dtype) {
  // 64-byte alignment: whole cache lines and the widest SIMD loads.
  size_t bytes = static_cast<size_t>(shape_size(shape_)) * dtype_bytes(dtype_);
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw std::bad_alloc();
  std::memset(p, 0, rounded == 0 ? 64 : rounded);
  owner_ = std::shared_ptr<void>(p, std::free);
  ptr_ = p;
}

Tensor Tensor::wrap(void* data, Shape shape, DType dtype) {
  shape_size(shape);  // validates the dimensions
  Tensor t;
  t.ptr_ = data;
  t.shape_ = std::move(shape);
  t.dtype_ = dtype;
  return t;
}

Tensor Tensor::view(float* data, Shape shape) { return wrap(data, std::move(shape), DType::float32); }
Tensor Tensor::view(double* data, Shape shape) { return wrap(data, std::move(shape), DType::float64); }
Tensor Tensor::view(int64_t* data, Shape shape) { return wrap(data, std::move(shape), DType::int64); }

float* Tensor::data() { return data_as<float>(); }
const float* Tensor::data() const { return data_as<float>(); }

template <typename T>
T* Tensor::data_as() {
  if (dtype_ != dtype_of<T>())
    throw TypeError(std::string("Tensor: requested ") + dtype_name(dtype_of<T>()) +
                    " data from a " + dtype_name(dtype_) + " tensor");
  return static_cast<T*>(ptr_);
}

template <typename T>
const T* Tensor::data_as() const {
  return const_cast<Tensor*>(this)->data_as<T>();
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_size(shape) != size())
    throw ShapeError("Tensor: cannot reshape " + shape_string(shape_) + " to " +
                     shape_string(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_, dtype_);
  if (size()) std::memcpy(t.ptr_, ptr_, static_cast<size_t>(size()) * dtype_bytes(dtype_));
  return t;
}

template float* Tensor::data_as<float>();
template double* Tensor::data_as<double>();
template const float* Tensor::data_as<float>() const;
template const double* Tensor::data_as<double>() const;
template int64_t* Tensor::data_as<int64_t>();
template const int64_t* Tensor::data_as<int64_t>() const;

}  // namespace corenn
