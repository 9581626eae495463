"""The reachable joint chain of a memoryless scenario: states (stage, set of triggers on), its
generator and the deterministic jumps at ``at`` times, built breadth-first from the compiled
arrays (transitions, onsets, offsets, ``at`` switches). Only the part reachable from the start
is built. A chain's structure is kept per scenario shape, so each parameter set only fills in
its rates (``chain_of``); the solvers of ``engine.exact`` and the nowcast's forward pass step it.
"""

from __future__ import annotations

import copy

import numpy as np
from scipy import sparse

from escalate.engine.compile import CompiledScenario
from escalate.errors import EscalateError

__all__ = ["MAX_STATES", "Chain", "NotMemoryless", "chain_of", "structure_key"]


MAX_STATES = 50_000


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


class Chain:
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
        self._restrictions: dict = {}  # restricted chains' patterns (the forward algorithm)
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

    def with_rates(self, c: CompiledScenario) -> Chain:
        """This chain's states and entries with the rates and start of ``c``: a scenario of
        the same structure (:func:`structure_key`) and other numbers. Rebuilding the states
        in Python is most of a small solve; this recomputes the rates with numpy."""
        chain = copy.copy(self)
        chain.c = c
        bits = (self._mask[:, None] >> np.arange(c.n_triggers)) & 1  # (entries, K)
        rates = np.zeros(len(self._kind))  # zeros: the effects below multiply every entry
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


_CHAINS: dict[bytes, Chain] = {}  # a few recent structures (worlds share theirs)
_LAST: list = []  # the last chain given, with its structure and numbers


def chain_of(c: CompiledScenario) -> Chain:
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
        template = Chain(c)
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
