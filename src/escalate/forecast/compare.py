"""Compare variants of a scenario: what each option changes, with its error (docs/forecasting.md).

A variant is the scenario with parameter overrides (``set``) and trigger overrides
(``initial``, ``onset``, ``offset``, ``at``). Every variant is evaluated on the same footing
as the baseline, so that the noise of the two cancels in their difference:

- exact, where every timing is exponential: the difference is exact;
- Monte Carlo: every variant on the same random numbers, trajectory by trajectory (each
  trajectory draws from a generator of its own, seeded from its index, so a trajectory that
  takes another path in one variant leaves the others' draws alone), in ``replicates``
  independent replicates whose paired differences give the standard error;
- with worlds: every variant on the same worlds (and in each, the same random numbers):
  the mean difference, its spread across worlds and P(difference > 0).

The pairing's gain is measured, not assumed: beside each paired standard error stands the one
two independent runs would have had (from the runs' own standard errors, or across worlds
from each variant's own spread), and their squared ratio (the variance reduction).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalate.analysis.draws import worlds_to_weigh
from escalate.analysis.weights import weighted_mean_se, weighted_quantile
from escalate.engine.compile import compile_scenario
from escalate.engine.evaluate import choose_engine, evaluate_compiled
from escalate.engine.metrics import parse_metric
from escalate.engine.numbers import json_records
from escalate.errors import EscalateError
from escalate.forecast.posterior import ess_of, map_in_parts, process_pool
from escalate.forecast.variants import Variants, read_variants, variants_from_mapping
from escalate.scenario import Scenario

__all__ = ["CompareResult", "compare"]

SEED_COLUMN = "__seed__"  # a unit's seed beside its parameters (no parameter name starts so)


def _unit_seed(seed: int, unit: int) -> int:
    """The seed of replicate or world ``unit``: the same for every variant (the pairing)."""
    return int(np.random.SeedSequence(seed, spawn_key=(2**31 + 7, unit)).generate_state(1)[0])


def _evaluate_units(
    scenarios: list[Scenario],
    settings: list[dict[str, float]],
    metrics: list[str],
    engine: str,
    n: int,
    units: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray]:
    """Replicates or worlds (one row each: parameter values and ``SEED_COLUMN``): each
    variant's (the baseline first) metric values and standard errors, shape (units,
    variants, metrics), every variant on the unit's random numbers and world."""
    values = np.empty((len(units), len(scenarios), len(metrics)))
    errors = np.empty_like(values)
    for u, unit in enumerate(units.to_dict("records")):
        seed = int(unit.pop(SEED_COLUMN))
        for v, (scenario, own) in enumerate(zip(scenarios, settings, strict=True)):
            compiled = compile_scenario(scenario, {**unit, **own})
            if engine == "monte-carlo":
                compiled = dataclasses.replace(compiled, trajectory_streams=True)
            evaluation = evaluate_compiled(
                compiled, metrics, engine=engine, n=n, seed=seed, numba_series=True
            )
            values[u, v] = [evaluation.values[m] for m in metrics]
            errors[u, v] = [evaluation.errors[m] for m in metrics]
    return values, errors


def _on_the_worlds_engine(scenarios, settings, metrics, units, client, say):
    """Every variant's metrics on every world by the worlds engine (the same worlds, each
    variant's ``set`` in place of a drawn value), as ``_evaluate_units`` gives them; None
    where the engine does not apply to some variant. A world it leaves is solved on its
    own."""
    from escalate.engine.batches import exact_metrics

    frame = units.drop(columns=SEED_COLUMN)
    names = list(frame.columns)
    values = np.empty((len(units), len(scenarios), len(metrics)))
    for v, (scenario, own) in enumerate(zip(scenarios, settings, strict=True)):
        x = frame.to_numpy(float).copy()
        for name, value in own.items():
            if name in names:
                x[:, names.index(name)] = value
        fixed = {name: value for name, value in own.items() if name not in names}

        def left(w: int, v: int = v) -> list[float]:
            one = _evaluate_units([scenarios[v]], [settings[v]], metrics, "exact", 1,
                                  units.iloc[[w]])  # fmt: skip
            return one[0][0, 0].tolist()

        solved = exact_metrics(
            scenario, names, x, metrics, left=left, overrides=fixed, scheduler=client
        )
        if solved is None:
            return None
        values[:, v] = solved
        if v:
            say(f"{v} of {len(scenarios) - 1} variants done")
    return [(values, np.zeros_like(values))]


@dataclass
class CompareResult:
    """Each variant against the baseline, per metric, with the error of the difference.

    ``values``: per unit (a replicate, a world, or the one exact solve), variant (the
    baseline first) and metric; ``errors`` their standard errors; ``weights`` the units'.
    ``summary()`` is the table; ``plot()`` the forest plot.
    """

    scenario: str
    engine: str
    metrics: list[str]
    names: list[str]
    sources: list[str | None]
    values: np.ndarray
    errors: np.ndarray
    weights: np.ndarray
    mode: str  # "exact", "replicates" or "worlds"
    seed: int
    n: int
    worlds_from: str | None = None
    settings: list[dict[str, float]] = field(default_factory=list)
    drawn: bool = False  # the worlds were drawn from the prior (a Latin hypercube)

    def summary(self) -> pd.DataFrame:
        """One row per variant and metric: its value, the baseline's, the difference with
        its standard error and 95% interval; with worlds also the 5/50/95% of the difference
        across worlds and P(difference > 0); the standard error two independent runs would
        have had, and the pairing's variance reduction (their squared ratio)."""
        from scipy import stats

        rows = []
        w = self.weights
        # the SE is itself estimated: Student's t with the replicates' or worlds' (effective)
        # degrees of freedom
        units = len(w) if self.mode == "replicates" else ess_of(w)
        z = stats.t.ppf(0.975, max(units - 1.0, 1.0)) if self.mode != "exact" else 0.0
        for m, metric in enumerate(self.metrics):
            base = self.values[:, 0, m]
            for v in range(1, len(self.names)):
                own = self.values[:, v, m]
                d = own - base
                mean = float(np.sum(w * d))
                row = {
                    "variant": self.names[v],
                    "metric": metric,
                    "baseline": float(np.sum(w * base)),
                    "value": float(np.sum(w * own)),
                    "difference": mean,
                }
                if self.mode == "exact":
                    se = independent = 0.0
                elif self.mode == "replicates":
                    units = len(d)
                    se = float(np.std(d, ddof=1) / math.sqrt(units))
                    own_se = np.sqrt(np.sum(self.errors[:, :, m] ** 2, axis=0)) / units
                    independent = math.hypot(own_se[0], own_se[v])
                else:
                    se = weighted_mean_se(d, w)[1]
                    base_se, own_se = weighted_mean_se(base, w)[1], weighted_mean_se(own, w)[1]
                    independent = math.hypot(base_se, own_se)
                row |= {"se": se, "low": mean - z * se, "high": mean + z * se}
                if self.mode == "worlds":
                    q5, q50, q95 = weighted_quantile(d, w, [0.05, 0.5, 0.95])
                    row |= {"p5": q5, "p50": q50, "p95": q95,
                            "p_positive": float(np.sum(w * (d > 0)))}  # fmt: skip
                row |= {
                    "se_independent": independent,
                    "variance_reduction": (
                        (independent / se) ** 2 if se > 0 and math.isfinite(se) else math.nan
                    ),
                    "source": self.sources[v],
                }
                rows.append(row)
        return pd.DataFrame(rows)

    @property
    def se_assumes(self) -> str:
        """What the standard errors assume of the units, in a sentence.

        Across worlds the SE is that of a weighted mean of independent draws
        (:func:`escalate.analysis.weights.weighted_mean_se`, on the effective count). Drawn worlds
        are a Latin hypercube, stratified, so their mean errs less and the SE overstates. A
        tempered posterior (calibrate's, nowcast's) holds resampled, moved descendants of its
        prior worlds, correlated and partly duplicated: its SE may err either way (measured
        over seeds in the tests: the spread of the mean difference within a factor of 2 of the
        SE)."""
        if self.mode == "exact":
            return "nothing: the differences are exact"
        if self.mode == "replicates":
            return "independent replicates (they are: each has its own random numbers)"
        if self.worlds_from is None and self.drawn:
            return (
                "independent worlds; these are a Latin hypercube, whose mean errs less than "
                "independent draws': the SE overstates the error"
            )
        return (
            "independent worlds; a tempered posterior's (calibrate, nowcast) are resampled and "
            "moved, correlated and partly duplicated: the SE may err either way (in the "
            "tests, within a factor of 2)"
        )

    def plot(self):
        """A forest plot: per metric, each variant's difference from the baseline with its
        95% interval (and, with worlds, its 5-95% across worlds)."""
        from escalate.output import plots

        return plots.compare_forest(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "engine": self.engine,
            "mode": self.mode,
            "seed": self.seed,
            "n": self.n,
            "units": len(self.weights),
            "worlds_from": self.worlds_from,
            "se_assumes": self.se_assumes,
            "metrics": self.metrics,
            "variants": self.names[1:],
            "settings": dict(zip(self.names[1:], self.settings[1:], strict=True)),
            "rows": json_records(self.summary()),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def compare(
    scenario: Scenario,
    variants: Variants | dict | str | Path,
    *,
    metrics: list[str] | None = None,
    n: int = 1_000_000,
    worlds: int | None = None,
    worlds_from: pd.DataFrame | str | Path | None = None,
    seed: int = 0,
    engine: str = "auto",
    replicates: int = 32,
    overrides: dict[str, float] | None = None,
    scheduler: Any = None,
    workers: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompareResult:
    """Evaluate the baseline and every variant on the same footing and compare them.

    Parameters
    ----------
    scenario : Scenario
    variants : Variants, mapping, or the path of a variants file
        A mapping is ``name -> {set: {...}, triggers: {...}}``, checked as a file is.
    metrics : list of str, optional
        Instead of the file's (default: P(reached) of the first war stage, else the last).
    n : int
        Monte Carlo trajectories in all (split among the replicates), or per world.
    worlds, worlds_from : optional
        Compare on W worlds drawn from the ``uncertain`` distributions, or on the weighted
        worlds of a worlds file (calibrate's ``worlds.parquet``) or frame.
    seed : int
        Fixes every figure.
    engine : {"auto", "exact", "monte-carlo"}
        ``auto`` is exact wherever every timing is exponential.
    replicates : int
        Independent replicates of a Monte Carlo comparison without worlds (the paired
        differences' spread gives the standard error).
    overrides : dict, optional
        Parameter values for the baseline and every variant (a variant's ``set`` wins).
    scheduler : str or dask.distributed.Client, optional
        Evaluate the replicates or worlds as tasks on this Dask cluster (the same figures).
    workers : int, optional
        Processes for exact worlds (default: the cores, at most 8; the same figures).
    progress : callable, optional
        Called with a line of text as the work proceeds.

    Returns
    -------
    CompareResult
    """
    import contextlib
    import os

    from escalate.engine.cluster import connect, ordered_map

    if isinstance(variants, dict):
        variants = variants_from_mapping(variants, scenario)
    elif not isinstance(variants, Variants):
        variants = read_variants(variants, scenario)
    metrics = list(metrics or variants.metrics)
    for metric in metrics:
        parse_metric(metric, model=scenario)
    overrides = dict(overrides or {})
    scenarios = [scenario] + [v.scenario for v in variants.variants]
    settings = [dict(overrides)] + [{**overrides, **v.settings} for v in variants.variants]
    kinds = {
        choose_engine(compile_scenario(s, own), engine)
        for s, own in zip(scenarios, settings, strict=True)
    }
    chosen = "monte-carlo" if "monte-carlo" in kinds else "exact"
    source = None
    if worlds is not None or worlds_from is not None:
        frame, weights, source = worlds_to_weigh(scenario, worlds, worlds_from, seed, overrides)
        mode = "worlds"
    else:
        units = 1 if chosen == "exact" else replicates
        if units < 2 and chosen != "exact":
            raise EscalateError("a Monte Carlo comparison needs at least 2 replicates")
        frame = pd.DataFrame(index=range(units))
        weights = np.full(units, 1.0 / units)
        mode = "exact" if chosen == "exact" else "replicates"
    per_unit = n if mode == "worlds" else max(1, -(-n // len(frame)))
    # one row a unit (a replicate or a world): its parameter values and its seed, the same
    # for every variant (the pairing)
    units = frame.astype(float).assign(**{SEED_COLUMN: [_unit_seed(seed, u) for u in
                                                        range(len(frame))]})  # fmt: skip
    say = progress or (lambda line: None)
    units_said = "" if mode == "exact" else f", {len(units)} {mode}"
    say(f"{len(scenarios) - 1} variants and the baseline, {chosen}{units_said}")
    common = (settings, metrics, chosen, per_unit)
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    with connect(scheduler) as client, contextlib.ExitStack() as stack:
        done = None
        if chosen == "exact" and mode == "worlds":  # the worlds engine, variant by variant
            done = _on_the_worlds_engine(scenarios, settings, metrics, units, client, say)
        if done is None and client is not None:
            from escalate.engine.cluster import share

            shared = share(client, scenarios)
            arguments = ((shared, *common, units.iloc[[u]]) for u in range(len(units)))
            done = list(ordered_map(_evaluate_units, arguments, client=client))
        elif done is None:
            # exact worlds split among processes; simulated ones use every core in the kernel
            evaluations = len(units) * len(scenarios)
            pool = process_pool(workers, evaluations) if chosen == "exact" else None
            if pool is not None:
                stack.callback(pool.shutdown, cancel_futures=True)
            done = []
            batches = np.array_split(np.arange(len(units)), min(8, len(units)))
            for batch in batches:  # in a few batches, to say how far it got
                done.append(map_in_parts(_evaluate_units, units.iloc[batch], pool, workers,
                                         scenarios, *common))  # fmt: skip
                if len(batches) > 1:
                    say(f"{batch[-1] + 1} of {len(units)} done")
    values = np.concatenate([v for v, _ in done])
    errors = np.concatenate([e for _, e in done])
    return CompareResult(
        scenario=scenario.scenario,
        engine=chosen,
        metrics=metrics,
        names=["baseline"] + [v.name for v in variants.variants],
        sources=[None] + [v.source for v in variants.variants],
        values=values,
        errors=errors,
        weights=weights / weights.sum(),
        mode=mode,
        seed=seed,
        n=n,
        worlds_from=source,
        settings=settings,
        drawn=worlds_from is None and mode == "worlds",
    )
