"""Worlds, sweeps and sensitivity: known answers by construction, and agreement of engines."""

from __future__ import annotations

import json
import math
import subprocess

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import escalate
from escalate.analysis.draws import draw_worlds
from escalate.analysis.worlds import run_worlds

from ..conftest import ESCALATE

# P(war) depends strongly on `dominant`, weakly on `minor`, and not at all on `irrelevant`,
# which times a transition out of a stage nothing leads to.
BY_CONSTRUCTION = """\
scenario: by-construction
horizon: 100
start: a
parameters:
  dominant: {value: 0.01, uncertain: {dist: uniform, low: 0.001, high: 0.04}}
  minor: {value: 0.01, uncertain: {dist: uniform, low: 0.009, high: 0.011}}
  irrelevant: {value: 0.05, uncertain: {dist: gamma, mean: 0.05, sd: 0.02}}
stages:
  a: {}
  war: {terminal: true}
  peace: {terminal: true}
  island: {}
transitions:
  - {from: a, to: war, rate: dominant}
  - {from: a, to: peace, rate: minor}
  - {from: island, to: peace, rate: irrelevant}
"""


@pytest.fixture(scope="module")
def model():
    return escalate.loads(BY_CONSTRUCTION)


def test_sobol_ranks_the_dominant_parameter_first(model):
    result = escalate.sensitivity(model, "p_reached:war", method="sobol", samples=512, seed=3)
    assert result.engine == "exact"
    assert result.ranking()[0] == "dominant"
    frame = result.frame
    assert frame.loc["dominant", "ST"] > 0.9
    # the irrelevant parameter: its total index's 95% interval covers 0
    st, conf = frame.loc["irrelevant", "ST"], frame.loc["irrelevant", "ST_conf"]
    assert st - conf <= 0.0 <= st + conf
    fig = result.plot()
    assert fig.axes[0].get_xlabel().startswith("Sobol index")
    plt.close(fig)


def test_sobol_with_monte_carlo_keeps_the_ranking(model):
    result = escalate.sensitivity(
        model, "p_reached:war", method="sobol", samples=64, engine="monte-carlo", n=5_000
    )
    assert result.engine == "monte-carlo"
    assert result.ranking()[0] == "dominant"
    st, conf = result.frame.loc["irrelevant", "ST"], result.frame.loc["irrelevant", "ST_conf"]
    assert st - conf <= 0.0 <= st + conf


def test_tornado_ranks_the_dominant_parameter_first(model):
    result = escalate.sensitivity(model, "p_reached:war", method="oat")
    assert result.ranking()[0] == "dominant"
    assert result.frame.loc["irrelevant", "swing"] == pytest.approx(0.0, abs=1e-12)
    low = stats.uniform(0.001, 0.039).ppf(0.05)
    r_other = 0.01
    expected = low / (low + r_other) * (1 - math.exp(-(low + r_other) * 100))
    assert result.frame.loc["dominant", "low"] == pytest.approx(expected, abs=1e-9)
    fig = result.plot()
    assert len(fig.axes[0].patches) == 2 * 3
    plt.close(fig)


def test_morris_ranks_the_dominant_parameter_first(model):
    result = escalate.sensitivity(model, "p_reached:war", method="morris", samples=40, seed=1)
    assert result.ranking()[0] == "dominant"
    assert result.frame.loc["irrelevant", "mu_star"] == pytest.approx(0.0, abs=1e-12)


def test_latin_hypercube_covers_every_stratum(model):
    worlds = draw_worlds(model, 100, seed=5)
    u = stats.uniform(0.001, 0.039).cdf(worlds["dominant"])
    assert np.array_equal(np.floor(np.sort(u) * 100), np.arange(100))
    dist = model.parameters["irrelevant"].uncertain
    u = dist.scipy(dist.numbers()).cdf(worlds["irrelevant"])
    assert np.array_equal(np.floor(np.sort(u) * 100), np.arange(100))
    assert draw_worlds(model, 100, seed=5).equals(worlds)


def test_worlds_exact_and_monte_carlo_agree(model):
    exact = run_worlds(model, 40, seed=8)
    assert exact.method == "exact"
    mc = run_worlds(model, 40, seed=8, n=20_000)
    assert mc.method == "monte-carlo"
    assert exact.parameters.equals(mc.parameters)  # the same worlds
    for metric in ("p_reached:war", "p_reached:peace", "p_at_horizon:a"):
        p = exact.pooled[metric]
        se = math.sqrt(p * (1 - p) / (40 * 20_000))
        assert abs(mc.pooled[metric] - p) <= 4 * se, metric
    summary = exact.summary()
    row = summary.loc["p_reached:war"]
    assert row["p5"] < row["p50"] < row["p95"]
    assert row["pooled"] == pytest.approx(exact.values["p_reached:war"].mean())


def test_worlds_from_the_command_line(cli, scenario_file):
    path = scenario_file(BY_CONSTRUCTION)
    args = ("solve", path, "--worlds", "200", "--seed", "1", "--format", "json")
    first, second = cli(*args), cli(*args)
    assert first.exit_code == 0, first.output
    assert first.stdout == second.stdout
    block = json.loads(first.stdout)["worlds"]
    assert block["count"] == 200 and block["parameters"] == ["dominant", "minor", "irrelevant"]
    war = block["metrics"]["p_reached:war"]
    assert war["p5"] < war["p50"] < war["p95"]
    mc = cli("run", path, "--worlds", "5", "-n", "1e4", "--seed", "1", "--format", "json")
    summary = json.loads(mc.stdout)
    assert summary["trajectories"] == 50_000 and summary["worlds"]["count"] == 5
    table = cli("run", path, "--worlds", "5", "-n", "1e4", "--seed", "1")
    assert "Across 5 worlds" in table.stdout


def test_worlds_need_uncertain_parameters(cli, scenario_file):
    certain = (
        BY_CONSTRUCTION.replace(", uncertain: {dist: uniform, low: 0.001, high: 0.04}", "")
        .replace(", uncertain: {dist: uniform, low: 0.009, high: 0.011}", "")
        .replace(", uncertain: {dist: gamma, mean: 0.05, sd: 0.02}", "")
    )
    result = cli("solve", scenario_file(certain), "--worlds", "3")
    assert result.exit_code == 2
    assert "no parameter has an `uncertain` distribution" in result.stderr


def test_exact_sweep_is_monotone_and_matches_closed_form(model):
    rates = np.linspace(0.005, 0.04, 8)
    result = escalate.sweep(model, {"dominant": rates}, ["p_reached:war"])
    assert result.engine == "exact"
    p = result.frame["p_reached:war"].to_numpy()
    expected = rates / (rates + 0.01) * (1 - np.exp(-(rates + 0.01) * 100))
    assert np.allclose(p, expected, atol=1e-9)
    fig = result.plot()
    assert len(fig.axes[0].get_lines()) == 1
    assert fig.axes[0].get_xscale() == "linear"  # evenly spaced grid
    plt.close(fig)
    geometric = escalate.sweep(model, {"dominant": np.geomspace(0.005, 0.04, 4)}, ["p_reached:war"])
    fig = geometric.plot()
    assert fig.axes[0].get_xscale() == "log"  # np.geomspace grid: even steps on a log axis
    plt.close(fig)


def test_monte_carlo_sweep_agrees_and_uses_common_random_numbers(model):
    rates = np.linspace(0.005, 0.04, 5)
    mc = escalate.sweep(
        model, {"dominant": rates}, ["p_reached:war"], engine="monte-carlo", n=40_000, seed=4
    )
    assert mc.engine == "monte-carlo" and mc.seed == 4
    expected = rates / (rates + 0.01) * (1 - np.exp(-(rates + 0.01) * 100))
    se = mc.frame["p_reached:war_se"].to_numpy()
    assert np.all(np.abs(mc.frame["p_reached:war"].to_numpy() - expected) <= 4 * se)
    # common random numbers: a larger hazard never lowers the count of the same trajectories
    assert np.all(np.diff(mc.frame["p_reached:war"].to_numpy()) > 0)


def test_two_parameter_sweep_from_the_command_line(cli, scenario_file, tmp_path):
    out = tmp_path / "sweep"
    result = cli(
        "sweep",
        scenario_file(BY_CONSTRUCTION),
        "--vary",
        "dominant=0.005:0.04:4",
        "--vary",
        "minor=0.009:0.011:3",
        "--metric",
        "p_reached:war",
        "--out",
        out,
    )
    assert result.exit_code == 0, result.output
    assert {p.name for p in out.iterdir()} == {"sweep.csv", "sweep.json", "sweep.png", "sweep.svg"}
    points = json.loads((out / "sweep.json").read_text())["points"]
    assert len(points) == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--vary", "dominant=1:2"), "expected NAME=START:STOP:COUNT"),
        (("--vary", "dominnt=0.01:0.02:3"), "did you mean 'dominant'"),
        (
            (
                "--vary",
                "dominant=0.01:0.02:3",
                "--vary",
                "minor=1:2:2",
                "--vary",
                "irrelevant=1:2:2",
            ),
            "one or two parameters",
        ),
    ],
)
def test_bad_sweeps(cli, scenario_file, args, message):
    result = cli("sweep", scenario_file(BY_CONSTRUCTION), *args, "--metric", "p_reached:war")
    assert result.exit_code == 2
    assert message in result.stderr


def test_sensitivity_from_the_command_line(cli, scenario_file, tmp_path):
    out = tmp_path / "sens"
    result = cli(
        "sensitivity",
        scenario_file(BY_CONSTRUCTION),
        "--method",
        "oat",
        "--metric",
        "p_reached:war",
        "--out",
        out,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    assert next(iter(json.loads(result.stdout)["parameters"])) == "dominant"
    assert {p.name for p in out.iterdir()} == {
        "sensitivity.csv",
        "sensitivity.json",
        "sensitivity.png",
        "sensitivity.svg",
    }


def test_drivers_are_the_means_of_each_fifth_and_spearman():
    """By construction: the metric rises with `strong`, falls a little with `weak`, ignores
    `none`. Each fifth's mean, the swing's standard error and the rank correlation are checked
    against a direct computation (100 equal worlds: 20 in each fifth)."""
    from escalate.analysis.drivers import drivers

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.random((100, 3)), columns=["none", "weak", "strong"])
    values = 3 * frame["strong"] - 0.5 * frame["weak"] + 0.1 * rng.standard_normal(100)
    table = drivers(frame, values.to_numpy())
    assert list(table.index) == ["strong", "weak", "none"]
    for name in frame:
        order = np.argsort(frame[name].to_numpy())
        low, high = values.to_numpy()[order[:20]], values.to_numpy()[order[-20:]]
        row = table.loc[name]
        assert row["low"] == pytest.approx(low.mean()) and row["high"] == pytest.approx(high.mean())
        assert row["swing"] == pytest.approx(high.mean() - low.mean())
        se = math.sqrt(low.var(ddof=1) / 20 + high.var(ddof=1) / 20)
        assert row["swing_se"] == pytest.approx(se)
        rho = stats.spearmanr(frame[name], values).statistic
        assert row["rank_correlation"] == pytest.approx(rho)
    assert table.loc["strong", "swing"] > 0 > table.loc["weak", "swing"]
    assert table.loc["strong", "clear"] and not table.loc["none", "clear"]
    assert abs(table.loc["none", "swing"]) < 2 * 1.96 * table.loc["none", "swing_se"]


def test_drivers_of_weighted_worlds():
    """A world of weight 0 changes nothing; a world of weight 2 ranks as two copies."""
    from escalate.analysis.drivers import drivers

    rng = np.random.default_rng(6)
    frame = pd.DataFrame(rng.random((30, 2)), columns=["x", "y"])
    values = frame["x"].to_numpy() + rng.standard_normal(30)
    plain = drivers(frame, values)
    padded = pd.concat([frame, pd.DataFrame(rng.random((7, 2)), columns=["x", "y"])])
    weights = np.r_[np.ones(30), np.zeros(7)]
    weighted = drivers(padded, np.r_[values, rng.random(7)], weights)
    pd.testing.assert_frame_equal(plain, weighted)
    doubled = drivers(pd.concat([frame, frame.iloc[:1]]), np.r_[values, values[:1]])
    weighted = drivers(frame, values, np.r_[2.0, np.ones(29)])
    for column in ("low", "high", "swing", "rank_correlation"):
        np.testing.assert_allclose(weighted[column], doubled[column], rtol=1e-12)


def test_drivers_share_the_edge_among_ties_and_skip_constants():
    """Worlds that tie on a value share the fifth's edge, whatever their order; a parameter
    with one value in every world is not ranked; an out-of-range fraction is refused."""
    from escalate.analysis.drivers import drivers

    rng = np.random.default_rng(7)
    values = rng.random(50)
    frame = pd.DataFrame({"coarse": np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 10),
                          "fixed": np.full(50, 0.3)})  # fmt: skip
    table = drivers(frame, values)
    assert list(table.index) == ["coarse"]  # `fixed` moves nothing
    assert table.loc["coarse", "low"] == pytest.approx(values[:10].mean())
    assert table.loc["coarse", "high"] == pytest.approx(values[-10:].mean())
    order = rng.permutation(50)
    shuffled = drivers(frame.iloc[order].reset_index(drop=True), values[order])
    pd.testing.assert_frame_equal(table, shuffled)
    coarser = drivers(pd.DataFrame({"two": np.repeat([0.0, 1.0], 25)}), values)
    assert coarser.loc["two", "low"] == pytest.approx(values[:25].mean())  # all 25 share it
    for fraction in (0.0, 0.6):
        with pytest.raises(escalate.EscalateError, match="fraction must be in"):
            drivers(frame, values, fraction=fraction)


def test_few_worlds_say_so_instead_of_a_table(model, scenario_file):
    """Under 25 worlds (5 at each end) no parameter is ranked: one sentence says why, and
    nothing prints as nan."""
    result = run_worlds(model, 4, seed=3)
    assert not result.has_drivers() and "worlds" in result.to_dict()
    assert "drivers" not in result.to_dict()["worlds"]
    assert "4 worlds are too few to say what moves it; 25 or more would." in (
        result.across_worlds_text()
    )
    shown = subprocess.run(
        [ESCALATE, "solve", str(scenario_file(BY_CONSTRUCTION)), "--worlds", "4", "--seed", "3"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert shown.returncode == 0 and "too few to say" in shown.stdout
    assert "nan" not in shown.stdout.lower() and "What moves" not in shown.stdout


def test_worlds_name_what_moves_the_headline(model):
    """Exact worlds of the scenario by construction: P(war) = d/(d+m)(1 - e^{-(d+m)T}) moves
    with `dominant`, and `irrelevant` moves nothing at all."""
    result = run_worlds(model, 200, seed=3)
    assert result.headline["metric"] == "p_reached:war"
    d, m = result.parameters["dominant"], result.parameters["minor"]
    closed = d / (d + m) * (1 - np.exp(-(d + m) * 100))
    np.testing.assert_allclose(result.values["p_reached:war"], closed, rtol=1e-9)
    table = result.drivers()
    assert table.index[0] == "dominant" and table.loc["dominant", "rank_correlation"] > 0.99
    assert table.loc["dominant", "clear"] and not table.loc["irrelevant", "clear"]
    irrelevant = table.loc["irrelevant"]  # moved only by its chance correlation in the draw
    assert abs(irrelevant["swing"]) < 3 * irrelevant["swing_se"]
    text = result.headline_text()
    assert text.startswith("Across 200 worlds, P(war by day 100) runs from")
    assert "What moves it most: dominant" in text and "irrelevant" not in text
    block = result.to_dict()["worlds"]["drivers"]
    assert list(block["parameters"]) == list(table.index)
    plt.close(result.plot_drivers())


def test_summary_and_drivers_are_computed_once_and_handed_out_as_copies(model, monkeypatch):
    """The tables, the JSON, the headline and the folder all ask a worlds result for its
    summary and drivers: computed once, and a caller that edits its copy changes nothing."""
    import escalate.analysis.worlds as uncertainty

    result = run_worlds(model, 40, seed=8)
    first, ranked = result.summary(), result.drivers()
    calls = []
    monkeypatch.setattr(uncertainty, "weighted_quantile", lambda *a: calls.append(a))
    monkeypatch.setattr(uncertainty, "drivers", lambda *a: calls.append(a) or ranked)
    numbers = ranked.select_dtypes("number").columns
    first.iloc[:, :] = -1.0
    ranked[numbers] = -1.0
    result.to_dict()
    result.headline_text()
    assert calls == []
    assert (result.summary().to_numpy() != -1.0).all()
    assert (result.drivers()[numbers].to_numpy() != -1.0).all() and len(numbers) >= 3
    assert result.headline["metric"] == "p_reached:war"
    result.drivers("p_reached:peace")  # another metric: computed then
    assert len(calls) == 1


def test_a_metric_undefined_in_some_worlds_is_averaged_over_the_others(model):
    """One rule, weighted or not: a mean across worlds is over the worlds where the metric is
    defined, with their share of the weight beside it. A stage no world reaches has no mean
    time (NaN, share 0) either way; a time defined in half the worlds is pandas' mean over
    that half, share 0.5, plain and equally weighted alike."""
    import dataclasses

    plain = run_worlds(model, 40, seed=1, engine="exact")
    weighted = run_worlds(model, None, seed=1, given=plain.parameters.assign(weight=1 / 40))
    for result in (plain, weighted):
        row = result.summary().loc["time_to_reach:island:mean"]
        assert math.isnan(row["pooled"]) and math.isnan(row["mean"]) and row["defined"] == 0
    values = plain.values.copy()
    values.loc[::2, "time_to_reach:war:mean"] = np.nan
    rows = [
        dataclasses.replace(result, values=values).summary().loc["time_to_reach:war:mean"]
        for result in (plain, weighted)
    ]
    for row in rows:
        assert row["mean"] == pytest.approx(values["time_to_reach:war:mean"].mean(), rel=1e-12)
        assert row["defined"] == pytest.approx(0.5, abs=1e-12)
    assert rows[0]["p50"] == pytest.approx(rows[1]["p50"], rel=1e-12)


def test_draws_stay_inside_the_support():
    """A gamma whose lowest draws round to 0 and a beta whose highest round to 1 (their
    inverse CDFs at the Latin hypercube's edges): every draw lies strictly inside the
    support, so that the update's unconstrained scale stays finite and tempering runs."""
    text = (
        "scenario: edges\nhorizon: 100\nstart: a\n"
        "parameters:\n"
        "  r: {value: 0.01, uncertain: {dist: gamma, mean: 0.01, sd: 0.0577}}\n"
        "  p: {value: 0.5, uncertain: {dist: beta, a: 5, b: 0.05}}\n"
        "stages: {a: {}, b: {}, c: {terminal: true}}\n"
        "transitions:\n  - {from: a, to: b, rate: r}\n"
        "  - {from: b, to: c, chance: 0.5, within: 10}\n"
        "  - {from: a, to: c, chance: p, within: 1000}\n"
    )
    edges = escalate.loads(text)
    r_dist, p_dist = edges.parameters["r"].uncertain, edges.parameters["p"].uncertain
    assert r_dist.scipy(r_dist.numbers()).ppf(1e-12) == 0.0  # the cases being guarded
    assert p_dist.scipy(p_dist.numbers()).ppf(0.9) == 1.0
    worlds = draw_worlds(edges, 400, 1)
    assert (worlds["r"] > 0).all() and ((worlds["p"] > 0) & (worlds["p"] < 1)).all()
    assert (worlds["p"] == np.nextafter(1.0, 0.0)).sum() > 40  # those past the 0.9 quantile
    from escalate.forecast.calibrate import calibrate
    from escalate.forecast.targets import Target

    result = calibrate(edges, [Target("p_reached:c@50", 0.2, 0.21)], worlds=400, seed=1,
                       overrides={"r": 0.01})  # fmt: skip
    assert result.posterior.powers and np.isfinite(result.parameters()["posterior_mean"]).all()


def test_morris_s_grid_spans_each_parameter_s_central_range(model, monkeypatch):
    """Morris's levels are the ends and thirds of each parameter's 5-95% range (the
    tornado's), not its 1e-12 quantiles: every design point lies in that range, and both ends
    are visited."""
    from escalate.analysis import sensitivity as _sensitivity

    seen = []
    original = _sensitivity.exact_metrics  # the points go to the worlds engine at once

    def record(model, names, x, *args, **kwargs):
        seen.extend(dict(zip(names, row, strict=True)) for row in x)
        return original(model, names, x, *args, **kwargs)

    monkeypatch.setattr(_sensitivity, "exact_metrics", record)
    escalate.sensitivity(model, "p_reached:war", method="morris", samples=6, seed=2)
    points = pd.DataFrame(seen)
    assert len(points) == 6 * (3 + 1)
    for name in points.columns:
        dist = model.parameters[name].uncertain
        low, high = dist.scipy(dist.numbers()).ppf([0.05, 0.95])
        assert points[name].min() == pytest.approx(low, rel=1e-12)
        assert points[name].max() == pytest.approx(high, rel=1e-12)


def test_morris_on_the_shipped_scenario_completes_with_progress():
    """The README's `escalate sensitivity ... --method morris` on the shipped scenario: on a
    terminal it shows its progress over the design points and ends with exit 0."""
    from ..conftest import ROOT, OnATerminal

    command = [ESCALATE, "sensitivity", str(ROOT / "scenarios" / "venezuela.yaml"),
               "--method", "morris", "--samples", "4"]  # fmt: skip
    terminal = OnATerminal(command)
    terminal.wait_for(rb"points")  # the bar, named by its unit
    shown = terminal.finish()
    assert terminal.process.returncode == 0, shown
    done = subprocess.run([*command, "--format", "json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["evaluations"] == 4 * (38 + 1) and result["engine"] == "exact"


def test_a_refused_design_point_is_named(scenario_file):
    """A rate so fast at the top of its range that the exact solver refuses: the error names
    the design point and the parameter at the end of its range, exit 2."""
    path = scenario_file(
        "scenario: stiff\nhorizon: 100\nstart: a\n"
        "parameters:\n  r: {value: 1, uncertain: {dist: uniform, low: 1, high: 20000}}\n"
        "  s: {value: 0.01, uncertain: {dist: uniform, low: 0.005, high: 0.02}}\n"
        "stages: {a: {}, b: {}, c: {terminal: true}}\n"
        "transitions:\n  - {from: a, to: b, rate: s}\n  - {from: b, to: a, rate: r}\n"
        "  - {from: b, to: c, rate: s}\n"
    )
    done = subprocess.run([ESCALATE, "sensitivity", path, "--method", "oat"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "design point 2 (r at its 95% quantile): the fastest way out" in done.stderr


def test_a_pooled_mean_time_to_reach_is_the_mixture_s():
    """Pooled over exact worlds, the mean time to reach b is the mixture's, each world
    weighing by its chance of reaching b: sum p t / sum p with p = 1 - e^(-100 lam) and t
    the closed form E[T | T <= 100]; not the plain mean of the worlds' t."""
    model = escalate.loads(
        "scenario: r\nhorizon: 100\nstart: a\n"
        "parameters:\n  lam: {value: 0.01, uncertain: {dist: uniform, low: 0.001, high: 0.1}}\n"
        "stages: {a: {}, b: {terminal: true}}\ntransitions:\n  - {from: a, to: b, rate: lam}\n"
    )
    exact = run_worlds(model, 200, seed=1, engine="exact")
    lam = exact.parameters["lam"].to_numpy()
    p = -np.expm1(-100 * lam)
    t = 1 / lam - 100 * np.exp(-100 * lam) / p
    pooled = exact.summary().loc["time_to_reach:b:mean"]
    assert pooled["pooled"] == pytest.approx(np.sum(p * t) / np.sum(p), rel=1e-9)
    assert pooled["mean"] == pytest.approx(np.mean(t), rel=1e-9)
    assert abs(pooled["pooled"] - pooled["mean"]) > 1.0  # the two differ here


def test_a_heat_map_of_positive_parameters_stays_above_zero(model):
    """A two-parameter sweep from 0.001 (its cells halfway to the next value) draws no cell
    below 0, where a positive parameter cannot be; the last cell still extends past the top."""
    grid = escalate.sweep(
        model, {"dominant": [0.001, 0.02, 0.039], "minor": [0.009, 0.01, 0.011]},
        ["p_reached:war"],
    )  # fmt: skip
    fig = grid.plot()
    ax = fig.axes[0]
    assert ax.get_xlim()[0] >= 0.0 and ax.get_xlim()[1] > 0.039
    plt.close(fig)
