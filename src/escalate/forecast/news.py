"""The news one step at a time, and how much each step surprised the forecast before it.

A nowcast replays its record: at each time something was observed (and at as_of, for what did
not happen since), the prior worlds are reweighted on everything known by then. Each step also
says how probable it was under the forecast issued just before it: ``p_by``, the probability
that its event happens no later than it did (a stage entry: that stage entered by then; a
trigger switching on: switched on by then; a quiet span, or the start itself: the probability
of what was seen, the step's predictive probability; a step whose only news is a trigger
switching off is not measured: nan). A step under ``UNEXPECTED`` is marked
unexpected. The log evidence is the sum of the steps' log predictive probabilities (each the
log of the weighted mean likelihood ratio of the step); each step's share is shown.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import logsumexp

from escalate.forecast.observations import Observations, cut_observations
from escalate.forecast.posterior import ess_of, normalized

__all__ = ["UNEXPECTED", "news_of", "replay"]

UNEXPECTED = 0.05  # a step the forecast before it gave less than this is marked unexpected


def news_of(model, obs: Observations) -> dict[float, list[str]]:
    """What was observed at each time after the start, in words, by time."""
    stages, triggers = list(model.stages), list(model.triggers)
    news: dict[float, list[str]] = {}
    for stage, time in obs.path[1:]:
        news.setdefault(time, []).append(f"reached {model.label(stages[stage])}")
    for k, events in obs.switches.items():
        for time, on in events:
            if time > 0.0:
                news.setdefault(time, []).append(
                    f"{model.label(triggers[k])}: {'on' if on else 'off'}"
                )
    return news


def _at_start(model, obs: Observations) -> str:
    """The state observed at t = 0, in words."""
    triggers = list(model.triggers)
    known = obs.known_bits(0.0, after=True)
    states = [f"{model.label(triggers[k])}: {'on' if known >> k & 1 else 'off'}"
              for k in sorted(obs.switches)]  # fmt: skip
    start = model.label(list(model.stages)[obs.path[0][0]])
    return "; ".join([f"started in {start}", *states])


def replay(
    model,
    obs: Observations,
    prior,
    weights0: np.ndarray,
    evaluate: Callable,
    at_as_of: tuple[np.ndarray, object],
    say: Callable[[str], None],
) -> list[dict]:
    """The steps of the news in ``obs`` (see the module docstring), each a dict: ``time``,
    ``events`` (in words), ``p_reached`` per stage given everything up to then (the prior
    worlds reweighted), ``ess``, ``p_by``, ``unexpected``, ``log_predictive`` and
    ``evidence_share``. ``evaluate(worlds, obs, ahead, horizon)`` gives each world's
    log-likelihood and forecast; ``at_as_of``, the pair already computed for all of ``obs``."""
    with np.errstate(divide="ignore"):
        log_w0 = np.log(weights0)
    news = news_of(model, obs)
    initial = cut_observations(obs, 0.0)
    log_l0, out0 = evaluate(prior, initial)
    times = sorted(news)
    if np.any(np.abs(log_l0) > 1e-12):  # the start itself was news (observed triggers)
        news[0.0] = [_at_start(model, obs), *news.get(0.0, [])]
        times = sorted(news)
    if obs.as_of not in news:
        times.append(obs.as_of)
        news[obs.as_of] = ["nothing else up to as_of"]
    steps = []
    before_obs, before_log_l = None, np.zeros(len(weights0))  # the prior: nothing known
    for t in times:
        say(f"the news up to {model.when(t)}")
        if t == obs.as_of:
            log_l, out = at_as_of
        elif t == 0.0:
            log_l, out = log_l0, out0
        else:
            log_l, out = evaluate(prior, cut_observations(obs, t))
        w, _ = normalized(log_l + log_w0)
        log_predictive = float(logsumexp(log_l + log_w0) - logsumexp(before_log_l + log_w0))
        p_by = _p_by(model, obs, t, prior, evaluate, before_obs or initial, before_log_l + log_w0)
        if p_by is None and not _switched_off(obs, t):
            # the start, or a quiet span: the probability of what was seen
            p_by = math.exp(log_predictive) if math.isfinite(log_predictive) else 0.0
        elif p_by is None:  # only a switch off: its likelihood is a density, not a chance
            p_by = math.nan
        steps.append(
            {
                "time": t,
                "events": news[t],
                "p_reached": _weighted(out, [f"p_reached:{s}" for s in model.stages], w),
                "ess": ess_of(w),
                "p_by": p_by,
                "unexpected": bool(p_by < UNEXPECTED),  # nan (not measured): False
                "log_predictive": log_predictive,
            }
        )
        before_obs, before_log_l = cut_observations(obs, t), log_l
    total = sum(step["log_predictive"] for step in steps)
    shared = total != 0 and math.isfinite(total)
    for step in steps:  # + 0.0: a quiet span that changed nothing has share 0, not -0
        step["evidence_share"] = step["log_predictive"] / total + 0.0 if shared else None
    return steps


def _p_by(model, obs, t, prior, evaluate, before: Observations, log_w) -> float | None:
    """The smallest, over the stage entries and trigger onsets at ``t``, of the probability
    that it happens by ``t`` under the forecast issued at ``before.as_of`` (the worlds
    weighted on ``before``); None where ``t`` holds neither (the start, a quiet span)."""
    stages, triggers = list(model.stages), list(model.triggers)
    asked = [f"p_reached:{stages[s]}" for s, time in obs.path[1:] if time == t]
    asked += [f"p_fired:{triggers[k]}" for k, events in obs.switches.items()
              for time, on in events if time == t and on and time > 0.0]  # fmt: skip
    if not asked or t == 0.0:
        return None
    _, out = evaluate(prior, before, "by", t)
    w, _ = normalized(log_w)
    return float(min(_weighted(out, asked, w)))


def _switched_off(obs: Observations, t: float) -> bool:
    return any(time == t and not on for events in obs.switches.values() for time, on in events)


def _weighted(outputs, columns: list[str], weights: np.ndarray) -> np.ndarray:
    """The weighted mean of each of ``columns`` (worlds the news rules out have no figures and
    no weight)."""
    from escalate.analysis.weights import weighted_mean

    return np.array([weighted_mean(outputs[c], weights)[0] for c in columns])
