"""`--params FILE`: a point overlay of parameter values, on every command that takes `--set`."""

from __future__ import annotations

import json
import subprocess

import pytest

import escalate

from ..conftest import ESCALATE

SCENARIO = """\
scenario: two-step
horizon: 100
start: a
parameters:
  up_mean: {value: 50}
  away: {value: 0.01}
stages: {a: {}, b: {}, war: {terminal: true}, calm: {terminal: true}}
transitions:
  - {from: a, to: b, mean: up_mean}
  - {from: b, to: war, mean: up_mean}
  - {from: a, to: calm, rate: away}
"""


def _escalate(*args) -> subprocess.CompletedProcess:
    return subprocess.run([ESCALATE, *map(str, args)], capture_output=True, text=True)


def _solve_json(*args) -> dict:
    done = _escalate("solve", *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_installed_commands_apply_a_parameters_file_as_set_would(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    params = tmp_path / "params.yaml"
    params.write_text("scenario: two-step\nup_mean: 20  # a posterior median\naway: 0.02\n")
    by_file = _solve_json(scenario, "--params", params)
    by_set = _solve_json(scenario, "--set", "up_mean=20", "--set", "away=0.02")
    point = _solve_json(scenario)
    p_war = by_file["stages"]["war"]["p_reached"]
    assert p_war == by_set["stages"]["war"]["p_reached"]
    assert p_war != point["stages"]["war"]["p_reached"]
    # --set wins over the file
    mixed = _solve_json(scenario, "--params", params, "--set", "up_mean=50")
    assert mixed["stages"]["war"]["p_reached"] == pytest.approx(
        _solve_json(scenario, "--set", "away=0.02")["stages"]["war"]["p_reached"], abs=0
    )
    # run, sweep and show take it too
    out = tmp_path / "run"
    done = _escalate("run", scenario, "-n", "2e4", "--seed", "1", "--params", params, "--out", out)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["overrides"] == {"up_mean": 20.0, "away": 0.02}
    done = _escalate(
        "sweep", scenario, "--vary", "away=0.02:0.03:2", "--metric", "p_reached:war",
        "--params", params, "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["points"][0]["p_reached:war"] == pytest.approx(p_war, abs=1e-12)
    shown = _escalate("show", scenario, "--params", params)
    assert shown.returncode == 0 and "0.02" in shown.stdout


@pytest.mark.parametrize(
    "text, expected",
    [
        ("up_mean: 20\nup_men: 3\n", "params.yaml:2:1: up_men: unknown parameter 'up_men' of "
         "scenario 'two-step'; did you mean 'up_mean'?"),
        ("up_mean: soon\n", "params.yaml:1:10: up_mean: must be a finite number, got 'soon'"),
        ("away: .inf\n", "params.yaml:1:7: away: must be a finite number"),
        ("up_mean: -4\n", "params.yaml:1:10: up_mean: transitions[0].mean must be positive, "
         "but parameter 'up_mean' is -4"),
        ("scenario: venezuela\nup_mean: 4\n", "params.yaml:1:11: scenario: the file is for "
         "scenario 'venezuela', not 'two-step'"),
        ("- 1\n- 2\n", "params.yaml:1:1: (document): a parameters file is a mapping"),
        ("up_mean: [1\n", "params.yaml:2:1: (document): invalid YAML"),
    ],
)  # fmt: skip
def test_a_bad_parameters_file_gets_one_located_message_and_exit_2(tmp_path, text, expected):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    params = tmp_path / "params.yaml"
    params.write_text(text)
    out = tmp_path / "run"
    done = _escalate("run", scenario, "-n", "1e3", "--params", params, "--out", out)
    assert done.returncode == 2
    assert expected in done.stderr.replace(str(tmp_path) + "/", "")
    assert "Traceback" not in done.stderr and not out.exists()
    with pytest.raises(escalate.ScenarioError) as caught:
        escalate.read_params(params, escalate.load(scenario))
    assert caught.value.issues[0].line >= 1


def test_read_params_gives_overrides_for_the_library(tmp_path):
    model = escalate.loads(SCENARIO)
    path = tmp_path / "params.yaml"
    path.write_text("up_mean: 25\n")
    overrides = escalate.read_params(path, model)
    assert overrides == {"up_mean": 25.0}
    exact = escalate.solve(model, overrides=overrides).stages["war"].p_reached
    assert exact == escalate.solve(model, overrides={"up_mean": 25}).stages["war"].p_reached
