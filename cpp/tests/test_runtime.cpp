// Process-wide runtime: a child fork()ed after corenn ran OpenMP threads runs
// single-threaded (runtime.cpp's at-fork handler) instead of waiting forever
// for libgomp's workers, which do not exist in the child.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/dropout.hpp"
#include "corenn/runtime.hpp"

using namespace corenn;
using corenn_test::bitwise_equal;
using corenn_test::random_vector;

TEST(forked_child_runs_single_threaded) {
  const int before = get_num_threads();
  const size_t n = 1 << 20;  // far above the grain: a parallel region runs
  const auto x = random_vector<float>(n, 3);
  std::vector<float> y0(n);
  std::vector<uint8_t> m0(n);
  set_num_threads(2);
  dropout_forward(y0.data(), m0.data(), x.data(), n, 0.3f, 9);  // libgomp's pool exists now
  CHECK(forked_child_threads() == 0);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(60);  // a hang fails the test instead of blocking ctest
    int bad = 0;
    bad |= get_num_threads() != 1;
    bad |= (forked_child_threads() != 2) << 1;
    try {
      set_num_threads(2);
      bad |= 4;
    } catch (const ValueError&) {
    }
    std::vector<float> y(n);
    std::vector<uint8_t> m(n);
    dropout_forward(y.data(), m.data(), x.data(), n, 0.3f, 9);
    bad |= (!bitwise_equal(y, y0) || !bitwise_equal(m, m0)) << 3;
    _exit(bad);
  }
  int status = 0;
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(get_num_threads() == 2);  // the parent keeps its threads
  set_num_threads(before);
}
