#include "corenn/kernels/detection_losses.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "corenn/error.hpp"
#include "backend/parallel.hpp"

namespace corenn {

namespace {

// Below this many elements a fork/join costs more than the work it splits.
constexpr int64_t kGrain = 16384;

inline int64_t row_grain(int64_t cols) {
  return std::max<int64_t>(1, kGrain / std::max<int64_t>(cols, 1));
}

// σ(z) and log(1 + e^z) from e^{−|z|} ∈ (0, 1]: neither overflows.
inline double sigmoid(double z) {
  const double e = std::exp(-std::fabs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}
inline double softplus(double z) { return std::max(z, 0.0) + std::log1p(std::exp(-std::fabs(z))); }

// BCE(z, t) = softplus(z) − t·z on a logit; its derivative is σ(z) − t.
inline double bce(double z, double t) { return softplus(z) - t * z; }

// A prediction the target masks out (a box or class field where there is no
// object, an ignored objectness) counts as 0·term, PyTorch's `mask * loss`
// arrangement: 0 for a finite value, NaN for a NaN or ±inf one (0·NaN =
// 0·inf = NaN), in the loss and in that entry's gradient alike. So a NaN
// output makes the loss NaN wherever it is, as in every other corenn loss,
// instead of vanishing unseen behind the mask.
inline double masked_out(double p) { return std::isfinite(p) ? 0.0 : std::nan(""); }

// −Σ_c t_c·log softmax(z)_c over k logits read with a stride; writes
// d/dz_c = (Σt)·softmax(z)_c − t_c to g (same stride) when g is not nullptr.
template <typename T>
double soft_cross_entropy(T* g, const T* z, const T* t, int64_t k, int64_t stride, double scale) {
  double m = z[0];
  for (int64_t c = 1; c < k; ++c) m = std::max(m, static_cast<double>(z[c * stride]));
  double sum = 0, tsum = 0, tz = 0;
  for (int64_t c = 0; c < k; ++c) {
    sum += std::exp(z[c * stride] - m);
    tsum += t[c * stride];
    tz += static_cast<double>(t[c * stride]) * (z[c * stride] - m);
  }
  if (g)
    for (int64_t c = 0; c < k; ++c)
      g[c * stride] =
          static_cast<T>(scale * (tsum * std::exp(z[c * stride] - m) / sum - t[c * stride]));
  return tsum * std::log(sum) - tz;
}

// IoU of two boxes given as centre and size (pixels); 0 for an empty union.
// An infinite size (exp of a large logit) gives a finite intersection over an
// infinite union: 0, not NaN.
inline double iou_cxcywh(const double* a, const double* b) {
  const double iw = std::min(a[0] + a[2] / 2, b[0] + b[2] / 2) - std::max(a[0] - a[2] / 2, b[0] - b[2] / 2);
  const double ih = std::min(a[1] + a[3] / 2, b[1] + b[3] / 2) - std::max(a[1] - a[3] / 2, b[1] - b[3] / 2);
  const double inter = std::max(iw, 0.0) * std::max(ih, 0.0);
  const double uni = a[2] * a[3] + b[2] * b[3] - inter;
  return uni > 0 ? std::min(inter / uni, 1.0) : 0.0;
}

// Geometry of one image's grid: the pixel box of field values at a cell.
struct Grid {
  const YoloLossOptions& o;
  int64_t depth() const { return 5 + o.classes; }
  int64_t plane() const { return o.grid * o.grid; }
  int64_t image_size() const { return o.anchors * depth() * plane(); }
  // (cx, cy, w, h) from offsets in the cell and log sizes.
  void box(double* out, int64_t a, int64_t cell, double ox, double oy, double lw, double lh) const {
    out[0] = (static_cast<double>(cell % o.grid) + ox) * o.image_w / static_cast<double>(o.grid);
    out[1] = (static_cast<double>(cell / o.grid) + oy) * o.image_h / static_cast<double>(o.grid);
    out[2] = o.anchor_wh[2 * a] * std::exp(lw);
    out[3] = o.anchor_wh[2 * a + 1] * std::exp(lh);
  }
};

// The loss of one anchor at one cell, its gradient written through g (stride
// plane, nullptr to skip). p, t point at field 0 of that anchor and cell.
// truths: the image's true boxes (cx, cy, w, h), count of them.
template <typename T>
double yolo_entry(T* g, const T* p, const T* t, int64_t a, int64_t cell, const Grid& grid,
                  const double* truths, int64_t count, double scale) {
  const YoloLossOptions& o = grid.o;
  const int64_t s = grid.plane(), depth = grid.depth();
  if (t[0] == T(1)) {
    const double z0 = p[0], sx = sigmoid(p[s]), sy = sigmoid(p[2 * s]);
    const double dx = sx - t[s], dy = sy - t[2 * s];
    const double dw = static_cast<double>(p[3 * s]) - t[3 * s];
    const double dh = static_cast<double>(p[4 * s]) - t[4 * s];
    double loss = o.lambda_coord * (dx * dx + dy * dy + dw * dw + dh * dh) + bce(z0, 1.0);
    if (g) {
      const double c = 2 * o.lambda_coord * scale;
      g[0] = static_cast<T>(scale * (sigmoid(z0) - 1));
      g[s] = static_cast<T>(c * dx * sx * (1 - sx));
      g[2 * s] = static_cast<T>(c * dy * sy * (1 - sy));
      g[3 * s] = static_cast<T>(c * dw);
      g[4 * s] = static_cast<T>(c * dh);
    }
    loss += soft_cross_entropy(g ? g + 5 * s : nullptr, p + 5 * s, t + 5 * s, o.classes, s, scale);
    return loss;
  }
  // No object here: penalise the objectness unless the prediction already
  // overlaps a true box well (YOLOv2's "don't care").
  double mine[4];
  grid.box(mine, a, cell, sigmoid(p[s]), sigmoid(p[2 * s]), p[3 * s], p[4 * s]);
  bool ignore = false;
  for (int64_t k = 0; k < count && !ignore; ++k)
    ignore = iou_cxcywh(mine, truths + 4 * k) > o.ignore_threshold;
  double loss = ignore ? masked_out(p[0]) : o.lambda_noobj * bce(p[0], 0.0);
  for (int64_t k = 1; k < depth; ++k) loss += masked_out(p[k * s]);
  if (g) {
    for (int64_t k = 1; k < depth; ++k) g[k * s] = static_cast<T>(masked_out(p[k * s]));
    g[0] = static_cast<T>(ignore ? masked_out(p[0]) : scale * o.lambda_noobj * sigmoid(p[0]));
  }
  return loss;
}

}  // namespace

void validate(const YoloLossOptions& o, const char* op) {
  const std::string name(op);
  auto real = [&](double v, const char* arg, bool positive) {
    if (!std::isfinite(v) || v < 0 || (positive && v == 0))
      throw ValueError(name + ": " + arg + " must be finite and " + (positive ? "> 0" : ">= 0") +
                       ", got " + std::to_string(v));
  };
  if (o.anchors < 1 || o.classes < 1 || o.grid < 1)
    throw ValueError(name + ": anchors, classes and grid must be >= 1, got " +
                     std::to_string(o.anchors) + ", " + std::to_string(o.classes) + ", " +
                     std::to_string(o.grid));
  for (int64_t k = 0; k < 2 * o.anchors; ++k) real(o.anchor_wh[k], "anchors", true);
  real(o.image_h, "image_size", true);
  real(o.image_w, "image_size", true);
  real(o.lambda_coord, "lambda_coord", false);
  real(o.lambda_noobj, "lambda_noobj", false);
  if (!(o.ignore_threshold >= 0 && o.ignore_threshold <= 1))
    throw ValueError(name + ": ignore_threshold must lie in [0, 1], got " +
                     std::to_string(o.ignore_threshold));
}

template <typename T>
void validate_yolo_target(const T* target, int64_t n, const YoloLossOptions& o, const char* op,
                          const char* arg) {
  const Grid grid{o};
  const int64_t total = n * grid.image_size();
  for (int64_t k = 0; k < total; ++k)
    if (!std::isfinite(target[k]))
      throw ValueError(std::string(op) + ": " + arg + " must be finite, got " +
                       std::to_string(static_cast<double>(target[k])) + " at flat index " +
                       std::to_string(k));
  for (int64_t img = 0; img < n * o.anchors; ++img)
    for (int64_t cell = 0; cell < grid.plane(); ++cell) {
      const T pc = target[img * grid.depth() * grid.plane() + cell];
      if (!(pc == T(0) || pc == T(1)))
        throw ValueError(std::string(op) + ": " + arg + " p_c (channel a*(5+C)) must be 0 or 1, got " +
                         std::to_string(static_cast<double>(pc)) + " for image " +
                         std::to_string(img / o.anchors) + ", anchor " +
                         std::to_string(img % o.anchors) + ", cell " + std::to_string(cell));
    }
}

// ---------------------------------------------------------------------------
// YOLO loss. First pass: each image's true boxes, in pixels. Second pass: the
// anchors at every cell of every image are independent (each writes only its
// own gradient fields), a parallel sum over them.

template <typename T>
T yolo_loss(T* dpred, const T* pred, const T* target, int64_t n, const YoloLossOptions& o) {
  if (n <= 0) return T(0);
  const Grid grid{o};
  const int64_t s = grid.plane(), depth = grid.depth(), per_image = grid.image_size();
  std::vector<double> truths;
  std::vector<int64_t> first(static_cast<size_t>(n) + 1, 0);
  for (int64_t img = 0; img < n; ++img) {
    for (int64_t a = 0; a < o.anchors; ++a)
      for (int64_t cell = 0; cell < s; ++cell) {
        const T* t = target + img * per_image + a * depth * s + cell;
        if (t[0] != T(1)) continue;
        double b[4];
        grid.box(b, a, cell, t[s], t[2 * s], t[3 * s], t[4 * s]);
        truths.insert(truths.end(), b, b + 4);
      }
    first[img + 1] = static_cast<int64_t>(truths.size() / 4);
  }
  const double scale = 1.0 / static_cast<double>(n);
  const int64_t entries = n * o.anchors * s;
  const double sum = detail::parallel_sum(entries, row_grain(depth), [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t e = lo; e < hi; ++e) {
      const int64_t img = e / (o.anchors * s), a = (e / s) % o.anchors, cell = e % s;
      const int64_t offset = img * per_image + a * depth * s + cell;
      acc += yolo_entry(dpred ? dpred + offset : nullptr, pred + offset, target + offset, a, cell,
                        grid, truths.data() + 4 * first[img], first[img + 1] - first[img], scale);
    }
    return acc;
  });
  return static_cast<T>(sum * scale);
}

// The formula term by term with a plain index function; the true boxes of an
// image are found again for every prediction without an object.
template <typename T>
T yolo_loss_naive(T* dpred, const T* pred, const T* target, int64_t n, const YoloLossOptions& o) {
  const int64_t A = o.anchors, C = o.classes, S = o.grid, D = 5 + C;
  auto at = [&](int64_t img, int64_t a, int64_t k, int64_t i, int64_t j) {
    return (((img * A + a) * D + k) * S + i) * S + j;
  };
  auto box = [&](double* b, const T* v, int64_t img, int64_t a, int64_t i, int64_t j, bool logits) {
    const double ox = v[at(img, a, 1, i, j)], oy = v[at(img, a, 2, i, j)];
    b[0] = (j + (logits ? 1 / (1 + std::exp(-ox)) : ox)) * o.image_w / S;
    b[1] = (i + (logits ? 1 / (1 + std::exp(-oy)) : oy)) * o.image_h / S;
    b[2] = o.anchor_wh[2 * a] * std::exp(static_cast<double>(v[at(img, a, 3, i, j)]));
    b[3] = o.anchor_wh[2 * a + 1] * std::exp(static_cast<double>(v[at(img, a, 4, i, j)]));
  };
  double total = 0;
  for (int64_t img = 0; img < n; ++img)
    for (int64_t a = 0; a < A; ++a)
      for (int64_t i = 0; i < S; ++i)
        for (int64_t j = 0; j < S; ++j) {
          const double z0 = pred[at(img, a, 0, i, j)];
          const double sig0 = 1 / (1 + std::exp(-z0));
          std::vector<double> grad(static_cast<size_t>(D), 0.0);
          if (target[at(img, a, 0, i, j)] == T(1)) {
            total += std::log1p(std::exp(-z0));  // −log σ(z0)
            grad[0] = sig0 - 1;
            for (int k = 1; k <= 2; ++k) {
              const double sk = 1 / (1 + std::exp(-static_cast<double>(pred[at(img, a, k, i, j)])));
              const double d = sk - target[at(img, a, k, i, j)];
              total += o.lambda_coord * d * d;
              grad[k] = 2 * o.lambda_coord * d * sk * (1 - sk);
            }
            for (int k = 3; k <= 4; ++k) {
              const double d = static_cast<double>(pred[at(img, a, k, i, j)]) - target[at(img, a, k, i, j)];
              total += o.lambda_coord * d * d;
              grad[k] = 2 * o.lambda_coord * d;
            }
            double m = -INFINITY, sum = 0, tsum = 0;
            for (int64_t c = 0; c < C; ++c) m = std::max(m, static_cast<double>(pred[at(img, a, 5 + c, i, j)]));
            for (int64_t c = 0; c < C; ++c) {
              sum += std::exp(pred[at(img, a, 5 + c, i, j)] - m);
              tsum += target[at(img, a, 5 + c, i, j)];
            }
            for (int64_t c = 0; c < C; ++c) {
              const double logp = pred[at(img, a, 5 + c, i, j)] - m - std::log(sum);
              const double tc = target[at(img, a, 5 + c, i, j)];
              total -= tc * logp;
              grad[5 + c] = tsum * std::exp(logp) - tc;
            }
          } else {
            double mine[4], truth[4], best = 0;
            box(mine, pred, img, a, i, j, true);
            for (int64_t b = 0; b < A; ++b)
              for (int64_t u = 0; u < S; ++u)
                for (int64_t v = 0; v < S; ++v)
                  if (target[at(img, b, 0, u, v)] == T(1)) {
                    box(truth, target, img, b, u, v, false);
                    best = std::max(best, iou_cxcywh(mine, truth));
                  }
            if (!(best > o.ignore_threshold)) {
              total += o.lambda_noobj * (std::log1p(std::exp(-std::fabs(z0))) + std::max(z0, 0.0));
              grad[0] = o.lambda_noobj * sig0;
            } else {
              total += masked_out(z0);
              grad[0] = masked_out(z0);
            }
            for (int64_t k = 1; k < D; ++k) {
              total += masked_out(pred[at(img, a, k, i, j)]);
              grad[k] = masked_out(pred[at(img, a, k, i, j)]);
            }
          }
          if (dpred)
            for (int64_t k = 0; k < D; ++k) dpred[at(img, a, k, i, j)] = static_cast<T>(grad[k] / n);
        }
  return static_cast<T>(n > 0 ? total / n : 0.0);
}

// ---------------------------------------------------------------------------
// Classification with localization (course 4, week 3). Rows are independent.

template <typename T>
void validate_localization_target(const T* target, int64_t n, int64_t cols, const char* op,
                                  const char* arg) {
  for (int64_t i = 0; i < n; ++i) {
    const T* y = target + i * cols;
    if (!(y[0] == T(0) || y[0] == T(1)))
      throw ValueError(std::string(op) + ": " + arg + " p_c (column 0) must be 0 or 1, got " +
                       std::to_string(static_cast<double>(y[0])) + " at row " + std::to_string(i));
    if (y[0] == T(1))
      for (int64_t k = 1; k < cols; ++k)
        if (!std::isfinite(y[k]))
          throw ValueError(std::string(op) + ": " + arg + " must be finite where p_c = 1, got " +
                           std::to_string(static_cast<double>(y[k])) + " at row " +
                           std::to_string(i) + ", column " + std::to_string(k));
  }
}

template <typename T>
T localization_loss(T* dpred, const T* pred, const T* target, int64_t n, int64_t cols,
                    bool cross_entropy) {
  if (n <= 0) return T(0);
  const double scale = 1.0 / static_cast<double>(n);
  const double sum = detail::parallel_sum(n, row_grain(cols), [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t i = lo; i < hi; ++i) {
      const T *p = pred + i * cols, *y = target + i * cols;
      T* g = dpred ? dpred + i * cols : nullptr;
      const bool object = y[0] == T(1);
      // Without an object only p_c is scored: every other entry is masked out.
      if (g) std::fill(g, g + cols, T(0));
      if (!object)
        for (int64_t k = 1; k < cols; ++k) {
          acc += masked_out(p[k]);
          if (g) g[k] = static_cast<T>(masked_out(p[k]));
        }
      if (cross_entropy) {
        acc += bce(p[0], y[0]);
        if (g) g[0] = static_cast<T>(scale * (sigmoid(p[0]) - y[0]));
      }
      for (int64_t k = cross_entropy ? 1 : 0; k < (object ? (cross_entropy ? 5 : cols) : 1); ++k) {
        const double d = static_cast<double>(p[k]) - y[k];
        acc += d * d;
        if (g) g[k] = static_cast<T>(2 * scale * d);
      }
      if (cross_entropy && object)
        acc += soft_cross_entropy(g ? g + 5 : nullptr, p + 5, y + 5, cols - 5, 1, scale);
    }
    return acc;
  });
  return static_cast<T>(sum * scale);
}

template <typename T>
T localization_loss_naive(T* dpred, const T* pred, const T* target, int64_t n, int64_t cols,
                          bool cross_entropy) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double pc = target[i * cols];
    for (int64_t k = 0; k < cols; ++k) {
      const double p = pred[i * cols + k], y = target[i * cols + k];
      double loss = 0, grad = 0;
      if (k == 0 && cross_entropy) {
        const double sig = 1 / (1 + std::exp(-p));
        loss = -(y * std::log(sig) + (1 - y) * std::log(1 - sig));
        grad = sig - y;
      } else if (k == 0 || (pc == 1 && (!cross_entropy || k < 5))) {
        loss = (p - y) * (p - y);
        grad = 2 * (p - y);
      } else if (pc == 1) {  // a class logit under cross-entropy
        double m = -INFINITY, sum = 0;
        for (int64_t c = 5; c < cols; ++c) m = std::max(m, static_cast<double>(pred[i * cols + c]));
        for (int64_t c = 5; c < cols; ++c) sum += std::exp(pred[i * cols + c] - m);
        double tsum = 0;
        for (int64_t c = 5; c < cols; ++c) tsum += target[i * cols + c];
        const double logp = p - m - std::log(sum);
        loss = -y * logp;
        grad = tsum * std::exp(logp) - y;
      } else {  // masked out: no object here
        loss = grad = masked_out(p);
      }
      total += loss;
      if (dpred) dpred[i * cols + k] = static_cast<T>(grad / n);
    }
  }
  return static_cast<T>(n > 0 ? total / n : 0.0);
}

// ---------------------------------------------------------------------------
// MSE over the targets that are present (not NaN).

template <typename T>
T masked_mse(T* dpred, const T* pred, const T* target, int64_t n) {
  const double present = detail::parallel_sum(n, kGrain, [&](int64_t lo, int64_t hi) {
    double count = 0;
    for (int64_t k = lo; k < hi; ++k) count += std::isnan(target[k]) ? 0 : 1;
    return count;
  });
  const double scale = present > 0 ? 1.0 / present : 0.0;
  const T gscale = static_cast<T>(2 * scale);
  const double sum = detail::parallel_sum(n, kGrain, [&](int64_t lo, int64_t hi) {
    double acc = 0;
    for (int64_t k = lo; k < hi; ++k) {
      if (std::isnan(target[k])) {
        if (dpred) dpred[k] = T(0);
        continue;
      }
      const T d = pred[k] - target[k];
      acc += static_cast<double>(d) * d;
      if (dpred) dpred[k] = gscale * d;
    }
    return acc;
  });
  return static_cast<T>(sum * scale);
}

template <typename T>
T masked_mse_naive(T* dpred, const T* pred, const T* target, int64_t n) {
  int64_t present = 0;
  for (int64_t k = 0; k < n; ++k) present += std::isnan(target[k]) ? 0 : 1;
  double total = 0;
  for (int64_t k = 0; k < n; ++k) {
    const bool missing = std::isnan(target[k]);
    const double d = missing ? 0.0 : static_cast<double>(pred[k]) - target[k];
    total += d * d;
    if (dpred) dpred[k] = static_cast<T>(present > 0 ? 2 * d / present : 0.0);
  }
  return static_cast<T>(present > 0 ? total / present : 0.0);
}

#define CORENN_DETECTION_LOSSES_INSTANTIATE(T)                                                   \
  template void validate_yolo_target<T>(const T*, int64_t, const YoloLossOptions&, const char*,  \
                                        const char*);                                            \
  template T yolo_loss<T>(T*, const T*, const T*, int64_t, const YoloLossOptions&);              \
  template T yolo_loss_naive<T>(T*, const T*, const T*, int64_t, const YoloLossOptions&);        \
  template void validate_localization_target<T>(const T*, int64_t, int64_t, const char*,         \
                                                const char*);                                    \
  template T localization_loss<T>(T*, const T*, const T*, int64_t, int64_t, bool);               \
  template T localization_loss_naive<T>(T*, const T*, const T*, int64_t, int64_t, bool);         \
  template T masked_mse<T>(T*, const T*, const T*, int64_t);                                     \
  template T masked_mse_naive<T>(T*, const T*, const T*, int64_t);

CORENN_DETECTION_LOSSES_INSTANTIATE(float)
CORENN_DETECTION_LOSSES_INSTANTIATE(double)

#undef CORENN_DETECTION_LOSSES_INSTANTIATE

}  // namespace corenn
