"""Figures of many runs of one scenario: the fan of reach curves across worlds, what drives
the headline across them, sweeps (a line or a heat map) and sensitivity indices."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from escalate.engine.metrics import is_probability
from escalate.engine.numbers import Z95
from escalate.output.plots.common import STYLE, date_axis, title

__all__ = ["drivers", "fan", "sensitivity", "sweep"]


def fan(
    times: np.ndarray,
    values: np.ndarray,
    *,
    scenario: str,
    stage: str,
    time_unit: str,
    start_date: str | None = None,
):
    """Across-world fan chart: the median, 25–75% and 5–95% bands of P(stage reached by t)
    over worlds (``values``: one row per world, one column per time); with ``start_date``
    (ISO date of t = 0) the dates run along the top."""
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    q = np.nanquantile(values, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0)
    ax.fill_between(times, q[0], q[4], color="#4c72b0", alpha=0.2, lw=0, label="5–95% of worlds")
    ax.fill_between(times, q[1], q[3], color="#4c72b0", alpha=0.45, lw=0, hatch="//",
                    label="25–75% of worlds")  # fmt: skip
    ax.plot(times, q[2], color="black", label="median world")
    ax.plot(times, np.nanmean(values, axis=0), color="#b03a2e", ls="--", label="pooled (mean)")
    ax.set_xlabel(f"time ({time_unit}s)")
    ax.set_ylabel("probability reached by t")
    ax.set_ylim(0, 1)
    ax.set_xlim(times[0], times[-1])
    date_axis(ax, start_date, time_unit)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"{scenario}: P({stage} reached by t) across {len(values)} worlds")
    return fig


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
    """Cell edges halfway between grid values (geometrically on a log axis); the outer cells
    of a positive parameter stop at 0 rather than reach below it."""
    v = np.log(values) if log else values
    if len(v) == 1:
        edges = np.array([v[0] - 0.5, v[0] + 0.5])
    else:
        mid = (v[1:] + v[:-1]) / 2
        edges = np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])
    if log:
        return np.exp(edges)
    return np.maximum(edges, 0.0) if values.min() > 0 else edges


def sweep(result, metric: str | None = None):
    """A sweep: one line per metric with 95% bands (one parameter), or a heat map (two)."""
    frame = result.frame
    if len(result.parameters) == 1:
        x = result.parameters[0]
        fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
        ax.set_prop_cycle(STYLE)
        for m in [metric] if metric else result.metrics:
            y, se = frame[m].to_numpy(), frame[f"{m}_se"].to_numpy()
            (line,) = ax.plot(frame[x], y, marker="o", ms=3, label=m)
            if np.any(se > 0):
                ax.fill_between(
                    frame[x], y - Z95 * se, y + Z95 * se, color=line.get_color(), alpha=0.2
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


def sensitivity(result, top: int = 15):
    """Tornado (one-at-a-time) or sensitivity indices with their 95% intervals, for the
    ``top`` most influential parameters (the most influential at the top)."""
    frame = result.frame.head(top).iloc[::-1]
    names = list(frame.index)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(names) + 2.0), layout="constrained")
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
    fig.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)
    shown = len(result.frame)
    more = f" (the {len(names)} most influential of {shown})" if len(names) < shown else ""
    ax.set_title(f"{result.scenario}: {what}\nfor {result.metric}{more}", fontsize="medium")
    return fig


def drivers(result, metric: str | None = None, top: int = 8):
    """What moves a metric across worlds: per parameter (most influential at the top), the
    metric's mean over the fifth of worlds where the parameter is lowest and over the fifth
    where it is highest, joined by a line, with its swing and 95% half-width (marked "within
    noise" unless it stands out: see :func:`escalate.analysis.drivers.drivers`); a dashed line at
    its mean over all worlds."""
    metric = metric or result.headline.get("metric")
    table = result.drivers(metric).head(top).iloc[::-1]
    probability = is_probability(metric)
    scale = 100.0 if probability else 1.0
    fig, ax = plt.subplots(figsize=(8.5, 0.5 * len(table) + 1.8), layout="constrained")
    y = np.arange(len(table))
    low, high = table["low"].to_numpy() * scale, table["high"].to_numpy() * scale
    ax.hlines(y, np.minimum(low, high), np.maximum(low, high), color="0.6", lw=2)
    ax.plot(low, y, "o", color="#4c72b0", ms=8, label="parameter in its lowest fifth")
    ax.plot(high, y, "s", color="#dd8452", ms=8, label="parameter in its highest fifth")
    for at, (swing, se, clear, right) in enumerate(
        zip(table["swing"], table["swing_se"], table["clear"], np.maximum(low, high), strict=True)
    ):
        unit = " pts" if probability else ""
        noise = "" if clear else " (within noise)"  # the test of escalate.analysis.drivers.drivers
        ax.annotate(f"{swing * scale:+.1f} ± {Z95 * se * scale:.1f}{unit}{noise}", (right, at),
                    xytext=(8, 0), textcoords="offset points", va="center", fontsize=9)  # fmt: skip
    values = result.values[metric].to_numpy(float)
    weights = result.weights if result.weights is not None else np.ones(len(values))
    known = np.isfinite(values)
    if known.any():
        mean = np.average(values[known], weights=weights[known]) * scale
        ax.axvline(mean, color="0.3", lw=1, ls="--", label="all worlds")
    ax.set_yticks(y, list(table.index))
    ax.set_ylim(-0.6, len(table) - 0.4)
    ax.margins(x=0.3)
    ax.grid(axis="x", alpha=0.3)
    what = result.headline.get("label") if metric == result.headline.get("metric") else None
    label = f"P({what} by {result.headline['by']})" if what else metric
    ax.set_xlabel(f"{label}, mean over the worlds of each fifth" + (" (%)" if probability else ""))
    fig.legend(loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    ax.set_title(title(result, f"what moves it across {result.worlds:,} worlds"))
    return fig
