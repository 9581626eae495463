"""escalate: odds and timing of staged escalation scenarios written in YAML."""

from escalate.api import simulate, solve
from escalate.errors import EscalateError, Issue, ScenarioError
from escalate.results import Result
from escalate.scenario import Scenario, load, loads

__all__ = [
    "EscalateError",
    "Issue",
    "Result",
    "Scenario",
    "ScenarioError",
    "load",
    "loads",
    "simulate",
    "solve",
]
__version__ = "0.1.0"
