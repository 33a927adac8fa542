"""Learning-rate schedules from their definitions, step by step (the library
uses Keras's closed forms)."""

import math


def cosine_decay(step, initial, decay_steps, alpha=0.0, warmup_target=None, warmup_steps=0):
    """Linear warmup from initial to warmup_target over warmup_steps (when
    warmup_target is given), then half a cosine from the peak down to
    alpha · peak over decay_steps, then flat at alpha · peak."""
    if warmup_target is None:
        peak, t = initial, step
    elif step < warmup_steps:
        return initial + (warmup_target - initial) * step / warmup_steps
    else:
        peak, t = warmup_target, step - warmup_steps
    if t >= decay_steps:
        return alpha * peak
    return peak * (alpha + (1 - alpha) * (1 + math.cos(math.pi * t / decay_steps)) / 2)


def cosine_decay_restarts(step, initial, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0):
    """SGDR: walk the periods (lengths first_decay_steps · t_mul^i, peaks m_mul^i)
    to the one holding step, then the cosine within it."""
    start, length, peak = 0.0, first_decay_steps, 1.0
    while step >= start + length:
        start, length, peak = start + length, length * t_mul, peak * m_mul
    fraction = (step - start) / length
    return initial * (alpha + (1 - alpha) * peak * (1 + math.cos(math.pi * fraction)) / 2)
