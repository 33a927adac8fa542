// Data parallelism without MPI: replicas are models in one process, and a fake
// reducer adds the other replica's arena as MPI_Allreduce would. Two replicas
// on shards of 3 and 5 examples must take the step one model takes on all 8
// (float64, so the only difference is the order of the sums).
#include <cmath>
#include <cstring>
#include <vector>

#include "check.hpp"
#include "corenn/model.hpp"
#include "corenn/random.hpp"

using namespace corenn;

namespace {

Model mlp(uint64_t seed_value) {
  seed(seed_value);
  Model m(DType::float64);
  m.add(LayerSpec("dense", "fc1").set("units", int64_t{5}).set("activation", "tanh"));
  m.add(LayerSpec("dense", "fc2").set("units", int64_t{3}));
  m.build({4});
  OptimizerSpec adam;
  adam.kind = "adam";
  adam.adam.lr = 0.05;
  m.compile(LossKind::softmax_cross_entropy, adam);
  return m;
}

// Rows [begin, end) of x (N, 4) and y (N,).
Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  Shape s = t.shape();
  const int64_t width = t.size() / s[0];
  s[0] = end - begin;
  Tensor out(s, t.dtype());
  const size_t count = static_cast<size_t>(out.size());
  if (t.dtype() == DType::int64)
    std::memcpy(out.data_as<int64_t>(), t.data_as<int64_t>() + begin * width, count * sizeof(int64_t));
  else
    std::memcpy(out.data_as<double>(), t.data_as<double>() + begin * width, count * sizeof(double));
  return out;
}

struct Batch {
  Tensor x{{8, 4}, DType::float64};
  Tensor y{{8}, DType::int64};
  explicit Batch(unsigned s) {
    const auto v = corenn_test::random_vector<double>(32, s);
    std::memcpy(x.data_as<double>(), v.data(), sizeof(double) * 32);
    for (int i = 0; i < 8; ++i) y.data_as<int64_t>()[i] = (i * 7 + static_cast<int>(s)) % 3;
  }
};

double max_abs_difference(const Tensor& a, const Tensor& b) {
  double d = 0.0;
  for (int64_t i = 0; i < a.size(); ++i) d = std::fmax(d, std::fabs(a.data_as<double>()[i] - b.data_as<double>()[i]));
  return d;
}

}  // namespace

TEST(data_parallel_split_step_on_uneven_shards_is_the_full_batch_step) {
  Model whole = mlp(3), r0 = mlp(3), r1 = mlp(3);
  for (unsigned s = 0; s < 4; ++s) {
    const Batch b(s);
    const double expected = whole.train_step(b.x, b.y);
    r0.compute_gradients({rows(b.x, 0, 3)}, {rows(b.y, 0, 3)});
    r1.compute_gradients({rows(b.x, 3, 8)}, {rows(b.y, 3, 8)});
    Tensor a0 = r0.gradient_arena(), a1 = r1.gradient_arena();
    CHECK(a0.size() == r0.count_params() + Model::kReductionSlots);
    for (int64_t i = 0; i < a0.size(); ++i) {  // the allreduce (sum), in place on both
      const double sum = a0.data_as<double>()[i] + a1.data_as<double>()[i];
      a0.data_as<double>()[i] = a1.data_as<double>()[i] = sum;
    }
    const int64_t n = r0.count_params();
    CHECK(a0.data_as<double>()[n + 1] == 8.0);
    CHECK_CLOSE(a0.data_as<double>()[n] / 8.0, expected, 1e-12);
    CHECK(r0.apply_gradients(1.0 / 8.0));
    CHECK(r1.apply_gradients(1.0 / 8.0));
  }
  CHECK(max_abs_difference(r0.get_parameters(), whole.get_parameters()) <= 1e-12);
  CHECK(max_abs_difference(r1.get_parameters(), r0.get_parameters()) == 0.0);
  CHECK(r0.steps() == 4 && whole.steps() == 4);
}

TEST(data_parallel_reducer_runs_between_backward_and_update) {
  Model whole = mlp(4), r0 = mlp(4), other = mlp(4);
  int calls = 0;
  Tensor remote;  // the other replica's summable arena for the current step
  r0.set_gradient_reducer([&](Tensor& arena) {
    ++calls;
    CHECK(arena.size() == remote.size());
    for (int64_t i = 0; i < arena.size(); ++i) arena.data_as<double>()[i] += remote.data_as<double>()[i];
  });
  for (unsigned s = 0; s < 3; ++s) {
    const Batch b(s + 10);
    other.set_parameters(r0.get_parameters());
    other.compute_gradients({rows(b.x, 2, 8)}, {rows(b.y, 2, 8)});
    remote = other.gradient_arena().clone();
    const double loss = r0.train_step(rows(b.x, 0, 2), rows(b.y, 0, 2));
    CHECK_CLOSE(loss, whole.train_step(b.x, b.y), 1e-12);  // the mean loss over both replicas
  }
  CHECK(calls == 3);
  CHECK(max_abs_difference(r0.get_parameters(), whole.get_parameters()) <= 1e-12);

  // loss_and_gradients reduces too: the mean gradient over both replicas.
  const Batch b(20);
  other.set_parameters(r0.get_parameters());
  other.compute_gradients({rows(b.x, 4, 8)}, {rows(b.y, 4, 8)});
  remote = other.gradient_arena().clone();
  Tensor reduced, full;
  r0.loss_and_gradients(rows(b.x, 0, 4), rows(b.y, 0, 4), &reduced);
  whole.loss_and_gradients(b.x, b.y, &full);
  CHECK(calls == 4);
  CHECK(max_abs_difference(reduced, full) <= 1e-12);

  // A reducer that throws (a failed collective) leaves the model as it was.
  r0.set_gradient_reducer([](Tensor&) { throw ValueError("collective failed"); });
  const Tensor before = r0.get_parameters();
  CHECK_THROWS(r0.train_step(b.x, b.y), ValueError);
  CHECK(max_abs_difference(before, r0.get_parameters()) == 0.0);
  // An empty reducer is the single-process step again.
  r0.set_gradient_reducer(nullptr);
  whole.set_parameters(r0.get_parameters());
  whole.set_optimizer_state(r0.get_optimizer_state());
  CHECK(r0.train_step(b.x, b.y) == whole.train_step(b.x, b.y));
  CHECK(max_abs_difference(r0.get_parameters(), whole.get_parameters()) == 0.0);
}

TEST(data_parallel_non_finite_reduced_gradients_skip_the_step_everywhere) {
  Model m = mlp(5);
  const Batch b(30);
  const Tensor before = m.get_parameters();
  m.compute_gradients({b.x}, {b.y});
  m.gradient_arena().data_as<double>()[0] = std::nan("");  // another replica's overflow
  CHECK(!m.apply_gradients(1.0 / 8.0));
  CHECK(m.steps() == 0);
  CHECK(max_abs_difference(before, m.get_parameters()) == 0.0);
  CHECK_THROWS(m.apply_gradients(-1.0), ValueError);
}
