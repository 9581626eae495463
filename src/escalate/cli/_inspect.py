"""``validate``, ``show`` and ``schema``: read scenarios and the language, run nothing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from escalate.cli._options import (
    USAGE_ERROR,
    output_option,
    parse_set,
    scenario_argument,
    set_option,
    user_errors,
)
from escalate.cli._render import print_scenario, stderr, stdout
from escalate.errors import EscalateError, ScenarioError
from escalate.scenario import Scenario, load
from escalate.scenario.resolve import resolve


@click.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
@user_errors
def validate(scenarios: tuple[Path, ...]) -> None:
    """Check scenario files (and calibrate's targets files); list every error of every file.

    Exit 0 when all are valid, 2 when any is invalid.
    """
    out, err = stdout(), stderr()
    invalid = 0
    for path in scenarios:
        try:
            if _is_observations_file(path):
                observations, against = _validate_observations(path)
                out.print(
                    f"{path}: valid observations file ({len(observations.path)} stage entries, "
                    f"{len(observations.switches)} triggers observed, as_of "
                    f"{observations.as_of:g}{against})",
                    markup=False,
                    highlight=False,
                )
                continue
            if _is_targets_file(path):
                targets, against = _validate_targets(path)
                out.print(
                    f"{path}: valid targets file ({len(targets)} targets{against})",
                    markup=False,
                    highlight=False,
                )
                continue
            scenario = load(path)
        except ScenarioError as exc:
            invalid += 1
            for issue in exc.issues:
                err.print(str(issue), markup=False)
            n = sum(issue.severity == "error" for issue in exc.issues)
            err.print(f"{path}: invalid ({n} error{'s' * (n != 1)})", markup=False)
            continue
        for warning in scenario.warnings:
            err.print(str(warning), markup=False)
        out.print(
            f"{path}: valid ({len(scenario.stages)} stages, {len(scenario.transitions)} "
            f"transitions, {len(scenario.triggers)} triggers, "
            f"{len(scenario.parameters)} parameters)",
            markup=False,
            highlight=False,
        )
    if invalid:
        sys.exit(USAGE_ERROR)


def _is_targets_file(path: Path) -> bool:
    """A targets file (calibrate's statements), told from a scenario by its keys."""
    from escalate.scenario._yaml import read_yaml

    try:
        doc = read_yaml(path)
    except ScenarioError:
        return False  # the scenario reader reports it
    return isinstance(doc.data, dict) and "targets" in doc.data and "stages" not in doc.data


def _is_observations_file(path: Path) -> bool:
    """An observations file (nowcast's), told from a scenario by its keys."""
    from escalate.scenario._yaml import read_yaml

    try:
        data = read_yaml(path).data
    except ScenarioError:
        return False
    return isinstance(data, dict) and "as_of" in data and "stages" not in data


def _validate_observations(path: Path):
    """Check an observations file against its scenario (``ID.yaml`` in its folder or the one
    above): its names, times and steps mean nothing without it."""
    from escalate._nowcast import read_observations
    from escalate.errors import Issue
    from escalate.scenario._yaml import read_yaml

    scenario_id = read_yaml(path).data.get("scenario")
    for folder in (path.parent, path.parent.parent):
        candidate = folder / f"{scenario_id}.yaml"
        if isinstance(scenario_id, str) and candidate.is_file():
            return read_observations(path, load(candidate)), f", checked against {candidate}"
    raise ScenarioError(
        [Issue(str(path), 1, 1, ("scenario",), f"no {scenario_id}.yaml beside this file or "
               "in the folder above: an observations file is checked against its scenario")]
    )  # fmt: skip


def _validate_targets(path: Path) -> tuple[list, str]:
    """Check a targets file, against its scenario when ``ID.yaml`` lies in its folder or the
    one above (``scenario: ID``); else its form alone."""
    from escalate._calibrate import read_targets
    from escalate.scenario._yaml import read_yaml

    scenario_id = read_yaml(path).data.get("scenario")
    for folder in (path.parent, path.parent.parent):
        candidate = folder / f"{scenario_id}.yaml"
        if isinstance(scenario_id, str) and candidate.is_file():
            return read_targets(path, load(candidate)), f", checked against {candidate}"
    return read_targets(path, None), f"; no {scenario_id}.yaml found to check its names against"


@click.command()
@scenario_argument
@set_option()
@user_errors
def show(scenario: Path, settings: tuple[str, ...], params_file: Path | None) -> None:
    """Show a scenario: stages, transitions with effective rates, triggers, parameters."""
    model = load(scenario)
    print_scenario(stdout(), model, resolve(model, parse_set(settings, params_file, model)))
    err = stderr()
    for warning in model.warnings:
        err.print(str(warning), markup=False)


@click.command()
@output_option("Write to this file instead of standard output.")
@user_errors
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the scenario language (for editors and checkers)."""
    text = json.dumps(Scenario.json_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise EscalateError(f"cannot write {output}: {exc.strerror}") from None
