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

from escalate.engine.metrics import is_probability
from escalate.engine.numbers import Z95, wilson_band
from escalate.output.format import compact_path, points

__all__ = [
    "calibration_targets",
    "compare_forest",
    "drivers",
    "fan",
    "nowcast_waterfall",
    "occupancy",
    "paths",
    "prior_posterior",
    "reached",
    "save_run_figures",
    "sensitivity",
    "stage_graph",
    "sweep",
]

# 40 distinct (colour, dash) pairs: the first ten stages differ by colour and the next by dash
# too, so no two of a scenario's stages (40 at most) share a line
_DASHES = ["-", "--", "-.", ":"]
_STYLE = cycler(color=[plt.get_cmap("tab10").colors[i % 10] for i in range(40)]) + cycler(
    linestyle=[_DASHES[(i + i // 10) % 4] for i in range(40)]
)


def _title(result, what: str) -> str:
    return f"{result.scenario}: {what}"


def _date_axis(ax, start_date, time_unit: str) -> None:
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


def reached(result, stages=None, exact=None):
    """P(first entry into a stage by t), one line per stage, with 95% bands for Monte Carlo;
    ``exact`` (the Result of ``solve``) overlays the exact curves as thin black dots."""
    curves = result.curves[result.curves.curve == "reached"]
    names = list(stages or [s for s in result.stages if s in set(curves.stage)])
    fig, ax = plt.subplots(figsize=(9.5, 4.5), layout="constrained")
    ax.set_prop_cycle(_STYLE)
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
    _date_axis(ax, result.start_date, result.time_unit)
    ax.grid(alpha=0.3)
    # beside the axes, never over a curve
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
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
    _date_axis(ax, result.start_date, result.time_unit)
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(_title(result, "where trajectories are over time"))
    return fig


def paths(result, top: int = 10):
    """The most frequent pathways as horizontal bars with 95% intervals, most frequent on top."""
    rows = result.paths[:top]
    fig, ax = plt.subplots(figsize=(10, 0.6 * max(len(rows), 1) + 1.4), layout="constrained")
    if not rows:
        ax.text(0.5, 0.5, "no paths recorded (exact results carry none)", ha="center")
        ax.set_axis_off()
        ax.set_title(_title(result, "most frequent pathways"))
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
    ax.set_title(_title(result, f"the {len(rows)} most frequent pathways"))
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


GRAPH_WIDTH_IN = 8.8  # the report shows figures at most 66rem (1,056 px) wide: 8.8 in at 120 dpi
GRAPH_FONT_PT = 10  # stage names; arrow labels and notes at 9 pt, legible at 100% zoom


def stage_graph(model, overrides=None):
    """The stages left to right by their distance from the start (terminal stages last),
    ordered within a column to keep arrows short; arrows carry each transition's mean time
    and a note number for the triggers that change it. The figure is at most
    ``GRAPH_WIDTH_IN`` wide, so the report never shrinks its type below 9 pt, and each arrow's
    label slides along its arrow until it overlaps no other label and no stage."""
    import textwrap

    from matplotlib.patches import FancyArrowPatch, Rectangle

    from escalate.scenario.resolve import resolve

    resolved = resolve(model, overrides)
    names = list(model.stages)
    columns = _graph_columns(model, resolved)
    n_cols = max(columns.values()) + 1
    members = {c: [n for n in names if columns[n] == c] for c in range(n_cols)}
    members = _ordered_rows(members, resolved)
    notes = [t for t in resolved.transitions if t.when or t.requires or t.effects]
    lines = []
    for i, t in enumerate(notes, start=1):
        effects = [f"×{r:g} when {k} is on" for k, r in t.when.items()]
        effects += [f"only once {k} is on" for k in t.requires]
        effects += [
            f"then {k} {'off' if v < 0 else 'on' if v >= 1 else f'on with p {v:g}'}"
            for k, v in t.effects
        ]
        lines += textwrap.wrap(f"[{i}] {t.source} → {t.target}: {'; '.join(effects)}", 92,
                               subsequent_indent="     ")  # fmt: skip
    tallest = max(len(m) for m in members.values())
    graph_h = 1.5 * tallest + 0.9
    notes_h = 0.17 * (len(lines) + 1) if lines else 0.0
    fig = plt.figure(figsize=(GRAPH_WIDTH_IN, graph_h + notes_h + 0.6))
    top = 1 - 0.45 / (graph_h + notes_h + 0.6)
    bottom = notes_h / (graph_h + notes_h + 0.6)
    ax = fig.add_axes((0.01, bottom, 0.98, top - bottom))
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-tallest / 2, tallest / 2)
    ax.set_axis_off()
    position = {}
    for c, column in members.items():
        for i, n in enumerate(column):
            position[n] = (c, (len(column) - 1) / 2 - i)
    nodes = []
    for n, (x, y) in position.items():
        terminal = model.stages[n].terminal
        nodes.append(ax.text(
            x, y, _wrap(model.label(n), 18), ha="center", va="center", fontsize=GRAPH_FONT_PT,
            zorder=3, bbox={"boxstyle": "round,pad=0.45", "fc": "#dddddd" if terminal else
                            "white", "ec": "black", "lw": 1.6 if terminal else 0.8},
        ))  # fmt: skip
    unit = model.time_unit or "time unit"
    fig.canvas.draw()  # lays the stages' boxes out: arrows are routed around them
    renderer = fig.canvas.get_renderer()
    extents = {
        n: node.get_bbox_patch().get_window_extent(renderer)
        for n, node in zip(position, nodes, strict=True)
    }
    # arrows are clipped at the stages' boxes, held in data space: a text's own box patch is
    # laid out only when the text is drawn, after the arrows, and at another dpi when saved
    to_data = ax.transData.inverted()
    box_of = {}
    for n, e in extents.items():
        (bx0, by0), (bx1, by1) = to_data.transform([(e.x0, e.y0), (e.x1, e.y1)])
        box_of[n] = Rectangle((bx0, by0), bx1 - bx0, by1 - by0, transform=ax.transData)
    arcs = []
    for t in resolved.transitions:
        (x0, y0), (x1, y1) = position[t.source], position[t.target]
        # a step back: to an earlier column, or within one to a stage listed before
        back = x1 < x0 or (x1 == x0 and names.index(t.target) < names.index(t.source))
        others = [e for n, e in extents.items() if n not in (t.source, t.target)]
        rad = _route(ax, (x0, y0), (x1, y1), others, prefer=0.3 if back or x1 == x0 else 0.12)
        color = "#2e6fb0" if back else "#b03a2e"
        ax.add_patch(
            FancyArrowPatch(
                (x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, lw=1.0,
                connectionstyle=f"arc3,rad={rad}", patchA=box_of[t.source],
                patchB=box_of[t.target], shrinkA=1, shrinkB=1, color=color,
                linestyle="--" if back else "-", zorder=2,
            )
        )  # fmt: skip
        mark = f" [{notes.index(t) + 1}]" if t in notes else ""
        label = ax.text(
            0, 0, f"{t.mean_time:,.0f} {unit}s{mark}", ha="center", va="center", fontsize=9,
            color=color, zorder=4, bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none"},
        )  # fmt: skip
        arcs.append((label, (x0, y0), (x1, y1), rad))
    _place_arc_labels(fig, ax, nodes, arcs)
    if lines:
        fig.text(0.01, bottom - 0.02 / (graph_h + notes_h + 0.6), "Trigger effects\n" +
                 "\n".join(lines), ha="left", va="top", fontsize=9, family="monospace")  # fmt: skip
    fig.suptitle(
        f"{model.scenario}: stages and mean transition times at speed 1\n"
        "(solid red: escalation; dashed blue: a step back)",
        fontsize=10,
    )
    return fig


def _graph_columns(model, resolved) -> dict[str, int]:
    """Each stage's column: its distance in transitions from a start stage (breadth first);
    terminal stages in a last column of their own."""
    depth = {name: None for name in model.stages}
    frontier = [s for s, p in resolved.start.items() if p > 0]
    for s in frontier:
        depth[s] = 0
    while frontier:
        following = []
        for s in frontier:
            for t in resolved.transitions:
                if t.source == s and depth[t.target] is None:
                    depth[t.target] = depth[s] + 1
                    following.append(t.target)
        frontier = following
    inner = [n for n in model.stages if not model.stages[n].terminal]
    last = max([depth[n] or 0 for n in inner] + [0]) + 1
    return {n: last if model.stages[n].terminal else (depth[n] or 0) for n in model.stages}


def _ordered_rows(members: dict[int, list[str]], resolved) -> dict[int, list[str]]:
    """Stages within each column ordered by the mean row of their neighbours in the columns
    before and after (two barycentre sweeps), which keeps arrows short and few crossing."""
    neighbours: dict[str, set[str]] = {}
    for t in resolved.transitions:
        neighbours.setdefault(t.source, set()).add(t.target)
        neighbours.setdefault(t.target, set()).add(t.source)
    for _ in range(2):
        for c in sorted(members)[1:] + sorted(members)[::-1][1:]:
            row = {n: i for column in members.values() for i, n in enumerate(column)}

            def centre(n, row=row):
                linked = [row[m] for m in neighbours.get(n, ()) if m in row]
                return sum(linked) / len(linked) if linked else row[n]

            members[c] = sorted(members[c], key=lambda n: (centre(n), members[c].index(n)))
    return members


def _arc_points(p0, p1, rad: float, count: int = 48) -> np.ndarray:
    """Points along matplotlib's arc3 connection from ``p0`` to ``p1`` (display space): a
    quadratic Bezier whose control point is the chord's midpoint moved ``rad`` times the chord
    turned a quarter."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    (dx, dy) = p1 - p0
    control = (p0 + p1) / 2 + rad * np.array([dy, -dx])
    s = np.linspace(0.0, 1.0, count)[:, None]
    return (1 - s) ** 2 * p0 + 2 * (1 - s) * s * control + s**2 * p1


def _route(ax, start, end, boxes, prefer: float) -> float:
    """The bend (arc3's ``rad``) of an arrow from ``start`` to ``end`` (data space) that
    passes through the fewest of ``boxes`` (the other stages, display space) and stays in the
    axes, the gentlest such bend on the preferred side first."""
    p0, p1 = ax.transData.transform(start), ax.transData.transform(end)
    candidates = [prefer, -prefer, 0.3, -0.3, 0.5, -0.5, 0.75, -0.75, 1.0, -1.0]
    frame = ax.bbox

    def crossings(rad: float) -> int:
        arc = _arc_points(p0, p1, rad)
        outside = np.any((arc[:, 0] < frame.x0) | (arc[:, 0] > frame.x1)
                         | (arc[:, 1] < frame.y0) | (arc[:, 1] > frame.y1))  # fmt: skip
        return int(outside) + sum(
            int(np.any((arc[:, 0] > b.x0) & (arc[:, 0] < b.x1)
                       & (arc[:, 1] > b.y0) & (arc[:, 1] < b.y1)))
            for b in boxes
        )  # fmt: skip

    return min(candidates, key=lambda rad: (crossings(rad), candidates.index(rad)))


def _place_arc_labels(fig, ax, nodes, arcs) -> None:
    """Slide each arrow's label along its arc (matplotlib's arc3: a quadratic Bezier whose
    control point is the chord's midpoint moved ``rad`` times the chord turned a quarter, in
    display space) to the first spot where it overlaps no stage and no label placed before."""
    fig.canvas.draw()  # lays the stages' boxes out, so that their drawn extents can be read
    renderer = fig.canvas.get_renderer()
    to_data = ax.transData.inverted()
    margin = 2.0  # display pixels kept between any two boxes

    def box(text):
        # a label's extent grown by its box's padding (0.1 of the font size) and the margin:
        # its bbox patch is only laid out when drawn again
        pad = 0.1 * text.get_fontsize() * fig.dpi / 72 + margin
        return text.get_window_extent(renderer).padded(pad)

    taken = [n.get_bbox_patch().get_window_extent(renderer).padded(margin) for n in nodes]
    spots = (0.5, 0.4, 0.6, 0.3, 0.7, 0.35, 0.65, 0.25, 0.75, 0.45, 0.55, 0.2, 0.8)
    for label, start, end, rad in arcs:
        p0 = ax.transData.transform(start)
        p1 = ax.transData.transform(end)
        (dx, dy) = p1 - p0
        control = (p0 + p1) / 2 + rad * np.array([dy, -dx])  # as in _arc_points
        best, best_overlap = None, None
        for s in spots:
            point = (1 - s) ** 2 * p0 + 2 * (1 - s) * s * control + s**2 * p1
            for nudge in (0.0, 10.0, -10.0, 20.0, -20.0):  # display pixels across the arc
                label.set_position(to_data.transform(point + np.array([0.0, nudge])))
                here = box(label)
                overlap = sum(_overlap_area(here, other) for other in taken)
                if best_overlap is None or overlap < best_overlap:
                    best, best_overlap = label.get_position(), overlap
                if overlap == 0:
                    break
            if best_overlap == 0:
                break
        if best_overlap:  # nowhere along the arc: the nearest free spot around its middle
            middle = 0.25 * p0 + 0.5 * control + 0.25 * p1
            for radius in np.arange(12.0, 240.0, 12.0):
                for angle in np.linspace(0, 2 * np.pi, 16, endpoint=False):
                    spot = middle + radius * np.array([np.cos(angle), np.sin(angle)])
                    label.set_position(to_data.transform(spot))
                    if not any(_overlap_area(box(label), other) for other in taken):
                        best, best_overlap = label.get_position(), 0.0
                        break
                if not best_overlap:
                    break
        label.set_position(best)
        taken.append(box(label))


def _overlap_area(a, b) -> float:
    """The area two display-space boxes share (0 when apart)."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width * height if width > 0 and height > 0 else 0.0


def _wrap(text: str, width: int = 16) -> str:
    """Break a label into lines of about ``width`` characters, at spaces."""
    import textwrap

    return "\n".join(textwrap.wrap(text, width, break_on_hyphens=False)) or text


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
    _date_axis(ax, start_date, time_unit)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title(f"{scenario}: P({stage} reached by t) across {len(values)} worlds")
    return fig


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
        ax.set_prop_cycle(_STYLE)
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
    (up in red, down in blue, labelled with the change), then the figure after it."""
    label = result.stage_labels[stage]
    steps = result.steps
    values = [result.before[stage]] + [step["p_reached"][stage] for step in steps]
    names = ["before the news"]
    for step in steps:
        names.append(_wrap(f"{result.when(step['time'])}: {'; '.join(step['events'])}", 22))
    names.append("after the news")
    fig, ax = plt.subplots(figsize=(max(6.5, 1.5 * len(names) + 1), 4.6), layout="constrained")
    x = np.arange(len(names))
    ax.bar(x[0], values[0], color="0.55", width=0.6)
    for i in range(1, len(values)):
        low, high = sorted((values[i - 1], values[i]))
        up = values[i] >= values[i - 1]
        ax.bar(x[i], max(high - low, 1e-4), bottom=low, width=0.6,
               color="#c44e52" if up else "#4c72b0")  # fmt: skip
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
    ax.set_title(_title(result, f"the news one step at a time, as of {result.when(result.as_of)}"))
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
    fig.suptitle(_title(result, f"each variant against the baseline ({how})"))
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
    ax.set_title(_title(result, f"what moves it across {result.worlds:,} worlds"))
    return fig
