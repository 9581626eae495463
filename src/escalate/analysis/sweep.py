"""Sweeps: metrics over a grid of one or two parameters.

Every point is solved exactly when the scenario is memoryless; otherwise every point is
simulated with the same seed (common random numbers), so differences between neighbouring
points reflect the parameters, not the noise, and curves come out smooth.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from escalate.engine.batches import exact_metrics
from escalate.engine.checkpoint import Checkpoint
from escalate.engine.cluster import mapped
from escalate.engine.evaluate import check_metrics, evaluate
from escalate.engine.numbers import finite_or_none
from escalate.errors import EscalateError, suggest
from escalate.scenario import Scenario

__all__ = ["SweepResult", "parse_vary", "sweep"]

MAX_POINTS = 10_000


def parse_vary(text: str) -> tuple[str, np.ndarray]:
    """``NAME=START:STOP:COUNT`` -> (name, evenly spaced values, both ends included)."""
    match = re.fullmatch(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*([^:]+):([^:]+):(\d+)\s*", text)
    if not match:
        raise EscalateError(
            f"vary {text!r}: expected NAME=START:STOP:COUNT, e.g. rate=0.1:1:10", parameter="vary"
        )
    name, start, stop, count = match.groups()
    try:
        low, high = float(start), float(stop)
    except ValueError:
        raise EscalateError(
            f"vary {text!r}: START and STOP must be numbers", parameter="vary"
        ) from None
    if int(count) < 2:
        raise EscalateError(f"vary {text!r}: COUNT must be at least 2", parameter="vary")
    return name, np.linspace(low, high, int(count))


@dataclass
class SweepResult:
    """The metrics at every grid point: ``frame`` has one column per parameter, then each
    metric and its standard error (``METRIC_se``, 0 when exact)."""

    scenario: str
    parameters: list[str]
    metrics: list[str]
    engine: str
    seed: int | None
    trajectories: int | None
    frame: pd.DataFrame

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "method": self.engine,
            "parameters": self.parameters,
            "metrics": self.metrics,
            "seed": self.seed,
            "trajectories": self.trajectories,
            "points": [
                {k: finite_or_none(float(v)) for k, v in row.items()}
                for row in self.frame.to_dict("records")
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def plot(self, metric: str | None = None):
        """A line per metric (one parameter) or a heat map of one metric (two parameters)."""
        from escalate.output import plots

        return plots.sweep(self, metric)


def _point(model, values, overrides, metrics, engine, n, seed, horizon, threads):
    """Evaluate one grid point (one task: in-process or on a Dask worker)."""
    try:
        return evaluate(
            model,
            {**(overrides or {}), **values},
            metrics,
            engine=engine,
            n=n,
            seed=seed,
            horizon=horizon,
            threads=threads,
        )
    except EscalateError as exc:
        where = ", ".join(f"{k}={v:g}" for k, v in values.items())
        raise exc.within(f"at {where}: ") from None


def sweep(
    model: Scenario,
    vary: dict[str, Any],
    metrics: list[str],
    *,
    n: int = 100_000,
    seed: int = 0,
    engine: str = "auto",
    overrides: dict[str, float] | None = None,
    horizon: float | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: Any = None,
    checkpoint: Checkpoint | None = None,
) -> SweepResult:
    """Evaluate ``metrics`` on the grid of one or two parameters.

    Parameters
    ----------
    model : Scenario
    vary : dict
        Parameter name -> values (one or two entries); the grid is their product.
    metrics : list of str
        Metric names (``p_reached:STAGE``, ``time_to_reach:STAGE:p50``...).
    n, seed : int
        Trajectories per point and the seed shared by all points (Monte Carlo only).
    engine : {"auto", "exact", "monte-carlo"}
        ``auto`` solves exactly where every timing is exponential.
    scheduler : str or dask.distributed.Client, optional
        Evaluate the points as tasks on this Dask cluster (identical figures).
    checkpoint : Checkpoint, optional
        Records each finished point, and supplies the points a resumed sweep already has.

    Returns
    -------
    SweepResult
    """
    if not 1 <= len(vary) <= 2:
        raise EscalateError("vary takes one or two parameters", parameter="vary")
    for name in vary:
        if name not in model.parameters:
            raise EscalateError(
                f"vary {name}: unknown parameter {name!r}{suggest(name, model.parameters)}",
                parameter="vary",
            )
    if not metrics:
        raise EscalateError("metrics must name at least one metric", parameter="metrics")
    check_metrics(model, metrics)
    names = list(vary)
    grid = list(itertools.product(*(np.asarray(v, dtype=float) for v in vary.values())))
    if len(grid) > MAX_POINTS:
        raise EscalateError(f"the sweep has {len(grid):,} points; at most {MAX_POINTS:,}")
    points = [dict(zip(names, map(float, point), strict=True)) for point in grid]
    results: dict[int, dict[str, Any]] = dict(checkpoint.done) if checkpoint else {}
    missing = [i for i in range(len(points)) if i not in results]
    arguments = (
        (points[i], overrides, metrics, engine, n, seed, horizon, threads) for i in missing
    )
    solved = None
    if engine in ("auto", "exact") and missing:  # exact points: the worlds engine

        def left(w: int) -> list[float]:
            point = (points[missing[w]], overrides, metrics, engine, n, seed, horizon, threads)
            evaluation = _point(model, *point)
            return [evaluation.values[m] for m in metrics]

        done = len(results)
        solved = exact_metrics(
            model, names, np.array([[points[i][k] for k in names] for i in missing]),
            list(metrics), left=left, overrides=overrides, horizon=horizon,
            scheduler=scheduler,
            progress=None if progress is None else lambda k, _: progress(done + k, len(points)),
        )  # fmt: skip
    if solved is not None:
        for i, row in zip(missing, solved, strict=True):
            results[i] = {
                "values": dict(zip(metrics, row.tolist(), strict=True)),
                "errors": dict.fromkeys(metrics, 0.0),
                "engine": "exact",
            }
            if checkpoint is not None:
                checkpoint.add(i, results[i])
    else:
        with mapped(_point, model, arguments, scheduler) as evaluations:
            for i, evaluation in zip(missing, evaluations, strict=False):
                results[i] = {
                    "values": evaluation.values,
                    "errors": evaluation.errors,
                    "engine": evaluation.engine,
                }
                if checkpoint is not None:
                    checkpoint.add(i, results[i])
                if progress is not None:
                    progress(len(results), len(points))
    rows, used = [], None
    for i, values in enumerate(points):
        used = results[i]["engine"]
        row = dict(values)
        for metric in metrics:
            row[metric] = results[i]["values"][metric]
            row[f"{metric}_se"] = results[i]["errors"][metric]
        rows.append(row)
    monte_carlo = used == "monte-carlo"
    return SweepResult(
        scenario=model.scenario,
        parameters=names,
        metrics=list(metrics),
        engine=used or engine,
        seed=seed if monte_carlo else None,
        trajectories=n if monte_carlo else None,
        frame=pd.DataFrame(rows),
    )
