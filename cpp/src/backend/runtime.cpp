#include "corenn/runtime.hpp"

#include <pthread.h>

#include <mutex>
#include <string>

#include "corenn/error.hpp"
#include "corenn/random.hpp"
#include "backend/gemm.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

namespace {
// Set once when the library loads, before any BLAS call.
struct SingleThreadedBlas {
  SingleThreadedBlas() { detail::blas_set_num_threads(1); }
} g_single_threaded_blas;

// fork() copies only the calling thread: libgomp's pool is gone in the child,
// and its first parallel region would hang. The child handler (run inside
// fork(), before anything else in the child) makes every corenn loop run on
// the calling thread, and remembers the thread count it replaces so the
// Python bindings can say so once (forked_child_threads).
int g_threads_before_fork = 0;

void after_fork_in_child() {
  if (!detail::forked_child.load(std::memory_order_relaxed))
    g_threads_before_fork = detail::omp_max_threads();
  detail::forked_child.store(true, std::memory_order_relaxed);
}

struct ForkHandler {
  ForkHandler() { pthread_atfork(nullptr, nullptr, &after_fork_in_child); }
} g_fork_handler;

struct GlobalGenerator {
  std::mutex lock;
  uint64_t seed = 0;
  uint64_t counter = 0;
};
GlobalGenerator& generator() {
  static GlobalGenerator g;
  return g;
}
}  // namespace

void set_num_threads(int n) {
  if (n < 1)
    throw ValueError("set_num_threads: n must be >= 1, got " + std::to_string(n));
  if (n > 1 && detail::forked_child.load(std::memory_order_relaxed))
    throw ValueError("set_num_threads: n must be 1 in a process forked from one that loaded corenn "
                     "(OpenMP's threads do not survive fork()), got " + std::to_string(n) +
                     "; start worker processes with the 'spawn' start method to use threads");
  detail::omp_set_threads(n);
}

// The thread count applies to OpenMP, the one thread pool: gemm.cpp splits
// each matrix product across it and calls BLAS single-threaded per panel.
// Read live, so a limit set through OpenMP itself (threadpoolctl's
// user_api="openmp", omp_set_num_threads) shows too; a forked child runs on one.
int get_num_threads() {
  if (detail::forked_child.load(std::memory_order_relaxed)) return 1;
  return detail::omp_max_threads();
}

int forked_child_threads() {
  return detail::forked_child.load(std::memory_order_relaxed) ? g_threads_before_fork : 0;
}

const char* blas_backend() { return detail::blas_backend(); }

// Three versions of one function, picked by the same ifunc resolver (the same
// CPU tests, in the same order) as every CORENN_SIMD_CLONES function: the name
// it returns is the clone that runs. Internal, so that every call goes
// through the resolver (a caller in another file would bind to the default).
#if CORENN_SIMD_DISPATCH
namespace {
__attribute__((target("arch=x86-64-v4"))) const char* picked_isa() { return "x86-64-v4"; }
__attribute__((target("arch=x86-64-v3"))) const char* picked_isa() { return "x86-64-v3"; }
__attribute__((target("default"))) const char* picked_isa() { return "baseline"; }
}  // namespace
const char* simd_isa() { return picked_isa(); }
#else
const char* simd_isa() { return "baseline"; }
#endif

bool simd_dispatch() { return CORENN_SIMD_DISPATCH; }

void seed(uint64_t s) {
  auto& g = generator();
  std::lock_guard<std::mutex> hold(g.lock);
  g.seed = s;
  g.counter = 0;
}

uint64_t next_key() {
  auto& g = generator();
  std::lock_guard<std::mutex> hold(g.lock);
  return random_bits(mix64(g.seed), g.counter++);
}

}  // namespace corenn
