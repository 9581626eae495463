"""escalate: odds and timing of staged escalation scenarios written in YAML.

Public names are imported on first use (PEP 562), so ``import escalate`` and the command line
start fast; numba, SALib and matplotlib load only when a call needs them.

Modules: a step of the data flow that users may import from is public (``scenario``,
``compile``, ``exact``, ``results``, ``uncertainty``, ``posterior``, ``plots``, ``report``,
``api``, ``cli``, ``errors``); plumbing no user calls is private (``_kernels``, ``_dask``,
``_checkpoint``, ``_evaluate``, ``_format``), and so is a step whose module name is a public
function here (``_simulate``, ``_sweep``, ``_sensitivity``, ``_calibrate``, ``_nowcast``,
``_compare``:
importing a module ``escalate.sweep`` would replace the function ``escalate.sweep``).
"""

from __future__ import annotations

import importlib

from escalate.errors import EscalateError, Issue, ScenarioError

__version__ = "0.1.0"

_LAZY = {
    "Scenario": "escalate.scenario",
    "load": "escalate.scenario",
    "loads": "escalate.scenario",
    "read_params": "escalate.scenario",
    "Result": "escalate.engine.results",
    "simulate": "escalate.api",
    "solve": "escalate.api",
    "exact_overlay": "escalate.api",
    "WorldsResult": "escalate.analysis.worlds",
    "draw_worlds": "escalate.analysis.draws",
    "run_worlds": "escalate.analysis.worlds",
    "SweepResult": "escalate.analysis.sweep",
    "sweep": "escalate.analysis.sweep",
    "SensitivityResult": "escalate.analysis.sensitivity",
    "sensitivity": "escalate.analysis.sensitivity",
    "CalibrationResult": "escalate.forecast.calibrate",
    "Target": "escalate.forecast.targets",
    "calibrate": "escalate.forecast.calibrate",
    "read_targets": "escalate.forecast.targets",
    "NowcastResult": "escalate.forecast.nowcast",
    "Observations": "escalate.forecast.observations",
    "nowcast": "escalate.forecast.nowcast",
    "read_observations": "escalate.forecast.observations",
    "CompareResult": "escalate.forecast.compare",
    "compare": "escalate.forecast.compare",
    "read_variants": "escalate.forecast.variants",
}

__all__ = ["EscalateError", "Issue", "ScenarioError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'escalate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
