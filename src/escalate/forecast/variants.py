"""Variants files (docs/forecasting.md): the options an analyst weighs, each a set of
parameter overrides (``set``) and trigger overrides (``initial``, ``onset``, ``offset``,
``at``) with its description and source, read and checked against the scenario: every variant
is validated as the scenario it makes, its problems reported at the variant's own lines.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escalate.engine.metrics import parse_metric
from escalate.errors import EscalateError, Issue, ScenarioError, suggest
from escalate.scenario import Scenario
from escalate.scenario._yaml import Document, parse_yaml, read_yaml

__all__ = [
    "DEFAULT_METRIC",
    "FILE_KEYS",
    "TRIGGER_OVERRIDES",
    "VARIANT_KEYS",
    "Variant",
    "Variants",
    "read_variants",
    "variants_from_mapping",
]


FILE_KEYS = ("scenario", "title", "description", "metrics", "variants")


VARIANT_KEYS = ("set", "triggers", "source", "description")


TRIGGER_OVERRIDES = ("initial", "onset", "offset", "at")


@dataclass(frozen=True)
class Variant:
    """One option: its name, the parameter values it sets (``settings``, the file's ``set``),
    the trigger overrides as written, the scenario with them applied, and why it is plausible
    (``source``)."""

    name: str
    settings: dict[str, float]
    triggers: dict[str, dict[str, Any]]
    scenario: Scenario
    source: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Variants:
    """A variants file: the metrics compared and the variants, in the file's order."""

    metrics: list[str]
    variants: list[Variant]
    file: str = "<variants>"


def read_variants(path: str | Path, scenario: Scenario) -> Variants:
    """The variants of a file (docs/language.md), checked against ``scenario``.

    Raises
    ------
    ScenarioError
        Every problem at its line and key: unknown keys, another scenario's id, a metric that
        does not parse or names nothing, an unknown parameter or trigger (with a suggestion),
        a value outside its domain, a trigger override the scenario language refuses, a
        duplicate variant name.
    """
    return _read(read_yaml(path), scenario)


def variants_from_mapping(data: dict, scenario: Scenario) -> Variants:
    """Variants given in Python as a mapping ``name -> {set: ..., triggers: ...}`` (or a
    whole file's mapping with ``variants:``), checked as a file is."""
    import yaml

    if "variants" not in data:
        data = {"variants": data}
    text = yaml.safe_dump({"scenario": scenario.scenario, **data}, sort_keys=False)
    return _read(parse_yaml(text, "<variants>"), scenario)


def _read(doc: Document, scenario: Scenario) -> Variants:
    from escalate.scenario.params import check_values

    data = doc.data
    if not isinstance(data, dict) or "variants" not in data:
        raise ScenarioError(
            [doc.issue((), "a variants file is a mapping with `scenario:` and `variants:`")]
        )
    issues: list[Issue] = doc.unknown_keys((), data, FILE_KEYS)
    if data.get("scenario") != scenario.scenario:
        issues.append(
            doc.issue(
                ("scenario",),
                f"the variants are for scenario {data.get('scenario')!r}, not "
                f"{scenario.scenario!r}",
            )
        )
    metrics = data.get("metrics")
    if metrics is None:
        metrics = [DEFAULT_METRIC.format(stage=list(scenario.stages)[scenario.headline_stage()])]
    elif not isinstance(metrics, list) or not metrics:
        issues.append(doc.issue(("metrics",), "a list of metrics, e.g. [p_reached:war]"))
        metrics = []
    for i, metric in enumerate(metrics):
        try:
            parse_metric(str(metric), model=scenario)
        except EscalateError as exc:
            issues.append(doc.issue(("metrics", i), str(exc)))
    found: list[Variant] = []
    raw = data.get("variants")
    if not isinstance(raw, dict) or not raw:
        issues.append(doc.issue(("variants",), "a mapping of variant names to their changes"))
        raw = {}
    for name, spec in raw.items():
        where = ("variants", name)
        if name == "baseline":
            issues.append(doc.issue(where, "'baseline' names the scenario itself", at_key=True))
            continue
        if not isinstance(spec, dict):
            issues.append(doc.issue(where, "a variant is a mapping with `set:` and/or "
                                    "`triggers:`"))  # fmt: skip
            continue
        issues += doc.unknown_keys(where, spec, VARIANT_KEYS)
        settings: dict[str, float] = {}
        if spec.get("set") is not None:
            if isinstance(spec["set"], dict):
                settings, problems = check_values(doc, (*where, "set"), spec["set"], scenario)
                issues += problems
            else:
                issues.append(doc.issue((*where, "set"), "a mapping of parameter: value"))
        overrides = spec.get("triggers") or {}
        if not isinstance(overrides, dict):
            issues.append(doc.issue((*where, "triggers"), "a mapping of trigger: overrides"))
            overrides = {}
        usable = True
        for trigger, change in overrides.items():
            at = (*where, "triggers", trigger)
            if trigger not in scenario.triggers:
                hint = suggest(str(trigger), scenario.triggers)
                issues.append(doc.issue(at, f"unknown trigger {trigger!r}{hint}", at_key=True))
                usable = False
                continue
            if not isinstance(change, dict) or not change:
                issues.append(doc.issue(at, "overrides of initial, onset, offset or at"))
                usable = False
                continue
            for key in change:
                if key not in TRIGGER_OVERRIDES:
                    hint = suggest(str(key), TRIGGER_OVERRIDES)
                    issues.append(doc.issue((*at, key), f"unknown key {key!r}{hint} (a "
                                            "variant overrides initial, onset, offset or at)",
                                            at_key=True))  # fmt: skip
                    usable = False
            if "at" in change and "onset" in change:
                issues.append(doc.issue((*at, "at"), "give `at` or `onset`, not both"))
                usable = False
        changed = scenario
        if usable and overrides:
            try:
                changed = with_triggers(scenario, overrides)
            except ScenarioError as exc:
                issues += [
                    _relocated(issue, doc, where, overrides)
                    for issue in exc.issues
                    if issue.severity == "error"  # a warning of the scenario is not the variant's
                ]
                continue
        found.append(
            Variant(
                str(name), settings, overrides, changed, spec.get("source"),
                spec.get("description"),
            )
        )  # fmt: skip
    if issues:
        raise ScenarioError(issues)
    return Variants([str(m) for m in metrics], found, doc.file)


def with_triggers(scenario: Scenario, overrides: dict[str, dict[str, Any]]) -> Scenario:
    """``scenario`` with its triggers' ``initial``, ``onset``, ``offset`` replaced (``none``
    removes an onset or offset; ``at: T`` makes the onset a fixed time), validated by the
    scenario language's own checks."""
    from escalate.scenario.loader import _validate

    document = scenario._document
    data = copy.deepcopy(document.data)
    for trigger, change in overrides.items():
        spec = data["triggers"].setdefault(trigger, {}) or {}
        data["triggers"][trigger] = spec
        for key, value in change.items():
            target = "onset" if key == "at" else key
            if value is None or value == "none":
                spec.pop(target, None)
            elif key == "at":
                spec["onset"] = {"at": value}
            else:
                spec[key] = value
    changed = _validate(Document(document.file, data, document.value_marks, document.key_marks))
    changed._sha256 = scenario.sha256
    return changed


def _relocated(issue: Issue, doc: Document, where: tuple, overrides: dict) -> Issue:
    """An issue the scenario language found in a variant, placed in the variants file: at
    the override it comes from, or at the variant's ``triggers`` with its path."""
    from escalate.errors import format_path

    path = tuple(issue.path)
    if len(path) >= 3 and path[0] == "triggers" and path[1] in overrides:
        change = overrides[path[1]]
        key = "at" if path[2] == "onset" and "at" in change else path[2]
        if key in change:
            rest = path[4:] if key == "at" else path[3:]
            return doc.issue((*where, "triggers", path[1], key, *rest), issue.message)
    return doc.issue((*where, "triggers"), f"in the changed scenario, {format_path(path)} "
                     f"{issue.message}")  # fmt: skip


DEFAULT_METRIC = "p_reached:{stage}"
