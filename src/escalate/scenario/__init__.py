"""The scenario language: YAML files, their validation, and resolved numbers.

``load(path)`` reads and validates a file; :func:`resolve` turns its numbers (literal or named
parameters) into the rates and distributions every engine uses; :func:`read_params` reads a
parameters file (name -> value) as overrides.
"""

from escalate.scenario.loader import load, loads
from escalate.scenario.model import Scenario
from escalate.scenario.params import read_params

__all__ = ["Scenario", "load", "loads", "read_params"]
