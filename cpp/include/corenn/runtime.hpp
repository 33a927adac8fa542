// Process-wide settings: one thread count for OpenMP and BLAS together.
#pragma once

namespace corenn {

// Sets the threads used by corenn's OpenMP loops and by OpenBLAS (n >= 1).
// In a child process fork()ed from one that loaded corenn everything runs on
// one thread (libgomp's pool does not survive fork()): get_num_threads() is 1
// there and set_num_threads(n > 1) throws ValueError.
void set_num_threads(int n);
int get_num_threads();
// In such a forked child, the thread count the parent had (0 elsewhere).
int forked_child_threads();
// "scipy_openblas", "system" or "none" (the built-in fallback).
const char* blas_backend();
// The instruction set corenn's own loops run on, picked once when the library
// loads (runtime ISA dispatch, cpp/src/backend/simd.hpp): "x86-64-v4"
// (AVX-512), "x86-64-v3" (AVX2 + FMA) or "baseline" (the compiler's default
// target: SSE2 on x86-64; also any build without dispatch). BLAS picks its own.
const char* simd_isa();
// Whether this build has those clones at all (GCC >= 12, x86-64, glibc).
bool simd_dispatch();

}  // namespace corenn
