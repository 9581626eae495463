"""Targets files (docs/forecasting.md): analysts' statements about outcomes ("war within a
year: 8 to 20%"), each a metric with the 90% interval its author would give and the source of
the judgment, read and checked against the scenario (every problem at its line and key).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from escalate.engine.metrics import is_probability, parse_metric
from escalate.errors import EscalateError, Issue, ScenarioError
from escalate.scenario import Scenario
from escalate.scenario._yaml import document_kind, read_yaml

__all__ = ["TARGET_KEYS", "Z90", "Target", "read_targets"]


Z90 = 3.29  # width of a normal's central 90% interval, in standard deviations
TARGET_KEYS = ("metric", "between", "source")


_PERCENT = re.compile(r"^\s*([0-9.eE+-]+)\s*%\s*$")


@dataclass(frozen=True)
class Target:
    """One statement: ``metric`` lies in ``[low, high]`` with 90% confidence."""

    metric: str
    low: float
    high: float
    source: str | None = None

    @property
    def is_probability(self) -> bool:
        return is_probability(self.metric)

    def scale(self, x):
        """g: logit for a probability, log otherwise (outputs clipped off 0 and 1)."""
        x = np.asarray(x, float)
        if self.is_probability:
            x = np.clip(x, 1e-12, 1 - 1e-12)
            return np.log(x) - np.log1p(-x)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.where(x > 0, x, np.nan))

    @property
    def mu(self) -> float:
        return float((self.scale(self.low) + self.scale(self.high)) / 2)

    @property
    def sigma(self) -> float:
        return float((self.scale(self.high) - self.scale(self.low)) / Z90)


def _number(value: Any) -> float | None:
    """A number, or a percentage written ``15%``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _PERCENT.match(value)
        if match:
            try:
                return float(match.group(1)) / 100
            except ValueError:
                return None
    return None


def read_targets(path: str | Path, model: Scenario | None) -> list[Target]:
    """The targets of a targets file, checked (against ``model`` when given).

    Raises
    ------
    ScenarioError
        Every problem located at its line and key: not a targets file, an unknown key, a
        metric that does not parse or names an unknown stage or trigger, ``between`` not two
        increasing numbers, a probability interval outside (0, 1), a time interval not
        positive, or a ``scenario`` other than ``model``'s.
    """
    doc = read_yaml(path)
    issues: list[Issue] = []
    data = doc.data
    if document_kind(data) != "targets" or not isinstance(data["targets"], list):
        raise ScenarioError(
            [doc.issue((), "a targets file has `scenario: ID` and a list `targets:`")]
        )
    for key in data:
        if key not in ("scenario", "targets", "title", "description"):
            issues.append(doc.issue((key,), f"unknown key {key!r}", at_key=True))
    scenario_id = data.get("scenario")
    if not isinstance(scenario_id, str):
        issues.append(doc.issue(("scenario",), "the scenario's id is required (`scenario: ID`)"))
    elif model is not None and scenario_id != model.scenario:
        issues.append(
            doc.issue(
                ("scenario",),
                f"the targets are for scenario {scenario_id!r}, not {model.scenario!r}",
            )
        )
    if not data["targets"]:
        issues.append(doc.issue(("targets",), "no targets: state at least one"))
    targets = []
    for i, entry in enumerate(data["targets"]):
        where = ("targets", i)
        if not isinstance(entry, dict):
            issues.append(doc.issue(where, "a target is a mapping with `metric` and `between`"))
            continue
        for key in entry:
            if key not in TARGET_KEYS:
                issues.append(
                    doc.issue((*where, key), f"unknown key {key!r} (a target has "
                              "metric, between, source)", at_key=True)
                )  # fmt: skip
        metric = entry.get("metric")
        if not isinstance(metric, str):
            issues.append(doc.issue((*where, "metric"), "required: a metric name"))
            continue
        try:
            parse_metric(metric, model=model)
        except EscalateError as exc:
            issues.append(doc.issue((*where, "metric"), exc.naming({"metric": "metric"})))
            continue
        between = entry.get("between")
        numbers = [_number(v) for v in between] if isinstance(between, list) else [None, None, None]
        if len(numbers) != 2 or None in numbers:
            issues.append(
                doc.issue(
                    (*where, "between"),
                    "must be two numbers [low, high] (a probability may be written 15%)",
                )
            )
            continue
        low, high = numbers
        if not low < high:
            issues.append(
                doc.issue((*where, "between"), f"must increase: {low:g} is not below {high:g}")
            )
            continue
        target = Target(metric, low, high, entry.get("source"))
        if target.is_probability and not (low > 0 and high < 1):
            issues.append(
                doc.issue(
                    (*where, "between"),
                    f"a probability interval lies strictly inside (0, 1), got [{low:g}, {high:g}]",
                )
            )
            continue
        if not target.is_probability and low <= 0:
            issues.append(
                doc.issue((*where, "between"), f"a time interval must be positive, got {low:g}")
            )
            continue
        targets.append(target)
    if issues:
        raise ScenarioError(issues)
    return targets
