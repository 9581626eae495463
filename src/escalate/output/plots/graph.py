"""The stage graph: stages in columns by their distance from the start, arrows labelled with
their timing, arcs routed around the boxes, labels placed where they do not overlap."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from escalate.output.plots.common import wrap

__all__ = ["GRAPH_FONT_PT", "GRAPH_WIDTH_IN", "stage_graph"]


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
            x, y, wrap(model.label(n), 18), ha="center", va="center", fontsize=GRAPH_FONT_PT,
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
