"""What nowcast says of the worlds, against conjugate answers (issue 32): the log evidence,
the tempered posterior of a long record, the update table step by step, and the step at the
start."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

import escalate
from escalate.forecast.observations import Observations

SHAPE, RATE = 4.0, 200.0  # the gamma prior of the rate lam: mean 0.02, sd 0.01
PRIOR = f"lam: {{value: 0.02, uncertain: {{dist: gamma, mean: {SHAPE / RATE}, sd: {0.01}}}}}"


def _gamma_log_marginal(exits: int, exposure: float) -> float:
    """log of E[lam^n e^(-lam E)] under Gamma(SHAPE, RATE): RATE^a G(a + n) / (G(a) (RATE +
    E)^(a + n))."""
    return (
        SHAPE * math.log(RATE) + special.gammaln(SHAPE + exits) - special.gammaln(SHAPE)
        - (SHAPE + exits) * math.log(RATE + exposure)
    )  # fmt: skip


def test_the_log_evidence_is_the_gamma_poisson_marginal():
    """One exit after exposure E = 25: the evidence is a b^a / (b + E)^(a + 1). The worlds
    are a Latin hypercube, whose mean errs at most as much as independent draws' (Owen 1997,
    up to n / (n - 1)): 4 of the i.i.d. standard error of the mean likelihood bound it."""
    model = escalate.loads(
        f"scenario: g\nhorizon: 100\nstart: a\nparameters:\n  {PRIOR}\n"
        "stages: {a: {}, b: {terminal: true}}\ntransitions:\n  - {from: a, to: b, rate: lam}\n"
    )
    result = escalate.nowcast(model, Observations(40.0, [(0, 0.0), (1, 25.0)]), worlds=2000,
                              seed=3)  # fmt: skip
    expected = _gamma_log_marginal(1, 25.0)
    assert expected == pytest.approx(math.log(SHAPE * RATE**SHAPE / (RATE + 25) ** (SHAPE + 1)))
    lam = result.posterior.prior_worlds["lam"].to_numpy()
    likelihood = lam * np.exp(-25.0 * lam)
    se = likelihood.std(ddof=1) / math.sqrt(len(lam)) / likelihood.mean()
    assert abs(result.posterior.log_evidence - expected) < 4 * se, (se, expected)
    assert not result.posterior.powers  # weighted at once: its ESS is the importance ESS
    assert result.posterior.ess == pytest.approx(result.posterior.importance_ess)


CYCLE = (
    f"scenario: cycle\nhorizon: 3000\nstart: a\nparameters:\n  {PRIOR}\n"
    "stages: {a: {}, b: {}}\n"
    "transitions:\n  - {from: a, to: b, rate: lam}\n  - {from: b, to: a, rate: 1}\n"
)


@pytest.mark.slow
def test_a_long_record_tempers_to_the_conjugate_posterior():
    """Six trips a -> b -> a, 250 days in a and 1 in b each: the posterior of lam is
    Gamma(a + 6, b + 1500) (b's exit does not depend on lam) and the evidence
    e^-6 E[lam^6 e^(-1500 lam)]. Plain importance weights keep under a tenth of the worlds, so
    the update tempers and moves. Tolerances: 4 standard deviations of each figure's error
    over seeds 1-8 (1.3e-4 for the mean, 0.08 for the log evidence)."""
    path, t = [(0, 0.0)], 0.0
    for _ in range(6):
        t += 250.0
        path.append((1, t))
        t += 1.0
        path.append((0, t))
    result = escalate.nowcast(escalate.loads(CYCLE), Observations(t, path), worlds=300, seed=1)
    p = result.posterior
    assert len(p.powers) >= 2 and p.acceptance > 0.2
    assert p.importance_ess < 0.1 * 300 and p.ess == pytest.approx(300)
    lam = p.worlds["lam"].to_numpy()
    posterior = stats.gamma(SHAPE + 6, scale=1 / (RATE + 1500))
    assert abs(np.sum(p.weights * lam) - posterior.mean()) < 4 * 1.3e-4
    assert abs(p.log_evidence - (-6.0 + _gamma_log_marginal(6, 1500.0))) < 4 * 0.08
    assert p.distinct == len(np.unique(lam)) and p.distinct > 0.9 * 300
    assert not p.warnings


def test_the_update_table_step_by_step():
    """a -> b -> c -> d at lam each (lam gamma): entries at days 10 and 30, as_of 40. Each
    step reweights the prior worlds by its record's likelihood (lam e^-10lam; lam^2 e^-30lam;
    lam^2 e^-40lam) and forecasts d by day 100 from there (Erlang(2) over 90 days; exponential
    over 70 and 60): the table agrees with these to 1e-9."""
    model = escalate.loads(
        f"scenario: steps\nhorizon: 100\nstart: a\nparameters:\n  {PRIOR}\n"
        "stages: {a: {}, b: {}, c: {}, d: {terminal: true}}\n"
        "transitions:\n  - {from: a, to: b, rate: lam}\n  - {from: b, to: c, rate: lam}\n"
        "  - {from: c, to: d, rate: lam}\n"
    )
    result = escalate.nowcast(model, Observations(40.0, [(0, 0.0), (1, 10.0), (2, 30.0)]),
                              worlds=400, seed=2)  # fmt: skip
    lam = result.posterior.prior_worlds["lam"].to_numpy()
    steps = [
        (lam * np.exp(-10 * lam), stats.gamma(2, scale=1 / lam).cdf(90.0)),
        (lam**2 * np.exp(-30 * lam), -np.expm1(-70 * lam)),
        (lam**2 * np.exp(-40 * lam), -np.expm1(-60 * lam)),
    ]
    table = result.updates("d")
    assert list(table["time"]) == [10.0, 30.0, 40.0]
    assert list(table["news"]) == ["reached b", "reached c", "nothing else up to as_of"]
    before = np.mean(stats.gamma(3, scale=1 / lam).cdf(100.0))
    assert table["before"].iloc[0] == pytest.approx(before, rel=1e-9)
    for row, (likelihood, forecast) in zip(table.to_dict("records"), steps, strict=True):
        w = likelihood / likelihood.sum()
        assert row["after"] == pytest.approx(np.sum(w * forecast), rel=1e-9)
        assert row["ess"] == pytest.approx(1 / np.sum(w**2), rel=1e-9)
    assert table["before"].iloc[1:].tolist() == table["after"].iloc[:-1].tolist()


def test_an_entry_at_the_start_is_one_step_with_the_start():
    """x seen on at the start (initial 0.3) and b entered at t = 0: the update table has one
    step at t = 0 that says both, and its likelihood is 0.3 times a -> b's hazard."""
    model = escalate.loads(
        f"scenario: zero\nhorizon: 100\nstart: a\nparameters:\n  {PRIOR}\n"
        "stages: {a: {}, b: {}, c: {terminal: true}}\ntriggers: {x: {initial: 0.3}}\n"
        "transitions:\n  - {from: a, to: b, rate: lam}\n  - {from: b, to: c, rate: 0.01}\n"
    )
    obs = Observations(20.0, [(0, 0.0), (1, 0.0)], {0: [(0.0, True)]})
    result = escalate.nowcast(model, obs, worlds=50, seed=1)
    table = result.updates("c")
    assert list(table["time"]) == [0.0, 20.0]
    assert table["news"].iloc[0] == "started in a; x: on; reached b"
    lam = result.posterior.prior_worlds["lam"].to_numpy()
    expected = math.log(np.mean(0.3 * lam)) - 0.01 * 20
    assert result.posterior.log_evidence == pytest.approx(expected, abs=1e-9)
