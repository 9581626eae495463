"""The page of a backtest folder (``escalate backtest --out``): the answer first (what updating
on the news did to the scores, the worst question, the least expected news), then every scored
forecast, the window CRPS, the news with its surprise, and the figures."""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from escalate.output.format import percent
from escalate.output.report.page import figure, manifest_section, page, read_json

__all__ = ["backtest_page", "weigh_page"]


def _when(row: dict, key: str = "origin") -> str:
    return row.get(f"{key}_date") or f"{row[key]:g}"


def _number(x, digits: int = 3) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def backtest_page(folder: Path, manifest: dict[str, Any]) -> str:
    summary = read_json(folder, "summary.json")
    s = summary["summary"]
    rows = "".join(
        f"<tr><td class='text nowrap'>{escape(_when(r))}</td>"
        f"<td class='text'>{escape(r['question'])}</td><td>{percent(r['forecast'])}</td>"
        f"<td>{'yes' if r['outcome'] else 'no'}</td><td>{_number(r['brier'])}</td>"
        f"<td>{_number(r['log_score'], 2)}</td><td>{percent(r['reference_forecast'])}</td>"
        f"<td>{_number(r['reference_brier'])}</td>"
        f"<td>{_number(r['reference_log_score'], 2)}</td></tr>"
        for r in summary["rows"]
    )
    scores = (
        "<table id='scores'><thead><tr><th class='text'>origin</th><th class='text'>question"
        "</th><th>forecast</th><th>outcome</th><th>Brier</th><th>log</th><th>reference</th>"
        f"<th>ref. Brier</th><th>ref. log</th></tr></thead><tbody>{rows}</tbody></table>"
    )
    crps_rows = "".join(
        f"<tr><td class='text nowrap'>{escape(_when(r))}</td><td class='text'>"
        f"{escape(r['stage'])}</td><td>{'no' if r['entry'] is None else _number(r['entry'], 0)}"
        f"</td><td>{_number(r['crps'], 2)}</td><td>{_number(r['reference_crps'], 2)}</td></tr>"
        for r in summary["crps"]
    )
    crps = (
        "<table id='crps'><thead><tr><th class='text'>origin</th><th class='text'>stage</th>"
        "<th>entered (time)</th><th>CRPS</th><th>reference</th></tr></thead>"
        f"<tbody>{crps_rows}</tbody></table>"
    )
    news_rows = "".join(
        f"<tr><td class='text nowrap'>{escape(n.get('date') or format(n['time'], 'g'))}</td>"
        f"<td class='text'>{escape('; '.join(n['news']))}</td><td class='nowrap'>"
        f"{percent(n['p_by'])}{' <strong>unexpected</strong>' if n['unexpected'] else ''}"
        "</td></tr>"
        for n in summary["news"]
    )
    news = (
        "<table id='news'><thead><tr><th class='text'>when</th><th class='text'>news</th>"
        f"<th>P(by then)</th></tr></thead><tbody>{news_rows}</tbody></table>"
    )
    means = (
        f"Mean Brier {_number(s['brier'])} against {_number(s['reference_brier'])} for the "
        f"forecast from the start, never updated (skill {_number(s['brier_skill'], 2)}); log "
        f"score {_number(s['log_score'])} against {_number(s['reference_log_score'])}; window "
        f"CRPS {_number(s['crps'], 2)} against {_number(s['reference_crps'], 2)} "
        f"{escape(summary.get('time_unit') or '')}s. Lower is better; skill = 1 - score / "
        "reference."
    )
    title = f"{summary['scenario']}: backtest to {summary.get('end_date') or summary['end']}"
    return page(
        title,
        [
            f"<h1>{escape(title)}</h1>",
            f"<p class='note' id='answer'>{escape(s['answer'])}</p>",
            f"<p>{means}</p>",
            f"<p class='meta'>{summary['worlds']:,} worlds, seed {summary['seed']}; record "
            f"{escape(str(manifest.get('record_file', '')))}.</p>",
            "<h2>Each forecast it would have issued, scored</h2>",
            "<p>At each origin, the nowcast on the record as known then; each question still "
            "open and settled by the record, with its Brier score (p - y)² and log score "
            "-log p(y). The reference is the scenario's forecast from the start.</p>",
            scores,
            figure(folder, "forecasts", "The forecasts across the origins, and what happened"),
            "<h2>Window CRPS of each first entry</h2>",
            "<p>The integral over the window from the origin to the record's end of (F(t) - "
            "1{t ≥ entry})², F the forecast's probability of entry by t.</p>",
            crps,
            "<h2>The news, and how probable each step was just before it</h2>",
            news,
            figure(folder, "reliability", "Reliability"),
            *manifest_section(manifest),
        ],
    )


def weigh_page(folder: Path, manifest: dict[str, Any]) -> str:
    """The page of a weighing folder (``escalate weigh --out``): the answer first, then the
    models, the news step by step, the figure."""
    summary = read_json(folder, "summary.json")
    models = summary["models"]
    names = [m["model"] for m in models]
    model_rows = "".join(
        f"<tr><td class='text'>{escape(m['model'])}</td><td>{percent(m['prior'])}</td>"
        f"<td>{_number(m['log_evidence'])}</td><td>{_number(m['evidence_se'])}</td>"
        f"<td>{percent(m['probability'])}</td><td>{percent(m['forecast'])}</td></tr>"
        for m in models
    )
    table = (
        "<table id='models'><thead><tr><th class='text'>model</th><th>prior</th>"
        "<th>log evidence</th><th>± se</th><th>after the news</th><th>forecast</th></tr>"
        f"</thead><tbody>{model_rows}</tbody></table>"
    )
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    step_rows = "".join(
        f"<tr><td class='text nowrap'>{escape(s.get('date') or format(s['time'], 'g'))}</td>"
        "<td class='text'>"
        f"{escape(str(s.get('news:' + names[0]) or ''))}</td>"
        + "".join(f"<td>{percent(s['probability:' + n])}</td>" for n in names)
        + "</tr>"
        for s in summary["steps"]
    )
    steps = (
        "<table id='steps'><thead><tr><th class='text'>when</th><th class='text'>news</th>"
        f"{head}</tr></thead><tbody>{step_rows}</tbody></table>"
    )
    title = summary.get("title") or "Rival models weighed by the news"
    return page(
        title,
        [
            f"<h1>{escape(title)}</h1>",
            f"<p class='note' id='answer'>{escape(summary['answer'])}</p>",
            "<h2>The models</h2>",
            "<p>Log evidence: the log of the probability each model gave its record, over its "
            "parameter worlds (± its standard error where worlds are drawn); after the news: "
            "prior x evidence, normalized; forecast: each model's answer to "
            f"{escape(summary['question'])}. Evidence is not proof: it says which story made "
            "the news less surprising, not which is true.</p>",
            table,
            "<h2>The news step by step</h2>",
            steps,
            figure(folder, "models", "Model probabilities, step by step"),
            *manifest_section(manifest),
        ],
    )
