"""The richer language (offsets, onset `when`, effects, dates) against closed forms.

Each figure comes from the exact solver (to 1e-9) and from the Monte Carlo engine (within 4
standard errors, fixed seed), and is compared with the textbook answer: a two-state Markov
switch, a thinned transition, and the "trigger 1 then trigger 2" race.
"""

from __future__ import annotations

import json
import math
import subprocess

import pandas as pd
import pytest

import escalate
from escalate.output.report import build_report

from ..conftest import ESCALATE

EXACT = 1e-9
N = 400_000


def both(text: str):
    model = escalate.loads(text)
    return escalate.solve(model), escalate.simulate(model, n=N, seed=11)


def close(mc_value: float, se: float, exact: float) -> bool:
    return abs(mc_value - exact) <= 4 * se + 1e-12


def test_onset_and_offset_switch_like_a_two_state_chain():
    a, b, t = 0.01, 0.03, 200.0
    text = f"""
scenario: switch
horizon: {t}
start: s
stages: {{s: {{}}, end: {{terminal: true}}}}
triggers:
  x: {{onset: {{rate: {a}}}, offset: {{rate: {b}}}}}
  never: {{}}
transitions:
  - {{from: s, to: end, rate: 1.0, when: {{x: 1.0}}, requires: [never]}}
"""
    exact, mc = both(text)
    p_on = a / (a + b) * (1 - math.exp(-(a + b) * t))
    time_on = a / (a + b) * (t - (1 - math.exp(-(a + b) * t)) / (a + b))
    x = exact.triggers["x"]
    assert abs(x["p_on_at_horizon"] - p_on) < EXACT
    assert abs(x["time_on"] - time_on) < 1e-7
    assert abs(x["p_fired"] - (1 - math.exp(-a * t))) < EXACT  # ever on: the first onset
    y = mc.triggers["x"]
    assert close(y["p_on_at_horizon"], y["p_on_at_horizon_se"], p_on)
    assert close(y["time_on"], y["time_on_se"], time_on)
    assert close(y["p_fired"], y["p_fired_se"], 1 - math.exp(-a * t))


def test_a_trigger_on_at_the_start_counts_its_time_on_until_it_switches_off():
    # on at t = 0 for certain, then off at rate b: the kernel's net sum of time on starts
    # from the trajectory's start, and a trigger on from the start to the horizon (5% of
    # trajectories) counts as fired though it never switched
    b, t = 0.02, 150.0
    text = f"""
scenario: start-on
horizon: {t}
start: s
stages: {{s: {{}}, end: {{terminal: true}}}}
triggers:
  x: {{initial: 1.0, offset: {{rate: {b}}}}}
  never: {{}}
transitions:
  - {{from: s, to: end, rate: 1.0, requires: [never]}}
"""
    exact, mc = both(text)
    time_on = (1 - math.exp(-b * t)) / b
    x = exact.triggers["x"]
    assert abs(x["time_on"] - time_on) < 1e-7
    y = mc.triggers["x"]
    assert y["p_fired"] == 1.0
    assert close(y["p_on_at_horizon"], y["p_on_at_horizon_se"], math.exp(-b * t))
    assert close(y["time_on"], y["time_on_se"], time_on)


def test_a_trigger_on_at_the_start_that_an_effect_switches_off_counts_as_fired():
    # the effect switches it off through the kernel's _toggle, which marks only switches on:
    # fired must come from its being on at the start
    r, t = 0.05, 40.0
    text = f"""
scenario: start-on-effect-off
horizon: {t}
start: s
stages: {{s: {{}}, end: {{terminal: true}}}}
triggers:
  x: {{initial: 1.0}}
transitions:
  - {{from: s, to: end, rate: {r}, effects: {{x: off}}}}
"""
    exact, mc = both(text)
    time_on = (1 - math.exp(-r * t)) / r
    assert abs(exact.triggers["x"]["time_on"] - time_on) < 1e-7
    y = mc.triggers["x"]
    assert y["p_fired"] == 1.0
    assert close(y["p_on_at_horizon"], y["p_on_at_horizon_se"], math.exp(-r * t))
    assert close(y["time_on"], y["time_on_se"], time_on)


def test_an_effect_with_probability_p_fires_p_times_the_transition():
    p, r, t = 0.3, 0.01, 100.0
    text = f"""
scenario: effect
horizon: {t}
start: s
parameters: {{chance_on: {{value: {p}}}}}
stages: {{s: {{}}, end: {{terminal: true}}}}
triggers:
  x: {{}}
transitions:
  - {{from: s, to: end, rate: {r}, effects: {{x: chance_on}}, when: {{x: 1.0}}}}
"""
    exact, mc = both(text)
    expected = p * (1 - math.exp(-r * t))
    assert abs(exact.triggers["x"]["p_fired"] - expected) < EXACT
    y = mc.triggers["x"]
    assert close(y["p_fired"], y["p_fired_se"], expected)


def test_an_onset_when_ratio_gives_the_two_step_race():
    a, b, ratio, t = 0.01, 0.002, 5.0, 300.0
    text = f"""
scenario: race
horizon: {t}
start: s
stages: {{s: {{}}, end: {{terminal: true}}}}
triggers:
  first: {{onset: {{rate: {a}}}}}
  second: {{onset: {{rate: {b}, when: {{first: {ratio}}}}}}}
  never: {{}}
transitions:
  - {{from: s, to: end, rate: 1.0, when: {{first: 1.0, second: 1.0}}, requires: [never]}}
"""
    exact, mc = both(text)
    # P(second still off at t): off throughout with first off, or first at u then the faster rate
    c = a + b - ratio * b
    survive = math.exp(-(a + b) * t) + a * math.exp(-ratio * b * t) * (1 - math.exp(-c * t)) / c
    expected = 1 - survive
    assert abs(exact.triggers["second"]["p_fired"] - expected) < EXACT
    y = mc.triggers["second"]
    assert close(y["p_fired"], y["p_fired_se"], expected)


def test_dates_place_horizon_at_and_metrics():
    text = """
scenario: dated
start_date: 2026-01-01
horizon: 2026-12-31
start: s
stages: {s: {}, end: {terminal: true}}
triggers:
  deadline: {onset: {at: 2026-03-01}}
transitions:
  - {from: s, to: end, rate: 0.01, when: {deadline: 2.0}}
"""
    model = escalate.loads(text)
    exact = escalate.solve(model)
    assert exact.horizon == 364.0
    summary = exact.to_dict()
    assert summary["start_date"] == "2026-01-01" and summary["horizon_date"] == "2026-12-31"
    p50 = summary["stages"]["end"]["time_to_reach"]["p50"]
    assert summary["stages"]["end"]["time_to_reach"]["p50_date"] == model.date_of(p50).isoformat()
    # P(end by 2026-03-01 = day 59): the deadline doubles the rate only after it
    value, _ = exact.metric("p_reached:end@2026-03-01")
    assert abs(value - (1 - math.exp(-0.01 * 59))) < 1e-9
    with pytest.raises(escalate.EscalateError, match="before start_date"):
        exact.metric("p_reached:end@2025-12-31")


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ("horizon: 2026-12-31", "needs start_date"),
        ("start_date: 2026-01-01\ntime_unit: month\nhorizon: 12", "time_unit day or week"),
        ("start_date: 2026-01-01\nhorizon: 2026-13-45", "is not a date"),
        ("start_date: 2026-01-01\nhorizon: 2025-06-30", "before start_date"),
    ],
)
def test_bad_dates_are_located(snippet, message):
    text = f"""scenario: bad
{snippet}
start: s
stages: {{s: {{}}, end: {{terminal: true}}}}
transitions:
  - {{from: s, to: end, rate: 0.01}}
"""
    with pytest.raises(escalate.ScenarioError, match=message):
        escalate.loads(text)


BASE = """scenario: bad
horizon: 100
start: s
parameters: {{q: {{value: 0.5, uncertain: {{dist: uniform, low: 0.2, high: 1.5}}}}}}
stages: {{s: {{}}, end: {{terminal: true}}}}
triggers:
  x: {x}
  y: {{onset: {{rate: 0.01}}}}
transitions:
  - {{from: s, to: end, rate: 0.01, when: {{x: 2.0, y: 2.0}}{effects}}}
"""


@pytest.mark.parametrize(
    ("x", "effects", "message"),
    [
        ("{onset: {rate: 0.01, when: {x: 2.0}}}", "", "may not name its own trigger"),
        ("{offset: {rate: 0.01, when: {x: 2.0}}}", "", "may not name its own trigger"),
        ("{onset: {rate: 0.01}}", ", effects: {z: on}", "unknown trigger 'z'"),
        ("{onset: {rate: 0.01}}", ", effects: {y: maybe}", "unknown parameter 'maybe'"),
        ("{onset: {rate: 0.01}}", ", effects: {y: [1]}", "an effect is on, off, or a"),
        ("{onset: {rate: 0.01}}", ", effects: {y: 1.5}", "a probability in"),
        ("{onset: {rate: 0.01}}", ", effects: {y: q}", "is not a probability in"),
    ],
)
def test_bad_switches_and_effects_are_located(x, effects, message):
    with pytest.raises(escalate.ScenarioError, match=message) as caught:
        escalate.loads(BASE.format(x=x, effects=effects))
    assert caught.value.issues[0].line > 0


def test_the_installed_command_takes_a_date_horizon(tmp_path):
    path = tmp_path / "dated.yaml"
    path.write_text(
        "scenario: dated\nstart_date: 2026-01-01\nhorizon: 365\nstart: s\n"
        "stages: {s: {}, end: {terminal: true}}\n"
        "transitions:\n  - {from: s, to: end, rate: 0.01}\n"
    )
    done = subprocess.run(
        [ESCALATE, "solve", str(path), "--horizon", "2026-07-01", "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert '"horizon": 181.0' in done.stdout and '"horizon_date": "2026-07-01"' in done.stdout
    bad = subprocess.run(
        [ESCALATE, "solve", str(path), "--horizon", "2025-07-01"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--horizon" in bad.stderr and "before start_date" in bad.stderr


# --- the new outputs and metrics through every engine and command ---------------------------

SWITCH = """scenario: switch
start_date: 2026-01-01
horizon: 200
start: s
parameters:
  onset_rate: {value: 0.01, uncertain: {dist: uniform, low: 0.005, high: 0.02}}
  chance_on: {value: 0.3, uncertain: {dist: uniform, low: 0.1, high: 0.5}}
stages: {s: {}, after: {}}
triggers:
  x: {onset: {rate: onset_rate}, offset: {rate: 0.03}}
  y: {}
transitions:
  - {from: s, to: after, rate: 0.01, effects: {y: chance_on}}
"""
SWITCH_METRICS = ["p_fired:y", "p_on_at_horizon:x", "time_on:x", "p_reached:after@2026-03-01"]


def switch_closed_forms(chance_on: float, onset_rate: float = 0.01) -> dict[str, float]:
    """`after` is not terminal, so x switches on (a) and off (b = 0.03) whatever the stage."""
    a, b, r, t = onset_rate, 0.03, 0.01, 200.0
    return {
        "p_fired:y": chance_on * (1 - math.exp(-r * t)),
        "p_on_at_horizon:x": a / (a + b) * (1 - math.exp(-(a + b) * t)),
        "time_on:x": a / (a + b) * (t - (1 - math.exp(-(a + b) * t)) / (a + b)),
        "p_reached:after@2026-03-01": 1 - math.exp(-r * 59),  # day 59
    }


def test_the_installed_sweep_gives_the_new_metrics_exactly(tmp_path):
    path = tmp_path / "switch.yaml"
    path.write_text(SWITCH)
    metrics = [flag for m in SWITCH_METRICS for flag in ("--metric", m)]
    done = subprocess.run(
        [ESCALATE, "sweep", str(path), "--vary", "chance_on=0.1:0.5:3", *metrics,
         "--format", "json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    points = json.loads(done.stdout)["points"]
    assert [round(p["chance_on"], 9) for p in points] == [0.1, 0.3, 0.5]
    for point in points:
        for metric, expected in switch_closed_forms(point["chance_on"]).items():
            assert abs(point[metric] - expected) < 1e-7, metric


def test_a_simulated_sweep_agrees_with_the_closed_forms():
    model = escalate.loads(SWITCH)
    swept = escalate.sweep(
        model, {"chance_on": [0.2, 0.4]}, SWITCH_METRICS, n=200_000, seed=5, engine="monte-carlo"
    )
    for _, point in swept.frame.iterrows():
        for metric, expected in switch_closed_forms(point["chance_on"]).items():
            assert close(point[metric], point[f"{metric}_se"], expected), metric


def test_a_one_at_a_time_sensitivity_reads_time_on_at_the_quantiles():
    model = escalate.loads(SWITCH)
    tornado = escalate.sensitivity(model, "time_on:x", method="oat")
    row = tornado.frame.loc["onset_rate"]
    low, high = 0.005 + 0.05 * 0.015, 0.005 + 0.95 * 0.015  # uniform's 5% and 95% quantiles
    assert abs(row["low"] - switch_closed_forms(0.3, low)["time_on:x"]) < 1e-7
    assert abs(row["high"] - switch_closed_forms(0.3, high)["time_on:x"]) < 1e-7
    assert tornado.frame.loc["chance_on", "swing"] < 1e-9  # an effect on y cannot move x


def test_dates_stand_beside_times_in_the_run_folder_and_the_report(tmp_path):
    model = escalate.loads(SWITCH.replace("horizon: 200", "time_unit: week\nhorizon: 30"))
    result = escalate.solve(model)
    curves = result.curves
    assert list(curves.columns) == ["t", "date", "stage", "curve", "value"]
    week_3 = curves[curves.t == 3.0].date.iloc[0]
    assert str(week_3.date()) == "2026-01-22"  # 21 days after the start
    stages = result.summary()
    p50 = stages.loc["after", "time_to_reach_p50"]
    assert stages.loc["after", "time_to_reach_p50_date"] == model.date_of(p50).isoformat()
    folder = result.save(tmp_path / "run", model=model)
    assert pd.read_parquet(folder / "curves.parquet").date.iloc[-1] == curves.date.iloc[-1]
    page = build_report(folder)
    assert "(2026-01-01 to 2026-07-30)" in page  # 30 weeks
    assert "p50 as a date" in page and model.date_of(p50).isoformat() in page


def test_figures_carry_a_date_axis_only_with_a_start_date():
    from escalate.output import plots

    dated = escalate.solve(escalate.loads(SWITCH))
    undated = escalate.solve(escalate.loads(SWITCH.replace("start_date: 2026-01-01\n", "")))
    for make in (plots.reached, plots.occupancy):
        fig = make(dated)
        (top,) = fig.axes[0].child_axes
        fig.canvas.draw()
        labels = [t.get_text() for t in top.xaxis.get_ticklabels()]
        assert "2026" in labels and "Mar" in labels
        assert not make(undated).axes[0].child_axes
