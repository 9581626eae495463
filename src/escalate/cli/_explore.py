"""``explore``: the interactive explorer on a page served from this machine."""

from __future__ import annotations

import socket

import click

from escalate.cli._options import scenario_argument, user_errors
from escalate.cli._render import stderr
from escalate.errors import EscalateError


@click.command(name="explore")
@scenario_argument
@click.option("--port", type=click.IntRange(0, 65535), default=5006, show_default=True,
              help="The port to serve on (0: any free port).")  # fmt: skip
@user_errors
def explore_command(scenario, port) -> None:
    """Serve an interactive view of a scenario: move a parameter, watch the odds move.

    The page is at http://127.0.0.1:PORT/ (printed once it is ready); its settings are in its
    URL, e.g. ?war_mean=50&horizon=365. Ctrl-C stops the server.
    """
    from escalate.scenario import load

    model = load(scenario)  # a scenario that does not validate is refused before any import
    try:
        from escalate.explore import serve
    except ImportError as exc:  # pragma: no cover - an extra half-installed
        raise EscalateError(f"the explorer could not start: {exc}") from None
    port = port or _free_port()
    _check_free(port)
    err = stderr()
    err.print(f"preparing the explorer of {scenario}", markup=False, highlight=False)

    def ready(url: str) -> None:
        err.print(f"escalate explorer: {url}  (Ctrl-C stops it)", markup=False, highlight=False)

    serve(model, port=port, ready=ready)
    err.print("escalate explorer stopped", markup=False, highlight=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _check_free(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise EscalateError(
                f"--port {port}: the port is in use; give another (0: any free port)"
            ) from None
