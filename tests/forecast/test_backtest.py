"""Keeping score (DESIGN section 10): the backtest's forecasts, Brier and log scores and window
CRPS against closed forms on one exponential transition with a gamma-distributed rate, the
surprise of an early entry, an empty record, and the installed command as a user runs it."""

from __future__ import annotations

import json
import math
import re
import subprocess

import numpy as np
import pytest
from scipy import integrate

import escalate
from escalate.forecast.backtest import backtest
from escalate.forecast.observations import Observations

from ..conftest import ROOT

SHAPE, RATE = 2.0, 400.0  # the rate's prior: Gamma(2, 400), mean 0.005 a day
GAMMA = (
    "scenario: g\nhorizon: 400\nstart: calm\n"
    "parameters:\n  lam: {value: 0.005, uncertain: {dist: gamma, "
    f"mean: {SHAPE / RATE}, sd: {math.sqrt(SHAPE) / RATE}}}}}\n"
    "stages: {calm: {}, war: {terminal: true}}\n"
    "transitions:\n  - {from: calm, to: war, rate: lam}\n"
)
CALM, WAR = 0, 1
END, ENTRY = 300.0, 250.0
WORLDS = 2000


def reach_by(t: float, origin: float) -> float:
    """P(war by t | none by origin): the rate's posterior is Gamma(SHAPE, RATE + origin)."""
    return 1.0 - ((RATE + origin) / (RATE + t)) ** SHAPE


def spread(t: float, origin: float) -> float:
    """The posterior standard deviation of a world's P(war by t | none by origin)."""
    b, d = RATE + origin, t - origin
    return math.sqrt((b / (b + 2 * d)) ** SHAPE - (b / (b + d)) ** (2 * SHAPE))


def window_crps(origin: float, entry: float) -> float:
    def integrand(t):
        return (reach_by(t, origin) - (1.0 if t >= entry else 0.0)) ** 2

    points = [entry] if origin < entry < END else None
    return integrate.quad(integrand, origin, END, points=points, epsabs=1e-12)[0]


@pytest.fixture(scope="module")
def scored():
    model = escalate.loads(GAMMA)
    records = {
        "entry": Observations(END, [(CALM, 0.0), (WAR, ENTRY)]),
        "quiet": Observations(END, [(CALM, 0.0)]),
    }
    return {
        name: backtest(model, record, origins=[0.0, 100.0, 200.0], worlds=WORLDS, seed=3)
        for name, record in records.items()
    }


@pytest.mark.parametrize("record", ["entry", "quiet"])
def test_forecasts_and_scores_agree_with_the_closed_forms(scored, record):
    """At origins 0, 100 and 200 (none entered yet) the forecast of war by the record's end
    is the gamma posterior's, within 4 of the worlds' standard errors (the weighted worlds of
    2,000 drawn); the Brier and log scores are those of the forecast issued, the reference is
    the prior's, and the window CRPS agrees with the closed form's integral."""
    result = scored[record]
    entry = ENTRY if record == "entry" else math.inf
    rows = result.rows.set_index("origin")
    assert list(rows.index) == [0.0, 100.0, 200.0]
    for origin, row in rows.iterrows():
        expected = reach_by(END, origin)
        error = spread(END, origin) / math.sqrt(WORLDS / 4)  # importance weights: ESS >= W/4
        assert abs(row["forecast"] - expected) < 4 * error + 1e-9
        y = 1 if record == "entry" else 0
        assert row["outcome"] == y
        assert row["brier"] == pytest.approx((row["forecast"] - y) ** 2, abs=1e-12)
        p_y = row["forecast"] if y else 1 - row["forecast"]
        assert row["log_score"] == pytest.approx(-math.log(p_y), rel=1e-12)
        assert abs(row["reference_forecast"] - reach_by(END, 0.0)) < 4 * spread(END, 0.0) / (
            math.sqrt(WORLDS)
        )
    crps = result.crps.set_index("origin")
    for origin, row in crps[crps["stage"] == "war"].iterrows():
        # the CRPS moves with the forecast: its derivative in F is at most 2 (E - origin)
        tolerance = 2 * (END - origin) * 4 * spread(END, origin) / math.sqrt(WORLDS / 4)
        assert abs(row["crps"] - window_crps(origin, entry)) < tolerance
        assert row["entry"] == ENTRY if record == "entry" else math.isnan(row["entry"])


def test_the_window_crps_is_the_integral_of_the_forecast_curve():
    """With the forecast curve known exactly, the quadrature between the record's entries
    gives the closed form's integral to 1e-10 (the integrand jumps at the entry)."""
    from escalate.forecast.backtest import _window_crps

    for origin in (0.0, 100.0, 200.0):
        for entry in (ENTRY, math.inf):
            entries = {WAR: entry} if math.isfinite(entry) else {}
            got = _window_crps(lambda t, o=origin: reach_by(t, o), origin, END, entry, entries)
            assert got == pytest.approx(window_crps(origin, entry), abs=1e-10)


def test_an_early_entry_is_unexpected_by_its_closed_form():
    """War on day 10: under the prior forecast, P(war by 10) = 1 - (400 / 410)^2 = 4.8%, under
    5%: the step is marked unexpected, in the nowcast and in the backtest's news."""
    model = escalate.loads(GAMMA)
    record = Observations(60.0, [(CALM, 0.0), (WAR, 10.0)])
    result = escalate.nowcast(model, record, worlds=WORLDS, seed=4)
    step = result.steps[0]
    assert step["time"] == 10.0
    expected = reach_by(10.0, 0.0)
    assert abs(step["p_by"] - expected) < 4 * spread(10.0, 0.0) / math.sqrt(WORLDS)
    assert step["unexpected"] and expected < 0.05
    quiet = result.steps[-1]  # nothing else up to as_of: war is terminal, nothing can happen
    assert quiet["p_by"] == pytest.approx(1.0, abs=1e-12)
    assert sum(s["evidence_share"] for s in result.steps) == pytest.approx(1.0, abs=1e-12)
    shown = result.updates()
    assert bool(shown["unexpected"].iloc[0]) and shown["p_by"].iloc[0] == step["p_by"]


def test_a_scenario_with_nothing_uncertain_is_one_world_and_exact():
    """No uncertain parameter: the backtest (and each origin's nowcast) is one world, and its
    forecasts and window CRPS are the closed forms of a fixed rate to 1e-9."""
    rate = 0.005
    model = escalate.loads(
        GAMMA.replace(GAMMA[GAMMA.index("parameters:") : GAMMA.index("stages:")], "").replace(
            "lam", str(rate)
        )
    )
    result = backtest(model, Observations(END, [(CALM, 0.0), (WAR, ENTRY)]),
                      origins=[0.0, 100.0, 200.0], seed=6)  # fmt: skip
    assert result.worlds == 1
    for origin, row in result.rows.set_index("origin").iterrows():
        assert row["forecast"] == pytest.approx(1 - math.exp(-rate * (END - origin)), abs=1e-9)
    for origin, row in result.crps.set_index("origin").iterrows():

        def exact(t, o=origin):
            return 1 - math.exp(-rate * (t - o))

        expected = integrate.quad(lambda t: (exact(t) - (t >= ENTRY)) ** 2, origin, END,
                                  points=[ENTRY], epsabs=1e-12)[0]  # fmt: skip
        assert row["crps"] == pytest.approx(expected, abs=1e-8)


def test_contraction_is_read_on_the_scale_the_sampler_moves_on(scored):
    """The gamma rate is positive: its contraction is 1 - the ratio of the variances of its
    log, between 0 (the record said nothing) and 1, and the table says which scale."""
    import escalate.forecast.nowcast as nowcast_module

    model = escalate.loads(GAMMA)
    result = nowcast_module.nowcast(model, Observations(END, [(CALM, 0.0), (WAR, ENTRY)]),
                                    worlds=WORLDS, seed=3)  # fmt: skip
    row = result.parameters().iloc[0]
    assert row["contraction_scale"] == "log"
    post, prior = result.posterior.worlds["lam"], result.posterior.prior_worlds["lam"]
    weights = result.posterior.weights
    log_post, log_prior = np.log(post.to_numpy()), np.log(prior.to_numpy())
    var_post = np.sum(weights * (log_post - np.sum(weights * log_post)) ** 2)
    var_prior = np.var(log_prior)
    assert row["contraction"] == pytest.approx(1 - var_post / var_prior, rel=1e-9)
    assert 0 < row["contraction"] < 1


def test_an_empty_record_scores_the_prior_forecast():
    """Nothing happened up to the record's end: the one origin is the start, its forecast is
    the reference itself (the prior, never updated), so every skill is 0."""
    model = escalate.loads(GAMMA)
    result = backtest(model, Observations(END, [(CALM, 0.0)]), worlds=400, seed=5)
    assert result.origins == [0.0]
    row = result.rows.iloc[0]
    assert row["forecast"] == pytest.approx(row["reference_forecast"], abs=1e-12)
    summary = result.summary()
    assert summary["brier_skill"] == pytest.approx(0.0, abs=1e-9)
    assert summary["crps_skill"] == pytest.approx(0.0, abs=1e-9)


def escalate_cli(*args, cwd=None):
    import sys
    from pathlib import Path

    executable = Path(sys.executable).parent / "escalate"
    return subprocess.run([str(executable), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)  # fmt: skip


SCENARIO = ROOT / "scenarios" / "venezuela.yaml"
RECORD = ROOT / "scenarios" / "forecasting" / "venezuela-record.yaml"


@pytest.mark.slow
def test_the_installed_command_writes_json_a_folder_and_a_report(tmp_path):
    """``escalate backtest`` on the shipped record: JSON with DESIGN section 10's keys,
    ``--out`` with scores.csv, the figures and the manifest, and the report's answer first."""
    done = escalate_cli("backtest", SCENARIO, RECORD, "--worlds", "60", "--seed", "1",
                        "--format", "json", "--out", tmp_path / "bt")  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    row = summary["rows"][0]
    for key in (
        "origin",
        "origin_date",
        "question",
        "forecast",
        "outcome",
        "brier",
        "log_score",
        "reference_forecast",
        "reference_brier",
        "reference_log_score",
    ):
        assert key in row
    assert {"crps", "reference_crps", "stage"} <= set(summary["crps"][0])
    assert summary["origins"][0]["date"] == "2025-11-07"
    dates = [n["date"] for n in summary["news"]]
    assert dates[:3] == ["2025-11-07", "2025-11-11", "2025-12-10"]  # the start: triggers seen
    for name in ("scores.csv", "crps.csv", "summary.json", "manifest.json", "forecasts.png"):
        assert (tmp_path / "bt" / name).is_file()
    report = escalate_cli("report", tmp_path / "bt")
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "bt" / "report.html").read_text()
    assert html.index("id='answer'") < html.index("id='scores'")
    assert "Updating on the news" in html
    from ..output.test_report import CHROMIUM, FLAGS

    if CHROMIUM is None:  # .ci/run installs it
        pytest.skip("chromium is not installed")
    dom = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'browser'}",
         "--virtual-time-budget=10000", "--dump-dom", (tmp_path / "bt" / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    figures = 1 + (tmp_path / "bt" / "reliability.png").exists()
    assert f'data-images="{figures}/{figures}"' in dom  # every figure decoded
    assert "Updating on the news" in dom and '<table id="scores"' in dom


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--origins", "2027-01-01"), "--origins"),
        (("--questions", "p_reached:nowhere@2026-01-20"), "nowhere"),
    ],
)
def test_bad_origins_and_questions_are_one_line_and_exit_2(args, said):
    done = escalate_cli("backtest", SCENARIO, RECORD, "--worlds", "20", *args)
    assert done.returncode == 2
    assert said in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2


def test_a_record_of_another_scenario_is_refused_with_its_location(tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(RECORD.read_text().replace("scenario: venezuela", "scenario: taiwan"))
    done = escalate_cli("backtest", SCENARIO, other, "--worlds", "20")
    assert done.returncode == 2
    assert re.search(r"other\.yaml:\d+:\d+: scenario: .*'taiwan'", done.stderr), done.stderr
    assert "Traceback" not in done.stderr


def test_validate_refuses_a_record_past_the_horizon_at_its_line(tmp_path):
    """An as_of at or after the scenario's horizon: nothing is left to forecast. validate,
    which finds the scenario beside the file, says so at the line of as_of, exit 2."""
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "venezuela.yaml").write_text(SCENARIO.read_text())
    late = folder / "late.yaml"
    late.write_text(RECORD.read_text().replace("as_of: 2026-01-31", "as_of: 2028-01-31"))
    done = escalate_cli("validate", late)
    assert done.returncode == 2
    assert re.search(r"late\.yaml:\d+:\d+: as_of: 2028-01-31 is not before", done.stderr)


def test_nowcast_marks_its_steps_surprise_in_the_json():
    done = escalate_cli("nowcast", SCENARIO, RECORD, "--worlds", "60", "--seed", "2",
                        "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    updates = json.loads(done.stdout)["updates"]
    assert all(0.0 <= u["p_by"] <= 1.0 for u in updates)
    assert all(isinstance(u["unexpected"], bool) for u in updates)
    shares = [u["evidence_share"] for u in updates]
    assert np.isclose(sum(shares), 1.0)
    assert "the news up to 2025-12-10" in done.stderr  # dates, not days, in the progress


def test_asked_questions_are_scored_while_open_and_settled_by_the_record():
    """--questions: a trigger's onset and stages by dates within the record. Each is scored at
    the origins where it is still open (the mobilization of Nov 11 only from the start; the
    invasion of Jan 3 up to Dec 10), its outcome read from the record."""
    model = escalate.load(SCENARIO)
    asked = ["p_fired:venezuela_mobilizes@2025-11-30", "p_reached:invasion@2026-01-10",
             "p_reached:full_scale_war@2026-01-10"]  # fmt: skip
    result = backtest(model, RECORD, worlds=40, seed=1, questions=asked)
    by_question = result.rows.groupby("question")
    assert by_question["origin"].apply(list).to_dict() == {
        asked[0]: [0.0],
        asked[1]: [0.0, 4.0, 33.0],
        asked[2]: [0.0, 4.0, 33.0, 57.0, 59.0],
    }
    assert by_question["outcome"].apply(set).to_dict() == {asked[0]: {1}, asked[1]: {1},
                                                           asked[2]: {0}}  # fmt: skip
