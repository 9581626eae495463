"""Time stepping of a chain's distribution: ``v expm(Q h)`` along a grid with one dense matrix
exponential per step length (``Stepper``), or by uniformization, whose series gives the time
integral over the step exactly term by term and, rescaled, the likelihood of a long quiet span
without underflow (``Uniformized``); ``at`` jumps applied on the way
(``advance``, ``propagate``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import linalg, sparse

from escalate.errors import EscalateError

__all__ = ["DENSE_STATES", "Stepper", "Uniformized", "advance", "propagate", "walk"]


DENSE_STATES = 1_500  # grid stepping: one dense matrix exponential reused at every step


class Stepper:
    """Advance a distribution by ``h`` along the grid: ``v expm(Q h)``, no integral.

    Dense exponentials are cached per step length, so a regular grid costs one; above
    ``DENSE_STATES`` states, or with fewer ``steps`` to take than an eighth of the states
    (a dense exponential costs about as much as ``n / 8`` steps of ``expm_multiply``: 500
    states over a grid of one step took 40 ms a stage), ``expm_multiply`` steps the vector
    without forming a dense matrix.
    """

    def __init__(self, q: sparse.csr_matrix, steps: int | None = None):
        self.q = q
        self.n = q.shape[0]
        self.dense = self.n <= DENSE_STATES and (steps is None or 8 * steps >= self.n)
        self.cache: dict[float, np.ndarray] = {}
        self.q_t = q.T.tocsr()
        # a small dense chain's Taylor terms: a dense product costs less than scipy's call
        self.q_t_dense = self.q_t.toarray() if self.dense else None
        self.norm = float(abs(q).sum(axis=1).max()) if self.n else 0.0

    def propagate(self, v: np.ndarray, h: float) -> np.ndarray:
        """``v expm(Q h)``: a Taylor series when ``|Q| h`` is small, as inside one grid step
        (brentq's evaluations), which needs no new matrix exponential."""
        if h <= 0.0:
            return v
        pieces = math.ceil(self.norm * h / 2.0)
        if pieces > 16:
            return self.step(v, h)[0]
        if pieces > 1:  # a few short Taylor series: no new exponential for an odd length
            for _ in range(pieces):
                v = self.propagate(v, h / pieces)
            return v
        total, term = v.copy(), v.copy()
        q_t = self.q_t if self.q_t_dense is None else self.q_t_dense
        for k in range(1, 60):
            term = (q_t @ term) * (h / k)
            total += term
            if np.abs(term).max() <= 1e-18:
                break
        return np.maximum(total, 0.0)

    def step(self, v: np.ndarray, h: float) -> tuple[np.ndarray, None]:
        if h <= 0.0:
            return v, None
        if not self.dense:
            from scipy.sparse.linalg import expm_multiply

            return np.maximum(expm_multiply(self.q_t * h, v), 0.0), None
        return np.maximum(v @ self.step_matrix(h), 0.0), None

    def step_matrix(self, h: float) -> np.ndarray:
        """``expm(Q h)`` (dense chains), cached per step length."""
        key = float(h)
        if key not in self.cache:
            exponential = linalg.expm(self.q.toarray() * h)
            if not np.all(np.isfinite(exponential)):
                raise EscalateError(
                    "the exact solver lost precision (rates spanning too many orders of "
                    "magnitude for one step): use escalate run"
                )
            self.cache[key] = exponential
        return self.cache[key]


def advance(chain, stepper, v, t0, t1):
    """Distribution at ``t1`` from ``v`` at ``t0``, applying ``at`` jumps in (t0, t1], and its
    integral over the span when the stepper gives one (else None)."""
    integral = None
    for tau in chain.jumps:
        if t0 < tau <= t1:
            v, part = stepper.step(v, tau - t0)
            integral = part if integral is None else integral + part
            v = np.bincount(chain.jumps[tau], weights=v, minlength=chain.n)
            t0 = tau
    v, part = stepper.step(v, t1 - t0)
    return v, part if integral is None else integral + part


def walk(chain, stepper: Stepper, v0: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The distribution at every point of ``grid`` (rows), from ``v0`` at ``grid[0]``, with
    :func:`advance`'s ``at`` jumps.

    A small dense chain spends its time on a long grid in the Python loop, not the product
    (about 7 microseconds a step against 0.1 for seven states): there a run of equal steps
    with no jump inside is walked by doubling, the rows so far times ``E^k`` for ``k`` = 1, 2,
    4, ... (``E`` the step's exponential), which is about as many flops as the loop plus one
    squaring per doubling, so only where those squarings cost less than the run.
    """
    out = np.empty((len(grid), len(v0)))
    out[0] = v0
    steps = np.diff(grid)
    jumped = np.zeros(len(steps), bool)
    for tau in chain.jumps:
        jumped |= (grid[:-1] < tau) & (tau <= grid[1:])
    # runs of equal steps (to 1e-12) with no jump inside: [first, end) over the steps
    same = np.abs(np.diff(steps)) <= 1e-12 * steps[1:]
    breaks = np.flatnonzero(~same | jumped[1:] | jumped[:-1]) + 1
    for first, end in zip(np.r_[0, breaks], np.r_[breaks, len(steps)], strict=True):
        run = end - first
        if stepper.dense and not jumped[first] and steps[first] > 0:
            if run <= 3 and float(steps[first]) not in stepper.cache:
                # a step or two of an odd length (a date between grid points): Taylor
                # series, not a matrix exponential of their own
                for g in range(first + 1, end + 1):
                    out[g] = stepper.propagate(out[g - 1], steps[g - 1])
                continue
            step = stepper.step_matrix(steps[first])
            if run > 1 and stepper.n * math.log2(run) < 2 * run:
                out[first : end + 1] = _doubled(out[first], step, run)
                continue
            for g in range(first + 1, end + 1):  # Stepper.step without its calls
                np.matmul(out[g - 1], step, out=out[g])
                np.maximum(out[g], 0.0, out=out[g])
            continue
        for g in range(first + 1, end + 1):
            out[g] = advance(chain, stepper, out[g - 1], grid[g - 1], grid[g])[0]
    return out


def _doubled(v: np.ndarray, step: np.ndarray, run: int) -> np.ndarray:
    """``v, v E, v E^2, ..., v E^run`` (rows), by doubling the block of rows."""
    rows, power = v[None, :], step
    while len(rows) <= run:
        rows = np.vstack([rows, rows @ power])
        if len(rows) <= run:
            power = power @ power
    return np.maximum(rows[: run + 1], 0.0)


class Uniformized:
    """Advance a distribution by ``h`` with uniformization, integrating it over the step.

    With ``lam`` at least every exit rate, ``P = I + Q / lam`` is stochastic and
    ``v expm(Q h) = sum_k Poisson(k; lam h) v P^k``; the time integral is
    ``(1 / lam) sum_k P(N > k) v P^k``. All terms are non-negative, so the truncation error is
    the Poisson tail (below 1e-15 here); long steps are cut so that ``lam h <= 100`` (about 190
    terms at most).
    """

    MAX_MEAN = 100.0
    MAX_TERMS = 400

    def __init__(self, q: sparse.csr_matrix, *, numba_series: bool = False):
        self.q_t = q.T.tocsr()
        self.lam = float(-q.diagonal().min()) if q.shape[0] else 0.0
        self.numba_series = (
            numba_series  # the series in one numba call (escalate.engine.uniformize)
        )

    @classmethod
    def transposed(cls, q_t: sparse.csr_matrix, *, numba_series: bool, diagonal: np.ndarray):
        """From the transposed generator; ``diagonal`` marks its diagonal entries."""
        self = cls.__new__(cls)
        self.q_t = q_t
        self.lam = float(-q_t.data[diagonal].min(initial=0.0)) if q_t.shape[0] else 0.0
        self.numba_series = numba_series
        return self

    def step(self, v: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
        if h <= 0.0:
            return v, np.zeros_like(v)
        if self.lam == 0.0:
            return v, v * h
        pieces = max(1, int(np.ceil(self.lam * h / self.MAX_MEAN)))
        total = np.zeros_like(v)
        for _ in range(pieces):
            v, part = self._piece(v, h / pieces)
            total += part
        return v, total

    def scaled(self, v: np.ndarray, h: float) -> tuple[np.ndarray, float]:
        """``v expm(Q h)`` on the log scale, as ``(u, log_mass)`` with ``u`` summing to 1:
        rescaled after every piece of the series (each loses at most a factor e^-100), so that
        a long span of a leaking chain (a quiet record: e^-900 after 600 days at 1.5 a day)
        does not underflow. ``log_mass`` is -inf, and ``u`` zero, when nothing survives."""
        moves = h > 0.0 and self.lam > 0.0  # else nothing leaves: v stays as it is
        pieces = max(1, int(np.ceil(self.lam * h / self.MAX_MEAN))) if moves else 0
        log_mass = 0.0
        for _ in range(pieces):
            v, _ = self._piece(v, h / pieces)
            total = float(v.sum())
            if not total > 0.0:
                return np.zeros_like(v), -math.inf
            log_mass += math.log(total)
            v = v / total
        total = float(v.sum())
        if not total > 0.0:
            return np.zeros_like(v), -math.inf
        return v / total, log_mass + math.log(total)

    def _piece(self, v, h):
        a = self.lam * h
        if self.numba_series:
            from escalate.engine.uniformize import uniformized_piece

            q_t = self.q_t
            return uniformized_piece(
                q_t.indptr, q_t.indices, q_t.data, v, self.lam, a, self.MAX_TERMS
            )
        weight = np.exp(-a)  # Poisson(0; a)
        tail = -math.expm1(-a)  # P(N > 0), exact even when a is tiny (1 - weight is not)
        term, out, integral = v, v * weight, v * tail
        # Stop once past the mode and the remaining Poisson mass, bounded by a geometric series
        # with ratio a / (k + 1), is negligible: a test on ``tail`` alone can stall on rounding.
        k = 0
        while k < self.MAX_TERMS and not (k + 1 > a and weight * a / (k + 1 - a) < 1e-17):
            k += 1
            term = term + (self.q_t @ term) / self.lam
            weight *= a / k
            tail -= weight
            out = out + term * weight
            integral = integral + term * max(tail, 0.0)
        return np.maximum(out, 0.0), integral / self.lam


def propagate(chain, stepper, v, t0, t1):
    """Like :func:`advance` without the integral, for short spans inside a grid step."""
    for tau in chain.jumps:
        if t0 < tau <= t1:
            v = stepper.propagate(v, tau - t0)
            v = np.bincount(chain.jumps[tau], weights=v, minlength=chain.n)
            t0 = tau
    return stepper.propagate(v, t1 - t0)
