"""The ``escalate`` command line: one module per verb, options and rendering apart.

``_options`` holds the options several commands share and the error handling (errors a user
can fix print one clear message and exit 2; the traceback shows only with ``--debug``);
``_render`` every table the commands print (tables to standard output, messages to standard
error); ``_jobs`` the checkpointed jobs. numba, SALib and the engines load inside the commands
that need them: ``validate``, ``show``, ``schema`` and ``solve`` start without importing the
Monte Carlo stack.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from escalate.cli._backtest import backtest_command
from escalate.cli._calibrate import calibrate_command
from escalate.cli._compare import compare_command
from escalate.cli._explore import explore_command
from escalate.cli._inspect import schema, show, validate
from escalate.cli._nowcast import nowcast_command
from escalate.cli._options import debug_option
from escalate.cli._report import report
from escalate.cli._run import run
from escalate.cli._sensitivity import sensitivity_command
from escalate.cli._solve import solve_command
from escalate.cli._sweep import sweep_command
from escalate.cli._weigh import weigh_command

__all__ = ["entry", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="escalate")
@debug_option
def main() -> None:
    """Odds and timing of staged escalation scenarios written in YAML."""
    # what the library says as it works (the kernel compiling): one plain line on stderr
    logger = logging.getLogger("escalate")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


for _command in (
    validate,
    show,
    schema,
    run,
    solve_command,
    sweep_command,
    sensitivity_command,
    calibrate_command,
    nowcast_command,
    backtest_command,
    weigh_command,
    compare_command,
    explore_command,
    report,
):
    main.add_command(_command)


def entry() -> None:
    """The ``escalate`` executable: :func:`main`, then out of the process at once.

    Once a command has finished (its files closed, any Dask client closed, its output
    flushed) nothing is left to do but tear the interpreter down, which with numba and LLVM
    loaded takes a tenth of a second or more, longer than many commands. The exit status is
    the command's.
    """
    code = 0
    try:
        main(prog_name="escalate")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:  # None: closed when the process started (>&-)
                stream.flush()
        except BrokenPipeError:  # a reader that stopped early (| head): nothing more to say
            code = code or 1
    os._exit(code)
