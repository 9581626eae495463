"""escalate: odds and timing of staged escalation scenarios written in YAML.

Public names are imported on first use (PEP 562), so ``import escalate`` and the command line
start fast; numba, SALib and matplotlib load only when a call needs them.

The folders are the data flow, each step importing only the steps before it::

    scenario/   YAML -> validated model; parameters files; resolved numbers
    engine/     compile (model + values -> arrays), kernels and simulate (Monte Carlo), chain,
                stepping and exact (the exact solver), results (one Result for both), metrics,
                folder (run folders), cluster (Dask), checkpoint, evaluate, numbers;
                batches and batch_kernels (the worlds engine: many exact worlds at once)
    analysis/   many runs of one scenario: draws and worlds, weights, drivers, sweep, sensitivity
    forecast/   the scenario held against what people know: posterior, targets and calibrate,
                observations, forward and nowcast, news (surprise), backtest, rivals (weigh),
                variants and compare
    output/     format (numbers as people read them), plots (one module per family of figures),
                report (one module per page kind)
    explore/    the interactive explorer (an optional extra, Panel): controls, view
    cli/        the command line, a module per verb
    api.py      simulate, solve, exact_overlay;  errors.py: the errors every step raises

One exception: a result's plotting method imports ``escalate.output.plots`` inside itself.
``tests/test_layout.py`` walks every import (lazy ones included) and fails on one against the
flow or on a cycle.
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
    "BacktestResult": "escalate.forecast.backtest",
    "backtest": "escalate.forecast.backtest",
    "WeighResult": "escalate.forecast.rivals",
    "weigh": "escalate.forecast.rivals",
    "read_observations": "escalate.forecast.observations",
    "CompareResult": "escalate.forecast.compare",
    "compare": "escalate.forecast.compare",
    "read_variants": "escalate.forecast.variants",
    "explore": "escalate.explore",  # the package, callable: escalate.explore(scenario)
}

__all__ = ["EscalateError", "Issue", "ScenarioError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "explore" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'escalate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
