// The attention layers (course 5, weeks 3–4): Attention (Luong's dot-product,
// Keras's Attention, and Keras 3's concat scores), AdditiveAttention
// (Bahdanau's, Keras's AdditiveAttention) and MultiHeadAttention (Vaswani et
// al. 2017, section 3.2.2; Keras's MultiHeadAttention, PyTorch's
// nn.MultiheadAttention) on the kernels of kernels/attention.cpp: the
// scaled dot-product one, or the additive scores followed by the same masked
// softmax, dropout and weighted sum of the values.
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
#include "corenn/kernels/dropout.hpp"
#include "corenn/kernels/init.hpp"
#include "corenn/random.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

// The kernel reads the allowed keys as bool; the layers keep them as bytes
// holding 0 or 1, a valid bool on every platform corenn builds for.
static_assert(sizeof(bool) == 1, "the attention mask is kept as one byte per entry");

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

// Checks (steps, features) per example for input `name`.
void require_sequence(const LayerSpec& spec, const char* name, const Shape& s) {
  if (s.size() != 2)
    throw ShapeError(layer_label(spec) + ": " + name + " must be a sequence (timesteps, features) per example, "
                     "i.e. batches (batch, timesteps, features), got " + shape_string(s) + " per example");
}

// The query-step mask (N, Tq) as 0/1 bytes into out; from float inputs, nonzero = valid.
template <typename T>
void mask_from_input(uint8_t* out, const T* mask, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = mask[i] != T(0);
}

// The dropout rate as the layer's dtype holds it, so the mask is the one a
// Dropout layer of the same rate and key draws (dropout_forward takes T).
template <typename T>
double rate_in(double rate) {
  return static_cast<double>(static_cast<T>(rate));
}

enum class Score { dot, concat, additive };

// Keras's Attention (Luong-style dot-product attention) and, with
// Score::additive, AdditiveAttention (Bahdanau-style). Inputs: query (Tq, D),
// value (Tv, Dv), key (Tv, D) (key = value when not given), then the masks the
// call passed explicitly (Keras's mask=[query_mask, value_mask]: query (Tq,),
// value (Tv,), nonzero = a valid step), in that order. Scores:
//   dot:      S = s · query keyᵀ (s: the trainable scalar `scale` with use_scale,
//             starting at 1; else 1 — Keras's Attention does not divide by √D)
//   concat:   S_ij = c · Σ_d tanh(s·(q_id + k_jd)) (Keras 3's score_mode="concat":
//             c the trainable scalar concat_score_weight, s as above; both start at 1)
//   additive: S_ij = Σ_d w_d · tanh(q_id + k_jd) (Keras's AdditiveAttention: w the
//             trainable (D,) `scale` with use_scale, glorot_uniform; else ones)
// α = softmax over the allowed keys (the value mask's valid steps; causal: j <= i;
// none allowed: α = 0), dropout on α in training (rate `dropout`, inverted, the
// mask drawn as Dropout draws it), out = α̃ value, and a query mask zeros the
// rows of masked queries (Keras). The value mask is the explicit one or the mask
// the value tensor carries (Embedding(mask_zero=True), Masking); the query mask
// likewise, and it is the mask of the output (Keras's compute_mask).
// Outputs: out (Tq, Dv), α̃ (Tq, Tv) (after dropout, as Keras returns it).
template <typename T>
class Attention : public CallLayer<T> {
 public:
  explicit Attention(const LayerSpec& spec) : Attention(spec, score_of(spec)) {}

  std::vector<Shape> build_call(const std::vector<Shape>& in) override {
    const LayerSpec& spec = this->spec_;
    const size_t masks = (query_mask_ ? 1 : 0) + (value_mask_ ? 1 : 0);
    const size_t tensors = in.size() - std::min(in.size(), masks);
    if (tensors != 2 && tensors != 3)
      throw ValueError(layer_label(spec) + ": takes [query, value] or [query, value, key]" +
                       (masks ? " and " + std::to_string(masks) + " mask(s)" : std::string()) + ", got " +
                       std::to_string(in.size()) + " inputs");
    separate_key_ = tensors == 3;
    require_sequence(spec, "query", in[0]);
    require_sequence(spec, "value", in[1]);
    const Shape& key = separate_key_ ? in[2] : in[1];
    require_sequence(spec, "key", key);
    if (key[0] != in[1][0])
      throw ShapeError(layer_label(spec) + ": key and value must have the same number of steps, got key " +
                       shape_string(key) + " and value " + shape_string(in[1]));
    if (key[1] != in[0][1])
      throw ShapeError(layer_label(spec) + ": query and key must have the same features (" +
                       (score_ == Score::dot ? "dot-product" : "additive") + " scores), got query " +
                       shape_string(in[0]) + " and key " + shape_string(key));
    d_.q_len = in[0][0], d_.k_len = key[0], d_.depth = in[0][1], d_.v_depth = in[1][1];
    size_t at = tensors;
    const std::pair<bool, std::pair<const char*, int64_t>> explicit_masks[] = {
        {query_mask_, {"query_mask", d_.q_len}}, {value_mask_, {"value_mask", d_.k_len}}};
    for (const auto& [given, what] : explicit_masks)
      if (given && in[at++] != Shape{what.second})
        throw ShapeError(layer_label(spec) + ": mask: " + what.first + " must have shape (" +
                         std::to_string(what.second) + ",) per example (one entry per step), i.e. (batch, " +
                         std::to_string(what.second) + "), got " + shape_string(in[at - 1]) + " per example");
    this->in_size_ = shape_size(in[0]);
    this->out_size_ = d_.q_len * d_.v_depth;
    return {{d_.q_len, d_.v_depth}, {d_.q_len, d_.k_len}};
  }

  std::vector<Shape> parameter_shapes() const override {
    std::vector<Shape> shapes;
    if (use_scale_) shapes.push_back({score_ == Score::additive ? d_.depth : 1});
    if (score_ == Score::concat) shapes.push_back({1});
    return shapes;
  }
  std::vector<std::string> parameter_names() const override {
    std::vector<std::string> names;
    if (use_scale_) names.push_back("scale");
    if (score_ == Score::concat) names.push_back("concat_score_weight");
    return names;
  }
  void initialize(uint64_t key) override {
    if (score_ == Score::additive) {
      if (use_scale_)  // Keras: glorot_uniform, whose fans for a vector are its length
        corenn::initialize<T>(this->params_, d_.depth, Init::glorot_uniform, d_.depth, d_.depth, 0.0,
                              random_bits(key, 0));
      return;
    }
    std::fill(this->params_, this->params_ + this->parameter_count(), T(1));
  }
  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool training,
                    uint64_t key, LayerCache<T>& c) const override {
    AttentionDims d = d_;
    d.batch = batch;
    const int64_t np = batch * d.q_len * d.k_len, no = batch * d.q_len * d.v_depth;
    c.outs.resize(3);
    ensure_size(c.outs[0], no);
    ensure_size(c.outs[1], np);
    const Masks m = masks(xs, batch, training, key, c);
    const AttentionDropout drop{m.keep, rate_in<T>(rate_)};
    T* dropped = nullptr;
    if (m.keep) {
      ensure_size(c.outs[2], np);
      dropped = c.outs[2].data();
    }
    T* o = c.outs[0].data();
    T* p = c.outs[1].data();
    if (score_ == Score::dot) {
      attention_forward<T>(o, p, xs[0], key_of(xs), xs[1], m.allowed, batch, causal_, scale(), d, drop, dropped);
    } else {
      const Additive a = additive_inputs(xs, batch, c);
      additive_scores_forward<T>(p, a.q, a.k, a.w, additive_dims(batch));
      attention_weights_forward<T>(o, p, dropped, xs[1], m.allowed, batch, causal_, drop, d);
    }
    if (m.query)
      for (int64_t i = 0; i < batch * d.q_len; ++i)
        if (!m.query[i]) std::fill(o + i * d.v_depth, o + (i + 1) * d.v_depth, T(0));
    ys[0] = o;
    ys[1] = m.keep ? dropped : p;
  }

  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>&, int64_t batch, LayerCache<T>& c) override {
    no_gradient_through_scores(this->spec_, dys[1], batch * d_.q_len * d_.k_len);
    AttentionDims d = d_;
    d.batch = batch;
    const int64_t nq = batch * d.q_len * d.depth, nk = batch * d.k_len * d.depth, nv = batch * d.k_len * d.v_depth;
    const int64_t no = batch * d.q_len * d.v_depth, np = batch * d.q_len * d.k_len;
    ensure_size(c.grad_mid, nq + 2 * nk + nv + no + np + d.depth);
    T* dq = dxs[0] ? dxs[0] : c.grad_mid.data();
    T* dk = separate_key_ && dxs[2] ? dxs[2] : c.grad_mid.data() + nq;
    T* dv = dxs[1] ? dxs[1] : c.grad_mid.data() + nq + nk;
    T* dk_from_value = c.grad_mid.data() + nq + nk + nv;  // key = value: its gradient adds to dv
    T* zeros = dk_from_value + nk;
    T* dscores = zeros + no;
    T* dw = dscores + np;
    T* dout = dys[0];
    if (!dout) {
      dout = zeros;
      std::fill(dout, dout + no, T(0));
    }
    if (!separate_key_) dk = dk_from_value;
    const Masks m = saved_masks(c);
    if (m.query)  // masked queries' rows were zeroed: no gradient reaches them
      for (int64_t i = 0; i < batch * d.q_len; ++i)
        if (!m.query[i]) std::fill(dout + i * d.v_depth, dout + (i + 1) * d.v_depth, T(0));
    const AttentionDropout drop{m.keep, rate_in<T>(rate_)};
    const T* q = xs[0];
    const T* k = key_of(xs);
    if (score_ == Score::dot) {
      // With s = scale: the kernel at scale 1 gives dq₁ = dS k and dk₁ = dSᵀ q, so
      // dq = s·dq₁, dk = s·dk₁ and ds = Σ dS ⊙ (q kᵀ) = Σ dq₁ ⊙ q.
      attention_backward<T>(dq, dk, dv, dout, q, k, xs[1], c.outs[1].data(), use_scale_ ? 1.0 : scale(), d, drop);
      if (use_scale_) {
        double ds = 0.0;
        for (int64_t i = 0; i < nq; ++i) ds += static_cast<double>(dq[i]) * q[i];
        this->grads_[0] += static_cast<T>(ds);
        const T s = this->params_[0];
        for (int64_t i = 0; i < nq; ++i) dq[i] *= s;
        for (int64_t i = 0; i < nk; ++i) dk[i] *= s;
      }
    } else {
      attention_weights_backward<T>(dscores, dv, dout, xs[1], c.outs[1].data(), drop, d);
      const Additive a = saved_additive(xs, batch, c);
      const bool learnt_w = score_ == Score::additive && use_scale_;
      T* w_grad = learnt_w ? this->grads_ : dw;
      if (!learnt_w) std::fill(dw, dw + d.depth, T(0));
      additive_scores_backward<T>(dq, dk, w_grad, dscores, a.q, a.k, a.w, additive_dims(batch));
      if (score_ == Score::concat) {
        // q̂ = s·q, k̂ = s·k, w = c·1: dq = s·dq̂, dk = s·dk̂, ds = Σ dq̂ ⊙ q + Σ dk̂ ⊙ k, dc = Σ dw.
        T* grads = this->grads_;
        if (use_scale_) {
          double ds = 0.0;
          for (int64_t i = 0; i < nq; ++i) ds += static_cast<double>(dq[i]) * q[i];
          for (int64_t i = 0; i < nk; ++i) ds += static_cast<double>(dk[i]) * k[i];
          grads[0] += static_cast<T>(ds);
          const T s = this->params_[0];
          for (int64_t i = 0; i < nq; ++i) dq[i] *= s;
          for (int64_t i = 0; i < nk; ++i) dk[i] *= s;
          ++grads;
        }
        double dc = 0.0;
        for (int64_t u = 0; u < d.depth; ++u) dc += dw[u];
        grads[0] += static_cast<T>(dc);
      }
    }
    if (!separate_key_ && dxs[1])
      for (int64_t i = 0; i < nv; ++i) dv[i] += dk[i];
    size_t at = separate_key_ ? 3 : 2;  // the explicit masks: constants
    if (query_mask_ && dxs[at++]) std::fill(dxs[at - 1], dxs[at - 1] + batch * d.q_len, T(0));
    if (value_mask_ && dxs[at]) std::fill(dxs[at], dxs[at] + batch * d.k_len, T(0));
  }

  // The output carries the query's mask (Keras's compute_mask); the scores none.
  const uint8_t* output_mask(size_t output, int64_t, LayerCache<T>& c) const override {
    if (output != 0) return nullptr;
    return query_mask_ ? c.out_mask.data() : c.input_mask;
  }

 protected:
  Attention(const LayerSpec& spec, Score score)
      : CallLayer<T>(spec),
        score_(score),
        use_scale_(spec.get<bool>("use_scale")),
        causal_(spec.get<bool>("use_causal_mask")),
        query_mask_(spec.get<bool>("query_mask_input")),
        value_mask_(spec.get<bool>("value_mask_input")),
        rate_(spec.get<double>("dropout")) {
    validate_attention_dropout(rate_, layer_label(spec).c_str(), "dropout");
  }

 private:
  static Score score_of(const LayerSpec& spec) {
    const std::string& mode = spec.get<std::string>("score_mode");
    if (mode == "dot") return Score::dot;
    if (mode == "concat") return Score::concat;
    throw ValueError(layer_label(spec) + ": score_mode must be 'dot' or 'concat', got '" + mode + "'");
  }

  const T* key_of(const std::vector<const T*>& xs) const { return separate_key_ ? xs[2] : xs[1]; }
  double scale() const { return use_scale_ ? static_cast<double>(this->params_[0]) : 1.0; }
  AttentionDims additive_dims(int64_t batch) const {
    AttentionDims d = d_;
    d.batch = batch;
    d.v_depth = 0;
    return d;
  }

  // The masks of one forward pass, kept in the cache for backward: c.mask holds
  // the dropout's keep mask (B, Tq, Tk) when dropping, then the kernel's allowed
  // keys (B, Tq, Tk) when a value mask is given; c.out_mask the explicit query
  // mask (N, Tq).
  struct Masks {
    const uint8_t* keep = nullptr;
    const bool* allowed = nullptr;
    const uint8_t* query = nullptr;
  };
  Masks masks(const std::vector<const T*>& xs, int64_t batch, bool training, uint64_t key, LayerCache<T>& c) const {
    const int64_t np = batch * d_.q_len * d_.k_len;
    const bool dropping = training && rate_ > 0.0;
    size_t at = separate_key_ ? 3 : 2;
    const T* query_input = query_mask_ ? xs[at++] : nullptr;
    const T* value_input = value_mask_ ? xs[at++] : nullptr;
    const uint8_t* value = value_input ? nullptr : (c.input_masks.size() > 1 ? c.input_masks[1] : nullptr);
    const int64_t keep_n = dropping ? np : 0;
    ensure_size(c.mask, keep_n + (value_input || value ? np : 0));
    Masks m;
    if (dropping) {
      dropout_mask(c.mask.data(), np, rate_in<T>(rate_), key);
      m.keep = c.mask.data();
    }
    if (value_input || value) {
      uint8_t* allowed = c.mask.data() + keep_n;
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t i = 0; i < d_.q_len; ++i)
          for (int64_t j = 0; j < d_.k_len; ++j)
            allowed[(b * d_.q_len + i) * d_.k_len + j] =
                value_input ? value_input[b * d_.k_len + j] != T(0) : value[b * d_.k_len + j] != 0;
      m.allowed = reinterpret_cast<const bool*>(allowed);
    }
    if (query_input) {
      ensure_size(c.out_mask, batch * d_.q_len);
      mask_from_input(c.out_mask.data(), query_input, batch * d_.q_len);
      m.query = c.out_mask.data();
    } else {
      m.query = c.input_mask;
    }
    return m;
  }
  // The masks forward made (backward reads the keep mask and the query mask).
  Masks saved_masks(LayerCache<T>& c) const {
    Masks m;
    if (c.training && rate_ > 0.0) m.keep = c.mask.data();
    m.query = query_mask_ ? c.out_mask.data() : c.input_mask;
    return m;
  }

  // The additive kernel's q̂, k̂ and w: Keras's concat scores scale q and k
  // (kept in c.scratch) and weigh every unit by c; AdditiveAttention's w is
  // its scale (or ones).
  struct Additive {
    const T *q, *k, *w;
  };
  Additive additive_inputs(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const {
    const int64_t nq = batch * d_.q_len * d_.depth, nk = batch * d_.k_len * d_.depth;
    ensure_size(c.scratch, nq + nk + d_.depth);
    T* q = c.scratch.data();
    T* k = q + nq;
    T* w = k + nk;
    const bool scaled = score_ == Score::concat && use_scale_;
    const T s = scaled ? this->params_[0] : T(1);
    if (scaled) {
      for (int64_t i = 0; i < nq; ++i) q[i] = s * xs[0][i];
      for (int64_t i = 0; i < nk; ++i) k[i] = s * key_of(xs)[i];
    }
    if (score_ == Score::additive && use_scale_) std::copy_n(this->params_, d_.depth, w);
    else std::fill(w, w + d_.depth, score_ == Score::concat ? this->params_[use_scale_ ? 1 : 0] : T(1));
    return {scaled ? q : xs[0], scaled ? k : key_of(xs), w};
  }
  Additive saved_additive(const std::vector<const T*>& xs, int64_t batch, LayerCache<T>& c) const {
    const int64_t nq = batch * d_.q_len * d_.depth, nk = batch * d_.k_len * d_.depth;
    const bool scaled = score_ == Score::concat && use_scale_;
    const T* q = c.scratch.data();
    return {scaled ? q : xs[0], scaled ? q + nq : key_of(xs), q + nq + nk};
  }

  Score score_;
  bool use_scale_, causal_, query_mask_, value_mask_;
  double rate_;
  bool separate_key_ = false;
  AttentionDims d_;  // per example (batch unset)
};

template <typename T>
class AdditiveAttention : public Attention<T> {
 public:
  explicit AdditiveAttention(const LayerSpec& spec) : Attention<T>(spec, Score::additive) {}
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
// in three rows blocks (q, k, v), in_proj_bias likewise, out_proj. `dropout`
// drops attention weights in training (PyTorch's dropout_p, Keras's dropout),
// the mask drawn as Dropout draws it. Masks (Keras): the steps masked in the
// value or key (Embedding(mask_zero=True), Masking) are no keys, a masked query
// attends nothing (zeros before the output projection), ANDed with
// attention_mask and the causal mask; the output carries the query's mask.
// Outputs: out (Tq, D_out) and the weights (H, Tq, Tv), before dropout (as
// Keras returns them).
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
        stddev_(spec.get<double>("initializer_stddev")),
        rate_(spec.get<double>("dropout")) {
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
    validate_attention_dropout(rate_, layer_label(spec).c_str(), "dropout");
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

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool training,
                    uint64_t key, LayerCache<T>& c) const override {
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
    // c.mask: the dropout's keep mask (when dropping), then the allowed keys
    // (when an attention_mask is given or an input carries a mask), each (N·H, Tq, Tv).
    const int64_t np = N * H * Tq_ * Tv_;
    const bool dropping = training && rate_ > 0.0;
    const int64_t keep_n = dropping ? np : 0;
    const bool* mask = allowed_keys(xs, N, keep_n, c);
    c.outs.resize(3);
    ensure_size(c.outs[0], N * Tq_ * Dout_);
    ensure_size(c.outs[1], np);
    AttentionDropout drop;
    if (dropping) {
      dropout_mask(c.mask.data(), np, rate_in<T>(rate_), key);
      drop = {c.mask.data(), rate_in<T>(rate_)};
      ensure_size(c.outs[2], np);
    }
    attention_forward<T>(b.tmp, c.outs[1].data(), b.q, b.k, b.v, mask, N * H, causal_, scale(), dims(N), drop,
                         c.outs[2].data());
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
    AttentionDropout drop;
    if (c.training && rate_ > 0.0) drop = {c.mask.data(), rate_in<T>(rate_)};
    attention_backward<T>(g.q, g.k, g.v, g.heads, b.q, b.k, b.v, c.outs[1].data(), scale(), dims(N), drop);
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

  // The output carries the query's mask (Keras's MultiHeadAttention.compute_mask); the scores none.
  const uint8_t* output_mask(size_t output, int64_t, LayerCache<T>& c) const override {
    return output == 0 ? c.input_mask : nullptr;
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
  // The keys each query may attend, Keras's _compute_attention_mask: the AND of
  // the attention_mask input, the value's and key's masks (a masked step is no
  // key) and the query's (a masked query attends nothing: its heads give zeros),
  // each head alike; causal is the kernel's. Kept in c.mask after keep_n bytes;
  // nullptr when nothing restricts the keys (the kernel's unmasked path).
  const bool* allowed_keys(const std::vector<const T*>& xs, int64_t N, int64_t keep_n, LayerCache<T>& c) const {
    const auto carried = [&](size_t i) { return i < c.input_masks.size() ? c.input_masks[i] : nullptr; };
    const uint8_t* query = carried(0);
    const uint8_t* value = carried(1);
    const uint8_t* key = carried(2);
    if (!has_mask_ && !query && !value && !key) {
      ensure_size(c.mask, keep_n);
      return nullptr;
    }
    ensure_size(c.mask, keep_n + N * heads_ * Tq_ * Tv_);
    uint8_t* allowed = c.mask.data() + keep_n;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < Tq_; ++i) {
        uint8_t* row = allowed + (n * heads_ * Tq_ + i) * Tv_;  // head 0's row i
        for (int64_t j = 0; j < Tv_; ++j)
          row[j] = (!has_mask_ || xs[3][(n * Tq_ + i) * Tv_ + j] != T(0)) && (!query || query[n * Tq_ + i]) &&
                   (!value || value[n * Tv_ + j]) && (!key || key[n * Tv_ + j]);
        for (int64_t h = 1; h < heads_; ++h) std::copy_n(row, Tv_, row + h * Tq_ * Tv_);
      }
    return reinterpret_cast<const bool*>(allowed);
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
  double rate_;    // dropout on the attention weights (training only)
  int64_t Tq_ = 0, Tv_ = 0, Dq_ = 0, Dk_ = 0, Dv_ = 0, Dout_ = 0;
  bool has_mask_ = false;
};

const LayerRegistration attention_kind(layer_kind<Attention>(
    "attention", {{"use_scale", false}, {"score_mode", "dot"}, {"dropout", 0.0}, {"use_causal_mask", false},
                  {"query_mask_input", false}, {"value_mask_input", false}}));
const LayerRegistration additive_attention_kind(layer_kind<AdditiveAttention>(
    "additive_attention", {{"use_scale", true}, {"dropout", 0.0}, {"use_causal_mask", false},
                           {"query_mask_input", false}, {"value_mask_input", false}}));
const LayerRegistration multi_head_attention_kind(layer_kind<MultiHeadAttention>(
    "multi_head_attention", {{"num_heads", 1}, {"key_dim", 1}, {"value_dim", 0}, {"dropout", 0.0},
                             {"use_bias", true}, {"output_shape", Ints{}}, {"use_causal_mask", false},
                             {"kernel_initializer", "glorot_uniform"}, {"bias_initializer", "zeros"},
                             {"initializer_stddev", 0.01}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
