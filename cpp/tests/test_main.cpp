#include <cstdio>

#include "check.hpp"

namespace corenn_test {
std::vector<Case>& registry() {
  static std::vector<Case> cases;
  return cases;
}
int failures = 0;
}  // namespace corenn_test

int main() {
  for (const auto& c : corenn_test::registry()) {
    const int before = corenn_test::failures;
    c.fn();
    std::printf("%s %s\n", corenn_test::failures == before ? "ok  " : "FAIL", c.name);
  }
  const size_t n = corenn_test::registry().size();
  std::printf("%zu tests, %d failed checks\n", n, corenn_test::failures);
  return corenn_test::failures == 0 ? 0 : 1;
}
