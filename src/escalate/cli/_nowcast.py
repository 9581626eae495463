"""``nowcast``: the odds as of today, given what has happened (DESIGN.md 8.2)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from escalate.cli._options import (
    format_option,
    parse_set,
    posterior_options,
    random_seed,
    scenario_argument,
    set_option,
    user_errors,
)
from escalate.cli._render import stderr, stdout
from escalate.scenario import load


@click.command(name="nowcast")
@scenario_argument
@click.argument("observed", type=click.Path(path_type=Path))
@posterior_options(1000, "Prior worlds drawn and weighted by the news.")
@set_option("Fix a parameter at a value; it is not updated (repeatable).")
@format_option
@user_errors
def nowcast_command(scenario, observed, worlds, seed, settings, params_file, output_format):
    """Update the odds on what has happened up to as_of (an observations file)."""
    from escalate._nowcast import nowcast, read_observations
    from escalate.compile import compile_scenario
    from escalate.errors import EscalateError

    model = load(scenario)
    overrides = parse_set(settings, params_file, model)
    observations = read_observations(observed, model)
    compiled = compile_scenario(model, overrides)
    if not compiled.is_markov:
        slow = [
            f"{model.transitions[int(j)].from_} -> {model.transitions[int(j)].to}"
            for j, kind in zip(compiled.order, compiled.kind, strict=True)
            if kind != 0
        ]
        raise EscalateError(
            f"{scenario}: nowcast is exact and needs every timing exponential; these are not: "
            + ", ".join(slow)
        )
    seed = random_seed(seed)
    stderr().print(
        f"nowcasting {model.scenario} as of {observations.as_of:g}: {worlds} worlds, seed {seed}",
        markup=False,
        highlight=False,
    )
    result = nowcast(model, observations, worlds=worlds, seed=seed, overrides=overrides)
    if output_format == "json":
        click.echo(json.dumps(_as_dict(result, seed), indent=2, allow_nan=False))
        return
    _print(stdout(), result, model)


def _as_dict(result, seed: int) -> dict:
    def clean(x):
        return None if not math.isfinite(x) else float(x)

    p = result.posterior
    return {
        "scenario": result.scenario,
        "as_of": result.as_of,
        "seed": seed,
        "worlds": len(p.worlds),
        "ess": p.ess,
        "log_evidence": p.log_evidence,
        "stages": {
            name: {"before": clean(b), "after": clean(a)}
            for name, b, a in zip(result.stage_names, result.before, result.after, strict=True)
        },
        "updates": [
            {
                "time": u["time"],
                "ess": u["ess"],
                "p_reached": {
                    name: {"before": clean(b), "after": clean(a)}
                    for name, b, a in zip(result.stage_names, u["before"], u["after"], strict=True)
                },
            }
            for u in result.updates
        ],
        "triggers_on_at_as_of": result.triggers_on,
    }


def _print(out, result, model) -> None:
    from rich.table import Table

    p = result.posterior
    out.print(
        f"{result.scenario} as of {result.as_of:g} {model.time_unit}s: {len(p.worlds)} worlds, "
        f"ESS {p.ess:.0f}, log evidence {p.log_evidence:.3f}",
        markup=False,
        highlight=False,
    )
    table = Table(title="P(reached by the horizon): before the news, after it")
    for column in ("stage", "before", "after", "change"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for name, b, a in zip(result.stage_names, result.before, result.after, strict=True):
        table.add_row(model.label(name), f"{b:.1%}", f"{a:.1%}", f"{a - b:+.1%}")
    out.print(table)
    # the stage the update table follows: the first named as a war, else the last
    wars = [i for i, name in enumerate(result.stage_names) if "war" in name]
    worst = wars[0] if wars else len(result.stage_names) - 1
    table = Table(
        title=f"The news one event at a time: P({model.label(result.stage_names[worst])})"
    )
    for column in ("time", "before", "after", "ESS"):
        table.add_column(column, justify="right")
    for u in result.updates:
        table.add_row(
            f"{u['time']:g}", f"{u['before'][worst]:.1%}", f"{u['after'][worst]:.1%}",
            f"{u['ess']:.0f}",
        )  # fmt: skip
    out.print(table)
    if result.triggers_on:
        out.print(
            "Unobserved triggers, P(on at as_of): "
            + ", ".join(f"{model.label(k)} {v:.0%}" for k, v in result.triggers_on.items()),
            markup=False,
            highlight=False,
        )
