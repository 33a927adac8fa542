"""The NumPy side of the recurrent model workloads is a correct implementation:
its LSTM and GRU forward and backward through time against torch.nn.LSTM / GRU
given the same weights (skipped without PyTorch), at small sizes."""

import numpy as np
import pytest

import workloads_recurrent as rnn


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_numpy_recurrent_side_matches_torch(kind):
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    rng = np.random.default_rng(0)
    N, T, F, H = 3, 5, 4, 6
    x = rng.standard_normal((N, T, F)).astype(np.float32)
    dh = rng.standard_normal((N, H)).astype(np.float32)
    torch.manual_seed(0)
    m = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(F, H, batch_first=True)
    W_ih, W_hh, b_ih, b_hh = (p.detach().numpy() for p in (m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0,
                                                          m.bias_hh_l0))
    xt = torch.from_numpy(x).requires_grad_(True)
    y, _ = m(xt)
    y[:, -1].backward(torch.from_numpy(dh))
    if kind == "lstm":
        h, _, cache = rnn.numpy_lstm_forward(x, W_ih, W_hh, b_ih + b_hh)
        dx, dW_ih, dW_hh, db = rnn.numpy_lstm_backward(dh, x, W_ih, W_hh, cache)
        want_db = [(db, m.bias_ih_l0.grad)]
    else:
        h, cache = rnn.numpy_gru_forward(x, W_ih, W_hh, b_ih, b_hh)
        dx, dW_ih, dW_hh, db_ih, db_hh = rnn.numpy_gru_backward(dh, x, W_ih, W_hh, cache)
        want_db = [(db_ih, m.bias_ih_l0.grad), (db_hh, m.bias_hh_l0.grad)]
    pairs = [(h, y[:, -1]), (dx, xt.grad), (dW_ih, m.weight_ih_l0.grad), (dW_hh, m.weight_hh_l0.grad), *want_db]
    for ours, theirs in pairs:
        # float32 on both sides, 5 steps deep: agreement to a few float32 roundings.
        np.testing.assert_allclose(ours, theirs.detach().numpy(), rtol=1e-5, atol=1e-6)
