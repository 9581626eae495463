"""``sensitivity``: which uncertain parameters drive a metric."""

from __future__ import annotations

import functools

import click

from escalate.cli._jobs import run_job
from escalate.cli._options import (
    job_options,
    scenario_argument,
    seed_option,
    trajectories_option,
    user_errors,
)
from escalate.cli._render import output, print_sensitivity
from escalate.scenario import load

# escalate.analysis.sensitivity.METHODS, repeated so that the command line starts without SALib
METHODS = ("sobol", "morris", "oat")


@click.command(name="sensitivity")
@scenario_argument
@click.option("--method", type=click.Choice(list(METHODS)), default="sobol", show_default=True)
@click.option(
    "--metric",
    metavar="M",
    default=None,
    help="The metric to explain (default: P(reached) of the headline stage: the first stage "
    "named a war, else the last).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=256,
    show_default=True,
    help="Base sample size (Sobol: samples x (d + 2) points; Morris: x (d + 1)).",
)
@trajectories_option("5e4", "Trajectories per point, when the scenario needs simulation.")
@seed_option(default=0)
@job_options("Write sensitivity.csv, sensitivity.json and the figure into this folder.")
@user_errors
def sensitivity_command(scenario, method, metric, samples, n, seed, job) -> None:
    """Which uncertain parameters drive a metric: Sobol, Morris or a tornado (oat)."""
    from escalate.analysis.sensitivity import sensitivity

    model = load(scenario)
    if metric is None:  # the question the headline answers
        metric = f"p_reached:{list(model.stages)[model.headline_stage()]}"
    fingerprint = {
        "scenario_sha256": model.sha256, "method": method, "metric": metric,
        "samples": samples, "n": n, "seed": seed,
    }  # fmt: skip

    compute = functools.partial(
        sensitivity, model, metric, method=method, samples=samples, n=n, seed=seed
    )
    result = run_job("sensitivity", job, fingerprint, None, compute, index=True)
    output(result, job.output_format, print_sensitivity)
