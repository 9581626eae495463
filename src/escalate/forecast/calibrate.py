"""``calibrate``: fit a scenario's uncertain parameters to analysts' statements about outcomes.

A targets file states, for some model outputs, the analyst's 90% interval (docs/forecasting.md)::

    scenario: venezuela
    targets:
      - metric: p_reached:full_scale_war@365
        between: [15%, 25%]
        source: "Panel judgment, Nov 2025"

Each target is a noisy observation of its output on a scale g (logit for probabilities, log
for times): g(output) ~ Normal(mu, sigma), mu the middle of g(lo) and g(hi), sigma their
distance over 3.29. Worlds are weighted (and tempered, see
:mod:`escalate.forecast.posterior`) by the product of these densities; outputs are exact per
world where ``solve`` applies, else Monte Carlo with the same seed in every world, its variance
added to sigma^2.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalate.analysis.draws import draw_worlds, uncertain_parameters
from escalate.analysis.weights import weighted_quantile
from escalate.engine.compile import compile_scenario, cut_at
from escalate.engine.evaluate import evaluate_compiled
from escalate.engine.metrics import parse_metric
from escalate.engine.numbers import json_records
from escalate.errors import EscalateError
from escalate.forecast.posterior import (
    Posterior,
    fit_posterior,
    map_in_parts,
    parameter_table,
    process_pool,
    spread,
)
from escalate.forecast.targets import Target, read_targets
from escalate.scenario import Scenario

__all__ = ["CalibrationResult", "calibrate"]


def _outputs(
    model: Scenario,
    targets: list[Target],
    overrides: dict[str, float],
    n: int,
    seed: int,
    pool: Any = None,
    client: Any = None,
    workers: int = 1,
) -> Callable[[pd.DataFrame], tuple[pd.DataFrame, pd.DataFrame]]:
    """A function of worlds giving each target's output and its Monte Carlo variance.

    ``p_reached:S@T`` is the horizon metric ``p_reached:S`` of the scenario cut at T, so that
    every target takes the fast exact path: one solve per distinct time point a world. With a
    process ``pool`` the worlds are split among its ``workers`` processes, with a Dask
    ``client`` among the cluster's tasks, in order (the figures do not change)."""
    if client is not None:
        from escalate.engine.cluster import ordered_map, share

        shared = share(client, model)
        threads = sum(client.nthreads().values()) or 1

        def on_cluster(worlds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
            parts = np.array_split(
                np.arange(len(worlds)), max(1, min(len(worlds) // 25, 4 * threads))
            )
            arguments = (
                (shared, targets, overrides, n, seed, worlds.iloc[p]) for p in parts if len(p)
            )
            done = list(ordered_map(_outputs_of, arguments, client=client))
            return (
                pd.concat([v for v, _ in done], ignore_index=True),
                pd.concat([e for _, e in done], ignore_index=True),
            )

        return on_cluster
    if pool is not None:
        return lambda worlds: map_in_parts(
            _outputs_of, worlds, pool, workers, model, targets, overrides, n, seed
        )
    groups = _target_groups(model, targets)

    def outputs(worlds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        values = np.full((len(worlds), len(targets)), np.nan)
        variances = np.zeros_like(values)
        records = worlds.to_dict("records")
        for w, world in enumerate(records):
            compiled = compile_scenario(model, {**world, **overrides})  # once for every time
            for at, members in groups.items():
                evaluation = evaluate_compiled(
                    compiled if at is None else cut_at(compiled, at),
                    [plain for _, plain in members],
                    n=n,
                    seed=seed,
                    numba_series=True,
                )
                for i, plain in members:
                    values[w, i] = evaluation.values[plain]
                    se = evaluation.errors[plain]
                    variances[w, i] = se * se if math.isfinite(se) else 0.0
        columns = [t.metric for t in targets]
        return pd.DataFrame(values, columns=columns), pd.DataFrame(variances, columns=columns)

    return outputs


def _target_groups(model: Scenario, targets: list[Target]) -> dict[float | None, list]:
    """Targets by the time point they read (None: the horizon), each as (index, horizon
    metric): ``p_reached:S@T`` is ``p_reached:S`` of the scenario cut at T."""
    groups: dict[float | None, list[tuple[int, str]]] = {}
    for i, target in enumerate(targets):
        kind, name, detail, at = parse_metric(target.metric, model=model)
        plain = f"{kind}:{name}" + (f":{detail}" if detail else "")
        groups.setdefault(at, []).append((i, plain))
    return groups


def _batched_outputs(model, targets, overrides, n, seed, prior, client):
    """Each target's output by the worlds engine (``exact_metrics``: in-process or on the
    cluster, the same figures), or None where it does not apply. A world it leaves is
    solved on its own."""
    from escalate.engine.batches import applies, exact_metrics

    names = list(prior.columns)
    metrics = [t.metric for t in targets]
    if not applies(model, names, prior.to_numpy(float), metrics, overrides):
        return None
    per_world = _outputs(model, targets, overrides, n, seed)

    def outputs(worlds: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        def left(w: int) -> list[float]:
            return per_world(worlds.iloc[[w]])[0].iloc[0].tolist()

        x = worlds[names].to_numpy(float)
        values = exact_metrics(
            model, names, x, metrics, left=left, overrides=overrides, scheduler=client
        )
        return (
            pd.DataFrame(values, columns=metrics),
            pd.DataFrame(0.0, index=range(len(x)), columns=metrics),
        )

    return outputs


def _outputs_of(model, targets, overrides, n, seed, worlds):
    """One process's share of the worlds (a task of the pool)."""
    return _outputs(model, targets, overrides, n, seed)(worlds)


def _log_likelihood(targets: list[Target], outputs_of, trajectories: int | None = None):
    """The log-likelihood of worlds given the targets: per target, g(output) ~ Normal(mu,
    sigma^2), g(output) being known exactly or, for a simulated output, up to its noise.

    A simulated probability (``trajectories`` per world) is k hits in n: the density of
    logit(p) under the target is averaged over what k says of p, the Jeffreys posterior
    Beta(k + 1/2, n - k + 1/2) (:func:`simulated_log_likelihood`). It is finite at k = 0 and
    k = n, where the plain logit is infinite, and for a target above k / n it rises with k
    (a variance read from k alone, as the delta method's or the empirical logit's, lets 0
    hits beat a few); for k and n - k large it is the delta method's. Other simulated outputs
    carry their variance to the scale g by its derivative; exact ones have none.
    """

    def log_likelihood(worlds: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        values, variances = outputs_of(worlds)
        total = np.zeros(len(worlds))
        for target in targets:
            x = values[target.metric].to_numpy()
            if target.is_probability and trajectories is not None:
                term = simulated_log_likelihood(
                    np.round(x * trajectories), trajectories, target.mu, target.sigma
                )
            else:
                noise = variances[target.metric].to_numpy()
                with np.errstate(invalid="ignore", divide="ignore"):
                    g = target.scale(x)
                    slope = 1.0 / (x * (1.0 - x)) if target.is_probability else 1.0 / x
                    var = target.sigma**2 + np.where(noise > 0.0, noise * slope**2, 0.0)
                    term = -0.5 * (g - target.mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var)
            total += np.where(np.isfinite(term), term, -np.inf)
        return total, values

    return log_likelihood


_HERMITE = np.polynomial.hermite_e.hermegauss(48)  # nodes and weights for exp(-t^2 / 2)


def simulated_log_likelihood(hits, n: int, mu: float, sigma: float) -> np.ndarray:
    """log E[N(logit p; mu, sigma)] over p ~ Beta(hits + 1/2, n - hits + 1/2), per element.

    The integrand, a normal density times the Beta's density on the logit scale, is
    log-concave: a safeguarded Newton's method finds its mode, and Gauss-Hermite quadrature
    centred there with the curvature's scale (adaptive Gauss-Hermite, 48 nodes) integrates
    it (to 1e-9 of quadpack's answer in the tests).
    """
    from scipy.special import betaln, expit, log_expit

    a = np.asarray(hits, float) + 0.5
    b = n - np.asarray(hits, float) + 0.5

    def log_integrand(x, a, b):
        return (
            -0.5 * ((x - mu) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))
            + a * log_expit(x) + b * log_expit(-x) - betaln(a, b)
        )  # fmt: skip

    # the mode lies between the normal's (mu) and the Beta's (log a / b): Newton's method
    # kept inside that bracket, bisecting where a step would leave it (the slope falls)
    low = np.minimum(mu, np.log(a / b))
    high = np.maximum(mu, np.log(a / b))
    x = (low + high) / 2
    for _ in range(200):
        p = expit(x)
        slope = -(x - mu) / sigma**2 + a - (a + b) * p
        low, high = np.where(slope > 0, x, low), np.where(slope > 0, high, x)
        newton = x + slope / (1.0 / sigma**2 + (a + b) * p * (1.0 - p))
        inside = (newton > low) & (newton < high)
        following = np.where(inside, newton, (low + high) / 2)
        if np.all(np.abs(following - x) <= 1e-12 * (1.0 + np.abs(x))):
            x = following
            break
        x = following
    p = expit(x)
    scale = 1.0 / np.sqrt(1.0 / sigma**2 + (a + b) * p * (1.0 - p))
    nodes, weights = _HERMITE
    points = x[..., None] + scale[..., None] * nodes
    logs = log_integrand(points, a[..., None], b[..., None]) + 0.5 * nodes**2 + np.log(weights)
    top = logs.max(axis=-1)
    return top + np.log(np.exp(logs - top[..., None]).sum(axis=-1)) + np.log(scale)


@dataclass
class CalibrationResult:
    """The posterior of a calibration: worlds and weights, and what they say.

    ``targets()`` per statement its interval, the prior and posterior predictive medians and
    90% intervals, whether the posterior honours it (``conflict``: its 90% interval misses
    the statement's) and whether any uncertain parameter moves its output; ``parameters()``
    per parameter prior and posterior median and 90% interval and the contraction
    1 - var_post / var_prior; ``worlds`` the posterior worlds with a ``weight`` column;
    ``params`` the posterior medians (a ``--params`` overlay).
    """

    scenario: str
    method: str
    seed: int
    targets_list: list[Target]
    posterior: Posterior
    uncertain: list[str]
    overrides: dict[str, float] = field(default_factory=dict)

    @property
    def worlds(self) -> pd.DataFrame:
        frame = self.posterior.worlds.reset_index(drop=True).copy()
        frame["weight"] = self.posterior.weights
        return frame

    @property
    def params(self) -> dict[str, float]:
        p = self.posterior
        return {
            name: float(weighted_quantile(p.worlds[name], p.weights, 0.5))
            for name in self.uncertain
        }

    def targets(self) -> pd.DataFrame:
        p = self.posterior
        rows = []
        for t in self.targets_list:
            figures = spread(
                p.prior_outputs[t.metric], p.prior_weights, p.outputs[t.metric], p.weights
            )
            width = figures["prior_p95"] - figures["prior_p5"]
            scale = max(1.0, abs(figures["prior_median"]))
            rows.append(
                {
                    "metric": t.metric,
                    "low": t.low,
                    "high": t.high,
                    **figures,
                    "conflict": bool(
                        figures["posterior_p95"] < t.low or figures["posterior_p5"] > t.high
                    ),
                    "moved": bool(np.isfinite(width) and width > 1e-9 * scale),
                    "source": t.source,
                }
            )
        return pd.DataFrame(rows)

    def parameters(self) -> pd.DataFrame:
        return parameter_table(self.posterior, self.uncertain)

    def plot_targets(self):
        """Each statement's interval against the prior and posterior predictive 90%."""
        from escalate.output import plots

        return plots.calibration_targets(self)

    def plot_parameters(self, top: int = 12):
        """Prior against posterior for the ``top`` parameters the statements moved most."""
        from escalate.output import plots

        return plots.prior_posterior(self, top, "what the statements say of the parameters")

    def summary(self) -> dict[str, Any]:
        p = self.posterior
        targets = self.targets().to_dict("records")
        return {
            "scenario": self.scenario,
            "method": self.method,
            "seed": self.seed,
            **p.diagnostics(),
            "overrides": self.overrides,
            "conflicts": [r["metric"] for r in targets if r["conflict"]],
            "not_moved": [r["metric"] for r in targets if not r["moved"]],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "targets": json_records(self.targets()),
            "parameters": json_records(self.parameters()),
            "params": self.params,
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def calibrate(
    scenario: Scenario,
    targets: list[Target] | str | Path,
    *,
    worlds: int = 2000,
    seed: int = 0,
    moves: int = 3,
    n: int = 20_000,
    overrides: dict[str, float] | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    progress: Callable[[str], None] | None = None,
) -> CalibrationResult:
    """Fit the uncertain parameters of ``scenario`` to ``targets`` (docs/forecasting.md).

    Parameters
    ----------
    scenario : Scenario
    targets : list of Target, or the path of a targets file
    worlds : int
        Prior worlds drawn (Latin hypercube) and carried through the update.
    seed : int
        Fixes the worlds, the resampling, the moves and (Monte Carlo scenarios) every
        trajectory: the same seed gives the same posterior, bit for bit.
    moves : int
        Random-walk Metropolis steps per world after each tempering step.
    n : int
        Trajectories per world when the scenario needs simulation (same seed in every world).
    overrides : dict, optional
        Parameters fixed at a value (``--set``, ``--params``); a fixed parameter is not fitted.
    workers : int, optional
        Processes that evaluate exact worlds the worlds engine cannot take (default: the
        cores, at most 8; the engine itself uses every core); the figures are the same for
        any number.
    scheduler : str or dask.distributed.Client, optional
        Evaluate the worlds as tasks on this Dask cluster instead (the same figures).
    progress : callable, optional
        Called with a line of text as the update proceeds.

    Returns
    -------
    CalibrationResult
    """
    if not isinstance(targets, list):
        targets = read_targets(targets, scenario)
    overrides = dict(overrides or {})
    names = [name for name in uncertain_parameters(scenario) if name not in overrides]
    if not names:
        raise EscalateError(
            f"{scenario.file}: no parameter left to fit: calibration needs uncertain "
            "parameters (`uncertain:`) that --set or --params does not fix"
        )
    compiled = compile_scenario(scenario, overrides)
    method = "exact" if compiled.is_markov else "monte-carlo"
    prior = draw_worlds(scenario, worlds, seed)[names]
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    from escalate.engine.cluster import connect

    with connect(scheduler) as client, contextlib.ExitStack() as stack:
        outputs_of = None
        if method == "exact":  # the worlds engine: every core in compiled code
            outputs_of = _batched_outputs(scenario, targets, overrides, n, seed, prior, client)
        if outputs_of is None:
            pool = None
            # exact worlds split among processes (simulated ones use every core in the kernel)
            if client is None and method == "exact":
                pool = process_pool(workers, worlds)
                if pool is not None:
                    stack.callback(pool.shutdown, cancel_futures=True)
            outputs_of = _outputs(scenario, targets, overrides, n, seed, pool, client, workers)
        posterior = fit_posterior(
            scenario,
            prior,
            _log_likelihood(targets, outputs_of, n if method == "monte-carlo" else None),
            seed=seed,
            moves=moves,
            progress=progress,
        )
    return CalibrationResult(scenario.scenario, method, seed, targets, posterior, names, overrides)
