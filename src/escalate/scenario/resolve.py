"""Resolve a scenario's numbers: parameter names -> values, timings -> rates or distributions.

This is the one place where ``mean``, ``chance`` + ``within`` and ``after: exponential`` become
a hazard rate, and where ``--set`` overrides are applied and checked. ``compile``, ``exact`` and
``escalate show`` all read numbers through :func:`resolve`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from escalate.errors import EscalateError, format_path, suggest
from escalate.scenario.model import (
    Distribution,
    Exponential,
    OnsetAt,
    OnsetTiming,
    Scenario,
    Timing,
)
from escalate.scenario.rules import value_problems

__all__ = ["ResolvedScenario", "ResolvedTransition", "ResolvedTrigger", "resolve"]


def number(raw: float | str, values: dict[str, float]) -> float:
    """A literal number, or the value of the parameter it names."""
    return values[raw] if isinstance(raw, str) else raw


def exponential_rate(timing: Timing, values: dict[str, float]) -> float | None:
    """The hazard rate of an exponential timing; ``None`` if the timing is not exponential."""
    if timing.rate is not None:
        return number(timing.rate, values)
    if timing.mean is not None:
        return 1.0 / number(timing.mean, values)
    if timing.chance is not None:
        p, t = number(timing.chance, values), number(timing.within, values)  # type: ignore[arg-type]
        return -math.log1p(-p) / t
    if isinstance(timing.after, Exponential):
        return 1.0 / number(timing.after.mean, values)
    return None


@dataclass(frozen=True)
class ResolvedTransition:
    """A transition with numbers: ``rate`` if exponential, else ``delay`` and its numbers."""

    source: str
    target: str
    rate: float | None
    delay: Distribution | None
    delay_numbers: dict[str, float]
    when: dict[str, float]
    requires: tuple[str, ...]
    effects: tuple[tuple[str, float], ...] = ()
    """(trigger, value) in order: -1 switches it off, p in [0, 1] on with probability p."""

    @property
    def mean_time(self) -> float:
        """Mean latent time at clock speed 1."""
        if self.rate is not None:
            return 1.0 / self.rate
        return self.delay.expected(self.delay_numbers)  # type: ignore[union-attr]


OFF = -1.0  # an effect's value that switches its trigger off


@dataclass(frozen=True)
class ResolvedTrigger:
    """A trigger with numbers: initial probability, onset rate per stage or onset time, offset
    rate per stage, and the hazard ratios of the other triggers on its onset and offset."""

    name: str
    initial: float
    onset_rates: dict[str, float]
    at: float | None
    offset_rates: dict[str, float] = field(default_factory=dict)
    onset_when: dict[str, dict[str, float]] = field(default_factory=dict)  # stage -> ratios
    offset_when: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedScenario:
    """A scenario's structure with every number resolved for one set of parameter values."""

    scenario: Scenario
    values: dict[str, float]
    transitions: tuple[ResolvedTransition, ...]
    triggers: tuple[ResolvedTrigger, ...]
    start: dict[str, float] = field(default_factory=dict)

    @property
    def is_markov(self) -> bool:
        """Whether every transition timing is exponential (so the process is a CTMC)."""
        return all(t.rate is not None for t in self.transitions)


def _switch(switch, stages: list[str], values: dict[str, float]):
    """Rates per stage and `when` ratios per stage of an onset or offset (none for `at`)."""
    if isinstance(switch, OnsetTiming):
        timings = dict.fromkeys(stages, switch)
    elif isinstance(switch, dict):
        timings = switch
    else:
        return {}, {}
    rates = {stage: exponential_rate(timing, values) for stage, timing in timings.items()}
    when = {
        stage: {k: number(v, values) for k, v in timing.when.items()}
        for stage, timing in timings.items()
    }
    return rates, when


def resolve(scenario: Scenario, overrides: dict[str, float] | None = None) -> ResolvedScenario:
    """Resolve every number of ``scenario`` with its point values and ``overrides``.

    Parameters
    ----------
    scenario : Scenario
        A validated scenario.
    overrides : dict, optional
        Parameter name -> value, replacing point values (as ``--set NAME=VALUE`` does).

    Returns
    -------
    ResolvedScenario

    Raises
    ------
    EscalateError
        If an override names no parameter, or puts a number outside its allowed range.
    """
    overrides = dict(overrides or {})
    for name in overrides:
        if name not in scenario.parameters:
            hint = suggest(name, scenario.parameters)
            if not hint:
                names = list(scenario.parameters)
                hint = (
                    f" (the scenario's {len(names)}: {', '.join(names[:6])}"
                    + (", ...)" if len(names) > 6 else ")")
                    if names
                    else " (the scenario has no parameters)"
                )
            raise EscalateError(
                f"overrides {name}: unknown parameter {name!r}{hint}", parameter="overrides"
            )
    values = scenario.point_values(overrides)
    if overrides:
        problems = value_problems(scenario, values)
        if problems:
            path, message = problems[0]
            raise EscalateError(f"overrides: {format_path(path)} {message}", parameter="overrides")

    transitions = []
    for t in scenario.transitions:
        rate = exponential_rate(t, values)
        delay = None if rate is not None else t.after
        transitions.append(
            ResolvedTransition(
                source=t.from_,
                target=t.to,
                rate=rate,
                delay=delay,
                delay_numbers=delay.numbers(values) if delay is not None else {},
                when={k: number(v, values) for k, v in t.when.items()},
                requires=tuple(t.requires),
                effects=tuple(
                    (k, OFF if v == "off" else 1.0 if v == "on" else number(v, values))
                    for k, v in t.effects.items()
                ),
            )
        )

    non_terminal = [name for name, stage in scenario.stages.items() if not stage.terminal]
    triggers = []
    for name, trigger in scenario.triggers.items():
        at = None
        if isinstance(trigger.onset, OnsetAt):
            at = scenario.time_of(number(trigger.onset.at, values))
        onset_rates, onset_when = _switch(trigger.onset, non_terminal, values)
        offset_rates, offset_when = _switch(trigger.offset, non_terminal, values)
        triggers.append(
            ResolvedTrigger(
                name,
                number(trigger.initial, values),
                onset_rates,
                at,
                offset_rates,
                onset_when,
                offset_when,
            )
        )

    start = {scenario.start: 1.0} if isinstance(scenario.start, str) else dict(scenario.start)
    return ResolvedScenario(scenario, values, tuple(transitions), tuple(triggers), start)
