"""A posterior over worlds, shared by calibrate and nowcast (docs/forecasting.md).

Start from W prior worlds (Latin hypercube) weighted by their likelihood. When the effective
sample size (ESS = 1 / sum w^2) falls below W/2, start again by tempering: powers
0 = phi_0 < ... < phi_K = 1 of the likelihood, each step chosen by bisection so that the ESS of
its incremental weights is W/2; after each step the worlds are resampled (systematic) and moved
by a few random-walk Metropolis steps on the unconstrained scale (log for positive parameters,
logit for those in (0, 1)), the proposal's covariance that of the worlds times 2.38^2 / d.
Every random number comes from the seed: the same seed gives the same posterior, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from escalate.analysis.draws import inside_support
from escalate.analysis.weights import weighted_quantile
from escalate.engine.numbers import count
from escalate.scenario import Scenario

__all__ = [
    "FEW_WORLDS",
    "POOL_WORLDS",
    "Posterior",
    "describe",
    "ess_of",
    "fit_posterior",
    "map_in_parts",
    "normalized",
    "parameter_table",
    "process_pool",
    "spread",
]

# a posterior whose final ESS or distinct worlds fall under this share of its worlds is
# flagged: the figures then rest on a few worlds and move with the seed
FEW_WORLDS = 0.1
# log-likelihood of a set of worlds: (W,) values (-inf: impossible) and the outputs behind them
LogLikelihood = Callable[[pd.DataFrame], tuple[np.ndarray, pd.DataFrame]]


@dataclass
class Posterior:
    """Worlds and their weights after the update.

    ``worlds``: one row per world (a column per uncertain parameter); ``weights`` sum to 1;
    ``outputs``: what the likelihood computed in each world; ``prior_worlds`` and
    ``prior_outputs``: the W prior worlds before any update, ``prior_weights`` theirs (equal
    unless given) and ``prior_log_likelihood`` their log-likelihood. ``ess``: the effective
    sample size 1 / sum w^2 of the final ``weights`` (after tempering they are equal, so it is
    W: read ``distinct`` then); ``importance_ess``: that of the prior worlds weighted by the
    whole likelihood at once, before any tempering (how far the evidence moved them);
    ``distinct``: the distinct worlds in the end (after tempering, resampling duplicates
    worlds and the moves spread them again); ``acceptance``: the Metropolis acceptance rate
    (None without tempering); ``log_evidence``: log of the mean likelihood under the prior;
    ``powers``: the tempering powers phi_1 .. phi_K (empty without tempering).
    """

    worlds: pd.DataFrame
    weights: np.ndarray
    outputs: pd.DataFrame
    prior_worlds: pd.DataFrame
    prior_outputs: pd.DataFrame
    ess: float
    distinct: int
    acceptance: float | None
    log_evidence: float
    powers: list[float] = field(default_factory=list)
    prior_weights: np.ndarray | None = None
    prior_log_likelihood: np.ndarray | None = None
    importance_ess: float | None = None
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # each's support

    def __post_init__(self):
        if self.prior_weights is None:
            self.prior_weights = np.full(len(self.prior_worlds), 1.0 / len(self.prior_worlds))
        if self.importance_ess is None:
            self.importance_ess = self.ess

    @property
    def warnings(self) -> list[str]:
        """What makes the posterior rest on few worlds, in words: a final ESS or a count of
        distinct worlds under ``FEW_WORLDS`` of the worlds (where more than one world was
        weighed)."""
        n, few = len(self.worlds), FEW_WORLDS * len(self.worlds)
        said = []
        if n > 1 and self.ess < few:
            said.append(
                f"the weights leave an effective sample of {self.ess:.1f} of {n:,} worlds "
                f"(under {FEW_WORLDS:.0%}): the posterior rests on a few worlds; worlds "
                "drawn from the prior (not read from a file) would be tempered and moved"
            )
        if n > 1 and self.powers and self.distinct < few:
            said.append(
                f"only {count(self.distinct, 'distinct world')} of {n:,} remain (under "
                f"{FEW_WORLDS:.0%}): the posterior rests on a few worlds; more worlds or "
                "more Metropolis moves would spread it"
            )
        return said

    def describe(self) -> str:
        """The diagnostics in a phrase (:func:`describe`)."""
        return describe(self.diagnostics())

    def diagnostics(self) -> dict[str, Any]:
        """What a reader checks first: worlds, ESS (final, and of the plain importance
        weights), distinct worlds, Metropolis acceptance, log evidence, tempering powers, and
        warnings when the posterior rests on few worlds."""
        return {
            "worlds": len(self.worlds),
            "ess": self.ess,
            "importance_ess": self.importance_ess,
            "distinct_worlds": self.distinct,
            "acceptance": self.acceptance,
            "log_evidence": self.log_evidence,
            "tempering_powers": self.powers,
            "warnings": self.warnings,
        }


def describe(diagnostics: dict[str, Any]) -> str:
    """A posterior's :meth:`Posterior.diagnostics` (or a summary.json holding them) in a
    phrase: ESS, distinct worlds, Metropolis acceptance, log evidence."""
    powers, acceptance = diagnostics.get("tempering_powers") or [], diagnostics.get("acceptance")
    tempered = (
        f" after tempering in {len(powers)} steps (weighting the prior worlds at once would "
        f"have left {diagnostics['importance_ess']:.0f})"
        if powers and diagnostics.get("importance_ess") is not None
        else ""
    )
    return (
        f"ESS {diagnostics['ess']:.0f}{tempered}, "
        + count(diagnostics["distinct_worlds"], "distinct world")
        + (f", Metropolis acceptance {acceptance:.0%}" if acceptance is not None else "")
        + f", log evidence {diagnostics['log_evidence']:.3f}"
    )


def ess_of(weights: np.ndarray) -> float:
    """The effective sample size 1 / sum w^2 of normalized ``weights``."""
    return float(1.0 / np.sum(weights**2))


def normalized(log_w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights proportional to exp(log_w), and log of their mean (for the evidence)."""
    top = np.max(log_w)
    if not np.isfinite(top):
        return np.full(len(log_w), np.nan), -math.inf
    w = np.exp(log_w - top)
    total = w.sum()
    return w / total, float(top + math.log(total / len(log_w)))


def free_scale(x: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Values on the unconstrained scale the sampler moves on: logit on (a, b), log on
    (a, inf), -log on (-inf, b), the values themselves on the real line."""
    a, b = bounds
    x = inside_support(x, a, b)
    if math.isfinite(a) and math.isfinite(b):
        y = (x - a) / (b - a)
        return np.log(y) - np.log1p(-y)
    if math.isfinite(a):
        return np.log(x - a)
    if math.isfinite(b):
        return -np.log(b - x)
    return x


def _supports(model: Scenario, names: list[str]) -> dict[str, tuple[float, float]]:
    """The support of each uncertain parameter's distribution (the others are left out)."""
    out = {}
    for name in names:
        parameter = model.parameters.get(name)
        dist = None if parameter is None else parameter.uncertain
        if dist is not None:
            out[name] = tuple(float(x) for x in dist.scipy(dist.numbers()).support())
    return out


def scale_name(bounds: tuple[float, float]) -> str:
    a, b = bounds
    if math.isfinite(a) and math.isfinite(b):
        return "logit" if (a, b) == (0.0, 1.0) else "scaled logit"
    return "log" if math.isfinite(a) or math.isfinite(b) else "linear"


class _Scales:
    """Each uncertain parameter's unconstrained scale: log on (0, inf), logit on (0, 1),
    a scaled logit on (a, b), the identity on the real line; and the prior's log density
    there (the parameter's density times the Jacobian)."""

    def __init__(self, model: Scenario, names: list[str]):
        self.names = names
        self.dists = []
        self.bounds = []
        for name in names:
            dist = model.parameters[name].uncertain
            frozen = dist.scipy(dist.numbers())
            self.dists.append(frozen)
            self.bounds.append(tuple(float(x) for x in frozen.support()))

    def to_free(self, worlds: pd.DataFrame) -> np.ndarray:
        u = np.empty((len(worlds), len(self.names)))
        for i, (name, bounds) in enumerate(zip(self.names, self.bounds, strict=True)):
            u[:, i] = free_scale(worlds[name].to_numpy(float), bounds)
        return u

    def from_free(self, u: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        """Parameter values of the points ``u``, and log |dx/du| of each point."""
        columns, log_jacobian = {}, np.zeros(len(u))
        for i, (name, (a, b)) in enumerate(zip(self.names, self.bounds, strict=True)):
            v = u[:, i]
            if math.isfinite(a) and math.isfinite(b):
                y = 1.0 / (1.0 + np.exp(-v))
                columns[name] = a + (b - a) * y
                log_jacobian += math.log(b - a) - np.logaddexp(0.0, v) - np.logaddexp(0.0, -v)
            elif math.isfinite(a):
                columns[name] = a + np.exp(v)
                log_jacobian += v
            elif math.isfinite(b):
                columns[name] = b - np.exp(-v)
                log_jacobian += -v
            else:
                columns[name] = v
            # far out on the free scale a value rounds onto a bound: keep it inside
            columns[name] = inside_support(columns[name], a, b)
        return pd.DataFrame(columns), log_jacobian

    def log_prior(self, worlds: pd.DataFrame, log_jacobian: np.ndarray) -> np.ndarray:
        total = log_jacobian.copy()
        for name, frozen in zip(self.names, self.dists, strict=True):
            total += frozen.logpdf(worlds[name].to_numpy(float))
        return total


def _systematic(weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a systematic resampling of ``weights``."""
    n = len(weights)
    positions = (rng.random() + np.arange(n)) / n
    edges = np.cumsum(weights)
    edges[-1] = 1.0
    return np.searchsorted(edges, positions, side="right")


def _next_power(log_likelihood: np.ndarray, phi: float, target_ess: float) -> float:
    """The largest power in (phi, 1] whose incremental weights keep ESS >= target_ess."""

    def ess(step: float) -> float:
        w, _ = normalized(step * log_likelihood)
        return ess_of(w)

    if ess(1.0 - phi) >= target_ess:
        return 1.0
    low, high = 0.0, 1.0 - phi
    for _ in range(60):
        middle = (low + high) / 2
        if ess(middle) >= target_ess:
            low = middle
        else:
            high = middle
    return phi + max(low, 1e-12)


def fit_posterior(
    model: Scenario,
    prior_worlds: pd.DataFrame,
    log_likelihood: LogLikelihood,
    *,
    seed: int,
    moves: int = 3,
    progress: Callable[[str], None] | None = None,
    prior_weights: np.ndarray | None = None,
    evidence: str = "the statements",
) -> Posterior:
    """Weight ``prior_worlds`` by ``log_likelihood``, tempering when the ESS falls below half.

    Parameters
    ----------
    model : Scenario
        Gives each parameter's prior (its ``uncertain`` distribution).
    prior_worlds : pandas.DataFrame
        W worlds drawn from the prior, a column per uncertain parameter.
    log_likelihood : callable
        ``log_likelihood(worlds) -> (values, outputs)``: the log-likelihood of each world
        (-inf for an impossible one) and a frame of what it computed (one row a world).
    seed : int
        Fixes the resampling and the moves.
    moves : int
        Random-walk Metropolis steps per world after each tempering step.
    progress : callable, optional
        Called with a line of text after each step.
    prior_weights : numpy.ndarray, optional
        Weights of ``prior_worlds`` when they are not draws of the prior (the posterior of an
        earlier update, read with ``--worlds-from``). Their density is unknown, so the worlds
        cannot be moved: the posterior is these worlds reweighted, however low its ESS.
    evidence : str
        What the likelihood weighs, for the message when no world is consistent with it.

    Returns
    -------
    Posterior
    """
    names = list(prior_worlds.columns)
    n = len(prior_worlds)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2**31 + 1,)))
    log_l, outputs = log_likelihood(prior_worlds)
    prior_outputs, prior_log_l = outputs, log_l.copy()
    given = prior_weights is not None
    if given:
        prior_weights = np.asarray(prior_weights, float) / np.sum(prior_weights)
        with np.errstate(divide="ignore"):
            weights, log_evidence = normalized(log_l + np.log(prior_weights))
        log_evidence += math.log(n)  # the mean under the given weights, not a plain mean
    else:
        weights, log_evidence = normalized(log_l)
    if not np.isfinite(log_evidence):
        from escalate.errors import EscalateError

        raise EscalateError(f"no prior world is consistent with {evidence} (every likelihood is 0)")
    ess = importance_ess = ess_of(weights)
    bounds = _supports(model, names)
    if ess >= n / 2 or given:
        return Posterior(
            prior_worlds, weights, outputs, prior_worlds, prior_outputs, ess,
            int(np.count_nonzero(weights > 0)), None, log_evidence,
            prior_weights=prior_weights, prior_log_likelihood=prior_log_l, bounds=bounds,
        )  # fmt: skip

    scales = _Scales(model, names)
    worlds = prior_worlds.reset_index(drop=True)
    u = scales.to_free(worlds)
    _, jac = scales.from_free(u)
    log_p = scales.log_prior(worlds, jac)
    phi, log_evidence, powers = 0.0, 0.0, []
    accepted = proposed = 0
    while phi < 1.0:
        new_phi = _next_power(log_l, phi, n / 2)
        weights, log_mean = normalized((new_phi - phi) * log_l)
        log_evidence += log_mean
        phi = new_phi
        powers.append(phi)
        pick = _systematic(weights, rng)
        u, log_l, log_p = u[pick], log_l[pick], log_p[pick]
        outputs = outputs.iloc[pick].reset_index(drop=True)
        worlds = worlds.iloc[pick].reset_index(drop=True)
        cov = np.atleast_2d(np.cov(u, rowvar=False)) * (2.38**2 / len(names))
        cov += np.eye(len(names)) * 1e-12
        for _ in range(moves):
            step = rng.multivariate_normal(np.zeros(len(names)), cov, size=n)
            candidate_u = u + step
            candidate, jac = scales.from_free(candidate_u)
            candidate_p = scales.log_prior(candidate, jac)
            ok = np.isfinite(candidate_p)
            candidate_l = np.full(n, -np.inf)
            candidate_out = outputs.copy()
            if ok.any():
                values, out = log_likelihood(candidate[ok].reset_index(drop=True))
                candidate_l[ok] = values
                candidate_out.loc[ok] = out.to_numpy()
            with np.errstate(invalid="ignore"):
                log_ratio = phi * (candidate_l - log_l) + candidate_p - log_p
            accept = np.log(rng.random(n)) < np.nan_to_num(log_ratio, nan=-np.inf)
            accepted += int(accept.sum())
            proposed += n
            u[accept], log_l[accept], log_p[accept] = (
                candidate_u[accept], candidate_l[accept], candidate_p[accept]
            )  # fmt: skip
            worlds.loc[accept] = candidate.loc[accept].to_numpy()
            outputs.loc[accept] = candidate_out.loc[accept].to_numpy()
        if progress is not None:
            progress(f"tempering: power {phi:.3g}, acceptance {accepted / max(proposed, 1):.0%}")
    distinct = len(np.unique(u, axis=0))
    weights = np.full(n, 1.0 / n)
    return Posterior(
        worlds, weights, outputs, prior_worlds, prior_outputs, ess_of(weights), distinct,
        accepted / max(proposed, 1), log_evidence, powers, prior_log_likelihood=prior_log_l,
        importance_ess=importance_ess, bounds=bounds,
    )  # fmt: skip


def spread(prior, prior_weights, posterior, posterior_weights) -> dict[str, float]:
    """Median and 5-95% of a quantity over the prior worlds and over the posterior ones."""
    out = {}
    for which, values, weights in (
        ("prior", prior, prior_weights),
        ("posterior", posterior, posterior_weights),
    ):
        q5, q50, q95 = weighted_quantile(values, weights, [0.05, 0.5, 0.95])
        out |= {f"{which}_p5": q5, f"{which}_median": q50, f"{which}_p95": q95}
    return out


def parameter_table(posterior: Posterior, names: list[str]) -> pd.DataFrame:
    """Per parameter: prior and posterior median and 5-95%, the posterior mean, and the
    contraction 1 - var_post / var_prior (how much the update narrowed it) on the scale the
    sampler moves on (``contraction_scale``: log for a positive parameter, logit for a
    probability), where a long right tail cannot make a narrower posterior look wider."""
    p = posterior
    rows = []
    for name in names:
        prior_x = p.prior_worlds[name].to_numpy(float)
        post_x = p.worlds[name].to_numpy(float)
        bounds = p.bounds.get(name, (-math.inf, math.inf))
        with np.errstate(divide="ignore", invalid="ignore"):
            free_prior, free_post = free_scale(prior_x, bounds), free_scale(post_x, bounds)
        var_prior = _weighted_variance(free_prior, p.prior_weights)
        var_post = _weighted_variance(free_post, p.weights)
        rows.append(
            {
                "parameter": name,
                **spread(prior_x, p.prior_weights, post_x, p.weights),
                "posterior_mean": float(np.sum(p.weights * post_x)),
                "contraction": 1.0 - var_post / var_prior if var_prior > 0 else 0.0,
                "contraction_scale": scale_name(bounds),
            }
        )
    return pd.DataFrame(rows)


def _weighted_variance(x: np.ndarray, weights: np.ndarray) -> float:
    mean = np.sum(weights * x)
    return float(np.sum(weights * (x - mean) ** 2))


def map_in_parts(function, worlds: pd.DataFrame, pool, workers: int, *arguments):
    """``function(*arguments, part)`` over ``workers`` consecutive parts of ``worlds`` in the
    processes of ``pool`` (here when ``pool`` is None), its results joined in order: each
    element of the returned tuple is a frame or an array, one row per world."""
    if pool is None:
        return function(*arguments, worlds)
    parts = [p for p in np.array_split(np.arange(len(worlds)), workers) if len(p)]
    done = [task.result() for task in
            [pool.submit(function, *arguments, worlds.iloc[p]) for p in parts]]  # fmt: skip
    return tuple(
        pd.concat(pieces, ignore_index=True)
        if isinstance(pieces[0], pd.DataFrame)
        else np.concatenate(pieces)
        for pieces in zip(*done, strict=True)
    )


POOL_WORLDS = 100  # world evaluations below which forking a pool costs more than it saves


def process_pool(workers: int, evaluations: int):
    """A pool of ``workers`` forked processes for ``evaluations`` world evaluations (a world
    under every variant counts once per variant), or None where they are fewer than
    ``POOL_WORLDS`` or forking is not available or not safe (the worlds are then evaluated
    here, one after another): the one rule of every command's pool. Forking is not safe once
    numba has run a parallel kernel on GNU OpenMP in this process (a session that ran the
    simulation or the worlds engine first): the child would abort."""
    import multiprocessing
    import sys
    from concurrent.futures import ProcessPoolExecutor

    if workers < 2 or evaluations < POOL_WORLDS:
        return None
    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    if "numba" in sys.modules:
        try:
            if sys.modules["numba"].threading_layer() == "omp":
                return None
        except ValueError:  # no parallel kernel has run yet
            pass
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
