"""The page of a run folder: the headline first, the summary with its intervals, what drives
it (worlds or sensitivity results kept in the folder), triggers, figures, pathways, the claims
behind the parameters, the manifest."""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from typing import Any

from escalate.engine.metrics import is_probability
from escalate.engine.numbers import Z95
from escalate.output.format import as_read, number, percent, signed, size_in_points
from escalate.output.report.page import figure, image, page, plus_minus, read_csv, read_json

__all__ = ["FIGURES", "run_page"]


# run-folder figure -> heading in the report, in reading order
FIGURES = {
    "reached": "When is each stage reached?",
    "occupancy": "Where are trajectories over time?",
    "paths": "Which pathways lead there?",
    "stages": "The scenario's stages and transitions",
}


def _summary_table(summary: dict[str, Any], unit: str) -> str:
    dated = summary.get("start_date") is not None
    rows = []
    for name, s in summary["stages"].items():
        lo, hi = s["p_reached_ci"]
        ttr = s["time_to_reach"]
        rows.append(
            "<tr>"
            f"<td class='text'>{escape(s.get('label', name))}</td>"
            f"<td>{percent(s['p_reached'])}</td><td>{percent(lo)} – {percent(hi)}</td>"
            f"<td>{percent(s['p_at_horizon'])}</td><td>{number(s['time_in'])}</td>"
            f"<td>{number(ttr.get('p10'))}</td><td>{number(ttr.get('p50'))}</td>"
            f"<td>{number(ttr.get('p90'))}</td>"
            + (f"<td>{escape(str(ttr.get('p50_date') or '—'))}</td>" if dated else "")
            + "</tr>"
        )
    head = (
        "<tr><th class='text'>stage</th><th>P(reached)</th><th>95% interval</th>"
        f"<th>P(at horizon)</th><th>time in stage ({escape(unit)}s)</th>"
        f"<th>time to reach: p10</th><th>p50</th><th>p90</th>"
        + ("<th>p50 as a date</th>" if dated else "")
        + "</tr>"
    )
    return f"<table id='summary'><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _triggers_table(summary: dict[str, Any], unit: str) -> str:
    if not summary.get("triggers"):
        return "<p>No triggers.</p>"
    rows = "".join(
        f"<tr><td class='text'>{escape(t.get('label', name))}</td><td>{percent(t['p_fired'])}</td>"
        f"<td>{percent(t['p_fired_ci'][0])} – {percent(t['p_fired_ci'][1])}</td>"
        f"<td>{percent(t.get('p_on_at_horizon'))}</td><td>{number(t.get('time_on'))}</td></tr>"
        for name, t in summary["triggers"].items()
    )
    return (
        "<table id='triggers'><thead><tr><th class='text'>trigger</th><th>P(fired by horizon)</th>"
        f"<th>95% interval</th><th>P(on at horizon)</th><th>time on ({escape(unit)}s)</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _paths_table(paths: list[dict[str, str]], top: int = 15) -> str:
    if not paths:
        return "<p>No paths recorded.</p>"
    rows = "".join(
        f"<tr><td class='text'>{escape(p['path'].replace(' > ', ' → '))}</td>"
        f"<td>{percent(p['p'])}</td><td>± {percent(Z95 * float(p.get('p_se') or 0))}</td></tr>"
        for p in paths[:top]
    )
    return (
        "<table id='paths'><thead><tr><th class='text'>path</th><th>share</th>"
        f"<th>95% half-width</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _sources(resolved: dict[str, Any]) -> str:
    items = []
    for name, parameter in (resolved.get("parameters") or {}).items():
        value = parameter.get("value")
        source = parameter.get("source") or "no source given"
        items.append(
            f"<dt>{escape(name)} = {escape(str(value))}</dt><dd>{escape(str(source))}</dd>"
        )
    return f"<dl>{''.join(items)}</dl>" if items else "<p>No named parameters.</p>"


def _worlds_drivers(folder: Path, summary: dict[str, Any]) -> str:
    """``run --worlds --out``: the headline across the worlds and the parameters that move
    it, a table and the drivers figure ("" for a run of one world)."""
    block = summary.get("worlds") or {}
    drivers = block.get("drivers")
    if not drivers:
        return ""
    metric = drivers["metric"]
    probability = is_probability(metric)

    def form(x):
        return as_read(x, probability)

    def change(x):
        return as_read(x, probability, change=True)

    rows = "".join(
        f"<tr><td class='text'>{escape(name)}</td><td>{form(d['low'])}</td>"
        f"<td>{form(d['high'])}</td><td>{change(d['swing'])}</td>"
        f"<td>{plus_minus(change, d['swing_se'])}</td><td>{signed(d['rank_correlation'])}</td>"
        f"<td>{'yes' if d.get('clear') else ''}</td></tr>"
        for name, d in list(drivers["parameters"].items())[:12]
    )
    across = block["metrics"].get(metric, {})
    per = block.get("trajectories_per_world")
    how = f"{per:,} trajectories each" if per else "each solved exactly"
    fifth = f"{drivers['fraction']:.0%}"
    return (
        f"<h3>Across {block['count']:,} worlds</h3>"
        f"<p>{block['count']:,} parameter sets drawn ({escape(str(block.get('sampling')))}, "
        f"seed {block.get('seed')}) from the scenario's uncertain ranges, {how}. "
        f"<code>{escape(metric)}</code> runs from {form(across.get('p5'))} to "
        f"{form(across.get('p95'))} across them (5% to 95%; median {form(across.get('p50'))}). "
        f"Each row compares the worlds in which the parameter lies in its lowest {fifth} with "
        f"those in its highest {fifth}; the ± is the 95% half-width of that swing from the "
        "spread of the worlds, and the rank correlation is Spearman's over all worlds. A swing "
        "stands out from the noise when it passes Welch's t test at 5% shared among all the "
        "parameters (so that, where nothing matters, about one run in twenty names a "
        "parameter); only those are named above. <code>world_metrics.parquet</code> holds every "
        "metric of every world.</p>"
        "<table id='drivers'><thead><tr><th class='text'>parameter</th>"
        f"<th>lowest {fifth}</th><th>highest {fifth}</th><th>swing</th><th>± 95%</th>"
        f"<th>rank correlation</th><th>stands out</th></tr></thead><tbody>{rows}</tbody></table>"
        + image(folder, "drivers", f"What moves {metric} across the worlds")
    )


# a sensitivity result's index of influence, per method: (column, what it is called)
_INFLUENCE = {
    "sobol": ("ST", "total Sobol index"),
    "morris": ("mu_star", "Morris mu*"),
    "oat": ("swing", "swing from its 5% to its 95% quantile"),
}


def _sensitivities(folder: Path, manifest: dict[str, Any]) -> list[tuple[Path, dict[str, Any]]]:
    """The sensitivity results (``escalate sensitivity --out``) in the folder or in a folder
    inside it (not a hidden one: a folder being written) of the run's scenario file and
    horizon; what is not one is passed over."""
    found = []
    inside = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for place in [folder, *inside]:
        path = place / "sensitivity.json"
        if not path.is_file():
            continue
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _same_question(result, manifest):
            found.append((place, result))
    return found


def _same_question(result: Any, manifest: dict[str, Any]) -> bool:
    """Whether a sensitivity result is well formed and of the run's scenario (by its file's
    hash, when both say it), horizon and metric kinds the report knows."""
    if not (
        isinstance(result, dict)
        and result.get("method") in _INFLUENCE
        and isinstance(result.get("metric"), str)
        and isinstance(result.get("parameters"), dict)
        and all(isinstance(v, dict) for v in result["parameters"].values())
        and result.get("scenario") == manifest.get("scenario")
    ):
        return False
    sha = result.get("scenario_sha256")
    if sha is not None and sha != manifest.get("scenario_sha256"):
        return False
    horizon, run_horizon = result.get("horizon"), manifest.get("horizon")
    if isinstance(horizon, int | float) and isinstance(run_horizon, int | float):
        return math.isclose(horizon, run_horizon)
    return True


def _sensitivity_sentence(
    where: Path, folder: Path, result: dict[str, Any], manifest_overrides: dict | None
) -> str:
    """The first two parameters of a sensitivity result, as a sentence of the headline (one
    of a run with ``--set`` says that it is of the scenario's own values)."""
    column, called = _INFLUENCE[result["method"]]
    ranked = list(result["parameters"].items())[:2]
    if not ranked:
        return ""
    place = "this folder" if where == folder else f"{where.name}/"
    in_points = result["method"] == "oat" and is_probability(result["metric"])

    def size(x):  # a tornado's swing is a size, never signed
        return size_in_points(x) if in_points and x is not None else number(x, 3)

    said = ", then ".join(f"{name} ({size(values.get(column))})" for name, values in ranked)
    own = " at the scenario's own values" if manifest_overrides else ""
    if result["method"] == "oat":  # its own baseline: every parameter at its point value
        base = ranked[0][1].get("base")
        shown = percent(base) if is_probability(result["metric"]) else number(base, 4)
        called += f", the others at their point values, where it is {shown}"
    return (
        f"Sensitivity ({result['method']}, {place}{own}): {result['metric']} moves most with "
        f"{said} ({called})."
    )


def _sensitivity_section(where: Path, folder: Path, result: dict[str, Any], top: int = 12) -> str:
    columns = [c for c in next(iter(result["parameters"].values()), {}) if c]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    # a tornado of a probability is read in percent, its swing in points
    in_percent = result["method"] == "oat" and is_probability(result["metric"])

    def cell(column: str, x) -> str:
        if in_percent and x is not None:
            return size_in_points(x) if column == "swing" else percent(x)
        return number(x, 3)

    ranked = list(result["parameters"].items())
    rows = "".join(
        f"<tr><td class='text'>{escape(name)}</td>"
        + "".join(f"<td>{cell(c, values.get(c))}</td>" for c in columns)
        + "</tr>"
        for name, values in ranked[:top]
    )
    place = "this folder" if where == folder else f"{where.name}/"
    shown = (
        f"the {top} most influential of {len(ranked)} (sensitivity.csv has them all)"
        if len(ranked) > top
        else "most influential first"
    )
    return (
        f"<h3>Sensitivity: {escape(result['method'])} of <code>{escape(result['metric'])}</code>"
        f" ({escape(place)})</h3>"
        f"<p>{result.get('evaluations', '?')} evaluations ({escape(str(result.get('engine')))}"
        f"); {shown}.</p>"
        f"<table class='sensitivity'><thead><tr><th class='text'>parameter</th>{head}</tr>"
        f"</thead><tbody>{rows}</tbody></table>"
        + image(where, "sensitivity", f"Sensitivity of {result['metric']}")
    )


def run_page(folder: Path, manifest: dict[str, Any]) -> str:
    """The page of a run folder (``escalate run --out``): the headline first, then the summary,
    what drives it (worlds, sensitivity results inside the folder), triggers, figures, pathways,
    the claims behind the parameters and the manifest."""
    summary = read_json(folder, "summary.json")
    resolved = manifest.get("resolved_scenario") or {}
    unit = summary.get("time_unit") or "time unit"
    title = resolved.get("title") or summary.get("scenario", "scenario")
    n = summary.get("trajectories")
    how = (
        f"{n:,} Monte Carlo trajectories, seed {summary.get('seed')}" if n else "the exact solution"
    )
    dates = ""
    if summary.get("start_date"):
        dates = f" ({summary['start_date']} to {summary.get('horizon_date')})"
    meta = (
        f"Scenario <code>{escape(str(summary.get('scenario')))}</code> "
        f"({escape(str(manifest.get('scenario_file', '')))}, sha256 "
        f"{escape(str(manifest.get('scenario_sha256', ''))[:12])}…); horizon "
        f"{summary.get('horizon'):g} {escape(unit)}s{escape(dates)}; {escape(how)}."
    )
    if "worlds" in summary:
        block = summary["worlds"]
        meta = meta.replace(
            "Monte Carlo trajectories",
            f"Monte Carlo trajectories pooled over {block['count']:,} worlds",
        )
    sensitivities = _sensitivities(folder, {"scenario": summary.get("scenario"), **manifest})
    parts = [f"<h1>{escape(str(title))}</h1>"]
    headline = (summary.get("headline") or {}).get("text")
    if headline:  # the answer first (folders of older versions have none)
        overrides = manifest.get("overrides")
        said = [
            headline,
            *(_sensitivity_sentence(w, folder, r, overrides) for w, r in sensitivities),
        ]
        parts.append(f"<p class='note' id='headline'>{escape(' '.join(said))}</p>")
    parts.append(f"<p class='meta'>{meta}</p>")
    if resolved.get("description"):
        parts.append(f"<p>{escape(str(resolved['description']))}</p>")
    parts += [
        "<h2>Summary</h2>",
        "<p>Probabilities with 95% Wilson intervals; times in "
        f"{escape(unit)}s (time to reach: among trajectories that reach the stage).</p>",
        _summary_table(summary, unit),
    ]
    drivers = _worlds_drivers(folder, summary) + "".join(
        _sensitivity_section(w, folder, r) for w, r in sensitivities
    )
    if drivers:
        parts += ["<h2 id='what-drives-it'>What drives it</h2>", drivers]
    parts += [
        "<h2>Triggers</h2>",
        _triggers_table(summary, unit),
    ]
    parts += [figure(folder, name, heading) for name, heading in FIGURES.items()]
    parts += [
        "<h2>Most frequent pathways</h2>",
        _paths_table(read_csv(folder / "paths.csv")),
        "<h2>Parameters and the claims they encode</h2>",
        _sources(resolved),
        "<h2>Run manifest</h2>",
        "<pre>"
        + escape(
            json.dumps(
                {k: v for k, v in manifest.items() if k != "resolved_scenario"},
                indent=2,
                default=str,
            )
        )
        + "</pre>",
    ]
    return page(str(title), parts)
