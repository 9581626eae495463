"""One self-contained HTML report of a run folder: figures embedded, no network needed.

A calibration folder (``escalate calibrate --out``) gets its own page, the statements against
the calibrated model first; so do a nowcast folder (``escalate nowcast --out``), the odds
after the news first, and a comparison folder (``escalate compare --out``). The run page is
built from the files ``escalate run --out`` wrote (summary.json, manifest.json, stages.csv,
paths.csv and the PNG figures), so a report can be made again at any time from the folder
alone. The markup is also well-formed XML (every element closed, every text escaped), so
strict parsers and browsers read it the same way.
"""

from __future__ import annotations

import base64
import csv
import datetime
import json
import math
from html import escape
from pathlib import Path
from typing import Any

from escalate.engine.metrics import is_probability
from escalate.engine.numbers import Z95
from escalate.errors import EscalateError
from escalate.output.format import as_read, number, percent, points, signed, size_in_points

__all__ = ["FIGURES", "build_report", "write_report"]

# run-folder figure -> heading in the report, in reading order
FIGURES = {
    "reached": "When is each stage reached?",
    "occupancy": "Where are trajectories over time?",
    "paths": "Which pathways lead there?",
    "stages": "The scenario's stages and transitions",
}

_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2rem auto;
       max-width: 68rem; padding: 0 1rem; color: #1d1d1f; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
.note { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.6rem 0.9rem; }
.meta { color: #555; font-size: 0.9rem; }
table { border-collapse: collapse; font-size: 0.88rem; margin: 0.6rem 0; }
th, td { border: 1px solid #d0d0d0; padding: 0.25rem 0.55rem; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
td.nowrap, th, td:not(.text) { white-space: nowrap; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
dt { font-weight: 600; margin-top: 0.5rem; } dd { margin-left: 1rem; }
pre { background: #f7f7f7; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
"""


def _read_json(folder: Path, name: str) -> dict[str, Any]:
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EscalateError(
            f"{folder}: not a run folder (no {name}); make one with escalate run --out"
        ) from None
    except (OSError, ValueError) as exc:
        raise EscalateError(f"{path}: cannot be read as JSON ({exc})") from None


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


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


def _figure(folder: Path, name: str, heading: str) -> str:
    """A section of one figure of the folder under its heading ("" if not there)."""
    image = _image(folder, name, heading)
    return f"<h2>{escape(heading)}</h2>{image}" if image else ""


def _image(folder: Path, name: str, alt: str) -> str:
    """``name.png`` of the folder embedded in the page ("" if not there)."""
    path = folder / f"{name}.png"
    if not path.exists():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<figure><img alt='{escape(alt)}' src='data:image/png;base64,{data}'/></figure>"


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
        f"<td>{_plus_minus(change, d['swing_se'])}</td><td>{signed(d['rank_correlation'])}</td>"
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
        + _image(folder, "drivers", f"What moves {metric} across the worlds")
    )


def _plus_minus(change, se: float | None) -> str:
    """``± 4.6 pts``: a 95% half-width from a standard error (a dash when there is none)."""
    return "—" if se is None else f"± {change(Z95 * se).lstrip('+')}"


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
        + _image(where, "sensitivity", f"Sensitivity of {result['metric']}")
    )


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


def _page(title: str, body: list[str]) -> str:
    """A complete page around ``body``, with the image check the tests read."""
    parts = [
        "<!DOCTYPE html>",
        "<html lang='en'><head><meta charset='utf-8'/>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'/>",
        f"<title>{escape(title)} — escalate report</title>",
        f"<style>{_STYLE}</style></head><body>",
        *body,
        f"<p class='meta'>Report made {datetime.datetime.now().isoformat(timespec='seconds')} "
        "by escalate from its folder alone.</p>",
        # marks on the page whether every figure decoded (read by tests in a headless browser)
        # (no '<' or '&' inside: the script is raw text in HTML and parsed text in XML)
        "<script>window.addEventListener('load', function () { var i = document.images, ok = 0;"
        " for (var k = 0; i.length > k; k++) { if (i[k].complete) { if (i[k].naturalWidth > 0)"
        " { ok++; } } } document.body.setAttribute('data-images', ok + '/' + i.length); });"
        "</script>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def _calibration(folder: Path, manifest: dict[str, Any]) -> str:
    """The page of a calibration folder (``escalate calibrate --out``): the statements against
    the calibrated model first, then what they say of the parameters."""
    summary = _read_json(folder, "summary.json")
    targets = summary["targets"]

    def shown(x, metric: str) -> str:
        return as_read(x, is_probability(metric))

    conflicts, unmoved = summary.get("conflicts") or [], summary.get("not_moved") or []
    if conflicts:
        headline = (
            f"{len(conflicts)} of {len(targets)} statements cannot hold together with the others "
            f"in this model: {', '.join(conflicts)}."
        )
    else:
        headline = f"The calibrated model honours all {len(targets)} statements."
    if unmoved:
        headline += f" No uncertain parameter moves: {', '.join(unmoved)}."

    def verdict(t) -> str:
        return "no parameter moves it" if not t["moved"] else "CONFLICT" if t["conflict"] else "yes"

    rows = "".join(
        f"<tr><td class='text'>{escape(t['metric'])}</td>"
        f"<td>{shown(t['low'], t['metric'])} – {shown(t['high'], t['metric'])}</td>"
        f"<td>{shown(t['prior_median'], t['metric'])} ({shown(t['prior_p5'], t['metric'])} – "
        f"{shown(t['prior_p95'], t['metric'])})</td>"
        f"<td>{shown(t['posterior_median'], t['metric'])} "
        f"({shown(t['posterior_p5'], t['metric'])} – {shown(t['posterior_p95'], t['metric'])})</td>"
        f"<td class='text'>{verdict(t)}</td>"
        f"<td class='text'>{escape(str(t.get('source') or ''))}</td></tr>"
        for t in targets
    )
    table = (
        "<table id='targets'><thead><tr><th class='text'>statement</th><th>stated 90%</th>"
        "<th>model before: median (90%)</th><th>after</th><th class='text'>honoured</th>"
        f"<th class='text'>source</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    ptable = _parameters_table(summary["parameters"])
    meta = (
        f"Scenario <code>{escape(str(summary['scenario']))}</code> "
        f"({escape(str(manifest.get('scenario_file', '')))}); statements "
        f"{escape(str(manifest.get('targets_file', '')))}; {summary['worlds']:,} worlds "
        f"({escape(str(summary['method']))}), seed {summary['seed']}; {_diagnostics(summary)}"
    )
    title = f"{summary['scenario']}: calibration"
    return _page(
        title,
        [
            f"<h1>{escape(title)}</h1>",
            f"<p class='note' id='headline'>{escape(headline)}</p>",
            f"<p class='meta'>{meta}</p>",
            "<h2>The statements and the model</h2>",
            table,
            _figure(folder, "targets", "Statements against the calibrated model"),
            "<h2>What the statements say of the parameters</h2>",
            "<p>Contraction: 1 - posterior variance / prior variance (near 0: the statements "
            "say nothing of it).</p>",
            ptable,
            _figure(folder, "parameters", "Prior and posterior of the parameters moved most"),
            "<h2>Manifest</h2>",
            "<pre>" + escape(json.dumps(manifest, indent=2, default=str)) + "</pre>",
        ],
    )


def _diagnostics(summary: dict[str, Any]) -> str:
    """A posterior's diagnostics in words: ESS, distinct worlds, acceptance, log evidence."""
    from escalate.forecast.posterior import describe

    return (
        describe(summary) + "." + "".join(f" Warning: {w}." for w in summary.get("warnings") or [])
    )


def _parameters_table(parameters: list[dict[str, Any]]) -> str:
    """Per parameter: prior and posterior median (90%) and contraction, most moved first."""
    rows = "".join(
        f"<tr><td class='text'>{escape(r['parameter'])}</td>"
        f"<td>{number(r['prior_median'])} ({number(r['prior_p5'])} – {number(r['prior_p95'])})</td>"
        f"<td>{number(r['posterior_median'])} ({number(r['posterior_p5'])} – "
        f"{number(r['posterior_p95'])})</td><td>{percent(r['contraction'])}</td></tr>"
        for r in sorted(parameters, key=lambda r: -(r["contraction"] or 0))
    )
    return (
        "<table id='parameters'><thead><tr><th class='text'>parameter</th><th>prior</th>"
        f"<th>posterior</th><th>contraction</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _nowcast(folder: Path, manifest: dict[str, Any]) -> str:
    """The page of a nowcast folder (``escalate nowcast --out``): the odds after the news
    first, then the news one step at a time, then the rest."""
    summary = _read_json(folder, "summary.json")
    labels = summary.get("stage_labels") or {}
    headline_stage = summary["headline"]
    label = labels.get(headline_stage, headline_stage)
    as_of = summary.get("as_of_date") or f"time {summary['as_of']:g}"
    horizon = summary.get("horizon_date") or f"time {summary['horizon']:g}"
    war = summary["stages"][headline_stage]
    headline = (
        f"As of {as_of}, P({label} by {horizon}) = {percent(war['after'])}, "
        f"{'up' if war['after'] >= war['before'] else 'down'} from {percent(war['before'])} "
        "before the news."
    )
    rows = "".join(
        f"<tr><td class='text'>{escape(labels.get(name, name))}</td>"
        f"<td>{percent(s['before'])}</td><td>{percent(s['after'])}</td>"
        f"<td class='nowrap'>{points(s['after'] - s['before'])}</td></tr>"
        for name, s in summary["stages"].items()
    )
    stages = (
        "<table id='stages'><thead><tr><th class='text'>stage</th><th>before the news</th>"
        f"<th>after</th><th>change</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    previous, rows = war["before"], []
    for u in summary["updates"]:
        now = u["p_reached"][headline_stage]
        when = u.get("date") or f"{u['time']:g}"
        rows.append(
            f"<tr><td class='text nowrap'>{escape(when)}</td>"
            f"<td class='text'>{escape('; '.join(u['news']))}</td><td>{percent(previous)}</td>"
            f"<td>{percent(now)}</td><td class='nowrap'>{points(now - previous)}</td>"
            f"<td>{u['ess']:.0f}</td></tr>"
        )
        previous = now
    updates = (
        "<table id='updates'><thead><tr><th class='text'>when</th><th class='text'>news</th>"
        f"<th>before</th><th>after</th><th>change</th><th>ESS</th></tr></thead><tbody>"
        f"{''.join(rows)}</tbody></table>"
    )
    triggers = summary.get("triggers_on_at_as_of") or {}
    trigger_rows = "".join(
        f"<tr><td class='text'>{escape(name)}</td><td>{percent(p)}</td></tr>"
        for name, p in triggers.items()
    )
    meta = (
        f"Scenario <code>{escape(str(summary['scenario']))}</code> "
        f"({escape(str(manifest.get('scenario_file', '')))}); observations "
        f"{escape(str(manifest.get('observations_file', '')))}; {summary['worlds']:,} worlds"
        + (
            f" from {escape(str(summary['worlds_from']))}"
            if summary.get("worlds_from")
            else f" drawn from the prior, seed {summary['seed']}"
        )
        + f"; {_diagnostics(summary)}"
    )
    title = f"{summary['scenario']}: nowcast as of {as_of}"
    return _page(
        title,
        [
            f"<h1>{escape(title)}</h1>",
            f"<p class='note' id='headline'>{escape(headline)}</p>",
            f"<p class='meta'>{meta}</p>",
            "<h2>The news one step at a time</h2>",
            f"<p>P({escape(label)} by {escape(horizon)}) given everything known up to each "
            "step, what did not happen included (the prior worlds reweighted; the ESS says "
            "how many worlds carry the figure). The figure after the news comes from the "
            "updated worlds.</p>",
            updates,
            _figure(folder, "update", "What each piece of news did"),
            "<h2>Every stage, before the news and after it</h2>",
            f"<p>P(reached by {escape(horizon)}).</p>",
            stages,
            "<h2>Triggers not observed</h2>",
            (
                "<p>The probability that each is on as of "
                f"{escape(as_of)}, given the news.</p><table id='triggers'><thead><tr>"
                "<th class='text'>trigger</th><th>P(on)</th></tr></thead><tbody>"
                f"{trigger_rows}</tbody></table>"
                if triggers
                else "<p>Every trigger was observed.</p>"
            ),
            "<h2>What the news says of the parameters</h2>",
            "<p>Contraction: 1 - posterior variance / prior variance (near 0: the news says "
            "nothing of it).</p>",
            _parameters_table(summary.get("parameters") or []),
            _figure(folder, "parameters", "Prior and posterior of the parameters moved most"),
            "<h2>Manifest</h2>",
            "<pre>" + escape(json.dumps(manifest, indent=2, default=str)) + "</pre>",
        ],
    )


def _comparison(folder: Path, manifest: dict[str, Any]) -> str:
    """The page of a comparison folder (``escalate compare --out``): the option that moves
    the first metric most, then every difference with its error, then the forest plot."""
    summary = _read_json(folder, "summary.json")
    rows = summary["rows"]
    metric = summary["metrics"][0]
    first = [r for r in rows if r["metric"] == metric]
    probability = is_probability(metric)

    def shown(x, signed: bool = False) -> str:
        return as_read(x, probability, change=signed)

    how = {
        "exact": "exact: every timing is exponential",
        "replicates": f"paired Monte Carlo over {summary['units']} replicates",
        "worlds": f"paired over {summary['units']} worlds",
    }[summary["mode"]]
    if first:
        top = max(first, key=lambda r: abs(r["difference"] or 0))
        headline = (
            f"{top['variant']} moves {metric} the most: {shown(top['baseline'])} -> "
            f"{shown(top['value'])} ({shown(top['difference'], True)}; {how})."
        )
    else:  # pragma: no cover - a comparison has a variant
        headline = "No variant."
    body_rows = "".join(
        f"<tr><td class='text'>{escape(r['variant'])}</td><td class='text'>"
        f"{escape(r['metric'])}</td><td>{shown(r['value'])}</td>"
        f"<td class='nowrap'>{shown(r['difference'], True)}</td>"
        f"<td class='nowrap'>{shown(r['low'], True)} .. {shown(r['high'], True)}</td>"
        + (
            f"<td>{r['variance_reduction']:.1f}</td>"
            if r.get("variance_reduction") is not None
            else "<td>—</td>"
        )
        + "</tr>"
        for r in rows
    )
    sources = {r["variant"]: r.get("source") for r in rows}
    reasons = "".join(
        f"<dt>{escape(name)}</dt><dd>{escape(str(source or 'no source given'))}</dd>"
        for name, source in sources.items()
    )
    table = (
        "<table id='differences'><thead><tr><th class='text'>variant</th>"
        "<th class='text'>metric</th><th>value</th><th>difference</th><th>95% interval</th>"
        "<th>variance ÷ pairing</th></tr></thead>"
        f"<tbody>{body_rows}</tbody></table>"
    )
    title = f"{summary['scenario']}: options compared"
    return _page(
        title,
        [
            f"<h1>{escape(title)}</h1>",
            f"<p class='note' id='headline'>{escape(headline)}</p>",
            f"<p class='meta'>Scenario <code>{escape(str(summary['scenario']))}</code> "
            f"({escape(str(manifest.get('scenario_file', '')))}); variants "
            f"{escape(str(manifest.get('variants_file', '')))}; {escape(how)}, seed "
            f"{summary['seed']}.</p>",
            _figure(folder, "forest", "Each variant against the baseline"),
            "<h2>Every difference</h2>",
            "<p>Variance ÷ pairing: the variance two independent runs' difference would have "
            "had, over the paired one's."
            + (
                f" The intervals' standard errors assume {escape(summary['se_assumes'])}."
                if summary.get("se_assumes")
                else ""
            )
            + "</p>",
            table,
            "<h2>Why each option</h2>",
            f"<dl>{reasons}</dl>",
            "<h2>Manifest</h2>",
            "<pre>" + escape(json.dumps(manifest, indent=2, default=str)) + "</pre>",
        ],
    )


def _build(folder: Path) -> str:
    manifest = _read_json(folder, "manifest.json")
    if manifest.get("command") == "compare":
        return _comparison(folder, manifest)
    if manifest.get("command") == "calibrate":
        return _calibration(folder, manifest)
    if manifest.get("command") == "nowcast":
        return _nowcast(folder, manifest)
    summary = _read_json(folder, "summary.json")
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
    parts += [_figure(folder, name, heading) for name, heading in FIGURES.items()]
    parts += [
        "<h2>Most frequent pathways</h2>",
        _paths_table(_read_csv(folder / "paths.csv")),
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
    return _page(str(title), parts)


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
