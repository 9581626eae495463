"""Nowcasting by particles (issue 39): the special functions against scipy, the particle
method against the exact one on memoryless scenarios, a gamma delay's forecast against
quadrature, thread counts, and the installed command on the Essequibo ladder."""

from __future__ import annotations

import json
import math
import subprocess

import numba
import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import escalate
from escalate.analysis.draws import uncertain_parameters, worlds_to_weigh
from escalate.engine.compile import compile_scenario
from escalate.engine.delays import log_survival_of, tail_draw_of
from escalate.forecast.nowcast import nowcast
from escalate.forecast.observations import Observations, read_observations
from escalate.forecast.particles import (
    FORECAST_TRAJECTORIES,
    evaluate_particles,
    forecast_trajectories,
)

from ..conftest import ESCALATE, ROOT

GAMMA, WEIBULL, LOGNORMAL = 3, 4, 5


@pytest.mark.parametrize(
    ("kind", "p1", "p2", "law"),
    [
        (GAMMA, 6.25, 3.2, stats.gamma(6.25, scale=3.2)),
        (GAMMA, 0.6, 10.0, stats.gamma(0.6, scale=10.0)),
        (WEIBULL, 1.7, 12.0, stats.weibull_min(1.7, scale=12.0)),
        (LOGNORMAL, math.log(10.0), 0.8, stats.lognorm(0.8, scale=10.0)),
    ],
)
def test_survival_and_the_draw_given_survival(kind, p1, p2, law):
    """log S against scipy's logsf to 1e-9; draws given E > c have the conditional law's mean
    (quadrature) within 4 standard errors, and all exceed c."""
    c = np.array([0.0, 0.5, 3.0, 10.0, 30.0, 80.0])
    got = np.empty_like(c)
    log_survival_of(kind, p1, p2, c, got)
    np.testing.assert_allclose(got, law.logsf(c), rtol=1e-9, atol=1e-12)
    age = float(law.ppf(0.7))
    draws = np.empty(20_000)
    state = np.random.SeedSequence(kind).generate_state(4, np.uint64)
    tail_draw_of(state, kind, p1, p2, age, draws)
    assert draws.min() >= age
    mean = integrate.quad(lambda x: x * law.pdf(x), age, np.inf)[0] / law.sf(age)
    se = draws.std() / math.sqrt(len(draws))
    assert abs(draws.mean() - mean) < 4 * se, (draws.mean(), mean, se)


def _point_overrides(model) -> dict[str, float]:
    """Every uncertain parameter at its point value: one world."""
    values = compile_scenario(model).values
    return {name: values[name] for name in uncertain_parameters(model)}


def _agree(model, obs, overrides):
    """The exact and the particle nowcast of one world: the particle log-likelihood within 3
    of its estimated standard deviations, each stage's forecast within 4 of its errors."""
    exact = nowcast(model, obs, overrides=overrides, news=False, method="exact")
    particles = nowcast(model, obs, overrides=overrides, news=False, method="particles")
    assert exact.method == "exact" and particles.method == "particles"
    sd = particles.log_likelihood_sd
    assert sd is not None and sd > 0
    assert abs(particles.posterior.log_evidence - exact.posterior.log_evidence) <= 3 * sd, (
        particles.posterior.log_evidence, exact.posterior.log_evidence, sd)  # fmt: skip
    se = particles.after_se
    assert se is not None and np.all(se >= 0)
    z = (particles.after - exact.after) / np.where(se > 0, se, np.inf)
    assert np.all(np.abs(z) < 4), (particles.after, exact.after, se)
    moved = (exact.after > 0.01) & (exact.after < 0.99)
    assert moved.any() and np.all(se[moved] > 0)
    return exact, particles


def test_particles_agree_with_the_exact_nowcast_on_venezuela():
    model = escalate.load(ROOT / "scenarios" / "venezuela.yaml")
    obs = read_observations(ROOT / "scenarios" / "forecasting" / "venezuela-observed.yaml", model)
    exact, _ = _agree(model, obs, _point_overrides(model))
    hidden = [t for t in model.triggers if t in exact.triggers_on]
    assert hidden, "the record leaves a trigger unobserved"


SMALL = """\
scenario: small
horizon: 120
start: a
stages: {a: {}, b: {}, c: {terminal: true}, d: {terminal: true}}
triggers:
  x: {onset: {a: {rate: 0.03}, b: {rate: 0.05}}}
  y: {onset: {at: 40}}
transitions:
  - {from: a, to: b, rate: 0.01, when: {x: 4}}
  - {from: b, to: c, rate: 0.015, when: {x: 3, y: 2}}
  - {from: b, to: d, rate: 0.01}
"""


def test_particles_agree_with_the_exact_nowcast_with_an_unobserved_trigger():
    """x is never observed: the particles integrate over its onset in a and in b; y comes
    on at its `at` time, 40, inside the record (or at the entry's instant, after it)."""
    model = escalate.loads(SMALL)
    for entry in (30.0, 40.0):
        obs = Observations(50.0, [(0, 0.0), (1, entry)])
        exact, particles = _agree(model, obs, {})
        # one world filters FORECAST_TRAJECTORIES particles; their ESS at as_of is about 90%
        # of that here: the error bound takes a quarter
        p = exact.triggers_on["x"]
        se = math.sqrt(p * (1 - p) / (FORECAST_TRAJECTORIES / 4))
        assert abs(particles.triggers_on["x"] - p) < 4 * se, (particles.triggers_on, p, se)
        assert particles.triggers_on["y"] == pytest.approx(1.0, abs=1e-9)
        assert exact.triggers_on["y"] == pytest.approx(1.0, abs=1e-9)


SHAPE, SCALE, EXIT_RATE, AGE, HORIZON = 4.0, 5.0, 0.02, 15.0, 60.0
MEAN, SD = SHAPE * SCALE, math.sqrt(SHAPE) * SCALE
GAMMA_DELAY = f"""\
scenario: delay
horizon: {HORIZON}
start: a
stages: {{a: {{}}, b: {{terminal: true}}, c: {{terminal: true}}}}
transitions:
  - {{from: a, to: b, after: {{dist: gamma, mean: {MEAN}, sd: {SD}}}}}
  - {{from: a, to: c, rate: {EXIT_RATE}}}
"""


def test_a_gamma_delay_observed_at_a_known_age_matches_quadrature():
    """Quiet in a up to AGE: the likelihood is S_gamma(AGE) e^(-r AGE) exactly (nothing is
    hidden), and P(b by the horizon) = int_AGE^H f(t) e^(-r t) dt / (S(AGE) e^(-r AGE))."""
    model = escalate.loads(GAMMA_DELAY)
    law = stats.gamma(SHAPE, scale=SCALE)
    result = nowcast(model, Observations(AGE, [(0, 0.0)]), news=False)
    assert result.method == "particles"
    expected_log_l = law.logsf(AGE) - EXIT_RATE * AGE
    assert result.posterior.log_evidence == pytest.approx(expected_log_l, abs=1e-9)
    survived = law.sf(AGE) * math.exp(-EXIT_RATE * AGE)
    to_b = integrate.quad(lambda t: law.pdf(t) * math.exp(-EXIT_RATE * t), AGE, HORIZON)[0]
    to_c = integrate.quad(lambda t: EXIT_RATE * math.exp(-EXIT_RATE * t) * law.sf(t), AGE,
                          HORIZON)[0]  # fmt: skip
    expected = np.array([1.0, to_b / survived, to_c / survived])
    se = result.after_se
    assert np.all(np.abs(result.after - expected)[1:] < 4 * se[1:]), (result.after, expected, se)
    assert se[1] < 0.01


@pytest.mark.parametrize(("back", "possible"), [(34.0, True), (35.0, False)])
def test_a_fixed_delay_fires_when_due(back, possible):
    """The tutorial's clash cools down after exactly 14 days: a record back in the standoff
    14 days after the clash is possible, one a day later is not."""
    model = escalate.load(ROOT / "scenarios" / "tutorial.yaml")
    obs = Observations(70.0, [(1, 0.0), (2, 20.0), (1, back)], {1: []})
    log_l, _ = evaluate_particles(model, {}, obs, float(model.horizon_time), "none", None,
                                  pd.DataFrame(index=range(1)), 64)  # fmt: skip
    assert np.isfinite(log_l[0]) == possible


def test_seeded_particle_runs_are_identical_on_one_and_two_threads_and_any_split():
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("one thread only")
    model = escalate.load(ROOT / "scenarios" / "essequibo.yaml")
    obs = read_observations(ROOT / "scenarios" / "forecasting" / "essequibo-observed.yaml", model)
    prior, _, _ = worlds_to_weigh(model, 6, None, 3, {})
    runs = []
    before = numba.get_num_threads()
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            runs.append(evaluate_particles(model, {}, obs, float(model.horizon_time), "all",
                                           None, prior, 64))  # fmt: skip
    finally:
        numba.set_num_threads(before)
    (log_1, out_1), (log_2, out_2) = runs
    assert np.all(np.isfinite(log_1))
    np.testing.assert_array_equal(log_1, log_2)
    pd.testing.assert_frame_equal(out_1, out_2, check_exact=True)
    # nor on the split (Dask tasks, processes): each world has a generator of its own
    whole = forecast_trajectories(len(prior), 64)
    end = float(model.horizon_time)
    halves = [evaluate_particles(model, {}, obs, end, "all", None, part, 64, whole)
              for part in (prior.iloc[:2], prior.iloc[2:])]  # fmt: skip
    np.testing.assert_array_equal(np.concatenate([h[0] for h in halves]), log_1)
    joined = pd.concat([h[1] for h in halves], ignore_index=True)
    pd.testing.assert_frame_equal(joined, out_1, check_exact=True)


def test_the_installed_nowcast_and_backtest_on_the_essequibo_ladder(tmp_path):
    scenario = ROOT / "scenarios" / "essequibo.yaml"
    observed = ROOT / "scenarios" / "forecasting" / "essequibo-observed.yaml"
    run = subprocess.run(
        [ESCALATE, "nowcast", scenario, observed, "--worlds", "60", "--seed", "1",
         "--format", "json", "--out", tmp_path / "news"], capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    page = tmp_path / "news.html"
    report = subprocess.run([ESCALATE, "report", tmp_path / "news", "-o", page],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert f"Method: particles, {summary['particles']} per world" in page.read_text()
    assert summary["method"] == "particles" and summary["particles"] >= 32
    assert "particles" in run.stderr and "Traceback" not in run.stderr
    war = summary["stages"]["regional_war"]
    assert 0 < war["after"] < 1 and 0 < war["after_se"] < 0.05
    assert summary["stages"]["militarized_incidents"]["after"] == 1.0  # entered
    table = subprocess.run([ESCALATE, "nowcast", scenario, observed, "--worlds", "30",
                            "--particles", "40", "--seed", "2"], capture_output=True,
                           text=True, timeout=600)  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "Method: particles, 40 per world" in table.stdout
    backtest = subprocess.run([ESCALATE, "backtest", scenario, observed, "--worlds", "30",
                               "--seed", "1", "--format", "json"], capture_output=True,
                              text=True, timeout=600)  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    scored = json.loads(backtest.stdout)
    assert scored["method"] == "particles" and scored["rows"]
    for args, message in (
        (["--method", "exact"], "needs every timing exponential"),
        (["--particles", "0"], "--particles"),
    ):
        refused = subprocess.run([ESCALATE, "nowcast", scenario, observed, *args],
                                 capture_output=True, text=True)  # fmt: skip
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr and not refused.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(observed.read_text().replace("stage: militarized_incidents",
                                                "stage: militarised_incidents"))  # fmt: skip
    refused = subprocess.run([ESCALATE, "nowcast", scenario, bad], capture_output=True,
                             text=True)  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"{bad}:" in refused.stderr and "militarised_incidents" in refused.stderr


def test_weigh_takes_a_delay_rival_and_its_evidence_matches_quadrature(tmp_path):
    """A gamma delay with an uncertain mean (particles) against an exponential rival (exact),
    both seeing b entered on day 25: each log evidence within 4 of its standard errors of
    the prior integral of its likelihood."""
    from escalate.forecast.rivals import weigh

    common = "horizon: 100\nstart: a\nstages: {a: {}, b: {terminal: true}, c: {terminal: true}}\n"
    (tmp_path / "delay.yaml").write_text(
        "scenario: delay\n" + common
        + "parameters:\n  m: {value: 20, uncertain: {dist: lognormal, median: 20, p90: 40}}\n"
        "transitions:\n  - {from: a, to: b, after: {dist: gamma, mean: m, sd: 8}}\n"
        "  - {from: a, to: c, rate: 0.02}\n"
    )  # fmt: skip
    (tmp_path / "alt.yaml").write_text(
        "scenario: alt\n" + common
        + "parameters:\n  r: {value: 0.05, uncertain: {dist: lognormal, median: 0.05, p90: 0.1}}\n"
        "transitions:\n  - {from: a, to: b, rate: r}\n  - {from: a, to: c, rate: 0.02}\n"
    )  # fmt: skip
    for name in ("delay", "alt"):
        (tmp_path / f"{name}-record.yaml").write_text(
            f"scenario: {name}\nas_of: 30\npath: [{{stage: a, at: start}}, {{stage: b, at: 25}}]\n"
        )
    (tmp_path / "rivals.yaml").write_text(
        "question: P(b)\nmodels:\n"
        "  delay: {scenario: delay.yaml, observed: delay-record.yaml, metric: p_reached:b}\n"
        "  alt: {scenario: alt.yaml, observed: alt-record.yaml, metric: p_reached:b}\n"
    )
    result = weigh(tmp_path / "rivals.yaml", worlds=200, seed=1)
    assert result.methods == ["particles (32 per world)", "exact"]
    sigma = math.log(2) / stats.norm.ppf(0.9)
    survive_c = math.exp(-0.02 * 25)

    def delay(m):
        return stats.gamma((m / 8) ** 2, scale=64 / m).pdf(25) * survive_c

    def alt(r):
        return r * math.exp(-r * 25) * survive_c

    for i, (likelihood, median) in enumerate(((delay, 20), (alt, 0.05))):
        prior = stats.lognorm(sigma, scale=median)
        evidence = integrate.quad(lambda v, f=likelihood, p=prior: f(v) * p.pdf(v), 0, np.inf,
                                  limit=200)[0]  # fmt: skip
        se = result.evidence_se[i]
        assert abs(result.log_evidence[i] - math.log(evidence)) < 4 * se, (i, se)


LADDER = """\
scenario: s
horizon: 100
start: a
stages: {a: {}, b: {}, c: {}, d: {terminal: true}}
triggers:
  x: ONSET
transitions:
  - {from: a, to: b, rate: 0.02}
  - {from: b, to: c, rate: 0.03, EFFECT}
  - {from: c, to: d, rate: 0.05, when: {x: 3}}
"""
AT_START = """\
scenario: s
horizon: 100
start: a
stages: {a: {}, b: {}, d: {terminal: true}}
triggers:
  x: {onset: {rate: 0.01}}
transitions:
  - {from: a, to: b, rate: 0.02, effects: {x: 0.5}}
  - {from: b, to: d, rate: 0.05, when: {x: 3}}
"""
SCHEDULED = """\
scenario: s
horizon: 100
start: a
stages: {a: {}, b: {}, d: {terminal: true}}
triggers:
  y: {onset: {at: 40}}
transitions:
  - {from: a, to: b, rate: 0.02, when: {y: 3}}
  - {from: b, to: d, rate: 0.05}
"""


@pytest.mark.parametrize(
    ("scenario", "obs"),
    [
        pytest.param(  # x switched on by b -> c's effect, on the day of a -> b -> c
            LADDER.replace("ONSET", "{onset: {rate: 0.01}}").replace("EFFECT", "effects: {x: 0.5}"),
            Observations(30.0, [(0, 0.0), (1, 10.0), (2, 10.0)], {0: [(10.0, True)]}),
            id="effect-of-a-later-entry-that-day"),
        pytest.param(  # x's onset only in b, seen on the day a -> b: after the entry
            LADDER.replace("ONSET", "{onset: {b: {rate: 0.05}}}").replace("EFFECT", "when: {}"),
            Observations(30.0, [(0, 0.0), (1, 10.0)], {0: [(10.0, True)]}),
            id="switch-after-an-entry-that-day"),
        pytest.param(  # x's onset in a and in b, on the day of a -> b -> c: three places
            LADDER.replace("ONSET", "{onset: {a: {rate: 0.01}, b: {rate: 0.05}}}")
            .replace("EFFECT", "when: {}"),
            Observations(30.0, [(0, 0.0), (1, 10.0), (2, 10.0)], {0: [(10.0, True)]}),
            id="three-places-that-day"),
        pytest.param(  # x seen on from the start: on before a -> b at 0, or switched by it
            AT_START, Observations(30.0, [(0, 0.0), (1, 0.0)], {0: [(0.0, True)]}),
            id="on-from-the-start-or-by-an-entry-at-0"),
        pytest.param(SCHEDULED, Observations(60.0, [(0, 0.0), (1, 45.0)], {0: [(40.0, True)]}),
                     id="an-at-trigger-seen-at-its-time"),
        pytest.param(SCHEDULED, Observations(60.0, [(0, 0.0), (1, 45.0)], {0: [(30.0, True)]}),
                     id="an-at-trigger-seen-early"),
        pytest.param(SCHEDULED, Observations(60.0, [(0, 0.0), (1, 45.0)], {0: []}),
                     id="an-at-trigger-seen-never"),
    ],
)  # fmt: skip
def test_records_read_as_the_exact_method_reads_them(scenario, obs):
    """The likelihood L-hat over 8 runs of 2,000 particles against the forward algorithm's:
    within 4 standard errors of their mean (exactly where nothing is drawn), impossible
    where it is impossible."""
    from escalate.forecast.forward import forward
    from escalate.forecast.particles import _run

    model = escalate.loads(scenario)
    exact = forward(compile_scenario(model), obs).log_likelihood
    runs = np.array([_run(model, {}, obs, 100.0, np.zeros((1, 0)), [], 2000, 0, None,
                          salt=r)[0]["log_l"][0] for r in range(8)])  # fmt: skip
    if exact == -np.inf:
        assert np.all(runs == -np.inf)
        return
    estimates = np.exp(runs - exact)  # each run's L-hat over the exact L
    se = estimates.std(ddof=1) / math.sqrt(len(runs))
    assert abs(estimates.mean() - 1) <= 4 * se + 1e-9, (runs, exact, se)


def test_an_at_trigger_due_at_as_of_is_on_by_then():
    model = escalate.loads(SCHEDULED)
    obs = Observations(40.0, [(0, 0.0)])
    particles = nowcast(model, obs, news=False, method="particles")
    assert particles.triggers_on["y"] == pytest.approx(1.0, abs=1e-9)
    exact = nowcast(model, obs, news=False, method="exact")
    assert np.all(np.abs(particles.after - exact.after) <= 4 * particles.after_se + 1e-12)


def test_a_dated_exit_through_a_fixed_delay_counts_when_it_falls_due_that_day():
    """Back from b on Jan 20 after entering it on Jan 6: an uncertain fixed cool-down is
    14 days, or a part of a 15th: the posterior keeps only cool-downs in [14, 15)."""
    model = escalate.loads(
        "scenario: f\nhorizon: 2026-12-31\nstart_date: 2026-01-01\nstart: a\n"
        "parameters:\n  cool: {value: 14, uncertain: {dist: uniform, low: 10, high: 20}}\n"
        "stages: {a: {}, b: {}, c: {terminal: true}}\ntransitions:\n"
        "  - {from: a, to: b, rate: 0.05}\n"
        "  - {from: b, to: a, after: {dist: fixed, value: cool}}\n"
        "  - {from: a, to: c, rate: 0.001}\n"
    )  # fmt: skip
    obs = Observations(45.0, [(0, 0.0), (1, 5.0), (0, 19.0)])
    result = nowcast(model, obs, worlds=200, seed=1, news=False)
    cool = result.worlds["cool"].to_numpy()
    kept = result.worlds["weight"].to_numpy() > 0
    assert kept.sum() > 20 and np.all((cool[kept] >= 14 - 1e-9) & (cool[kept] < 15 + 1e-9))
