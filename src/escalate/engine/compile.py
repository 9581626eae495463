"""Compile a scenario and one set of parameter values into flat numpy arrays.

One compiled kernel serves every scenario: the kernels (and the exact solver) read only these
arrays. Transitions are grouped by source stage (CSR layout: the outgoing transitions of stage
``s`` are ``out_start[s]:out_start[s + 1]``); triggers are bits of an int64 mask.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from escalate.errors import EscalateError
from escalate.scenario.model import (
    Exponential,
    Fixed,
    Gamma,
    LogNormal,
    Scenario,
    Uniform,
    Weibull,
)
from escalate.scenario.resolve import ResolvedScenario, resolve

__all__ = [
    "KIND_NAMES",
    "MAX_GRID_POINTS",
    "MAX_TRIGGERS",
    "CompiledScenario",
    "compile_scenario",
]

# Timing kinds as the kernel sees them; p1, p2 are the kind's two numbers.
EXPONENTIAL, FIXED, UNIFORM, GAMMA, WEIBULL, LOGNORMAL = range(6)
KIND_NAMES = ("exponential", "fixed", "uniform", "gamma", "weibull", "lognormal")
MAX_TRIGGERS = 62
MAX_GRID_POINTS = 100_001

# The layout of the kernel's accumulators (read by results.py to turn counts into figures).
PATH_CAPACITY = 2048  # path table slots per chunk (a power of two; 3/4 of them used at most)
PATH_LENGTH = 32  # stages of a path kept for display; longer paths are marked as cut
QUANTILE_BINS = 4096  # bins over (0, horizon] of first-entry times, after a bin for t = 0
TIME_BITS = 24  # times are summed as integers in units of horizon / 2**TIME_BITS


@dataclass(frozen=True)
class CompiledScenario:
    """A scenario as arrays. Stage, trigger and transition order is the file's order."""

    name: str
    stage_names: tuple[str, ...]
    trigger_names: tuple[str, ...]
    horizon: float
    time_unit: str
    values: dict[str, float]
    start_cdf: np.ndarray  # (S,) float64: cumulative start probabilities
    terminal: np.ndarray  # (S,) bool
    out_start: np.ndarray  # (S + 1,) int64: CSR offsets into the transition arrays
    target: np.ndarray  # (T,) int64
    kind: np.ndarray  # (T,) int64: EXPONENTIAL, FIXED, ...
    p1: np.ndarray  # (T,) float64: rate | value | low | shape k | shape | mu
    p2: np.ndarray  # (T,) float64: 0 | 0 | high | scale | scale | sigma
    ratio: np.ndarray  # (T, K) float64: clock speed factor while trigger k is on
    requires: np.ndarray  # (T,) int64: mask of triggers that must be on
    order: np.ndarray  # (T,) int64: index of each compiled transition in the file
    initial: np.ndarray  # (K,) float64
    onset_rate: np.ndarray  # (K, S) float64: 0 where the trigger has no onset
    onset_at: np.ndarray  # (K,) float64: inf where the trigger has no `at`
    onset_ratio: np.ndarray  # (K, S, K) float64: onset hazard factor while trigger m is on
    offset_rate: np.ndarray  # (K, S) float64: 0 where the trigger has no offset
    offset_ratio: np.ndarray  # (K, S, K) float64
    effect_start: np.ndarray  # (T + 1,) int64: CSR offsets of each transition's effects
    effect_trigger: np.ndarray  # (E,) int64
    effect_value: np.ndarray  # (E,) float64: OFF (-1) switches off, p in [0, 1] on w.p. p
    grid_step: float
    grid: np.ndarray = field(repr=False)  # (G,) float64: 0, step, 2 step, ..., horizon
    start_date: str | None = None  # ISO date of t = 0, for outputs
    # each trajectory draws from a generator of its own, seeded from its chunk's and its
    # index (compare's paired runs: variants stay on the same random numbers trajectory by
    # trajectory); off, a chunk's trajectories share one stream (the faster default)
    trajectory_streams: bool = False

    def can_switch_off(self, k: int) -> bool:
        """Whether trigger ``k`` can switch off once on (an offset, or an effect ``off``)."""
        return bool(
            np.any(self.offset_rate[k] > 0)
            or np.any((self.effect_trigger == k) & (self.effect_value < 0))
        )

    @property
    def n_stages(self) -> int:
        return len(self.stage_names)

    @property
    def n_triggers(self) -> int:
        return len(self.trigger_names)

    @property
    def source(self) -> np.ndarray:
        """The stage each transition (a row of ``target``) leaves."""
        return np.repeat(np.arange(self.n_stages), np.diff(self.out_start))

    @property
    def is_markov(self) -> bool:
        """Every transition exponential: the process is a CTMC on (stage, triggers on)."""
        return bool(np.all(self.kind == EXPONENTIAL))


def time_grid(horizon: float) -> tuple[float, np.ndarray]:
    """The default grid: one point per time unit from 0, the horizon included.

    Horizons longer than ``MAX_GRID_POINTS - 1`` units get an evenly spaced coarser grid.
    """
    step = 1.0
    if horizon / step > MAX_GRID_POINTS - 1:
        step = horizon / (MAX_GRID_POINTS - 1)
    n_inner = math.ceil(horizon / step)  # points 0 .. n_inner - 1 lie below the horizon
    if n_inner * step > horizon * (1 - 1e-12):
        n_inner -= 1
    grid = np.append(np.arange(n_inner + 1) * step, horizon)
    return step, grid


def _timing_arrays(resolved: ResolvedScenario, index: int) -> tuple[int, float, float]:
    t = resolved.transitions[index]
    if t.rate is not None:
        return EXPONENTIAL, t.rate, 0.0
    delay, p = t.delay, t.delay_numbers
    if isinstance(delay, Exponential):  # pragma: no cover - resolved as a rate
        return EXPONENTIAL, 1.0 / p["mean"], 0.0
    if isinstance(delay, Fixed):
        return FIXED, p["value"], 0.0
    if isinstance(delay, Uniform):
        return UNIFORM, p["low"], p["high"]
    if isinstance(delay, Gamma):
        return GAMMA, (p["mean"] / p["sd"]) ** 2, p["sd"] ** 2 / p["mean"]
    if isinstance(delay, Weibull):
        return WEIBULL, p["shape"], p["scale"]
    if isinstance(delay, LogNormal):
        return (
            LOGNORMAL,
            math.log(p["median"]),
            math.log(p["p90"] / p["median"]) / 1.2815515655446004,
        )
    raise AssertionError(f"unknown delay {delay!r}")  # pragma: no cover


def cut_at(c: CompiledScenario, horizon: float) -> CompiledScenario:
    """``c`` with another horizon (and its grid): what ``compile_scenario(..., horizon=)``
    gives, without resolving the scenario again."""
    if not (math.isfinite(horizon) and horizon > 0):
        raise EscalateError(
            f"horizon must be a positive number, got {horizon:g}", parameter="horizon"
        )
    step, grid = time_grid(horizon)
    return dataclasses.replace(c, horizon=float(horizon), grid_step=step, grid=grid)


def scenario_time(scenario: Scenario, point, parameter: str = "horizon") -> float:
    """A time point (a number, or a date with the scenario's ``start_date``) as a number of
    the scenario's time units; EscalateError naming ``parameter`` when it cannot be."""
    try:
        return scenario.time_of(point)
    except ValueError as exc:
        raise EscalateError(f"{parameter} {exc}", parameter=parameter) from None


def compile_scenario(
    scenario: Scenario,
    overrides: dict[str, float] | None = None,
    *,
    horizon: float | None = None,
) -> CompiledScenario:
    """Compile ``scenario`` with its point values (and ``overrides``) into arrays.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.
    overrides : dict, optional
        Parameter values replacing the point values (``--set``).
    horizon : float or str, optional
        Replaces the scenario's horizon (``--horizon``): a time, or a date ``YYYY-MM-DD``
        when the scenario has a ``start_date``.

    Returns
    -------
    CompiledScenario

    Raises
    ------
    EscalateError
        On a bad override or horizon, or more than ``MAX_TRIGGERS`` triggers.
    """
    resolved = resolve(scenario, overrides)
    horizon = scenario_time(scenario, scenario.horizon if horizon is None else horizon)
    if not (math.isfinite(horizon) and horizon > 0):
        raise EscalateError(
            f"horizon must be a positive number, got {horizon:g}", parameter="horizon"
        )
    stages = list(scenario.stages)
    triggers = list(scenario.triggers)
    if len(triggers) > MAX_TRIGGERS:
        raise EscalateError(
            f"{scenario.file}: {len(triggers)} triggers; the engine handles at most {MAX_TRIGGERS}"
        )
    stage_index = {name: i for i, name in enumerate(stages)}
    trigger_index = {name: k for k, name in enumerate(triggers)}
    n_s, n_k = len(stages), len(triggers)

    order = sorted(
        range(len(resolved.transitions)),
        key=lambda i: (stage_index[resolved.transitions[i].source], i),
    )
    n_t = len(order)
    out_start = np.zeros(n_s + 1, dtype=np.int64)
    target = np.zeros(n_t, dtype=np.int64)
    kind = np.zeros(n_t, dtype=np.int64)
    p1 = np.zeros(n_t)
    p2 = np.zeros(n_t)
    ratio = np.ones((n_t, n_k))
    requires = np.zeros(n_t, dtype=np.int64)
    effect_start = np.zeros(n_t + 1, dtype=np.int64)
    effect_trigger, effect_value = [], []
    for row, i in enumerate(order):
        t = resolved.transitions[i]
        for name, value in t.effects:
            effect_trigger.append(trigger_index[name])
            effect_value.append(value)
        effect_start[row + 1] = len(effect_trigger)
        out_start[stage_index[t.source] + 1] += 1
        target[row] = stage_index[t.target]
        kind[row], p1[row], p2[row] = _timing_arrays(resolved, i)
        for name, value in t.when.items():
            ratio[row, trigger_index[name]] = value
        for name in t.requires:
            requires[row] |= np.int64(1) << trigger_index[name]
    out_start = np.cumsum(out_start)

    initial = np.array([t.initial for t in resolved.triggers], dtype=float)
    onset_rate = np.zeros((n_k, n_s))
    onset_at = np.full(n_k, np.inf)
    offset_rate = np.zeros((n_k, n_s))
    onset_ratio = np.ones((n_k, n_s, n_k))
    offset_ratio = np.ones((n_k, n_s, n_k))
    for k, t in enumerate(resolved.triggers):
        for rates, whens, rate_array, ratio_array in (
            (t.onset_rates, t.onset_when, onset_rate, onset_ratio),
            (t.offset_rates, t.offset_when, offset_rate, offset_ratio),
        ):
            for stage, rate in rates.items():
                if not scenario.stages[stage].terminal:
                    rate_array[k, stage_index[stage]] = rate
                    for other, value in whens.get(stage, {}).items():
                        ratio_array[k, stage_index[stage], trigger_index[other]] = value
        if t.at is not None:
            onset_at[k] = t.at

    start = np.array([resolved.start.get(name, 0.0) for name in stages])
    start_cdf = np.cumsum(start / start.sum())
    start_cdf[np.flatnonzero(start)[-1] :] = 1.0  # rounding: a draw below 1 always lands
    step, grid = time_grid(horizon)
    return CompiledScenario(
        name=scenario.scenario,
        stage_names=tuple(stages),
        trigger_names=tuple(triggers),
        horizon=float(horizon),
        time_unit=scenario.time_unit,
        values=resolved.values,
        start_cdf=start_cdf,
        terminal=np.array([scenario.stages[s].terminal for s in stages], dtype=np.bool_),
        out_start=out_start,
        target=target,
        kind=kind,
        p1=p1,
        p2=p2,
        ratio=ratio,
        requires=requires,
        order=np.array(order, dtype=np.int64),
        initial=initial,
        onset_rate=onset_rate,
        onset_at=onset_at,
        onset_ratio=onset_ratio,
        offset_rate=offset_rate,
        offset_ratio=offset_ratio,
        effect_start=effect_start,
        effect_trigger=np.array(effect_trigger, dtype=np.int64),
        effect_value=np.array(effect_value, dtype=np.float64),
        grid_step=step,
        grid=grid,
        start_date=None if scenario.start_date is None else scenario.start_date.isoformat(),
    )
