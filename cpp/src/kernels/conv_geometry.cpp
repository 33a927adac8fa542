// The output sizes and the validation of conv2d and transposed convolution
// shapes (conv.hpp): one place for the error messages of both.
#include <algorithm>
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/conv.hpp"

namespace corenn {

namespace {

std::string prefix(const char* op) { return std::string(op) + ": "; }

void require_positive(int64_t v, const char* op, const char* what) {
  if (v < 1) throw ValueError(prefix(op) + what + " must be >= 1, got " + std::to_string(v));
}

}  // namespace

// ------------------------------------------------------------------ conv2d

int64_t Conv2dShape::out_h() const {
  return (height + pad_top + pad_bottom - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
}
int64_t Conv2dShape::out_w() const {
  return (width + pad_left + pad_right - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
}

// The checks a convolution and a transposed convolution share: every size
// positive, no negative padding (both shapes name these fields alike).
template <typename Shape2d>
void validate_window(const Shape2d& s, const char* op) {
  require_positive(s.batch, op, "batch");
  require_positive(s.in_channels, op, "in_channels");
  require_positive(s.height, op, "height");
  require_positive(s.width, op, "width");
  require_positive(s.out_channels, op, "out_channels");
  require_positive(s.kernel_h, op, "kernel_h");
  require_positive(s.kernel_w, op, "kernel_w");
  require_positive(std::min(s.stride_h, s.stride_w), op, "stride");
  require_positive(std::min(s.dilation_h, s.dilation_w), op, "dilation");
  const int64_t min_pad = std::min({s.pad_top, s.pad_bottom, s.pad_left, s.pad_right});
  if (min_pad < 0)
    throw ValueError(prefix(op) + "padding must be >= 0, got " + std::to_string(min_pad));
}

void validate(const Conv2dShape& s, const char* op) {
  validate_window(s, op);
  require_positive(s.groups, op, "groups");
  if (s.in_channels % s.groups != 0)
    throw ValueError(prefix(op) + "groups=" + std::to_string(s.groups) +
                     " must divide in_channels=" + std::to_string(s.in_channels));
  if (s.out_channels % s.groups != 0)
    throw ValueError(prefix(op) + "groups=" + std::to_string(s.groups) +
                     " must divide out_channels=" + std::to_string(s.out_channels));
  const int64_t ekh = s.dilation_h * (s.kernel_h - 1) + 1, ekw = s.dilation_w * (s.kernel_w - 1) + 1;
  const int64_t ph = s.height + s.pad_top + s.pad_bottom, pw = s.width + s.pad_left + s.pad_right;
  if (ekh > ph || ekw > pw)
    throw ValueError(prefix(op) + "kernel " + std::to_string(ekh) + "x" + std::to_string(ekw) +
                     " (dilated) is larger than the padded input " + std::to_string(ph) + "x" +
                     std::to_string(pw));
}

// ------------------------------------------------------------------ transposed convolution

int64_t ConvTranspose2dShape::out_h() const {
  return (height - 1) * stride_h - pad_top - pad_bottom + dilation_h * (kernel_h - 1) + 1 + output_pad_h;
}
int64_t ConvTranspose2dShape::out_w() const {
  return (width - 1) * stride_w - pad_left - pad_right + dilation_w * (kernel_w - 1) + 1 + output_pad_w;
}

void validate(const ConvTranspose2dShape& s, const char* op) {
  validate_window(s, op);
  if (std::min(s.output_pad_h, s.output_pad_w) < 0)
    throw ValueError(prefix(op) + "output_padding must be >= 0, got " +
                     std::to_string(std::min(s.output_pad_h, s.output_pad_w)));
  // An output_padding of a whole stride would add a row no input pixel reaches.
  if (s.output_pad_h >= s.stride_h || s.output_pad_w >= s.stride_w)
    throw ValueError(prefix(op) + "output_padding (" + std::to_string(s.output_pad_h) + ", " +
                     std::to_string(s.output_pad_w) + ") must be smaller than stride (" +
                     std::to_string(s.stride_h) + ", " + std::to_string(s.stride_w) + ")");
  if (s.out_h() < 1 || s.out_w() < 1)
    throw ValueError(prefix(op) + "output size " + std::to_string(s.out_h()) + "x" +
                     std::to_string(s.out_w()) + " must be >= 1 (padding too large)");
}

}  // namespace corenn
