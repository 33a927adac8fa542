// Runtime ISA dispatch for corenn's own loops (BLAS dispatches by itself).
//
// The library is compiled for baseline x86-64 so that one wheel runs on any
// x86-64 CPU. A function marked CORENN_SIMD_CLONES is compiled three times —
// AVX-512 (x86-64-v4), AVX2 + FMA (x86-64-v3) and baseline — and the loader
// picks the widest one the CPU supports, once, through an ifunc resolver.
// GCC clones the OpenMP regions outlined from such a function too; a lambda
// body is only widened where it is inlined into the marked function.
// Elsewhere (other compilers or CPUs) the macro is empty: baseline code.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    (__GNUC__ >= 12)
#define CORENN_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CORENN_SIMD_CLONES
#endif
