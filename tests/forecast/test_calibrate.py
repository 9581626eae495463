"""`calibrate`: known answers by quadrature, tempering at work, and the command as users run it."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import escalate
from escalate.forecast.calibrate import calibrate
from escalate.forecast.targets import Target

from ..conftest import ESCALATE, ROOT

ONE = """\
scenario: one
horizon: 100
start: a
parameters:
  m: {value: 100, uncertain: {dist: lognormal, median: 100, p90: 300}}
stages: {a: {}, b: {terminal: true}}
triggers:
  x: {initial: 0.3}  # on at the start or never: no parameter moves p_fired:x
transitions:
  - {from: a, to: b, mean: m}
"""


def _quadrature_mean(model, target: Target) -> float:
    """The posterior mean of m by quadrature of prior x likelihood (p_reached:b@50 is
    1 - exp(-50 / m) in closed form), on a fine grid in log m."""
    dist = model.parameters["m"].uncertain
    prior = dist.scipy(dist.numbers())
    grid = np.exp(np.linspace(0.0, np.log(1e4), 200_001))
    g = target.scale(1.0 - np.exp(-50.0 / grid))
    density = prior.pdf(grid) * np.exp(-0.5 * ((g - target.mu) / target.sigma) ** 2)
    return integrate.trapezoid(grid * density, grid) / integrate.trapezoid(density, grid)


@pytest.mark.slow
def test_the_posterior_mean_is_the_quadrature_answer():
    """The posterior mean of m is prior x likelihood's by quadrature."""
    model = escalate.loads(ONE)
    target = Target("p_reached:b@50", 0.3, 0.5)
    result = calibrate(model, [target], worlds=2000, seed=1)
    mean = float(np.sum(result.posterior.weights * result.posterior.worlds["m"].to_numpy()))
    expected = _quadrature_mean(model, target)
    # the worlds are tempered (two steps): 4 standard deviations of the error over seeds 1-10
    assert result.posterior.powers
    assert abs(mean - expected) < 4 * 0.53, (mean, expected)
    assert result.method == "exact"
    assert result.worlds["weight"].sum() == pytest.approx(1.0, abs=1e-12)
    row = result.targets().iloc[0]
    assert not row["conflict"] and row["moved"]
    assert row["posterior_p5"] > row["prior_p5"] and row["posterior_p95"] < row["prior_p95"]
    assert result.parameters().iloc[0]["contraction"] > 0.3


@pytest.mark.slow
def test_tempering_rescues_a_target_that_collapses_importance_weights():
    """A target so tight that importance weights alone keep < 1% of the worlds: tempering
    ends with equal weights on as many distinct worlds as it started with, less a few
    duplicates, and the quadrature answer within 4 standard deviations of the error over
    seeds 1-10 (0.0039)."""
    model = escalate.loads(ONE)
    target = Target("p_reached:b@50", 0.400, 0.401)
    worlds = 1000
    prior = escalate.draw_worlds(model, worlds, 2)
    from escalate.forecast.calibrate import _log_likelihood, _outputs
    from escalate.forecast.posterior import ess_of, normalized

    log_l, _ = _log_likelihood([target], _outputs(model, [target], {}, 1000, 2))(prior)
    assert ess_of(normalized(log_l)[0]) < 0.01 * worlds  # plain importance weights collapse
    result = calibrate(model, [target], worlds=worlds, seed=2)
    p = result.posterior
    assert len(p.powers) >= 3  # it tempered
    assert p.importance_ess == pytest.approx(ess_of(normalized(log_l)[0]), rel=1e-12)
    assert p.ess == pytest.approx(worlds, rel=1e-12)  # resampled: equal weights
    assert p.distinct == len(np.unique(p.worlds["m"])) > 0.9 * worlds
    assert not p.warnings
    mean = float(np.sum(p.weights * p.worlds["m"].to_numpy()))
    expected = _quadrature_mean(model, target)
    assert abs(mean - expected) < 4 * 0.0039, (mean, expected)
    # reproducible to the bit
    again = calibrate(model, [target], worlds=worlds, seed=2)
    pd.testing.assert_frame_equal(result.worlds, again.worlds)


def test_statements_that_cannot_hold_together_are_flagged():
    """With one exponential transition P(by 100) = 1 - (1 - P(by 50))^2: 10-20% by day 50
    and 80-90% by day 100 cannot both hold."""
    model = escalate.loads(ONE)
    targets = [Target("p_reached:b@50", 0.1, 0.2), Target("p_reached:b@100", 0.8, 0.9)]
    result = calibrate(model, targets, worlds=1000, seed=3, workers=2)
    assert result.targets()["conflict"].any()
    assert result.summary()["conflicts"]
    # worlds split between two processes or evaluated here: the same posterior, to the bit
    alone = calibrate(model, targets, worlds=1000, seed=3, workers=1)
    pd.testing.assert_frame_equal(result.worlds, alone.worlds)
    assert result.summary() == alone.summary()


def test_a_target_no_parameter_moves_is_reported():
    model = escalate.loads(ONE)
    targets = [Target("p_reached:b@50", 0.3, 0.5), Target("p_fired:x", 0.4, 0.9)]
    result = calibrate(model, targets, worlds=500, seed=4)
    moved = dict(zip(result.targets()["metric"], result.targets()["moved"], strict=True))
    assert moved == {"p_reached:b@50": True, "p_fired:x": False}
    assert result.summary()["not_moved"] == ["p_fired:x"]


def test_the_installed_command_writes_a_folder_others_read(tmp_path):
    scenario = tmp_path / "one.yaml"
    scenario.write_text(ONE)
    targets = tmp_path / "targets.yaml"
    targets.write_text(
        "scenario: one\ntargets:\n"
        "  - {metric: 'p_reached:b@50', between: [30%, 50%], source: 'a test'}\n"
    )
    out = tmp_path / "cal"
    done = subprocess.run(
        [ESCALATE, "calibrate", scenario, targets, "--worlds", "400", "--seed", "5",
         "--out", out, "--format", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["worlds"] == 400 and summary["targets"][0]["metric"] == "p_reached:b@50"
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "parameters.png", "parameters.svg", "params.yaml", "summary.json",
        "targets.png", "targets.svg", "worlds.parquet",
    ]  # fmt: skip
    worlds = pd.read_parquet(out / "worlds.parquet")
    assert list(worlds.columns) == ["m", "weight"] and len(worlds) == 400
    assert worlds["weight"].sum() == pytest.approx(1.0)
    # the posterior medians as a --params overlay
    solved = subprocess.run(
        [ESCALATE, "solve", scenario, "--params", out / "params.yaml", "--format", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert solved.returncode == 0, solved.stderr
    median = summary["params"]["m"]
    p_reached = json.loads(solved.stdout)["stages"]["b"]["p_reached"]
    assert p_reached == pytest.approx(1 - np.exp(-100 / median), rel=1e-9)
    # the report renders the folder: the answer first, well-formed, the figures embedded
    reported = subprocess.run([ESCALATE, "report", out], capture_output=True, text=True)
    assert reported.returncode == 0, reported.stderr
    import xml.etree.ElementTree as ET

    page = ET.parse(out / "report.html").getroot()
    body = page.find("body")
    assert body[0].tag == "h1" and body[1].get("id") == "headline"
    assert "honours all 1 statements" in body[1].text
    assert page.find(".//table[@id='targets']") is not None
    assert len(page.findall(".//img")) == 2


@pytest.mark.parametrize(
    "text, expected",
    [
        ("scenario: one\ntargets:\n  - {metric: 'p_reached:c', between: [1%, 2%]}\n",
         "targets.yaml:3:14: targets[0].metric: metric 'p_reached:c': unknown stage 'c'"),
        ("scenario: one\ntargets:\n  - {metric: 'p_reached:b', between: [20%, 10%]}\n",
         "targets.yaml:3:38: targets[0].between: must increase: 0.2 is not below 0.1"),
        ("scenario: one\ntargets:\n  - {metric: 'p_fired:x', between: [0%, 10%]}\n",
         "targets[0].between: a probability interval lies strictly inside (0, 1)"),
        ("scenario: two\ntargets:\n  - {metric: 'p_fired:x', between: [1%, 10%]}\n",
         "targets.yaml:1:11: scenario: the targets are for scenario 'two', not 'one'"),
        ("scenario: one\ntargets:\n  - {metric: 'p_fired:y', between: [1%, 10%]}\n",
         "unknown trigger 'y'"),
        ("scenario: one\n", "targets.yaml:1:1: (document): a targets file has"),
    ],
)  # fmt: skip
def test_a_bad_targets_file_gets_located_messages_and_exit_2(tmp_path, text, expected):
    scenario = tmp_path / "one.yaml"
    scenario.write_text(ONE)
    targets = tmp_path / "targets.yaml"
    targets.write_text(text)
    out = tmp_path / "cal"
    done = subprocess.run(
        [ESCALATE, "calibrate", scenario, targets, "--out", out], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert expected in done.stderr.replace(str(tmp_path) + "/", ""), done.stderr
    assert "Traceback" not in done.stderr and not out.exists()
    checked = subprocess.run([ESCALATE, "validate", targets], capture_output=True, text=True)
    if "scenario: one\ntargets" in text:  # one.yaml beside it: its names are checked too
        assert checked.returncode == 2 and expected in checked.stderr.replace(
            str(tmp_path) + "/", ""
        )


def test_validate_recognizes_the_shipped_targets_file():
    done = subprocess.run(
        [ESCALATE, "validate", ROOT / "scenarios/forecasting/venezuela-targets.yaml"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "valid targets file (4 targets, checked against" in done.stdout


def test_worlds_from_a_file_are_weighted(tmp_path):
    """`solve --worlds-from`: two worlds weighted 1:3 give the weighted mean of their exact
    answers as the pooled value; a bad worlds file is refused by name, exit 2."""
    scenario = tmp_path / "one.yaml"
    scenario.write_text(ONE)
    worlds = tmp_path / "worlds.parquet"
    pd.DataFrame({"m": [50.0, 200.0], "weight": [1.0, 3.0]}).to_parquet(worlds)
    done = subprocess.run(
        [ESCALATE, "solve", scenario, "--worlds-from", worlds, "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    block = json.loads(done.stdout)["worlds"]
    assert block["count"] == 2 and block["sampling"] == "given"
    expected = 0.25 * (1 - np.exp(-100 / 50)) + 0.75 * (1 - np.exp(-100 / 200))
    assert block["metrics"]["p_reached:b"]["pooled"] == pytest.approx(expected, rel=1e-12)
    assert block["metrics"]["p_reached:b"]["mean"] == pytest.approx(expected, rel=1e-12)
    for frame, message in (
        (pd.DataFrame({"m": [50.0]}), "no `weight` column"),
        (pd.DataFrame({"q": [1.0], "weight": [1.0]}), "column 'q' names no parameter"),
        (pd.DataFrame({"m": [1.0], "weight": [-1.0]}), "must be non-negative"),
    ):
        frame.to_parquet(worlds)
        bad = subprocess.run(
            [ESCALATE, "solve", scenario, "--worlds-from", worlds], capture_output=True, text=True
        )
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("low, high", [(0.0001, 0.001), (0.001, 0.01), (0.01, 0.05), (0.3, 0.5)])
def test_a_simulated_probability_s_likelihood_is_the_beta_average(low, high):
    """k hits of n: the target's density of logit(p) averaged over p ~ Beta(k + 1/2,
    n - k + 1/2) agrees with quadpack to 1e-9; it is finite at k = 0 and k = n (where the
    plain logit is infinite), rises with k up to the target's range and falls after it (a
    variance read from k alone let 0 hits beat 1 to 3), and for k large is the delta
    method's normal."""
    from scipy import special

    from escalate.forecast.calibrate import simulated_log_likelihood

    n, target = 20_000, Target("p_reached:b", low, high)
    hits = np.array([0, 1, 2, 3, 5, 10, 20, 50, 200, 1000, 5000, 19_990, 20_000])
    got = simulated_log_likelihood(hits, n, target.mu, target.sigma)
    for k, value in zip(hits, got, strict=True):
        a, b = k + 0.5, n - k + 0.5

        def density(x, a=a, b=b):
            return np.exp(
                -0.5 * ((x - target.mu) / target.sigma) ** 2 + a * special.log_expit(x)
                + b * special.log_expit(-x) - special.betaln(a, b)
            ) / (target.sigma * np.sqrt(2 * np.pi))  # fmt: skip

        expected, _ = integrate.quad(density, -60, 60, points=[target.mu, np.log(a / b)],
                                     limit=500, epsabs=0, epsrel=1e-12)  # fmt: skip
        assert value == pytest.approx(np.log(expected), abs=1e-9), k
    assert np.all(np.isfinite(got))
    peak = int(np.argmax(got))
    assert np.all(np.diff(got[: peak + 1]) > 0) and np.all(np.diff(got[peak:]) < 0)
    assert low <= hits[peak] / n * 4 and hits[peak] / n <= 4 * high  # the peak is near it
    k = 4000.0  # the delta method: logit(k / n) ~ Normal(mu, sigma^2 + 1 / (n p (1 - p)))
    p = k / n
    var = target.sigma**2 + 1 / (n * p * (1 - p))
    delta = stats.norm.logpdf(np.log(p / (1 - p)), target.mu, np.sqrt(var))
    assert simulated_log_likelihood(np.array([k]), n, target.mu, target.sigma)[0] == (
        pytest.approx(delta, abs=0.02)
    )


@pytest.mark.slow
def test_calibrating_by_simulation_moves_towards_a_rare_target():
    """A Weibull delay (simulated) whose scale's prior (600 to 3,000) puts P(by day 50) at
    or under 0.06%, against a target of 1-5%: the worlds with 0 hits must weigh least. The
    posterior mean of the scale is the quadrature answer (614) within 4 standard deviations
    of its spread over seeds 1-6 (23.5); read by the empirical logit it was 2,052, by the
    plain one 1,038 (the prior's mean is 1,800)."""
    model = escalate.loads(
        "scenario: w\nhorizon: 100\nstart: a\n"
        "parameters:\n  s: {value: 1800, uncertain: {dist: uniform, low: 600, high: 3000}}\n"
        "stages: {a: {}, b: {terminal: true}}\n"
        "transitions:\n  - {from: a, to: b, after: {dist: weibull, shape: 3, scale: s}}\n"
    )
    target = Target("p_reached:b@50", 0.01, 0.05)

    def likelihood(scale):
        p = -np.expm1(-((50 / scale) ** 3))
        return stats.norm.pdf(np.log(p / (1 - p)), target.mu, target.sigma)

    mass, _ = integrate.quad(likelihood, 600, 3000, limit=200)
    moment, _ = integrate.quad(lambda x: x * likelihood(x), 600, 3000, limit=200)
    result = calibrate(model, [target], worlds=200, seed=3)
    assert result.method == "monte-carlo" and result.posterior.powers
    mean = float(np.sum(result.posterior.weights * result.posterior.worlds["s"].to_numpy()))
    assert abs(mean - moment / mass) < 4 * 23.5, (mean, moment / mass)


def test_a_posterior_on_few_worlds_is_flagged(tmp_path):
    """Tempering with no Metropolis move leaves a handful of distinct worlds: the posterior
    says so (a warning in its diagnostics, on stderr from the command); with moves it does
    not."""
    model = escalate.loads(ONE)
    target = Target("p_reached:b@50", 0.400, 0.401)
    stuck = calibrate(model, [target], worlds=300, seed=2, moves=0)
    assert stuck.posterior.distinct < 30
    (warning,) = stuck.posterior.warnings
    assert f"only {stuck.posterior.distinct} distinct world" in warning
    assert stuck.summary()["warnings"] == [warning]
    scenario, targets = tmp_path / "one.yaml", tmp_path / "targets.yaml"
    scenario.write_text(ONE)
    targets.write_text("scenario: one\ntargets:\n"
                       "  - {metric: 'p_reached:b@50', between: [40%, 40.1%]}\n")  # fmt: skip
    done = subprocess.run(
        [ESCALATE, "calibrate", scenario, targets, "--worlds", "300", "--seed", "2",
         "--format", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)  # with moves (the default): spread again, no warning
    assert summary["ess"] == pytest.approx(300) and summary["importance_ess"] < 3
    assert summary["distinct_worlds"] > 270
    assert summary["warnings"] == [] and "warning" not in done.stderr


def test_validate_recognizes_parameters_and_worlds_files(tmp_path):
    """`escalate validate` on a params.yaml and a worlds.parquet as calibrate writes them (with
    the manifest.json that names their scenario): each recognized and checked against that
    scenario; a parameters file with a value out of range, or a worlds file with no weight
    column, is invalid (exit 2, named)."""
    scenario = tmp_path / "one.yaml"
    scenario.write_text(ONE)
    out = tmp_path / "cal"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"scenario_file": str(scenario)}))
    (out / "params.yaml").write_text("scenario: one\nm: 120.5\n")
    pd.DataFrame({"m": np.linspace(50, 300, 100), "weight": 0.01}).to_parquet(
        out / "worlds.parquet", index=False
    )
    checked = subprocess.run([ESCALATE, "validate", out / "params.yaml", out / "worlds.parquet"],
                             capture_output=True, text=True)  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert f"params.yaml: valid parameters file (1 parameter value, checked against {scenario}" in (
        checked.stdout
    )
    assert "worlds.parquet: valid worlds file (100 worlds, 1 parameter, checked against" in (
        checked.stdout
    )
    (tmp_path / "bad.yaml").write_text("scenario: one\nm: -5\n")
    pd.DataFrame({"m": [50.0]}).to_parquet(tmp_path / "bad.parquet")
    refused = subprocess.run(
        [ESCALATE, "validate", tmp_path / "bad.yaml", tmp_path / "bad.parquet"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "bad.yaml:2:4: m: transitions[0].mean must be positive" in refused.stderr
    assert "bad.parquet: no `weight` column" in refused.stderr
