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
from collections import namedtuple
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from escalate.engine import batch_kernels
from escalate.engine.chain import Chain, chain_of
from escalate.engine.compile import CompiledScenario
from escalate.errors import EscalateError
from escalate.forecast.observations import Observations

__all__ = ["Filtered", "ForwardSpec", "forecast", "forward", "program", "require_memoryless"]


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
    carried, so no record underflows. ``chain``: the chain of ``c`` when the caller has it;
    ``c`` then gives only the structure. The steps are the record's :func:`program`, run
    in compiled code (the worlds engine runs it for many worlds at once).

    Raises
    ------
    EscalateError
        When the scenario has a non-exponential timing (the forward algorithm needs a chain).
    """
    from escalate.engine.batch_kernels import forward_world

    require_memoryless(c)
    if obs.as_of > c.horizon:  # the chain keeps the `at` jumps up to its horizon
        from escalate.engine.compile import cut_at

        c, chain = cut_at(c, obs.as_of), None
    chain = chain_of(c) if chain is None else chain
    out = np.empty(chain.n)
    log_l = forward_world(program(c, chain, obs), chain.q.data, chain.p0, out)
    return Filtered(log_l, out, chain)


ForwardSpec = namedtuple(
    "ForwardSpec",
    "ops dts masks registers r_allowed_start r_allowed r_indptr r_nnz_start r_indices r_taken "
    "r_diagonal into_indptr into_indices into_position stage_of entry_rows entry_cols "
    "same_stage flipped jump_moved",
)


def program(c: CompiledScenario, chain: Chain, obs: Observations) -> ForwardSpec:
    """The forward algorithm's steps for the record ``obs`` on chains of ``chain``'s
    structure (see :func:`forward`), as the compiled ``forward_world`` runs them: on the
    log-likelihood's vector (register 0) a mask, an ``at`` jump, or the restricted chain's
    evolution over a span; at an instant, the flows into each entered stage and along each
    switch, one register per set of switches done. Written once per structure and record
    (kept with the chain's template): every world runs the same steps on its own rates."""
    key = ("program", obs.as_of, tuple(obs.path),
           tuple(sorted((k, tuple(v)) for k, v in obs.switches.items())))  # fmt: skip
    if key not in chain._restrictions:
        chain._restrictions[key] = _Writer(c, chain, obs).spec()
    return chain._restrictions[key]


class _Writer:
    """Writes the program of :func:`program`, step by step as the forward algorithm goes."""

    def __init__(self, c: CompiledScenario, chain: Chain, obs: Observations):
        self.c, self.chain, self.obs = c, chain, obs
        self.ops: list[tuple[int, int, int, int]] = []
        self.dts: list[float] = []
        self.masks: list[np.ndarray] = []
        self.restrictions: dict[tuple[int, int, int], int] = {}
        self.registers = 1
        self._write()

    def op(self, code: int, a: int = 0, b: int = 0, k: int = 0, dt: float = 0.0) -> None:
        self.ops.append((code, a, b, k))
        self.dts.append(dt)

    def mask(self, allowed: np.ndarray) -> None:
        self.masks.append(allowed.astype(float))
        self.op(batch_kernels.FORWARD_MASK, len(self.masks) - 1)

    def evolve(self, stage: int, known: int, dt: float, free: int = 0) -> None:
        """The chain restricted to ``stage`` and the observed triggers' known values (but
        the ``free`` ones) over ``dt``; the mass lost is the paths where something observed
        would have happened."""
        key = (stage, known, self.obs.observed_mask() & ~free)
        self.restrictions.setdefault(key, len(self.restrictions))
        self.op(batch_kernels.FORWARD_EVOLVE, self.restrictions[key], dt=dt)

    def interleaved(self, entered: list[int], onsets: list[int]) -> None:
        """The transitions into ``entered`` (in order) and a switch of each of ``onsets``,
        with no time between, every switch at any place among the entries and the switches
        in any order: the sum over those sequences. By subsets (register ``subset``): before
        each entry and after the last, a set of switches done grows by one switch at a time
        (each sequence once, the smaller sets first), then every set's vector makes the next
        entry."""
        done = {0}
        subsets = sorted(range(1 << len(onsets)), key=int.bit_count)
        self.registers = max(self.registers, 1 << len(onsets))
        for place in range(len(entered) + 1):
            for subset in subsets:
                if subset not in done:
                    continue
                for i, k in enumerate(onsets):
                    if not subset >> i & 1:
                        grown = subset | 1 << i
                        if grown not in done:
                            self.op(batch_kernels.FORWARD_ZERO, grown)
                            done.add(grown)
                        self.op(batch_kernels.FORWARD_SWITCH, subset, grown, k)
            if place < len(entered):
                for subset in sorted(done):
                    self.op(batch_kernels.FORWARD_ENTER, subset, entered[place])
        if onsets:
            self.op(batch_kernels.FORWARD_MOVE, (1 << len(onsets)) - 1, 0)

    def _write(self) -> None:
        c, chain, obs = self.c, self.chain, self.obs
        stage_of, mask_of = chain.stage_of, chain.mask_of
        observed = obs.observed_mask()
        entries: dict[float, list[int]] = {}
        for stage, time in obs.path[1:]:
            entries.setdefault(time, []).append(stage)
        switched: dict[float, list[int]] = {}
        for k, switches in obs.switches.items():
            for time, _ in switches:
                if time > 0.0:
                    switched.setdefault(time, []).append(k)
        jumps = list(chain.jumps)
        instants = sorted(set(entries) | set(switched) | {tau for tau in jumps if tau <= obs.as_of})
        start_stage = obs.path[0][0]
        known = obs.known_bits(0.0, after=True)
        # a trigger seen on from the start that an entry at t = 0 can switch on: either
        free = _effects_on(c, [start_stage, *entries.get(0.0, [])])
        self.mask((stage_of == start_stage) & ((mask_of & observed & ~free) == (known & ~free)))
        t, stage = 0.0, start_stage
        for time in [*instants, None]:  # None: the quiet span from the last instant to as_of
            self.evolve(stage, known, (obs.as_of if time is None else time) - t, free)
            free = 0  # only the start's span (of length 0 then) leaves them open
            if time is None:
                break
            t, entered = time, entries.get(time, [])
            # a switch the jump makes costs nothing; one an entered transition's effects can
            # make is that effect; the others are onsets or offsets among the entries
            effects = _effects_on(c, [stage, *entered])
            onsets = [k for k in switched.get(time, [])
                      if c.onset_at[k] != time and not effects >> k & 1]  # fmt: skip
            self.interleaved(entered, onsets)
            stage = entered[-1] if entered else stage
            if time in chain.jumps:  # after the rest: what happened then, happened before it
                self.op(batch_kernels.FORWARD_JUMP, jumps.index(time))
            known = obs.known_bits(time, after=True)
            self.mask((stage_of == stage) & ((mask_of & observed) == known))

    def spec(self) -> ForwardSpec:
        chain = self.chain
        entry_rows, entry_cols, same_stage, flipped, into = _flows(chain)
        patterns = [_restricted(chain, *key) for key in self.restrictions]
        allowed = [a for a, _, _, _ in patterns]
        jump_moved = (np.stack([chain.jumps[t] for t in chain.jumps]) if chain.jumps
                      else np.zeros((0, chain.n), np.int64))  # fmt: skip
        sizes = np.array([0, *(len(a) for a in allowed)])
        nnz = np.array([0, *(len(taken) for _, _, taken, _ in patterns)])
        empty_int = np.zeros(0, np.int64)
        return ForwardSpec(
            ops=np.array(self.ops, np.int64).reshape(-1, 4),
            dts=np.array(self.dts, float),
            masks=np.array(self.masks, float).reshape(-1, chain.n),
            registers=self.registers,
            r_allowed_start=np.cumsum(sizes).astype(np.int64),
            r_allowed=np.concatenate([empty_int, *allowed]).astype(np.int64),
            r_indptr=np.concatenate([empty_int, *(p.indptr for _, p, _, _ in patterns)]).astype(
                np.int64
            ),
            r_nnz_start=np.cumsum(nnz).astype(np.int64),
            r_indices=np.concatenate([empty_int, *(p.indices for _, p, _, _ in patterns)]).astype(
                np.int64
            ),
            r_taken=np.concatenate([empty_int, *(t for _, _, t, _ in patterns)]).astype(np.int64),
            r_diagonal=np.concatenate([np.zeros(0, bool), *(d for _, _, _, d in patterns)]),
            into_indptr=into[0].astype(np.int64),
            into_indices=into[1].astype(np.int64),
            into_position=into[2].astype(np.int64),
            stage_of=chain.stage_of.astype(np.int64),
            entry_rows=entry_rows.astype(np.int64),
            entry_cols=entry_cols.astype(np.int64),
            same_stage=same_stage,
            flipped=flipped.astype(np.int64),
            jump_moved=jump_moved.astype(np.int64),
        )


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
    """The states of ``stage`` whose ``seen`` triggers are as ``known``, and the restricted
    chain's pattern: its transposed generator's positions (a CSR matrix), each entry's
    position in the generator's data, and which entries are diagonal. The structure's: worked
    out once (kept with the chain's template), each world only picks its values."""
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
    return patterns[key]


def _effects_on(c: CompiledScenario, stages: list[int]) -> int:
    """The triggers (a mask) that the effects of the transitions along ``stages`` (each to
    the next) may switch."""
    mask = 0
    for source, target in itertools.pairwise(stages):
        for j in np.flatnonzero((c.source == source) & (c.target == target)):
            for e in range(c.effect_start[j], c.effect_start[j + 1]):
                mask |= 1 << int(c.effect_trigger[e])
    return mask


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
