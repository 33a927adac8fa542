// The recurrent layers (course 5, weeks 1–2): SimpleRNN, LSTM and GRU over a
// whole sequence, on the kernels of kernels/recurrent.cpp (PyTorch's layouts
// and gate order; formulas in corenn/kernels/recurrent.hpp).
//
// A call takes the sequence x (N, T, F) and, optionally, the initial states
// ([h] or, for the LSTM, [h, c], each (N, H); zeros when absent), and returns
// the last output h_T (N, H) or, with return_sequences, every output (N, T, H),
// followed, with return_state, by the final states. With go_backwards the
// sequence is read last step first and the returned sequence is in that
// (processing) order, as Keras's. dropout (training only) drops input units
// with ONE mask per sequence, reused at every step (Keras's): x is masked once,
// before the input projection of all steps; one mask serves all the gates.
// recurrent_dropout (training only) likewise drops units of h_{t-1} in the
// recurrent products with one mask m (N, H) per sequence, drawn per example
// and unit and shared by all the gates (Keras's non-cuDNN LSTM and GRU draw
// one per gate; one is Gal & Ghahramani's tied-weights variant): the kernels
// take m scaled by 1/(1 − rate) (recurrent.hpp). It is drawn from its own key,
// derived from the layer's, so it is independent of the input mask (and, in a
// Bidirectional, of the other direction's, which gets another layer key).
//
// Masks: the sequence's mask (cache.input_mask, from Embedding(mask_zero) or
// Masking) reaches the kernels, which skip masked steps keeping the state.
// With return_sequences the output keeps the mask (reversed with go_backwards,
// like the sequence); the last output and the states carry none.
//
// Weights in get_weights order: kernel = W_ih (G·H, F), recurrent_kernel =
// W_hh (G·H, H), bias (G·H,) (PyTorch's bias_ih + bias_hh; the GRU's bias is
// bias_ih and its recurrent_bias bias_hh), G = 1, 4 (i, f, g, o), 3 (r, z, n).
// Inference (predict, evaluate) keeps the LSTM's and GRU's W_hh packed into
// the kernels' panels until the weights change (pack_recurrent_panels,
// engine/derived_weights.hpp), saving the packing of every call: results are
// the same bit for bit.
#include <algorithm>
#include <cstdint>
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/bidirectional.hpp"
#include "corenn/kernels/dropout.hpp"
#include "corenn/kernels/init.hpp"
#include "corenn/kernels/recurrent.hpp"
#include "corenn/random.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

enum class Cell { simple_rnn, lstm, gru };

Cell cell_of(const std::string& kind) {
  if (kind == "lstm") return Cell::lstm;
  if (kind == "gru") return Cell::gru;
  return Cell::simple_rnn;
}

// The kernels implement only the course's (and PyTorch's) cell functions.
void require_function(const LayerSpec& spec, const char* attribute, const char* expected) {
  const std::string& got = spec.get<std::string>(attribute);
  if (got != expected)
    throw ValueError(layer_label(spec) + ": " + attribute + " must be '" + expected +
                     "' (the only one the recurrent kernels implement), got '" + got + "'");
}

template <typename T>
class Recurrent : public CallLayer<T> {
 public:
  explicit Recurrent(const LayerSpec& spec)
      : CallLayer<T>(spec),
        cell_(cell_of(spec.kind)),
        units_(spec.get<int64_t>("units")),
        use_bias_(spec.get<bool>("use_bias")),
        return_sequences_(spec.get<bool>("return_sequences")),
        return_state_(spec.get<bool>("return_state")),
        go_backwards_(spec.get<bool>("go_backwards")),
        unit_forget_bias_(cell_ == Cell::lstm && spec.get<bool>("unit_forget_bias")),
        kernel_init_(parse_initializer(spec.get<std::string>("kernel_initializer"))),
        recurrent_init_(parse_initializer(spec.get<std::string>("recurrent_initializer"))),
        stddev_(spec.get<double>("initializer_stddev")),
        dropout_(spec.get<double>("dropout")),
        recurrent_dropout_(spec.get<double>("recurrent_dropout")) {
    if (units_ < 1) throw ValueError(layer_label(spec) + ": units must be >= 1, got " + std::to_string(units_));
    if (!(dropout_ >= 0.0 && dropout_ < 1.0))
      throw ValueError(layer_label(spec) + ": dropout must be in [0, 1), got " + std::to_string(dropout_));
    if (!(recurrent_dropout_ >= 0.0 && recurrent_dropout_ < 1.0))
      throw ValueError(layer_label(spec) + ": recurrent_dropout must be in [0, 1), got " +
                       std::to_string(recurrent_dropout_));
    require_function(spec, "activation", "tanh");
    if (cell_ != Cell::simple_rnn) require_function(spec, "recurrent_activation", "sigmoid");
    gates_ = cell_ == Cell::lstm ? 4 : cell_ == Cell::gru ? 3 : 1;
    num_states_ = cell_ == Cell::lstm ? 2 : 1;
    zero_bias_.assign(static_cast<size_t>(2 * gates_ * units_), T(0));
  }

  std::vector<Shape> build_call(const std::vector<Shape>& in) override {
    const LayerSpec& spec = this->spec_;
    const std::string states = num_states_ == 2 ? "[h, c]" : "[h]";
    if (in.size() != 1 && in.size() != static_cast<size_t>(1 + num_states_))
      throw ValueError(layer_label(spec) + ": takes a sequence and optionally its initial_state " + states +
                       ", got " + std::to_string(in.size()) + " inputs");
    if (in[0].size() != 2)
      throw ShapeError(layer_label(spec) + ": expects a sequence (timesteps, features) per example, i.e. "
                       "batches (batch, timesteps, features), got " + shape_string(in[0]) + " per example");
    const int64_t H = units_;
    for (size_t k = 1; k < in.size(); ++k)
      if (in[k] != Shape{H})
        throw ShapeError(layer_label(spec) + ": initial_state " + std::to_string(k - 1) + " (" +
                         (k == 1 ? "h" : "c") + ") must have shape " + shape_string(Shape{H}) +
                         " per example (units), got " + shape_string(in[k]));
    steps_ = in[0][0];
    features_ = in[0][1];
    given_states_ = in.size() > 1;
    this->in_size_ = steps_ * features_;
    const Shape output = return_sequences_ ? Shape{steps_, H} : Shape{H};
    this->out_size_ = shape_size(output);
    std::vector<Shape> out{output};
    if (return_state_)
      for (int64_t s = 0; s < num_states_; ++s) out.push_back({H});
    return out;
  }

  std::vector<Shape> parameter_shapes() const override {
    const int64_t GH = gates_ * units_;
    std::vector<Shape> shapes{{GH, features_}, {GH, units_}};
    if (use_bias_) shapes.push_back({GH});
    if (use_bias_ && cell_ == Cell::gru) shapes.push_back({GH});
    return shapes;
  }
  std::vector<std::string> parameter_names() const override {
    std::vector<std::string> names{"kernel", "recurrent_kernel"};
    if (use_bias_) names.push_back("bias");
    if (use_bias_ && cell_ == Cell::gru) names.push_back("recurrent_bias");
    return names;
  }

  // Keras's defaults: glorot_uniform over W_ih (fan_in F, fan_out G·H), an
  // orthogonal W_hh, zero biases but the LSTM's forget gate (unit_forget_bias:
  // b_f = 1, so the cell remembers from the start; Jozefowicz et al. 2015).
  void initialize(uint64_t key) override {
    const int64_t GH = gates_ * units_, F = features_, H = units_;
    T* p = this->params_;
    corenn::initialize<T>(p, GH * F, kernel_init_, F, GH, stddev_, key);
    corenn::initialize<T>(p + GH * F, GH * H, recurrent_init_, H, GH, stddev_, random_bits(key, 1));
    if (!use_bias_) return;
    T* b = p + GH * (F + H);
    std::fill(b, b + (cell_ == Cell::gru ? 2 : 1) * GH, T(0));
    if (unit_forget_bias_) std::fill(b + H, b + 2 * H, T(1));
  }

  void forward_call(const std::vector<const T*>& xs, std::vector<const T*>& ys, int64_t batch, bool training,
                    uint64_t key, LayerCache<T>& c) const override {
    const int64_t N = batch, S = steps_, F = features_, H = units_;
    const T* x = xs[0];
    if (training && dropout_ > 0.0) {  // the masked x, then (go_backwards) reversed
      ensure_size(c.pre, N * S * F);
      ensure_size(c.mask, N * F);
      sequence_dropout_forward<T>(c.pre.data(), c.mask.data(), x, N, S, F, static_cast<T>(dropout_), key);
      x = c.pre.data();
    }
    if (go_backwards_) {
      ensure_size(c.mid, N * S * F);
      reverse_steps(c.mid.data(), x, N, S, F);
      x = c.mid.data();
      if (c.input_mask) {
        ensure_size(c.out_mask, N * S);
        reverse_steps(c.out_mask.data(), c.input_mask, N, S, 1);
      }
    }
    const uint8_t* mask = step_mask(c);
    const T* h0 = given_states_ ? xs[1] : nullptr;
    const T* c0 = given_states_ && cell_ == Cell::lstm ? xs[2] : nullptr;
    c.outs.resize(4);  // y, h_T, c_T, and the recurrent dropout mask m (N, H) for backward
    for (auto& buffer : c.outs) ensure_size(buffer, N * H);
    ensure_size(c.outs[0], N * S * H);
    T* y = c.outs[0].data();
    T* h_T = c.outs[1].data();
    T* c_T = c.outs[2].data();
    const T* rmask = nullptr;
    if (training && recurrent_dropout_ > 0.0) {  // m = dropout applied to ones: 0 or 1/(1 − rate)
      T* m = c.outs[3].data();
      ensure_size(c.mask, N * F + N * H);  // after the input mask's N·F units
      std::fill(m, m + N * H, T(1));
      dropout_forward<T>(m, c.mask.data() + N * F, m, N * H, static_cast<T>(recurrent_dropout_),
                         random_bits(key, kRecurrentMaskStream));
      rmask = m;
    }
    const T* W_ih = this->params_;
    const T* W_hh = W_ih + gates_ * H * F;
    // Inference keeps W_hh's panels across calls (DerivedWeights), for the
    // version of the weights (and where they are); training packs at every call.
    typename DerivedWeights<T>::Data panels;  // held for the call
    if (c.inference && cell_ != Cell::simple_rnn)
      panels = panels_.get({c.weights_version, 0, reinterpret_cast<uintptr_t>(W_hh), 0}, [&](std::vector<T>& p) {
        p.resize(static_cast<size_t>(recurrent_panels_size(gates_, H)));
        pack_recurrent_panels<T>(p.data(), W_hh, gates_, H);
      });
    switch (cell_) {
      case Cell::simple_rnn:
        simple_rnn_forward<T>(y, h_T, x, W_ih, W_hh, bias(), h0, mask, N, S, F, H, rmask);
        break;
      case Cell::lstm:
        ensure_size(c.scratch, lstm_workspace_size(N, S, H));
        if (panels)
          lstm_forward_packed<T>(y, h_T, c_T, c.scratch.data(), x, W_ih, panels->data(), bias(), h0, c0, mask, N,
                                 S, F, H, rmask);
        else
          lstm_forward<T>(y, h_T, c_T, c.scratch.data(), x, W_ih, W_hh, bias(), h0, c0, mask, N, S, F, H, rmask);
        break;
      case Cell::gru:
        ensure_size(c.scratch, gru_workspace_size(N, S, H));
        if (panels)
          gru_forward_packed<T>(y, h_T, c.scratch.data(), x, W_ih, panels->data(), bias(), bias() + gates_ * H, h0,
                                mask, N, S, F, H, rmask);
        else
          gru_forward<T>(y, h_T, c.scratch.data(), x, W_ih, W_hh, bias(), bias() + gates_ * H, h0, mask, N, S, F,
                         H, rmask);
        break;
    }
    ys[0] = return_sequences_ ? y : h_T;
    if (return_state_) {
      ys[1] = h_T;
      if (cell_ == Cell::lstm) ys[2] = c_T;
    }
  }

  // The kernels take dL/dy for every step and dL/d(final states): a returned
  // sequence's gradient is dy; a returned last output's enters with the
  // returned h's as dL/dh_T (over zeros for every step).
  void backward_call(const std::vector<T*>& dys, const std::vector<T*>& dxs, const std::vector<const T*>& xs,
                     const std::vector<const T*>&, int64_t batch, LayerCache<T>& c) override {
    const int64_t N = batch, S = steps_, F = features_, H = units_, GH = gates_ * units_;
    const int64_t scratch_size = cell_ == Cell::lstm  ? lstm_backward_scratch_size(N, S, H)
                                 : cell_ == Cell::gru ? gru_backward_scratch_size(N, S, H)
                                                      : simple_rnn_backward_scratch_size(N, S, H);
    ensure_size(c.grad_mid, N * S * H + N * S * F + 2 * N * H + 2 * GH + scratch_size);
    T* zeros = c.grad_mid.data();          // (N, T, H)
    T* dx_own = zeros + N * S * H;         // (N, T, F): reversed, or not wanted
    T* dstates_own = dx_own + N * S * F;   // dh0, dc0 not wanted
    T* dbias_own = dstates_own + 2 * N * H;  // use_bias=False: the kernels' bias gradients, dropped
    T* scratch = dbias_own + 2 * GH;

    T* dy_out = dys[0];
    T* dh_out = return_state_ ? dys[1] : nullptr;
    const T* dc_T = return_state_ && cell_ == Cell::lstm ? dys[2] : nullptr;
    const T* dy = return_sequences_ && dy_out ? dy_out : zeros;
    const T* dh_T = dh_out;
    if (!return_sequences_) {  // output 0 is h_T too: its gradient adds to the state's
      if (dy_out && dh_out)
        for (int64_t i = 0; i < N * H; ++i) dy_out[i] += dh_out[i];
      dh_T = dy_out ? dy_out : dh_out;
    }
    if (dy == zeros) std::fill(zeros, zeros + N * S * H, T(0));

    const bool dropped = c.training && dropout_ > 0.0;
    const T* x = go_backwards_ ? c.mid.data() : dropped ? c.pre.data() : xs[0];
    T* dx = go_backwards_ || dropped || !dxs[0] ? dx_own : dxs[0];
    const T* h0 = given_states_ ? xs[1] : nullptr;
    const T* c0 = given_states_ && cell_ == Cell::lstm ? xs[2] : nullptr;
    T* dh0 = given_states_ && dxs[1] ? dxs[1] : dstates_own;
    T* dc0 = given_states_ && cell_ == Cell::lstm && dxs[2] ? dxs[2] : dstates_own + N * H;

    const T* W_ih = this->params_;
    const T* W_hh = W_ih + GH * F;
    T* dW_ih = this->grads_;
    T* dW_hh = dW_ih + GH * F;
    T* db = use_bias_ ? dW_hh + GH * H : dbias_own;
    const T* y = c.outs[0].data();
    const uint8_t* mask = step_mask(c);
    const T* rmask = c.training && recurrent_dropout_ > 0.0 ? c.outs[3].data() : nullptr;
    switch (cell_) {
      case Cell::simple_rnn:
        simple_rnn_backward<T>(dx, dh0, dW_ih, dW_hh, db, scratch, dy, dh_T, x, W_ih, W_hh, h0, y, mask, N, S, F,
                               H, rmask);
        break;
      case Cell::lstm:
        lstm_backward<T>(dx, dh0, dc0, dW_ih, dW_hh, db, scratch, dy, dh_T, dc_T, x, W_ih, W_hh, h0, c0, y,
                         c.scratch.data(), mask, N, S, F, H, rmask);
        break;
      case Cell::gru:
        gru_backward<T>(dx, dh0, dW_ih, dW_hh, db, db + GH, scratch, dy, dh_T, x, W_ih, W_hh, h0, y,
                        c.scratch.data(), mask, N, S, F, H, rmask);
        break;
    }
    if (!dxs[0] || !(go_backwards_ || dropped)) return;
    // Back through the reversal, then through the mask (the masked x is no
    // longer needed: its buffer takes the reversed gradient).
    T* dx_time = go_backwards_ && dropped ? c.pre.data() : dxs[0];
    if (go_backwards_) reverse_steps(dx_time, dx_own, N, S, F);
    if (dropped)
      sequence_dropout_backward<T>(dxs[0], go_backwards_ ? dx_time : dx_own, c.mask.data(), N, S, F,
                                   static_cast<T>(dropout_));
  }

  int64_t multiply_adds() const override { return steps_ * gates_ * units_ * (features_ + units_); }

  const uint8_t* output_mask(size_t output, int64_t, LayerCache<T>& c) const override {
    return output == 0 && return_sequences_ ? step_mask(c) : nullptr;
  }

 private:
  // The mask in processing order (the sequence's, reversed with go_backwards), or nullptr.
  const uint8_t* step_mask(const LayerCache<T>& c) const {
    return go_backwards_ && c.input_mask ? c.out_mask.data() : c.input_mask;
  }

  // b, then the GRU's rb right after it; zeros without use_bias.
  const T* bias() const {
    return use_bias_ ? this->params_ + gates_ * units_ * (features_ + units_) : zero_bias_.data();
  }

  Cell cell_;
  int64_t units_;
  bool use_bias_, return_sequences_, return_state_, go_backwards_, unit_forget_bias_;
  Init kernel_init_, recurrent_init_;
  double stddev_;  // random_normal's, for either initialiser
  double dropout_;  // the drop probability of the input units
  double recurrent_dropout_;  // that of the units of h_{t-1} in the recurrent products
  // The recurrent mask's key is random_bits(layer key, this): an index no input unit reaches.
  static constexpr uint64_t kRecurrentMaskStream = ~uint64_t(0);
  int64_t gates_ = 1, num_states_ = 1;
  int64_t steps_ = 0, features_ = 0;
  bool given_states_ = false;
  std::vector<T> zero_bias_;
  mutable DerivedWeights<T> panels_;  // W_hh's forward panels, kept at inference
};

Attributes recurrent_attributes(bool gated) {
  Attributes a{{"units", 0},
               {"activation", "tanh"},
               {"use_bias", true},
               {"return_sequences", false},
               {"return_state", false},
               {"go_backwards", false},
               {"kernel_initializer", "glorot_uniform"},
               {"recurrent_initializer", "orthogonal"},
               {"initializer_stddev", 0.01},
               {"dropout", 0.0},
               {"recurrent_dropout", 0.0}};
  return gated ? joined(a, {{"recurrent_activation", "sigmoid"}}) : a;
}

const LayerRegistration simple_rnn_kind(layer_kind<Recurrent>("simple_rnn", recurrent_attributes(false)));
const LayerRegistration lstm_kind(layer_kind<Recurrent>("lstm", joined(recurrent_attributes(true),
                                                                       {{"unit_forget_bias", true}})));
const LayerRegistration gru_kind(layer_kind<Recurrent>("gru", recurrent_attributes(true)));

}  // namespace

}  // namespace detail
}  // namespace corenn
