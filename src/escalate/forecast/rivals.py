"""Rival structures weighed by the news (docs/forecasting.md): several scenarios, each with the
same record in its own words, weighed by how probable each made it.

A rivals file names models: each a scenario, its record (an observations file in that
scenario's stages and triggers), the shared question in its own words (``p_reached:STAGE``)
and a prior weight. Each model's log evidence is its nowcast's (the marginal likelihood of its
record over its parameter worlds; exact for a scenario with nothing uncertain); the posterior
model probabilities are prior x evidence, normalized; the averaged forecast weighs each model's
forecast of the question by them. Per news step, each model's log predictive probability of the
step gives the Bayes factor between models: which piece of news favoured which story. Evidence
compares models only on the same data, so the records' dated events must coincide.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalate.engine.numbers import finite_or_none
from escalate.errors import EscalateError, Issue, ScenarioError, suggest

__all__ = ["RIVALS_KEYS", "Rival", "Rivals", "WeighResult", "read_rivals", "weigh"]

RIVALS_KEYS = ("title", "question", "description", "models")
MODEL_KEYS = ("scenario", "observed", "metric", "prior", "label")


@dataclass(frozen=True)
class Rival:
    """One model of a rivals file: its scenario and record (paths), the shared question in
    its words, its prior weight."""

    name: str
    scenario: Path
    observed: Path
    metric: str
    prior: float
    label: str | None = None


@dataclass(frozen=True)
class Rivals:
    title: str | None
    question: str
    models: list[Rival]
    path: Path | None = None


def read_rivals(path: str | Path) -> Rivals:
    """A rivals file (docs/language.md), checked: its keys, each model's files (which must
    exist; relative paths are from the file's folder), metric and prior weight.

    Raises
    ------
    ScenarioError
        Every problem at its line and key.
    """
    from escalate.scenario._yaml import read_yaml

    path = Path(path)
    doc = read_yaml(path)
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ScenarioError([doc.issue((), "a rivals file has `question:` and `models:`")])
    issues: list[Issue] = []
    issues += doc.unknown_keys((), data, RIVALS_KEYS)
    question = data.get("question")
    if not isinstance(question, str) or not question.strip():
        issues.append(doc.issue(("question",), "the shared question, in words, is required"))
    models = []
    if len(data["models"]) < 2:
        issues.append(doc.issue(("models",), "name at least two models to weigh"))
    for name, entry in data["models"].items():
        where = ("models", name)
        if not isinstance(entry, dict):
            issues.append(doc.issue(where, "a model is a mapping with scenario, observed, "
                                           "metric and prior"))  # fmt: skip
            continue
        issues += doc.unknown_keys(where, entry, MODEL_KEYS)
        files = {}
        for key in ("scenario", "observed"):
            value = entry.get(key)
            if not isinstance(value, str):
                issues.append(doc.issue((*where, key) if key in entry else where,
                                        f"`{key}:` (a file path) is required"))  # fmt: skip
                continue
            file = (path.parent / value).resolve()
            if not file.is_file():
                issues.append(doc.issue((*where, key), f"no such file: {value}"))
            files[key] = file
        metric = entry.get("metric")
        if not isinstance(metric, str) or not metric.startswith("p_reached:") or "@" in metric:
            place = (*where, "metric") if "metric" in entry else where
            issues.append(
                doc.issue(place, "the shared question as p_reached:STAGE (by the horizon)")
            )
        prior = entry.get("prior", 1.0)
        if (
            isinstance(prior, bool)
            or not isinstance(prior, int | float)
            or not (math.isfinite(prior) and prior >= 0)
        ):
            issues.append(doc.issue((*where, "prior"), f"a weight at least 0, got {prior!r}"))
            prior = 0.0
        if len(files) == 2 and isinstance(metric, str):
            models.append(Rival(str(name), files["scenario"], files["observed"], metric,
                                float(prior), entry.get("label")))  # fmt: skip
    if not issues and not sum(m.prior for m in models) > 0:
        issues.append(doc.issue(("models",), "at least one model needs a prior weight above 0"))
    if issues:
        raise ScenarioError(issues)
    return Rivals(data.get("title"), question.strip(), models, path)


@dataclass
class WeighResult:
    """Per model its log evidence (and standard error), posterior probability and forecast of
    the shared question; the averaged forecast; per news step the Bayes factors."""

    title: str | None
    question: str
    names: list[str]
    priors: np.ndarray
    log_evidence: np.ndarray
    evidence_se: np.ndarray
    probabilities: np.ndarray
    forecasts: np.ndarray
    averaged: float
    interval: tuple[float, float]
    steps: pd.DataFrame
    worlds: list[int]
    seed: int
    dates: dict[float, str | None] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)  # each model's nowcast method

    def models(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "model": self.names,
                "prior": self.priors,
                "log_evidence": self.log_evidence,
                "evidence_se": self.evidence_se,
                "probability": self.probabilities,
                "forecast": self.forecasts,
                "worlds": self.worlds,
                "method": self.methods or ["exact"] * len(self.names),
            }
        )

    def answer(self) -> str:
        best = int(np.argmax(self.probabilities))
        low, high = self.interval
        return (
            f"The news favours {self.names[best]} ({self.probabilities[best]:.1%} after it, "
            f"{self.priors[best]:.0%} before). {self.question}: {self.averaged:.1%} averaged "
            f"over the models (5-95% across models and worlds: {low:.1%} to {high:.1%})."
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "question": self.question,
            "seed": self.seed,
            "answer": self.answer(),
            "models": [
                {k: finite_or_none(v) if isinstance(v, float) else v for k, v in row.items()}
                for row in self.models().to_dict("records")
            ],
            "averaged": finite_or_none(self.averaged),
            "interval": [finite_or_none(x) for x in self.interval],
            "steps": [
                {"date": self.dates.get(row["time"])}
                | {k: finite_or_none(v) if isinstance(v, float) else v for k, v in row.items()}
                for row in self.steps.to_dict("records")
            ],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def plot(self):
        from escalate.output import plots

        return plots.model_probabilities(self)


def weigh(
    rivals: Rivals | str | Path,
    *,
    worlds: int | None = None,
    seed: int = 0,
    scheduler: Any = None,
    method: str = "auto",
    particles: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> WeighResult:
    """Weigh the models of a rivals file by how probable each made the same news.

    Parameters
    ----------
    rivals : Rivals, or the path of a rivals file
    worlds : int, optional
        Prior worlds drawn per model (default: the nowcast's); a model with nothing uncertain
        is one world.
    seed : int
        The same seed, the same figures.
    scheduler : str or dask.distributed.Client, optional
        As :func:`escalate.forecast.nowcast.nowcast`.
    progress : callable, optional

    Returns
    -------
    WeighResult
    """
    from escalate.analysis.weights import weighted_quantile
    from escalate.forecast.nowcast import nowcast
    from escalate.forecast.observations import read_observations
    from escalate.scenario import load

    rivals = rivals if isinstance(rivals, Rivals) else read_rivals(rivals)
    say = progress or (lambda line: None)
    loaded = []
    for m in rivals.models:
        model = load(m.scenario)
        obs = read_observations(m.observed, model)
        stage = m.metric.removeprefix("p_reached:")
        if stage not in model.stages:
            raise EscalateError(
                f"{rivals.path}: models.{m.name}.metric: no stage {stage!r} in "
                f"{m.scenario.name}{suggest(stage, list(model.stages))}"
            )
        loaded.append((m, model, obs, list(model.stages).index(stage)))
    _same_dates(loaded)
    results = []
    for m, model, obs, _ in loaded:
        say(f"{m.name}: the nowcast of {m.observed.name}")
        results.append(nowcast(model, obs, worlds=worlds, seed=seed, scheduler=scheduler,
                               method=method, particles=particles))  # fmt: skip
    priors = np.array([m.prior for m, *_ in loaded])
    log_z = np.array([r.posterior.log_evidence for r in results])
    se = np.array([_evidence_se(r.posterior, r.log_likelihood_sd) for r in results])
    with np.errstate(divide="ignore"):
        log_post = np.log(priors) + log_z
    finite = np.isfinite(log_post)
    if not finite.any():
        raise EscalateError("no model gives the news a positive probability")
    probabilities = np.zeros(len(loaded))
    probabilities[finite] = np.exp(log_post[finite] - log_post[finite].max())
    probabilities /= probabilities.sum()
    forecasts = np.array([r.after[s] for r, (*_, s) in zip(results, loaded, strict=True)])
    averaged = float(np.sum(probabilities * forecasts))
    values, weights = [], []
    for r, p, (_, model, _, s) in zip(results, probabilities, loaded, strict=True):
        column = r.posterior.outputs[f"p_reached:{list(model.stages)[s]}"].to_numpy(float)
        values.append(column)
        weights.append(p * r.posterior.weights)
    values, weights = np.concatenate(values), np.concatenate(weights)
    steps = _steps(loaded, results, priors)
    keep = np.isfinite(values) & (weights > 0)
    low, high = weighted_quantile(values[keep], weights[keep], [0.05, 0.95])
    return WeighResult(
        title=rivals.title,
        question=rivals.question,
        names=[m.name for m, *_ in loaded],
        priors=priors / priors.sum(),
        log_evidence=log_z,
        evidence_se=se,
        probabilities=probabilities,
        forecasts=forecasts,
        averaged=averaged,
        interval=(float(low), float(high)),
        steps=steps,
        worlds=[len(r.posterior.prior_worlds) for r in results],
        seed=seed,
        dates={t: results[0].date(t) for t in steps["time"]},
        methods=[_method_words(r) for r in results],
    )


def _dated_events(obs) -> list[float]:
    """The times of a record's events: its stage entries after the start and its switches."""
    times = [t for _, t in obs.path[1:]]
    times += [t for events in obs.switches.values() for t, _ in events if t > 0.0]
    return sorted(times)


def _same_dates(loaded) -> None:
    """Refuse records that do not describe the same dated events (and end the same day)."""
    (first, model, obs, _), *others = loaded
    reference = (obs.as_of, sorted(set(_dated_events(obs))))
    for m, _, other, _ in others:
        mine = (other.as_of, sorted(set(_dated_events(other))))
        if mine == reference:
            continue
        one, two = set(reference[1]) | {reference[0]}, set(mine[1]) | {mine[0]}
        differ = sorted(one ^ two)
        raise EscalateError(
            f"the records of {first.name} and {m.name} do not describe the same dated events "
            "(evidence compares models only on the same data): "
            + ", ".join(
                f"{model.when(t)} ({first.name if t in one else m.name} only)" for t in differ
            )
        )


def _method_words(result) -> str:
    """A nowcast's method as the table shows it."""
    return "exact" if result.particles is None else f"particles ({result.particles} per world)"


def _evidence_se(posterior, particle_sd: float | None = None) -> float:
    """The standard error of the log evidence, by the delta method on the mean likelihood of
    the prior worlds (0 for one world: exact). The worlds are a Latin hypercube: its error is
    that of the likelihood's part not explained by each parameter alone (the main effects,
    estimated in sqrt(W) bins of each parameter and removed one parameter after another), not
    the likelihood's whole spread (Stein 1987). Worlds given with unequal weights (a worlds
    file) are no hypercube: their error is that of independent draws, 1 / ESS - 1 / W.
    Particle estimates of the likelihoods (log-likelihood sd ``particle_sd``) add their own
    relative variance, exp(sd^2) - 1, over the worlds' ESS."""
    worlds_se = _worlds_evidence_se(posterior)
    if particle_sd is None or not math.isfinite(particle_sd):
        return worlds_se
    noise = math.expm1(particle_sd**2) / max(posterior.importance_ess, 1.0)
    return float(math.sqrt(worlds_se**2 + noise))


def _worlds_evidence_se(posterior) -> float:
    """:func:`_evidence_se` of the worlds alone."""
    worlds, log_l = posterior.prior_worlds, posterior.prior_log_likelihood
    n = len(worlds)
    if n <= 1 or log_l is None or not np.isfinite(log_l).any():
        return 0.0
    weights = posterior.prior_weights
    if not np.allclose(weights, 1.0 / n):
        return float(math.sqrt(max(1.0 / posterior.importance_ess - 1.0 / n, 0.0)))
    likelihood = np.exp(log_l - np.max(log_l))
    residual = likelihood - likelihood.mean()
    bins = max(1, round(math.sqrt(n)))
    for column in worlds.columns:
        for members in np.array_split(np.argsort(worlds[column].to_numpy(float)), bins):
            residual[members] -= residual[members].mean()
    return float(math.sqrt(np.var(residual) / n) / likelihood.mean())


def _steps(loaded, results, priors) -> pd.DataFrame:
    """Per time with news (in any model's record; they coincide): each model's log predictive
    probability of the step, the model probabilities after it, and the log Bayes factor of
    each model against the first."""
    names = [m.name for m, *_ in loaded]
    by_time: dict[float, dict] = {}
    for name, result in zip(names, results, strict=True):
        for step in result.steps:
            row = by_time.setdefault(step["time"], {"time": step["time"]})
            row[f"log_predictive:{name}"] = step["log_predictive"]
            row[f"news:{name}"] = "; ".join(step["events"])
    rows = []
    with np.errstate(divide="ignore"):
        running = np.log(priors / priors.sum())
    for t in sorted(by_time):
        row = by_time[t]
        logs = np.array([row.get(f"log_predictive:{n}", 0.0) for n in names])
        running = running + logs
        finite = np.isfinite(running)
        p = np.zeros(len(names))
        p[finite] = np.exp(running[finite] - running[finite].max())
        p /= p.sum()
        for name, value in zip(names, p, strict=True):
            row[f"probability:{name}"] = float(value)
        for name, value in zip(names[1:], logs[1:], strict=True):
            row[f"log_bayes_factor:{name}:{names[0]}"] = float(value - logs[0])
        rows.append(row)
    return pd.DataFrame(rows)
