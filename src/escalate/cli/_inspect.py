"""``validate``, ``show`` and ``schema``: read scenarios and the language, run nothing."""

from __future__ import annotations

import json
import os
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
from escalate.engine.numbers import count
from escalate.errors import EscalateError, ScenarioError
from escalate.scenario import Scenario, load
from escalate.scenario.resolve import resolve


@click.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
@user_errors
def validate(scenarios: tuple[Path, ...]) -> None:
    """Check scenario files (and targets, observations, variants, rivals, parameters and
    worlds files); list every error.

    Exit 0 when all are valid, 2 when any is invalid.
    """
    out, err = stdout(), stderr()
    invalid = 0
    for path in scenarios:
        if _is_parquet(path):
            try:
                out.print(_worlds_file(path), markup=False, highlight=False)
            except EscalateError as exc:
                invalid += 1
                err.print(str(exc), markup=False)
                err.print(f"{path}: invalid (1 error)", markup=False)
            continue
        try:
            kind, scenario_id = _kind_of(path)
            if kind == "rivals":
                out.print(_rivals_file(path), markup=False, highlight=False)
                continue
            if kind != "scenario":
                out.print(_companion(path, kind, scenario_id), markup=False, highlight=False)
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


def _rivals_file(path: Path) -> str:
    """Check a rivals file and every model's scenario and record, and describe it in a line."""
    from escalate.forecast.observations import read_observations
    from escalate.forecast.rivals import read_rivals

    rivals = read_rivals(path)
    for model in rivals.models:
        read_observations(model.observed, load(model.scenario))
    names = ", ".join(m.name for m in rivals.models)
    return f"{path}: valid rivals file ({count(len(rivals.models), 'model')}: {names})"


def _is_parquet(path: Path) -> bool:
    """Whether ``path`` is a Parquet file (a worlds file), by its magic bytes."""
    try:
        with open(path, "rb") as file:
            return file.read(4) == b"PAR1"
    except OSError:
        return False


def _worlds_file(path: Path) -> str:
    """Check a worlds file, against the scenario its folder's manifest.json names when there
    is one (calibrate and nowcast write both), and describe it in a line."""
    from escalate.analysis.draws import read_worlds

    named = _scenario_in_manifest(path)
    model = None if named is None else load(named)
    against = (
        f", checked against {named}"
        if named
        else "; no manifest.json beside it names a scenario to check it against"
    )
    frame = read_worlds(path, model)
    columns = [c for c in frame.columns if c != "weight"]
    return (
        f"{path}: valid worlds file ({count(len(frame), 'world')}, "
        f"{count(len(columns), 'parameter')}{against})"
    )


def _scenario_in_manifest(path: Path) -> Path | None:
    """The scenario file that the manifest.json beside ``path`` names (an output folder of
    calibrate or nowcast), if it names one that exists."""
    manifest = path.parent / "manifest.json"
    try:
        named = json.loads(manifest.read_text(encoding="utf-8")).get("scenario_file")
    except (ValueError, AttributeError, OSError):
        return None
    return Path(named) if isinstance(named, str) and Path(named).is_file() else None


def _kind_of(path: Path) -> tuple[str, object]:
    """What ``path`` holds (see :func:`document_kind`) and the scenario id it names; a file
    that cannot be read is left to the scenario reader, which reports it."""
    from escalate.scenario._yaml import document_kind, read_yaml

    try:
        data = read_yaml(path).data
    except ScenarioError:
        return "scenario", None
    return document_kind(data), data.get("scenario") if isinstance(data, dict) else None


def _scenario_beside(path: Path, scenario_id) -> Path | None:
    """``ID.yaml`` in the folder of ``path`` or the one above, if there is one."""
    if not isinstance(scenario_id, str):
        return None
    here = path.parent
    for folder in (here, here / ".."):  # "..", not .parent: `dir/x.yaml` or plain `x.yaml`
        if (folder / f"{scenario_id}.yaml").is_file():
            return Path(os.path.normpath(folder / f"{scenario_id}.yaml"))
    return None


def _companion(path: Path, kind: str, scenario_id) -> str:
    """Check a targets, observations, variants or parameters file against its scenario
    (``ID.yaml`` in its folder or the one above) and describe it in a line. Observations and
    variants mean nothing without their scenario; a targets or parameters file without one is
    checked for form alone."""
    from escalate.errors import Issue
    from escalate.forecast.observations import read_observations
    from escalate.forecast.targets import read_targets
    from escalate.forecast.variants import read_variants

    candidate = _scenario_beside(path, scenario_id) or _scenario_in_manifest(path)
    if candidate is None and kind not in ("targets", "params"):
        article = "an" if kind == "observations" else "a"
        raise ScenarioError(
            [Issue(str(path), 1, 1, ("scenario",), f"no {scenario_id}.yaml beside this file or "
                   f"in the folder above: {article} {kind} file is checked against its scenario")]
        )  # fmt: skip
    model = None if candidate is None else load(candidate)
    if candidate is None:
        against = (
            f"; no {scenario_id}.yaml found to check its names against"
            if isinstance(scenario_id, str)
            else "; it names no scenario to check its names against"
        )
    else:
        against = f", checked against {candidate}"
    if kind == "params" and model is None:
        what = count(len(_params_form(path)), "parameter value")
    elif kind == "params":
        from escalate.scenario.params import read_params

        what = count(len(read_params(path, model)), "parameter value")
    elif kind == "targets":
        what = f"{len(read_targets(path, model))} targets"
    elif kind == "observations":
        seen = read_observations(path, model)
        what = (
            f"{len(seen.path)} stage entries, {len(seen.switches)} triggers observed, as_of "
            f"{model.when(seen.as_of)}"
        )
    else:
        variants = read_variants(path, model)
        what = f"{len(variants.variants)} variants, {len(variants.metrics)} metrics"
    name = "parameters" if kind == "params" else kind
    return f"{path}: valid {name} file ({what}{against})"


def _params_form(path: Path) -> dict:
    """A parameters file with no scenario to check its names against: its values (the
    reader found them numbers)."""
    from escalate.scenario._yaml import read_yaml

    return {k: v for k, v in read_yaml(path).data.items() if k != "scenario"}


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
        stderr().print(f"schema written: {output}", markup=False, highlight=False)
