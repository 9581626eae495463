"""The forward algorithm of nowcast (issue 18): exact likelihoods against closed forms and
one-dimensional integrals, and the conjugate gamma check of DESIGN.md 8.4."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

import escalate
from escalate._nowcast import Observations, forward
from escalate.compile import compile_scenario

C, R, RHO = 0.02, 0.01, 3.0  # x's onset rate, a -> b's rate, and its ratio while x is on
SCENARIO = f"""\
scenario: bf
horizon: 100
start: a
stages: {{a: {{}}, b: {{terminal: true}}}}
triggers:
  x: {{onset: {{rate: {C}}}}}
transitions:
  - {{from: a, to: b, rate: {R}, when: {{x: {RHO}}}}}
"""
A, B, X = 0, 1, 0


def _compiled():
    return compile_scenario(escalate.loads(SCENARIO))


def test_an_unobserved_trigger_is_integrated_out_exactly():
    """Entry into b at T with x unobserved: x either stayed off (e^-cT r e^-rT) or came on at
    some u < T; the forward algorithm gives the integral over u to 1e-8."""
    t_exit = 30.0
    got = forward(_compiled(), Observations(50.0, [(A, 0.0), (B, t_exit)])).log_likelihood

    def on_at(u):
        return C * math.exp(-C * u - R * u) * R * RHO * math.exp(-R * RHO * (t_exit - u))

    integral, _ = integrate.quad(on_at, 0.0, t_exit, epsabs=0, epsrel=1e-13)
    expected = math.exp(-C * t_exit) * R * math.exp(-R * t_exit) + integral
    assert got == pytest.approx(math.log(expected), abs=1e-8)


def test_nothing_happened_and_an_observed_switch():
    """No exit by T (x unobserved): the probability of staying, off or on; and with x
    observed coming on at u0 and b entered at T: the product of the hazards and survivals."""
    horizon_t = 40.0
    got = forward(_compiled(), Observations(horizon_t, [(A, 0.0)])).log_likelihood

    def on_at(u):
        return C * math.exp(-C * u - R * u) * math.exp(-R * RHO * (horizon_t - u))

    integral, _ = integrate.quad(on_at, 0.0, horizon_t, epsabs=0, epsrel=1e-13)
    assert got == pytest.approx(math.log(math.exp(-(C + R) * horizon_t) + integral), abs=1e-8)
    u0, t_exit = 10.0, 30.0
    seen = Observations(50.0, [(A, 0.0), (B, t_exit)], {X: [(u0, True)]})
    expected = math.exp(-(C + R) * u0) * C * math.exp(-R * RHO * (t_exit - u0)) * R * RHO
    assert forward(_compiled(), seen).log_likelihood == pytest.approx(math.log(expected), abs=1e-9)
    # observed off throughout while the exit came: only the x-off paths count
    never = Observations(50.0, [(A, 0.0), (B, t_exit)], {X: []})
    assert forward(_compiled(), never).log_likelihood == pytest.approx(
        math.log(math.exp(-(C + R) * t_exit) * R), abs=1e-9
    )


@pytest.mark.parametrize("exit_at", [None, 25.0])
def test_the_gamma_posterior_is_conjugate(exit_at):
    """One exponential transition whose rate has a gamma prior, watched for T: with n exits
    (0 or 1) over exposure E the posterior is Gamma(shape + n, rate + E); the weighted mean of
    the worlds lies within 3 standard errors of its mean."""
    from escalate.posterior import fit_posterior
    from escalate.uncertainty import draw_worlds

    shape, rate = 4.0, 200.0  # prior mean 0.02 a day, sd 0.01
    model = escalate.loads(
        "scenario: g\nhorizon: 100\nstart: a\n"
        f"parameters:\n  lam: {{value: 0.02, uncertain: {{dist: gamma, mean: {shape / rate}, "
        f"sd: {math.sqrt(shape) / rate}}}}}\n"
        "stages: {a: {}, b: {terminal: true}}\n"
        "transitions:\n  - {from: a, to: b, rate: lam}\n"
    )
    as_of = 40.0
    path = [(A, 0.0)] + ([(B, exit_at)] if exit_at is not None else [])
    observations = Observations(as_of, path)

    def log_likelihood(worlds):
        values = np.array(
            [
                forward(compile_scenario(model, {"lam": lam}), observations).log_likelihood
                for lam in worlds["lam"]
            ]
        )
        return values, worlds

    prior = draw_worlds(model, 4000, 7)
    posterior = fit_posterior(model, prior, log_likelihood, seed=7)
    n, exposure = (0, as_of) if exit_at is None else (1, exit_at)
    expected = (shape + n) / (rate + exposure)
    lam = posterior.worlds["lam"].to_numpy()
    mean = float(np.sum(posterior.weights * lam))
    sd = float(np.sqrt(np.sum(posterior.weights * (lam - mean) ** 2)))
    assert abs(mean - expected) < 3 * sd / math.sqrt(posterior.ess), (mean, expected)
    assert sd == pytest.approx(math.sqrt(shape + n) / (rate + exposure), rel=0.05)


def test_non_exponential_scenarios_are_refused():
    model = escalate.load(Path(__file__).resolve().parent.parent / "scenarios" / "tutorial.yaml")
    with pytest.raises(escalate.EscalateError, match="every timing exponential"):
        forward(compile_scenario(model), Observations(10.0, [(0, 0.0)]))
