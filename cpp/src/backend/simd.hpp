// Runtime ISA dispatch for corenn's own loops (BLAS dispatches by itself).
//
// The library is compiled for baseline x86-64 so that one wheel runs on any
// x86-64 CPU. A function marked CORENN_SIMD_CLONES is compiled three times —
// AVX-512 (x86-64-v4), AVX2 + FMA (x86-64-v3) and baseline — and the dynamic
// loader picks the widest one the CPU supports, once, through an ifunc
// resolver (corenn::simd_isa() names the pick).
//
// Where the mark goes. Code is widened only inside a marked function: an
// OpenMP region outlined from it is cloned too, but a lambda handed to
// detail::parallel_for is inlined into parallel_for's own outlined region,
// which is not marked. So the hot loop of a parallel kernel is itself a
// marked function, or the lambda is marked:
//   detail::parallel_for(0, n, grain, [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES { ... });
// A helper the marked function calls (channel_sum, a pooling plane) is only
// widened where it is inlined, and GCC's inliner declines helpers called from
// three clones: `flatten` inlines every call in the marked body (all but
// library calls such as memcpy or expf), so the whole loop nest is widened.
// `objdump -d -C libcorenn.so` lists the clones as "[clone .arch_x86_64_v4]".
//
// Same bits on every CPU. The build contracts no a·b + c into an FMA
// (-ffp-contract=off, CMakeLists.txt) and reorders no floating-point sum (no
// -ffast-math): a clone computes each value with the same IEEE operations in
// the same order as the baseline, only more of them per instruction: results
// do not depend on the
// ISA picked (the parity tests compare the picked clone with the baseline
// `_naive` oracles; docs/performance-notes.md has the cross-build check).
//
// Elsewhere the macro is empty and the baseline code runs: other compilers,
// other CPUs, and C libraries without ifunc (musl), which would fail to load
// the library.
#pragma once

#include <climits>  // defines __GLIBC__ on glibc, where ifunc exists

#if defined(__GNUC__) && !defined(__clang__) && (__GNUC__ >= 12) && defined(__x86_64__) && \
    defined(__linux__) && defined(__GLIBC__)
#define CORENN_SIMD_DISPATCH 1
#define CORENN_SIMD_CLONES \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#else
#define CORENN_SIMD_DISPATCH 0
#define CORENN_SIMD_CLONES
#endif

namespace corenn {
namespace detail {

// GCC's vector of L elements of type E, for a loop that widens a fixed-size
// block by hand (short rows, where the auto-vectoriser's set-up costs more
// than the work); inside a marked function it is compiled for each ISA.
template <typename E, int L>
struct Vector {
  typedef E type __attribute__((vector_size(L * sizeof(E))));
};

}  // namespace detail
}  // namespace corenn
