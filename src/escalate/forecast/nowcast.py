"""The exact likelihood of what has happened, and the filtered state at as_of (docs/forecasting.md).

The forward algorithm on the joint chain of (stage, triggers on): between observed events the
distribution, restricted to the observed stage and to the trigger sets consistent with the
observed triggers, evolves by the matrix exponential of that restricted generator (its
diagonal keeps every way out, so the probability that nothing else happened is accounted for);
an observed stage entry multiplies by the hazards of the transitions into that stage, an
observed trigger switch by its onset or offset hazard; an ``at`` trigger jumps at its time.
Unobserved triggers are marginalized: they switch freely inside the restricted chain.

The posterior over worlds is calibrate's (:mod:`escalate.forecast.posterior`) with this likelihood;
the news is also replayed one step at a time (the prior worlds reweighted on what was known at
each step) to show which event moved the odds and by how much.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalate.engine.chain import chain_of
from escalate.engine.compile import CompiledScenario
from escalate.engine.numbers import count, finite_or_none, json_records
from escalate.engine.stepping import leaking_series
from escalate.errors import EscalateError
from escalate.forecast.posterior import Posterior, ess_of, normalized, parameter_table

__all__ = [
    "Filtered",
    "NowcastResult",
    "Observations",
    "forecast",
    "forward",
    "nowcast",
    "read_observations",
]


PRIOR_WORLDS = 1000  # prior worlds drawn when none are given


@dataclass(frozen=True)
class Observations:
    """What happened up to ``as_of`` (times in the scenario's unit).

    ``path``: every stage entry, in order, as (stage index, time); the first is the start stage
    at time 0. ``switches``: for each observed trigger (index), its switches as (time, on),
    in order; a time of 0 with ``on`` means on from the start. An observed trigger with no
    switch was off throughout; a trigger not in ``switches`` is unobserved.
    """

    as_of: float
    path: list[tuple[int, float]]
    switches: dict[int, list[tuple[float, bool]]] = field(default_factory=dict)

    def observed_mask(self) -> int:
        return sum(1 << k for k in self.switches)

    def known_bits(self, t: float, *, after: bool) -> int:
        """The observed triggers on at time ``t`` (``after``: counting switches at ``t``)."""
        bits = 0
        for k, events in self.switches.items():
            on = False
            for time, state in events:
                if time < t or (after and time == t) or time == 0.0:
                    on = state
            bits |= int(on) << k
        return bits


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


def forward(c: CompiledScenario, obs: Observations) -> Filtered:
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
    carried, so no record underflows.

    Raises
    ------
    EscalateError
        When the scenario has a non-exponential timing (the forward algorithm needs a chain).
    """
    require_memoryless(c)
    if obs.as_of > c.horizon:  # the chain keeps the `at` jumps up to its horizon
        from escalate.engine.compile import cut_at

        c = cut_at(c, obs.as_of)
    chain = chain_of(c)
    q = chain.q.tocsr()
    q_t = q.T.tocsr()
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
    instants = sorted(
        set(entries) | set(switched) | {tau for tau in chain.jumps if tau <= obs.as_of}
    )
    entry_rows = np.repeat(np.arange(chain.n), np.diff(q.indptr))
    entry_cols = q.indices
    same_stage = stage_of[entry_rows] == stage_of[entry_cols]
    flipped = mask_of[entry_rows] ^ mask_of[entry_cols]

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
            allowed = np.flatnonzero((stage_of == stage) & ((mask_of & seen) == (known & seen)))
            series[stage, known, seen] = (allowed, leaking_series(q[allowed][:, allowed]))
        allowed, restricted = series[stage, known, seen]
        out = np.zeros_like(v)
        if len(allowed) == 0:
            return out, -math.inf
        out[allowed], log_mass = restricted.scaled(v[allowed], dt)
        return out, log_mass

    def enter(v: np.ndarray, stage: int) -> np.ndarray:
        """The probability flowing out of ``v`` into ``stage`` (with the effects)."""
        return (q_t @ v) * (stage_of == stage)

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


OBSERVATION_KEYS = ("scenario", "as_of", "path", "triggers", "title", "description")


def read_observations(path, model) -> Observations:
    """The observations of a file (docs/language.md), checked against ``model``.

    Raises
    ------
    ScenarioError
        Every problem at its line and key: an unknown key, stage or trigger; a time that is
        neither a number nor a usable date (a date needs ``start_date``); a path that does not
        start in a start stage at time 0, entries out of order or after ``as_of``, a step no
        transition allows; switches that contradict each other (off while off, on while on);
        a switch off for a trigger without an ``offset``; another scenario's id.
    """
    from escalate.engine.compile import compile_scenario
    from escalate.errors import ScenarioError, suggest
    from escalate.scenario._yaml import document_kind, read_yaml

    doc = read_yaml(path)
    data = doc.data
    if document_kind(data) != "observations":
        raise ScenarioError([doc.issue((), "an observations file has `as_of:` and `path:`")])
    issues = []

    def at(where, value) -> float | None:
        if value == "start":
            return 0.0
        try:
            if isinstance(value, bool) or not isinstance(value, int | float | str | date):
                raise ValueError(f"{value!r} is not a time: a number, a date YYYY-MM-DD or start")
            time = float(model.time_of(value))
            if not math.isfinite(time) or time < 0:
                raise ValueError(f"{value!r} is not a time at or after the start")
            return time
        except (ValueError, TypeError) as exc:
            issues.append(doc.issue(where, str(exc)))
            return None

    for key in data:
        if key not in OBSERVATION_KEYS:
            issues.append(doc.issue((key,), f"unknown key {key!r}", at_key=True))
    if data.get("scenario") != model.scenario:
        issues.append(
            doc.issue(
                ("scenario",),
                f"the observations are for scenario {data.get('scenario')!r}, "
                f"not {model.scenario!r}",
            )
        )
    as_of = at(("as_of",), data["as_of"])
    if as_of is not None and as_of < 0:
        issues.append(doc.issue(("as_of",), "must not come before the start"))
    stages = list(model.stages)
    compiled = compile_scenario(model)
    starts = np.diff(compiled.start_cdf, prepend=0.0) > 0
    allowed = {(t.from_, t.to) for t in model.transitions}
    entries: list[tuple[int, float]] = []
    raw_path = data.get("path")
    if not isinstance(raw_path, list) or not raw_path:
        issues.append(doc.issue(("path",), "the stage entries up to as_of, in order (at least "
                                "the start)"))  # fmt: skip
        raw_path = []
    previous = None
    for i, entry in enumerate(raw_path):
        where = ("path", i)
        if not isinstance(entry, dict) or "stage" not in entry or "at" not in entry:
            issues.append(doc.issue(where, "an entry is {stage: NAME, at: TIME or DATE}"))
            continue
        name = entry["stage"]
        if not isinstance(name, str) or name not in model.stages:
            issues.append(doc.issue((*where, "stage"), f"unknown stage {name!r}"
                                    f"{suggest(str(name), model.stages)}"))  # fmt: skip
            continue
        time = at((*where, "at"), entry["at"])
        if time is None:
            continue
        if i == 0 and (not starts[stages.index(name)] or time != 0.0):
            message = (
                "the path starts where the scenario does, at the start (t = 0) in a start "
                f"stage; got {name!r} at {time:g}"
            )
            issues.append(doc.issue(where, message))
        if previous is not None:
            if time < previous[1]:
                issues.append(doc.issue((*where, "at"), "entries must be in time order"))
            if (previous[0], name) not in allowed:
                issues.append(doc.issue((*where, "stage"), f"no transition leads from "
                                        f"{previous[0]!r} to {name!r}"))  # fmt: skip
        if as_of is not None and time > as_of:
            issues.append(doc.issue((*where, "at"), f"comes after as_of ({as_of:g})"))
        previous = (name, time)
        entries.append((stages.index(name), time))
    triggers = list(model.triggers)
    switches: dict[int, list[tuple[float, bool]]] = {}
    observed = data.get("triggers") or {}
    if not isinstance(observed, dict):
        issues.append(doc.issue(("triggers",), "a mapping of trigger: {on: [times], off: "
                                "[times]}"))  # fmt: skip
        observed = {}
    for name, seen in observed.items():
        where = ("triggers", name)
        if not isinstance(name, str) or name not in model.triggers:
            hint = suggest(str(name), model.triggers)
            issues.append(doc.issue(where, f"unknown trigger {name!r}{hint}", at_key=True))
            continue
        if (
            not isinstance(seen, dict)
            or not set(seen) <= {"on", "off"}
            or not all(isinstance(seen[state] or [], list) for state in seen)
        ):
            issues.append(doc.issue(where, "a trigger observed is {on: [times], off: [times]} "
                                    "(lists, [] for never)"))  # fmt: skip
            continue
        events = []
        for state in ("on", "off"):
            for j, value in enumerate(seen.get(state) or []):
                time = at((*where, state, j), value)
                if time is not None:
                    events.append((time, state == "on", (*where, state, j)))
        events.sort(key=lambda e: e[0])
        on = False
        for time, state, place in events:
            if state == on:
                issues.append(doc.issue(place, f"switches {'on' if state else 'off'} while "
                                        f"already {'on' if on else 'off'}"))  # fmt: skip
            if not state and not compiled.can_switch_off(triggers.index(name)):
                issues.append(doc.issue(place, "switches off, but neither an offset nor a "
                                        "transition's effect switches it off"))  # fmt: skip
            if as_of is not None and time > as_of:
                issues.append(doc.issue(place, f"comes after as_of ({as_of:g})"))
            on = state
        switches[triggers.index(name)] = [(time, state) for time, state, _ in events]
    if issues:
        raise ScenarioError(issues)
    return Observations(as_of, entries, switches)


def _cut(obs: Observations, until: float) -> Observations:
    """``obs`` as known at ``until``: the entries and switches up to then."""
    return Observations(
        until,
        [(s, t) for s, t in obs.path if t <= until],
        {k: [(t, on) for t, on in events if t <= until] for k, events in obs.switches.items()},
    )


def _evaluate(model, overrides, obs: Observations | None, horizon, ahead, worlds_frame):
    """Per world: the log-likelihood of ``obs`` and the forecast from its as_of to
    ``horizon`` (absolute; None: the scenario's). ``obs`` None is the prior forecast from
    t = 0, log-likelihood 0. ``ahead``: "none" (the likelihood alone, several times faster:
    no columns), "reach" (``p_reached:STAGE`` and ``on:TRIGGER``, the probability that the
    trigger is on at as_of) or "all" (also ``p_at_horizon:STAGE`` and
    ``p_on_at_horizon:TRIGGER``)."""
    from escalate.engine.compile import compile_scenario

    n_s, n_k = len(model.stages), len(model.triggers)
    log_l = np.zeros(len(worlds_frame))
    rows = np.full((len(worlds_frame), 2 * (n_s + n_k)), np.nan)
    occupancy = ahead == "all"
    for w, world in enumerate(worlds_frame.to_dict("records")):
        c = compile_scenario(model, {**world, **overrides}, horizon=horizon)
        if obs is None:
            chain = chain_of(c)
            distribution = chain.p0
            starts = np.unique(chain.stage_of[distribution > 0])  # one: reached for certain
            certain = [(int(starts[0]), 0.0)] if len(starts) == 1 else []
            start = Filtered(0.0, distribution, chain)
            figures = forecast(c, start, Observations(0.0, certain), horizon, occupancy=occupancy)
        else:
            filtered = forward(c, obs)
            log_l[w] = filtered.log_likelihood
            if ahead == "none" or not math.isfinite(filtered.log_likelihood):
                continue
            chain, distribution = filtered.chain, filtered.distribution
            figures = forecast(c, filtered, obs, horizon, occupancy=occupancy)
        on_now = [distribution[(chain.mask_of >> k) & 1 == 1].sum() for k in range(n_k)]
        rows[w] = np.concatenate(
            [figures.p_reached, on_now, figures.p_at_horizon, figures.p_on_at_horizon]
        )
    if ahead == "none":
        return log_l, pd.DataFrame(index=range(len(worlds_frame)))
    columns = (
        [f"p_reached:{s}" for s in model.stages]
        + [f"on:{t}" for t in model.triggers]
        + [f"p_at_horizon:{s}" for s in model.stages]
        + [f"p_on_at_horizon:{t}" for t in model.triggers]
    )
    frame = pd.DataFrame(rows, columns=columns)
    return log_l, frame if occupancy else frame[columns[: n_s + n_k]]


def _evaluator(model, overrides, horizon, pool, workers):
    """``evaluate(worlds, obs) -> (log-likelihood, forecast)``, here or split among the
    processes of ``pool`` (in order: the figures do not depend on the split)."""
    from escalate.forecast.posterior import map_in_parts

    def evaluate(worlds_frame, obs, ahead="reach"):
        return map_in_parts(
            _evaluate, worlds_frame, pool, workers, model, overrides, obs, horizon, ahead
        )

    return evaluate


@dataclass
class NowcastResult:
    """The forecast before and after the news, and what each piece of news did.

    ``before``: per stage, P(reached by the horizon) over the prior worlds from t = 0;
    ``after``: the same over the posterior worlds, each from its filtered state at as_of;
    ``ahead``: the same pair for ``p_at_horizon`` (per stage) and ``p_on_at_horizon`` (per
    trigger);
    ``triggers_on``: per unobserved trigger, the posterior probability that it is on at as_of;
    ``steps``: the news in time order, one step per time at which something was observed
    (and a last one at as_of for what did not happen since): its time, what happened, and
    P(reached) per stage given everything up to then (the prior worlds reweighted);
    ``posterior``: the worlds and weights.
    """

    scenario: str
    as_of: float
    horizon: float
    time_unit: str
    start_date: str | None
    stage_names: tuple[str, ...]
    stage_labels: tuple[str, ...]
    trigger_names: tuple[str, ...]
    headline: int
    before: np.ndarray
    after: np.ndarray
    ahead: dict[str, tuple[np.ndarray, np.ndarray]]
    triggers_on: dict[str, float]
    steps: list[dict]
    posterior: Posterior
    uncertain: list[str]
    seed: int
    overrides: dict[str, float] = field(default_factory=dict)
    worlds_from: str | None = None

    def date(self, time: float) -> str | None:
        """The ISO date in which ``time`` falls (None without a start_date)."""
        from escalate.scenario.model import date_of

        day = date_of(time, self.start_date, self.time_unit)
        return None if day is None else day.isoformat()

    def when(self, time: float) -> str:
        """A time as the reader wants it: its date with start_date, else the time."""
        from escalate.scenario.model import when

        return when(time, self.start_date, self.time_unit)

    def _stage(self, stage: str | None) -> int:
        if stage is None:
            return self.headline
        if stage not in self.stage_names:
            from escalate.errors import suggest

            raise EscalateError(f"unknown stage {stage!r}{suggest(stage, self.stage_names)}")
        return self.stage_names.index(stage)

    @property
    def worlds(self) -> pd.DataFrame:
        """The posterior worlds, a column per updated parameter and ``weight``."""
        frame = self.posterior.worlds.reset_index(drop=True).copy()
        frame["weight"] = self.posterior.weights
        return frame

    def summary(self) -> pd.DataFrame:
        """Per stage, P(reached by the horizon) before the news, after it, and the change;
        and P(in the stage at the horizon) before and after."""
        at_before, at_after = self.ahead["p_at_horizon"]
        return pd.DataFrame(
            {
                "before": self.before,
                "after": self.after,
                "change": self.after - self.before,
                "at_horizon_before": at_before,
                "at_horizon_after": at_after,
            },
            index=pd.Index(self.stage_names, name="stage"),
        )

    def updates(self, stage: str | None = None) -> pd.DataFrame:
        """The news one step at a time: per step its time (and date), what happened, and
        P(``stage`` reached by the horizon) before and after it, with the ESS of the
        reweighted prior worlds behind the figure. ``stage`` defaults to the headline stage
        (the first war, else the last stage)."""
        s = self._stage(stage)
        rows, previous = [], self.before[s]
        for step in self.steps:
            now = step["p_reached"][s]
            rows.append(
                {
                    "time": step["time"],
                    "date": self.date(step["time"]),
                    "news": "; ".join(step["events"]),
                    "before": previous,
                    "after": now,
                    "change": now - previous,
                    "ess": step["ess"],
                }
            )
            previous = now
        return pd.DataFrame(rows)

    def parameters(self) -> pd.DataFrame:
        """Per updated parameter: prior and posterior median and 90% interval, contraction."""
        return parameter_table(self.posterior, self.uncertain)

    def plot_update(self, stage: str | None = None):
        """A waterfall: P(``stage`` by the horizon) before the news, each step's change, and
        the figure after it."""
        from escalate.output import plots

        return plots.nowcast_waterfall(self, self._stage(stage))

    def plot_parameters(self, top: int = 12):
        """Prior against posterior for the ``top`` parameters the news moved most."""
        from escalate.output import plots

        return plots.prior_posterior(self, top, "what the news says of the parameters")

    def to_dict(self) -> dict[str, Any]:
        p = self.posterior
        at_before, at_after = self.ahead["p_at_horizon"]
        on_before, on_after = self.ahead["p_on_at_horizon"]
        return {
            "scenario": self.scenario,
            "as_of": self.as_of,
            "as_of_date": self.date(self.as_of),
            "horizon": self.horizon,
            "horizon_date": self.date(self.horizon),
            "start_date": self.start_date,
            "seed": self.seed,
            **p.diagnostics(),
            "worlds_from": self.worlds_from,
            "overrides": self.overrides,
            "headline": self.stage_names[self.headline],
            "stage_labels": dict(zip(self.stage_names, self.stage_labels, strict=True)),
            "stages": {
                name: {
                    "before": finite_or_none(self.before[i]),
                    "after": finite_or_none(self.after[i]),
                    "p_at_horizon": {
                        "before": finite_or_none(at_before[i]),
                        "after": finite_or_none(at_after[i]),
                    },
                }
                for i, name in enumerate(self.stage_names)
            },
            "triggers": {
                name: {
                    "p_on_at_horizon": {
                        "before": finite_or_none(on_before[k]),
                        "after": finite_or_none(on_after[k]),
                    },
                    "p_on_at_as_of": self.triggers_on.get(name),
                }
                for k, name in enumerate(self.trigger_names)
            },
            "updates": [
                {
                    "time": step["time"],
                    "date": self.date(step["time"]),
                    "news": step["events"],
                    "ess": step["ess"],
                    "p_reached": {
                        name: finite_or_none(x)
                        for name, x in zip(self.stage_names, step["p_reached"], strict=True)
                    },
                }
                for step in self.steps
            ],
            "triggers_on_at_as_of": self.triggers_on,
            "parameters": json_records(self.parameters()),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def _at_start(model, obs: Observations) -> str:
    """The state observed at t = 0, in words."""
    triggers = list(model.triggers)
    known = obs.known_bits(0.0, after=True)
    states = [f"{model.label(triggers[k])}: {'on' if known >> k & 1 else 'off'}"
              for k in sorted(obs.switches)]  # fmt: skip
    start = model.label(list(model.stages)[obs.path[0][0]])
    return "; ".join([f"started in {start}", *states])


def _news(model, obs: Observations) -> dict[float, list[str]]:
    """What was observed at each time after the start, in words, by time."""
    stages, triggers = list(model.stages), list(model.triggers)
    news: dict[float, list[str]] = {}
    for stage, time in obs.path[1:]:
        news.setdefault(time, []).append(f"reached {model.label(stages[stage])}")
    for k, events in obs.switches.items():
        for time, on in events:
            if time > 0.0:
                news.setdefault(time, []).append(
                    f"{model.label(triggers[k])}: {'on' if on else 'off'}"
                )
    return news


def nowcast(
    scenario,
    observations: Observations | str | Path,
    *,
    worlds: int | None = None,
    seed: int = 0,
    moves: int = 3,
    overrides: dict[str, float] | None = None,
    worlds_from: pd.DataFrame | str | Path | None = None,
    horizon: float | None = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> NowcastResult:
    """Update the scenario on what has happened and forecast from as_of (docs/forecasting.md).

    Parameters
    ----------
    scenario : Scenario
        Every timing must be exponential (the likelihood is exact).
    observations : Observations, or the path of an observations file
    worlds : int, optional
        Prior worlds drawn (Latin hypercube over the ``uncertain`` parameters); 1,000 when
        neither this nor ``worlds_from`` is given.
    seed : int
        Fixes the worlds, the resampling and the moves: the same seed, the same figures.
    moves : int
        Random-walk Metropolis steps per world after each tempering step.
    overrides : dict, optional
        Parameters fixed at a value (``--set``, ``--params``); they are not updated.
    worlds_from : DataFrame or path, optional
        Weighted worlds to start from instead of the prior (calibrate's ``worlds.parquet``):
        they are reweighted by the news, not moved (their density is not known).
    horizon : float, optional
        The absolute time the forecast runs to (default the scenario's horizon).
    workers : int, optional
        Processes that evaluate the worlds (default: the cores, at most 8); the figures are
        the same for any number.
    progress : callable, optional
        Called with a line of text as the update proceeds.

    Returns
    -------
    NowcastResult
    """
    import contextlib
    import os

    from escalate.analysis.draws import uncertain_parameters, worlds_to_weigh
    from escalate.engine.compile import compile_scenario
    from escalate.forecast.posterior import fit_posterior, process_pool

    model = scenario
    obs = (
        observations
        if isinstance(observations, Observations)
        else read_observations(observations, model)
    )
    overrides = dict(overrides or {})
    # a bad override or a timing that is not exponential fails here, before any work
    require_memoryless(compile_scenario(model, overrides))
    end = float(model.horizon_time if horizon is None else horizon)
    if not end > obs.as_of:
        raise EscalateError(f"the horizon ({end:g}) must come after as_of ({obs.as_of:g})")
    if worlds_from is None and not [n for n in uncertain_parameters(model) if n not in overrides]:
        # nothing uncertain: one world, its likelihood and evidence exact
        prior, weights0, source = pd.DataFrame(index=range(1)), np.ones(1), None
    else:
        if worlds is None and worlds_from is None:
            worlds = PRIOR_WORLDS
        prior, weights0, source = worlds_to_weigh(model, worlds, worlds_from, seed, overrides)
    names = list(prior.columns)
    prior_weights = weights0 if worlds_from is not None else None
    say = progress or (lambda line: None)
    news = _news(model, obs)
    initial = _cut(obs, 0.0)
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    with contextlib.ExitStack() as stack:
        pool = process_pool(workers) if len(prior) >= 100 else None
        if pool is not None:
            stack.callback(pool.shutdown, cancel_futures=True)
        evaluate = _evaluator(model, overrides, end, pool, workers)
        say(f"the prior forecast: {count(len(prior), 'world')}")
        _, prior_out = evaluate(prior, None, "all")
        before = _weighted_stages(prior_out, model, weights0)
        ahead_before = {
            metric: _weighted_stages(prior_out, model, weights0, metric)
            for metric in ("p_at_horizon", "p_on_at_horizon")
        }
        say("the update on everything observed")
        posterior = fit_posterior(
            model,
            prior,
            lambda w: evaluate(w, obs, "none"),
            seed=seed,
            moves=moves,
            progress=say,
            prior_weights=prior_weights,
            evidence="the observations",
        )
        say("the forecast from as_of")
        _, posterior.prior_outputs = evaluate(prior, obs, "all")
        if posterior.powers:  # moved worlds: forecast each distinct one once
            distinct, where = np.unique(posterior.worlds.to_numpy(float), axis=0,
                                        return_inverse=True)  # fmt: skip
            _, out = evaluate(pd.DataFrame(distinct, columns=posterior.worlds.columns), obs, "all")
            posterior.outputs = out.iloc[where.ravel()].reset_index(drop=True)
        else:
            posterior.outputs = posterior.prior_outputs
        steps = []
        times = sorted(news)
        log_l0, out0 = evaluate(prior, initial)
        if np.any(np.abs(log_l0) > 1e-12):  # the start itself was news (observed triggers)
            news[0.0] = [_at_start(model, obs), *news.get(0.0, [])]
            times = sorted(news)
        if obs.as_of not in news:
            times.append(obs.as_of)
            news[obs.as_of] = ["nothing else up to as_of"]
        for t in times:
            say(f"the news up to {t:g}")
            if t == obs.as_of:
                log_l, out = posterior.prior_log_likelihood, posterior.prior_outputs
            elif t == 0.0:
                log_l, out = log_l0, out0
            else:
                log_l, out = evaluate(prior, _cut(obs, t))
            with np.errstate(divide="ignore"):
                w, _ = normalized(log_l + np.log(weights0))
            steps.append(
                {
                    "time": t,
                    "events": news[t],
                    "p_reached": _weighted_stages(out, model, w),
                    "ess": ess_of(w),
                }
            )
    p = posterior
    after = _weighted_stages(p.outputs, model, p.weights)
    ahead = {
        metric: (values, _weighted_stages(p.outputs, model, p.weights, metric))
        for metric, values in ahead_before.items()
    }
    on_now = _weighted_stages(p.outputs, model, p.weights, "on")
    triggers_on = {
        t: float(on_now[k]) for k, t in enumerate(model.triggers) if k not in obs.switches
    }
    return NowcastResult(
        scenario=model.scenario,
        as_of=obs.as_of,
        horizon=end,
        time_unit=model.time_unit,
        start_date=None if model.start_date is None else str(model.start_date),
        stage_names=tuple(model.stages),
        stage_labels=tuple(model.label(s) for s in model.stages),
        trigger_names=tuple(model.triggers),
        headline=model.headline_stage(),
        before=before,
        after=after,
        ahead=ahead,
        triggers_on=triggers_on,
        steps=steps,
        posterior=posterior,
        uncertain=names,
        seed=seed,
        overrides=overrides,
        worlds_from=source,
    )


def _weighted_stages(
    outputs: pd.DataFrame, model, weights: np.ndarray, metric: str = "p_reached"
) -> np.ndarray:
    """Per stage (per trigger for a trigger metric, or ``on``), the weighted mean of
    ``metric`` (:func:`escalate.analysis.weights.weighted_mean`: worlds the news rules out have
    no figures and no weight)."""
    from escalate.analysis.weights import weighted_mean

    names = model.stages if metric in ("p_reached", "p_at_horizon") else model.triggers
    return np.array([weighted_mean(outputs[f"{metric}:{name}"], weights)[0] for name in names])
