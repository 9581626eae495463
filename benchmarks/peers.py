"""What a user would otherwise write or use, on the same memoryless chain as escalate.

Every peer estimates P(the target stage is reached by the horizon) for a compiled, memoryless
scenario, so its row can be checked against the exact solver. Day-stepped peers use the exact
daily transition matrix ``expm(Q)`` of the joint chain (stage, triggers on), so at whole days
they simulate the same model as the event-driven ones.
"""

from __future__ import annotations

import math
import random

import numpy as np
from numba import njit
from scipy import linalg

from escalate.engine.chain import Chain
from escalate.engine.compile import CompiledScenario
from escalate.engine.kernels import _exponential, _next_exponential, _uniform
from escalate.engine.simulate import chunk_state


class DailyChain:
    """The joint chain of a memoryless scenario as a daily transition matrix."""

    def __init__(self, compiled: CompiledScenario, target: str):
        chain = Chain(compiled)
        if chain.jumps:
            raise ValueError("day-stepped peers need a scenario without `at` triggers")
        self.matrix = linalg.expm(chain.q.toarray())
        self.matrix = np.maximum(self.matrix, 0.0)
        self.matrix /= self.matrix.sum(axis=1, keepdims=True)
        self.cumulative = np.cumsum(self.matrix, axis=1)
        self.cumulative[:, -1] = 1.0
        self.p0 = chain.p0
        self.days = round(compiled.horizon)
        s = compiled.stage_names.index(target)
        self.target_states = np.flatnonzero(chain.stage_of == s)
        self.is_target = chain.stage_of == s
        self.absorbing = np.isclose(np.diag(self.matrix), 1.0)

    def initial_states(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.choice(len(self.p0), size=n, p=self.p0)


def numpy_day_stepped(daily: DailyChain, n: int, seed: int, *, only_unabsorbed: bool) -> int:
    """Step every trajectory (or only those not yet absorbed) one day at a time."""
    rng = np.random.default_rng(seed)
    state = daily.initial_states(n, rng)
    cumulative = daily.cumulative
    if not only_unabsorbed:
        for _ in range(daily.days):
            u = rng.random(n)
            state = (u[:, None] > cumulative[state]).sum(axis=1)
        return int(daily.is_target[state].sum())
    live = np.flatnonzero(~daily.absorbing[state])
    for _ in range(daily.days):
        if live.size == 0:
            break
        u = rng.random(live.size)
        moved = (u[:, None] > cumulative[state[live]]).sum(axis=1)
        state[live] = moved
        live = live[~daily.absorbing[moved]]
    return int(daily.is_target[state].sum())


def quantecon_simulate(daily: DailyChain, n: int, seed: int) -> int:
    """quantecon's ``MarkovChain.simulate``: whole paths of ``days + 1`` states each."""
    from quantecon import MarkovChain

    rng = np.random.default_rng(seed)
    chain = MarkovChain(daily.matrix)
    paths = chain.simulate(daily.days + 1, init=daily.initial_states(n, rng), random_state=seed)
    return int(daily.is_target[paths[:, -1]].sum())


def pydtmc_simulate(daily: DailyChain, n: int, seed: int) -> int:
    """PyDTMC's ``MarkovChain.simulate``, one path at a time (its interface)."""
    from pydtmc import MarkovChain

    rng = np.random.default_rng(seed)
    chain = MarkovChain(daily.matrix, [f"s{i}" for i in range(len(daily.p0))])
    hits = 0
    for i, start in enumerate(daily.initial_states(n, rng)):
        path = chain.simulate(daily.days, int(start), output_indices=True, seed=seed + i)
        hits += bool(daily.is_target[path[-1]])
    return hits


def pure_python_event_loop(c: CompiledScenario, target: str, n: int, seed: int) -> int:
    """A table-driven event loop in plain Python: the same semantics as the kernel, for
    exponential timings (latent clocks per transition, trigger onsets, ratios, requires)."""
    rng = random.Random(seed)
    goal = c.stage_names.index(target)
    horizon = c.horizon
    outgoing = [
        [(j, int(c.target[j]), float(c.p1[j])) for j in range(c.out_start[s], c.out_start[s + 1])]
        for s in range(c.n_stages)
    ]
    ratio = c.ratio.tolist()
    requires = [int(r) for r in c.requires]
    onset = c.onset_rate.tolist()
    initial = c.initial.tolist()
    start_cdf = c.start_cdf.tolist()
    terminal = c.terminal.tolist()
    n_k = c.n_triggers
    hits = 0
    for _ in range(n):
        u = rng.random()
        s = next(i for i, edge in enumerate(start_cdf) if u < edge)
        on = 0
        for k in range(n_k):
            if rng.random() < initial[k]:
                on |= 1 << k
        t = 0.0
        while not terminal[s]:
            remaining = [-math.log(1.0 - rng.random()) / rate for _, _, rate in outgoing[s]]
            next_on = [
                t - math.log(1.0 - rng.random()) / onset[k][s]
                if not (on >> k) & 1 and onset[k][s] > 0
                else math.inf
                for k in range(n_k)
            ]
            while True:
                speeds = []
                for j, _, _ in outgoing[s]:
                    sp = 0.0
                    if requires[j] & on == requires[j]:
                        sp = 1.0
                        for k in range(n_k):
                            if (on >> k) & 1:
                                sp *= ratio[j][k]
                    speeds.append(sp)
                t_fire, fire = math.inf, -1
                for i, sp in enumerate(speeds):
                    if sp > 0 and t + remaining[i] / sp < t_fire:
                        t_fire, fire = t + remaining[i] / sp, i
                t_on = min(next_on, default=math.inf)
                t_next = min(t_fire, t_on)
                if t_next > horizon:
                    break
                for i, sp in enumerate(speeds):
                    remaining[i] -= sp * (t_next - t)
                t = t_next
                if t_on <= t_fire:
                    k = next_on.index(t_on)
                    on |= 1 << k
                    next_on[k] = math.inf
                    continue
                s = outgoing[s][fire][1]
                break
            if t_next > horizon:
                break
        hits += s == goal
    return hits


@njit(cache=True)
def _bare_loop(
    n,
    seed,
    start_cdf,
    terminal,
    out_start,
    target,
    p1,
    ratio,
    requires,
    initial,
    onset_rate,
    horizon,
    goal,
    state,
    xoshiro,
):
    """The kernel's event loop with no accumulator but one count; ``xoshiro`` chooses the
    generator: the kernel's inline xoshiro256** or numba's built-in ``np.random``."""
    if not xoshiro:
        np.random.seed(seed)
    n_stages, n_k = terminal.shape[0], initial.shape[0]
    remaining = np.empty(16)
    speed = np.empty(16)
    next_on = np.empty(max(n_k, 1))
    hits = 0
    for _ in range(n):
        u = _uniform(state) if xoshiro else np.random.random()
        s = 0
        while s < n_stages - 1 and u >= start_cdf[s]:
            s += 1
        on = 0
        for k in range(n_k):
            v = _uniform(state) if xoshiro else np.random.random()
            if v < initial[k]:
                on |= 1 << k
        t = 0.0
        while not terminal[s]:
            first, last = out_start[s], out_start[s + 1]
            for j in range(first, last):
                e = _exponential(state) if xoshiro else np.random.exponential()
                remaining[j - first] = e / p1[j]
            for k in range(n_k):
                next_on[k] = np.inf
                if not (on >> k) & 1 and onset_rate[k, s] > 0.0:
                    e = _exponential(state) if xoshiro else np.random.exponential()
                    next_on[k] = t + e / onset_rate[k, s]
            moved = False
            while True:
                t_fire, fire = np.inf, -1
                for j in range(first, last):
                    sp = 0.0
                    if (requires[j] & on) == requires[j]:
                        sp = 1.0
                        for k in range(n_k):
                            if (on >> k) & 1:
                                sp *= ratio[j, k]
                    speed[j - first] = sp
                    if sp > 0.0 and t + remaining[j - first] / sp < t_fire:
                        t_fire, fire = t + remaining[j - first] / sp, j
                t_on, switch = np.inf, -1
                for k in range(n_k):
                    if next_on[k] < t_on:
                        t_on, switch = next_on[k], k
                t_next = min(t_fire, t_on)
                if t_next > horizon:
                    break
                for j in range(first, last):
                    remaining[j - first] -= speed[j - first] * (t_next - t)
                t = t_next
                if t_on <= t_fire:
                    on |= 1 << switch
                    next_on[switch] = np.inf
                    continue
                s = target[fire]
                moved = True
                break
            if not moved:
                break
        if s == goal:
            hits += 1
    return hits


def bare_numba_loop(c: CompiledScenario, target: str, n: int, seed: int, *, xoshiro: bool) -> int:
    """One thread, no accumulators: the event loop a careful user would write in numba."""
    return int(
        _bare_loop(
            n,
            seed,
            c.start_cdf,
            c.terminal,
            c.out_start,
            c.target,
            c.p1,
            c.ratio,
            c.requires,
            c.initial,
            c.onset_rate,
            c.horizon,
            c.stage_names.index(target),
            chunk_state(seed, 0),
            xoshiro,
        )
    )


@njit(cache=True)
def _draw_exponentials(state, count):
    """``count`` Exp(1) draws as the kernel's hazard race makes them (xoshiro256** in locals,
    the ziggurat): the cost of escalate's random numbers alone. A draw that the kernel uses as
    a plain uniform costs a little less, so this floor is a slight overestimate."""
    s0, s1, s2, s3 = state[0], state[1], state[2], state[3]
    total = 0.0
    for _ in range(count):
        x, s0, s1, s2, s3 = _next_exponential(s0, s1, s2, s3)
        total += x
    return total


@njit(cache=True)
def _draws_between(before, after, limit):
    """How many xoshiro256** steps lead from ``before`` to ``after`` (-1 beyond ``limit``)."""
    state = before.copy()
    for i in range(limit):
        if (state == after).all():
            return i
        _uniform(state)
    return -1


def rng_floor(count: int, seed: int) -> float:
    """Draw ``count`` Exp(1) with escalate's own generator and sampler; returns their sum."""
    return float(_draw_exponentials(chunk_state(seed, 0), count))
