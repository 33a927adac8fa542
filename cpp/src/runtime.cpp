#include "corenn/runtime.hpp"

#include <mutex>
#include <string>

#include "corenn/error.hpp"
#include "corenn/random.hpp"
#include "gemm.hpp"
#include "parallel.hpp"

namespace corenn {

namespace {
// Set once when the library loads, before any BLAS call.
struct SingleThreadedBlas {
  SingleThreadedBlas() { detail::blas_set_num_threads(1); }
} g_single_threaded_blas;

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
  detail::omp_set_threads(n);
}

// The thread count applies to OpenMP, the one thread pool: gemm.cpp splits
// each matrix product across it and calls BLAS single-threaded per panel.
// Read live, so a limit set through OpenMP itself (threadpoolctl's
// user_api="openmp", omp_set_num_threads) shows too.
int get_num_threads() { return detail::omp_max_threads(); }

const char* blas_backend() { return detail::blas_backend(); }

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
