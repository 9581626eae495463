"""Numba kernels for the timing laws of a delay that has already run: the survival and
the hazard at a clock, and the remaining time drawn given that it has not fired yet. The
particle filter (:mod:`escalate.engine.particles`) weighs a record with the first two and
starts its forecasts with the third.

Closed forms where they exist (exponential, fixed, uniform, Weibull); the regularized upper
incomplete gamma by its series and continued fraction; the normal tail by ``erfc`` and, far
out, Mills' ratio; a draw given survival by inverting the survival function where no closed
form exists (safeguarded Newton steps on the log time).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from escalate.engine.kernels import _exponential, _latent, _uniform

__all__ = ["log_survival_of", "tail_draw_of"]

_JIT = {"cache": True, "nogil": True, "error_model": "numpy"}

# The timing kinds' codes, as in escalate.engine.kernels (kept here: see that module).
EXPONENTIAL, FIXED, UNIFORM, GAMMA, WEIBULL, LOGNORMAL = range(6)
_SQRT2 = math.sqrt(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_DUE = 1e-9  # a fixed delay is due when its clock is within this (relative) of its value


@njit(**_JIT)
def _log_gamma_q(a, x):
    """log Q(a, x), the regularized upper incomplete gamma: the series for P below a + 1, the
    continued fraction (modified Lentz) above (Numerical Recipes, section 6.2)."""
    if x <= 0.0:
        return 0.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = 1.0 / a
        total = term
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        p = math.exp(math.log(total) + log_front)
        return math.log1p(-p) if p < 1.0 else -np.inf
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.log(h) + log_front


@njit(**_JIT)
def _log_normal_sf(z):
    """log P(Z > z) for a standard normal Z, without underflow in the far tail."""
    if z < 25.0:
        return math.log(0.5 * math.erfc(z / _SQRT2))
    return -0.5 * z * z - math.log(z) - _LOG_SQRT_2PI  # Mills' ratio, relative error < 0.2%


@njit(**_JIT)
def _log_survival(kind, p1, p2, c):
    """log P(E > c) for a latent duration E of the timing (``kind``, ``p1``, ``p2``)."""
    if c <= 0.0:
        return 0.0
    if kind == EXPONENTIAL:
        return -p1 * c
    if kind == FIXED:  # due at p1: not yet fired at p1 itself (the left limit)
        return 0.0 if c <= p1 + _DUE * max(1.0, p1) else -np.inf
    if kind == UNIFORM:
        if c <= p1:
            return 0.0
        return math.log((p2 - c) / (p2 - p1)) if c < p2 else -np.inf
    if kind == GAMMA:
        return _log_gamma_q(p1, c / p2)
    if kind == WEIBULL:
        return -((c / p2) ** p1)
    return _log_normal_sf((math.log(c) - p1) / p2)  # LOGNORMAL


@njit(**_JIT)
def _log_hazard(kind, p1, p2, c):
    """log of the hazard f(c) / S(c) of the timing at clock ``c`` (-inf where it cannot fire;
    a fixed delay has no density: see ``_exit_factor``)."""
    if kind == EXPONENTIAL:
        return math.log(p1)
    if kind == FIXED or c <= 0.0:
        return -np.inf
    if kind == UNIFORM:
        return -math.log(p2 - c) if p1 <= c < p2 else -np.inf
    if kind == GAMMA:
        x = c / p2
        log_pdf = (p1 - 1.0) * math.log(x) - x - math.lgamma(p1) - math.log(p2)
        return log_pdf - _log_gamma_q(p1, x)
    if kind == WEIBULL:
        return math.log(p1 / p2) + (p1 - 1.0) * math.log(c / p2)
    z = (math.log(c) - p1) / p2  # LOGNORMAL
    return -0.5 * z * z - math.log(c * p2) - _LOG_SQRT_2PI - _log_normal_sf(z)


@njit(**_JIT)
def _tail_draw(state, kind, p1, p2, c):
    """A latent duration E of the timing drawn given E > c (a delay that has run ``c`` without
    firing): closed forms where they exist, else the survival inverted by safeguarded Newton
    steps on log time (log S decreases; its slope in log time is -hazard * time)."""
    if kind == EXPONENTIAL:
        return max(c, 0.0) + _latent(state, kind, p1, p2)
    if c <= 0.0:
        return _latent(state, kind, p1, p2)
    if kind == FIXED:
        return p1
    if kind == UNIFORM:
        low = max(p1, c)
        return low + (p2 - low) * _uniform(state)
    if kind == WEIBULL:
        return p2 * ((c / p2) ** p1 + _exponential(state)) ** (1.0 / p1)
    target = _log_survival(kind, p1, p2, c) + math.log(1.0 - _uniform(state))
    lo = math.log(c)
    hi = lo + 1.0
    while _log_survival(kind, p1, p2, math.exp(hi)) > target:
        hi += 1.0 + (hi - lo)
    y = 0.5 * (lo + hi)
    for _ in range(200):
        x = math.exp(y)
        g = _log_survival(kind, p1, p2, x) - target
        if g > 0.0:
            lo = y
        else:
            hi = y
        if abs(g) < 1e-12 or hi - lo < 1e-14:
            break
        slope = -math.exp(_log_hazard(kind, p1, p2, x)) * x
        step = y - g / slope if slope < 0.0 else 0.5 * (lo + hi)
        y = step if lo < step < hi else 0.5 * (lo + hi)
    return math.exp(y)


@njit(**_JIT)
def log_survival_of(kind, p1, p2, c, out):
    """``out[i] = log P(E > c[i])`` (for tests of the special functions)."""
    for i in range(c.shape[0]):
        out[i] = _log_survival(kind, p1, p2, c[i])


@njit(**_JIT)
def tail_draw_of(state, kind, p1, p2, c, out):
    """Fill ``out`` with latent durations drawn given that they exceed ``c`` (for tests)."""
    for i in range(out.shape[0]):
        out[i] = _tail_draw(state, kind, p1, p2, c)
