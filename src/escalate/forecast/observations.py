"""Observations files (docs/language.md): what has happened up to ``as_of``, the stage path
and the trigger switches seen, read and checked against the scenario (every problem at its line
and key), and the record cut at an earlier time for the news replayed step by step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date

import numpy as np

__all__ = ["OBSERVATION_KEYS", "Observations", "cut_observations", "read_observations"]


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


OBSERVATION_KEYS = ("scenario", "as_of", "path", "triggers", "title", "description")


def read_observations(path, model) -> Observations:
    """The observations of a file (docs/language.md), checked against ``model``.

    Raises
    ------
    ScenarioError
        Every problem at its line and key: an unknown key, stage or trigger; a time that is
        neither a number nor a usable date (a date needs ``start_date``); a path that does not
        start in a start stage at time 0, entries out of order or after ``as_of``, an
        ``as_of`` at or after the scenario's horizon, a step no
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
    horizon = float(model.horizon_time)
    if as_of is not None and as_of >= horizon:
        issues.append(doc.issue(("as_of",), (
            f"{model.when(as_of)} is not before the scenario's horizon ({model.when(horizon)}): "
            "nothing is left to forecast; give the scenario a later horizon")))  # fmt: skip
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


def cut_observations(obs: Observations, until: float) -> Observations:
    """``obs`` as known at ``until``: the entries and switches up to then."""
    return Observations(
        until,
        [(s, t) for s, t in obs.path if t <= until],
        {k: [(t, on) for t, on in events if t <= until] for k, events in obs.switches.items()},
    )
