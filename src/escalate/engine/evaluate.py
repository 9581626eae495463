"""Evaluate metrics of a scenario at one set of parameter values, by the cheapest exact route.

Worlds, sweeps and sensitivity analyses evaluate the same few metrics at many parameter sets.
Where every timing is exponential, metrics read at the horizon come from the horizon-only exact
solve (about a millisecond); curves and quantiles from the full exact solve; otherwise a Monte
Carlo run with a fixed seed (common random numbers across parameter sets).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from escalate.engine.compile import CompiledScenario, compile_scenario
from escalate.engine.exact import solve_at_horizon, solve_chain
from escalate.engine.metrics import TRIGGER_METRICS, parse_metric
from escalate.engine.results import Result
from escalate.errors import EscalateError
from escalate.scenario import Scenario

if TYPE_CHECKING:
    from escalate.engine.simulate import Tally

ENGINES = ("auto", "exact", "monte-carlo")
OCCUPANCY_METRICS = ("p_at_horizon", "time_in", *TRIGGER_METRICS)  # need the chain itself


def all_metrics(model: Scenario) -> list[str]:
    """Every horizon metric of a scenario, in display order."""
    names = []
    for stage in model.stages:
        names += [f"p_reached:{stage}", f"p_at_horizon:{stage}", f"time_in:{stage}"]
        names.append(f"time_to_reach:{stage}:mean")
    for trigger in model.triggers:
        names += [f"p_fired:{trigger}", f"p_on_at_horizon:{trigger}", f"time_on:{trigger}"]
    return names


def check_metrics(model: Scenario, metrics: list[str]) -> None:
    """Raise EscalateError for a metric name that is malformed or names nothing."""
    for metric in metrics:
        parse_metric(metric, model=model)


def _at_horizon(metric: str) -> bool:
    kind, _, detail, at = parse_metric(metric)
    return at is None and (kind != "time_to_reach" or detail == "mean")


@dataclass
class Evaluation:
    """Metric values (and standard errors, 0 when exact) at one parameter set."""

    values: dict[str, float]
    errors: dict[str, float]
    engine: str
    tally: Tally | None = None
    compiled: CompiledScenario | None = None


def choose_engine(compiled: CompiledScenario, engine: str) -> str:
    if engine not in ENGINES:
        raise EscalateError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "auto":
        return "exact" if compiled.is_markov else "monte-carlo"
    return engine


def evaluate(
    model: Scenario,
    overrides: dict[str, float],
    metrics: list[str],
    *,
    engine: str = "auto",
    n: int = 100_000,
    seed: int = 0,
    horizon: float | None = None,
    threads: int | None = None,
    numba_series: bool = False,
) -> Evaluation:
    """Values of ``metrics`` with the parameters set to ``overrides``; ``numba_series`` solves
    exact horizon metrics with the numba series (worth its loading for many evaluations)."""
    compiled = compile_scenario(model, overrides, horizon=horizon)
    return evaluate_compiled(
        compiled, metrics, engine=engine, n=n, seed=seed, threads=threads,
        numba_series=numba_series,
    )  # fmt: skip


def evaluate_compiled(
    compiled: CompiledScenario,
    metrics: list[str],
    *,
    engine: str = "auto",
    n: int = 100_000,
    seed: int = 0,
    threads: int | None = None,
    numba_series: bool = False,
) -> Evaluation:
    """:func:`evaluate` on a scenario already compiled (one parameter set, one horizon)."""
    engine = choose_engine(compiled, engine)
    if engine == "exact" and all(_at_horizon(m) for m in metrics):
        stage = {name: i for i, name in enumerate(compiled.stage_names)}
        kinds = [parse_metric(m)[:2] for m in metrics]
        figures = solve_at_horizon(
            compiled,
            occupancy=any(kind in OCCUPANCY_METRICS for kind, _ in kinds),
            reach=sorted({stage[t] for kind, t in kinds if kind in ("p_reached", "time_to_reach")}),
            numba_series=numba_series,
        )
        trigger = {name: k for k, name in enumerate(compiled.trigger_names)}
        values = {}
        for metric in metrics:
            kind, target, _, _ = parse_metric(metric)
            if kind in TRIGGER_METRICS:
                values[metric] = float(getattr(figures, kind)[trigger[target]])
            else:
                array = {
                    "p_reached": figures.p_reached,
                    "p_at_horizon": figures.p_at_horizon,
                    "time_in": figures.time_in,
                    "time_to_reach": figures.mean_time_to_reach,
                }[kind]
                values[metric] = float(array[stage[target]])
        return Evaluation(values, dict.fromkeys(metrics, 0.0), engine)
    if engine == "exact":
        result = Result.from_exact(solve_chain(compiled), compiled)
        tally = None
    else:
        from escalate.engine.simulate import run_trajectories

        tally = run_trajectories(compiled, n, seed, threads=threads)
        result = Result.from_tally(tally, compiled, seed=seed)
    values, errors = {}, {}
    for metric in metrics:
        value, se = result.metric(metric)
        values[metric], errors[metric] = value, (se if math.isfinite(se) else math.nan)
    return Evaluation(values, errors, engine, tally, compiled)
