// Model files: one self-describing file per model, read and written by C++ and
// Python alike. Layout (safetensors): an 8-byte little-endian header length, a
// JSON header mapping tensor names ("dense_1/kernel") to dtype, shape and byte
// range, and the raw little-endian tensor bytes. The header's __metadata__ holds
// the format name ("corenn"), its version and the architecture as JSON; with
// the optimizer saved, also the loss, optimizer and its state. Model::save
// writes it (model.hpp).
#pragma once

#include <map>
#include <string>

#include "corenn/model.hpp"

namespace corenn {

// The version this library writes; it reads this one and all older ones.
// 1: one input, layers naming their inputs; 2: graphs (several inputs and
// outputs, a layer called several times), one loss per output.
constexpr int model_file_version = 2;

// Rebuilds a model from a file: architecture, weights, batch norm state and,
// when saved, the compiled loss and optimizer with their state. IOError when
// the file cannot be read; ValueError (naming the file) when it is damaged,
// truncated, foreign, from a newer format version, or names an unknown layer.
// metadata, when given, receives every __metadata__ entry.
Model load_model(const std::string& path);
Model load_model(const std::string& path, std::map<std::string, std::string>* metadata);

}  // namespace corenn
