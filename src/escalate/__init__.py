"""escalate: odds and timing of staged escalation scenarios written in YAML."""

from escalate.api import simulate, solve
from escalate.errors import EscalateError, Issue, ScenarioError
from escalate.results import Result
from escalate.scenario import Scenario, load, loads
from escalate.sensitivity import SensitivityResult, sensitivity
from escalate.sweep import SweepResult, sweep
from escalate.uncertainty import WorldsResult, draw_worlds, run_worlds

__all__ = [
    "EscalateError",
    "Issue",
    "Result",
    "Scenario",
    "ScenarioError",
    "SensitivityResult",
    "SweepResult",
    "WorldsResult",
    "draw_worlds",
    "load",
    "loads",
    "run_worlds",
    "sensitivity",
    "simulate",
    "solve",
    "sweep",
]
__version__ = "0.1.0"
