#include <vector>

#include "check.hpp"
#include "corenn/error.hpp"
#include "corenn/kernels/recurrent.hpp"

using namespace corenn;
using corenn_test::random_vector;

namespace {

constexpr int64_t N = 3, S = 4, F = 5, H = 6;

// Step masks (N, T): none, and one with a right-padded, a left-padded and an
// all-masked row, so the fast and naive kernels agree on carried states too.
const std::vector<uint8_t> kPadded{1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0};
const uint8_t* const kMasks[] = {nullptr, kPadded.data()};

// Runs forward and backward of the LSTM (fast or naive); the parameter
// gradients start from `grad_init` so accumulation shows.
struct LstmRun {
  std::vector<double> y, h, c, dx, dh0, dc0, dW_ih, dW_hh, db;
};

LstmRun run_lstm(bool naive, double grad_init, const uint8_t* mask) {
  auto x = random_vector<double>(N * S * F, 1), W_ih = random_vector<double>(4 * H * F, 2);
  auto W_hh = random_vector<double>(4 * H * H, 3), b = random_vector<double>(4 * H, 4);
  auto h0 = random_vector<double>(N * H, 5), c0 = random_vector<double>(N * H, 6);
  auto dy = random_vector<double>(N * S * H, 7), dh_T = random_vector<double>(N * H, 8);
  auto dc_T = random_vector<double>(N * H, 9);
  LstmRun r{std::vector<double>(N * S * H), std::vector<double>(N * H), std::vector<double>(N * H),
            std::vector<double>(N * S * F), std::vector<double>(N * H), std::vector<double>(N * H),
            std::vector<double>(4 * H * F, grad_init), std::vector<double>(4 * H * H, grad_init),
            std::vector<double>(4 * H, grad_init)};
  std::vector<double> ws(lstm_workspace_size(N, S, H)), scratch(lstm_backward_scratch_size(N, S, H));
  (naive ? lstm_forward_naive<double> : lstm_forward<double>)(r.y.data(), r.h.data(), r.c.data(), ws.data(),
                                                              x.data(), W_ih.data(), W_hh.data(), b.data(),
                                                              h0.data(), c0.data(), mask, N, S, F, H, nullptr);
  (naive ? lstm_backward_naive<double> : lstm_backward<double>)(
      r.dx.data(), r.dh0.data(), r.dc0.data(), r.dW_ih.data(), r.dW_hh.data(), r.db.data(), scratch.data(),
      dy.data(), dh_T.data(), dc_T.data(), x.data(), W_ih.data(), W_hh.data(), h0.data(), c0.data(),
      r.y.data(), ws.data(), mask, N, S, F, H, nullptr);
  return r;
}

void check_all_close(const std::vector<double>& a, const std::vector<double>& b, double offset) {
  CHECK(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) CHECK_CLOSE(a[i], b[i] + offset, 1e-12);
}

}  // namespace

TEST(lstm_fast_matches_naive_and_accumulates) {
  for (const uint8_t* mask : kMasks) {
    const LstmRun fast = run_lstm(false, 0.0, mask), naive = run_lstm(true, 0.0, mask);
    const LstmRun again = run_lstm(false, 1.0, mask);
    for (auto m : {&LstmRun::y, &LstmRun::h, &LstmRun::c, &LstmRun::dx, &LstmRun::dh0, &LstmRun::dc0,
                   &LstmRun::dW_ih, &LstmRun::dW_hh, &LstmRun::db})
      check_all_close(fast.*m, naive.*m, 0.0);
    // The parameter gradients add onto what the buffers held.
    for (auto m : {&LstmRun::dW_ih, &LstmRun::dW_hh, &LstmRun::db}) check_all_close(again.*m, fast.*m, 1.0);
  }
}

TEST(gru_fast_matches_naive_and_accumulates) {
  auto x = random_vector<double>(N * S * F, 11), W_ih = random_vector<double>(3 * H * F, 12);
  auto W_hh = random_vector<double>(3 * H * H, 13), b = random_vector<double>(3 * H, 14);
  auto rb = random_vector<double>(3 * H, 15), h0 = random_vector<double>(N * H, 16);
  auto dy = random_vector<double>(N * S * H, 17), dh_T = random_vector<double>(N * H, 18);
  for (const uint8_t* mask : kMasks) {
  std::vector<double> outs[2][8];  // y, h_T, dx, dh0, then dW_ih, dW_hh, db, drb (from 0.5: accumulated)
  for (int naive = 0; naive < 2; ++naive) {
    auto& o = outs[naive];
    o[0].resize(N * S * H), o[1].resize(N * H), o[2].resize(N * S * F), o[3].resize(N * H);
    o[4].assign(3 * H * F, 0.5), o[5].assign(3 * H * H, 0.5), o[6].assign(3 * H, 0.5), o[7].assign(3 * H, 0.5);
    std::vector<double> ws(gru_workspace_size(N, S, H)), scratch(gru_backward_scratch_size(N, S, H));
    (naive ? gru_forward_naive<double> : gru_forward<double>)(o[0].data(), o[1].data(), ws.data(), x.data(),
                                                              W_ih.data(), W_hh.data(), b.data(), rb.data(),
                                                              h0.data(), mask, N, S, F, H, nullptr);
    (naive ? gru_backward_naive<double> : gru_backward<double>)(
        o[2].data(), o[3].data(), o[4].data(), o[5].data(), o[6].data(), o[7].data(), scratch.data(), dy.data(),
        dh_T.data(), x.data(), W_ih.data(), W_hh.data(), h0.data(), o[0].data(), ws.data(), mask, N, S,
        F, H, nullptr);
  }
  for (int k = 0; k < 8; ++k) check_all_close(outs[0][k], outs[1][k], 0.0);
  }
}

TEST(simple_rnn_fast_matches_naive_and_accumulates) {
  auto x = random_vector<double>(N * S * F, 21), W_ih = random_vector<double>(H * F, 22);
  auto W_hh = random_vector<double>(H * H, 23), b = random_vector<double>(H, 24);
  auto h0 = random_vector<double>(N * H, 25), dy = random_vector<double>(N * S * H, 26);
  auto dh_T = random_vector<double>(N * H, 27);
  for (const uint8_t* mask : kMasks) {
  std::vector<double> outs[2][7];  // y, h_T, dx, dh0, then dW_ih, dW_hh, db (from 0.5: accumulated)
  for (int naive = 0; naive < 2; ++naive) {
    auto& o = outs[naive];
    o[0].resize(N * S * H), o[1].resize(N * H), o[2].resize(N * S * F), o[3].resize(N * H);
    o[4].assign(H * F, 0.5), o[5].assign(H * H, 0.5), o[6].assign(H, 0.5);
    std::vector<double> scratch(simple_rnn_backward_scratch_size(N, S, H));
    (naive ? simple_rnn_forward_naive<double> : simple_rnn_forward<double>)(
        o[0].data(), o[1].data(), x.data(), W_ih.data(), W_hh.data(), b.data(), h0.data(), mask, N, S, F, H, nullptr);
    (naive ? simple_rnn_backward_naive<double> : simple_rnn_backward<double>)(
        o[2].data(), o[3].data(), o[4].data(), o[5].data(), o[6].data(), scratch.data(), dy.data(), dh_T.data(),
        x.data(), W_ih.data(), W_hh.data(), h0.data(), o[0].data(), mask, N, S, F, H, nullptr);
  }
  for (int k = 0; k < 7; ++k) check_all_close(outs[0][k], outs[1][k], 0.0);
  }
}

// W_hh packed once (pack_recurrent_panels) then lstm_forward_packed /
// gru_forward_packed: the results of the kernels that pack in the call, bit
// for bit, for whole and partial panels (20 units: 16 + 4 floats, 8 + 8 + 4
// doubles) and partial column blocks, one sequence (units split over the
// team) and a batch, with initial states and a mask.
template <typename T>
void check_packed_matches_unpacked(int64_t batch, int64_t hidden) {
  const int64_t n = batch, h = hidden, steps = 4, features = 5;
  auto x = random_vector<T>(n * steps * features, 31), h0 = random_vector<T>(n * h, 32);
  auto c0 = random_vector<T>(n * h, 33), b = random_vector<T>(4 * h, 34), rb = random_vector<T>(3 * h, 35);
  std::vector<uint8_t> mask(static_cast<size_t>(n * steps));
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = i % 3 != 2;
  for (int64_t gates : {4, 3}) {
    auto W_ih = random_vector<T>(gates * h * features, 36), W_hh = random_vector<T>(gates * h * h, 37);
    std::vector<T> panels(recurrent_panels_size(gates, h));
    pack_recurrent_panels<T>(panels.data(), W_hh.data(), gates, h);
    std::vector<T> out[2][3];  // y, h_T, c_T: packed in the call, then kept
    for (int kept = 0; kept < 2; ++kept) {
      auto& o = out[kept];
      o[0].resize(n * steps * h), o[1].resize(n * h), o[2].resize(n * h);
      if (gates == 4) {
        std::vector<T> ws(lstm_workspace_size(n, steps, h));
        if (kept)
          lstm_forward_packed<T>(o[0].data(), o[1].data(), o[2].data(), ws.data(), x.data(), W_ih.data(),
                                 panels.data(), b.data(), h0.data(), c0.data(), mask.data(), n, steps, features, h);
        else
          lstm_forward<T>(o[0].data(), o[1].data(), o[2].data(), ws.data(), x.data(), W_ih.data(), W_hh.data(),
                          b.data(), h0.data(), c0.data(), mask.data(), n, steps, features, h);
      } else {
        std::vector<T> ws(gru_workspace_size(n, steps, h));
        if (kept)
          gru_forward_packed<T>(o[0].data(), o[1].data(), ws.data(), x.data(), W_ih.data(), panels.data(),
                                b.data(), rb.data(), h0.data(), mask.data(), n, steps, features, h);
        else
          gru_forward<T>(o[0].data(), o[1].data(), ws.data(), x.data(), W_ih.data(), W_hh.data(), b.data(),
                         rb.data(), h0.data(), mask.data(), n, steps, features, h);
      }
    }
    for (int k = 0; k < 3; ++k) CHECK(out[0][k] == out[1][k]);
  }
}

TEST(packed_recurrent_weights_give_the_same_bits) {
  for (int64_t batch : {1, 3})
    for (int64_t hidden : {6, 20}) {
      check_packed_matches_unpacked<float>(batch, hidden);
      check_packed_matches_unpacked<double>(batch, hidden);
    }
  std::vector<float> panels(recurrent_panels_size(4, 6)), W_hh(2 * 6 * 6);
  CHECK_THROWS(pack_recurrent_panels<float>(panels.data(), W_hh.data(), 2, 6), ValueError);
}
