"""The exact solution of a memoryless scenario, on the continuous-time Markov chain of
(stage, set of triggers on) that ``engine.chain`` builds from the same compiled arrays as the
kernel, stepped in time by ``engine.stepping``.

Method. The chain is time-homogeneous between ``at`` times, where a deterministic jump switches
triggers on. Curves: the distribution is stepped along the time grid with ``expm(Q h)``, one
matrix exponential per distinct step length (``scipy.linalg.expm`` up to ``DENSE_STATES``
states, ``scipy.sparse.linalg.expm_multiply`` beyond). Reach curves come from the same chain
with the target stage made absorbing; quantiles of the time to reach solve
``F(t) = q F(horizon)`` with ``brentq`` inside the bracketing grid step. Figures at the horizon
(time in stage, mean time to reach) need integrals of the distribution over time: the chain
and its absorbing copies are stacked block-diagonally and advanced together by uniformization,
whose series gives the integral exactly term by term (no quadrature error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from escalate.engine.chain import Chain, NotMemoryless, chain_of
from escalate.engine.compile import EXPONENTIAL, KIND_NAMES, CompiledScenario
from escalate.engine.stepping import (
    DENSE_STATES,
    Stepper,
    Uniformized,
    advance,
    propagate,
    walk,
)
from escalate.errors import EscalateError

__all__ = ["ExactSolution", "HorizonFigures", "solve_at_horizon", "solve_chain"]

MAX_STACKED = 2_000_000  # states of the chains advanced together at the horizon (in groups)
MAX_CURVE_WORK = 3e10  # multiply-adds to step every chain along the grid (about 20 s here)
MAX_CURVE_BYTES = 1024**3  # one reach curve's distributions on the grid
MAX_JUMPS = 1e6  # fastest exit rate x horizon: the uniformization series' length, about
QUANTILES = (0.1, 0.5, 0.9)


@dataclass
class ExactSolution:
    """Exact figures on the compiled scenario's grid (arrays indexed by stage or trigger)."""

    occupancy: np.ndarray  # (S, G)
    reached: np.ndarray  # (S, G)
    time_in: np.ndarray  # (S,)
    p_fired: np.ndarray  # (K,)
    time_to_reach: list[dict[str, float | None]]  # per stage: mean, p10, p50, p90
    n_states: int
    p_on_at_horizon: np.ndarray  # (K,)
    time_on: np.ndarray  # (K,)


@dataclass
class HorizonFigures:
    """Exact figures at the horizon only (no curves, no quantiles): fast enough for thousands
    of parameter sets."""

    p_reached: np.ndarray  # (S,)
    p_at_horizon: np.ndarray  # (S,)
    time_in: np.ndarray  # (S,)
    mean_time_to_reach: np.ndarray  # (S,) E[T | T <= horizon], nan where never reached
    p_fired: np.ndarray  # (K,)
    p_on_at_horizon: np.ndarray  # (K,)
    time_on: np.ndarray  # (K,)


def _memoryless(c: CompiledScenario) -> None:
    if not c.is_markov:
        row = int(np.flatnonzero(c.kind != EXPONENTIAL)[0])
        raise NotMemoryless(int(c.order[row]), KIND_NAMES[int(c.kind[row])])


def _absorbing(chain: Chain, target: np.ndarray) -> sparse.csr_matrix:
    """The chain with the ``target`` states made absorbing: their rows emptied."""
    q = chain.q.tocsr(copy=True)
    rows = np.repeat(np.arange(q.shape[0]), np.diff(q.indptr))
    q.data[target[rows]] = 0.0
    q.eliminate_zeros()
    return q


def _lumped(chain: Chain, target: np.ndarray, way_out: np.ndarray):
    """The chain made absorbing at ``target`` on fewer states: the target's states merged
    into one, and the states nothing leaves (terminal stages) into another. The mass in the
    target at every time is the same as on the full absorbing chain; a stage's first entry
    of the shipped scenario walks 130 states instead of 228 (an exponential a sixth the
    cost). Returns the generator and each state's state in it (the target's: the one after
    the kept states). Only for a chain without ``at`` jumps, whose map is over all states."""
    keep = ~target & (way_out > 0)
    kept = int(keep.sum())
    index = np.full(chain.n, kept + 1)  # nothing leaves
    index[keep] = np.arange(kept)
    index[target] = kept
    q = chain.q.tocoo()
    rows = keep[q.row]  # the target's and the dead states' rows stay empty: absorbing
    small = sparse.csr_matrix(
        (q.data[rows], (index[q.row[rows]], index[q.col[rows]])), shape=(kept + 2, kept + 2)
    )  # several target columns into one: their rates add up
    return small, index


def _check_speed(chain: Chain, horizon: float) -> None:
    """Refuse chains whose fastest exit makes the uniformization series too long."""
    fastest = float(-chain.q.diagonal().min()) if chain.n else 0.0
    if not np.isfinite(fastest) or fastest * horizon > MAX_JUMPS:
        raise EscalateError(
            f"the fastest way out of a state (rate {fastest:.3g} per time unit) makes about "
            f"{fastest * horizon:.3g} expected jumps over the horizon ({horizon:g}); the exact "
            f"solver stops beyond {MAX_JUMPS:.0e}: slow that cycle down, shorten the horizon, "
            "or use escalate run"
        )


def solve_at_horizon(
    c: CompiledScenario,
    *,
    occupancy: bool = True,
    reach: list[int] | None = None,
    chain: Chain | None = None,
    numba_series: bool = False,
) -> HorizonFigures:
    """Exact probabilities, times in stage and mean times to reach at the horizon only.

    The chain itself (for occupancy) and one chain per stage made absorbing there (for first
    entry) are stacked block-diagonally and advanced together by one uniformized propagation
    per ``at`` segment: one sparse product per Poisson term serves them all, which is what
    makes thousands of exact worlds take seconds. ``occupancy=False`` skips p_at_horizon,
    time_in and the trigger figures (left nan); ``reach`` limits the first-entry chains
    (p_reached, mean time to reach) to those stages. A trigger that can switch off gets a
    chain of its own, absorbing once it is on, for ``p_fired``; for the others being on at the
    horizon is having fired. ``numba_series`` runs the series in numba (see
    :mod:`escalate.engine.uniformize`): for jobs that solve many parameter sets.
    """
    _memoryless(c)
    chain = chain_of(c) if chain is None else chain
    n_s, n_k, n, horizon = c.n_stages, c.n_triggers, chain.n, c.horizon
    # the chains to advance: None for the chain itself (occupancy), a stage index (first
    # entry), or ("fired", k) for a trigger that can switch off
    fired_jobs = [("fired", k) for k in range(n_k) if occupancy and c.can_switch_off(k)]
    jobs: list = (
        ([None] if occupancy else [])
        + (list(range(n_s)) if reach is None else list(reach))
        + fired_jobs
    )
    nan_s, nan_k = np.full(n_s, np.nan), np.full(n_k, np.nan)
    p_at_horizon, time_in = nan_s.copy(), nan_s.copy()
    p_fired, p_on, time_on = nan_k.copy(), nan_k.copy(), nan_k.copy()
    p_reached, mean = nan_s.copy(), nan_s.copy()
    if not jobs:
        return HorizonFigures(p_reached, p_at_horizon, time_in, mean, p_fired, p_on, time_on)
    _check_speed(chain, horizon)
    group = max(1, MAX_STACKED // max(n, 1))  # chains stacked at a time: bounded memory
    fired: dict[int, float] = {}
    for first in range(0, len(jobs), group):
        part = jobs[first : first + group]
        v, area = advance(
            _Stacked(chain, len(part)),
            _stacked_uniformized(chain, part, numba_series),
            np.tile(chain.p0, len(part)),
            0.0,
            horizon,
        )
        v, area = v.reshape(len(part), n), area.reshape(len(part), n)
        for b, s in enumerate(part):
            if s is None:
                p_at_horizon = np.clip(
                    np.bincount(chain.stage_of, weights=v[b], minlength=n_s), 0, 1
                )
                time_in = np.bincount(chain.stage_of, weights=area[b], minlength=n_s)
                bits = [(chain.mask_of >> k) & 1 == 1 for k in range(n_k)]
                p_on = np.clip([v[b][on].sum() for on in bits], 0, 1)
                time_on = np.array([area[b][on].sum() for on in bits], dtype=float)
                p_fired = p_on.copy()  # until a trigger that can switch off says otherwise
                continue
            target = _target(chain, s)
            if isinstance(s, tuple):
                fired[s[1]] = min(max(v[b][target].sum(), 0.0), 1.0)
                continue
            p_reached[s] = min(max(v[b][target].sum(), 0.0), 1.0)
            if p_reached[s] > 0:
                mean[s] = horizon - area[b][target].sum() / p_reached[s]
                mean[s] = 0.0 if mean[s] < 1e-9 * horizon else mean[s]  # rounding at the start
    for k, value in fired.items():
        p_fired[k] = value
    return HorizonFigures(p_reached, p_at_horizon, time_in, mean, p_fired, p_on, time_on)


def _stacked_uniformized(chain: Chain, part: list, numba_series: bool) -> Uniformized:
    """The chains of ``part`` (see :func:`solve_at_horizon`) side by side, transposed, ready
    to advance. Their sparsity pattern depends on the chain's structure alone: it is built
    once per structure and set of chains (kept with the chain's template), and each parameter
    set only fills in its values (absorbing rows as explicit zeros)."""
    key = tuple(part)
    stacks = chain._stacks
    if key not in stacks:
        q = chain.q
        n, entries = chain.n, len(q.data)
        rows = np.repeat(np.arange(n), np.diff(q.indptr))
        blocks, keeps = [], []
        for job in part:
            keep = np.ones(entries) if job is None else (~_target(chain, job)[rows]).astype(float)
            # data: the position of each entry in q.data, plus one (no explicit zero to drop)
            blocks.append(sparse.csr_matrix((np.arange(1.0, entries + 1), q.indices, q.indptr)))
            keeps.append(keep)
        stacked = sparse.block_diag(blocks, format="csr").T.tocsr()
        position = stacked.data.astype(np.int64) - 1
        # each stacked entry's block, from its row: stacked row r belongs to block r // n
        block = np.repeat(np.arange(stacked.shape[0]) // n, np.diff(stacked.indptr))
        keep = np.stack(keeps)[block, position]
        diagonal = np.repeat(np.arange(stacked.shape[0]), np.diff(stacked.indptr)) == (
            stacked.indices
        )
        stacks[key] = (stacked, position, keep, diagonal)
    stacked, position, keep, diagonal = stacks[key]
    q_t = stacked.copy()
    q_t.data = chain.q.data[position] * keep
    return Uniformized.transposed(q_t, numba_series=numba_series, diagonal=diagonal)


def _target(chain: Chain, job) -> np.ndarray:
    """The states a first-entry chain absorbs in: a stage, or ("fired", k) trigger k on."""
    if isinstance(job, tuple):
        return (chain.mask_of >> job[1]) & 1 == 1
    return chain.stage_of == job


class _Stacked:
    """``copies`` copies of a chain side by side: its size and ``at`` jumps, offset per copy."""

    def __init__(self, chain: Chain, copies: int):
        self.n = chain.n * copies
        offsets = np.repeat(np.arange(copies) * chain.n, chain.n)
        self.jumps = {t: np.tile(moved, copies) + offsets for t, moved in chain.jumps.items()}


def solve_chain(
    c: CompiledScenario, *, chain: Chain | None = None, numba_series: bool = False
) -> ExactSolution:
    """Solve a compiled memoryless scenario exactly on its time grid.

    ``chain``: its chain, if built already (``Chain.with_rates`` of a template of the same
    structure); ``numba_series``: the horizon figures' series in numba (worth its loading
    where one process solves many times, as the explorer does).

    Raises
    ------
    NotMemoryless
        If a transition timing is not exponential.
    EscalateError
        If the reachable joint space exceeds ``MAX_STATES``.
    """
    _memoryless(c)
    chain = Chain(c) if chain is None else chain
    _check_speed(chain, c.horizon)
    grid = c.grid
    # one chain per stage (and one for occupancy) stepped along the grid: refuse what would
    # take minutes, with the figures that make it long
    step_cost = chain.n**2 if chain.n <= DENSE_STATES else 20 * chain.q.nnz
    work = (c.n_stages + 1) * len(grid) * step_cost
    if work > MAX_CURVE_WORK:
        raise EscalateError(
            f"exact curves for {c.n_stages} stages over {chain.n:,} joint states on a grid of "
            f"{len(grid):,} points would take about {work:.1e} operations (at most "
            f"{MAX_CURVE_WORK:.0e}): a shorter horizon, fewer stages or triggers, or escalate run"
        )
    # each reach curve keeps the distribution at every grid point (for its quantiles)
    needed = 8 * chain.n * len(grid)
    if needed > MAX_CURVE_BYTES:
        raise EscalateError(
            f"{chain.n:,} joint states on a time grid of {len(grid):,} points need "
            f"{needed / 1024**3:.1f} GiB for the exact curves (at most "
            f"{MAX_CURVE_BYTES / 1024**3:.0f} GiB): a shorter horizon, or escalate run"
        )
    n_s, n_g = c.n_stages, len(grid)

    stepper = Stepper(chain.q, steps=len(grid) - 1)
    walked = walk(chain, stepper, chain.p0.copy(), grid)  # (grid points, states)
    occupancy = _by_stage(walked, chain.stage_of, n_s)
    v = walked[-1]
    way_out = np.asarray(abs(chain.q).sum(axis=1)).ravel()  # 0: a state nothing leaves
    p_on = np.array(
        [v[(chain.mask_of >> k) & 1 == 1].sum() for k in range(c.n_triggers)], dtype=float
    )
    at_horizon = solve_at_horizon(c, chain=chain, numba_series=numba_series)
    switching = [c.can_switch_off(k) for k in range(c.n_triggers)]
    p_fired = np.where(switching, at_horizon.p_fired, p_on)

    reached = np.zeros((n_s, n_g))

    def first_entry(s: int) -> dict:
        target = chain.stage_of == s
        if chain.p0[target].sum() == 1.0:  # every trajectory starts there: reached at 0
            reached[s] = 1.0
            absorbing, vectors = stepper, None  # no quantile needs them
        elif not way_out[target].any():
            # its states have no way out already (a terminal stage): absorbing as it is, so
            # the walk of the chain itself serves (its occupancy is the reach curve; `at`
            # jumps only switch triggers, within the stage)
            reached[s] = occupancy[s]
            absorbing, vectors = stepper, walked
        elif not chain.jumps:
            small, index = _lumped(chain, target, way_out)
            absorbing = Stepper(small, steps=len(grid) - 1)
            vectors = walk(chain, absorbing, np.bincount(index, chain.p0, small.shape[0]), grid)
            target = np.arange(small.shape[0]) == index[np.flatnonzero(target)[0]]
            reached[s] = vectors[:, target].sum(axis=1)
        else:
            absorbing = Stepper(_absorbing(chain, target), steps=len(grid) - 1)
            vectors = walk(chain, absorbing, chain.p0.copy(), grid)
            reached[s] = vectors[:, target].sum(axis=1)
        return _time_to_reach(
            chain, absorbing, target, grid, reached[s], vectors, at_horizon.mean_time_to_reach[s]
        )

    time_to_reach = [first_entry(s) for s in range(n_s)]
    return ExactSolution(
        occupancy=np.clip(occupancy, 0.0, 1.0),
        reached=np.clip(reached, 0.0, 1.0),
        time_in=at_horizon.time_in,
        p_fired=np.clip(p_fired, 0.0, 1.0),
        time_to_reach=time_to_reach,
        n_states=chain.n,
        p_on_at_horizon=np.clip(p_on, 0.0, 1.0),
        time_on=at_horizon.time_on,
    )


def _by_stage(walked: np.ndarray, stage_of: np.ndarray, n_stages: int) -> np.ndarray:
    """Per stage, the mass of its states at each grid point: (stages, grid points)."""
    indicator = np.zeros((len(stage_of), n_stages))
    indicator[np.arange(len(stage_of)), stage_of] = 1.0
    return (walked @ indicator).T


def _crossing(chain, stepper, target, v0, t0, t1, goal, before, after) -> float:
    """The time in ``(t0, t1)`` at which the absorbed mass in ``target`` reaches ``goal``,
    from the distribution ``v0`` at ``t0`` (``before`` < ``goal`` < ``after``, the masses at
    the ends).

    Newton's method on the absorbed mass, whose derivative is the flow into ``target``, kept
    inside a shrinking bracket (a step that leaves it bisects instead), to 1e-12 of the time.
    It needs no root finder from scipy.optimize, whose import alone costs ``solve`` a tenth of
    a second.
    """
    lo, hi = t0, t1
    tolerance = 1e-12 * max(1.0, t1)
    t = t0 + (t1 - t0) * (goal - before) / (after - before)  # the secant: a first guess
    for _ in range(200):
        v = propagate(chain, stepper, v0, t0, t)
        gap = v[target].sum() - goal
        if gap == 0.0:
            return float(t)
        if gap > 0.0:
            hi = t
        else:
            lo = t
        flow = (stepper.q_t @ v)[target].sum()
        step = t - gap / flow if flow > 0.0 else math.nan
        following = step if lo < step < hi else (lo + hi) / 2
        if abs(following - t) <= tolerance or hi - lo <= tolerance:
            return float(following)
        t = following
    return float(t)


def _time_to_reach(chain, stepper, target, grid, curve, vectors, mean):
    final = curve[-1]
    keys = ("mean", *(f"p{round(q * 100)}" for q in QUANTILES))
    if final <= 0.0 or not np.isfinite(mean):
        return dict.fromkeys(keys)
    out: dict[str, float | None] = {"mean": float(mean)}
    for q in QUANTILES:
        goal = q * final
        if curve[0] >= goal:
            out[f"p{round(q * 100)}"] = 0.0
            continue
        g = int(np.searchsorted(curve, goal, side="left"))
        t0, t1 = grid[g - 1], grid[g]

        at_end = propagate(chain, stepper, vectors[g - 1], t0, t1)[target].sum()
        if at_end <= goal:
            out[f"p{round(q * 100)}"] = float(t1)
        else:
            out[f"p{round(q * 100)}"] = _crossing(
                chain, stepper, target, vectors[g - 1], t0, t1, goal, curve[g - 1], at_end
            )
    return out
