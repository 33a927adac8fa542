// Convolution and pooling layers over NCHW images (per example (C, H, W)).
// Geometry follows Keras's padding names: "valid" pads nothing; "same" is
// TensorFlow's rule (padding.hpp) for every layer here: ⌈in / stride⌉ outputs,
// the odd padding cell at the bottom/right; Conv2DTranspose's "same" is its
// adjoint.
#include <algorithm>

#include "corenn/error.hpp"
#include "corenn/kernels/conv.hpp"
#include "corenn/kernels/init.hpp"
#include "corenn/kernels/padding.hpp"
#include "corenn/kernels/pool.hpp"
#include "corenn/kernels/upsample.hpp"
#include "corenn/random.hpp"
#include "engine/layers.hpp"

namespace corenn {
namespace detail {

namespace {

struct Pair {
  int64_t h, w;
};

Pair pair_of(const LayerSpec& spec, const std::vector<int64_t>& v, const char* what, int64_t fallback) {
  if (v.empty()) return {fallback, fallback};
  if (v.size() != 2)
    throw ValueError(layer_label(spec) + ": " + what + " must be a (height, width) pair, got " +
                     shape_string(v));
  return {v[0], v[1]};
}

void require_image(const LayerSpec& spec, const Shape& in) {
  if (in.size() != 3)
    throw ShapeError(layer_label(spec) + ": expects images (channels, height, width) per example, got " +
                     shape_string(in));
}

// Fills the padding of a Conv2dShape or Pool2dShape from the spec; span is
// the (dilated) kernel's extent, (k − 1)·dilation + 1, a kernel of that many
// taps with dilation 1 to the "same" rule.
template <typename Geometry>
void set_padding(const LayerSpec& spec, Geometry& g, int64_t span_h, int64_t span_w) {
  if (spec.padding == "valid") return;
  if (spec.padding == "same") {
    const SamePadding h = same_padding(g.height, span_h, g.stride_h);
    const SamePadding w = same_padding(g.width, span_w, g.stride_w);
    g.pad_top = h.before, g.pad_bottom = h.after, g.pad_left = w.before, g.pad_right = w.after;
    return;
  }
  if (spec.padding == "explicit" && spec.pads.size() == 4) {
    g.pad_top = spec.pads[0];
    g.pad_bottom = spec.pads[1];
    g.pad_left = spec.pads[2];
    g.pad_right = spec.pads[3];
    return;
  }
  throw ValueError(layer_label(spec) + ": padding must be 'valid', 'same' or explicit sizes, got '" +
                   spec.padding + "'");
}

// The geometry of a convolution over per-example input (C, H, W) from the
// spec's kernel, strides, dilation and padding; ValueError names the layer.
Conv2dShape conv_geometry(const LayerSpec& spec, const Shape& in, int64_t groups, int64_t out_channels) {
  require_image(spec, in);
  Conv2dShape g;
  g.in_channels = in[0];
  g.height = in[1];
  g.width = in[2];
  g.groups = groups;
  g.out_channels = out_channels;
  const Pair k = pair_of(spec, spec.kernel_size, "kernel_size", 1);
  const Pair st = pair_of(spec, spec.strides, "strides", 1);
  const Pair d = pair_of(spec, spec.dilation, "dilation_rate", 1);
  g.kernel_h = k.h, g.kernel_w = k.w, g.stride_h = st.h, g.stride_w = st.w;
  g.dilation_h = d.h, g.dilation_w = d.w;
  set_padding(spec, g, d.h * (k.h - 1) + 1, d.w * (k.w - 1) + 1);
  validate(g, layer_label(spec).c_str());
  return g;
}

// What the convolution layers share: a fused activation, kernel and bias
// initialisers, and parameters stored kernel(s) first, bias last.
template <typename T>
class Convolution : public Layer<T> {
 protected:
  explicit Convolution(const LayerSpec& spec)
      : Layer<T>(spec),
        activation_(parse_activation(spec.activation, layer_label(spec) + ": activation")),
        kernel_init_(parse_initializer(spec.kernel_initializer)),
        bias_init_(parse_initializer(spec.bias_initializer)) {
    if (spec.kind != "depthwise_conv2d" && spec.filters < 1)
      throw ValueError(layer_label(spec) + ": filters must be >= 1, got " + std::to_string(spec.filters));
    if (spec.depth_multiplier < 1)
      throw ValueError(layer_label(spec) + ": depth_multiplier must be >= 1, got " +
                       std::to_string(spec.depth_multiplier));
  }

  // Elements of the kernel(s) before the bias.
  virtual int64_t kernel_size() const { return shape_size(this->parameter_shapes()[0]); }
  const T* bias() const { return this->spec_.use_bias ? this->params_ + kernel_size() : nullptr; }
  T* bias_grad() { return this->spec_.use_bias ? this->grads_ + kernel_size() : nullptr; }
  T alpha() const { return static_cast<T>(this->spec_.alpha); }
  // The output as (batch, channels, H·W): a fused softmax normalises over the channels.
  ActivationAxes fused_axes(int64_t batch, int64_t channels) const {
    return {batch, channels, this->out_size_ / channels};
  }

  void initialize_kernel_and_bias(uint64_t key, int64_t fan_in, int64_t fan_out) {
    const double stddev = this->spec_.initializer_stddev;
    corenn::initialize<T>(this->params_, kernel_size(), kernel_init_, fan_in, fan_out, stddev, key);
    if (this->spec_.use_bias)
      corenn::initialize<T>(this->params_ + kernel_size(), this->parameter_shapes().back()[0], bias_init_,
                            fan_in, fan_out, stddev, random_bits(key, 1));
  }

 public:
  double penalty(bool with_gradient) override { return this->kernel_penalty(0, kernel_size(), with_gradient); }

 protected:
  Activation activation_;
  Init kernel_init_, bias_init_;
};

// Conv2D and DepthwiseConv2D (groups = channels, depth_multiplier outputs each).
template <typename T>
class Conv2D : public Convolution<T> {
 public:
  explicit Conv2D(const LayerSpec& spec) : Convolution<T>(spec) {}

  Shape build(const Shape& in) override {
    const LayerSpec& spec = this->spec_;
    require_image(spec, in);
    const bool depthwise = spec.kind == "depthwise_conv2d";
    const Conv2dShape g = conv_geometry(spec, in, depthwise ? in[0] : spec.groups,
                                        depthwise ? in[0] * spec.depth_multiplier : spec.filters);
    geometry_ = g;
    this->in_size_ = shape_size(in);
    this->out_size_ = shape_size({g.out_channels, g.out_h(), g.out_w()});
    return {g.out_channels, g.out_h(), g.out_w()};
  }

  std::vector<Shape> parameter_shapes() const override {
    const Conv2dShape& g = geometry_;
    Shape kernel{g.out_channels, g.in_channels / g.groups, g.kernel_h, g.kernel_w};
    if (this->spec_.use_bias) return {kernel, {g.out_channels}};
    return {kernel};
  }
  std::vector<std::string> parameter_names() const override {
    const char* kernel = this->spec_.kind == "depthwise_conv2d" ? "depthwise_kernel" : "kernel";
    if (this->spec_.use_bias) return {kernel, "bias"};
    return {kernel};
  }

  void initialize(uint64_t key) override {
    const Conv2dShape& g = geometry_;
    const int64_t taps = g.kernel_h * g.kernel_w;
    this->initialize_kernel_and_bias(key, g.in_channels / g.groups * taps, g.out_channels / g.groups * taps);
  }

  int64_t multiply_adds() const override { return this->kernel_size() * geometry_.out_h() * geometry_.out_w(); }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    const Conv2dShape s = at_batch(batch);
    ensure_size(c.scratch, conv2d_scratch_size(s));
    T* z = preactivation_output(c, this->activation_, batch * this->out_size_);
    conv2d_forward<T>(z, c.scratch.data(), x, this->params_, this->bias(), s);
    apply_activation(c, this->activation_, this->alpha(), this->fused_axes(batch, s.out_channels));
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx,
              LayerCache<T>& c) override {
    const Conv2dShape s = at_batch(batch);
    activation_gradient_in_place(dy, c, y, this->activation_, this->alpha(),
                                 this->fused_axes(batch, s.out_channels));
    ensure_size(c.scratch, conv2d_scratch_size(s));
    conv2d_backward<T>(need_dx ? dx : nullptr, this->grads_, this->bias_grad(), c.scratch.data(), dy, x,
                       this->params_, s);
    return need_dx ? dx : nullptr;
  }

 private:
  Conv2dShape at_batch(int64_t batch) const {
    Conv2dShape s = geometry_;
    s.batch = batch;
    return s;
  }

  Conv2dShape geometry_;
};

// SeparableConv2D = depthwise (depth_multiplier per channel) then a 1×1
// pointwise convolution to `filters`, with one bias and activation at the end.
// Parameters: depthwise kernel (C·m, 1, KH, KW), pointwise kernel (filters, C·m, 1, 1), bias.
template <typename T>
class SeparableConv2D : public Convolution<T> {
 public:
  explicit SeparableConv2D(const LayerSpec& spec) : Convolution<T>(spec) {}

  Shape build(const Shape& in) override {
    const LayerSpec& spec = this->spec_;
    require_image(spec, in);
    const Conv2dShape d = conv_geometry(spec, in, in[0], in[0] * spec.depth_multiplier);
    Conv2dShape p;
    p.in_channels = d.out_channels;
    p.height = d.out_h();
    p.width = d.out_w();
    p.out_channels = spec.filters;
    validate(p, layer_label(spec).c_str());
    depthwise_ = d;
    pointwise_ = p;
    this->in_size_ = shape_size(in);
    this->out_size_ = shape_size({p.out_channels, p.height, p.width});
    return {p.out_channels, p.height, p.width};
  }

  std::vector<Shape> parameter_shapes() const override {
    std::vector<Shape> shapes{{depthwise_.out_channels, 1, depthwise_.kernel_h, depthwise_.kernel_w},
                              {pointwise_.out_channels, pointwise_.in_channels, 1, 1}};
    if (this->spec_.use_bias) shapes.push_back({pointwise_.out_channels});
    return shapes;
  }
  std::vector<std::string> parameter_names() const override {
    if (this->spec_.use_bias) return {"depthwise_kernel", "pointwise_kernel", "bias"};
    return {"depthwise_kernel", "pointwise_kernel"};
  }

  void initialize(uint64_t key) override {
    const int64_t taps = depthwise_.kernel_h * depthwise_.kernel_w;
    const double stddev = this->spec_.initializer_stddev;
    corenn::initialize<T>(this->params_, depthwise_size(), this->kernel_init_, taps,
                          taps * this->spec_.depth_multiplier, stddev, key);
    corenn::initialize<T>(pointwise(), pointwise_size(), this->kernel_init_, pointwise_.in_channels,
                          pointwise_.out_channels, stddev, random_bits(key, 1));
    if (this->spec_.use_bias)
      corenn::initialize<T>(pointwise() + pointwise_size(), pointwise_.out_channels, this->bias_init_,
                            pointwise_.in_channels, pointwise_.out_channels, stddev, random_bits(key, 2));
  }

  int64_t multiply_adds() const override {
    return depthwise_size() * depthwise_.out_h() * depthwise_.out_w() + pointwise_size() * pointwise_.height * pointwise_.width;
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    Conv2dShape d = depthwise_, p = pointwise_;
    d.batch = p.batch = batch;
    ensure_size(c.scratch, std::max(conv2d_scratch_size(d), conv2d_scratch_size(p)));
    ensure_size(c.mid, batch * p.in_channels * p.height * p.width);
    conv2d_forward<T>(c.mid.data(), c.scratch.data(), x, this->params_, nullptr, d);
    T* z = preactivation_output(c, this->activation_, batch * this->out_size_);
    conv2d_forward<T>(z, c.scratch.data(), c.mid.data(), pointwise(), this->bias(), p);
    apply_activation(c, this->activation_, this->alpha(), this->fused_axes(batch, p.out_channels));
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx,
              LayerCache<T>& c) override {
    Conv2dShape d = depthwise_, p = pointwise_;
    d.batch = p.batch = batch;
    activation_gradient_in_place(dy, c, y, this->activation_, this->alpha(),
                                 this->fused_axes(batch, p.out_channels));
    ensure_size(c.scratch, std::max(conv2d_scratch_size(d), conv2d_scratch_size(p)));
    ensure_size(c.grad_mid, batch * p.in_channels * p.height * p.width);
    conv2d_backward<T>(c.grad_mid.data(), this->grads_ + depthwise_size(), this->bias_grad(), c.scratch.data(),
                       dy, c.mid.data(), pointwise(), p);
    conv2d_backward<T>(need_dx ? dx : nullptr, this->grads_, nullptr, c.scratch.data(), c.grad_mid.data(), x,
                       this->params_, d);
    return need_dx ? dx : nullptr;
  }

 protected:
  int64_t kernel_size() const override { return depthwise_size() + pointwise_size(); }

 private:
  int64_t depthwise_size() const { return depthwise_.out_channels * depthwise_.kernel_h * depthwise_.kernel_w; }
  int64_t pointwise_size() const { return pointwise_.out_channels * pointwise_.in_channels; }
  const T* pointwise() const { return this->params_ + depthwise_size(); }
  T* pointwise() { return this->params_ + depthwise_size(); }

  Conv2dShape depthwise_, pointwise_;
};

// Conv2DTranspose: weights (C_in, filters, KH, KW) as PyTorch. With span
// (KH − 1)·dilation + 1, "valid" gives (H − 1)·s + span (+ output_padding);
// "same" gives H·s (Keras's (H − 1)·s + span mod 2 + output_padding when that
// is given), cropped as the
// adjoint of the forward "same" convolution of that size (padding.hpp).
template <typename T>
class Conv2DTranspose : public Convolution<T> {
 public:
  explicit Conv2DTranspose(const LayerSpec& spec) : Convolution<T>(spec) {}

  Shape build(const Shape& in) override {
    const LayerSpec& spec = this->spec_;
    require_image(spec, in);
    ConvTranspose2dShape g;
    g.in_channels = in[0];
    g.height = in[1];
    g.width = in[2];
    g.out_channels = spec.filters;
    const Pair k = pair_of(spec, spec.kernel_size, "kernel_size", 1);
    const Pair st = pair_of(spec, spec.strides, "strides", 1);
    const Pair d = pair_of(spec, spec.dilation, "dilation_rate", 1);
    g.kernel_h = k.h, g.kernel_w = k.w, g.stride_h = st.h, g.stride_w = st.w;
    g.dilation_h = d.h, g.dilation_w = d.w;
    const bool given = !spec.output_padding.empty();
    const Pair op = pair_of(spec, spec.output_padding, "output_padding", 0);
    g.output_pad_h = op.h;
    g.output_pad_w = op.w;
    if (spec.padding == "same") {
      same_transpose(g.height, k.h, st.h, d.h, given, g.pad_top, g.pad_bottom, g.output_pad_h, "height");
      same_transpose(g.width, k.w, st.w, d.w, given, g.pad_left, g.pad_right, g.output_pad_w, "width");
    } else if (spec.padding == "explicit" && spec.pads.size() == 4) {
      g.pad_top = spec.pads[0];
      g.pad_bottom = spec.pads[1];
      g.pad_left = spec.pads[2];
      g.pad_right = spec.pads[3];
    } else if (spec.padding != "valid") {
      throw ValueError(layer_label(spec) + ": padding must be 'valid', 'same' or explicit sizes, got '" +
                       spec.padding + "'");
    }
    validate(g, layer_label(spec).c_str());
    geometry_ = g;
    this->in_size_ = shape_size(in);
    this->out_size_ = shape_size({g.out_channels, g.out_h(), g.out_w()});
    return {g.out_channels, g.out_h(), g.out_w()};
  }

  std::vector<Shape> parameter_shapes() const override {
    const ConvTranspose2dShape& g = geometry_;
    Shape kernel{g.in_channels, g.out_channels, g.kernel_h, g.kernel_w};
    if (this->spec_.use_bias) return {kernel, {g.out_channels}};
    return {kernel};
  }
  std::vector<std::string> parameter_names() const override {
    if (this->spec_.use_bias) return {"kernel", "bias"};
    return {"kernel"};
  }

  void initialize(uint64_t key) override {
    const ConvTranspose2dShape& g = geometry_;
    const int64_t taps = g.kernel_h * g.kernel_w;
    this->initialize_kernel_and_bias(key, g.out_channels * taps, g.in_channels * taps);
  }

  // Every input position scatters the whole kernel.
  int64_t multiply_adds() const override { return this->kernel_size() * geometry_.height * geometry_.width; }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    ConvTranspose2dShape s = geometry_;
    s.batch = batch;
    ensure_size(c.scratch, conv_transpose2d_scratch_size(s));
    T* z = preactivation_output(c, this->activation_, batch * this->out_size_);
    conv_transpose2d_forward<T>(z, c.scratch.data(), x, this->params_, this->bias(), s);
    apply_activation(c, this->activation_, this->alpha(), this->fused_axes(batch, s.out_channels));
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx,
              LayerCache<T>& c) override {
    ConvTranspose2dShape s = geometry_;
    s.batch = batch;
    activation_gradient_in_place(dy, c, y, this->activation_, this->alpha(),
                                 this->fused_axes(batch, s.out_channels));
    ensure_size(c.scratch, conv_transpose2d_scratch_size(s));
    conv_transpose2d_backward<T>(need_dx ? dx : nullptr, this->grads_, this->bias_grad(), c.scratch.data(), dy,
                                 x, this->params_, s);
    return need_dx ? dx : nullptr;
  }

 private:
  // One axis of "same": the output size Keras gives, and the crop and
  // output_padding that make the layer the adjoint of the forward "same"
  // convolution of that size. output_pad holds the given output_padding.
  void same_transpose(int64_t in, int64_t k, int64_t s, int64_t dilation, bool given, int64_t& before,
                      int64_t& after, int64_t& output_pad, const char* axis) const {
    const int64_t span = (k - 1) * dilation + 1;
    const int64_t out = given ? (in - 1) * s + span % 2 + output_pad : in * s;
    const SameTransposePadding p = same_transpose_padding(in, out, k, s, dilation);
    if (!p.adjoint)
      throw ValueError(layer_label(this->spec_) + ": padding='same' with output_padding " +
                       std::to_string(output_pad) + " along the " + axis + " gives " + std::to_string(out) +
                       " cells, whose 'same' convolution (kernel " + std::to_string(k) + ", stride " +
                       std::to_string(s) + ") has " + std::to_string(same_padding(out, k, s, dilation).out) +
                       " windows, not the input's " + std::to_string(in) +
                       " (TensorFlow refuses it too); use another output_padding or none");
    before = p.before, after = p.after, output_pad = p.output_padding;
  }
  ConvTranspose2dShape geometry_;
};

// MaxPooling2D and AveragePooling2D. Keras's "same" average counts only the
// cells inside the image; explicit padding counts padded zeros (PyTorch).
template <typename T>
class Pool2D : public Layer<T> {
 public:
  explicit Pool2D(const LayerSpec& spec)
      : Layer<T>(spec), max_(spec.kind == "max_pool2d" || spec.kind == "max_pool1d") {}

  Shape build(const Shape& in) override {
    const LayerSpec& spec = this->spec_;
    require_image(spec, in);
    Pool2dShape g;
    g.channels = in[0];
    g.height = in[1];
    g.width = in[2];
    const Pair k = pair_of(spec, spec.kernel_size, "pool_size", 2);
    const Pair st = pair_of(spec, spec.strides, "strides", 0);
    g.kernel_h = k.h, g.kernel_w = k.w;
    g.stride_h = st.h > 0 ? st.h : k.h;
    g.stride_w = st.w > 0 ? st.w : k.w;
    set_padding(spec, g, k.h, k.w);
    g.count_include_pad = spec.padding != "same";
    validate(g, layer_label(spec).c_str());
    geometry_ = g;
    this->in_size_ = shape_size(in);
    this->out_size_ = shape_size({g.channels, g.out_h(), g.out_w()});
    return {g.channels, g.out_h(), g.out_w()};
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    Pool2dShape s = geometry_;
    s.batch = batch;
    ensure_size(c.out, batch * this->out_size_);
    if (max_) {
      ensure_size(c.index, batch * this->out_size_);
      max_pool2d_forward<T>(c.out.data(), c.index.data(), x, s);
    } else {
      avg_pool2d_forward<T>(c.out.data(), x, s);
    }
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    if (!need_dx) return nullptr;
    Pool2dShape s = geometry_;
    s.batch = batch;
    if (max_) max_pool2d_backward<T>(dx, dy, c.index.data(), s);
    else avg_pool2d_backward<T>(dx, dy, s);
    return dx;
  }

 private:
  bool max_;
  Pool2dShape geometry_;
};

template <typename T>
class GlobalAvgPool2D : public Layer<T> {
 public:
  explicit GlobalAvgPool2D(const LayerSpec& spec) : Layer<T>(spec) {}

  Shape build(const Shape& in) override {
    require_image(this->spec_, in);
    plane_ = in[1] * in[2];
    this->in_size_ = shape_size(in);
    this->out_size_ = in[0];
    return {in[0]};
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    ensure_size(c.out, batch * this->out_size_);
    global_avg_pool2d_forward<T>(c.out.data(), x, batch * this->out_size_, plane_);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    global_avg_pool2d_backward<T>(dx, dy, batch * this->out_size_, plane_);
    return dx;
  }

 private:
  int64_t plane_ = 1;
};

template <typename T>
class ZeroPadding2D : public Layer<T> {
 public:
  explicit ZeroPadding2D(const LayerSpec& spec) : Layer<T>(spec) {
    if (spec.pads.size() != 4 || *std::min_element(spec.pads.begin(), spec.pads.end()) < 0)
      throw ValueError(layer_label(spec) + ": padding must be 4 sizes >= 0 (top, bottom, left, right), got " +
                       shape_string(spec.pads));
  }

  Shape build(const Shape& in) override {
    require_image(this->spec_, in);
    channels_ = in[0], height_ = in[1], width_ = in[2];
    const auto& p = this->spec_.pads;
    this->in_size_ = shape_size(in);
    Shape out{in[0], in[1] + p[0] + p[1], in[2] + p[2] + p[3]};
    this->out_size_ = shape_size(out);
    return out;
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    const auto& p = this->spec_.pads;
    ensure_size(c.out, batch * this->out_size_);
    zero_pad2d_forward<T>(c.out.data(), x, batch * channels_, height_, width_, p[0], p[1], p[2], p[3]);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    const auto& p = this->spec_.pads;
    zero_pad2d_backward<T>(dx, dy, batch * channels_, height_, width_, p[0], p[1], p[2], p[3]);
    return dx;
  }

 private:
  int64_t channels_ = 1, height_ = 1, width_ = 1;
};

// ------------------------------------------------------ sequences (C, L)
// The 1-D layers run on the 2-D kernels: a sequence (C, L) is the image
// (C, 1, L) in the same memory, a length k the pair (1, k). One set of kernels
// (and of fast paths) serves both.

void require_sequence(const LayerSpec& spec, const Shape& in) {
  if (in.size() != 2)
    throw ShapeError(layer_label(spec) + ": expects sequences (channels, steps) per example, got " +
                     shape_string(in));
}

// The spec of a 1-D layer as the spec of its 2-D twin, under the same kind
// and name (so errors name the 1-D layer): lengths k become (1, k), and
// "causal" padding becomes explicit left padding (k − 1)·dilation (Keras's
// causal convolution: output t sees inputs t and before only).
LayerSpec as_2d(const LayerSpec& spec) {
  const bool conv = spec.kind == "conv1d";
  const auto widen = [&](const std::vector<int64_t>& v, const char* what) -> std::vector<int64_t> {
    if (v.empty()) return v;
    if (v.size() == 1) return {1, v[0]};
    if (v.size() == 2 && v[0] == 1) return v;
    throw ValueError(layer_label(spec) + ": " + what + " must be one length, got " + shape_string(v));
  };
  LayerSpec s = spec;
  s.kernel_size = widen(spec.kernel_size, conv ? "kernel_size" : "pool_size");
  s.strides = widen(spec.strides, "strides");
  if (conv) s.dilation = widen(spec.dilation, "dilation_rate");
  if (conv && spec.padding == "causal") {
    const int64_t k = s.kernel_size.empty() ? 1 : s.kernel_size[1];
    const int64_t d = s.dilation.empty() ? 1 : s.dilation[1];
    s.padding = "explicit";
    s.pads = {0, 0, d * (k - 1), 0};
  } else if (spec.padding != "valid" && spec.padding != "same") {
    throw ValueError(layer_label(spec) + ": padding must be 'valid', 'same'" + (conv ? " or 'causal'" : "") +
                     ", got '" + spec.padding + "'");
  }
  return s;
}

// Conv1D: (C, L) -> (filters, L_out); kernel (filters, C/groups, K), PyTorch's Conv1d.
template <typename T>
class Conv1D : public Conv2D<T> {
 public:
  explicit Conv1D(const LayerSpec& spec) : Conv2D<T>(as_2d(spec)) {}

  Shape build(const Shape& in) override {
    require_sequence(this->spec_, in);
    const Shape out = Conv2D<T>::build({in[0], 1, in[1]});
    return {out[0], out[2]};
  }

  std::vector<Shape> parameter_shapes() const override {
    std::vector<Shape> shapes = Conv2D<T>::parameter_shapes();
    shapes[0].erase(shapes[0].begin() + 2);  // (filters, C/groups, 1, K): the same memory
    return shapes;
  }
};

// MaxPooling1D: (C, L) -> (C, L_out); "same" pads with −∞, the odd cell on the right.
template <typename T>
class Pool1D : public Pool2D<T> {
 public:
  explicit Pool1D(const LayerSpec& spec) : Pool2D<T>(as_2d(spec)) {}

  Shape build(const Shape& in) override {
    require_sequence(this->spec_, in);
    const Shape out = Pool2D<T>::build({in[0], 1, in[1]});
    return {out[0], out[2]};
  }
};

// GlobalAveragePooling1D: (C, L) -> (C,), the mean over the steps.
template <typename T>
class GlobalAvgPool1D : public GlobalAvgPool2D<T> {
 public:
  explicit GlobalAvgPool1D(const LayerSpec& spec) : GlobalAvgPool2D<T>(spec) {}

  Shape build(const Shape& in) override {
    require_sequence(this->spec_, in);
    return GlobalAvgPool2D<T>::build({in[0], 1, in[1]});
  }
};

// UpSampling2D: (C, H, W) -> (C, H·sh, W·sw), nearest or bilinear (upsample.hpp).
template <typename T>
class UpSampling2D : public Layer<T> {
 public:
  explicit UpSampling2D(const LayerSpec& spec) : Layer<T>(spec) {
    const Pair size = pair_of(spec, spec.size, "size", 2);
    geometry_.scale_h = size.h;
    geometry_.scale_w = size.w;
    geometry_.interpolation = parse_interpolation(spec.interpolation, layer_label(spec).c_str());
    validate(geometry_, layer_label(spec).c_str());
  }

  Shape build(const Shape& in) override {
    require_image(this->spec_, in);
    Upsample2dShape& g = geometry_;
    g.channels = in[0], g.height = in[1], g.width = in[2];
    validate(g, layer_label(this->spec_).c_str());
    this->in_size_ = shape_size(in);
    this->out_size_ = shape_size({g.channels, g.out_h(), g.out_w()});
    return {g.channels, g.out_h(), g.out_w()};
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    Upsample2dShape s = geometry_;
    s.batch = batch;
    ensure_size(c.out, batch * this->out_size_);
    upsample2d_forward<T>(c.out.data(), x, s);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    Upsample2dShape s = geometry_;
    s.batch = batch;
    upsample2d_backward<T>(dx, dy, s);
    return dx;
  }

 private:
  Upsample2dShape geometry_;
};

}  // namespace

template <typename T>
std::unique_ptr<Layer<T>> make_conv_layer(const LayerSpec& spec) {
  const std::string& k = spec.kind;
  if (k == "conv2d" || k == "depthwise_conv2d") return std::make_unique<Conv2D<T>>(spec);
  if (k == "separable_conv2d") return std::make_unique<SeparableConv2D<T>>(spec);
  if (k == "conv2d_transpose") return std::make_unique<Conv2DTranspose<T>>(spec);
  if (k == "max_pool2d" || k == "avg_pool2d") return std::make_unique<Pool2D<T>>(spec);
  if (k == "global_avg_pool2d") return std::make_unique<GlobalAvgPool2D<T>>(spec);
  if (k == "zero_padding2d") return std::make_unique<ZeroPadding2D<T>>(spec);
  if (k == "conv1d") return std::make_unique<Conv1D<T>>(spec);
  if (k == "max_pool1d") return std::make_unique<Pool1D<T>>(spec);
  if (k == "global_avg_pool1d") return std::make_unique<GlobalAvgPool1D<T>>(spec);
  if (k == "up_sampling2d") return std::make_unique<UpSampling2D<T>>(spec);
  return nullptr;
}

template std::unique_ptr<Layer<float>> make_conv_layer<float>(const LayerSpec&);
template std::unique_ptr<Layer<double>> make_conv_layer<double>(const LayerSpec&);

}  // namespace detail
}  // namespace corenn
