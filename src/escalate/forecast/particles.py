"""Nowcasting a scenario that is not memoryless, by particles (docs/forecasting.md).

Where a timing is gamma, lognormal, Weibull, uniform or fixed, the forward algorithm has no
chain to run on. Every stage entry of a record is observed, so given the history of the
triggers the record does not observe, the likelihood of the path is explicit; those triggers
are integrated by a particle filter per world (:mod:`escalate.engine.particles`), which gives
an unbiased estimate of each world's likelihood. The posterior over worlds then follows by the
same tempering and moves as the exact likelihood's (a pseudo-marginal sampler: a world keeps
the estimate it was accepted with), and the forecast starts each particle from its filtered
state at as_of.

How many particles: enough that a world's log-likelihood estimate has a variance near 1, the
usual advice for pseudo-marginal samplers (Doucet, Pitt, Deligiannidis and Kohn, Biometrika
2015). A pilot estimates the variance with ``PILOT_PARTICLES`` particles, ``PILOT_RUNS`` times
on each of a few worlds, and scales it (the variance falls as one over the particles).
"""

from __future__ import annotations

import datetime
import hashlib
import math
import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd

from escalate.engine.compile import compile_scenario
from escalate.engine.particles import MAX_EVENTS, ParticleSpec, filter_and_forecast
from escalate.errors import EscalateError
from escalate.forecast.observations import Observations

__all__ = [
    "FORECAST_TRAJECTORIES",
    "ParticleChoice",
    "after_error",
    "choose_particles",
    "entered_stages",
    "evaluate_particles",
    "forecast_columns",
    "forecast_trajectories",
    "method_for",
]

FORECAST_TRAJECTORIES = 100_000  # trajectories per forecast, shared among its worlds
MIN_FORECAST = 64  # ... and at least this many per world
PILOT_PARTICLES = 128
PILOT_RUNS = 12
PILOT_WORLDS = 8
MIN_PARTICLES, MAX_PARTICLES = 32, 8192
TARGET_VARIANCE = 1.0  # of a world's log-likelihood estimate


@dataclass(frozen=True)
class ParticleChoice:
    """The particles per world and the standard deviation of a world's log-likelihood
    estimate with that many (from the pilot, or nan when the count was given)."""

    particles: int
    log_likelihood_sd: float


PER_WORLD = ("start_cdf", "initial", "p1", "p2", "ratio", "onset_rate", "onset_ratio",
             "offset_rate", "offset_ratio", "onset_at", "effect_value")  # fmt: skip
CACHED_WORLDS = 20_000  # worlds whose numbers a process keeps (a nowcast revisits its worlds)
_cache: dict[int, tuple[object, dict]] = {}  # id(model) -> (model, {world: its numbers})


def _numbers(model, values: dict, horizon: float) -> tuple:
    """One world's numbers (its ``PER_WORLD`` arrays and per stage the log of its start
    chance), compiled once per process: a nowcast evaluates its prior worlds at every step of
    the news, and compiling them again cost four fifths of its time."""
    held = _cache.get(id(model))
    if held is None or held[0] is not model:  # the model is held, so its id is not reused
        if len(_cache) >= 4:
            _cache.clear()
        held = _cache[id(model)] = (model, {})
    worlds = held[1]
    key = (horizon, tuple(sorted(values.items())))
    numbers = worlds.get(key)
    if numbers is None:
        if len(worlds) >= CACHED_WORLDS:
            worlds.clear()
        c = compile_scenario(model, values, horizon=horizon)
        numbers = worlds[key] = (*(getattr(c, field) for field in PER_WORLD), _log_start(c))
    return numbers


def _world_arrays(model, overrides, names, x, horizon):
    """The scenario's structure (compiled with ``overrides``) and each world's numbers,
    stacked, with per world and stage the log of its start chance."""
    first = compile_scenario(model, overrides, horizon=horizon)
    rows = [{**dict(zip(names, row, strict=True)), **overrides} for row in x.tolist()]
    worlds = [_numbers(model, values, float(horizon)) for values in rows or [dict(overrides)]]
    structure = dict(
        out_start=first.out_start, target=first.target, kind=first.kind,
        requires=first.requires, terminal=first.terminal, effect_start=first.effect_start,
        effect_trigger=first.effect_trigger,
    )  # fmt: skip
    per_world = {field: np.ascontiguousarray(np.stack([w[f] for w in worlds]), dtype=float)
                 for f, field in enumerate(PER_WORLD)}  # fmt: skip
    log_start = np.stack([w[-1] for w in worlds])
    return first, structure, per_world, log_start


def _log_start(c) -> np.ndarray:
    """Per stage, log P(the trajectory starts there)."""
    with np.errstate(divide="ignore"):
        return np.log(np.diff(c.start_cdf, prepend=0.0))


def _record(c, obs: Observations | None, resolution: float, switched_at_start=()) -> dict:
    """The record as the kernel reads it: one sojourn per stage entry (to the next entry, the
    last to as_of) and each sojourn's observed switches. A switch at an entry's instant that
    the entering transition's effects can make is that effect (kind 2, on the sojourn that
    transition leaves); any other switch at an entry's instant (kind 1) may come before the
    entry, between the entries of that instant, or after them: it is put on the sojourn
    before the first, with its number of places (``event_slots``); an `at` trigger's onset
    comes after them all. ``resolution``: the time one of the record's dates spans (0: exact
    times). ``switched_at_start``: triggers seen on from the start taken as off until an
    entry at t = 0 switched them on by its effects (see :func:`_start_readings`)."""
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    if obs is None:
        return dict(stay_stage=empty_i, stay_start=empty_f, stay_end=empty_f,
                    stay_next=empty_i, event_start=np.zeros(1, np.int64), event_time=empty_f,
                    event_trigger=empty_i, event_on=empty_i, event_effect=empty_i,
                    event_slots=empty_i, observed=np.int64(0), start_on=np.int64(0),
                    resolution=float(resolution))  # fmt: skip
    path = obs.path
    stages = [s for s, _ in path]
    starts = [t for _, t in path]
    ends = [*starts[1:], obs.as_of]
    following = [*stages[1:], -1]
    source = c.source
    entered_at: dict[float, list[int]] = {}  # an instant -> the entries (path indices) then
    for i, t in enumerate(starts[1:], start=1):
        entered_at.setdefault(t, []).append(i)

    def effect_can(v: int, k: int, on: bool) -> bool:
        for j in np.flatnonzero((source == stages[v]) & (c.target == following[v])):
            for f in range(c.effect_start[j], c.effect_start[j + 1]):
                if c.effect_trigger[f] == k and (c.effect_value[f] < 0) != on:
                    return True
        return False

    events: list[list[tuple[float, int, int, int, int]]] = [[] for _ in stages]
    start_on = 0
    for k, switches in obs.switches.items():
        for time, on in switches:
            if time == 0.0 and on and k not in switched_at_start:
                start_on |= 1 << k
                continue
            entries = entered_at.get(time, [])
            by_effect = [i for i in entries if effect_can(i - 1, k, on)]
            if by_effect:  # (time, kind, trigger, on, places)
                events[by_effect[0] - 1].append((time, 2, k, int(on), 1))
            elif entries and on and math.isfinite(c.onset_at[k]):
                events[entries[-1]].append((time, 0, k, 1, 1))
            elif entries:
                events[entries[0] - 1].append((time, 1, k, int(on), len(entries) + 1))
            else:
                v = max(v for v in range(len(stages)) if starts[v] < time or v == 0)
                events[v].append((time, 0, k, int(on), 1))
    flat = [e for v in range(len(stages)) for e in sorted(events[v])]
    return dict(
        stay_stage=np.array(stages, np.int64),
        stay_start=np.array(starts, float),
        stay_end=np.array(ends, float),
        stay_next=np.array(following, np.int64),
        event_start=np.cumsum([0] + [len(e) for e in events]).astype(np.int64),
        event_time=np.array([e[0] for e in flat], float),
        event_trigger=np.array([e[2] for e in flat], np.int64),
        event_on=np.array([e[3] for e in flat], np.int64),
        event_effect=np.array([int(e[1] == 2) for e in flat], np.int64),
        event_slots=np.array([e[4] for e in flat], np.int64),
        observed=np.int64(obs.observed_mask()),
        start_on=np.int64(start_on),
        resolution=float(resolution),
    )


def _day(model) -> float:
    """The time a dated record's day spans, in the scenario's unit (0 without start_date:
    the record's times are exact)."""
    if model.start_date is None:
        return 0.0
    try:
        return model.time_of(model.start_date + datetime.timedelta(days=1))
    except ValueError:  # a unit dates cannot be used with (month, year)
        return 0.0


def _seeds(x: np.ndarray, obs: Observations | None, particles: int, salt: int) -> np.ndarray:
    """Each world's generator: from its parameters, the record and the particles, so that a
    world's estimate does not depend on the other worlds, the split or the threads."""
    key = repr(None if obs is None else (obs.as_of, tuple(obs.path), sorted(
        (k, tuple(v)) for k, v in obs.switches.items()))).encode()  # fmt: skip
    key += f"|{particles}|{salt}".encode()
    seeds = np.empty((max(len(x), 1), 4), np.uint64)
    rows = x if len(x) else np.zeros((1, 0))
    for w, row in enumerate(rows):
        digest = hashlib.blake2b(np.ascontiguousarray(row).tobytes() + key, digest_size=32)
        seeds[w] = np.frombuffer(digest.digest(), np.uint64)
    return seeds


def _start_readings(c, obs: Observations | None) -> list[tuple[int, ...]]:
    """The ways to read the triggers seen on from the start that an entry at t = 0 can
    switch on by its effects: each on before it, or switched on by it (every combination;
    the exact method sums over them too)."""
    if obs is None:
        return [()]
    source = c.source
    entries = [(obs.path[i - 1][0], s) for i, (s, t) in enumerate(obs.path) if i and t == 0.0]
    ambiguous = []
    for k, switches in obs.switches.items():
        if (0.0, True) in switches:
            for a, b in entries:
                rows = np.flatnonzero((source == a) & (c.target == b))
                effects = [f for j in rows for f in range(c.effect_start[j], c.effect_start[j + 1])]
                if any(c.effect_trigger[f] == k and c.effect_value[f] > 0 for f in effects):
                    ambiguous.append(k)
                    break
    return [tuple(k for i, k in enumerate(ambiguous) if (mask >> i) & 1)
            for mask in range(1 << len(ambiguous))]  # fmt: skip


def _run(model, overrides, obs, horizon, x, names, particles, forecast, times, salt=0):
    """The kernel on the worlds ``x``: the log-likelihoods and, with ``forecast``
    trajectories per world, the forecast arrays. Where the record can be read several ways
    (:func:`_start_readings`), each is run and the likelihoods summed, the forecasts
    weighted by them."""
    c, structure, per_world, log_start = _world_arrays(model, overrides, names, x, horizon)
    n_w, n_s, n_k = len(per_world["p1"]), c.n_stages, c.n_triggers
    times = np.asarray([horizon] if times is None else times, float)
    readings = []
    for reading, switched in enumerate(_start_readings(c, obs)):
        spec = ParticleSpec(**structure, **per_world, **_record(c, obs, _day(model), switched))
        arrays = dict(
            log_l=np.zeros(n_w), ess=np.zeros(n_w), on_now=np.zeros((n_w, n_k)),
            reach=np.zeros((n_w, len(times), n_s)), fired=np.zeros((n_w, len(times), n_k)),
            at_horizon=np.zeros((n_w, n_s)), on_at_horizon=np.zeros((n_w, n_k)),
        )  # fmt: skip
        stalled = np.zeros(n_w, np.int64)
        filter_and_forecast(spec, _seeds(x, obs, particles, salt + 1000 * reading), particles,
                            forecast, times, *arrays.values(), stalled)  # fmt: skip
        if stalled.any():
            raise EscalateError(
                f"{model.scenario}: a trajectory had more than {MAX_EVENTS:,} events in one "
                "stay or before the horizon: some cycle of transitions or trigger switches is "
                "far too fast for the horizon; slow it down or shorten the horizon"
            )
        if obs is not None:  # the start stage's chance (the path's first entry)
            arrays["log_l"] += log_start[:, obs.path[0][0]]
        readings.append(arrays)
    if len(readings) == 1:
        return readings[0], times
    log_l = np.stack([r["log_l"] for r in readings])
    with np.errstate(invalid="ignore"):
        total = np.logaddexp.reduce(log_l, axis=0)
        share = np.nan_to_num(np.exp(log_l - total))  # each reading's part of each world
    arrays = {"log_l": total, "ess": np.min([r["ess"] for r in readings], axis=0)}
    for key in ("on_now", "reach", "fired", "at_horizon", "on_at_horizon"):
        arrays[key] = sum(
            r[key] * share[i].reshape((-1,) + (1,) * (r[key].ndim - 1))
            for i, r in enumerate(readings)
        )
    return arrays, times


def forecast_columns(stages: list[str], triggers: list[str], ahead: str) -> list[str]:
    """A forecast's columns for ``ahead`` (see :func:`escalate.forecast.nowcast._evaluate`),
    in the order :func:`escalate.forecast.nowcast._one_forecast` gives them (both methods
    share them)."""
    if ahead == "by":
        return [f"p_reached:{s}" for s in stages] + [f"p_fired:{t}" for t in triggers]
    if ahead == "stages":
        return [f"p_reached:{s}" for s in stages]
    columns = [f"p_reached:{s}" for s in stages] + [f"on:{t}" for t in triggers]
    if ahead == "all":
        columns += [f"p_at_horizon:{s}" for s in stages]
        columns += [f"p_on_at_horizon:{t}" for t in triggers]
    return columns


def entered_stages(model, overrides, obs: Observations | None) -> set[str]:
    """The stages entered by as_of (reached for certain): the observed path's, or before any
    news the one stage every trajectory starts in."""
    if obs is not None:
        return {list(model.stages)[s] for s, _ in obs.path}
    start = np.diff(np.concatenate([[0.0], compile_scenario(model, overrides).start_cdf]))
    return {list(model.stages)[int(s)] for s in np.flatnonzero(start > 0)} if np.count_nonzero(
        start > 0) == 1 else set()  # fmt: skip


def forecast_trajectories(n_worlds: int, particles: int) -> int:
    """Trajectories per world in a forecast of ``n_worlds`` worlds (the whole evaluation's,
    not a part's: the figures do not depend on how the worlds are split)."""
    return max(MIN_FORECAST, particles, math.ceil(FORECAST_TRAJECTORIES / max(n_worlds, 1)))


def evaluate_particles(model, overrides, obs, horizon, ahead, times, worlds_frame, particles,
                       trajectories: int | None = None):  # fmt: skip
    """:func:`escalate.forecast.nowcast._evaluate` by particles: each world's log-likelihood
    estimate and its forecast (the same columns, and for ``ahead="all"`` a ``var:`` column
    per ``p_reached`` one: its Monte Carlo variance). ``trajectories`` per world forecast
    (default: :func:`forecast_trajectories` of these worlds)."""
    names, x = list(worlds_frame.columns), worlds_frame.to_numpy(float)
    if trajectories is None:
        trajectories = forecast_trajectories(len(worlds_frame), particles)
    forecast = 0 if ahead == "none" else trajectories
    # forecasting, the filter runs as many particles as trajectories start from it
    filtered = particles if ahead == "none" else max(particles, forecast)
    arrays, at = _run(model, overrides, obs, horizon, x, names, filtered, forecast, times)
    log_l = arrays["log_l"][: len(worlds_frame)]
    if ahead == "none":
        return log_l, pd.DataFrame(index=range(len(worlds_frame)))
    stages, triggers = list(model.stages), list(model.triggers)
    base = forecast_columns(stages, triggers, ahead)
    entered = entered_stages(model, overrides, obs)
    blocks = []
    for g, t in enumerate(at):
        block = {}
        for m in base:
            kind, name = m.split(":", 1)
            if kind == "p_reached":
                value = 1.0 if name in entered else arrays["reach"][:, g, stages.index(name)]
            elif kind == "p_fired":
                value = arrays["fired"][:, g, triggers.index(name)]
            elif kind == "on":
                value = arrays["on_now"][:, triggers.index(name)]
            elif kind == "p_at_horizon":
                value = arrays["at_horizon"][:, stages.index(name)]
            else:
                value = arrays["on_at_horizon"][:, triggers.index(name)]
            block[m if times is None else f"{m}@{t:.17g}"] = value
        blocks.append(block)
    frame = pd.DataFrame({k: v for b in blocks for k, v in b.items()}, index=range(len(log_l)))
    if ahead == "all" and times is None:  # the trajectories' error, and the particles' own
        spread = 1 / forecast + 1 / np.maximum(arrays["ess"][: len(log_l)], 1)
        for s in stages:
            p = frame[f"p_reached:{s}"].to_numpy(float)
            frame[f"var:p_reached:{s}"] = p * (1 - p) * spread
    frame.loc[~np.isfinite(log_l), :] = np.nan
    return log_l, frame


def choose_particles(model, overrides, obs, worlds_frame, horizon,
                     particles: int | None = None) -> ParticleChoice:  # fmt: skip
    """The particles per world (see the module docstring): ``particles`` when given, else
    from the pilot, with the pilot's estimate of the log-likelihood's standard deviation."""
    if particles is not None:
        return ParticleChoice(int(particles), math.nan)
    names = list(worlds_frame.columns)
    x = worlds_frame.to_numpy(float)[:PILOT_WORLDS]
    runs = np.array([_run(model, overrides, obs, horizon, x, names, PILOT_PARTICLES, 0, None,
                          salt=1 + r)[0]["log_l"] for r in range(PILOT_RUNS)])  # fmt: skip
    usable = np.all(np.isfinite(runs), axis=0)
    if not usable.any():
        return ParticleChoice(MIN_PARTICLES, math.nan)
    variance = float(np.mean(np.var(runs[:, usable], axis=0, ddof=1)))
    chosen = int(np.clip(math.ceil(PILOT_PARTICLES * variance / TARGET_VARIANCE),
                         MIN_PARTICLES, MAX_PARTICLES))  # fmt: skip
    return ParticleChoice(chosen, math.sqrt(variance * PILOT_PARTICLES / chosen))


def method_for(method: str, compiled, particles: int | None) -> str:
    """The method a nowcast uses: ``method`` ("auto", "exact" or "particles"); "auto" is
    exact where every timing is exponential. EscalateError for an unknown method, exact
    figures asked of a scenario that is not memoryless, or fewer than one particle."""
    from escalate.forecast.forward import require_memoryless

    if method not in ("auto", "exact", "particles"):
        raise EscalateError(f"method must be auto, exact or particles, got {method!r}",
                            parameter="method")  # fmt: skip
    if particles is not None and not (isinstance(particles, numbers.Integral) and particles >= 1):
        raise EscalateError(f"particles must be a whole number from 1, got {particles!r}",
                            parameter="particles")  # fmt: skip
    if method == "exact":
        if particles is not None:
            raise EscalateError("particles is for the particle method, not the exact one",
                                parameter="particles")  # fmt: skip
        require_memoryless(compiled)
    if method == "auto":
        method = "exact" if compiled.is_markov and particles is None else "particles"
    return method


def after_error(outputs: pd.DataFrame, model, weights: np.ndarray, worlds) -> np.ndarray:
    """Per stage, the Monte Carlo standard error of the weighted forecast ``p_reached``: the
    worlds' own errors (their ``var:`` columns) combined with the weights. A world that
    appears several times (resampled) was forecast once: its copies' weights add up before
    they are squared."""
    w = np.where(np.isfinite(weights), weights, 0.0)
    w = w / w.sum()
    rows = worlds.to_numpy(float).reshape(len(w), -1)
    _, first, copies = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    together = np.bincount(copies.ravel(), weights=w, minlength=len(first))
    variances = [outputs[f"var:p_reached:{s}"].to_numpy(float)[first] for s in model.stages]
    return np.array([math.sqrt(float(np.nansum(together**2 * v))) for v in variances])
