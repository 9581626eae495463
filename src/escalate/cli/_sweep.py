"""``sweep``: metrics over a grid of one or two parameters."""

from __future__ import annotations

import functools
import math

import click

from escalate.cli._jobs import run_job
from escalate.cli._options import (
    job_options,
    parse_set,
    scenario_argument,
    seed_option,
    set_option,
    trajectories_option,
    user_errors,
)
from escalate.cli._render import output, print_sweep
from escalate.scenario import load


@click.command(name="sweep")
@scenario_argument
@click.option(
    "--vary",
    "varies",
    multiple=True,
    required=True,
    metavar="NAME=START:STOP:COUNT",
    help="A parameter and its evenly spaced values (once or twice).",
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    required=True,
    metavar="M",
    help="A metric to report (repeatable), e.g. p_reached:full_scale_war.",
)
@trajectories_option("1e5", "Trajectories per point, when the scenario needs simulation.")
@seed_option("One seed for every point (common random numbers).", default=0)
@set_option("Fix another parameter's value (repeatable).")
@job_options("Write sweep.csv, sweep.json and the figure into this folder.")
@user_errors
def sweep_command(scenario, varies, metrics, n, seed, settings, params_file, job) -> None:
    """Metrics over a grid of one or two parameters (exact where the scenario allows)."""
    from escalate.analysis.sweep import parse_vary, sweep

    model = load(scenario)
    vary = dict(parse_vary(v) for v in varies)
    overrides = parse_set(settings, params_file, model)
    fingerprint = {
        "scenario_sha256": model.sha256,
        "vary": {name: [float(v) for v in values] for name, values in vary.items()},
        "metrics": list(metrics), "n": n, "seed": seed, "overrides": overrides,
    }  # fmt: skip

    compute = functools.partial(
        sweep, model, vary, list(metrics), n=n, seed=seed, overrides=overrides
    )
    total = math.prod(len(v) for v in vary.values())
    result = run_job("sweep", job, fingerprint, total, compute, index=False)
    output(result, job.output_format, print_sweep)
