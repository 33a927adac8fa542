// Counter-based random numbers. A value is a pure function of (key, index), so
// a kernel may fill any slice of a buffer from any thread and get the same
// numbers as a serial loop: results depend on the seed, never on the thread
// count. Keys come from one seedable generator (corenn::seed).
#pragma once

#include <cmath>
#include <cstdint>

namespace corenn {

// SplitMix64's finaliser: a bijective 64-bit mix with full avalanche.
inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline uint64_t random_bits(uint64_t key, uint64_t index) {
  return mix64(key ^ mix64(index));
}

// Uniform on [0, 1) with 53 random bits.
inline double uniform01(uint64_t key, uint64_t index) {
  return static_cast<double>(random_bits(key, index) >> 11) * 0x1.0p-53;
}

// Standard normal by Box-Muller over the pair (2i, 2i+1); 1 - u keeps log finite.
inline double standard_normal(uint64_t key, uint64_t index) {
  const double u1 = 1.0 - uniform01(key, 2 * index);
  const double u2 = uniform01(key, 2 * index + 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

// Seeds the global generator: initialisers, dropout masks and shuffling then
// draw the same keys in the same order, so a run repeats bitwise.
void seed(uint64_t s);
// A fresh key from the global generator (thread-safe).
uint64_t next_key();

}  // namespace corenn
