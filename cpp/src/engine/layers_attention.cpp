// The attention layers (course 5, weeks 3–4): Attention (Luong's dot-product,
// Keras's Attention) and MultiHeadAttention (Vaswani et al. 2017, section
// 3.2.2; Keras's MultiHeadAttention, PyTorch's nn.MultiheadAttention) on the
// scaled dot-product kernel of kernels/attention.cpp.
//
// Both are calls with two outputs: the attended values and the attention
// weights (the course's α⟨t,t'⟩, after the softmax). The Python classes hand
// out the second only with return_attention_scores=True. The weights are an
// output to look at: no gradient flows back through them (a nonzero gradient
// reaching them is a ValueError in backward).
#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/attention.hpp"
#include "corenn/kernels/dense.hpp"
#include "corenn/kernels/init.hpp"
#include "corenn/random.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

// The mask tensor (float, nonzero = attend) as the kernel's bools, repeated
// `repeat` times per example (once per head). The kernel reads bool; a byte
// holding 0 or 1 is a valid bool on every platform corenn builds for.
static_assert(sizeof(bool) == 1, "the attention mask is kept as one byte per entry");
template <typename T>
const bool* mask_bytes(std::vector<uint8_t>& bytes, const T* mask, int64_t batch, int64_t repeat, int64_t size) {
  ensure_size(bytes, batch * repeat * size);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < repeat; ++r)
      for (int64_t i = 0; i < size; ++i) bytes[(b * repeat + r) * size + i] = mask[b * size + i] != T(0);
  return reinterpret_cast<const bool*>(bytes.data());
}

// A model may hand the weights output a gradient of zeros (a pullback given
// zeros for it); anything else cannot be honoured.
template <typename T>
void no_gradient_through_scores(const LayerSpec& spec, const T* dscores, int64_t n) {
  if (!dscores || std::all_of(dscores, dscores + n, [](T v) { return v == T(0); })) return;
  throw ValueError(layer_label(spec) + ": the attention scores output is for inspection; gradients do not flow "
                   "back through it (give it no loss, or compute the weights with Dense and Softmax layers)");
}

// (N, T, H, d) -> (N, H, T, d): the heads of a projection as the kernel's
// batch elements; merge_heads is the inverse.
template <typename T>
void split_heads(T* out, const T* x, int64_t batch, int64_t steps, int64_t heads, int64_t depth) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t h = 0; h < heads; ++h)
        std::copy_n(x + ((n * steps + t) * heads + h) * depth, depth, out + ((n * heads + h) * steps + t) * depth);
}

template <typename T>
void merge_heads(T* out, const T* x, int64_t batch, int64_t steps, int64_t heads, int64_t depth) {
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < steps; ++t)
        std::copy_n(x + ((n * heads + h) * steps + t) * depth, depth, out + ((n * steps + t) * heads + h) * depth);
}

void reject_dropout(const LayerSpec& spec) {
  const double rate = spec.get<double>("dropout");
  if (rate != 0.0)
    throw ValueError(layer_label(spec) + ": dropout on the attention weights is not implemented; dropout must be "
                     "0.0 (put a Dropout layer after the attention instead), got " + std::to_string(rate));
}

// Checks (steps, features) per example for input `name`.
void require_sequence(const LayerSpec& spec, const char* name, const Shape& s) {
  if (s.size() != 2)
    throw ShapeError(layer_label(spec) + ": " + name + " must be a sequence (timesteps, features) per example, "
                     "i.e. batches (batch, timesteps, features), got " + shape_string(s) + " per example");
}

// Keras's Attention (Luong-style dot-product attention): query (Tq, D), value
// (Tv, Dv), key (Tv, D) (key = value when not given):
//   scores = s · query keyᵀ (s: the trainable scalar `scale` with use_scale,
//   starting at 1; else 1 — Keras's Attention does not divide by √D),
//   α = softmax over the keys (causal: query i sees keys j <= i), out = α value.
// Outputs: out (Tq, Dv), α (Tq, Tv).
template <typename T>
class Attention : public CallLayer<T> {
 public:
  explicit Attention(const LayerSpec& spec)
      : CallLayer<T>(spec), use_scale_(spec.get<bool>("use_scale")), causal_(spec.get<bool>("use_causal_mask")) {
    const std::string& mode = spec.get<std::string>("score_mode");
    if (mode != "dot")
      throw ValueError(layer_label(spec) + ": score_mode must be 'dot' (for additive scores use AdditiveAttention), "
                       "got '" + mode + "'");
    reject_dropout(spec);
  }

  std::vector<Shape> build_call(const std::vector<Shape>& in) override {
    const LayerSpec& spec = this->spec_;
    if (in.size() != 2 && in.size() != 3)
      throw ValueError(layer_label(spec) + ": takes [query, value] or [query, value, key], got " +
                       std::to_string(in.size()) + " inputs");
    require_sequence(spec, "query", in[0]);
    require_sequence(spec, "value", in[1]);
    const Shape& key = in.size() == 3 ? in[2] : in[1];
    require_sequence(spec, "key", key);
    if (key[0] != in[1][0])
      throw ShapeError(layer_label(spec) + ": key and value must have the same number of steps, got key " +
                       shape_string(key) + " and value " + shape_string(in[1]));
    if (key[1] != in[0][1])
      throw ShapeError(layer_label(spec) + ": query and key must have the same features (dot-product scores), got "
                       "query " + shape_string(in[0]) + " and key " + shape_string(key));
    d_.q_len = in[0][0], d_.k_len = key[0], d_.depth = in[0][1], d_.v_depth = in[1][1];
    this->in_size_ = shape_size(in[0]);
    this->out_size_ = d_.q_len * d_.v_depth;
    return {{d_.q_len, d_.v_depth}, {d_.q_len, d_.k_len}};
  }

  std::vector<Shape> parameter_shapes() const override {
    if (use_scale_) return {{1}};
    return {};
  }
  std::vector<std::string> parameter_names() const override {
    if (use_scale_) return {"scale"};
    return {};
  }
  void initialize(uint64_t) override {
    if (use_scale_) this->params_[0] = T(1);
  }

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool, uint64_t,
                    LayerCache<T>& c) const override {
    AttentionDims d = d_;
    d.batch = batch;
    c.outs.resize(2);
    ensure_size(c.outs[0], batch * d.q_len * d.v_depth);
    ensure_size(c.outs[1], batch * d.q_len * d.k_len);
    attention_forward<T>(c.outs[0].data(), c.outs[1].data(), xs[0], key(xs), xs[1], nullptr, 0, causal_, scale(), d);
    ys[0] = c.outs[0].data();
    ys[1] = c.outs[1].data();
  }

  // With s = scale: the kernel at scale 1 gives dq₁ = dS k and dk₁ = dSᵀ q, so
  // dq = s·dq₁, dk = s·dk₁ and ds = Σ dS ⊙ (q kᵀ) = Σ dq₁ ⊙ q.
  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>&, int64_t batch, LayerCache<T>& c) override {
    no_gradient_through_scores(this->spec_, dys[1], batch * d_.q_len * d_.k_len);
    AttentionDims d = d_;
    d.batch = batch;
    const int64_t nq = batch * d.q_len * d.depth, nk = batch * d.k_len * d.depth, nv = batch * d.k_len * d.v_depth;
    const bool separate_key = xs.size() == 3;
    ensure_size(c.grad_mid, nq + 2 * nk + nv + batch * d.q_len * d.v_depth);
    T* dq = dxs[0] ? dxs[0] : c.grad_mid.data();
    T* dk = separate_key && dxs[2] ? dxs[2] : c.grad_mid.data() + nq;
    T* dv = dxs[1] ? dxs[1] : c.grad_mid.data() + nq + nk;
    T* dk_from_value = c.grad_mid.data() + nq + nk + nv;  // key = value: its gradient adds to dv
    T* dout = dys[0];
    if (!dout) {
      dout = dk_from_value + nk;
      std::fill(dout, dout + batch * d.q_len * d.v_depth, T(0));
    }
    if (!separate_key) dk = dk_from_value;
    const T* q = xs[0];
    const T* k = key(xs);
    attention_backward<T>(dq, dk, dv, dout, q, k, xs[1], c.outs[1].data(), use_scale_ ? 1.0 : scale(), d);
    if (use_scale_) {
      double ds = 0.0;
      for (int64_t i = 0; i < nq; ++i) ds += static_cast<double>(dq[i]) * q[i];
      this->grads_[0] += static_cast<T>(ds);
      const T s = this->params_[0];
      for (int64_t i = 0; i < nq; ++i) dq[i] *= s;
      for (int64_t i = 0; i < nk; ++i) dk[i] *= s;
    }
    if (!separate_key && dxs[1])
      for (int64_t i = 0; i < nv; ++i) dv[i] += dk[i];
  }

 private:
  static const T* key(const std::vector<const T*>& xs) { return xs.size() == 3 ? xs[2] : xs[1]; }
  double scale() const { return use_scale_ ? static_cast<double>(this->params_[0]) : 1.0; }

  bool use_scale_, causal_;
  AttentionDims d_;  // per example (batch unset)
};

// Multi-head attention (Vaswani et al. 2017, section 3.2.2), Keras's call
// (query (Tq, Dq), value (Tv, Dv), key (Tv, Dk), optional attention_mask
// (Tq, Tv), nonzero = attend):
//   Q = query W_qᵀ + b_q,  K = key W_kᵀ + b_k,  V = value W_vᵀ + b_v,
//   head h = softmax(Q_h K_hᵀ / √key_dim, masked) V_h  (Q_h: columns h·key_dim..)
//   out = concat(heads) W_oᵀ + b_o
// Weights in get_weights order: query kernel (H·key_dim, Dq) and bias, key
// kernel (H·key_dim, Dk) and bias, value kernel (H·value_dim, Dv) and bias,
// output kernel (D_out, H·value_dim) and bias: PyTorch's in_proj_weight split
// in three rows blocks (q, k, v), in_proj_bias likewise, out_proj. Outputs: out
// (Tq, D_out) and the weights (H, Tq, Tv).
template <typename T>
class MultiHeadAttention : public CallLayer<T> {
 public:
  explicit MultiHeadAttention(const LayerSpec& spec)
      : CallLayer<T>(spec),
        heads_(spec.get<int64_t>("num_heads")),
        key_dim_(spec.get<int64_t>("key_dim")),
        value_dim_(spec.get<int64_t>("value_dim")),
        use_bias_(spec.get<bool>("use_bias")),
        causal_(spec.get<bool>("use_causal_mask")),
        output_shape_(spec.get<Ints>("output_shape")),
        kernel_init_(parse_initializer(spec.get<std::string>("kernel_initializer"))),
        bias_init_(parse_initializer(spec.get<std::string>("bias_initializer"))),
        stddev_(spec.get<double>("initializer_stddev")) {
    const std::pair<const char*, int64_t> positive[] = {{"num_heads", heads_}, {"key_dim", key_dim_}};
    for (const auto& [name, value] : positive)
      if (value < 1) throw ValueError(layer_label(spec) + ": " + name + " must be >= 1, got " + std::to_string(value));
    if (value_dim_ < 0)
      throw ValueError(layer_label(spec) + ": value_dim must be >= 1 (or 0 for key_dim), got " +
                       std::to_string(value_dim_));
    if (value_dim_ == 0) value_dim_ = key_dim_;
    if (output_shape_.size() > 1 || (output_shape_.size() == 1 && output_shape_[0] < 1))
      throw ValueError(layer_label(spec) + ": output_shape must be empty (the query's features) or one positive "
                       "size, got " + shape_string(output_shape_));
    reject_dropout(spec);
  }

  std::vector<Shape> build_call(const std::vector<Shape>& in) override {
    const LayerSpec& spec = this->spec_;
    if (in.size() != 3 && in.size() != 4)
      throw ValueError(layer_label(spec) + ": takes query, value, key and optionally attention_mask, got " +
                       std::to_string(in.size()) + " inputs");
    require_sequence(spec, "query", in[0]);
    require_sequence(spec, "value", in[1]);
    require_sequence(spec, "key", in[2]);
    if (in[2][0] != in[1][0])
      throw ShapeError(layer_label(spec) + ": key and value must have the same number of steps, got key " +
                       shape_string(in[2]) + " and value " + shape_string(in[1]));
    Tq_ = in[0][0], Tv_ = in[1][0], Dq_ = in[0][1], Dv_ = in[1][1], Dk_ = in[2][1];
    has_mask_ = in.size() == 4;
    if (has_mask_ && in[3] != Shape{Tq_, Tv_})
      throw ShapeError(layer_label(spec) + ": attention_mask must have shape " + shape_string(Shape{Tq_, Tv_}) +
                       " per example (query steps, key steps), i.e. (batch, " + std::to_string(Tq_) + ", " +
                       std::to_string(Tv_) + "), got " + shape_string(in[3]) + " per example");
    Dout_ = output_shape_.empty() ? Dq_ : output_shape_[0];
    this->in_size_ = shape_size(in[0]);
    this->out_size_ = Tq_ * Dout_;
    return {{Tq_, Dout_}, {heads_, Tq_, Tv_}};
  }

  std::vector<Shape> parameter_shapes() const override {
    const int64_t HK = heads_ * key_dim_, HV = heads_ * value_dim_;
    std::vector<Shape> shapes;
    const Shape kernels[] = {{HK, Dq_}, {HK, Dk_}, {HV, Dv_}, {Dout_, HV}};
    for (const Shape& k : kernels) {
      shapes.push_back(k);
      if (use_bias_) shapes.push_back({k[0]});
    }
    return shapes;
  }
  std::vector<std::string> parameter_names() const override {
    std::vector<std::string> names;
    for (const char* part : {"query", "key", "value", "output"}) {
      names.push_back(std::string(part) + "_kernel");
      if (use_bias_) names.push_back(std::string(part) + "_bias");
    }
    return names;
  }

  // Each projection as a Dense layer of its own (fan_in its input features,
  // fan_out its outputs): glorot_uniform kernels, zero biases by default.
  void initialize(uint64_t key) override {
    uint64_t stream = 0;
    for (const Projection& p : projections()) {
      corenn::initialize<T>(this->params_ + p.kernel, p.out * p.in, kernel_init_, p.in, p.out, stddev_,
                            random_bits(key, stream++));
      if (use_bias_)
        corenn::initialize<T>(this->params_ + p.bias, p.out, bias_init_, p.in, p.out, stddev_,
                              random_bits(key, stream++));
    }
  }

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool, uint64_t,
                    LayerCache<T>& c) const override {
    const int64_t N = batch, H = heads_, dk = key_dim_, dv = value_dim_;
    const Buffers b = buffers(c, N, false);
    const auto P = projections();
    // Projections, each (N·T, H·d), then their heads as kernel batch elements (N·H, T, d).
    dense_forward<T>(b.tmp, xs[0], this->params_ + P[0].kernel, bias(P[0]), N * Tq_, Dq_, H * dk);
    split_heads(b.q, b.tmp, N, Tq_, H, dk);
    dense_forward<T>(b.tmp, xs[2], this->params_ + P[1].kernel, bias(P[1]), N * Tv_, Dk_, H * dk);
    split_heads(b.k, b.tmp, N, Tv_, H, dk);
    dense_forward<T>(b.tmp, xs[1], this->params_ + P[2].kernel, bias(P[2]), N * Tv_, Dv_, H * dv);
    split_heads(b.v, b.tmp, N, Tv_, H, dv);
    const bool* mask = has_mask_ ? mask_bytes(c.mask, xs[3], N, H, Tq_ * Tv_) : nullptr;
    c.outs.resize(2);
    ensure_size(c.outs[0], N * Tq_ * Dout_);
    ensure_size(c.outs[1], N * H * Tq_ * Tv_);
    attention_forward<T>(b.tmp, c.outs[1].data(), b.q, b.k, b.v, mask, N * H, causal_, scale(), dims(N));
    merge_heads(b.heads, b.tmp, N, Tq_, H, dv);
    dense_forward<T>(c.outs[0].data(), b.heads, this->params_ + P[3].kernel, bias(P[3]), N * Tq_, H * dv, Dout_);
    ys[0] = c.outs[0].data();
    ys[1] = c.outs[1].data();
  }

  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>&, int64_t batch, LayerCache<T>& c) override {
    no_gradient_through_scores(this->spec_, dys[1], batch * heads_ * Tq_ * Tv_);
    const int64_t N = batch, H = heads_, dk = key_dim_, dv = value_dim_;
    const Buffers b = buffers(c, N, false);
    const Buffers g = buffers(c, N, true);  // the same layout, holding gradients
    const auto P = projections();
    T* dy = dys[0];
    if (!dy) {  // only the weights were used, and they pass no gradient: zeros
      ensure_size(c.pre, N * Tq_ * Dout_);
      dy = c.pre.data();
      std::fill(dy, dy + N * Tq_ * Dout_, T(0));
    }
    dense_backward<T>(g.tmp, this->grads_ + P[3].kernel, bias_grad(P[3]), dy, b.heads,
                      this->params_ + P[3].kernel, N * Tq_, H * dv, Dout_);
    split_heads(g.heads, g.tmp, N, Tq_, H, dv);
    attention_backward<T>(g.q, g.k, g.v, g.heads, b.q, b.k, b.v, c.outs[1].data(), scale(), dims(N));
    merge_heads(g.tmp, g.q, N, Tq_, H, dk);
    dense_backward<T>(dxs[0], this->grads_ + P[0].kernel, bias_grad(P[0]), g.tmp, xs[0],
                      this->params_ + P[0].kernel, N * Tq_, Dq_, H * dk);
    merge_heads(g.tmp, g.k, N, Tv_, H, dk);
    dense_backward<T>(dxs[2], this->grads_ + P[1].kernel, bias_grad(P[1]), g.tmp, xs[2],
                      this->params_ + P[1].kernel, N * Tv_, Dk_, H * dk);
    merge_heads(g.tmp, g.v, N, Tv_, H, dv);
    dense_backward<T>(dxs[1], this->grads_ + P[2].kernel, bias_grad(P[2]), g.tmp, xs[1],
                      this->params_ + P[2].kernel, N * Tv_, Dv_, H * dv);
    if (has_mask_ && dxs[3]) std::fill(dxs[3], dxs[3] + N * Tq_ * Tv_, T(0));
  }

  int64_t multiply_adds() const override {
    const int64_t HK = heads_ * key_dim_, HV = heads_ * value_dim_;
    return Tq_ * HK * Dq_ + Tv_ * (HK * Dk_ + HV * Dv_) + Tq_ * Dout_ * HV + heads_ * Tq_ * Tv_ * (key_dim_ + value_dim_);
  }

 private:
  // One projection: its kernel's and bias's offsets in the parameters, in and out sizes.
  struct Projection {
    int64_t kernel, bias, in, out;
  };
  std::array<Projection, 4> projections() const {
    const int64_t sizes[4][2] = {{Dq_, heads_ * key_dim_}, {Dk_, heads_ * key_dim_}, {Dv_, heads_ * value_dim_},
                                 {heads_ * value_dim_, Dout_}};
    std::array<Projection, 4> p{};
    int64_t at = 0;
    for (int i = 0; i < 4; ++i) {
      p[i] = {at, at + sizes[i][0] * sizes[i][1], sizes[i][0], sizes[i][1]};
      at = p[i].bias + (use_bias_ ? p[i].out : 0);
    }
    return p;
  }
  const T* bias(const Projection& p) const { return use_bias_ ? this->params_ + p.bias : nullptr; }
  T* bias_grad(const Projection& p) { return use_bias_ ? this->grads_ + p.bias : nullptr; }
  double scale() const { return 1.0 / std::sqrt(static_cast<double>(key_dim_)); }
  AttentionDims dims(int64_t batch) const {
    AttentionDims d;
    d.batch = batch * heads_, d.q_len = Tq_, d.k_len = Tv_, d.depth = key_dim_, d.v_depth = value_dim_;
    return d;
  }

  // The per-batch buffers: Q, K, V by heads (N·H, T, d), the heads' outputs
  // merged back (N·Tq, H·dv) and a scratch the size of the largest
  // projection. Forward keeps them in cache.scratch for backward; backward's
  // gradients use the same layout in cache.grad_mid.
  struct Buffers {
    T *q, *k, *v, *heads, *tmp;
  };
  Buffers buffers(LayerCache<T>& c, int64_t N, bool gradients) const {
    const int64_t nq = N * Tq_ * heads_ * key_dim_, nk = N * Tv_ * heads_ * key_dim_;
    const int64_t nv = N * Tv_ * heads_ * value_dim_, nh = N * Tq_ * heads_ * value_dim_;
    const int64_t ntmp = std::max({nq, nk, nv, nh});
    std::vector<T>& store = gradients ? c.grad_mid : c.scratch;
    ensure_size(store, nq + nk + nv + nh + ntmp);
    T* at = store.data();
    return {at, at + nq, at + nq + nk, at + nq + nk + nv, at + nq + nk + nv + nh};
  }

  int64_t heads_, key_dim_, value_dim_;
  bool use_bias_, causal_;
  Ints output_shape_;
  Init kernel_init_, bias_init_;
  double stddev_;  // random_normal's, for either initialiser
  int64_t Tq_ = 0, Tv_ = 0, Dq_ = 0, Dk_ = 0, Dv_ = 0, Dout_ = 0;
  bool has_mask_ = false;
};

const LayerRegistration attention_kind(layer_kind<Attention>(
    "attention", {{"use_scale", false}, {"score_mode", "dot"}, {"dropout", 0.0}, {"use_causal_mask", false}}));
const LayerRegistration multi_head_attention_kind(layer_kind<MultiHeadAttention>(
    "multi_head_attention", {{"num_heads", 1}, {"key_dim", 1}, {"value_dim", 0}, {"dropout", 0.0},
                             {"use_bias", true}, {"output_shape", Ints{}}, {"use_causal_mask", false},
                             {"kernel_initializer", "glorot_uniform"}, {"bias_initializer", "zeros"},
                             {"initializer_stddev", 0.01}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
