"""The exact likelihood of what has happened, and the filtered state at as_of.

The forward algorithm on the joint chain of (stage, triggers on): between observed events the
distribution, restricted to the observed stage and to the trigger sets consistent with the
observed triggers, evolves by the matrix exponential of that restricted generator (its
diagonal keeps every way out, so the probability that nothing else happened is accounted for);
an observed stage entry multiplies by the hazards of the transitions into that stage, an
observed trigger switch by its onset or offset hazard; an ``at`` trigger jumps at its time.
Unobserved triggers are marginalized: they switch freely inside the restricted chain. The
forecast from as_of starts from the filtered state.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import sparse

from escalate.engine.chain import Chain, chain_of
from escalate.engine.compile import CompiledScenario
from escalate.engine.stepping import Uniformized
from escalate.errors import EscalateError
from escalate.forecast.observations import Observations

__all__ = ["Filtered", "forecast", "forward", "require_memoryless"]


@dataclass
class Filtered:
    """The forward algorithm's answer: the log-likelihood of the observations and the
    distribution over the chain's states at as_of given them (``chain.states`` order)."""

    log_likelihood: float
    distribution: np.ndarray
    chain: object


def require_memoryless(c: CompiledScenario) -> None:
    """Refuse, naming them, the transitions whose timing is not exponential: the likelihood
    of what happened is exact on a Markov chain only."""
    if c.is_markov:
        return
    slow = [
        f"{c.stage_names[c.source[j]]} -> {c.stage_names[c.target[j]]}"
        for j in range(len(c.kind))
        if c.kind[j] != 0
    ]
    raise EscalateError(
        f"{c.name}: nowcast is exact and needs every timing exponential; these are not: "
        + ", ".join(slow)
    )


def forward(c: CompiledScenario, obs: Observations, chain: Chain | None = None) -> Filtered:
    """The exact log-likelihood of ``obs`` under ``c`` and the filtered state at as_of.

    What happens at one instant (a day, in a dated record): the observed stage entries, each
    a transition after the one before with no time between (a -> b -> c on one day is two
    transitions, not a -> c); an observed switch that an entered transition's effects can
    make is that effect; any other switch is the trigger's onset or offset, at any place
    among the entries and in any order among the switches (every such sequence summed);
    an ``at`` jump due then comes after all of them (the left limit: what happened that
    instant happened under the hazards before the jump). A trigger seen on from the start
    that an entry at t = 0 can switch on may have been on before or switched by it. The
    forward vector is rescaled at every step and every piece of a long gap, its log norm
    carried, so no record underflows. ``chain``: the chain of ``c`` when the caller has it
    (the worlds engine builds every world's at once); ``c`` then gives only the structure.

    Raises
    ------
    EscalateError
        When the scenario has a non-exponential timing (the forward algorithm needs a chain).
    """
    require_memoryless(c)
    if obs.as_of > c.horizon:  # the chain keeps the `at` jumps up to its horizon
        from escalate.engine.compile import cut_at

        c, chain = cut_at(c, obs.as_of), None
    chain = chain_of(c) if chain is None else chain
    q = chain.q
    stage_of, mask_of = chain.stage_of, chain.mask_of
    entry_rows, entry_cols, same_stage, flipped, into = _flows(chain)
    observed = obs.observed_mask()
    entries: dict[float, list[int]] = {}
    for stage, time in obs.path[1:]:
        entries.setdefault(time, []).append(stage)
    switched: dict[float, list[int]] = {}
    for k, switches in obs.switches.items():
        for time, _ in switches:
            if time > 0.0:
                switched.setdefault(time, []).append(k)
    instants = sorted(
        set(entries) | set(switched) | {tau for tau in chain.jumps if tau <= obs.as_of}
    )

    def switch(v: np.ndarray, k: int) -> np.ndarray:
        """The probability flowing out of ``v`` along trigger ``k``'s switch alone."""
        flow = np.zeros(chain.n)
        along = same_stage & (flipped == (1 << k))
        np.add.at(flow, entry_cols[along], v[entry_rows[along]] * q.data[along])
        return flow

    series: dict[tuple[int, int, int], tuple[np.ndarray, object]] = {}

    def evolve(v, stage: int, known: int, dt: float, free: int = 0) -> tuple[np.ndarray, float]:
        """``v`` after ``dt`` in the chain restricted to ``stage`` and the observed triggers'
        known values (but the ``free`` ones), as (the distribution, summing to 1, log of the
        mass kept): the mass lost is the paths where something observed would have happened
        (``v expm(Q_restricted dt)``, by uniformization rescaled as it goes). Each
        restriction is built once."""
        seen = observed & ~free
        if (stage, known, seen) not in series:
            series[stage, known, seen] = _restricted(chain, stage, known, seen)
        allowed, restricted = series[stage, known, seen]
        out = np.zeros_like(v)
        if len(allowed) == 0:
            return out, -math.inf
        out[allowed], log_mass = restricted.scaled(v[allowed], dt)
        return out, log_mass

    def enter(v: np.ndarray, stage: int) -> np.ndarray:
        """The probability flowing out of ``v`` into ``stage`` (with the effects): ``v Q``,
        each state's inflow summed in the order of ``Q``'s column (as ``Q.T @ v``)."""
        indptr, indices, position = into
        return np.add.reduceat(q.data[position] * v[indices], indptr[:-1]) * (stage_of == stage)

    start_stage = obs.path[0][0]
    known = obs.known_bits(0.0, after=True)
    # a trigger seen on from the start that an entry at t = 0 can switch on: either
    free = _effects_on(c, [start_stage, *entries.get(0.0, [])])
    consistent = (stage_of == start_stage) & ((mask_of & observed & ~free) == (known & ~free))
    log_l = 0.0
    v = chain.p0 * consistent
    t, stage = 0.0, start_stage
    for time in [*instants, None]:  # None: the quiet span from the last instant to as_of
        v, log_mass = evolve(v, stage, known, (obs.as_of if time is None else time) - t, free)
        log_l += log_mass
        free = 0  # only the start's span (of length 0 then) leaves them open
        if time is None or not math.isfinite(log_l):
            break
        t, entered = time, entries.get(time, [])
        # a switch the jump makes costs nothing; one an entered transition's effects can make
        # is that effect; the others are onsets or offsets among the entries
        effects = _effects_on(c, [stage, *entered])
        onsets = [k for k in switched.get(time, [])
                  if c.onset_at[k] != time and not effects >> k & 1]  # fmt: skip
        v = _interleaved(v, entered, onsets, enter, switch)
        stage = entered[-1] if entered else stage
        if time in chain.jumps:  # after the rest: what happened then, happened before it
            v = np.bincount(chain.jumps[time], weights=v, minlength=chain.n)
        known = obs.known_bits(time, after=True)
        v = v * ((stage_of == stage) & ((mask_of & observed) == known))
    if not math.isfinite(log_l):
        return Filtered(-math.inf, np.zeros(chain.n), chain)
    return Filtered(log_l, v, chain)


class _CSR(NamedTuple):
    """A sparse matrix as the numba series reads it (no scipy object per world)."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]


def _flows(chain: Chain):
    """Which entries of the generator are switches of which trigger, and ``Q`` transposed as
    positions into its data: the structure's, worked out once (kept with its template)."""
    if "flows" not in chain._restrictions:
        q, stage_of, mask_of = chain.q, chain.stage_of, chain.mask_of
        entry_rows = np.repeat(np.arange(chain.n), np.diff(q.indptr))
        entry_cols = q.indices
        transposed = sparse.csr_matrix((np.arange(1.0, q.nnz + 1), q.indices, q.indptr),
                                       shape=q.shape).T.tocsr()  # fmt: skip
        chain._restrictions["flows"] = (
            entry_rows,
            entry_cols,
            stage_of[entry_rows] == stage_of[entry_cols],
            mask_of[entry_rows] ^ mask_of[entry_cols],
            (transposed.indptr, transposed.indices, transposed.data.astype(np.int64) - 1),
        )
    return chain._restrictions["flows"]


def _restricted(chain: Chain, stage: int, known: int, seen: int):
    """The states of ``stage`` whose ``seen`` triggers are as ``known``, and the series of the
    chain restricted to them. Which entries the restriction keeps is the structure's: worked
    out once per structure (kept with the chain's template), each world only picks its
    values."""
    key = (stage, known, seen)
    patterns = chain._restrictions
    if key not in patterns:
        stage_of, mask_of, q = chain.stage_of, chain.mask_of, chain.q
        allowed = np.flatnonzero((stage_of == stage) & ((mask_of & seen) == (known & seen)))
        # data: each entry's position in q.data, plus one (no explicit zero to drop)
        positions = sparse.csr_matrix((np.arange(1.0, q.nnz + 1), q.indices, q.indptr),
                                      shape=q.shape)[allowed][:, allowed].T.tocsr()  # fmt: skip
        rows = np.repeat(np.arange(len(allowed)), np.diff(positions.indptr))
        patterns[key] = (allowed, positions, positions.data.astype(np.int64) - 1,
                         rows == positions.indices)  # fmt: skip
    allowed, positions, taken, diagonal = patterns[key]
    q_t = _CSR(chain.q.data[taken], positions.indices, positions.indptr, positions.shape)
    return allowed, Uniformized.transposed(q_t, numba_series=True, diagonal=diagonal)


def _effects_on(c: CompiledScenario, stages: list[int]) -> int:
    """The triggers (a mask) that the effects of the transitions along ``stages`` (each to
    the next) may switch."""
    mask = 0
    for source, target in itertools.pairwise(stages):
        for j in np.flatnonzero((c.source == source) & (c.target == target)):
            for e in range(c.effect_start[j], c.effect_start[j + 1]):
                mask |= 1 << int(c.effect_trigger[e])
    return mask


def _interleaved(v: np.ndarray, entered: list[int], onsets: list[int], enter, switch):
    """``v`` after the transitions into ``entered`` (in order) and a switch of each of
    ``onsets``, with no time between, every switch at any place among the entries and the
    switches in any order: the sum over those sequences. By subsets: before each entry and
    after the last, a set of switches done grows by one switch at a time (each sequence once,
    the smaller sets first), then every set's vector makes the next entry."""
    done = {0: v}
    subsets = sorted(range(1 << len(onsets)), key=int.bit_count)
    for place in range(len(entered) + 1):
        for subset in subsets:
            if subset not in done:
                continue
            for i, k in enumerate(onsets):
                if not subset >> i & 1:
                    grown = subset | 1 << i
                    done[grown] = done.get(grown, 0.0) + switch(done[subset], k)
        if place < len(entered):
            done = {subset: enter(w, entered[place]) for subset, w in done.items()}
    return done[(1 << len(onsets)) - 1]


def forecast(
    c: CompiledScenario,
    filtered: Filtered,
    obs: Observations,
    horizon: float | None = None,
    *,
    occupancy: bool = True,
):
    """Exact figures at ``horizon`` (absolute; default the scenario's) from the filtered state
    at as_of: each state weighted by its filtered probability, ``at`` triggers at their
    absolute times. Stages entered before as_of count as reached (their chains are skipped).

    ``horizon`` may lie past the scenario's: the filter then runs again on a chain that keeps
    the ``at`` jumps up to it.

    Returns the :class:`escalate.engine.exact.HorizonFigures` of the span from as_of to ``horizon``
    (its times, such as the mean time to reach, count from as_of; ``occupancy=False`` leaves
    the occupancy figures nan, as :func:`escalate.engine.exact.solve_at_horizon` does).
    """
    import copy

    from escalate.engine.compile import cut_at
    from escalate.engine.exact import solve_at_horizon

    end = c.horizon if horizon is None else horizon
    if not end > obs.as_of:
        raise EscalateError.about(
            "{horizon} must come after as_of ({:g}), got {:g}", obs.as_of, end
        )
    due = {float(tau) for tau in c.onset_at if obs.as_of < tau <= end}
    if not due <= set(filtered.chain.jumps):  # a chain built to an earlier horizon
        filtered = forward(cut_at(c, end), obs)
    chain = copy.copy(filtered.chain)
    chain.p0 = filtered.distribution
    chain.jumps = {
        tau - obs.as_of: moved for tau, moved in filtered.chain.jumps.items() if tau > obs.as_of
    }
    entered = {stage for stage, _ in obs.path}
    figures = solve_at_horizon(
        cut_at(c, end - obs.as_of),
        chain=chain,
        occupancy=occupancy,
        reach=[s for s in range(c.n_stages) if s not in entered],
        numba_series=True,
    )
    for stage in entered:
        figures.p_reached[stage] = 1.0
    return figures
