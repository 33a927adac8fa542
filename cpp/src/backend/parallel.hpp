// The one door to OpenMP: no other file includes <omp.h>.
//
// parallel_for splits [begin, end) into at most one contiguous chunk per
// thread, by a fixed formula of (size, thread count) alone, so the same
// thread count always gives the same split and any per-chunk partial sums
// combine in the same order: results are bitwise reproducible. Work below
// `grain` items, or a call from inside a parallel region, runs serially on the
// calling thread (an OpenMP fork/join costs microseconds, and nested regions
// would oversubscribe the cores).
#pragma once

#include <algorithm>
#include <atomic>
#include <vector>
#include <cstdint>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace corenn {
namespace detail {

// Set in a child process fork()ed from one that loaded corenn (runtime.cpp's
// at-fork handler). libgomp's worker threads do not exist in the child, and
// the first parallel region would wait for them forever, so every loop runs
// on the calling thread there.
inline std::atomic<bool> forked_child{false};

inline int omp_max_threads() {
  if (forked_child.load(std::memory_order_relaxed)) return 1;
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline void omp_set_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

inline bool in_parallel_region() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// The grain: how much work a chunk of a parallel loop must hold before
// another thread pays for itself. Waking OpenMP's team and joining it costs a
// few microseconds (2-5 µs for 2-8 threads, more on a busy machine); 32768
// simple element operations (a copy, an add, a multiply-add, a compare: memory
// bound at about 0.3-1 ns each) take 10-30 µs, several times that, so a
// second thread shortens the loop instead of lengthening it. Below it a loop
// runs on the calling thread. The kernels' former per-file values (8k to 64k)
// were all this argument with different unit costs; grain_for carries the cost.
inline constexpr int64_t kGrain = 32768;

// An exp, log, tanh, sqrt-and-divide or normal draw costs about this many
// simple operations (4-20 ns against ~1 ns): element loops that do one per
// element use grain_for(kTranscendentalWork), a quarter of kGrain elements.
inline constexpr int64_t kTranscendentalWork = 4;

// The grain of a loop whose items (an element, a row, a plane) each cost
// about `work` simple operations: kGrain of work per chunk, at least one item.
inline int64_t grain_for(int64_t work) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, work)); }

// Number of chunks parallel_for will use for n items: the size the caller
// needs for per-chunk scratch (partial sums) before the call.
inline int parallel_chunks(int64_t n, int64_t grain) {
  if (n <= 0) return 1;
  if (in_parallel_region()) return 1;
  int64_t by_grain = (n + std::max<int64_t>(grain, 1) - 1) / std::max<int64_t>(grain, 1);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(omp_max_threads(), by_grain)));
}

// fn(chunk_begin, chunk_end, chunk_index) over a static split of [begin, end).
// Threads take chunks round-robin, so every chunk runs even when OpenMP grants
// a smaller team than asked for (OMP_DYNAMIC, thread limits).
template <typename Fn>
void parallel_for(int64_t begin, int64_t end, int64_t grain, Fn&& fn) {
  const int64_t n = end - begin;
  if (n <= 0) return;
  const int chunks = parallel_chunks(n, grain);
  if (chunks == 1) {
    fn(begin, end, 0);
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(chunks)
  {
    const int team = omp_get_num_threads();
    for (int c = omp_get_thread_num(); c < chunks; c += team) {
      const int64_t lo = begin + n * c / chunks;
      const int64_t hi = begin + n * (c + 1) / chunks;
      fn(lo, hi, c);
    }
  }
#else
  for (int c = 0; c < chunks; ++c) fn(begin + n * c / chunks, begin + n * (c + 1) / chunks, c);
#endif
}

// A team of threads held together around a loop whose iterations depend on
// each other (the time steps of a recurrence), for work too small for a
// fork/join per iteration: fn(team) runs once on each member, and
// team.barrier() between two iterations makes what every member wrote before
// it visible to all after it (OpenMP's barrier flushes memory). A member takes
// its share of the work by team.share, the formula of parallel_for, from its
// rank and the team's size, which OpenMP may make smaller than asked for
// (OMP_DYNAMIC, thread limits): the caller's results must not depend on which
// member computes an item, only on the item. With one thread, or from inside a
// parallel region, fn runs on the calling thread as a team of one.
class Team {
 public:
  Team(int rank, int size) : rank_(rank), size_(size) {}
  int rank() const { return rank_; }
  int size() const { return size_; }
  // This member's contiguous part of [begin, end).
  std::pair<int64_t, int64_t> share(int64_t begin, int64_t end) const {
    const int64_t n = end - begin;
    return {begin + n * rank_ / size_, begin + n * (rank_ + 1) / size_};
  }
  void barrier() const {
#ifdef _OPENMP
    if (size_ > 1) {
#pragma omp barrier
    }
#endif
  }

 private:
  int rank_, size_;
};

// Runs fn(team) on a team of `threads` (see Team); callers size it with
// parallel_chunks, so a call from inside a parallel region asks for one.
template <typename Fn>
void parallel_team(int threads, Fn&& fn) {
  if (threads <= 1 || in_parallel_region() || omp_max_threads() <= 1) {
    fn(Team(0, 1));
    return;
  }
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  fn(Team(omp_get_thread_num(), omp_get_num_threads()));
#endif
}

// Σ body(lo, hi) over the static split of [0, n), the per-chunk partials added
// in chunk order: the same thread count always gives the same bits. The one
// allocation (a slot per chunk) is made before the parallel region.
template <typename Body>
double parallel_sum(int64_t n, int64_t grain, Body&& body) {
  std::vector<double> partial(static_cast<size_t>(parallel_chunks(n, grain)), 0.0);
  parallel_for(0, n, grain, [&](int64_t lo, int64_t hi, int c) { partial[c] = body(lo, hi); });
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace detail
}  // namespace corenn
