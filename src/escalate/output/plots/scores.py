"""Figures of keeping score: a backtest's forecasts across the origins against what happened,
a reliability diagram of every scored forecast, and rival models weighed step by step."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from escalate.output.plots.common import date_axis, title

__all__ = ["backtest_forecasts", "model_probabilities", "reliability"]

RELIABILITY_FROM = 20  # scored questions a reliability diagram needs to say anything


def backtest_forecasts(result):
    """Per question, its forecast at each origin (a line with dots) and the reference's (the
    forecast from the start, dashed), the outcome marked at the record's end (a filled dot:
    it happened; open: it did not) and the day it was settled (a tick)."""
    rows = result.rows
    questions = list(dict.fromkeys(rows["question"]))
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = "os^Dv<>p"
    for i, question in enumerate(questions):
        part = rows[rows["question"] == question].sort_values("origin")
        colour, marker = cycle[i % len(cycle)], markers[i % len(markers)]
        ax.plot(part["origin"], part["forecast"], marker=marker, color=colour, label=question)
        ax.plot(part["origin"], part["reference_forecast"], ls="--", lw=0.9, color=colour,
                alpha=0.6)  # fmt: skip
        y = int(part["outcome"].iloc[-1])
        ax.plot([result.end], [y], marker=marker, ms=9, color=colour,
                mfc=colour if y else "white", clip_on=False)  # fmt: skip
    for entry in result.crps["entry"].dropna().unique():
        ax.axvline(entry, color="0.6", lw=0.8, ls=":")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(f"origin ({result.time_unit} from the start); dotted: an entry in the record")
    ax.set_ylabel("P(yes) issued at the origin")
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", title="solid: updated; dashed: never updated",
              title_fontsize=8)  # fmt: skip
    date_axis(ax, result.start_date, result.time_unit)
    ax.set_title(title(result, "the forecasts it would have issued, and what happened"))
    return fig


def reliability(result):
    """Forecast probability (binned in tenths) against the share of yes in each bin, the
    count of forecasts in each; the diagonal is perfect reliability. None below
    ``RELIABILITY_FROM`` scored questions."""
    rows = result.rows
    if len(rows) < RELIABILITY_FROM:
        return None
    fig, ax = plt.subplots(figsize=(5.2, 5.0), layout="constrained")
    edges = np.linspace(0, 1, 11)
    for column, label, style in (("forecast", "updated", "o-"),
                                 ("reference_forecast", "never updated", "s--")):  # fmt: skip
        which = np.clip(np.digitize(rows[column], edges) - 1, 0, 9)
        xs, ys, ns = [], [], []
        for b in range(10):
            inside = which == b
            if inside.any():
                xs.append(rows[column][inside].mean())
                ys.append(rows["outcome"][inside].mean())
                ns.append(int(inside.sum()))
        ax.plot(xs, ys, style, label=label)
        for x, y, n in zip(xs, ys, ns, strict=True):
            ax.annotate(str(n), (x, y), xytext=(4, -10), textcoords="offset points", fontsize=7)
    ax.plot([0, 1], [0, 1], color="0.5", lw=0.8)
    ax.set_xlabel("forecast probability (bin mean)")
    ax.set_ylabel("share that happened")
    ax.legend(fontsize=8)
    ax.set_title(title(result, "reliability"))
    return fig


def model_probabilities(result):
    """The rival models' probabilities before the news and after each step of it (stacked
    bars, one colour per model), each step labelled with its date and news."""
    steps = result.steps
    names = result.names
    labels = ["before the news"] + [f"{result.dates.get(t) or f'{t:g}'}" for t in steps["time"]]
    shares = np.vstack([result.priors, steps[[f"probability:{n}" for n in names]].to_numpy()])
    fig, ax = plt.subplots(figsize=(max(6.5, 1.2 * len(labels) + 1.5), 4.2),
                           layout="constrained")  # fmt: skip
    bottom = np.zeros(len(labels))
    hatches = ["", "//", "..", "xx", "\\\\"]
    for i, name in enumerate(names):
        ax.bar(np.arange(len(labels)), shares[:, i], bottom=bottom, label=name,
               hatch=hatches[i % len(hatches)], edgecolor="white")  # fmt: skip
        bottom += shares[:, i]
    ax.set_xticks(np.arange(len(labels)), labels, fontsize=8, rotation=20)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_ylabel("model probability")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"{result.title or 'rival models'}: weighed by the news, step by step")
    return fig
