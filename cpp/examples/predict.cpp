// Runs any model file on raw float32 input and writes raw float32 outputs:
//   predict MODEL INPUT.f32 OUTPUT.f32 [THREADS]
// INPUT holds N examples of the model's input shape, back to back; OUTPUT gets
// N rows of its output shape. The batch is split across THREADS std::threads
// that share the one model (predict is const and re-entrant).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include <corenn/corenn.hpp>

namespace {

std::vector<float> read_floats(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw corenn::IOError(std::string("cannot open ") + path);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() % sizeof(float) != 0)
    throw corenn::ValueError(std::string(path) + ": size is not a multiple of 4 bytes");
  std::vector<float> out(bytes.size() / sizeof(float));
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(out.data()));
  return out;
}

// x (n, *input_shape) float32 -> outputs in the model's dtype, as float32.
std::vector<float> predict_rows(const corenn::Model& model, float* x, int64_t n) {
  corenn::Shape shape{n};
  shape.insert(shape.end(), model.input_shape().begin(), model.input_shape().end());
  corenn::Tensor out;
  if (model.dtype() == corenn::DType::float32) {
    out = model.predict(corenn::Tensor::view(x, shape));
    return std::vector<float>(out.data(), out.data() + out.size());
  }
  corenn::Tensor x64(shape, corenn::DType::float64);
  for (int64_t i = 0; i < x64.size(); ++i) x64.data_as<double>()[i] = x[i];
  out = model.predict(x64);
  std::vector<float> result(static_cast<size_t>(out.size()));
  for (int64_t i = 0; i < out.size(); ++i) result[static_cast<size_t>(i)] = static_cast<float>(out.data_as<double>()[i]);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL INPUT.f32 OUTPUT.f32 [THREADS]\n", argv[0]);
    return 2;
  }
  try {
    const corenn::Model model = corenn::load_model(argv[1]);
    std::vector<float> x = read_floats(argv[2]);
    const int64_t per_example = corenn::shape_size(model.input_shape());
    if (x.empty() || static_cast<int64_t>(x.size()) % per_example != 0)
      throw corenn::ValueError(std::string(argv[2]) + ": " + std::to_string(x.size()) +
                               " floats are not a whole number of examples of shape " +
                               corenn::shape_string(model.input_shape()));
    const int64_t n = static_cast<int64_t>(x.size()) / per_example;
    const int64_t threads = std::max<int64_t>(1, std::min<int64_t>(n, argc == 5 ? std::atoi(argv[4]) : 1));

    std::vector<std::vector<float>> parts(static_cast<size_t>(threads));
    std::vector<std::exception_ptr> errors(static_cast<size_t>(threads));
    std::vector<std::thread> pool;
    for (int64_t t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const int64_t begin = n * t / threads, end = n * (t + 1) / threads;
        try {
          parts[static_cast<size_t>(t)] = predict_rows(model, x.data() + begin * per_example, end - begin);
        } catch (...) {
          errors[static_cast<size_t>(t)] = std::current_exception();
        }
      });
    for (auto& th : pool) th.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);

    std::ofstream out(argv[3], std::ios::binary | std::ios::trunc);
    for (const auto& part : parts)
      out.write(reinterpret_cast<const char*>(part.data()), static_cast<std::streamsize>(part.size() * sizeof(float)));
    if (!out.flush()) throw corenn::IOError(std::string("cannot write ") + argv[3]);
    std::printf("%lld examples of %s -> %s on %lld threads\n", static_cast<long long>(n),
                corenn::shape_string(model.input_shape()).c_str(), corenn::shape_string(model.output_shape()).c_str(),
                static_cast<long long>(threads));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predict: %s\n", e.what());
    return 1;
  }
  return 0;
}
