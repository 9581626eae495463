"""Every validation rule, one bad file each: exit code 2, the line, the key path, the message.

Each case is a small scenario whose offending line carries the marker ``#!``; the test asserts
that ``escalate validate`` names that line, the key path and the message, and shows no
traceback.
"""

from __future__ import annotations

import pytest

GOOD = """\
scenario: demo
horizon: 100
start: a
parameters:
  m: {value: 20, uncertain: {dist: pert, min: 5, mode: 20, max: 60}}
stages:
  a: {label: Start}
  b: {}
  c: {terminal: true}
triggers:
  t:
    onset: {a: {mean: 50}}
transitions:
  - {from: a, to: b, mean: m, when: {t: 2}}
  - {from: b, to: c, rate: 0.1}
"""


def case(text: str, path: str, message: str):
    """A bad scenario; its offending line is the one marked ``#!`` (line 1 if none is)."""
    lines = text.splitlines()
    line = next((i + 1 for i, s in enumerate(lines) if "#!" in s), 1)
    return text, line, path, message


def edit(old: str, new: str) -> str:
    """GOOD with one line replaced (``old`` must occur exactly once)."""
    assert GOOD.count(old) == 1, old
    return GOOD.replace(old, new)


CASES = {
    # --- top level
    "unknown top-level key": case(
        edit("horizon: 100", "horizn: 100  #!"), "horizn", "unknown key 'horizn'; did you mean"
    ),
    "missing required key": case(
        edit("horizon: 100\n", ""), "horizon", "missing required key 'horizon'"
    ),
    "duplicate key": case(
        edit("  b: {}", "  b: {}\n  a: {}  #!"), "(document)", "duplicate key 'a'"
    ),
    "negative horizon": case(edit("horizon: 100", "horizon: -5  #!"), "horizon", "positive"),
    "horizon not a number": case(
        edit("horizon: 100", "horizon: two years  #!"), "horizon", "expected a number"
    ),
    "infinite horizon": case(
        edit("horizon: 100", "horizon: .inf  #!"), "horizon", "expected a finite number"
    ),
    "bad scenario id": case(
        edit("scenario: demo", "scenario: Demo Scenario  #!"), "scenario", "not a valid name"
    ),
    "unknown time unit": case(
        edit("horizon: 100", "horizon: 100\ntime_unit: days  #!"),
        "time_unit",
        "did you mean 'day'",
    ),
    # --- start
    "start names unknown stage": case(
        edit("start: a", "start: aa  #!"), "start", "unknown stage 'aa'; did you mean 'a'"
    ),
    "start probabilities do not sum to 1": case(
        edit("start: a", "start: {a: 0.5, b: 0.4}  #!"), "start", "sum to 1, but sum to 0.9"
    ),
    "start probability above 1": case(
        edit("start: a", "start: {a: 1.5, b: -0.5}  #!"), "start.a", "probability in [0, 1]"
    ),
    "start not a name or mapping": case(
        edit("start: a", "start: [a, b]  #!"), "start", "start is a stage name, or a mapping"
    ),
    # --- stages
    "stage name not a name": case(
        edit("  b: {}", "  b: {}\n  2nd stage: {}  #!"), "stages.2nd stage", "not a valid name"
    ),
    "unknown stage key": case(
        edit("  a: {label: Start}", "  a: {lable: Start}  #!"),
        "stages.a.lable",
        "did you mean 'label'",
    ),
    "terminal not a boolean": case(
        edit("  c: {terminal: true}", "  c: {terminal: yes}  #!"),
        "stages.c.terminal",
        "expected true or false, got 'yes'",
    ),
    "label not text": case(
        edit("  a: {label: Start}", "  a: {label: [S, t]}  #!"),
        "stages.a.label",
        "expected text",
    ),
    "stages is a list": case(
        edit(
            "stages:\n  a: {label: Start}\n  b: {}\n  c: {terminal: true}", "stages: [a, b, c] #!"
        ),
        "stages",
        "expected a mapping",
    ),
    # --- transitions: graph
    "transition from unknown stage": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: bb, to: c, rate: 0.1}  #!"),
        "transitions[1].from",
        "unknown stage 'bb'; did you mean 'b'",
    ),
    "transition to unknown stage": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: d, rate: 0.1}  #!"),
        "transitions[1].to",
        "unknown stage 'd'",
    ),
    "transition leaves a terminal stage": case(
        GOOD + "  - {from: c, to: a, rate: 0.1}  #!\n",
        "transitions[2].from",
        "stage 'c' is terminal",
    ),
    "self-loop": case(
        GOOD + "  - {from: b, to: b, rate: 0.1}  #!\n",
        "transitions[2].to",
        "cannot lead from a stage to itself",
    ),
    "duplicate transition": case(
        GOOD + "  - {from: b, to: c, mean: 4}  #!\n",
        "transitions[2].to",
        "already defined at line 15",
    ),
    "no transitions": case(
        GOOD[: GOOD.index("transitions:")] + "transitions: []  #!\n",
        "transitions",
        "must not be empty",
    ),
    "transition missing to": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, rate: 0.1}  #!"),
        "transitions[1].to",
        "missing required key 'to'",
    ),
    # --- transitions: timing
    "no timing form": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: c}  #!"),
        "transitions[1]",
        "no timing",
    ),
    "two timing forms": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: c, rate: 0.1, mean: 3}  #!"),
        "transitions[1].mean",
        "exactly one timing form, found rate and mean",
    ),
    "chance without within": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: c, chance: 0.3}  #!"),
        "transitions[1].chance",
        "chance needs within",
    ),
    "within without chance": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: c, within: 30}  #!"),
        "transitions[1].within",
        "within goes with chance",
    ),
    "chance of 1": case(
        edit(
            "  - {from: b, to: c, rate: 0.1}",
            "  - {from: b, to: c, chance: 1.0, within: 30}  #!",
        ),
        "transitions[1].chance",
        "strictly between 0 and 1, got 1",
    ),
    "zero rate": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: c, rate: 0}  #!"),
        "transitions[1].rate",
        "must be positive, got 0",
    ),
    "negative within": case(
        edit(
            "  - {from: b, to: c, rate: 0.1}",
            "  - {from: b, to: c, chance: 0.5, within: -3}  #!",
        ),
        "transitions[1].within",
        "must be positive",
    ),
    "rate is a boolean": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: c, rate: true}  #!"),
        "transitions[1].rate",
        "expected a number or a parameter name, got True",
    ),
    "unknown delay distribution": case(
        edit(
            "  - {from: b, to: c, rate: 0.1}",
            "  - {from: b, to: c, after: {dist: gama, mean: 3, sd: 1}}  #!",
        ),
        "transitions[1].after.dist",
        "'gama' is not a distribution allowed here; did you mean 'gamma'",
    ),
    "delay distribution without dist": case(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: c, after: {mean: 3}}  #!"),
        "transitions[1].after",
        "missing key 'dist'",
    ),
    "gamma with negative sd": case(
        edit(
            "  - {from: b, to: c, rate: 0.1}",
            "  - {from: b, to: c, after: {dist: gamma, mean: 3, sd: -1}}  #!",
        ),
        "transitions[1].after.sd",
        "must be positive",
    ),
    "lognormal p90 below median": case(
        edit(
            "  - {from: b, to: c, rate: 0.1}",
            "  - {from: b, to: c, after: {dist: lognormal, median: 30, p90: 20}}  #!",
        ),
        "transitions[1].after.p90",
        "must be greater than median",
    ),
    "unknown key in a delay": case(
        edit(
            "  - {from: b, to: c, rate: 0.1}",
            "  - {from: b, to: c, after: {dist: fixed, valeu: 3}}  #!",
        ),
        "transitions[1].after.valeu",
        "did you mean 'value'",
    ),
    # --- transitions: triggers
    "when names unknown trigger": case(
        edit("when: {t: 2}}", "when: {tt: 2}}  #!"),
        "transitions[0].when.tt",
        "unknown trigger 'tt'; did you mean 't'",
    ),
    "negative hazard ratio": case(
        edit("when: {t: 2}}", "when: {t: -1}}  #!"),
        "transitions[0].when.t",
        "must be at least 0, got -1",
    ),
    "requires unknown trigger": case(
        edit(
            "  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: c, rate: 0.1, requires: [x]} #!"
        ),
        "transitions[1].requires[0]",
        "unknown trigger 'x'",
    ),
    "requires a trigger twice": case(
        edit(
            "  - {from: b, to: c, rate: 0.1}",
            "  - {from: b, to: c, rate: 0.1, requires: [t, t]} #!",
        ),
        "transitions[1].requires[1]",
        "listed twice",
    ),
    # --- triggers
    "onset in unknown stage": case(
        edit("    onset: {a: {mean: 50}}", "    onset: {aa: {mean: 50}}  #!"),
        "triggers.t.onset.aa",
        "unknown stage 'aa'",
    ),
    "onset in terminal stage": case(
        edit("    onset: {a: {mean: 50}}", "    onset: {c: {mean: 50}}  #!"),
        "triggers.t.onset.c",
        "is terminal",
    ),
    "onset not exponential": case(
        edit(
            "    onset: {a: {mean: 50}}",
            "    onset: {a: {after: {dist: fixed, value: 5}}}  #!",
        ),
        "triggers.t.onset.a.after.dist",
        "an onset must be exponential",
    ),
    "onset with two forms": case(
        edit("    onset: {a: {mean: 50}}", "    onset: {rate: 0.1, mean: 5}  #!"),
        "triggers.t.onset.mean",
        "exactly one timing form",
    ),
    "onset not a mapping": case(
        edit("    onset: {a: {mean: 50}}", "    onset: 5  #!"),
        "triggers.t.onset",
        "an onset is a mapping",
    ),
    "initial above 1": case(
        edit("    onset: {a: {mean: 50}}", "    initial: 1.5  #!"),
        "triggers.t.initial",
        "probability in [0, 1], got 1.5",
    ),
    # --- parameters
    "unknown parameter": case(
        edit(
            "  - {from: a, to: b, mean: m, when: {t: 2}}",
            "  - {from: a, to: b, mean: mm, when: {t: 2}}  #!",
        ),
        "transitions[0].mean",
        "unknown parameter 'mm'; did you mean 'm'",
    ),
    "parameter value out of range for its use": case(
        edit("    onset: {a: {mean: 50}}", "    initial: p  #!").replace(
            "parameters:\n", "parameters:\n  p: {value: 1.5}\n"
        ),
        "triggers.t.initial",
        "probability in [0, 1], but parameter 'p' is 1.5",
    ),
    "parameter range crosses zero": case(
        edit(
            "  m: {value: 20, uncertain: {dist: pert, min: 5, mode: 20, max: 60}}",
            "  m: {value: 20, uncertain: {dist: uniform, low: 0, high: 60}}  #!",
        ),
        "parameters.m.uncertain",
        "is not positive, as its use at line 14",
    ),
    "point value outside uncertain range": case(
        edit(
            "  m: {value: 20, uncertain: {dist: pert, min: 5, mode: 20, max: 60}}",
            "  m: {value: 90, uncertain: {dist: pert, min: 5, mode: 20, max: 60}}  #!",
        ),
        "parameters.m.value",
        "value 90 lies outside its uncertain range [5, 60]",
    ),
    "unknown uncertainty distribution": case(
        edit(
            "  m: {value: 20, uncertain: {dist: pert, min: 5, mode: 20, max: 60}}",
            "  m: {value: 20, uncertain: {dist: normal, mean: 20, sd: 5}}  #!",
        ),
        "parameters.m.uncertain.dist",
        "'normal' is not a distribution allowed here",
    ),
    "pert mode outside range": case(
        edit(
            "  m: {value: 20, uncertain: {dist: pert, min: 5, mode: 20, max: 60}}",
            "  m: {value: 20, uncertain: {dist: pert, min: 5, mode: 80, max: 60}}  #!",
        ),
        "parameters.m.uncertain.mode",
        "must lie between min and max",
    ),
    "uncertain names a parameter": case(
        edit(
            "  m: {value: 20, uncertain: {dist: pert, min: 5, mode: 20, max: 60}}",
            "  m: {value: 20, uncertain: {dist: pert, min: lo, mode: 20, max: 60}}  #!",
        ),
        "parameters.m.uncertain.min",
        "takes numbers, not parameter names",
    ),
    "parameter without value": case(
        edit(
            "  m: {value: 20, uncertain: {dist: pert, min: 5, mode: 20, max: 60}}",
            "  m: {uncertain: {dist: pert, min: 5, mode: 20, max: 60}}  #!",
        ),
        "parameters.m.value",
        "missing required key 'value'",
    ),
    # --- the file itself
    "invalid YAML syntax": case(
        edit("  b: {}", "  b: a: c  #!"), "(document)", "invalid YAML: mapping values"
    ),
    "tab indentation": case(edit("  b: {}", "\tb: {}  #!"), "(document)", "invalid YAML"),
    "empty file": case("", "(document)", "the file is empty"),
    "only a comment": case("# nothing here\n", "(document)", "the file is empty"),
    "top-level list": case("- scenario: demo\n- horizon: 3\n", "(document)", "got a list"),
    "top-level scalar": case("just some words\n", "(document)", "got a single value"),
    "two documents": case(GOOD + "---  #!\n" + GOOD, "(document)", "expected a single document"),
    "unsupported tag": case(
        edit("horizon: 100", "horizon: !!python/object:os.system 100  #!"),
        "(document)",
        "not supported",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_located(name, cli, scenario_file):
    text, line, path, message = CASES[name]
    file = scenario_file(text)
    result = cli("validate", file)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    located = [s for s in result.stderr.splitlines() if s.startswith(f"{file}:{line}:")]
    assert located, f"no message at line {line}:\n{result.stderr}"
    assert any(f": {path}: " in s and message in s for s in located), result.stderr


def test_every_error_of_every_file_is_listed(cli, scenario_file, tmp_path):
    two_errors = edit("horizon: 100", "horizon: -1").replace("start: a", "start: zz")
    first = scenario_file(two_errors, "first.yaml")
    second = scenario_file(CASES["zero rate"][0], "second.yaml")
    good = scenario_file(GOOD, "good.yaml")
    result = cli("validate", first, good, second)
    assert result.exit_code == 2
    assert f"{first}:2:" in result.stderr and f"{first}:3:" in result.stderr
    assert f"{second}:15:" in result.stderr
    assert f"{good}: valid" in result.stdout


def test_shape_errors_and_rule_errors_come_in_one_run(cli, scenario_file):
    """An unknown key (a shape error) beside a value out of range and a stage that does not
    exist (a rule): one run lists all three, each at its line, and no spurious error where a
    key was set aside (the first transition keeps no timing once its bad rate is)."""
    path = scenario_file(
        edit("  - {from: b, to: c, rate: 0.1}", "  - {from: b, to: zz, rate: -1, colour: red}")
    )
    result = cli("validate", path)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines == [
        f"{path}:15:19: transitions[1].to: unknown stage 'zz'",
        f"{path}:15:29: transitions[1].rate: must be positive, got -1",
        f"{path}:15:33: transitions[1].colour: unknown key 'colour' (allowed here: rate, "
        "mean, chance, within, after, from, to, when, requires, effects, source)",
        f"{path}: invalid (3 errors)",
    ], result.stderr


def test_binary_file(cli, scenario_file):
    result = cli("validate", scenario_file(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
    assert result.exit_code == 2
    assert "not a text file" in result.stderr


def test_non_utf8_text_names_the_line(cli, scenario_file):
    file = scenario_file(GOOD.replace("Start", "D\xe9but").encode("latin-1"))
    result = cli("validate", file)
    assert result.exit_code == 2
    assert f"{file}:7:" in result.stderr and "not UTF-8" in result.stderr


def test_missing_file(cli, tmp_path):
    result = cli("validate", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml: no such file" in result.stderr and "(document)" not in result.stderr


def test_alias_bomb_is_refused(cli, scenario_file):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    result = cli("validate", scenario_file("\n".join(lines) + "\n"))
    assert result.exit_code == 2
    assert "alias bomb" in result.stderr


def test_recursive_alias_is_refused(cli, scenario_file):
    result = cli("validate", scenario_file("stages: &s {a: *s}\n"))
    assert result.exit_code == 2
    assert "nesting is deeper" in result.stderr or "recursive" in result.stderr


def test_deep_nesting_is_refused(cli, scenario_file):
    result = cli("validate", scenario_file("x: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert result.exit_code == 2
    assert "nesting" in result.stderr


def test_warnings_do_not_fail_validation(cli, scenario_file):
    text = GOOD.replace("  c: {terminal: true}", "  c: {terminal: true}\n  lonely: {}")
    text = text.replace("parameters:\n", "parameters:\n  unused: {value: 3}\n")
    result = cli("validate", scenario_file(text))
    assert result.exit_code == 0, result.output
    assert "warning: stage 'lonely' cannot be reached from start" in result.stderr
    assert "warning: parameter 'unused' is never used" in result.stderr


def test_debug_shows_the_traceback(cli, scenario_file):
    file = scenario_file(CASES["zero rate"][0])
    with pytest.raises(Exception, match="must be positive"):
        cli("--debug", "show", file)
    with pytest.raises(Exception, match="must be positive"):
        cli("show", file, "--debug")
