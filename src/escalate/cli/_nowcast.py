"""``nowcast``: the odds as of today, given what has happened (docs/forecasting.md)."""

from __future__ import annotations

from pathlib import Path

import click

from escalate.cli._calibrate import print_parameters
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
from escalate.cli._render import output, print_warnings, stderr
from escalate.engine.folder import check_output_folder
from escalate.engine.numbers import count
from escalate.output.format import points
from escalate.scenario import load


@click.command(name="nowcast")
@scenario_argument
@click.argument("observed", type=click.Path(path_type=Path))
# escalate.forecast.nowcast.PRIOR_WORLDS, repeated so that the command line starts fast
@posterior_options(1000, "Prior worlds drawn and weighted by the news.")
@worlds_from_option(
    "Start from these weighted worlds (calibrate's worlds.parquet) instead of the prior: "
    "they are reweighted by the news."
)
@click.option(
    "--horizon",
    metavar="T|DATE",
    help="Forecast to this date (YYYY-MM-DD, with start_date), or for T time units after "
    "as_of (default: the scenario's horizon).",
)
@click.option(
    "--stage",
    metavar="STAGE",
    help="The stage the update table and figure follow (default: the first war, else the "
    "last stage).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Processes that evaluate worlds the worlds engine cannot take (default: the cores, "
    "at most 8); the engine itself uses every core.",
)
@particle_options
@scheduler_option
@set_option("Fix a parameter at a value; it is not updated (repeatable).")
@out_option(
    "Write worlds.parquet, summary.json, updates.csv, the figures and manifest.json into "
    "this folder."
)
@format_option
@user_errors
def nowcast_command(
    scenario,
    observed,
    worlds,
    seed,
    worlds_from,
    horizon,
    stage,
    workers,
    method,
    particles,
    scheduler,
    settings,
    params_file,
    out,
    force,
    output_format,
):
    """Update the odds on what has happened up to as_of (an observations file)."""
    from escalate.analysis.draws import uncertain_parameters
    from escalate.engine.compile import compile_scenario
    from escalate.errors import EscalateError, suggest
    from escalate.forecast.nowcast import PRIOR_WORLDS, nowcast
    from escalate.forecast.observations import read_observations
    from escalate.forecast.particles import method_for
    from escalate.scenario.model import looks_like_date

    model = load(scenario)
    overrides = parse_set(settings, params_file, model)
    observations = read_observations(observed, model)
    if stage is not None and stage not in model.stages:
        raise EscalateError(f"--stage: unknown stage {stage!r}{suggest(stage, model.stages)}")
    method = method_for(method, compile_scenario(model, overrides), particles)  # before work
    end = None
    if horizon is not None:
        try:
            end = model.time_of(horizon)
        except ValueError as exc:
            raise EscalateError(f"--horizon: {exc}") from None
        if not looks_like_date(horizon):  # a span from as_of
            if not end > 0:
                raise EscalateError(
                    f"--horizon: a span after as_of must be positive, got {horizon}"
                )
            end += observations.as_of
    if click.get_current_context().get_parameter_source("worlds") != (
        click.core.ParameterSource.COMMANDLINE
    ):
        worlds = None  # not given: nowcast draws PRIOR_WORLDS, or reads --worlds-from
    if out is not None:
        check_output_folder(out, force=force)
    seed = random_seed(seed)
    err = stderr()
    if worlds_from:
        drawn = f"the worlds of {worlds_from}"
    elif not [name for name in uncertain_parameters(model) if name not in overrides]:
        drawn = "one world (no parameter is uncertain)"
    else:
        drawn = count(worlds or PRIOR_WORLDS, "world")
    err.print(
        f"nowcasting {model.scenario} as of {model.when(observations.as_of)}: {drawn}"
        + f", seed {seed}; {method_words(method)}",
        markup=False,
        highlight=False,
    )
    result = nowcast(
        model,
        observations,
        worlds=worlds,
        seed=seed,
        overrides=overrides,
        worlds_from=worlds_from,
        horizon=end,
        workers=workers,
        scheduler=scheduler,
        method=method,
        particles=particles,
        progress=lambda line: err.print(line, markup=False, highlight=False),
    )
    if out is not None:

        def extra(folder: Path) -> None:
            result.worlds.to_parquet(folder / "worlds.parquet", index=False)
            result.updates(stage).to_csv(folder / "updates.csv", index=False)

        write_outputs(
            out,
            force=force,
            command="nowcast",
            model=model,
            scenario_file=scenario,
            inputs={"observations": Path(observed), "worlds_from": worlds_from},
            summary_json=result.to_json(),
            figures={"update": result.plot_update(stage), "parameters": result.plot_parameters()},
            manifest={
                "worlds": None if worlds_from else worlds or PRIOR_WORLDS,
                "seed": seed,
                "horizon": result.horizon,
                "stage": stage,
                "workers": workers,
                "scheduler": scheduler,
                "overrides": overrides,
                "method": method,
                "particles": result.particles,
            },
            extra=extra,
        )
    output(result, output_format, lambda console, shown: print_nowcast(console, shown, stage))
    print_warnings(result.posterior.warnings)
    if out is not None:
        err.print(f"nowcast written: {out}", markup=False, highlight=False)


def method_words(method: str) -> str:
    """How a nowcast's likelihood is computed, in a few words."""
    if method == "particles":
        return "particles (a timing is not exponential, or asked for)"
    return "exact (every timing exponential)"


def print_nowcast(out, result, stage: str | None = None) -> None:
    """The forecast before and after the news, the update per step, the unobserved
    triggers and the parameters."""
    from rich.table import Table

    p = result.posterior
    out.print(
        f"{result.scenario} as of {result.when(result.as_of)}, to {result.when(result.horizon)}:"
        f" {count(len(p.worlds), 'world')}"
        + (f" from {result.worlds_from}" if result.worlds_from else "")
        + f"; {p.describe()}",
        markup=False,
        highlight=False,
    )
    if result.method == "particles":
        sd = result.log_likelihood_sd
        worst = float(max(result.after_se)) if result.after_se is not None else float("nan")
        out.print(
            f"Method: particles, {result.particles} per world"
            + (f" (a world's log-likelihood estimate has sd {sd:.2f})" if sd is not None else "")
            + f"; the forecast after the news has a Monte Carlo standard error up to {worst:.1%}.",
            markup=False,
            highlight=False,
        )
    else:
        out.print("Method: exact (the forward algorithm).", markup=False, highlight=False)
    table = Table(title="P(reached by the horizon) and P(in it at the horizon): before the "
                  "news, after it")  # fmt: skip
    for column in ("stage", "reached: before", "after", "change", "at horizon: before", "after"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    at_before, at_after = result.ahead["p_at_horizon"]
    for i, label in enumerate(result.stage_labels):
        b, a = result.before[i], result.after[i]
        table.add_row(label, f"{b:.1%}", f"{a:.1%}", points(a - b),
                      f"{at_before[i]:.1%}", f"{at_after[i]:.1%}")  # fmt: skip
    out.print(table)
    updates = result.updates(stage)
    followed = result.stage_labels[result._stage(stage)]
    table = Table(title=f"The news one step at a time: P({followed} by the horizon)")
    for column in ("when", "news", "before", "after", "change", "ESS", "P(by then)"):
        table.add_column(column, justify="left" if column in ("when", "news") else "right")
    for row in updates.to_dict("records"):
        table.add_row(
            result.when(row["time"]),
            row["news"],
            f"{row['before']:.1%}",
            f"{row['after']:.1%}",
            points(row["change"]),
            f"{row['ess']:.0f}",
            ("—" if row["p_by"] != row["p_by"] else f"{row['p_by']:.1%}")
            + (" unexpected" if row["unexpected"] else ""),
        )
    out.print(table)
    surprises = updates[updates["unexpected"]]
    if len(surprises):
        said = [f"{result.when(r.time)} {r.news} ({r.p_by:.1%})" for r in surprises.itertuples()]
        out.print(
            "Unexpected (under 5% by the forecast just before): "
            + "; ".join(said)
            + ". The model did not see it coming: ask why.",
            markup=False,
            highlight=False,
        )
    if result.triggers_on:
        out.print(
            "Unobserved triggers, P(on at as_of): "
            + ", ".join(f"{k} {v:.0%}" for k, v in result.triggers_on.items()),
            markup=False,
            highlight=False,
        )
    if result.uncertain:
        print_parameters(out, result.parameters())
