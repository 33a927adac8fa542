// Embedding: token ids (…) -> vectors (…, output_dim), a row of the table
// `embeddings` (input_dim, output_dim) per id (kernels/embedding.hpp).
#include <algorithm>
#include <string>

#include "corenn/error.hpp"
#include "corenn/kernels/embedding.hpp"
#include "corenn/kernels/init.hpp"
#include "engine/layers.hpp"
#include "engine/registry.hpp"

namespace corenn {
namespace detail {

namespace {

// The ids arrive as the model's float values (the engine has one dtype); the
// forward pass turns them into integers once, refusing any that is not a
// whole number in [0, input_dim), and keeps them for backward in cache.index.
// With mask_zero, id 0 is padding: the output carries a mask, one entry per
// id (ids (N, T) give the mask (N, T) of the sequence's steps), 0 where the
// id is 0 (Layer::output_mask), which the recurrent layers and the loss read;
// id 0 still has its row in the table (Keras's input_dim counts it).
template <typename T>
class Embedding : public Layer<T> {
 public:
  explicit Embedding(const LayerSpec& spec)
      : Layer<T>(spec),
        input_dim_(spec.get<int64_t>("input_dim")),
        output_dim_(spec.get<int64_t>("output_dim")),
        mask_zero_(spec.get<bool>("mask_zero")),
        init_(parse_initializer(spec.get<std::string>("embeddings_initializer"))),
        stddev_(spec.get<double>("initializer_stddev")) {
    if (input_dim_ < 1)
      throw ValueError(layer_label(spec) + ": input_dim must be >= 1, got " + std::to_string(input_dim_));
    if (output_dim_ < 1)
      throw ValueError(layer_label(spec) + ": output_dim must be >= 1, got " + std::to_string(output_dim_));
  }

  Shape build(const Shape& in) override {
    this->in_size_ = shape_size(in);
    this->out_size_ = this->in_size_ * output_dim_;
    Shape out = in;
    out.push_back(output_dim_);
    return out;
  }

  std::vector<Shape> parameter_shapes() const override { return {{input_dim_, output_dim_}}; }
  std::vector<std::string> parameter_names() const override { return {"embeddings"}; }

  // Keras's fans of a (input_dim, output_dim) matrix.
  void initialize(uint64_t key) override {
    corenn::initialize<T>(this->params_, input_dim_ * output_dim_, init_, input_dim_, output_dim_, stddev_, key);
  }

  const T* forward(const T* x, int64_t batch, bool, uint64_t, LayerCache<T>& c) const override {
    const int64_t n = batch * this->in_size_;
    ensure_size(c.index, n);
    embedding_ids<T>(c.index.data(), x, n, input_dim_, layer_label(this->spec_).c_str());
    ensure_size(c.out, n * output_dim_);
    embedding_forward<T>(c.out.data(), c.index.data(), this->params_, n, output_dim_);
    return c.out.data();
  }

  // 1 where the id is not 0, from the ids forward kept.
  const uint8_t* output_mask(size_t output, int64_t batch, LayerCache<T>& c) const override {
    if (!mask_zero_ || output != 0) return nullptr;
    const int64_t n = batch * this->in_size_;
    ensure_size(c.out_mask, n);
    for (int64_t i = 0; i < n; ++i) c.out_mask[i] = c.index[i] != 0;
    return c.out_mask.data();
  }

  // The output is piecewise constant in the id values: their gradient is 0.
  T* backward(T* dy, T* dx, const T*, const T*, int64_t batch, bool need_dx, LayerCache<T>& c) override {
    const int64_t n = batch * this->in_size_;
    embedding_backward<T>(this->grads_, dy, c.index.data(), n, output_dim_);
    if (!need_dx) return nullptr;
    std::fill(dx, dx + n, T(0));
    return dx;
  }

 private:
  int64_t input_dim_, output_dim_;
  bool mask_zero_;
  Init init_;
  double stddev_;
};

const LayerRegistration embedding_kind(layer_kind<Embedding>(
    "embedding", {{"input_dim", 0}, {"output_dim", 0}, {"mask_zero", false},
                  {"embeddings_initializer", "uniform"}, {"initializer_stddev", 0.01}}));

}  // namespace

}  // namespace detail
}  // namespace corenn
