"""What every figure shares: a line style per
stage (colours and dashes, apart in grey too), titles that name the scenario, a calendar axis
where the scenario has a start date, and writing a figure as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler

__all__ = ["DASHES", "STYLE", "date_axis", "save_figure", "title", "wrap"]

# 40 distinct (colour, dash) pairs: the first ten stages differ by colour and the next by dash
# too, so no two of a scenario's stages (40 at most) share a line
DASHES = ["-", "--", "-.", ":"]
STYLE = cycler(color=[plt.get_cmap("tab10").colors[i % 10] for i in range(40)]) + cycler(
    linestyle=[DASHES[(i + i // 10) % 4] for i in range(40)]
)


def title(result, what: str) -> str:
    return f"{result.scenario}: {what}"


def date_axis(ax, start_date, time_unit: str) -> None:
    """With a ``start_date`` (ISO text or a date), a second time axis on top giving the
    calendar dates."""
    if start_date is None:
        return
    import matplotlib.dates as mdates

    from escalate.scenario.model import days_per

    origin = mdates.date2num(np.datetime64(start_date, "D"))
    days = days_per(time_unit)
    top = ax.secondary_xaxis(
        "top", functions=(lambda t: origin + t * days, lambda d: (d - origin) / days)
    )
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
    top.xaxis.set_major_locator(locator)
    top.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    top.tick_params(labelsize="small")


def save_figure(fig, stem: Path) -> list[Path]:
    """Write ``fig`` as ``stem.png`` (120 dpi) and ``stem.svg``, then close it."""
    import matplotlib.pyplot as plt

    written = []
    try:
        for suffix in ("png", "svg"):
            path = stem.with_suffix(f".{suffix}")
            fig.savefig(path, dpi=120 if suffix == "png" else None)
            written.append(path)
    finally:
        plt.close(fig)
    return written


def wrap(text: str, width: int = 16) -> str:
    """Break a label into lines of about ``width`` characters, at spaces."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text
