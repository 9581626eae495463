"""Figures of results (matplotlib; the Agg backend when nothing else is chosen), one module per
family: a run (``run``), the stage graph (``graph``), many runs of one scenario (``analysis``:
worlds, sweeps, sensitivity), forecasting (``forecast``) and keeping score (``scores``). Every
figure names the scenario in its title, labels its axes with units, and keeps its lines apart
in grey as well as in colour.
"""

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
    matplotlib.use("Agg")  # headless by default; notebooks keep their inline backend

# the figure modules import pyplot: only after the backend is chosen
from escalate.output.plots.analysis import drivers, fan, sensitivity, sweep
from escalate.output.plots.common import save_figure
from escalate.output.plots.forecast import (
    calibration_targets,
    compare_forest,
    nowcast_waterfall,
    prior_posterior,
)
from escalate.output.plots.graph import stage_graph
from escalate.output.plots.run import occupancy, paths, reached, save_run_figures
from escalate.output.plots.scores import backtest_forecasts, model_probabilities, reliability

__all__ = [
    "backtest_forecasts",
    "calibration_targets",
    "compare_forest",
    "drivers",
    "fan",
    "model_probabilities",
    "nowcast_waterfall",
    "occupancy",
    "paths",
    "prior_posterior",
    "reached",
    "reliability",
    "save_figure",
    "save_run_figures",
    "sensitivity",
    "stage_graph",
    "sweep",
]
