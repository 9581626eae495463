"""One self-contained HTML report of a run folder: figures embedded, no network needed.

A calibration folder (``escalate calibrate --out``) gets its own page, the statements against
the calibrated model first; so do a nowcast folder (``escalate nowcast --out``), the odds
after the news first, a backtest folder (``escalate backtest --out``), the scores first,
and a comparison folder (``escalate compare --out``). The run page is
built from the files ``escalate run --out`` wrote (summary.json, manifest.json, stages.csv,
paths.csv and the PNG figures), so a report can be made again at any time from the folder
alone. The markup is also well-formed XML (every element closed, every text escaped), so
strict parsers and browsers read it the same way.
"""

from __future__ import annotations

import csv
from pathlib import Path

from escalate.errors import EscalateError
from escalate.output.report.forecast import calibration_page, comparison_page, nowcast_page
from escalate.output.report.page import read_json
from escalate.output.report.run import FIGURES, run_page
from escalate.output.report.scores import backtest_page, weigh_page

__all__ = ["FIGURES", "build_report", "write_report"]


def build_report(folder: str | Path) -> str:
    """The HTML text of the report of run folder ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise EscalateError(f"{folder}: no such run folder")
    try:
        return _build(folder)
    except EscalateError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, csv.Error, OSError) as exc:
        raise EscalateError(
            f"{folder}: not a complete run folder of this escalate version "
            f"({type(exc).__name__}: {exc}); write it again with escalate run --out"
        ) from None


def _build(folder: Path) -> str:
    manifest = read_json(folder, "manifest.json")
    page_of = {"compare": comparison_page, "calibrate": calibration_page, "nowcast": nowcast_page,
               "backtest": backtest_page, "weigh": weigh_page}  # fmt: skip
    return page_of.get(manifest.get("command"), run_page)(folder, manifest)


def write_report(folder: str | Path, output: str | Path | None = None) -> Path:
    """Write the report (default: ``report.html`` inside the run folder) atomically."""
    folder = Path(folder)
    text = build_report(folder)
    target = Path(output) if output is not None else folder / "report.html"
    temporary = target.with_name(f".{target.name}.partial")
    try:
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise EscalateError(f"{target}: cannot write the report ({exc.strerror})") from None
    return target
