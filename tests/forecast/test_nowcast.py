"""The forward algorithm of nowcast (issue 18): exact likelihoods against closed forms and
one-dimensional integrals, and the conjugate gamma check."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, linalg

import escalate
from escalate.engine.compile import compile_scenario
from escalate.forecast.forward import forward
from escalate.forecast.observations import Observations

from ..conftest import ESCALATE, ROOT

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

GAMMA_SHAPE, GAMMA_RATE = 4.0, 200.0  # prior mean 0.02 a day, sd 0.01
GAMMA = (
    "scenario: g\nhorizon: 100\nstart: a\n"
    "parameters:\n  lam: {value: 0.02, uncertain: {dist: gamma, "
    f"mean: {GAMMA_SHAPE / GAMMA_RATE}, sd: {math.sqrt(GAMMA_SHAPE) / GAMMA_RATE}}}}}\n"
    "stages: {a: {}, b: {terminal: true}}\n"
    "transitions:\n  - {from: a, to: b, rate: lam}\n"
)


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


@pytest.mark.parametrize("p", [1.0, 0.7])
def test_a_switch_made_by_a_transition_s_effect(p):
    """b entered at T and x seen switching on at that instant: the transition's effect, so
    the likelihood is e^-RT R p (x has no onset of its own); x seen never on: e^-RT R (1-p)."""
    model = escalate.loads(
        "scenario: fx\nhorizon: 100\nstart: a\nstages: {a: {}, b: {terminal: true}}\n"
        "triggers: {x: {}}\n"
        f"transitions:\n  - {{from: a, to: b, rate: {R}, effects: {{x: {p}}}}}\n"
    )
    c, t_exit = compile_scenario(model), 30.0
    seen = Observations(50.0, [(A, 0.0), (B, t_exit)], {X: [(t_exit, True)]})
    expected = math.log(math.exp(-R * t_exit) * R * p)
    assert forward(c, seen).log_likelihood == pytest.approx(expected, abs=1e-12)
    if p < 1:
        never = Observations(50.0, [(A, 0.0), (B, t_exit)], {X: []})
        expected = math.log(math.exp(-R * t_exit) * R * (1 - p))
        assert forward(c, never).log_likelihood == pytest.approx(expected, abs=1e-12)


def test_a_trigger_seen_on_at_its_at_time():
    """x comes on at day 10 by `at`, seen so; no exit by day 20 with a -> b at R, doubled
    while x is on: e^-(10 R + 10 2R)."""
    model = escalate.loads(
        "scenario: at\nhorizon: 100\nstart: a\nstages: {a: {}, b: {terminal: true}}\n"
        "triggers: {x: {onset: {at: 10}}}\n"
        f"transitions:\n  - {{from: a, to: b, rate: {R}, when: {{x: 2}}}}\n"
    )
    seen = Observations(20.0, [(A, 0.0)], {X: [(10.0, True)]})
    expected = -(10 * R + 10 * 2 * R)
    got = forward(compile_scenario(model), seen).log_likelihood
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("exit_at", [None, 25.0])
def test_the_gamma_posterior_is_conjugate(exit_at):
    """One exponential transition whose rate has a gamma prior, watched for T: with n exits
    (0 or 1) over exposure E the posterior is Gamma(shape + n, rate + E); the weighted mean of
    the worlds lies within 3 standard errors of its mean."""
    from escalate.analysis.draws import draw_worlds
    from escalate.forecast.posterior import fit_posterior

    shape, rate = GAMMA_SHAPE, GAMMA_RATE
    model = escalate.loads(GAMMA)
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

    # independent draws, so that sd / sqrt(ESS) is the standard error (a Latin hypercube's
    # stratified mean errs far less, and would make 3 of these a bound a bias could pass)
    prior = draw_worlds(model, 4000, 7, sampling="random")
    posterior = fit_posterior(model, prior, log_likelihood, seed=7)
    assert not posterior.powers  # weighted at once: sd / sqrt(ESS) is its error (Kong)
    n, exposure = (0, as_of) if exit_at is None else (1, exit_at)
    expected = (shape + n) / (rate + exposure)
    lam = posterior.worlds["lam"].to_numpy()
    mean = float(np.sum(posterior.weights * lam))
    sd = float(np.sqrt(np.sum(posterior.weights * (lam - mean) ** 2)))
    assert abs(mean - expected) < 3 * sd / math.sqrt(posterior.ess), (mean, expected)
    assert sd == pytest.approx(math.sqrt(shape + n) / (rate + exposure), rel=0.05)


def test_non_exponential_scenarios_are_refused():
    model = escalate.load(Path(__file__).resolve().parents[2] / "scenarios" / "tutorial.yaml")
    with pytest.raises(escalate.EscalateError, match="every timing exponential"):
        forward(compile_scenario(model), Observations(10.0, [(0, 0.0)]))


def test_with_everything_observed_the_forecast_is_solve_from_the_observed_state():
    """Fixed parameters, every trigger observed: the forecast from as_of equals `solve` of
    the scenario started in the observed state with the remaining horizon (1e-9)."""
    from escalate.forecast.forward import forecast

    text = """\
scenario: f
horizon: {horizon}
start: {start}
stages: {{a: {{}}, b: {{}}, war: {{terminal: true}}, calm: {{terminal: true}}}}
triggers:
  x: {{initial: {x}, onset: {{rate: 0.01}}}}
  y: {{initial: {y}, onset: {{rate: 0.005}}, offset: {{rate: 0.02}}}}
transitions:
  - {{from: a, to: b, rate: 0.03}}
  - {{from: a, to: calm, rate: 0.01}}
  - {{from: b, to: war, rate: 0.01, when: {{x: 3, y: 0.5}}}}
  - {{from: b, to: a, rate: 0.02}}
"""
    model = escalate.loads(text.format(horizon=100, start="a", x=0, y=0.5))
    c = compile_scenario(model)
    observations = Observations(
        30.0, [(0, 0.0), (1, 20.0)], {0: [(10.0, True)], 1: [(0.0, True), (25.0, False)]}
    )
    filtered = forward(c, observations)
    assert math.isfinite(filtered.log_likelihood)
    got = forecast(c, filtered, observations)
    restart = escalate.solve(escalate.loads(text.format(horizon=70, start="b", x=1, y=0)))
    for name, s in restart.stages.items():
        i = list(model.stages).index(name)
        assert got.p_at_horizon[i] == pytest.approx(s.p_at_horizon, abs=1e-9), name
        if name not in ("a", "b"):  # a and b were entered before as_of: reached already
            assert got.p_reached[i] == pytest.approx(s.p_reached, abs=1e-9), name
    for k, name in enumerate(model.triggers):
        assert got.p_on_at_horizon[k] == pytest.approx(
            restart.triggers[name]["p_on_at_horizon"], abs=1e-9
        )
    assert got.p_reached[0] == got.p_reached[1] == 1.0


def test_the_filtered_trigger_agrees_with_rejection_sampling():
    """P(x on at as_of | entered b at day 30), x unobserved: the forward algorithm's filtered
    probability against trajectories simulated from the model and kept when they enter b
    within half a day of day 30 (4 standard errors)."""
    t_exit = 30.0
    filtered = forward(_compiled(), Observations(50.0, [(A, 0.0), (B, t_exit)]))
    chain = filtered.chain
    exact = float(filtered.distribution[(chain.mask_of & 1) == 1].sum())
    rng = np.random.default_rng(11)
    n = 4_000_000
    onset = rng.exponential(1 / C, n)
    first = rng.exponential(1 / R, n)
    x_on = first >= onset  # no exit before x came on: the rest of the wait runs at R * RHO
    exit_time = np.where(x_on, onset + rng.exponential(1 / (R * RHO), n), first)
    kept = np.abs(exit_time - t_exit) <= 0.5
    p = x_on[kept].mean()
    se = math.sqrt(p * (1 - p) / kept.sum())
    assert kept.sum() > 10_000
    assert abs(p - exact) < 4 * se, (p, exact, se)
    assert 0.05 < exact < 0.95  # a case where the observation says something


def test_the_shipped_observations_file_reads_and_gives_a_likelihood():
    """The shipped example reads as the dates say, and the filter runs on it (its exactness is
    the closed-form tests' above)."""
    from escalate.forecast.observations import read_observations

    model = escalate.load(ROOT / "scenarios" / "venezuela.yaml")
    obs = read_observations(ROOT / "scenarios" / "forecasting" / "venezuela-observed.yaml", model)
    stages = list(model.stages)
    assert obs.as_of == 38.0  # 2025-12-15, days since start_date 2025-11-07
    assert obs.path == [(stages.index("interdiction_strikes"), 0.0),
                        (stages.index("asset_seizure"), 26.0)]  # fmt: skip
    triggers = list(model.triggers)
    assert obs.switches == {
        triggers.index("venezuela_mobilizes"): [(13.0, True)],
        triggers.index("attack_on_us_assets"): [],
    }
    filtered = forward(compile_scenario(model), obs)
    # the same likelihood and filtered state by dense matrix exponentials of the joint chain
    chain, mobilizes = filtered.chain, 1 << triggers.index("venezuela_mobilizes")
    q = chain.q.toarray()
    observed = mobilizes | 1 << triggers.index("attack_on_us_assets")

    def kept(stage, known):
        return (chain.stage_of == stages.index(stage)) & ((chain.mask_of & observed) == known)

    def survive(v, allowed, dt):
        out = np.zeros_like(v)
        out[allowed] = v[allowed] @ linalg.expm(q[np.ix_(allowed, allowed)] * dt)
        return out

    v = chain.p0 * kept("interdiction_strikes", 0)
    v = survive(v, kept("interdiction_strikes", 0), 13.0)
    switched = (chain.mask_of[:, None] ^ chain.mask_of[None, :]) == mobilizes
    v = (v @ (q * switched)) * kept("interdiction_strikes", mobilizes)
    v = survive(v, kept("interdiction_strikes", mobilizes), 13.0)
    v = (v @ (q * ~np.eye(chain.n, dtype=bool))) * kept("asset_seizure", mobilizes)
    v = survive(v, kept("asset_seizure", mobilizes), 12.0)
    assert filtered.log_likelihood == pytest.approx(math.log(v.sum()), abs=1e-10)
    np.testing.assert_allclose(filtered.distribution, v / v.sum(), atol=1e-12)
    done = subprocess.run(
        [ESCALATE, "validate",
         ROOT / "scenarios" / "forecasting" / "venezuela-observed.yaml"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0 and "valid observations file" in done.stdout, done.stderr


@pytest.mark.parametrize(
    "body, expected",
    [
        ("path: [{stage: asset_seizure, at: start}]",
         "path[0]: the path starts where the scenario does"),
        ("path: [{stage: interdiction_strikes, at: start}, {stage: full_scale_war, at: 5}]",
         "path[1].stage: no transition leads from 'interdiction_strikes' to 'full_scale_war'"),
        ("path: [{stage: interdiction_strikes, at: start}, {stage: asset_seizure, at: 50}]",
         "path[1].at: comes after as_of (40)"),
        ("path: [{stage: interdiction_strikes, at: start}, {stage: asset_seizure, at: 30},"
         " {stage: invasion, at: 20}]", "path[2].at: entries must be in time order"),
        ("path: [{stage: interdiction_strikes, at: start}]\ntriggers:\n"
         "  venezuela_mobilizes: {on: [3]}\n  venezuela_mobilizes: {on: [5]}",
         "duplicate key 'venezuela_mobilizes'"),
        ("path: [{stage: interdiction_strikes, at: 2025-11-01}]",
         "path[0].at: the date 2025-11-01 is before start_date 2025-11-07"),
        ("path: [{stage: interdiction_strikes, at: 2025-13-07}]", "is not a date"),
        ("path: [{stage: interdiction_strikes, at: start}]\n"
         "triggers: {venezuela_mobilizes: {off: [5]}}", "switches off while already off"),
        ("path: [{stage: interdiction_strikes, at: start}]\n"
         "triggers: {venezuela_mobilizes: {on: [3], off: [5]}}",
         "switches off, but neither an offset nor a transition's effect switches it off"),
        ("path: [{stage: interdiction_strikes, at: start}]\ntriggers: [a, b]",
         "triggers: a mapping of trigger"),
        ("path: [{stage: interdiction_strikes, at: start}]\n"
         "triggers: {venezuela_mobilizes: {on: 5}}", "(lists, [] for never)"),
        ("path: [{stage: interdiction_strikes, at: start}]\n"
         "triggers: {venezuela_mobilizes: {on: [-3]}}", "-3 is not a time at or after the start"),
        ("path: [{stage: interdiction_strikes, at: start}, {stage: asset_seizure, at: true}]",
         "path[1].at: True is not a time"),
        ("path: [{stage: [a], at: 3}]", "path[0].stage: unknown stage"),
        ("path: [{stage: interdiction_strikes, at: start}]\ntriggers: {mobilise: {on: []}}",
         "unknown trigger 'mobilise'"),
    ],
)  # fmt: skip
def test_bad_observations_are_located(tmp_path, body, expected):
    from escalate.forecast.observations import read_observations

    path = tmp_path / "observed.yaml"
    path.write_text(f"scenario: venezuela\nas_of: 40\n{body}\n")
    model = escalate.load(ROOT / "scenarios" / "venezuela.yaml")
    with pytest.raises(escalate.ScenarioError) as caught:
        read_observations(path, model)
    text = str(caught.value)
    assert expected in text and caught.value.issues[0].line >= 1, text


def test_empty_observations_at_the_start_reproduce_the_prior_forecast():
    """Nothing observed at as_of = 0: every world keeps its weight and the forecast after the
    news is the one before, exactly."""
    from escalate.forecast.nowcast import nowcast

    model = escalate.loads(
        "scenario: e\nhorizon: 100\nstart: a\n"
        "parameters:\n  m: {value: 50, uncertain: {dist: lognormal, median: 50, p90: 150}}\n"
        "stages: {a: {}, b: {}, war: {terminal: true}}\n"
        "triggers:\n  x: {initial: 0.3, onset: {rate: 0.01}}\n"
        "transitions:\n  - {from: a, to: b, mean: m}\n"
        "  - {from: b, to: war, mean: m, when: {x: 2}}\n"
    )
    result = nowcast(model, Observations(0.0, [(0, 0.0)]), worlds=200, seed=1)
    np.testing.assert_array_equal(result.after, result.before)
    assert result.posterior.ess == pytest.approx(200)
    assert result.triggers_on["x"] == pytest.approx(0.3, abs=1e-12)
    exact = np.mean([
        escalate.solve(model, overrides={"m": m}).stages["war"].p_reached
        for m in result.posterior.worlds["m"]
    ])  # fmt: skip
    assert result.after[2] == pytest.approx(exact, rel=1e-9)


def test_dates_need_a_start_date(tmp_path):
    from escalate.forecast.observations import read_observations

    path = tmp_path / "observed.yaml"
    path.write_text("scenario: bf\nas_of: 2025-12-01\npath: [{stage: a, at: start}]\n")
    with pytest.raises(escalate.ScenarioError) as caught:
        read_observations(path, escalate.loads(SCENARIO))
    assert "as_of: the date 2025-12-01 needs start_date" in str(caught.value)


def test_nowcast_end_to_end_is_conjugate_and_forecasts_from_as_of():
    """`escalate.nowcast` (worlds in two processes) on the gamma case with no exit by day 40:
    the posterior mean of the rate is Gamma(shape, rate + 40)'s, and each world's forecast is
    P(exit by 100 | none by 40) = 1 - exp(-lam 60), averaged with the weights; both within 4
    standard deviations of the Latin hypercube's error, measured over seeds."""
    model = escalate.loads(GAMMA)
    result = escalate.nowcast(model, Observations(40.0, [(A, 0.0)]), worlds=2000, seed=5)
    p = result.posterior
    lam = p.worlds["lam"].to_numpy()
    mean = float(np.sum(p.weights * lam))
    expected = np.sum(p.weights * -np.expm1(-lam * 60.0))
    assert result.after[B] == pytest.approx(expected, rel=1e-9)
    # the worlds are a Latin hypercube, whose error the i.i.d. sd / sqrt(ESS) overstates
    # ~1000x (a bound that could not fail): over seeds 1-8 the errors' standard deviation was
    # 4.9e-7 (the mean) and 1.7e-5 (the forecast against its closed form 1 - (240 / 300)^4
    # for Gamma(4, 240)); 4 of those
    assert abs(mean - GAMMA_SHAPE / (GAMMA_RATE + 40.0)) < 4 * 4.9e-7
    assert abs(result.after[B] - (1 - (240 / 300) ** 4)) < 4 * 1.7e-5
    at_before, at_after = result.ahead["p_at_horizon"]
    assert at_before[B] == pytest.approx(result.before[B], rel=1e-12)
    assert at_after[B] == pytest.approx(expected, rel=1e-9)  # b is terminal: there at 100
    assert at_after[A] == pytest.approx(1 - expected, rel=1e-9)
    # before the news: the prior worlds from t = 0, P(exit by 100) = 1 - exp(-lam 100)
    prior = p.prior_worlds["lam"].to_numpy()
    assert result.before[B] == pytest.approx(np.mean(-np.expm1(-prior * 100.0)), rel=1e-9)
    # one step of news (nothing by as_of), computed by reweighting the prior worlds
    (step,) = result.steps
    assert step["time"] == 40.0 and step["events"] == ["nothing else up to as_of"]
    w = np.exp(-prior * 40.0)
    w /= w.sum()
    assert step["p_reached"][B] == pytest.approx(np.sum(w * -np.expm1(-prior * 60.0)), rel=1e-9)
    assert step["ess"] == pytest.approx(1 / np.sum(w**2), rel=1e-9)


def test_worlds_from_are_reweighted_by_the_news():
    """Given weighted worlds, the posterior keeps them and multiplies each weight by its
    likelihood exactly (no move: their density is unknown); an exit at day 10 seen."""
    model = escalate.loads(GAMMA)
    given = pd.DataFrame({"lam": [0.01, 0.03, 0.05], "weight": [0.5, 0.3, 0.2]})
    result = escalate.nowcast(model, Observations(40.0, [(A, 0.0), (B, 10.0)]),
                              worlds_from=given, seed=1)  # fmt: skip
    lam = given["lam"].to_numpy()
    expected = given["weight"].to_numpy() * lam * np.exp(-lam * 10.0)
    np.testing.assert_allclose(result.posterior.weights, expected / expected.sum(), rtol=1e-9)
    assert result.after[B] == 1.0 and result.posterior.acceptance is None
    before = np.sum(given["weight"].to_numpy() * -np.expm1(-lam * 100.0))
    assert result.before[B] == pytest.approx(before, rel=1e-9)
    assert list(result.worlds.columns) == ["lam", "weight"]


def test_the_installed_nowcast_command(tmp_path):
    """`escalate nowcast` as users run it: JSON with the forecast before and after and the
    update per step, dated; an --out folder that `escalate report` renders with the answer
    first; calibrate's worlds as the starting point; bad options refused with exit 2."""
    escalate_exe = ESCALATE
    scenario = ROOT / "scenarios" / "venezuela.yaml"
    observed = ROOT / "scenarios" / "forecasting" / "venezuela-observed.yaml"
    out = tmp_path / "nowcast"
    done = subprocess.run(
        [escalate_exe, "nowcast", scenario, observed, "--worlds", "60", "--seed", "2",
         "--format", "json", "--out", out],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    result = json.loads(done.stdout)
    assert result["as_of"] == 38.0 and result["as_of_date"] == "2025-12-15"
    assert result["worlds"] == 60 and result["horizon_date"] == "2027-11-07"
    assert result["stages"]["asset_seizure"]["after"] == 1.0  # entered on Dec 3
    assert [u["date"] for u in result["updates"]] == [
        "2025-11-07", "2025-11-20", "2025-12-03", "2025-12-15"
    ]  # fmt: skip
    assert result["updates"][2]["news"] == ["reached Seizure of strategic assets"]
    war = result["stages"]["full_scale_war"]
    assert war["after"] > war["before"]  # a seizure and a mobilization raise the odds
    assert set(result["triggers_on_at_as_of"]) == {"foreign_backing", "us_low_profile",
                                                   "regional_pressure"}  # fmt: skip
    written = {p.name for p in out.iterdir()}
    assert {"worlds.parquet", "summary.json", "updates.csv", "update.png", "update.svg",
            "parameters.png", "manifest.json"} <= written  # fmt: skip
    assert json.loads((out / "summary.json").read_text()) == result
    report = subprocess.run([escalate_exe, "report", out], capture_output=True, text=True)
    assert report.returncode == 0, report.stderr
    html = (out / "report.html").read_text()
    body = html[html.index("<body>") :]
    assert body.index("id='headline'") < body.index("<table")
    assert f"P(Full-scale war by 2027-11-07) = {war['after']:.2%}" in html
    # calibrate, then nowcast from its worlds (the README's flow), to a date horizon
    calibrated = tmp_path / "calibrated"
    done = subprocess.run(
        [escalate_exe, "calibrate", scenario,
         ROOT / "scenarios" / "forecasting" / "venezuela-targets.yaml",
         "--worlds", "60", "--seed", "1", "--out", calibrated],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = subprocess.run(
        [escalate_exe, "nowcast", scenario, observed, "--worlds-from",
         calibrated / "worlds.parquet", "--horizon", "2026-12-31", "--format", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    from_calibration = json.loads(done.stdout)
    assert from_calibration["worlds"] == 60 and from_calibration["acceptance"] is None
    assert from_calibration["horizon_date"] == "2026-12-31"
    assert from_calibration["worlds_from"] == str(calibrated / "worlds.parquet")
    for args, message in (
        (["--stage", "war"], "--stage: unknown stage 'war'"),
        (["--worlds-from", tmp_path / "none.parquet"], "none.parquet: no such file"),
        (["--horizon", "2025-12-01"], "must come after as_of"),
        (
            ["--worlds", "50", "--worlds-from", calibrated / "worlds.parquet"],
            "--worlds and --worlds-from: give one of them",
        ),
    ):
        refused = subprocess.run([escalate_exe, "nowcast", scenario, observed, *args],
                                 capture_output=True, text=True)  # fmt: skip
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenario: venezuela\nas_of: 2025-12-15\npath:\n"
                   "  - {stage: interdiction_strikes, at: start}\n"
                   "  - {stage: full_scale_war, at: 2025-12-01}\n")  # fmt: skip
    refused = subprocess.run([escalate_exe, "nowcast", scenario, bad], capture_output=True,
                             text=True)  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"{bad}:5:" in refused.stderr and "no transition leads from" in refused.stderr
    tutorial_observed = tmp_path / "observed.yaml"
    tutorial_observed.write_text(
        "scenario: tutorial\nas_of: 5\npath: [{stage: talks, at: start}]\n"
    )
    refused = subprocess.run(
        [escalate_exe, "nowcast", ROOT / "scenarios" / "tutorial.yaml", tutorial_observed,
         "--method", "exact"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode == 2 and "needs every timing exponential" in refused.stderr
    assert "Traceback" not in refused.stderr
