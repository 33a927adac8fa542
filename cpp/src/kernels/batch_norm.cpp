#include "corenn/kernels/batch_norm.hpp"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"
#include "backend/simd.hpp"

namespace corenn {

// Layout. A channel's M = N·S values lie in N runs of S contiguous values, C·S
// apart. The fast kernels take one of two routes:
//   planes (S > 1): one channel at a time, channels split across threads; every
//     loop runs along a run of S values, which vectorises;
//   rows (S = 1, x is (N, C)): a channel is a strided column, so blocks of
//     kBlock adjacent channels are walked row by row instead and the loops run
//     along each row's kBlock contiguous values.
// Either way a channel is computed by the same serial loops whatever the split,
// so results are bitwise independent of the thread count.
//
// Passes. The training forward reads a channel three times (mean, centred sum
// of squares, y) and the training backward twice (both sums, then dx), each
// time right after the previous pass over the same channel: on the planes route
// the channel's slice is still in cache (the ResNet case, 32·32·32 floats, is
// 128 KiB), so memory traffic stays near one read of x and one write of y.
//
// Robust sums. The variance is the two-pass Σ(x − μ)² / M, never E[x²] − μ²
// (which cancels catastrophically when |μ| ≫ σ), and every sum accumulates in
// double: a float accumulator over M = 32768 values can lose 0.2% (M·2⁻²⁴) in the
// worst case. The double sum is split over kLanes independent accumulators,
// combined pairwise at the end: IEEE rules forbid the compiler to reorder one
// running sum, but kLanes separate ones are element-wise adds and vectorise.

namespace {

constexpr int kLanes = 8;
constexpr int64_t kBlock = 64;         // channels per block on the rows route

// Channels (planes route) or blocks (rows route) per chunk: ~kGrain values.
int64_t channel_grain(int64_t count) { return detail::grain_for(count); }
int64_t block_grain(int64_t batch) { return detail::grain_for(batch * kBlock); }

double combine(double* lane, double tail) {
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) lane[j] += lane[j + width];
  return lane[0] + tail;
}

// Σ term(k) over one channel: k = n·stride + s for its N runs of S values.
template <typename F>
double channel_sum(int64_t batch, int64_t spatial, int64_t stride, F term) {
  double lane[kLanes] = {};
  double tail = 0.0;
  for (int64_t n = 0; n < batch; ++n) {
    const int64_t base = n * stride;
    int64_t s = 0;
    for (; s + kLanes <= spatial; s += kLanes)
      for (int j = 0; j < kLanes; ++j) lane[j] += term(base + s + j);
    for (; s < spatial; ++s) tail += term(base + s);
  }
  return combine(lane, tail);
}

// Σ f(k) and Σ g(k) in the same pass (the backward's two sums read dy and x once).
template <typename F, typename G>
void channel_sum2(int64_t batch, int64_t spatial, int64_t stride, F f, G g, double& sum_f, double& sum_g) {
  double lane_f[kLanes] = {}, lane_g[kLanes] = {};
  double tail_f = 0.0, tail_g = 0.0;
  for (int64_t n = 0; n < batch; ++n) {
    const int64_t base = n * stride;
    int64_t s = 0;
    for (; s + kLanes <= spatial; s += kLanes)
      for (int j = 0; j < kLanes; ++j) {
        lane_f[j] += f(base + s + j);
        lane_g[j] += g(base + s + j);
      }
    for (; s < spatial; ++s) {
      tail_f += f(base + s);
      tail_g += g(base + s);
    }
  }
  sum_f = combine(lane_f, tail_f);
  sum_g = combine(lane_g, tail_g);
}

// A channel's normalisation reduced to y = (x − mean)·scale + shift.
template <typename T>
struct Affine {
  T mean, scale, shift;
};

template <typename T>
Affine<T> affine_of(int64_t c, double mean, double invstd, const T* gamma, const T* beta) {
  const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
  return {static_cast<T>(mean), static_cast<T>(g * invstd), beta ? beta[c] : T(0)};
}

// Saves μ and invstd of channel c, moves its running statistics, returns its affine map.
template <typename T>
Affine<T> finish_training_channel(int64_t c, double mean, double var, int64_t count, T* save_mean,
                                  T* save_invstd, T* running_mean, T* running_var, const T* gamma,
                                  const T* beta, double momentum, double eps) {
  const double invstd = 1.0 / std::sqrt(var + eps);
  save_mean[c] = static_cast<T>(mean);
  save_invstd[c] = static_cast<T>(invstd);
  if (running_mean)
    running_mean[c] = static_cast<T>((1.0 - momentum) * running_mean[c] + momentum * mean);
  // The unbiased variance needs two values; one value says nothing about spread.
  if (running_var && count > 1) {
    const double unbiased = var * static_cast<double>(count) / static_cast<double>(count - 1);
    running_var[c] = static_cast<T>((1.0 - momentum) * running_var[c] + momentum * unbiased);
  }
  return affine_of(c, mean, invstd, gamma, beta);
}

// max(v, 0) exactly as activation.hpp's ReLU writes it (NaN and −0 pass).
template <typename T>
inline T relu(T v) {
  return v < T(0) ? T(0) : v;
}

template <bool Relu, typename T>
void apply_plane(T* yc, const T* xc, Affine<T> a, int64_t batch, int64_t spatial, int64_t stride) {
  // yc, xc: channel c's N runs of S values, stride apart
  for (int64_t n = 0; n < batch; ++n) {
    T* yr = yc + n * stride;
    const T* xr = xc + n * stride;
    for (int64_t s = 0; s < spatial; ++s) {
      const T v = (xr[s] - a.mean) * a.scale + a.shift;
      yr[s] = Relu ? relu(v) : v;
    }
  }
}

// The rows route over blocks [c0, c0 + width) of at most kBlock channels.
template <typename Fn>
void for_each_block(int64_t batch, int64_t channels, Fn fn) {
  const int64_t blocks = (channels + kBlock - 1) / kBlock;
  detail::parallel_for(0, blocks, block_grain(batch), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t b = lo; b < hi; ++b) fn(b * kBlock, std::min(kBlock, channels - b * kBlock));
  });
}

template <bool Relu, typename T>
void apply_rows(T* y, const T* x, const T* mean, const T* scale, const T* shift, int64_t batch,
                int64_t channels, int64_t c0, int64_t width) {
  // y, x: (N, C); mean, scale, shift: (width,) for channels c0 …
  for (int64_t n = 0; n < batch; ++n) {
    T* yr = y + n * channels + c0;
    const T* xr = x + n * channels + c0;
    for (int64_t j = 0; j < width; ++j) {
      const T v = (xr[j] - mean[j]) * scale[j] + shift[j];
      yr[j] = Relu ? relu(v) : v;
    }
  }
}

// Row-route sums over a block: Σ f(n, j) into out[j], j < width.
template <typename F>
void block_sum(double* out, int64_t batch, int64_t width, F f) {
  std::fill(out, out + width, 0.0);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t j = 0; j < width; ++j) out[j] += f(n, j);
}

}  // namespace

// Written as "not (inside)" so that NaN, which fails every comparison, is rejected.
void validate_batch_norm(double momentum, double eps, const char* op) {
  const char* name = nullptr;
  const char* expected = nullptr;
  double value = 0.0;
  if (!(momentum >= 0.0 && momentum <= 1.0)) name = "momentum", expected = "in [0, 1]", value = momentum;
  else if (!(eps > 0.0 && std::isfinite(eps))) name = "eps", expected = "finite and > 0", value = eps;
  if (!name) return;
  std::ostringstream msg;
  msg << op << ": " << name << " must be " << expected << ", got " << value;
  throw ValueError(msg.str());
}

// ---------------------------------------------------------------- training

namespace {

// The training forward, with (Relu) or without a ReLU applied where y is written.
template <bool Relu, typename T>
void training_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var, const T* x,
                      const T* gamma, const T* beta, double momentum, double eps, int64_t batch,
                      int64_t channels, int64_t spatial) {
  // y, x: (N, C, S); save_mean, save_invstd, running_mean, running_var, gamma, beta: (C,)
  const int64_t count = batch * spatial;
  const double inv_count = 1.0 / static_cast<double>(count);
  if (spatial == 1) {
    for_each_block(batch, channels, [=](int64_t c0, int64_t width) {
      double mean[kBlock], sq[kBlock];
      T mean_t[kBlock], scale[kBlock], shift[kBlock];
      const T* xb = x + c0;
      block_sum(mean, batch, width,
                [=](int64_t n, int64_t j) { return static_cast<double>(xb[n * channels + j]); });
      for (int64_t j = 0; j < width; ++j) mean[j] *= inv_count;
      block_sum(sq, batch, width, [=, &mean](int64_t n, int64_t j) {
        const double d = static_cast<double>(xb[n * channels + j]) - mean[j];
        return d * d;
      });
      for (int64_t j = 0; j < width; ++j) {
        const Affine<T> a = finish_training_channel(c0 + j, mean[j], sq[j] * inv_count, count, save_mean,
                                                    save_invstd, running_mean, running_var, gamma, beta,
                                                    momentum, eps);
        mean_t[j] = a.mean, scale[j] = a.scale, shift[j] = a.shift;
      }
      apply_rows<Relu>(y, x, mean_t, scale, shift, batch, channels, c0, width);
    });
    return;
  }
  const int64_t stride = channels * spatial;
  detail::parallel_for(0, channels, channel_grain(count), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t c = lo; c < hi; ++c) {
      const T* xc = x + c * spatial;
      const double mean =
          channel_sum(batch, spatial, stride, [=](int64_t k) { return static_cast<double>(xc[k]); }) *
          inv_count;
      const double var = channel_sum(batch, spatial, stride, [=](int64_t k) {
                           const double d = static_cast<double>(xc[k]) - mean;
                           return d * d;
                         }) * inv_count;
      const Affine<T> a = finish_training_channel(c, mean, var, count, save_mean, save_invstd, running_mean,
                                                  running_var, gamma, beta, momentum, eps);
      apply_plane<Relu>(y + c * spatial, xc, a, batch, spatial, stride);
    }
  });
}

}  // namespace

template <typename T>
void batch_norm_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                        const T* x, const T* gamma, const T* beta, double momentum, double eps,
                        int64_t batch, int64_t channels, int64_t spatial) {
  training_forward<false>(y, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, momentum, eps,
                          batch, channels, spatial);
}

template <typename T>
void batch_norm_relu_forward(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, double momentum, double eps,
                             int64_t batch, int64_t channels, int64_t spatial) {
  training_forward<true>(y, save_mean, save_invstd, running_mean, running_var, x, gamma, beta, momentum, eps,
                         batch, channels, spatial);
}

// The oracle: the formulas of the header, one channel at a time, in double.
template <typename T>
void batch_norm_forward_naive(T* y, T* save_mean, T* save_invstd, T* running_mean,
                              T* running_var, const T* x, const T* gamma, const T* beta,
                              double momentum, double eps, int64_t batch, int64_t channels,
                              int64_t spatial) {
  // y, x: (N, C, S); save_mean, save_invstd, running_mean, running_var, gamma, beta: (C,)
  const int64_t M = batch * spatial;
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0.0;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) sum += x[(n * channels + c) * spatial + s];
    const double mean = sum / M;
    double sq = 0.0;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) {
        const double d = x[(n * channels + c) * spatial + s] - mean;
        sq += d * d;
      }
    const double var = sq / M;
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(1.0 / std::sqrt(var + eps));
    if (running_mean) running_mean[c] = static_cast<T>((1.0 - momentum) * running_mean[c] + momentum * mean);
    if (running_var && M > 1)
      running_var[c] = static_cast<T>((1.0 - momentum) * running_var[c] + momentum * var * M / (M - 1));
    const double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        y[i] = static_cast<T>(g * (x[i] - mean) / std::sqrt(var + eps) + b);
      }
  }
}

// dx = k·(dy − Σdy/M − (x − μ)·invstd²·Σdy(x − μ)/M), k = γ·invstd: the header's
// formula with x̂ expanded, so dx is one multiply-add chain per value.
namespace {

template <typename T>
void training_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* save_mean,
                       const T* save_invstd, const T* gamma, int64_t batch, int64_t channels, int64_t spatial) {
  // dx, dy, x: (N, C, S); dgamma, dbeta, save_mean, save_invstd, gamma: (C,)
  const int64_t count = batch * spatial;
  const double inv_count = 1.0 / static_cast<double>(count);
  if (spatial == 1) {
    for_each_block(batch, channels, [=](int64_t c0, int64_t width) {
      double sum_dy[kBlock], sum_dyx[kBlock];
      T mean_t[kBlock], scale[kBlock], shift[kBlock], k[kBlock];
      const T* xb = x + c0;
      const T* dyb = dy + c0;
      const T* mb = save_mean + c0;
      block_sum(sum_dy, batch, width,
                [=](int64_t n, int64_t j) { return static_cast<double>(dyb[n * channels + j]); });
      block_sum(sum_dyx, batch, width, [=](int64_t n, int64_t j) {
        return static_cast<double>(dyb[n * channels + j]) *
               (static_cast<double>(xb[n * channels + j]) - static_cast<double>(mb[j]));
      });
      for (int64_t j = 0; j < width; ++j) {
        const double invstd = save_invstd[c0 + j];
        if (dgamma) dgamma[c0 + j] += static_cast<T>(sum_dyx[j] * invstd);
        if (dbeta) dbeta[c0 + j] += static_cast<T>(sum_dy[j]);
        const double g = gamma ? static_cast<double>(gamma[c0 + j]) : 1.0;
        k[j] = static_cast<T>(g * invstd);
        mean_t[j] = mb[j];
        shift[j] = static_cast<T>(sum_dy[j] * inv_count);
        scale[j] = static_cast<T>(invstd * invstd * sum_dyx[j] * inv_count);
      }
      if (!dx) return;
      for (int64_t n = 0; n < batch; ++n) {
        T* dxr = dx + n * channels + c0;
        const T* xr = xb + n * channels;
        const T* dyr = dyb + n * channels;
        for (int64_t j = 0; j < width; ++j)
          dxr[j] = k[j] * (dyr[j] - shift[j] - (xr[j] - mean_t[j]) * scale[j]);
      }
    });
    return;
  }
  const int64_t stride = channels * spatial;
  detail::parallel_for(0, channels, channel_grain(count), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t c = lo; c < hi; ++c) {
      const T* xc = x + c * spatial;
      const T* dyc = dy + c * spatial;
      const T mean_t = save_mean[c];
      const double mean = mean_t, invstd = save_invstd[c];
      double sum_dy, sum_dyx;
      channel_sum2(
          batch, spatial, stride, [=](int64_t i) { return static_cast<double>(dyc[i]); },
          [=](int64_t i) { return static_cast<double>(dyc[i]) * (static_cast<double>(xc[i]) - mean); },
          sum_dy, sum_dyx);
      if (dgamma) dgamma[c] += static_cast<T>(sum_dyx * invstd);
      if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
      if (!dx) continue;
      const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
      const T k = static_cast<T>(g * invstd);
      const T mean_dy = static_cast<T>(sum_dy * inv_count);
      const T slope = static_cast<T>(invstd * invstd * sum_dyx * inv_count);
      for (int64_t n = 0; n < batch; ++n) {
        T* dxr = dx + c * spatial + n * stride;
        const T* dyr = dyc + n * stride;
        const T* xr = xc + n * stride;
        for (int64_t s = 0; s < spatial; ++s) dxr[s] = k * (dyr[s] - mean_dy - (xr[s] - mean_t) * slope);
      }
    }
  });
}

}  // namespace

template <typename T>
void batch_norm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* save_mean,
                         const T* save_invstd, const T* gamma, int64_t batch, int64_t channels,
                         int64_t spatial) {
  training_backward<T>(dx, dgamma, dbeta, dy, x, save_mean, save_invstd, gamma, batch, channels, spatial);
}

template <typename T>
void batch_norm_backward_naive(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x,
                               const T* save_mean, const T* save_invstd, const T* gamma,
                               int64_t batch, int64_t channels, int64_t spatial) {
  // dx, dy, x: (N, C, S); dgamma, dbeta, save_mean, save_invstd, gamma: (C,)
  const int64_t M = batch * spatial;
  for (int64_t c = 0; c < channels; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c], g = gamma ? gamma[c] : 1.0;
    double db = 0.0, dg = 0.0;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        db += dy[i];
        dg += dy[i] * (x[i] - mean) * invstd;
      }
    if (dgamma) dgamma[c] += static_cast<T>(dg);
    if (dbeta) dbeta[c] += static_cast<T>(db);
    if (!dx) continue;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        const double xhat = (x[i] - mean) * invstd;
        dx[i] = static_cast<T>(g * invstd / M * (M * dy[i] - db - xhat * dg));
      }
  }
}

// ---------------------------------------------------------------- inference

template <typename T>
void batch_norm_inference_forward(T* y, T* save_mean, T* save_invstd, const T* x,
                                  const T* running_mean, const T* running_var, const T* gamma,
                                  const T* beta, double eps, int64_t batch, int64_t channels,
                                  int64_t spatial) {
  // y, x: (N, C, S); save_mean, save_invstd, running_mean, running_var, gamma, beta: (C,)
  auto channel = [=](int64_t c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    save_mean[c] = running_mean[c];
    save_invstd[c] = static_cast<T>(invstd);
    return affine_of(c, static_cast<double>(running_mean[c]), invstd, gamma, beta);
  };
  if (spatial == 1) {
    for_each_block(batch, channels, [=](int64_t c0, int64_t width) {
      T mean_t[kBlock], scale[kBlock], shift[kBlock];
      for (int64_t j = 0; j < width; ++j) {
        const Affine<T> a = channel(c0 + j);
        mean_t[j] = a.mean, scale[j] = a.scale, shift[j] = a.shift;
      }
      apply_rows<false>(y, x, mean_t, scale, shift, batch, channels, c0, width);
    });
    return;
  }
  const int64_t stride = channels * spatial;
  detail::parallel_for(0, channels, channel_grain(batch * spatial), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t c = lo; c < hi; ++c)
      apply_plane<false>(y + c * spatial, x + c * spatial, channel(c), batch, spatial, stride);
  });
}

template <typename T>
void batch_norm_inference_forward_naive(T* y, T* save_mean, T* save_invstd, const T* x,
                                        const T* running_mean, const T* running_var,
                                        const T* gamma, const T* beta, double eps, int64_t batch,
                                        int64_t channels, int64_t spatial) {
  // y, x: (N, C, S); save_mean, save_invstd, running_mean, running_var, gamma, beta: (C,)
  for (int64_t c = 0; c < channels; ++c) {
    const double mean = running_mean[c], var = running_var[c];
    const double g = gamma ? gamma[c] : 1.0, b = beta ? beta[c] : 0.0;
    save_mean[c] = running_mean[c];
    save_invstd[c] = static_cast<T>(1.0 / std::sqrt(var + eps));
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        y[i] = static_cast<T>(g * (x[i] - mean) / std::sqrt(var + eps) + b);
      }
  }
}

template <typename T>
void batch_norm_inference_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x,
                                   const T* save_mean, const T* save_invstd, const T* gamma,
                                   int64_t batch, int64_t channels, int64_t spatial) {
  // dx, dy, x: (N, C, S); dgamma, dbeta, save_mean, save_invstd, gamma: (C,)
  const bool sums = dgamma || dbeta;
  auto slope = [=](int64_t c) {
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0;
    return static_cast<T>(g * static_cast<double>(save_invstd[c]));
  };
  if (spatial == 1) {
    for_each_block(batch, channels, [=](int64_t c0, int64_t width) {
      const T* xb = x + c0;
      const T* dyb = dy + c0;
      const T* mb = save_mean + c0;
      if (sums) {
        double sum_dy[kBlock], sum_dyx[kBlock];
        block_sum(sum_dy, batch, width,
                [=](int64_t n, int64_t j) { return static_cast<double>(dyb[n * channels + j]); });
        block_sum(sum_dyx, batch, width, [=](int64_t n, int64_t j) {
          return static_cast<double>(dyb[n * channels + j]) *
                 (static_cast<double>(xb[n * channels + j]) - static_cast<double>(mb[j]));
        });
        for (int64_t j = 0; j < width; ++j) {
          if (dgamma) dgamma[c0 + j] += static_cast<T>(sum_dyx[j] * static_cast<double>(save_invstd[c0 + j]));
          if (dbeta) dbeta[c0 + j] += static_cast<T>(sum_dy[j]);
        }
      }
      if (!dx) return;
      T k[kBlock];
      for (int64_t j = 0; j < width; ++j) k[j] = slope(c0 + j);
      for (int64_t n = 0; n < batch; ++n) {
        T* dxr = dx + n * channels + c0;
        const T* dyr = dyb + n * channels;
        for (int64_t j = 0; j < width; ++j) dxr[j] = dyr[j] * k[j];
      }
    });
    return;
  }
  const int64_t stride = channels * spatial;
  detail::parallel_for(0, channels, channel_grain(batch * spatial), [=](int64_t lo, int64_t hi, int) CORENN_SIMD_CLONES {
    for (int64_t c = lo; c < hi; ++c) {
      const T* xc = x + c * spatial;
      const T* dyc = dy + c * spatial;
      if (sums) {
        const double mean = save_mean[c];
        double sum_dy, sum_dyx;
        channel_sum2(
            batch, spatial, stride, [=](int64_t i) { return static_cast<double>(dyc[i]); },
            [=](int64_t i) { return static_cast<double>(dyc[i]) * (static_cast<double>(xc[i]) - mean); },
            sum_dy, sum_dyx);
        if (dgamma) dgamma[c] += static_cast<T>(sum_dyx * static_cast<double>(save_invstd[c]));
        if (dbeta) dbeta[c] += static_cast<T>(sum_dy);
      }
      if (!dx) continue;
      const T k = slope(c);
      for (int64_t n = 0; n < batch; ++n) {
        T* dxr = dx + c * spatial + n * stride;
        const T* dyr = dyc + n * stride;
        for (int64_t s = 0; s < spatial; ++s) dxr[s] = dyr[s] * k;
      }
    }
  });
}

template <typename T>
void batch_norm_inference_backward_naive(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x,
                                         const T* save_mean, const T* save_invstd,
                                         const T* gamma, int64_t batch, int64_t channels,
                                         int64_t spatial) {
  // dx, dy, x: (N, C, S); dgamma, dbeta, save_mean, save_invstd, gamma: (C,)
  for (int64_t c = 0; c < channels; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c], g = gamma ? gamma[c] : 1.0;
    double db = 0.0, dg = 0.0;
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t s = 0; s < spatial; ++s) {
        const int64_t i = (n * channels + c) * spatial + s;
        db += dy[i];
        dg += dy[i] * (x[i] - mean) * invstd;
        if (dx) dx[i] = static_cast<T>(dy[i] * g * invstd);
      }
    if (dgamma) dgamma[c] += static_cast<T>(dg);
    if (dbeta) dbeta[c] += static_cast<T>(db);
  }
}

// ---------------------------------------------------------------- folding

template <typename T>
void batch_norm_fold(T* kernel_out, T* bias_out, const T* kernel, const T* bias, int64_t K,
                     const T* running_mean, const T* running_var, const T* gamma, const T* beta,
                     double eps, int64_t channels) {
  // kernel_out, kernel: (C, K); bias_out, bias, running_mean, running_var, gamma, beta: (C,)
  for (int64_t c = 0; c < channels; ++c) {
    const double g = gamma ? static_cast<double>(gamma[c]) : 1.0, b = beta ? static_cast<double>(beta[c]) : 0.0;
    const double scale = g / std::sqrt(static_cast<double>(running_var[c]) + eps);
    const double shift = b - static_cast<double>(running_mean[c]) * scale;
    for (int64_t k = 0; k < K; ++k)
      kernel_out[c * K + k] = static_cast<T>(scale * static_cast<double>(kernel[c * K + k]));
    bias_out[c] = static_cast<T>(scale * (bias ? static_cast<double>(bias[c]) : 0.0) + shift);
  }
}

// ---------------------------------------------------------------- instantiations

#define CORENN_NORM_INSTANTIATE(T)                                                                 \
  template void batch_norm_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, double,    \
                                      double, int64_t, int64_t, int64_t);                          \
  template void batch_norm_forward_naive<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,      \
                                            double, double, int64_t, int64_t, int64_t);            \
  template void batch_norm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,         \
                                       const T*, int64_t, int64_t, int64_t);                       \
  template void batch_norm_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*, const T*,   \
                                             const T*, int64_t, int64_t, int64_t);                 \
  template void batch_norm_inference_forward<T>(T*, T*, T*, const T*, const T*, const T*,          \
                                                const T*, const T*, double, int64_t, int64_t,      \
                                                int64_t);                                          \
  template void batch_norm_inference_forward_naive<T>(T*, T*, T*, const T*, const T*, const T*,    \
                                                      const T*, const T*, double, int64_t,         \
                                                      int64_t, int64_t);                           \
  template void batch_norm_inference_backward<T>(T*, T*, T*, const T*, const T*, const T*,         \
                                                 const T*, const T*, int64_t, int64_t, int64_t);   \
  template void batch_norm_inference_backward_naive<T>(T*, T*, T*, const T*, const T*, const T*,   \
                                                       const T*, const T*, int64_t, int64_t,       \
                                                       int64_t);                                   \
  template void batch_norm_relu_forward<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*, double, \
                                           double, int64_t, int64_t, int64_t);                     \
  template void batch_norm_fold<T>(T*, T*, const T*, const T*, int64_t, const T*, const T*, const T*,  \
                                   const T*, double, int64_t);

CORENN_NORM_INSTANTIATE(float)
CORENN_NORM_INSTANTIATE(double)

#undef CORENN_NORM_INSTANTIATE

}  // namespace corenn
