"""Parameters files: a point overlay of parameter values, read against a scenario.

A parameters file is a YAML mapping ``parameter name -> value`` (``calibrate`` writes its
posterior medians as one); ``--params FILE`` applies it wherever ``--set`` applies, and
``--set`` wins over it. An optional ``scenario:`` key names the scenario it was written for and
must then match. Every problem is reported at its line, as for a scenario file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from escalate.errors import Issue, ScenarioError, format_path, suggest
from escalate.scenario._yaml import read_yaml
from escalate.scenario.model import Scenario
from escalate.scenario.rules import value_problems

__all__ = ["check_values", "read_params"]


def read_params(path: str | Path, scenario: Scenario) -> dict[str, float]:
    """The parameter values of a parameters file, checked against ``scenario``.

    Parameters
    ----------
    path : str or Path
        A YAML mapping of parameter name to number; an optional ``scenario`` key must name
        ``scenario``'s id.
    scenario : Scenario
        The scenario whose parameters the file sets.

    Returns
    -------
    dict
        Parameter name -> value, ready as ``overrides`` for any function that takes them.

    Raises
    ------
    ScenarioError
        Located at the file's line and key: the file is not a mapping, names no parameter of
        the scenario, gives a value that is not a finite number or is outside its parameter's
        range, or names another scenario.
    """
    doc = read_yaml(path)
    if not isinstance(doc.data, dict) or not doc.data:
        raise ScenarioError(
            [
                doc.issue(
                    (),
                    "a parameters file is a mapping of parameter names to values, e.g. "
                    "'war_mean: 120'",
                )
            ]
        )
    issues: list[Issue] = []
    mapping = dict(doc.data)
    if "scenario" in mapping and mapping.pop("scenario") != scenario.scenario:
        issues.append(
            doc.issue(
                ("scenario",),
                f"the file is for scenario {doc.data['scenario']!r}, not {scenario.scenario!r}",
            )
        )
    values, problems = check_values(doc, (), mapping, scenario)
    issues += problems
    if issues:
        raise ScenarioError(issues)
    return values


def check_values(
    doc, where: tuple, mapping: dict, scenario: Scenario
) -> tuple[dict[str, float], list[Issue]]:
    """Parameter values given in ``mapping`` (at ``where`` in ``doc``), checked against
    ``scenario``: each unknown name (with a suggestion), value that is not a finite number, or
    value outside its parameter's range becomes an issue at its key."""
    issues: list[Issue] = []
    values: dict[str, float] = {}
    for name, value in mapping.items():
        key = (*where, name)
        if not isinstance(name, str) or name not in scenario.parameters:
            known = ", ".join(sorted(scenario.parameters)) or "none"
            hint = suggest(str(name), scenario.parameters) or f" (its parameters: {known})"
            issues.append(
                doc.issue(
                    key,
                    f"unknown parameter {name!r} of scenario {scenario.scenario!r}{hint}",
                    at_key=True,
                )
            )
            continue
        number = _number(value)
        if number is None:
            issues.append(doc.issue(key, f"must be a finite number, got {value!r}"))
            continue
        for at, message in value_problems(scenario, scenario.point_values({name: number})):
            issues.append(doc.issue(key, f"{format_path(at)} {message}"))
        values[name] = number
    return values, issues


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None
