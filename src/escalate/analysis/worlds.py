"""Parameter uncertainty: worlds (second-order Monte Carlo) drawn from `uncertain` distributions.

Each world is one set of parameter values, drawn by Latin hypercube sampling
(``scipy.stats.qmc.LatinHypercube``) on the unit cube and mapped through each parameter's
inverse distribution function; parameters without ``uncertain`` keep their point value. Each
world is then solved exactly (memoryless scenarios) or simulated with its own stream. The answer
is every metric's pooled value (all worlds' trajectories together; for exact worlds, the mean
over worlds) beside its mean and 5/50/95% quantiles across worlds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalate.analysis.draws import draw_worlds, world_seed
from escalate.analysis.drivers import DRIVER_FRACTION, MIN_DRIVER_WORLDS, drivers
from escalate.analysis.weights import weighted_mean, weighted_quantile
from escalate.engine.batches import exact_metrics
from escalate.engine.cluster import mapped
from escalate.engine.evaluate import all_metrics, evaluate
from escalate.engine.folder import run_manifest, write_folder
from escalate.engine.numbers import finite_or_none
from escalate.engine.results import Result
from escalate.errors import EscalateError, suggest
from escalate.scenario import Scenario

__all__ = ["WorldsResult", "reach_across_worlds", "run_worlds"]


@dataclass
class WorldsResult:
    """Metrics across worlds: one row per world in ``values``; ``summary()`` condenses them."""

    scenario: str
    method: str
    seed: int
    sampling: str
    trajectories_per_world: int | None
    parameters: pd.DataFrame
    values: pd.DataFrame
    pooled: dict[str, float]
    pooled_result: Result | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    weights: np.ndarray | None = None  # the worlds' weights (a worlds file); None: equal
    # the question the headline answers: {"metric", "label", "by"} (p_reached of the
    # headline stage, its label, the horizon as a reader says it)
    headline: dict[str, str] = field(default_factory=dict)
    # summary() and drivers() as computed once (a result is a value: the tables, the JSON,
    # the headline and the folder all ask for them); copies go out
    _computed: dict[Any, pd.DataFrame] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def worlds(self) -> int:
        return len(self.values)

    def summary(self) -> pd.DataFrame:
        """Per metric: the pooled value, and the mean and 5/50/95% quantiles across worlds
        (:func:`weighted_quantile`, equal weights unless the worlds came weighted), each over
        the worlds where the metric is defined (a mean time to reach: where the stage is
        reached), whose share of the weight is ``defined`` (:func:`weighted_mean`)."""
        if "summary" not in self._computed:
            self._computed["summary"] = self._summary()
        return self._computed["summary"].copy()

    def _summary(self) -> pd.DataFrame:
        v = self.values
        w = np.ones(len(v)) if self.weights is None else self.weights
        # one rule for a mean and a quantile across worlds, weighted or not: over the worlds
        # where the metric is defined, their share of the weight beside
        means = {m: weighted_mean(v[m], w) for m in v.columns}
        by_metric = {m: weighted_quantile(v[m], w, [0.05, 0.5, 0.95]) for m in v.columns}
        quantiles = [pd.Series({m: float(q[i]) for m, q in by_metric.items()}) for i in range(3)]
        frame = pd.DataFrame(
            {
                "pooled": pd.Series(self.pooled),
                "mean": pd.Series({m: mean for m, (mean, _) in means.items()}),
                "p5": quantiles[0],
                "p50": quantiles[1],
                "p95": quantiles[2],
                "defined": pd.Series({m: share for m, (_, share) in means.items()}),
            }
        )
        frame.index.name = "metric"
        return frame.loc[list(v.columns)]

    def drivers(
        self, metric: str | None = None, *, fraction: float = DRIVER_FRACTION
    ) -> pd.DataFrame:
        """Which uncertain parameters move ``metric`` (default: the headline's P(reached))
        across the worlds: see :func:`drivers`."""
        metric = metric or self.headline.get("metric")
        if metric not in self.values:
            raise EscalateError(
                f"unknown metric {metric!r} across worlds{suggest(str(metric), self.values)}"
            )
        key = ("drivers", metric, fraction)
        if key not in self._computed:
            values = self.values[metric].to_numpy(float)
            self._computed[key] = drivers(self.parameters, values, self.weights, fraction)
        return self._computed[key].copy()

    def has_drivers(self) -> bool:
        """Whether there are enough worlds (``MIN_DRIVER_WORLDS``) to rank what moves the
        headline metric: below that, no drivers table or figure, one sentence instead."""
        return self.headline.get("metric") in self.values and self.worlds >= MIN_DRIVER_WORLDS

    def headline_text(self) -> str:
        """The headline: the pooled answer (when there is one), then its range across the
        worlds and the parameters that move it most (:meth:`across_worlds_text`)."""
        pooled = []
        if self.pooled_result is not None:
            interval = (
                f"the {self.worlds:,} worlds pooled, their parameters' uncertainty averaged in; "
                "Monte Carlo 95% interval"
            )
            pooled.append(self.pooled_result.headline_text(interval=interval))
        return " ".join([*pooled, self.across_worlds_text()]).strip()

    def across_worlds_text(self) -> str:
        """The headline's P(reached) across the worlds (5th to 95th percentile) and the
        parameters whose swing stands out from the noise (see :func:`drivers`), as sentences
        ("" without a headline metric)."""
        metric = self.headline.get("metric")
        if metric is None or metric not in self.values:
            return ""
        row = self.summary().loc[metric]
        question = f"P({self.headline['label']} by {self.headline['by']})"
        if row["p5"] == row["p95"]:
            return f"{question} is {row['p50']:.1%} in every one of the {self.worlds:,} worlds."
        parts = [
            f"Across {self.worlds:,} worlds, {question} runs from {row['p5']:.1%} to "
            f"{row['p95']:.1%} (5th to 95th percentile across worlds)."
        ]
        if self.worlds < MIN_DRIVER_WORLDS:
            parts.append(
                f"{self.worlds:,} worlds are too few to say what moves it; "
                f"{MIN_DRIVER_WORLDS} or more would."
            )
            return " ".join(parts)
        table = self.drivers()
        clear = table[table["clear"]].head(2)
        if len(clear):
            first, *rest = clear.itertuples()
            said = (
                f"What moves it most: {first.Index} ({first.low:.1%} in the fifth of worlds "
                f"where {first.Index} is lowest, {first.high:.1%} in the fifth where it is "
                "highest)"
            )
            said += "".join(
                f", then {r.Index} ({r.low:.1%} where lowest, {r.high:.1%} where highest)"
                for r in rest
            )
            parts.append(said + ".")
        elif len(table):
            parts.append(
                f"No parameter's swing stands out from the noise of {self.worlds:,} worlds; "
                "more worlds would tell."
            )
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The pooled summary (Monte Carlo) with a ``worlds`` block of every metric."""

        block = {
            "count": self.worlds,
            "sampling": self.sampling,
            "seed": self.seed,
            "trajectories_per_world": self.trajectories_per_world,
            "parameters": list(self.parameters.columns),
            "metrics": {
                metric: {key: finite_or_none(float(value)) for key, value in row.items()}
                for metric, row in self.summary().iterrows()
            },
        }
        if self.pooled_result is not None:
            summary = self.pooled_result.to_dict()
        else:
            summary = {"scenario": self.scenario, "method": self.method}
        metric = self.headline.get("metric")
        if self.has_drivers():
            block["drivers"] = {
                "metric": metric,
                "fraction": DRIVER_FRACTION,
                "parameters": {
                    name: {
                        key: bool(value) if key == "clear" else finite_or_none(float(value))
                        for key, value in row.items()
                    }
                    for name, row in self.drivers().iterrows()
                },
            }
        if metric in self.values:
            headline = summary.setdefault("headline", {})
            headline["across_worlds"] = block["metrics"][metric]
            headline["text"] = self.headline_text()
        summary["worlds"] = block
        return summary

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def plot_drivers(self, metric: str | None = None, top: int = 8):
        """Figure: ``metric`` in the lowest and the highest fifth of each parameter's worlds,
        the parameters that move it most at the top (see :func:`escalate.output.plots.drivers`)."""
        from escalate.output import plots

        return plots.drivers(self, metric, top=top)

    def save(self, directory: str | Path, *, force: bool = False, model=None) -> Path:
        """Write a run folder of the worlds, whole or not at all: the pooled run's files
        (:meth:`Result.save`), ``summary.json`` with the ``worlds`` block and its drivers,
        ``worlds.parquet`` (a worlds file: ``--worlds-from`` reads it), ``world_metrics.parquet``
        (every metric in every world) and the drivers figure. Saving runs no engine.

        Only simulated, equally weighted worlds pool into one run; others are refused.

        Parameters
        ----------
        directory : str or Path
            The folder to write (it must not exist unless ``force``).
        force : bool
            Replace an existing folder.
        model : Scenario, optional
            Adds the stage graph to the figures.

        Returns
        -------
        Path
            The folder written.

        Raises
        ------
        EscalateError
            For weighted or exactly solved worlds, or a folder that exists (without ``force``).
        """
        if self.pooled_result is None:
            raise EscalateError(
                "a run folder needs simulated worlds drawn from the uncertain ranges, pooled "
                "into one run; weighted or exactly solved worlds are not written as a folder yet"
            )

        def write(folder: Path) -> None:
            self.pooled_result.write_files(
                folder, model=model, summary_json=self.to_json(), manifest=self.manifest
            )
            worlds = self.parameters.copy()
            worlds["weight"] = 1.0 / self.worlds
            worlds.to_parquet(folder / "worlds.parquet", index=False)
            metrics = pd.concat([self.parameters, self.values], axis=1)
            metrics.index.name = "world"
            metrics.to_parquet(folder / "world_metrics.parquet")
            if self.has_drivers():
                from escalate.output.plots import save_figure

                save_figure(self.plot_drivers(), folder / "drivers")

        return write_folder(Path(directory), write, force=force)


def run_worlds(
    model: Scenario,
    worlds: int | None,
    *,
    seed: int,
    n: int | None = None,
    engine: str = "auto",
    overrides: dict[str, float] | None = None,
    horizon: float | None = None,
    threads: int | None = None,
    sampling: str = "lhs",
    progress: Callable[[int, int], None] | None = None,
    scheduler: Any = None,
    given: pd.DataFrame | None = None,
) -> WorldsResult:
    """Evaluate every metric in ``worlds`` parameter sets drawn from the uncertain ranges.

    Parameters
    ----------
    model : Scenario
    worlds : int
        Number of parameter sets.
    seed : int
        Fixes the worlds and every trajectory.
    n : int, optional
        Trajectories per world (Monte Carlo). With ``engine="exact"`` (or ``"auto"`` on a
        memoryless scenario and no ``n``) every world is solved exactly.
    overrides : dict, optional
        Parameters fixed at a value in every world (``--set``), replacing their draws.
    scheduler : str or dask.distributed.Client, optional
        Evaluate the worlds as tasks on this Dask cluster (identical figures).
    given : pandas.DataFrame, optional
        These worlds instead of drawn ones (``worlds`` is then ignored): a column per
        parameter and ``weight`` (:func:`read_worlds`, e.g. calibrate's posterior). The
        figures across worlds are then weighted, and the pooled value is the weighted mean.

    Returns
    -------
    WorldsResult
    """
    overrides = dict(overrides or {})
    weights = None
    if given is not None:
        weights = given["weight"].to_numpy(float)
        drawn = given.drop(columns="weight").reset_index(drop=True)
        worlds, sampling = len(drawn), "given"
    else:
        drawn = draw_worlds(model, worlds, seed, sampling=sampling)
    for name, value in overrides.items():
        if name in drawn:
            drawn[name] = value
    metrics = all_metrics(model)
    if engine == "auto" and n is not None:
        engine = "monte-carlo"
    rows, pooled_tally, compiled = [], None, None
    began = time.perf_counter()

    def world(w: int) -> dict[str, float]:
        return {**overrides, **{k: float(v) for k, v in drawn.iloc[w].items()}}

    values = None
    if engine in ("auto", "exact"):  # exact worlds: in batches where the worlds engine applies

        def left(w: int) -> list[float]:
            evaluation = _world(model, world(w), w, metrics, engine, None, seed, horizon, None)
            return [evaluation.values[m] for m in metrics]

        solved = exact_metrics(
            model, list(drawn.columns), drawn.to_numpy(float), metrics, left=left,
            overrides={k: v for k, v in overrides.items() if k not in drawn},
            horizon=horizon, scheduler=scheduler, progress=progress,
        )  # fmt: skip
        if solved is not None:
            values = pd.DataFrame(solved, columns=metrics)
    if values is None:
        arguments = (
            (world(w), w, metrics, engine, n, seed, horizon, threads) for w in range(worlds)
        )
        with mapped(_world, model, arguments, scheduler) as evaluations:
            for w, evaluation in enumerate(evaluations):
                rows.append(evaluation.values)
                if evaluation.tally is not None:
                    from escalate.engine.simulate import Tally, add_tally

                    compiled = evaluation.compiled
                    if pooled_tally is None:
                        pooled_tally = Tally.empty(
                            compiled.n_stages, compiled.n_triggers, len(compiled.grid)
                        )
                    add_tally(pooled_tally, evaluation.tally)
                if progress is not None:
                    progress(w + 1, worlds)
        values = pd.DataFrame(rows, columns=metrics)
    method = "monte-carlo" if pooled_tally is not None else "exact"
    if weights is not None:  # weighted worlds: their weighted mean
        pooled_result = None
        pooled = _pooled(values, weights)
    elif pooled_tally is not None:
        labels = {name: model.label(name) for name in (*model.stages, *model.triggers)}
        pooled_result = Result.from_tally(pooled_tally, compiled, seed=seed, labels=labels)
        pooled = {m: pooled_result.metric(m)[0] for m in metrics}
    else:
        pooled_result = None
        pooled = _pooled(values, np.ones(len(values)))
    stage = list(model.stages)[model.headline_stage()]
    reach = horizon if horizon is not None else model.horizon_time
    manifest = {
        **run_manifest(model, overrides, reach, method),
        "seed": seed,
        "worlds": worlds,
        "sampling": sampling,
        "trajectories_per_world": n if method == "monte-carlo" else None,
        "trajectories": pooled_tally.n if pooled_tally is not None else None,
        "wall_time_s": time.perf_counter() - began,
    }
    return WorldsResult(
        scenario=model.scenario,
        method=method,
        seed=seed,
        sampling=sampling,
        trajectories_per_world=n if method == "monte-carlo" else None,
        parameters=drawn,
        values=values,
        pooled=pooled,
        pooled_result=pooled_result,
        manifest=manifest,
        weights=weights,
        headline={
            "metric": f"p_reached:{stage}",
            "label": model.label(stage),
            "by": model.when(reach),
        },
    )


def _pooled(values: pd.DataFrame, weights: np.ndarray) -> dict[str, float]:
    """Each metric of exactly solved (or weighted) worlds pooled as one mixture: the weighted
    mean, except a mean time to reach, which is conditional on reaching the stage: there
    each world weighs by its weight times its chance of reaching it (what pooling the worlds'
    trajectories would give)."""
    from escalate.engine.metrics import parse_metric

    pooled = {}
    for metric in values.columns:
        kind, stage, detail, _ = parse_metric(metric)
        weight = weights
        if kind == "time_to_reach" and detail == "mean":
            weight = weights * values[f"p_reached:{stage}"].to_numpy(float)
        pooled[metric] = weighted_mean(values[metric], weight)[0]
    return pooled


def reach_across_worlds(
    model: Scenario,
    stage: str,
    worlds: int,
    *,
    seed: int,
    times: np.ndarray | None = None,
    n: int | None = None,
    engine: str = "auto",
    scheduler: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """P(``stage`` reached by t) at ``times`` in each of ``worlds`` parameter sets, for a fan
    chart (:func:`escalate.output.plots.fan`).

    Exact worlds solve once per time (horizon-only, so fast); simulated worlds (``n``
    trajectories each) read one run's curve at every time.

    Returns
    -------
    times : numpy.ndarray
    values : numpy.ndarray
        One row per world, one column per time.
    """
    if stage not in model.stages:
        raise EscalateError(f"unknown stage {stage!r}{suggest(stage, model.stages)}")
    if times is None:
        times = np.linspace(0.0, model.horizon_time, 25)
    times = np.asarray(times, dtype=float)
    drawn = draw_worlds(model, worlds, seed)
    if engine == "auto" and n is not None:
        engine = "monte-carlo"
    arguments = (
        ({k: float(v) for k, v in drawn.iloc[w].items()}, w, stage, times, engine, n, seed)
        for w in range(worlds)
    )
    with mapped(_world_curve, model, arguments, scheduler) as rows:
        values = np.array(list(rows))
    return times, values


def _world_curve(model, world, w, stage, times, engine, n, seed):
    """One world's reach curve at ``times`` (one task); at t <= 0, the start probability."""
    from escalate.scenario.resolve import resolve

    at_start = resolve(model, world).start.get(stage, 0.0)
    metric = f"p_reached:{stage}"
    if engine == "monte-carlo":  # one run, its curve read at every time
        keys = {t: f"{metric}@{float(t)!r}" for t in times if t > 0}
        evaluation = evaluate(
            model, world, list(keys.values()), engine=engine, n=n or 100_000,
            seed=world_seed(seed, w),
        )  # fmt: skip
        return np.array([evaluation.values[keys[t]] if t > 0 else at_start for t in times])
    return np.array(
        [
            evaluate(model, world, [metric], engine=engine, horizon=t).values[metric]
            if t > 0
            else at_start
            for t in times
        ]
    )


def _world(model, world, w, metrics, engine, n, seed, horizon, threads):
    """Evaluate world ``w`` (one task: in-process or on a Dask worker)."""
    try:
        return evaluate(
            model,
            world,
            metrics,
            engine=engine,
            n=n or 100_000,
            seed=world_seed(seed, w),
            horizon=horizon,
            threads=threads,
            numba_series=True,  # thousands of exact worlds: the series in numba
        )
    except EscalateError as exc:
        raise exc.within(f"world {w} ({_describe(world)}): ") from None


def _describe(world: dict[str, float]) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in list(world.items())[:4]) + (
        ", ..." if len(world) > 4 else ""
    )
