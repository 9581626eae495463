"""The exact likelihood of what has happened, and the filtered state at as_of (DESIGN.md 8.2).

The forward algorithm on the joint chain of (stage, triggers on): between observed events the
distribution, restricted to the observed stage and to the trigger sets consistent with the
observed triggers, evolves by the matrix exponential of that restricted generator (its
diagonal keeps every way out, so the probability that nothing else happened is accounted for);
an observed stage entry multiplies by the hazards of the transitions into that stage, an
observed trigger switch by its onset or offset hazard; an ``at`` trigger jumps at its time.
Unobserved triggers are marginalized: they switch freely inside the restricted chain.

This module is the engine of ``nowcast`` (issue 18): the observations file, the likelihood,
the filtered state and the forecast from it; the posterior over worlds, the command and its
outputs are still to come.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg

from escalate.compile import CompiledScenario
from escalate.errors import EscalateError
from escalate.exact import chain_of

__all__ = ["Filtered", "Observations", "forward"]


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


def forward(c: CompiledScenario, obs: Observations) -> Filtered:
    """The exact log-likelihood of ``obs`` under ``c`` and the filtered state at as_of.

    Raises
    ------
    EscalateError
        When the scenario has a non-exponential timing (the forward algorithm needs a chain).
    """
    if not c.is_markov:
        from escalate.compile import KIND_NAMES

        names = sorted({KIND_NAMES[int(k)] for k in c.kind if k != 0})
        raise EscalateError(
            f"{c.name}: nowcast needs every timing exponential; this scenario has "
            f"{', '.join(names)} timings"
        )
    chain = chain_of(c)
    q = chain.q.tocsr()
    stage_of, mask_of = chain.stage_of, chain.mask_of
    observed = obs.observed_mask()
    # the events in time order: stage entries after the first, trigger switches after 0, `at`
    # jumps up to as_of; at one time, jumps first, then switches, then the stage entry
    events: list[tuple[float, int, int]] = []
    for stage, time in obs.path[1:]:
        events.append((time, 2, stage))
    for k, switches in obs.switches.items():
        for time, _ in switches:
            if time > 0.0:
                events.append((time, 1, k))
    for tau in chain.jumps:
        if tau <= obs.as_of:
            events.append((tau, 0, -1))
    events.sort()

    # per entry of q: its row and column, and whether it flips only trigger k's bit
    entry_rows = np.repeat(np.arange(chain.n), np.diff(q.indptr))
    entry_cols = q.indices

    def flips(k: int) -> np.ndarray:
        same_stage = stage_of[entry_rows] == stage_of[entry_cols]
        return same_stage & ((mask_of[entry_rows] ^ mask_of[entry_cols]) == (1 << k))

    start_stage = obs.path[0][0]
    known = obs.known_bits(0.0, after=True)
    v = chain.p0 * ((stage_of == start_stage) & ((mask_of & observed) == known))
    log_l = 0.0
    total = v.sum()
    if total <= 0.0:
        return Filtered(-math.inf, v, chain)
    log_l += math.log(total)
    v = v / total
    t, stage = 0.0, start_stage
    for time, kind, what in events:
        v = _evolve(q, v, stage, known, observed, stage_of, mask_of, time - t)
        t = time
        if kind == 0:  # an `at` jump: every trigger it names comes on
            v = np.bincount(chain.jumps[time], weights=v, minlength=chain.n)
            continue
        after = obs.known_bits(time, after=True)
        # the probability flowing along each entry of the generator, kept for the entries
        # that make the observed event: a switch of trigger `what` alone, in the same stage,
        # or an entry into stage `what` (v lies in another stage: no diagonal term there)
        if kind == 1:
            flow = np.zeros(chain.n)
            np.add.at(flow, entry_cols, v[entry_rows] * q.data * flips(what))
        else:
            flow = q.T @ v
            stage = what
        v = flow * (stage_of == stage)
        known = after
        v = v * ((mask_of & observed) == known)
        total = v.sum()
        if total <= 0.0:
            return Filtered(-math.inf, v, chain)
        log_l += math.log(total)
        v = v / total
    v = _evolve(q, v, stage, known, observed, stage_of, mask_of, obs.as_of - t)
    total = v.sum()
    if total <= 0.0:
        return Filtered(-math.inf, v, chain)
    return Filtered(log_l + math.log(total), v / total, chain)


def _evolve(q, v, stage, known, observed, stage_of, mask_of, dt: float) -> np.ndarray:
    """``v`` after ``dt`` in the chain restricted to ``stage`` and the observed triggers'
    known values: sub-stochastic, the mass lost being the paths where something observed
    would have happened."""
    if dt <= 0.0:
        return v
    allowed = np.flatnonzero((stage_of == stage) & ((mask_of & observed) == known))
    out = np.zeros_like(v)
    if len(allowed) == 0:
        return out
    sub = q[allowed][:, allowed].toarray()
    out[allowed] = v[allowed] @ linalg.expm(sub * dt)
    return out


def forecast(
    c: CompiledScenario, filtered: Filtered, obs: Observations, horizon: float | None = None
):
    """Exact figures at ``horizon`` (absolute; default the scenario's) from the filtered state
    at as_of: each state weighted by its filtered probability, ``at`` triggers at their
    absolute times. Stages entered before as_of count as reached.

    Returns the :class:`escalate.exact.HorizonFigures` of the span from as_of to ``horizon``
    (its times, such as the mean time to reach, count from as_of).
    """
    import copy

    from escalate.compile import cut_at
    from escalate.exact import solve_at_horizon

    end = c.horizon if horizon is None else horizon
    if not end > obs.as_of:
        raise EscalateError.about(
            "{horizon} must come after as_of ({:g}), got {:g}", obs.as_of, end
        )
    chain = copy.copy(filtered.chain)
    chain.p0 = filtered.distribution
    chain.jumps = {
        tau - obs.as_of: moved for tau, moved in filtered.chain.jumps.items() if tau > obs.as_of
    }
    figures = solve_at_horizon(cut_at(c, end - obs.as_of), chain=chain)
    for stage, _ in obs.path:
        figures.p_reached[stage] = 1.0
    return figures


OBSERVATION_KEYS = ("scenario", "as_of", "path", "triggers", "title", "description")


def read_observations(path, model) -> Observations:
    """The observations of a file (DESIGN.md 8.2), checked against ``model``.

    Raises
    ------
    ScenarioError
        Every problem at its line and key: an unknown key, stage or trigger; a time that is
        neither a number nor a usable date (a date needs ``start_date``); a path that does not
        start in a start stage at time 0, entries out of order or after ``as_of``, a step no
        transition allows; switches that contradict each other (off while off, on while on);
        a switch off for a trigger without an ``offset``; another scenario's id.
    """
    from escalate.compile import compile_scenario
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
            return float(model.time_of(value)) if not isinstance(value, bool) else None
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
    starts = np.diff(compile_scenario(model).start_cdf, prepend=0.0) > 0
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
        if name not in model.stages:
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
    for name, seen in (data.get("triggers") or {}).items():
        where = ("triggers", name)
        if name not in model.triggers:
            hint = suggest(str(name), model.triggers)
            issues.append(doc.issue(where, f"unknown trigger {name!r}{hint}", at_key=True))
            continue
        if not isinstance(seen, dict) or not set(seen) <= {"on", "off"}:
            issues.append(doc.issue(where, "a trigger observed is {on: [times], off: [times]}"))
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
            if not state and not model.triggers[name].offset:
                issues.append(doc.issue(place, "switches off, but the trigger has no offset"))
            if as_of is not None and time > as_of:
                issues.append(doc.issue(place, f"comes after as_of ({as_of:g})"))
            on = state
        switches[triggers.index(name)] = [(time, state) for time, state, _ in events]
    if issues:
        raise ScenarioError(issues)
    return Observations(as_of, entries, switches)


@dataclass
class NowcastResult:
    """The forecast before and after the news, and what the news did.

    ``before`` and ``after``: per stage, P(reached by the horizon), averaged over the prior
    worlds from t = 0 and over the posterior worlds from their filtered state at as_of;
    ``triggers_on``: per unobserved trigger, the posterior probability that it is on at as_of;
    ``updates``: the forecast after each observed event in time order (importance weights on
    the prior worlds, observations cut at that event); ``posterior``: the worlds and weights.
    """

    scenario: str
    as_of: float
    stage_names: tuple[str, ...]
    before: np.ndarray
    after: np.ndarray
    triggers_on: dict[str, float]
    updates: list[dict]
    posterior: object

    def summary(self):
        import pandas as pd

        frame = pd.DataFrame(
            {"before": self.before, "after": self.after, "change": self.after - self.before},
            index=pd.Index(self.stage_names, name="stage"),
        )
        return frame


def _cut(obs: Observations, until: float) -> Observations:
    """``obs`` as known at ``until``: the entries and switches up to then."""
    return Observations(
        until,
        [(s, t) for s, t in obs.path if t <= until],
        {k: [(t, on) for t, on in events if t <= until] for k, events in obs.switches.items()},
    )


def nowcast(
    model,
    observations: Observations,
    *,
    worlds: int = 2000,
    seed: int = 0,
    overrides: dict | None = None,
    moves: int = 3,
):
    """Update the scenario's worlds on ``observations`` and forecast from as_of (DESIGN 8.2).

    Each prior world (Latin hypercube over the ``uncertain`` parameters) is weighted by the
    exact likelihood of the observations (the forward algorithm), tempered and moved as
    calibrate's are; each posterior world forecasts from its filtered state at as_of.
    """
    import pandas as pd

    from escalate.compile import compile_scenario
    from escalate.posterior import fit_posterior
    from escalate.uncertainty import draw_worlds, uncertain_parameters

    overrides = dict(overrides or {})
    names = [n for n in uncertain_parameters(model) if n not in overrides]
    prior = draw_worlds(model, worlds, seed)[names]
    n_s = len(model.stages)

    def evaluate(worlds_frame, obs):
        log_l, reached, on = [], [], []
        for world in worlds_frame.to_dict("records"):
            c = compile_scenario(model, {**world, **overrides})
            filtered = forward(c, obs)
            log_l.append(filtered.log_likelihood)
            if math.isfinite(filtered.log_likelihood):
                figures = forecast(c, filtered, obs)
                reached.append(figures.p_reached)
                mask = filtered.chain.mask_of
                on.append([filtered.distribution[(mask >> k) & 1 == 1].sum()
                           for k in range(c.n_triggers)])  # fmt: skip
            else:
                reached.append(np.full(n_s, np.nan))
                on.append(np.full(c.n_triggers, np.nan))
        columns = [f"p_reached:{s}" for s in model.stages] + [f"on:{t}" for t in model.triggers]
        out = pd.DataFrame(np.hstack([np.array(reached), np.array(on)]), columns=columns)
        return np.array(log_l), out

    start = Observations(0.0, observations.path[:1], _cut(observations, 0.0).switches)
    _, prior_out = evaluate(prior, start)
    cols = [f"p_reached:{s}" for s in model.stages]
    equal = np.full(len(prior), 1.0 / len(prior))
    before = np.nansum(prior_out[cols].to_numpy() * equal[:, None], axis=0)
    posterior = fit_posterior(
        model, prior, lambda w: evaluate(w, observations), seed=seed, moves=moves
    )
    weights = posterior.weights
    after = np.nansum(posterior.outputs[cols].to_numpy() * weights[:, None], axis=0)
    observed = set(observations.switches)
    triggers_on = {
        t: float(np.nansum(posterior.outputs[f"on:{t}"].to_numpy() * weights))
        for k, t in enumerate(model.triggers)
        if k not in observed
    }
    times = sorted(
        {t for _, t in observations.path[1:]}
        | {t for events in observations.switches.values() for t, _ in events if t > 0}
    )
    updates, previous = [], before
    for t in times:
        log_l, out = evaluate(prior, _cut(observations, t))
        w = np.exp(log_l - np.max(log_l))
        w /= w.sum()
        now = np.nansum(out[cols].to_numpy() * w[:, None], axis=0)
        updates.append({"time": t, "before": previous, "after": now,
                        "ess": float(1 / np.sum(w**2))})  # fmt: skip
        previous = now
    return NowcastResult(
        model.scenario, observations.as_of, tuple(model.stages), before, after, triggers_on,
        updates, posterior,
    )  # fmt: skip
