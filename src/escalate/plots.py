"""Figures of a result (matplotlib; the Agg backend when nothing else is chosen).

Every figure names the scenario in its title, labels its axes with units, and keeps its lines
apart in grey as well as in colour (line styles cycle with the colours).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
    matplotlib.use("Agg")  # headless by default; notebooks keep their inline backend

import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib import ticker

__all__ = ["occupancy", "reached", "save_run_figures", "sensitivity", "sweep"]

_STYLE = cycler(color=plt.get_cmap("tab10").colors[:8]) + cycler(
    linestyle=["-", "--", "-.", ":", "-", "--", "-.", ":"]
)


def _title(result, what: str) -> str:
    return f"{result.scenario}: {what}"


def reached(result, stages=None):
    """P(first entry into a stage by t), one line per stage, with 95% bands for Monte Carlo."""
    curves = result.curves[result.curves.curve == "reached"]
    names = list(stages or [s for s in result.stages if s in set(curves.stage)])
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    ax.set_prop_cycle(_STYLE)
    n = result.trajectories
    for name in names:
        c = curves[curves.stage == name]
        t, p = c.t.to_numpy(), c.value.to_numpy()
        (line,) = ax.plot(t, p, label=result.labels.get(name, name))
        if result.method == "monte-carlo" and n:
            half = 1.96 * np.sqrt(p * (1 - p) / n)
            ax.fill_between(t, p - half, p + half, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel(f"time ({result.time_unit}s)")
    ax.set_ylabel("probability reached by t")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, result.horizon)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    ax.set_title(_title(result, "probability each stage is reached by time t"))
    return fig


def occupancy(result):
    """Where trajectories are at each time: stacked shares of each stage."""
    curves = result.curves[result.curves.curve == "occupancy"]
    names = list(result.stages)
    t = curves[curves.stage == names[0]].t.to_numpy()
    values = np.vstack([curves[curves.stage == n].value.to_numpy() for n in names])
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    colors = plt.get_cmap("tab10").colors
    hatches = ["", "//", "..", "\\\\", "xx", "--", "++", "oo"]
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
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(_title(result, "where trajectories are over time"))
    return fig


def save_run_figures(result, folder: Path) -> list[Path]:
    """Write the run folder's figures as PNG and SVG; returns the files written."""
    written = []
    for name, make in (("reached", reached), ("occupancy", occupancy)):
        fig = make(result)
        for suffix in ("png", "svg"):
            path = Path(folder) / f"{name}.{suffix}"
            fig.savefig(path, dpi=120 if suffix == "png" else None)
            written.append(path)
        plt.close(fig)
    return written


def _geometric(values: np.ndarray) -> bool:
    """Three or more positive values with a constant ratio (np.geomspace): drawn on a log axis."""
    if len(values) < 3 or np.any(values <= 0):
        return False
    ratios = values[1:] / values[:-1]
    return bool(np.allclose(ratios, ratios[0], rtol=1e-6) and not np.isclose(ratios[0], 1.0))


def _log_axis(ax, which: str, values: np.ndarray) -> None:
    """A log scale ticked at the grid values, labelled as plain numbers (30, 60, 120)."""
    getattr(ax, f"set_{which}scale")("log")
    axis = ax.xaxis if which == "x" else ax.yaxis
    axis.set_major_locator(ticker.FixedLocator(values))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.4g}"))
    axis.set_minor_locator(ticker.NullLocator())


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges halfway between grid values (geometrically on a log axis)."""
    v = np.log(values) if log else values
    if len(v) == 1:
        edges = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = (v[1:] + v[:-1]) / 2
        edges = np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])
    return np.exp(edges) if log else edges


def sweep(result, metric: str | None = None):
    """A sweep: one line per metric with 95% bands (one parameter), or a heat map (two)."""
    frame = result.frame
    if len(result.parameters) == 1:
        x = result.parameters[0]
        fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
        ax.set_prop_cycle(_STYLE)
        for m in [metric] if metric else result.metrics:
            y, se = frame[m].to_numpy(), frame[f"{m}_se"].to_numpy()
            (line,) = ax.plot(frame[x], y, marker="o", ms=3, label=m)
            if np.any(se > 0):
                ax.fill_between(
                    frame[x], y - 1.96 * se, y + 1.96 * se, color=line.get_color(), alpha=0.2
                )
        if _geometric(frame[x].to_numpy(float)):
            _log_axis(ax, "x", frame[x].to_numpy(float))
        ax.set_xlabel(x)
        ax.set_ylabel(metric or ("value" if len(result.metrics) > 1 else result.metrics[0]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        ax.set_title(f"{result.scenario}: sweep of {x}")
        return fig
    x, y = result.parameters
    m = metric or result.metrics[0]
    table = frame.pivot(index=y, columns=x, values=m)
    fig, ax = plt.subplots(figsize=(7, 5), layout="constrained")
    xs, ys = table.columns.to_numpy(float), table.index.to_numpy(float)
    x_log, y_log = _geometric(xs), _geometric(ys)
    mesh = ax.pcolormesh(
        _edges(xs, x_log), _edges(ys, y_log), table.to_numpy(), shading="flat", cmap="viridis"
    )
    if x_log:
        _log_axis(ax, "x", xs)
    if y_log:
        _log_axis(ax, "y", ys)
    contours = ax.contour(
        table.columns, table.index, table.to_numpy(), colors="white", linewidths=0.8
    )
    ax.clabel(contours, fontsize="small")
    fig.colorbar(mesh, ax=ax, label=m)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{result.scenario}: {m} over {x} and {y}")
    return fig


def sensitivity(result):
    """Tornado (one-at-a-time) or sensitivity indices with their 95% intervals."""
    frame = result.frame.iloc[::-1]  # most influential at the top
    names = list(frame.index)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.6), layout="constrained")
    y = np.arange(len(names))
    if result.method == "oat":
        base = float(frame["base"].iloc[0])
        low, high = frame["low"].to_numpy(), frame["high"].to_numpy()
        ax.barh(y, low - base, left=base, color="#4c72b0", label="parameter at its 5% quantile")
        ax.barh(
            y,
            high - base,
            left=base,
            color="#dd8452",
            hatch="//",
            label="parameter at its 95% quantile",
        )
        ax.axvline(base, color="black", lw=1)
        ax.set_xlabel(f"{result.metric} (base {base:.4g})")
        what = "one-at-a-time swing (tornado)"
    elif result.method == "sobol":
        ax.barh(
            y - 0.2,
            frame["ST"],
            height=0.4,
            xerr=frame["ST_conf"],
            color="#4c72b0",
            label="total index ST",
            capsize=3,
        )
        ax.barh(
            y + 0.2,
            frame["S1"],
            height=0.4,
            xerr=frame["S1_conf"],
            color="#dd8452",
            hatch="//",
            label="first-order index S1",
            capsize=3,
        )
        ax.axvline(0, color="black", lw=1)
        ax.set_xlabel("Sobol index (share of variance), with 95% intervals")
        what = "Sobol indices"
    else:
        ax.barh(
            y,
            frame["mu_star"],
            xerr=frame["mu_star_conf"],
            color="#4c72b0",
            label="mu* (mean absolute elementary effect)",
            capsize=3,
        )
        ax.set_xlabel(f"mu* of {result.metric} per unit quantile, with 95% intervals")
        what = "Morris elementary effects"
    ax.set_yticks(y, names)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="best")
    ax.set_title(f"{result.scenario}: {what} for {result.metric}")
    return fig
