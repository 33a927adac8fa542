// Process-wide settings: one thread count for OpenMP and BLAS together.
#pragma once

namespace corenn {

// Sets the threads used by corenn's OpenMP loops and by OpenBLAS (n >= 1).
void set_num_threads(int n);
int get_num_threads();
// "scipy_openblas", "system" or "none" (the built-in fallback).
const char* blas_backend();

}  // namespace corenn
