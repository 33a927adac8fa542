// Weight initialisers (course 1 week 4 and course 2 week 1):
//   zeros, ones
//   random_normal   N(0, stddev²)                  the course's randn · 0.01 by default
//   uniform         U(±0.05)                       Keras's "uniform" (Embedding's default)
//   he_normal       N(0, 2 / fan_in)               he_uniform     U(±√(6 / fan_in))
//   glorot_normal   N(0, 2 / (fan_in + fan_out))   glorot_uniform U(±√(6 / (fan_in + fan_out)))
//   orthogonal      w viewed as (n / fan_in, fan_in): orthonormal columns (rows if fewer
//                   rows than columns), from Gram–Schmidt on a normal matrix (Saxe et al.
//                   2014; Keras's Orthogonal: QR with R's diagonal made positive)
// Values are a function of (key, index) only (see random.hpp).
#pragma once

#include <cstdint>
#include <string>

namespace corenn {

enum class Init { zeros, ones, random_normal, uniform, he_normal, he_uniform, glorot_normal, glorot_uniform,
                  orthogonal };

// Throws ValueError naming the valid initialisers.
Init parse_initializer(const std::string& name);
const char* initializer_name(Init kind);

// w: (n,) written. stddev is used by random_normal only.
template <typename T>
void initialize(T* w, int64_t n, Init kind, int64_t fan_in, int64_t fan_out, double stddev,
                uint64_t key);

}  // namespace corenn
