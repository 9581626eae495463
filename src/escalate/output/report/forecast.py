"""The pages of forecasting folders, the answer first: a calibration (statements against the
calibrated model), a nowcast (the odds after the news, the news step by step) and a comparison
(the option that moves the headline most)."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from escalate.engine.metrics import is_probability
from escalate.output.format import as_read, number, percent, points
from escalate.output.report.page import figure, manifest_section, page, read_json

__all__ = ["calibration_page", "comparison_page", "nowcast_page"]


def calibration_page(folder: Path, manifest: dict[str, Any]) -> str:
    """The page of a calibration folder (``escalate calibrate --out``): the statements against
    the calibrated model first, then what they say of the parameters."""
    summary = read_json(folder, "summary.json")
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
    return page(
        title,
        [
            f"<h1>{escape(title)}</h1>",
            f"<p class='note' id='headline'>{escape(headline)}</p>",
            f"<p class='meta'>{meta}</p>",
            "<h2>The statements and the model</h2>",
            table,
            figure(folder, "targets", "Statements against the calibrated model"),
            "<h2>What the statements say of the parameters</h2>",
            "<p>Contraction: 1 - posterior variance / prior variance on the scale the sampler "
            "moves "
            "on (log for a positive parameter, logit for a probability; near 0: the statements "
            "say nothing of it).</p>",
            ptable,
            figure(folder, "parameters", "Prior and posterior of the parameters moved most"),
            *manifest_section(manifest),
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


def _surprise_cells(update: dict) -> str:
    """A news step's P(by then), marked where unexpected, and its share of the evidence."""
    p_by, share = update.get("p_by"), update.get("evidence_share")
    mark = " <strong>unexpected</strong>" if update.get("unexpected") else ""
    return (
        f"<td class='nowrap'>{'' if p_by is None else percent(p_by)}{mark}</td>"
        f"<td>{'' if share is None else percent(share)}</td>"
    )


def _method(summary: dict[str, Any]) -> str:
    """How a nowcast's likelihood and forecast were computed, in words."""
    if summary.get("method") != "particles":
        return "Method: exact (the forward algorithm)."
    errors = [s.get("after_se") or 0.0 for s in summary["stages"].values()]
    sd = summary.get("log_likelihood_sd")
    return (
        f"Method: particles, {summary['particles']} per world"
        + (f" (a world's log-likelihood estimate has sd {sd:.2f})" if sd is not None else "")
        + f"; the figures after the news have a Monte Carlo standard error up to "
        f"{percent(max(errors))}."
    )


def nowcast_page(folder: Path, manifest: dict[str, Any]) -> str:
    """The page of a nowcast folder (``escalate nowcast --out``): the odds after the news
    first, then the news one step at a time, then the rest."""
    summary = read_json(folder, "summary.json")
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
            f"<td>{u['ess']:.0f}</td>{_surprise_cells(u)}</tr>"
        )
        previous = now
    updates = (
        "<table id='updates'><thead><tr><th class='text'>when</th><th class='text'>news</th>"
        "<th>before</th><th>after</th><th>change</th><th>ESS</th><th>P(by then)</th>"
        f"<th>share of the evidence</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    surprises = [u for u in summary["updates"] if u.get("unexpected")]
    said = "; ".join(f"{u.get('date') or format(u['time'], 'g')}: {'; '.join(u['news'])} "
                     f"({percent(u['p_by'])})" for u in surprises)  # fmt: skip
    surprise = (
        f"<p class='note' id='unexpected'>Unexpected: {escape(said)}. The forecast just "
        "before gave each less than 5%: the model did not see it coming.</p>"
        if surprises
        else "<p id='unexpected'>No step was unexpected (each had at least 5% by the "
        "forecast just before it).</p>"
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
        + f"; {_diagnostics(summary)} {escape(_method(summary))}"
    )
    title = f"{summary['scenario']}: nowcast as of {as_of}"
    return page(
        title,
        [
            f"<h1>{escape(title)}</h1>",
            f"<p class='note' id='headline'>{escape(headline)}</p>",
            f"<p class='meta'>{meta}</p>",
            "<h2>The news one step at a time</h2>",
            f"<p>P({escape(label)} by {escape(horizon)}) given everything known up to each "
            "step, what did not happen included (the prior worlds reweighted; the ESS says "
            "how many worlds carry the figure). The figure after the news comes from the "
            "updated worlds. P(by then): how probable the step was under the forecast just "
            "before it (its event no later than it happened; for a quiet span, nothing "
            "happening); the share of the log evidence each step carries.</p>",
            surprise,
            updates,
            figure(folder, "update", "What each piece of news did"),
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
            "<p>Contraction: 1 - posterior variance / prior variance on the scale the sampler "
            "moves "
            "on (log for a positive parameter, logit for a probability; near 0: the news says "
            "nothing of it).</p>",
            _parameters_table(summary.get("parameters") or []),
            figure(folder, "parameters", "Prior and posterior of the parameters moved most"),
            *manifest_section(manifest),
        ],
    )


def comparison_page(folder: Path, manifest: dict[str, Any]) -> str:
    """The page of a comparison folder (``escalate compare --out``): the option that moves
    the first metric most, then every difference with its error, then the forest plot."""
    summary = read_json(folder, "summary.json")
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
    return page(
        title,
        [
            f"<h1>{escape(title)}</h1>",
            f"<p class='note' id='headline'>{escape(headline)}</p>",
            f"<p class='meta'>Scenario <code>{escape(str(summary['scenario']))}</code> "
            f"({escape(str(manifest.get('scenario_file', '')))}); variants "
            f"{escape(str(manifest.get('variants_file', '')))}; {escape(how)}, seed "
            f"{summary['seed']}.</p>",
            figure(folder, "forest", "Each variant against the baseline"),
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
            *manifest_section(manifest),
        ],
    )
