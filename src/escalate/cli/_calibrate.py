"""``calibrate``: fit a scenario to analysts' statements about its outcomes
(docs/forecasting.md)."""

from __future__ import annotations

from pathlib import Path

import click

from escalate.cli._jobs import write_outputs
from escalate.cli._options import (
    format_option,
    out_option,
    parse_set,
    posterior_options,
    random_seed,
    scenario_argument,
    scheduler_option,
    set_option,
    user_errors,
)
from escalate.cli._render import output, print_warnings, stderr
from escalate.engine.folder import check_output_folder
from escalate.scenario import load


@click.command(name="calibrate")
@scenario_argument
@click.argument("targets", type=click.Path(path_type=Path))
@posterior_options(2000, "Prior worlds drawn and weighted by the statements.")
@click.option(
    "--moves",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Metropolis steps per world after each tempering step.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes that evaluate exact worlds the worlds engine cannot take (default: the "
    "cores, at most 8); the engine itself uses every core.",
)
@set_option("Fix a parameter at a value; it is not fitted (repeatable).")
@out_option(
    "Write worlds.parquet, params.yaml, summary.json, the figures and manifest.json into "
    "this folder."
)
@format_option
@scheduler_option
@user_errors
def calibrate_command(
    scenario,
    targets,
    worlds,
    seed,
    moves,
    workers,
    settings,
    params_file,
    out,
    force,
    output_format,
    scheduler,
) -> None:
    """Fit the uncertain parameters to statements about outcomes (a targets file)."""
    from escalate.forecast.calibrate import calibrate
    from escalate.forecast.targets import read_targets

    model = load(scenario)
    overrides = parse_set(settings, params_file, model)
    statements = read_targets(targets, model)
    if out is not None:
        check_output_folder(out, force=force)
    err = stderr()
    seed = random_seed(seed)
    err.print(
        f"calibrating {model.scenario}: {len(statements)} targets, {worlds} worlds, seed {seed}",
        markup=False,
        highlight=False,
    )
    result = calibrate(
        model,
        statements,
        worlds=worlds,
        seed=seed,
        moves=moves,
        overrides=overrides,
        workers=workers,
        scheduler=scheduler,
        progress=lambda line: err.print(line, markup=False, highlight=False),
    )
    if out is not None:

        def extra(folder: Path) -> None:
            import yaml

            result.worlds.to_parquet(folder / "worlds.parquet", index=False)
            params = {"scenario": model.scenario, **result.params}
            (folder / "params.yaml").write_text(
                "# posterior medians of a calibration: escalate ... --params params.yaml\n"
                + yaml.safe_dump(params, sort_keys=False),
                encoding="utf-8",
            )

        write_outputs(
            out,
            force=force,
            command="calibrate",
            model=model,
            scenario_file=scenario,
            inputs={"targets": Path(targets)},
            summary_json=result.to_json(),
            figures={"targets": result.plot_targets(), "parameters": result.plot_parameters()},
            manifest={
                "worlds": worlds,
                "seed": seed,
                "moves": moves,
                "workers": workers,
                "scheduler": scheduler,
                "overrides": overrides,
            },
            extra=extra,
        )
    output(result, output_format, print_calibration)
    print_warnings(result.posterior.warnings)
    if out is not None:
        err.print(f"calibration written: {out}", markup=False, highlight=False)


def print_calibration(out, result) -> None:
    """The targets and parameters tables of a calibration, and its diagnostics."""
    from rich.table import Table

    def fmt(x: float, probability: bool) -> str:
        return f"{x:.1%}" if probability else f"{x:.4g}"

    s = result.summary()
    out.print(
        f"{s['scenario']}: calibration over {s['worlds']:,} worlds ({s['method']}): "
        + result.posterior.describe(),
        markup=False,
        highlight=False,
    )
    table = Table(title="Targets: the statement, and the model before and after (median [90%])")
    for column in ("metric", "stated", "prior", "posterior", "honoured"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for row, target in zip(result.targets().to_dict("records"), result.targets_list, strict=True):
        p = target.is_probability
        verdict = (
            "no parameter moves it"
            if not row["moved"]
            else "CONFLICT"
            if row["conflict"]
            else "yes"
        )
        table.add_row(
            row["metric"],
            f"{fmt(row['low'], p)} to {fmt(row['high'], p)}",
            f"{fmt(row['prior_median'], p)} [{fmt(row['prior_p5'], p)}, "
            f"{fmt(row['prior_p95'], p)}]",
            f"{fmt(row['posterior_median'], p)} [{fmt(row['posterior_p5'], p)}, "
            f"{fmt(row['posterior_p95'], p)}]",
            verdict,
        )
    out.print(table)
    print_parameters(out, result.parameters())
    if s["conflicts"]:
        out.print(
            "The statements marked CONFLICT cannot hold together in this model: the posterior's "
            "90% interval misses them.",
            markup=False,
        )


def print_parameters(out, frame) -> None:
    """Per parameter: prior and posterior median [90%] and the contraction."""
    from rich.table import Table

    table = Table(
        title="Parameters: prior and posterior (median [90%]), contraction (1 - variance ratio "
        "on the sampler's scale: log for a positive parameter, logit for a probability)"
    )
    for column in ("parameter", "prior", "posterior", "contraction"):
        table.add_column(column, justify="left" if column == "parameter" else "right")
    for row in frame.to_dict("records"):
        table.add_row(
            row["parameter"],
            f"{row['prior_median']:.4g} [{row['prior_p5']:.4g}, {row['prior_p95']:.4g}]",
            f"{row['posterior_median']:.4g} [{row['posterior_p5']:.4g}, "
            f"{row['posterior_p95']:.4g}]",
            f"{row['contraction']:.0%} ({row['contraction_scale']})",
        )
    out.print(table)
