"""``run``: simulate a scenario (one world, or many drawn from the uncertain ranges)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from escalate.cli._options import (
    format_option,
    horizon_option,
    out_option,
    parse_set,
    random_seed,
    scenario_argument,
    scheduler_option,
    seed_option,
    set_option,
    threads_option,
    trajectories_option,
    user_errors,
    worlds_option,
)
from escalate.cli._render import output, print_result, print_worlds, progress, stderr
from escalate.engine.folder import check_output_folder
from escalate.errors import EscalateError
from escalate.scenario import load

if TYPE_CHECKING:
    from escalate.analysis.worlds import WorldsResult


@click.command()
@scenario_argument
@trajectories_option(
    "1e6", "Trajectories to run (the cap with --precision); accepts 1e6 and 1_000_000."
)
@seed_option("Fixes every figure (default: random).")
@set_option()
@horizon_option
@threads_option("Numba threads (default: all cores).")
@click.option(
    "--precision",
    type=float,
    metavar="EPS",
    help="Run until the 95% interval half-width of --metric is at most EPS.",
)
@click.option("--metric", metavar="M", help="e.g. p_reached:full_scale_war (with --precision).")
@click.option(
    "--max-seconds",
    type=float,
    metavar="S",
    help="Refuse a run projected to take longer than S seconds (checked after the first batch).",
)
@worlds_option("Draw W parameter sets from the uncertain ranges; -n trajectories in each.")
@out_option(
    "Write a run folder (summary, tables, curves, paths, manifest, figures; with --worlds, "
    "the pooled run, every world's metrics and what moves the headline across them)."
)
@format_option
@scheduler_option
@user_errors
def run(
    scenario,
    n,
    seed,
    settings,
    params_file,
    horizon,
    threads,
    precision,
    metric,
    max_seconds,
    worlds,
    worlds_from,
    out,
    force,
    output_format,
    scheduler,
) -> None:
    """Simulate trajectories of a scenario and report the odds and timing of every stage."""
    from escalate.api import exact_overlay, simulate

    model = load(scenario)
    overrides = parse_set(settings, params_file, model)
    if out is not None:
        check_output_folder(out, force=force)
    err = stderr()
    if worlds is not None or worlds_from is not None:
        if precision is not None:
            raise EscalateError("--worlds does not combine with --precision yet")
        if worlds_from is not None and out is not None:
            raise EscalateError(
                "--worlds-from does not combine with --out yet: weighted worlds do not pool "
                "into one run folder (give --worlds W, or leave out --out)"
            )
        result = across_worlds(
            model,
            worlds,
            output_format,
            worlds_from=worlds_from,
            seed=random_seed(seed),
            n=n,
            engine="monte-carlo",
            overrides=overrides,
            horizon=horizon,
            threads=threads,
            scheduler=scheduler,
        )
        if out is not None:
            result.save(out, force=force, model=model)
            err.print(f"run folder written: {out}", markup=False)
        return
    with progress(err, n) as advance:
        result = simulate(
            model,
            n,
            seed,
            overrides=overrides,
            horizon=horizon,
            threads=threads,
            precision=precision,
            metric=metric,
            progress=advance,
            scheduler=scheduler,
            max_seconds=max_seconds,
        )
    if precision is not None:
        reached = result.to_dict()["precision"]
        err.print(
            f"{metric}: 95% interval ±{reached['reached']:.3g} after "
            f"{result.trajectories:,} trajectories ("
            + (
                f"the target ±{precision:g} met)"
                if reached["met"]
                else f"the target ±{precision:g} not met: -n {n:,} ran out first)"
            ),
            markup=False,
        )
    if out is not None:
        result.save(out, force=force, model=model, exact=exact_overlay(model, result))
    output(result, output_format, print_result)
    if out is not None:
        err.print(f"run folder written: {out}", markup=False)


def across_worlds(
    model, worlds: int | None, output_format: str, *, worlds_from=None, **options
) -> WorldsResult:
    """``--worlds``: evaluate ``worlds`` parameter sets drawn from the uncertain ranges, or
    ``--worlds-from``: the weighted worlds of a file (``options`` go to
    :func:`escalate.run_worlds`), print the metrics across them and return the result."""
    from escalate.analysis.draws import worlds_to_weigh  # scipy: only when asked
    from escalate.analysis.worlds import run_worlds

    given = None
    if worlds_from is not None:
        frame, weights, _ = worlds_to_weigh(model, worlds, worlds_from, 0, {})
        given = frame.assign(weight=weights)
        worlds = len(given)
    with progress(stderr(), worlds, unit="worlds") as advance:
        result = run_worlds(model, worlds, progress=advance, given=given, **options)
    output(result, output_format, print_worlds)
    return result
