"""Sensitivity of a metric to the uncertain parameters: Sobol, Morris (SALib) and tornado.

Designs are drawn on the unit cube and mapped through each parameter's inverse distribution
function, so Sobol indices decompose the variance of the metric under the scenario's own
``uncertain`` distributions (not under uniform ranges). Morris's grid spans each parameter's
central range, its 5% to 95% quantiles (the tornado's range, ``CENTRAL``): its levels are the
ends and thirds of that range, and elementary effects are measured per unit of it. Its corners
stay plausible; on the whole cube they would be the 1e-12 quantiles, where a mean of days
becomes minutes and the exact solver has millions of jumps to take. The one-at-a-time tornado
moves each parameter from its 5% to its 95% quantile with the others at their point values.
Metrics come from the exact solver when the scenario is memoryless, else from simulation with
one seed for every design point (common random numbers).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from SALib.analyze import morris as morris_analyze
from SALib.analyze import sobol as sobol_analyze
from SALib.sample import morris as morris_sample
from SALib.sample import sobol as sobol_sample

from escalate.analysis.draws import to_values, uncertain_parameters
from escalate.engine.batches import exact_metrics
from escalate.engine.checkpoint import Checkpoint
from escalate.engine.cluster import mapped
from escalate.engine.evaluate import check_metrics, evaluate
from escalate.engine.numbers import finite_or_none
from escalate.errors import EscalateError
from escalate.scenario import Scenario

__all__ = ["METHODS", "SensitivityResult", "sensitivity"]

METHODS = ("sobol", "morris", "oat")  # escalate.cli repeats this list to start fast
CENTRAL = (0.05, 0.95)  # the quantiles Morris's grid and the tornado span


@dataclass
class SensitivityResult:
    """Indices per parameter (rows of ``frame``), ranked most influential first.

    Columns: Sobol ``S1``, ``S1_conf``, ``ST``, ``ST_conf`` (95% half-widths); Morris ``mu``,
    ``mu_star``, ``mu_star_conf``, ``sigma``; tornado ``low``, ``high`` (the metric at the 5%
    and 95% quantiles), ``swing`` and ``base``.
    """

    scenario: str
    method: str
    metric: str
    engine: str
    evaluations: int
    frame: pd.DataFrame
    scenario_sha256: str | None = None  # the scenario file it was computed on
    horizon: float | None = None  # the horizon of its metrics

    def to_frame(self) -> pd.DataFrame:
        return self.frame.copy()

    def ranking(self) -> list[str]:
        """Parameters from most to least influential."""
        return list(self.frame.index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "scenario_sha256": self.scenario_sha256,
            "horizon": self.horizon,
            "method": self.method,
            "metric": self.metric,
            "engine": self.engine,
            "evaluations": self.evaluations,
            "parameters": {
                name: {k: finite_or_none(float(v)) for k, v in row.items()}
                for name, row in self.frame.iterrows()
            },
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def plot(self):
        """Tornado (oat) or index bars with 95% intervals (sobol, morris)."""
        from escalate.output import plots

        return plots.sensitivity(self)


def sensitivity(
    model: Scenario,
    metric: str,
    *,
    method: str = "sobol",
    samples: int = 256,
    n: int = 50_000,
    seed: int = 0,
    engine: str = "auto",
    horizon: float | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: Any = None,
    checkpoint: Checkpoint | None = None,
) -> SensitivityResult:
    """How much each uncertain parameter drives ``metric``.

    Parameters
    ----------
    model : Scenario
    metric : str
        A metric name such as ``p_reached:full_scale_war``.
    method : {"sobol", "morris", "oat"}
    samples : int
        Base sample size: Sobol evaluates ``samples * (d + 2)`` points (a power of two is
        best), Morris ``samples * (d + 1)``; ignored by oat (``2 d + 1`` points).
    n, seed : int
        Trajectories per point and the shared seed, when simulation is needed.
    scheduler : str or dask.distributed.Client, optional
        Evaluate the design points as tasks on this Dask cluster (identical figures).
    checkpoint : Checkpoint, optional
        Records each finished point, and supplies the points a resumed analysis already has.

    Returns
    -------
    SensitivityResult
    """
    if method not in METHODS:
        raise EscalateError(
            f"method must be one of {', '.join(METHODS)}, got {method!r}", parameter="method"
        )
    check_metrics(model, [metric])
    names = uncertain_parameters(model)
    if not names:
        raise EscalateError(
            f"{model.file}: no parameter has an `uncertain` distribution: nothing to analyse"
        )
    if samples < 2:
        raise EscalateError(f"samples must be at least 2, got {samples}", parameter="samples")
    problem = {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}
    rng_seed = int(np.random.SeedSequence(seed, spawn_key=(2**30,)).generate_state(1)[0])

    if method == "oat":
        design = None
    elif method == "sobol":
        design = sobol_sample.sample(problem, samples, calc_second_order=False, seed=rng_seed)
    else:
        design = morris_sample.sample(problem, samples, num_levels=4, seed=rng_seed)

    low, high = CENTRAL
    if design is not None:
        quantiles = design if method == "sobol" else low + (high - low) * design
        values = to_values(model, names, quantiles)
        points = [values.iloc[i].to_dict() for i in range(len(values))]
    else:  # the point values, then each parameter at its 5% and 95% quantiles
        point = {name: model.parameters[name].value for name in names}
        points = [point]
        quantiles = np.full((1 + 2 * len(names), len(names)), np.nan)
        for i, name in enumerate(names):
            for j, q in enumerate(CENTRAL):
                column = np.full((1, len(names)), 0.5)
                column[0, i] = quantiles[1 + 2 * i + j, i] = q
                points.append({**point, name: float(to_values(model, names, column).iloc[0][name])})
    results: dict[int, list] = dict(checkpoint.done) if checkpoint else {}
    missing = [i for i in range(len(points)) if i not in results]
    arguments = (
        (points[i], metric, engine, n, seed, horizon, threads, _point_words(i, names, quantiles[i]))
        for i in missing
    )
    solved = None
    if engine in ("auto", "exact") and missing:  # exact points: the worlds engine

        def left(w: int) -> list[float]:
            i = missing[w]
            point = (points[i], metric, engine, n, seed, horizon, threads)
            return [_evaluate(model, *point, _point_words(i, names, quantiles[i]))[0]]

        done = len(results)
        solved = exact_metrics(
            model, names, np.array([[points[i][k] for k in names] for i in missing]),
            [metric], left=left, horizon=horizon, scheduler=scheduler,
            progress=None if progress is None else lambda k, _: progress(done + k, len(points)),
        )  # fmt: skip
    if solved is not None:
        for i, y in zip(missing, solved[:, 0], strict=True):
            results[i] = [float(y), "exact"]
            if checkpoint is not None:
                checkpoint.add(i, results[i])
    else:
        with mapped(_evaluate, model, arguments, scheduler) as evaluations:
            for i, (y, how) in zip(missing, evaluations, strict=False):
                results[i] = [float(y), how]
                if checkpoint is not None:
                    checkpoint.add(i, results[i])
                if progress is not None:
                    progress(len(results), len(points))
    ys = np.array([results[i][0] for i in range(len(points))])
    used = results[len(points) - 1][1]

    if design is not None:
        if not np.all(np.isfinite(ys)):
            raise EscalateError(
                f"{metric} is undefined at some design points (a stage never reached?)"
            )
        if method == "sobol":
            indices = sobol_analyze.analyze(
                problem, ys, calc_second_order=False, num_resamples=200, seed=rng_seed
            )
            frame = pd.DataFrame(
                {k: indices[k] for k in ("S1", "S1_conf", "ST", "ST_conf")}, index=names
            ).sort_values("ST", ascending=False)
        else:
            indices = morris_analyze.analyze(
                problem, design, ys, num_resamples=200, num_levels=4, seed=rng_seed
            )
            frame = pd.DataFrame(
                {
                    k: np.asarray(indices[k], float)
                    for k in ("mu", "mu_star", "mu_star_conf", "sigma")
                },
                index=names,
            ).sort_values("mu_star", ascending=False)
        evaluations = len(values)
    else:
        base = ys[0]
        rows = {
            name: {
                "low": ys[1 + 2 * i],
                "high": ys[2 + 2 * i],
                "swing": abs(ys[2 + 2 * i] - ys[1 + 2 * i]),
                "base": base,
            }
            for i, name in enumerate(names)
        }
        frame = pd.DataFrame(rows).T.sort_values("swing", ascending=False)
        evaluations = 2 * len(names) + 1
    frame.index.name = "parameter"
    return SensitivityResult(
        scenario=model.scenario,
        method=method,
        metric=metric,
        engine=used,
        evaluations=evaluations,
        frame=frame,
        scenario_sha256=model.sha256,
        horizon=horizon if horizon is not None else model.horizon_time,
    )


def _evaluate(model, values, metric, engine, n, seed, horizon, threads, words):
    """The metric at one design point (a task); a refusal names the point (``words``)."""
    try:
        evaluation = evaluate(
            model, values, [metric], engine=engine, n=n, seed=seed, horizon=horizon,
            threads=threads,
        )  # fmt: skip
    except EscalateError as exc:
        raise exc.within(f"{words}: ") from None
    return evaluation.values[metric], evaluation.engine


def _point_words(i: int, names: list[str], quantiles: np.ndarray) -> str:
    """Design point ``i`` in words, for an error: the parameters at the ends of their range
    (their quantile), which is where a point turns extreme; the point values when none is."""
    ends = [
        f"{name} at its {q:.0%} quantile" if q >= 0.01 else f"{name} at its {q:.1e} quantile"
        for name, q in zip(names, quantiles, strict=True)
        if np.isfinite(q) and (q <= CENTRAL[0] or q >= CENTRAL[1])
    ]
    return f"design point {i}" + (f" ({', '.join(ends)})" if ends else " (the point values)")
