"""Keeping score (docs/forecasting.md): the forecasts the tool would have issued at each origin
of a record, scored against what the record says happened.

At each origin the forecast is the nowcast on the record cut there (its events up to the
origin); each question ("STAGE reached by T", "TRIGGER switched on by T") still open at the
origin and settled by the record is scored with the Brier score (p - y)^2 and the logarithmic
score -log p(y) (scoringrules), and each stage not yet reached with the window CRPS of its
first-entry time, the integral over the window from the origin to the record's end of
(F(t) - 1{t >= entry})^2: F is the forecast's exact curve, integrated by Gauss-Legendre
quadrature between the record's entry times. The reference is the scenario's forecast from the
start, never updated, scored on the same questions: skill = 1 - score / reference score.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from escalate.engine.numbers import finite_or_none
from escalate.errors import EscalateError
from escalate.forecast.observations import Observations, cut_observations, read_observations

__all__ = ["BacktestResult", "backtest"]

NODES = 8  # Gauss-Legendre nodes on each piece of a CRPS window
ROW_COLUMNS = ["origin", "question", "forecast", "outcome", "reference_forecast"]
PIECES_PER_WINDOW = 6  # a window (or its part between entries) in at least this many pieces


@dataclass
class BacktestResult:
    """Scores per (origin, question) and per (origin, stage), their means and skills, and the
    surprise of each piece of news (see the module docstring).

    ``rows``: origin, question, forecast, outcome, Brier and log score, the reference's;
    ``crps``: origin, stage, entry (nan: not entered by the record's end), CRPS, the
    reference's; ``news``: the record's news steps with ``p_by`` and ``unexpected``.
    """

    scenario: str
    end: float
    time_unit: str
    start_date: str | None
    origins: list[float]
    rows: pd.DataFrame
    crps: pd.DataFrame
    news: list[dict]
    worlds: int
    seed: int
    overrides: dict[str, float] = field(default_factory=dict)
    method: str = "exact"  # the nowcasts' (docs/forecasting.md)
    particles: int | None = None

    def date(self, time: float) -> str | None:
        from escalate.scenario.model import date_of

        day = date_of(time, self.start_date, self.time_unit)
        return None if day is None else day.isoformat()

    def when(self, time: float) -> str:
        from escalate.scenario.model import when

        return when(time, self.start_date, self.time_unit)

    def summary(self) -> dict[str, Any]:
        """Mean scores (lower is better), the reference's, the skills, and in words what the
        news bought and which question scored worst."""
        rows, crps = self.rows, self.crps
        out: dict[str, Any] = {"questions_scored": len(rows), "origins": len(self.origins)}
        for score, frame in (("brier", rows), ("log_score", rows), ("crps", crps)):
            mean = float(frame[score].mean()) if len(frame) else math.nan
            reference = float(frame[f"reference_{score}"].mean()) if len(frame) else math.nan
            out[score] = finite_or_none(mean)
            out[f"reference_{score}"] = finite_or_none(reference)
            skill = 1.0 - mean / reference if reference > 0 else math.nan
            out[f"{score}_skill"] = finite_or_none(skill)
        if len(rows):
            worst = rows.loc[rows["brier"].idxmax()]
            out["worst"] = {
                "origin": float(worst["origin"]),
                "origin_date": self.date(float(worst["origin"])),
                "question": worst["question"],
                "forecast": float(worst["forecast"]),
                "outcome": int(worst["outcome"]),
                "brier": float(worst["brier"]),
            }
        measured = [step for step in self.news if step["p_by"] == step["p_by"]]  # not nan
        least = min(measured, key=lambda step: step["p_by"], default=None)
        if least is not None:
            out["least_expected"] = {
                "time": least["time"],
                "date": self.date(least["time"]),
                "news": least["events"],
                "p_by": least["p_by"],
                "unexpected": least["unexpected"],
            }
        out["answer"] = self.answer(out)
        return out

    def answer(self, summary: dict | None = None) -> str:
        """The backtest in a sentence or two: what updating on the news did to the Brier score,
        and the worst-scored question."""
        s = summary or self.summary()
        if not s["questions_scored"]:
            return "No question was open at an origin and settled by the record."
        brier, reference = s["brier"], s["reference_brier"]
        verb = "improved" if brier < reference else "worsened" if brier > reference else "left"
        said = (f"Updating on the news {verb} the mean Brier score from {reference:.3f} "
                f"(the forecast from the start, never updated) to {brier:.3f}")  # fmt: skip
        if s.get("brier_skill") is not None:
            said += f" (skill {s['brier_skill']:+.2f})"
        worst = s.get("worst")
        if worst:
            said += (
                f". Worst: {worst['question']} from {self.when(worst['origin'])}, forecast "
                f"{worst['forecast']:.1%}, outcome {'yes' if worst['outcome'] else 'no'}"
            )
        least = s.get("least_expected")
        if least:
            said += (
                f". Least expected news: {'; '.join(least['news'])} at "
                f"{self.when(least['time'])} ({least['p_by']:.1%} by then)"
            )
        return said + "."

    def to_dict(self) -> dict[str, Any]:
        def records(frame: pd.DataFrame) -> list[dict]:
            out = []
            for row in frame.to_dict("records"):
                row = {k: finite_or_none(v) if isinstance(v, float) else v for k, v in row.items()}
                row["origin_date"] = self.date(row["origin"])
                out.append(row)
            return out

        return {
            "scenario": self.scenario,
            "end": self.end,
            "end_date": self.date(self.end),
            "start_date": self.start_date,
            "time_unit": self.time_unit,
            "method": self.method,
            "particles": self.particles,
            "seed": self.seed,
            "worlds": self.worlds,
            "overrides": self.overrides,
            "origins": [{"time": t, "date": self.date(t)} for t in self.origins],
            "rows": records(self.rows),
            "crps": records(self.crps),
            "news": [
                {
                    "time": step["time"],
                    "date": self.date(step["time"]),
                    "news": step["events"],
                    "p_by": finite_or_none(step["p_by"]),
                    "unexpected": step["unexpected"],
                    "evidence_share": finite_or_none(step["evidence_share"]),
                }
                for step in self.news
            ],
            "summary": self.summary(),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def plot_forecasts(self):
        """Each question's forecast across origins, the reference's, the outcome marked."""
        from escalate.output import plots

        return plots.backtest_forecasts(self)

    def plot_reliability(self):
        """Forecast against observed frequency in bins (from 20 scored questions on)."""
        from escalate.output import plots

        return plots.reliability(self)


def backtest(
    scenario,
    record: Observations | str | Path,
    *,
    origins: list[float] | None = None,
    every: float | None = None,
    questions: list[str] | None = None,
    worlds: int | None = None,
    seed: int = 0,
    moves: int = 3,
    overrides: dict[str, float] | None = None,
    worlds_from: pd.DataFrame | str | Path | None = None,
    scheduler: Any = None,
    method: str = "auto",
    particles: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Score the forecasts the scenario would have issued at each origin of ``record``.

    Parameters
    ----------
    scenario : Scenario
        Any valid scenario: the nowcast's method (exact where every timing is exponential,
        particles otherwise) serves every origin.
    record : Observations, or the path of an observations file
        What happened up to its ``as_of``, the record's end.
    origins : list of float, optional
        Times (in the scenario's unit) at which to issue a forecast, each before the record's
        end; default: the start and each time the record has news.
    every : float, optional
        Instead of ``origins``: the start and every ``every`` time units.
    questions : list of str, optional
        ``p_reached:STAGE@T`` or ``p_fired:TRIGGER@T`` with T within the record; default:
        every stage not yet reached at the origin, by the record's end.
    worlds, seed, moves, overrides, worlds_from, scheduler, method, particles
        As :func:`escalate.forecast.nowcast.nowcast`: every origin starts from the same
        worlds (and the same particles per world).
    progress : callable, optional
        Called with a line of text as the backtest proceeds.

    Returns
    -------
    BacktestResult
    """
    from escalate.engine.cluster import connect
    from escalate.forecast.nowcast import PRIOR_WORLDS, evaluator, nowcast
    from escalate.forecast.posterior import fit_posterior

    model = scenario
    obs = record if isinstance(record, Observations) else read_observations(record, model)
    end = float(obs.as_of)
    say = progress or (lambda line: None)
    stage_names, trigger_names = list(model.stages), list(model.triggers)
    times = _origins(model, obs, origins, every)
    asked = _questions(model, obs, questions)
    # the curves each origin needs: p_fired only when a question asks for it
    ahead = "by" if asked and any(kind == "p_fired" for _, kind, _, _ in asked) else "stages"
    if worlds is None and worlds_from is None:
        worlds = PRIOR_WORLDS
    entries = _first_entries(obs)
    fired = _first_onsets(obs)
    end_label = model.when(end) if model.start_date is not None else f"{end:g}"
    plan = {o: _plan(o, end, end_label, entries, fired, asked, stage_names) for o in times}
    rows, crps = [], []
    with connect(scheduler) as client:
        common = dict(worlds=worlds, seed=seed, moves=moves, overrides=overrides,
                      worlds_from=worlds_from, scheduler=client, method=method,
                      particles=particles)  # fmt: skip
        say(f"the whole record: its news and their surprise ({len(times)} origins to score)")
        whole = nowcast(model, obs, progress=say, **common)
        evaluate = evaluator(model, dict(overrides or {}), end, None, 1, client,
                             whole.particles)  # fmt: skip
        prior, weights0 = whole.posterior.prior_worlds, whole.posterior.prior_weights
        every_node = sorted({t for o in times for t in plan[o][0]})
        say("the reference: the forecast from the start, never updated")
        _, reference = evaluate(prior, None, ahead, end, every_node)
        reference_curve = _curve(reference, weights0, stage_names, trigger_names)
        for o in times:
            nodes, open_questions, open_stages = plan[o]
            if not open_questions and not open_stages:
                continue
            say(f"the forecast issued at {model.when(o)}")
            cut = cut_observations(obs, o)
            # the nowcast's update on the record as known then (its forecasts are these curves)
            posterior = fit_posterior(
                model, prior, lambda w, cut=cut: evaluate(w, cut, "none"), seed=seed,
                moves=moves, prior_weights=weights0 if worlds_from is not None else None,
                evidence=f"the record up to {model.when(o)}",
            )  # fmt: skip
            distinct, where = np.unique(posterior.worlds.to_numpy(float), axis=0,
                                        return_inverse=True)  # fmt: skip
            frame = pd.DataFrame(distinct, columns=posterior.worlds.columns)
            _, out = evaluate(frame, cut, ahead, end, nodes)
            out = out.iloc[where.ravel()].reset_index(drop=True)
            curve = _curve(out, posterior.weights, stage_names, trigger_names)
            for question, kind, index, t in open_questions:
                rows.append({
                    "origin": o, "question": question, "forecast": curve(kind, index, t),
                    "outcome": _outcome(kind, index, t, entries, fired),
                    "reference_forecast": reference_curve(kind, index, t),
                })  # fmt: skip
            for s in open_stages:
                entry = entries.get(s, math.inf)
                forecast_crps, reference_crps = (
                    _window_crps(functools.partial(f, "p_reached", s), o, end, entry, entries)
                    for f in (curve, reference_curve)
                )
                crps.append({"origin": o, "stage": stage_names[s],
                             "entry": entry if entry <= end else math.nan,
                             "crps": forecast_crps, "reference_crps": reference_crps})  # fmt: skip
    return BacktestResult(
        scenario=model.scenario,
        end=end,
        time_unit=model.time_unit,
        start_date=None if model.start_date is None else str(model.start_date),
        origins=times,
        rows=_scored(pd.DataFrame(rows, columns=ROW_COLUMNS)),
        crps=pd.DataFrame(crps, columns=["origin", "stage", "entry", "crps", "reference_crps"]),
        news=whole.steps,
        worlds=len(prior),
        seed=seed,
        overrides=dict(overrides or {}),
        method=whole.method,
        particles=whole.particles,
    )


def _origins(model, obs: Observations, origins, every) -> list[float]:
    """The origins: given, every ``every``, or the start and each time with news; each must
    lie in [0, the record's end)."""
    end = obs.as_of
    if origins is not None and every is not None:
        raise EscalateError("give origins or every, not both")
    if every is not None:
        if not every > 0:
            raise EscalateError.about("{every} must be positive, got {:g}", every)
        times = list(np.arange(0.0, end, every))
    elif origins is not None:
        times = sorted({float(t) for t in origins})
        outside = [t for t in times if not 0.0 <= t < end]
        if outside:
            raise EscalateError.about(
                "{origins} must lie within the record, from its start to before its end ({}): "
                "got {}",
                model.when(end),
                ", ".join(model.when(t) for t in outside),
            )
    else:
        news = {t for _, t in obs.path[1:]}
        news |= {t for events in obs.switches.values() for t, _ in events if t > 0.0}
        times = sorted({0.0} | {t for t in news if t < end})
    return [float(t) for t in times]


def _questions(model, obs: Observations, questions) -> list[tuple[str, str, int, float]] | None:
    """The asked questions as (name, kind, index, time), checked; None: the default (every
    stage not yet reached at the origin, by the record's end)."""
    from escalate.engine.metrics import parse_metric

    if questions is None:
        return None
    out = []
    for question in questions:
        base, _, when = question.partition("@")
        kind, target, _, _ = parse_metric(base, model=model)
        if kind not in ("p_reached", "p_fired") or not when:
            raise EscalateError.about(
                "{questions} {!r}: a question is p_reached:STAGE@T or p_fired:TRIGGER@T",
                question,
            )
        try:
            at = float(when) if when.replace(".", "", 1).isdigit() else model.time_of(when)
        except ValueError as exc:
            raise EscalateError.about("{questions} {!r}: {}", question, exc) from None
        names = list(model.stages) if kind == "p_reached" else list(model.triggers)
        out.append((question, kind, names.index(target), float(at)))
    return out


def _first_entries(obs: Observations) -> dict[int, float]:
    first: dict[int, float] = {}
    for stage, time in obs.path:
        first.setdefault(stage, time)
    return first


def _first_onsets(obs: Observations) -> dict[int, float]:
    first: dict[int, float] = {}
    for k, events in obs.switches.items():
        for time, on in events:
            if on:
                first.setdefault(k, time)
                break
    return first


def _plan(origin, end, end_label, entries, fired, asked, stage_names):
    """At ``origin``: the times the forecast's curve is read at, the questions still open
    (settled by the record's end), and the stages not yet reached (their window CRPS)."""
    open_stages = [s for s in range(len(stage_names)) if entries.get(s, math.inf) > origin]
    if asked is None:
        open_questions = [(f"p_reached:{stage_names[s]}@{end_label}", "p_reached", s, end)
                          for s in open_stages]  # fmt: skip
    else:
        open_questions = [
            (name, kind, index, t)
            for name, kind, index, t in asked
            if origin < t <= end  # not yet settled at the origin:
            and (entries if kind == "p_reached" else fired).get(index, math.inf) > origin
        ]
    nodes = set(_quadrature_nodes(origin, end, entries))
    nodes |= {t for _, _, _, t in open_questions} | {end}
    return sorted(nodes), open_questions, open_stages


def _pieces(origin, end, entries) -> list[tuple[float, float]]:
    """The window cut at the record's entry times, each part in pieces."""
    cuts = sorted({origin, end} | {t for t in entries.values() if origin < t < end})
    pieces = []
    for a, b in itertools.pairwise(cuts):
        count = max(1, math.ceil(PIECES_PER_WINDOW * (b - a) / (end - origin)))
        edges = np.linspace(a, b, count + 1)
        pieces += list(itertools.pairwise(edges.tolist()))
    return pieces


def _quadrature_nodes(origin, end, entries) -> list[float]:
    nodes, _ = np.polynomial.legendre.leggauss(NODES)
    return [float((a + b) / 2 + (b - a) / 2 * x) for a, b in _pieces(origin, end, entries)
            for x in nodes]  # fmt: skip


def _window_crps(curve, origin, end, entry, entries) -> float:
    """The integral over the window of (F(t) - 1{t >= entry})^2, by Gauss-Legendre on each
    piece of :func:`_pieces` (the record's entry times are piece ends: the integrand is
    smooth within a piece), at the nodes the forecast's curve was read at."""
    x, w = np.polynomial.legendre.leggauss(NODES)
    total = 0.0
    for a, b in _pieces(origin, end, entries):
        for xi, wi in zip(x, w, strict=True):
            t = float((a + b) / 2 + (b - a) / 2 * xi)
            total += (b - a) / 2 * wi * (curve(t) - (1.0 if t >= entry else 0.0)) ** 2
    return float(total)


def _curve(out: pd.DataFrame, weights, stage_names, trigger_names):
    """``curve(kind, index, t)``: the weighted mean of the worlds' forecast of ``kind``
    (p_reached or p_fired) of ``index`` by ``t``, one of ``nodes``."""
    from escalate.analysis.weights import weighted_mean

    cache: dict = {}

    def curve(kind: str, index: int, t: float) -> float:
        name = (stage_names if kind == "p_reached" else trigger_names)[index]
        column = f"{kind}:{name}@{t:.17g}"
        if column not in cache:
            cache[column] = float(weighted_mean(out[column], weights)[0])
        return cache[column]

    return curve


def _outcome(kind, index, t, entries, fired) -> int:
    first = (entries if kind == "p_reached" else fired).get(index, math.inf)
    return int(first <= t)


def _scored(rows: pd.DataFrame) -> pd.DataFrame:
    """The Brier and log scores of each row and of its reference (scoringrules)."""
    import scoringrules as sr

    y = rows["outcome"].to_numpy(float)
    for prefix, column in (("", "forecast"), ("reference_", "reference_forecast")):
        p = np.clip(rows[column].to_numpy(float), 0.0, 1.0)
        rows[f"{prefix}brier"] = np.asarray(sr.brier_score(obs=y, fct=p), float)  # (p - y)^2
        with np.errstate(divide="ignore"):
            # -log p(y); a certain forecast that came true scores -0.0: read as 0
            log_score = np.asarray(sr.log_score(obs=y, fct=p), float)
            rows[f"{prefix}log_score"] = np.maximum(log_score, 0.0)
    return rows
