"""The ``escalate`` command line.

Errors a user can fix (bad scenarios, bad arguments) print one clear message and exit 2; the
traceback shows only with ``--debug``. Tables go to standard output, messages to standard error.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from escalate.errors import EscalateError, ScenarioError
from escalate.results import Result, check_output_folder, compact_path, write_folder
from escalate.scenario import Scenario, load
from escalate.scenario.model import OnsetAt, OnsetTiming
from escalate.scenario.resolve import ResolvedScenario, resolve

# numba, SALib and the engines load inside the commands that need them: `validate`, `show`,
# `schema` and `solve` start without importing the Monte Carlo stack.
METHODS = ("sobol", "morris", "oat")  # escalate._sensitivity.METHODS

USAGE_ERROR = 2


def _stdout() -> Console:
    console = Console(soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = 120  # tables in a pipe or a file: wider than rich's default 80
    return console


def _stderr() -> Console:
    return Console(stderr=True, soft_wrap=True, highlight=False)


_resume_option = click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted job from the checkpoint beside --out (same arguments).",
)


def _quiet_dask(ctx: click.Context, _param, address: str | None) -> str | None:
    """Dask logs a worker lost, a task rescheduled or a lost scheduler with tracebacks on
    standard error; a command reports what matters as one line, so its loggers stay silent
    (unless ``--debug``)."""
    if address is not None and not (ctx.find_root().obj or {}).get("debug"):
        import logging

        try:
            import distributed  # noqa: F401 - its configuration sets its loggers' levels
        except ImportError:  # connect() says what to install
            return address
        for name in ["distributed", *logging.root.manager.loggerDict]:
            if name.startswith("distributed"):  # some (distributed.client) have their own level
                logging.getLogger(name).setLevel(logging.CRITICAL)
    return address


_scheduler_option = click.option(
    "--scheduler",
    metavar="ADDRESS",
    callback=_quiet_dask,
    help="Run on this Dask cluster (e.g. tcp://host:8786); the same seed gives the same figures.",
)


def _debug_option(func):
    """``--debug`` on the group and on every command: show tracebacks instead of one line."""

    def remember(ctx: click.Context, _param, value: bool) -> bool:
        root = ctx.find_root()
        if value:
            root.obj = {**(root.obj or {}), "debug": True}
        return value

    return click.option(
        "--debug",
        is_flag=True,
        expose_value=False,
        is_eager=True,
        callback=remember,
        help="Show the full traceback of an error.",
    )(func)


def _user_errors(func):
    """Render escalate's own errors as one clean message and exit 2 (unless ``--debug``)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        previous = _terminate_as_interrupt()
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            _stderr().print("interrupted: nothing was written", markup=False)
            sys.exit(130)
        except EscalateError as exc:
            ctx = click.get_current_context()
            if (ctx.find_root().obj or {}).get("debug"):
                raise
            _print_error(exc)
            sys.exit(USAGE_ERROR)
        finally:
            if previous is not None:
                import signal

                signal.signal(signal.SIGTERM, previous)

    return wrapper


def _terminate_as_interrupt():
    """SIGTERM (a scheduler, ``kill``) stops a command like Ctrl-C: cleanly, nothing half
    written. Only from the main thread, where Python delivers signals; returns the handler
    to put back when the command ends (None if none was changed)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, interrupt)


def _checkpointed(out: Path | None, resume: bool, fingerprint: dict):
    """The checkpoint of a sweep or sensitivity job writing ``out`` (None without ``--out``)."""
    from escalate._checkpoint import Checkpoint, checkpoint_path

    if out is None:
        if resume:
            raise EscalateError("--resume needs --out: the checkpoint lives beside that folder")
        return None
    return Checkpoint(checkpoint_path(out), fingerprint, resume=resume)


def _checkpointed_run(checkpoint, total: int | None, call):
    """``call()`` under a checkpoint: an interruption keeps the finished points (exit 130), an
    error closes the checkpoint (kept only if it holds points) and propagates."""
    try:
        return call()
    except KeyboardInterrupt:
        _interrupted_job(checkpoint, total)
    except EscalateError:
        _abandon(checkpoint)
        raise


def _write_job(out: Path, write, force: bool, checkpoint) -> None:
    """Write a job's folder whole; the checkpoint goes once it is written."""
    try:
        write_folder(out, write, force=force)
    except EscalateError:
        _abandon(checkpoint)
        raise
    checkpoint.close(remove=True)


def _abandon(checkpoint) -> None:
    """A job failed: close its checkpoint, keeping it only if it holds finished points."""
    if checkpoint is not None:
        checkpoint.close(remove=not checkpoint.done)


def _interrupted_job(checkpoint, total: int | None) -> None:
    err = _stderr()
    if checkpoint is None:
        err.print("interrupted: nothing was written", markup=False)
    else:
        checkpoint.close(remove=False)
        err.print(
            f"interrupted: {len(checkpoint.done)}{'' if total is None else f' of {total}'} "
            f"points saved in {checkpoint.path}; "
            "the same command with --resume continues from them",
            markup=False,
        )
    sys.exit(130)


def _print_error(exc: EscalateError) -> None:
    err = _stderr()
    if isinstance(exc, ScenarioError):
        for issue in exc.issues:
            err.print(str(issue), markup=False)
    else:
        err.print(f"error: {exc}", markup=False)


def _parse_set(values: tuple[str, ...]) -> dict[str, float]:
    overrides = {}
    for item in values:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint="--set")
        try:
            number = float(text.replace("_", ""))
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: {text!r} is not a number", param_hint="--set"
            ) from None
        if not math.isfinite(number):
            raise click.BadParameter(f"{item!r}: the value must be finite", param_hint="--set")
        overrides[name.strip()] = number
    return overrides


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="escalate")
@_debug_option
def main() -> None:
    """Odds and timing of staged escalation scenarios written in YAML."""


@main.command()
@click.argument("scenarios", nargs=-1, required=True, type=click.Path(path_type=Path))
@_debug_option
@_user_errors
def validate(scenarios: tuple[Path, ...]) -> None:
    """Check scenario files; list every error of every file.

    Exit 0 when all are valid, 2 when any is invalid.
    """
    out, err = _stdout(), _stderr()
    invalid = 0
    for path in scenarios:
        try:
            scenario = load(path)
        except ScenarioError as exc:
            invalid += 1
            for issue in exc.issues:
                err.print(str(issue), markup=False)
            n = sum(issue.severity == "error" for issue in exc.issues)
            err.print(f"{path}: invalid ({n} error{'s' * (n != 1)})", markup=False)
            continue
        for warning in scenario.warnings:
            err.print(str(warning), markup=False)
        out.print(
            f"{path}: valid ({len(scenario.stages)} stages, {len(scenario.transitions)} "
            f"transitions, {len(scenario.triggers)} triggers, "
            f"{len(scenario.parameters)} parameters)",
            markup=False,
            highlight=False,
        )
    if invalid:
        sys.exit(USAGE_ERROR)


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a parameter's point value (repeatable).",
)
@_debug_option
@_user_errors
def show(scenario: Path, settings: tuple[str, ...]) -> None:
    """Show a scenario: stages, transitions with effective rates, triggers, parameters."""
    model = load(scenario)
    resolved = resolve(model, _parse_set(settings))
    out = _stdout()
    for table in _show_tables(model, resolved):
        out.print(table)
    err = _stderr()
    for warning in model.warnings:
        err.print(str(warning), markup=False)


class _Count(click.ParamType):
    """A whole number written as 1000000, 1_000_000 or 1e6."""

    name = "N"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        text = str(value).replace("_", "").strip()
        try:
            number = float(text)
        except ValueError:
            self.fail(f"{value!r} is not a number (e.g. 1e6 or 1_000_000)", param, ctx)
        if not math.isfinite(number) or number != int(number) or number < 1:
            self.fail(f"{value!r} is not a whole number of at least 1", param, ctx)
        return int(number)


@main.command()
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "-n",
    "--trajectories",
    "n",
    type=_Count(),
    default="1e6",
    show_default=True,
    help="Trajectories to run (the cap with --precision); accepts 1e6 and 1_000_000.",
)
@click.option("--seed", type=click.IntRange(min=0), help="Fixes every figure (default: random).")
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a parameter's point value (repeatable).",
)
@click.option("--horizon", type=float, help="Replace the scenario's horizon.")
@click.option("--threads", type=click.IntRange(min=1), help="Numba threads (default: all cores).")
@click.option(
    "--precision",
    type=float,
    metavar="EPS",
    help="Run until the 95%% interval half-width of --metric is at most EPS.",
)
@click.option("--metric", metavar="M", help="e.g. p_reached:full_scale_war (with --precision).")
@click.option(
    "--max-seconds",
    type=float,
    metavar="S",
    help="Refuse a run projected to take longer than S seconds (checked after the first batch).",
)
@click.option(
    "--worlds",
    type=click.IntRange(min=2),
    metavar="W",
    help="Draw W parameter sets from the uncertain ranges; -n trajectories in each.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write a run folder (summary, tables, curves, paths, manifest, figures).",
)
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@_scheduler_option
@_debug_option
@_user_errors
def run(
    scenario,
    n,
    seed,
    settings,
    horizon,
    threads,
    precision,
    metric,
    max_seconds,
    worlds,
    out,
    force,
    output_format,
    scheduler,
) -> None:
    """Simulate trajectories of a scenario and report the odds and timing of every stage."""
    from escalate.api import simulate
    from escalate.uncertainty import run_worlds

    model = load(scenario)
    overrides = _parse_set(settings)
    if out is not None:
        check_output_folder(out, force=force)
    err = _stderr()
    if worlds is not None:
        if precision is not None or out is not None:
            raise EscalateError("--worlds does not combine with --precision or --out yet")
        seed = _seed(seed)
        with _progress(err, worlds, unit="worlds") as advance:
            result = run_worlds(
                model,
                worlds,
                seed=seed,
                n=n,
                engine="monte-carlo",
                overrides=overrides,
                horizon=horizon,
                threads=threads,
                progress=advance,
                scheduler=scheduler,
            )
        _print_worlds(result, output_format)
        return
    try:
        with _progress(err, n) as advance:
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
        if out is not None:
            result.save(out, force=force, model=model)
    except KeyboardInterrupt:
        err.print("interrupted: nothing was written", markup=False)
        sys.exit(130)
    if output_format == "json":
        click.echo(result.to_json())
    else:
        _print_result(_stdout(), result)
    if out is not None:
        err.print(f"run folder written: {out}", markup=False)


@main.command(name="solve")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override a parameter's point value (repeatable).",
)
@click.option("--horizon", type=float, help="Replace the scenario's horizon.")
@click.option(
    "--worlds",
    type=click.IntRange(min=2),
    metavar="W",
    help="Solve W parameter sets drawn from the uncertain ranges.",
)
@click.option("--seed", type=click.IntRange(min=0), help="Fixes the worlds (default: random).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@_scheduler_option
@_debug_option
@_user_errors
def solve_command(scenario, settings, horizon, worlds, seed, output_format, scheduler) -> None:
    """Solve a memoryless scenario exactly (every timing exponential)."""
    model = load(scenario)
    if scheduler is not None and worlds is None:
        raise EscalateError("--scheduler goes with --worlds: one exact solve takes milliseconds")
    if worlds is not None:
        from escalate.uncertainty import run_worlds  # scipy.stats: only when worlds are asked for

        with _progress(_stderr(), worlds, unit="worlds") as advance:
            result = run_worlds(
                model,
                worlds,
                seed=_seed(seed),
                engine="exact",
                overrides=_parse_set(settings),
                horizon=horizon,
                progress=advance,
                scheduler=scheduler,
            )
        _print_worlds(result, output_format)
        return
    from escalate.api import solve

    result = solve(model, overrides=_parse_set(settings), horizon=horizon)
    if output_format == "json":
        click.echo(result.to_json())
    else:
        _print_result(_stdout(), result)


def _seed(seed: int | None) -> int:
    import numpy as np

    return int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed


def _print_worlds(result, output_format: str) -> None:
    if output_format == "json":
        click.echo(result.to_json())
        return
    out = _stdout()
    if result.pooled_result is not None:
        _print_result(out, result.pooled_result)
    n = result.trajectories_per_world
    how = f"{n:,} trajectories each" if n else "each solved exactly"
    table = Table(
        title=(
            f"Across {result.worlds:,} worlds ({how}; {result.sampling} over "
            f"{result.parameters.shape[1]} uncertain parameters; seed {result.seed})"
        ),
        title_justify="left",
    )
    for col in ("metric", "pooled", "mean", "5%", "50%", "95%"):
        table.add_column(col, justify="left" if col == "metric" else "right", overflow="fold")
    for metric, row in result.summary().iterrows():
        if metric.startswith(("p_reached:", "p_fired:", "time_to_reach:")):
            form = "{:.1f}" if metric.startswith("time_") else "{:.3f}"
            cells = [row[c] for c in ("pooled", "mean", "p5", "p50", "p95")]
            table.add_row(metric, *(form.format(x) if x == x else "—" for x in cells))
    out.print(table)


class _progress:
    """A rich progress bar on a terminal (for long runs); silent in a pipe."""

    def __init__(self, console: Console, total: int, unit: str = "trajectories"):
        from escalate._simulate import BATCH_CHUNKS, CHUNK_SIZE

        self.bar = None
        long = total > 2 * BATCH_CHUNKS * CHUNK_SIZE if unit == "trajectories" else total > 20
        if console.is_terminal and long:
            from rich.progress import Progress

            self.bar = Progress(console=console, transient=True)
            self.task = self.bar.add_task(unit, total=total)

    def __enter__(self):
        if self.bar is None:
            return None
        self.bar.start()
        return lambda done, total: self.bar.update(self.task, completed=done)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


def _pct(p: float | None) -> str:
    return "—" if p is None else f"{100 * p:.2f}%"


def _print_result(out: Console, result: Result) -> None:
    m = result.manifest
    unit = result.time_unit
    rate = m.get("trajectories_per_s")
    if result.method == "exact":
        header = (
            f"{result.scenario}: exact solution over {m.get('states', '?')} joint states, "
            f"horizon {_num(result.horizon)} {unit}s ({m.get('wall_time_s', 0):.3f} s)"
        )
    else:
        header = (
            f"{result.scenario}: {result.trajectories:,} trajectories, seed {result.seed}, "
            f"horizon {_num(result.horizon)} {unit}s"
        )
    if rate:
        header += f" ({m['wall_time_s']:.2f} s, {rate / 1e6:.2f} million/s"
        if m.get("kernel_load_s", 0.0) > 1.0:
            header += f"; the kernel compiled first, once, in {m['kernel_load_s']:.1f} s"
        header += ")"
    out.print(header, markup=False, highlight=False)
    table = Table(
        title=f"Stages (times in {unit}s; ± is the 95% interval half-width)",
        title_justify="left",
    )
    table.add_column("stage", overflow="fold")
    table.add_column("P(reached)", justify="right")
    table.add_column("P(at horizon)", justify="right")
    table.add_column("time in stage", justify="right")
    table.add_column("time to reach: p10", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p90", justify="right")
    table.add_column("mean", justify="right")
    for name, s in result.stages.items():
        lo, hi = s.p_reached_ci
        ttr = s.time_to_reach
        table.add_row(
            result.labels.get(name, name),
            _pct(s.p_reached) + (f" ± {100 * (hi - lo) / 2:.2f}" if hi > lo else ""),
            _pct(s.p_at_horizon),
            _num(s.time_in),
            _num(ttr["p10"]),
            _num(ttr["p50"]),
            _num(ttr["p90"]),
            _num(ttr["mean"]),
        )
    out.print(table)
    if result.triggers:
        triggers = Table(title="Triggers", title_justify="left")
        triggers.add_column("trigger", overflow="fold")
        triggers.add_column("P(on by horizon)", justify="right")
        for name, t in result.triggers.items():
            lo, hi = t["p_fired_ci"]
            triggers.add_row(
                result.labels.get(name, name),
                _pct(t["p_fired"]) + (f" ± {100 * (hi - lo) / 2:.2f}" if hi > lo else ""),
            )
        out.print(triggers)
    if result.paths:
        paths = Table(title="Most frequent pathways", title_justify="left")
        paths.add_column("path", overflow="fold")
        paths.add_column("share", justify="right")
        for p in result.paths[:10]:
            paths.add_row(compact_path(p["path"]), _pct(p["p"]))
        out.print(paths)


@main.command(name="sweep")
@click.argument("scenario", type=click.Path(path_type=Path))
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
@click.option(
    "-n",
    "--trajectories",
    "n",
    type=_Count(),
    default="1e5",
    show_default=True,
    help="Trajectories per point, when the scenario needs simulation.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="One seed for every point (common random numbers).",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="Fix another parameter's value (repeatable).",
)
@click.option("--threads", type=click.IntRange(min=1), help="Numba threads.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write sweep.csv, sweep.json and the figure into this folder.",
)
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@_resume_option
@_scheduler_option
@_debug_option
@_user_errors
def sweep_command(
    scenario,
    varies,
    metrics,
    n,
    seed,
    settings,
    threads,
    out,
    force,
    output_format,
    scheduler,
    resume,
) -> None:
    """Metrics over a grid of one or two parameters (exact where the scenario allows)."""
    from escalate._sweep import parse_vary, sweep

    model = load(scenario)
    vary = dict(parse_vary(v) for v in varies)
    overrides = _parse_set(settings)
    if out is not None:
        check_output_folder(out, force=force)
    total = math.prod(len(v) for v in vary.values())
    checkpoint = _checkpointed(
        out,
        resume,
        {
            "command": "sweep", "scenario_sha256": model.sha256,
            "vary": {name: [float(v) for v in values] for name, values in vary.items()},
            "metrics": list(metrics), "n": n, "seed": seed, "overrides": overrides,
        },
    )  # fmt: skip

    def work():
        with _progress(_stderr(), total, unit="points") as advance:
            return sweep(
                model,
                vary,
                list(metrics),
                n=n,
                seed=seed,
                overrides=overrides,
                threads=threads,
                progress=advance,
                scheduler=scheduler,
                checkpoint=checkpoint,
            )

    result = _checkpointed_run(checkpoint, total, work)
    if out is not None:

        def write(folder: Path) -> None:
            result.frame.to_csv(folder / "sweep.csv", index=False)
            (folder / "sweep.json").write_text(result.to_json() + "\n", encoding="utf-8")
            _save_figure(result.plot(), folder / "sweep")

        _write_job(out, write, force, checkpoint)
    if output_format == "json":
        click.echo(result.to_json())
        return
    table = Table(title=f"Sweep ({result.engine})", title_justify="left")
    for col in result.frame.columns:
        table.add_column(col, justify="right", overflow="fold")
    for row in result.frame.itertuples(index=False):
        table.add_row(*(_num(float(v)) for v in row))
    _stdout().print(table)


@main.command(name="sensitivity")
@click.argument("scenario", type=click.Path(path_type=Path))
@click.option("--method", type=click.Choice(list(METHODS)), default="sobol", show_default=True)
@click.option(
    "--metric",
    metavar="M",
    default=None,
    help="The metric to explain (default: P(reached) of the last terminal stage).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=2),
    default=256,
    show_default=True,
    help="Base sample size (Sobol: samples x (d + 2) points; Morris: x (d + 1)).",
)
@click.option(
    "-n",
    "--trajectories",
    "n",
    type=_Count(),
    default="5e4",
    show_default=True,
    help="Trajectories per point, when the scenario needs simulation.",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--threads", type=click.IntRange(min=1), help="Numba threads.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write sensitivity.csv, sensitivity.json and the figure into this folder.",
)
@click.option("--force", is_flag=True, help="Replace an existing --out folder.")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@_resume_option
@_scheduler_option
@_debug_option
@_user_errors
def sensitivity_command(
    scenario,
    method,
    metric,
    samples,
    n,
    seed,
    threads,
    out,
    force,
    output_format,
    scheduler,
    resume,
) -> None:
    """Which uncertain parameters drive a metric: Sobol, Morris or a tornado (oat)."""
    from escalate._sensitivity import sensitivity

    model = load(scenario)
    if metric is None:
        terminal = [name for name, stage in model.stages.items() if stage.terminal]
        metric = f"p_reached:{(terminal or list(model.stages))[0]}"
    if out is not None:
        check_output_folder(out, force=force)
    checkpoint = _checkpointed(
        out,
        resume,
        {
            "command": "sensitivity", "scenario_sha256": model.sha256, "method": method,
            "metric": metric, "samples": samples, "n": n, "seed": seed,
        },
    )  # fmt: skip

    def work():
        with _progress(_stderr(), 0, unit="points") as advance:
            return sensitivity(
                model,
                metric,
                method=method,
                samples=samples,
                n=n,
                seed=seed,
                threads=threads,
                progress=advance,
                scheduler=scheduler,
                checkpoint=checkpoint,
            )

    result = _checkpointed_run(checkpoint, None, work)
    if out is not None:

        def write(folder: Path) -> None:
            result.frame.to_csv(folder / "sensitivity.csv")
            (folder / "sensitivity.json").write_text(result.to_json() + "\n", encoding="utf-8")
            _save_figure(result.plot(), folder / "sensitivity")

        _write_job(out, write, force, checkpoint)
    if output_format == "json":
        click.echo(result.to_json())
        return
    table = Table(
        title=f"Sensitivity of {result.metric} ({result.method}, {result.evaluations} "
        f"evaluations, {result.engine}); most influential first",
        title_justify="left",
    )
    table.add_column("parameter")
    for col in result.frame.columns:
        table.add_column(col, justify="right")
    for name, row in result.frame.iterrows():
        table.add_row(name, *(_num(float(v)) for v in row))
    _stdout().print(table)


def _save_figure(fig, stem: Path) -> None:
    import matplotlib.pyplot as plt

    for suffix in ("png", "svg"):
        fig.savefig(stem.with_suffix(f".{suffix}"), dpi=120 if suffix == "png" else None)
    plt.close(fig)


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The HTML file to write (default: RUN_DIR/report.html).",
)
@_debug_option
@_user_errors
def report(run_dir: Path, output: Path | None) -> None:
    """One self-contained HTML page of a run folder (escalate run --out): summary, figures,
    pathways, the claims behind the parameters, the manifest."""
    from escalate.report import write_report

    written = write_report(run_dir, output)
    _stderr().print(f"report written: {written}", markup=False)


@main.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@_debug_option
@_user_errors
def schema(output: Path | None) -> None:
    """Print the JSON Schema of the scenario language (for editors and checkers)."""
    text = json.dumps(Scenario.json_schema(), indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise EscalateError(f"cannot write {output}: {exc.strerror}") from None


# --- show ----------------------------------------------------------------------------------


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.{digits}g}"
    return f"{x:.{digits - 1}e}"


def _raw(x: float | str) -> str:
    return x if isinstance(x, str) else _num(x)


def _show_tables(model: Scenario, r: ResolvedScenario):
    unit = model.time_unit
    title = model.title or model.scenario
    overview = Table.grid(padding=(0, 2))
    overview.add_column(style="bold")
    overview.add_column(overflow="fold")
    overview.add_row("scenario", f"{model.scenario} — {title}")
    if model.description:
        overview.add_row("description", model.description.strip())
    overview.add_row("horizon", f"{_num(model.horizon)} {unit}s")
    overview.add_row(
        "start",
        ", ".join(f"{s} ({_num(p)})" for s, p in r.start.items())
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
    for t, written in zip(r.transitions, model.transitions, strict=True):
        transitions.add_row(
            f"{t.source} → {t.target}",
            written.describe(),
            _num(t.rate),
            _num(t.mean_time),
            ", ".join(f"{k} ×{_num(v)}" for k, v in t.when.items()),
            ", ".join(t.requires),
        )
    if not r.is_markov:
        transitions.caption = "— : not exponential (no constant rate)"
    yield transitions

    if model.triggers:
        triggers = Table(title="Triggers", title_justify="left")
        for col in ("trigger", "label", "initial", "onset"):
            triggers.add_column(col, overflow="fold")
        for rt in r.triggers:
            onset = model.triggers[rt.name].onset
            if isinstance(onset, OnsetAt):
                text = f"at t = {_num(rt.at)}"
            elif isinstance(onset, OnsetTiming):
                rate = next(iter(rt.onset_rates.values()), None)
                text = f"every stage: {onset.describe()} (rate {_num(rate)}/{unit})"
            elif isinstance(onset, dict):
                text = "\n".join(
                    f"{stage}: {timing.describe()} (rate {_num(rt.onset_rates[stage])}/{unit})"
                    for stage, timing in onset.items()
                )
            else:
                text = "none (only through initial)"
            triggers.add_row(rt.name, model.label(rt.name), _num(rt.initial), text)
        yield triggers

    if model.parameters:
        parameters = Table(title="Parameters", title_justify="left", show_lines=True)
        parameters.add_column("parameter", overflow="fold")
        parameters.add_column("value", justify="right")
        parameters.add_column("uncertain", overflow="fold")
        parameters.add_column("source", overflow="fold", ratio=1)
        for name, p in model.parameters.items():
            value = r.values[name]
            shown = _num(value) + (" (set)" if value != p.value else "")
            parameters.add_row(
                name,
                shown,
                p.uncertain.describe() if p.uncertain else "",
                (p.source or "").strip(),
            )
        yield parameters
