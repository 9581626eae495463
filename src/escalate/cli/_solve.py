"""``solve``: the exact solution of a memoryless scenario (one world, or many)."""

from __future__ import annotations

import click

from escalate.cli._options import (
    format_option,
    horizon_option,
    parse_set,
    random_seed,
    scenario_argument,
    scheduler_option,
    seed_option,
    set_option,
    user_errors,
    worlds_option,
)
from escalate.cli._render import output, print_result
from escalate.cli._run import across_worlds
from escalate.errors import EscalateError
from escalate.scenario import load


@click.command(name="solve")
@scenario_argument
@set_option()
@horizon_option
@worlds_option("Solve W parameter sets drawn from the uncertain ranges.")
@seed_option("Fixes the worlds (default: random).")
@format_option
@scheduler_option
@user_errors
def solve_command(
    scenario, settings, params_file, horizon, worlds, worlds_from, seed, output_format, scheduler
) -> None:
    """Solve a memoryless scenario exactly (every timing exponential)."""
    model = load(scenario)
    if scheduler is not None and worlds is None and worlds_from is None:
        raise EscalateError("--scheduler goes with --worlds: one exact solve takes milliseconds")
    overrides = parse_set(settings, params_file, model)
    if worlds is not None or worlds_from is not None:
        across_worlds(
            model,
            worlds,
            output_format,
            worlds_from=worlds_from,
            seed=random_seed(seed),
            engine="exact",
            overrides=overrides,
            horizon=horizon,
            scheduler=scheduler,
        )
        return
    from escalate.api import solve

    output(solve(model, overrides=overrides, horizon=horizon), output_format, print_result)
