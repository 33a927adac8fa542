// Sinusoidal positional encoding: see corenn/kernels/positional_encoding.hpp.
//
// The fast kernel forms each frequency once (d/2 exponentials instead of T·d
// powers) and splits the positions across threads; angles and sines are taken
// in double whatever T is, so float32 rows far down a long sequence keep their
// phase. The naive one evaluates the formula entry by entry.
#include "corenn/kernels/positional_encoding.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

namespace corenn {

void validate_positional_encoding(double max_wavelength, const char* op) {
  // Written as "not (inside)" so that NaN, which fails every comparison, is rejected.
  if (max_wavelength > 0.0 && std::isfinite(max_wavelength)) return;
  std::ostringstream msg;
  msg << op << ": max_wavelength must be finite and > 0, got " << max_wavelength;
  throw ValueError(msg.str());
}

template <typename T>
void positional_encoding(T* pe, int64_t steps, int64_t depth, double max_wavelength) {
  // pe: (steps, depth)
  std::vector<double> omega(static_cast<size_t>((depth + 1) / 2));
  const double log_base = std::log(max_wavelength);
  for (int64_t i = 0; i < static_cast<int64_t>(omega.size()); ++i)
    omega[i] = std::exp(-log_base * static_cast<double>(2 * i) / static_cast<double>(depth));
  const double* w = omega.data();
  detail::parallel_for(0, steps, detail::grain_for(detail::kTranscendentalWork * std::max<int64_t>(depth, 1)),
                       [=](int64_t lo, int64_t hi, int) {
                         for (int64_t t = lo; t < hi; ++t)
                           for (int64_t c = 0; c < depth; ++c) {
                             const double angle = static_cast<double>(t) * w[c / 2];
                             pe[t * depth + c] = static_cast<T>(c % 2 == 0 ? std::sin(angle) : std::cos(angle));
                           }
                       });
}

template <typename T>
void positional_encoding_naive(T* pe, int64_t steps, int64_t depth, double max_wavelength) {
  // pe: (steps, depth)
  for (int64_t t = 0; t < steps; ++t)
    for (int64_t c = 0; c < depth; ++c) {
      const int64_t i = c / 2;
      const double angle = static_cast<double>(t) / std::pow(max_wavelength, static_cast<double>(2 * i) / depth);
      pe[t * depth + c] = static_cast<T>(c % 2 == 0 ? std::sin(angle) : std::cos(angle));
    }
}

template void positional_encoding<float>(float*, int64_t, int64_t, double);
template void positional_encoding<double>(double*, int64_t, int64_t, double);
template void positional_encoding_naive<float>(float*, int64_t, int64_t, double);
template void positional_encoding_naive<double>(double*, int64_t, int64_t, double);

}  // namespace corenn
