"""Figures of one run: reach curves (with the exact ones overlaid where ``solve`` applies),
occupancy over time, the most frequent pathways, and the run folder's set of them."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from escalate.engine.numbers import wilson_band
from escalate.output.format import compact_path
from escalate.output.plots.common import STYLE, date_axis, save_figure, title
from escalate.output.plots.graph import stage_graph

__all__ = ["occupancy", "paths", "reached", "save_run_figures"]


def reached(result, stages=None, exact=None):
    """P(first entry into a stage by t), one line per stage, with 95% bands for Monte Carlo;
    ``exact`` (the Result of ``solve``) overlays the exact curves as thin black dots."""
    curves = result.curves[result.curves.curve == "reached"]
    names = list(stages or [s for s in result.stages if s in set(curves.stage)])
    fig, ax = plt.subplots(figsize=(9.5, 4.5), layout="constrained")
    ax.set_prop_cycle(STYLE)
    n = result.trajectories
    for name in names:
        c = curves[curves.stage == name]
        t, p = c.t.to_numpy(), c.value.to_numpy()
        (line,) = ax.plot(t, p, label=result.labels.get(name, name))
        if result.method == "monte-carlo" and n:
            low, high = wilson_band(p, n)  # the tables' interval, never zero-width at p = 0
            ax.fill_between(t, low, high, color=line.get_color(), alpha=0.2, lw=0)
    if exact is not None:
        ex = exact.curves[exact.curves.curve == "reached"]
        for i, name in enumerate(names):
            c = ex[ex.stage == name]
            label = "exact (solve)" if i == 0 else None
            ax.plot(c.t, c.value, color="black", lw=0.9, ls=":", label=label)
    ax.set_xlabel(f"time ({result.time_unit}s)")
    ax.set_ylabel("probability reached by t")
    ax.set_ylim(-0.01, 1.03)  # a curve at 0 or 1 (the start stage) clear of the frame
    ax.set_xlim(0, result.horizon)
    date_axis(ax, result.start_date, result.time_unit)
    ax.grid(alpha=0.3)
    # beside the axes, never over a curve
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.set_title(title(result, "probability each stage is reached by time t"))
    return fig


def occupancy(result):
    """Where trajectories are at each time: stacked shares of each stage."""
    curves = result.curves[result.curves.curve == "occupancy"]
    names = list(result.stages)
    t = curves[curves.stage == names[0]].t.to_numpy()
    values = np.vstack([curves[curves.stage == n].value.to_numpy() for n in names])
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    colors = plt.get_cmap("tab10").colors
    hatches = ["", "//", "..", "\\\\", "xx", "--", "++", "oo", "||", "**", "OO", "/.", "\\\\."]
    polys = ax.stackplot(
        t, values, labels=[result.labels.get(n, n) for n in names], colors=colors, alpha=0.85
    )
    for i, poly in enumerate(polys):
        poly.set_hatch(hatches[i % len(hatches)])
        poly.set_edgecolor("white")
    ax.set_xlabel(f"time ({result.time_unit}s)")
    ax.set_ylabel("share of trajectories in stage")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, result.horizon)
    date_axis(ax, result.start_date, result.time_unit)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title(result, "where trajectories are over time"))
    return fig


def paths(result, top: int = 10):
    """The most frequent pathways as horizontal bars with 95% intervals, most frequent on top."""
    rows = result.paths[:top]
    fig, ax = plt.subplots(figsize=(10, 0.6 * max(len(rows), 1) + 1.4), layout="constrained")
    if not rows:
        ax.text(0.5, 0.5, "no paths recorded (exact results carry none)", ha="center")
        ax.set_axis_off()
        ax.set_title(title(result, "most frequent pathways"))
        return fig
    y = np.arange(len(rows))[::-1]
    shares = np.array([r["p"] for r in rows])
    errors = np.zeros((2, len(rows)))
    if result.method == "monte-carlo" and result.trajectories:
        low, high = wilson_band(shares, result.trajectories)
        errors = np.vstack([shares - low, high - shares])
    ax.barh(y, shares, xerr=errors, color="#4c72b0", capsize=3, label="share of trajectories")
    labels = [_short_path(r["path"], result.labels) for r in rows]
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_xlabel("share of trajectories (95% interval)")
    ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title(result, f"the {len(rows)} most frequent pathways"))
    return fig


def _short_path(path, labels, width: int = 60) -> str:
    """A path with repeated cycles written once (see ``compact_path``), wrapped at arrows."""
    lines, line = [], ""
    for step in compact_path(path).split(" → "):
        candidate = f"{line} → {step}" if line else step
        if line and len(candidate) > width:
            lines.append(line + " →")
            line = step
        else:
            line = candidate
    return "\n".join([*lines, line])


def save_run_figures(result, folder: Path, model=None, exact=None) -> list[Path]:
    """Write the run folder's figures as PNG and SVG; returns the files written.

    ``model`` adds the stage graph; ``exact`` overlays the exact curves on the reach figure.
    """
    written = []
    makers = [
        ("reached", lambda r: reached(r, exact=exact)),
        ("occupancy", occupancy),
        ("paths", paths),
    ]
    if model is not None:
        makers.append(("stages", lambda r: stage_graph(model)))
    for name, make in makers:
        written += save_figure(make(result), Path(folder) / name)
    return written
