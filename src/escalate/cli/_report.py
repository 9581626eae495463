"""``report``: one HTML page of a run folder."""

from __future__ import annotations

from pathlib import Path

import click

from escalate.cli._options import output_option, user_errors
from escalate.cli._render import stderr


@click.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
@output_option("The HTML file to write (default: RUN_DIR/report.html).")
@user_errors
def report(run_dir: Path, output: Path | None) -> None:
    """One self-contained HTML page of a run folder (escalate run --out): summary, figures,
    pathways, the claims behind the parameters, the manifest."""
    from escalate.output.report import write_report

    written = write_report(run_dir, output)
    stderr().print(f"report written: {written}", markup=False)
