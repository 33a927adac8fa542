// Weights derived from a layer's weights for inference, kept across calls.
//
// Inference runs the same weights many times; what it computes from them
// alone is done once and kept until they change: batch norm folded into the
// convolution before it (model.cpp's fusion pass), a 3×3 convolution's
// Winograd-transformed filters (layers_conv.cpp), an LSTM's or GRU's W_hh
// packed into the recurrent kernels' panels (layers_recurrent.cpp). A key
// names what the data was computed from: the weights_version of each layer
// it reads (a wrapped layer's: its wrapper's, LayerCache::weights_version;
// Layer::weights_version, bumped by set_weights, a training step, a load,
// set_trainable, restore_state, ...), and the form asked for (the Winograd
// tile, which the conv algorithm setting and the batch choose per call). A
// different key recomputes. Training never asks (its weights change every step).
//
// Concurrent inference calls may ask at once: the data is computed under a
// lock, once, and each caller holds its own reference (a shared_ptr) for the
// length of its call, so a recomputation for another key (another tile, newer
// weights) never changes data a caller is reading.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace corenn {
namespace detail {

template <typename T>
class DerivedWeights {
 public:
  using Key = std::array<uint64_t, 4>;
  using Data = std::shared_ptr<const std::vector<T>>;

  DerivedWeights() = default;
  // Moved only while the engine builds its plan (no call in flight): the data goes along.
  DerivedWeights(DerivedWeights&& other) noexcept : key_(other.key_), data_(std::move(other.data_)) {}
  DerivedWeights& operator=(DerivedWeights&& other) noexcept {
    key_ = other.key_;
    data_ = std::move(other.data_);
    return *this;
  }

  // The data for key: kept, or made by make(std::vector<T>& out) now.
  template <typename Make>
  Data get(const Key& key, Make&& make) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!data_ || key != key_) {
      auto fresh = std::make_shared<std::vector<T>>();
      make(*fresh);
      data_ = std::move(fresh);
      key_ = key;
    }
    return data_;
  }

 private:
  std::mutex mutex_;
  Key key_{};
  Data data_;
};

}  // namespace detail
}  // namespace corenn
