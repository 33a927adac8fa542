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
#include "corenn/kernels/winograd.hpp"
#include "corenn/random.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

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

// A window's settings as the attributes give them: the kernel (pool) size,
// strides and dilation (pairs (height, width); empty strides: the pool size),
// and padding "valid", "same" or "explicit" with pads (top, bottom, left, right).
struct WindowSettings {
  Ints kernel_size, strides, dilation{1, 1};
  std::string padding;
  Ints pads{0, 0, 0, 0};
};

// The window attributes of a layer; pooling has no dilation, the 1-D layers no pads.
WindowSettings window_settings(const LayerSpec& spec) {
  WindowSettings w;
  w.kernel_size = spec.get<Ints>("kernel_size");
  w.strides = spec.get<Ints>("strides");
  w.padding = spec.get<std::string>("padding");
  if (spec.attributes.has("dilation")) w.dilation = spec.get<Ints>("dilation");
  if (spec.attributes.has("pads")) w.pads = spec.get<Ints>("pads");
  return w;
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
void set_padding(const LayerSpec& spec, const WindowSettings& w, Geometry& g, int64_t span_h, int64_t span_w) {
  if (w.padding == "valid") return;
  if (w.padding == "same") {
    const SamePadding along_h = same_padding(g.height, span_h, g.stride_h);
    const SamePadding along_w = same_padding(g.width, span_w, g.stride_w);
    g.pad_top = along_h.before, g.pad_bottom = along_h.after, g.pad_left = along_w.before, g.pad_right = along_w.after;
    return;
  }
  if (w.padding == "explicit" && w.pads.size() == 4) {
    g.pad_top = w.pads[0];
    g.pad_bottom = w.pads[1];
    g.pad_left = w.pads[2];
    g.pad_right = w.pads[3];
    return;
  }
  throw ValueError(layer_label(spec) + ": padding must be 'valid', 'same' or explicit sizes, got '" +
                   w.padding + "'");
}

// The geometry of a convolution over per-example input (C, H, W) from the
// window's kernel, strides, dilation and padding; ValueError names the layer.
Conv2dShape conv_geometry(const LayerSpec& spec, const WindowSettings& w, const Shape& in, int64_t groups,
                          int64_t out_channels) {
  require_image(spec, in);
  Conv2dShape g;
  g.in_channels = in[0];
  g.height = in[1];
  g.width = in[2];
  g.groups = groups;
  g.out_channels = out_channels;
  const Pair k = pair_of(spec, w.kernel_size, "kernel_size", 1);
  const Pair st = pair_of(spec, w.strides, "strides", 1);
  const Pair d = pair_of(spec, w.dilation, "dilation_rate", 1);
  g.kernel_h = k.h, g.kernel_w = k.w, g.stride_h = st.h, g.stride_w = st.w;
  g.dilation_h = d.h, g.dilation_w = d.w;
  set_padding(spec, w, g, d.h * (k.h - 1) + 1, d.w * (k.w - 1) + 1);
  validate(g, layer_label(spec).c_str());
  return g;
}

// An integer attribute that must be >= 1 (filters, depth_multiplier).
int64_t positive(const LayerSpec& spec, const char* name) {
  const int64_t v = spec.get<int64_t>(name);
  if (v < 1) throw ValueError(layer_label(spec) + ": " + name + " must be >= 1, got " + std::to_string(v));
  return v;
}

// What the convolution layers share: a fused activation, kernel and bias
// initialisers, a window, and parameters stored kernel(s) first, bias last.
template <typename T>
class Convolution : public Layer<T> {
 protected:
  Convolution(const LayerSpec& spec, WindowSettings window)
      : Layer<T>(spec), k_(spec), window_(std::move(window)) {}

  // Elements of the kernel(s) before the bias.
  virtual int64_t kernel_size() const { return shape_size(this->parameter_shapes()[0]); }
  const T* bias() const { return k_.use_bias ? this->params_ + kernel_size() : nullptr; }
  T* bias_grad() { return k_.use_bias ? this->grads_ + kernel_size() : nullptr; }
  T alpha() const { return static_cast<T>(k_.alpha); }
  // The output as (batch, channels, H·W): a fused softmax normalises over the channels.
  ActivationAxes fused_axes(int64_t batch, int64_t channels) const {
    return {batch, channels, this->out_size_ / channels};
  }

  void initialize_kernel_and_bias(uint64_t key, int64_t fan_in, int64_t fan_out) {
    const double stddev = k_.initializer_stddev;
    corenn::initialize<T>(this->params_, kernel_size(), k_.kernel_init, fan_in, fan_out, stddev, key);
    if (k_.use_bias)
      corenn::initialize<T>(this->params_ + kernel_size(), this->parameter_shapes().back()[0], k_.bias_init,
                            fan_in, fan_out, stddev, random_bits(key, 1));
  }

 public:
  double penalty(bool with_gradient) override { return this->kernel_penalty(0, kernel_size(), k_, with_gradient); }

 protected:
  KernelSettings k_;
  WindowSettings window_;
};

// Conv2D (filters, groups) and DepthwiseConv2D (groups = channels,
// depth_multiplier outputs each).
template <typename T>
class Conv2D : public Convolution<T> {
 public:
  explicit Conv2D(const LayerSpec& spec) : Conv2D(spec, window_settings(spec)) {}

  Shape build(const Shape& in) override {
    const LayerSpec& spec = this->spec_;
    require_image(spec, in);
    const Conv2dShape g = conv_geometry(spec, this->window_, in, depthwise_ ? in[0] : groups_,
                                        depthwise_ ? in[0] * depth_multiplier_ : filters_);
    geometry_ = g;
    this->in_size_ = shape_size(in);
    this->out_size_ = shape_size({g.out_channels, g.out_h(), g.out_w()});
    return {g.out_channels, g.out_h(), g.out_w()};
  }

  std::vector<Shape> parameter_shapes() const override {
    const Conv2dShape& g = geometry_;
    Shape kernel{g.out_channels, g.in_channels / g.groups, g.kernel_h, g.kernel_w};
    if (this->k_.use_bias) return {kernel, {g.out_channels}};
    return {kernel};
  }
  std::vector<std::string> parameter_names() const override {
    const char* kernel = depthwise_ ? "depthwise_kernel" : "kernel";
    if (this->k_.use_bias) return {kernel, "bias"};
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
    ConvEpilogue<T> e;
    e.bias = this->bias();
    if (this->k_.activation == Activation::relu) {
      // The ReLU as the convolution's epilogue, on each tile while it is in
      // cache: no Z kept, one pass over the output and one fork/join less
      // (LeNet's first layer: a 1.2 MB pass, 2.3 % of the step's samples at
      // batch 64; docs/performance-notes.md). The same values, z + bias then
      // v < 0 ? 0 : v, and backward needs no Z (see backward).
      ensure_size(c.out, batch * this->out_size_);
      e.relu = true;
      convolve(c.out.data(), x, this->params_, own_kernel_key(c), e, s, c);
      return c.out.data();
    }
    T* z = preactivation_output(c, this->k_.activation, batch * this->out_size_);
    convolve(z, x, this->params_, own_kernel_key(c), e, s, c);
    apply_activation(c, this->k_.activation, this->alpha(), this->fused_axes(batch, s.out_channels));
    return c.out.data();
  }

  // Every output channel owns its kernel rows (groups and depthwise too): the
  // kernel is (C_out, kernel_size / C_out).
  FusionWeights<T> fusion_weights() const override {
    const Activation g = this->k_.activation;
    if (g != Activation::linear && g != Activation::relu) return {};
    const int64_t C = geometry_.out_channels;
    return {this->params_, this->bias(), C, this->kernel_size() / C, g == Activation::relu};
  }

  const T* forward_fused(const T* x, int64_t batch, const T* kernel, const typename DerivedWeights<T>::Key& kernel_key,
                         const ConvEpilogue<T>& e, LayerCache<T>& c) const override {
    const Conv2dShape s = at_batch(batch);
    ensure_size(c.scratch, conv2d_scratch_size(s));
    ensure_size(c.out, batch * this->out_size_);
    convolve(c.out.data(), x, kernel, kernel_key, e, s, c);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx,
              LayerCache<T>& c) override {
    const Conv2dShape s = at_batch(batch);
    const ActivationAxes axes = this->fused_axes(batch, s.out_channels);
    // The ReLU's gradient read from its output: y > 0 exactly where z > 0,
    // and y is NaN exactly where z is (the ReLU passes a NaN through).
    if (this->k_.activation == Activation::relu)
      activation_backward<T>(dy, dy, y, y, axes.outer, axes.channels, axes.inner, Activation::relu, this->alpha());
    else
      activation_gradient_in_place(dy, c, y, this->k_.activation, this->alpha(), axes);
    ensure_size(c.scratch, conv2d_scratch_size(s));
    conv2d_backward<T>(need_dx ? dx : nullptr, this->grads_, this->bias_grad(), c.scratch.data(), dy, x,
                       this->params_, s);
    return need_dx ? dx : nullptr;
  }

 protected:
  // Conv1D passes its window as the 2-D one.
  Conv2D(const LayerSpec& spec, WindowSettings window)
      : Convolution<T>(spec, std::move(window)),
        depthwise_(spec.kind == "depthwise_conv2d"),
        filters_(depthwise_ ? 0 : positive(spec, "filters")),
        groups_(depthwise_ ? 1 : spec.get<int64_t>("groups")),
        depth_multiplier_(depthwise_ ? positive(spec, "depth_multiplier") : 1) {}

 private:
  Conv2dShape at_batch(int64_t batch) const {
    Conv2dShape s = geometry_;
    s.batch = batch;
    return s;
  }

  // kernel_key (Layer::forward_fused) of the layer's own kernel, by the
  // version the call runs with (a wrapped layer's is its wrapper's).
  typename DerivedWeights<T>::Key own_kernel_key(const LayerCache<T>& c) const {
    return {c.weights_version, ~uint64_t(0), reinterpret_cast<uintptr_t>(this->params_), 0};
  }

  // y = the convolution of x with kernel, through e (c.scratch sized). An
  // inference call on the Winograd path (float32) runs with the kernel's
  // transformed filters, kept across calls for kernel_key and the tile
  // (winograd.hpp: the setting and the batch choose it per call, by the rule
  // for kept filters); the results are winograd_conv2d_forward's bit for bit.
  void convolve(T* y, const T* x, const T* kernel, typename DerivedWeights<T>::Key kernel_key,
                const ConvEpilogue<T>& e, const Conv2dShape& s, LayerCache<T>& c) const {
    if constexpr (std::is_same_v<T, float>) {
      const int tile = c.inference ? winograd_tile(s, true) : 0;
      if (tile) {
        kernel_key[3] = static_cast<uint64_t>(tile);
        const auto U = winograd_filters_.get(kernel_key, [&](std::vector<float>& u) {
          u.resize(static_cast<size_t>(winograd_filter_size(s, tile)));
          winograd_transform_filters(u.data(), kernel, s, tile);
        });
        winograd_conv2d_forward_transformed(y, c.scratch.data(), x, U->data(), e, s, tile);
        return;
      }
    }
    // GEMM (float64, other shapes, or the rule's choice: where the rule for
    // kept filters keeps GEMM, so does the one conv2d_forward_fused applies).
    conv2d_forward_fused<T>(y, c.scratch.data(), x, kernel, e, s);
  }

  bool depthwise_;
  int64_t filters_, groups_, depth_multiplier_;
  Conv2dShape geometry_;
  mutable DerivedWeights<T> winograd_filters_;
};

// SeparableConv2D = depthwise (depth_multiplier per channel) then a 1×1
// pointwise convolution to `filters`, with one bias and activation at the end.
// Parameters: depthwise kernel (C·m, 1, KH, KW), pointwise kernel (filters, C·m, 1, 1), bias.
template <typename T>
class SeparableConv2D : public Convolution<T> {
 public:
  explicit SeparableConv2D(const LayerSpec& spec)
      : Convolution<T>(spec, window_settings(spec)),
        filters_(positive(spec, "filters")),
        depth_multiplier_(positive(spec, "depth_multiplier")) {}

  Shape build(const Shape& in) override {
    const LayerSpec& spec = this->spec_;
    require_image(spec, in);
    const Conv2dShape d = conv_geometry(spec, this->window_, in, in[0], in[0] * depth_multiplier_);
    Conv2dShape p;
    p.in_channels = d.out_channels;
    p.height = d.out_h();
    p.width = d.out_w();
    p.out_channels = filters_;
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
    if (this->k_.use_bias) shapes.push_back({pointwise_.out_channels});
    return shapes;
  }
  std::vector<std::string> parameter_names() const override {
    if (this->k_.use_bias) return {"depthwise_kernel", "pointwise_kernel", "bias"};
    return {"depthwise_kernel", "pointwise_kernel"};
  }

  void initialize(uint64_t key) override {
    const int64_t taps = depthwise_.kernel_h * depthwise_.kernel_w;
    const double stddev = this->k_.initializer_stddev;
    corenn::initialize<T>(this->params_, depthwise_size(), this->k_.kernel_init, taps, taps * depth_multiplier_,
                          stddev, key);
    corenn::initialize<T>(pointwise(), pointwise_size(), this->k_.kernel_init, pointwise_.in_channels,
                          pointwise_.out_channels, stddev, random_bits(key, 1));
    if (this->k_.use_bias)
      corenn::initialize<T>(pointwise() + pointwise_size(), pointwise_.out_channels, this->k_.bias_init,
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
    T* z = preactivation_output(c, this->k_.activation, batch * this->out_size_);
    conv2d_forward<T>(z, c.scratch.data(), c.mid.data(), pointwise(), this->bias(), p);
    apply_activation(c, this->k_.activation, this->alpha(), this->fused_axes(batch, p.out_channels));
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx,
              LayerCache<T>& c) override {
    Conv2dShape d = depthwise_, p = pointwise_;
    d.batch = p.batch = batch;
    activation_gradient_in_place(dy, c, y, this->k_.activation, this->alpha(),
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

  int64_t filters_, depth_multiplier_;
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
  explicit Conv2DTranspose(const LayerSpec& spec)
      : Convolution<T>(spec, window_settings(spec)),
        filters_(positive(spec, "filters")),
        output_padding_(spec.get<Ints>("output_padding")) {}

  Shape build(const Shape& in) override {
    const LayerSpec& spec = this->spec_;
    const WindowSettings& w = this->window_;
    require_image(spec, in);
    ConvTranspose2dShape g;
    g.in_channels = in[0];
    g.height = in[1];
    g.width = in[2];
    g.out_channels = filters_;
    const Pair k = pair_of(spec, w.kernel_size, "kernel_size", 1);
    const Pair st = pair_of(spec, w.strides, "strides", 1);
    const Pair d = pair_of(spec, w.dilation, "dilation_rate", 1);
    g.kernel_h = k.h, g.kernel_w = k.w, g.stride_h = st.h, g.stride_w = st.w;
    g.dilation_h = d.h, g.dilation_w = d.w;
    const bool given = !output_padding_.empty();
    const Pair op = pair_of(spec, output_padding_, "output_padding", 0);
    g.output_pad_h = op.h;
    g.output_pad_w = op.w;
    if (w.padding == "same") {
      same_transpose(g.height, k.h, st.h, d.h, given, g.pad_top, g.pad_bottom, g.output_pad_h, "height");
      same_transpose(g.width, k.w, st.w, d.w, given, g.pad_left, g.pad_right, g.output_pad_w, "width");
    } else if (w.padding == "explicit" && w.pads.size() == 4) {
      g.pad_top = w.pads[0];
      g.pad_bottom = w.pads[1];
      g.pad_left = w.pads[2];
      g.pad_right = w.pads[3];
    } else if (w.padding != "valid") {
      throw ValueError(layer_label(spec) + ": padding must be 'valid', 'same' or explicit sizes, got '" +
                       w.padding + "'");
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
    if (this->k_.use_bias) return {kernel, {g.out_channels}};
    return {kernel};
  }
  std::vector<std::string> parameter_names() const override {
    if (this->k_.use_bias) return {"kernel", "bias"};
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
    T* z = preactivation_output(c, this->k_.activation, batch * this->out_size_);
    conv_transpose2d_forward<T>(z, c.scratch.data(), x, this->params_, this->bias(), s);
    apply_activation(c, this->k_.activation, this->alpha(), this->fused_axes(batch, s.out_channels));
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T* x, const T* y, int64_t batch, bool need_dx,
              LayerCache<T>& c) override {
    ConvTranspose2dShape s = geometry_;
    s.batch = batch;
    activation_gradient_in_place(dy, c, y, this->k_.activation, this->alpha(),
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

  int64_t filters_;
  Ints output_padding_;  // empty: derived from the padding
  ConvTranspose2dShape geometry_;
};

// MaxPooling2D and AveragePooling2D. Keras's "same" average counts only the
// cells inside the image; explicit padding counts padded zeros (PyTorch).
template <typename T>
class Pool2D : public Layer<T> {
 public:
  explicit Pool2D(const LayerSpec& spec) : Pool2D(spec, window_settings(spec)) {}

  Shape build(const Shape& in) override {
    const LayerSpec& spec = this->spec_;
    const WindowSettings& w = window_;
    require_image(spec, in);
    Pool2dShape g;
    g.channels = in[0];
    g.height = in[1];
    g.width = in[2];
    const Pair k = pair_of(spec, w.kernel_size, "pool_size", 2);
    const Pair st = pair_of(spec, w.strides, "strides", 0);
    g.kernel_h = k.h, g.kernel_w = k.w;
    g.stride_h = st.h > 0 ? st.h : k.h;
    g.stride_w = st.w > 0 ? st.w : k.w;
    set_padding(spec, w, g, k.h, k.w);
    g.count_include_pad = w.padding != "same";
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

 protected:
  // MaxPooling1D passes its window as the 2-D one.
  Pool2D(const LayerSpec& spec, WindowSettings window)
      : Layer<T>(spec), max_(spec.kind == "max_pool2d" || spec.kind == "max_pool1d"), window_(std::move(window)) {}

 private:
  bool max_;
  WindowSettings window_;
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
  explicit ZeroPadding2D(const LayerSpec& spec) : Layer<T>(spec), pads_(spec.get<Ints>("pads")) {
    if (pads_.size() != 4 || *std::min_element(pads_.begin(), pads_.end()) < 0)
      throw ValueError(layer_label(spec) + ": padding must be 4 sizes >= 0 (top, bottom, left, right), got " +
                       shape_string(pads_));
  }

  Shape build(const Shape& in) override {
    require_image(this->spec_, in);
    channels_ = in[0], height_ = in[1], width_ = in[2];
    const auto& p = pads_;
    this->in_size_ = shape_size(in);
    Shape out{in[0], in[1] + p[0] + p[1], in[2] + p[2] + p[3]};
    this->out_size_ = shape_size(out);
    return out;
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    const auto& p = pads_;
    ensure_size(c.out, batch * this->out_size_);
    zero_pad2d_forward<T>(c.out.data(), x, batch * channels_, height_, width_, p[0], p[1], p[2], p[3]);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>&) override {
    if (!need_dx) return nullptr;
    const auto& p = pads_;
    zero_pad2d_backward<T>(dx, dy, batch * channels_, height_, width_, p[0], p[1], p[2], p[3]);
    return dx;
  }

 private:
  Ints pads_;  // (top, bottom, left, right)
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

// The window of a 1-D layer as the window of its 2-D twin (errors still name
// the 1-D layer): lengths k become (1, k), and "causal" padding becomes
// explicit left padding (k − 1)·dilation (Keras's causal convolution: output t
// sees inputs t and before only).
WindowSettings as_2d(const LayerSpec& spec) {
  const bool conv = spec.kind == "conv1d";
  const auto widen = [&](const Ints& v, const char* what) -> Ints {
    if (v.empty()) return v;
    if (v.size() == 1) return {1, v[0]};
    if (v.size() == 2 && v[0] == 1) return v;
    throw ValueError(layer_label(spec) + ": " + what + " must be one length, got " + shape_string(v));
  };
  const WindowSettings given = window_settings(spec);
  WindowSettings w = given;
  w.kernel_size = widen(given.kernel_size, conv ? "kernel_size" : "pool_size");
  w.strides = widen(given.strides, "strides");
  if (conv) w.dilation = widen(given.dilation, "dilation_rate");
  if (conv && given.padding == "causal") {
    const int64_t k = w.kernel_size.empty() ? 1 : w.kernel_size[1];
    const int64_t d = w.dilation.empty() ? 1 : w.dilation[1];
    w.padding = "explicit";
    w.pads = {0, 0, d * (k - 1), 0};
  } else if (given.padding != "valid" && given.padding != "same") {
    throw ValueError(layer_label(spec) + ": padding must be 'valid', 'same'" + (conv ? " or 'causal'" : "") +
                     ", got '" + given.padding + "'");
  }
  return w;
}

// Conv1D: (C, L) -> (filters, L_out); kernel (filters, C/groups, K), PyTorch's Conv1d.
template <typename T>
class Conv1D : public Conv2D<T> {
 public:
  explicit Conv1D(const LayerSpec& spec) : Conv2D<T>(spec, as_2d(spec)) {}

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

// MaxPooling1D, AveragePooling1D: (C, L) -> (C, L_out); "same" puts the odd
// padding cell on the right, pads with −∞ (max) or averages only the steps
// inside each window (average, Keras's).
template <typename T>
class Pool1D : public Pool2D<T> {
 public:
  explicit Pool1D(const LayerSpec& spec) : Pool2D<T>(spec, as_2d(spec)) {}

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

// GlobalMaxPooling1D: (C, L) -> (C,), the max over the steps: max pooling
// with one window of the whole length (its gradient goes to the first maximum).
template <typename T>
class GlobalMaxPool1D : public Layer<T> {
 public:
  explicit GlobalMaxPool1D(const LayerSpec& spec) : Layer<T>(spec) {}

  Shape build(const Shape& in) override {
    require_sequence(this->spec_, in);
    geometry_ = Pool2dShape{};
    geometry_.channels = in[0];
    geometry_.width = geometry_.kernel_w = geometry_.stride_w = in[1];
    validate(geometry_, layer_label(this->spec_).c_str());
    this->in_size_ = shape_size(in);
    this->out_size_ = in[0];
    return {in[0]};
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    Pool2dShape s = geometry_;
    s.batch = batch;
    ensure_size(c.out, batch * this->out_size_);
    ensure_size(c.index, batch * this->out_size_);
    max_pool2d_forward<T>(c.out.data(), c.index.data(), x, s);
    return c.out.data();
  }

  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    if (!need_dx) return nullptr;
    Pool2dShape s = geometry_;
    s.batch = batch;
    max_pool2d_backward<T>(dx, dy, c.index.data(), s);
    return dx;
  }

 private:
  Pool2dShape geometry_;
};

// UpSampling2D: (C, H, W) -> (C, H·sh, W·sw), nearest or bilinear (upsample.hpp).
template <typename T>
class UpSampling2D : public Layer<T> {
 public:
  explicit UpSampling2D(const LayerSpec& spec) : Layer<T>(spec) {
    const Pair size = pair_of(spec, spec.get<Ints>("size"), "size", 2);
    geometry_.scale_h = size.h;
    geometry_.scale_w = size.w;
    geometry_.interpolation = parse_interpolation(spec.get<std::string>("interpolation"), layer_label(spec).c_str());
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

// The window attributes: 2-D convolutions (pairs), pooling (Keras's default
// pool size 2; empty strides: the pool size), the 1-D layers (one length).
Attributes conv2d_window() {
  return {{"kernel_size", Ints{1, 1}}, {"strides", Ints{1, 1}}, {"dilation", Ints{1, 1}},
          {"padding", "valid"}, {"pads", Ints{0, 0, 0, 0}}};
}
Attributes pool2d_window() {
  return {{"kernel_size", Ints{2, 2}}, {"strides", Ints{}}, {"padding", "valid"}, {"pads", Ints{0, 0, 0, 0}}};
}
const Attributes kernel = KernelSettings::attributes();

const LayerRegistration conv2d_kind(layer_kind<Conv2D>(
    "conv2d", joined(joined(kernel, conv2d_window()), {{"filters", 0}, {"groups", 1}})));
const LayerRegistration depthwise_conv2d_kind(layer_kind<Conv2D>(
    "depthwise_conv2d", joined(joined(kernel, conv2d_window()), {{"depth_multiplier", 1}})));
const LayerRegistration separable_conv2d_kind(layer_kind<SeparableConv2D>(
    "separable_conv2d", joined(joined(kernel, conv2d_window()), {{"filters", 0}, {"depth_multiplier", 1}})));
const LayerRegistration conv2d_transpose_kind(layer_kind<Conv2DTranspose>(
    "conv2d_transpose", joined(joined(kernel, conv2d_window()), {{"filters", 0}, {"output_padding", Ints{}}})));
const LayerRegistration max_pool2d_kind(layer_kind<Pool2D>("max_pool2d", pool2d_window()));
const LayerRegistration avg_pool2d_kind(layer_kind<Pool2D>("avg_pool2d", pool2d_window()));
const LayerRegistration global_avg_pool2d_kind(layer_kind<GlobalAvgPool2D>("global_avg_pool2d", {}));
const LayerRegistration zero_padding2d_kind(layer_kind<ZeroPadding2D>("zero_padding2d", {{"pads", Ints{0, 0, 0, 0}}}));
const LayerRegistration up_sampling2d_kind(layer_kind<UpSampling2D>(
    "up_sampling2d", {{"size", Ints{2, 2}}, {"interpolation", "nearest"}}));
const LayerRegistration conv1d_kind(layer_kind<Conv1D>(
    "conv1d", joined(kernel, {{"kernel_size", Ints{1}}, {"strides", Ints{1}}, {"dilation", Ints{1}},
                              {"padding", "valid"}, {"filters", 0}, {"groups", 1}})));
const LayerRegistration max_pool1d_kind(layer_kind<Pool1D>(
    "max_pool1d", {{"kernel_size", Ints{2}}, {"strides", Ints{}}, {"padding", "valid"}}));
const LayerRegistration avg_pool1d_kind(layer_kind<Pool1D>(
    "avg_pool1d", {{"kernel_size", Ints{2}}, {"strides", Ints{}}, {"padding", "valid"}}));
const LayerRegistration global_avg_pool1d_kind(layer_kind<GlobalAvgPool1D>("global_avg_pool1d", {}));
const LayerRegistration global_max_pool1d_kind(layer_kind<GlobalMaxPool1D>("global_max_pool1d", {}));

}  // namespace

}  // namespace detail
}  // namespace corenn
