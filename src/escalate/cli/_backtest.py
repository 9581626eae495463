"""``backtest``: the forecasts the scenario would have issued, scored against a record
(docs/forecasting.md)."""

from __future__ import annotations

from pathlib import Path

import click

from escalate.cli._jobs import write_outputs
from escalate.cli._options import (
    format_option,
    out_option,
    parse_set,
    particle_options,
    posterior_options,
    random_seed,
    scenario_argument,
    scheduler_option,
    set_option,
    user_errors,
    worlds_from_option,
)
from escalate.cli._render import output, stderr
from escalate.engine.folder import check_output_folder
from escalate.scenario import load


@click.command(name="backtest")
@scenario_argument
@click.argument("record", type=click.Path(path_type=Path))
@click.option(
    "--origins",
    metavar="T,T,...",
    help="Issue a forecast at these dates (YYYY-MM-DD, with start_date) or times (default: "
    "the start and each time the record has news).",
)
@click.option(
    "--every", metavar="SPAN", type=float, help="Issue a forecast every SPAN time units instead."
)
@click.option(
    "--questions",
    metavar="Q,Q,...",
    help="Score these: p_reached:STAGE@T or p_fired:TRIGGER@T with T within the record "
    "(default: every stage not yet reached at the origin, by the record's end).",
)
@posterior_options(1000, "Prior worlds drawn; every origin weights the same worlds.")
@worlds_from_option("Start every origin from these weighted worlds (calibrate's worlds.parquet).")
@particle_options
@scheduler_option
@set_option("Fix a parameter at a value; it is not updated (repeatable).")
@out_option(
    "Write scores.csv, crps.csv, summary.json, the figures and manifest.json into this folder."
)
@format_option
@user_errors
def backtest_command(
    scenario,
    record,
    origins,
    every,
    questions,
    worlds,
    seed,
    worlds_from,
    method,
    particles,
    scheduler,
    settings,
    params_file,
    out,
    force,
    output_format,
):
    """Score the forecasts the scenario would have issued against a record of what happened."""
    from escalate.engine.compile import compile_scenario
    from escalate.errors import EscalateError
    from escalate.forecast.backtest import backtest
    from escalate.forecast.observations import read_observations
    from escalate.forecast.particles import method_for

    model = load(scenario)
    overrides = parse_set(settings, params_file, model)
    observations = read_observations(record, model)
    method = method_for(method, compile_scenario(model, overrides), particles)  # before work
    times = None
    if origins is not None:
        try:
            times = [model.time_of(o.strip()) for o in origins.split(",") if o.strip()]
        except ValueError as exc:
            raise EscalateError(f"--origins: {exc}") from None
    asked = None if questions is None else [q.strip() for q in questions.split(",") if q.strip()]
    if click.get_current_context().get_parameter_source("worlds") != (
        click.core.ParameterSource.COMMANDLINE
    ):
        worlds = None
    if out is not None:
        check_output_folder(out, force=force)
    seed = random_seed(seed)
    err = stderr()
    err.print(
        f"backtesting {model.scenario} on {record}, to {model.when(observations.as_of)}; "
        f"seed {seed}",
        markup=False,
        highlight=False,
    )
    result = backtest(
        model,
        observations,
        origins=times,
        every=every,
        questions=asked,
        worlds=worlds,
        seed=seed,
        overrides=overrides,
        worlds_from=worlds_from,
        scheduler=scheduler,
        method=method,
        particles=particles,
        progress=lambda line: err.print(line, markup=False, highlight=False),
    )
    if out is not None:

        def extra(folder: Path) -> None:
            result.rows.assign(origin_date=[result.date(t) for t in result.rows["origin"]]).to_csv(
                folder / "scores.csv", index=False
            )
            result.crps.to_csv(folder / "crps.csv", index=False)

        figures = {"forecasts": result.plot_forecasts()}
        reliability = result.plot_reliability()
        if reliability is not None:
            figures["reliability"] = reliability
        write_outputs(
            out,
            force=force,
            command="backtest",
            model=model,
            scenario_file=scenario,
            inputs={"record": Path(record), "worlds_from": worlds_from},
            summary_json=result.to_json(),
            figures=figures,
            manifest={
                "worlds": None if worlds_from else result.worlds,
                "seed": seed,
                "origins": result.origins,
                "questions": asked,
                "scheduler": scheduler,
                "overrides": overrides,
            },
            extra=extra,
        )
    output(result, output_format, print_backtest)
    if out is not None:
        err.print(f"backtest written: {out}", markup=False, highlight=False)


def print_backtest(out, result) -> None:
    """The answer first, then per origin each question's forecast and scores, the window CRPS,
    and the news with its surprise."""
    from rich.table import Table

    out.print(result.answer(), markup=False, highlight=False)
    if result.method == "particles":
        out.print(f"Method: particles, {result.particles} per world (each forecast carries a "
                  "Monte Carlo error).", markup=False, highlight=False)  # fmt: skip
    table = Table(title="Each forecast it would have issued, scored (lower is better)")
    for column in ("origin", "question", "forecast", "outcome", "Brier", "log", "reference",
                   "ref. Brier", "ref. log"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("origin", "question") else "right")
    for row in result.rows.to_dict("records"):
        table.add_row(
            result.when(row["origin"]), row["question"], f"{row['forecast']:.1%}",
            "yes" if row["outcome"] else "no", f"{row['brier']:.3f}", f"{row['log_score']:.2f}",
            f"{row['reference_forecast']:.1%}", f"{row['reference_brier']:.3f}",
            f"{row['reference_log_score']:.2f}",
        )  # fmt: skip
    out.print(table)
    table = Table(title=f"Window CRPS of each first entry ({result.time_unit}; lower is better)")
    for column in ("origin", "stage", "entered", "CRPS", "reference"):
        table.add_column(column, justify="left" if column in ("origin", "stage") else "right")
    for row in result.crps.to_dict("records"):
        entered = "no" if row["entry"] != row["entry"] else result.when(row["entry"])
        table.add_row(result.when(row["origin"]), row["stage"], entered, f"{row['crps']:.2f}",
                      f"{row['reference_crps']:.2f}")  # fmt: skip
    out.print(table)
    s = result.summary()
    out.print(
        f"Mean Brier {s['brier']:.3f} (reference {s['reference_brier']:.3f}), log "
        f"{s['log_score']:.3f} ({s['reference_log_score']:.3f}), CRPS {s['crps']:.2f} "
        f"({s['reference_crps']:.2f}).",
        markup=False,
        highlight=False,
    )
    table = Table(title="The news, and how probable each step was just before it")
    for column in ("when", "news", "P(by then)"):
        table.add_column(column, justify="left" if column != "P(by then)" else "right")
    for step in result.news:
        measured = step["p_by"] == step["p_by"]  # nan: a switch off, not measured
        said = (f"{step['p_by']:.1%}" if measured else "—") + (
            " unexpected" if step["unexpected"] else "")  # fmt: skip
        table.add_row(result.when(step["time"]), "; ".join(step["events"]), said)
    out.print(table)
