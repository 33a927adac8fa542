"""CosineDecay (with warmup) and CosineDecayRestarts against the step-by-step
definitions in reference/schedules.py: many steps, the warmup/decay boundary,
steps past the decay, restart boundaries; argument checks; model files."""

import numpy as np
import pytest

import corenn as cn
from reference import schedules as ref
from tolerances import assert_close

L = cn.layers
O = cn.optimizers
S = cn.optimizers.schedules

STEPS = [*range(0, 40), 49, 50, 51, 99, 100, 101, 119, 120, 121, 1000, 10 ** 6]


@pytest.mark.parametrize("kwargs", [
    dict(initial=0.1, decay_steps=20),
    dict(initial=0.1, decay_steps=20, alpha=0.1),
    dict(initial=0.05, decay_steps=7, alpha=1.0),  # alpha = 1: constant
    dict(initial=0.0, decay_steps=30, warmup_target=0.2, warmup_steps=10),
    dict(initial=0.01, decay_steps=30, alpha=0.05, warmup_target=0.1, warmup_steps=15),
    dict(initial=0.2, decay_steps=30, alpha=0.05, warmup_target=0.1, warmup_steps=0),
    dict(initial=0.3, decay_steps=12.5, alpha=0.2, warmup_target=0.1, warmup_steps=4),  # warmup down
    dict(initial=0.1, decay_steps=20, warmup_steps=50),  # warmup_steps without a target: no warmup
])
def test_cosine_decay_matches_the_definition(kwargs):
    initial = kwargs.pop("initial")
    schedule = S.CosineDecay(initial, **kwargs)
    got = [schedule(s) for s in STEPS]
    want = [ref.cosine_decay(s, initial, **kwargs) for s in STEPS]
    assert_close(np.array(got), np.array(want), np.float64, what="learning rates")


def test_cosine_decay_landmarks():
    warm = S.CosineDecay(0.0, 100, alpha=0.1, warmup_target=1.0, warmup_steps=10)
    assert warm(0) == 0.0 and warm(5) == 0.5 and warm(10) == 1.0  # the peak at the boundary
    assert warm(60) == pytest.approx(0.55, rel=1e-15)  # half-way: (1 + alpha) / 2
    assert warm(110) == pytest.approx(0.1, rel=1e-15) and warm(5000) == warm(110)
    plain = S.CosineDecay(2.0, 10)
    assert plain(0) == 2.0 and plain(5) == pytest.approx(1.0, rel=1e-15) and plain(10) == plain(99) == 0.0


@pytest.mark.parametrize("kwargs", [
    dict(initial=0.1, first_decay_steps=10),  # Keras's defaults: t_mul 2, m_mul 1
    dict(initial=0.1, first_decay_steps=10, t_mul=1.0, m_mul=0.5, alpha=0.1),
    dict(initial=0.1, first_decay_steps=4, t_mul=3.0, m_mul=0.9, alpha=0.01),
    dict(initial=0.5, first_decay_steps=8, t_mul=1.5, m_mul=0.7, alpha=0.2),
    dict(initial=0.1, first_decay_steps=1, t_mul=3.0),  # restarts at 1, 4, 13, 40, 121 (log 243 / log 3 < 5)
])
def test_cosine_decay_restarts_matches_the_definition(kwargs):
    initial = kwargs.pop("initial")
    schedule = S.CosineDecayRestarts(initial, **kwargs)
    steps = [*STEPS, 4, 12, 13, 14, 363, 364, 365, 1093]
    got = [schedule(s) for s in steps]
    want = [ref.cosine_decay_restarts(s, initial, **kwargs) for s in steps]
    assert_close(np.array(got), np.array(want), np.float64, what="learning rates")


def test_cosine_decay_restarts_jumps_back_at_each_restart():
    schedule = S.CosineDecayRestarts(1.0, 10, t_mul=2.0, m_mul=0.5)
    # Periods [0, 10), [10, 30), [30, 70): each starts at half the previous peak.
    assert [schedule(s) for s in (0, 10, 30, 70)] == [1.0, 0.5, 0.25, 0.125]
    assert schedule(9) < 0.03 and schedule(29) < 0.01


@pytest.mark.parametrize("bad", [
    lambda: S.CosineDecay(0.1, 0), lambda: S.CosineDecay(-0.1, 10), lambda: S.CosineDecay(0.1, 10, alpha=1.5),
    lambda: S.CosineDecay(0.1, 10, warmup_target=-1.0, warmup_steps=5),
    lambda: S.CosineDecay(0.1, 10, warmup_target=0.2, warmup_steps=-1),
    lambda: S.CosineDecay(float("nan"), 10),
    lambda: S.CosineDecayRestarts(0.1, 0), lambda: S.CosineDecayRestarts(0.1, 10, t_mul=0.5),
    lambda: S.CosineDecayRestarts(0.1, 10, m_mul=-1.0), lambda: S.CosineDecayRestarts(0.1, 10, alpha=-0.1),
])
def test_bad_arguments(bad):
    with pytest.raises(ValueError, match="CosineDecay"):
        bad()


@pytest.mark.parametrize("schedule", [
    S.CosineDecay(0.01, 30, alpha=0.1, warmup_target=0.1, warmup_steps=5),
    S.CosineDecayRestarts(0.1, 3, t_mul=1.5, m_mul=0.8, alpha=0.05),
])
def test_model_file_keeps_the_schedule(schedule, tmp_path):
    """fit drives the learning rate from the schedule; the loaded model's
    schedule is the same and gives the same rates from the step it stopped at."""
    cn.seed(2)
    model = cn.Sequential([L.Input((3,)), L.Dense(2)])
    model.compile(optimizer=O.Adam(schedule), loss="mse")
    x, y = np.ones((4, 3)), np.zeros((4, 2))
    seen = []

    class Record(cn.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(model.optimizer.lr_at(model._engine.steps))

    model.fit(x, y, batch_size=1, epochs=2, verbose=0, callbacks=[Record()])
    assert seen == [schedule(s) for s in range(8)]
    model.save(tmp_path / "m.corenn")
    loaded = cn.load_model(tmp_path / "m.corenn").optimizer.learning_rate
    assert type(loaded) is type(schedule) and vars(loaded) == vars(schedule)
    assert [loaded(s) for s in range(8, 200)] == [schedule(s) for s in range(8, 200)]
