"""The odds as of today given what has happened (docs/forecasting.md): each world weighted by
the exact likelihood of the observed record (:mod:`escalate.forecast.forward`), the forecast
before and after the news, and the news replayed one step at a time (the prior worlds
reweighted on what was known at each step) to show which event moved the odds and by how much.
The posterior over worlds is calibrate's (:mod:`escalate.forecast.posterior`) with this
likelihood.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalate.engine.chain import chain_of
from escalate.engine.numbers import count, finite_or_none, json_records
from escalate.errors import EscalateError
from escalate.forecast.forward import Filtered, forecast, forward, program
from escalate.forecast.news import replay
from escalate.forecast.observations import Observations, read_observations
from escalate.forecast.particles import (
    after_error,
    entered_stages,
    forecast_columns,
    forecast_trajectories,
    method_for,
)
from escalate.forecast.posterior import Posterior, parameter_table

__all__ = ["PRIOR_WORLDS", "NowcastResult", "evaluator", "nowcast"]


PRIOR_WORLDS = 1000  # prior worlds drawn when none are given


def _evaluate(model, overrides, obs: Observations | None, horizon, ahead, times, worlds_frame,
              particles: int | None = None, trajectories: int | None = None):  # fmt: skip
    """Per world: the log-likelihood of ``obs`` and the forecast from its as_of to
    ``horizon`` (absolute; None: the scenario's). ``obs`` None is the prior forecast from
    t = 0, log-likelihood 0. ``ahead``: "none" (the likelihood alone, several times faster:
    no columns), "reach" (``p_reached:STAGE`` and ``on:TRIGGER``, the probability that the
    trigger is on at as_of), "all" (also ``p_at_horizon:STAGE`` and
    ``p_on_at_horizon:TRIGGER``), "by" (``p_reached:STAGE`` and ``p_fired:TRIGGER``: the
    news steps' ``p_by``) or "stages" (``p_reached:STAGE`` alone: a backtest's curves).
    ``times`` (sorted, after as_of, the last the horizon; None: the horizon alone): the
    forecast at each (curves), its columns ``METRIC@TIME`` time by time. The forward algorithm
    and the forecasts run on the worlds engine, every world at once (the record's program on
    each world's generator, then each world's forecast from its filtered state); a world it
    leaves is done on its own. With ``particles``, the particle method of
    :mod:`escalate.forecast.particles` instead (that many per world, ``trajectories`` per
    world forecast)."""
    if particles is not None:
        from escalate.forecast.particles import evaluate_particles

        return evaluate_particles(model, overrides, obs, horizon, ahead, times, worlds_frame,
                                  particles, trajectories)  # fmt: skip
    from escalate.engine.batch_kernels import SOLVED
    from escalate.engine.batches import CHECKED_WORLDS, built

    stages, triggers = list(model.stages), list(model.triggers)
    names, x = list(worlds_frame.columns), worlds_frame.to_numpy(float)

    def world(w: int) -> dict:  # one world's parameters (for a world done on its own)
        return {**dict(zip(names, x[w].tolist(), strict=True)), **overrides}

    base = forecast_columns(stages, triggers, ahead)
    at = [horizon] if times is None else list(times)
    columns = base if times is None else [f"{m}@{t:.17g}" for t in at for m in base]
    entered = entered_stages(model, overrides, obs)
    asked = [m for m in base if m.removeprefix("p_reached:") not in entered]
    sample = x[:CHECKED_WORLDS]
    start = 0.0 if obs is None else obs.as_of
    log_l = np.zeros(len(x))
    filtered: list[Filtered | None] = [None] * len(x)  # worlds filtered on their own
    on_the_engine = np.zeros(len(x), bool)
    distributions = None
    if obs is not None:
        # every world's forward algorithm at once (the reach question's batch: its chain)
        reach = [m for m in asked if not m.startswith(("p_at_horizon:", "p_on_at_horizon:"))]
        batch = built(model, names, reach, overrides, horizon, sample, start, True)
        if batch is not None and obs.as_of <= batch.chain.c.horizon:
            spec = program(batch.chain.c, batch.chain, obs)
            log_l, distributions, status = batch.filtered(x, spec)
            on_the_engine = status == SOLVED
        for w in np.flatnonzero(~on_the_engine):
            filtered[w] = _filter_one(model, world(w), obs, horizon)
            log_l[w] = filtered[w].log_likelihood
    if ahead == "none":
        return log_l, pd.DataFrame(index=range(len(x)))
    rows = np.full((len(x), len(columns)), np.nan)
    for stage in entered:
        rows[:, [g * len(base) + base.index(f"p_reached:{stage}") for g in range(len(at))]] = 1
    todo = [w for w in range(len(x)) if math.isfinite(log_l[w])]
    batch = built(model, names, asked, overrides, horizon, sample, start, obs is not None)
    left = set(todo)
    fits = []
    if batch is not None:
        n = batch.spec.n_states
        fits = [w for w in todo if obs is None or (on_the_engine[w] and
                                                   distributions.shape[1] == n)]  # fmt: skip
    if fits:
        starts = None if obs is None else distributions[fits]
        values, status = batch.solve(x[fits], starts=starts, times=None if times is None else at)
        where = [g * len(base) + base.index(m) for g in range(len(at)) for m in asked]
        for i, w in enumerate(fits):
            if status[i] == SOLVED:
                rows[w, where] = values[i].ravel()
                left.discard(w)
    for w in sorted(left):
        if obs is not None and filtered[w] is None:
            filtered[w] = _filter_one(model, world(w), obs, horizon)
        rows[w] = np.concatenate([
            _one_forecast(model, world(w), obs, filtered[w], t, ahead)[: len(base)] for t in at
        ])  # fmt: skip
    return log_l, pd.DataFrame(rows, columns=columns)


def _filter_one(model, world, obs: Observations, horizon) -> Filtered:
    """One world's forward algorithm on its own chain (a world the worlds engine leaves)."""
    from escalate.engine.compile import compile_scenario

    return forward(compile_scenario(model, world, horizon=horizon), obs)


def _on_the_worlds_engine(model, prior, overrides, horizon) -> bool:
    """Whether the worlds engine takes these worlds' forecasts (and their chains)."""
    from escalate.engine.batches import applies

    metrics = [f"p_reached:{s}" for s in model.stages]
    return applies(model, list(prior.columns), prior.to_numpy(float), metrics, overrides, horizon)


def _one_forecast(model, world, obs, filtered, horizon, ahead) -> np.ndarray:
    """One world's forecast row on its own (the per-world engine)."""
    from escalate.engine.compile import compile_scenario

    n_k = len(model.triggers)
    c = compile_scenario(model, world, horizon=horizon)
    if obs is None:
        chain = chain_of(c)
        distribution = chain.p0
        starts = np.unique(chain.stage_of[distribution > 0])  # one: reached for certain
        certain = [(int(starts[0]), 0.0)] if len(starts) == 1 else []
        start = Filtered(0.0, distribution, chain)
        figures = forecast(c, start, Observations(0.0, certain), horizon, occupancy=ahead == "all")
    else:
        chain, distribution = filtered.chain, filtered.distribution
        figures = forecast(c, filtered, obs, horizon, occupancy=ahead == "all")
    if ahead in ("by", "stages"):
        return np.concatenate([figures.p_reached, figures.p_fired])
    on_now = [distribution[(chain.mask_of >> k) & 1 == 1].sum() for k in range(n_k)]
    ahead_figures = [figures.p_at_horizon, figures.p_on_at_horizon]
    return np.concatenate([figures.p_reached, on_now, *ahead_figures])


def evaluator(model, overrides, horizon, pool, workers, client=None, particles=None):
    """``evaluate(worlds, obs, ahead, to, times) -> (log-likelihood, forecast)`` (``to``:
    the forecast's horizon, default ``horizon``; ``times``: curves, see :func:`_evaluate`;
    ``particles``: per world, for the particle method, None for the exact one): here, split
    among the
    processes of ``pool``, or as tasks of ``BATCH_WORLDS`` worlds on the Dask cluster of
    ``client`` (in order: the figures do not depend on the split)."""
    from escalate.forecast.posterior import map_in_parts

    def evaluate(worlds_frame, obs, ahead="reach", to=None, times=None):
        to = horizon if to is None else to
        trajectories = None
        if particles is not None:  # from all the worlds, whatever the split
            trajectories = forecast_trajectories(len(worlds_frame), particles)
        if client is None:
            function = functools.partial(_evaluate, particles=particles,
                                         trajectories=trajectories)  # fmt: skip
            return map_in_parts(
                function, worlds_frame, pool, workers, model, overrides, obs, to, ahead, times
            )
        from escalate.engine.batches import BATCH_WORLDS
        from escalate.engine.cluster import mapped

        firsts = range(0, len(worlds_frame), BATCH_WORLDS)
        parts = ((obs, ahead, times, worlds_frame.iloc[f : f + BATCH_WORLDS]) for f in firsts)
        setting = (model, overrides, to, particles, trajectories)
        with mapped(_evaluate_part, setting, parts, client) as done:
            log_l, out = zip(*done, strict=True)
        return np.concatenate(log_l), pd.concat(out, ignore_index=True)

    return evaluate


def _evaluate_part(setting, obs, ahead, times, worlds_frame):
    """One task on a cluster: :func:`_evaluate` of a part of the worlds (``setting``: the
    model, the overrides, the horizon and the particles, sent once)."""
    model, overrides, horizon, particles, trajectories = setting
    return _evaluate(model, overrides, obs, horizon, ahead, times, worlds_frame, particles,
                     trajectories)  # fmt: skip


@dataclass
class NowcastResult:
    """The forecast before and after the news, and what each piece of news did.

    ``before``: per stage, P(reached by the horizon) over the prior worlds from t = 0;
    ``after``: the same over the posterior worlds, each from its filtered state at as_of;
    ``ahead``: the same pair for ``p_at_horizon`` (per stage) and ``p_on_at_horizon`` (per
    trigger);
    ``triggers_on``: per unobserved trigger, the posterior probability that it is on at as_of;
    ``steps``: the news in time order, one step per time at which something was observed
    (and a last one at as_of for what did not happen since): its time, what happened, and
    P(reached) per stage given everything up to then (the prior worlds reweighted);
    ``posterior``: the worlds and weights.
    """

    scenario: str
    as_of: float
    horizon: float
    time_unit: str
    start_date: str | None
    stage_names: tuple[str, ...]
    stage_labels: tuple[str, ...]
    trigger_names: tuple[str, ...]
    headline: int
    before: np.ndarray
    after: np.ndarray
    ahead: dict[str, tuple[np.ndarray, np.ndarray]]
    triggers_on: dict[str, float]
    steps: list[dict]
    posterior: Posterior
    uncertain: list[str]
    seed: int
    overrides: dict[str, float] = field(default_factory=dict)
    worlds_from: str | None = None
    method: str = "exact"  # or "particles" (docs/forecasting.md)
    particles: int | None = None  # per world, for the particle method
    log_likelihood_sd: float | None = None  # of a world's estimate, from the pilot
    after_se: np.ndarray | None = None  # the Monte Carlo error of ``after`` (particles)

    def date(self, time: float) -> str | None:
        """The ISO date in which ``time`` falls (None without a start_date)."""
        from escalate.scenario.model import date_of

        day = date_of(time, self.start_date, self.time_unit)
        return None if day is None else day.isoformat()

    def when(self, time: float) -> str:
        """A time as the reader wants it: its date with start_date, else the time."""
        from escalate.scenario.model import when

        return when(time, self.start_date, self.time_unit)

    def _stage(self, stage: str | None) -> int:
        if stage is None:
            return self.headline
        if stage not in self.stage_names:
            from escalate.errors import suggest

            raise EscalateError(f"unknown stage {stage!r}{suggest(stage, self.stage_names)}")
        return self.stage_names.index(stage)

    @property
    def worlds(self) -> pd.DataFrame:
        """The posterior worlds, a column per updated parameter and ``weight``."""
        frame = self.posterior.worlds.reset_index(drop=True).copy()
        frame["weight"] = self.posterior.weights
        return frame

    def summary(self) -> pd.DataFrame:
        """Per stage, P(reached by the horizon) before the news, after it, and the change;
        and P(in the stage at the horizon) before and after."""
        at_before, at_after = self.ahead["p_at_horizon"]
        return pd.DataFrame(
            {
                "before": self.before,
                "after": self.after,
                "change": self.after - self.before,
                "at_horizon_before": at_before,
                "at_horizon_after": at_after,
            },
            index=pd.Index(self.stage_names, name="stage"),
        )

    def updates(self, stage: str | None = None) -> pd.DataFrame:
        """The news one step at a time: per step its time (and date), what happened, and
        P(``stage`` reached by the horizon) before and after it, with the ESS of the
        reweighted prior worlds behind the figure; how probable the step was under the
        forecast before it (``p_by``, ``unexpected`` under 5%) and its share of the log
        evidence. ``stage`` defaults to the headline stage
        (the first war, else the last stage)."""
        s = self._stage(stage)
        rows, previous = [], self.before[s]
        for step in self.steps:
            now = step["p_reached"][s]
            rows.append(
                {
                    "time": step["time"],
                    "date": self.date(step["time"]),
                    "news": "; ".join(step["events"]),
                    "before": previous,
                    "after": now,
                    "change": now - previous,
                    "ess": step["ess"],
                    "p_by": step["p_by"],
                    "unexpected": step["unexpected"],
                    "evidence_share": step["evidence_share"],
                }
            )
            previous = now
        return pd.DataFrame(rows)

    def parameters(self) -> pd.DataFrame:
        """Per updated parameter: prior and posterior median and 90% interval, contraction."""
        return parameter_table(self.posterior, self.uncertain)

    def plot_update(self, stage: str | None = None):
        """A waterfall: P(``stage`` by the horizon) before the news, each step's change, and
        the figure after it."""
        from escalate.output import plots

        return plots.nowcast_waterfall(self, self._stage(stage))

    def plot_parameters(self, top: int = 12):
        """Prior against posterior for the ``top`` parameters the news moved most."""
        from escalate.output import plots

        return plots.prior_posterior(self, top, "what the news says of the parameters")

    def to_dict(self) -> dict[str, Any]:
        p = self.posterior
        at_before, at_after = self.ahead["p_at_horizon"]
        on_before, on_after = self.ahead["p_on_at_horizon"]
        return {
            "scenario": self.scenario,
            "as_of": self.as_of,
            "as_of_date": self.date(self.as_of),
            "horizon": self.horizon,
            "horizon_date": self.date(self.horizon),
            "start_date": self.start_date,
            "seed": self.seed,
            **p.diagnostics(),
            "worlds_from": self.worlds_from,
            "method": self.method,
            "particles": self.particles,
            "log_likelihood_sd": self.log_likelihood_sd,
            "overrides": self.overrides,
            "headline": self.stage_names[self.headline],
            "stage_labels": dict(zip(self.stage_names, self.stage_labels, strict=True)),
            "stages": {
                name: {
                    "before": finite_or_none(self.before[i]),
                    "after": finite_or_none(self.after[i]),
                    "after_se": None if self.after_se is None else finite_or_none(self.after_se[i]),
                    "p_at_horizon": {
                        "before": finite_or_none(at_before[i]),
                        "after": finite_or_none(at_after[i]),
                    },
                }
                for i, name in enumerate(self.stage_names)
            },
            "triggers": {
                name: {
                    "p_on_at_horizon": {
                        "before": finite_or_none(on_before[k]),
                        "after": finite_or_none(on_after[k]),
                    },
                    "p_on_at_as_of": self.triggers_on.get(name),
                }
                for k, name in enumerate(self.trigger_names)
            },
            "updates": [
                {
                    "time": step["time"],
                    "date": self.date(step["time"]),
                    "news": step["events"],
                    "ess": step["ess"],
                    "p_by": finite_or_none(step["p_by"]),
                    "unexpected": step["unexpected"],
                    "log_predictive": finite_or_none(step["log_predictive"]),
                    "evidence_share": finite_or_none(step["evidence_share"]),
                    "p_reached": {
                        name: finite_or_none(x)
                        for name, x in zip(self.stage_names, step["p_reached"], strict=True)
                    },
                }
                for step in self.steps
            ],
            "triggers_on_at_as_of": self.triggers_on,
            "parameters": json_records(self.parameters()),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def nowcast(
    scenario,
    observations: Observations | str | Path,
    *,
    worlds: int | None = None,
    seed: int = 0,
    moves: int = 3,
    overrides: dict[str, float] | None = None,
    worlds_from: pd.DataFrame | str | Path | None = None,
    horizon: float | None = None,
    workers: int | None = None,
    scheduler: Any = None,
    news: bool = True,
    method: str = "auto",
    particles: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> NowcastResult:
    """Update the scenario on what has happened and forecast from as_of (docs/forecasting.md).

    Parameters
    ----------
    scenario : Scenario
        Any valid scenario: exact where every timing is exponential, particles otherwise
        (``method``).
    observations : Observations, or the path of an observations file
    worlds : int, optional
        Prior worlds drawn (Latin hypercube over the ``uncertain`` parameters); 1,000 when
        neither this nor ``worlds_from`` is given.
    seed : int
        Fixes the worlds, the resampling and the moves: the same seed, the same figures.
    moves : int
        Random-walk Metropolis steps per world after each tempering step.
    overrides : dict, optional
        Parameters fixed at a value (``--set``, ``--params``); they are not updated.
    worlds_from : DataFrame or path, optional
        Weighted worlds to start from instead of the prior (calibrate's ``worlds.parquet``):
        they are reweighted by the news, not moved (their density is not known).
    horizon : float, optional
        The absolute time the forecast runs to (default the scenario's horizon).
    workers : int, optional
        Processes that evaluate worlds the worlds engine cannot take (default: the cores, at
        most 8; the engine itself uses every core); the figures are the same for any number.
    scheduler : str or dask.distributed.Client, optional
        Evaluate the worlds on this Dask cluster (an address or a Client), in tasks of
        ``BATCH_WORLDS`` worlds: the same seed gives the same figures as here.
    method : {"auto", "exact", "particles"}
        The likelihood and forecast: "auto" is exact where every timing is exponential,
        particles otherwise; "exact" refuses a scenario that is not memoryless.
    particles : int, optional
        Particles per world for the particle method (default: chosen by a pilot so that a
        world's log-likelihood estimate has a variance near 1).
    news : bool
        Replay the news one step at a time, with each step's surprise (``steps``); False
        leaves ``steps`` empty (a backtest's origins need only the update).
    progress : callable, optional
        Called with a line of text as the update proceeds.

    Returns
    -------
    NowcastResult
    """
    import contextlib
    import os

    from escalate.analysis.draws import uncertain_parameters, worlds_to_weigh
    from escalate.engine.cluster import connect
    from escalate.engine.compile import compile_scenario
    from escalate.forecast.posterior import fit_posterior, process_pool

    model = scenario
    obs = (
        observations
        if isinstance(observations, Observations)
        else read_observations(observations, model)
    )
    overrides = dict(overrides or {})
    # a bad override (or, asked for exact figures, a timing not exponential) fails here
    compiled = compile_scenario(model, overrides)
    method = method_for(method, compiled, particles)
    end = float(model.horizon_time if horizon is None else horizon)
    if not end > obs.as_of:
        raise EscalateError(f"the horizon ({end:g}) must come after as_of ({obs.as_of:g})")
    if worlds_from is None and not [n for n in uncertain_parameters(model) if n not in overrides]:
        # nothing uncertain: one world (its likelihood exact, but for particles' error)
        prior, weights0, source = pd.DataFrame(index=range(1)), np.ones(1), None
    else:
        if worlds is None and worlds_from is None:
            worlds = PRIOR_WORLDS
        prior, weights0, source = worlds_to_weigh(model, worlds, worlds_from, seed, overrides)
    names = list(prior.columns)
    prior_weights = weights0 if worlds_from is not None else None
    say = progress or (lambda line: None)
    if workers is None:
        workers = min(os.cpu_count() or 1, 8)
    with connect(scheduler) as client, contextlib.ExitStack() as stack:
        # the worlds engine uses every core in compiled code: processes only where it cannot
        pool = None
        choice = None
        if method == "particles":
            from escalate.forecast.particles import choose_particles

            choice = choose_particles(model, overrides, obs, prior, end, particles)
            sd = choice.log_likelihood_sd
            say(f"particles: {choice.particles} per world" + ("" if sd != sd else
                f" (the pilot: a world's log-likelihood estimate has sd {sd:.2f})"))  # fmt: skip
        elif client is None and not _on_the_worlds_engine(model, prior, overrides, end):
            pool = process_pool(workers, len(prior))
        if pool is not None:
            stack.callback(pool.shutdown, cancel_futures=True)
        evaluate = evaluator(model, overrides, end, pool, workers, client,
                             None if choice is None else choice.particles)  # fmt: skip
        say(f"the prior forecast: {count(len(prior), 'world')}")
        _, prior_out = evaluate(prior, None, "all")
        before = _weighted_stages(prior_out, model, weights0)
        ahead_before = {
            metric: _weighted_stages(prior_out, model, weights0, metric)
            for metric in ("p_at_horizon", "p_on_at_horizon")
        }
        say("the update on everything observed")
        posterior = fit_posterior(
            model,
            prior,
            lambda w: evaluate(w, obs, "none"),
            seed=seed,
            moves=moves,
            progress=say,
            prior_weights=prior_weights,
            evidence="the observations",
        )
        say("the forecast from as_of")
        _, posterior.prior_outputs = evaluate(prior, obs, "all")
        if posterior.powers:  # moved worlds: forecast each distinct one once
            distinct, where = np.unique(posterior.worlds.to_numpy(float), axis=0,
                                        return_inverse=True)  # fmt: skip
            _, out = evaluate(pd.DataFrame(distinct, columns=posterior.worlds.columns), obs, "all")
            posterior.outputs = out.iloc[where.ravel()].reset_index(drop=True)
        else:
            posterior.outputs = posterior.prior_outputs
        at_as_of = (posterior.prior_log_likelihood, posterior.prior_outputs)
        steps = replay(model, obs, prior, weights0, evaluate, at_as_of, say) if news else []
    p = posterior
    after = _weighted_stages(p.outputs, model, p.weights)
    ahead = {
        metric: (values, _weighted_stages(p.outputs, model, p.weights, metric))
        for metric, values in ahead_before.items()
    }
    on_now = _weighted_stages(p.outputs, model, p.weights, "on")
    triggers_on = {
        t: float(on_now[k]) for k, t in enumerate(model.triggers) if k not in obs.switches
    }
    return NowcastResult(
        scenario=model.scenario,
        as_of=obs.as_of,
        horizon=end,
        time_unit=model.time_unit,
        start_date=None if model.start_date is None else str(model.start_date),
        stage_names=tuple(model.stages),
        stage_labels=tuple(model.label(s) for s in model.stages),
        trigger_names=tuple(model.triggers),
        headline=model.headline_stage(),
        before=before,
        after=after,
        ahead=ahead,
        triggers_on=triggers_on,
        steps=steps,
        posterior=posterior,
        uncertain=names,
        seed=seed,
        overrides=overrides,
        worlds_from=source,
        method=method,
        particles=None if choice is None else choice.particles,
        log_likelihood_sd=None if choice is None else finite_or_none(choice.log_likelihood_sd),
        after_se=None if choice is None else after_error(p.outputs, model, p.weights, p.worlds),
    )


def _weighted_stages(
    outputs: pd.DataFrame, model, weights: np.ndarray, metric: str = "p_reached"
) -> np.ndarray:
    """Per stage (per trigger for a trigger metric, or ``on``), the weighted mean of
    ``metric`` (:func:`escalate.analysis.weights.weighted_mean`: worlds the news rules out have
    no figures and no weight)."""
    from escalate.analysis.weights import weighted_mean

    names = model.stages if metric in ("p_reached", "p_at_horizon") else model.triggers
    return np.array([weighted_mean(outputs[f"{metric}:{name}"], weights)[0] for name in names])
