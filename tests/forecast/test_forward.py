"""The forward algorithm of nowcast on records with a known likelihood (issue 32): events at
one instant, `at` jumps after the scenario's horizon or at an entry's instant, long quiet
records, trigger offsets and triggers seen on at the start; each against a closed form."""

from __future__ import annotations

import json
import math
import subprocess

import pytest

import escalate
from escalate.engine.compile import compile_scenario
from escalate.forecast.forward import forecast, forward
from escalate.forecast.observations import Observations

from ..conftest import ESCALATE

A, B, C = 0, 1, 2
X, Y = 0, 1

LATE_AT = """\
scenario: late
horizon: 100
start: a
stages: {a: {}, b: {terminal: true}}
triggers:
  x: {onset: {at: 150}}
transitions:
  - {from: a, to: b, rate: 0.01, when: {x: 5}}
"""

ONE_DAY = """\
scenario: day
horizon: 100
start: a
stages: {a: {}, b: {}, c: {terminal: true}}
transitions:
  - {from: a, to: b, rate: 0.02}
  - {from: a, to: c, rate: 0.01}
  - {from: b, to: c, rate: 0.05}
  - {from: b, to: a, rate: 0.01}
"""


def _filter(text: str, obs: Observations):
    c = compile_scenario(escalate.loads(text))
    return c, forward(c, obs)


def test_an_at_trigger_after_the_scenario_s_horizon_still_comes_on():
    """Quiet to day 60 and a forecast to day 200, x coming on at day 150 (after the horizon
    of 100): P(b by 200) = 1 - e^(-0.01 90 - 0.05 50); and records reaching past the horizon
    are scored with x on from day 150."""
    c, filtered = _filter(LATE_AT, Observations(60.0, [(A, 0.0)]))
    assert filtered.log_likelihood == pytest.approx(-0.6, abs=1e-12)
    figures = forecast(c, filtered, Observations(60.0, [(A, 0.0)]), 200.0)
    assert figures.p_reached[B] == pytest.approx(1 - math.exp(-0.01 * 90 - 0.05 * 50), abs=1e-12)
    _, quiet = _filter(LATE_AT, Observations(160.0, [(A, 0.0)]))
    assert quiet.log_likelihood == pytest.approx(-(0.01 * 150 + 0.05 * 10), abs=1e-12)
    _, entered = _filter(LATE_AT, Observations(170.0, [(A, 0.0), (B, 155.0)]))
    expected = math.log(0.05) - 0.01 * 150 - 0.05 * 5
    assert entered.log_likelihood == pytest.approx(expected, abs=1e-12)


def test_two_entries_on_one_day_are_two_transitions():
    """a -> b -> c on day 10: log(0.02) - 0.3 + log(0.05) (b left at once), not a -> c; and
    a -> b -> a on day 10, then quiet to day 20: log(0.02) + log(0.01) - 0.3 - 0.3, in a."""
    _, through = _filter(ONE_DAY, Observations(10.0, [(A, 0.0), (B, 10.0), (C, 10.0)]))
    assert through.log_likelihood == pytest.approx(math.log(0.02) - 0.3 + math.log(0.05), abs=1e-12)
    obs = Observations(20.0, [(A, 0.0), (B, 10.0), (A, 10.0)])
    c, back = _filter(ONE_DAY, obs)
    expected = math.log(0.02) + math.log(0.01) - 0.6
    assert back.log_likelihood == pytest.approx(expected, abs=1e-12)
    assert back.distribution[back.chain.stage_of == A].sum() == pytest.approx(1.0, abs=1e-12)
    figures = forecast(c, back, obs)
    assert figures.p_reached[B] == 1.0 and 0.0 < figures.p_reached[C] < 1.0


def test_a_long_quiet_record_does_not_underflow():
    """No exit at 1.5 a day for 600 days: log-likelihood -900 (e^-900 underflows a double)."""
    text = (
        "scenario: quiet\nhorizon: 1000\nstart: a\nstages: {a: {}, b: {terminal: true}}\n"
        "transitions:\n  - {from: a, to: b, rate: 1.5}\n"
    )
    _, filtered = _filter(text, Observations(600.0, [(A, 0.0)]))
    assert filtered.log_likelihood == pytest.approx(-900.0, abs=1e-9)
    _, entered = _filter(text, Observations(700.0, [(A, 0.0), (B, 650.0)]))
    assert entered.log_likelihood == pytest.approx(math.log(1.5) - 975.0, abs=1e-9)


def test_an_entry_at_the_instant_of_an_at_jump_takes_the_hazard_before_it():
    """x comes on by `at` on day 10, multiplying a -> b's 0.01 by 5; b entered on day 10:
    the entry happened under the hazard just before the jump (the left limit), 0.01."""
    text = (
        "scenario: left\nhorizon: 100\nstart: a\nstages: {a: {}, b: {}, c: {terminal: true}}\n"
        "triggers: {x: {onset: {at: 10}}}\n"
        "transitions:\n  - {from: a, to: b, rate: 0.01, when: {x: 5}}\n"
        "  - {from: b, to: c, rate: 0.02, when: {x: 3}}\n"
    )
    _, filtered = _filter(text, Observations(20.0, [(A, 0.0), (B, 10.0)]))
    # in b from day 10 with x on (the jump came after the entry): exit at 0.06 for 10 days
    expected = math.log(0.01) - 0.1 - 0.6
    assert filtered.log_likelihood == pytest.approx(expected, abs=1e-12)
    assert filtered.distribution[(filtered.chain.mask_of & 1) == 1].sum() == pytest.approx(1.0)


def test_a_trigger_that_switches_off_and_on_again():
    """y on at day 10 (onset 0.02), off at day 25 (offset 0.1), nothing else to day 40, a's
    exit 0.01 doubled while y is on: the product of hazards and survivals."""
    text = (
        "scenario: off\nhorizon: 100\nstart: a\nstages: {a: {}, b: {terminal: true}}\n"
        "triggers: {y: {onset: {rate: 0.02}, offset: {rate: 0.1}}}\n"
        "transitions:\n  - {from: a, to: b, rate: 0.01, when: {y: 2}}\n"
    )
    obs = Observations(40.0, [(A, 0.0)], {X: [(10.0, True), (25.0, False)]})
    _, filtered = _filter(text, obs)
    expected = (
        -(0.02 + 0.01) * 10 + math.log(0.02)
        - (0.1 + 0.02) * 15 + math.log(0.1)
        - (0.02 + 0.01) * 15
    )  # fmt: skip
    assert filtered.log_likelihood == pytest.approx(expected, abs=1e-12)


def test_a_trigger_seen_on_at_the_start():
    """x on at the start with probability 0.3, seen on from the start; no exit by day 50
    at 0.01 tripled while x is on: log 0.3 - 1.5."""
    text = (
        "scenario: start\nhorizon: 100\nstart: a\nstages: {a: {}, b: {terminal: true}}\n"
        "triggers: {x: {initial: 0.3}}\n"
        "transitions:\n  - {from: a, to: b, rate: 0.01, when: {x: 3}}\n"
    )
    _, filtered = _filter(text, Observations(50.0, [(A, 0.0)], {X: [(0.0, True)]}))
    assert filtered.log_likelihood == pytest.approx(math.log(0.3) - 1.5, abs=1e-12)


def test_two_triggers_switching_on_one_day_in_either_order():
    """x (onset 0.01) and y (onset 0.02, tripled while x is on) both come on at day 10 with
    no stage entry: the orders x, y (0.01 x 0.06) and y, x (0.02 x 0.01) summed; then no
    exit (0.005) to day 30."""
    text = (
        "scenario: two\nhorizon: 100\nstart: a\nstages: {a: {}, b: {terminal: true}}\n"
        "triggers:\n  x: {onset: {rate: 0.01}}\n  y: {onset: {rate: 0.02, when: {x: 3}}}\n"
        "transitions:\n  - {from: a, to: b, rate: 0.005}\n"
    )
    obs = Observations(30.0, [(A, 0.0)], {X: [(10.0, True)], Y: [(10.0, True)]})
    _, filtered = _filter(text, obs)
    expected = -(0.01 + 0.02 + 0.005) * 10 + math.log(0.01 * 0.06 + 0.02 * 0.01) - 0.005 * 20
    assert filtered.log_likelihood == pytest.approx(expected, abs=1e-12)


def test_the_installed_nowcast_gives_the_three_known_answers(tmp_path):
    """The reproductions of issue 32 through `escalate nowcast` (scenarios with no uncertain
    parameter: one world, its evidence exact): 0.9666, -7.208 and -900."""
    cases = {
        "late": (LATE_AT, "as_of: 60\npath: [{stage: a, at: start}]", ["--horizon", "140"]),
        "day": (ONE_DAY, "as_of: 10\npath: [{stage: a, at: start}, {stage: b, at: 10}, "
                "{stage: c, at: 10}]", []),
        "quiet": ("scenario: quiet\nhorizon: 1000\nstart: a\nstages: {a: {}, b: {terminal: "
                  "true}}\ntransitions:\n  - {from: a, to: b, rate: 1.5}\n",
                  "as_of: 600\npath: [{stage: a, at: start}]", []),
    }  # fmt: skip
    answers = {}
    for name, (scenario, record, flags) in cases.items():
        (tmp_path / f"{name}.yaml").write_text(scenario)
        scenario_id = scenario.split("\n", 1)[0].split(": ")[1]
        (tmp_path / f"{name}-record.yaml").write_text(f"scenario: {scenario_id}\n{record}\n")
        done = subprocess.run(
            [ESCALATE, "nowcast", tmp_path / f"{name}.yaml", tmp_path / f"{name}-record.yaml",
             "--format", "json", *flags],
            capture_output=True, text=True,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "one world (no parameter is uncertain" in done.stderr
        answers[name] = json.loads(done.stdout)
    late = answers["late"]
    assert late["horizon"] == 200.0 and late["worlds"] == 1
    assert late["stages"]["b"]["after"] == pytest.approx(1 - math.exp(-0.9 - 2.5), abs=1e-9)
    expected_day = math.log(0.02) - 0.3 + math.log(0.05)
    assert answers["day"]["log_evidence"] == pytest.approx(expected_day, abs=1e-9)
    assert answers["quiet"]["log_evidence"] == pytest.approx(-900.0, abs=1e-9)


def test_a_switch_at_the_instant_of_an_at_jump_takes_the_hazard_before_it():
    """x comes on by `at` on day 10; y (onset 0.02, 5x while x is on) seen coming on on day
    10 too: its onset happened before the jump (the left limit), at 0.02; then y and x on,
    no exit (0.01) to day 20."""
    text = (
        "scenario: both\nhorizon: 100\nstart: a\nstages: {a: {}, b: {terminal: true}}\n"
        "triggers:\n  x: {onset: {at: 10}}\n  y: {onset: {rate: 0.02, when: {x: 5}}}\n"
        "transitions:\n  - {from: a, to: b, rate: 0.01}\n"
    )
    _, filtered = _filter(text, Observations(20.0, [(A, 0.0)], {Y: [(10.0, True)]}))
    assert filtered.log_likelihood == pytest.approx(-0.3 + math.log(0.02) - 0.1, abs=1e-12)


def test_an_onset_on_the_day_of_an_entry_is_its_own_event():
    """b entered and y (onset 0.02, no effect of any transition) seen on, both on day 10: two
    events in either order (0.01 x 0.02 twice), not an impossible effect; then no exit from b
    (0.01) to day 20. When the entry's transition can switch y, y is its effect."""
    text = (
        "scenario: day\nhorizon: 100\nstart: a\nstages: {a: {}, b: {}, c: {terminal: true}}\n"
        "triggers: {y: {onset: {rate: 0.02}}}\n"
        "transitions:\n  - {from: a, to: b, rate: 0.01}\n  - {from: b, to: c, rate: 0.01}\n"
    )
    obs = Observations(20.0, [(A, 0.0), (B, 10.0)], {X: [(10.0, True)]})
    _, filtered = _filter(text, obs)
    assert filtered.log_likelihood == pytest.approx(-0.3 + math.log(2 * 0.01 * 0.02) - 0.1)
    _, effect = _filter(text.replace("rate: 0.01}\n  - {from: b", "rate: 0.01, effects: {y: 0.5}}"
                                     "\n  - {from: b"), obs)  # fmt: skip
    assert effect.log_likelihood == pytest.approx(-0.3 + math.log(0.01 * 0.5) - 0.1, abs=1e-12)


def test_an_entry_at_the_start_may_switch_a_trigger_seen_on_from_the_start():
    """b entered at t = 0 by a transition that switches x on (x off at the start), x seen on
    from the start: x came on with the entry; then in b at 0.01 doubled for 10 days."""
    text = (
        "scenario: zero\nhorizon: 100\nstart: a\nstages: {a: {}, b: {}, c: {terminal: true}}\n"
        "triggers: {x: {}}\n"
        "transitions:\n  - {from: a, to: b, rate: 0.1, effects: {x: on}}\n"
        "  - {from: b, to: c, rate: 0.01, when: {x: 2}}\n"
    )
    obs = Observations(10.0, [(A, 0.0), (B, 0.0)], {X: [(0.0, True)]})
    _, filtered = _filter(text, obs)
    assert filtered.log_likelihood == pytest.approx(math.log(0.1) - 0.2, abs=1e-12)


def test_a_trigger_switched_off_by_an_effect_can_be_recorded(tmp_path):
    """x (no offset) is switched off by b -> c's effect: a record of c entered and x off on
    day 20 reads (no "no offset" refusal) and scores the effect: x on from the start (0.5),
    a -> b at 0.02 on day 5, b -> c at 0.03 (x on: doubled) on day 20, quiet in c to day 30."""
    from escalate.forecast.observations import read_observations

    text = (
        "scenario: off\nhorizon: 100\nstart: a\n"
        "stages: {a: {}, b: {}, c: {}, d: {terminal: true}}\ntriggers: {x: {initial: 0.5}}\n"
        "transitions:\n  - {from: a, to: b, rate: 0.02}\n"
        "  - {from: b, to: c, rate: 0.03, when: {x: 2}, effects: {x: off}}\n"
        "  - {from: c, to: d, rate: 0.01}\n"
    )
    model = escalate.loads(text)
    record = tmp_path / "record.yaml"
    record.write_text(
        "scenario: off\nas_of: 30\npath: [{stage: a, at: start}, {stage: b, at: 5}, "
        "{stage: c, at: 20}]\ntriggers: {x: {on: [start], off: [20]}}\n"
    )
    obs = read_observations(record, model)
    filtered = forward(compile_scenario(model), obs)
    expected = math.log(0.5) - 0.1 + math.log(0.02) - 0.9 + math.log(0.06) - 0.1
    assert filtered.log_likelihood == pytest.approx(expected, abs=1e-12)
