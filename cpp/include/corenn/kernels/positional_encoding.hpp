// Sinusoidal positional encoding (Vaswani et al. 2017, "Attention is all you
// need", section 3.5; the course's PE(pos, 2i) = sin(pos / 10000^{2i/d}),
// PE(pos, 2i+1) = cos(pos / 10000^{2i/d})), a table of T positions by d features:
//   PE[t, 2i]     = sin(t · ω_i),   PE[t, 2i + 1] = cos(t · ω_i),
//   ω_i = max_wavelength^(−2i/d)    (max_wavelength = 10000 in the paper)
// Even features carry sines, odd features cosines of the same frequency
// (interleaved, as the paper and keras_hub's SinePositionEncoding); an odd d
// ends on a sine. Each position's encoding has wavelengths 2π to
// 2π·max_wavelength, so relative offsets are linear maps of it.
#pragma once

#include <cstdint>

namespace corenn {

// pe: (steps, depth) written; max_wavelength > 0 and finite.
template <typename T>
void positional_encoding(T* pe, int64_t steps, int64_t depth, double max_wavelength);
template <typename T>
void positional_encoding_naive(T* pe, int64_t steps, int64_t depth, double max_wavelength);

// ValueError naming `op` unless max_wavelength is finite and > 0.
void validate_positional_encoding(double max_wavelength, const char* op);

}  // namespace corenn
