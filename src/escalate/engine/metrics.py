"""Metric names, the one grammar every command reads: ``p_reached:STAGE[@T]``,
``time_to_reach:STAGE:p50``, ``p_fired:TRIGGER`` and the rest; which of them are probabilities
(read in percent, their changes in points); a ``@T`` after the horizon refused.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from escalate.errors import EscalateError, suggest
from escalate.scenario.model import time_of, when

if TYPE_CHECKING:
    from escalate.engine.results import Result

__all__ = [
    "PROBABILITY_KINDS",
    "TRIGGER_METRICS",
    "check_within_horizon",
    "is_probability",
    "parse_metric",
]


TRIGGER_METRICS = ("p_fired", "p_on_at_horizon", "time_on")


_METRIC = re.compile(
    r"^(?P<kind>p_reached|p_at_horizon|time_in|time_to_reach|p_fired|p_on_at_horizon|time_on)"
    r":(?P<target>[A-Za-z][A-Za-z0-9_-]*)"
    r"(?::(?P<detail>mean|p10|p50|p90))?(?:@(?P<at>[0-9.eE+-]+|[0-9]{4}-[0-9-]+))?$"
)


def check_within_horizon(name: str, at, horizon: float, start_date, time_unit: str) -> None:
    """Refuse ``p_reached:S@T`` with T after the horizon: the figures stop there, and reading
    the curve's last point would answer another question."""
    if at is not None and at > horizon * (1 + 1e-12):
        raise EscalateError.about(
            "{metric} {!r}: {} is after the horizon ({}), where the figures stop; a {horizon} "
            "of at least {} reaches it",
            name, *(when(x, start_date, time_unit) for x in (at, horizon, at)),
        )  # fmt: skip


def parse_metric(
    name: str, result: Result | None = None, *, stages=None, triggers=None, model=None
):
    """Split a metric name into (kind, target, detail, at), checking names when it can.

    Forms: ``p_reached:STAGE``, ``p_reached:STAGE@T`` (T a time, or a date ``YYYY-MM-DD``
    with the scenario's ``start_date``), ``time_to_reach:STAGE:p50``, ``p_at_horizon:STAGE``,
    ``time_in:STAGE``, ``p_fired:TRIGGER``, ``p_on_at_horizon:TRIGGER``, ``time_on:TRIGGER``.
    ``model`` (a Scenario) or ``result`` checks names and turns a date into a time; without
    either, a date is returned as written.
    """
    match = _METRIC.match(name)
    if not match:
        raise EscalateError.about(
            "{metric} {!r}: expected p_reached:STAGE[@T], time_to_reach:STAGE:p10|p50|p90|"
            "mean, p_at_horizon:STAGE, time_in:STAGE, p_fired:TRIGGER, "
            "p_on_at_horizon:TRIGGER or time_on:TRIGGER",
            name,
        )
    kind, target, detail, at = match.group("kind", "target", "detail", "at")
    if (detail is not None) != (kind == "time_to_reach"):
        raise EscalateError.about(
            "{metric} {!r}: time_to_reach takes :p10, :p50, :p90 or :mean, "
            "and only time_to_reach does",
            name,
        )
    if at is not None and kind != "p_reached":
        raise EscalateError.about("{metric} {!r}: only p_reached takes @T", name)
    if model is not None:
        stages, triggers = model.stages, model.triggers
    if result is not None:
        stages, triggers = result.stages, result.triggers
    at_value: Any = None
    if at is not None:
        convert = model or result
        try:
            if convert is not None:
                at_value = convert.time_of(at)
            else:  # a date stays as written until a scenario can place it
                at_value = at if re.match(r"^[0-9]{4}-", at) else time_of(at, None, "day")
        except ValueError as exc:
            raise EscalateError.about("{metric} {!r}: {}", name, str(exc)) from None
    names = triggers if kind in TRIGGER_METRICS else stages
    if names is not None and target not in names:
        what = "trigger" if kind in TRIGGER_METRICS else "stage"
        raise EscalateError.about(
            "{metric} {!r}: unknown {} {!r}{}", name, what, target, suggest(target, names)
        )
    return kind, target, detail, at_value


PROBABILITY_KINDS = ("p_reached", "p_at_horizon", "p_fired", "p_on_at_horizon")


def is_probability(metric: str) -> bool:
    """Whether a metric (``kind:name``, e.g. ``p_reached:war`` or ``p_fired:mobilized@90``)
    is a probability: read in percent, its changes in points."""
    return metric.split(":", 1)[0] in PROBABILITY_KINDS
