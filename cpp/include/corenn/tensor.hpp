// A dense, C-contiguous float32 or float64 array: the currency of the C++ API.
// It either owns its memory (shared between copies, like a NumPy array) or is a
// view over memory the caller keeps alive (Tensor::view), so embedders can run a
// model on their own buffers without a copy.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <vector>

#include "corenn/error.hpp"

namespace corenn {

// int64 exists for class labels; kernels and parameters are float32 or float64.
enum class DType { float32, float64, int64 };

const char* dtype_name(DType dtype);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() { return DType::float32; }
template <>
constexpr DType dtype_of<double>() { return DType::float64; }
template <>
constexpr DType dtype_of<int64_t>() { return DType::int64; }

using Shape = std::vector<int64_t>;

int64_t shape_size(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // Owning and zero-filled.
  explicit Tensor(Shape shape, DType dtype = DType::float32);
  Tensor(std::initializer_list<int64_t> shape, DType dtype = DType::float32)
      : Tensor(Shape(shape), dtype) {}

  // Non-owning views over caller memory (which must outlive the view).
  static Tensor view(float* data, Shape shape);
  static Tensor view(double* data, Shape shape);
  static Tensor view(int64_t* data, Shape shape);

  // float32 data; throws TypeError for a float64 tensor.
  float* data();
  const float* data() const;
  // Typed access; throws TypeError when T is not the tensor's dtype.
  template <typename T>
  T* data_as();
  template <typename T>
  const T* data_as() const;

  const Shape& shape() const { return shape_; }
  int64_t dim(int axis) const { return shape_.at(static_cast<size_t>(axis)); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t size() const { return shape_size(shape_); }
  DType dtype() const { return dtype_; }
  bool empty() const { return ptr_ == nullptr; }

  // Same memory, another shape of equal size.
  Tensor reshaped(Shape shape) const;
  // A deep, owning copy.
  Tensor clone() const;

 private:
  static Tensor wrap(void* data, Shape shape, DType dtype);

  std::shared_ptr<void> owner_;
  void* ptr_ = nullptr;
  Shape shape_;
  DType dtype_ = DType::float32;
};

}  // namespace corenn
