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


__all__ = ["ExponentialDecay", "InverseSqrtDecay", "InverseTimeDecay", "LearningRateSchedule",
           "PiecewiseConstant"]
