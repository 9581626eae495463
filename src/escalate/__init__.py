"""escalate: odds and timing of staged escalation scenarios written in YAML."""

from escalate.errors import EscalateError, Issue, ScenarioError
from escalate.scenario import Scenario, load, loads

__all__ = ["EscalateError", "Issue", "Scenario", "ScenarioError", "load", "loads"]
__version__ = "0.1.0"
