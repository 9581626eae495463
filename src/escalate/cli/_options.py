"""What the commands share: option decorators, the parsing of their values, error handling.

Each option several commands take is written once here; where its help or default differs
between commands, the decorator takes it as a parameter. Errors a user can fix print one clear
message and exit 2 (the traceback only with ``--debug``); library messages name Python
parameters, shown here as the flags that set them (``FLAGS``).
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from escalate.cli._jobs import Job
from escalate.cli._render import stderr
from escalate.errors import EscalateError, ScenarioError

if TYPE_CHECKING:
    from escalate.scenario import Scenario

USAGE_ERROR = 2

# The flag that sets each parameter of the Python API: a library message names the parameter
# ("seed must be a non-negative integer"), the command line shows the flag in its place.
FLAGS = {
    "n": "-n",
    "particles": "--particles",
    "seed": "--seed",
    "overrides": "--set",
    "horizon": "--horizon",
    "threads": "--threads",
    "precision": "--precision",
    "metric": "--metric",
    "metrics": "--metric",
    "max_seconds": "--max-seconds",
    "worlds": "--worlds",
    "worlds_from": "--worlds-from",
    "method": "--method",
    "samples": "--samples",
    "vary": "--vary",
    "resume": "--resume",
    "force": "--force",
    "scheduler": "--scheduler",
    "origins": "--origins",
    "every": "--every",
    "questions": "--questions",
}


# --- options -------------------------------------------------------------------------------


class Count(click.ParamType):
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


scenario_argument = click.argument("scenario", type=click.Path(path_type=Path))

horizon_option = click.option(
    "--horizon",
    metavar="T|DATE",
    help="Replace the scenario's horizon: a time, or a date YYYY-MM-DD with start_date.",
)

format_option = click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)

resume_option = click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted job from the checkpoint beside --out (same arguments).",
)


def set_option(help: str = "Override a parameter's point value (repeatable)."):
    """``--set NAME=VALUE`` (repeatable) and ``--params FILE``, read by :func:`parse_set`."""

    def decorate(func):
        func = click.option(
            "--params",
            "params_file",
            type=click.Path(path_type=Path),
            metavar="FILE",
            help="Parameter values from a YAML file (name: value), e.g. calibrate's "
            "params.yaml; --set wins over it.",
        )(func)
        return click.option("--set", "settings", multiple=True, metavar="NAME=VALUE", help=help)(
            func
        )

    return decorate


def trajectories_option(default: str, help: str):
    return click.option(
        "-n",
        "--trajectories",
        "n",
        type=Count(),
        default=default,
        show_default=True,
        help=help,
    )


def seed_option(help: str | None = None, default: int | None = None):
    """``--seed``: random unless the command gives a ``default`` (then shown in the help)."""
    shown = {} if default is None else {"default": default, "show_default": True}
    return click.option("--seed", type=click.IntRange(min=0), help=help, **shown)


def threads_option(help: str = "Numba threads."):
    return click.option("--threads", type=click.IntRange(min=1), help=help)


def posterior_options(worlds: int, help: str):
    """``--worlds W`` (prior worlds, default ``worlds``) and ``--seed``, for the commands that
    weight worlds by what is known (calibrate, nowcast)."""

    def decorate(func):
        func = seed_option("Fixes the worlds, the resampling and the moves (default: random).")(
            func
        )
        return click.option(
            "--worlds",
            type=click.IntRange(min=2),
            default=worlds,
            show_default=True,
            metavar="W",
            help=help,
        )(func)

    return decorate


def particle_options(func):
    """``--method`` and ``--particles``, for the commands that update on news (nowcast,
    backtest, weigh)."""
    func = click.option(
        "--particles",
        type=click.IntRange(min=1),
        metavar="N",
        help="Particles per world for the particle method (default: enough that a world's "
        "log-likelihood estimate has a variance near 1, from a pilot).",
    )(func)
    return click.option(
        "--method",
        type=click.Choice(["auto", "exact", "particles"]),
        default="auto",
        show_default=True,
        help="The likelihood and forecast: exact (the forward algorithm; every timing "
        "exponential), particles (any scenario), or auto: exact where it applies.",
    )(func)


def worlds_from_option(
    help: str = "Evaluate the weighted worlds of a worlds file (calibrate's worlds.parquet).",
):
    """``--worlds-from FILE``: weighted worlds, e.g. calibrate's ``worlds.parquet``."""
    return click.option(
        "--worlds-from", "worlds_from", type=click.Path(path_type=Path), metavar="FILE", help=help
    )


def worlds_option(help: str):
    """``--worlds W`` and ``--worlds-from FILE`` (weighted worlds, e.g. calibrate's)."""

    def decorate(func):
        func = worlds_from_option()(func)
        return click.option("--worlds", type=click.IntRange(min=2), metavar="W", help=help)(func)

    return decorate


def out_option(help: str):
    """``--out FOLDER`` and the ``--force`` that lets it replace an existing folder."""

    def decorate(func):
        func = click.option("--force", is_flag=True, help="Replace an existing --out folder.")(func)
        return click.option("--out", type=click.Path(file_okay=False, path_type=Path), help=help)(
            func
        )

    return decorate


def output_option(help: str):
    """``--output``/``-o FILE``: the file a command writes instead of its default."""
    return click.option(
        "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help=help
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


scheduler_option = click.option(
    "--scheduler",
    metavar="ADDRESS",
    callback=_quiet_dask,
    help="Run on this Dask cluster (e.g. tcp://host:8786); the same seed gives the same figures.",
)


def job_options(out_help: str):
    """``--threads``, ``--out``/``--force``, ``--format``, ``--resume`` and ``--scheduler``: the
    options of a checkpointed job (sweep, sensitivity), given to the command as one ``job``."""

    def decorate(func):
        @functools.wraps(func)
        def with_job(*args, threads, out, force, output_format, resume, scheduler, **kwargs):
            job = Job(threads, out, force, resume, scheduler, output_format)
            return func(*args, job=job, **kwargs)

        for option in (scheduler_option, resume_option, format_option, out_option(out_help)):
            with_job = option(with_job)
        return threads_option()(with_job)

    return decorate


def debug_option(func):
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


# --- values --------------------------------------------------------------------------------


def parse_set(
    values: tuple[str, ...], params_file: Path | None = None, model: Scenario | None = None
) -> dict[str, float]:
    """The ``--params FILE`` values (read against ``model``), then the ``--set NAME=VALUE``
    options over them, as overrides (parameter name -> value)."""
    overrides = {}
    if params_file is not None:
        from escalate.scenario.params import read_params

        overrides.update(read_params(params_file, model))
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


def random_seed(seed: int | None) -> int:
    """``--seed``, or a fresh random seed when it is not given."""
    import numpy as np

    return int(np.random.SeedSequence().entropy % 2**63) if seed is None else seed


# --- errors --------------------------------------------------------------------------------


def user_errors(func):
    """``--debug``, and escalate's own errors rendered as one clean message with exit 2 (unless
    ``--debug``); an interruption (Ctrl-C, SIGTERM) exits 130. Under every command's options."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        previous = _terminate_as_interrupt()
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            stderr().print("interrupted: nothing was written", markup=False)
            sys.exit(130)
        except EscalateError as exc:
            ctx = click.get_current_context()
            if (ctx.find_root().obj or {}).get("debug"):
                raise
            print_error(exc)
            sys.exit(USAGE_ERROR)
        finally:
            if previous is not None:
                import signal

                signal.signal(signal.SIGTERM, previous)

    return debug_option(wrapper)


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


def print_error(exc: EscalateError) -> None:
    """An error as the command line shows it: every issue of a scenario on its own line, any
    other error as ``error: MESSAGE`` with the flags in place of parameter names."""
    err = stderr()
    if isinstance(exc, ScenarioError):
        for issue in exc.issues:
            err.print(str(issue), markup=False)
    else:
        err.print(f"error: {exc.naming(FLAGS)}", markup=False)
