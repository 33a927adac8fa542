// Builds an MLP in C++, trains it on three interleaved spirals (not linearly
// separable) to at least 95% accuracy, and saves it: `train model.corenn`.
// The file loads in Python (cn.load_model) and in predict.cpp.
#include <cmath>
#include <cstdio>
#include <exception>

#include <corenn/corenn.hpp>

namespace {

constexpr int64_t kClasses = 3, kPerClass = 200, kExamples = kClasses * kPerClass;

// Class c's points lie on a spiral arm turned by 2πc/3, with a little noise.
void make_spirals(corenn::Tensor& x, corenn::Tensor& y) {
  for (int64_t i = 0; i < kExamples; ++i) {
    const int64_t c = i % kClasses;
    const double t = static_cast<double>(i / kClasses) / kPerClass;  // 0 .. 1 along the arm
    const double angle = 4.0 * t + 2.0943951023931953 * static_cast<double>(c) +
                         0.2 * (corenn::uniform01(7, static_cast<uint64_t>(i)) - 0.5);
    x.data()[2 * i] = static_cast<float>(t * std::cos(angle));
    x.data()[2 * i + 1] = static_cast<float>(t * std::sin(angle));
    y.data_as<int64_t>()[i] = c;
  }
}

corenn::LayerSpec dense(int64_t units, const char* activation) {
  return corenn::LayerSpec("dense")
      .set("units", units)
      .set("activation", activation)
      .set("kernel_initializer", "he_normal")
      .set("l2", 1e-4);  // keeps the logits moderate
}

double accuracy(const corenn::Model& model, const corenn::Tensor& x, const corenn::Tensor& y) {
  const corenn::Tensor logits = model.predict(x);
  int64_t right = 0;
  for (int64_t i = 0; i < kExamples; ++i) {
    const float* row = logits.data() + i * kClasses;
    int64_t best = 0;
    for (int64_t c = 1; c < kClasses; ++c) best = row[c] > row[best] ? c : best;
    right += best == y.data_as<int64_t>()[i];
  }
  return static_cast<double>(right) / kExamples;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT.corenn\n", argv[0]);
    return 2;
  }
  try {
    corenn::seed(0);
    corenn::Model model;  // float32
    model.add(dense(64, "relu"));
    model.add(dense(64, "relu"));
    model.add(dense(kClasses, "linear"));  // logits: the loss applies softmax
    model.build({2});
    corenn::OptimizerSpec adam;
    adam.kind = "adam";
    adam.adam.lr = 0.01;
    model.compile(corenn::LossKind::softmax_cross_entropy, adam);

    corenn::Tensor x({kExamples, 2});
    corenn::Tensor y({kExamples}, corenn::DType::int64);
    make_spirals(x, y);
    // Mini-batches of 60 over the (interleaved, so class-balanced) examples.
    constexpr int64_t kBatch = 60;
    double loss = 0.0;
    for (int epoch = 0; epoch < 150; ++epoch) {
      for (int64_t start = 0; start < kExamples; start += kBatch) {
        const corenn::Tensor xb = corenn::Tensor::view(x.data() + start * 2, {kBatch, 2});
        const corenn::Tensor yb = corenn::Tensor::view(y.data_as<int64_t>() + start, {kBatch});
        loss = model.train_step(xb, yb);
      }
    }
    const double acc = accuracy(model, x, y);
    std::printf("trained %lld steps: loss %.4f, accuracy %.3f\n", static_cast<long long>(model.steps()), loss, acc);
    if (acc < 0.95) {
      std::fprintf(stderr, "accuracy %.3f is below 0.95\n", acc);
      return 1;
    }
    model.save(argv[1]);
    std::printf("saved %s\n", argv[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train: %s\n", e.what());
    return 1;
  }
  return 0;
}
