"""python -m corenn.examples.sunspots: time-series forecasting (course 5,
many-to-one) on the yearly sunspot numbers 1700–2008 that statsmodels ships
(statsmodels.datasets.sunspots; no download). A GRU reads the last `window`
years and predicts the next; trained on the years up to 1958, it is scored on
the held-out years 1959–2008 against the "repeat the last value" baseline
(persistence), by the mean squared error in sunspot numbers².

    python -m corenn.examples.sunspots            # the full run
    python -m corenn.examples.sunspots --fast     # fewer epochs (tests)
"""


import numpy as np

import corenn as cn
from corenn.examples._cli import fast_flag

L = cn.layers
FAST = dict(epochs=60)  # main(fast=True): the tests' run
FIRST_TEST_YEAR = 1959


def load():
    """(years, yearly mean sunspot numbers), float64."""
    from statsmodels.datasets import sunspots

    data = sunspots.load_pandas().data
    return data["YEAR"].to_numpy(dtype=np.float64), data["SUNACTIVITY"].to_numpy(dtype=np.float64)


def windows(series, window):
    """X (N, window, 1): every run of `window` values; y (N, 1): the value after it."""
    X = np.stack([series[i:i + window] for i in range(len(series) - window)])
    return X[:, :, None], series[window:, None]


def build(window, units=32, learning_rate=1e-2):
    past = L.Input((window, 1), name="past")  # one value per step
    h = L.GRU(units, name="gru")(past)
    model = cn.Model(past, L.Dense(1, name="next")(h), name="sunspots")
    model.compile(optimizer=cn.optimizers.Adam(learning_rate, global_clipnorm=1.0), loss="mse")
    return model


def run(epochs=200, window=12, seed=0, out=print):
    cn.seed(seed)
    years, spots = load()
    # Standardised with the training years' statistics only.
    train_end = int(np.searchsorted(years, FIRST_TEST_YEAR))
    mean, std = spots[:train_end].mean(), spots[:train_end].std()
    z = ((spots - mean) / std).astype(np.float32)
    X, y = windows(z, window)
    target_years = years[window:]
    test = target_years >= FIRST_TEST_YEAR
    model = build(window)
    model.fit(X[~test], y[~test], batch_size=32, epochs=epochs, verbose=0)
    predicted = model.predict(X[test])[:, 0] * std + mean
    actual = spots[window:][test]
    last = spots[window - 1:-1][test]  # the value each window ends with
    mse = float(np.mean((predicted - actual) ** 2))
    baseline = float(np.mean((last - actual) ** 2))
    out(f"{int((~test).sum())} training windows ({int(years[0])}–{FIRST_TEST_YEAR - 1}), "
        f"{int(test.sum())} held-out years ({FIRST_TEST_YEAR}–{int(years[-1])}), window {window} years, "
        f"GRU(32) -> Dense(1), {epochs} epochs")
    out(f"held-out MSE: GRU {mse:.1f}, repeat-the-last-value baseline {baseline:.1f} "
        f"(ratio {mse / baseline:.2f})")
    return {"mse": mse, "baseline_mse": baseline, "model": model, "predicted": predicted, "actual": actual}


def main(fast=False):
    return run(**FAST) if fast else run()


if __name__ == "__main__":
    main(fast=fast_flag(__doc__, "fewer epochs (tests)"))
