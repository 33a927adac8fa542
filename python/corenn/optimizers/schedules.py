"""Learning-rate schedules: callables schedule(step) -> lr, where step counts
optimizer updates from 0. Course 2 week 2's decay formulas:

    InverseTimeDecay   lr = initial / (1 + decay_rate · step / decay_steps)
                       (with staircase, step / decay_steps is floored: the
                       course's 1 / (1 + decay_rate · epoch_num) with decay_steps
                       = updates per epoch)
    ExponentialDecay   lr = initial · decay_rate^(step / decay_steps)  (0.95^epoch)
    InverseSqrtDecay   lr = initial / √(1 + step / decay_steps)        (k / √epoch)
    PiecewiseConstant  lr = values[i] for boundaries[i-1] < step <= boundaries[i]
                       (Keras's PiecewiseConstantDecay: a step equal to a
                       boundary still takes the earlier value)

and the cosine schedules of SGDR (Loshchilov & Hutter, 2017), with Keras 3's
formulas (keras/src/optimizers/schedules/learning_rate_schedule.py):

    CosineDecay          lr = lr0 · ((1 − alpha) · ½(1 + cos(π · min(step, decay_steps) / decay_steps)) + alpha);
                         with warmup_target, first a linear warmup from lr0 to
                         warmup_target over warmup_steps, then the same cosine
                         from warmup_target down to alpha · warmup_target
    CosineDecayRestarts  the cosine over periods of first_decay_steps · t_mul^i
                         steps, restarting at m_mul^i times the peak
"""

import math

from .. import _validate


class LearningRateSchedule:
    def __call__(self, step):
        raise NotImplementedError

    def _ratio(self, step):
        r = step / self.decay_steps
        return math.floor(r) if self.staircase else r


class InverseTimeDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _validate.real("InverseTimeDecay", "initial_learning_rate",
                                                    initial_learning_rate, low=0.0)
        self.decay_steps = _validate.real("InverseTimeDecay", "decay_steps", decay_steps, low=0.0,
                                          low_open=True)
        self.decay_rate = _validate.real("InverseTimeDecay", "decay_rate", decay_rate, low=0.0)
        self.staircase = bool(staircase)

    def __call__(self, step):
        return self.initial_learning_rate / (1.0 + self.decay_rate * self._ratio(step))


class ExponentialDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False):
        self.initial_learning_rate = _validate.real("ExponentialDecay", "initial_learning_rate",
                                                    initial_learning_rate, low=0.0)
        self.decay_steps = _validate.real("ExponentialDecay", "decay_steps", decay_steps, low=0.0,
                                          low_open=True)
        self.decay_rate = _validate.real("ExponentialDecay", "decay_rate", decay_rate, low=0.0,
                                         low_open=True)
        self.staircase = bool(staircase)

    def __call__(self, step):
        return self.initial_learning_rate * self.decay_rate ** self._ratio(step)


class InverseSqrtDecay(LearningRateSchedule):
    def __init__(self, initial_learning_rate, decay_steps=1, staircase=False):
        self.initial_learning_rate = _validate.real("InverseSqrtDecay", "initial_learning_rate",
                                                    initial_learning_rate, low=0.0)
        self.decay_steps = _validate.real("InverseSqrtDecay", "decay_steps", decay_steps, low=0.0,
                                          low_open=True)
        self.staircase = bool(staircase)

    def __call__(self, step):
        return self.initial_learning_rate / math.sqrt(1.0 + self._ratio(step))


class PiecewiseConstant(LearningRateSchedule):
    """lr = values[0] for step <= boundaries[0], values[i] for boundaries[i-1] <
    step <= boundaries[i], values[-1] for step > boundaries[-1]: Keras's
    PiecewiseConstantDecay, so the update numbered `boundaries[i]` (steps
    count from 0) is the last one at values[i].

        PiecewiseConstant([2], [1.0, 0.5]): steps 0, 1, 2 -> 1.0; 3, 4, ... -> 0.5
    """

    def __init__(self, boundaries, values):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ValueError(f"PiecewiseConstant: values needs len(boundaries) + 1 = "
                             f"{len(boundaries) + 1} entries, got {len(values)}")
        if any(b2 <= b1 for b1, b2 in zip(boundaries, boundaries[1:])):
            raise ValueError(f"PiecewiseConstant: boundaries must increase, got {boundaries}")
        self.boundaries = boundaries
        self.values = [_validate.real("PiecewiseConstant", "values", v, low=0.0) for v in values]

    def __call__(self, step):
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]


def _cosine(fraction, alpha, peak=1.0):
    """(1 − alpha) · peak · ½(1 + cos(π · fraction)) + alpha: from peak (plus the
    alpha floor's share) at fraction 0 down to alpha at fraction 1."""
    return (1.0 - alpha) * (0.5 * peak * (1.0 + math.cos(math.pi * fraction))) + alpha


class CosineDecay(LearningRateSchedule):
    """Cosine decay with an optional linear warmup (Keras 3's CosineDecay):

        warmup_target None:  lr = initial · c(min(step, decay_steps) / decay_steps)
        else, s = min(step, warmup_steps + decay_steps):
            s <  warmup_steps:  lr = initial + (warmup_target − initial) · s / warmup_steps
            s >= warmup_steps:  lr = warmup_target · c((s − warmup_steps) / decay_steps)

    with c(f) = (1 − alpha) · ½(1 + cos(π f)) + alpha. After the decay the rate
    stays at alpha times its peak. Steps count optimizer updates from 0;
    decay_steps > 0, warmup_steps >= 0 (ignored without warmup_target), alpha
    in [0, 1]."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, warmup_target=None,
                 warmup_steps=0):
        owner = "CosineDecay"
        self.initial_learning_rate = _validate.real(owner, "initial_learning_rate",
                                                    initial_learning_rate, low=0.0)
        self.decay_steps = _validate.real(owner, "decay_steps", decay_steps, low=0.0, low_open=True)
        self.alpha = _validate.real(owner, "alpha", alpha, low=0.0, high=1.0)
        self.warmup_target = None if warmup_target is None else _validate.real(
            owner, "warmup_target", warmup_target, low=0.0)
        self.warmup_steps = _validate.real(owner, "warmup_steps", warmup_steps, low=0.0)

    def __call__(self, step):
        if self.warmup_target is None:
            return self.initial_learning_rate * _cosine(
                min(step, self.decay_steps) / self.decay_steps, self.alpha)
        step = min(step, self.warmup_steps + self.decay_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * (step / self.warmup_steps) + self.initial_learning_rate
        return self.warmup_target * _cosine((step - self.warmup_steps) / self.decay_steps,
                                            self.alpha)


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts, SGDR (Keras 3's CosineDecayRestarts).
    Period i (from 0) lasts first_decay_steps · t_mul^i steps; within it, at
    fraction f of the period,

        lr = initial · ((1 − alpha) · m_mul^i · ½(1 + cos(π f)) + alpha)

    so each restart jumps back to m_mul times the previous peak. With
    F = step / first_decay_steps, Keras finds the period in closed form,
    i = floor(log(1 − F (1 − t_mul)) / log t_mul) (i = floor(F) when t_mul = 1)
    and f = (F − (1 − t_mul^i) / (1 − t_mul)) / t_mul^i; here i is then moved
    by one where the logarithm's rounding puts it on the wrong side of a
    restart (log 243 / log 3 = 4.999…). first_decay_steps > 0, t_mul >= 1
    (below 1 the periods add up to a finite number of steps, after which the
    formula takes the log of a negative number), m_mul >= 0, alpha in [0, 1]."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
        owner = "CosineDecayRestarts"
        self.initial_learning_rate = _validate.real(owner, "initial_learning_rate",
                                                    initial_learning_rate, low=0.0)
        self.first_decay_steps = _validate.real(owner, "first_decay_steps", first_decay_steps,
                                                low=0.0, low_open=True)
        self.t_mul = _validate.real(owner, "t_mul", t_mul, low=1.0)
        self.m_mul = _validate.real(owner, "m_mul", m_mul, low=0.0)
        self.alpha = _validate.real(owner, "alpha", alpha, low=0.0, high=1.0)

    def _period_start(self, i):
        """Where period i starts, in units of first_decay_steps: Σ_{k<i} t_mul^k."""
        return float(i) if self.t_mul == 1.0 else (1.0 - self.t_mul ** i) / (1.0 - self.t_mul)

    def __call__(self, step):
        fraction = step / self.first_decay_steps
        if self.t_mul == 1.0:
            i = math.floor(fraction)
        else:
            i = math.floor(math.log(1.0 - fraction * (1.0 - self.t_mul)) / math.log(self.t_mul))
            if self._period_start(i + 1) <= fraction:
                i += 1
            elif self._period_start(i) > fraction:
                i -= 1
        fraction = (fraction - self._period_start(i)) / self.t_mul ** i
        return self.initial_learning_rate * _cosine(fraction, self.alpha, self.m_mul ** i)


__all__ = ["CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseSqrtDecay",
           "InverseTimeDecay", "LearningRateSchedule", "PiecewiseConstant"]
