"""Figures of the scenario held against what people know: statements against the calibrated
model, parameters prior against posterior, the news one step at a time (a waterfall), each
option against the baseline (a forest plot)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker

from escalate.engine.metrics import is_probability
from escalate.output.format import points
from escalate.output.plots.common import title, wrap

__all__ = ["calibration_targets", "compare_forest", "nowcast_waterfall", "prior_posterior"]


def calibration_targets(result):
    """Each statement's interval (a grey band) against the model's prior and posterior
    predictive median and 90% interval: what the statements asked, and what the fitted model
    gives. A statement the posterior cannot honour is marked."""
    frame = result.targets()
    fig, axes = plt.subplots(
        len(frame), 1, figsize=(7.5, 1.15 * len(frame) + 1.2), layout="constrained", squeeze=False
    )
    for ax, row, target in zip(
        axes[:, 0], frame.to_dict("records"), result.targets_list, strict=True
    ):
        ax.axvspan(row["low"], row["high"], color="0.85", label="stated 90% interval")
        for y, which, colour, style in (
            (1, "prior", "#4c72b0", "--"),
            (0, "posterior", "#dd8452", "-"),
        ):
            ax.plot(
                [row[f"{which}_p5"], row[f"{which}_p95"]],
                [y, y],
                color=colour,
                ls=style,
                lw=3,
                label=f"{which} predictive 90%",
            )
            ax.plot(row[f"{which}_median"], y, "o", color=colour, ms=7)
        verdict = (
            "no parameter moves it" if not row["moved"] else "CONFLICT" if row["conflict"] else ""
        )
        ax.set_yticks([0, 1], ["posterior", "prior"])
        ax.set_ylim(-0.7, 1.7)
        ax.set_title(
            f"{row['metric']}" + (f"  ({verdict})" if verdict else ""),
            fontsize="medium",
            loc="left",
        )
        if target.is_probability:
            ax.xaxis.set_major_formatter(ticker.PercentFormatter(1.0))
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].legend(fontsize="small", loc="upper right", ncols=3, bbox_to_anchor=(1, 1.9))
    fig.suptitle(f"{result.scenario}: statements against the calibrated model")
    return fig


def prior_posterior(result, top: int = 12, what: str = "prior and posterior"):
    """Prior against posterior for the ``top`` parameters the update moved most
    (contraction 1 - var_post / var_prior), on a log axis where the values span a decade.
    ``result`` is a calibration or a nowcast (anything with ``parameters()`` and
    ``posterior``)."""
    frame = result.parameters().sort_values("contraction", ascending=False).head(top)
    p = result.posterior
    names = list(frame["parameter"])
    cols = 3
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.2 * rows + 0.8), layout="constrained",
                             squeeze=False)  # fmt: skip
    for ax, name, contraction in zip(axes.ravel(), names, frame["contraction"], strict=False):
        prior = p.prior_worlds[name].to_numpy(float)
        post = p.worlds[name].to_numpy(float)
        log = bool(np.all(prior > 0) and np.quantile(prior, 0.95) > 10 * np.quantile(prior, 0.05))
        both = np.concatenate([prior, post])
        if log:
            edges = np.geomspace(both.min(), both.max(), 31)
            ax.set_xscale("log")
        else:
            edges = np.linspace(both.min(), both.max(), 31)
        ax.hist(prior, bins=edges, weights=p.prior_weights, density=True, color="#4c72b0",
                alpha=0.45, label="prior")  # fmt: skip
        ax.hist(post, bins=edges, weights=p.weights, density=True, histtype="step", lw=2,
                color="#dd8452", label="posterior")  # fmt: skip
        ax.set_title(f"{name} ({contraction:.0%} narrower)", fontsize="small")
        ax.set_yticks([])
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize="small")
    fig.suptitle(f"{result.scenario}: {what} (prior, posterior)")
    return fig


def nowcast_waterfall(result, stage: int):
    """P(``stage`` reached by the horizon) before the news, then one bar per step of news
    (up in red, down in blue, labelled with the change; hatched and said where the step was
    unexpected), then the figure after it."""
    label = result.stage_labels[stage]
    steps = result.steps
    values = [result.before[stage]] + [step["p_reached"][stage] for step in steps]
    names = ["before the news"]
    for step in steps:
        said = f"{result.when(step['time'])}: {'; '.join(step['events'])}"
        if step.get("unexpected"):  # under 5% by the forecast just before it
            said += f" (UNEXPECTED: {step['p_by']:.1%} by then)"
        names.append(wrap(said, 22))
    names.append("after the news")
    fig, ax = plt.subplots(figsize=(max(6.5, 1.5 * len(names) + 1), 4.6), layout="constrained")
    x = np.arange(len(names))
    ax.bar(x[0], values[0], color="0.55", width=0.6)
    for i in range(1, len(values)):
        low, high = sorted((values[i - 1], values[i]))
        up = values[i] >= values[i - 1]
        surprise = steps[i - 1].get("unexpected", False)
        ax.bar(x[i], max(high - low, 1e-4), bottom=low, width=0.6,
               color="#c44e52" if up else "#4c72b0", hatch="//" if surprise else None,
               edgecolor="black" if surprise else None)  # fmt: skip
        ax.annotate(points(values[i] - values[i - 1]), (x[i], high), xytext=(0, 3),
                    textcoords="offset points", ha="center", fontsize=9)  # fmt: skip
        ax.plot([x[i - 1] - 0.3, x[i] + 0.3], [values[i - 1]] * 2, color="0.3", lw=0.8)
    ax.bar(x[-1], result.after[stage], color="0.25", width=0.6)
    for i, value in ((0, values[0]), (len(names) - 1, result.after[stage])):
        ax.annotate(f"{value:.1%}", (x[i], value), xytext=(0, 3), textcoords="offset points",
                    ha="center", fontsize=9, fontweight="bold")  # fmt: skip
    ax.set_xticks(x, names, fontsize=9)
    ax.yaxis.set_major_formatter(ticker.PercentFormatter(1.0))
    ax.set_ylim(0, min(1.0, max(*values, result.after[stage]) * 1.2 + 0.02))
    ax.set_ylabel(f"P({label} by {result.when(result.horizon)})")
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title(result, f"the news one step at a time, as of {result.when(result.as_of)}"))
    fig.supxlabel("Each step: the prior worlds reweighted on what was known by then. After the "
                  "news: the updated worlds (the two differ by Monte Carlo error).",
                  fontsize=8, color="0.35")  # fmt: skip
    return fig


def compare_forest(result):
    """A forest plot of a comparison: per metric a panel, per variant its difference from
    the baseline (a dot) with its 95% interval (a line) and, with worlds, the 5-95% of the
    difference across worlds (a wide pale bar); a vertical line at no difference."""
    frame = result.summary()
    metrics = list(dict.fromkeys(frame["metric"]))
    names = list(dict.fromkeys(frame["variant"]))
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(4.2 * len(metrics) + 2.2, 0.55 * len(names) + 1.6),
        layout="constrained", squeeze=False, sharey=True,
    )  # fmt: skip
    y = np.arange(len(names))[::-1]
    for ax, metric in zip(axes[0], metrics, strict=True):
        rows = frame[frame["metric"] == metric].set_index("variant").loc[names]
        probability = is_probability(metric)
        scale = 100.0 if probability else 1.0
        if "p5" in rows:
            ax.barh(y, (rows["p95"] - rows["p5"]) * scale, left=rows["p5"] * scale, height=0.5,
                    color="#4c72b0", alpha=0.18, label="5-95% across worlds")  # fmt: skip
        exact = result.mode == "exact"
        ax.errorbar(rows["difference"] * scale, y,
                    xerr=None if exact else [(rows["difference"] - rows["low"]) * scale,
                                             (rows["high"] - rows["difference"]) * scale],
                    fmt="o", color="#c44e52", ecolor="0.2", capsize=4, ms=6,
                    label="exact difference" if exact else "difference, 95% interval")  # fmt: skip
        for x, at in zip(rows["difference"] * scale, y, strict=True):
            ax.annotate(f"{x:+.1f}" if probability else f"{x:+.3g}", (x, at), xytext=(0, 7),
                        textcoords="offset points", ha="center", fontsize=9)  # fmt: skip
        ax.axvline(0.0, color="0.4", lw=1, ls="--")
        ax.margins(x=0.12)
        ax.set_ylim(-0.6, len(names) - 0.2)  # room for the labels above the top row
        ax.set_title(metric, fontsize="medium")
        ax.set_xlabel("change (percentage points)" if probability else "change")
        ax.grid(axis="x", alpha=0.3)
    axes[0, 0].set_yticks(y, names)
    axes[0, 0].legend(fontsize="small", loc="best")
    how = {"exact": "exact", "replicates": "paired Monte Carlo",
           "worlds": f"paired over {len(result.weights)} worlds"}[result.mode]  # fmt: skip
    fig.suptitle(title(result, f"each variant against the baseline ({how})"))
    return fig
