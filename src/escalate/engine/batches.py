"""The worlds engine: many parameter sets of one memoryless scenario solved at the horizon in
compiled code, a batch of worlds per call, no Python per world.

Two maps are worked out once per scenario and set of metrics. The *rate map* says how each
compiled number (a transition's rate, a ``when`` ratio, an initial probability, an onset or
offset rate, an effect's chance) follows from the parameters: a constant, a parameter, its
reciprocal (a mean) or ``-log1p(-p) / t`` (a chance within a time), the operations
``resolve`` performs. It is checked against ``compile_scenario`` on the first worlds, number
for number, and not used where they differ. The *chain* is the joint chain of a template world
(``engine.chain``): its states, its entries and which number each entry's rate is made of.
Every world whose numbers keep the template's structure (the same rates zero, the same chances
certain) shares them; ``batch_kernels.solve_worlds`` then computes each world's entries and
advances its chains to the horizon. A world of another structure, or too fast for the
uniformization series, is left to the per-world engine (``evaluate``), which says why.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import sparse

from escalate.engine import batch_kernels
from escalate.engine.chain import Chain
from escalate.engine.compile import CompiledScenario, compile_scenario
from escalate.engine.evaluate import OCCUPANCY_METRICS
from escalate.engine.exact import MAX_JUMPS
from escalate.engine.metrics import TRIGGER_METRICS, parse_metric
from escalate.errors import EscalateError
from escalate.scenario import Scenario
from escalate.scenario.model import Exponential, OnsetAt, OnsetTiming

__all__ = ["BATCH_WORLDS", "BatchSpec", "WorldsBatch", "built", "compiled_numbers", "exact_metrics"]

BatchSpec = namedtuple(
    "BatchSpec",
    "n_stages n_triggers n_states horizon t_start max_jumps has_effects "
    "op a_index a_value b_index b_value keep code "
    "p1_at ratio_at initial_at onset_rate_at offset_rate_at onset_ratio_at offset_ratio_at "
    "effect_at entry_kind entry_which entry_stage entry_mask entry_row entry_slot "
    "factor_start factor_effect factor_on q_size diagonal_slot q_row qt_indptr qt_indices "
    "qt_position stage_of mask_of start always_on switches_off jump_times jump_moved "
    "job_kind job_target reach_at_start reach_in_occupancy reach_by_flow q_col",
)
# the compiled numbers of a world, in the rate map's order: (name, keep) per array
NUMBERS = (
    ("p1", batch_kernels.KEEP_POSITIVE),
    ("ratio", batch_kernels.KEEP_POSITIVE),
    ("initial", batch_kernels.KEEP_SIGN_AND_ONE),
    ("onset_rate", batch_kernels.KEEP_POSITIVE),
    ("offset_rate", batch_kernels.KEEP_POSITIVE),
    ("onset_ratio", batch_kernels.KEEP_POSITIVE),
    ("offset_ratio", batch_kernels.KEEP_POSITIVE),
    ("effect_value", batch_kernels.KEEP_SIGN_AND_ONE),
)
CHECKED_WORLDS = 8  # worlds whose numbers the rate map must give exactly as compile does


def compiled_numbers(c: CompiledScenario) -> np.ndarray:
    """The numbers of ``c`` the rate map gives, flat, in its order."""
    return np.concatenate([np.ravel(getattr(c, name)) for name, _ in NUMBERS])


class _RateMap:
    """The recipe of every compiled number (see the module docstring), built by walking the
    scenario as ``resolve`` and ``compile_scenario`` do."""

    def __init__(self, model: Scenario, c: CompiledScenario, names: list[str], values: dict):
        self.names = {name: i for i, name in enumerate(names)}
        self.values = values
        sizes = [np.size(getattr(c, name)) for name, _ in NUMBERS]
        starts = np.cumsum([0, *sizes[:-1]]).tolist()
        self.at = {name: at for (name, _), at in zip(NUMBERS, starts, strict=True)}
        flat = compiled_numbers(c)
        total = len(flat)
        self.op = np.full(total, batch_kernels.OP_CONST, np.int64)
        self.a_index, self.b_index = np.full(total, -1, np.int64), np.full(total, -1, np.int64)
        self.a_value, self.b_value = flat.copy(), np.zeros(total)
        self.keep = np.concatenate([np.full(s, keep, np.int64) for (_, keep), s in
                                    zip(NUMBERS, sizes, strict=True)])  # fmt: skip
        self.supported = True
        n_s, n_k = c.n_stages, c.n_triggers
        stages = {name: s for s, name in enumerate(c.stage_names)}
        triggers = {name: k for k, name in enumerate(c.trigger_names)}
        for row, i in enumerate(c.order.tolist()):
            t = model.transitions[i]
            self._rate(self.at["p1"] + row, t)
            for name, v in t.when.items():
                self._set(self.at["ratio"] + row * n_k + triggers[name], batch_kernels.OP_PARAM, v)
            for e, (_, v) in enumerate(t.effects.items()):
                if v not in ("on", "off"):
                    slot = self.at["effect_value"] + int(c.effect_start[row]) + e
                    self._set(slot, batch_kernels.OP_PARAM, v)
        for k, trigger in enumerate(model.triggers.values()):
            self._set(self.at["initial"] + k, batch_kernels.OP_PARAM, trigger.initial)
            if isinstance(trigger.onset, OnsetAt) and self._varies(trigger.onset.at):
                self.supported = False  # a time that moves the chain's jumps
            for switch, rate_at, ratio_at in (
                (trigger.onset, "onset_rate", "onset_ratio"),
                (trigger.offset, "offset_rate", "offset_ratio"),
            ):
                if isinstance(switch, OnsetTiming):
                    timings = {s: switch for s in stages if not model.stages[s].terminal}
                elif isinstance(switch, dict):
                    timings = switch
                else:
                    continue
                for stage, timing in timings.items():
                    if model.stages[stage].terminal:
                        continue
                    s = stages[stage]
                    self._rate(self.at[rate_at] + k * n_s + s, timing)
                    for other, v in timing.when.items():
                        slot = self.at[ratio_at] + (k * n_s + s) * n_k + triggers[other]
                        self._set(slot, batch_kernels.OP_PARAM, v)

    def _varies(self, raw) -> bool:
        return isinstance(raw, str) and raw in self.names

    def _operand(self, raw) -> tuple[int, float]:
        if self._varies(raw):
            return self.names[raw], 0.0
        return -1, float(self.values[raw] if isinstance(raw, str) else raw)

    def _set(self, slot: int, op: int, a, b=None) -> None:
        self.op[slot] = op
        self.a_index[slot], self.a_value[slot] = self._operand(a)
        if b is not None:
            self.b_index[slot], self.b_value[slot] = self._operand(b)

    def _rate(self, slot: int, timing) -> None:
        """An exponential timing's rate, as ``resolve.exponential_rate``."""
        if timing.rate is not None:
            self._set(slot, batch_kernels.OP_PARAM, timing.rate)
        elif timing.mean is not None:
            self._set(slot, batch_kernels.OP_RECIPROCAL, timing.mean)
        elif timing.chance is not None:
            self._set(slot, batch_kernels.OP_CHANCE, timing.chance, timing.within)
        elif isinstance(timing.after, Exponential):
            self._set(slot, batch_kernels.OP_RECIPROCAL, timing.after.mean)
        else:
            self.supported = False  # not memoryless


def _jobs(c: CompiledScenario, chain: Chain, metrics: list[str], given_start: bool) -> dict:
    """The chains a world advances for ``metrics``: the chain itself where a figure reads its
    occupancy, a copy absorbing in each stage whose first entry is asked, one absorbing once
    a trigger is on for each ``p_fired`` asked (of a trigger that never switches off, the
    chain itself says it too, when it is walked anyway). Three kinds of stage need no chain
    of their own: the one every trajectory starts in (reached at 0), a terminal stage (it
    absorbs in the chain itself, whose walk gives its figures) and, when the chain itself is
    walked anyway and its mean time to reach is not asked, a stage on no cycle of stages
    (entered at most once: the chain itself gives the probability that flowed in).
    ``on:TRIGGER`` (on at the start of the span) needs none; with a ``given_start``, no stage
    is certain at the start."""
    from scipy.sparse.csgraph import connected_components

    kinds = [parse_metric(m)[:2] for m in metrics if not m.startswith("on:")]
    stage = {name: s for s, name in enumerate(c.stage_names)}
    trigger = {name: k for k, name in enumerate(c.trigger_names)}
    occupancy = any(kind in OCCUPANCY_METRICS and kind != "p_fired" for kind, _ in kinds)
    reach = sorted({stage[t] for kind, t in kinds if kind in ("p_reached", "time_to_reach")})
    timed = {stage[t] for kind, t in kinds if kind == "time_to_reach"}
    fired = sorted({trigger[t] for kind, t in kinds if kind == "p_fired"})
    start = np.diff(np.concatenate([[0.0], c.start_cdf]))
    rows = np.repeat(np.arange(chain.n), np.diff(chain.q.indptr))
    between = (chain.stage_of[rows], chain.stage_of[chain.q.indices])
    moves = sparse.csr_matrix((np.ones(len(rows)), between), shape=(c.n_stages,) * 2)
    moves.setdiag(0.0)
    moves.eliminate_zeros()
    _, component = connected_components(moves, directed=True, connection="strong")
    on_a_cycle = np.bincount(component)[component] > 1
    at_start = np.zeros(c.n_stages, bool)
    in_occupancy = np.zeros(c.n_stages, bool)
    by_flow = np.zeros(c.n_stages, bool)
    for s in reach:
        at_start[s] = start[s] == 1.0 and not given_start
        in_occupancy[s] = bool(c.terminal[s]) and not at_start[s]
    occupancy = occupancy or bool(in_occupancy.any())
    for s in reach:  # only where the chain itself is walked anyway: its rate may be higher
        by_flow[s] = occupancy and not (at_start[s] or in_occupancy[s] or on_a_cycle[s]
                                        or s in timed)  # fmt: skip
    jobs = [(batch_kernels.JOB_OCCUPANCY, 0)] if occupancy else []
    jobs += [(batch_kernels.JOB_REACH, s) for s in reach
             if not (at_start[s] or in_occupancy[s] or by_flow[s])]  # fmt: skip
    jobs += [(batch_kernels.JOB_FIRED, k) for k in fired if c.can_switch_off(k) or not occupancy]
    return {
        "job_kind": np.array([j for j, _ in jobs], np.int64),
        "job_target": np.array([t for _, t in jobs], np.int64),
        "reach_at_start": at_start,
        "reach_in_occupancy": in_occupancy,
        "reach_by_flow": by_flow,
    }


def _columns(c: CompiledScenario, metrics: list[str]) -> np.ndarray:
    """Each metric's column among a world's figures (see ``batch_kernels._figures``)."""
    n_s, n_k = c.n_stages, c.n_triggers
    stage = {name: s for s, name in enumerate(c.stage_names)}
    trigger = {name: k for k, name in enumerate(c.trigger_names)}
    first = {
        "p_reached": 0,
        "p_at_horizon": n_s,
        "time_in": 2 * n_s,
        "time_to_reach": 3 * n_s,
        "p_fired": 4 * n_s,
        "p_on_at_horizon": 4 * n_s + n_k,
        "time_on": 4 * n_s + 2 * n_k,
        "on": 4 * n_s + 3 * n_k,  # on at the start of the span
    }
    columns = []
    for metric in metrics:
        on = metric.startswith("on:")
        kind, target = metric.split(":") if on else parse_metric(metric)[:2]
        named = trigger if on or kind in TRIGGER_METRICS else stage
        columns.append(first[kind] + named[target])
    return np.array(columns, np.int64)


class WorldsBatch:
    """The two maps of one scenario, its fixed values and horizon, for ``metrics`` (horizon
    metrics: ``p_reached:S`` without ``@T``, ``time_to_reach:S:mean``, and the rest).

    Build it with :meth:`build`, which returns None where the worlds engine does not apply
    (a scenario that is not memoryless, an ``at`` time that varies, a rate map that does not
    give compile's numbers); :meth:`solve` then takes worlds as a matrix.
    """

    def __init__(self, spec: BatchSpec, names: list[str], columns: np.ndarray, chain: Chain):
        self.spec, self.names, self.columns = spec, names, columns
        self.chain = chain  # the template world's: its states order every world's vectors

    @classmethod
    def build(
        cls,
        model: Scenario,
        names: list[str],
        metrics: list[str],
        *,
        overrides: dict[str, float] | None = None,
        horizon: float | None = None,
        sample: np.ndarray | None = None,
        t_start: float = 0.0,
        given_start: bool = False,
    ) -> WorldsBatch | None:
        """The batch of ``model`` whose worlds give the parameters ``names`` (in that order;
        ``overrides`` fix others); ``sample``, worlds to check the rate map on. The chains
        run from ``t_start`` (times count from there) to ``horizon``; ``given_start``: each
        world's distribution at ``t_start`` is given to :meth:`solve` (a filtered state)."""
        overrides = dict(overrides or {})
        template = (
            {**overrides, **dict(zip(names, sample[0], strict=True))} if sample is not None else {}
        )
        try:
            c = compile_scenario(model, template, horizon=horizon)
        except EscalateError:  # a world the compiler refuses: the per-world path says why
            return None
        if not c.is_markov:
            return None
        rates = _RateMap(model, c, names, model.point_values(template))
        if not rates.supported:
            return None
        for x in [] if sample is None else sample[:CHECKED_WORLDS]:
            world = {**overrides, **dict(zip(names, x.tolist(), strict=True))}
            numbers = np.empty(len(rates.op))
            batch_kernels.rate_numbers(
                np.asarray(x, float), rates.op, rates.a_index, rates.a_value,
                rates.b_index, rates.b_value, numbers,
            )  # fmt: skip
            try:
                expected = compiled_numbers(compile_scenario(model, world))
            except EscalateError:
                return None
            if not np.array_equal(numbers, expected):
                return None
        chain = Chain(c)
        spec = _spec(c, chain, rates, _jobs(c, chain, metrics, given_start), t_start)
        return cls(spec, list(names), _columns(c, metrics), chain)

    def solve(
        self,
        x: np.ndarray,
        threads: int | None = None,
        starts: np.ndarray | None = None,
        times: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The metrics of every world of ``x`` (worlds x parameters, in ``names`` order) and
        each world's status (``batch_kernels.SOLVED`` or why not: its row is then nan), on
        ``threads`` numba threads (default: all; the figures do not depend on it);
        ``starts``, each world's distribution over the chain's states at ``t_start``.
        ``times`` (sorted, after ``t_start``, at most the horizon): the metrics at each, as
        (worlds x times x metrics), the chains walked once through them (a curve)."""
        import numba

        from escalate.engine.simulate import KERNEL_LOCK

        x = np.ascontiguousarray(x, dtype=float)
        spec = self.spec
        at = np.array([spec.horizon] if times is None else times, float)
        if len(at) == 0 or np.any(np.diff(at) < 0) or at[0] < spec.t_start or (
                at[-1] > spec.horizon):  # fmt: skip
            raise ValueError("times must be sorted, within the batch's span")
        figures = np.full((len(x), len(at), 4 * spec.n_stages + 4 * spec.n_triggers), np.nan)
        if starts is None:
            starts = np.zeros((0, spec.n_states))
        status = np.zeros(len(x), np.int64)
        with KERNEL_LOCK:
            previous = numba.get_num_threads()
            numba.set_num_threads(threads or previous)
            try:
                starts = np.ascontiguousarray(starts, float)
                batch_kernels.solve_worlds(spec, x, starts, at, figures, status)
            finally:
                numba.set_num_threads(previous)
        if times is None:
            return figures[:, 0, self.columns], status
        return figures[:, :, self.columns], status

    def filtered(self, x: np.ndarray, program) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The forward algorithm of a record on every world of ``x``: its ``program`` (a
        ``forecast.forward.ForwardSpec`` for this batch's chain) run in compiled code on each
        world's generator. Returns the log-likelihoods, the filtered distributions (rows, in
        the chain's states order) and each world's status (``batch_kernels.SOLVED``, or
        ``OTHER_STRUCTURE``: its row is then nan and zero)."""
        from escalate.engine.simulate import KERNEL_LOCK

        spec, x = self.spec, np.ascontiguousarray(x, dtype=float)
        q = np.empty((len(x), spec.q_size))
        p0 = np.empty((len(x), spec.n_states))
        status = np.zeros(len(x), np.int64)
        log_l = np.full(len(x), np.nan)
        distribution = np.zeros((len(x), spec.n_states))
        with KERNEL_LOCK:
            batch_kernels.generators(spec, x, q, p0, status)
            batch_kernels.forward_worlds(program, q, p0, status, log_l, distribution)
        return log_l, distribution, status


def _spec(c: CompiledScenario, chain: Chain, rates: _RateMap, jobs: dict, t_start) -> BatchSpec:
    """The arrays the kernel runs on, from the template's chain and the rate map."""
    entries = len(chain._kind)
    q = chain.q
    transposed = sparse.csr_matrix(
        (np.arange(1.0, q.nnz + 1), q.indices, q.indptr), shape=q.shape
    ).T.tocsr()
    factor_entry, factor_effect, factor_on = (
        chain._effect_factors()
        if chain._has_effects
        else (np.zeros(0, np.int64),) * 2 + (np.zeros(0, bool),)
    )
    factor_start = np.concatenate([[0], np.cumsum(np.bincount(factor_entry, minlength=entries))])
    jump_times = np.array(list(chain.jumps), dtype=float)
    jump_moved = (
        np.stack([chain.jumps[t] for t in chain.jumps])
        if chain.jumps
        else np.zeros((0, chain.n), np.int64)
    )
    flat = compiled_numbers(c)
    signs = np.where(
        rates.keep == batch_kernels.KEEP_SIGN_AND_ONE, 2 * (flat >= 1.0) + 4 * (flat < 0.0), 0
    )
    code = ((flat > 0.0) + signs).astype(np.int64)
    at = rates.at
    return BatchSpec(
        n_stages=c.n_stages, n_triggers=c.n_triggers, n_states=chain.n,
        horizon=float(c.horizon), t_start=float(t_start), max_jumps=float(MAX_JUMPS),
        has_effects=chain._has_effects,
        op=rates.op, a_index=rates.a_index, a_value=rates.a_value, b_index=rates.b_index,
        b_value=rates.b_value, keep=rates.keep, code=code,
        p1_at=at["p1"], ratio_at=at["ratio"], initial_at=at["initial"],
        onset_rate_at=at["onset_rate"], offset_rate_at=at["offset_rate"],
        onset_ratio_at=at["onset_ratio"], offset_ratio_at=at["offset_ratio"],
        effect_at=at["effect_value"],
        entry_kind=chain._kind, entry_which=chain._which, entry_stage=chain._stage,
        entry_mask=chain._mask, entry_row=chain._rows, entry_slot=chain._slot[:entries],
        factor_start=factor_start.astype(np.int64), factor_effect=factor_effect,
        factor_on=factor_on, q_size=len(q.data), diagonal_slot=chain._slot[entries:],
        q_row=np.repeat(np.arange(chain.n), np.diff(q.indptr)), q_col=q.indices.astype(np.int64),
        qt_indptr=transposed.indptr.astype(np.int64),
        qt_indices=transposed.indices.astype(np.int64),
        qt_position=transposed.data.astype(np.int64) - 1,
        stage_of=chain.stage_of, mask_of=chain.mask_of,
        start=np.diff(np.concatenate([[0.0], c.start_cdf])),
        always_on=c.onset_at <= 0.0,
        switches_off=np.array([c.can_switch_off(k) for k in range(c.n_triggers)], bool),
        jump_times=jump_times, jump_moved=jump_moved.astype(np.int64),
        **jobs,
    )  # fmt: skip


BATCH_WORLDS = 512  # worlds a task solves at once: memory grows with a batch, not the worlds


def exact_metrics(
    model: Scenario,
    names: list[str],
    x: np.ndarray,
    metrics: list[str],
    *,
    left: Callable[[int], list[float]],
    overrides: dict[str, float] | None = None,
    horizon: float | None = None,
    scheduler: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray | None:
    """``metrics`` (``p_reached:S@T`` included) of every world of ``x`` (worlds x ``names``)
    by the worlds engine: a batch per time point the metrics read, a task per
    ``BATCH_WORLDS`` worlds (in-process or on the cluster of ``scheduler``: the same figures).
    A world the engine leaves gets ``left(w)`` (the per-world engine, which says why if it
    cannot solve it either). None where the engine does not apply to the scenario."""
    from escalate.engine.cluster import mapped

    batches = _batches(model, names, np.asarray(x, float), metrics, overrides, horizon)
    if batches is None:
        return None
    values = np.empty((len(x), len(metrics)))
    firsts = list(range(0, len(x), BATCH_WORLDS))
    parts = ((x[first : first + BATCH_WORLDS],) for first in firsts)
    with mapped(_solve_part, batches, parts, scheduler) as solved:
        for first, part in zip(firsts, solved, strict=True):
            rows = slice(first, first + BATCH_WORLDS)
            left_here = np.zeros(len(values[rows]), bool)
            for (members, _), (figures, status) in zip(batches, part, strict=True):
                values[rows, members] = figures
                left_here |= status != batch_kernels.SOLVED
            for w in np.flatnonzero(left_here) + first:  # once, whichever batch left it
                values[w] = left(int(w))
            if progress is not None:
                progress(min(first + BATCH_WORLDS, len(x)), len(x))
    return values


def applies(
    model: Scenario,
    names: list[str],
    x: np.ndarray,
    metrics: list[str],
    overrides: dict[str, float] | None = None,
    horizon: float | None = None,
) -> bool:
    """Whether :func:`exact_metrics` takes these worlds (its batches built, and kept)."""
    return _batches(model, names, np.asarray(x, float), metrics, overrides, horizon) is not None


def _batches(model, names, x, metrics, overrides, horizon) -> list | None:
    """A batch per time point ``metrics`` read, with the metrics' places: (members, batch)."""
    groups: dict[float | None, list[int]] = {}
    plain = []
    for i, metric in enumerate(metrics):
        kind, target, detail, at = parse_metric(metric, model=model)
        if kind == "time_to_reach" and detail != "mean":
            return None  # a quantile needs the whole curve (solve)
        plain.append(f"{kind}:{target}" + (f":{detail}" if detail else ""))
        groups.setdefault(horizon if at is None else at, []).append(i)
    batches = []
    for at, members in groups.items():
        batch = built(model, names, [plain[i] for i in members], overrides, at, x[:CHECKED_WORLDS])
        if batch is None:
            return None
        batches.append((members, batch))
    return batches


_BUILT: list = []  # recent batches: (model, key, batch); a forecast asks for the same ones often


def built(
    model, names, metrics, overrides, horizon, sample, t_start=0.0, given_start=False
) -> WorldsBatch | None:
    """:meth:`WorldsBatch.build`, kept for the same scenario object and question (the rate
    map checked on the first worlds it was built for): a forecast asks for the same batches
    again and again."""
    key = (tuple(names), tuple(metrics), tuple(sorted((overrides or {}).items())), horizon,
           t_start, given_start)  # fmt: skip
    for cached_model, cached_key, batch in _BUILT:
        if cached_model is model and cached_key == key:
            return batch
    batch = WorldsBatch.build(
        model, names, metrics, overrides=overrides, horizon=horizon, sample=sample,
        t_start=t_start, given_start=given_start,
    )  # fmt: skip
    _BUILT[:] = [(model, key, batch), *_BUILT[:15]]
    return batch


def _solve_part(batches: list, x: np.ndarray) -> list:
    """One task: a part of the worlds through every time point's batch."""
    return [batch.solve(x) for _, batch in batches]
