"""The shipped scenarios, the JSON Schema, resolved rates and `escalate show`."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest

import escalate
from escalate.errors import EscalateError
from escalate.scenario._yaml import read_yaml
from escalate.scenario.model import Scenario
from escalate.scenario.resolve import resolve

from ..conftest import ROOT, SCENARIOS


def test_the_shipped_scenarios_are_there():
    names = {path.name for path in SCENARIOS}
    assert {"venezuela.yaml", "tutorial.yaml"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shipped_scenario_validates(cli, path):
    result = cli("validate", path)
    assert result.exit_code == 0, result.output
    assert "valid" in result.stdout
    assert "warning" not in result.stderr


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_runs_and_where_memoryless_solves(path):
    """Each shipped scenario simulates; where every timing is exponential it also solves,
    and the two agree on the headline figure within 4 standard errors."""
    from escalate.engine.compile import compile_scenario

    model = escalate.load(path)
    simulated = escalate.simulate(model, 100_000, seed=3)
    answer = simulated.headline()
    assert 0.0 < answer["p_reached"] < 1.0, answer
    if compile_scenario(model).is_markov:
        exact = escalate.solve(model).headline()["p_reached"]
        se = math.sqrt(exact * (1 - exact) / 100_000)
        assert abs(answer["p_reached"] - exact) < 4 * se, (answer, exact)


def _features(model) -> set[str]:
    """The language features a scenario uses, beyond stages, transitions and triggers."""
    found = {f"time_unit {model.time_unit}"}
    for trigger in model.triggers.values():
        onset = trigger.onset
        timings = (
            [] if onset is None else list(onset.values()) if isinstance(onset, dict) else [onset]
        )
        found |= {"onset at" for t in timings if hasattr(t, "at")}
        found |= {"onset when" for t in timings if getattr(t, "when", None)}
        if trigger.offset is not None:
            found.add("offset")
    for transition in model.transitions:
        found |= {"effects"} if transition.effects else set()
        found |= {f"after {transition.after.dist}"} if transition.after is not None else set()
    return found


@pytest.mark.parametrize("name", ["taiwan", "india-pakistan", "essequibo"])
def test_each_ladder_uses_triggers_and_something_venezuela_does_not(name):
    """The ladders beside the Venezuela file prove the language general: each has triggers
    and at least one feature the Venezuela file does not use."""
    model = escalate.load(ROOT / "scenarios" / f"{name}.yaml")
    assert len(model.triggers) >= 2
    assert _features(model) - _features(escalate.load(ROOT / "scenarios" / "venezuela.yaml"))


def test_the_readme_gallery_is_current():
    """The gallery is what `python scripts/gallery.py` makes from the shipped scenarios now."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gallery.py"), "--check"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_validate_all_shipped_at_once(cli):
    assert cli("validate", *SCENARIOS).exit_code == 0


@pytest.fixture(scope="module")
def schema():
    document = Scenario.json_schema()
    jsonschema.Draft202012Validator.check_schema(document)
    return document


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_schema_validates_shipped_scenarios(schema, path):
    data = read_yaml(path).data  # YAML 1.2, as editors read it: a date is a string
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_rejects_unknown_keys(schema):
    data = read_yaml(ROOT / "scenarios" / "tutorial.yaml").data
    data["horizn"] = 3
    assert not jsonschema.Draft202012Validator(schema).is_valid(data)


def test_schema_command_prints_the_same_schema(cli, schema, tmp_path):
    result = cli("schema")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == schema
    out = tmp_path / "schema.json"
    assert cli("schema", "-o", out).exit_code == 0
    assert json.loads(out.read_text()) == schema


def test_venezuela_is_marked_as_illustration():
    scenario = escalate.load(ROOT / "scenarios" / "venezuela.yaml")
    text = (scenario.description or "").lower()
    assert "illustrat" in text and "not" in text and "intelligence" in text
    assert scenario.start == "interdiction_strikes"
    assert {"full_scale_war", "settlement", "protracted_war"} <= set(scenario.stages)
    for name, parameter in scenario.parameters.items():
        assert parameter.uncertain is not None, name
        assert parameter.source, name


def test_venezuela_numbers_are_all_named_parameters():
    scenario = escalate.load(ROOT / "scenarios" / "venezuela.yaml")
    from escalate.scenario.rules import number_slots

    literal = [slot.path for slot in number_slots(scenario) if not isinstance(slot.raw, str)]
    literal = [p for p in literal if p[-1] != "initial"]  # default initial 0 is not a number
    assert literal == []


def test_venezuela_is_memoryless():
    assert resolve(escalate.load(ROOT / "scenarios" / "venezuela.yaml")).is_markov


TIMINGS = """\
scenario: timings
horizon: 100
start: a
parameters:
  p: {value: 0.5}
stages:
  a: {}
  b: {}
  c: {}
  d: {}
  e: {}
  f: {terminal: true}
triggers:
  every: {onset: {chance: 0.1, within: 10}}
  some: {onset: {a: {mean: 4}, b: {rate: 0.5}}}
  fixed: {onset: {at: 7}, initial: p}
transitions:
  - {from: a, to: b, rate: 0.25, when: {every: 3}}
  - {from: b, to: c, mean: 8, requires: [some, fixed]}
  - {from: c, to: d, chance: p, within: 10}
  - {from: d, to: e, after: {dist: exponential, mean: 5}}
  - {from: e, to: f, after: {dist: gamma, mean: 5, sd: 2}}
"""


def test_resolve_turns_every_exponential_form_into_a_rate():
    r = resolve(escalate.loads(TIMINGS))
    rates = [t.rate for t in r.transitions]
    assert rates[0] == 0.25
    assert rates[1] == 1 / 8
    assert math.isclose(rates[2], -math.log(0.5) / 10, rel_tol=1e-15)
    assert rates[3] == 1 / 5
    assert rates[4] is None and r.transitions[4].mean_time == pytest.approx(5)
    assert not r.is_markov
    every, some, fixed = r.triggers
    assert every.onset_rates == pytest.approx(dict.fromkeys("abcde", -math.log(0.9) / 10))
    assert some.onset_rates == {"a": 0.25, "b": 0.5}
    assert (fixed.at, fixed.initial) == (7, 0.5)
    assert r.start == {"a": 1.0}


def test_resolve_applies_and_checks_overrides():
    scenario = escalate.loads(TIMINGS)
    r = resolve(scenario, {"p": 0.9})
    assert math.isclose(r.transitions[2].rate, -math.log(0.1) / 10)
    assert r.triggers[2].initial == 0.9
    with pytest.raises(EscalateError, match="unknown parameter 'pp'; did you mean 'p'"):
        resolve(scenario, {"pp": 0.1})
    with pytest.raises(EscalateError, match="strictly between 0 and 1, but parameter 'p' is 1"):
        resolve(scenario, {"p": 1.0})


def test_show_prints_effective_rates_and_sources(cli):
    result = cli("show", ROOT / "scenarios" / "tutorial.yaml", "--set", "talks_mean=40")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for text in ("Stages", "Transitions", "Triggers", "Parameters", "0.025", "(set)", "Invented"):
        assert text in out


def test_show_venezuela(cli):
    result = cli("show", ROOT / "scenarios" / "venezuela.yaml")
    assert result.exit_code == 0, result.output
    assert "full_scale_war" in result.stdout


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("talks_mean", "expected NAME=VALUE"),
        ("talks_mean=abc", "is not a number"),
        ("nope=3", "unknown parameter 'nope'"),
        ("clash_chance=1.5", "strictly between 0 and 1"),
    ],
)
def test_show_rejects_bad_settings(cli, setting, message):
    result = cli("show", ROOT / "scenarios" / "tutorial.yaml", "--set", setting)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(cli):
    assert cli("validate").exit_code == 2
    assert cli("frobnicate").exit_code == 2
    assert cli("show").exit_code == 2


def test_no_file_of_the_repository_points_outside_it():
    """A clone is all a user has: no tracked file names a contract kept elsewhere, and every
    relative path that climbs ("../x") lands inside the repository."""
    import re
    import subprocess as sp

    files = sp.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    elsewhere = re.compile("DESIGN" + r"\.md|shared/(sources|DESIGN)")
    climbing = re.compile(r"(?:\.\./)+[\w.-][\w./-]*")
    outside = []
    for name in files.stdout.split():
        path = ROOT / name
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue  # a figure or a binary: it names nothing
        outside += [f"{name}: {m.group(0)}" for m in elsewhere.finditer(text)]
        for match in climbing.finditer(text):
            target = (path.parent / match.group(0)).resolve()
            if not target.is_relative_to(ROOT.resolve()):
                outside.append(f"{name}: {match.group(0)}")
    assert outside == []
