"""``weigh``: rival scenarios weighed by how probable each made the same news
(docs/forecasting.md)."""

from __future__ import annotations

from pathlib import Path

import click

from escalate.cli._jobs import write_outputs
from escalate.cli._options import (
    format_option,
    out_option,
    particle_options,
    random_seed,
    scheduler_option,
    seed_option,
    user_errors,
)
from escalate.cli._render import output, stderr
from escalate.engine.folder import check_output_folder


@click.command(name="weigh")
@click.argument("rivals_file", metavar="RIVALS", type=click.Path(path_type=Path))
@click.option("--worlds", type=click.IntRange(min=2), metavar="W",
              help="Prior worlds drawn per model (default 1,000; a model with nothing "
              "uncertain is one world).")  # fmt: skip
@seed_option("Fixes every model's worlds, resampling and moves (default: random).")
@particle_options
@scheduler_option
@out_option("Write summary.json, steps.csv, the figure and manifest.json into this folder.")
@format_option
@user_errors
def weigh_command(rivals_file, worlds, seed, method, particles, scheduler, out, force,
                  output_format):  # fmt: skip
    """Weigh rival scenarios by how probable each made the same news (a rivals file)."""
    from escalate.forecast.rivals import read_rivals, weigh
    from escalate.scenario import load

    rivals = read_rivals(rivals_file)
    if out is not None:
        check_output_folder(out, force=force)
    seed = random_seed(seed)
    err = stderr()
    err.print(f"weighing {len(rivals.models)} models of {rivals_file}; seed {seed}",
              markup=False, highlight=False)  # fmt: skip

    def say(line: str) -> None:
        err.print(line, markup=False, highlight=False)

    result = weigh(rivals, worlds=worlds, seed=seed, scheduler=scheduler, method=method,
                   particles=particles, progress=say)  # fmt: skip
    first = load(rivals.models[0].scenario)
    if out is not None:

        def extra(folder: Path) -> None:
            result.steps.to_csv(folder / "steps.csv", index=False)

        write_outputs(
            out,
            force=force,
            command="weigh",
            model=first,
            scenario_file=rivals.models[0].scenario,
            inputs={"rivals": Path(rivals_file)},
            summary_json=result.to_json(),
            figures={"models": result.plot()},
            manifest={"worlds": worlds, "seed": seed, "scheduler": scheduler},
            extra=extra,
        )
    output(result, output_format, print_weigh)
    if out is not None:
        err.print(f"weighing written: {out}", markup=False, highlight=False)


def print_weigh(out, result) -> None:
    """The answer, the models, and the news step by step with its Bayes factors."""
    from rich.table import Table

    out.print(result.answer(), markup=False, highlight=False)
    table = Table(title=f"The models, weighed by the news: {result.question}")
    for column in ("model", "prior", "log evidence", "± se", "after the news", "forecast",
                   "method"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("model", "method") else "right")
    for row in result.models().to_dict("records"):
        table.add_row(row["model"], f"{row['prior']:.0%}", f"{row['log_evidence']:.3f}",
                      f"{row['evidence_se']:.3f}", f"{row['probability']:.1%}",
                      f"{row['forecast']:.1%}", row["method"])  # fmt: skip
    out.print(table)
    names = result.names
    table = Table(title="The news step by step: model probabilities after each step")
    table.add_column("when", justify="left")
    table.add_column("news", justify="left")
    for name in names:
        table.add_column(name, justify="right")
    for name in names[1:]:
        table.add_column(f"log BF {name}:{names[0]}", justify="right")
    for row in result.steps.to_dict("records"):
        when = result.dates.get(row["time"]) or f"{row['time']:g}"
        cells = [when, row.get(f"news:{names[0]}", "")]
        cells += [f"{row[f'probability:{n}']:.1%}" for n in names]
        cells += [f"{row[f'log_bayes_factor:{n}:{names[0]}']:+.2f}" for n in names[1:]]
        table.add_row(*cells)
    out.print(table)
