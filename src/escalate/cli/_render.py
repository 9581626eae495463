"""What the commands print: rich tables of scenarios and results, and the progress bar.

Tables go to standard output, messages to standard error. Nothing here parses arguments or
runs an engine: each function takes what a command computed and shows it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from escalate.engine.metrics import is_probability
from escalate.engine.numbers import Z95
from escalate.output.format import MISSING, compact_path, number, percent, points, signed
from escalate.scenario.model import OnsetAt, OnsetTiming

if TYPE_CHECKING:
    from escalate.engine.results import Result
    from escalate.scenario import Scenario
    from escalate.scenario.resolve import ResolvedScenario


def stdout() -> Console:
    console = Console(soft_wrap=True, emoji=False)  # "time_to_reach:a:mean" is no emoji
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 120  # tables in a pipe or a file: wider than rich's default 80
    return console


def stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False, emoji=False)


def print_warnings(warnings: list[str]) -> None:
    """Each warning on a line of its own on stderr (so that JSON on stdout stays clean)."""
    for line in warnings:
        stderr().print(f"warning: {line}", markup=False, highlight=False)


def output(result: Any, output_format: str, tables: Callable[[Console, Any], None]) -> None:
    """``result`` as JSON (``--format json``), or as the tables ``tables(console, result)``
    prints."""
    if output_format == "json":
        click.echo(result.to_json())
    else:
        tables(stdout(), result)


class progress:
    """A rich progress bar on a terminal (for long runs); silent in a pipe. ``total`` may be
    unknown (None) until the work reports it: the bar starts at the first report of a long
    run (more than two batches of trajectories, or 20 other units)."""

    def __init__(self, console: Console, total: int | None, unit: str = "trajectories"):
        from escalate.engine.simulate import BATCH_CHUNKS, CHUNK_SIZE

        self.console, self.unit, self.bar = console, unit, None
        self.least = 2 * BATCH_CHUNKS * CHUNK_SIZE if unit == "trajectories" else 20

    def __enter__(self):
        if not self.console.is_terminal:
            return None

        def advance(done: int, total: int) -> None:
            if self.bar is None:
                if total <= self.least:
                    return
                from rich.progress import Progress

                self.bar = Progress(console=self.console, transient=True)
                self.task = self.bar.add_task(self.unit, total=total)
                self.bar.start()
            self.bar.update(self.task, completed=done, total=total)

        return advance

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


# --- run, solve ----------------------------------------------------------------------------


def print_result(out: Console, result: Result) -> None:
    m = result.manifest
    unit = result.time_unit
    rate = m.get("trajectories_per_s")
    horizon = f"horizon {number(result.horizon)} {unit}s"
    if result.start_date is not None:
        horizon += f" ({result.start_date} to {result.date(result.horizon)})"
    if result.method == "exact":
        header = (
            f"{result.scenario}: exact solution over {m.get('states', '?')} joint states, "
            f"{horizon} ({m.get('wall_time_s', 0):.3f} s)"
        )
    else:
        header = (
            f"{result.scenario}: {result.trajectories:,} trajectories, seed {result.seed}, "
            f"{horizon}"
        )
    if rate:
        header += f" ({m['wall_time_s']:.2f} s, {rate / 1e6:.2f} million/s"
        if m.get("kernel_load_s", 0.0) > 1.0:
            header += f"; the kernel compiled first, once, in {m['kernel_load_s']:.1f} s"
        header += ")"
    out.print(header, markup=False, highlight=False)
    out.print(result.headline_text(), markup=False, highlight=False, style="bold")
    exact = result.method == "exact"
    title = f"Stages (times in {unit}s" + (")" if exact else "; ± is the 95% interval half-width)")
    labels = [result.labels.get(name, name) for name in result.stages]
    odds = ["P(reached)", "P(at horizon)", "time in stage"]
    timing = ["time to reach: p10", "p50", "p90", "mean"]
    if result.start_date is not None:
        timing.append("p50 as a date")
    rows = []
    for s in result.stages.values():
        lo, hi = s.p_reached_ci
        ttr = s.time_to_reach
        rows.append(
            [
                percent(s.p_reached) + (f" ± {100 * (hi - lo) / 2:.2f}" if hi > lo else ""),
                percent(s.p_at_horizon),
                number(s.time_in),
                number(ttr["p10"]),
                number(ttr["p50"]),
                number(ttr["p90"]),
                number(ttr["mean"]),
                *([result.date(ttr["p50"]) or MISSING] if len(timing) > 4 else []),
            ]
        )
    if out.width >= WIDE:
        out.print(_stage_table(title, labels, odds + timing, rows))
    else:  # a narrow terminal: the odds, then the timing, each with the whole stage names
        out.print(_stage_table(title, labels, odds, [row[:3] for row in rows]))
        timing[0] = "p10"
        out.print(
            _stage_table(f"Time to reach ({unit}s)", labels, timing, [row[3:] for row in rows])
        )
    if result.triggers:
        triggers = Table(title="Triggers", title_justify="left")
        triggers.add_column("trigger", overflow="fold")
        triggers.add_column("P(fired by horizon)", justify="right")
        triggers.add_column("P(on at horizon)", justify="right")
        triggers.add_column(f"time on ({unit}s)", justify="right")
        for name, t in result.triggers.items():
            lo, hi = t["p_fired_ci"]
            triggers.add_row(
                result.labels.get(name, name),
                percent(t["p_fired"]) + (f" ± {100 * (hi - lo) / 2:.2f}" if hi > lo else ""),
                percent(t["p_on_at_horizon"]),
                number(t["time_on"]),
            )
        out.print(triggers)
    if result.paths:
        paths = Table(title="Most frequent pathways", title_justify="left")
        paths.add_column("path", overflow="fold")
        paths.add_column("share", justify="right")
        for p in result.paths[:10]:
            paths.add_row(compact_path(p["path"]), percent(p["p"]))
        out.print(paths)


WIDE = 100  # terminal columns from which a run's stage table is one table, not two


def _stage_table(title: str, labels: list[str], columns: list[str], rows: list[list[str]]):
    """A table with a row per stage: its label in the first column, never broken inside a
    word (the column is at least as wide as the longest word), then ``columns``."""
    table = Table(title=title, title_justify="left")
    longest = max((len(word) for label in labels for word in label.split()), default=5)
    table.add_column("stage", min_width=min(longest, 30))
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for label, row in zip(labels, rows, strict=True):
        table.add_row(label, *row)
    return table


def print_worlds(out: Console, result) -> None:
    if result.pooled_result is not None:
        print_result(out, result.pooled_result)
    n = result.trajectories_per_world
    how = f"{n:,} trajectories each" if n else "each solved exactly"
    if result.weights is not None:
        title = (
            f"Across {result.worlds:,} weighted worlds ({how}; read from a worlds file, "
            f"{result.parameters.shape[1]} parameters; pooled = weighted mean)"
        )
    else:
        drawn = [p for p in result.parameters if p not in result.manifest.get("overrides", {})]
        title = (
            f"Across {result.worlds:,} worlds ({how}; {result.sampling} over "
            f"{len(drawn)} uncertain parameters; seed {result.seed})"
        )
    table = Table(title=title, title_justify="left")
    summary = result.summary()
    shown = summary[summary.index.str.startswith(
        ("p_reached:", "p_fired:", "time_to_reach:", "p_on_at_horizon:")
    )]  # fmt: skip
    partly = bool((shown["defined"] < 1.0).any())  # a time some worlds never reach
    for col in ("metric", "pooled", "mean", "5%", "50%", "95%", *(["defined in"] * partly)):
        table.add_column(col, justify="left" if col == "metric" else "right", overflow="fold")
    for metric, row in shown.iterrows():
        form = "{:.1f}" if metric.startswith("time_") else "{:.3f}"
        cells = [row[c] for c in ("pooled", "mean", "p5", "p50", "p95")]
        defined = [f"{row['defined']:.0%} of worlds" if row["defined"] < 1 else ""] * partly
        table.add_row(metric, *(form.format(x) if x == x else "—" for x in cells), *defined)
    out.print(table)
    if partly:
        out.print(
            "A time to reach is defined in the worlds that reach the stage: its mean and "
            "percentiles are over those (their share of the worlds' weight: defined in).",
            markup=False,
            highlight=False,
        )
    metric = result.headline.get("metric")
    if metric in result.values:
        out.print(result.across_worlds_text(), markup=False, highlight=False, style="bold")
    if result.has_drivers():
        print_drivers(out, result, metric)


def print_drivers(out: Console, result, metric: str, top: int = 8) -> None:
    """The parameters that move ``metric`` most across the worlds."""
    table = Table(
        title=f"What moves {metric} across the worlds (mean over the fifth of worlds where "
        "each parameter is lowest / highest)",
        title_justify="left",
    )
    columns = ("parameter", "lowest fifth", "highest fifth", "swing", "± 95%", "rank corr.",
               "stands out")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="left" if col == "parameter" else "right")
    probability = is_probability(metric)
    form = percent if probability else number
    for name, row in result.drivers(metric).head(top).iterrows():
        half = Z95 * row["swing_se"]
        table.add_row(
            str(name), form(row["low"]), form(row["high"]),
            points(row["swing"]) if probability else number(row["swing"]),
            (points(half) if probability else number(half)).lstrip("+"),
            signed(row["rank_correlation"]), "yes" if row["clear"] else "",
        )  # fmt: skip
    out.print(table)


# --- sweep, sensitivity --------------------------------------------------------------------


def print_sweep(out: Console, result) -> None:
    """The sweep's grid: a row per point, its parameters and metrics (an exact sweep's
    standard errors, all 0, left out)."""
    frame = result.frame
    if result.engine == "exact":
        frame = frame[[c for c in frame.columns if not c.endswith("_se")]]
    table = Table(title=f"Sweep ({result.engine})", title_justify="left")
    for col in frame.columns:
        table.add_column(col, justify="right", overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(number(float(v)) for v in row))
    out.print(table)


def print_sensitivity(out: Console, result) -> None:
    table = Table(
        title=f"Sensitivity of {result.metric} ({result.method}, {result.evaluations} "
        f"evaluations, {result.engine}); most influential first",
        title_justify="left",
    )
    table.add_column("parameter")
    for col in result.frame.columns:
        table.add_column(col, justify="right")
    for name, row in result.frame.iterrows():
        table.add_row(name, *(number(float(v)) for v in row))
    out.print(table)


# --- show ----------------------------------------------------------------------------------


def print_scenario(out: Console, model: Scenario, r: ResolvedScenario) -> None:
    """Stages, transitions with effective rates, triggers and parameters of a scenario."""
    for table in _scenario_tables(model, r):
        out.print(table)


def _effect_text(trigger: str, value: float) -> str:
    if value < 0:
        return f"{trigger} off"
    return f"{trigger} on" if value >= 1 else f"{trigger} on w.p. {number(value)}"


def _switch_text(switch, rates: dict[str, float], whens: dict, unit: str) -> str | None:
    """An onset or offset as written, with its rates (and resolved `when` ratios)."""

    def one(timing, stage):
        text = f"{timing.describe()} (rate {number(rates.get(stage))}/{unit})"
        when = whens.get(stage) or {}
        if when:
            text += " when " + ", ".join(f"{k} ×{number(v)}" for k, v in when.items())
        return text

    if isinstance(switch, OnsetTiming):
        return f"every stage: {one(switch, next(iter(rates), None))}"
    if isinstance(switch, dict):
        return "\n".join(f"{stage}: {one(t, stage)}" for stage, t in switch.items())
    return None


def _scenario_tables(model: Scenario, r: ResolvedScenario):
    unit = model.time_unit
    title = model.title or model.scenario
    overview = Table.grid(padding=(0, 2))
    overview.add_column(style="bold")
    overview.add_column(overflow="fold")
    overview.add_row("scenario", f"{model.scenario} — {title}")
    if model.description:
        overview.add_row("description", model.description.strip())
    if model.start_date is not None:
        overview.add_row("start date", model.start_date.isoformat())
    horizon = f"{number(model.horizon_time)} {unit}s"
    if model.start_date is not None:
        horizon += f" (to {model.date_of(model.horizon_time)})"
    overview.add_row("horizon", horizon)
    overview.add_row(
        "start",
        ", ".join(f"{s} ({number(p)})" for s, p in r.start.items())
        if len(r.start) > 1
        else next(iter(r.start)),
    )
    overview.add_row("file", f"{model.file}")
    yield overview

    stages = Table(title="Stages", title_justify="left")
    for col in ("stage", "label", "terminal", "leads to"):
        stages.add_column(col, overflow="fold")
    for name, stage in model.stages.items():
        targets = [t.target for t in r.transitions if t.source == name]
        stages.add_row(name, model.label(name), "yes" if stage.terminal else "", ", ".join(targets))
    yield stages

    transitions = Table(title=f"Transitions (times in {unit}s)", title_justify="left")
    transitions.add_column("from → to", overflow="fold")
    transitions.add_column("timing as written", overflow="fold")
    transitions.add_column(f"rate /{unit}", justify="right")
    transitions.add_column("mean time", justify="right")
    transitions.add_column("when (hazard ratio)", overflow="fold")
    transitions.add_column("requires", overflow="fold")
    effects = any(t.effects for t in r.transitions)
    if effects:
        transitions.add_column("effects", overflow="fold")
    for t, written in zip(r.transitions, model.transitions, strict=True):
        transitions.add_row(
            f"{t.source} → {t.target}",
            written.describe(),
            number(t.rate),
            number(t.mean_time),
            ", ".join(f"{k} ×{number(v)}" for k, v in t.when.items()),
            ", ".join(t.requires),
            *([", ".join(_effect_text(k, v) for k, v in t.effects)] if effects else []),
        )
    if not r.is_markov:
        transitions.caption = "— : not exponential (no constant rate)"
    yield transitions

    if model.triggers:
        triggers = Table(title="Triggers", title_justify="left")
        offsets = any(t.offset is not None for t in model.triggers.values())
        for col in ("trigger", "label", "initial", "onset", *(["offset"] if offsets else [])):
            triggers.add_column(col, overflow="fold")
        for rt in r.triggers:
            trigger = model.triggers[rt.name]
            onset = trigger.onset
            if isinstance(onset, OnsetAt):
                text = f"at t = {number(rt.at)}"
                if model.start_date is not None:
                    text += f" ({model.date_of(rt.at)})"
            else:
                text = _switch_text(onset, rt.onset_rates, rt.onset_when, unit)
                text = text or "none (only through initial)"
            extra = []
            if offsets:
                extra = [_switch_text(trigger.offset, rt.offset_rates, rt.offset_when, unit) or ""]
            triggers.add_row(rt.name, model.label(rt.name), number(rt.initial), text, *extra)
        yield triggers

    if model.parameters:
        parameters = Table(title="Parameters", title_justify="left", show_lines=True)
        parameters.add_column("parameter", overflow="fold")
        parameters.add_column("value", justify="right")
        parameters.add_column("uncertain", overflow="fold")
        parameters.add_column("source", overflow="fold", ratio=1)
        for name, p in model.parameters.items():
            value = r.values[name]
            shown = number(value) + (" (set)" if value != p.value else "")
            parameters.add_row(
                name,
                shown,
                p.uncertain.describe() if p.uncertain else "",
                (p.source or "").strip(),
            )
        yield parameters
