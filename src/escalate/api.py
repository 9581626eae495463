"""The Python entry points: ``load`` a scenario, ``simulate`` it, get a :class:`Result`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from escalate.engine.compile import compile_scenario
from escalate.engine.folder import run_manifest
from escalate.engine.metrics import check_within_horizon, parse_metric
from escalate.engine.results import Z95, Result
from escalate.errors import EscalateError, ScenarioError
from escalate.scenario import Scenario, load

__all__ = ["exact_overlay", "simulate", "solve"]


def _scenario(scenario: Scenario | str | Path) -> Scenario:
    return scenario if isinstance(scenario, Scenario) else load(scenario)


def simulate(
    scenario: Scenario | str | Path,
    n: int = 1_000_000,
    seed: int | None = None,
    *,
    overrides: dict[str, float] | None = None,
    horizon: float | None = None,
    threads: int | None = None,
    precision: float | None = None,
    metric: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    scheduler: Any = None,
    max_seconds: float | None = None,
) -> Result:
    """Run ``n`` Monte Carlo trajectories of a scenario.

    Parameters
    ----------
    scenario : Scenario or path
        A loaded scenario, or the path of a YAML file.
    n : int
        Trajectories (with ``precision``: the most to run).
    seed : int, optional
        Fixes every figure, bit for bit, whatever ``threads``. Drawn at random (and reported in
        the result) when not given.
    overrides : dict, optional
        Parameter values replacing their point values.
    horizon : float, optional
        Replaces the scenario's horizon.
    threads : int, optional
        Numba threads (default: all cores).
    precision, metric : float, str, optional
        Stop as soon as the 95% interval half-width of ``metric`` is at most ``precision``.
    progress : callable, optional
        Called as ``progress(done, n)`` after each batch of chunks.
    max_seconds : float, optional
        Refuse, after the first batch, a run projected to take longer (a clear error naming
        how many trajectories would fit), instead of running for hours.
    scheduler : str or dask.distributed.Client, optional
        Run the chunks as tasks on this Dask cluster (an address such as
        ``tcp://host:8786``, or a Client); the figures are bit-identical to a local run.

    Returns
    -------
    Result
    """
    model = _scenario(scenario)
    n = int(n)
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**63)
    if seed < 0:
        raise EscalateError(f"seed must be a non-negative integer, got {seed}", parameter="seed")
    compiled = compile_scenario(model, overrides, horizon=horizon)
    labels = {name: model.label(name) for name in (*model.stages, *model.triggers)}

    stop = None
    if (precision is None) != (metric is None):
        raise EscalateError.about("{precision} and {metric} go together")
    if precision is not None:
        if not (math.isfinite(precision) and precision > 0):
            raise EscalateError(
                f"precision must be positive, got {precision:g}", parameter="precision"
            )
        at = parse_metric(metric, model=model)[3]
        check_within_horizon(metric, at, compiled.horizon, compiled.start_date, model.time_unit)

        def stop(tally) -> bool:
            _, se = Result.from_tally(tally, compiled, seed=seed).metric(metric)
            return math.isfinite(se) and Z95 * se <= precision

    import numba

    from escalate.engine import kernels as _kernels
    from escalate.engine.simulate import CHUNK_SIZE, run_trajectories

    loading = time.perf_counter()
    if scheduler is None and not _kernels.run_batch.signatures:
        # the first call in a process compiles the kernel (or loads it from the disk cache):
        # done apart, so the run's time and rate are the engine's own
        run_trajectories(compiled, 1, seed, threads=threads)
    kernel_load_s = time.perf_counter() - loading
    began = time.perf_counter()
    if max_seconds is not None:
        if not (math.isfinite(max_seconds) and max_seconds > 0):
            raise EscalateError(
                f"max_seconds must be positive, got {max_seconds:g}", parameter="max_seconds"
            )
        stop = _time_limit(stop, n, max_seconds)
    tally = run_trajectories(
        compiled, n, seed, threads=threads, stop=stop, progress=progress, scheduler=scheduler
    )
    wall = time.perf_counter() - began
    result = Result.from_tally(tally, compiled, seed=seed, labels=labels)
    result.manifest = {
        **run_manifest(model, overrides, compiled.horizon, "monte-carlo"),
        "parameters": compiled.values,
        "seed": seed,
        "trajectories": tally.n,
        "chunk_size": CHUNK_SIZE,
        "threads": threads or numba.get_num_threads(),
        "scheduler": _scheduler_name(scheduler),
        "precision": precision,
        "metric": metric,
        # what the run reached: the 95% half-width of `metric` that the stop rule reads
        "precision_reached": None if metric is None else Z95 * result.metric(metric)[1],
        "wall_time_s": wall,
        "kernel_load_s": kernel_load_s,
        "trajectories_per_s": tally.n / wall if wall > 0 else None,
    }
    return result


def _time_limit(stop, n: int, max_seconds: float):
    """A stop rule that refuses, after the first batch, a run projected past ``max_seconds``."""
    began = time.perf_counter()

    def check(tally) -> bool:
        elapsed = time.perf_counter() - began
        if tally.n < n and elapsed / tally.n * n > max_seconds:
            rate = tally.n / elapsed
            raise EscalateError.about(
                "{:,} trajectories would take about {:,.0f} s at {:,.0f} a second, more than "
                "{max_seconds} {:g}: about {:,} fit",
                n,
                n / rate,
                rate,
                max_seconds,
                int(rate * max_seconds),
            )
        return stop(tally) if stop is not None else False

    return check


def _scheduler_name(scheduler: Any) -> str | None:
    """The address a run was sent to (None: in-process)."""
    if scheduler is None or isinstance(scheduler, str):
        return scheduler
    return getattr(getattr(scheduler, "scheduler", None), "address", None) or repr(scheduler)


def solve(
    scenario: Scenario | str | Path,
    *,
    overrides: dict[str, float] | None = None,
    horizon: float | None = None,
) -> Result:
    """Solve a memoryless scenario exactly (every timing exponential).

    Parameters
    ----------
    scenario : Scenario or path
    overrides : dict, optional
        Parameter values replacing their point values.
    horizon : float, optional
        Replaces the scenario's horizon.

    Returns
    -------
    Result
        ``method="exact"``: standard errors 0, intervals of zero width, no paths.

    Raises
    ------
    ScenarioError
        Naming the first transition whose timing is not exponential.
    EscalateError
        If the reachable joint space of stages and triggers is too large.
    """
    from escalate.engine.chain import NotMemoryless
    from escalate.engine.exact import solve_chain  # scipy: only where solve runs

    model = _scenario(scenario)
    compiled = compile_scenario(model, overrides, horizon=horizon)
    began = time.perf_counter()
    try:
        solution = solve_chain(compiled)
    except NotMemoryless as exc:
        raise ScenarioError(
            [model.issue(("transitions", exc.transition, "after", "dist"), str(exc))]
        ) from None
    wall = time.perf_counter() - began
    labels = {name: model.label(name) for name in (*model.stages, *model.triggers)}
    result = Result.from_exact(solution, compiled, labels=labels)
    result.manifest = {
        **run_manifest(model, overrides, compiled.horizon, "exact"),
        "parameters": compiled.values,
        "states": solution.n_states,
        "wall_time_s": wall,
    }
    return result


def exact_overlay(scenario: Scenario | str | Path, result: Result) -> Result | None:
    """The exact solution to draw over a Monte Carlo ``result``'s reach curves, or None.

    The scenario is compiled as the run compiled it (its overrides and horizon); where every
    timing is exponential it is solved, else (or when too large to solve) there is no overlay.
    Pass it to ``result.save(..., exact=...)``: saving a result runs no engine itself.
    """
    if result.method != "monte-carlo":
        return None
    compiled = compile_scenario(
        _scenario(scenario), result.manifest.get("overrides") or None, horizon=result.horizon
    )
    if not compiled.is_markov:
        return None
    from escalate.engine.exact import solve_chain

    try:
        return Result.from_exact(solve_chain(compiled), compiled)
    except EscalateError:  # too large to solve exactly: the figure goes without
        return None
