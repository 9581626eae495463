"""Rules that relate one part of a scenario to another, checked after its shape is valid.

Names that must exist, the graph (terminal stages, self-loops, duplicates, reachability), the
one-timing-form rule, and the range of every number, literal or named: each number sits in a
:class:`Slot` with the domain it must stay in, and a parameter it names must keep its point value
and its whole ``uncertain`` support inside that domain.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from escalate.errors import Issue, format_path, suggest
from escalate.scenario._yaml import Document
from escalate.scenario.model import (
    EFFECT_KEYWORDS,
    NON_NEGATIVE,
    OPEN_PROBABILITY,
    POSITIVE,
    PROBABILITY,
    Exponential,
    Interval,
    OnsetAt,
    OnsetTiming,
    Scenario,
    Timing,
    Trigger,
)

Path = tuple[str | int, ...]

_DOMAIN_WORDS = {
    id(POSITIVE): "positive",
    id(NON_NEGATIVE): "at least 0",
    id(PROBABILITY): "a probability in [0, 1]",
    id(OPEN_PROBABILITY): "strictly between 0 and 1",
}


def domain_words(domain: Interval) -> str:
    """How a domain reads in a message: 'positive', 'a probability in [0, 1]'..."""
    return _DOMAIN_WORDS.get(id(domain), f"in {domain}")


@dataclass(frozen=True)
class Slot:
    """A place in the scenario that holds a number (or a parameter name) and its domain."""

    path: Path
    raw: float | str
    domain: Interval


def _timing_slots(path: Path, timing: Timing) -> Iterator[Slot]:
    for key, domain in (
        ("rate", POSITIVE),
        ("mean", POSITIVE),
        ("chance", OPEN_PROBABILITY),
        ("within", POSITIVE),
    ):
        raw = getattr(timing, key)
        if raw is not None:
            yield Slot((*path, key), raw, domain)
    if timing.after is not None:
        for key, domain in timing.after.domains.items():
            yield Slot((*path, "after", key), getattr(timing.after, key), domain)


def _switch_slots(path: Path, timing: OnsetTiming) -> Iterator[Slot]:
    yield from _timing_slots(path, timing)
    for other, ratio in timing.when.items():
        yield Slot((*path, "when", other), ratio, NON_NEGATIVE)


def switch_timings(trigger: Trigger, key: str) -> Iterator[tuple[Path, OnsetTiming]]:
    """(path below the trigger, timing) of each exponential onset or offset timing."""
    switch = getattr(trigger, key)
    if isinstance(switch, OnsetTiming):
        yield (key,), switch
    elif isinstance(switch, dict):
        for stage, timing in switch.items():
            yield (key, stage), timing


def number_slots(scenario: Scenario) -> Iterator[Slot]:
    """Every number of the triggers and transitions (where parameter names may stand)."""
    for name, trigger in scenario.triggers.items():
        path: Path = ("triggers", name)
        yield Slot((*path, "initial"), trigger.initial, PROBABILITY)
        onset = trigger.onset
        if isinstance(onset, OnsetAt) and not isinstance(onset.at, date):
            yield Slot((*path, "onset", "at"), onset.at, NON_NEGATIVE)
        for key in ("onset", "offset"):
            for below, timing in switch_timings(trigger, key):
                yield from _switch_slots((*path, *below), timing)
    for i, transition in enumerate(scenario.transitions):
        path = ("transitions", i)
        yield from _timing_slots(path, transition)
        for trigger, ratio in transition.when.items():
            yield Slot((*path, "when", trigger), ratio, NON_NEGATIVE)
        for trigger, effect in transition.effects.items():
            if effect not in EFFECT_KEYWORDS:
                yield Slot((*path, "effects", trigger), effect, PROBABILITY)


def value_problems(scenario: Scenario, values: dict[str, float]) -> list[tuple[Path, str]]:
    """(path, message) for each number that ``values`` puts outside its domain.

    Used for the point values at load time and for ``--set`` overrides.
    """
    problems = []
    for slot in number_slots(scenario):
        name = slot.raw
        if isinstance(name, str) and name in values and values[name] not in slot.domain:
            problems.append(
                (
                    slot.path,
                    f"must be {domain_words(slot.domain)}, but parameter {name!r} "
                    f"is {values[name]:g}",
                )
            )
    for i, transition in enumerate(scenario.transitions):
        after = transition.after
        if after is None or any(
            isinstance(v, str) and v not in values for v in after.raw().values()
        ):
            continue
        numbers = after.numbers(values)
        if all(numbers[k] in domain for k, domain in after.domains.items()):
            for key, message in after.problems(numbers):
                problems.append((("transitions", i, "after", key), message))
    return problems


def check(scenario: Scenario, doc: Document) -> list[Issue]:
    """Every cross-reference, graph and range rule; errors and warnings in one list."""
    return _Checker(scenario, doc).run()


class _Checker:
    def __init__(self, scenario: Scenario, doc: Document):
        self.s = scenario
        self.doc = doc
        self.issues: list[Issue] = []

    def error(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self.issues.append(self.doc.issue(path, message, at_key=at_key))

    def warn(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self.issues.append(self.doc.issue(path, message, at_key=at_key, severity="warning"))

    def line_of(self, path: Path) -> int:
        return self.doc.mark(path)[0]

    def run(self) -> list[Issue]:
        self.check_dates()
        self.check_start()
        self.check_transitions()
        self.check_triggers()
        self.check_parameters()
        self.check_numbers()
        if not any(i.severity == "error" for i in self.issues):
            self.check_graph()
        return self.issues

    def stage_exists(self, name: str, path: Path, *, at_key: bool = False) -> bool:
        if name in self.s.stages:
            return True
        self.error(path, f"unknown stage {name!r}{suggest(name, self.s.stages)}", at_key=at_key)
        return False

    def trigger_exists(self, name: str, path: Path, *, at_key: bool = False) -> bool:
        if name in self.s.triggers:
            return True
        self.error(path, f"unknown trigger {name!r}{suggest(name, self.s.triggers)}", at_key=at_key)
        return False

    def time_point(self, path: Path, point) -> float | None:
        """A time point as a number, or None after reporting why a date cannot be used."""
        try:
            return self.s.time_of(point)
        except ValueError as exc:
            self.error(path, str(exc))
            return None

    def check_dates(self) -> None:
        s = self.s
        if s.start_date is not None and s.time_unit not in ("day", "week"):
            self.error(
                ("start_date",),
                f"start_date needs time_unit day or week, not {s.time_unit} "
                "(months and years are not a fixed number of days)",
            )
        horizon = self.time_point(("horizon",), s.horizon)
        if horizon is not None and horizon <= 0:
            where = f" (the date {s.horizon} is start_date)" if isinstance(s.horizon, date) else ""
            self.error(("horizon",), f"must be positive, got {horizon:g}{where}")
        for name, trigger in s.triggers.items():
            if isinstance(trigger.onset, OnsetAt) and isinstance(trigger.onset.at, date):
                self.time_point(("triggers", name, "onset", "at"), trigger.onset.at)

    def check_start(self) -> None:
        start = self.s.start
        if isinstance(start, str):
            self.stage_exists(start, ("start",))
            return
        if not start:
            self.error(("start",), "the start mapping is empty: name at least one stage")
            return
        for stage, p in start.items():
            self.stage_exists(stage, ("start", stage), at_key=True)
            if p not in PROBABILITY:
                self.error(("start", stage), f"must be a probability in [0, 1], got {p:g}")
        total = math.fsum(start.values())
        if abs(total - 1.0) > 1e-9:
            self.error(("start",), f"start probabilities must sum to 1, but sum to {total:.10g}")

    def check_timing_form(self, path: Path, timing: Timing, *, onset: bool = False) -> None:
        forms = timing.forms()
        if "within" in forms:
            self.error((*path, "within"), "within goes with chance: chance P within T")
            return
        if timing.chance is not None and timing.within is None:
            self.error((*path, "chance"), "chance needs within: the time span of the chance")
            return
        if not forms:
            what = "an exponential timing" if onset else "a timing"
            self.error(
                path,
                f"no timing: give {what}, exactly one of rate, mean, chance + within"
                + ("" if onset else ", after"),
            )
        elif len(forms) > 1:
            self.error(
                (*path, forms[1]),
                f"give exactly one timing form, found {' and '.join(forms)}",
                at_key=True,
            )
        elif onset and timing.after is not None and not isinstance(timing.after, Exponential):
            self.error(
                (*path, "after", "dist"),
                f"an onset must be exponential (memoryless); {timing.after.dist!r} is not",
            )

    def check_transitions(self) -> None:
        seen: dict[tuple[str, str], int] = {}
        for i, t in enumerate(self.s.transitions):
            path: Path = ("transitions", i)
            known_from = self.stage_exists(t.from_, (*path, "from"))
            known_to = self.stage_exists(t.to, (*path, "to"))
            if known_from and self.s.stages[t.from_].terminal:
                self.error(
                    (*path, "from"),
                    f"stage {t.from_!r} is terminal: no transition may leave it",
                )
            if t.from_ == t.to:
                self.error((*path, "to"), "a transition cannot lead from a stage to itself")
            elif known_from and known_to:
                if (t.from_, t.to) in seen:
                    j = seen[(t.from_, t.to)]
                    self.error(
                        (*path, "to"),
                        f"a transition from {t.from_!r} to {t.to!r} is already defined at "
                        f"line {self.line_of(('transitions', j))} (transitions[{j}])",
                    )
                else:
                    seen[(t.from_, t.to)] = i
            self.check_timing_form(path, t)
            for trigger in t.when:
                self.trigger_exists(trigger, (*path, "when", trigger), at_key=True)
            for k, trigger in enumerate(t.requires):
                self.trigger_exists(trigger, (*path, "requires", k))
                if trigger in t.requires[:k]:
                    self.error((*path, "requires", k), f"trigger {trigger!r} is listed twice")
            for trigger in t.effects:
                self.trigger_exists(trigger, (*path, "effects", trigger), at_key=True)

    def check_triggers(self) -> None:
        for name, trigger in self.s.triggers.items():
            for key, verb in (("onset", "switch on"), ("offset", "switch off")):
                for below, timing in switch_timings(trigger, key):
                    path: Path = ("triggers", name, *below)
                    if len(below) == 2:
                        stage = below[1]
                        known = self.stage_exists(stage, path, at_key=True)
                        if known and self.s.stages[stage].terminal:
                            self.error(
                                path,
                                f"stage {stage!r} is terminal: nothing happens after "
                                f"entering it, so a trigger cannot {verb} there",
                                at_key=True,
                            )
                    self.check_timing_form(path, timing, onset=True)
                    for other in timing.when:
                        where = (*path, "when", other)
                        if other == name:
                            self.error(
                                where,
                                f"an {key}'s when may not name its own trigger {name!r}: "
                                "its ratios come from the other triggers",
                                at_key=True,
                            )
                        else:
                            self.trigger_exists(other, where, at_key=True)

    def check_parameters(self) -> None:
        for name, parameter in self.s.parameters.items():
            dist = parameter.uncertain
            if dist is None:
                continue
            path: Path = ("parameters", name, "uncertain")
            named = [k for k, v in dist.raw().items() if isinstance(v, str)]
            if named:
                for key in named:
                    self.error(
                        (*path, key),
                        "an uncertain distribution takes numbers, not parameter names",
                    )
                continue
            numbers = dist.numbers()
            problems = dist.problems(numbers)
            for key, message in problems:
                self.error((*path, key), message)
            if not problems and parameter.value not in dist.support(numbers):
                self.error(
                    ("parameters", name, "value"),
                    f"value {parameter.value:g} lies outside its uncertain range "
                    f"{dist.support(numbers)}",
                )

    def check_numbers(self) -> None:
        used: dict[str, list[Slot]] = {}
        for slot in number_slots(self.s):
            if isinstance(slot.raw, str):
                if slot.raw not in self.s.parameters:
                    self.error(
                        slot.path,
                        f"unknown parameter {slot.raw!r}{suggest(slot.raw, self.s.parameters)}",
                    )
                else:
                    used.setdefault(slot.raw, []).append(slot)
            elif slot.raw not in slot.domain:
                self.error(slot.path, f"must be {domain_words(slot.domain)}, got {slot.raw:g}")
        for path, message in value_problems(self.s, self.s.point_values()):
            self.error(path, message)
        for name, parameter in self.s.parameters.items():
            if name not in used:
                self.warn(("parameters", name), f"parameter {name!r} is never used", at_key=True)
                continue
            dist = parameter.uncertain
            if dist is None or any(isinstance(v, str) for v in dist.raw().values()):
                continue
            numbers = dist.numbers()
            if dist.problems(numbers):
                continue
            support = dist.support(numbers)
            for slot in used[name]:
                if not slot.domain.contains(support):
                    self.error(
                        ("parameters", name, "uncertain"),
                        f"its range {support} is not {domain_words(slot.domain)}, as its use "
                        f"at line {self.line_of(slot.path)} ({format_path(slot.path)}) requires",
                    )
                    break

    def check_graph(self) -> None:
        s = self.s
        outgoing: dict[str, list[str]] = {name: [] for name in s.stages}
        for t in s.transitions:
            outgoing[t.from_].append(t.to)
        starts = [s.start] if isinstance(s.start, str) else [k for k, p in s.start.items() if p]
        reached, frontier = set(starts), list(starts)
        while frontier:
            for nxt in outgoing[frontier.pop()]:
                if nxt not in reached:
                    reached.add(nxt)
                    frontier.append(nxt)
        for name, stage in s.stages.items():
            if name not in reached:
                self.warn(
                    ("stages", name), f"stage {name!r} cannot be reached from start", at_key=True
                )
            elif not stage.terminal and not outgoing[name]:
                self.warn(
                    ("stages", name),
                    f"stage {name!r} has no way out; mark it terminal: true if trajectories end "
                    "there",
                    at_key=True,
                )
        used = {k for t in s.transitions for k in (*t.when, *t.requires)}
        for trigger in s.triggers.values():
            for key in ("onset", "offset"):
                used.update(k for _, timing in switch_timings(trigger, key) for k in timing.when)
        switched_on = {k for t in s.transitions for k, e in t.effects.items() if e != "off"}
        for name, trigger in s.triggers.items():
            if name not in used:
                self.warn(
                    ("triggers", name),
                    f"trigger {name!r} changes nothing (no when or requires names it)",
                    at_key=True,
                )
            elif trigger.onset is None and trigger.initial == 0 and name not in switched_on:
                self.warn(
                    ("triggers", name),
                    f"trigger {name!r} can never switch on (initial 0 and no onset)",
                    at_key=True,
                )
