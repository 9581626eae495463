"""The exact solution of a memoryless scenario: a continuous-time Markov chain on
(stage, set of triggers on), built from the same compiled arrays as the kernel.

Method. Only the part of the joint state space reachable from the start is built (breadth-first
over transitions, onsets and ``at`` switches). The chain is time-homogeneous between ``at``
times, where a deterministic jump switches triggers on. Curves: the distribution is stepped
along the time grid with ``expm(Q h)``, one matrix exponential per distinct step length
(``scipy.linalg.expm`` up to ``DENSE_STATES`` states, ``scipy.sparse.linalg.expm_multiply``
beyond). Reach curves come from the same chain with the target stage made absorbing; quantiles of
the time to reach solve ``F(t) = q F(horizon)`` with ``brentq`` inside the bracketing grid step.
Figures at the horizon (time in stage, mean time to reach) need integrals of the distribution
over time: the chain and its absorbing copies are stacked block-diagonally and advanced together
by uniformization, whose series gives the integral exactly term by term (no quadrature error).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse

from escalate.engine.compile import EXPONENTIAL, KIND_NAMES, CompiledScenario
from escalate.errors import EscalateError

__all__ = [
    "DENSE_STATES",
    "MAX_STATES",
    "ExactSolution",
    "HorizonFigures",
    "NotMemoryless",
    "leaking_series",
    "solve_at_horizon",
    "solve_chain",
]

MAX_STATES = 50_000
MAX_STACKED = 2_000_000  # states of the chains advanced together at the horizon (in groups)
MAX_CURVE_WORK = 3e10  # multiply-adds to step every chain along the grid (about 20 s here)
MAX_CURVE_BYTES = 1024**3  # one reach curve's distributions on the grid
MAX_JUMPS = 1e6  # fastest exit rate x horizon: the uniformization series' length, about
DENSE_STATES = 1_500  # grid stepping: one dense matrix exponential reused at every step
QUANTILES = (0.1, 0.5, 0.9)


class NotMemoryless(EscalateError):
    """The scenario has a non-exponential timing; ``transition`` is its index in the file."""

    def __reduce__(self):  # picklable, so a Dask task can raise it
        return type(self), (self.transition, self.kind)

    def __init__(self, transition: int, kind: str):
        self.transition = transition
        self.kind = kind
        super().__init__(
            f"a {kind} delay is not memoryless: solve needs exponential timings "
            "(rate, mean, chance + within, after: exponential); use escalate run"
        )


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


class _Chain:
    """The reachable joint chain: states (stage, mask), generator, jumps at ``at`` times."""

    def __init__(self, c: CompiledScenario):
        self.c = c
        # plain Python lists: the search below reads them thousands of times a solve, and
        # indexing a list costs a fraction of indexing an array (same float64 values)
        self._n_k = c.n_triggers
        self._ratio = c.ratio.tolist()
        self._requires = [int(r) for r in c.requires]
        self._switch_rates = (c.onset_rate.tolist(), c.offset_rate.tolist())
        self._switch_ratios = (c.onset_ratio.tolist(), c.offset_ratio.tolist())
        self._has_effects = bool(np.any(np.diff(c.effect_start) > 0))
        initial = self._initial_distribution()
        at_times = sorted({float(t) for t in c.onset_at if 0.0 < t <= c.horizon})
        self.at_bits = {
            t: int(sum(1 << k for k in range(c.n_triggers) if c.onset_at[k] == t)) for t in at_times
        }
        index: dict[tuple[int, int], int] = {}
        states: list[tuple[int, int]] = []
        rows, cols, rates = [], [], []

        def visit(state):
            if state not in index:
                if len(states) >= MAX_STATES:
                    raise EscalateError(
                        f"the joint space of stages and triggers on exceeds {MAX_STATES:,} "
                        "reachable states; solve cannot handle it: use escalate run"
                    )
                index[state] = len(states)
                states.append(state)
            return index[state]

        for state in initial:
            visit(state)
        terminal, out_start = c.terminal.tolist(), c.out_start.tolist()
        p1, target = c.p1.tolist(), c.target.tolist()
        # each entry of the generator: what it is (a transition j leaving mask for after, or
        # a switch of trigger k in stage s), so that another parameter set reuses the states
        # and recomputes only the rates (see with_rates)
        kinds, which, stages_, masks_, afters = [], [], [], [], []
        i = 0
        while i < len(states):
            s, mask = states[i]
            if not terminal[s]:
                for j in range(out_start[s], out_start[s + 1]):
                    rate = p1[j] * self.speed(j, mask)
                    if rate > 0.0:
                        outcomes = self.effects(j, mask) if self._has_effects else {mask: 1.0}
                        for after, p in outcomes.items():
                            if p > 0.0:
                                rows.append(i)
                                cols.append(visit((target[j], after)))
                                rates.append(rate * p)
                                kinds.append(0)
                                which.append(j)
                                stages_.append(s)
                                masks_.append(mask)
                                afters.append(after)
                for k in range(self._n_k):
                    rate = self.switch_hazard(k, s, mask)
                    if rate > 0.0:
                        rows.append(i)
                        cols.append(visit((s, mask ^ (1 << k))))
                        rates.append(rate)
                        kinds.append(1)
                        which.append(k)
                        stages_.append(s)
                        masks_.append(mask)
                        afters.append(mask ^ (1 << k))
                for bits in self.at_bits.values():
                    visit((s, mask | bits))
            i += 1
        n = len(states)
        self.states = states
        self.index = index
        self.n = n
        self._rows, self._cols = np.array(rows, np.int64), np.array(cols, np.int64)
        self._kind = np.array(kinds, np.int64)
        self._which, self._stage = np.array(which, np.int64), np.array(stages_, np.int64)
        self._mask, self._after = np.array(masks_, np.int64), np.array(afters, np.int64)
        self._set_generator(np.array(rates, float), initial)
        self._stacks: dict = {}  # stacked chains' patterns, shared by with_rates copies
        self.stage_of = np.array([s for s, _ in states], dtype=np.int64)
        self.mask_of = np.array([m for _, m in states], dtype=np.int64)
        self.jumps = {}
        for t, bits in self.at_bits.items():
            moved = np.array(
                [index[(s, m | bits)] if not c.terminal[s] else index[(s, m)] for s, m in states],
                dtype=np.int64,
            )
            self.jumps[t] = moved

    def _set_generator(self, rates: np.ndarray, initial: dict) -> None:
        """The generator from the entries' ``rates`` (the diagonal: minus each row's sum) and
        the start distribution. The sparsity pattern is the chain's: computed once, it takes
        each parameter set's values by one weighted count."""
        n = self.n
        if not hasattr(self, "_slot"):
            keys = np.concatenate([self._rows * n + self._cols, np.arange(n) * (n + 1)])
            unique, self._slot = np.unique(keys, return_inverse=True)
            self._pattern = sparse.csr_matrix(
                (np.zeros(len(unique)), (unique // n, unique % n)), shape=(n, n)
            )
        out = np.bincount(self._rows, weights=rates, minlength=n)
        values = np.concatenate([rates, -out])
        q = self._pattern.copy()
        q.data = np.bincount(self._slot, weights=values, minlength=len(q.data))
        self.q = q
        self.p0 = np.zeros(n)
        for state, p in initial.items():
            self.p0[self.index[state]] += p

    def with_rates(self, c: CompiledScenario) -> _Chain:
        """This chain's states and entries with the rates and start of ``c``: a scenario of
        the same structure (:func:`structure_key`) and other numbers. Rebuilding the states
        in Python is most of a small solve; this recomputes the rates with numpy."""
        chain = copy.copy(self)
        chain.c = c
        bits = (self._mask[:, None] >> np.arange(c.n_triggers)) & 1  # (entries, K)
        rates = np.empty(len(self._kind))
        moves = self._kind == 0
        j = self._which[moves]
        ratios = np.where(bits[moves] == 1, c.ratio[j], 1.0)
        rates[moves] = c.p1[j] * np.prod(ratios, axis=1)
        if self._has_effects:
            entries, effects, on = self._effect_factors()
            value = c.effect_value[effects]
            factor = np.ones(len(rates))
            np.multiply.at(factor, entries, np.where(on, value, 1.0 - value))
            rates *= factor
        switches = ~moves
        k, st, on = self._which[switches], self._stage[switches], bits[switches]
        is_on = on[np.arange(len(k)), k] == 1
        base = np.where(is_on, c.offset_rate[k, st], c.onset_rate[k, st])
        table = np.where(is_on[:, None], c.offset_ratio[k, st], c.onset_ratio[k, st])
        rates[switches] = base * np.prod(np.where(on == 1, table, 1.0), axis=1)
        chain._set_generator(rates, chain._initial_distribution())
        return chain

    def _effect_factors(self):
        """How each move's rate depends on its transition's effects, worked out once per
        structure (as :meth:`effects` applies them): which effects are chances (0 < p < 1)
        and which way each went to reach the entry's trigger set is the structure's, only
        the chances' values vary. Returns (entry, effect, went on) arrays: the entry's rate
        is multiplied by p where the chance went on and by 1 - p where it did not. A
        transition's effects name each trigger once, so one way leads to each set."""
        if not hasattr(self, "_factors"):
            c = self.c
            entries, effects, on = [], [], []
            for e in np.flatnonzero(self._kind == 0):
                j, mask, after = int(self._which[e]), int(self._mask[e]), int(self._after[e])
                ways: dict[int, list[list[tuple[int, bool]]]] = {mask: [[]]}
                for x in range(c.effect_start[j], c.effect_start[j + 1]):
                    bit, value = 1 << int(c.effect_trigger[x]), float(c.effect_value[x])
                    grown: dict[int, list] = {}
                    for m, paths in ways.items():
                        if value < 0.0:
                            branches = [(m & ~bit, [])]
                        elif m & bit or value <= 0.0:
                            branches = [(m, [])]
                        elif value >= 1.0:
                            branches = [(m | bit, [])]
                        else:
                            branches = [(m | bit, [(x, True)]), (m, [(x, False)])]
                        for m2, step in branches:
                            grown.setdefault(m2, []).extend(path + step for path in paths)
                    ways = grown
                (way,) = ways[after]
                for x, went_on in way:
                    entries.append(e)
                    effects.append(x)
                    on.append(went_on)
            self._factors = (
                np.array(entries, np.int64),
                np.array(effects, np.int64),
                np.array(on, bool),
            )
        return self._factors

    def speed(self, j: int, mask: int) -> float:
        required = self._requires[j]
        if (required & mask) != required:
            return 0.0
        return _times_ratios_on(1.0, self._ratio[j], mask)

    def switch_hazard(self, k: int, s: int, mask: int) -> float:
        """The hazard of trigger ``k`` switching (on if off, off if on) in ``(s, mask)``."""
        on = (mask >> k) & 1
        rate = self._switch_rates[on][k][s]
        if rate == 0.0:
            return 0.0
        return _times_ratios_on(rate, self._switch_ratios[on][k][s], mask)

    def effects(self, j: int, mask: int) -> dict[int, float]:
        """The trigger sets transition ``j`` leaves from ``mask``, with their probabilities
        (its effects applied in order: a probability branches the jump)."""
        c = self.c
        outcomes = {mask: 1.0}
        for e in range(c.effect_start[j], c.effect_start[j + 1]):
            bit, value = 1 << int(c.effect_trigger[e]), float(c.effect_value[e])
            after: dict[int, float] = {}
            for m, p in outcomes.items():
                if value < 0.0:
                    branches = [(m & ~bit, p)]
                elif m & bit or value <= 0.0:
                    branches = [(m, p)]
                elif value >= 1.0:
                    branches = [(m | bit, p)]
                else:
                    branches = [(m | bit, p * value), (m, p * (1.0 - value))]
                for m2, q in branches:
                    after[m2] = after.get(m2, 0.0) + q
            outcomes = after
        return outcomes

    def _initial_distribution(self) -> dict[tuple[int, int], float]:
        c = self.c
        masks = {0: 1.0}
        for k in range(c.n_triggers):
            p = 1.0 if c.onset_at[k] <= 0.0 else float(c.initial[k])
            nxt: dict[int, float] = {}
            for mask, q in masks.items():
                if p > 0.0:
                    nxt[mask | (1 << k)] = nxt.get(mask | (1 << k), 0.0) + q * p
                if p < 1.0:
                    nxt[mask] = nxt.get(mask, 0.0) + q * (1.0 - p)
            masks = nxt
            if len(masks) > MAX_STATES:
                raise EscalateError(
                    f"the triggers' initial states alone make more than {MAX_STATES:,} "
                    "combinations; solve cannot handle it: use escalate run"
                )
        start = np.diff(np.concatenate([[0.0], c.start_cdf]))
        return {
            (s, mask): float(start[s]) * q
            for s in range(c.n_stages)
            if start[s] > 0
            for mask, q in masks.items()
        }


def structure_key(c: CompiledScenario) -> bytes:
    """What decides the reachable states and the generator's entries of ``c``: the graph, and
    which numbers are 0, 1 or in between (not their values). Two scenarios with one key share
    their states; only their rates differ."""
    at_times = sorted({float(t) for t in c.onset_at if 0.0 < t <= c.horizon})
    parts = [
        c.out_start, c.target, c.terminal, c.requires, c.effect_start, c.effect_trigger,
        c.p1 > 0, c.ratio > 0, c.onset_rate > 0, c.offset_rate > 0, c.onset_ratio > 0,
        c.offset_ratio > 0, c.effect_value > 0, c.effect_value >= 1, c.effect_value < 0,
        c.initial > 0, c.initial >= 1, c.onset_at <= 0, np.diff(c.start_cdf, prepend=0.0) > 0,
        np.array([c.onset_at[k] == t for k in range(c.n_triggers) for t in at_times]),
    ]  # fmt: skip
    return b"|".join(np.ascontiguousarray(p).tobytes() for p in parts) + repr(at_times).encode()


_CHAINS: dict[bytes, _Chain] = {}  # a few recent structures (worlds share theirs)
_LAST: list = []  # the last chain given, with its structure and numbers


def chain_of(c: CompiledScenario) -> _Chain:
    """The joint chain of ``c``, reusing the states of a recent scenario of the same structure
    (thousands of worlds of one scenario build their states once)."""
    key = structure_key(c)
    numbers = b"|".join(
        np.ascontiguousarray(a).tobytes()
        for a in (c.p1, c.ratio, c.onset_rate, c.offset_rate, c.onset_ratio, c.offset_ratio,
                  c.initial, c.effect_value, c.start_cdf)
    )  # fmt: skip
    if _LAST and _LAST[0] == key and _LAST[1] == numbers:
        return _LAST[2]  # the same numbers again (one world cut at several horizons)
    template = _CHAINS.get(key)
    if template is None:
        template = _Chain(c)
        if len(_CHAINS) >= 8:
            _CHAINS.pop(next(iter(_CHAINS)))
        _CHAINS[key] = template
        chain = template
    else:
        chain = template.with_rates(c)
    _LAST[:] = [key, numbers, chain]
    return chain


def _times_ratios_on(value: float, ratios: list[float], mask: int) -> float:
    """``value`` times the ratio of each trigger on in ``mask``, in trigger order."""
    k = 0
    while mask:
        if mask & 1:
            value *= ratios[k]
        mask >>= 1
        k += 1
    return value


class _Stepper:
    """Advance a distribution by ``h`` along the grid: ``v expm(Q h)``, no integral.

    Dense exponentials are cached per step length, so a regular grid costs one; above
    ``DENSE_STATES`` states ``expm_multiply`` steps the vector without forming a dense matrix.
    """

    def __init__(self, q: sparse.csr_matrix):
        self.q = q
        self.n = q.shape[0]
        self.dense = self.n <= DENSE_STATES
        self.cache: dict[float, np.ndarray] = {}
        self.q_t = q.T.tocsr()
        self.norm = float(abs(q).sum(axis=1).max()) if self.n else 0.0

    def propagate(self, v: np.ndarray, h: float) -> np.ndarray:
        """``v expm(Q h)``: a Taylor series when ``|Q| h`` is small, as inside one grid step
        (brentq's evaluations), which needs no new matrix exponential."""
        if h <= 0.0:
            return v
        if self.norm * h > 2.0:
            return self.step(v, h)[0]
        total, term = v.copy(), v.copy()
        for k in range(1, 60):
            term = (self.q_t @ term) * (h / k)
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
        key = float(h)
        if key not in self.cache:
            exponential = linalg.expm(self.q.toarray() * h)
            if not np.all(np.isfinite(exponential)):
                raise EscalateError(
                    "the exact solver lost precision (rates spanning too many orders of "
                    "magnitude for one step): use escalate run"
                )
            self.cache[key] = exponential
        return np.maximum(v @ self.cache[key], 0.0), None


def _advance(chain, stepper, v, t0, t1):
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


def _absorbing(chain: _Chain, target: np.ndarray) -> sparse.csr_matrix:
    """The chain with the ``target`` states made absorbing: their rows emptied."""
    q = chain.q.tocsr(copy=True)
    rows = np.repeat(np.arange(q.shape[0]), np.diff(q.indptr))
    q.data[target[rows]] = 0.0
    q.eliminate_zeros()
    return q


def _check_speed(chain: _Chain, horizon: float) -> None:
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
    chain: _Chain | None = None,
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
        v, area = _advance(
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


def _stacked_uniformized(chain: _Chain, part: list, numba_series: bool) -> _Uniformized:
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
    return _Uniformized.transposed(q_t, numba_series=numba_series, diagonal=diagonal)


def _target(chain: _Chain, job) -> np.ndarray:
    """The states a first-entry chain absorbs in: a stage, or ("fired", k) trigger k on."""
    if isinstance(job, tuple):
        return (chain.mask_of >> job[1]) & 1 == 1
    return chain.stage_of == job


class _Stacked:
    """``copies`` copies of a chain side by side: its size and ``at`` jumps, offset per copy."""

    def __init__(self, chain: _Chain, copies: int):
        self.n = chain.n * copies
        offsets = np.repeat(np.arange(copies) * chain.n, chain.n)
        self.jumps = {t: np.tile(moved, copies) + offsets for t, moved in chain.jumps.items()}


class _Uniformized:
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


def leaking_series(q: sparse.csr_matrix) -> _Uniformized:
    """The uniformization series of a (sub-)generator ``q`` (a chain restricted to some
    states, which leaks mass), in numba: its ``scaled(v, dt)`` advances a distribution on the
    log scale. Built once, it serves every span of a record spent in the same states."""
    return _Uniformized(q, numba_series=True)


def _propagate(chain, stepper, v, t0, t1):
    """Like :func:`_advance` without the integral, for short spans inside a grid step."""
    for tau in chain.jumps:
        if t0 < tau <= t1:
            v = stepper.propagate(v, tau - t0)
            v = np.bincount(chain.jumps[tau], weights=v, minlength=chain.n)
            t0 = tau
    return stepper.propagate(v, t1 - t0)


def solve_chain(c: CompiledScenario) -> ExactSolution:
    """Solve a compiled memoryless scenario exactly on its time grid.

    Raises
    ------
    NotMemoryless
        If a transition timing is not exponential.
    EscalateError
        If the reachable joint space exceeds ``MAX_STATES``.
    """
    _memoryless(c)
    chain = _Chain(c)
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

    stepper = _Stepper(chain.q)
    occupancy = np.zeros((n_s, n_g))
    occupancy[:, 0] = np.bincount(chain.stage_of, weights=chain.p0, minlength=n_s)
    v = chain.p0.copy()
    walk = [v]
    for g in range(1, n_g):
        v, _ = _advance(chain, stepper, v, grid[g - 1], grid[g])
        occupancy[:, g] = np.bincount(chain.stage_of, weights=v, minlength=n_s)
        walk.append(v)
    way_out = np.asarray(abs(chain.q).sum(axis=1)).ravel()  # 0: a state nothing leaves
    p_on = np.array(
        [v[(chain.mask_of >> k) & 1 == 1].sum() for k in range(c.n_triggers)], dtype=float
    )
    at_horizon = solve_at_horizon(c, chain=chain)
    switching = [c.can_switch_off(k) for k in range(c.n_triggers)]
    p_fired = np.where(switching, at_horizon.p_fired, p_on)

    reached = np.zeros((n_s, n_g))
    time_to_reach = []
    for s in range(n_s):
        target = chain.stage_of == s
        if chain.p0[target].sum() == 1.0:  # every trajectory starts there: reached at 0
            reached[s] = 1.0
            absorbing, vectors = stepper, None  # no quantile needs them
        elif not way_out[target].any():
            # its states have no way out already (a terminal stage): absorbing as it is, so
            # the walk of the chain itself serves (its occupancy is the reach curve; `at`
            # jumps only switch triggers, within the stage)
            reached[s] = occupancy[s]
            absorbing, vectors = stepper, walk
        else:
            absorbing = _Stepper(_absorbing(chain, target))
            v = chain.p0.copy()
            reached[s, 0] = v[target].sum()
            vectors = [v]
            for g in range(1, n_g):
                v, _ = _advance(chain, absorbing, v, grid[g - 1], grid[g])
                reached[s, g] = v[target].sum()
                vectors.append(v)
        time_to_reach.append(
            _time_to_reach(
                chain,
                absorbing,
                target,
                grid,
                reached[s],
                vectors,
                at_horizon.mean_time_to_reach[s],
            )
        )
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
        v = _propagate(chain, stepper, v0, t0, t)
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

        at_end = _propagate(chain, stepper, vectors[g - 1], t0, t1)[target].sum()
        if at_end <= goal:
            out[f"p{round(q * 100)}"] = float(t1)
        else:
            out[f"p{round(q * 100)}"] = _crossing(
                chain, stepper, target, vectors[g - 1], t0, t1, goal, curve[g - 1], at_end
            )
    return out
