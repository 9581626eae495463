"""``compare``: what each option changes, paired so that the noise cancels (docs/forecasting.md)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from escalate.cli._jobs import write_outputs
from escalate.cli._options import (
    format_option,
    out_option,
    parse_set,
    random_seed,
    scenario_argument,
    scheduler_option,
    seed_option,
    set_option,
    trajectories_option,
    user_errors,
    worlds_option,
)
from escalate.cli._render import output, stderr
from escalate.engine.folder import check_output_folder
from escalate.engine.metrics import is_probability
from escalate.output.format import MISSING, as_read
from escalate.scenario import load


@click.command(name="compare")
@scenario_argument
@click.argument("variants_file", metavar="VARIANTS", type=click.Path(path_type=Path))
@trajectories_option(
    "1e6", "Monte Carlo trajectories in all (split among the replicates), or per world."
)
@worlds_option("Compare on W parameter sets drawn from the uncertain ranges.")
@seed_option("Fixes every figure (default: random).")
@click.option(
    "--engine",
    type=click.Choice(["auto", "exact", "monte-carlo"]),
    default="auto",
    show_default=True,
    help="auto: exact wherever every timing is exponential, else Monte Carlo.",
)
@click.option(
    "--replicates",
    type=click.IntRange(min=2),
    default=32,
    show_default=True,
    help="Independent replicates of a Monte Carlo comparison (their paired differences give "
    "its standard error).",
)
@set_option("Set a parameter for the baseline and every variant (a variant's `set` wins).")
@out_option("Write summary.json, differences.csv, the forest plot and manifest.json here.")
@format_option
@scheduler_option
@user_errors
def compare_command(
    scenario,
    variants_file,
    n,
    worlds,
    worlds_from,
    seed,
    engine,
    replicates,
    settings,
    params_file,
    out,
    force,
    output_format,
    scheduler,
) -> None:
    """Compare variants of a scenario (a variants file) with the baseline, paired."""
    from escalate.forecast.compare import compare
    from escalate.forecast.variants import read_variants

    model = load(scenario)
    overrides = parse_set(settings, params_file, model)
    variants = read_variants(variants_file, model)
    if out is not None:
        check_output_folder(out, force=force)
    seed = random_seed(seed)
    err = stderr()
    result = compare(
        model,
        variants,
        n=n,
        worlds=worlds,
        worlds_from=worlds_from,
        seed=seed,
        engine=engine,
        replicates=replicates,
        overrides=overrides,
        scheduler=scheduler,
        progress=lambda line: err.print(
            f"comparing {model.scenario}: {line}", markup=False, highlight=False
        ),
    )
    if out is not None:
        write_outputs(
            out,
            force=force,
            command="compare",
            model=model,
            scenario_file=scenario,
            inputs={"variants": Path(variants_file), "worlds_from": worlds_from},
            summary_json=result.to_json(),
            figures={"forest": result.plot()},
            manifest={
                "engine": result.engine,
                "n": n,
                "worlds": worlds,
                "seed": seed,
                "replicates": replicates,
                "scheduler": scheduler,
                "overrides": overrides,
            },
            extra=lambda folder: result.summary().to_csv(folder / "differences.csv", index=False),
        )
    output(result, output_format, print_comparison)
    if out is not None:
        err.print(f"comparison written: {out}", markup=False, highlight=False)


def print_comparison(out, result) -> None:
    """Per metric, each variant against the baseline: the difference with its interval, and
    what the pairing bought."""
    from rich.table import Table

    frame = result.summary()
    how = {
        "exact": "exact (every timing exponential): the differences are exact",
        "replicates": f"paired Monte Carlo, {len(result.weights)} replicates of "
        f"{-(-result.n // len(result.weights)):,} trajectories on the same random numbers",
        "worlds": f"paired over {len(result.weights)} worlds"
        + (f" from {result.worlds_from}" if result.worlds_from else "")
        + ("" if result.engine == "exact" else f", {result.n:,} trajectories each"),
    }[result.mode]
    out.print(f"{result.scenario}: {how}", markup=False, highlight=False)
    for metric in result.metrics:
        rows = frame[frame["metric"] == metric]
        probability = is_probability(metric)

        fmt = functools.partial(_shown, probability=probability)

        base = rows["baseline"].iloc[0] if len(rows) else math.nan
        table = Table(title=f"{metric} (baseline {fmt(base)})", title_justify="left")
        columns = ["variant", "value", "difference", "95% interval"]
        if result.mode == "worlds":
            columns += ["5% .. 95% across worlds", "P(> 0)"]
        if result.mode != "exact":
            columns += ["SE paired", "SE independent", "variance ÷"]
        for column in columns:
            if column == "variant":  # names whole: the other columns wrap instead
                longest = max((len(name) for name in result.names[1:]), default=7)
                table.add_column(column, min_width=min(longest, 40))
            else:
                table.add_column(column, justify="right")
        for row in rows.to_dict("records"):
            cells = [
                row["variant"],
                fmt(row["value"]),
                fmt(row["difference"], True),
                "exact" if result.mode == "exact" else
                f"{fmt(row['low'], True)} .. {fmt(row['high'], True)}",
            ]  # fmt: skip
            if result.mode == "worlds":
                cells += [f"{fmt(row['p5'], True)} .. {fmt(row['p95'], True)}",
                          f"{row['p_positive']:.0%}"]  # fmt: skip
            if result.mode != "exact":
                reduction = row["variance_reduction"]
                cells += [
                    _error(row["se"], probability),
                    _error(row["se_independent"], probability),
                    f"{reduction:.1f}" if math.isfinite(reduction) else "—",
                ]
            table.add_row(*cells)
        out.print(table)
    if result.mode != "exact":
        out.print(
            "variance ÷: the variance of two independent runs' difference over the paired "
            "one's (from each run's own error); — where the difference is exactly 0. "
            f"The standard errors assume {result.se_assumes}.",
            markup=False,
            highlight=False,
        )


def _shown(x: float, signed: bool = False, *, probability: bool) -> str:
    """A value or a difference: percent and percentage points for probabilities."""
    if not math.isfinite(x):
        return MISSING
    return as_read(x, probability, change=signed, digits=2)


def _error(x: float, probability: bool) -> str:
    """A standard error, with the digits it needs."""
    return f"{x * 100:.3f} pts" if probability else f"{x:.3g}"
